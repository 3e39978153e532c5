"""Score a trained run (or the raw-coordinate baseline) on a store under a protocol.

Two levels, as issue 2 asks:

- window: every non-overlapping f-frame test window is its own probe/gallery
  item (the SimMC paper's setting);
- sequence: a video's item is the mean of its windows' features (a useful
  extra; store entries cut from one video count as that video).

Under ``opengait`` every metric (top-k and mAP) is computed per (probe view,
gallery view) pair with different views, averaged over gallery views, then
over probe views; ``probes`` counts the probes of views that could be scored.
Metrics conventions (own video excluded, ties, probes without a true match)
are in vid2reid/metrics.py.

``--baseline raw`` DECISION: a window's raw feature is the mean over its f
frames of the root-relative joints, flattened to 3J numbers. It is the
parameter-free counterpart of the encoder's mean pooling of per-frame features
(frame order plays no role in either), scored through exactly the same
windows, protocol and metric as a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vid2reid.data import make_windows
from vid2reid.errors import ConfigError, ProtocolError, StoreError
from vid2reid.metrics import RankMetrics, rank_metrics
from vid2reid.protocols import (eval_records, get_protocol, select_probe_gallery,
                                uses_split_column)
from vid2reid.store import Record, cut_to_common, load_joints, read_manifest

log = logging.getLogger(__name__)

BASELINES = ("raw",)
DEFAULT_F = 40  # CASIA-B's window length (casia-b preset)
LEVELS = ("window", "sequence")


def latest_run(runs_dir: Path | str = "runs") -> Path:
    """The run named in ``runs_dir/LATEST`` (written by ``vid2reid train``)."""
    marker = Path(runs_dir) / "LATEST"
    if not marker.is_file():
        raise ConfigError(f"{marker}: no latest run; train one with 'vid2reid train', pass --run, "
                          f"or score raw coordinates with --baseline raw")
    name = marker.read_text().strip()
    run = Path(runs_dir) / name
    if not name or not run.is_dir():
        raise ConfigError(f"{marker}: names run {name!r}, which does not exist; pass --run")
    return run


def raw_features(x: np.ndarray) -> np.ndarray:
    """Raw baseline: mean over frames of root-relative joints, flattened. (N, f, J, 3) -> (N, 3J)."""
    return x.mean(axis=1).reshape(len(x), -1)


def _embed(embed: Callable[..., np.ndarray], x: np.ndarray, layout: str = "",
           batch: int = 4096) -> np.ndarray:
    """Features of windows ``x``; a run's embedder is told their layout."""
    if len(x) == 0:
        return np.empty((0, 0), np.float32)
    call = (lambda a: embed(a)) if embed is raw_features else (lambda a: embed(a, layout or None))
    return np.concatenate([np.asarray(call(x[i:i + batch]), np.float32)
                           for i in range(0, len(x), batch)])


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


