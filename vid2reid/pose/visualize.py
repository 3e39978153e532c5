"""Draw the estimated 2D skeleton over a video's frames, so a user can see what the estimator did."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vid2reid.errors import PoseError
from vid2reid.layouts import layout_bones
from vid2reid.pose.result import VideoPoses

def draw_skeleton(frame: np.ndarray, keypoints: np.ndarray, layout: str,
                  colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """A copy of ``frame`` with the keypoints (K, 2) and bones drawn; NaN keypoints are skipped."""
    img = frame.copy()
    for a, b in layout_bones(layout):
        pa, pb = keypoints[a], keypoints[b]
        if np.isfinite(pa).all() and np.isfinite(pb).all():
            cv2.line(img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), colour, 2, cv2.LINE_AA)
    for p in keypoints:
        if np.isfinite(p).all():
            cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 0, 255), -1, cv2.LINE_AA)
    return img


def _bones_3d(layout: str, num_joints: int) -> list[tuple[int, int]]:
    return [(a, b) for a, b in layout_bones(layout) if a < num_joints and b < num_joints]


def draw_3d_panel(joints: np.ndarray | None, layout: str, size: int, extent: float,
                  yaw_deg: float = 35.0, pitch_deg: float = 12.0) -> np.ndarray:
    """A ``size`` x ``size`` picture of one frame's 3D joints (J, 3), root-centred, seen from a
    fixed angle (turned by ``yaw_deg`` about the vertical, ``pitch_deg`` from above).

    Axes as both backends store them: x right, y down, z away from the camera; ``extent``
    (metres from the root) sets the scale, the same for every frame of a video.
    """
    img = np.full((size, size, 3), 32, np.uint8)
    cv2.putText(img, f"3D, turned {yaw_deg:.0f} deg", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (200, 200, 200), 1, cv2.LINE_AA)
    if joints is None or not np.isfinite(joints).all():
        cv2.putText(img, "no 3D skeleton", (6, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 255), 1, cv2.LINE_AA)
        return img
    from vid2reid.layouts import root_joint

    try:
        root = root_joint(layout)
    except Exception:  # an unknown layout: joint 0, as training does
        root = 0
    j = joints.astype(np.float64) - joints[root]
    ya, pa = np.radians(yaw_deg), np.radians(pitch_deg)
    x = j[:, 0] * np.cos(ya) + j[:, 2] * np.sin(ya)
    z = -j[:, 0] * np.sin(ya) + j[:, 2] * np.cos(ya)
    y = j[:, 1] * np.cos(pa) - z * np.sin(pa)
    scale = 0.42 * size / max(extent, 1e-6)
    uv = np.stack([size / 2 + scale * x, size / 2 + scale * y], axis=1)
    colours = {"l": (255, 160, 60), "r": (60, 160, 255)}
    for a, b in _bones_3d(layout, len(j)):
        side = "l" if (a % 2 == 1 and layout == "blazepose-33") else "r"
        cv2.line(img, tuple(int(v) for v in uv[a]), tuple(int(v) for v in uv[b]),
                 colours[side] if layout == "blazepose-33" else (80, 220, 80), 2, cv2.LINE_AA)
    for p in uv:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 0, 255), -1, cv2.LINE_AA)
    return img


class _Writer:
    """H.264 in MP4 through PyAV where it is installed (small files any browser plays), else
    OpenCV's MPEG-4 Part 2 (mp4v). ``codec`` says which."""

    def __init__(self, path: str, fps: float, width: int, height: int):
        try:
            import av
        except ImportError:
            av = None
        self._av = av
        if av is not None:
            self._container = av.open(path, "w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=max(1, int(round(fps))))
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
            self._stream.options = {"crf": "23", "preset": "veryfast"}
            self.codec = "h264"
        else:
            self._cv = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            self.codec = "mp4v"

    def write(self, frame: np.ndarray) -> None:
        if self._av is not None:
            vf = self._av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        else:
            self._cv.write(frame)

    def close(self) -> None:
        if self._av is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        else:
            self._cv.release()


def _joints_per_frame(poses: VideoPoses) -> tuple[np.ndarray | None, float]:
    """(frames, J, 3) 3D joints with NaN where no sequence covers a frame, and their extent."""
    if not poses.sequences:
        return None, 1.0
    num_joints = poses.sequences[0].joints.shape[1]
    out = np.full((poses.frames, num_joints, 3), np.nan, np.float32)
    for seq in poses.sequences:
        out[seq.start:seq.start + len(seq.joints)] = seq.joints[: max(0, poses.frames - seq.start)]
    from vid2reid.layouts import root_joint

    try:
        root = root_joint(poses.layout)
    except Exception:
        root = 0
    rel = out - out[:, root:root + 1]
    extent = float(np.nanmax(np.abs(rel))) if np.isfinite(rel).any() else 1.0
    return out, extent


def draw_video(video: Path, poses: VideoPoses, out_path: Path, fps: float | None = None) -> Path:
    """Write ``out_path`` (mp4): each frame with the 2D skeleton drawn on it, and beside it the
    frame's 3D skeleton seen from a fixed angle. H.264 where PyAV is installed, else mp4v."""
    from vid2reid.store import umask_file_mode

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise PoseError(f"{video}: cannot open to draw the skeleton")
    fps = fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=".mp4")
    os.close(fd)
    joints3d, extent = _joints_per_frame(poses)
    writer = None
    try:
        t = 0
        while t < poses.frames:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            if writer is None:
                writer = _Writer(tmp, fps, (w + h + 1) // 2 * 2, (h + 1) // 2 * 2)
            if poses.valid[t]:
                frame = draw_skeleton(frame, poses.keypoints_2d[t], poses.layout_2d)
            else:
                cv2.putText(frame, "no person", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
            panel = draw_3d_panel(None if joints3d is None else joints3d[t], poses.layout, h, extent)
            both = np.zeros(((h + 1) // 2 * 2, (w + h + 1) // 2 * 2, 3), np.uint8)
            both[:h, :w], both[:h, w:w + h] = frame, panel
            writer.write(both)
            t += 1
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        cap.release()
    if writer is None:
        Path(tmp).unlink(missing_ok=True)
        raise PoseError(f"{video}: no frames to draw")
    writer.close()
    os.chmod(tmp, umask_file_mode())
    os.replace(tmp, out_path)
    return out_path
