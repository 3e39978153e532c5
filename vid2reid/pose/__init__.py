"""The pose stage: videos -> 3D skeletons (``vid2reid extract``).

Modules: ``names`` (CASIA-B file names), ``video`` (threaded decoding), ``boxes``
(person boxes), ``mmpose_backend`` / ``mediapipe_backend`` (pose estimators),
``postprocess`` (gap filling, splitting), ``extract`` (batch driver),
``visualize`` (skeleton overlay videos), ``compat`` (mmpose beside mmcv-lite).
Heavy libraries are imported only by the backend that needs them.
"""

import warnings as _warnings

# Third-party notices no user of vid2reid can act on, filtered by their exact text when the pose
# stage is loaded (before mmengine, mmpose or mmdet is imported): mmengine imports the deprecated
# pkg_resources; mmpose and mmdet call torch.cuda.amp.autocast, deprecated by torch, on every
# forward pass; mmpose says where it found its own dataset metainfo files.
_warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
_warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated",
                         category=FutureWarning)
_warnings.filterwarnings("ignore", message=r'The metainfo config file ".*" does not exist',
                         category=UserWarning)
