# RTMPose-m, COCO-17 top-down, 256x192 input: vid2reid's default 2D model.
# Everything comes from mmpose's shipped config; this file only adds (as load_from) the
# checkpoint that mmpose downloads on first use (or pass --checkpoint-2d PATH).
_base_ = ['mmpose::body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py']
load_from = ('https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/'
              'rtmpose-m_simcc-coco_pt-aic-coco_420e-256x192-d8dd5ca4_20230127.pth')
