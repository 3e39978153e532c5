"""Re-identify walks: embed them with a trained run, rank a gallery, keep a gallery index.

What ``vid2reid match`` and ``vid2reid index`` call, and the Python entry point
``vid2reid.load_run``. The features are exactly ``eval``'s:

- sequence level (default): a walk is one recording, the mean of the features of
  its non-overlapping f-frame windows; store rows cut from one video (the same
  ``subject, condition, sequence, view``) are one walk, as in ``eval``;
- window level: every window is its own item.

Gallery items are ranked by Euclidean distance to the query (smallest first),
ties by gallery order. A gallery walk whose joints are identical to the query's
(the same recording, compared by a SHA-256 hash of the joint arrays) is never
returned. Next to each ranking stands its ``margin``: how much farther the nearest
walk of ANOTHER subject (when the gallery's manifest names subjects) or else the
next walk is than the best match. It is a distance, not a probability: nothing
here is calibrated.

Identity labels from the manifests are shown next to the matches; they play no
part in the ranking.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid2reid.data import make_windows
from vid2reid.errors import ConfigError, PoseError, ProtocolError, StoreError
from vid2reid.evaluate import embed_windows, video_means
from vid2reid.store import (MANIFEST, Record, atomic_file, canonical_condition, content_hash,
                            load_joints, read_manifest)

log = logging.getLogger(__name__)

LEVELS = ("sequence", "window")
INDEX_FORMAT = "vid2reid-gallery-index"
INDEX_VERSION = 1
# the backend whose 3D joints come in a layout (a video query is extracted to match the gallery)
BACKEND_FOR_LAYOUT = {"blazepose-33": "mediapipe", "h36m-17": "mmpose"}


# ---------------------------------------------------------------------------------------------
# runs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_embedder(run: Path, unit_features: bool | None = None):
    from vid2reid.runs import load_embedder  # torch model code only when a run is loaded

    return load_embedder(run, unit_features=unit_features)


@dataclass
class LoadedRun:
    """A trained run ready to embed walks: ``embed`` maps a store or joint arrays to features."""

    path: Path
    config: dict
    embed_windows: Callable[..., np.ndarray] = field(repr=False)
    identity: str  # SHA-256 of the weights file and config.json: which model made a feature

    @property
    def f(self) -> int:
        """Frames per window, as trained."""
        return int(self.config["f"])

    @property
    def layout(self) -> str:
        return str(self.config.get("layout", ""))

    @property
    def num_joints(self) -> int:
        return int(self.config.get("num_joints", 0))

    @property
    def any_layout(self) -> bool:
        """True for methods that read several joint layouts (MS-CLR)."""
        from vid2reid.methods import get_method

        return bool(get_method(str(self.config.get("method", "simmc"))).several_layouts)

    def check_layout(self, layout: str, num_joints: int, where: str) -> None:
        """StoreError naming ``where`` when its skeletons are not in the layout the run reads."""
        if self.any_layout:
            return
        if (layout and self.layout and layout != self.layout) or num_joints != self.num_joints:
            raise StoreError(f"{where}: skeletons in layout {layout or 'unknown'} "
                             f"({num_joints} joints), but run {self.path} was trained on "
                             f"{self.layout or 'unknown'} ({self.num_joints} joints); use a run "
                             f"of that layout, or 'vid2reid convert' the store")

    def window_features(self, windows: np.ndarray, layout: str = "") -> np.ndarray:
        """Features (N, D) of normalised windows (N, f, J, 3), in batches as ``eval`` embeds."""
        return embed_windows(self.embed_windows, windows, layout)

    def walks(self, store: "Path | str", condition: str | None = None,
              split: str | None = None) -> "Walks":
        """Every (selected) walk of a store with its features, paths and manifest rows."""
        return embed_store(self, store, condition, split)

    def embed(self, data: "Path | str | np.ndarray", level: str = "sequence",
              layout: str = "") -> np.ndarray:
        """Features of a store or of joints.

        - a store folder: one row per walk (sequence level, in :func:`embed_store`'s order:
          sorted by walk key) or per window (``level="window"``);
        - an array (T, J, 3) of raw joints: one walk, (1, D) (or its windows' features);
        - an array (N, f, J, 3) of normalised windows (as ``vid2reid.data.make_windows``
          cuts them): (N, D).
        """
        if isinstance(data, (str, Path)):
            walks = embed_store(self, data)
            return walks.features if level == "sequence" else walks.window_features
        x = np.asarray(data, np.float32)
        if x.ndim == 4:
            return self.window_features(x, layout)
        if x.ndim != 3 or x.shape[2] != 3:
            raise StoreError(f"joints must be (T, J, 3) for one walk or (N, f, J, 3) windows, "
                             f"got {tuple(x.shape)}")
        self.check_layout(layout, x.shape[1], "array")
        rec = Record("", "", "", "", "array", len(x), layout or self.layout)
        walks = _embed_records(self, [rec], [x], ["array"], "array")
        if not len(walks):
            raise StoreError(f"array: {len(x)} frames, shorter than the run's window "
                             f"f={self.f}")
        return walks.features if level == "sequence" else walks.window_features


def load_run(path: Path | str, unit_features: bool | None = None) -> LoadedRun:
    """Load a run folder written by ``vid2reid train`` for embedding (see :class:`LoadedRun`)."""
    run = Path(path)
    embed, config = _load_embedder(run, unit_features)
    weights = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoint.pt"
    h = hashlib.sha256()
    h.update(_sha256_file(weights).encode())
    h.update(_sha256_file(run / "config.json").encode())
    if unit_features is not None:
        h.update(f"unit_features={unit_features}".encode())
    return LoadedRun(run, config, embed, h.hexdigest())


# ---------------------------------------------------------------------------------------------
# walks


@dataclass
class Walks:
    """Walks with their features: one entry per walk (recording), and their windows.

    ``rows[i]`` is walk i's first manifest row (a dict, as the manifest writes it) with
    ``store`` (the store folder) added; ``paths[i]`` the walk's name in outputs (the
    manifest's ``path``, or the video's path for a video query); ``subjects[i]`` its subject
    when the manifest names one ('' otherwise, e.g. a video named by file name only);
    ``hashes[i]`` the content hash of its joints.
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
    # search structures, built on first use and kept (an index answers many queries)
    _prepared: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)


