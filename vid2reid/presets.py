"""Per-data-set SimMC settings (the SimMC authors' defaults per data set).

A preset gives f, x, tau, eps, min_samples and lambda; every value can be
overridden (``vid2reid train --preset kgbd --eps 0.7``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vid2reid.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """SimMC's data-set specific settings."""

    name: str
    f: int  # frames per window
    x: int  # frames masked out of each window per view
    tau: float  # temperature of the prototype contrast
    eps: float  # DBSCAN radius on the Jaccard distance
    min_samples: int  # DBSCAN core-point size
    lam: float  # weight of MIC: lam * MIC + (1 - lam) * MPC


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("casia-b", f=40, x=10, tau=0.075, eps=0.75, min_samples=2, lam=0.25),
        Preset("ks20", f=6, x=2, tau=0.08, eps=0.8, min_samples=2, lam=0.5),
        Preset("kgbd", f=6, x=2, tau=0.06, eps=0.6, min_samples=4, lam=0.5),
        Preset("ias-a", f=6, x=2, tau=0.08, eps=0.8, min_samples=2, lam=0.75),
        Preset("ias-b", f=6, x=2, tau=0.08, eps=0.8, min_samples=2, lam=0.5),
        Preset("biwi-w", f=6, x=2, tau=0.07, eps=0.8, min_samples=2, lam=0.25),
        Preset("biwi-s", f=6, x=2, tau=0.07, eps=0.6, min_samples=2, lam=0.25),
    )
}

_ALIASES = {"casia": "casia-b", "biwi-walking": "biwi-w", "biwi-still": "biwi-s",
            "ias-lab-a": "ias-a", "ias-lab-b": "ias-b", "iasa": "ias-a", "iasb": "ias-b"}


def _key(name: str) -> str:
    """Case-, space- and separator-insensitive form: 'CASIA_B', 'casiab' -> 'casiab'."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


_LOOKUP = {_key(n): n for n in PRESETS} | {_key(a): n for a, n in _ALIASES.items()}


def get_preset(name: str) -> Preset:
    """Look a preset up by name (case-insensitive; 'casia-b', 'CASIAB', 'biwi-walking' ...)."""
    try:
        return PRESETS[_LOOKUP[_key(name)]]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
