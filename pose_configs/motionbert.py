# MotionBERT (DSTformer, 243-frame clips in, 243 frames out), fine-tuned on
# Human3.6M: the selectable, slower and stronger lifter (--lifter motionbert).
_base_ = ['mmpose::body_3d_keypoint/motionbert/h36m/motionbert_dstformer-ft-243frm_8xb32-120e_h36m.py']
load_from = ('https://download.openmmlab.com/mmpose/v1/body_3d_keypoint/pose_lift/h36m/'
              'motionbert_ft_h36m-d80af323_20230531.pth')
