"""Frame encoders shared by the training methods.

- ``FrameEncoder``: SimMC's per-frame MLP on the 3J coordinates.
- ``GraphEncoder``: SM-SGE's multi-scale skeleton graph encoder (Rao et al., ACM MM 2021),
  per frame: the skeleton at three scales -- J joints, 10 body components, 5 limbs, the part
  positions being plain means of joints (``vid2reid.layouts``) -- each a graph (bones; adjacent
  components; limbs around the torso). Structural relation learning: per scale a graph
  attention layer over each node and its neighbours (``heads`` heads averaged). Collaborative
  relation learning: every node attends to all nodes of its own and of every coarser scale
  (attention = softmax of feature dot products) and adds the attended features, through one
  matrix per scale pair, weighted by ``lam``. Output: all nodes' features, flattened.
- ``GraphFrameEncoder``: ``GraphEncoder`` followed by SimMC's MLP, with ``FrameEncoder``'s
  interface (``frames``, ``pool``, ``forward``), so that SimMC trains on top of a pre-trained
  SM-SGE graph encoder ("SM-SGE + SimMC").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vid2reid.errors import ConfigError
from vid2reid.layouts import COMPONENTS, LIMBS, PartMap, bones, part_matrix, resolve_part_map

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

ENCODERS = ("mlp", "graph")
SCALES = ("joint", "component", "limb")
_NO_GRAD_CHUNK = 2048  # frames encoded at once without gradients

# The component and limb graphs of the SM-SGE authors (by name, vid2reid.layouts' part names).
COMPONENT_EDGES = (("l_leg_up", "l_leg_down"), ("r_leg_up", "r_leg_down"), ("torso", "l_leg_up"),
                   ("torso", "r_leg_up"), ("torso", "head"), ("head", "l_arm_up"),
                   ("head", "r_arm_up"), ("l_arm_up", "l_arm_down"), ("r_arm_up", "r_arm_down"))
LIMB_EDGES = (("torso", "l_leg"), ("torso", "r_leg"), ("torso", "l_arm"), ("torso", "r_arm"))


class FrameEncoder(nn.Module):
    """``h_t = W2 · relu(W1 · S_t)`` per frame; a (sub)sequence is the mean of its kept ``h_t``.

    Because W2 is linear, ``mean_t W2 u_t = W2 mean_t u_t``: the mean is taken
    over the hidden ``u_t = relu(W1 S_t)`` first, which gives the same result
    with one W2 product per window instead of one per frame.
    """

    def __init__(self, in_features: int, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, f, K) frames -> (B, f, H) hidden activations ``relu(W1 S_t)``."""
        return torch.relu(self.fc1(x))

    def pool(self, u: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, f, H) activations and an optional (B, f) bool keep-mask -> (B, H) representation."""
        if keep is None:
            return self.fc2(u.mean(dim=1))
        w = keep.to(u.dtype)
        return self.fc2((u * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, f, K) frames -> (B, H): mean of the kept frames' ``h_t`` (all frames if no mask)."""
        return self.pool(self.frames(x), keep)


