"""Clustering benchmark: k-reciprocal Jaccard distance + DBSCAN, time and peak memory vs N.

Each N runs in its own subprocess so that peak memory (ru_maxrss) belongs to
that N alone. The per-sample loop reference (dense N x N, the original
re-ranking code's formulation) runs at the small sizes, on the same features,
for the speed ratio and an equality check.

    .venv/bin/python benchmarks/bench_cluster.py [--sizes 1000,5000,10000,30000]
        [--reference-sizes 1000,5000] [--dim 256] [--repeats 3] [--threads 1]
        [--out bench_cluster.json]

The fast path runs ``--repeats`` times in the same process (as in training,
which clusters twice per epoch): ``*_s`` are the best of them, ``first_*_s``
the first (cold) call. ``jaccard_s``/``dbscan_s`` time the full distance
matrix then DBSCAN; ``cluster_s`` times ``cluster_features`` (what training
calls: only pairs within eps are kept, same labels). Speed-ups are against the
best full-matrix time. ``--cluster-only`` times a single ``cluster_features`` call per size
(for sizes where the full matrix and repeats take too long: 60k, 200k). ``--two-views`` also times two feature sets (SimMC's two
masked views) clustered one after the other against ``cluster_many`` (side by
side in threads when torch has more than one).

Features (``--features``): ``blobs`` = Gaussian blobs of about 30 members
each in `dim` dimensions; ``walkers`` = what SimMC clusters in its first
epoch: a freshly initialised encoder (H=256) applied to synthetic walker
windows (f=40, 17 joints), whose neighbourhoods overlap far more (denser
distance matrix, the harder case).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def _features(n: int, dim: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 30), dim))
    lab = rng.integers(0, len(centres), n)
    return (centres[lab] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)


def _walker_features(n: int, seed: int = 0):
    import torch

    from vid2reid.methods import simmc
    from vid2reid.settings import make_config

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_train import synthetic_windows

    torch.manual_seed(seed)
    model = simmc.build_model(make_config("casia-b"), 17, "h36m-17")
    return simmc.embed(model, torch.from_numpy(synthetic_windows(n, 40, seed))).numpy()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one(n: int, dim: int, reference: bool, eps: float, min_samples: int,
        features: str = "blobs", repeats: int = 3, two_views: bool = False,
        cluster_only: bool = False) -> dict:
    """Run one size in this process; returns timings and peak memory."""
    import numpy as np
    import torch

    from vid2reid.cluster import cluster_features, cluster_many, dbscan_labels, jaccard_distance

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference import jaccard_distance_loop  # the plain loops, tests/reference.py

    x = _features(n, dim) if features == "blobs" else _walker_features(n)
    base = _rss_mb()
    if cluster_only:  # what training calls, nothing else (the large sizes)
        t0 = time.perf_counter()
        labels = cluster_features(x, 20, 6, eps, min_samples)
        return {"n": n, "features": features, "dim": int(x.shape[1]),
                "threads": torch.get_num_threads(), "repeats": 1,
                "cluster_s": round(time.perf_counter() - t0, 3),
                "clusters": int(labels.max() + 1), "noise": int((labels < 0).sum()),
                "peak_rss_mb": round(_rss_mb(), 1), "rss_before_mb": round(base, 1),
                "peak_increase_mb": round(_rss_mb() - base, 1)}
    runs = []
    for _ in range(max(1, repeats)):
        dist = labels = None  # free the previous run's result first
        t0 = time.perf_counter()
        dist = jaccard_distance(x, 20, 6)
        t1 = time.perf_counter()
        labels = dbscan_labels(dist, eps, min_samples)
        t2 = time.perf_counter()
        runs.append((t1 - t0, t2 - t1))
    peak_full = _rss_mb()
    cruns = []
    for _ in range(max(1, repeats)):
        t3 = time.perf_counter()
        fast_labels = cluster_features(x, 20, 6, eps, min_samples)
        cruns.append(time.perf_counter() - t3)
    j_best, d_best = min(r[0] for r in runs), min(r[1] for r in runs)
    row = {"n": n, "features": features, "dim": int(x.shape[1]), "threads": torch.get_num_threads(),
           "repeats": len(runs), "jaccard_s": round(j_best, 3), "dbscan_s": round(d_best, 3),
           "total_s": round(j_best + d_best, 3), "first_total_s": round(sum(runs[0]), 3),
           "cluster_s": round(min(cruns), 3), "first_cluster_s": round(cruns[0], 3),
           "cluster_same_labels": bool(np.array_equal(fast_labels, labels)),
           "stored_pairs": int(dist.nnz),
           "stored_pairs_per_row": round(dist.nnz / n, 1),
           "clusters": int(labels.max() + 1), "noise": int((labels < 0).sum()),
           "peak_rss_mb": round(peak_full, 1), "rss_before_mb": round(base, 1),
           "peak_increase_mb": round(peak_full - base, 1)}
    if two_views:
        x2 = _features(n, dim, seed=1) if features == "blobs" else _walker_features(n, seed=1)
        seq, side = [], []
        for _ in range(max(1, repeats)):
            t3 = time.perf_counter()
            one_by_one = [cluster_features(v, 20, 6, eps, min_samples) for v in (x, x2)]
            seq.append(time.perf_counter() - t3)
            t3 = time.perf_counter()
            together = cluster_many([x, x2], 20, 6, eps, min_samples)
            side.append(time.perf_counter() - t3)
        row.update({"two_views_one_after_other_s": round(min(seq), 3),
                    "two_views_cluster_many_s": round(min(side), 3),
                    "two_views_same_labels": all(np.array_equal(a, b)
                                                 for a, b in zip(one_by_one, together))})
    if reference:
        t3 = time.perf_counter()
        ref = jaccard_distance_loop(x, 20, 6)
        t4 = time.perf_counter()
        ref_labels = dbscan_labels(ref, eps, min_samples)
        t5 = time.perf_counter()
        dense = np.ones((n, n))
        coo = dist.tocoo()
        dense[coo.row, coo.col] = coo.data
        row.update({"loop_jaccard_s": round(t4 - t3, 3), "loop_total_s": round(t5 - t3, 3),
                    "speedup_jaccard": round((t4 - t3) / j_best, 1),
                    "speedup_total": round((t5 - t3) / (j_best + d_best), 1),
                    "speedup_cluster": round((t5 - t3) / min(cruns), 1),
                    "max_abs_diff": float(np.abs(dense - ref).max()),
                    "same_labels": bool(np.array_equal(labels, ref_labels))})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,10000,30000")
    ap.add_argument("--reference-sizes", default="1000,5000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--eps", type=float, default=0.6)
    ap.add_argument("--min-samples", type=int, default=4)
    ap.add_argument("--features", choices=("blobs", "walkers"), default="blobs")
    ap.add_argument("--repeats", type=int, default=3, help="fast-path runs per size (best reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--two-views", action="store_true",
                    help="also time two views one after the other vs cluster_many")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--cluster-only", action="store_true",
                    help="time one cluster_features call per size (no full matrix, no repeats)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(one(args.one, args.dim, args.reference, args.eps, args.min_samples,
                             args.features, args.repeats, args.two_views, args.cluster_only)))
        return
    ref_sizes = {int(s) for s in args.reference_sizes.split(",") if s}
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--dim", str(args.dim), "--eps",
               str(args.eps), "--min-samples", str(args.min_samples), "--features", args.features,
               "--repeats", str(args.repeats)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.cluster_only:
            cmd.append("--cluster-only")
        if args.two_views:
            cmd.append("--two-views")
        if n in ref_sizes:
            cmd.append("--reference")
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"benchmark": "cluster", "k1": 20, "k2": 6, "eps": args.eps,
              "min_samples": args.min_samples, "machine": {"cpus": os.cpu_count(),
                                                           "platform": platform.platform(),
                                                           "loadavg": os.getloadavg()},
              "results": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
