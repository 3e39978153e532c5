"""Pieces several methods share: masked views of a window and label -> prototype -> keep.

SimMC's masks drop x random frames of each window per view; every view is labelled on its own
(vid2reid.labels), its prototypes are the labels' unit-length mean features, and
a window trains only where it is labelled in every view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from vid2reid.cluster import prototypes
from vid2reid.labels import pseudo_labels
from vid2reid.errors import ClusteringError

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig


def draw_masks(rng: np.random.Generator, n: int, f: int, x: int, q: int) -> np.ndarray:
    """(q, n, f) keep-masks: in each view every window drops x distinct frames."""
    keep = np.ones((q, n, f), dtype=bool)
    if x > 0:
        dropped = np.argsort(rng.random((q, n, f)), axis=2)[:, :, :x]
        np.put_along_axis(keep, dropped, False, axis=2)
    return keep


def label_views(feats: torch.Tensor, walks: np.ndarray | None, cfg: TrainConfig, epoch: int,
                windows: torch.Tensor | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[torch.Tensor], dict]:
    """Pseudo-labels of every view's features (q, N, H) and their fixed unit-length prototypes.

    Returns the windows labelled in every view (the rest sit the epoch out), the
    (q, N) labels, the per-view prototypes and the epoch's statistics. ``windows``
    (N, f, J, 3): the windows themselves, for the body proportions of "people" labels.
    """
    n = feats.shape[1]
    labels, protos, counts = [], [], []
    for i, lab in enumerate(pseudo_labels(list(feats), walks, cfg, epoch, windows)):
        c = int(lab.max()) + 1
        if c == 0:
            raise ClusteringError(
                f"epoch {epoch + 1}: DBSCAN found no cluster among {n} training windows "
                f"(eps={cfg.eps}, min_samples={cfg.min_samples}); raise --eps, lower "
                f"--min-samples, or train on more data")
        labels.append(lab)
        protos.append(F.normalize(prototypes(feats[i], lab), dim=1))
        counts.append(c)
    lab = np.stack(labels)
    keep = np.flatnonzero((lab >= 0).all(axis=0))
    if len(keep) == 0:
        raise ClusteringError(
            f"epoch {epoch + 1}: no window is clustered in every view ({n} windows, "
            f"eps={cfg.eps}); raise --eps or lower --min-samples")
    stats = {"clusters": counts[0], "clusters_per_view": counts, "outliers": int(n - len(keep)),
             "kept": int(len(keep)), "windows": int(n)}
    return keep, lab, protos, stats


def simsiam(predictor: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SimMC's MIC between two views: ``-0.5 cos(F(a), sg(b)) - 0.5 cos(F(b), sg(a))``."""
    return (-0.5 * F.cosine_similarity(predictor(a), b.detach(), dim=1)
            - 0.5 * F.cosine_similarity(predictor(b), a.detach(), dim=1)).mean()
