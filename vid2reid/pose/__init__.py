"""The pose stage: videos -> 3D skeletons (``vid2reid extract``).

Modules: ``names`` (CASIA-B file names), ``video`` (threaded decoding), ``boxes``
(person boxes), ``mmpose_backend`` / ``mediapipe_backend`` (pose estimators),
``postprocess`` (gap filling, splitting), ``extract`` (batch driver),
``visualize`` (skeleton overlay videos), ``compat`` (mmpose beside mmcv-lite).
Heavy libraries are imported only by the backend that needs them.
"""
