"""The training loop shared by every method (SimMC, Hi-MPC), run directories and loading.

A method is a module with four plain functions (see the team brief,
"Training method interface"): ``build_model``, ``prepare_epoch`` (encode,
cluster, fix prototypes; returns a plan with ``.keep`` and ``.stats``),
``batch_loss`` and ``embed``. This module owns everything else: settings,
the training windows (train split only, no identity label ever reaches the
method), the epoch loop, checkpoints/resume, logs and ``load_embedder``.

Run directory: ``config.json`` (every value used), ``checkpoint.pt``
(written atomically after each epoch), ``model.pt`` (final), ``log.jsonl``
(one line per epoch), ``train.log``; the parent's ``LATEST`` names the run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from vid2reid import interrupts
from vid2reid.cluster import K1_READINGS, PSEUDO_LABELS
from vid2reid.data import TRAIN_WINDOWS, SequenceBank
from vid2reid.errors import ConfigError, StoreError
from vid2reid.presets import get_preset
from vid2reid.protocols import PROTOCOLS, train_records
from vid2reid.store import Record, atomic_write_bytes, load_store

log = logging.getLogger(__name__)

METHODS = {"simmc": "vid2reid.simmc", "himpc": "vid2reid.himpc", "sm-sge": "vid2reid.smsge",
           "ms-clr": "vid2reid.msclr"}
# A method's own defaults, below the command line (SM-SGE: no masks or MIC; the authors' KGBD
# learning rate and LSTM width; its reconstruction features are not cosine-trained, so they are
# scored at their own length).
_METHOD_DEFAULTS = {"sm-sge": {"x": 0, "q": 1, "lam": 0.0, "lr": 2.5e-3, "hidden": 128,
                               "unit_features": False}}
# Methods whose model can start from another run's encoder (--init).
_INIT_METHODS = ("simmc",)
ABLATIONS = {  # the SimMC paper: NPC = MPC with q 1 and x 0; "MPC only" = lambda 0
    "npc": {"q": 1, "x": 0, "lam": 0.0},
    "mpc": {"lam": 0.0},
    "mpc+mic": {},
}
# Settings that may change when a run is resumed (the rest must match the checkpoint).
_RESUMABLE_CHANGES = {"epochs", "device", "stop_ari", "stop_patience"}
# What runs written before a setting existed did instead (their config.json lacks it).
_LEGACY_DEFAULTS = {"k1_reading": "zhong", "windows": "fixed", "pseudo_labels": "clusters",
                    "walk_warmup": 2, "unit_features": False, "init": "", "encoder": "mlp",
                    "smsge_dim": 8, "smsge_heads": 8, "smsge_lambda": 1.0,
                    "msclr_cross": "mutual"}
# Without --preset: label-free settings meant for any data set (see docs/methods.md,
# "Walk groups"); x follows f as in the paper's presets (10 of 40 frames, 2 of 6).
DEFAULT_SETTINGS = {"f": 40, "tau": 0.07, "eps": 0.6, "min_samples": 2, "lam": 0.5,
                    "pseudo_labels": "walk-groups", "unit_features": True}


def default_masked(f: int) -> int:
    """Frames masked per view when no preset gives x: a quarter of the window."""
    return max(0, min(f - 1, round(f / 4)))


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (written to config.json)."""

    method: str = "simmc"
    preset: str = "none"  # "none": the label-free defaults; else the paper's settings of a data set
    ablation: str = "mpc+mic"
    protocol: str = "simmc"
    f: int = 40  # frames per window
    x: int = 10  # frames masked per view
    q: int = 2  # masked views per window
    tau: float = 0.075
    eps: float = 0.75
    min_samples: int = 2
    lam: float = 0.25  # weight of MIC
    k1: int = 20
    k2: int = 6
    k1_reading: str = "reference"  # what k1 means: the SimMC authors' code, or "zhong" (textbook)
    windows: str = "auto"  # how training windows are cut: vid2reid.data.TRAIN_WINDOWS
    pseudo_labels: str = "walk-groups"  # vid2reid.cluster.PSEUDO_LABELS; presets use "clusters"
    walk_warmup: int = 2  # walk-groups/-chains: epochs with every walk its own class first
    unit_features: bool = True  # score unit-length features (cosine), as training compares them
    lr: float = 3.5e-4
    batch_size: int = 256
    epochs: int = 30
    hidden: int = 256
    seed: int = 0
    device: str = "auto"
    stop_ari: float | None = None  # stop when consecutive pseudo-labels agree this much (ARI)
    stop_patience: int = 3  # ... for this many epochs in a row
    # Hi-MPC (vid2reid/himpc.py)
    himpc_heads: int = 8
    himpc_hsm: bool = True
    himpc_levels: tuple[str, ...] = ("joint", "component", "limb")
    himpc_joint_weighting: str = "mean"
    himpc_logits: str = "cosine"  # meta-head scores: cosine / tau, or the reference's raw dot / sqrt(H)
    himpc_part_map: str = ""  # a user part-map file; "" = the layout's built-in map
    # "X + SimMC": start from this run's encoder (vid2reid.encoders); the frame encoder used
    init: str = ""
    encoder: str = "mlp"  # "mlp" (SimMC's) or "graph" (SM-SGE's multi-scale graph encoder)
    # SM-SGE's graph encoder (vid2reid/smsge.py, vid2reid/encoders.py)
    smsge_dim: int = 8  # node feature size
    smsge_heads: int = 8  # graph attention heads (averaged)
    smsge_lambda: float = 1.0  # weight of the collaborative (cross-scale) relations
    # MS-CLR (vid2reid/msclr.py): how a window's conventions are pulled together (--cross)
    msclr_cross: str = "mutual"


