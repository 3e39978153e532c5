"""MS-CLR (Kiray, Ritter, Navab & Busam, 2025): one encoder across skeleton conventions.

vid2reid's version, on top of SimMC's masked views (vid2reid.methods.views), fulfilling the
training-method contract of vid2reid.methods.base (docs/methods.md):

- **unified input**: every built-in layout is mapped to the 44-joint unified skeleton
  (vid2reid.unified): coordinates relative to the hip mid-point, zero where the layout (or a
  converted store) lacks a joint, plus the 44-number presence mask; one per-frame MLP encoder
  (176 -> H -> ReLU -> H, mean over the window's frames) reads every layout;
- **training data**: C stores of the same recordings in different layouts (``--data A --data
  B``), matched by the sequence file's path, never by subject. The training loop sees windows
  of all conventions side by side along the joint axis (N, f, J_1 + ... + J_C, 3); a window's
  C copies share their frames and their masks;
- **clustering** (once per view, as SimMC): on the mean over conventions of the L2-normalised
  masked features, so a window and its other conventions get one pseudo-label; prototypes are
  the clusters' mean ensemble features, shared by all conventions;
- **loss** ``lam * MIC + (1 - lam) * MPC``: MPC is SimMC's prototype contrast for every
  convention's masked views (summed over views, averaged over conventions): the same window
  in another convention is pulled to the same prototype; MIC is SimMC's SimSiam term over every
  pair of the window's C x q masked views, so cross-convention positives (the same window in two
  conventions) join SimMC's intra-sequence pair. With ``--cross anchor`` a pair that includes the
  first store's convention (the anchor) pulls one way only: the other convention predicts the
  anchor's feature (stop-gradient), and the anchor is not pulled towards a convention that may
  hold fewer joints;
- **test time**: a window of any built-in layout -> the L2-normalised mean feature; the
  ensemble of conventions is vid2reid.evaluate's ``--data A --data B``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vid2reid.data import SequenceBank
from vid2reid.errors import ConfigError, StoreError
from vid2reid.layouts import get_layout
from vid2reid.encoders import FrameEncoder
from vid2reid.methods.base import Method
from vid2reid.methods.views import draw_masks, label_views, simsiam
from vid2reid.unified import NUM_UNIFIED, canonical_names, check_layout, unified_slots

if TYPE_CHECKING:
    from vid2reid.store import Record
    from vid2reid.config import TrainConfig

log = logging.getLogger(__name__)

SEP = "+"  # the run's layout field: the training conventions joined by SEP
_CHUNK = 4096


def split_layouts(layout: str) -> list[str]:
    """The training conventions of a run's ``layout`` field ("a+b" -> ["a", "b"]), checked."""
    return [check_layout(name) for name in layout.split(SEP)]


