"""MS-CLR: the unified encoder reads every built-in layout, training on two stores of the same
recordings (matched by path, no labels), cross-store and ensemble evaluation."""

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vid2reid.methods import msclr
from vid2reid.methods.views import simsiam
from vid2reid.convert import convert_store
from vid2reid.data import normalise
from vid2reid.errors import ConfigError, StoreError
from vid2reid.evaluate import evaluate
from vid2reid.layouts import LAYOUTS
from vid2reid.store import load_joints, read_manifest, save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.train import train
from vid2reid.unified import NUM_UNIFIED, UNIFIED_JOINTS, canonical_names, to_unified

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_layout_name_has_a_slot_and_the_encoder_reads_every_layout():
    cfg = make_config("kgbd", method="ms-clr")
    model = msclr.build_model(cfg, 20 + 17, "kinect-v1-20+coco-17")
    rng = np.random.default_rng(0)
    for name, layout in LAYOUTS.items():
        assert set(canonical_names(name)) <= set(UNIFIED_JOINTS)
        x = normalise(rng.normal(size=(12, layout.num_joints, 3)).astype(np.float32), name)
        windows = torch.from_numpy(np.stack([x[:6], x[6:]]))
        out = msclr.embed(model, windows, layout=name)
        assert out.shape == (2, cfg.hidden) and torch.isfinite(out).all()
        np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-5)
        # the torch input is the numpy unified skeleton, coordinates then presence flags
        coords, mask = to_unified(windows.numpy(), name)
        frames = msclr.unify(windows, name).numpy()
        np.testing.assert_array_equal(frames[..., : 3 * NUM_UNIFIED], coords.reshape(2, 6, -1))
        np.testing.assert_array_equal(frames[..., 3 * NUM_UNIFIED:], mask)
        assert mask[0, 0].sum() == layout.num_joints
    with pytest.raises(ConfigError, match="not a built-in layout"):
        msclr.embed(model, windows, layout="openpose-25")


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("msclr")
    a = make_synthetic_store(root / "h36m", n_subjects=6, walks={"nm": 6},
                             train_walks={"nm": 2}, frames=(36, 48), seed=3)
    convert_store(a, "coco-17", root / "coco", progress=False)
    return a, root / "coco"


def test_converted_limbs_are_the_same_unified_joints(stores):
    a, b = stores
    ja = normalise(np.load(a / "001/001-nm-01-090.npz")["joints"], "h36m-17")
    jb = normalise(np.load(b / "001/001-nm-01-090.npz")["joints"], "coco-17")
    ua, ma = to_unified(ja, "h36m-17")
    ub, mb = to_unified(jb, "coco-17")
    shared = ma[0] & mb[0]
    names = {UNIFIED_JOINTS[i] for i in np.flatnonzero(shared)}
    assert names == {f"{s}_{j}" for s in "lr" for j in ("hip", "knee", "ankle", "shoulder",
                                                       "elbow", "wrist")}
    np.testing.assert_allclose(ua[:, shared], ub[:, shared], atol=1e-6)
    # COCO's face joints, missing in the converted store, are absent and zero
    face = [UNIFIED_JOINTS.index(n) for n in ("nose", "l_eye", "r_eye", "l_ear", "r_ear")]
    assert not mb[:, face].any() and not ub[:, face].any()


def _cfg(**kw):
    return make_config("kgbd", method="ms-clr", epochs=2, eps=0.8, batch_size=64, **kw)


