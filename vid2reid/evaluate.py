"""Score a trained run (or the raw-coordinate baseline) on a store under a protocol.

Two levels:

- window: every non-overlapping f-frame test window is its own probe/gallery
  item (the SimMC paper's setting);
- sequence: a video's item is the mean of its windows' features (a useful
  extra; store entries cut from one video count as that video).

Under ``opengait`` every metric (top-k and mAP) is computed per (probe view,
gallery view) pair with different views, averaged over gallery views, then
over probe views; ``probes`` counts the probes of views that could be scored.
Metrics conventions (own video excluded, ties, probes without a true match)
are in vid2reid/metrics.py. A probe is never scored against its own recording: a gallery
item from the same video (subject, condition, sequence, view), or one whose joints are
identical (the manifest's ``content_hash``, computed for stores without it), even when the
two are listed under other names or come from another store (``--gallery-data``); the
number of such probe/gallery pairs is reported. Zero scorable probes is an error that says
why.

``--baseline raw``: a window's raw feature is the mean over its f
frames of the root-relative joints, flattened to 3J numbers. It is the
parameter-free counterpart of the encoder's mean pooling of per-frame features
(frame order plays no role in either), scored through exactly the same
windows, protocol and metric as a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError, ProtocolError, StoreError
from vid2reid.metrics import RankMetrics, rank_metrics
from vid2reid.protocols import (eval_records, get_protocol, select_probe_gallery,
                                uses_split_column)
from vid2reid.rank import recording_groups
from vid2reid.run.embed import Embedder, Walks, one_layout, store_loader
from vid2reid.store import Record, cut_to_common, load_joints, read_manifest

log = logging.getLogger(__name__)

BASELINES = ("raw",)
DEFAULT_F = 40  # CASIA-B's window length (casia-b preset)
LEVELS = ("window", "sequence")


ENSEMBLES = ("mean", "concat")


def _combine(parts: list[np.ndarray], how: str) -> np.ndarray:
    """The ensemble of conventions: each store's features L2-normalised, then averaged or
    concatenated."""
    unit = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts]
    return np.mean(unit, axis=0) if how == "mean" else np.concatenate(unit, axis=1)


def _aligned(stores: list[Path], recs: list[Record], joints: list[np.ndarray], f: int
             ) -> tuple[list[list[tuple[Record, np.ndarray]]], int, int]:
    """The same recordings (by path) in every store, cut to the frames all stores hold
    (``store.cut_to_common``): per store the kept (record, joints), how many were cut, and how
    many were left with fewer than f frames and dropped."""
    copies = [list(zip(recs, joints))]
    for store in stores[1:]:
        by_path = {r.path: r for r in read_manifest(store)}
        missing = [rec.path for rec in recs if rec.path not in by_path]
        if missing:
            raise StoreError(f"{store / missing[0]}: not in this store's manifest; an ensemble "
                             f"needs the same recordings in every --data store")
        copies.append([(by_path[rec.path], load_joints(store, by_path[rec.path]))
                       for rec in recs])
    return cut_to_common(stores, copies, f)


def _score(items: dict, cross_view: bool) -> tuple[RankMetrics, dict[str, float]]:
    """Rank probes against gallery; OpenGait: per probe view, mean over other gallery views.

    Also returns rank-1 per probe view (OpenGait's table; empty otherwise).
    """
    p, g = items["probe"], items["gallery"]
    if not cross_view:
        return rank_metrics(p["id"], g["id"], p["x"], g["x"], probe_groups=p["group"],
                            gallery_groups=g["group"]), {}
    per_view, view_top1 = [], {}
    no_match = 0
    for pv in sorted(set(p["view"])):
        pm = p["view"] == pv
        pairs = []
        for gv in sorted(set(g["view"]) - {pv}):
            gm = g["view"] == gv
            m = rank_metrics(p["id"][pm], g["id"][gm], p["x"][pm], g["x"][gm],
                             probe_groups=p["group"][pm], gallery_groups=g["group"][gm])
            if m.probes:
                pairs.append(m)
        if pairs:
            per_view.append([np.mean([getattr(m, k) for m in pairs])
                             for k in ("top1", "top5", "top10", "mAP")])
            view_top1[str(pv)] = float(per_view[-1][0])
        else:
            no_match += int(pm.sum())
    if not per_view:
        raise ProtocolError("protocol 'opengait' scores each probe view against the other "
                            "gallery views, but no probe has a true match in another view "
                            f"(probe views: {', '.join(sorted(set(p['view'])))}; gallery views: "
                            f"{', '.join(sorted(set(g['view'])))}); use --protocol simmc")
    top1, top5, top10, mAP = (float(v) for v in np.mean(per_view, axis=0))
    n_p = len(p["id"])
    return RankMetrics(top1, top5, top10, mAP, probes=n_p - no_match, gallery=len(g["id"]),
                       no_match=no_match), view_top1


def exclude_same_recordings(items: dict[str, dict[str, dict]], walks: dict[str, Walks],
                            notes: list[str]) -> int:
    """Give every item its ``group`` (vid2reid.rank.recording_groups): a probe is never ranked
    against a gallery item of its own recording. Returns (and notes) how many probe/gallery
    pairs of sequences hold identical joints."""
    from collections import Counter

    groups = recording_groups({s: w.keys for s, w in walks.items()},
                              {s: w.row_hashes for s, w in walks.items()})
    for side, w in walks.items():
        items["sequence"][side]["group"] = groups[side]
        items["window"][side]["group"] = groups[side][w.window_walk]
    seqs = {s: {(h, k) for k, hs in zip(w.keys, w.row_hashes) for h in hs}
            for s, w in walks.items()}
    in_gallery = Counter(h for h, _ in seqs["gallery"])
    same = sum(in_gallery[h] for h, _ in seqs["probe"])
    renamed = same - len(seqs["probe"] & seqs["gallery"])
    if same:
        notes.append(f"{same} probe/gallery pair(s) of sequences with identical joints (one "
                     f"recording listed twice{f', {renamed} of them under other names' if renamed else ''}"
                     f") not scored against each other")
    return same


def _why_no_probe(items: dict, level: str) -> str:
    """Why no probe could be scored at ``level``, in one line."""
    p_ids, g_ids = set(items["probe"]["id"].tolist()), set(items["gallery"]["id"].tolist())
    if not p_ids & g_ids:
        why = (f"the gallery ({len(g_ids)} subject(s)) holds none of the probes' {len(p_ids)} "
               f"subject(s)")
    else:
        why = ("every gallery item of a probe's subject is that probe's own recording (the same "
               "video or identical joints), as when --probe and --gallery name the same items")
    return (f"no probe can be scored at {level} level: {why}; check --probe/--gallery "
            f"(and --gallery-data)")


@dataclass
class Representation:
    """What turns windows into features (a run's encoder or the raw baseline), with notes."""

    embedder: Embedder
    run: str | None  # the run folder; None for the raw baseline
    notes: list[str]
    standard: bool = True
    stopped: str = ""  # e.g. "run stopped at epoch 4 of 30"; "" for a finished run

    @property
    def f(self) -> int:
        return self.embedder.f

    @property
    def description(self) -> str:
        return self.embedder.description


def representation(baseline: str | None, run_dir: Path | str | None, runs_dir: Path | str,
                   f: int | None, preset: str | None, unit_features: bool | None,
                   protocol: str, split_column: bool, device: str = "cpu") -> Representation:
    """The raw baseline (``baseline="raw"``) or the run ``run_dir`` (default: the latest)."""
    if baseline is not None:
        if baseline.strip().lower() not in BASELINES:
            raise ConfigError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
        if run_dir is not None:
            raise ConfigError("give either --run or --baseline, not both")
        if f is None and preset is not None:
            from vid2reid.presets import get_preset
            f = get_preset(preset).f
        return Representation(Embedder.raw(int(f or DEFAULT_F)), None, [])
    from vid2reid.run import open_run  # torch only for a run

    run = open_run(run_dir, runs_dir, unit_features=unit_features)
    if f is not None and int(f) != run.f:
        raise ConfigError(f"--f {f} does not match run {run.path} (trained with f={run.f}); "
                          f"--f is for --baseline raw")
    rep = Representation(run.embedder(device), str(run.path),
                         [run.stopped] if run.stopped else [], stopped=run.stopped)
    trained = run.config.protocol
    if trained != protocol and not split_column:
        rep.standard = False
        rep.notes.append(f"run was trained under protocol {trained!r} but is evaluated under "
                         f"{protocol!r}: test subjects may have been seen in training")
    return rep


def side_items(side: str, stores: list[Path], records: list[Record], idx: np.ndarray,
               rep: Representation, ensemble: str, notes: list[str]
               ) -> tuple[dict, dict, Walks]:
    """One side's (probe or gallery) window items, sequence items and walks (with how many of
    its sequences were too short); an ensemble over ``stores`` when there are several."""
    f, side_dir = rep.f, stores[0]
    recs = [records[i] for i in idx]
    emb = rep.embedder
    if len(stores) == 1:
        walks = emb.walks(recs, store_loader(side_dir, recs), store=str(side_dir))
        if not len(walks):
            raise ProtocolError(f"no {side} items: all {len(idx)} {side} sequence(s) are "
                                f"shorter than f={f} frames")
    else:
        load = store_loader(side_dir, recs)
        kept = [(r, j) for r, j in ((r, load(i)) for i, r in enumerate(recs)) if len(j) >= f]
        if not kept:
            raise ProtocolError(f"no {side} items: all {len(idx)} {side} sequence(s) are "
                                f"shorter than f={f} frames")
        short = len(recs) - len(kept)
        aligned, cut, short_cut = _aligned(stores, [r for r, _ in kept], [j for _, j in kept], f)
        if cut:
            notes.append(f"{cut} {side} sequence(s) cut to the video frames every --data store "
                         f"holds (start_frame)")
        if not aligned[0]:
            raise ProtocolError(f"no {side} items: no {side} sequence has f={f} frames that "
                                f"every --data store holds")
        # equal lengths in every store, so every store's windows come from the same frames
        keys = ["|".join(r.video_key) for r, _ in aligned[0]]
        parts = [emb.walks([r for r, _ in a], [j for _, j in a], keys=keys, store=str(st))
                 for a, st in zip(aligned, stores)]
        walks = parts[0].with_window_features(_combine([p.window_features for p in parts],
                                                       ensemble))
        walks.skipped_short = short + short_cut
    rows = walks.rows
    ids = np.array([r["subject"] for r in rows])
    views = np.array([r["view"] for r in rows])
    keys = np.array(walks.keys)
    ww = walks.window_walk
    window = {"x": walks.window_features, "id": ids[ww], "video": keys[ww], "view": views[ww]}
    sequence = {"x": walks.features, "id": ids, "video": keys, "view": views}
    return window, sequence, walks


def evaluate(data_dir: Path | str | list = "skeletons", run_dir: Path | str | None = None,
             baseline: str | None = None, probe: str = "Normal", gallery: str = "Normal",
             protocol: str = "simmc", f: int | None = None, preset: str | None = None,
             runs_dir: Path | str = "runs", keep_features: bool = False,
             gallery_data: Path | str | None = None, ensemble: str = "mean",
             unit_features: bool | None = None, device: str = "cpu") -> dict:
    """CMC top-1/5/10 and mAP at window and sequence level, as a JSON-ready dict.

    Scores ``run_dir`` (default: the latest run in ``runs_dir``) or, with
    ``baseline="raw"``, raw root-relative coordinates. ``f`` comes from the
    run's config; for the baseline from ``f``, else ``preset``, else 40.
    ``keep_features`` adds ``result["features"]``: per level and side the
    features ``x`` and the ``id``/``video``/``view`` arrays that were ranked
    (numpy, not JSON: for plots such as ``vid2reid.report``). ``unit_features``
    overrides the run's choice of scoring unit-length features (for ablations).

    Across conventions (docs/convert.md): ``gallery_data`` takes the gallery items from
    another store (probes from ``data_dir``); a list ``data_dir`` of stores of the same
    recordings scores the ensemble of their features (``ensemble``: mean or concat of the
    L2-normalised features of each store).
    """
    stores = [Path(d) for d in ([data_dir] if isinstance(data_dir, (str, Path)) else data_dir)]
    if not stores:
        raise ConfigError("give a store to evaluate on (--data)")
    if ensemble not in ENSEMBLES:
        raise ConfigError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
    if gallery_data is not None and len(stores) > 1:
        raise ConfigError("--gallery-data takes probes from one --data store; give one --data")
    data_dir = stores[0]
    proto = get_protocol(protocol)
    records = read_manifest(data_dir)  # first: a missing store is the likeliest mistake
    g_dir = Path(gallery_data) if gallery_data is not None else None
    g_records = read_manifest(g_dir) if g_dir is not None else records
    split_column = uses_split_column(records)
    rep = representation(baseline, run_dir, runs_dir, f, preset, unit_features, proto.name,
                         split_column, device)
    notes = list(rep.notes)
    if split_column:
        notes.append("train/test taken from the manifest's split column")
    sel = select_probe_gallery(records, eval_records(records, proto.name), proto.name,
                               probe, gallery)
    notes.extend(sel.notes)
    sides = {"probe": (stores, records, sel.probe), "gallery": (stores, records, sel.gallery)}
    if g_dir is not None:
        g_sel = select_probe_gallery(g_records, eval_records(g_records, proto.name), proto.name,
                                     probe, gallery)
        sides["gallery"] = ([g_dir], g_records, g_sel.gallery)
        notes.append(f"probes from {data_dir} ({one_layout(records)}), gallery from {g_dir} "
                     f"({one_layout(g_records)})")
    if len(stores) > 1:
        notes.append(f"ensemble of {len(stores)} stores ({', '.join(str(s) for s in stores)}): "
                     f"L2-normalised features, {'averaged' if ensemble == 'mean' else 'concatenated'}")
    if baseline is not None:
        used = {one_layout(records)} | {one_layout(read_manifest(s)) for s in stores[1:]}
        used |= {one_layout(g_records)}
        if len(used) > 1:
            raise ConfigError(f"--baseline raw compares coordinates joint by joint, so it needs one "
                              f"layout; these stores have {', '.join(sorted(used))}")
    items: dict[str, dict[str, dict]] = {lvl: {} for lvl in LEVELS}
    walks: dict[str, Walks] = {}
    for side, (side_stores, side_records, idx) in sides.items():
        items["window"][side], items["sequence"][side], walks[side] = side_items(
            side, side_stores, side_records, idx, rep, ensemble, notes)
    skipped = sum(w.skipped_short for w in walks.values())
    if skipped:
        notes.append(f"{skipped} sequence(s) shorter than f={rep.f} frames skipped")
    result: dict = {"identical_pairs": exclude_same_recordings(items, walks, notes)}
    for lvl in LEVELS:
        metrics, view_top1 = _score(items[lvl], proto.cross_view)
        if metrics.probes == 0:
            raise ProtocolError(_why_no_probe(items[lvl], lvl))
        result[lvl] = metrics.as_dict()
        if view_top1:
            result[lvl]["top1_per_probe_view"] = view_top1
        if result[lvl]["no_match"]:
            notes.append(f"{lvl} level: {result[lvl]['no_match']} probe(s) without a true match "
                         f"in the gallery excluded from CMC and mAP")
    if proto.cross_view:
        notes.append("opengait: top-k and mAP per probe view averaged over the other gallery "
                     "views, then over probe views")
    result.update({"protocol": proto.name, "probe": sel.probe_condition,
                   "gallery": sel.gallery_condition, "standard": sel.standard and rep.standard,
                   "representation": "raw" if rep.run is None else "run", "run": rep.run,
                   "description": rep.description, "f": rep.f, "data": str(data_dir),
                   "setting_notes": notes})
    if rep.stopped:
        result["unfinished"] = rep.stopped
    if g_dir is not None:
        result["gallery_data"] = str(g_dir)
    if len(stores) > 1:
        result.update(ensemble=ensemble, ensemble_data=[str(s) for s in stores])
    if keep_features:
        result["features"] = items
    return result


def evaluate_with_raw(data_dir: Path | str = "skeletons", run_dir: Path | str | None = None,
                      probe: str = "Normal", gallery: str = "Normal", protocol: str = "simmc",
                      runs_dir: Path | str = "runs", keep_features: bool = False,
                      f: int | None = None, device: str = "cpu") -> dict:
    """A run's result (as :func:`evaluate`) with ``result["raw"]``: the raw-coordinate baseline
    on the same store, protocol, setting and window length f, for the side-by-side table.
    ``f``, when given, must be the run's (ConfigError otherwise)."""
    result = evaluate(data_dir, run_dir=run_dir, probe=probe, gallery=gallery, protocol=protocol,
                      runs_dir=runs_dir, keep_features=keep_features, f=f, device=device)
    result["raw"] = evaluate(data_dir, baseline="raw", probe=probe, gallery=gallery,
                             protocol=protocol, f=result["f"], keep_features=keep_features)
    return result


def without_features(result: dict) -> dict:
    """``result`` without the numpy ``features`` entries (JSON-ready)."""
    out = {k: v for k, v in result.items() if k != "features"}
    if isinstance(out.get("raw"), dict):
        out["raw"] = without_features(out["raw"])
    return out
