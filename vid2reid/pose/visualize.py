"""Draw the estimated 2D skeleton over a video's frames, so a user can see what the estimator did."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vid2reid.errors import PoseError
from vid2reid.pose.result import VideoPoses

# bones as joint-index pairs, per 2D layout
BONES = {
    "coco-17": [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13),
                (13, 15), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4)],
    "blazepose-33": [(11, 13), (13, 15), (12, 14), (14, 16), (11, 12), (23, 24), (11, 23), (12, 24),
                     (23, 25), (25, 27), (24, 26), (26, 28), (27, 29), (29, 31), (28, 30), (30, 32),
                     (27, 31), (28, 32), (0, 2), (0, 5), (2, 7), (5, 8)],
}


def draw_skeleton(frame: np.ndarray, keypoints: np.ndarray, layout: str,
                  colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """A copy of ``frame`` with the keypoints (K, 2) and bones drawn; NaN keypoints are skipped."""
    img = frame.copy()
    for a, b in BONES.get(layout, []):
        pa, pb = keypoints[a], keypoints[b]
        if np.isfinite(pa).all() and np.isfinite(pb).all():
            cv2.line(img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), colour, 2, cv2.LINE_AA)
    for p in keypoints:
        if np.isfinite(p).all():
            cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 0, 255), -1, cv2.LINE_AA)
    return img


def draw_video(video: Path, poses: VideoPoses, out_path: Path, fps: float | None = None) -> Path:
    """Write ``out_path`` (mp4) with the skeleton of every frame where a person was found."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise PoseError(f"{video}: cannot open to draw the skeleton")
    fps = fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=".mp4")
    os.close(fd)
    writer = None
    try:
        t = 0
        while t < poses.frames:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if poses.valid[t]:
                frame = draw_skeleton(frame, poses.keypoints_2d[t], poses.layout_2d)
            else:
                cv2.putText(frame, "no person", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
            writer.write(frame)
            t += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if writer is None:
        Path(tmp).unlink(missing_ok=True)
        raise PoseError(f"{video}: no frames to draw")
    os.replace(tmp, out_path)
    return out_path
