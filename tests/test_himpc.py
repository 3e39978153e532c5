"""Hi-MPC: hard skeleton mining, losses, ablation switches, end-to-end against the raw baseline."""

import json

import numpy as np
import pytest
import torch

from vid2reid.methods import himpc
from vid2reid.errors import ConfigError
from vid2reid.layouts import COMPONENTS, LIMBS
from vid2reid.settings import make_config


def _cfg(**kw):
    kw.setdefault("hidden", 32)
    return make_config("casia-b", method="himpc", **kw)


def test_hsm_weights_sum_to_one_and_favour_hard_frames():
    # one window, 4 frames, 2 prototypes; mean logits favour prototype 0
    logits = torch.tensor([[[3.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [2.5, 0.0]]])
    # correctly assigned (pseudo-label 0): the frame least like prototype 0 (frame 2) weighs most
    w = himpc.hsm_weights(logits, torch.tensor([0]))
    assert w.shape == (1, 4)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(w.argmax()) == 2 and int(w.argmin()) == 0
    # wrongly assigned (pseudo-label 1, prediction 0): the frame most like the wrong prototype 0
    w = himpc.hsm_weights(logits, torch.tensor([1]))
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(w.argmax()) == 0 and int(w.argmin()) == 2
    # equal logits -> uniform weights
    w = himpc.hsm_weights(torch.zeros(2, 5, 3), torch.tensor([0, 2]))
    np.testing.assert_allclose(w.numpy(), 0.2, atol=1e-6)


def test_hsm_weights_per_head_and_window_sum_to_one():
    logits = torch.randn(8, 6, 10, 4)  # heads, windows, frames, prototypes
    w = himpc.hsm_weights(logits, torch.randint(0, 4, (8, 6)))
    np.testing.assert_allclose(w.sum(-1).numpy(), 1.0, atol=1e-5)


def test_head_logits_reference_and_cosine():
    z, c, heads = torch.randn(2, 3, 16), torch.randn(5, 16), torch.randn(4, 16, 16)
    m, b, t, k = 3, 1, 2, 4
    zw, cw = z[b, t] @ heads[m], c[k] @ heads[m]
    ref = himpc.head_logits(z, c, heads)  # the reference code: raw dot product / sqrt(H)
    assert ref.shape == (4, 2, 3, 5)
    assert float(ref[m, b, t, k]) == pytest.approx(float(zw @ cw / 4.0), rel=1e-4)
    cos = himpc.head_logits(z, c, heads, tau=0.1)  # vid2reid's default: cosine / tau
    assert cos.shape == (4, 2, 3, 5)
    expect = torch.nn.functional.cosine_similarity(zw, cw, dim=0) / 0.1
    assert float(cos[m, b, t, k]) == pytest.approx(float(expect), rel=1e-4)
    assert float(cos.abs().max()) <= 10.0 + 1e-4


def test_hsm_gradient_flows_through_the_weights():
    """As in the reference code the mining weights are not detached: detaching them
    changes the gradient (the loss value stays the same)."""
    torch.manual_seed(0)
    z0, heads = torch.randn(3, 6, 8), torch.randn(2, 8, 8)
    protos, targets = torch.randn(4, 8), torch.randint(0, 4, (3,))
    z = z0.clone().requires_grad_()
    loss = himpc.level_loss(z, protos, heads, targets, True, 0.1).sum()
    loss.backward()
    zd = z0.clone().requires_grad_()
    logits = himpc.head_logits(zd, protos, heads, 0.1)
    m, b, f, c = logits.shape
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, c), targets[None, :, None].expand(m, b, f).reshape(-1),
        reduction="none").view(m, b, f)
    w = himpc.hsm_weights(logits, targets[None, :].expand(m, b)).detach()
    detached = (w * ce).sum(-1).mean(-1).sum()
    detached.backward()
    assert float(detached.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert not torch.allclose(z.grad, zd.grad, rtol=1e-3, atol=1e-6)


def test_logits_setting_is_validated_and_reaches_the_loss():
    with pytest.raises(ConfigError, match="logits"):
        himpc.check_config(_cfg(himpc_logits="dot"))
    torch.manual_seed(0)
    x = torch.randn(6, 6, 17, 3)
    model = himpc.build_model(_cfg(), 17, "h36m-17")
    plan = _plan(model, x)
    cos, _ = himpc.batch_loss(model, x, np.arange(6), plan, _cfg())
    ref, _ = himpc.batch_loss(model, x, np.arange(6), plan, _cfg(himpc_logits="reference"))
    assert float(cos.detach()) != pytest.approx(float(ref.detach()), rel=1e-3)


def _plan(model, x, n_clusters=3, seed=0):
    """A hand-made epoch plan (fixed labels and prototypes) to exercise batch_loss."""
    rng = np.random.default_rng(seed)
    feats = himpc.sequence_features(model, x)
    labels = {lv: rng.integers(0, n_clusters, len(x)) for lv in model.levels}
    protos = {lv: torch.stack([feats[lv][labels[lv] == c].mean(0) for c in range(n_clusters)])
              for lv in model.levels}
    return himpc.EpochPlan(keep=np.arange(len(x)), stats={}, labels=labels[model.levels[0]],
                           level_labels=labels, prototypes=protos)


def test_ablation_switches_change_what_is_trained():
    torch.manual_seed(0)
    x = torch.randn(12, 6, 17, 3)
    idx = np.arange(12)
    full = himpc.build_model(_cfg(), 17, "h36m-17")
    assert set(full.encoders) == {"joint", "component", "limb"}
    assert himpc.embed(full, x).shape == (12, 3 * 32)
    joint_only = himpc.build_model(_cfg(himpc_levels=("joint",)), 17, "h36m-17")
    assert set(joint_only.encoders) == {"joint"} and set(joint_only.heads) == {"joint"}
    assert himpc.embed(joint_only, x).shape == (12, 32)
    assert len(full.heads["limb"]) == 8
    assert himpc.build_model(_cfg(himpc_heads=3), 17, "h36m-17").heads["joint"].shape == (3, 32, 32)

    plan = _plan(full, x)
    hsm, logs = himpc.batch_loss(full, x, idx, plan, _cfg())
    uni, logs_u = himpc.batch_loss(full, x, idx, plan, _cfg(himpc_hsm=False))
    assert float(hsm.detach()) != pytest.approx(float(uni.detach()), rel=1e-6)
    # uniform weights = plain mean of the per-frame cross-entropies, averaged over heads/levels
    feats = full.frame_features(x)
    per_level = []
    for lv in full.levels:
        logit = himpc.head_logits(feats[lv], plan.prototypes[lv], full.heads[lv], _cfg().tau)
        tgt = torch.as_tensor(plan.level_labels[lv])[None, :, None].expand(logit.shape[:3])
        per_level.append(torch.nn.functional.cross_entropy(
            logit.reshape(-1, logit.shape[-1]), tgt.reshape(-1)))
    expect = float(torch.stack(per_level).mean().detach())
    assert float(uni.detach()) == pytest.approx(expect, rel=1e-4)
    # the reference weighting sums the joint level over its heads (M times its mean)
    ref, logs_r = himpc.batch_loss(full, x, idx, plan, _cfg(himpc_joint_weighting="reference"))
    assert logs_r["loss_joint"] == pytest.approx(8 * logs["loss_joint"], rel=1e-4)
    assert logs_r["loss_limb"] == pytest.approx(logs["loss_limb"], rel=1e-5)
    # gradients reach every level's encoder and heads
    hsm.backward()
    for lv in full.levels:
        assert full.heads[lv].grad is not None and full.heads[lv].grad.abs().sum() > 0
        assert full.encoders[lv].fc1.weight.grad.abs().sum() > 0


def test_training_steps_lower_the_loss_on_a_fixed_plan():
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(4), 5)
    centers = rng.normal(size=(4, 1, 17, 3))
    x = torch.as_tensor(centers[group] + 0.3 * rng.normal(size=(20, 6, 17, 3)),
                        dtype=torch.float32)
    model = himpc.build_model(_cfg(), 17, "h36m-17")
    plan = _plan(model, x, n_clusters=4)
    plan.level_labels = {lv: group for lv in model.levels}
    feats = himpc.sequence_features(model, x)
    plan.prototypes = {lv: torch.stack([feats[lv][group == c].mean(0) for c in range(4)])
                       for lv in model.levels}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss, _ = himpc.batch_loss(model, x, np.arange(20), plan, _cfg())
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_prepare_epoch_intersects_outliers_of_all_levels():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # three tight groups of windows plus scattered singletons
    centers = rng.normal(size=(3, 1, 17, 3))
    x = np.concatenate([centers[i] + 0.01 * rng.normal(size=(10, 6, 17, 3)) for i in range(3)]
                       + [rng.normal(size=(6, 6, 17, 3)) * 2])
    x = torch.as_tensor(x, dtype=torch.float32)
    model = himpc.build_model(_cfg(), 17, "h36m-17")
    plan = himpc.prepare_epoch(model, x, _cfg(eps=0.6, min_samples=2), rng, 0)
    inlier = np.ones(len(x), bool)
    for lv in model.levels:
        assert plan.level_labels[lv].shape == (len(x),)
        assert plan.prototypes[lv].shape == (plan.stats[f"clusters_{lv}"], 32)
        inlier &= plan.level_labels[lv] >= 0
    np.testing.assert_array_equal(plan.keep, np.flatnonzero(inlier))
    assert plan.stats["kept"] == len(plan.keep) >= 30 - 6


