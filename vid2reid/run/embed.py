"""Walks -> features: the one embedder eval, match, index, group and the report share.

The stride rule: a walk's windows are its non-overlapping f-frame windows, cut from frame 0
of every manifest row of the walk (frames past the last whole window are not used); rows
shorter than f give none. Windows are root-relative (vid2reid.data.normalise) and embedded in
fixed batches of ``batch`` windows, in store order, so the same walks always give the same
features whichever command asks. A walk (one recording: the rows cut from one video, the same
``subject, condition, sequence, view``) is described by the mean of its windows' features;
walks are listed sorted by that key.

The raw-coordinate baseline is an embedder too (``Embedder.raw``), scored through exactly the
same windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid2reid.data import cut_windows, normalise
from vid2reid.errors import ConfigError, ProtocolError, RunError, StoreError
from vid2reid.store import (Record, canonical_condition, content_hash, load_joints,
                            read_manifest, record_hash)

BATCH = 4096  # windows per forward pass; fixed, so that features do not depend on the caller


def raw_features(x: np.ndarray) -> np.ndarray:
    """Raw baseline: mean over frames of root-relative joints, flattened. (N, f, J, 3) -> (N, 3J)."""
    return x.mean(axis=1).reshape(len(x), -1)


def has_identity(row: dict) -> bool:
    """True when a manifest row's subject is an identity (not just a video's file name)."""
    return bool(row.get("subject")) and row.get("name_format") != "filename"


def one_layout(records: Sequence[Record]) -> str:
    """The one layout of some records ('' when unnamed or mixed)."""
    names = sorted({r.layout for r in records if r.layout})
    return names[0] if len(names) == 1 else ""


@dataclass
class Walks:
    """Walks with their features: one entry per walk (recording), and their windows.

    ``rows[i]`` is walk i's first manifest row (a dict, as the manifest writes it) with
    ``store`` (the store folder) added; ``paths[i]`` the walk's name in outputs (the
    manifest's ``path``, or the video's path for a video query); ``subjects[i]`` its subject
    when the manifest names one ('' otherwise, e.g. a video named by file name only);
    ``keys[i]`` the recording's key (subject|condition|sequence|view, or ``video:<path>``);
    ``hashes[i]`` the content hash of its joints (of its rows together when it has several);
    ``row_hashes[i]`` each row's content hash. Window arrays are empty when the embedder was
    asked for walk means only.
    """

    paths: list[str]
    rows: list[dict]
    subjects: list[str]
    hashes: list[str]
    features: np.ndarray  # (W, D) float32, sequence level
    window_features: np.ndarray  # (N, D) float32
    window_walk: np.ndarray  # (N,) walk index of each window
    window_start: np.ndarray  # (N,) first frame of the window within its walk's row
    layout: str = ""
    skipped_short: int = 0
    keys: list[str] = field(default_factory=list)
    row_hashes: list[tuple[str, ...]] = field(default_factory=list)
    # search structures, built on first use and kept (an index answers many queries)
    _prepared: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = [str(p) for p in self.paths]
        if not self.row_hashes:
            self.row_hashes = [(h,) for h in self.hashes]

    def __len__(self) -> int:
        return len(self.paths)

    def with_window_features(self, window_features: np.ndarray) -> Walks:
        """These walks with other window features (e.g. an ensemble of stores) and their walk
        means, summed in window order as the embedder sums them."""
        sums = np.zeros((len(self), window_features.shape[1]), np.float64)
        np.add.at(sums, self.window_walk, window_features)
        counts = np.bincount(self.window_walk, minlength=len(self))[:, None]
        return dataclasses.replace(self, features=(sums / counts).astype(np.float32),
                                   window_features=window_features, _prepared={})

    @staticmethod
    def empty(layout: str = "", skipped_short: int = 0) -> Walks:
        z = np.empty((0, 0), np.float32)
        return Walks([], [], [], [], z, z, np.empty(0, np.int64), np.empty(0, np.int64), layout,
                     skipped_short)


def concat_walks(parts: list[Walks]) -> Walks:
    """Several Walks as one (windows renumbered)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ProtocolError("no walks")
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])

    def cat(name: str) -> list:
        return [x for p in parts for x in getattr(p, name)]

    return Walks(cat("paths"), cat("rows"), cat("subjects"), cat("hashes"),
                 np.concatenate([p.features for p in parts]),
                 np.concatenate([p.window_features for p in parts]),
                 np.concatenate([p.window_walk + o for p, o in zip(parts, offsets)]),
                 np.concatenate([p.window_start for p in parts]), parts[0].layout,
                 sum(p.skipped_short for p in parts), cat("keys"), cat("row_hashes"))