def has_identity(row: dict) -> bool:
    """True when a manifest row's subject is an identity (not just a video's file name)."""
    return bool(row.get("subject")) and row.get("name_format") != "filename"


def _embed_records(run: LoadedRun, recs: list[Record], joints: list[np.ndarray],
                   keys: list[str], store: str, names: dict[str, str] | None = None) -> Walks:
    """Windows of every record, embedded together (as ``eval`` does), grouped by ``keys``."""
    f = run.f
    keep = [i for i, j in enumerate(joints) if len(j) >= f]
    short = len(recs) - len(keep)
    recs, joints, keys = [recs[i] for i in keep], [joints[i] for i in keep], [keys[i] for i in keep]
    layouts = sorted({r.layout for r in recs if r.layout})
    layout = layouts[0] if len(layouts) == 1 else ""
    if not recs:
        return Walks([], [], [], [], np.empty((0, 0), np.float32), np.empty((0, 0), np.float32),
                     np.empty(0, np.int64), np.empty(0, np.int64), layout, short)
    win = make_windows(recs, joints, f, stride=f)
    feats = run.window_features(win.x, layout)
    win_keys = np.asarray([keys[i] for i in win.seq])
    means, first, inv = video_means(feats, win_keys)
    uniq = win_keys[first]
    # within each row, windows start at 0, f, 2f, ...
    starts = (np.arange(len(win.seq)) - np.searchsorted(win.seq, win.seq)) * f
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    paths, rows, subjects, hashes = [], [], [], []
    for k, i in zip(uniq, first):
        rec = recs[int(win.seq[i])]
        members = sorted((recs[m].path, content_hash(joints[m])) for m in by_key[str(k)])
        h = members[0][1] if len(members) == 1 else hashlib.sha256(
            "".join(m[1] for m in members).encode()).hexdigest()
        row = {**rec.row(), "store": store}
        paths.append((names or {}).get(rec.path, rec.path))
        rows.append(row)
        subjects.append(rec.subject if has_identity(row) else "")
        hashes.append(h)
    return Walks(paths, rows, subjects, hashes, means, feats, inv.astype(np.int64), starts,
                 layout, short)


