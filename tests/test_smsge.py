"""SM-SGE (multi-scale graph encoder, reconstruction) and "SM-SGE + SimMC" (--init)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vid2reid.methods import simmc, smsge
from vid2reid.encoders import GraphEncoder
from vid2reid.errors import ConfigError
from vid2reid.layouts import COMPONENTS, LAYOUTS, LIMBS, bones, get_part_map
from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.run import open_run
from vid2reid.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(hidden=16, smsge_dim=4, smsge_heads=2, batch_size=64)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("smsge") / "skeletons", n_subjects=6,
                                walks={"nm": 2, "bg": 1}, frames=(60, 80), seed=5)


@pytest.fixture(scope="module")
def pre(store: Path, tmp_path_factory) -> tuple[Path, list[dict]]:
    """An SM-SGE run of 4 epochs on the synthetic store."""
    cfg = make_config("kgbd", method="sm-sge", epochs=4, seed=0, windows="shifted", lr=5e-3,
                      **SMALL)
    out = tmp_path_factory.mktemp("runs") / "pre"
    res = train(cfg, store, out, progress=False)
    return out, res.history


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_graph_encoder_on_every_layout(layout: str):
    pm = get_part_map(layout)
    j = pm.num_joints
    torch.manual_seed(0)
    g = GraphEncoder(pm, dim=4, heads=3, lam=0.0)
    x = torch.randn(5, 7, j, 3)
    assert g(x).shape == (5, 7, 4 * (j + len(COMPONENTS) + len(LIMBS)))
    # scale positions: root-relative joints, parts = plain means of the part map's joints
    pos = g.scale_positions(x[0, 0])
    rel = x[0, 0] - x[0, 0, pm.root]
    assert torch.allclose(pos["joint"], rel)
    for name, parts in (("component", pm.components), ("limb", pm.limbs)):
        want = torch.stack([rel[list(p)].mean(0) for p in parts])
        assert torch.allclose(pos[name], want, atol=1e-6), name
    # structural relations follow the bones: moving one joint changes (without cross-scale
    # relations) exactly that joint and its neighbours at the joint scale
    frame = x[:1, 0]
    joint = next(i for i in range(j) if i != pm.root)
    moved = frame.clone()
    moved[0, joint] += 0.5
    with torch.no_grad():
        diff = (g.nodes_features(moved)["joint"] - g.nodes_features(frame)["joint"]).abs().sum(-1)[0]
    nbrs = {joint} | {b for a, b in bones(pm) if a == joint} | {a for a, b in bones(pm) if b == joint}
    assert set(torch.nonzero(diff > 1e-7).flatten().tolist()) == nbrs
    # every joint is on some bone, and the bones form one connected skeleton
    seen, todo = {0}, [0]
    while todo:
        a = todo.pop()
        for u, v in bones(pm):
            for p, q in ((u, v), (v, u)):
                if p == a and q not in seen:
                    seen.add(q)
                    todo.append(q)
    assert seen == set(range(j))


def test_collaborative_relations_mix_scales():
    pm = get_part_map("kinect-v1-20")
    torch.manual_seed(0)
    g = GraphEncoder(pm, dim=4, heads=2, lam=1.0)
    frame = torch.randn(1, 20, 3)
    moved = frame.clone()
    moved[0, 14] += 0.5  # l_ankle: with cross-scale attention every joint node sees it
    with torch.no_grad():
        diff = (g.nodes_features(moved)["joint"] - g.nodes_features(frame)["joint"]).abs().sum(-1)
    assert (diff > 1e-7).all()


def test_sm_sge_model_embeds_and_needs_a_part_map():
    cfg = make_config("kgbd", method="sm-sge", **SMALL)
    assert (cfg.x, cfg.q, cfg.lam, cfg.lr) == (0, 1, 0.0, 2.5e-3)  # no masks / MIC; own lr
    assert make_config("kgbd", method="sm-sge", hidden=32).hidden == 32
    model = smsge.build_model(cfg, 17, "h36m-17")
    assert smsge.embed(model, torch.randn(3, 6, 17, 3)).shape == (3, 3 * 16)
    with pytest.raises(ConfigError, match="part map"):
        smsge.build_model(cfg, 12, "")


def test_reconstruction_loss_falls_on_synthetic_walkers(pre):
    run, history = pre
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    assert all("rec_joint" in h and "rec_limb" in h for h in history)
    info = json.loads((run / "config.json").read_text())
    assert info["method"] == "sm-sge" and info["layout"] == "h36m-17"
    embed = open_run(run).embedder().windows  # eval works on the SM-SGE run directly
    out = embed(np.zeros((2, 6, 17, 3), np.float32))
    assert out.shape == (2, 48) and np.isfinite(out).all()


def test_simmc_mlp_path_is_unchanged():
    model = simmc.build_model(make_config("kgbd"), 20, "kinect-v1-20")
    assert set(model.state_dict()) == {"encoder.fc1.weight", "encoder.fc1.bias",
                                       "encoder.fc2.weight", "encoder.fc2.bias",
                                       "predictor.weight", "predictor.bias"}


def test_init_loads_the_graph_encoder_and_fine_tunes(store: Path, pre, tmp_path: Path):
    run, _ = pre
    weights = torch.load(run / "model.pt", weights_only=False)["model"]
    graph = {k[len("graph."):]: v for k, v in weights.items() if k.startswith("graph.")}
    assert graph
    cfg = make_config("kgbd", init=str(run), epochs=0, hidden=32)
    assert (cfg.encoder, cfg.smsge_dim, cfg.smsge_heads) == ("graph", 4, 2)
    train(cfg, store, tmp_path / "ft0", progress=False)
    loaded = torch.load(tmp_path / "ft0" / "model.pt", weights_only=False)["model"]
    for k, v in graph.items():
        assert torch.equal(loaded[f"encoder.graph.{k}"], v), k
    # fine-tuning with SimMC's losses moves the graph encoder; eval rebuilds the graph encoder
    cfg = make_config("kgbd", init=str(run), epochs=1, hidden=32, eps=0.7, batch_size=64)
    train(cfg, store, tmp_path / "ft1", progress=False)
    tuned = torch.load(tmp_path / "ft1" / "model.pt", weights_only=False)["model"]
    assert any(not torch.equal(tuned[f"encoder.graph.{k}"], v) for k, v in graph.items())
    info = json.loads((tmp_path / "ft1" / "config.json").read_text())
    assert info["encoder"] == "graph" and info["init"] == str(run.resolve())
    embed = open_run(tmp_path / "ft1").embedder().windows
    assert embed(np.zeros((2, 6, 17, 3), np.float32)).shape == (2, 32)


def test_init_errors_are_one_line(store: Path, pre, tmp_path: Path):
    from typer.testing import CliRunner

    from vid2reid.cli import app

    run, _ = pre
    other = tmp_path / "other"
    shutil.copytree(run, other)
    info = json.loads((other / "config.json").read_text())
    info.update(layout="kinect-v1-20", num_joints=20)
    (other / "config.json").write_text(json.dumps(info))
    base = ["train", "--data", str(store), "--preset", "kgbd", "--epochs", "1", "--no-progress"]
    for init, words in ((other, "kinect-v1-20"), (tmp_path / "missing", "no such run folder")):
        res = CliRunner().invoke(app, base + ["--out", str(tmp_path / "ft"), "--init", str(init)])
        assert res.exit_code == 1, res.output
        errors = [s for s in res.output.splitlines() if "error" in s.lower()]
        assert len(errors) == 1 and words in errors[0] and "--init" in errors[0], res.output
        assert "Traceback" not in res.output
        assert not (tmp_path / "ft").exists()
    with pytest.raises(ConfigError, match="method simmc"):
        make_config("kgbd", method="himpc", init=str(run))
    with pytest.raises(ConfigError, match="does not fit"):
        make_config("kgbd", init=str(run), smsge_dim=8)


def test_graph_attention_against_plain_loops():
    from vid2reid.encoders import GraphAttention, adjacency

    torch.manual_seed(1)
    adj = adjacency(5, [(0, 1), (1, 2), (1, 3), (3, 4)])
    layer = GraphAttention(3, 2, adj)
    with torch.no_grad():
        layer.bias.normal_()
    h = torch.randn(2, 5, 3)
    out = layer(h)
    for n in range(2):
        for i in range(5):
            acc = torch.zeros(3)
            for m in range(2):
                z = h[n] @ layer.w[m]
                nbrs = [j for j in range(5) if adj[i, j]]
                e = torch.stack([torch.nn.functional.leaky_relu(
                    layer.a_src[m] @ z[i] + layer.a_dst[m] @ z[j], 0.2) for j in nbrs])
                a = torch.softmax(e, 0)
                acc += torch.nn.functional.elu(sum(a[k] * z[j] for k, j in enumerate(nbrs))
                                               + layer.bias[m])
            assert torch.allclose(out[n, i], acc / 2, atol=1e-5)


def test_sm_sge_resume_equals_uninterrupted_run(store: Path, tmp_path: Path):
    cfg = make_config("kgbd", method="sm-sge", epochs=2, seed=3, windows="shifted", **SMALL)
    train(cfg, store, tmp_path / "full", progress=False)
    train(make_config("kgbd", method="sm-sge", epochs=1, seed=3, windows="shifted", **SMALL),
          store, tmp_path / "part", progress=False)
    train(cfg, store, tmp_path / "part", progress=False)  # resumes after epoch 1
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_written_before_init_and_encoder_existed_resumes(store: Path, tmp_path: Path):
    cfg = make_config("kgbd", epochs=1, hidden=16, eps=0.7, batch_size=64)
    run = tmp_path / "old"
    train(cfg, store, run, progress=False)
    from vid2reid.runfile import load_run_file, save_run_file

    new = ("init", "encoder", "smsge_dim", "smsge_heads", "smsge_lambda")
    ck = load_run_file(run / "checkpoint.pt")
    ck["config"] = {k: v for k, v in ck["config"].items() if k not in new}
    save_run_file(run / "checkpoint.pt", ck)
    info = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({k: v for k, v in info.items() if k not in new}))
    embed = open_run(run).embedder().windows  # an old run loads as SimMC's MLP
    assert embed(np.zeros((1, 6, 17, 3), np.float32)).shape == (1, 16)
    res = train(make_config("kgbd", epochs=2, hidden=16, eps=0.7, batch_size=64), store, run,
                progress=False)
    assert res.epochs_done == 2