def select_rows(records: list[Record], condition: str | None = None,
                split: str | None = None) -> list[int]:
    """Indices of the manifest rows of ``condition`` (Normal/nm, any code) and ``split``.

    ``split`` (train/test) reads the manifest's ``split`` column, or, when the store has
    none, the subject ranges of ``eval``'s default protocol (simmc: CASIA-B subjects 063-124
    test).
    """
    idx = np.arange(len(records))
    if split:
        from vid2reid.protocols import train_test_records

        s = split.strip().lower()
        if s not in ("train", "test"):
            raise ConfigError(f"split must be train or test, got {split!r}")
        train, test = train_test_records(records, "simmc")
        idx = np.sort(train if s == "train" else test)
    if condition:
        c = canonical_condition(condition)
        idx = np.array([i for i in idx if canonical_condition(records[i].condition) == c],
                       np.int64)
    return [int(i) for i in idx]


def store_loader(store: Path | str, records: Sequence[Record]) -> Callable[[int], np.ndarray]:
    """Row i's joints, read when asked; StoreError when a row's joint count differs from the
    first row read (one store uses one joint layout)."""
    store = Path(store)
    first: list[tuple[str, int]] = []

    def load(i: int) -> np.ndarray:
        j = load_joints(store, records[i])
        if first and j.shape[1] != first[0][1]:
            raise StoreError(f"{store / records[i].path}: has {j.shape[1]} joints but "
                             f"{store / first[0][0]} has {first[0][1]}; one store must use one "
                             f"joint layout")
        first[:1] = first[:1] or [(records[i].path, j.shape[1])]
        return j

    return load


