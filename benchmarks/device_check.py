"""One prepared check of every device path: extraction, training, clustering, evaluation.

Runs each path briefly on the device it is given (``--device cuda[:N]``, or ``cpu`` for the
dry run), compares it with the same computation on the CPU where that is meaningful, and prints
one table: path, size, throughput, the target beside it, peak GPU memory, agreement with the
CPU, and ok / failed (with the one-line error) / skipped (with why).

    python benchmarks/device_check.py --device cuda                  # the GPU check, ~8 min max
    python benchmarks/device_check.py --device cuda --budget 240     # a shorter slot
    python benchmarks/device_check.py --device cpu --quick           # CI-size dry run

Every row goes through the library's own functions, as ``vid2reid extract / train / eval`` do:

- ``extract fp32`` / ``extract bf16``: ``vid2reid.pose.extract.extract_video`` (what the batch
  driver runs per video) with the MMPose backend (RTMPose-m + VideoPose3D) on clips from
  ``sample_videos/`` (RANDOM weights unless ``--checkpoint-2d/--checkpoint-3d`` are given:
  speed does not depend on the weight values).
  Agreement: on the frames of one clip, the device's 2D keypoints against the CPU's (same
  frames, same boxes, same weights), and the device lifter's 3D joints against the CPU lifter's
  from the same 2D keypoints. bf16 is compared with CPU fp32 only with real weights (with
  random weights the differences say nothing).
- ``train <method>``: ``vid2reid.train.train`` for one epoch on a synthetic store (sized like
  KGBD; ``--quick``: tiny), the paper's KGBD settings (``--preset kgbd``: f = 6, DBSCAN
  pseudo-labels), on the store converted to KGBD's Kinect-v1 20-joint layout (MS-CLR: that
  store and the original H36M-17 store). Agreement: the first batch's loss of
  ``vid2reid.train.run_epoch`` on the tiny store, on the device and on the CPU, from the same
  seed (same windows, masks, initial weights), within a relative 1e-4; with the label-free
  settings, whose first-epoch pseudo-labels are the walks, so only the arithmetic can differ.
- ``cluster walk-groups`` / ``cluster dbscan``: ``vid2reid.labels.pseudo_labels`` on features
  held on the device (walk groups: torch kNN on the device; DBSCAN: k-reciprocal kNN on the
  CPU). Agreement: identical labels.
- ``eval rankings`` / ``eval 100k x 100k``: a run's embedder (``open_run(run).embedder(device)``)
  on test windows in chunks (``vid2reid.evaluate``'s own chunking), then
  ``vid2reid.metrics.rank_metrics`` (chunked, on the CPU). Agreement: features within 1e-4 of
  the CPU's, identical CMC/mAP and identical top-10 ranking of every probe.

The targets are those of an H100-class GPU; on a CPU they are printed for reference only.
``--budget`` keeps the whole run inside that many seconds: a row whose estimated cost does not
fit in what is left is skipped, and the table says so (a row that has started runs to its end).
Never needs the internet. ``--json FILE`` also writes every row as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLES = REPO / "sample_videos"
METHODS = ("simmc", "himpc", "sm-sge", "ms-clr")

# Synthetic stores (vid2reid.synthetic, same-people protocol like the Kinect data sets).
# KGBD: 164 people, 331 training walks of ~580 frames -> ~63k f=6 training windows per epoch.
KGBD_SIZE = dict(n_subjects=164, walks={"nm": 3}, train_walks={"nm": 2}, frames=(550, 610))
QUICK_SIZE = dict(n_subjects=6, walks={"nm": 2}, train_walks={"nm": 2}, frames=(40, 50))

TARGETS = {
    "extract": (">= 1000 frames/s", 1000.0),  # RTMPose-m + lifter, bf16, batched, H100-class
    "simmc": ("< 2 s/epoch, KGBD size", 2.0),
    "himpc": ("< 5 s/epoch, KGBD size", 5.0),  # ~2,000 prototypes on real KGBD
    "sm-sge": ("-", None),
    "ms-clr": ("-", None),
    "eval": ("100k x 100k, no OOM", None),
}
LOSS_RTOL = 1e-4  # first-batch loss, device vs CPU (float32 sums in another order)
FEAT_ATOL = 1e-4  # eval features, device vs CPU
PX_TOL, MM_TOL = 1.0, 1.0  # extraction fp32: 2D keypoints within 1 px, 3D joints within 1 mm ...
WITHIN_SHARE = 0.99  # ... for at least 99 % of them
BF16_PX_MEDIAN, BF16_MM_MEDIAN = 2.0, 10.0  # bf16 with real weights: medians within these
CALIBRATE = 10_000  # eval 100k x 100k: first ranks 10k x 10k to see whether the rest fits


@dataclass
class Row:
    """One line of the table."""

    path: str
    size: str = ""
    rate: str = ""
    target: str = ""
    peak_mb: float | None = None
    agreement: str = ""
    status: str = "not run"  # then: ok | MISMATCH | FAILED | skipped
    note: str = ""
    numbers: dict = field(default_factory=dict)


class Device:
    """The device under test: timing with synchronisation, peak memory per row."""

    def __init__(self, name: str):
        import torch

        self.torch = torch
        self.name = name
        self.dev = torch.device(name)
        self.cuda = self.dev.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.dev)

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats(self.dev)

    def peak_mb(self) -> float | None:
        if not self.cuda:
            return None
        self.sync()
        return self.torch.cuda.max_memory_allocated(self.dev) / 2**20

    def timed(self, fn: Callable, *args, **kwargs) -> tuple[object, float]:
        """``fn(*args)`` and its wall time, the device synchronised before and after."""
        self.sync()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        return out, time.perf_counter() - t0

    @contextlib.contextmanager
    def strict_fp32(self):
        """TF32 off while results are compared with the CPU (cuDNN convolutions and RNNs use it
        by default on Ampere and newer: ~1e-3 relative error, not a device bug); timings run with
        torch's defaults, as users' runs do."""
        b = self.torch.backends
        saved = b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32
        b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = saved

    def describe(self) -> str:
        if self.cuda:
            p = self.torch.cuda.get_device_properties(self.dev)
            return f"{self.name}: {p.name}, {p.total_memory / 2**30:.0f} GiB"
        return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def check_device(name: str) -> str | None:
    """None when ``name`` can be used, else a one-line reason."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        return f"--device {name}: not a torch device ({exc})"
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        return f"--device {name}: only cpu and cuda[:N] are checked"
    if not torch.cuda.is_available():
        return (f"--device {name}: PyTorch sees no CUDA GPU (torch {torch.__version__}, CUDA "
                f"build {torch.version.cuda or 'none'}); run on a GPU machine or use --device cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        return f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
    return None


# ---------------------------------------------------------------- data


def make_stores(work: Path, size: dict, seed: int = 0) -> tuple[Path, Path]:
    """A synthetic store (h36m-17) and the same walks in KGBD's kinect-v1-20 layout."""
    from vid2reid.convert import convert_store
    from vid2reid.synthetic import make_synthetic_store

    h36m = make_synthetic_store(work / "h36m", seed=seed, **size)
    convert_store(h36m, "kinect-v1-20", work / "kinect", progress=False)
    return Path(h36m), work / "kinect"


def sample_clips(n: int) -> list[Path]:
    """The first n walking clips of sample_videos/ (normal walks first; background clips are
    found by the extractor next to them)."""
    from vid2reid.pose.names import list_videos

    videos = [v for v, _ in list_videos([SAMPLES])[0]]
    videos.sort(key=lambda p: ("-nm-" not in p.name, p.name))
    return videos[:n]


# ---------------------------------------------------------------- extraction


def _frames_and_boxes(video: Path) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int]]:
    """The frames of one clip with a person box (the extractor's default box finder)."""
    from vid2reid.pose.boxes import make_box_finder
    from vid2reid.pose.names import background_clip_for, parse_video_name
    from vid2reid.pose.video import read_frames

    frames = read_frames(video)
    finder = make_box_finder("bgsub", video, background_clip_for(video, parse_video_name(video)))
    kept, boxes = [], []
    for frame in frames:
        box = finder(frame)
        if box is not None:
            kept.append(frame)
            boxes.append(np.asarray(box, np.float32))
    if not kept:
        raise RuntimeError(f"{video}: no person box in any frame")
    h, w = frames[0].shape[:2]
    return kept, np.stack(boxes), (w, h)