def make_config(preset: str | None = None, method: str = "simmc", ablation: str = "mpc+mic",
                **overrides: object) -> TrainConfig:
    """Preset values, then the ablation's settings, then explicit overrides (None = not given).

    ``preset=None`` (or "none"): the label-free defaults, pseudo-labels from
    walk groups (DEFAULT_SETTINGS). A preset reproduces the SimMC paper's
    settings for that data set, DBSCAN clusters included. An override that
    contradicts the ablation (e.g. ``ablation='npc', q=2``) is a ConfigError.
    """
    ablation = ablation.strip().lower()
    if ablation not in ABLATIONS:
        raise ConfigError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if preset is None or preset.strip().lower() in ("", "none"):
        f = int(given.get("f", DEFAULT_SETTINGS["f"]))  # type: ignore[call-overload]
        values: dict[str, object] = dict(method=method.strip().lower(), preset="none",
                                         ablation=ablation, x=default_masked(f),
                                         **DEFAULT_SETTINGS)
    else:
        p = get_preset(preset)
        values = dict(method=method.strip().lower(), preset=p.name, ablation=ablation, f=p.f,
                      x=p.x, tau=p.tau, eps=p.eps, min_samples=p.min_samples, lam=p.lam,
                      pseudo_labels="clusters", unit_features=False)
    values.update(_METHOD_DEFAULTS.get(values["method"], {}))  # type: ignore[arg-type]
    for key, forced in ABLATIONS[ablation].items():
        if key in given and given[key] != forced:
            raise ConfigError(f"ablation {ablation!r} sets {key}={forced}; it cannot be "
                              f"overridden to {given[key]}")
        values[key] = forced
    values.update(given)
    unused = [k for k in ("eps", "min_samples", "k1", "k2", "k1_reading") if k in given]
    if values["pseudo_labels"] != "clusters" and unused:
        raise ConfigError(f"{', '.join(unused)} only apply to --pseudo-labels clusters (DBSCAN), "
                          f"not {values['pseudo_labels']!r}; add --pseudo-labels clusters or a "
                          f"--preset")
    if "himpc_levels" in values:
        values["himpc_levels"] = tuple(values["himpc_levels"])  # type: ignore[arg-type]
    if values.get("init"):
        values.update(init_settings(str(values["init"]), str(values["method"]), given))
    cfg = TrainConfig(**values)  # type: ignore[arg-type]
    validate(cfg)
    return cfg


