"""Training settings: one frozen dataclass whose field defaults are the defaults.

The field defaults are label-free (people pseudo-labels, nothing tuned per data set); how a
run's settings are layered over them is vid2reid.settings. This module knows no method: the
methods registry validates a config (vid2reid.methods.validate). Everything is saved to the
run's config.json.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vid2reid.cluster import K1_READINGS
from vid2reid.data import TRAIN_WINDOWS
from vid2reid.errors import ConfigError, RunError
from vid2reid.labels import REGISTRY as PSEUDO_LABELS
from vid2reid.protocols import PROTOCOLS

ABLATIONS = {  # the SimMC paper: NPC = MPC with q 1 and x 0; "MPC only" = lambda 0
    "npc": {"q": 1, "x": 0, "lam": 0.0},
    "mpc": {"lam": 0.0},
    "mpc+mic": {},
}
# Settings that may change when a run is resumed (the rest must match the checkpoint).
RESUMABLE_CHANGES = {"epochs", "device", "stop_ari", "stop_patience"}
# What runs written before a setting existed did instead (their config.json lacks it).
LEGACY_DEFAULTS = {"k1_reading": "zhong", "windows": "fixed", "pseudo_labels": "clusters",
                   "walk_warmup": 2, "unit_features": False, "init": "", "encoder": "mlp",
                   "smsge_dim": 8, "smsge_heads": 8, "smsge_lambda": 1.0,
                   "msclr_cross": "mutual"}


def default_masked(f: int) -> int:
    """Frames masked per view when no preset gives x: a quarter of the window."""
    return max(0, min(f - 1, round(f / 4)))


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (written to config.json); the defaults are label-free."""

    method: str = "simmc"
    preset: str = "none"  # "none": the label-free defaults; else the paper's settings of a data set
    ablation: str = "mpc+mic"
    protocol: str = "simmc"
    f: int = 40  # frames per window
    x: int = 10  # frames masked per view (default_masked(f) unless given)
    q: int = 2  # masked views per window
    tau: float = 0.07
    eps: float = 0.6
    min_samples: int = 2
    lam: float = 0.5  # weight of MIC
    k1: int = 20
    k2: int = 6
    k1_reading: str = "reference"  # what k1 means: the SimMC authors' code, or "zhong" (textbook)
    windows: str = "auto"  # how training windows are cut: vid2reid.data.TRAIN_WINDOWS
    pseudo_labels: str = "people"  # vid2reid.labels.REGISTRY; presets use "clusters"
    walk_warmup: int = 2  # people/walk-groups/-chains: epochs with every walk its own class first
    unit_features: bool = True  # score unit-length features (cosine), as training compares them
    lr: float = 3.5e-4
    batch_size: int = 256
    epochs: int = 30
    hidden: int = 256
    seed: int = 0
    device: str = "auto"
    stop_ari: float | None = None  # stop when consecutive pseudo-labels agree this much (ARI)
    stop_patience: int = 3  # ... for this many epochs in a row
    # Hi-MPC (vid2reid/methods/himpc.py)
    himpc_heads: int = 8
    himpc_hsm: bool = True
    himpc_levels: tuple[str, ...] = ("joint", "component", "limb")
    himpc_joint_weighting: str = "mean"
    himpc_logits: str = "cosine"  # meta-head scores: cosine / tau, or the reference's raw dot / sqrt(H)
    himpc_part_map: str = ""  # a user part-map file; "" = the layout's built-in map
    # "X + SimMC": start from this run's encoder (vid2reid.encoders); the frame encoder used
    init: str = ""
    encoder: str = "mlp"  # "mlp" (SimMC's) or "graph" (SM-SGE's multi-scale graph encoder)
    # the multi-scale graph encoder (SM-SGE; SimMC with encoder "graph")
    smsge_dim: int = 8  # node feature size
    smsge_heads: int = 8  # graph attention heads (averaged)
    smsge_lambda: float = 1.0  # weight of the collaborative (cross-scale) relations
    # MS-CLR (vid2reid/methods/msclr.py): how a window's conventions are pulled together (--cross)
    msclr_cross: str = "mutual"


# Upper bounds far above any real setting, so that a typo or a hand-edited config.json
# (hidden: 1e9) is one line instead of an attempt to allocate hundreds of gigabytes.
SIZE_LIMITS = {"f": 10_000, "hidden": 8192, "batch_size": 1 << 20, "epochs": 1_000_000,
               "k1": 100_000, "k2": 100_000, "min_samples": 1_000_000, "himpc_heads": 256,
               "smsge_dim": 1024, "smsge_heads": 256, "walk_warmup": 1_000_000,
               "stop_patience": 1_000_000}
MAX_JOINTS = 1024  # joints per skeleton a run may declare (num_joints in config.json)


def check_settings(cfg: TrainConfig) -> None:
    """ConfigError naming the first invalid shared setting. The method's own settings are
    checked by the methods registry (vid2reid.methods.validate), which calls this first."""
    checks = [
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
        (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
         f"device must be cpu, cuda or auto, got {cfg.device!r}"),
        (cfg.stop_ari is None or 0 < cfg.stop_ari <= 1, f"stop-ari must be in (0, 1], "
                                                         f"got {cfg.stop_ari}"),
    ]
    checks += [(getattr(cfg, name) <= top, f"{name.replace('_', '-')} must be <= {top}, got "
                                          f"{getattr(cfg, name)} (a typo, or a hand-edited "
                                          f"config.json?)")
               for name, top in SIZE_LIMITS.items()]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def config_dict(cfg: TrainConfig) -> dict:
    """The JSON form of ``cfg`` (config.json, checkpoints)."""
    d = dataclasses.asdict(cfg)
    d["himpc_levels"] = list(cfg.himpc_levels)
    return d


def config_from_run(info: dict) -> TrainConfig:
    """The TrainConfig a run's config.json describes (legacy defaults for settings it predates)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in info.items() if k in fields}
    values = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in values}, **values}
    if "himpc_levels" in values:
        values["himpc_levels"] = tuple(values["himpc_levels"])
    return TrainConfig(**values)


def _kind_error(value: object, default: object) -> str | None:
    """What ``value`` should have been, judged by the setting's default (None when it fits)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float) or default is None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok or (default is None and value is None) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return None if ok else "a list of strings"
    return None


def check_run_config(info: object, path: Path | str) -> dict:
    """``info`` (a run's parsed config.json) when every setting has the type training gave it;
    a one-line RunError naming the file and the setting otherwise (hand-edited files)."""
    if not isinstance(info, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
                type(None): "null"}.get(type(info), type(info).__name__)
        raise RunError(f"{path}: not a run's settings (a JSON {kind}, not an object)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in info:
            want = _kind_error(info[f.name], f.default)
            if want:
                raise RunError(f"{path}: {f.name!r} must be {want}, got "
                                 f"{repr(info[f.name])[:60]}")
    n = info.get("num_joints")
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_JOINTS:
        raise RunError(f"{path}: 'num_joints' must be at most {MAX_JOINTS}, got {n}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise RunError(f"{path}: 'num_joints' must be a positive integer, got "
                         f"{repr(n)[:60] if 'num_joints' in info else 'nothing'}")
    if not isinstance(info.get("layout", ""), str):
        raise RunError(f"{path}: 'layout' must be a string, got {repr(info['layout'])[:60]}")
    return info

