"""Training settings: one frozen dataclass whose field defaults are the defaults.

Order of precedence, lowest first: the field defaults (label-free: people pseudo-labels,
nothing tuned per data set), a data-set preset (the SimMC paper's settings, DBSCAN clusters),
the method's own defaults (vid2reid.methods), the ablation, the run an ``--init`` starts from,
explicit options. Everything is saved to the run's config.json.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from vid2reid.cluster import K1_READINGS, PSEUDO_LABELS
from vid2reid.data import TRAIN_WINDOWS
from vid2reid.errors import ConfigError, StoreError
from vid2reid.methods import REGISTRY, get_method
from vid2reid.presets import get_preset
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
    pseudo_labels: str = "people"  # vid2reid.cluster.PSEUDO_LABELS; presets use "clusters"
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


def preset_settings(preset: str) -> dict[str, object]:
    """The SimMC paper's settings for a data set, with its DBSCAN pseudo-labels."""
    p = get_preset(preset)
    return dict(preset=p.name, f=p.f, x=p.x, tau=p.tau, eps=p.eps, min_samples=p.min_samples,
                lam=p.lam, pseudo_labels="clusters", unit_features=False)


def make_config(preset: str | None = None, method: str = "simmc", ablation: str = "mpc+mic",
                **overrides: object) -> TrainConfig:
    """The settings of a run: see the module docstring for the order (None = not given).

    ``preset=None`` (or "none"): the label-free defaults. An override that contradicts the
    ablation (e.g. ``ablation='npc', q=2``) is a ConfigError.
    """
    ablation = ablation.strip().lower()
    if ablation not in ABLATIONS:
        raise ConfigError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, object] = {"method": method.strip().lower(), "ablation": ablation}
    if preset is None or preset.strip().lower() in ("", "none"):
        values["x"] = default_masked(int(given.get("f", TrainConfig.f)))  # type: ignore[call-overload]
    else:
        values.update(preset_settings(preset))
    values.update(get_method(str(values["method"])).defaults)
    for key, forced in ABLATIONS[ablation].items():
        if key in given and given[key] != forced:
            raise ConfigError(f"ablation {ablation!r} sets {key}={forced}; it cannot be "
                              f"overridden to {given[key]}")
        values[key] = forced
    values.update(given)
    unused = [k for k in ("eps", "min_samples", "k1", "k2", "k1_reading") if k in given]
    if values.get("pseudo_labels", TrainConfig.pseudo_labels) != "clusters" and unused:
        raise ConfigError(f"{', '.join(unused)} only apply to --pseudo-labels clusters (DBSCAN), "
                          f"not {values.get('pseudo_labels', TrainConfig.pseudo_labels)!r}; add "
                          f"--pseudo-labels clusters or a --preset")
    if "himpc_levels" in values:
        values["himpc_levels"] = tuple(values["himpc_levels"])  # type: ignore[arg-type]
    if values.get("init"):
        values.update(init_settings(str(values["init"]), str(values["method"]), given))
    cfg = TrainConfig(**values)  # type: ignore[arg-type]
    validate(cfg)
    return cfg


def read_run_config(run: Path, purpose: str) -> dict:
    """The config.json of a finished (or checkpointed) run; ConfigError naming ``purpose``."""
    path = run / "config.json"
    if not path.is_file():
        raise ConfigError(f"{purpose} {run}: not a training run (no config.json)")
    if not (run / "model.pt").is_file() and not (run / "checkpoint.pt").is_file():
        raise ConfigError(f"{purpose} {run}: no model.pt or checkpoint.pt (training never "
                          f"finished an epoch)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{purpose} {path}: unreadable ({exc})") from None
    return check_run_config(info, path)


def init_settings(init: str, method: str, given: dict) -> dict:
    """The settings a run started from ``init`` inherits: its encoder and that encoder's shape.

    ConfigError (one line) for a missing run, a method that cannot start from one, or an
    explicitly given encoder setting that does not fit the run's encoder.
    """
    takers = [name for name in REGISTRY if get_method(name).load_init is not None]
    if method not in takers:
        raise ConfigError(f"--init works with --method {' / '.join(takers)}, not {method!r}")
    run = Path(init)
    info = read_run_config(run, "--init")
    src = info.get("method", "simmc")
    giver = get_method(src) if src in REGISTRY else None
    if giver is None or giver.handover is None:
        givers = [n for n in REGISTRY if get_method(n).handover is not None]
        raise ConfigError(f"--init {run}: a {src} run has no encoder {method} can start from "
                          f"(use a {' or '.join(givers)} run)")
    inherit = giver.handover(info).settings
    for key, value in inherit.items():
        if key in given and given[key] != value:
            raise ConfigError(f"--init {run}: its encoder has {key}={value!r}, which does not fit "
                              f"{key}={given[key]!r}")
    return {**inherit, "init": str(run.resolve())}


def validate(cfg: TrainConfig) -> None:
    """ConfigError naming the first invalid setting (the method checks its own last)."""
    checks = [
        (cfg.method in REGISTRY, f"method must be one of {', '.join(REGISTRY)}, got {cfg.method!r}"),
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
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    method = get_method(cfg.method)
    if cfg.encoder not in method.encoders:
        raise ConfigError(f"encoder must be one of {', '.join(method.encoders)} with --method "
                          f"{cfg.method}, got {cfg.encoder!r}")
    method.check_config(cfg)


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
    a one-line StoreError naming the file and the setting otherwise (hand-edited files)."""
    if not isinstance(info, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
                type(None): "null"}.get(type(info), type(info).__name__)
        raise StoreError(f"{path}: not a run's settings (a JSON {kind}, not an object)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in info:
            want = _kind_error(info[f.name], f.default)
            if want:
                raise StoreError(f"{path}: {f.name!r} must be {want}, got "
                                 f"{repr(info[f.name])[:60]}")
    n = info.get("num_joints")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise StoreError(f"{path}: 'num_joints' must be a positive integer, got "
                         f"{repr(n)[:60] if 'num_joints' in info else 'nothing'}")
    if not isinstance(info.get("layout", ""), str):
        raise StoreError(f"{path}: 'layout' must be a string, got {repr(info['layout'])[:60]}")
    return info

