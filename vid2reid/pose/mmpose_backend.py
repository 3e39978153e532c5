"""MMPose backend: RTMPose (COCO-17, top-down) on batches of person crops, then a 3D lifter.

Built on mmpose's functional pieces (``init_model``, the model's own test
pipeline and ``test_step``) rather than ``MMPoseInferencer``: the inferencer
runs one frame at a time through a generator with hidden state, while here all
crops of a video go through the 2D model in batches and all lifter windows of
a sequence in batches. Preprocessing is mmpose's own, so results match what
``inference_topdown`` / ``inference_pose_lifter_model`` give for the same
frames and boxes.

Lifters: VideoPose3D (243-frame TCN, default; one window per output frame) or
MotionBERT (243-frame clips in, 243 frames out). Output is Human3.6M-17 in the
lifter's camera-style axes (x right, y down, z away from the camera), metres,
pelvis at the origin; the store keeps it as it is.

Model configs and checkpoint URLs live in ``pose_configs/``; weights are found and loaded
safely by ``vid2reid.pose.weights`` (a local file given with ``--checkpoint-2d/--checkpoint-3d``,
else the config's URL). Random weights only when explicitly allowed (tests, benchmarks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vid2reid.errors import ConfigError
from vid2reid.pose.boxes import BoxFinder
from vid2reid.pose.postprocess import drop_short, fill_and_split
from vid2reid.pose.result import Sequence3D, VideoPoses
from vid2reid.pose.weights import load_weights, resolve_config

log = logging.getLogger(__name__)

POSE2D_MODELS = ("rtmpose-m",)
LIFTERS = ("videopose3d", "videopose3d-27", "motionbert")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class MMPoseSettings:
    """Everything that decides what the MMPose backend computes."""

    pose2d: str = "rtmpose-m"  # name of a file in pose_configs/ or a config path
    lifter: str = "videopose3d"
    checkpoint_2d: str | None = None
    checkpoint_3d: str | None = None
    device: str = "cpu"
    allow_random_weights: bool = False
    batch_size: int = 32  # person crops per 2D forward pass
    window_batch: int = 256  # lifter windows per forward pass
    flip_test: bool = False  # RTMPose's deployment setting; True = the config's test-time flip
    precision: str = "fp32"  # "bf16": autocast on CPUs/GPUs that support it (faster, less exact)


def _build(config_path: Path, checkpoint: str | None, option: str, settings: MMPoseSettings):
    """init_model (random weights) + :func:`load_weights`, then move to the device."""
    from vid2reid.pose.compat import import_mmpose_apis

    apis = import_mmpose_apis()
    from mmengine.config import Config

    model = apis.init_model(Config.fromfile(str(config_path)), None, device="cpu")
    source = load_weights(model, config_path, checkpoint, option, settings.allow_random_weights)
    model.to(settings.device)
    model.eval()
    return model, source


def _windows(n: int, seq_len: int, causal: bool) -> Iterator[np.ndarray]:
    """Frame indices of the lifter window for each output frame (edge frames repeated)."""
    left = seq_len - 1 if causal else (seq_len - 1) // 2
    offsets = np.arange(seq_len) - left
    for t in range(n):
        yield np.clip(t + offsets, 0, n - 1)


def _fuse_conv_bn(model) -> int:
    """Fold eval-mode BatchNorm into the preceding convolution of every mmcv ConvModule.

    Same outputs up to float rounding, one pass less over every feature map.
    """
    import torch
    from mmcv.cnn import ConvModule
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    batch_norm = torch.nn.modules.batchnorm._BatchNorm  # also mmengine's reverted SyncBN
    fused = 0
    for m in model.modules():
        if (isinstance(m, ConvModule) and m.with_norm and isinstance(m.conv, torch.nn.Conv2d)
                and isinstance(m.norm, batch_norm) and m.order.index("conv") < m.order.index("norm")):
            m.conv = fuse_conv_bn_eval(m.conv.eval(), m.norm.eval())
            setattr(m, m.norm_name, torch.nn.Identity())
            fused += 1
    return fused


def _autocast_module(module, device: str):
    import torch

    class _Autocast(torch.nn.Module):
        """Runs the wrapped backbone under bfloat16 autocast and returns float32 features."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            with torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16):
                out = self.inner(x)
            return tuple(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()

    return _Autocast(module)


class MMPoseBackend:
    """Batched RTMPose + lifter; one instance per process (models stay loaded)."""

    name = "mmpose"
    layout = "h36m-17"
    layout_2d = "coco-17"
    axes = "camera: x right, y down, z away; metres; pelvis-relative (trained lifters put the pelvis at 0)"

    def __init__(self, settings: MMPoseSettings = MMPoseSettings()):
        import torch

        if settings.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {settings.precision!r}; choose {', '.join(PRECISIONS)}")
        self.settings = settings
        self.torch = torch
        cfg2d, cfg3d = resolve_config(settings.pose2d), resolve_config(settings.lifter)
        self.model2d, self.weights_2d = _build(cfg2d, settings.checkpoint_2d, "--checkpoint-2d", settings)
        self.model3d, self.weights_3d = _build(cfg3d, settings.checkpoint_3d, "--checkpoint-3d", settings)
        self.model2d.test_cfg["flip_test"] = settings.flip_test
        _fuse_conv_bn(self.model2d)
        if settings.device.startswith("cpu"):  # oneDNN convolutions run faster in NHWC
            self.model2d.to(memory_format=torch.channels_last)
        if settings.precision == "bf16":
            self.model2d.backbone = _autocast_module(self.model2d.backbone, settings.device)
        from mmengine.dataset import Compose

        self._pipe2d = Compose(self.model2d.cfg.test_dataloader.dataset.pipeline)
        self._pipe3d = Compose(self.model3d.cfg.test_dataloader.dataset.pipeline)
        ds = self.model3d.cfg.test_dataloader.dataset
        self.seq2seq = bool(ds.get("multiple_target", 0))
        self.seq_len = int(ds.get("multiple_target") or ds.get("seq_len", 1))
        self.causal = bool(ds.get("causal", False))
        self.det_dataset = self.model2d.dataset_meta.get("dataset_name", "coco")
        self.lift_dataset = self.model3d.dataset_meta.get("dataset_name", "h36m")
        stats = self.model3d.dataset_meta.get("stats_info", {})
        self._bbox_center = stats.get("bbox_center")
        self._bbox_scale = stats.get("bbox_scale")

    def describe(self) -> dict[str, str]:
        """Model names and weight sources, stored with every sequence."""
        return {"backend": self.name, "pose2d": self.settings.pose2d, "lifter": self.settings.lifter,
                "weights_2d": str(self.weights_2d or "random"), "weights_3d": str(self.weights_3d or "random"),
                "flip_test": str(self.settings.flip_test), "precision": self.settings.precision,
                "axes": self.axes}

    def keypoints_2d(self, frames: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """COCO-17 keypoints (N, 17, 2) in frame pixels and scores (N, 17), one per (frame, box)."""
        from mmengine.dataset import pseudo_collate

        kpts = np.zeros((len(frames), 17, 2), np.float32)
        scores = np.zeros((len(frames), 17), np.float32)
        bs = max(1, self.settings.batch_size)
        for lo in range(0, len(frames), bs):
            data = []
            for frame, box in zip(frames[lo:lo + bs], boxes[lo:lo + bs]):
                info = dict(img=frame, bbox=np.asarray(box, np.float32)[None],
                            bbox_score=np.ones(1, np.float32))
                info.update(self.model2d.dataset_meta)
                data.append(self._pipe2d(info))
            with self.torch.inference_mode():
                results = self.model2d.test_step(pseudo_collate(data))
            for i, res in enumerate(results):
                kpts[lo + i] = res.pred_instances.keypoints[0]
                scores[lo + i] = res.pred_instances.keypoint_scores[0]
        return kpts, scores

    def lift(self, kpts_2d: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """3D joints (T, 17, 3) for a contiguous (T, 17, 2) COCO keypoint sequence."""
        from mmengine.dataset import pseudo_collate
        from mmpose.apis import convert_keypoint_definition

        kp = convert_keypoint_definition(np.asarray(kpts_2d, np.float32), self.det_dataset,
                                         self.lift_dataset)[..., :2].copy()
        if self._bbox_center is not None:  # what Pose3DInferencer does unless disable_norm_pose_2d
            centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
            scale = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None, None]
            kp = (kp - centre) / np.maximum(scale, 1e-6) * self._bbox_scale + self._bbox_center
        n = kp.shape[0]
        if self.seq2seq:  # MotionBERT: clips of seq_len frames, all frames predicted
            clip = min(self.seq_len, n)  # a shorter sequence is one shorter clip, not padded
            starts = list(range(0, n, clip))
            windows = [np.clip(np.arange(s, s + clip), 0, n - 1) for s in starts]
        else:
            windows = list(_windows(n, self.seq_len, self.causal))
        out = np.zeros((n, 17, 3), np.float32)
        w, h = image_size
        bs = max(1, self.settings.window_batch)
        for lo in range(0, len(windows), bs):
            data = []
            for idx in windows[lo:lo + bs]:
                L = len(idx)
                nt = L if self.seq2seq else 1
                info = dict(keypoints=kp[idx], keypoints_visible=np.ones((L, 17), np.float32),
                            lifting_target=np.zeros((nt, 17, 3), np.float32),
                            factor=np.zeros((L,), np.float32),
                            lifting_target_visible=np.ones((nt, 17, 1), np.float32),
                            camera_param=dict(w=w, h=h))
                info.update(self.model3d.dataset_meta)
                data.append(self._pipe3d(info))
            with self.torch.inference_mode():
                results = self.model3d.test_step(pseudo_collate(data))
            for j, res in enumerate(results):
                k3 = np.asarray(res.pred_instances.keypoints, np.float32).reshape(-1, 17, 3)
                widx = lo + j
                if self.seq2seq:
                    s = starts[widx]
                    m = min(clip, n - s)
                    out[s:s + m] = k3[:m]
                else:
                    out[widx] = k3[-1] if self.causal else k3[len(k3) // 2]
        return out

    def estimate_video(self, frames: Iterable[np.ndarray], box_finder: BoxFinder,
                       max_gap: int = 5, min_frames: int = 1) -> VideoPoses:
        """Boxes per frame, 2D keypoints in batches, gap filling, then the lifter per sequence."""
        kpts, scores, boxes, valid = [], [], [], []
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        size = None

        def flush():
            if not pending:
                return
            k, s = self.keypoints_2d([p[1] for p in pending], np.stack([p[2] for p in pending]))
            for (t, _, _), kk, ss in zip(pending, k, s):
                kpts[t], scores[t] = kk, ss
            pending.clear()

        for t, frame in enumerate(frames):
            size = (frame.shape[1], frame.shape[0])
            box = box_finder(frame)
            kpts.append(np.full((17, 2), np.nan, np.float32))
            scores.append(np.zeros(17, np.float32))
            boxes.append(np.zeros(4, np.float32) if box is None else np.asarray(box, np.float32))
            valid.append(box is not None)
            if box is not None:
                pending.append((t, frame, box))
                if len(pending) >= self.settings.batch_size:
                    flush()
        flush()
        T = len(valid)
        kpts_a = np.stack(kpts) if T else np.zeros((0, 17, 2), np.float32)
        scores_a = np.stack(scores) if T else np.zeros((0, 17), np.float32)
        boxes_a = np.stack(boxes) if T else np.zeros((0, 4), np.float32)
        valid_a = np.asarray(valid, bool)
        packed = np.concatenate([kpts_a.reshape(T, -1), boxes_a, scores_a], axis=1)
        segments, _ = drop_short(fill_and_split(packed, valid_a, max_gap), min_frames)
        sequences = []
        for seg in segments:
            k2 = seg.values[:, :34].reshape(-1, 17, 2)
            bx = seg.values[:, 34:38]
            sc = seg.values[:, 38:]
            joints = self.lift(k2, bx, size)
            sequences.append(Sequence3D(seg.start, joints, seg.detected,
                                        float(sc[seg.detected].mean()) if seg.detected.any() else 0.0))
        return VideoPoses(frames=T, keypoints_2d=kpts_a, scores_2d=scores_a, valid=valid_a,
                          sequences=sequences, layout=self.layout, layout_2d=self.layout_2d)