def _video_means(feats: np.ndarray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature per video key; returns (features, index of one window per video)."""
    uniq, first, inv = np.unique(np.asarray(keys), return_index=True, return_inverse=True)
    sums = np.zeros((len(uniq), feats.shape[1]), np.float64)
    np.add.at(sums, inv, feats)
    counts = np.bincount(inv, minlength=len(uniq))[:, None]
    return (sums / counts).astype(np.float32), first


def _score(items: dict, cross_view: bool) -> tuple[RankMetrics, dict[str, float]]:
    """Rank probes against gallery; OpenGait: per probe view, mean over other gallery views.

    Also returns rank-1 per probe view (OpenGait's table; empty otherwise).
    """
    p, g = items["probe"], items["gallery"]
    if not cross_view:
        return rank_metrics(p["id"], g["id"], p["x"], g["x"], probe_groups=p["video"],
                            gallery_groups=g["video"]), {}
    per_view, view_top1 = [], {}
    no_match = 0
    for pv in sorted(set(p["view"])):
        pm = p["view"] == pv
        pairs = []
        for gv in sorted(set(g["view"]) - {pv}):
            gm = g["view"] == gv
            m = rank_metrics(p["id"][pm], g["id"][gm], p["x"][pm], g["x"][gm],
                             probe_groups=p["video"][pm], gallery_groups=g["video"][gm])
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


def _load_side(data_dir: Path, records: list[Record], idx: np.ndarray,
               f: int) -> tuple[list[Record], list[np.ndarray], int]:
    kept, arrays, short = [], [], 0
    for i in idx:
        joints = load_joints(data_dir, records[i])
        if len(joints) < f:
            short += 1
            continue
        kept.append(records[i])
        arrays.append(joints)
    return kept, arrays, short


def evaluate(data_dir: Path | str | list = "skeletons", run_dir: Path | str | None = None,
             baseline: str | None = None, probe: str = "Normal", gallery: str = "Normal",
             protocol: str = "simmc", f: int | None = None, preset: str | None = None,
             runs_dir: Path | str = "runs", keep_features: bool = False,
             gallery_data: Path | str | None = None, ensemble: str = "mean",
             unit_features: bool | None = None) -> dict:
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
    notes: list[str] = []
    standard = True
    if baseline is not None:
        if baseline.strip().lower() not in BASELINES:
            raise ConfigError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
        if run_dir is not None:
            raise ConfigError("give either --run or --baseline, not both")
        if f is None and preset is not None:
            from vid2reid.presets import get_preset
            f = get_preset(preset).f
        f = int(f or DEFAULT_F)
        embed, rep, run_name = raw_features, "baseline raw (mean root-relative joints)", None
    else:
        from vid2reid.train import load_embedder  # torch model code only when a run is scored

        run = Path(run_dir) if run_dir is not None else latest_run(runs_dir)
        embed, config = load_embedder(run, unit_features=unit_features)
        run_f = int(config["f"])
        if f is not None and int(f) != run_f:
            raise ConfigError(f"--f {f} does not match run {run} (trained with f={run_f}); "
                              f"--f is for --baseline raw")
        f, rep, run_name = run_f, f"run {run}", str(run)
        trained = str(config.get("protocol", proto.name))
        if trained != proto.name and not split_column:
            standard = False
            notes.append(f"run was trained under protocol {trained!r} but is evaluated under "
                         f"{proto.name!r}: test subjects may have been seen in training")
    if f < 1:
        raise ConfigError(f"f must be a positive number of frames, got {f}")
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
        notes.append(f"probes from {data_dir} ({_layout(records)}), gallery from {g_dir} "
                     f"({_layout(g_records)})")
    if len(stores) > 1:
        notes.append(f"ensemble of {len(stores)} stores ({', '.join(str(s) for s in stores)}): "
                     f"L2-normalised features, {'averaged' if ensemble == 'mean' else 'concatenated'}")
    if baseline is not None:
        used = {_layout(records)} | {_layout(read_manifest(s)) for s in stores[1:]}
        used |= {_layout(g_records)}
        if len(used) > 1:
            raise ConfigError(f"--baseline raw compares coordinates joint by joint, so it needs one "
                              f"layout; these stores have {', '.join(sorted(used))}")
    items: dict[str, dict[str, dict]] = {lvl: {} for lvl in LEVELS}
    skipped = 0
    for side, (side_stores, side_records, idx) in sides.items():
        side_dir = side_stores[0]
        first: tuple[Record, int] | None = None  # one store uses one joint layout
        recs, joints, short = _load_side(side_dir, side_records, idx, f)
        skipped += short
        if not recs:
            raise ProtocolError(f"no {side} items: all {len(idx)} {side} sequence(s) are shorter "
                                f"than f={f} frames")
        for rec, j in zip(recs, joints):
            first = first or (rec, j.shape[1])
            if j.shape[1] != first[1]:
                raise StoreError(f"{side_dir / rec.path}: has {j.shape[1]} joints but "
                                 f"{side_dir / first[0].path} has {first[1]}; one store must use "
                                 f"one joint layout")
        if len(side_stores) > 1:
            kept, cut, short = _aligned(side_stores, recs, joints, f)
            all_recs = [[r for r, _ in k] for k in kept]
            all_joints = [[j for _, j in k] for k in kept]
            skipped += short
            if cut:
                notes.append(f"{cut} {side} sequence(s) cut to the video frames every --data store "
                             f"holds (start_frame)")
            if not all_recs[0]:
                raise ProtocolError(f"no {side} items: no {side} sequence has f={f} frames that "
                                    f"every --data store holds")
            recs = all_recs[0]
            # equal lengths in every store, so every store's windows come from the same frames
            wins = [make_windows(r, j, f, stride=f) for r, j in zip(all_recs, all_joints)]
            feats = _combine([_embed(embed, w.x, _layout(r)) for w, r in zip(wins, all_recs)],
                             ensemble)
            win = wins[0]
        else:
            win = make_windows(recs, joints, f, stride=f)
            feats = _embed(embed, win.x, _layout(recs))
        seq_recs = [recs[i] for i in win.seq]
        keys = ["|".join(r.video_key) for r in seq_recs]
        window = {"x": feats, "id": np.array([r.subject for r in seq_recs]),
                  "video": np.array(keys), "view": np.array([r.view for r in seq_recs])}
        mean, one = _video_means(feats, keys)
        sequence = {"x": mean, **{k: window[k][one] for k in ("id", "video", "view")}}
        items["window"][side], items["sequence"][side] = window, sequence
    if skipped:
        notes.append(f"{skipped} sequence(s) shorter than f={f} frames skipped")
    result: dict = {}
    for lvl in LEVELS:
        metrics, view_top1 = _score(items[lvl], proto.cross_view)
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
                   "gallery": sel.gallery_condition, "standard": sel.standard and standard,
                   "representation": "raw" if run_name is None else "run", "run": run_name,
                   "description": rep, "f": f, "data": str(data_dir),
                   "setting_notes": notes})
    if g_dir is not None:
        result["gallery_data"] = str(g_dir)
    if len(stores) > 1:
        result.update(ensemble=ensemble, ensemble_data=[str(s) for s in stores])
    if keep_features:
        result["features"] = items
    return result


def _layout(records: list[Record]) -> str:
    """The one layout of a store's records ('' when unnamed)."""
    names = sorted({r.layout for r in records if r.layout})
    return names[0] if len(names) == 1 else ""


def evaluate_with_raw(data_dir: Path | str = "skeletons", run_dir: Path | str | None = None,
                      probe: str = "Normal", gallery: str = "Normal", protocol: str = "simmc",
                      runs_dir: Path | str = "runs", keep_features: bool = False,
                      f: int | None = None) -> dict:
    """A run's result (as :func:`evaluate`) with ``result["raw"]``: the raw-coordinate baseline
    on the same store, protocol, setting and window length f, for the side-by-side table.
    ``f``, when given, must be the run's (ConfigError otherwise)."""
    result = evaluate(data_dir, run_dir=run_dir, probe=probe, gallery=gallery, protocol=protocol,
                      runs_dir=runs_dir, keep_features=keep_features, f=f)
    result["raw"] = evaluate(data_dir, baseline="raw", probe=probe, gallery=gallery,
                             protocol=protocol, f=result["f"], keep_features=keep_features)
    return result


def without_features(result: dict) -> dict:
    """``result`` without the numpy ``features`` entries (JSON-ready)."""
    out = {k: v for k, v in result.items() if k != "features"}
    if isinstance(out.get("raw"), dict):
        out["raw"] = without_features(out["raw"])
    return out


def _verdict(result: dict) -> str:
    """One line saying what the side-by-side numbers mean."""
    run, raw = result["window"], result["raw"]["window"]
    d1, dm = 100 * (run["top1"] - raw["top1"]), 100 * (run["mAP"] - raw["mAP"])
    probe = 100.0 / max(1, run["probes"])
    if abs(d1) < probe and abs(dm) < probe:
        head = "the trained model and raw joint coordinates are level"
    elif d1 >= 0 and dm >= 0:
        head = "the trained model beats raw joint coordinates"
    elif d1 <= 0 and dm <= 0:
        head = "raw joint coordinates beat the trained model"
    else:
        head = "the trained model and raw joint coordinates split the metrics"
    small = (f"; with {run['probes']} probes one probe moves top-1 by {probe:.1f} points, so "
             f"read gaps under ~{2 * probe:.0f} points as noise" if run["probes"] < 100 else "")
    clusters = _last_clusters(result.get("run"))
    why = (f" Training ended with {clusters} cluster(s): the prototype loss had (almost) nothing to "
           f"contrast, as on stores with few windows per person (docs/methods.md)."
           if clusters is not None and clusters <= 3 else "")
    return (f"meaning: {head} (window top-1 {d1:+.1f}, mAP {dm:+.1f} points){small}. Raw "
            f"coordinates need no training: a learned model is worth keeping only above them."
            f"{why}")


def _last_clusters(run: str | None) -> int | None:
    """Clusters in the last logged epoch of a run (None when unknown)."""
    import json

    if not run:
        return None
    try:
        lines = (Path(run) / "log.jsonl").read_text().strip().splitlines()
        value = json.loads(lines[-1]).get("clusters") if lines else None
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, (int, float)) else None


def format_table(result: dict) -> str:
    """A readable table of both levels, with item counts and the setting notes."""
    lines = [f"{result['description']}, f={result['f']}, protocol {result['protocol']}"
             f"{'' if result['standard'] else ' (NON-STANDARD)'}: "
             f"probe {result['probe']} vs gallery {result['gallery']}",
             f"{'level':<10}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP':>8}{'probes':>9}"
             f"{'gallery':>9}"]
    for lvl in LEVELS:
        m = result[lvl]
        lines.append(f"{lvl:<10}" + "".join(f"{100 * m[k]:>7.1f}%" for k in
                                            ("top1", "top5", "top10", "mAP"))
                     + f"{m['probes']:>9}{m['gallery']:>9}")
    for lvl in LEVELS:
        views = result[lvl].get("top1_per_probe_view")
        if views:
            lines.append(f"{lvl} top-1 per probe view: "
                         + ", ".join(f"{v} {100 * t:.1f}%" for v, t in views.items()))
    lines += [f"note: {n}" for n in result["setting_notes"]]
    return "\n".join(lines)



def format_comparison(result: dict) -> str:
    """The trained run and the raw baseline side by side (``result`` from
    :func:`evaluate_with_raw`), item counts, one line of meaning, and the notes."""
    raw = result["raw"]
    keys = ("top1", "top5", "top10", "mAP")
    lines = [f"{result['description']} vs raw joint coordinates, f={result['f']}, protocol "
             f"{result['protocol']}{'' if result['standard'] else ' (NON-STANDARD)'}: probe "
             f"{result['probe']} vs gallery {result['gallery']} (%)",
             f"{'':<10}{'trained model':^32}|{'raw coordinates':^32}",
             f"{'level':<10}" + "".join(f"{k.replace('top', 'top-'):>8}" for k in keys) + "|"
             + "".join(f"{k.replace('top', 'top-'):>8}" for k in keys) + f"{'probes':>8}"
             f"{'gallery':>9}"]
    for lvl in LEVELS:
        m, r = result[lvl], raw[lvl]
        lines.append(f"{lvl:<10}" + "".join(f"{100 * m[k]:>8.1f}" for k in keys) + "|"
                     + "".join(f"{100 * r[k]:>8.1f}" for k in keys)
                     + f"{m['probes']:>8}{m['gallery']:>9}")
    lines.append(_verdict(result))
    lines += [f"note: {n}" for n in result["setting_notes"]]
    return "\n".join(lines)
