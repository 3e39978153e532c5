"""Video decoding in a background thread, with clear errors for files that are not usable videos.

OpenCV releases the GIL while decoding, so a reader thread keeps frames ready
while the pose model runs. Frames are BGR uint8 arrays as OpenCV returns them.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from vid2reid import interrupts
from vid2reid.errors import PoseError

log = logging.getLogger(__name__)

# FFmpeg (inside OpenCV) prints its decoder's complaints straight to stderr, e.g.
# "[h264 @ 0x...] error while decoding MB 7 11" for a truncated clip, next to
# vid2reid's own one-line warning. OpenCV reads this level once, when it opens its
# first video, so it is set here, before any capture; 8 = AV_LOG_FATAL. An
# OPENCV_FFMPEG_LOGLEVEL already set (e.g. 32 to debug a video) is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says (frame count may be wrong for damaged files)."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int


def probe_video(path: Path) -> VideoInfo:
    """Open a video and read its header; PoseError for missing, non-video or empty files."""
    path = Path(path)
    if not path.is_file():
        raise PoseError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise PoseError(f"{path}: file is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise PoseError(f"{path}: cannot open as a video (not a video file, or damaged)")
        info = VideoInfo(path, max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
                         float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise PoseError(f"{path}: video has no picture size (not a video file, or damaged)")
    return info


class FrameReader:
    """Iterate over a video's frames, decoded ahead in a thread (bounded queue).

    After iteration, ``decoded`` is the number of frames read. Iteration raises
    PoseError when not a single frame could be decoded.
    """

    _END = object()

    def __init__(self, path: Path, prefetch: int = 64, max_frames: int | None = None):
        self.info = probe_video(path)
        self.path = Path(path)
        self.decoded = 0
        self._max = max_frames
        self._queue: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode:{self.path.name}", daemon=True)

    def _run(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        try:
            n = 0
            while not self._stop.is_set() and (self._max is None or n < self._max):
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                self._put(frame)
                n += 1
        except BaseException as exc:  # pragma: no cover - decoder crash is rare
            self._error = exc
        finally:
            cap.release()
            self._put(self._END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[np.ndarray]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    break
                interrupts.check()
                self.decoded += 1
                yield item
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
        if self._error is not None:
            raise PoseError(f"{self.path}: decoding failed after {self.decoded} frames "
                            f"({self._error})")
        if self.decoded == 0:
            raise PoseError(f"{self.path}: no frames could be decoded (zero-frame, truncated "
                            f"or damaged video)")
        if self._max is None and self.truncated:
            log.warning("%s: decoded %d of the %d frames the header announces (truncated?)",
                        self.path, self.decoded, self.info.frames)

    @property
    def truncated(self) -> bool:
        """True when fewer frames decoded than the header announced (after iteration)."""
        return self._max is None and bool(self.info.frames) and self.decoded < self.info.frames - 1


def read_frames(path: Path, max_frames: int | None = None, step: int = 1) -> list[np.ndarray]:
    """Read (every ``step``-th of at most ``max_frames``) frames of a video into memory."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(frame)
            i += 1
    finally:
        cap.release()
    return frames
