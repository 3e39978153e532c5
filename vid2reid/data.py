"""From stored sequences to model inputs: normalisation, f-frame windows, the training set."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vid2reid.errors import StoreError
from vid2reid.layouts import root_joint
from vid2reid.protocols import train_records
from vid2reid.store import Record, load_store

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

log = logging.getLogger(__name__)


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


# How training windows are cut (every mode steps by f // 2 within a walk):
# "all": windows from every start offset 0..f-1, as the SimMC authors cut KS20/IAS/BIWI
#   (a window starts at every frame, most of them twice: ~2 (T - f + 1) per walk);
# "shifted": each epoch every walk starts at a fresh random offset in 0..f//2 - 1, so the
#   number of windows stays ~T / (f/2) per walk while every start frame is seen over the epochs;
# "fixed": offset 0 only, the same windows every epoch (vid2reid before 2026-11-30);
# "auto" (default): "all" while it gives at most ALL_WINDOWS_MAX windows, else "shifted".
TRAIN_WINDOWS = ("auto", "all", "shifted", "fixed")
# Clustering is quadratic in the number of windows: 60k windows take about a minute per
# clustered view on 2 CPU cores; "all" on KGBD would be 378k, on CASIA-B about half a million.
ALL_WINDOWS_MAX = 60_000


@dataclass
class SequenceBank:
    """Normalised training sequences laid end to end, for cutting windows cheaply.

    ``frames`` (sum T, J, 3) float32; sequence ``i`` occupies
    ``frames[begin[i] : begin[i] + length[i]]``.
    """

    frames: np.ndarray
    begin: np.ndarray
    length: np.ndarray

    @classmethod
    def from_sequences(cls, records: list[Record], joints: list[np.ndarray]) -> "SequenceBank":
        """Normalise each (T, J, 3) sequence (root-relative) and concatenate them."""
        length = np.array([len(j) for j in joints], dtype=np.int64)
        begin = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        frames = np.concatenate([normalise(j, r.layout) for r, j in zip(records, joints)])
        return cls(frames.astype(np.float32, copy=False), begin, length)

    def count_all(self, f: int) -> int:
        """How many windows the "all" cut gives (every start offset 0..f-1, stride f // 2)."""
        stride = max(1, f // 2)
        room = np.maximum(self.length[None, :] - f - np.arange(f)[:, None], -1)
        return int(np.where(room >= 0, room // stride + 1, 0).sum())

    def resolve_mode(self, f: int, mode: str) -> str:
        """The window mode "auto" stands for on these sequences; other modes unchanged."""
        if mode != "auto":
            return mode
        return "all" if self.count_all(f) <= ALL_WINDOWS_MAX else "shifted"

    def window_starts(self, f: int, mode: str, rng: np.random.Generator | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``(seq, start)`` of this epoch's training windows, in sequence order.

        ``mode`` is one of TRAIN_WINDOWS; only "shifted" draws from ``rng`` (one
        offset per sequence). Sequences must have at least f frames.
        """
        stride = max(1, f // 2)
        mode = self.resolve_mode(f, mode)
        if mode == "shifted":
            # a walk with fewer than stride start positions keeps at least one window
            high = np.clip(self.length - f + 1, 1, stride)
            offsets = [rng.integers(0, high)]
        elif mode == "all":
            offsets = [np.full(len(self.length), s) for s in range(f)]
        elif mode == "fixed":
            offsets = [np.zeros(len(self.length), dtype=np.int64)]
        else:
            raise ValueError(f"unknown window mode {mode!r}; choose one of {TRAIN_WINDOWS}")
        seqs, starts = [], []
        for i, t in enumerate(self.length):
            s = np.concatenate([np.arange(o[i], t - f + 1, stride) for o in offsets])
            seqs.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s)
        return np.concatenate(seqs), np.concatenate(starts).astype(np.int64)

    def windows(self, seq: np.ndarray, start: np.ndarray, f: int) -> np.ndarray:
        """(N, f, J, 3) windows starting at ``start`` in sequences ``seq``."""
        first = self.begin[seq] + start
        return self.frames[first[:, None] + np.arange(f)[None, :]]


def training_sequences(data: Path | str, cfg: TrainConfig
                       ) -> tuple[SequenceBank, list[Record], str]:
    """The TRAIN split's sequences (normalised, at least f frames), their records and layout.

    Only coordinates go on to the method; subject/condition stay behind in the records.
    """
    store = load_store(data, min_frames=1)
    idx = train_records(store.records, cfg.protocol)
    recs = [store.records[i] for i in idx]
    joints = [store.joints[i] for i in idx]
    short = sum(j.shape[0] < cfg.f for j in joints)
    if short:
        log.info("%d training sequence(s) shorter than f=%d frames skipped", short, cfg.f)
    keep = [k for k, j in enumerate(joints) if j.shape[0] >= cfg.f]
    if not keep:
        raise StoreError(f"{data}: no training sequence has at least f={cfg.f} frames; "
                         f"lower --f or add longer sequences")
    recs = [recs[k] for k in keep]
    bank = SequenceBank.from_sequences(recs, [joints[k] for k in keep])
    layouts = sorted({r.layout for r in recs})
    return bank, recs, (layouts[0] if len(layouts) == 1 else "")
