"""Benchmark: one query against a gallery index of 1k / 10k / 100k walks, and embedding time.

One command: ``python benchmarks/bench_match.py [--sizes 1000,10000,100000] [--out F.json]``.

Search: synthetic 256-d unit features (the default run's feature size and scaling) around
per-subject centres, written as a real gallery index file (``GalleryIndex.save``), loaded
back, then one query at a time through ``rank_gallery`` (top 10 and the margin, the whole
per-query ranking step of ``vid2reid match --gallery INDEX``); exact search, and a flat
FAISS index with ``--faiss`` where faiss is installed. Reported: index write and load time,
median / 90th percentile seconds per query, and the once-per-call set-up (index load; norms, subject codes
and the hash table of the identical-walk rule, built on the first query). Target: < 0.2 s per
query at 100k walks on 2 CPU cores.

Embedding: a run with the default settings (256-d features, f = 40) trained for one epoch
on a small synthetic store (untrained-quality weights do not change the cost), then
``LoadedRun.embed`` of one walk of 64 / 200 frames (1 / 5 windows): seconds per query walk.
``--video CLIP`` also times ``vid2reid match``'s video path for one clip with a fresh cache
(pose extraction with MediaPipe dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _walks(n: int, dim: int, rng: np.random.Generator):
    from vid2reid.run import Walks

    n_ids = max(2, n // 4)
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    ids = rng.integers(0, n_ids, n)
    x = centres[ids] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    subjects = [f"{i:06d}" for i in ids]
    paths = [f"{s}/{s}-nm-{k % 6 + 1:02d}-090.npz" for k, s in enumerate(subjects)]
    rows = [{"subject": s, "condition": "nm", "sequence": f"{k % 6 + 1:02d}", "view": "090",
             "path": p} for k, (s, p) in enumerate(zip(subjects, paths))]
    hashes = [f"{k:064x}" for k in range(n)]
    return Walks(paths, rows, subjects, hashes, x, x[:0], np.zeros(0, np.int64),
                 np.zeros(0, np.int64), "h36m-17")


def bench_search(sizes: list[int], dim: int, queries: int, use_faiss: bool) -> list[dict]:
    from vid2reid.gallery_index import GalleryIndex, load_index
    from vid2reid.run import Walks
    from vid2reid.search import _prepare, rank_gallery

    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            walks = _walks(n, dim, rng)
            path = Path(tmp) / f"g{n}.idx"
            t0 = time.perf_counter()
            GalleryIndex(walks, "bench", "bench-run", "bench-store", 40).save(path)
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            g = load_index(path).walks
            t_load = time.perf_counter() - t0
            q_all = _walks(queries, dim, rng)
            for mode in ["exact"] + (["faiss"] if use_faiss else []):
                # once per gallery (per match call): norms, subject codes, hash table, FAISS
                t0 = time.perf_counter()
                _prepare(g, "sequence", mode == "faiss")
                t_prep = time.perf_counter() - t0
                times = []
                for i in range(queries):
                    q = Walks([q_all.paths[i]], [q_all.rows[i]], [q_all.subjects[i]],
                              [f"q{i}"], q_all.features[i:i + 1], q_all.features[:0],
                              np.zeros(0, np.int64), np.zeros(0, np.int64))
                    t0 = time.perf_counter()
                    res = rank_gallery(q, g, top=10, use_faiss=mode == "faiss")
                    times.append(time.perf_counter() - t0)
                    assert len(res[0].matches) == 10
                out.append({"gallery_walks": n, "dim": dim, "mode": mode,
                            "index_write_s": round(t_write, 3), "index_load_s": round(t_load, 3),
                            "prepare_s": round(t_prep, 3),
                            "index_mb": round(path.stat().st_size / 2**20, 1),
                            "per_query_median_s": round(float(np.median(times)), 4),
                            "per_query_p90_s": round(float(np.percentile(times, 90)), 4),
                            "queries": queries})
                print(json.dumps(out[-1]), flush=True)
    return out


def bench_embed(repeats: int) -> list[dict]:
    from typer.testing import CliRunner

    from vid2reid.cli import app
    from vid2reid import load_run
    from vid2reid.synthetic import make_synthetic_store

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = make_synthetic_store(Path(tmp) / "s", n_subjects=4, frames=(60, 80), seed=0)
        r = CliRunner().invoke(app, ["train", "--data", str(store), "--out", f"{tmp}/run",
                                     "--epochs", "1", "--threads", "1", "--no-progress"])
        assert r.exit_code == 0, r.output
        t0 = time.perf_counter()
        m = load_run(f"{tmp}/run")
        t_load = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        for frames in (64, 200):
            walk = rng.normal(size=(frames, 17, 3)).astype(np.float32)
            m.embed(walk)  # warm up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                feat = m.embed(walk)
                times.append(time.perf_counter() - t0)
            out.append({"walk_frames": frames, "windows": frames // m.f, "dim": feat.shape[1],
                        "embed_median_s": round(float(np.median(times)), 4),
                        "run_load_s": round(t_load, 3), "repeats": repeats})
            print(json.dumps(out[-1]), flush=True)
    return out


def bench_video(clip: str, run: str, gallery: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "vid2reid", "match", clip, "--gallery", gallery, "--run",
               run, "--cache", f"{tmp}/cache", "--top", "5"]
        t0 = time.perf_counter()
        first = subprocess.run(cmd, capture_output=True, text=True)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = subprocess.run(cmd, capture_output=True, text=True)
        t_second = time.perf_counter() - t0
    res = {"clip": clip, "first_call_s": round(t_first, 2), "cached_call_s": round(t_second, 2),
           "exit_codes": [first.returncode, second.returncode]}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--faiss", action="store_true", help="also search through a flat FAISS index")
    ap.add_argument("--embed-repeats", type=int, default=20)
    ap.add_argument("--video", help="a clip to time a whole video query with (needs --run, --gallery)")
    ap.add_argument("--run")
    ap.add_argument("--gallery")
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch

    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg(),
              "python": platform.python_version()}
    result["search"] = bench_search([int(s) for s in args.sizes.split(",")], args.dim,
                                    args.queries, args.faiss)
    result["embed"] = bench_embed(args.embed_repeats)
    if args.video:
        result["video"] = bench_video(args.video, args.run, args.gallery)
    result["load_avg_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
