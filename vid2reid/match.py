"""``vid2reid match``: query walks (stores, walk files, videos, folders of videos) ranked against a gallery
(a store or an index file) with a trained run.

Video queries are extracted into a cache with the pose backend that gives the gallery's joint
layout, then embedded by the run's one embedder (vid2reid.run.embed); ranking is
vid2reid.search. A bad query is reported in one line and the others go on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vid2reid.errors import ConfigError, PoseError, ProtocolError, RunError, StoreError
from vid2reid.gallery_index import check_index_run, load_index
from vid2reid.openset import Threshold, decide, fixed_threshold, gallery_threshold
from vid2reid.run import Embedder, Walks, concat_walks, open_run
from vid2reid.run.embed import store_loader
from vid2reid.search import LEVELS, QueryResult, rank_gallery
from vid2reid.store import MANIFEST, Record, load_joints, read_manifest

# the backend whose 3D joints come in a layout (a video query is extracted to match the gallery)
BACKEND_FOR_LAYOUT = {"blazepose-33": "mediapipe", "h36m-17": "mmpose"}


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


def embed_videos(embedder: Embedder, found: list[tuple[str, Path, list[Record]]]
                 ) -> tuple[list[Walks], list[str]]:
    """One Walks (of one walk) per extracted video; error lines for videos too short or in
    another layout than the run's."""
    walks, errors = [], []
    for video, store, recs in found:
        joints = [load_joints(store, r) for r in recs]
        layout = next((r.layout for r in recs if r.layout), "")
        try:
            if embedder.check_layout is not None:
                embedder.check_layout(layout, joints[0].shape[1], video)
        except StoreError as exc:
            errors.append(str(exc))
            continue
        w = embedder.walks(recs, joints, keys=[f"video:{video}"] * len(recs),
                           store=str(store.resolve()), names={r.path: video for r in recs})
        if not len(w):
            errors.append(f"{video}: its longest walk has {max(len(j) for j in joints)} "
                          f"frames, shorter than the run's window f={embedder.f}")
            continue
        w.rows[0]["video"] = video
        walks.append(w)
    return walks, errors


@dataclass
class MatchOutcome:
    """What ``match`` found: results, per-query errors, and notes for the user."""

    results: list[QueryResult]
    errors: list[str]
    notes: list[str]
    gallery: Walks
    queries: Walks | None
    f: int  # the run's frames per window
    threshold: Threshold | None = None  # the open-set threshold the verdicts used


def find_stored_walks(path: Path, levels: int = 6) -> tuple[Path, list[Record]] | None:
    """The store and manifest rows of a walk file (``skeletons/001/001-nm-01-090.npz``) or of
    a folder inside a store (``skeletons/001``): the nearest folder above it whose
    manifest.csv lists it (or rows under it); None when no store does."""
    path = Path(path).absolute()
    for store in list(path.parents)[:levels]:
        if (store / MANIFEST).is_file():
            rel = path.relative_to(store).as_posix()
            rows = [r for r in read_manifest(store)
                    if r.path == rel or (path.is_dir() and r.path.startswith(rel + "/"))]
            return (store, rows) if rows else None
    return None


def embed_stored_walks(embedder: Embedder, path: Path) -> Walks:
    """A walk file of a store, or a folder inside one, as queries (StoreError naming the path
    when it is neither)."""
    found = find_stored_walks(path)
    if found is None:
        raise StoreError(f"{path}: not a walk of a skeleton store (no manifest.csv above it "
                         f"lists it); give a store folder, a walk file inside one, or a video")
    store, recs = found
    first = load_joints(store, recs[0])
    if embedder.check_layout is not None:
        embedder.check_layout(recs[0].layout, first.shape[1], str(path))
    walks = embedder.walks(recs, store_loader(store, recs), store=str(store.resolve()))
    if not len(walks):
        raise StoreError(f"{path}: every walk is shorter than the run's window f={embedder.f}")
    return walks


def load_queries(embedder: Embedder, queries: list[Path | str], gallery_layout: str,
                 cache: Path | str, condition: str | None = None, split: str | None = None,
                 backend: str = "auto") -> tuple[Walks | None, list[str]]:
    """Query walks from stores, walk files of a store (``.npz``) or folders inside one, videos
    and folders of videos; error lines for the bad ones."""
    parts, errors, videos = [], [], []
    for q in queries:
        q = Path(q)
        if q.is_dir() and (q / MANIFEST).is_file():
            try:
                parts.append(embedder.store(q, condition, split, side="query"))
            except (StoreError, ProtocolError, ConfigError, RunError) as exc:
                errors.append(str(exc))
        elif q.suffix.lower() == ".npz" or (q.is_dir() and find_stored_walks(q) is not None):
            try:
                parts.append(embed_stored_walks(embedder, q))
            except (StoreError, ProtocolError, ConfigError, RunError) as exc:
                errors.append(str(exc))
        else:
            videos.append(q)
    if videos:
        found, errs = extract_videos(videos, cache, query_backend(gallery_layout, backend))
        errors += errs
        vw, errs = embed_videos(embedder, found)
        errors += errs
        parts += vw
    parts = [p for p in parts if len(p)]
    return (concat_walks(parts) if parts else None), errors


def match(queries: list[Path | str], gallery: Path | str, run_dir: Path | str | None = None,
          top: int = 10, level: str = "sequence", query_condition: str | None = None,
          query_split: str | None = None, gallery_condition: str | None = None,
          gallery_split: str | None = None, cache: Path | str = "match-cache",
          backend: str = "auto", search: str = "auto",
          runs_dir: Path | str = "runs", device: str = "cpu",
          threshold: float | None = None) -> MatchOutcome:
    """Rank a gallery (store or index file) for every query walk (see the module docstring).

    ``run_dir`` defaults to the index's run for an index gallery, else the latest run in
    ``runs_dir``. Errors with the whole call (a missing run, an empty gallery, a run of
    another layout than the gallery) are raised; a bad query is reported in ``errors`` and
    the others go on. Every result gets an open-set verdict (vid2reid.openset): the threshold
    is set from the gallery's own walks unless ``threshold`` gives one.
    """
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    notes: list[str] = []
    gallery = Path(gallery)
    index = load_index(gallery) if gallery.is_file() else None  # else a store folder
    if run_dir is None and index is not None:
        run_dir = index.run_path
    run = open_run(run_dir, runs_dir)
    embedder = run.embedder(device)
    if index is not None:
        check_index_run(index, run, str(gallery))
        if gallery_condition or gallery_split:
            raise ConfigError(f"{gallery}: --gallery-condition/--gallery-split choose rows of a "
                              f"store; an index holds what 'vid2reid index' selected")
        g = index.walks
        notes.append(f"gallery: index {gallery} of {index.store} "
                     f"({len(g)} walk{'' if len(g) == 1 else 's'})")
    else:
        g = embedder.store(gallery, gallery_condition, gallery_split, side="gallery")
        notes.append(f"gallery: {gallery} ({len(g)} walk{'' if len(g) == 1 else 's'})")
    if g.skipped_short:
        notes.append(f"{g.skipped_short} gallery row(s) shorter than f={run.f} frames left out")
    q, errors = load_queries(embedder, list(queries), g.layout, cache, query_condition,
                             query_split, backend)
    results = [] if q is None else rank_gallery(q, g, top, level, search)
    cut = fixed_threshold(threshold) if threshold is not None else gallery_threshold(g, level)
    notes.append(cut.describe())
    return MatchOutcome(decide(results, cut), errors, notes, g, q, run.f, cut)
