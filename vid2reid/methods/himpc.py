"""Hi-MPC: hierarchical meta-prototype contrastive learning with hard skeleton mining.

The second training method next to SimMC (see ``docs/methods.md``). Each frame
is seen at three levels -- the J joints, 10 body components and 5 limbs (part
positions are plain means of joints, ``vid2reid.layouts``) -- each with its own
per-frame MLP encoder. Once per epoch every level's sequence features are
clustered (the shared ``vid2reid.cluster`` functions); a window is trained on
only if it is a non-outlier at every level used. Per level, M meta heads (H x H,
no bias) map frames and that level's fixed prototypes; every frame is
classified against the prototypes, and the per-frame cross-entropies are
weighted by hard-skeleton-mining weights that sum to 1 over the window.

The module fulfils the training-method contract of ``vid2reid.methods.base``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vid2reid import cluster
from vid2reid.labels import pseudo_labels
from vid2reid.errors import ClusteringError, ConfigError
from vid2reid.encoders import FrameEncoder
from vid2reid.layouts import PartMap, part_matrix, resolve_part_map
from vid2reid.methods.base import Method

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

LEVELS = ("joint", "component", "limb")
JOINT_WEIGHTINGS = ("mean", "reference")
LOGITS = ("cosine", "reference")


class HiMPCModel(nn.Module):
    """Per-level frame encoders plus per-level meta heads.

    ``forward``-free on purpose: the method functions call ``frame_features``
    and read ``heads`` directly.
    """

    def __init__(self, part_map: PartMap, hidden: int, heads: int,
                 levels: tuple[str, ...]) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.root = part_map.root
        self.hidden = hidden
        j = part_map.num_joints
        self.register_buffer("component_matrix",
                             torch.from_numpy(part_matrix(part_map.components, j)))
        self.register_buffer("limb_matrix", torch.from_numpy(part_matrix(part_map.limbs, j)))
        parts = {"joint": j, "component": len(part_map.components), "limb": len(part_map.limbs)}
        self.encoders = nn.ModuleDict({lv: FrameEncoder(3 * parts[lv], hidden)
                                       for lv in self.levels})
        w = torch.empty(len(self.levels), heads, hidden, hidden)
        for i in range(len(self.levels)):
            for m in range(heads):
                nn.init.xavier_uniform_(w[i, m])
        self.heads = nn.ParameterDict({lv: nn.Parameter(w[i].clone())
                                       for i, lv in enumerate(self.levels)})

    def level_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, f, J, 3) windows -> per level (N, f, 3P) root-relative positions."""
        x = x - x[:, :, self.root : self.root + 1, :]
        out = {}
        for lv in self.levels:
            if lv == "joint":
                pos = x
            else:
                mat = self.component_matrix if lv == "component" else self.limb_matrix
                pos = torch.einsum("pj,nfjc->nfpc", mat, x)
            out[lv] = pos.reshape(pos.shape[0], pos.shape[1], -1)
        return out

    def frame_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per level (N, f, H) frame features ``h_t`` (SimMC's encoder, applied per frame)."""
        return {lv: self.encoders[lv].fc2(self.encoders[lv].frames(inp))
                for lv, inp in self.level_inputs(x).items()}

    def sequence_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per level (N, H) window features: the mean of the frame features."""
        return {lv: self.encoders[lv](inp) for lv, inp in self.level_inputs(x).items()}


@dataclass
class EpochPlan:
    """One epoch's clustering result: kept windows, per-level pseudo-labels and prototypes."""

    keep: np.ndarray
    stats: dict[str, Any]
    labels: np.ndarray  # (N,) first level's pseudo-labels (the loop's stability signal)
    # (N,) pseudo-labels per level, -1 = outlier
    level_labels: dict[str, np.ndarray] = field(default_factory=dict)
    prototypes: dict[str, torch.Tensor] = field(default_factory=dict)  # (C, H) per level


def check_config(cfg: TrainConfig) -> tuple[str, ...]:
    """Validate the Hi-MPC options; returns the levels in canonical order."""
    levels = tuple(cfg.himpc_levels)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ConfigError(f"unknown Hi-MPC level(s) {', '.join(bad) or '(none given)'}; "
                          f"choose from {', '.join(LEVELS)}")
    if cfg.himpc_joint_weighting not in JOINT_WEIGHTINGS:
        raise ConfigError(f"himpc joint weighting must be one of {', '.join(JOINT_WEIGHTINGS)}, "
                          f"got {cfg.himpc_joint_weighting!r}")
    if cfg.himpc_logits not in LOGITS:
        raise ConfigError(f"himpc logits must be one of {', '.join(LOGITS)}, "
                          f"got {cfg.himpc_logits!r}")
    if cfg.himpc_heads < 1:
        raise ConfigError(f"Hi-MPC needs at least one meta head, got {cfg.himpc_heads}")
    return tuple(lv for lv in LEVELS if lv in levels)


def build_model(cfg: TrainConfig, num_joints: int, layout: str) -> HiMPCModel:
    """A Hi-MPC model for ``num_joints``-joint skeletons of ``layout``.

    Raises ConfigError for a layout without a part map (and no ``--part-map``).
    """
    levels = check_config(cfg)
    return HiMPCModel(resolve_part_map(cfg.himpc_part_map, num_joints, layout), cfg.hidden, cfg.himpc_heads,
                      levels)


@torch.no_grad()
def sequence_features(model: HiMPCModel, x: torch.Tensor,
                      batch: int = 1024) -> dict[str, torch.Tensor]:
    """Per level (N, H) window features: the mean over frames of the frame features."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {lv: [] for lv in model.levels}
    for s in range(0, len(x), batch):
        for lv, z in model.sequence_features(x[s : s + batch].to(dev)).items():
            parts[lv].append(z)
    model.train(was_training)
    return {lv: torch.cat(p) if p else torch.empty(0, model.hidden, device=dev)
            for lv, p in parts.items()}


def prepare_epoch(model: HiMPCModel, x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator,
                  epoch: int, walks: np.ndarray | None = None) -> EpochPlan:
    """Cluster every level's window features; keep windows that are no outlier at any level.

    ``rng`` is unused (Hi-MPC has no masking or augmentation); it is part of the
    shared method interface.
    """
    feats = sequence_features(model, x)
    labels, protos, stats = {}, {}, {}
    inlier = np.ones(len(x), dtype=bool)
    level_labels = pseudo_labels([feats[lv] for lv in model.levels], walks, cfg, epoch,
                                         x)
    for lv, lab in zip(model.levels, level_labels):
        lab = np.asarray(lab)
        n_clusters = int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0
        if n_clusters == 0:
            raise ClusteringError(
                f"Hi-MPC epoch {epoch}: DBSCAN found no cluster at the {lv} level "
                f"({len(x)} windows are all outliers); raise --eps (now {cfg.eps}) or lower "
                f"min_samples (now {cfg.min_samples})")
        labels[lv] = lab
        protos[lv] = cluster.prototypes(feats[lv], lab)
        inlier &= lab >= 0
        stats[f"clusters_{lv}"] = n_clusters
        stats[f"outliers_{lv}"] = int((lab < 0).sum())
    keep = np.flatnonzero(inlier)
    if keep.size == 0:
        raise ClusteringError(
            f"Hi-MPC epoch {epoch}: no window is a non-outlier at every level "
            f"({', '.join(model.levels)}); raise --eps (now {cfg.eps}) or train on fewer --levels")
    stats["kept"] = int(keep.size)
    stats["outliers"] = int(len(x) - keep.size)
    stats["clusters"] = stats[f"clusters_{model.levels[0]}"]
    return EpochPlan(keep=keep, stats=stats, labels=labels[model.levels[0]],
                     level_labels=labels, prototypes=protos)


def head_logits(z: torch.Tensor, protos: torch.Tensor, heads: torch.Tensor,
                tau: float | None = None) -> torch.Tensor:
    """Every head's score of every frame against every prototype.

    z (B, f, H) frame features, protos (C, H), heads (M, H, H) -> (M, B, f, C).
    ``tau=None``: the reference code's ``(z_t W_m) . (c_k W_m) / sqrt(H)``.
    Otherwise vid2reid's default: the cosine of ``z_t W_m`` and ``c_k W_m``
    divided by the temperature ``tau``, as SimMC scores its prototypes (on
    synthetic walkers the unnormalised scores stayed near uniform and the
    loss at log C for the whole run; see the README).
    """
    if tau is None:
        # (z W)(c W)^T = z (c W W^T)^T: map the few prototypes twice instead of every frame once
        cw = torch.einsum("ch,mhk->mck", protos, heads)
        cww = torch.einsum("mck,mhk->mch", cw, heads)
        return torch.einsum("bth,mch->mbtc", z, cww) / math.sqrt(z.shape[-1])
    zw = F.normalize(torch.einsum("bth,mhk->mbtk", z, heads), dim=-1)
    cw = F.normalize(torch.einsum("ch,mhk->mck", protos, heads), dim=-1)
    return torch.einsum("mbtk,mck->mbtc", zw, cw) / tau


def hsm_weights(frame_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Hard-skeleton-mining frame weights, (..., f, C) logits and (...) targets -> (..., f).

    The window's prototype is predicted from its mean feature; because the head
    score is linear in the feature, that equals the argmax of the frame logits
    averaged over frames. Each frame's logit for the predicted prototype is
    negated when the prediction equals the pseudo-label, then softmaxed over
    frames: a correctly assigned window weighs its least typical frames most, a
    wrongly assigned one the frames most like the wrong prototype. As in the
    reference code the gradient flows through the weights.
    """
    pred = frame_logits.mean(dim=-2).argmax(dim=-1)  # (...)
    idx = pred[..., None, None].expand(*frame_logits.shape[:-1], 1)
    logit = frame_logits.gather(-1, idx).squeeze(-1)  # (..., f)
    sign = torch.where(pred == targets, -1.0, 1.0).to(logit.dtype)[..., None]
    return torch.softmax(sign * logit, dim=-1)


def level_loss(z: torch.Tensor, protos: torch.Tensor, heads: torch.Tensor,
               targets: torch.Tensor, hsm: bool, tau: float | None = None) -> torch.Tensor:
    """Per-head frame-weighted cross-entropy of one level, (M,) one value per head."""
    logits = head_logits(z, protos, heads, tau)  # (M, B, f, C)
    m, b, f, c = logits.shape
    tgt = targets[None, :, None].expand(m, b, f)
    ce = F.cross_entropy(logits.reshape(-1, c), tgt.reshape(-1), reduction="none").view(m, b, f)
    if hsm:
        w = hsm_weights(logits, targets[None, :].expand(m, b))
    else:  # ablation: uniform frame weights
        w = torch.full_like(ce, 1.0 / f)
    return (w * ce).sum(dim=-1).mean(dim=-1)


def batch_loss(model: HiMPCModel, x_batch: torch.Tensor, idx_batch: np.ndarray,
               plan: EpochPlan, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over levels of each level's loss (mean over its heads).

    With ``himpc_joint_weighting == "reference"`` the joint level is summed over
    its heads instead (the reference code's weighting, M times the joint level),
    available for reproduction only.
    """
    feats = model.frame_features(x_batch)
    tau = cfg.tau if cfg.himpc_logits == "cosine" else None
    losses, logs = [], {}
    for lv in model.levels:
        protos = plan.prototypes[lv].to(x_batch.device)
        targets = torch.as_tensor(plan.level_labels[lv][idx_batch], device=x_batch.device)
        per_head = level_loss(feats[lv], protos, model.heads[lv], targets, cfg.himpc_hsm, tau)
        if lv == "joint" and cfg.himpc_joint_weighting == "reference":
            loss = per_head.sum()
        else:
            loss = per_head.mean()
        losses.append(loss)
        logs[f"loss_{lv}"] = float(loss.detach())
    total = torch.stack(losses).mean()
    logs["loss"] = float(total.detach())
    return total, logs


@torch.no_grad()
def embed(model: HiMPCModel, x: torch.Tensor) -> torch.Tensor:
    """Multi-level meta-representation: per level the window feature mapped by each head,
    averaged over heads; levels concatenated -> (N, L * H)."""
    feats = sequence_features(model, x)
    return torch.cat([feats[lv] @ model.heads[lv].mean(dim=0) for lv in model.levels], dim=1)


METHOD = Method(name="himpc", build_model=build_model, prepare_epoch=prepare_epoch,
                batch_loss=batch_loss, embed=embed, check_config=check_config,
                settings={"himpc_heads": "--heads", "himpc_hsm": "--hsm", "himpc_levels": "--levels",
                          "himpc_joint_weighting": "--joint-weighting",
                          "himpc_logits": "--head-logits", "himpc_part_map": "--part-map"})
