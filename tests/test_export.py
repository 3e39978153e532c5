"""vid2reid export: the ONNX graph (run with onnxruntime on the CPU, no torch in the loop) and
the TorchScript one give the run's own features for windows cut from a store as stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options
from vid2reid.cli import app
from vid2reid.run import open_run
from vid2reid.run.export import walk_windows
from vid2reid.store import load_joints, read_manifest
from vid2reid.synthetic import make_synthetic_store

TINY = tiny_options(epochs=1)
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    store = make_synthetic_store(root / "skeletons", n_subjects=5, frames=(60, 80), seed=4)
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(root / "runs" / "a"),
                            *TINY])
    assert r.exit_code == 0, r.output
    return store, root / "runs"


def _walk_features(embed, store: Path, f: int) -> tuple[list[str], np.ndarray]:
    """Every walk's feature computed outside vid2reid's embedder: windows cut from the walk
    file as stored, through the exported graph, averaged."""
    recs = sorted(read_manifest(store), key=lambda r: "|".join(r.video_key))
    return ([r.path for r in recs],
            np.stack([embed(walk_windows(load_joints(store, r), f)).mean(0) for r in recs]))


def test_onnx_matches_the_runs_features_and_rankings(setup, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    store, runs = setup
    out = tmp_path / "model.onnx"
    r = runner.invoke(app, ["export", "--run", str(runs / "LATEST"), "--format", "onnx",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "model.onnx.json").read_text())
    run = open_run(runs)
    assert info["f"] == run.f == 20 and info["joints"] == run.num_joints and info["unit_features"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def embed(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {"windows": x.astype(np.float32)})[0]

    walks = run.embedder("cpu").store(store)
    paths, feats = _walk_features(embed, store, run.f)
    assert paths == walks.paths
    assert np.abs(feats - walks.features).max() <= 1e-4
    # window level too, and unit length as the run scores them
    w = embed(walk_windows(load_joints(store, read_manifest(store)[0]), run.f))
    assert np.allclose(np.linalg.norm(w, axis=1), 1, atol=1e-5)
    # identical rankings of every walk against the others
    def ranks(x):
        d = ((x[:, None] - x[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :-1]
    assert (ranks(feats.astype(np.float64)) == ranks(walks.features.astype(np.float64))).all()
    # any batch size, beyond the methods' internal chunk of 4096 windows
    rec = read_manifest(store)[0]
    one = walk_windows(load_joints(store, rec), run.f)
    big = np.concatenate([one] * (4100 // len(one) + 1))[:4100]
    got = embed(big)
    assert got.shape == (4100, info["features"])
    assert np.abs(got - run.embedder("cpu").windows(_normalised(big, rec.layout))).max() <= 1e-4


def _normalised(windows: np.ndarray, layout: str) -> np.ndarray:
    from vid2reid.layouts import root_joint

    r = root_joint(layout)
    return windows - windows[:, :, r:r + 1]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_matches_and_bad_format_is_one_line(setup, tmp_path: Path):
    import torch

    store, runs = setup
    out = tmp_path / "model.pt"
    r = runner.invoke(app, ["export", "--run", str(runs), "--format", "torchscript",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    model = torch.jit.load(str(out))
    run = open_run(runs)
    walks = run.embedder("cpu").store(store)
    with torch.no_grad():
        _, feats = _walk_features(lambda x: model(torch.from_numpy(x)).numpy(), store, run.f)
    assert np.abs(feats - walks.features).max() <= 1e-4
    r = runner.invoke(app, ["export", "--run", str(runs), "--format", "tflite",
                            "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and "--format must be one of onnx, torchscript" in r.output
    # an earlier export is replaced; a user's own file is not, unless --force
    r = runner.invoke(app, ["export", "--run", str(runs), "--format", "torchscript",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    r = runner.invoke(app, ["export", "--run", str(runs), "--format", "torchscript",
                            "--out", str(notes)])
    assert r.exit_code == 1 and str(notes) in r.output and notes.read_text() == "mine"
    r = runner.invoke(app, ["export", "--run", str(runs), "--format", "torchscript",
                            "--out", str(notes), "--force"])
    assert r.exit_code == 0 and notes.read_bytes() != b"mine"


def test_the_usage_docs_onnxruntime_block_runs_as_written(setup, monkeypatch, capsys):
    """docs/usage.md's embedding with onnxruntime alone, run as written in a folder holding
    skeletons/ and model.onnx: it prints match's distance between two walks."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import re

    store, runs = setup
    monkeypatch.chdir(store.parent)
    r = runner.invoke(app, ["export", "--run", str(runs), "--out", "model.onnx"])
    assert r.exit_code == 0, r.output
    doc = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    block = re.search(r"with onnxruntime alone.*?```python\n(.*?)```", doc, re.S).group(1)
    assert "torch" not in block and "vid2reid" not in block
    capsys.readouterr()
    exec(compile(block, "docs/usage.md", "exec"), {})
    printed = float(capsys.readouterr().out.strip())
    walks = open_run(runs).embedder("cpu").store(store)
    a, b = (walks.paths.index(p) for p in ("001/001-nm-01-090.npz", "002/002-nm-01-090.npz"))
    assert printed == pytest.approx(float(np.linalg.norm(walks.features[a] - walks.features[b])),
                                    abs=1e-4)