def select_rows(records: list[Record], condition: str | None = None,
                split: str | None = None) -> list[int]:
    """Indices of the manifest rows of ``condition`` (Normal/nm, any code) and ``split``.

    ``split`` (train/test) reads the manifest's ``split`` column, or, when the store has
    none, the subject ranges of ``eval``'s default protocol (simmc: CASIA-B subjects 063-124
    test). ProtocolError when nothing is left.
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


def embed_store(run: LoadedRun, store: Path | str, condition: str | None = None,
                split: str | None = None, side: str = "gallery") -> Walks:
    """The walks of a store's selected rows, embedded by ``run`` (layout checked first)."""
    store = Path(store)
    records = read_manifest(store)
    idx = select_rows(records, condition, split)
    if not idx:
        what = ", ".join(x for x in (f"condition {condition!r}" if condition else "",
                                     f"split {split!r}" if split else "") if x)
        raise ProtocolError(f"{store}: no {side} walks ({what} selects none of "
                            f"{len(records)} rows)")
    recs = [records[i] for i in idx]
    joints = []
    for rec in recs:
        j = load_joints(store, rec)
        if joints and j.shape[1] != joints[0].shape[1]:
            raise StoreError(f"{store / rec.path}: has {j.shape[1]} joints but "
                             f"{store / recs[0].path} has {joints[0].shape[1]}; one store must "
                             f"use one joint layout")
        joints.append(j)
    layout = next((r.layout for r in recs if r.layout), "")
    run.check_layout(layout, joints[0].shape[1], str(store))
    walks = _embed_records(run, recs, joints, ["|".join(r.video_key) for r in recs],
                           str(store.resolve()))
    if not len(walks):
        raise ProtocolError(f"{store}: no {side} walks: all {len(recs)} selected rows are "
                            f"shorter than the run's window f={run.f} frames")
    return walks


def query_backend(gallery_layout: str, backend: str = "auto") -> str:
    """The pose backend for video queries: the one that gives the gallery's layout."""
    if backend != "auto":
        return backend
    return BACKEND_FOR_LAYOUT.get(gallery_layout, "auto")


def extract_videos(inputs: list[Path], cache: Path | str, backend: str = "auto",
                   settings: dict | None = None
                   ) -> tuple[list[tuple[str, Path, list[Record]]], list[str]]:
    """Extract query videos into ``cache`` (as ``vid2reid extract`` would) and list their walks.

    Each file or folder argument gets its own store under ``cache``, named by the argument's
    resolved path (and, for a file, its size and modification time) and the backend, so a
    second call reuses it and an edited video is extracted again. Returns
    ``[(video path, store, rows of that video)]`` and one error line per video that gave no
    walk (no person found, too short, unreadable).
    """
    from vid2reid.pose.extract import ExtractSettings, marker_path, run_extract
    from vid2reid.pose.names import list_videos, parse_video_name

    out: list[tuple[str, Path, list[Record]]] = []
    errors: list[str] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            errors.append(f"{item}: no such file or folder")
            continue
        st = item.stat()
        tag = f"{item.resolve()}|{backend}|{json.dumps(settings or {}, sort_keys=True)}"
        if item.is_file():
            tag += f"|{st.st_size}|{st.st_mtime_ns}"
        key = hashlib.sha256(tag.encode()).hexdigest()[:12]
        store = Path(cache) / f"{item.stem or 'videos'}-{key}"
        try:
            summary = run_extract([item], ExtractSettings(out=store, backend=backend,
                                                          **(settings or {})))
        except PoseError as exc:
            errors.append(str(exc))
            continue
        errors.extend(summary.problems)
        failed = {o.video: o.message for o in summary.outcomes if o.status == "failed"}
        records = {r.path: r for r in read_manifest(store)} if (store / MANIFEST).is_file() else {}
        for video, root in list_videos([item])[0]:
            if str(video) in failed:
                errors.append(failed[str(video)])
                continue
            marker = marker_path(store, parse_video_name(video, root))
            try:
                info = json.loads(marker.read_text())
            except (OSError, ValueError):
                errors.append(f"{video}: extraction left no record in {store}")
                continue
            status = info.get("status")
            if status == "no-person":
                errors.append(f"{video}: no person found in any of {info.get('frames')} frames")
            elif status != "done" or not info.get("sequences"):
                errors.append(f"{video}: no walk long enough to match (person found in "
                              f"{info.get('detected_fraction', 0):.0%} of {info.get('frames')} "
                              f"frames; extract's --min-frames)")
            else:
                out.append((str(video), store, [records[p] for p in info["sequences"]
                                                if p in records]))
    return out, errors


