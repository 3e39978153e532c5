"""Turn per-frame detections (with missing frames) into clean, contiguous sequences.

Short gaps (at most ``max_gap`` missing frames) are filled by linear
interpolation; longer gaps split the video into separate sequences; frames
before the first and after the last detection are dropped; sequences shorter
than ``min_frames`` are dropped. Root-relative normalisation is not done here:
the store keeps the estimator's metric joints and ``vid2reid.data.normalise``
centres them at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A run of frames ``[start, stop)`` of the video with every frame filled."""

    start: int
    stop: int
    values: np.ndarray  # (stop - start, ...) float32, no NaN
    detected: np.ndarray  # (stop - start,) bool: False where the frame was interpolated

    @property
    def frames(self) -> int:
        return self.stop - self.start


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges where a boolean mask is True."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def fill_and_split(values: np.ndarray, valid: np.ndarray, max_gap: int = 5) -> list[Segment]:
    """Interpolate gaps of at most ``max_gap`` frames and split at longer ones.

    ``values`` is (T, ...) with anything in invalid frames; ``valid`` is (T,)
    bool. Returns the contiguous segments in frame order.
    """
    values = np.asarray(values, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if values.shape[0] != valid.shape[0]:
        raise ValueError(f"values has {values.shape[0]} frames but valid has {valid.shape[0]}")
    found = runs(valid)
    if not found:
        return []
    # merge detection runs separated by short gaps
    groups = [[found[0]]]
    for a, b in found[1:]:
        if a - groups[-1][-1][1] <= max_gap:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    segments = []
    for group in groups:
        start, stop = group[0][0], group[-1][1]
        seg = values[start:stop].copy()
        ok = valid[start:stop]
        if not ok.all():
            t = np.arange(stop - start)
            flat = seg.reshape(seg.shape[0], -1)
            for k in range(flat.shape[1]):
                flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
            seg = flat.reshape(seg.shape)
        segments.append(Segment(start, stop, seg, ok.copy()))
    return segments


def drop_short(segments: list[Segment], min_frames: int) -> tuple[list[Segment], int]:
    """Keep segments with at least ``min_frames`` frames; also return how many were dropped."""
    kept = [s for s in segments if s.frames >= min_frames]
    return kept, len(segments) - len(kept)


def mean_bone_length_cv(joints: np.ndarray, bones: list[tuple[int, int]]) -> float:
    """Mean over bones of (std / mean) of the bone's length across frames: 0 for a rigid skeleton."""
    j = np.asarray(joints, dtype=np.float64)
    cvs = []
    for a, b in bones:
        length = np.linalg.norm(j[:, a] - j[:, b], axis=-1)
        if length.mean() > 1e-9:
            cvs.append(length.std() / length.mean())
    return float(np.mean(cvs)) if cvs else float("nan")
