"""SimMC (Rao & Miao, IJCAI 2022): masked prototype contrast + masked intra-sequence contrast.

Implements the training-method interface of vid2reid.train (build_model,
prepare_epoch, batch_loss, embed) as docs/methods.md describes it:

- each epoch draws, per window, q masks that each drop x of the f frames; the
  same masks are used for clustering and for that epoch's training;
- each masked view is clustered separately (k-reciprocal Jaccard + DBSCAN);
  windows that are noise in any view sit the epoch out;
- prototypes are the clusters' mean features, fixed for the epoch;
- MPC: cross-entropy of ``cos(v, p_c) / tau`` against the window's own cluster,
  summed over views; MIC: SimSiam ``-0.5 cos(F(v1), sg(v2)) - 0.5 cos(F(v2), sg(v1))``;
  ``L = lam * MIC + (1 - lam) * MPC``.

Ablations are settings: NPC = q 1, x 0 (no mask, one view, no MIC);
"MPC only" = lam 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from vid2reid.cluster import prototypes, pseudo_labels
from vid2reid.errors import ClusteringError
from vid2reid.model import SimMCModel

if TYPE_CHECKING:
    from vid2reid.train import TrainConfig

_CHUNK = 4096  # windows encoded at once when encoding the whole training set


@dataclass
class SimMCPlan:
    """One epoch's masks, pseudo-labels and prototypes (fixed for the epoch)."""

    keep: np.ndarray  # (M,) indices of windows trained this epoch
    stats: dict
    masks: torch.Tensor  # (q, N, f) bool, True = frame kept
    targets: torch.Tensor  # (q, N) long, cluster of each window in each view (-1 noise)
    protos: list[torch.Tensor] = field(default_factory=list)  # per view (C_i, H), unit length
    labels: np.ndarray | None = None  # (N,) first view's labels, for the stability signal


def build_model(cfg: TrainConfig, num_joints: int, layout: str) -> SimMCModel:
    """Encoder for frames of ``num_joints`` 3D joints (K = 3J) plus the MIC predictor.

    ``cfg.encoder == "graph"``: SM-SGE's multi-scale graph encoder under SimMC's MLP
    (vid2reid.encoders), for "SM-SGE + SimMC" (``--init`` an sm-sge run).
    """
    if getattr(cfg, "encoder", "mlp") == "graph":
        from vid2reid.encoders import GraphFrameEncoder
        from vid2reid.smsge import build_graph

        return SimMCModel(3 * num_joints, cfg.hidden,
                          encoder=GraphFrameEncoder(build_graph(cfg, num_joints, layout),
                                                    cfg.hidden))
    return SimMCModel(3 * num_joints, cfg.hidden)


def draw_masks(rng: np.random.Generator, n: int, f: int, x: int, q: int) -> np.ndarray:
    """(q, n, f) keep-masks: in each view every window drops x distinct frames."""
    keep = np.ones((q, n, f), dtype=bool)
    if x > 0:
        dropped = np.argsort(rng.random((q, n, f)), axis=2)[:, :, :x]
        np.put_along_axis(keep, dropped, False, axis=2)
    return keep


@torch.no_grad()
def encode_views(model: SimMCModel, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(q, N, H) features of every window under each view's mask."""
    frames = x.flatten(2)  # (N, f, 3J)
    out = torch.empty(masks.shape[0], x.shape[0], model.encoder.fc2.out_features, device=x.device)
    for a in range(0, x.shape[0], _CHUNK):
        u = model.encoder.frames(frames[a : a + _CHUNK])  # shared by all views
        for i in range(masks.shape[0]):
            out[i, a : a + _CHUNK] = model.encoder.pool(u, masks[i, a : a + _CHUNK])
    return out


def label_views(feats: torch.Tensor, walks: np.ndarray | None, cfg: TrainConfig, epoch: int
                ) -> tuple[np.ndarray, np.ndarray, list[torch.Tensor], dict]:
    """Pseudo-labels of every view's features (q, N, H) and their fixed unit-length prototypes.

    Returns the windows labelled in every view (the rest sit the epoch out), the
    (q, N) labels, the per-view prototypes and the epoch's statistics.
    """
    n = feats.shape[1]
    labels, protos, counts = [], [], []
    for i, lab in enumerate(pseudo_labels(list(feats), walks, cfg, epoch)):
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


def prepare_epoch(model: SimMCModel, x: torch.Tensor, cfg: TrainConfig,
                  rng: np.random.Generator, epoch: int, walks: np.ndarray | None = None
                  ) -> SimMCPlan:
    """Draw this epoch's masks, label every view and fix the prototypes.

    ``walks`` (N,): the training walk of each window, for the walk-based
    pseudo-labels (``cfg.pseudo_labels``); SimMC's own clustering ignores it.
    """
    n = x.shape[0]
    masks = torch.from_numpy(draw_masks(rng, n, cfg.f, cfg.x, cfg.q)).to(x.device)
    model.eval()
    feats = encode_views(model, x, masks)
    model.train()
    keep, lab, protos, stats = label_views(feats, walks, cfg, epoch)
    return SimMCPlan(keep=keep, stats=stats, masks=masks,
                     targets=torch.from_numpy(lab).to(x.device), protos=protos, labels=lab[0])


def batch_loss(model: SimMCModel, x_batch: torch.Tensor, idx_batch: np.ndarray, plan: SimMCPlan,
               cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    """``lam * MIC + (1 - lam) * MPC`` on a batch of windows (MIC only with two views)."""
    idx = torch.as_tensor(idx_batch, device=x_batch.device)
    u = model.encoder.frames(x_batch.flatten(2))  # (B, f, H), shared by the views
    views = [model.encoder.pool(u, plan.masks[i, idx]) for i in range(cfg.q)]
    mpc = sum(F.cross_entropy(F.normalize(v, dim=1) @ plan.protos[i].T / cfg.tau,
                              plan.targets[i, idx])
              for i, v in enumerate(views))
    parts = {"mpc": float(mpc.detach())}
    if cfg.q >= 2 and cfg.lam > 0:
        v1, v2 = views[0], views[1]
        z1, z2 = model.predictor(v1), model.predictor(v2)
        mic = (-0.5 * F.cosine_similarity(z1, v2.detach(), dim=1)
               - 0.5 * F.cosine_similarity(z2, v1.detach(), dim=1)).mean()
        parts["mic"] = float(mic.detach())
        return cfg.lam * mic + (1 - cfg.lam) * mpc, parts
    return mpc, parts


@torch.no_grad()
def embed(model: SimMCModel, x: torch.Tensor) -> torch.Tensor:
    """Test-time representation (N, H): mean of ``h_t`` over all f frames, no mask."""
    model.eval()
    frames = x.flatten(2)
    return torch.cat([model.encoder(frames[a : a + _CHUNK]) for a in range(0, len(x), _CHUNK)]) \
        if len(x) else torch.empty(0, model.encoder.fc2.out_features, device=x.device)
