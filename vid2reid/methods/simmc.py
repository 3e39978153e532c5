"""SimMC (Rao & Miao, IJCAI 2022): masked prototype contrast + masked intra-sequence contrast.

The training-method contract of vid2reid.methods.base, as docs/methods.md describes it:

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
from torch import nn

from vid2reid.encoders import FrameEncoder, GraphFrameEncoder, build_graph_encoder
from vid2reid.methods.base import Handover, Method
from vid2reid.methods.views import draw_masks, label_views, simsiam

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

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


class SimMCModel(nn.Module):
    """Encoder plus the MIC predictor F (H -> H, with bias).

    ``encoder``: another frame encoder with FrameEncoder's interface (``frames``, ``pool``,
    ``fc2``), e.g. ``vid2reid.encoders.GraphFrameEncoder``; default SimMC's MLP.
    """

    def __init__(self, in_features: int, hidden: int = 256,
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else FrameEncoder(in_features, hidden)
        self.predictor = nn.Linear(hidden, hidden)


def build_model(cfg: TrainConfig, num_joints: int, layout: str) -> SimMCModel:
    """Encoder for frames of ``num_joints`` 3D joints (K = 3J) plus the MIC predictor.

    ``cfg.encoder == "graph"``: SM-SGE's multi-scale graph encoder under SimMC's MLP
    (vid2reid.encoders), for "SM-SGE + SimMC" (``--init`` an sm-sge run).
    """
    if cfg.encoder == "graph":
        return SimMCModel(3 * num_joints, cfg.hidden,
                          encoder=GraphFrameEncoder(build_graph_encoder(cfg, num_joints, layout),
                                                    cfg.hidden))
    return SimMCModel(3 * num_joints, cfg.hidden)


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
    keep, lab, protos, stats = label_views(feats, walks, cfg, epoch, x)
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
        mic = simsiam(model.predictor, views[0], views[1])
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


_GRAPH_SETTINGS = ("smsge_dim", "smsge_heads", "smsge_lambda", "himpc_part_map")


def handover(info: dict) -> Handover:
    """A SimMC run hands over its whole frame encoder (MLP or graph) and its shape."""
    settings = {"encoder": info.get("encoder", "mlp"), "hidden": info.get("hidden", 256)}
    if settings["encoder"] == "graph":
        settings.update({k: info[k] for k in _GRAPH_SETTINGS if k in info})
    return Handover(part="frame", prefix="encoder.", settings=settings)


def load_init(model: SimMCModel, part: str, state: dict) -> None:
    """Start from another run's frame encoder, or put its graph encoder under SimMC's MLP."""
    target = model.encoder.graph if part == "graph" else model.encoder
    target.load_state_dict(state)


METHOD = Method(name="simmc", build_model=build_model, prepare_epoch=prepare_epoch,
                batch_loss=batch_loss, embed=embed, encoders=("mlp", "graph"),
                settings={"init": "--init"},
                handover=handover, load_init=load_init)