def _read_run_config(run: Path) -> dict:
    path = run / "config.json"
    if not path.is_file():
        raise ConfigError(f"--init {run}: not a training run (no config.json)")
    if not (run / "model.pt").is_file() and not (run / "checkpoint.pt").is_file():
        raise ConfigError(f"--init {run}: no model.pt or checkpoint.pt (training never finished "
                          f"an epoch)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--init {path}: unreadable ({exc})") from None


def init_settings(init: str, method: str, given: dict) -> dict:
    """The settings a run started from ``init`` inherits: its frame encoder and its shape.

    ConfigError (one line) for a missing run, a method that cannot start from one, or an
    explicitly given encoder setting that does not fit the run's encoder.
    """
    if method not in _INIT_METHODS:
        raise ConfigError(f"--init works with --method {' / '.join(_INIT_METHODS)}, not {method!r}")
    run = Path(init)
    info = _read_run_config(run)
    src = info.get("method", "simmc")
    if src == "sm-sge":
        inherit = {"encoder": "graph", "smsge_dim": info.get("smsge_dim", 8),
                   "smsge_heads": info.get("smsge_heads", 8),
                   "smsge_lambda": info.get("smsge_lambda", 1.0),
                   "himpc_part_map": info.get("himpc_part_map", "")}
    elif src == "simmc":
        inherit = {"encoder": info.get("encoder", "mlp"), "hidden": info.get("hidden", 256)}
        if inherit["encoder"] == "graph":
            inherit.update({k: info[k] for k in ("smsge_dim", "smsge_heads", "smsge_lambda",
                                                 "himpc_part_map") if k in info})
    else:
        raise ConfigError(f"--init {run}: a {src} run has no encoder SimMC can start from "
                          f"(use an sm-sge or simmc run)")
    for key, value in inherit.items():
        if key in given and given[key] != value:
            raise ConfigError(f"--init {run}: its encoder has {key}={value!r}, which does not fit "
                              f"{key}={given[key]!r}")
    return {**inherit, "init": str(run.resolve())}


