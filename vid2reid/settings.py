"""How a run's settings are made: the defaults, then a data-set preset (the SimMC paper's
settings, DBSCAN clusters), the method's own defaults, the ablation, the run an ``--init``
starts from, explicit options (lowest first). The result is one validated TrainConfig.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vid2reid.config import ABLATIONS, TrainConfig, default_masked
from vid2reid.errors import ConfigError
from vid2reid.labels import REGISTRY as LABELS
from vid2reid.methods import REGISTRY, get_method, validate
from vid2reid.presets import get_preset


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
    chosen = str(values.get("pseudo_labels", TrainConfig.pseudo_labels))
    for strategy in LABELS.values():  # a strategy's own settings need that strategy
        unused = [k for k in strategy.settings if k in given]
        if unused and strategy.name != chosen:
            raise ConfigError(f"{', '.join(unused)} only apply to --pseudo-labels "
                              f"{strategy.name}, not {chosen!r}; add --pseudo-labels "
                              f"{strategy.name}" + (" or a --preset" if strategy.name == "clusters"
                                                    else ""))
    if "himpc_levels" in values:
        values["himpc_levels"] = tuple(values["himpc_levels"])  # type: ignore[arg-type]
    if values.get("init"):
        values.update(init_settings(str(values["init"]), str(values["method"]), given))
    cfg = TrainConfig(**values)  # type: ignore[arg-type]
    validate(cfg)
    return cfg


def init_settings(init: str, method: str, given: dict) -> dict:
    """The settings a run started from ``init`` inherits: its encoder and that encoder's shape.

    ConfigError (one line) for a missing run, a method that cannot start from one, or an
    explicitly given encoder setting that does not fit the run's encoder.
    """
    takers = [name for name in REGISTRY if get_method(name).load_init is not None]
    if method not in takers:
        raise ConfigError(f"--init works with --method {' / '.join(takers)}, not {method!r}")
    run = Path(init)
    from vid2reid.run import open_run  # reads the run's files only for --init

    info = open_run(run, option="--init").info
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