def _same_weights(a, b) -> bool:
    """Both backends hold the same 2D and lifter weights (compared on the CPU)."""
    for ma, mb in ((a.model2d, b.model2d), (a.model3d, b.model3d)):
        # bf16 wraps the backbone (``backbone.inner.``): compare the same tensors by name
        sa, sb = ({k.replace(".inner.", "."): v for k, v in m.state_dict().items()}
                  for m in (ma, mb))
        if sa.keys() != sb.keys():
            return False
        for k in sa:
            if not np.array_equal(sa[k].detach().float().cpu().numpy(),
                                  sb[k].detach().float().cpu().numpy()):
                return False
    return True


def extraction_rows(dev: Device, args: argparse.Namespace, work: Path, budget: Budget) -> list[Row]:
    """extract fp32 and extract bf16: throughput through extract_video, agreement with the CPU."""
    import torch

    from vid2reid.pose.extract import ExtractSettings, extract_video, make_backend
    from vid2reid.pose.mmpose_backend import MMPoseSettings

    random_weights = args.checkpoint_2d is None or args.checkpoint_3d is None
    weights = "RANDOM weights (no checkpoint given)" if random_weights else "given checkpoints"
    base = MMPoseSettings(checkpoint_2d=args.checkpoint_2d, checkpoint_3d=args.checkpoint_3d,
                          allow_random_weights=random_weights, device="cpu")
    clips = sample_clips(args.clips)
    frames, boxes, size = _frames_and_boxes(clips[0])
    rows, ref = [], {}

    def build(settings: MMPoseSettings):
        torch.manual_seed(0)  # random weights: the same on every device
        return make_backend(ExtractSettings(backend="mmpose", mmpose=settings))

    for precision in ("fp32", "bf16"):
        row = Row(f"extract {precision}", target=TARGETS["extract"][0] if precision == "bf16"
                  else "- (see bf16)", note=weights)
        rows.append(row)
        if not budget.fits(row, "extract"):
            continue
        try:
            settings = replace(base, device=dev.name, precision=precision)
            if "cpu" not in ref:
                cpu = build(base)
                k2, _ = cpu.keypoints_2d(frames, boxes)
                ref.update(cpu=cpu, k2=k2, k3=cpu.lift(k2, boxes, size))
            dev.reset_peak()
            backend = ref["cpu"] if settings == base else build(settings)
            if not _same_weights(ref["cpu"], backend):
                raise RuntimeError("device and CPU backends got different weights")
            with dev.strict_fp32():
                k2, _ = backend.keypoints_2d(frames, boxes)
                k3 = backend.lift(ref["k2"], boxes, size)  # the lifter on the CPU's 2D keypoints
            px = np.linalg.norm(k2 - ref["k2"], axis=-1)
            mm = 1000 * np.linalg.norm(k3 - ref["k3"], axis=-1)
            row.numbers.update(px_median=float(np.median(px)), px_max=float(px.max()),
                               mm_median=float(np.median(mm)), mm_max=float(mm.max()),
                               share_px=float((px <= PX_TOL).mean()),
                               share_mm=float((mm <= MM_TOL).mean()))
            text = (f"2D {100 * row.numbers['share_px']:.1f}% <={PX_TOL:g}px (max "
                    f"{px.max():.2g}), 3D {100 * row.numbers['share_mm']:.1f}% <={MM_TOL:g}mm "
                    f"(max {mm.max():.2g}), {len(frames)} frames")
            if precision == "fp32":
                good = min(row.numbers["share_px"], row.numbers["share_mm"]) >= WITHIN_SHARE
                row.agreement = text
            elif random_weights:
                good = True
                row.agreement = f"not checked (random weights): 2D median {np.median(px):.2g}px"
            else:
                good = np.median(px) <= BF16_PX_MEDIAN and np.median(mm) <= BF16_MM_MEDIAN
                row.agreement = (f"vs CPU fp32: 2D median {np.median(px):.2g}px, 3D "
                                 f"{np.median(mm):.2g}mm")
            # throughput: what the batch driver runs per video (extract_video: decode, boxes,
            # 2D in batches, gap filling, lifter, atomic writes), models already loaded
            settings_x = ExtractSettings(out=work / f"extract-{precision}", backend="mmpose",
                                         workers=1, mmpose=settings)
            outcomes, seconds = dev.timed(lambda b=backend, s=settings_x: [
                extract_video(v, None, b, s) for v in clips])
            bad = [o for o in outcomes if o.status not in ("done", "too-short", "no-person")]
            if bad:
                raise RuntimeError(f"{bad[0].video}: {bad[0].status} {bad[0].message}")
            n_frames = sum(o.frames for o in outcomes)
            fps = n_frames / seconds
            row.size = f"{len(clips)} clips, {n_frames} frames"
            row.rate = f"{fps:.1f} frames/s"
            if precision == "bf16" and not args.quick:
                row.rate += " MET" if fps >= TARGETS["extract"][1] else " missed"
            row.numbers.update(frames=n_frames, seconds=seconds, frames_per_s=fps)
            row.peak_mb = dev.peak_mb()
            row.status = "ok" if good else "MISMATCH"
            if backend is not ref["cpu"]:
                del backend
        except Exception as exc:  # one row fails, the others still run
            fail(row, exc)
    ref.clear()
    return rows


