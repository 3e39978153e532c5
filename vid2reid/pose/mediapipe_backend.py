"""MediaPipe BlazePose backend: 33 joints with metric 3D world landmarks, fully offline.

MediaPipe 0.10.21 ships BlazePose's detector and ``pose_landmark_full``
(``model_complexity=1``) in its wheel, so this backend runs real, trained pose
estimation on a machine without internet. It runs in video mode (the
detector finds the person, then landmarks track it), one tracker per video.
``pose_world_landmarks`` are metres, centred between the hips (x right, y
down, z away from the camera roughly); the store keeps them as they are.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from vid2reid.errors import PoseError
from vid2reid.pose.boxes import BoxFinder
from vid2reid.pose.postprocess import drop_short, fill_and_split
from vid2reid.pose.result import Sequence3D, VideoPoses

log = logging.getLogger(__name__)
NUM_JOINTS = 33
# What MediaPipe's C++ side prints on every graph start whatever GLOG_minloglevel says
# (it logs through absl, which reads no environment variable): glog-style I/W lines,
# TensorFlow Lite's delegate notice and absl's pre-initialisation warning.
_NATIVE_NOISE = re.compile(r"^([IW]\d{4} |INFO: Created TensorFlow Lite|WARNING: All log messages "
                           r"before absl::InitializeLog)")


@contextlib.contextmanager
def native_log_filter() -> Iterator[None]:
    """Hold back MediaPipe's native info/warning lines written to file descriptor 2.

    Everything else written there meanwhile (errors, Python output) is passed on
    to stderr afterwards, in order. Used around one video's estimation, which
    is where the noise comes from (some of it from the graph's own threads at
    any frame); progress bars update between videos, so none is held back.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(True)
                    if not _NATIVE_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@dataclass(frozen=True)
class MediaPipeSettings:
    """BlazePose options (complexity 1 is the one whose model ships in the wheel)."""

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True


# import name -> pip package, where they differ
_PIP_NAMES = {"absl": "absl-py", "google": "protobuf", "cv2": "opencv-python", "attr": "attrs"}


def _import_pose():
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging is noisy on stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mediapipe.python.solutions import pose as mp_pose
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != "mediapipe":
            raise PoseError(f"--backend mediapipe: mediapipe is installed but the module it needs, "
                            f"{missing!r}, is not: pip install {_PIP_NAMES.get(missing, missing)} "
                            f"(or pip install 'vid2reid[mediapipe]')") from None
        raise PoseError(f"--backend mediapipe needs mediapipe 0.10.21 ({exc}): pip install "
                        f"'vid2reid[mediapipe]' (or 'pip install --no-deps mediapipe==0.10.21' "
                        f"with the [mediapipe-lean] extra, as scripts/setup.sh does)") from None
    return mp_pose


class MediaPipeBackend:
    """BlazePose per frame in video mode; 3D world landmarks in layout ``blazepose-33``."""

    name = "mediapipe"
    layout = "blazepose-33"
    layout_2d = "blazepose-33"
    axes = "mediapipe world: x right, y down, z away; metres; origin between the hips"

    def __init__(self, settings: MediaPipeSettings = MediaPipeSettings()):
        if settings.model_complexity != 1:
            log.warning("model_complexity=%d downloads its model at run time; only 1 ships with "
                        "mediapipe 0.10.21", settings.model_complexity)
        self.settings = settings
        self._mp_pose = _import_pose()

    def describe(self) -> dict[str, str]:
        """Model name and settings, stored with every sequence."""
        return {"backend": self.name, "pose2d": f"blazepose-complexity{self.settings.model_complexity}",
                "lifter": "blazepose-world-landmarks", "weights_2d": "mediapipe-0.10.21-wheel",
                "weights_3d": "mediapipe-0.10.21-wheel", "axes": self.axes}

    def estimate_video(self, frames: Iterable[np.ndarray], box_finder: BoxFinder | None = None,
                       max_gap: int = 5, min_frames: int = 1) -> VideoPoses:
        """Run BlazePose over the frames; boxes are not used (BlazePose has its own detector)."""
        with native_log_filter():
            return self._estimate_video(frames, max_gap, min_frames)

    def _estimate_video(self, frames: Iterable[np.ndarray], max_gap: int,
                        min_frames: int) -> VideoPoses:
        s = self.settings
        world, kp2d, vis, valid = [], [], [], []
        try:
            tracker = self._mp_pose.Pose(
                static_image_mode=False, model_complexity=s.model_complexity,
                smooth_landmarks=s.smooth_landmarks, enable_segmentation=False,
                min_detection_confidence=s.min_detection_confidence,
                min_tracking_confidence=s.min_tracking_confidence)
        except Exception as exc:  # model files missing from the wheel, etc.
            raise PoseError(f"MediaPipe BlazePose could not start ({exc})") from None
        try:
            for frame in frames:
                h, w = frame.shape[:2]
                res = tracker.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if res.pose_world_landmarks is None or res.pose_landmarks is None:
                    world.append(np.zeros((NUM_JOINTS, 3), np.float32))
                    kp2d.append(np.full((NUM_JOINTS, 2), np.nan, np.float32))
                    vis.append(np.zeros(NUM_JOINTS, np.float32))
                    valid.append(False)
                    continue
                wl = res.pose_world_landmarks.landmark
                il = res.pose_landmarks.landmark
                world.append(np.array([[p.x, p.y, p.z] for p in wl], np.float32))
                kp2d.append(np.array([[p.x * w, p.y * h] for p in il], np.float32))
                vis.append(np.array([p.visibility for p in il], np.float32))
                valid.append(True)
        finally:
            tracker.close()
        T = len(valid)
        world_a = np.stack(world) if T else np.zeros((0, NUM_JOINTS, 3), np.float32)
        kp_a = np.stack(kp2d) if T else np.zeros((0, NUM_JOINTS, 2), np.float32)
        vis_a = np.stack(vis) if T else np.zeros((0, NUM_JOINTS), np.float32)
        valid_a = np.asarray(valid, bool)
        packed = np.concatenate([world_a.reshape(T, -1), vis_a], axis=1)
        segments, _ = drop_short(fill_and_split(packed, valid_a, max_gap), min_frames)
        sequences = []
        for seg in segments:
            joints = seg.values[:, :NUM_JOINTS * 3].reshape(-1, NUM_JOINTS, 3)
            score = seg.values[:, NUM_JOINTS * 3:]
            sequences.append(Sequence3D(seg.start, joints, seg.detected,
                                        float(score[seg.detected].mean()) if seg.detected.any() else 0.0))
        return VideoPoses(frames=T, keypoints_2d=kp_a, scores_2d=vis_a, valid=valid_a,
                          sequences=sequences, layout=self.layout, layout_2d=self.layout_2d)
