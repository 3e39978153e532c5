"""The training loop every method shares: training windows, epochs, checkpoints, resume.

A method (vid2reid.methods) says how to label an epoch and score a batch; this loop owns the
rest. Only the train split's coordinates reach the method, with the number of each window's
training walk; no identity label ever does. The run folder is vid2reid.runs': claimed and
locked while training (vid2reid.locks), with the training data's hash (vid2reid.store.data_hash)
in config.json and the checkpoint, which a resume checks.

Under torchrun (WORLD_SIZE > 1) the loop is data-parallel (vid2reid.distributed): rank 0
computes each epoch's pseudo-labels and shares them, each global batch of ``--batch-size``
windows is split among the processes (so N processes train on the same batches as one),
DistributedDataParallel averages the gradients, and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vid2reid import distributed, interrupts, runs, safepath
from vid2reid.config import TrainConfig, config_dict
from vid2reid.device import resolve_device
from vid2reid.data import SequenceBank, training_sequences
from vid2reid.errors import ConfigError, Vid2ReidError
from vid2reid.methods import get_method, validate
from vid2reid.methods.base import Method, Plan
from vid2reid.run import load_init
from vid2reid.store import data_hash

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    history: list[dict]
    stopped_early: bool
    latest: Path | None = None  # the LATEST file written (None: the parent is not a runs folder)


def epoch_windows(bank: SequenceBank, cfg: TrainConfig, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """This epoch's training windows (N, f, J, 3) and a key per window.

    The key (sequence index, window number within it) matches a window with
    its counterpart of another epoch when the start offsets were re-drawn.
    """
    seq, start = bank.window_starts(cfg.f, cfg.windows, rng)
    first = np.concatenate([[0], np.flatnonzero(np.diff(seq)) + 1])
    number = np.arange(len(seq)) - np.repeat(first, np.diff(np.append(first, len(seq))))
    return bank.windows(seq, start, cfg.f), (seq << 32) | number


@dataclass
class Stability:
    """The stop-ARI rule: stop once consecutive epochs' pseudo-labels agree for long enough."""

    prev: np.ndarray | None = None  # last epoch's labels
    prev_keys: np.ndarray | None = None  # ... and their windows' keys (epoch_windows)
    stable: int = 0  # epochs in a row with ARI >= stop_ari

    def update(self, labels: np.ndarray | None, keys: np.ndarray, cfg: TrainConfig) -> float | None:
        """Compare ``labels`` with the last epoch's; returns the ARI (None: nothing to compare)."""
        from sklearn.metrics import adjusted_rand_score

        ari = None
        # a checkpoint of 0.1.0 has labels but no window keys: compare only like with like
        comparable = self.prev is not None and (self.prev_keys is not None or (
            labels is not None and len(self.prev) == len(labels)))
        if labels is not None and comparable:
            if self.prev_keys is not None:
                _, a, b = np.intersect1d(np.asarray(self.prev_keys), keys, assume_unique=True,
                                         return_indices=True)
                ari = float(adjusted_rand_score(np.asarray(self.prev)[a], labels[b]))
            else:
                ari = float(adjusted_rand_score(self.prev, labels))
            ok = cfg.stop_ari is not None and ari >= cfg.stop_ari
            self.stable = self.stable + 1 if ok else 0
        self.prev, self.prev_keys = labels, (keys if labels is not None else None)
        return ari

    def done(self, cfg: TrainConfig) -> bool:
        return cfg.stop_ari is not None and self.stable >= cfg.stop_patience


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels while training; the caller's setting afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _training_data(method: Method, cfg: TrainConfig, stores: list[Path | str]
                   ) -> tuple[SequenceBank, list, str]:
    if len(stores) != 1 and not method.several_layouts:
        raise ConfigError(f"method {cfg.method!r} trains on one store; give one --data "
                          f"(several stores of one recording set: --method ms-clr)")
    if method.training_sequences is not None:
        return method.training_sequences(stores, cfg)
    return training_sequences(stores[0], cfg)


