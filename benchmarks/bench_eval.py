"""Benchmark: probe x gallery scoring (CMC top-1/5/10 + mAP), time and peak memory.

One command: ``python benchmarks/bench_eval.py [--out bench_eval.json]``. Each
size runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own. Features are synthetic 256-d vectors (SimMC's H) around per-identity
centres, several items per video, so the own-video mask and the true-match
counts look like CASIA-B's window level. Prints JSON (and writes it with --out).
Target: 10k x 10k under 2 s; memory must not grow as N^2.
``--faiss 'Flat;IVF256,PQ32'`` also scores each gallery through those FAISS
indexes (tests/faiss_scoring.py: top-k search, mAP truncated at --k) and reports
build and search time, index size and the difference from the exact metrics.
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

import numpy as np


def _features(n: int, centres: np.ndarray, rng: np.random.Generator):
    n_ids, dim = centres.shape
    ids = rng.integers(0, n_ids, n)
    feats = centres[ids] + 3.0 * rng.normal(size=(n, dim)).astype(np.float32)
    videos = np.arange(n) // 4  # 4 windows per video
    return feats, ids, videos


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next peak is the scoring's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_faiss(factory: str, pf, pid, pvid, gf, gid, gvid, k: int, nprobe: int,
              exact: dict) -> dict:
    """One FAISS index: build and search time, its size, and how far it is from exact."""
    import faiss

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from faiss_scoring import build_index, index_rank_metrics  # tests/faiss_scoring.py

    t0 = time.perf_counter()
    index = build_index(gf, factory)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = index_rank_metrics(pid, gid, pf, index=index, k=k, nprobe=nprobe, probe_groups=pvid,
                           gallery_groups=gvid).as_dict()
    searched = time.perf_counter() - t0
    m["index"] = factory
    return {"index": factory, "k": k, "nprobe": nprobe, "build_seconds": built,
            "search_and_score_seconds": searched,
            "index_mb": faiss.serialize_index(index).nbytes / 2 ** 20, "metrics": m,
            "top1_minus_exact": m["top1"] - exact["top1"],
            "mAP_at_k_minus_exact_mAP": m["mAP_at_k"] - exact["mAP"]}


def run_one(n_probe: int, n_gallery: int, dim: int, n_ids: int, repeats: int,
            factories: tuple[str, ...] | list[str] = (), k: int = 100, nprobe: int = 16) -> dict:
    import torch

    from vid2reid.metrics import rank_metrics

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    pf, pid, pvid = _features(n_probe, centres, rng)
    gf, gid, gvid = _features(n_gallery, centres, rng)
    gvid = gvid + n_probe  # probe and gallery videos differ, as in the protocols
    rank_metrics(pid[:64], gid, pf[:64], gf, probe_groups=pvid[:64], gallery_groups=gvid)  # warm-up
    times, cpu, extra = [], [], []
    for _ in range(repeats):
        reset = _reset_peak()
        rss0 = _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        m = rank_metrics(pid, gid, pf, gf, probe_groups=pvid, gallery_groups=gvid)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        extra.append((peak - rss0) / 1024)
    features_mb = (pf.nbytes + gf.nbytes) / 2 ** 20
    faiss_runs = [run_faiss(fac, pf, pid, pvid, gf, gid, gvid, k, nprobe, m.as_dict())
                  for fac in factories]
    return {"probes": n_probe, "gallery": n_gallery, "dim": dim, "identities": n_ids,
            "seconds_best": min(times), "seconds_all": times,
            # CPU seconds summed over threads: less sensitive to other load on the machine
            "cpu_seconds_best": min(cpu), "load_average_1min": os.getloadavg()[0],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # peak resident memory while scoring minus resident memory just before it
            "extra_peak_rss_mb_during_scoring": max(extra), "features_mb": features_mb,
            "dense_matrix_mb_if_unchunked": n_probe * n_gallery * 4 / 2 ** 20,
            "torch_threads": torch.get_num_threads(), "metrics": m.as_dict(),
            **({"faiss": faiss_runs} if faiss_runs else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--probes", type=int, default=10_000)
    ap.add_argument("--galleries", default="10000,20000,40000,80000",
                    help="comma-separated gallery sizes; the first is the headline case")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--faiss", default="", help="semicolon-separated FAISS index_factory strings "
                    "to score each gallery with as well (e.g. 'Flat;IVF256,PQ32'); needs faiss")
    ap.add_argument("--k", type=int, default=100, help="FAISS: neighbours kept per probe")
    ap.add_argument("--nprobe", type=int, default=16, help="FAISS: IVF lists searched")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.one is not None:
        factories = [f for f in args.faiss.split(";") if f]
        print(json.dumps(run_one(args.probes, args.one, args.dim, args.identities, args.repeats,
                                 factories, args.k, args.nprobe)))
        return
    results = []
    for g in (int(x) for x in args.galleries.split(",")):
        cmd = [sys.executable, __file__, "--one", str(g), "--probes", str(args.probes),
               "--dim", str(args.dim), "--identities", str(args.identities),
               "--repeats", str(args.repeats), "--faiss", args.faiss, "--k", str(args.k),
               "--nprobe", str(args.nprobe)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{args.probes} x {g}: {results[-1]['seconds_best']:.2f} s "
              f"({results[-1]['cpu_seconds_best']:.2f} CPU s), extra peak "
              f"{results[-1]['extra_peak_rss_mb_during_scoring']:.0f} MB", file=sys.stderr)
    report = {"benchmark": "eval", "target": "10k x 10k < 2 s, memory not O(N^2)",
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version()},
              "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