@dataclass
class Embedder:
    """Windows (N, f, J, 3) -> features (N, D) for one representation, and walks -> Walks.

    ``fn(windows, layout)`` embeds one batch; ``layout`` names the windows' joint layout
    when known ('' otherwise). ``check_layout(layout, joints, where)`` refuses skeletons the
    representation cannot read (a run's, vid2reid.run.load.Run.check_layout), before any work.
    """

    f: int
    fn: Callable[[np.ndarray, str], np.ndarray] = field(repr=False)
    description: str
    check_layout: Callable[[str, int, str], None] | None = field(default=None, repr=False)
    batch: int = BATCH

    @staticmethod
    def raw(f: int) -> Embedder:
        """The raw-coordinate baseline (mean root-relative joints) through the same windows."""
        if f < 1:
            raise ConfigError(f"f must be a positive number of frames, got {f}")
        return Embedder(int(f), lambda x, layout: raw_features(x),
                        "baseline raw (mean root-relative joints)")

    def windows(self, x: np.ndarray, layout: str = "") -> np.ndarray:
        """Features (N, D) float32 of normalised windows, in fixed batches."""
        if len(x) == 0:
            return np.empty((0, 0), np.float32)
        return np.concatenate([self._batch(x[i:i + self.batch], layout)
                               for i in range(0, len(x), self.batch)])

    def _batch(self, x: np.ndarray, layout: str) -> np.ndarray:
        """One forward pass; RunError for NaN or infinite features (they would rank like any
        others, never silently)."""
        z = np.asarray(self.fn(x, layout), np.float32)
        if not np.isfinite(z).all():
            raise RunError(f"{self.description}: {int((~np.isfinite(z).all(1)).sum())} of "
                           f"{len(z)} windows have NaN or infinite features; this run cannot "
                           f"be used (train again, with a lower --lr)")
        return z

    def walks(self, records: Sequence[Record], joints: Callable[[int], np.ndarray]
              | Sequence[np.ndarray], keys: Sequence[str] | None = None, store: str = "",
              names: dict[str, str] | None = None, keep_windows: bool = True,
              progress: bool = False, skipped: list[str] | None = None) -> Walks:
        """Every walk of ``records`` embedded (see the module docstring for the windows).

        ``joints`` gives row i's joints (a list, or a function so that one row at a time is in
        memory); ``keys`` the recording each row belongs to (default: its video key);
        ``keep_windows=False`` keeps only the walk means (memory for very large stores).
        With a ``skipped`` list, a row that cannot be read is noted there and left out;
        without it, its StoreError is raised.
        """
        f = self.f
        load = joints if callable(joints) else (lambda i: joints[i])  # type: ignore[index]
        keys = list(keys) if keys is not None else ["|".join(r.video_key) for r in records]
        layout = one_layout(records)
        walk_of: dict[str, int] = {}  # key -> walk number in order of first window
        first_rec: list[int] = []
        members: list[list[tuple[str, str]]] = []
        counts: list[int] = []
        sums = np.zeros((0, 0), np.float64)  # (walks, D), grown as walks appear
        win_feats: list[np.ndarray] = []
        win_walk: list[np.ndarray] = []
        win_start: list[np.ndarray] = []
        buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # windows, walk, starts
        short, n_buf = 0, 0

        def flush(final: bool) -> None:
            nonlocal buf, n_buf, sums
            cut = n_buf if final else (n_buf // self.batch) * self.batch
            if cut == 0:
                return
            x, walk, start = (np.concatenate([b[k] for b in buf]) for k in range(3))
            for s in range(0, cut, self.batch):
                z = self._batch(x[s:s + self.batch], layout)
                w = walk[s:s + self.batch]
                if sums.shape != (len(first_rec), z.shape[1]):  # new walks since the last batch
                    grown = np.zeros((len(first_rec), z.shape[1]), np.float64)
                    grown[:sums.shape[0], :sums.shape[1]] = sums
                    sums = grown
                np.add.at(sums, w, z)  # window order, as eval always summed
                if keep_windows:
                    win_feats.append(z)
                    win_walk.append(w)
                    win_start.append(start[s:s + self.batch])
            buf = [(x[cut:], walk[cut:], start[cut:])] if cut < n_buf else []
            n_buf -= cut

        rows = range(len(records))
        if progress:
            from tqdm import tqdm

            rows = tqdm(rows, desc="walks", unit="walk", dynamic_ncols=True)
        for i in rows:
            rec = records[i]
            try:
                j = load(i)
            except StoreError as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
                continue
            if len(j) < f:
                short += 1
                if skipped is not None:
                    skipped.append(f"{Path(store) / rec.path}: {len(j)} frames, shorter than "
                                   f"the run's windows (f={f})")
                continue
            w = cut_windows(normalise(j, rec.layout), f, f).astype(np.float32, copy=False)
            k = keys[i]
            if k not in walk_of:
                walk_of[k] = len(first_rec)
                first_rec.append(i)
                members.append([])
                counts.append(0)
            wi = walk_of[k]
            members[wi].append((rec.path, record_hash(rec) or content_hash(j)))
            counts[wi] += len(w)
            buf.append((w, np.full(len(w), wi, np.int64), np.arange(len(w), dtype=np.int64) * f))
            n_buf += len(w)
            flush(final=False)
        flush(final=True)
        if not first_rec:
            return Walks.empty(layout, short)
        means = (sums / np.asarray(counts, np.float64)[:, None]).astype(np.float32)
        order = sorted(range(len(first_rec)), key=lambda w: keys[first_rec[w]])
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        paths, out_rows, subjects, hashes, out_keys, row_hashes = [], [], [], [], [], []
        for w in order:
            rec = records[first_rec[w]]
            row = {**rec.row(), "store": store}
            paths.append((names or {}).get(rec.path, rec.path))
            out_rows.append(row)
            subjects.append(rec.subject if has_identity(row) else "")
            m = sorted(members[w])
            hashes.append(m[0][1] if len(m) == 1 else hashlib.sha256(
                "".join(h for _, h in m).encode()).hexdigest())
            out_keys.append(keys[first_rec[w]])
            row_hashes.append(tuple(h for _, h in m))
        if keep_windows:
            wf = np.concatenate(win_feats)
            ww = rank[np.concatenate(win_walk)]
            ws = np.concatenate(win_start)
        else:
            wf, ww, ws = (np.empty((0, means.shape[1]), np.float32), np.empty(0, np.int64),
                          np.empty(0, np.int64))
        return Walks(paths, out_rows, subjects, hashes, means[order], wf, ww, ws, layout, short,
                     out_keys, row_hashes)

    def store(self, store: Path | str, condition: str | None = None, split: str | None = None,
              side: str = "gallery", keep_windows: bool = True, progress: bool = False,
              skipped: list[str] | None = None) -> Walks:
        """The walks of a store's selected rows (layout checked against the run first)."""
        store = Path(store)
        records = read_manifest(store)
        idx = select_rows(records, condition, split)
        if not idx:
            what = ", ".join(x for x in (f"condition {condition!r}" if condition else "",
                                         f"split {split!r}" if split else "") if x)
            raise ProtocolError(f"{store}: no {side} walks "
                                f"({what or 'the manifest'} selects none of {len(records)} rows)")
        recs = [records[i] for i in idx]
        if self.check_layout is not None:
            first = load_joints(store, recs[0])
            self.check_layout(one_layout(recs) or recs[0].layout, first.shape[1],
                                  str(store))
        walks = self.walks(recs, store_loader(store, recs), store=str(store.resolve()),
                           keep_windows=keep_windows,
                           progress=progress, skipped=skipped)
        if not len(walks):
            raise ProtocolError(f"{store}: no {side} walks: all {len(recs)} selected rows are "
                                f"shorter than the run's window f={self.f} frames")
        return walks