# ---------------------------------------------------------------- training


class _FirstBatchDone(Exception):
    """Raised by the observer after the first batch: nothing more of the epoch is needed."""


def train_config(method: str, device: str, epochs: int = 1, preset: str | None = "kgbd"):
    """The paper's KGBD settings for ``method`` (f = 6, DBSCAN pseudo-labels); ``preset=None``:
    the label-free defaults at f = 6 (walk groups; in the first epoch every walk is a class)."""
    from vid2reid.settings import make_config

    if preset is None:
        return make_config(None, method=method, f=6, epochs=epochs, seed=0, device=device)
    return make_config(preset, method=method, epochs=epochs, seed=0, device=device)


def _stores_for(method: str, stores: tuple[Path, Path]) -> list[Path]:
    h36m, kinect = stores
    return [kinect, h36m] if method == "ms-clr" else [kinect]


def first_batch(method_name: str, stores: list[Path], device: str) -> dict:
    """The first batch's loss of ``run_epoch`` from the state ``train`` starts in (same seed:
    same windows, masks and initial weights on every device), and the epoch's pseudo-labels.

    Label-free settings: in the first epoch the pseudo-labels are the walks themselves, so
    they cannot differ between devices and the loss compares the arithmetic alone (DBSCAN on
    near-tied untrained features could put a boundary window elsewhere; the clustering rows
    compare labels on their own)."""
    import torch

    from vid2reid.methods import get_method
    from vid2reid.train import _training_data, epoch_windows, run_epoch

    cfg = train_config(method_name, device, preset=None)
    method = get_method(method_name)
    bank, _, layout = _training_data(method, cfg, stores)
    torch.manual_seed(cfg.seed)  # as vid2reid.train.train does, in the same order
    rng = np.random.default_rng(cfg.seed)
    model = method.build_model(cfg, bank.frames.shape[1], layout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xs, keys = epoch_windows(bank, cfg, rng)
    x = torch.from_numpy(xs).to(device)
    seen: dict = {}

    def batch_loss(model, x_batch, idx_batch, plan, cfg):
        loss, _ = method.batch_loss(model, x_batch, idx_batch, plan, cfg)
        if loss.device != x_batch.device:
            raise RuntimeError(f"loss on {loss.device}, batch on {x_batch.device}")
        labels = getattr(plan, "labels", None)
        seen.update(loss=float(loss.detach()), windows=len(x),
                    labels=None if labels is None else np.asarray(labels).copy(),
                    clusters=plan.stats.get("clusters"))
        raise _FirstBatchDone

    observer = replace(method, batch_loss=batch_loss)  # the method, its first loss recorded
    try:
        run_epoch(observer, model, opt, x, cfg, rng, 0, walks=keys >> 32)
    except _FirstBatchDone:
        pass
    if "loss" not in seen:
        raise RuntimeError("run_epoch ran no batch")
    return seen


def compare_first_batch(a: dict, b: dict) -> tuple[bool, str]:
    """Same pseudo-labels and the same loss within LOSS_RTOL."""
    rel = abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-12)
    same_labels = (a["labels"] is None and b["labels"] is None) or (
        a["labels"] is not None and b["labels"] is not None
        and np.array_equal(a["labels"], b["labels"]))
    text = (f"1st-batch loss {a['loss']:.6g} vs {b['loss']:.6g} (rel {rel:.0e})"
            + ("" if a["labels"] is None else
               f"; labels {'identical' if same_labels else 'DIFFER'}"))
    return rel <= LOSS_RTOL and same_labels, text


