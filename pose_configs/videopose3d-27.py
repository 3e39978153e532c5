# VideoPose3D with a 27-frame receptive field: a smaller, faster lifter (used by
# the tests with random weights; also fine for short clips).
_base_ = ['mmpose::body_3d_keypoint/video_pose_lift/h36m/video-pose-lift_tcn-27frm-supv_8xb128-160e_h36m.py']
load_from = ('https://download.openmmlab.com/mmpose/body3d/videopose/'
              'videopose_h36m_27frames_fullconv_supervised-fe8fbba9_20210527.pth')
