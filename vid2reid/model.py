"""SimMC's networks: a per-frame MLP encoder and the SimSiam-style linear predictor."""

from __future__ import annotations

import torch
from torch import nn


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
