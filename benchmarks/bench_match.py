"""Benchmark: one query against a gallery index of 1k / 10k / 100k walks, and embedding time.

One command: ``python benchmarks/bench_match.py [--sizes 1000,10000,100000] [--out F.json]``.
``--index ivf`` (e.g. ``--sizes 1000000 --index ivf --json F``) measures the approximate index
of vid2reid.ann instead: recall at 10 against exhaustive search, ms per query, memory.

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
                _prepare(g, "sequence", "flat" if mode == "faiss" else "exact")
                t_prep = time.perf_counter() - t0
                times = []
                for i in range(queries):
                    q = Walks([q_all.paths[i]], [q_all.rows[i]], [q_all.subjects[i]],
                              [f"q{i}"], q_all.features[i:i + 1], q_all.features[:0],
                              np.zeros(0, np.int64), np.zeros(0, np.int64))
                    t0 = time.perf_counter()
                    res = rank_gallery(q, g, top=10, search="flat" if mode == "faiss" else "exact")
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


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def realistic_features(n: int, dim: int, rng: np.random.Generator, path: Path,
                       intrinsic: int = 32, walks_per_id: int = 4, noise: float = 0.35,
                       chunk: int = 100_000, ids: np.ndarray | None = None) -> np.memmap:
    """``n`` unit feature rows written to ``path`` (float32 memmap) the way a trained
    model's walks lie: identities spread over a low-dimensional subspace (``intrinsic``
    directions with a decaying spectrum, as a trained embedding's PCA shows), walks of one
    identity scattered around it (``noise``), plus a little isotropic noise in every one
    of the ``dim`` dimensions. Row i belongs to identity ``ids[i]`` (default i // walks_per_id);
    identities and directions are fixed by seeds of their own, so that two calls (gallery,
    queries) draw walks of the same people."""
    if ids is None:
        ids = np.arange(n) // walks_per_id
    basis = np.linalg.qr(np.random.default_rng([7, dim, intrinsic]).normal(
        size=(dim, intrinsic)))[0].T.astype(np.float32)
    scale = (1.0 / np.sqrt(1.0 + np.arange(intrinsic))).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        these, where = np.unique(ids[s:s + m], return_inverse=True)
        centre = np.stack([np.random.default_rng([7, int(i)]).normal(size=intrinsic)
                           for i in these]).astype(np.float32)[where.ravel()]
        x = (centre + noise * rng.normal(size=(m, intrinsic)).astype(np.float32)) * scale
        x = x @ basis + 0.02 * rng.normal(size=(m, dim)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    return np.load(path, mmap_mode="r")


def bench_ann(sizes: list[int], dim: int, queries: int, nprobes: list[int], codec: str,
              nlist: int | None, workdir: str | None, transform: str = "auto",
              faiss_threads: int = 1) -> list[dict]:
    """IVF (vid2reid.ann) against exhaustive search: recall at 10 of the exact top 10, ms per
    query (one query at a time, shortlist re-ranked exactly from the memmapped features),
    build time, and memory (index bytes, features on disk, process RSS)."""
    import faiss

    from vid2reid.ann import ApproxSearcher, add_part, default_nlist, default_transform, train_index

    faiss.omp_set_num_threads(faiss_threads)  # one query at a time: threads only contend
    if transform == "auto":
        transform = default_transform(dim)
    out = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for n in sizes:
            rss0 = _rss_mb()
            t0 = time.perf_counter()
            gallery = realistic_features(n, dim, rng, Path(tmp) / f"f{n}.npy")
            t_gen = time.perf_counter() - t0
            # queries: new walks of people in the gallery (match's question: who is this?)
            q = np.asarray(realistic_features(queries, dim, rng, Path(tmp) / "queries.npy",
                                              ids=rng.choice(n // 4, queries, replace=False)))
            t0 = time.perf_counter()
            cells = nlist or default_nlist(n)
            sample = np.sort(rng.choice(n, min(n, max(100_000, 40 * cells)), replace=False))
            trained = train_index(np.asarray(gallery[sample]), cells, codec, 0, transform)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            index = add_part(trained, gallery)
            t_add = time.perf_counter() - t0
            index_mb = faiss.serialize_index(index).nbytes / 2**20
            rss_index = _rss_mb()
            # exact top 10 (float64 re-check of a float32 pass, chunked over the gallery)
            t0 = time.perf_counter()
            best_d = np.full((queries, 10), np.inf)
            best_i = np.zeros((queries, 10), np.int64)
            for s in range(0, n, 200_000):
                g = np.asarray(gallery[s:s + 200_000], dtype=np.float32)
                d2 = (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
                cat_d = np.concatenate([best_d, d2], 1)
                cat_i = np.concatenate([best_i, s + np.arange(len(g))[None, :].repeat(queries, 0)], 1)
                top = np.argsort(cat_d, 1, kind="stable")[:, :10]
                best_d = np.take_along_axis(cat_d, top, 1)
                best_i = np.take_along_axis(cat_i, top, 1)
            t_exact = (time.perf_counter() - t0) / queries
            for nprobe in nprobes:
                searcher = ApproxSearcher(index, gallery, nprobe=nprobe)
                searcher.rank(q[0], 10)  # warm up (page cache of the shortlist rows)
                times, recall = [], []
                for i in range(queries):
                    t0 = time.perf_counter()
                    idx, _ = searcher.rank(q[i], 10)
                    times.append(time.perf_counter() - t0)
                    recall.append(len(np.intersect1d(idx, best_i[i])) / 10)
                out.append({
                    "gallery_walks": n, "dim": dim,
                    "index": f"{transform + ',' if transform else ''}IVF{cells},{codec}",
                    "faiss_threads": faiss_threads,
                    "nprobe": nprobe, "shortlist": max(64, searcher.shortlist * 10),
                    "queries": queries, "recall_at_10": round(float(np.mean(recall)), 4),
                    "ms_per_query": round(1000 * float(np.median(times)), 2),
                    "ms_per_query_p90": round(1000 * float(np.percentile(times, 90)), 2),
                    "exact_ms_per_query": round(1000 * t_exact, 1),
                    "train_s": round(t_train, 1), "add_s": round(t_add, 1),
                    "generate_s": round(t_gen, 1),
                    "index_mb": round(index_mb, 1),
                    "features_mb_on_disk": round(gallery.nbytes / 2**20, 1),
                    "rss_index_mb": round(rss_index - rss0, 1),
                    "peak_rss_mb": round(_peak_rss_mb(), 1)})
                print(json.dumps(out[-1]), flush=True)
            out[-1]["serving"] = _serving(Path(tmp), index, gallery, q, nprobes[-1], faiss_threads)
            print(json.dumps(out[-1]["serving"]), flush=True)
            del index, trained, gallery
    return out


_SERVE = """
import json, sys, time
import numpy as np
import faiss
from vid2reid.ann import load_searcher
faiss.omp_set_num_threads(int(sys.argv[3]))
def rss(kind):
    for line in open("/proc/self/status"):
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1024
base = rss("RssAnon")
t0 = time.perf_counter()
s = load_searcher(sys.argv[1], nprobe=int(sys.argv[2]))
t_load = time.perf_counter() - t0
loaded = rss("RssAnon")
q = np.load(sys.argv[4])
times = []
for row in q:
    t0 = time.perf_counter()
    s.rank(row, 10)
    times.append(time.perf_counter() - t0)
# RssAnon: the process's own memory; RssFile: page-cache pages of the memory-mapped features
# mapped in (the kernel maps neighbours of each row read too), shared and reclaimable
print(json.dumps({"load_s": round(t_load, 2), "anon_mb_after_load": round(loaded - base, 1),
                  "anon_mb_after_queries": round(rss("RssAnon") - base, 1),
                  "file_mb_mapped_after_queries": round(rss("RssFile"), 1),
                  "ms_per_query_cold": round(1000 * float(np.median(times)), 2)}))
"""


def _serving(tmp: Path, index, gallery, q: np.ndarray, nprobe: int, faiss_threads: int) -> dict:
    """A fresh process that loads the saved index (features memory-mapped) and answers the
    queries: its own (anonymous) memory above a bare interpreter with faiss and numpy, the
    file pages it mapped, and ms per query from a cold start."""
    from vid2reid.ann import ApproxSearcher, save_searcher

    folder = tmp / "saved"
    save_searcher(folder, ApproxSearcher(index, gallery, nprobe=nprobe))
    np.save(tmp / "q.npy", q)
    r = subprocess.run([sys.executable, "-c", _SERVE, str(folder), str(nprobe), str(faiss_threads),
                        str(tmp / "q.npy")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if r.returncode:
        return {"error": r.stderr[-500:]}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["index_file_mb"] = round((folder / "ivf.faiss").stat().st_size / 2**20, 1)
    return res


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
    ap.add_argument("--out", "--json", dest="out", help="write the results to this JSON file")
    ap.add_argument("--index", choices=("exact", "ivf"), default="exact",
                    help="ivf: the approximate index (vid2reid.ann) against exhaustive search "
                         "on synthetic features with a trained embedding's structure; "
                         "recall, ms per query, memory (no embedding timing)")
    ap.add_argument("--nprobe", default="128,192,256",
                    help="IVF cells visited per query (--index ivf)")
    ap.add_argument("--transform", default="auto",
                    help="before the IVF: auto (PCA64 above 64 dimensions), none, or e.g. PCA32")
    ap.add_argument("--faiss-threads", type=int, default=1,
                    help="FAISS's OpenMP threads (one query at a time: 1 is fastest)")
    ap.add_argument("--nlist", type=int, help="IVF cells (default about 4 sqrt(n))")
    ap.add_argument("--codec", default="SQ8", help="IVF codes: SQ8 (a byte a dimension) or Flat")
    ap.add_argument("--workdir", help="folder for the feature file (default: the temp folder)")
    args = ap.parse_args()
    import torch

    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg(),
              "python": platform.python_version()}
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.index == "ivf":
        result["ann"] = bench_ann(sizes, args.dim, max(args.queries, 200),
                                  [int(v) for v in args.nprobe.split(",")], args.codec,
                                  args.nlist, args.workdir,
                                  "" if args.transform == "none" else args.transform,
                                  args.faiss_threads)
        best = [r for r in result["ann"] if r["recall_at_10"] >= 0.99]
        pick = min(best, key=lambda r: r["ms_per_query"]) if best else result["ann"][-1]
        result.update({k: pick[k] for k in ("recall_at_10", "ms_per_query", "nprobe", "index",
                                            "index_mb", "features_mb_on_disk", "peak_rss_mb")})
        result["serving"] = result["ann"][-1].get("serving")  # memory of a process answering
    else:
        result["search"] = bench_search(sizes, args.dim, args.queries, args.faiss)
        result["embed"] = bench_embed(args.embed_repeats)
    if args.video:
        result["video"] = bench_video(args.video, args.run, args.gallery)
    result["load_avg_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
