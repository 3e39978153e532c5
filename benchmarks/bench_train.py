"""Training benchmark: one SimMC epoch vs N, and a run at CASIA-B scale (30k windows, f=40, J=17).

Windows come from the synthetic walker generator (vid2reid.synthetic.walk),
built in memory so that only training is timed; each epoch is the same
``vid2reid.train.run_epoch`` that ``vid2reid train`` runs (clustering of both
masked views + one pass over the kept windows), with the CASIA-B preset.

    .venv/bin/python benchmarks/bench_train.py [--sizes 1000,5000,10000] [--full-n 30000]
        [--full-epochs 30] [--threads N] [--out bench_train.json]

On a machine shared with other jobs, ``--threads 1`` avoids PyTorch's
thread oversubscription (which slowed batches ~20x in our measurements).

``--full-epochs 0`` skips the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch


def synthetic_windows(n: int, f: int = 40, seed: int = 0) -> np.ndarray:
    """n windows (n, f, 17, 3) of synthetic walkers, ~4 walks of 100 frames per subject."""
    from vid2reid.data import cut_windows, normalise
    from vid2reid.synthetic import LAYOUT, random_body, walk

    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < n:
        body = random_body(rng)
        for cond in ("nm", "nm", "bg", "cl"):
            w = cut_windows(normalise(walk(body, 100, rng, cond), LAYOUT), f, f // 2)
            out.append(w)
            total += len(w)
    return np.concatenate(out)[:n]


def run(n: int, epochs: int, seed: int = 0) -> dict:
    from vid2reid.methods import simmc
    from vid2reid.settings import make_config
    from vid2reid.train import run_epoch

    cfg = make_config("casia-b", epochs=epochs, seed=seed, device="cpu")
    x = torch.from_numpy(synthetic_windows(n, cfg.f, seed))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = simmc.build_model(cfg, x.shape[2], "h36m-17")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rows, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        row, _ = run_epoch(simmc.METHOD, model, opt, x, cfg, rng, epoch)
        rows.append({k: row[k] for k in ("epoch", "loss", "clusters", "outliers", "batches",
                                         "cluster_s", "epoch_s")})
        print(json.dumps({"n": n, **rows[-1]}), file=sys.stderr)
    return {"n": n, "f": cfg.f, "joints": int(x.shape[2]), "epochs": epochs,
            "total_s": round(time.perf_counter() - t0, 2), "epochs_detail": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--full-n", type=int, default=30000)
    ap.add_argument("--full-epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    per_n = [run(int(s), 1) for s in args.sizes.split(",") if s]
    result = {"benchmark": "train", "method": "simmc", "preset": "casia-b",
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform()},
              "one_epoch": [{"n": r["n"], **{k: r["epochs_detail"][0][k] for k in
                                             ("epoch_s", "cluster_s", "clusters", "outliers",
                                              "batches")}} for r in per_n]}
    if args.full_epochs > 0:
        result["full_run"] = run(args.full_n, args.full_epochs)
    import resource

    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
