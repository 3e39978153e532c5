"""Person boxes for top-down pose estimation without an mmdet detector.

CASIA-B films one walker in front of a static background, so the default is
background subtraction: the background is the per-pixel median of the view's
background-only clip (``SSS-bkgrd-VVV.avi``) when there is one, else of frames
sampled across the video itself (a walker crossing the picture does not stay
on any pixel long enough to enter the median). OpenCV's HOG people detector
and the whole frame are the fallbacks; ``rtmdet`` (mmdet's RTMDet-m person
detector, as MMPoseInferencer uses) needs an mmcv with compiled ops. A frame where no person is found gets
no box (``None``): it is recorded as missing, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from vid2reid.errors import ConfigError, PoseError
from vid2reid.pose.video import read_frames

BOX_METHODS = ("bgsub", "hog", "whole", "rtmdet")
BoxFinder = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class BoxSettings:
    """Background-subtraction knobs (generic defaults, not tuned to any data set)."""

    threshold: int = 30  # per-pixel colour difference (0-255) that counts as foreground
    min_area: float = 0.002  # smallest foreground blob, as a fraction of the frame area
    pad: float = 0.1  # box padding, as a fraction of the box size on each side
    background_samples: int = 50


def estimate_background(frames: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of frames (uint8 BGR)."""
    if not frames:
        raise PoseError("cannot estimate a background from zero frames")
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def background_for(video: Path, background_clip: Path | None, n_samples: int = 50) -> np.ndarray:
    """The background image for a video: from its background clip when given, else from itself."""
    source = background_clip if background_clip is not None else video
    frames = read_frames(source)
    if not frames:
        raise PoseError(f"{source}: no frames could be decoded to estimate the background")
    step = max(1, len(frames) // n_samples)
    return estimate_background(frames[::step])


def pad_box(box: np.ndarray, pad: float, width: int, height: int) -> np.ndarray:
    """Grow an (x1, y1, x2, y2) box by ``pad`` of its size on each side, clipped to the frame."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * pad, (y2 - y1) * pad
    return np.array([max(0.0, x1 - dx), max(0.0, y1 - dy), min(width, x2 + dx), min(height, y2 + dy)],
                    dtype=np.float32)


class BackgroundBoxes:
    """Box around the foreground that differs from a fixed background image."""

    def __init__(self, background: np.ndarray, settings: BoxSettings = BoxSettings()):
        self.background = background
        self.settings = settings
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """Foreground mask (uint8 0/255)."""
        if frame.shape != self.background.shape:
            raise PoseError(f"frame size {frame.shape[:2]} differs from the background's "
                            f"{self.background.shape[:2]}")
        diff = cv2.absdiff(frame, self.background).max(axis=2)
        diff = cv2.GaussianBlur(diff, (5, 5), 0)
        _, fg = cv2.threshold(diff, self.settings.threshold, 255, cv2.THRESH_BINARY)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)
        return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._close)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        h, w = frame.shape[:2]
        n, _, stats, _ = cv2.connectedComponentsWithStats(self.mask(frame), connectivity=8)
        min_area = self.settings.min_area * h * w
        blobs = [stats[i] for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
        if not blobs:
            return None
        main = max(blobs, key=lambda s: s[cv2.CC_STAT_AREA])
        x1, y1 = main[0], main[1]
        x2, y2 = x1 + main[2], y1 + main[3]
        # join pieces of the same person (e.g. legs split from the torso) lying near the main blob
        margin = 0.25 * main[3]
        for s in blobs:
            sx1, sy1, sx2, sy2 = s[0], s[1], s[0] + s[2], s[1] + s[3]
            if sx2 >= x1 - margin and sx1 <= x2 + margin and sy2 >= y1 - margin and sy1 <= y2 + margin:
                x1, y1, x2, y2 = min(x1, sx1), min(y1, sy1), max(x2, sx2), max(y2, sy2)
        return pad_box(np.array([x1, y1, x2, y2], dtype=np.float32), self.settings.pad, w, h)


class HogBoxes:
    """OpenCV's HOG + linear SVM people detector; the highest-scoring detection per frame."""

    def __init__(self, min_height: int = 400):
        if not hasattr(cv2, "HOGDescriptor"):
            raise ConfigError("this OpenCV has no HOGDescriptor (OpenCV 5 removed it); install "
                              "opencv-python<5 or use --boxes bgsub/whole")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_height = min_height

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        h, w = frame.shape[:2]
        scale = max(1.0, self.min_height / h)  # the detector window is 64x128: upscale small frames
        img = cv2.resize(frame, None, fx=scale, fy=scale) if scale > 1 else frame
        rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return None
        x, y, bw, bh = rects[int(np.argmax(np.ravel(weights)))] / scale
        return pad_box(np.array([x, y, x + bw, y + bh], dtype=np.float32), 0.05, w, h)


def whole_frame(frame: np.ndarray) -> np.ndarray:
    """The whole frame as the person box."""
    h, w = frame.shape[:2]
    return np.array([0, 0, w, h], dtype=np.float32)


class DetectorBoxes:
    """mmdet RTMDet-m person detector (pose_configs/rtmdet-m-person.py); highest-scoring person."""

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", score_thr: float = 0.3,
                 allow_random_weights: bool = False):
        from vid2reid.pose.compat import has_compiled_mmcv_ops, import_mmpose_apis

        if not has_compiled_mmcv_ops():
            raise ConfigError("--boxes rtmdet needs mmcv with compiled ops (mmcv==2.1.0 built with "
                              "MMCV_WITH_OPS=1); with mmcv-lite use --boxes bgsub, hog or whole")
        import_mmpose_apis()
        from mmdet.apis import inference_detector, init_detector

        from vid2reid.pose.weights import load_weights, resolve_config

        cfg = resolve_config("rtmdet-m-person")
        self.model = init_detector(str(cfg), None, device=device)
        load_weights(self.model, cfg, checkpoint, "--checkpoint-det", allow_random_weights)
        self._infer = inference_detector
        self.score_thr = score_thr

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        pred = self._infer(self.model, frame).pred_instances.cpu().numpy()
        keep = (pred.labels == 0) & (pred.scores >= self.score_thr)
        if not keep.any():
            return None
        return np.asarray(pred.bboxes[keep][np.argmax(pred.scores[keep])], dtype=np.float32)


def make_box_finder(method: str, video: Path, background_clip: Path | None = None,
                    settings: BoxSettings = BoxSettings(), detector: BoxFinder | None = None) -> BoxFinder:
    """The per-frame box function for ``method`` and this video (``detector``: a loaded DetectorBoxes)."""
    if method == "bgsub":
        return BackgroundBoxes(background_for(video, background_clip, settings.background_samples),
                               settings)
    if method == "hog":
        return HogBoxes()
    if method == "whole":
        return whole_frame
    if method == "rtmdet":
        return detector if detector is not None else DetectorBoxes()
    raise ConfigError(f"unknown --boxes {method!r}; choose one of {', '.join(BOX_METHODS)}")
