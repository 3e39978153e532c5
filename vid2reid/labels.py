"""Where training's classes come from: the pseudo-label strategies behind one registry, as
the methods are (``--pseudo-labels NAME``).

A strategy labels every training window each epoch from the model's features and nothing
else: no identity label. Strategies that label walks (all but ``clusters``) receive each
window's walk number (part of every recording's file name, not who is in it), give every walk
its own class during the first ``cfg.walk_warmup`` epochs, while the features are still too
raw to match walks, and never split a walk. Adding one: a function below and one line in
``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vid2reid.cluster import cluster_many, walk_groups, walk_means
from vid2reid.errors import ConfigError


@dataclass(frozen=True)
class Strategy:
    """One source of pseudo-labels.

    ``label(feature_sets, walk, cfg, epoch, windows)`` returns one label array (N,) per
    feature set; ``walk`` is None for strategies with ``per_walk=False``, else each window's
    walk numbered 0..W-1. ``settings``: the TrainConfig fields only this strategy reads.
    """

    name: str
    label: Callable[..., list[np.ndarray]]
    summary: str
    per_walk: bool = True
    settings: tuple[str, ...] = ()


def _clusters(feature_sets: Sequence[torch.Tensor], walk: np.ndarray | None, cfg: object,
              epoch: int, windows: object = None) -> list[np.ndarray]:
    return cluster_many(list(feature_sets), cfg.k1, cfg.k2, cfg.eps,  # type: ignore[attr-defined]
                        cfg.min_samples, cfg.k1_reading)  # type: ignore[attr-defined]


def _walks(feature_sets: Sequence[torch.Tensor], walk: np.ndarray, cfg: object, epoch: int,
           windows: object = None) -> list[np.ndarray]:
    return [walk for _ in feature_sets]


def _people(feature_sets: Sequence[torch.Tensor], walk: np.ndarray, cfg: object, epoch: int,
            windows: torch.Tensor | np.ndarray | None = None) -> list[np.ndarray]:
    from vid2reid.association import associate, body_proportions, window_walk_frames

    body = None
    if windows is not None:
        xw = windows.detach().cpu().numpy() if isinstance(windows, torch.Tensor) else windows
        body = body_proportions(window_walk_frames(xw, walk))
    views = []
    for fs in feature_sets:
        a = associate(walk_means(fs, walk).cpu().numpy(), body, seed=epoch, with_confidence=True,
                      join_alone=False)
        views.append(confident_labels(a.labels, a.confidence))
    agreed = agreement(views)  # two walks share a class only where every view joins them
    return [agreed[walk] for _ in feature_sets]


def confident_labels(labels: np.ndarray, confidence: np.ndarray, least: float = 0.5
                     ) -> np.ndarray:
    """Walk groups for training: a walk whose place is unsure (confidence below ``least``:
    its alternative is as likely) becomes a class of its own for this epoch, so a doubtful
    member does not pull a person's prototype; it rejoins when the grouping is sure of it."""
    out = np.asarray(labels, dtype=np.int64).copy()
    unsure = np.flatnonzero(np.asarray(confidence) < least)
    out[unsure] = out.max(initial=-1) + 1 + np.arange(len(unsure))
    return out


def agreement(labelings: Sequence[np.ndarray]) -> np.ndarray:
    """The finest grouping coarser than none of ``labelings``: walks share a group only where
    every labelling puts them together (the masked views of one epoch must agree)."""
    _, out = np.unique(np.stack([np.asarray(lab) for lab in labelings], axis=1), axis=0,
                       return_inverse=True)
    return out.ravel().astype(np.int64)


def _walk_groups(mutual: bool) -> Callable[..., list[np.ndarray]]:
    def label(feature_sets: Sequence[torch.Tensor], walk: np.ndarray, cfg: object, epoch: int,
              windows: object = None) -> list[np.ndarray]:
        return [walk_groups(walk_means(fs, walk), mutual=mutual)[walk] for fs in feature_sets]

    return label


REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("people", _people, "walks associated into people by features and body "
             "proportions, the number of people found from the data (vid2reid.association)"),
    Strategy("clusters", _clusters, "SimMC's DBSCAN over windows (k-reciprocal Jaccard "
             "distance)", per_walk=False,
             settings=("eps", "min_samples", "k1", "k2", "k1_reading")),
    Strategy("walks", _walks, "every training walk its own class"),
    Strategy("walk-groups", _walk_groups(mutual=True), "walks grouped with the walks they are "
             "mutual nearest neighbours of"),
    Strategy("walk-chains", _walk_groups(mutual=False), "every walk joined to its nearest "
             "walk's group, either way"),
)}


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; ConfigError naming the choices otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"pseudo-labels must be one of {', '.join(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def pseudo_labels(feature_sets: Sequence[torch.Tensor], walk: np.ndarray | None, cfg: object,
                  epoch: int, windows: torch.Tensor | np.ndarray | None = None
                  ) -> list[np.ndarray]:
    """One label array (N,) per feature set, from the strategy ``cfg.pseudo_labels`` names
    (see the module docstring for the walk warm-up)."""
    strategy = get_strategy(getattr(cfg, "pseudo_labels", "clusters"))
    if not strategy.per_walk:
        return strategy.label(feature_sets, None, cfg, epoch, windows)
    if walk is None:
        raise ConfigError(f"pseudo-labels {strategy.name!r} need the walk of every training "
                          f"window")
    _, w = np.unique(np.asarray(walk), return_inverse=True)
    w = w.astype(np.int64).ravel()
    if epoch < getattr(cfg, "walk_warmup", 0):
        return [w for _ in feature_sets]
    return strategy.label(feature_sets, w, cfg, epoch, windows)
