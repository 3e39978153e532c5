"""SimMC pieces: presets, masks, encoder pooling, losses and the ablation switches."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vid2reid.methods import simmc
from vid2reid.errors import ClusteringError, ConfigError
from vid2reid.presets import PRESETS, get_preset
from vid2reid.settings import make_config


pytestmark = pytest.mark.usefixtures("one_thread")


def _windows(n=120, f=8, j=5, groups=4, seed=0):
    """Windows of a few well-separated 'identities' (fixed pose + noise)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, 1, j, 3, generator=g)
    lab = torch.arange(n) % groups
    return centres[lab] + 0.05 * torch.randn(n, f, j, 3, generator=g)


def test_presets_match_table_and_aliases():
    assert len(PRESETS) == 7
    p = get_preset("CASIA-B")
    assert (p.f, p.x, p.tau, p.eps, p.min_samples, p.lam) == (40, 10, 0.075, 0.75, 2, 0.25)
    assert get_preset("casiab") == p and get_preset("casia_b") == p
    assert get_preset("KGBD").min_samples == 4 and get_preset("kgbd").tau == 0.06
    assert get_preset("biwi-walking") == get_preset("BIWI-W")
    assert get_preset("biwi-still").eps == 0.6
    assert get_preset("ias-a").lam == 0.75
    with pytest.raises(ConfigError, match="ks20"):
        get_preset("nope")


def test_config_overrides_and_ablations():
    cfg = make_config("ks20", eps=0.7, lr=1e-3)
    assert (cfg.f, cfg.x, cfg.eps, cfg.lr, cfg.lam) == (6, 2, 0.7, 1e-3, 0.5)
    npc = make_config("ks20", ablation="npc")
    assert (npc.q, npc.x, npc.lam) == (1, 0, 0.0)
    assert make_config("ks20", ablation="mpc").lam == 0.0
    with pytest.raises(ConfigError, match="npc"):
        make_config("ks20", ablation="npc", q=2)
    with pytest.raises(ConfigError, match="x"):
        make_config("ks20", x=6)
    with pytest.raises(ConfigError, match="lambda"):
        make_config("ks20", q=1)


def test_masks_drop_x_distinct_frames_per_window_and_view():
    rng = np.random.default_rng(0)
    m = simmc.draw_masks(rng, 50, 40, 10, 2)
    assert m.shape == (2, 50, 40)
    assert (m.sum(axis=2) == 30).all()
    assert not np.array_equal(m[0], m[1])  # views are independent
    assert len({row.tobytes() for row in m[0]}) > 40  # each window has its own mask
    assert simmc.draw_masks(rng, 5, 6, 0, 1).all()


def test_pooling_equals_mean_of_frame_representations():
    cfg = make_config("ks20")
    model = simmc.build_model(cfg, 5, "")
    x = _windows(10, f=6).flatten(2)
    keep = torch.from_numpy(simmc.draw_masks(np.random.default_rng(1), 10, 6, 2, 1)[0])
    h = model.encoder.fc2(torch.relu(model.encoder.fc1(x)))  # h_t per frame
    want = torch.stack([h[i][keep[i]].mean(0) for i in range(10)])
    assert torch.allclose(model.encoder(x, keep), want, atol=1e-5)
    assert torch.allclose(simmc.embed(model, _windows(10, f=6)), h.mean(1), atol=1e-5)


def _plan_and_grads(ablation, **kw):
    torch.manual_seed(0)
    cfg = make_config("ks20", ablation=ablation, f=8, eps=0.6, **kw)
    model = simmc.build_model(cfg, 5, "")
    x = _windows()
    plan = simmc.prepare_epoch(model, x, cfg, np.random.default_rng(0), 0)
    idx = plan.keep[:32]
    loss, parts = simmc.batch_loss(model, x[idx], idx, plan, cfg)
    loss.backward()
    return cfg, model, plan, loss, parts, idx, x


def test_npc_uses_one_unmasked_view_and_no_mic():
    cfg, model, plan, _, parts, _, _ = _plan_and_grads("npc")
    assert plan.masks.shape[0] == 1 and plan.masks.all()
    assert len(plan.stats["clusters_per_view"]) == 1 and "mic" not in parts
    assert model.predictor.weight.grad is None
    assert model.encoder.fc1.weight.grad.abs().sum() > 0


def test_mpc_only_gives_no_gradient_to_the_predictor():
    cfg, model, plan, _, parts, _, _ = _plan_and_grads("mpc")
    assert plan.masks.shape[0] == 2 and not plan.masks.all()
    assert "mic" not in parts
    g = model.predictor.weight.grad
    assert g is None or g.abs().sum() == 0


def test_mpc_plus_mic_trains_the_predictor_and_loss_matches_formula():
    cfg, model, plan, loss, parts, idx, x = _plan_and_grads("mpc+mic")
    assert model.predictor.weight.grad.abs().sum() > 0
    # recompute both losses by hand from the plan
    with torch.no_grad():
        h = model.encoder.fc2(torch.relu(model.encoder.fc1(x[idx].flatten(2))))
        v = [torch.stack([h[b][plan.masks[i, idx[b]]].mean(0) for b in range(len(idx))])
             for i in range(2)]
        mpc = 0.0
        for i in range(2):
            logits = F.normalize(v[i], dim=1) @ F.normalize(plan.protos[i], dim=1).T / cfg.tau
            t = plan.targets[i, idx]
            mpc += (-torch.log_softmax(logits, 1)[torch.arange(len(idx)), t]).mean()
        z = [model.predictor(vi) for vi in v]
        cos = lambda a, b: (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)  # noqa: E731
        mic = (-0.5 * cos(z[0], v[1]) - 0.5 * cos(z[1], v[0])).mean()
    assert parts["mpc"] == pytest.approx(float(mpc), rel=1e-4)
    assert parts["mic"] == pytest.approx(float(mic), rel=1e-4, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(cfg.lam * float(mic) + (1 - cfg.lam) * float(mpc),
                                        rel=1e-4)


def test_outliers_in_either_view_are_dropped_and_prototypes_fixed():
    cfg, model, plan, *_ = _plan_and_grads("mpc+mic")
    t = plan.targets.numpy()
    assert set(plan.keep) == set(np.flatnonzero((t >= 0).all(axis=0)))
    for i in range(2):
        assert plan.protos[i].shape[0] == t[i].max() + 1
        assert torch.allclose(plan.protos[i].norm(dim=1), torch.ones(len(plan.protos[i])))


def test_no_cluster_raises_clustering_error_with_advice():
    cfg = make_config("ks20", f=8, min_samples=10_000)
    model = simmc.build_model(cfg, 5, "")
    with pytest.raises(ClusteringError, match="raise --eps"):
        simmc.prepare_epoch(model, _windows(), cfg, np.random.default_rng(0), 0)
