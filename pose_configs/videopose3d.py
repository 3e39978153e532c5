# VideoPose3D (TCN, 243-frame receptive field, supervised, fine-tuned on CPN 2D
# detections), Human3.6M-17 output in metres: vid2reid's default 3D lifter.
_base_ = ['mmpose::body_3d_keypoint/video_pose_lift/h36m/video-pose-lift_tcn-243frm-supv-cpn-ft_8xb128-200e_h36m.py']
load_from = ('https://download.openmmlab.com/mmpose/body3d/videopose/'
              'videopose_h36m_243frames_fullconv_supervised_cpn_ft-88f5abbb_20210527.pth')