def training_rows(dev: Device, args: argparse.Namespace, work: Path, stores: tuple[Path, Path],
                  tiny: tuple[Path, Path], size_name: str, budget: Budget) -> list[Row]:
    """train <method>: one epoch through vid2reid.train.train; first-batch loss vs the CPU."""
    from vid2reid.train import train

    rows = []
    for name in METHODS:
        text, limit = TARGETS[name]
        row = Row(f"train {name}", target=text,
                  note="timed with --preset kgbd (DBSCAN labels); loss compared label-free")
        rows.append(row)
        if not budget.fits(row, "train-" + name):
            continue
        try:
            with dev.strict_fp32():
                ours = first_batch(name, _stores_for(name, tiny), dev.name)
            ref = first_batch(name, _stores_for(name, tiny), "cpu")
            good, row.agreement = compare_first_batch(ours, ref)
            dev.reset_peak()
            cfg = train_config(name, dev.name, epochs=1)
            result, seconds = dev.timed(train, cfg, _stores_for(name, stores), work / f"run-{name}",
                                        resume=False, progress=False)
            ep = result.history[0]
            row.peak_mb = dev.peak_mb()
            row.rate = f"{ep['epoch_s']:.2f} s/epoch ({ep['cluster_s']:.2f} s labelling)"
            clusters = ep.get("clusters")
            windows = ep.get("windows", ep.get("kept", 0) + ep.get("outliers", 0))
            row.size = (f"{size_name}: {windows} windows"
                        + (f", {clusters} clusters" if clusters is not None else ""))
            row.numbers.update(epoch_s=ep["epoch_s"], cluster_s=ep["cluster_s"],
                               clusters=clusters, train_call_s=seconds, loss=ep["loss"],
                               first_batch_loss=ours["loss"], first_batch_loss_cpu=ref["loss"])
            if limit is not None and size_name == "KGBD-size":
                row.rate += " MET" if ep["epoch_s"] < limit else " missed"
            row.status = "ok" if good else "MISMATCH"
        except Exception as exc:
            fail(row, exc)
    return rows