def unify(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Root-relative windows (..., f, J, 3) of ``layout`` -> unified frames (..., f, 4U):
    the U joints relative to the hip mid-point (0 where absent), then the U presence flags.

    The same numbers as :func:`vid2reid.unified.to_unified`, in torch.
    """
    names = canonical_names(layout)
    if x.shape[-2] != len(names) or x.shape[-1] != 3:
        raise StoreError(f"layout {layout} has {len(names)} joints; got windows of shape "
                         f"{tuple(x.shape)}")
    present = (x != 0).any(dim=-1)
    present[..., get_layout(layout).root] = True
    hips = 0.5 * (x[..., names.index("l_hip"), :] + x[..., names.index("r_hip"), :])
    rel = (x - hips[..., None, :]) * present[..., None].to(x.dtype)
    slots = torch.as_tensor(unified_slots(layout), device=x.device)
    coords = x.new_zeros(x.shape[:-2] + (NUM_UNIFIED, 3))
    coords[..., slots, :] = rel
    mask = x.new_zeros(x.shape[:-2] + (NUM_UNIFIED,))
    mask[..., slots] = present.to(x.dtype)
    return torch.cat([coords.flatten(-2), mask], dim=-1)


class MSCLRModel(nn.Module):
    """SimMC's encoder and predictor on unified frames (4U inputs), any built-in layout."""

    def __init__(self, hidden: int, layouts: list[str]) -> None:
        super().__init__()
        self.layouts = layouts  # training conventions, in the order of the joint axis
        self.sizes = [get_layout(name).num_joints for name in layouts]
        self.encoder = FrameEncoder(4 * NUM_UNIFIED, hidden)
        self.predictor = nn.Linear(hidden, hidden)

    def conventions(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Split training windows (N, f, sum J, 3) into each convention's (N, f, J_c, 3)."""
        if x.shape[-2] != sum(self.sizes):
            raise StoreError(f"training windows have {x.shape[-2]} joints, the conventions "
                             f"{SEP.join(self.layouts)} {sum(self.sizes)}")
        return list(torch.split(x, self.sizes, dim=-2))


def build_model(cfg: TrainConfig, num_joints: int, layout: str) -> MSCLRModel:
    """The unified encoder; ``layout`` names the training conventions ("a+b")."""
    layouts = split_layouts(layout)
    if sum(get_layout(name).num_joints for name in layouts) != num_joints:
        raise ConfigError(f"conventions {layout} have {sum(get_layout(n).num_joints for n in layouts)}"
                          f" joints together, the training windows {num_joints}")
    return MSCLRModel(cfg.hidden, layouts)


def training_sequences(stores: list[Path | str], cfg: TrainConfig
                       ) -> tuple[SequenceBank, list[Record], str]:
    """The first store's training sequences (vid2reid.data.training_sequences) and the same
    files' sequences in every other store, side by side on the joint axis.

    Sequences are matched by their path in the store (the recording), never by subject; each
    other store must hold every training sequence of the first. Copies are cut to the frames
    every store holds (vid2reid.store.common_frames: two estimators may keep different frames of
    one video); a sequence left shorter than f is skipped.
    """
    from vid2reid.data import training_sequences as one_store
    from vid2reid.protocols import train_records
    from vid2reid.store import cut_to_common, load_store

    bank, records, layout = one_store(stores[0], cfg)
    layouts = [check_layout(layout)]
    copies = [[(rec, bank.frames[b : b + n]) for rec, b, n in zip(records, bank.begin, bank.length)]]
    for data in stores[1:]:
        store = load_store(data, min_frames=1)
        idx = train_records(store.records, cfg.protocol, say=False)
        by_path = {store.records[i].path: (store.records[i], store.joints[i]) for i in idx}
        lays = sorted({store.records[i].layout for i in idx})
        other = check_layout(lays[0] if len(lays) == 1 else "")
        if other in layouts:
            raise ConfigError(f"{data}: layout {other} is already given by another --data; "
                              f"MS-CLR needs one store per convention")
        missing = [rec.path for rec in records if rec.path not in by_path]
        if missing:
            raise StoreError(f"{Path(data) / missing[0]}: training sequence of {stores[0]} "
                             f"missing here (stores must hold the same recordings)")
        copies.append([(replace(by_path[rec.path][0], layout=other), by_path[rec.path][1])
                       for rec in records])
        layouts.append(other)
    kept, trimmed, short = cut_to_common([Path(s) for s in stores], copies, cfg.f)
    if trimmed:
        log.info("%d training sequence(s) cut to the frames every --data store holds (start_frame)"
                 "%s", trimmed, f", {short} of them now shorter than f={cfg.f} and skipped"
                 if short else "")
    if not kept[0]:
        raise StoreError(f"{stores[0]}: no training sequence has f={cfg.f} frames that every "
                         f"--data store holds")
    banks = [SequenceBank.from_sequences([r for r, _ in k], [j for _, j in k]) for k in kept]
    joined = SequenceBank(np.concatenate([b.frames for b in banks], axis=1), banks[0].begin,
                          banks[0].length)
    return joined, [r for r, _ in kept[0]], SEP.join(layouts)


@dataclass
class MSCLRPlan:
    """One epoch's masks, pseudo-labels and shared prototypes (fixed for the epoch)."""

    keep: np.ndarray
    stats: dict
    masks: torch.Tensor  # (q, N, f) bool, shared by the conventions of a window
    targets: torch.Tensor  # (q, N) long
    protos: list[torch.Tensor] = field(default_factory=list)  # per view (C_i, H), unit length
    labels: np.ndarray | None = None


@torch.no_grad()
def encode_views(model: MSCLRModel, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(C, q, N, H) masked features of every window in every convention."""
    convs = model.conventions(x)
    hidden = model.encoder.fc2.out_features
    out = torch.empty(len(convs), masks.shape[0], x.shape[0], hidden, device=x.device)
    for c, (xc, layout) in enumerate(zip(convs, model.layouts)):
        for a in range(0, x.shape[0], _CHUNK):
            u = model.encoder.frames(unify(xc[a : a + _CHUNK], layout))
            for i in range(masks.shape[0]):
                out[c, i, a : a + _CHUNK] = model.encoder.pool(u, masks[i, a : a + _CHUNK])
    return out


def prepare_epoch(model: MSCLRModel, x: torch.Tensor, cfg: TrainConfig,
                  rng: np.random.Generator, epoch: int, walks: np.ndarray | None = None
                  ) -> MSCLRPlan:
    """Draw the masks, label each view's convention-ensemble features, fix the prototypes.

    ``walks``: the training walk of each window, for walk-based pseudo-labels.
    """
    n = x.shape[0]
    masks = torch.from_numpy(draw_masks(rng, n, cfg.f, cfg.x, cfg.q)).to(x.device)
    model.eval()
    feats = F.normalize(encode_views(model, x, masks), dim=-1).mean(dim=0)  # (q, N, H)
    model.train()
    # no windows: "people" labels group by the features alone here (with the first convention's body
    # proportions added, KGBD seed 0 collapsed to 2-8 groups for several epochs)
    keep, lab, protos, stats = label_views(feats, walks, cfg, epoch)
    stats["conventions"] = len(model.layouts)
    return MSCLRPlan(keep=keep, stats=stats, masks=masks,
                     targets=torch.from_numpy(lab).to(x.device), protos=protos, labels=lab[0])


def batch_loss(model: MSCLRModel, x_batch: torch.Tensor, idx_batch: np.ndarray, plan: MSCLRPlan,
               cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    """``lam * MIC + (1 - lam) * MPC`` over all conventions of a batch of windows."""
    idx = torch.as_tensor(idx_batch, device=x_batch.device)
    views = []  # (convention, view number, feature)
    for c, (xc, layout) in enumerate(zip(model.conventions(x_batch), model.layouts)):
        u = model.encoder.frames(unify(xc, layout))
        views += [(c, i, model.encoder.pool(u, plan.masks[i, idx])) for i in range(cfg.q)]
    mpc = sum(F.cross_entropy(F.normalize(v, dim=1) @ plan.protos[i].T / cfg.tau,
                              plan.targets[i, idx]) for _, i, v in views) / len(model.layouts)
    parts = {"mpc": float(mpc.detach())}
    if len(views) < 2 or cfg.lam == 0:
        return mpc, parts
    intra, cross = [], []
    for (ca, _, va), (cb, _, vb) in combinations(views, 2):
        if ca == cb:
            intra.append(simsiam(model.predictor, va, vb))
        elif cfg.msclr_cross == "anchor" and 0 in (ca, cb):
            other, anchor = (vb, va) if ca == 0 else (va, vb)
            cross.append(-F.cosine_similarity(model.predictor(other), anchor.detach(), dim=1).mean())
        else:
            cross.append(simsiam(model.predictor, va, vb))
    mic = torch.stack(intra + cross).mean()
    parts["mic"] = float(mic.detach())
    if cross:
        parts["mic_cross"] = float(torch.stack(cross).mean().detach())
    return cfg.lam * mic + (1 - cfg.lam) * mpc, parts


@torch.no_grad()
def embed(model: MSCLRModel, x: torch.Tensor, layout: str | None = None) -> torch.Tensor:
    """Test-time representation (N, H) of windows (N, f, J, 3) of ``layout`` (default: the
    first training convention): the L2-normalised mean of the frames' features, no mask."""
    model.eval()
    layout = check_layout(layout or model.layouts[0])
    if not len(x):
        return torch.empty(0, model.encoder.fc2.out_features, device=x.device)
    return F.normalize(torch.cat([model.encoder(unify(x[a : a + _CHUNK], layout))
                                  for a in range(0, len(x), _CHUNK)]), dim=1)


def check_config(cfg: TrainConfig) -> None:
    """ConfigError for an unknown --cross."""
    if cfg.msclr_cross not in ("mutual", "anchor"):
        raise ConfigError(f"cross (MS-CLR) must be mutual or anchor, got {cfg.msclr_cross!r}")


METHOD = Method(name="ms-clr", build_model=build_model, prepare_epoch=prepare_epoch,
                batch_loss=batch_loss, embed=embed, check_config=check_config,
                several_layouts=True, training_sequences=training_sequences,
                settings={"msclr_cross": "--cross"})
