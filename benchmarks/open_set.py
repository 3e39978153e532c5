"""Open-set matching measured: does ``vid2reid match``'s own threshold say "nobody in the
gallery" for people who are not in it, and still accept the people who are?

The held-back set of issue 35, with KGBD standing in (164 people walking in front of a
Kinect v1; clone github.com/Vortander/KinectGait and pass its ``Data`` folder):

* 27 people drawn with ``--seed`` are held back: the model never sees them. The others'
  walks (every walk, no labels) train a run with the label-free defaults and ``--f 6``.
* For each of ``--draws`` draws, the gallery holds the two gallery walks of 20 of the 27;
  the queries are the probe walks of all 27 (7 of them absent from the gallery).
* The threshold is the tool's own (vid2reid.openset, set from the gallery's walks alone); the
  labels only count: false-alarm rate = absent people accepted / absent queries;
  detection-and-identification rate (DIR) = present people accepted with a correct rank-1 /
  present queries. Also printed: the best DIR any threshold reaches at the same false-alarm
  rate (an oracle, for comparison only).

    .venv/bin/python benchmarks/open_set.py --kgbd ~/KinectGait/Data --work /tmp/open-set

KGBD has no altered gait: its probe walks are other normal walks, so the queries are easier
than the issue's altered-gait set; the numbers say how the threshold behaves, not more.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from vid2reid.importers import import_kgbd
from vid2reid.openset import decide, gallery_threshold
from vid2reid.run import open_run
from vid2reid.run.embed import store_loader
from vid2reid.search import rank_gallery
from vid2reid.settings import make_config
from vid2reid.store import read_manifest, write_manifest
from vid2reid.train import train

HELD_BACK, IN_GALLERY = 27, 20


def prepare(kgbd: Path, work: Path, seed: int) -> tuple[Path, Path, list[str]]:
    """The full store, a training store without the held-back people, the held-back people."""
    full = work / f"kgbd-s{seed}"
    if not (full / "manifest.csv").is_file():
        import_kgbd(kgbd, full, seed=seed, progress=False)
    records = read_manifest(full)
    people = sorted({r.subject for r in records})
    held = sorted(np.random.default_rng(seed).choice(people, HELD_BACK, replace=False).tolist())
    trainset = work / f"kgbd-s{seed}-train"
    if not (trainset / "manifest.csv").is_file():
        keep = [r for r in records if r.subject not in held]
        for r in keep:
            (trainset / r.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full / r.path, trainset / r.path)
        write_manifest(trainset, [r.__class__(r.subject, r.condition, r.sequence, r.view, r.path,
                                              r.frames, r.layout, "", r.extra) for r in keep])
    return full, trainset, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kgbd", type=Path, required=True, help="KGBD's Data folder")
    ap.add_argument("--work", type=Path, required=True, help="where stores and the run go")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=50, help="gallery draws of 20 of the 27")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--run", type=Path, help="score this run instead of training one (a run "
                    "that saw the held-back people's walks makes the test easier)")
    ap.add_argument("--quantile", type=float, default=None, help="instead of the tool's own")
    ap.add_argument("--all-walks", action="store_true", help="gallery: every walk of the 20 "
                    "but their probe walk (3 to 4 each) instead of their two gallery walks")
    ap.add_argument("--raw", action="store_true", help="raw joint coordinates instead of the "
                    "run's features (a weaker representation: a harder test of the threshold)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    full, trainset, held = prepare(args.kgbd, args.work, args.seed)
    run_dir = args.run or args.work / f"run-s{args.seed}"
    if not (run_dir / "model.pt").is_file():
        cfg = make_config(None, f=6, seed=args.seed, device="cpu")
        train(cfg, trainset, run_dir, progress=False)
    from vid2reid.run import Embedder

    run = open_run(run_dir)
    emb = Embedder.raw(run.f) if args.raw else run.embedder("cpu")
    records = read_manifest(full)
    rows = [i for i, r in enumerate(records) if r.subject in held]
    recs = [records[i] for i in rows]
    walks = emb.walks(recs, store_loader(full, recs), store=str(full))
    cond = [w["condition"] for w in walks.rows]
    rng = np.random.default_rng(args.seed)
    out = []
    for d in range(args.draws):
        present = set(rng.choice(held, IN_GALLERY, replace=False).tolist())
        g_idx = [i for i, s in enumerate(walks.subjects) if s in present and (
            cond[i] != "probe" if args.all_walks else cond[i] == "gallery")]
        q_idx = [i for i, c in enumerate(cond) if c == "probe"]
        gallery, queries = subset(walks, g_idx), subset(walks, q_idx)
        t = gallery_threshold(gallery) if args.quantile is None else \
            gallery_threshold(gallery, quantile=args.quantile)
        results = decide(rank_gallery(queries, gallery, top=1), t)
        absent = [r for r in results if r.subject not in present]
        known = [r for r in results if r.subject in present]
        far = sum(r.known for r in absent) / len(absent)
        dir_ = sum(r.known and r.matches[0].subject == r.subject for r in known) / len(known)
        # oracle: the best DIR of any threshold with a false-alarm rate <= far
        d_abs = sorted(r.matches[0].distance for r in absent)
        k = int(round(far * len(absent)))
        cut = d_abs[k] if k < len(d_abs) else np.inf
        best = sum(r.matches[0].distance < cut and r.matches[0].subject == r.subject
                   for r in known) / len(known)
        out.append({"threshold": t.value, "far": far, "dir": dir_, "oracle_dir": best,
                    "rank1": sum(r.matches[0].subject == r.subject for r in known) / len(known)})
    for key in ("far", "dir", "oracle_dir", "rank1", "threshold"):
        v = [o[key] for o in out]
        print(f"{key:10s} mean {statistics.mean(v):.3f}  min {min(v):.3f}  max {max(v):.3f}")
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "draws": out}, indent=1) + "\n")


def subset(walks, idx):
    """The walks ``idx`` of ``walks`` (walk means only)."""
    from vid2reid.run.embed import Walks

    return Walks([walks.paths[i] for i in idx], [walks.rows[i] for i in idx],
                 [walks.subjects[i] for i in idx], [walks.hashes[i] for i in idx],
                 walks.features[idx], np.empty((0, walks.features.shape[1]), np.float32),
                 np.empty(0, np.int64), np.empty(0, np.int64), walks.layout, 0,
                 [walks.keys[i] for i in idx], [walks.row_hashes[i] for i in idx])


if __name__ == "__main__":
    main()