def embed_videos(run: LoadedRun, found: list[tuple[str, Path, list[Record]]]
                 ) -> tuple[list[Walks], list[str]]:
    """One Walks (of one walk) per extracted video; error lines for videos too short or in
    another layout than the run's."""
    walks, errors = [], []
    for video, store, recs in found:
        joints = [load_joints(store, r) for r in recs]
        layout = next((r.layout for r in recs if r.layout), "")
        try:
            run.check_layout(layout, joints[0].shape[1], video)
        except StoreError as exc:
            errors.append(str(exc))
            continue
        w = _embed_records(run, recs, joints, [video] * len(recs), str(store.resolve()),
                           names={r.path: video for r in recs})
        if not len(w):
            errors.append(f"{video}: its longest walk has {max(len(j) for j in joints)} "
                          f"frames, shorter than the run's window f={run.f}")
            continue
        w.rows[0]["video"] = video
        walks.append(w)
    return walks, errors


def concat_walks(parts: list[Walks]) -> Walks:
    """Several Walks as one (windows renumbered)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ProtocolError("no query walks")
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
    return Walks([x for p in parts for x in p.paths], [x for p in parts for x in p.rows],
                 [x for p in parts for x in p.subjects], [x for p in parts for x in p.hashes],
                 np.concatenate([p.features for p in parts]),
                 np.concatenate([p.window_features for p in parts]),
                 np.concatenate([p.window_walk + o for p, o in zip(parts, offsets)]),
                 np.concatenate([p.window_start for p in parts]), parts[0].layout,
                 sum(p.skipped_short for p in parts))


# ---------------------------------------------------------------------------------------------
# gallery index


@dataclass
class GalleryIndex:
    """A gallery's walks and features, with the run that embedded them."""

    walks: Walks
    run_identity: str
    run_path: str
    store: str
    f: int

    def save(self, path: Path | str) -> Path:
        """Write the index atomically (an uncompressed ``.npz`` archive, any file name)."""
        path = Path(path)
        w = self.walks
        meta = dict(format=INDEX_FORMAT, version=INDEX_VERSION, run_identity=self.run_identity,
                    run=self.run_path, store=self.store, f=self.f, layout=w.layout,
                    paths=w.paths, rows=w.rows, subjects=w.subjects, hashes=w.hashes,
                    skipped_short=w.skipped_short)
        with atomic_file(path) as fh:
            np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                     features=w.features, window_features=w.window_features,
                     window_walk=w.window_walk, window_start=w.window_start)
        return path


def build_index(run: LoadedRun, store: Path | str, condition: str | None = None,
                split: str | None = None) -> GalleryIndex:
    """Embed a gallery store's walks once, for repeated ``match --gallery INDEX``."""
    walks = embed_store(run, store, condition, split, side="gallery")
    return GalleryIndex(walks, run.identity, str(run.path.resolve()), str(Path(store).resolve()),
                        run.f)


