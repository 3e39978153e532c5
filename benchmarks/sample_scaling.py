"""Why SimMC does (not) beat the raw baseline on sample-style data: vary the people and clips.

Builds ground-truth skeleton stores of the sample renderer's walkers without
drawing them (``vid2reid.render.samples.synthesize_ground_truth``: the same
joints as the clips' ``.gt.npz`` sidecars), with ``--train`` training and
``--test`` new test identities (numbered as CASIA-B, standard ``simmc``
protocol), trains SimMC with every default (casia-b preset, 30 epochs) and
scores it against the raw-coordinate baseline, Bags vs Normal and Normal vs
Normal, window level. JSON lines out, one per setting.

    .venv/bin/python benchmarks/sample_scaling.py --train 10,30,60 --frames 64,128
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from vid2reid.evaluate import evaluate
from vid2reid.render.samples import synthesize_ground_truth
from vid2reid.settings import make_config
from vid2reid.train import train


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default="10,30,60", help="training identities, comma-separated")
    ap.add_argument("--test", type=int, default=6, help="test identities (new people)")
    ap.add_argument("--frames", default="64", help="frames per clip, comma-separated")
    ap.add_argument("--views", default="090")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="render seed (the bundled samples: 0)")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--windows", default=None, help="shifted|all|fixed (default: train's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for frames in _ints(args.frames):
        for n_train in _ints(args.train):
            with tempfile.TemporaryDirectory() as tmp:
                store, run = Path(tmp) / "gt", Path(tmp) / "runs" / "r"
                synthesize_ground_truth(store, n_train, args.test, views=args.views.split(","),
                                        frames=frames, seed=args.seed)
                cfg = make_config("casia-b", epochs=args.epochs, seed=args.train_seed,
                                  **({"windows": args.windows} if args.windows else {}))
                t0 = time.perf_counter()
                res = train(cfg, store, run, progress=False)
                row = {"train_ids": n_train, "test_ids": args.test, "frames": frames,
                       "views": args.views, "epochs": args.epochs,
                       "train_s": round(time.perf_counter() - t0, 1),
                       "clusters_last": res.history[-1].get("clusters"),
                       "clusters_first": res.history[0].get("clusters")}
                for probe, gallery in (("Bags", "Normal"), ("Normal", "Normal")):
                    key = f"{probe[0]}-{gallery[0]}"
                    for name, kw in (("simmc", {"run_dir": run}), ("raw", {"baseline": "raw"})):
                        r = evaluate(store, probe=probe, gallery=gallery, **kw)
                        row[f"{key} {name}"] = [round(100 * r["window"]["top1"], 1),
                                                round(100 * r["window"]["mAP"], 1)]
                    row[f"{key} probes"] = r["window"]["probes"]
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