def adjacency(n: int, edges: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> torch.Tensor:
    """(n, n) bool: True on the edges (both ways) and the diagonal (a node sees itself)."""
    a = torch.eye(n, dtype=torch.bool)
    for i, j in edges:
        a[i, j] = a[j, i] = True
    return a


def scale_graphs(pm: PartMap) -> dict[str, torch.Tensor]:
    """Per scale the (nodes, nodes) adjacency with self-loops."""
    ci = {c: i for i, c in enumerate(COMPONENTS)}
    li = {c: i for i, c in enumerate(LIMBS)}
    return {"joint": adjacency(pm.num_joints, bones(pm)),
            "component": adjacency(len(COMPONENTS), [(ci[a], ci[b]) for a, b in COMPONENT_EDGES]),
            "limb": adjacency(len(LIMBS), [(li[a], li[b]) for a, b in LIMB_EDGES])}


class GraphAttention(nn.Module):
    """One graph attention layer (GAT) with ``heads`` heads, averaged: (N, V, d) -> (N, V, d).

    Head m: ``z = h W_m``; ``e_ij = leaky_relu(a_m . z_i + b_m . z_j)`` for neighbours j of i
    (self included), softmax over j; ``out_i = elu(sum_j alpha_ij z_j + c_m)``.
    """

    def __init__(self, dim: int, heads: int, adj: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(heads, dim, dim))
        for m in range(heads):
            nn.init.xavier_uniform_(self.w[m])
        self.a_src = nn.Parameter(torch.randn(heads, dim) * dim ** -0.5)
        self.a_dst = nn.Parameter(torch.randn(heads, dim) * dim ** -0.5)
        self.bias = nn.Parameter(torch.zeros(heads, dim))
        self.register_buffer("mask", torch.where(adj, 0.0, float("-inf")))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, v, d = h.shape
        m = self.w.shape[0]
        z = (h @ self.w.permute(1, 0, 2).reshape(d, m * d)).view(n, v, m, d).transpose(1, 2)
        # a . (h W_m) = h . (W_m a): the scores straight from h, (N, V, M) each
        src = h @ torch.einsum("mde,me->dm", self.w, self.a_src)
        dst = h @ torch.einsum("mde,me->dm", self.w, self.a_dst)
        e = src.transpose(1, 2).unsqueeze(-1) + dst.transpose(1, 2).unsqueeze(-2)  # (N, M, V, V)
        alpha = torch.softmax(F.leaky_relu(e, 0.2) + self.mask, dim=-1)
        return F.elu(alpha @ z + self.bias[:, None]).mean(dim=1)  # z: (N, M, V, d)


class GraphEncoder(nn.Module):
    """SM-SGE's multi-scale graph encoder for one frame: (N, J, 3) -> per scale (N, V_s, dim)."""

    def __init__(self, part_map: PartMap, dim: int = 8, heads: int = 8, lam: float = 1.0) -> None:
        super().__init__()
        self.dim, self.lam = dim, lam
        self.root = part_map.root
        j = part_map.num_joints
        self.nodes = {"joint": j, "component": len(COMPONENTS), "limb": len(LIMBS)}
        self.register_buffer("component_matrix",
                             torch.from_numpy(part_matrix(part_map.components, j)))
        self.register_buffer("limb_matrix", torch.from_numpy(part_matrix(part_map.limbs, j)))
        graphs = scale_graphs(part_map)
        self.embed = nn.ModuleDict({s: nn.Linear(3, dim) for s in SCALES})
        self.srl = nn.ModuleDict({s: GraphAttention(dim, heads, graphs[s]) for s in SCALES})
        # collaborative relations: scale i takes from scales i..coarsest (its own included)
        self.crl = nn.ModuleDict({f"{s}_{t}": nn.Linear(dim, dim, bias=False)
                                  for i, s in enumerate(SCALES) for t in SCALES[i:]})
        self.out_features = dim * sum(self.nodes.values())

    def scale_positions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., J, 3) joints -> per scale (..., V_s, 3) root-relative node positions."""
        x = x - x[..., self.root : self.root + 1, :]
        return {"joint": x,
                "component": torch.einsum("pj,...jc->...pc", self.component_matrix, x),
                "limb": torch.einsum("pj,...jc->...pc", self.limb_matrix, x)}

    def nodes_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, J, 3) -> per scale (N, V_s, dim) node features after SRL and CRL."""
        pos = self.scale_positions(x)
        h = {s: self.srl[s](self.embed[s](pos[s])) for s in SCALES}
        if self.lam == 0:
            return h
        out = {}
        for i, s in enumerate(SCALES):
            extra = 0
            for t in SCALES[i:]:
                att = torch.softmax(h[s] @ h[t].transpose(1, 2), dim=-1)  # (N, V_s, V_t)
                extra = extra + self.crl[f"{s}_{t}"](att @ h[t])
            out[s] = h[s] + self.lam * extra
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., J, 3) joints -> (..., out_features): every node of every scale, flattened.

        Without gradients the frames go through in chunks of ``_NO_GRAD_CHUNK``: the attention
        maps (frames x heads x nodes x nodes) of a whole encoding pass would not fit otherwise.
        """
        lead = x.shape[:-2]
        flat = x.reshape(-1, *x.shape[-2:])
        step = len(flat) if torch.is_grad_enabled() else _NO_GRAD_CHUNK
        parts = []
        for a in range(0, len(flat), max(1, step)):
            h = self.nodes_features(flat[a : a + step])
            parts.append(torch.cat([h[s].flatten(1) for s in SCALES], dim=1))
        out = torch.cat(parts) if parts else flat.new_zeros(0, self.out_features)
        return out.reshape(*lead, -1)


class GraphFrameEncoder(FrameEncoder):
    """``h_t = W2 relu(W1 g(S_t))`` with g the graph encoder; FrameEncoder's pooling and interface."""

    def __init__(self, graph: GraphEncoder, hidden: int = 256) -> None:
        super().__init__(graph.out_features, hidden)
        self.graph = graph

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, f, 3J) frames -> (B, f, H) hidden activations ``relu(W1 g(S_t))``."""
        return torch.relu(self.fc1(self.graph(x.reshape(*x.shape[:2], -1, 3))))


def check_graph_settings(cfg: TrainConfig) -> None:
    """ConfigError for graph-encoder settings (SM-SGE, or SimMC with --encoder graph) out of range."""
    if cfg.smsge_dim < 1 or cfg.smsge_heads < 1:
        raise ConfigError(f"SM-SGE needs graph-dim and graph-heads >= 1, got {cfg.smsge_dim} "
                          f"and {cfg.smsge_heads}")
    if not 0 <= cfg.smsge_lambda <= 1:
        raise ConfigError(f"SM-SGE fusion lambda must be in [0, 1], got {cfg.smsge_lambda}")


def build_graph_encoder(cfg: TrainConfig, num_joints: int, layout: str) -> GraphEncoder:
    """The multi-scale graph encoder for ``layout`` (its part map; ConfigError without one)."""
    check_graph_settings(cfg)
    return GraphEncoder(resolve_part_map(cfg.himpc_part_map, num_joints, layout), cfg.smsge_dim,
                        cfg.smsge_heads, cfg.smsge_lambda)