def test_unknown_layout_needs_a_part_map(tmp_path):
    with pytest.raises(ConfigError, match="--part-map"):
        himpc.build_model(_cfg(), 25, "openpose-25")
    pm = {"layout": "openpose-25", "joints": [f"j{i}" for i in range(25)], "root": 8,
          "components": {c: [i] for i, c in enumerate(COMPONENTS)},
          "limbs": {c: [i, i + 10] for i, c in enumerate(LIMBS)}}
    path = tmp_path / "op25.json"
    path.write_text(json.dumps(pm))
    model = himpc.build_model(_cfg(himpc_part_map=str(path)), 25, "openpose-25")
    assert model.root == 8
    assert himpc.embed(model, torch.randn(3, 6, 25, 3)).shape == (3, 96)
    with pytest.raises(ConfigError, match="17"):
        himpc.build_model(_cfg(himpc_part_map=str(path)), 17, "h36m-17")


def test_bad_himpc_options():
    with pytest.raises(ConfigError, match="level"):
        himpc.build_model(_cfg(himpc_levels=("joints",)), 17, "h36m-17")
    with pytest.raises(ConfigError, match="weighting"):
        himpc.build_model(_cfg(himpc_joint_weighting="sum"), 17, "h36m-17")


def test_himpc_beats_raw_baseline_on_synthetic_walkers(tmp_path, one_thread):
    """Kinect data-set protocol (the same people, other walks), KGBD preset, 6 epochs.

    Measured over store seeds 1-4 (README): above raw on N-N window and sequence
    top-1 and about 3x the window mAP on every seed.
    """
    from vid2reid.evaluate import evaluate
    from vid2reid.synthetic import make_synthetic_store
    from vid2reid.train import train

    walks = {"nm": 6, "bg": 2, "cl": 2}
    store = make_synthetic_store(tmp_path / "skeletons", n_subjects=15, walks=walks,
                                 train_walks=walks, seed=1)
    # shifted windows, as in the SimMC synthetic test: the every-start cut that "auto" picks for
    # a store this small clusters gait phase on noiseless periodic walkers (docs/kgbd.md)
    cfg = make_config("kgbd", method="himpc", epochs=6, seed=0, batch_size=64, windows="shifted")
    res = train(cfg, store, tmp_path / "runs" / "h", progress=False)
    assert res.epochs_done == 6
    assert all(np.isfinite(h["loss"]) and h["clusters_joint"] > 15 for h in res.history)
    run = evaluate(store, run_dir=tmp_path / "runs" / "h", probe="nm", gallery="nm")
    raw = evaluate(store, baseline="raw", probe="nm", gallery="nm", f=cfg.f)
    assert run["window"]["probes"] == raw["window"]["probes"] > 100
    assert run["window"]["top1"] > raw["window"]["top1"]
    assert run["sequence"]["top1"] > raw["sequence"]["top1"]
    assert run["window"]["mAP"] > 1.5 * raw["window"]["mAP"]


def test_train_cli_passes_himpc_options(tmp_path):
    from typer.testing import CliRunner

    from vid2reid.cli import app
    from vid2reid.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "sk", n_subjects=6, walks={"nm": 2, "bg": 1}, seed=2)
    run = tmp_path / "runs" / "h"
    args = ["train", "--data", str(store), "--out", str(run), "--method", "himpc", "--epochs", "1",
            "--f", "20", "--hidden", "16", "--heads", "2", "--no-hsm", "--levels", "joint,limb",
            "--joint-weighting", "reference", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "himpc" and cfg["himpc_heads"] == 2 and cfg["himpc_hsm"] is False
    assert cfg["himpc_levels"] == ["joint", "limb"]
    assert cfg["himpc_joint_weighting"] == "reference"
    bad = CliRunner().invoke(app, args[:-1] + ["--levels", "joint,torso", "--no-resume",
                                               "--no-progress"])
    assert bad.exit_code == 1 and "torso" in bad.output
