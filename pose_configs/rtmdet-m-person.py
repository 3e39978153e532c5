# RTMDet-m person detector, as MMPoseInferencer's default 'human' detector
# (mmpose/.mim/demo/mmdetection_cfg/rtmdet_m_640-8xb32_coco-person.py), for --boxes rtmdet.
# It needs mmcv WITH compiled ops (batched_nms); with mmcv-lite use --boxes bgsub/hog/whole.
_base_ = ['mmdet::rtmdet/rtmdet_m_8xb32-300e_coco.py']
model = dict(
    backbone=dict(init_cfg=None),
    bbox_head=dict(num_classes=1),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))
test_dataloader = dict(dataset=dict(metainfo=dict(classes=('person', ))))
load_from = ('https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/'
             'rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth')
