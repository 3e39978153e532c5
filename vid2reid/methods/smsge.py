"""SM-SGE (Rao, Hu, Cheng, Hu, ACM MM 2021): self-supervised multi-scale skeleton graph encoding.

The training-method contract of vid2reid.methods.base; no clustering and no label of any kind:

- every frame goes through the multi-scale graph encoder (``vid2reid.encoders.GraphEncoder``:
  joints, 10 body components, 5 limbs from the layout's part map; structural relations by graph
  attention within a scale, collaborative relations across scales);
- per scale, a 2-layer LSTM (``--hidden`` units) reads the window's graph features frame by
  frame (multi-scale skeleton reconstruction, MSR): at each step an MLP decoder per target
  reconstructs that frame's skeleton at the LSTM's own scale and every coarser one (joint ->
  joint, component, limb; component -> component, limb; limb -> limb); L1 loss, summed;
- each batch reconstructs the whole window and one random sorted subsequence of k frames
  (k drawn in 1..f-1 per batch, the same frames for the batch), as the authors' random
  subsequence sampling does for every k at once;
- representation (``embed``): per scale the LSTM's output averaged over the window's steps,
  the three scales concatenated (3 x hidden numbers). The authors classify every prefix
  1..f's last output with a classifier trained on identity labels and sum the logits; the
  label-free counterpart is the average of those outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vid2reid.encoders import SCALES, GraphEncoder, build_graph_encoder, check_graph_settings
from vid2reid.methods.base import Handover, Method

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

_CHUNK = 512  # windows embedded at once (f frames each through the graph encoder)


class SMSGEModel(nn.Module):
    """Graph encoder + per-scale LSTMs + per (scale, target scale) reconstruction decoders."""

    def __init__(self, graph: GraphEncoder, hidden: int) -> None:
        super().__init__()
        self.graph = graph
        self.hidden = hidden
        d = graph.dim
        self.lstm = nn.ModuleDict({s: nn.LSTM(graph.nodes[s] * d, hidden, num_layers=2,
                                              batch_first=True) for s in SCALES})
        self.decoders = nn.ModuleDict({
            f"{s}_{t}": nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                      nn.Linear(hidden, graph.nodes[t] * 3))
            for i, s in enumerate(SCALES) for t in SCALES[i:]})

    def scale_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, f, J, 3) windows -> per scale (B, f, V_s * dim) graph features per frame."""
        b, f = x.shape[:2]
        h = self.graph.nodes_features(x.reshape(b * f, *x.shape[2:]))
        return {s: h[s].reshape(b, f, -1) for s in SCALES}


def build_model(cfg: TrainConfig, num_joints: int, layout: str) -> SMSGEModel:
    return SMSGEModel(build_graph_encoder(cfg, num_joints, layout), cfg.hidden)


@dataclass
class SMSGEPlan:
    keep: np.ndarray  # every window: SM-SGE has no outliers
    stats: dict
    generator: torch.Generator  # draws the batches' subsequences (seeded from the epoch's rng)
    labels: None = None


def prepare_epoch(model: SMSGEModel, x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator,
                  epoch: int, walks: np.ndarray | None = None) -> SMSGEPlan:
    """Nothing to cluster: every window trains; a generator for this epoch's subsequences.

    ``walks`` is part of the shared interface; reconstruction needs no pseudo-labels.
    """
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return SMSGEPlan(keep=np.arange(len(x)), stats={"windows": int(len(x))}, generator=gen)


def reconstruction_loss(model: SMSGEModel, feats: dict[str, torch.Tensor],
                        targets: dict[str, torch.Tensor], frames: torch.Tensor | None
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over (scale, target scale) of the L1 error reconstructing the frames ``frames``
    (sorted indices; None = the whole window) from that scale's LSTM outputs.

    ``feats``: per scale (B, f, V_s * dim) graph features; ``targets``: per scale
    (B, f, V_s * 3) node positions.
    """
    if frames is not None:
        feats = {s: v[:, frames] for s, v in feats.items()}
        targets = {s: v[:, frames] for s, v in targets.items()}
    total, parts = 0, {}
    for i, s in enumerate(SCALES):
        out, _ = model.lstm[s](feats[s])
        loss_s = sum(F.l1_loss(model.decoders[f"{s}_{t}"](out), targets[t]) for t in SCALES[i:])
        parts[f"rec_{s}"] = float(loss_s.detach())
        total = total + loss_s
    return total, parts


def batch_loss(model: SMSGEModel, x_batch: torch.Tensor, idx_batch: np.ndarray, plan: SMSGEPlan,
               cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Multi-scale reconstruction of the whole window and of one random subsequence
    (the graph features of each frame are computed once and shared by both)."""
    feats = model.scale_features(x_batch)
    targets = {s: p.flatten(2) for s, p in model.graph.scale_positions(x_batch).items()}
    loss, parts = reconstruction_loss(model, feats, targets, None)
    f = x_batch.shape[1]
    if f > 1:
        k = int(torch.randint(1, f, (1,), generator=plan.generator))
        sub = torch.randperm(f, generator=plan.generator)[:k].sort().values.to(x_batch.device)
        loss_sub, _ = reconstruction_loss(model, feats, targets, sub)
        loss = (loss + loss_sub) / 2
    return loss, parts


@torch.no_grad()
def embed(model: SMSGEModel, x: torch.Tensor) -> torch.Tensor:
    """(N, 3 * hidden): per scale the mean over the window of the LSTM outputs, concatenated."""
    model.eval()
    outs = []
    for a in range(0, len(x), _CHUNK):
        feats = model.scale_features(x[a : a + _CHUNK])
        outs.append(torch.cat([model.lstm[s](feats[s])[0].mean(dim=1) for s in SCALES], dim=1))
    return torch.cat(outs) if outs else torch.empty(0, 3 * model.hidden, device=x.device)


def handover(info: dict) -> Handover:
    """An SM-SGE run hands over its multi-scale graph encoder (SimMC puts its MLP on top)."""
    return Handover(part="graph", prefix="graph.", settings={
        "encoder": "graph", "smsge_dim": info.get("smsge_dim", 8),
        "smsge_heads": info.get("smsge_heads", 8), "smsge_lambda": info.get("smsge_lambda", 1.0),
        "himpc_part_map": info.get("himpc_part_map", "")})


# No masks or MIC; the authors' KGBD learning rate and LSTM width; its reconstruction features
# are not cosine-trained, so they are scored at their own length.
METHOD = Method(name="sm-sge", build_model=build_model, prepare_epoch=prepare_epoch,
                batch_loss=batch_loss, embed=embed, check_config=check_graph_settings,
                defaults={"x": 0, "q": 1, "lam": 0.0, "lr": 2.5e-3, "hidden": 128,
                          "unit_features": False},
                settings={"smsge_dim": "--graph-dim", "smsge_heads": "--graph-heads",
                          "smsge_lambda": "--graph-lambda"},
                handover=handover)
