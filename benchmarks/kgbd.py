"""The SimMC paper's KGBD table, reproduced: raw, SimMC (NPC, MPC, MPC+MIC) and Hi-MPC.

KGBD (Andersson & Araujo, AAAI 2015; 164 people walking in front of a Kinect v1)
is public: clone github.com/Vortander/KinectGait and pass its ``Data`` folder.
For every split seed the script imports it as the papers split it (per person
one probe walk, two gallery walks, the rest unlabelled training walks), trains
each variant for a fixed number of epochs with the kgbd preset (no epoch is
chosen on the test walks), and scores probe against gallery at window level,
as the paper does (each 6-frame window is one probe / gallery item):

    .venv/bin/python benchmarks/kgbd.py --data ~/KinectGait/Data --seeds 0 1 2 --epochs 10

The label-free variants (``default`` = ``vid2reid train --f 6`` with no preset,
and its ablations ``walks``, ``chains``, ``default mpc``) run with every
library default but f, for ``--default-epochs`` (default: the library's 30);
each is also scored on raw-length features (``no_unit`` in the JSON: the
``--no-unit-features`` ablation, which changes scoring only).

Prints one table (mean and spread over seeds) next to the paper's numbers, the
seconds per epoch of each variant, and writes every number to --json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vid2reid.evaluate import evaluate
from vid2reid.importers import import_kgbd
from vid2reid.store import atomic_write_bytes
from vid2reid.settings import make_config
from vid2reid.train import train

# name -> (method, make_config overrides); the paper's Table 1 / Table 4 rows with the kgbd
# preset, then vid2reid's label-free default (no preset, f 6) and its ablations
VARIANTS: dict[str, tuple[str, dict]] = {
    "simmc npc": ("simmc", {"ablation": "npc"}),
    "simmc mpc": ("simmc", {"ablation": "mpc"}),
    "simmc mpc+mic": ("simmc", {"ablation": "mpc+mic"}),
    "himpc": ("himpc", {}),
    "default": ("simmc", {"preset": None}),
    "walks": ("simmc", {"preset": None, "pseudo_labels": "walks"}),
    "chains": ("simmc", {"preset": None, "pseudo_labels": "walk-chains"}),
    "groups": ("simmc", {"preset": None, "pseudo_labels": "walk-groups"}),
    "default mpc": ("simmc", {"preset": None, "ablation": "mpc"}),
    "sm-sge": ("sm-sge", {}),
    # SimMC fine-tuning the seed's sm-sge run (run that variant first)
    "sm-sge+simmc": ("simmc", {"init_from": "sm-sge"}),
}
LABEL_FREE = [n for n, (_, o) in VARIANTS.items() if "preset" in o]
PAPER = {  # window top-1 / mAP (%), SimMC (IJCAI 2022) Tables 1 and 4, Hi-MPC (IJCV)
    "raw": (34.5, 6.4), "simmc mpc+mic": (54.9, 11.7), "himpc": (56.9, 10.2),
    "sm-sge+simmc": (47.1, 10.8),
}


def _run_dir(work: Path, seed: int, name: str) -> Path:
    return work / "runs" / f"seed{seed}-{name.replace(' ', '_').replace('+', '_')}"


def run_seed(data: Path, work: Path, seed: int, args: argparse.Namespace) -> dict:
    """Import KGBD with split ``seed``, then score raw and every variant."""
    store = work / f"kgbd-seed{seed}"
    if not (store / "manifest.csv").is_file():
        import_kgbd(data, store, seed=seed, progress=False)
    f = make_config("kgbd").f
    out = {"raw": evaluate(store, baseline="raw", probe="probe", gallery="gallery", f=f)}
    for name in args.variants:
        method, over = VARIANTS[name]
        over = dict(over)
        if "init_from" in over:
            over["init"] = str(_run_dir(work, seed, over.pop("init_from")))
        if "preset" in over:  # label-free: every library default but f (as a user gives it)
            cfg = make_config(over.pop("preset"), method=method, f=f,
                              ablation=over.pop("ablation", "mpc+mic"),
                              epochs=args.default_epochs, seed=args.train_seed,
                              windows=args.windows, **over)
        else:
            cfg = make_config("kgbd", method=method, ablation=over.pop("ablation", "mpc+mic"),
                              epochs=args.epochs, seed=args.train_seed, windows=args.windows,
                              k1_reading=args.k1_reading, **over)
        run = _run_dir(work, seed, name)
        t0 = time.perf_counter()
        res = train(cfg, store, run, resume=False, progress=False)
        res_eval = {}
        res_eval.update(evaluate(store, run_dir=run, probe="probe", gallery="gallery"))
        if cfg.unit_features:  # ablation: the same model, scored on its raw-length features
            res_eval["no_unit"] = evaluate(store, run_dir=run, probe="probe", gallery="gallery",
                                           unit_features=False)
        res_eval["epochs"] = cfg.epochs
        res_eval["train_s"] = round(time.perf_counter() - t0, 1)
        res_eval["epoch_s"] = [r["epoch_s"] for r in res.history]
        res_eval["final_clusters"] = res.history[-1].get("clusters") if res.history else None
        res_eval["train_windows"] = res.history[-1].get("windows") if res.history else None
        out[name] = res_eval
        logging.warning("seed %d %s: top-1 %.1f mAP %.1f (%.0f s)", seed, name,
                        100 * res_eval["window"]["top1"], 100 * res_eval["window"]["mAP"],
                        res_eval["train_s"])
    return out


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    spread = 100 * (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return f"{mean:5.1f} ± {spread:3.1f}" if len(values) > 1 else f"{mean:5.1f}"


def table(per_seed: dict[int, dict], names: list[str]) -> str:
    """Window top-1 / mAP (mean ± half range over seeds) beside the paper's numbers."""
    lines = [f"{'variant':<22}{'top-1 %':>14}{'mAP %':>14}{'paper':>14}{'s/epoch':>9}"
             f"{'epochs':>7}{'sequence top-1':>16}"]
    shown = ["raw"] + names
    for per in per_seed.values():  # the --no-unit-features scoring of label-free variants
        for name in names:
            if "no_unit" in per.get(name, {}):
                per[f"{name} no-unit"] = {**per[name]["no_unit"], "epochs": per[name]["epochs"]}
                if f"{name} no-unit" not in shown:
                    shown.append(f"{name} no-unit")
    for name in shown:
        rows = [r[name] for r in per_seed.values()]
        paper = PAPER.get(name)
        epoch_s = [s for r in rows for s in r.get("epoch_s", [])]
        lines.append(f"{name:<22}{_cell([r['window']['top1'] for r in rows]):>14}"
                     f"{_cell([r['window']['mAP'] for r in rows]):>14}"
                     f"{(f'{paper[0]} / {paper[1]}' if paper else '-'):>14}"
                     f"{(f'{statistics.median(epoch_s):.1f}' if epoch_s else '-'):>9}"
                     f"{rows[0].get('epochs', '-'):>7}"
                     f"{_cell([r['sequence']['top1'] for r in rows]):>16}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="KGBD's Data folder (PersonNNN/k.txt)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds")
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the preset (paper) variants")
    ap.add_argument("--default-epochs", type=int, default=None,
                    help="epochs of the label-free variants (default: the library's)")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["default", "simmc mpc+mic"],
                    choices=list(VARIANTS))
    ap.add_argument("--windows", default=None, help="training windows (default: the library's)")
    ap.add_argument("--k1-reading", default=None, help="k1 reading (default: the library's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--workdir", type=Path, default=None, help="keep stores and runs here")
    ap.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kgbd_"))
    t0 = time.perf_counter()
    per_seed = {s: run_seed(args.data, work, s, args) for s in args.seeds}
    cfg = make_config("kgbd", windows=args.windows, k1_reading=args.k1_reading)
    header = (f"KGBD, probe vs gallery, window level, {len(args.seeds)} split seed(s) "
              f"{args.seeds}, preset variants {args.epochs} epochs with the kgbd preset, "
              f"label-free variants ({', '.join(LABEL_FREE)}) no preset, f 6, windows {cfg.windows}, "
              f"k1 reading {cfg.k1_reading}, torch threads {torch.get_num_threads()}, "
              f"{os.cpu_count()} CPUs, {time.perf_counter() - t0:.0f} s in all")
    print(header)
    print(table(per_seed, args.variants))
    if args.json:
        atomic_write_bytes(args.json, (json.dumps({"header": header, "per_seed": per_seed},
                                                  indent=2, default=str) + "\n").encode())


if __name__ == "__main__":
    main()