# ---------------------------------------------------------------- clustering


def _walk_features(n_walks: int, per_walk: int, dim: int = 256, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Window features (N, dim) of n_walks walks by n_walks // 4 people, and each window's walk."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(max(1, n_walks // 4), dim)).astype(np.float32)
    walk_centre = people[np.arange(n_walks) % len(people)] + 0.7 * rng.normal(
        size=(n_walks, dim)).astype(np.float32)
    walk = np.repeat(np.arange(n_walks), per_walk)
    feats = walk_centre[walk] + 0.5 * rng.normal(size=(len(walk), dim)).astype(np.float32)
    return feats, walk


def clustering_rows(dev: Device, quick: bool, budget: Budget) -> list[Row]:
    """pseudo_labels on device features: walk groups (torch kNN) and DBSCAN; labels vs the CPU."""
    import torch

    from vid2reid.labels import pseudo_labels
    from vid2reid.settings import make_config

    cases = [("cluster walk-groups",
              make_config(None, walk_warmup=0, pseudo_labels="walk-groups"),
              (60, 20) if quick else (13_640, 8), "torch kNN of walk means on the device"),
             ("cluster dbscan", make_config("kgbd"),
              (50, 20) if quick else (1_000, 20), "k-reciprocal kNN + DBSCAN (CPU)")]
    rows = []
    for name, cfg, (walks, per), note in cases:
        row = Row(name, target="-", note=note)
        rows.append(row)
        if not budget.fits(row, name):
            continue
        try:
            feats, walk = _walk_features(walks, per)
            row.size = f"{walks} walks, {len(walk)} windows"
            dev.reset_peak()
            x = torch.from_numpy(feats).to(dev.dev)
            with dev.strict_fp32():
                labels, seconds = dev.timed(pseudo_labels, [x], walk, cfg, 5)
            row.peak_mb = dev.peak_mb()
            ref = pseudo_labels([torch.from_numpy(feats)], walk, cfg, 5)
            same = np.array_equal(labels[0], ref[0])
            groups = int(labels[0].max()) + 1
            row.rate = f"{seconds:.2f} s ({groups} groups)"
            row.agreement = "labels identical" if same else "labels DIFFER"
            row.numbers.update(seconds=seconds, groups=groups)
            row.status = "ok" if same else "MISMATCH"
        except Exception as exc:
            fail(row, exc)
    return rows


# ---------------------------------------------------------------- evaluation


def _test_windows(store: Path, f: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test windows (N, f, J, 3) of a store, with each window's subject and video key."""
    from vid2reid.data import make_windows
    from vid2reid.store import load_joints, read_manifest

    recs = [r for r in read_manifest(store) if r.split == "test"]
    win = make_windows(recs, [load_joints(store, r) for r in recs], f, stride=stride)
    subject = np.array([recs[i].subject for i in win.seq])
    video = np.array(["|".join(recs[i].video_key) for i in win.seq])
    return win.x, subject, video


def _top10(feats: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each probe's 10 nearest items (squared Euclidean, own video left out; small sets only)."""
    d = (feats ** 2).sum(1)[:, None] - 2 * feats @ feats.T + (feats ** 2).sum(1)[None, :]
    d[groups[:, None] == groups[None, :]] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :10]


def eval_rows(dev: Device, args: argparse.Namespace, work: Path, stores: tuple[Path, Path],
              tiny: tuple[Path, Path], budget: Budget) -> list[Row]:
    """A run's embedder on the device vs the CPU (rankings), then 100k x 100k in chunks."""
    from vid2reid.metrics import rank_metrics
    from vid2reid.run import open_run
    from vid2reid.train import train

    rows = []
    row = Row("eval rankings", target="-", note="a 1-epoch SimMC run's embedder")
    rows.append(row)
    embed = None
    if budget.fits(row, "eval-rankings"):
        try:
            run = work / "run-eval"
            train(train_config("simmc", dev.name), [tiny[1]], run, resume=False, progress=False)
            x, subject, video = _test_windows(tiny[1], 6, 2)
            dev.reset_peak()
            embed = open_run(run).embedder(dev.name).windows
            with dev.strict_fp32():
                ours, seconds = dev.timed(embed, x)
            row.peak_mb = dev.peak_mb()
            ref = open_run(run).embedder("cpu").windows(x)
            diff = float(np.abs(ours - ref).max())
            m_ours = rank_metrics(subject, subject, ours, ours, probe_groups=video,
                                  gallery_groups=video).as_dict()
            m_ref = rank_metrics(subject, subject, ref, ref, probe_groups=video,
                                 gallery_groups=video).as_dict()
            same_rank = float((_top10(ours, video) == _top10(ref, video)).all(axis=1).mean())
            good = diff <= FEAT_ATOL and m_ours == m_ref and same_rank == 1.0
            row.size = f"{len(x)} x {len(x)} windows"
            row.rate = f"{len(x) / seconds:.0f} windows/s embedded"
            row.agreement = (f"features max diff {diff:.0e}, CMC/mAP "
                             f"{'identical' if m_ours == m_ref else 'DIFFER'}, top-10 same for "
                             f"{100 * same_rank:.1f}% of probes")
            row.numbers.update(max_feature_diff=diff, metrics=m_ours, metrics_cpu=m_ref,
                               same_top10=same_rank)
            row.status = "ok" if good else "MISMATCH"
        except Exception as exc:
            fail(row, exc)

    n = 2_000 if args.quick else 100_000
    row = Row(f"eval {n // 1000}k x {n // 1000}k", target=TARGETS["eval"][0],
              note="embed on the device, rank_metrics in chunks on the CPU")
    rows.append(row)
    if embed is None:
        row.status, row.note = "skipped", "needs the eval rankings row's run"
        return rows
    if not budget.fits(row, "eval-scale"):
        return rows
    try:
        x, subject, video = _test_windows(stores[1], 6, 1)
        if len(x) < 2 * n:
            reps = -(-2 * n // len(x))  # too few windows: repeat them as other videos
            x = np.concatenate([x] * reps)
            subject = np.concatenate([subject] * reps)
            video = np.concatenate([np.char.add(video, f"#{r}") for r in range(reps)])
        order = np.random.default_rng(0).permutation(len(x))[:2 * n]
        dev.reset_peak()
        feats, t_embed = dev.timed(embed, x[order])
        row.peak_mb = dev.peak_mb()
        del x
        p, g = slice(0, n), slice(n, 2 * n)
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_eval import _reset_peak, _status_kb  # the CPU's peak memory of the ranking

        sub, vid = subject[order], video[order]
        if n > CALIBRATE:  # the ranking's cost grows with probes x gallery: time 1 % of it first
            cp, cg = slice(0, CALIBRATE), slice(n, n + CALIBRATE)
            _, t_small = dev.timed(rank_metrics, sub[cp], sub[cg], feats[cp], feats[cg],
                                   probe_groups=vid[cp], gallery_groups=vid[cg])
            need = 1.2 * t_small * (n / CALIBRATE) ** 2
            row.numbers.update(calibration_s=t_small, rank_estimate_s=need)
            if need > budget.left():
                row.status = "skipped"
                k = CALIBRATE // 1000
                row.note = (f"budget: ranking needs ~{need:.0f} s ({k}k x {k}k took "
                            f"{t_small:.1f} s), {budget.left():.0f} s left")
                return rows
        rss0 = _status_kb("VmRSS") if _reset_peak() else None
        m, t_rank = dev.timed(rank_metrics, sub[p], sub[g], feats[p], feats[g],
                              probe_groups=vid[p], gallery_groups=vid[g])
        if rss0 is not None:
            extra = (_status_kb("VmHWM") - rss0) / 1024
            row.numbers["rank_extra_peak_rss_mb"] = extra
            row.note += f"; ranking's extra peak CPU memory {extra:.0f} MB"
        row.size = f"{n} x {n} windows"
        row.rate = f"embed {t_embed:.1f} s + rank {t_rank:.1f} s"
        row.agreement = "- (see eval rankings)"
        row.numbers.update(embed_s=t_embed, rank_s=t_rank, metrics=m.as_dict())
        row.status = "ok"
    except Exception as exc:
        fail(row, exc)
    return rows


# ---------------------------------------------------------------- budget, table, main


def fail(row: Row, exc: BaseException) -> None:
    """Mark a row failed with a one-line error (the traceback goes to the log)."""
    logging.getLogger("device_check").debug("".join(traceback.format_exception(exc)))
    first = (str(exc).strip().splitlines() or [""])[0]
    row.status = "FAILED"
    row.note = f"{type(exc).__name__}: {first}"[:200]


# Estimated seconds per row: (quick on cpu, full on cuda, full on cpu). Guesses from the CPU
# dry run and the sizes; a row is skipped when its estimate exceeds what is left of the budget.
ESTIMATES = {
    "extract": (15, 40, 600), "train-simmc": (8, 45, 300),
    "train-himpc": (8, 70, 900), "train-sm-sge": (10, 40, 600), "train-ms-clr": (8, 50, 400),
    "cluster walk-groups": (2, 10, 60), "cluster dbscan": (2, 10, 60),
    "eval-rankings": (5, 10, 30), "eval-scale": (5, 20, 60),
}


class Budget:
    """What is left of --budget; decides which rows still fit."""

    def __init__(self, seconds: float, column: int):
        self.end = time.perf_counter() + seconds
        self.column = column

    def left(self) -> float:
        return self.end - time.perf_counter()

    def fits(self, row: Row, key: str) -> bool:
        need = ESTIMATES[key][self.column]
        if need <= self.left():
            return True
        row.status = "skipped"
        row.note = f"budget: needs ~{need} s, {max(0, self.left()):.0f} s left"
        return False


def format_table(rows: list[Row]) -> str:
    """The result table: one line per path, then notes and errors below it."""
    head = ("path", "size", "throughput", "target", "peak GPU MB", "agreement with CPU", "status")
    cells = [[r.path, r.size, r.rate, r.target,
              "-" if r.peak_mb is None else f"{r.peak_mb:.0f}", r.agreement, r.status]
             for r in rows]
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(len(head))]
    line = lambda c: " | ".join(str(v).ljust(w) for v, w in zip(c, widths)).rstrip()
    out = [line(head), "-+-".join("-" * w for w in widths)] + [line(c) for c in cells]
    notes = [f"  {r.path}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["notes:"] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (the dry run)")
    ap.add_argument("--quick", action="store_true", help="CI size: tiny store and inputs")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    ap.add_argument("--clips", type=int, default=None,
                    help="sample clips for extraction throughput (default 1 quick, 40 otherwise)")
    ap.add_argument("--checkpoint-2d", default=None, help="RTMPose-m weights (default: random)")
    ap.add_argument("--checkpoint-3d", default=None, help="lifter weights (default: random)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's, one per core)")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep stores and runs in this folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--verbose", action="store_true", help="log output and tracebacks")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # train() turns vid2reid's INFO lines on; keep them out of the table
        logging.getLogger("vid2reid").propagate = False
    if not args.verbose:
        warnings.simplefilter("ignore")
    from vid2reid.threads import set_threads

    from vid2reid.errors import Vid2ReidError

    try:
        set_threads(args.threads)  # as the commands do: OpenMP's passive wait, --threads if given
    except Vid2ReidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = check_device(args.device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.budget <= 0:
        print(f"error: --budget must be positive, got {args.budget:g}", file=sys.stderr)
        return 2
    import torch

    args.clips = args.clips or (1 if args.quick else 40)
    dev = Device(args.device)
    column = 0 if args.quick else (1 if dev.cuda else 2)
    budget = Budget(args.budget, column)
    work = Path(tempfile.mkdtemp(prefix="device_check-")) if args.work is None else args.work
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    try:
        tiny = make_stores(work / "tiny", QUICK_SIZE)
        stores, size_name = (tiny, "tiny") if args.quick else (
            make_stores(work / "kgbd-size", KGBD_SIZE), "KGBD-size")
        rows += extraction_rows(dev, args, work, budget)
        rows += training_rows(dev, args, work, stores, tiny, size_name, budget)
        rows += clustering_rows(dev, args.quick, budget)
        rows += eval_rows(dev, args, work, stores, tiny, budget)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_start
    header = (f"device check: {dev.describe()}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} CPU threads; {'quick' if args.quick else 'full'} size; "
              f"{total:.0f} s of a {args.budget:g} s budget; "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(header)
    print(format_table(rows))
    if args.json:
        from vid2reid.store import atomic_write_bytes

        data = {"header": header, "device": dev.describe(), "quick": args.quick,
                "seconds": total, "rows": [r.__dict__ for r in rows]}
        atomic_write_bytes(args.json, (json.dumps(data, indent=1, default=str) + "\n").encode())
    return 0 if all(r.status in ("ok", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