def train(cfg: TrainConfig, data: Path | str | list, out: Path | str, resume: bool = True,
          progress: bool = True, force: bool = False) -> TrainResult:
    """Train ``cfg.method`` on the train split of the store at ``data``; write the run to ``out``.

    ``data`` may be a list of stores of the same recordings in different layouts for a method
    that takes several (ms-clr). Resumes from ``out/checkpoint.pt`` when it exists and
    ``resume`` is true, on the same training data only. ``out`` must be new, empty or a run
    unless ``force``; it is locked while training.
    """
    validate(cfg)
    stores = [data] if isinstance(data, (str, Path)) else list(data)
    dist = distributed.from_env()
    if dist.active and cfg.batch_size < dist.world:
        raise ConfigError(f"--batch-size {cfg.batch_size} is smaller than the {dist.world} "
                          f"training processes; each needs at least one window per batch")
    device, created = distributed.init(dist, resolve_device(cfg.device))
    try:
        out = Path(distributed.broadcast(str(out), dist))  # rank 0's choice of run folder
        return _train(cfg, stores, out, resume, progress, force, dist, device)
    finally:
        distributed.shutdown(created)


@contextlib.contextmanager
def _run_folder(out: Path, force: bool, dist: distributed.Dist) -> Iterator[Path]:
    """runs.run_folder on rank 0 (claim, lock, train.log); the other ranks wait for it and
    write nothing. A refusal on rank 0 stops every rank with its message."""
    with contextlib.ExitStack() as stack:
        problem = ""
        if dist.main:
            try:
                stack.enter_context(runs.run_folder(out, force))
            except Vid2ReidError as exc:
                distributed.broadcast(str(exc), dist)
                raise
        problem = str(distributed.broadcast(problem, dist))
        if problem:
            raise ConfigError(f"rank 0 could not open the run folder: {problem}")
        if not dist.main:
            logging.getLogger("vid2reid").setLevel(logging.WARNING)  # rank 0 logs the run
        yield out


def _train(cfg: TrainConfig, stores: list, out: Path, resume: bool, progress: bool, force: bool,
           dist: distributed.Dist, device: torch.device) -> TrainResult:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    latest = safepath.runs_folder(Path(out), force) if dist.main else None  # before it is in it
    if dist.main and latest is None and (Path(out).parent / "LATEST").exists():
        log.warning("%s: not written by vid2reid; left as it is (no LATEST for this run; pass "
                    "--force to replace it)", Path(out).parent / "LATEST")
    with _run_folder(Path(out), force, dist) as out, _deterministic():
        method = get_method(cfg.method)
        if cfg.protocol == "all":
            log.warning("protocol 'all' is NON-STANDARD: the test sequences are also trained on")
        bank, records, layout = _training_data(method, cfg, stores)
        num_joints = bank.frames.shape[1]
        mode = bank.resolve_mode(cfg.f, cfg.windows)
        n = len(bank.window_starts(cfg.f, mode, np.random.default_rng(0))[0])
        log.info("%s on ~%d training windows per epoch (f=%d, windows %s%s, %d joints, "
                 "%d sequences), device %s", cfg.method, n, cfg.f, mode,
                 " (auto)" if cfg.windows == "auto" else "", num_joints, len(records), device)
        walks_hash = data_hash(records)
        run_info = {**config_dict(cfg), "data": str(Path(stores[0]).resolve()), "layout": layout,
                    "data_hash": walks_hash,
                    "num_joints": num_joints, "windows_used": mode, "train_windows": n,
                    "train_sequences": len(records), "stride": max(1, cfg.f // 2),
                    "device_used": str(device), "processes": dist.world,
                    **runs.environment()}
        if method.several_layouts:
            run_info["data_stores"] = [str(Path(d).resolve()) for d in stores]

        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = method.build_model(cfg, num_joints, layout).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        if dist.active:
            log.info("data-parallel: %d processes (%s), global batch %d windows", dist.world,
                     "nccl" if device.type == "cuda" else "gloo", cfg.batch_size)
        start, history, stability, stopped = 0, [], Stability(), False
        ck = runs.load_checkpoint(out, cfg, device) if resume else None
        if ck is not None:
            runs.check_same_data(ck.get("data_hash"), walks_hash, out)
            runs.load_state(model, ck["model"], out / runs.CHECKPOINT, ConfigError)
            opt.load_state_dict(ck["optim"])
            rng.bit_generator.state = ck["rng"]
            torch.set_rng_state(ck["torch_rng"].cpu())
            start, history, stopped = ck["epoch"], ck["history"], ck["stopped"]
            stability = Stability(ck["prev_labels"], ck.get("prev_keys"), ck["stable"])
            log.info("resuming %s after epoch %d (same training data: %d walks, hash %s)", out,
                     start, len(records), walks_hash)
        elif (out / runs.CHECKPOINT).is_file():
            log.warning("%s: existing checkpoint ignored (--no-resume); starting over",
                        out / runs.CHECKPOINT)
        if cfg.init and start == 0:
            load_init(model, cfg, num_joints, layout, device)
        if dist.main:  # after the resume check: a refused resume leaves config.json as it was
            runs.write_json(out / "config.json", run_info)
            runs.rewrite_log(out, history)
        ddp = _data_parallel(method, model, dist, device)

        x = keys = None  # the same windows every epoch unless they are "shifted"
        with logging_redirect_tqdm():  # log lines do not break the progress bar
            bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, unit="epoch",
                       disable=not progress or stopped or not dist.main, dynamic_ncols=True)
            for epoch in bar:
                if stopped:
                    break
                if x is None or mode == "shifted":
                    xs, keys = epoch_windows(bank, cfg, rng)
                    x = torch.from_numpy(xs).to(device)
                    del xs
                row, plan = run_epoch(method, model, opt, x, cfg, rng, epoch, walks=keys >> 32,
                                      dist=dist, ddp=ddp)
                _stop_if_diverged(model, row, epoch, cfg, out)  # before this epoch is saved
                _warn_one_cluster(plan, epoch, cfg, first=dist.main and not any(
                    r.get("clusters") == 1 for r in history[start:]))
                row["label_ari"] = stability.update(plan.labels, keys, cfg)
                history.append(row)
                if stability.done(cfg):
                    stopped = True
                    log.info("pseudo-labels stable (ARI >= %s for %d epochs): stopping after "
                             "epoch %d", cfg.stop_ari, stability.stable, epoch + 1)
                if not dist.main:
                    continue
                runs.save_checkpoint(out, {
                    "epoch": epoch + 1, "model": model.state_dict(), "optim": opt.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "config": config_dict(cfg), "history": history, "stable": stability.stable,
                    "stopped": stopped, "prev_labels": stability.prev,
                    "prev_keys": stability.prev_keys, "data_hash": walks_hash})
                runs.append_log(out, row)
                _log_epoch(row, plan, epoch, cfg)
                bar.set_postfix({"loss": f"{row['loss']:.3f}",
                                 classes_word(cfg): plan.stats.get("clusters"),
                                 "outliers": plan.stats.get("outliers")})
            bar.close()
        if dist.main:
            runs.finish(out, model, cfg, num_joints, layout, len(history), latest)
        return TrainResult(out, len(history), history, stopped,
                           latest / "LATEST" if latest is not None else None)