def validate(cfg: TrainConfig) -> None:
    """ConfigError naming the first invalid setting."""
    checks = [
        (cfg.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}"),
        (cfg.protocol in PROTOCOLS, f"protocol must be one of {', '.join(PROTOCOLS)}, "
                                    f"got {cfg.protocol!r}"),
        (cfg.f >= 1, f"f (frames per window) must be >= 1, got {cfg.f}"),
        (0 <= cfg.x < cfg.f, f"x (masked frames) must be in 0..f-1 = 0..{cfg.f - 1}, got {cfg.x}"),
        (cfg.q in (1, 2), f"q (masked views) must be 1 or 2, got {cfg.q}"),
        (cfg.q == 2 or cfg.lam == 0, "MIC needs two views: with q=1 set lambda to 0"),
        (0 <= cfg.lam <= 1, f"lambda must be in [0, 1], got {cfg.lam}"),
        (cfg.tau > 0, f"tau must be > 0, got {cfg.tau}"),
        (0 < cfg.eps < 1, f"eps must be in (0, 1) (Jaccard distance), got {cfg.eps}"),
        (cfg.min_samples >= 1, f"min-samples must be >= 1, got {cfg.min_samples}"),
        (cfg.k1 >= 1 and cfg.k2 >= 1, f"k1 and k2 must be >= 1, got {cfg.k1}, {cfg.k2}"),
        (cfg.k1_reading in K1_READINGS, f"k1-reading must be one of {', '.join(K1_READINGS)}, "
                                        f"got {cfg.k1_reading!r}"),
        (cfg.pseudo_labels in PSEUDO_LABELS, f"pseudo-labels must be one of "
                                              f"{', '.join(PSEUDO_LABELS)}, got {cfg.pseudo_labels!r}"),
        (cfg.walk_warmup >= 0, f"walk-warmup must be >= 0, got {cfg.walk_warmup}"),
        (cfg.windows in TRAIN_WINDOWS, f"windows must be one of {', '.join(TRAIN_WINDOWS)}, "
                                       f"got {cfg.windows!r}"),
        (cfg.lr > 0, f"lr must be > 0, got {cfg.lr}"),
        (cfg.batch_size >= 1, f"batch-size must be >= 1, got {cfg.batch_size}"),
        (cfg.epochs >= 0, f"epochs must be >= 0, got {cfg.epochs}"),
        (cfg.hidden >= 1, f"hidden must be >= 1, got {cfg.hidden}"),
        (cfg.encoder in ("mlp", "graph"), f"encoder must be mlp or graph, got {cfg.encoder!r}"),
        (cfg.method == "simmc" or cfg.encoder == "mlp",
         f"encoder {cfg.encoder!r} is for --method simmc only"),
        (cfg.msclr_cross in ("mutual", "anchor"),
         f"cross (MS-CLR) must be mutual or anchor, got {cfg.msclr_cross!r}"),
        (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
         f"device must be cpu, cuda or auto, got {cfg.device!r}"),
        (cfg.stop_ari is None or 0 < cfg.stop_ari <= 1, f"stop-ari must be in (0, 1], "
                                                         f"got {cfg.stop_ari}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def method_module(name: str) -> ModuleType:
    """The module implementing training method ``name`` (imported only when used)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    try:
        return importlib.import_module(METHODS[name])
    except ModuleNotFoundError as exc:
        if exc.name != METHODS[name]:
            raise
        raise ConfigError(f"method {name!r} is not available in this installation "
                          f"({METHODS[name]} is missing)") from None


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; ConfigError if CUDA is asked for but absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(device)


def training_sequences(data: Path | str, cfg: TrainConfig
                       ) -> tuple[SequenceBank, list[Record], str]:
    """The TRAIN split's sequences (normalised, at least f frames), their records and layout.

    Only coordinates go on to the method; subject/condition stay behind in the records.
    """
    store = load_store(data, min_frames=1)
    idx = train_records(store.records, cfg.protocol)
    recs = [store.records[i] for i in idx]
    joints = [store.joints[i] for i in idx]
    short = sum(j.shape[0] < cfg.f for j in joints)
    if short:
        log.info("%d training sequence(s) shorter than f=%d frames skipped", short, cfg.f)
    keep = [k for k, j in enumerate(joints) if j.shape[0] >= cfg.f]
    if not keep:
        raise StoreError(f"{data}: no training sequence has at least f={cfg.f} frames; "
                         f"lower --f or add longer sequences")
    recs = [recs[k] for k in keep]
    bank = SequenceBank.from_sequences(recs, [joints[k] for k in keep])
    layouts = sorted({r.layout for r in recs})
    return bank, recs, (layouts[0] if len(layouts) == 1 else "")


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


def _label_agreement(prev_keys: np.ndarray, prev: np.ndarray, keys: np.ndarray,
                     labels: np.ndarray) -> float:
    """ARI between two epochs' pseudo-labels over the windows both epochs have."""
    from sklearn.metrics import adjusted_rand_score

    _, a, b = np.intersect1d(prev_keys, keys, assume_unique=True, return_indices=True)
    return float(adjusted_rand_score(prev[a], labels[b]))


def _save(path: Path, obj: dict) -> None:
    """Atomically write a run file that loads without unpickling code (vid2reid.runfile)."""
    from vid2reid.runfile import save_run_file

    save_run_file(path, obj)


def _write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def _config_dict(cfg: TrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["himpc_levels"] = list(cfg.himpc_levels)
    return d


def _check_resumable(saved: dict, cfg: TrainConfig, out: Path) -> None:
    now = _config_dict(cfg)
    for key, value in now.items():
        was = saved.get(key, _LEGACY_DEFAULTS.get(key))
        if key not in _RESUMABLE_CHANGES and was != value:
            raise ConfigError(f"{out / 'checkpoint.pt'}: was trained with {key}={was!r}, "
                              f"not {value!r}; use another --out or --no-resume to start over")


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    history: list[dict]
    stopped_early: bool


def train(cfg: TrainConfig, data: Path | str | list, out: Path | str, resume: bool = True,
          progress: bool = True) -> TrainResult:
    """Train ``cfg.method`` on the train split of the store at ``data``; write the run to ``out``.

    ``data`` may be a list of stores of the same recordings in different layouts for a method
    that takes several (``MULTI_STORE``: ms-clr). Resumes from ``out/checkpoint.pt`` when it
    exists and ``resume`` is true.
    """
    from sklearn.metrics import adjusted_rand_score
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    validate(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    pkg_log = logging.getLogger("vid2reid")
    pkg_log.addHandler(handler)
    if pkg_log.level == logging.NOTSET or pkg_log.level > logging.INFO:
        pkg_log.setLevel(logging.INFO)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        method = method_module(cfg.method)
        device = resolve_device(cfg.device)
        if cfg.protocol == "all":
            log.warning("protocol 'all' is NON-STANDARD: the test sequences are also trained on")
        stores = [data] if isinstance(data, (str, Path)) else list(data)
        multi = getattr(method, "MULTI_STORE", False)
        if len(stores) != 1 and not multi:
            raise ConfigError(f"method {cfg.method!r} trains on one store; give one --data "
                              f"(several stores of one recording set: --method ms-clr)")
        bank, records, layout = (method.training_sequences(stores, cfg) if multi
                                 else training_sequences(stores[0], cfg))
        data = stores[0]
        num_joints = bank.frames.shape[1]
        mode = bank.resolve_mode(cfg.f, cfg.windows)
        n = len(bank.window_starts(cfg.f, mode, np.random.default_rng(0))[0])
        log.info("%s on ~%d training windows per epoch (f=%d, windows %s%s, %d joints, "
                 "%d sequences), device %s", cfg.method, n, cfg.f, mode,
                 " (auto)" if cfg.windows == "auto" else "", num_joints, len(records), device)
        run_info = {**_config_dict(cfg), "data": str(Path(data).resolve()), "layout": layout,
                    "num_joints": num_joints, "windows_used": mode, "train_windows": n,
                    "train_sequences": len(records), "stride": max(1, cfg.f // 2),
                    "device_used": str(device), "torch": torch.__version__}
        if multi:
            run_info["data_stores"] = [str(Path(d).resolve()) for d in stores]

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = method.build_model(cfg, num_joints, layout).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        x = keys = None  # the same windows every epoch unless they are "shifted"

        start, history, prev, prev_keys, stable, stopped = 0, [], None, None, 0, False
        warned_one_cluster = False
        ckpt_path = out / "checkpoint.pt"
        if resume and ckpt_path.is_file():
            from vid2reid.runfile import load_run_file

            ck = load_run_file(ckpt_path, map_location=device,
                               required=("epoch", "model", "optim", "rng", "torch_rng", "config",
                                         "history", "stable", "stopped", "prev_labels"))
            _check_resumable(ck["config"], cfg, out)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optim"])
            rng.bit_generator.state = ck["rng"]
            torch.set_rng_state(ck["torch_rng"].cpu())
            start, history, stable, stopped = ck["epoch"], ck["history"], ck["stable"], ck["stopped"]
            prev = ck["prev_labels"]
            prev_keys = ck.get("prev_keys")
            log.info("resuming %s after epoch %d", out, start)
        elif ckpt_path.is_file():
            log.warning("%s: existing checkpoint ignored (--no-resume); starting over", ckpt_path)
        if cfg.init and start == 0 and not history:
            load_init(model, cfg, num_joints, layout, device)
        # after the resume check: a refused resume leaves the run's config.json as it was
        _write_json(out / "config.json", run_info)
        _rewrite_log(out / "log.jsonl", history)

        # Log lines go through tqdm.write so that they do not break the progress bar.
        with logging_redirect_tqdm():
            bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, unit="epoch",
                       disable=not progress or stopped, dynamic_ncols=True)
            for epoch in bar:
                if stopped:
                    break
                if x is None or mode == "shifted":
                    xs, keys = epoch_windows(bank, cfg, rng)
                    x = torch.from_numpy(xs).to(device)
                    del xs
                row, plan = run_epoch(method, model, opt, x, cfg, rng, epoch, walks=keys >> 32)
                if plan.stats.get("clusters") == 1 and not warned_one_cluster:
                    warned_one_cluster = True
                    log.warning("epoch %d: DBSCAN put every kept window in ONE cluster, so the "
                                "prototype loss has nothing to contrast; lower --eps (now %s) "
                                "or raise --min-samples", epoch + 1, cfg.eps)
                labels = getattr(plan, "labels", None)
                # a checkpoint of 0.1.0 has labels but no window keys: compare only like with like
                comparable = prev is not None and (prev_keys is not None
                                                   or (labels is not None and len(prev) == len(labels)))
                if labels is not None and comparable:
                    row["label_ari"] = (_label_agreement(np.asarray(prev_keys), np.asarray(prev),
                                                         keys, labels)
                                        if prev_keys is not None
                                        else float(adjusted_rand_score(prev, labels)))
                    ok = cfg.stop_ari is not None and row["label_ari"] >= cfg.stop_ari
                    stable = stable + 1 if ok else 0
                prev, prev_keys = labels, (keys if labels is not None else None)
                history.append(row)
                if cfg.stop_ari is not None and stable >= cfg.stop_patience:
                    stopped = True
                    log.info("pseudo-labels stable (ARI >= %s for %d epochs): stopping after epoch %d",
                             cfg.stop_ari, stable, epoch + 1)
                _save(ckpt_path, {"epoch": epoch + 1, "model": model.state_dict(),
                                  "optim": opt.state_dict(), "rng": rng.bit_generator.state,
                                  "torch_rng": torch.get_rng_state(), "config": _config_dict(cfg),
                                  "history": history, "stable": stable, "stopped": stopped,
                                  "prev_labels": prev, "prev_keys": prev_keys})
                with open(out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                clustered = (f" clusters {plan.stats['clusters']} outliers "
                             f"{plan.stats.get('outliers', 0)}" if "clusters" in plan.stats else "")
                log.info("epoch %d/%d loss %.4f%s (%.1fs)", epoch + 1, cfg.epochs, row["loss"],
                         clustered, row["epoch_s"])
                bar.set_postfix(loss=f"{row['loss']:.3f}", clusters=plan.stats.get("clusters"),
                                outliers=plan.stats.get("outliers"))
            bar.close()
        _save(out / "model.pt", {"model": model.state_dict(), "config": _config_dict(cfg),
                                 "num_joints": num_joints, "layout": layout,
                                 "epochs_done": len(history)})
        atomic_write_bytes(out.parent / "LATEST", (out.name + "\n").encode())
        return TrainResult(out, len(history), history, stopped)
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        pkg_log.removeHandler(handler)
        handler.close()


def load_init(model: torch.nn.Module, cfg: TrainConfig, num_joints: int, layout: str,
              device: torch.device) -> None:
    """Copy the encoder of the run ``cfg.init`` into ``model.encoder`` ("X + SimMC").

    ConfigError (one line) for a run of another layout or joint count, or an encoder that
    does not fit.
    """
    from vid2reid.runfile import load_run_file

    run = Path(cfg.init)
    info = _read_run_config(run)
    if int(info.get("num_joints", -1)) != num_joints or str(info.get("layout", "")) != layout:
        raise ConfigError(f"--init {run}: trained on {info.get('num_joints')}-joint "
                          f"{info.get('layout') or 'unknown'!s} skeletons, this data has "
                          f"{num_joints}-joint {layout or 'unknown'} skeletons")
    weights = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoint.pt"
    state = load_run_file(weights, map_location=device, required=("model",))["model"]
    prefix = "graph." if info.get("method") == "sm-sge" else "encoder."
    target = model.encoder.graph if prefix == "graph." else model.encoder  # type: ignore[union-attr]
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        target.load_state_dict(sub)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "mismatch"
        raise ConfigError(f"--init {run}: its encoder does not fit this model ({first})") from None
    log.info("encoder initialised from %s (%s, %d tensors)", run, info.get("method"), len(sub))


def run_epoch(method: ModuleType, model: torch.nn.Module, opt: torch.optim.Optimizer,
              x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator, epoch: int,
              walks: np.ndarray | None = None) -> tuple[dict, object]:
    """One epoch: the method's labelling round, then one pass over the kept windows.

    ``walks`` (N,) numbers the training walk of each window (no identity).
    Returns the epoch's log row and the method's plan.
    """
    t0 = time.perf_counter()
    plan = method.prepare_epoch(model, x, cfg, rng, epoch, walks=walks)
    t_cluster = time.perf_counter() - t0
    order = rng.permutation(plan.keep)
    bs = cfg.batch_size
    n_batches = max(1, len(order) // bs)  # last partial batch dropped, unless it is the only one
    loss_sum, parts_sum = 0.0, {}
    model.train()
    for b in range(n_batches):
        interrupts.check()  # a Ctrl-C whose KeyboardInterrupt was swallowed stops here
        idx = order[b * bs : (b + 1) * bs]
        loss, parts = method.batch_loss(model, x[torch.as_tensor(idx, device=x.device)], idx,
                                        plan, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach())
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v
    row = {"epoch": epoch + 1, "loss": loss_sum / n_batches,
           **{k: v / n_batches for k, v in parts_sum.items()}, **plan.stats, "label_ari": None,
           "batches": n_batches, "cluster_s": round(t_cluster, 3),
           "epoch_s": round(time.perf_counter() - t0, 3)}
    return row, plan


def _rewrite_log(path: Path, history: list[dict]) -> None:
    """log.jsonl holds exactly the checkpointed epochs (drops lines of an unfinished epoch)."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in history).encode())


def load_embedder(run_dir: Path | str, device: str = "cpu", unit_features: bool | None = None
                  ) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """``(embed, config)`` for a run directory: ``embed`` maps windows (N, f, J, 3) to (N, D).

    Uses model.pt (or the last checkpoint of an unfinished run) and the method
    recorded in config.json; ``unit_features`` (None: the run's setting) says
    whether features are scaled to unit length.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise StoreError(f"{run_dir}: not a training run (no config.json); run 'vid2reid train' "
                         f"or pass --run")
    try:
        info = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{cfg_path}: unreadable ({exc})") from None
    weights = run_dir / "model.pt"
    if not weights.is_file():
        weights = run_dir / "checkpoint.pt"
    if not weights.is_file():
        raise StoreError(f"{run_dir}: no model.pt or checkpoint.pt (training never finished an epoch)")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in info.items() if k in fields}
    values = {**{k: v for k, v in _LEGACY_DEFAULTS.items() if k not in values}, **values}
    if "himpc_levels" in values:
        values["himpc_levels"] = tuple(values["himpc_levels"])
    cfg = TrainConfig(**values)
    method = method_module(cfg.method)
    dev = resolve_device(device)
    num_joints, layout = int(info["num_joints"]), str(info.get("layout", ""))
    model = method.build_model(cfg, num_joints, layout).to(dev)
    from vid2reid.runfile import load_run_file

    state = load_run_file(weights, map_location=dev, required=("model",))
    model.load_state_dict(state["model"])
    model.eval()

    any_layout = getattr(method, "MULTI_LAYOUT", False)

    def embed(x: np.ndarray, layout_of_x: str | None = None) -> np.ndarray:
        """Windows (N, f, J, 3) -> (N, D); ``layout_of_x`` names their layout when known."""
        x = np.asarray(x, dtype=np.float32)
        if any_layout:
            with torch.no_grad():
                return method.embed(model, torch.from_numpy(x).to(dev),
                                    layout=layout_of_x).cpu().numpy()
        if layout_of_x and layout and layout_of_x != layout:
            raise StoreError(f"{run_dir}: the model was trained on layout {layout!r} and cannot "
                             f"read {layout_of_x!r} (train with --method ms-clr, or convert the "
                             f"store with 'vid2reid convert')")
        if x.ndim != 4 or x.shape[2] != num_joints or x.shape[3] != 3:
            raise StoreError(f"{run_dir}: the model expects windows (N, f, {num_joints}, 3), "
                             f"got {tuple(x.shape)}")
        with torch.no_grad():
            z = method.embed(model, torch.from_numpy(x).to(dev))
            if cfg.unit_features if unit_features is None else unit_features:
                z = torch.nn.functional.normalize(z, dim=1)
            return z.cpu().numpy()

    return embed, info
