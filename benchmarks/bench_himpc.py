"""Hi-MPC training speed next to SimMC on KGBD-sized windows, and old-vs-new equivalence.

Windows: synthetic walkers (vid2reid.synthetic) mapped onto the ``kinect-v1-20``
layout, f=6, built in memory -- 31,500 windows like the KGBD training split
(164 walkers x 6 walks of 120 frames, stride 3). Settings: the ``kgbd`` preset.

Timing (``--clusters 300,1000``): an epoch is ``prepare_epoch`` (encode +
cluster, real clustering) plus one pass over the kept windows, as in
``vid2reid.train.run_epoch``. The pass is timed per training step (batch_loss,
backward, Adam step) at a FORCED number of pseudo-label clusters C (the loss
cost grows with C; real KGBD runs reach ~1,100), keeping the windows the real
clustering kept. Methods take turns step by step, so a machine shared with
other jobs slows them alike; medians are reported, and the epoch estimate is
``median prepare + batches x median step``. ``gflop_per_step`` is the matrix
work of one Hi-MPC step (``himpc_step_gflop``): the floor the loss cannot go
under in float32 with the same maths.

On a machine whose cores are shared with other jobs, run with
``OMP_WAIT_POLICY=PASSIVE`` (or ``--threads 1``) as well: with the default
spinning OpenMP threads a Hi-MPC step (C=300, load 9-10 on 2 cores) took
2.2-2.4 s, with passive waiting 0.8-1.0 s, with one thread 0.8-1.1 s.

``--baseline REV`` adds vid2reid/himpc.py as of git revision REV (e.g. the
commit before a speed change) as a third method; ``--check-epochs E`` then also
trains E real epochs in lockstep, comparing both versions' pseudo-labels at
every epoch and their losses and gradients at every step (``check_equivalence``).

    .venv/bin/python benchmarks/bench_himpc.py [--n 31500] [--clusters 300,1000]
        [--steps 9] [--prepare-repeats 2] [--threads N] [--baseline REV]
        [--check-epochs 0] [--check-n 8000] [--out bench_himpc.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# h36m-17 joint of the synthetic walker for each kinect-v1-20 joint (hands and feet are added)
_FROM_H36M = {"hip_center": "pelvis", "spine": "spine", "shoulder_center": "thorax",
              "head": "head", "l_shoulder": "l_shoulder", "l_elbow": "l_elbow",
              "l_wrist": "l_wrist", "r_shoulder": "r_shoulder", "r_elbow": "r_elbow",
              "r_wrist": "r_wrist", "l_hip": "l_hip", "l_knee": "l_knee", "l_ankle": "l_ankle",
              "r_hip": "r_hip", "r_knee": "r_knee", "r_ankle": "r_ankle"}


def kinect_windows(n: int, f: int = 6, seed: int = 0) -> np.ndarray:
    """n windows (n, f, 20, 3), root-relative, of synthetic walkers on the Kinect v1 layout."""
    from vid2reid.data import cut_windows, normalise
    from vid2reid.layouts import get_layout
    from vid2reid.synthetic import random_body, walk

    h36m, kin = get_layout("h36m-17").joints, get_layout("kinect-v1-20").joints
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < n:
        body = random_body(rng)
        for cond in ("nm",) * 6:
            j = walk(body, 120, rng, cond)
            k = np.zeros((len(j), len(kin), 3), np.float32)
            for i, name in enumerate(kin):
                if name in _FROM_H36M:
                    k[:, i] = j[:, h36m.index(_FROM_H36M[name])]
            for s in "lr":
                wrist, elbow = k[:, kin.index(f"{s}_wrist")], k[:, kin.index(f"{s}_elbow")]
                k[:, kin.index(f"{s}_hand")] = wrist + 0.3 * (wrist - elbow)
                k[:, kin.index(f"{s}_foot")] = k[:, kin.index(f"{s}_ankle")] + [0.12, -0.05, 0.0]
            w = cut_windows(normalise(k, "kinect-v1-20"), f, f // 2)
            out.append(w)
            total += len(w)
    return np.concatenate(out)[:n]


def load_revision(rev: str) -> ModuleType:
    """vid2reid/himpc.py as of git revision ``rev``, imported as a separate module."""
    src = subprocess.run(["git", "show", f"{rev}:vid2reid/himpc.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "himpc_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("himpc_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def himpc_step_gflop(c: int, m: int = 8, b: int = 256, f: int = 6, h: int = 256,
                     levels: int = 3) -> float:
    """Matrix-multiply GFLOP of one Hi-MPC training step (cosine logits), forward + backward.

    Per level: frames through the M heads (M*B*f*H*H: forward, weight and input
    gradients), prototypes through the heads (M*C*H*H: forward and weight
    gradient) and the logits (M*B*f*H*C: forward and both gradients).
    """
    per_level = 3 * m * b * f * h * h + 2 * m * c * h * h + 3 * m * b * f * h * c
    return round(2 * levels * per_level / 1e9, 1)


def forced_plan(method: ModuleType, model: torch.nn.Module, x: torch.Tensor, plan, c: int,
                seed: int = 0):
    """``plan`` with the kept windows relabelled into c clusters (every level/view)."""
    from torch.nn import functional as F

    from vid2reid import cluster

    from vid2reid.methods import simmc

    rng = np.random.default_rng(seed)
    keep = plan.keep

    def labels() -> np.ndarray:
        lab = np.full(len(x), -1)
        lab[keep] = rng.permutation(np.arange(len(keep)) % c)  # every cluster non-empty
        return lab

    if method is simmc:
        feats = simmc.encode_views(model, x, plan.masks)
        lab = np.stack([labels() for _ in range(len(feats))])
        plan.targets = torch.from_numpy(lab)
        plan.protos = [F.normalize(cluster.prototypes(feats[i], lab[i]), dim=1)
                       for i in range(len(feats))]
    else:
        feats = method.sequence_features(model, x)
        plan.level_labels = {lv: labels() for lv in model.levels}
        plan.prototypes = {lv: cluster.prototypes(feats[lv], plan.level_labels[lv])
                           for lv in model.levels}
    return plan


def _median(v: list[float]) -> float:
    return round(float(np.median(v)), 4)


def time_methods(methods: dict[str, ModuleType], x: torch.Tensor, clusters: list[int],
                 steps: int, prepare_repeats: int, seed: int = 0) -> dict:
    """Per method: prepare_epoch time, then per forced C the median training-step time."""
    from vid2reid.settings import make_config

    cfgs, models, opts, plans = {}, {}, {}, {}
    for name, mod in methods.items():
        cfgs[name] = make_config("kgbd", method="simmc" if name == "simmc" else "himpc",
                                 seed=seed, device="cpu")
        torch.manual_seed(seed)
        models[name] = mod.build_model(cfgs[name], x.shape[2], "kinect-v1-20")
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=cfgs[name].lr)
    prep: dict[str, list[float]] = {n: [] for n in methods}
    for _ in range(prepare_repeats):
        for name, mod in methods.items():
            t0 = time.perf_counter()
            plans[name] = mod.prepare_epoch(models[name], x, cfgs[name],
                                            np.random.default_rng(seed), 0)
            prep[name].append(time.perf_counter() - t0)
            print(json.dumps({"prepare": name, "s": round(prep[name][-1], 2),
                              "stats": plans[name].stats}), file=sys.stderr)
    out = {"prepare_s": {n: _median(v) for n, v in prep.items()},
           "prepare_all_s": {n: [round(t, 2) for t in v] for n, v in prep.items()},
           "kept": {n: int(len(p.keep)) for n, p in plans.items()},
           "real_clusters": {n: p.stats.get("clusters") for n, p in plans.items()}, "per_c": []}
    for c in clusters:
        forced = {n: forced_plan(methods[n], models[n], x, plans[n], c, seed) for n in methods}
        step_s: dict[str, list[float]] = {n: [] for n in methods}
        losses: dict[str, list[float]] = {n: [] for n in methods}
        rng = np.random.default_rng(seed)
        for s in range(steps + 1):  # the first step of each method warms up, not counted
            for name, mod in methods.items():
                idx = np.sort(rng.choice(forced[name].keep, cfgs[name].batch_size, replace=False))
                models[name].train()
                t0 = time.perf_counter()
                loss, _ = mod.batch_loss(models[name], x[torch.as_tensor(idx)], idx, forced[name],
                                         cfgs[name])
                opts[name].zero_grad(set_to_none=True)
                loss.backward()
                opts[name].step()
                if s:
                    step_s[name].append(time.perf_counter() - t0)
                    losses[name].append(float(loss.detach()))
        row = {"clusters": c, "gflop_per_step": himpc_step_gflop(c),
               "step_s": {n: _median(v) for n, v in step_s.items()},
               "step_all_s": {n: [round(t, 3) for t in v] for n, v in step_s.items()},
               "epoch_estimate_s": {}}
        for n in methods:
            batches = max(1, out["kept"][n] // cfgs[n].batch_size)
            row["epoch_estimate_s"][n] = round(out["prepare_s"][n] + batches * row["step_s"][n], 1)
        print(json.dumps({k: row[k] for k in ("clusters", "gflop_per_step", "step_s",
                                              "epoch_estimate_s")}),
              file=sys.stderr)
        out["per_c"].append(row)
    return out


def check_equivalence(new: ModuleType, old: ModuleType, x: torch.Tensor, epochs: int,
                      seed: int = 0) -> dict:
    """Train ``epochs`` real epochs in lockstep and compare the two versions at every stage.

    One model, trained with the new version's gradients as ``run_epoch`` does; at
    every epoch both versions cluster the same model (pseudo-labels must be
    identical), and at every step both compute loss and gradients on the same
    weights and batch (they must agree up to float rounding). Both versions' steps
    are timed side by side. (Two separately trained runs drift apart after the
    first epoch -- float rounding decides borderline DBSCAN pairs -- whichever
    code runs; the lockstep comparison isolates what the code change does.)
    """
    from vid2reid.settings import make_config

    cfg = make_config("kgbd", method="himpc", seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = new.build_model(cfg, x.shape[2], "kinect-v1-20")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(epochs):
        plan = new.prepare_epoch(model, x, cfg, rng, epoch)
        plan_old = old.prepare_epoch(model, x, cfg, rng, epoch)
        row = {"epoch": epoch + 1, "clusters": {lv: plan.stats[f"clusters_{lv}"]
                                                for lv in model.levels},
               "kept": int(len(plan.keep)),
               "labels_identical": {lv: bool(np.array_equal(plan.level_labels[lv],
                                                            plan_old.level_labels[lv]))
                                    for lv in model.levels},
               "keep_identical": bool(np.array_equal(plan.keep, plan_old.keep)),
               "prototypes_max_abs_diff": max(float((plan.prototypes[lv]
                                                     - plan_old.prototypes[lv]).abs().max())
                                              for lv in model.levels)}
        order = rng.permutation(plan.keep)
        n_batches = max(1, len(order) // cfg.batch_size)
        loss_diff, grad_diff, losses = [], [], []
        times: dict[str, list[float]] = {"new": [], "old": []}
        model.train()
        for b in range(n_batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb = x[torch.as_tensor(idx)]
            out = {}
            for name, mod in (("old", old), ("new", new)):  # new last: its gradients train
                t0 = time.perf_counter()
                loss, logs = mod.batch_loss(model, xb, idx, plan, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                times[name].append(time.perf_counter() - t0)
                out[name] = (float(loss.detach()), logs,
                             {k: p.grad.clone() for k, p in model.named_parameters()})
            (ln, logs_n, gn), (lo, logs_o, go) = out["new"], out["old"]
            loss_diff.append(max(abs(logs_n[k] - logs_o[k]) / abs(logs_o[k]) for k in logs_o))
            grad_diff.append(max(float((gn[k] - go[k]).norm() / go[k].norm().clamp_min(1e-30))
                                 for k in go))
            losses.append(ln)
            opt.step()
        row.update({"batches": n_batches, "loss": float(np.mean(losses)),
                    "max_loss_rel_diff": max(loss_diff), "max_grad_rel_diff": max(grad_diff),
                    "median_step_s": {k: _median(v) for k, v in times.items()}})
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    return {"epochs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=31500)
    ap.add_argument("--clusters", default="300,1000")
    ap.add_argument("--steps", type=int, default=9)
    ap.add_argument("--prepare-repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--baseline", default=None, help="git revision of vid2reid/himpc.py to compare")
    ap.add_argument("--check-epochs", type=int, default=0)
    ap.add_argument("--check-n", type=int, default=8000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from vid2reid.methods import himpc, simmc

    x = torch.from_numpy(kinect_windows(args.n))
    methods = {"himpc": himpc, "simmc": simmc}
    if args.baseline:
        methods["himpc_baseline"] = load_revision(args.baseline)
    result = {"benchmark": "himpc", "n": args.n, "f": 6, "joints": 20, "preset": "kgbd",
              "baseline": args.baseline,
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                          "load_avg_start": os.getloadavg(), "platform": platform.platform(),
                          "torch": torch.__version__}}
    clusters = [int(c) for c in args.clusters.split(",") if c]
    if clusters:
        result["timing"] = time_methods(methods, x, clusters, args.steps, args.prepare_repeats)
    if args.check_epochs and args.baseline:
        xc = x if args.check_n == args.n else torch.from_numpy(kinect_windows(args.check_n))
        result["equivalence"] = check_equivalence(himpc, methods["himpc_baseline"], xc,
                                                  args.check_epochs)
    result["machine"]["load_avg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