def _stop_if_diverged(model: torch.nn.Module, row: dict, epoch: int, cfg: TrainConfig,
                      out: Path) -> None:
    """ConfigError when the epoch's loss or the weights are no longer finite: a diverged run
    must not be saved, let alone scored (its NaN features would rank like anything else)."""
    bad = [n for n, p in model.named_parameters()  # buffers (masks) may hold -inf by design
           if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if math.isfinite(row["loss"]) and not bad:
        return
    what = (f"the loss is {row['loss']}" if not math.isfinite(row["loss"])
            else f"weight {bad[0]} is not finite")
    raise ConfigError(f"{out}: epoch {epoch + 1}: training diverged ({what}); this epoch was not "
                      f"saved; train again with a lower --lr (now {cfg.lr:g})")


def _warn_one_cluster(plan: Plan, epoch: int, cfg: TrainConfig, first: bool) -> None:
    if plan.stats.get("clusters") == 1 and first:
        log.warning("epoch %d: DBSCAN put every kept window in ONE cluster, so the prototype "
                    "loss has nothing to contrast; lower --eps (now %s) or raise --min-samples",
                    epoch + 1, cfg.eps)


def classes_word(cfg: TrainConfig) -> str:
    """What an epoch's pseudo-label classes are, in the words the README uses: people (the
    default), walk groups, walks, or (DBSCAN) clusters."""
    return {"people": "people", "walk-groups": "walk groups", "walk-chains": "walk groups",
            "walks": "walks"}.get(cfg.pseudo_labels, "clusters")


def _log_epoch(row: dict, plan: Plan, epoch: int, cfg: TrainConfig) -> None:
    word = classes_word(cfg)
    clustered = ""
    if "clusters" in plan.stats:
        clustered = f" {word} {plan.stats['clusters']}"
        if word == "clusters" or plan.stats.get("outliers"):
            clustered += f" outliers {plan.stats.get('outliers', 0)}"
    log.info("epoch %d/%d loss %.4f%s (%.1fs)", epoch + 1, cfg.epochs, row["loss"], clustered,
             row["epoch_s"])


class _BatchLoss(torch.nn.Module):
    """The method's batch loss as a module, so that DistributedDataParallel can wrap it (the
    methods call parts of their model, such as ``model.encoder``, not ``model(x)``)."""

    def __init__(self, method: Method, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor, idx: np.ndarray, plan: Plan, cfg: TrainConfig):
        return self.method.batch_loss(self.model, x, idx, plan, cfg)


def _data_parallel(method: Method, model: torch.nn.Module, dist: distributed.Dist,
                   device: torch.device) -> torch.nn.Module | None:
    """The batch loss wrapped in DistributedDataParallel (None for one process)."""
    if not dist.active:
        return None
    from torch.nn.parallel import DistributedDataParallel

    # a method may leave parts of its model out of a batch's loss (a predictor with q=1)
    return DistributedDataParallel(_BatchLoss(method, model),
                                   device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def _shared_plan(method: Method, model: torch.nn.Module, x: torch.Tensor, cfg: TrainConfig,
                 rng: np.random.Generator, epoch: int, walks: np.ndarray | None,
                 dist: distributed.Dist) -> Plan:
    """The epoch's plan, computed once on rank 0 and given to every rank with rank 0's random
    state after it, so that all ranks then draw the same batch order."""
    if not dist.active:
        return method.prepare_epoch(model, x, cfg, rng, epoch, walks=walks)
    plan = method.prepare_epoch(model, x, cfg, rng, epoch, walks=walks) if dist.main else None
    plan, rng_state, torch_state = distributed.broadcast(
        (plan, rng.bit_generator.state, torch.get_rng_state()), dist, x.device)
    rng.bit_generator.state = rng_state
    torch.set_rng_state(torch_state.cpu())
    return plan


def run_epoch(method: Method, model: torch.nn.Module, opt: torch.optim.Optimizer,
              x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator, epoch: int,
              walks: np.ndarray | None = None, dist: distributed.Dist | None = None,
              ddp: torch.nn.Module | None = None) -> tuple[dict, Plan]:
    """One epoch: the method's labelling round, then one pass over the kept windows.

    ``walks`` (N,) numbers the training walk of each window (no identity).
    Data-parallel (``dist`` of several processes, ``ddp`` the wrapped batch loss): each rank
    trains its share of every global batch; the loss it backpropagates is scaled by its
    share, so that the averaged gradient is the one of the whole batch.
    Returns the epoch's log row and the method's plan.
    """
    dist = dist or distributed.Dist()
    t0 = time.perf_counter()
    plan = _shared_plan(method, model, x, cfg, rng, epoch, walks, dist)
    t_cluster = time.perf_counter() - t0
    order = rng.permutation(plan.keep)
    bs = cfg.batch_size
    n_batches = max(1, len(order) // bs)  # last partial batch dropped, unless it is the only one
    loss_sum, parts_sum = 0.0, {}
    model.train()
    for b in range(n_batches):
        interrupts.check()  # a Ctrl-C whose KeyboardInterrupt was swallowed stops here
        idx = order[b * bs : (b + 1) * bs]
        if ddp is None:
            loss, parts = method.batch_loss(model, x[torch.as_tensor(idx, device=x.device)], idx,
                                            plan, cfg)
            share = 1.0
        else:
            idx, share = distributed.batch_share(idx, dist)
            loss, parts = ddp(x[torch.as_tensor(idx, device=x.device)], idx, plan, cfg)
        opt.zero_grad(set_to_none=True)
        (loss if ddp is None else loss * (share * dist.world)).backward()
        opt.step()
        loss_sum += float(loss.detach()) * share
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v * share
    if dist.active:  # the whole batches' numbers, as one process would log them
        names = sorted(parts_sum)
        sums = distributed.all_sum([loss_sum] + [parts_sum[k] for k in names], dist, x.device)
        loss_sum, parts_sum = sums[0], dict(zip(names, sums[1:]))
    row = {"epoch": epoch + 1, "loss": loss_sum / n_batches,
           **{k: v / n_batches for k, v in parts_sum.items()}, **plan.stats, "label_ari": None,
           "batches": n_batches, "cluster_s": round(t_cluster, 3),
           "epoch_s": round(time.perf_counter() - t0, 3)}
    return row, plan