def load_index(path: Path | str) -> GalleryIndex:
    """Read an index file; StoreError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: gallery index not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = {k: np.asarray(data[k]) for k in ("features", "window_features",
                                                       "window_walk", "window_start")}
    except Exception as exc:
        raise StoreError(f"{path}: not a gallery index written by 'vid2reid index' ({exc})") \
            from None
    if meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
        raise StoreError(f"{path}: not a version-{INDEX_VERSION} gallery index; rebuild it with "
                         f"'vid2reid index'")
    walks = Walks(meta["paths"], meta["rows"], meta["subjects"], meta["hashes"],
                  arrays["features"], arrays["window_features"], arrays["window_walk"],
                  arrays["window_start"], meta.get("layout", ""), meta.get("skipped_short", 0))
    if not len(walks):
        raise ProtocolError(f"{path}: the gallery index holds no walks")
    return GalleryIndex(walks, meta["run_identity"], meta["run"], meta["store"], int(meta["f"]))


def check_index_run(index: GalleryIndex, run: LoadedRun, where: str) -> None:
    """ConfigError unless ``index`` was built by this very run (same weights and config)."""
    if index.run_identity != run.identity:
        raise ConfigError(f"{where}: built by run {index.run_path} (model {index.run_identity[:12]}), "
                          f"not by {run.path} (model {run.identity[:12]}); its features cannot "
                          f"be compared; rebuild it with 'vid2reid index --run {run.path}'")


# ---------------------------------------------------------------------------------------------
# search


class Searcher:
    """Exact Euclidean ranking over gallery features (optionally through a flat FAISS index).

    A float32 pass finds candidates, which are then ranked by float64 distances; when the
    float32 error could have left out a closer item, every distance is recomputed in float64,
    so the ranking is exact either way.
    """

    def __init__(self, features: np.ndarray, use_faiss: bool = False):
        self.g = np.ascontiguousarray(features, dtype=np.float32)
        self.sq = np.einsum("ij,ij->i", self.g, self.g)
        self.faiss = None
        if use_faiss:
            from vid2reid.faiss_index import build_index as faiss_build

            self.faiss = faiss_build(self.g, "Flat")

    def _keys(self, q: np.ndarray) -> np.ndarray:
        """Squared distances minus the constant ||q||^2 (float32; same order)."""
        return self.sq - 2.0 * (self.g @ q)

    def rank(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and Euclidean distances of the k nearest items, nearest first (ties: lower
        index first), ``exclude`` (indices) left out."""
        n = len(self.g)
        q = np.asarray(q, np.float32)
        q64 = q.astype(np.float64)
        n_ex = 0 if exclude is None else len(exclude)
        k = min(k, n - n_ex)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0)
        m = min(n, 4 * k + 32 + n_ex)
        if self.faiss is not None:
            _, cand = self.faiss.search(q[None, :], m)
            cand = cand[0][cand[0] >= 0]
            rest_min = None  # a flat FAISS index returns the m nearest (float32 distances)
        else:
            keys = self._keys(q)
            if m < n:
                part = np.argpartition(keys, m)
                cand, rest_min = part[:m], keys[part[m]]
            else:
                cand, rest_min = np.arange(n), None
        if exclude is not None and n_ex:
            cand = cand[~np.isin(cand, exclude)]
        d2 = ((self.g[cand].astype(np.float64) - q64) ** 2).sum(1)
        order = np.lexsort((cand, d2))[:k]
        idx, d2k = cand[order], d2[order]
        if rest_min is not None and len(idx):
            # Could an item outside the candidates be closer than the k-th? Bound the float32
            # error of its key by a generous multiple of eps times the magnitudes involved.
            qsq = float(q64 @ q64)
            tol = 1e-4 * (qsq + float(self.sq.max()) + 1.0)
            if rest_min + qsq - tol <= d2k[-1]:
                allow = np.ones(n, bool)
                if exclude is not None:
                    allow[exclude] = False
                cand = np.flatnonzero(allow)
                d2 = ((self.g[cand].astype(np.float64) - q64) ** 2).sum(1)
                order = np.lexsort((cand, d2))[:k]
                idx, d2k = cand[order], d2[order]
        return idx.astype(np.int64), np.sqrt(np.maximum(d2k, 0.0))

    def nearest_where(self, q: np.ndarray, allow: np.ndarray) -> tuple[int, float] | None:
        """The nearest item among ``allow`` (bool mask) and its distance; None when none."""
        cand = np.flatnonzero(allow)
        if not len(cand):
            return None
        q64 = np.asarray(q, np.float64)
        keys = self._keys(np.asarray(q, np.float32))[cand]
        top = cand[np.argsort(keys, kind="stable")[:32]]
        d2 = ((self.g[top].astype(np.float64) - q64) ** 2).sum(1)
        i = int(np.lexsort((top, d2))[0])
        return int(top[i]), float(np.sqrt(max(d2[i], 0.0)))


