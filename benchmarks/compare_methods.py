"""SimMC against Hi-MPC, and each ablation, on one skeleton store (JSON out).

Every method trains the same number of epochs with the same preset and seed
through ``vid2reid.train.train`` and is scored by ``vid2reid.evaluate.evaluate``
(the code behind ``vid2reid train`` / ``vid2reid eval``), together with the
raw-coordinate baseline: window and sequence top-1 / mAP for bg->nm and nm->nm.

    # synthetic walkers, Kinect data-set protocol (the same people, other walks)
    .venv/bin/python benchmarks/compare_methods.py --synthetic same-people --preset kgbd \
        --subjects 15 --epochs 8 --seed 1 --json out.json
    # synthetic walkers, CASIA-B protocol (new people at test time)
    .venv/bin/python benchmarks/compare_methods.py --synthetic new-people --subjects 30
    # any store, e.g. the sample videos' skeletons (no split column: --protocol all)
    .venv/bin/python benchmarks/compare_methods.py --store skeletons-samples --protocol all

Synthetic walkers are a smoke-level benchmark: they say whether the pipeline
learns anything, not how the methods rank on real data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from vid2reid.evaluate import evaluate
from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.train import train

# name -> (method, make_config overrides)
VARIANTS: dict[str, tuple[str, dict]] = {
    "simmc npc": ("simmc", {"ablation": "npc"}),
    "simmc mpc": ("simmc", {"ablation": "mpc"}),
    "simmc mpc+mic": ("simmc", {"ablation": "mpc+mic"}),
    "himpc full": ("himpc", {}),
    "himpc no-hsm": ("himpc", {"himpc_hsm": False}),
    "himpc joint-only": ("himpc", {"himpc_levels": ("joint",)}),
    "himpc reference logits": ("himpc", {"himpc_logits": "reference"}),
}
SETTINGS = (("bg", "nm"), ("nm", "nm"))  # (probe, gallery)
WALKS = {"nm": 6, "bg": 2, "cl": 2}  # CASIA-B style: the simmc protocol probes nm-05/06


def scores(result: dict) -> dict:
    return {lvl: {"top1": round(result[lvl]["top1"], 4), "mAP": round(result[lvl]["mAP"], 4),
                  "probes": result[lvl]["probes"], "gallery": result[lvl]["gallery"]}
            for lvl in ("window", "sequence")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=None,
                    help="compare on this skeleton store instead of synthetic walkers")
    ap.add_argument("--synthetic", choices=("same-people", "new-people"), default="same-people",
                    help="synthetic protocol: Kinect style (other walks of the training people) "
                         "or CASIA-B style (other people)")
    ap.add_argument("--subjects", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1, help="synthetic store seed")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--preset", default="kgbd")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--protocol", default="simmc", help="train/eval protocol (see vid2reid eval)")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default all)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep store and runs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="compare_methods_"))
    if args.store is not None:
        store, about = args.store, {"path": str(args.store)}
    else:
        store = work / "skeletons"
        train_walks = WALKS if args.synthetic == "same-people" else None
        if not (store / "manifest.csv").is_file():
            make_synthetic_store(store, n_subjects=args.subjects, walks=WALKS,
                                 train_walks=train_walks, seed=args.seed)
        about = {"generator": "make_synthetic_store", "protocol": args.synthetic,
                 "n_subjects": args.subjects, "walks": WALKS, "train_walks": train_walks,
                 "seed": args.seed}
    out: dict = {"store": about, "preset": args.preset, "epochs": args.epochs,
                 "batch_size": args.batch_size, "train_seed": args.train_seed,
                 "protocol": args.protocol, "cpu_threads": os.cpu_count(), "results": {}}
    f = make_config(args.preset).f
    out["results"]["raw baseline"] = {
        f"{p}->{g}": scores(evaluate(store, baseline="raw", probe=p, gallery=g, f=f,
                                     protocol=args.protocol))
        for p, g in SETTINGS}
    for name, (method, over) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        over = dict(over)
        cfg = make_config(args.preset, method=method, ablation=over.pop("ablation", "mpc+mic"),
                          epochs=args.epochs, seed=args.train_seed, batch_size=args.batch_size,
                          protocol=args.protocol, **over)
        run = work / "runs" / name.replace(" ", "_").replace("+", "_")
        t0 = time.perf_counter()
        res = train(cfg, store, run, resume=False, progress=False)
        last = res.history[-1] if res.history else {}
        entry = {"train_s": round(time.perf_counter() - t0, 1), "epochs_done": res.epochs_done,
                 "final_clusters": last.get("clusters"), "final_outliers": last.get("outliers"),
                 "final_loss": last.get("loss")}
        for p, g in SETTINGS:
            entry[f"{p}->{g}"] = scores(evaluate(store, run_dir=run, probe=p, gallery=g,
                                                 protocol=args.protocol))
        out["results"][name] = entry
        logging.warning("%s done (%.0fs)", name, entry["train_s"])
    text = json.dumps(out, indent=2)
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    print(text)


if __name__ == "__main__":
    main()