def test_two_store_training_records_both_and_is_label_free(stores, tmp_path: Path):
    a, b = stores
    res = train(_cfg(), [a, b], tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["layout"] == "h36m-17+coco-17" and info["num_joints"] == 34
    assert info["data_stores"] == [str(a.resolve()), str(b.resolve())]
    assert res.epochs_done == 2 and "mic_cross" in res.history[-1]
    # the same stores with every subject (and condition) renamed train to identical weights
    renamed = []
    for src in (a, b):
        dst = tmp_path / f"renamed-{src.name}"
        shutil.copytree(src, dst)
        with open(dst / "manifest.csv") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            r["subject"], r["condition"] = f"x{(int(r['subject']) * 7) % 11}", "zz"
        with open(dst / "manifest.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        renamed.append(dst)
    res2 = train(_cfg(), renamed, tmp_path / "run2", progress=False)
    assert [r["loss"] for r in res2.history] == [r["loss"] for r in res.history]
    s1 = torch.load(tmp_path / "run" / "model.pt", weights_only=False)["model"]
    s2 = torch.load(tmp_path / "run2" / "model.pt", weights_only=False)["model"]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_stores_must_hold_the_same_recordings(stores, tmp_path: Path):
    a, b = stores
    short = tmp_path / "short"
    shutil.copytree(b, short)
    victim = "006/006-nm-07-090.npz"  # a training walk (train_walks come after the test walks)
    with open(short / "manifest.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"] != victim]
    with open(short / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(a / "manifest.csv") as fh:
        assert {r["path"]: r["split"] for r in csv.DictReader(fh)}[victim] == "train"
    with pytest.raises(StoreError, match=f"{victim}: training sequence .* missing here"):
        msclr.training_sequences([a, short], _cfg())
    with pytest.raises(ConfigError, match="one store per convention"):
        msclr.training_sequences([a, a], _cfg())
    with pytest.raises(ConfigError, match="trains on one store"):
        train(make_config("kgbd", epochs=1), [a, b], tmp_path / "simmc", progress=False)


def _loss_by_hand(model, x, idx, plan, cfg):
    """The loss from its definition, with plain loops over conventions, views and pairs."""
    views = []
    for c, layout in enumerate(model.layouts):
        lo = sum(model.sizes[:c])
        xc = x[:, :, lo: lo + model.sizes[c]]
        frames = msclr.unify(xc, layout)
        for i in range(cfg.q):
            keep = plan.masks[i, idx].float()
            h = torch.relu(model.encoder.fc1(frames))
            pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
            views.append((c, model.encoder.fc2(pooled), i))
    mpc = 0.0
    for _, v, i in views:
        logits = F.normalize(v, dim=1) @ plan.protos[i].T / cfg.tau
        mpc = mpc + F.cross_entropy(logits, plan.targets[i, idx])
    mpc = mpc / len(model.layouts)
    pair_losses = []
    for (ca, va, _), (cb, vb, _) in itertools.combinations(views, 2):
        za, zb = model.predictor(va), model.predictor(vb)
        if cfg.msclr_cross == "anchor" and ca == 0 and cb != 0:  # b predicts the anchor a
            pair_losses.append(-F.cosine_similarity(zb, va.detach()).mean())
            continue
        pair_losses.append((-0.5 * F.cosine_similarity(za, vb.detach())
                            - 0.5 * F.cosine_similarity(zb, va.detach())).mean())
    mic = sum(pair_losses) / len(pair_losses)
    return cfg.lam * mic + (1 - cfg.lam) * mpc


def _one_batch(stores, cfg):
    """A fresh model, its first epoch's plan and 16 kept windows of the two stores."""
    bank, _, layout = msclr.training_sequences(list(stores), cfg)
    seq, start = bank.window_starts(cfg.f, "fixed")
    x = torch.from_numpy(bank.windows(seq, start, cfg.f))
    torch.manual_seed(0)
    model = msclr.build_model(cfg, x.shape[2], layout)
    plan = msclr.prepare_epoch(model, x, cfg, np.random.default_rng(0), 0)
    return model, x, plan, plan.keep[:16]


@pytest.mark.parametrize("cross", ["mutual", "anchor"])
def test_batch_loss_matches_its_definition(stores, cross):
    cfg = _cfg(msclr_cross=cross)
    model, x, plan, idx = _one_batch(stores, cfg)
    loss, parts = msclr.batch_loss(model, x[idx], idx, plan, cfg)
    expected = _loss_by_hand(model, x[idx], torch.as_tensor(idx), plan, cfg)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert set(parts) == {"mpc", "mic", "mic_cross"}


def test_anchor_convention_is_not_pulled_towards_the_others(stores):
    """--cross anchor: the first convention's input gets gradient only from its own pair of
    views (MIC alone, lambda 1); the second convention still learns from the cross pairs."""
    grads = {}
    for cross in ("mutual", "anchor"):
        cfg = _cfg(msclr_cross=cross, lam=1.0)
        model, x, plan, idx = _one_batch(stores, cfg)
        xb = x[idx].clone().requires_grad_(True)
        loss, _ = msclr.batch_loss(model, xb, idx, plan, cfg)
        (g,) = torch.autograd.grad(loss, xb)
        # the first convention's own pair alone, over the 6 pairs of 2 conventions x 2 views
        xa = xb.detach().clone().requires_grad_(True)
        u = model.encoder.frames(msclr.unify(model.conventions(xa)[0], model.layouts[0]))
        v0, v1 = (model.encoder.pool(u, plan.masks[i, torch.as_tensor(idx)]) for i in range(2))
        (g_own,) = torch.autograd.grad(simsiam(model.predictor, v0, v1) / 6, xa)
        grads[cross] = (g, g_own)
    j0 = model.sizes[0]
    g, g_own = grads["anchor"]
    torch.testing.assert_close(g[:, :, :j0], g_own[:, :, :j0], rtol=1e-4, atol=1e-7)
    assert g[:, :, j0:].abs().sum() > 0
    g, g_own = grads["mutual"]
    assert not torch.allclose(g[:, :, :j0], g_own[:, :, :j0], rtol=1e-4, atol=1e-7)


def test_unknown_cross_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="mutual or anchor"):
        _cfg(msclr_cross="both")


@pytest.fixture(scope="module")
def run(stores, tmp_path_factory) -> Path:
    a, b = stores
    out = tmp_path_factory.mktemp("run") / "msclr"
    train(_cfg(), [a, b], out, progress=False)
    return out


def _metrics(res):
    return {lvl: res[lvl] for lvl in ("window", "sequence")}


def test_cross_store_equals_single_store_when_the_stores_are_the_same(stores, run, tmp_path):
    a, _ = stores
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    single = evaluate(a, run_dir=run, probe="nm", gallery="nm")
    assert _metrics(evaluate(a, run_dir=run, probe="nm", gallery="nm",
                             gallery_data=copy)) == _metrics(single)
    # an ensemble of a store with itself is the store (features are unit length; normalising
    # them again moves distances by float rounding only)
    ens = evaluate([a, copy], run_dir=run, probe="nm", gallery="nm")
    for lvl in ("window", "sequence"):
        assert ens[lvl] == pytest.approx(single[lvl], abs=1e-3)


def test_cross_convention_and_ensemble_run(stores, run):
    a, b = stores
    res = evaluate(a, run_dir=run, probe="nm", gallery="nm", gallery_data=b)
    assert res["gallery_data"] == str(b) and res["window"]["probes"] > 0
    assert any("gallery from" in n and "coco-17" in n for n in res["setting_notes"])
    ens = evaluate([a, b], run_dir=run, probe="nm", gallery="nm", ensemble="concat")
    assert ens["ensemble_data"] == [str(a), str(b)] and ens["window"]["probes"] > 0
    with pytest.raises(ConfigError, match="one layout"):
        evaluate(a, baseline="raw", probe="nm", gallery="nm", gallery_data=b, f=6)


def test_a_single_layout_run_refuses_another_layout(stores, tmp_path):
    a, b = stores
    out = tmp_path / "simmc"
    train(make_config("kgbd", epochs=1, eps=0.8), a, out, progress=False)
    with pytest.raises(StoreError, match="cannot read 'coco-17'"):
        evaluate(a, run_dir=out, probe="nm", gallery="nm", gallery_data=b)


def _restarted(src: Path, dst: Path, drop: dict[str, int]) -> Path:
    """A copy of store ``src`` whose walks say where they start in the video (start_frame); the
    walks in ``drop`` lose that many first frames, as when a pose estimator misses the walker."""
    recs = []
    for rec in read_manifest(src):
        k = drop.get(rec.path, 0)
        recs.append(save_sequence(dst, rec.path, load_joints(src, rec)[k:], rec.layout,
                                  subject=rec.subject, condition=rec.condition,
                                  sequence=rec.sequence, view=rec.view, split=rec.split,
                                  start_frame=k))
    write_manifest(dst, recs)
    return dst


TRAIN_WALK, TEST_WALK = "006/006-nm-07-090.npz", "006/006-nm-01-090.npz"


def test_training_lines_up_copies_that_start_at_different_frames(stores, tmp_path):
    """A walk the second estimator kept from frame 1 on is cut to frames 1.. in both conventions,
    exactly as if both stores had started there."""
    a, b = stores
    a0 = _restarted(a, tmp_path / "a0", {})
    b1 = _restarted(b, tmp_path / "b1", {TRAIN_WALK: 1})
    a1 = _restarted(a, tmp_path / "a1", {TRAIN_WALK: 1})
    bank, recs, _ = msclr.training_sequences([a0, b1], _cfg())
    by_hand, recs_by_hand, _ = msclr.training_sequences([a1, b1], _cfg())
    np.testing.assert_array_equal(bank.frames, by_hand.frames)
    np.testing.assert_array_equal(bank.length, by_hand.length)
    i = [r.path for r in recs].index(TRAIN_WALK)
    full = {r.path: r.frames for r in read_manifest(a)}[TRAIN_WALK]
    assert recs[i].frames == recs_by_hand[i].frames == bank.length[i] == full - 1
    untouched, _, _ = msclr.training_sequences([a, b], _cfg())
    assert bank.length.sum() == untouched.length.sum() - 1
    # without start_frame the copies cannot be lined up: one line naming the file
    plain = tmp_path / "plain"
    shutil.copytree(b1, plain)
    rows = list(csv.DictReader(open(plain / "manifest.csv")))
    with open(plain / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "start_frame"])
        w.writeheader()
        w.writerows([{k: v for k, v in r.items() if k != "start_frame"} for r in rows])
    with pytest.raises(StoreError, match=f"plain/{TRAIN_WALK}: .*without a start_frame column"):
        msclr.training_sequences([a, plain], _cfg())


def test_ensemble_lines_up_copies_that_start_at_different_frames(stores, run, tmp_path):
    a, b = stores
    a0 = _restarted(a, tmp_path / "a0", {})
    b1 = _restarted(b, tmp_path / "b1", {TEST_WALK: 1})
    a1 = _restarted(a, tmp_path / "a1", {TEST_WALK: 1})
    ens = evaluate([a0, b1], run_dir=run, probe="nm", gallery="nm")
    assert _metrics(ens) == _metrics(evaluate([a1, b1], run_dir=run, probe="nm", gallery="nm"))
