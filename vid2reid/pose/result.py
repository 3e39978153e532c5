"""What a pose backend returns for one video (shared by the MMPose and MediaPipe backends)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sequence3D:
    """A contiguous run of frames with 3D joints (gaps already filled)."""

    start: int  # first frame index in the video
    joints: np.ndarray  # (T, J, 3) float32, the backend's metric 3D joints
    detected: np.ndarray  # (T,) bool: False where the frame was interpolated
    mean_score: float  # mean keypoint confidence over detected frames


@dataclass(frozen=True)
class VideoPoses:
    """Per-frame 2D results (for quality numbers and drawing) and the 3D sequences kept."""

    frames: int  # frames decoded
    keypoints_2d: np.ndarray  # (frames, K, 2) pixels, NaN where no person
    scores_2d: np.ndarray  # (frames, K)
    valid: np.ndarray  # (frames,) bool: a person was found in the frame
    sequences: list[Sequence3D]
    layout: str  # layout of the 3D joints
    layout_2d: str  # layout of keypoints_2d
