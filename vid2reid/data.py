"""From stored sequences to model inputs: normalisation and f-frame windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2reid.layouts import root_joint
from vid2reid.store import Record


def normalise(joints: np.ndarray, layout: str) -> np.ndarray:
    """Root-relative coordinates per frame (the layout's root joint becomes the origin).

    As in SimMC: no scaling and no rotation, so body size and posture stay in
    the data.
    """
    root = root_joint(layout)
    return (joints - joints[:, root : root + 1, :]).astype(np.float32)


@dataclass
class WindowSet:
    """f-frame windows cut from many sequences.

    ``x``: (N, f, J, 3) float32 root-relative joints; ``seq[i]`` is the index
    into ``records`` of the sequence window ``i`` was cut from.
    """

    x: np.ndarray
    seq: np.ndarray
    records: list[Record]

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, mask: np.ndarray) -> "WindowSet":
        """Windows where ``mask`` is true; ``records`` stays shared."""
        return WindowSet(self.x[mask], self.seq[mask], self.records)


def cut_windows(joints: np.ndarray, f: int, stride: int) -> np.ndarray:
    """All f-frame windows of a (T, J, 3) sequence, starting every ``stride`` frames."""
    t = joints.shape[0]
    if t < f:
        return np.empty((0, f) + joints.shape[1:], dtype=np.float32)
    starts = np.arange(0, t - f + 1, stride)
    idx = starts[:, None] + np.arange(f)[None, :]
    return joints[idx]


def make_windows(records: list[Record], joints: list[np.ndarray], f: int,
                 stride: int | None = None) -> WindowSet:
    """Normalise each sequence and cut it into f-frame windows.

    ``stride`` defaults to f (non-overlapping, the test setting); training uses
    f // 2 as the reference does. Sequences shorter than f give no window.
    """
    stride = stride or f
    xs, seqs = [], []
    for i, (rec, j) in enumerate(zip(records, joints)):
        w = cut_windows(normalise(j, rec.layout), f, stride)
        xs.append(w)
        seqs.append(np.full(len(w), i, dtype=np.int64))
    num_joints = joints[0].shape[1] if joints else 0
    x = np.concatenate(xs) if xs else np.empty((0, f, num_joints, 3), np.float32)
    seq = np.concatenate(seqs) if seqs else np.empty(0, np.int64)
    return WindowSet(x.astype(np.float32, copy=False), seq, list(records))
