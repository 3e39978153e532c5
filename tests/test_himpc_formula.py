"""Hi-MPC against its formulas, written here as plain loops over heads, windows and frames.

The oracle shares nothing with ``vid2reid.methods.himpc`` but the model's parameters: it builds the
level inputs from a part map defined in this file, runs the encoders' weights by hand
(``h_t = W2 relu(W1 S_t) + b``), scores every frame against every prototype per meta head,
and weighs the frames with hard skeleton mining:

- the window's predicted prototype is the argmax of the frame logits averaged over frames;
- its frame logits are negated when that prediction equals the pseudo-label, then softmaxed
  over the frames (the weights are not detached: the gradient flows through them);
- the loss of a head is the mean over windows of the weighted sum of the frames' cross-entropies;
  a level averages its heads (the reference weighting sums the joint level's heads); the total
  averages the levels.

``embed`` is, per level, the window's mean frame feature times the heads' mean, levels
concatenated.
"""

import json
import math

import numpy as np
import pytest
import torch

from vid2reid.methods import himpc
from vid2reid.layouts import COMPONENTS, LIMBS
from vid2reid.settings import make_config

J, HIDDEN, HEADS, B, FRAMES, C = 12, 8, 3, 5, 6, 4
# this file's own part map of a 12-joint toy layout (root joint 0)
PARTS = {
    "component": [[i % J, (i + 3) % J] for i in range(len(COMPONENTS))],
    "limb": [[i, i + 5, (i + 7) % J, (i + 9) % J] for i in range(len(LIMBS))],  # 2^k joints:
    # a part is a mean, and 1/2, 1/4 are exact in the model's float32 part matrix
}


@pytest.fixture
def part_map(tmp_path):
    pm = {"layout": "toy-12", "joints": [f"j{i}" for i in range(J)], "root": 0,
          "components": dict(zip(COMPONENTS, PARTS["component"])),
          "limbs": dict(zip(LIMBS, PARTS["limb"]))}
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(pm))
    return str(path)


def _cfg(part_map, **kw):
    return make_config("casia-b", method="himpc", hidden=HIDDEN, himpc_heads=HEADS,
                       himpc_part_map=part_map, **kw)


def _level_input(x: torch.Tensor, level: str) -> torch.Tensor:
    """(N, f, J, 3) -> (N, f, 3P): root-relative joints, or each part's mean joint."""
    rel = x - x[:, :, :1, :]
    if level == "joint":
        pos = rel
    else:
        pos = torch.stack([rel[:, :, idx, :].mean(dim=2) for idx in PARTS[level]], dim=2)
    return pos.reshape(x.shape[0], x.shape[1], -1)


def _frame_features(model, x: torch.Tensor, level: str) -> torch.Tensor:
    enc = model.encoders[level]
    s = _level_input(x, level)
    u = torch.relu(s @ enc.fc1.weight.T + enc.fc1.bias)
    return u @ enc.fc2.weight.T + enc.fc2.bias  # (N, f, H)


def _logit(q: torch.Tensor, k: torch.Tensor, tau) -> torch.Tensor:
    if tau is None:  # the reference code: raw dot product / sqrt(H)
        return (q @ k) / math.sqrt(q.shape[0])
    return (q @ k) / (q.norm() * k.norm()) / tau


def oracle_loss(model, x, plan, idx, tau, hsm=True, joint_weighting="mean", detach=False):
    levels = []
    for lv in model.levels:
        h = _frame_features(model, x, lv)
        protos = plan.prototypes[lv]
        targets = plan.level_labels[lv][idx]
        heads = []
        for m in range(model.heads[lv].shape[0]):
            w_m = model.heads[lv][m]
            windows = []
            for b in range(x.shape[0]):
                logits = torch.stack([torch.stack([_logit(h[b, t] @ w_m, protos[c] @ w_m, tau)
                                                   for c in range(len(protos))])
                                      for t in range(x.shape[1])])  # (f, C)
                target = int(targets[b])
                pred = int(torch.argmax(logits.mean(dim=0)))
                sign = -1.0 if pred == target else 1.0
                weights = (torch.softmax(sign * logits[:, pred], dim=0) if hsm
                           else torch.full((x.shape[1],), 1.0 / x.shape[1], dtype=x.dtype))
                if detach:
                    weights = weights.detach()
                ce = torch.logsumexp(logits, dim=1) - logits[:, target]
                windows.append((weights * ce).sum())
            heads.append(torch.stack(windows).mean())
        heads = torch.stack(heads)
        levels.append(heads.sum() if lv == "joint" and joint_weighting == "reference"
                      else heads.mean())
    return torch.stack(levels).mean()