@dataclass
class Match:
    """One gallery item in a query's ranking."""

    rank: int
    index: int  # walk index in the gallery
    distance: float
    path: str
    subject: str
    row: dict
    window_start: int | None = None  # window level: first frame within the walk


@dataclass
class QueryResult:
    """A query item and its top-k gallery items, best first."""

    path: str
    row: dict
    subject: str
    matches: list[Match]
    margin: float | None  # distance to the nearest item of another group minus the best's
    margin_to: str  # "other subject" or "next walk"
    excluded: int  # gallery walks identical to the query, left out
    window_start: int | None = None


def _prepare(gallery: Walks, level: str, use_faiss: bool) -> dict:
    """The gallery's search structures for one level, built once per Walks object.

    ``groups``: per item, the group its margin is taken against (a code of its subject when
    every walk names one, else of its walk); ``by_hash``: walk indices per content hash.
    """
    key = (level, use_faiss)
    if key not in gallery._prepared:
        if level == "sequence":
            feats, walk = gallery.features, np.arange(len(gallery))
        else:
            feats, walk = gallery.window_features, gallery.window_walk
        if all(gallery.subjects):
            _, codes = np.unique(np.asarray(gallery.subjects), return_inverse=True)
            groups = codes.ravel()[walk]
        else:
            groups = walk
        by_hash: dict[str, list[int]] = {}
        for i, h in enumerate(gallery.hashes):
            by_hash.setdefault(h, []).append(i)
        gallery._prepared[key] = dict(searcher=Searcher(feats, use_faiss=use_faiss), walk=walk,
                                      groups=groups, by_hash=by_hash,
                                      margin_to="other subject" if all(gallery.subjects)
                                      else "next walk")
    return gallery._prepared[key]


def rank_gallery(queries: Walks, gallery: Walks, top: int = 10, level: str = "sequence",
                 use_faiss: bool = False) -> list[QueryResult]:
    """Rank the gallery for every query walk (or window, ``level="window"``)."""
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if not len(gallery):
        raise ProtocolError("the gallery is empty")
    if queries.features.shape[1] != gallery.features.shape[1]:
        raise ConfigError(f"query features have {queries.features.shape[1]} dimensions, the "
                          f"gallery's {gallery.features.shape[1]}: not made by the same run")
    prep = _prepare(gallery, level, use_faiss)
    searcher, g_walk, groups = prep["searcher"], prep["walk"], prep["groups"]
    if level == "sequence":
        q_feats, q_walk = queries.features, np.arange(len(queries))
        q_start: list[int | None] = [None] * len(queries)
    else:
        q_feats, q_walk = queries.window_features, queries.window_walk
        q_start = [int(s) for s in queries.window_start]
    margin_to = prep["margin_to"]
    results = []
    for qi, (qf, qw) in enumerate(zip(q_feats, q_walk)):
        same = prep["by_hash"].get(queries.hashes[qw], [])
        exclude = None
        if same:
            exclude = (np.asarray(same) if level == "sequence"
                       else np.flatnonzero(np.isin(g_walk, same)))
        idx, dist = searcher.rank(qf, top, exclude)
        matches = [Match(r + 1, int(g_walk[i]), float(d), gallery.paths[g_walk[i]],
                         gallery.subjects[g_walk[i]], gallery.rows[g_walk[i]],
                         None if level == "sequence" else int(gallery.window_start[i]))
                   for r, (i, d) in enumerate(zip(idx, dist))]
        margin = None
        if len(idx):
            best = groups[idx[0]]
            other = next((d for i, d in zip(idx[1:], dist[1:]) if groups[i] != best), None)
            if other is None:
                allow = groups != best
                if exclude is not None:
                    allow[exclude] = False
                found = searcher.nearest_where(qf, allow)
                other = None if found is None else found[1]
            margin = None if other is None else float(other - dist[0])
        results.append(QueryResult(queries.paths[qw], queries.rows[qw], queries.subjects[qw],
                                   matches, margin, margin_to, len(same), q_start[qi]))
    return results


