"""The contract every training method fulfils; the training loop (vid2reid.train) knows no more.

A method is a module of plain functions bundled in one ``Method`` value. Per epoch the loop
calls ``prepare_epoch`` once (encode, label, fix prototypes: the returned plan says which
windows train), then ``batch_loss`` for every batch of kept windows; ``embed`` gives the
test-time features. Only window coordinates and the number of each window's training walk
reach a method, never an identity label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from vid2reid.config import TrainConfig
    from vid2reid.data import SequenceBank
    from vid2reid.store import Record


class Plan(Protocol):
    """What ``prepare_epoch`` returns: the windows to train this epoch and the epoch's numbers."""

    keep: np.ndarray  # (M,) indices of the windows trained this epoch
    stats: dict  # logged with the epoch (clusters, outliers, ...)
    labels: np.ndarray | None  # (N,) pseudo-labels for the stop-ARI rule; None: none drawn


@dataclass(frozen=True)
class Handover:
    """What a trained run of a method gives a run started from it with ``--init``.

    ``part``: "frame" (the whole frame encoder) or "graph" (a multi-scale graph encoder);
    ``prefix``: where that part's tensors sit in the source model's state dict;
    ``settings``: the config values the new run must share to fit it.
    """

    part: str
    prefix: str
    settings: dict[str, Any]


def _no_check(cfg: TrainConfig) -> None:
    """Methods without settings of their own accept every config."""


@dataclass(frozen=True)
class Method:
    """One training method: four required functions and the optional parts, declared."""

    name: str
    build_model: Callable[[TrainConfig, int, str], torch.nn.Module]
    # (model, windows (N, f, J, 3), cfg, rng, epoch, walks=(N,) walk numbers) -> Plan
    prepare_epoch: Callable[..., Plan]
    # (model, batch windows, batch indices, plan, cfg) -> (loss, {part name: value})
    batch_loss: Callable[..., tuple[torch.Tensor, dict]]
    # (model, windows (N, f, J, 3)[, layout=...]) -> (N, D) features
    embed: Callable[..., torch.Tensor]
    # settings this method uses instead of the shared defaults (below explicit options)
    defaults: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # settings of its own: TrainConfig field -> its `vid2reid train` option (listed under the
    # method's name in --help)
    settings: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    check_config: Callable[[TrainConfig], None] = _no_check  # ConfigError for a bad setting
    encoders: tuple[str, ...] = ("mlp",)  # frame encoders (--encoder) the method can train
    # several --data stores of the same recordings in different layouts; embed takes layout=
    several_layouts: bool = False
    # several stores -> (training bank, its records, layout name); required with several_layouts
    training_sequences: Callable[[list, TrainConfig], tuple[SequenceBank, list[Record], str]] | None = None
    # a finished run's config.json -> what --init takes from it; None: nothing to hand over
    handover: Callable[[dict], Handover] | None = None
    # (model, part, state dict of that part): start from another run's encoder; None: no --init
    load_init: Callable[[torch.nn.Module, str, dict], None] | None = None