def _setup(part_map, seed=0, **cfg_kw):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = _cfg(part_map, **cfg_kw)
    model = himpc.build_model(cfg, J, "toy-12").double()
    x = torch.randn(B, FRAMES, J, 3, dtype=torch.float64)
    labels = {lv: rng.integers(0, C, B) for lv in model.levels}
    labels[model.levels[0]][:2] = 0  # some windows share a pseudo-label
    protos = {lv: torch.randn(C, HIDDEN, dtype=torch.float64) for lv in model.levels}
    plan = himpc.EpochPlan(keep=np.arange(B), stats={}, labels=labels[model.levels[0]],
                           level_labels=labels, prototypes=protos)
    return cfg, model, x, plan


def _grads(model, loss) -> dict:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("logits, hsm, weighting", [
    ("cosine", True, "mean"), ("reference", True, "mean"), ("cosine", False, "mean"),
    ("cosine", True, "reference"),
])
def test_batch_loss_and_gradients_equal_the_formula(part_map, logits, hsm, weighting):
    cfg, model, x, plan = _setup(part_map, himpc_logits=logits, himpc_hsm=hsm,
                                 himpc_joint_weighting=weighting)
    idx = np.arange(B)
    tau = cfg.tau if logits == "cosine" else None
    got, logs = himpc.batch_loss(model, x, idx, plan, cfg)
    want = oracle_loss(model, x, plan, idx, tau, hsm, weighting)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-9)
    assert logs["loss"] == pytest.approx(float(want.detach()), rel=1e-9)
    g_got, g_want = _grads(model, got), _grads(model, want)
    assert g_got.keys() == g_want.keys() and len(g_got) == 2 * 2 * 3 + 3  # fc1/fc2 + heads
    for name in g_want:
        torch.testing.assert_close(g_got[name], g_want[name], rtol=1e-7, atol=1e-10, msg=name)


def test_gradient_flows_through_the_mining_weights(part_map):
    cfg, model, x, plan = _setup(part_map, seed=1)
    idx = np.arange(B)
    g_got = _grads(model, himpc.batch_loss(model, x, idx, plan, cfg)[0])
    g_detached = _grads(model, oracle_loss(model, x, plan, idx, cfg.tau, detach=True))
    g_through = _grads(model, oracle_loss(model, x, plan, idx, cfg.tau))
    # the weights' own gradient is not negligible here, so the two oracles differ ...
    diff = max(float((g_through[n] - g_detached[n]).abs().max()) for n in g_through)
    assert diff > 1e-4
    # ... and vid2reid's gradient is the one through the weights
    for name in g_through:
        torch.testing.assert_close(g_got[name], g_through[name], rtol=1e-7, atol=1e-10)


def test_mining_weighs_the_hard_frames(part_map):
    """A window whose prediction is right weighs its frames least like the predicted prototype
    most; a wrong one weighs the frames most like the wrong prototype most."""
    logits = torch.tensor([[[3.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [2.5, 0.0]]])
    right = himpc.hsm_weights(logits, torch.tensor([0]))[0]
    wrong = himpc.hsm_weights(logits, torch.tensor([1]))[0]
    np.testing.assert_allclose(right.numpy(), torch.softmax(-logits[0, :, 0], 0).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(wrong.numpy(), torch.softmax(logits[0, :, 0], 0).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("levels", [("joint", "component", "limb"), ("limb", "joint")])
def test_embed_values(part_map, levels):
    cfg, model, x, _ = _setup(part_map, seed=2, himpc_levels=levels)
    got = himpc.embed(model, x)
    parts = []
    for lv in ("joint", "component", "limb"):  # canonical order, whatever order was asked
        if lv in levels:
            window = _frame_features(model, x, lv).mean(dim=1)  # (N, H)
            parts.append(window @ model.heads[lv].mean(dim=0))
    want = torch.cat(parts, dim=1).detach()
    assert got.shape == (B, HIDDEN * len(levels))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # not a constant or a head-independent map: another head set gives other features
    with torch.no_grad():
        for p in model.heads.values():
            p[0] *= 2
    assert not torch.allclose(himpc.embed(model, x), got)