# ---------------------------------------------------------------------------------------------
# the whole match


@dataclass
class MatchOutcome:
    """What ``match`` found: results, per-query errors, and notes for the user."""

    results: list[QueryResult]
    errors: list[str]
    notes: list[str]
    gallery: Walks
    queries: Walks | None
    f: int  # the run's frames per window


def load_queries(run: LoadedRun, queries: list[Path | str], gallery_layout: str,
                 cache: Path | str, condition: str | None = None, split: str | None = None,
                 backend: str = "auto") -> tuple[Walks | None, list[str]]:
    """Query walks from stores, videos and folders of videos; error lines for the bad ones."""
    parts, errors, videos = [], [], []
    for q in queries:
        q = Path(q)
        if q.is_dir() and (q / MANIFEST).is_file():
            try:
                parts.append(embed_store(run, q, condition, split, side="query"))
            except (StoreError, ProtocolError, ConfigError) as exc:
                errors.append(str(exc))
        else:
            videos.append(q)
    if videos:
        found, errs = extract_videos(videos, cache, query_backend(gallery_layout, backend))
        errors += errs
        vw, errs = embed_videos(run, found)
        errors += errs
        parts += vw
    parts = [p for p in parts if len(p)]
    return (concat_walks(parts) if parts else None), errors


def match(queries: list[Path | str], gallery: Path | str, run_dir: Path | str | None = None,
          top: int = 10, level: str = "sequence", query_condition: str | None = None,
          query_split: str | None = None, gallery_condition: str | None = None,
          gallery_split: str | None = None, cache: Path | str = "match-cache",
          backend: str = "auto", use_faiss: bool = False,
          runs_dir: Path | str = "runs") -> MatchOutcome:
    """Rank a gallery (store or index file) for every query walk (see the module docstring).

    ``run_dir`` defaults to the index's run for an index gallery, else the latest run in
    ``runs_dir``. Errors with the whole call (a missing run, an empty gallery, a run of
    another layout than the gallery) are raised; a bad query is reported in ``errors`` and
    the others go on.
    """
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    notes: list[str] = []
    gallery = Path(gallery)
    index = load_index(gallery) if gallery.is_file() else None  # else a store folder
    if run_dir is None:
        if index is not None:
            run_dir = index.run_path
        else:
            from vid2reid.runs import latest_run

            run_dir = latest_run(runs_dir)
    run = load_run(run_dir)
    if index is not None:
        check_index_run(index, run, str(gallery))
        if gallery_condition or gallery_split:
            raise ConfigError(f"{gallery}: --gallery-condition/--gallery-split choose rows of a "
                              f"store; an index holds what 'vid2reid index' selected")
        g = index.walks
        notes.append(f"gallery: index {gallery} of {index.store} ({len(g)} walks)")
    else:
        g = embed_store(run, gallery, gallery_condition, gallery_split, side="gallery")
        notes.append(f"gallery: {gallery} ({len(g)} walks)")
    if g.skipped_short:
        notes.append(f"{g.skipped_short} gallery row(s) shorter than f={run.f} frames left out")
    q, errors = load_queries(run, list(queries), g.layout, cache, query_condition, query_split,
                             backend)
    results = [] if q is None else rank_gallery(q, g, top, level, use_faiss)
    return MatchOutcome(results, errors, notes, g, q, run.f)
