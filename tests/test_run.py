"""vid2reid.run: a run opened one way (which folder, which weights, one error per problem) and
walks embedded one way (one vector per walk whichever command asks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options, train_tiny
from vid2reid.cli import app
from vid2reid.errors import ConfigError, RunError
from vid2reid.run import find_run, open_run
from vid2reid.store import read_manifest
from vid2reid.synthetic import make_synthetic_store

TINY = tiny_options(epochs=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("run") / "skeletons", n_subjects=6,
                                frames=(60, 80), seed=3)


@pytest.fixture(scope="module")
def run(store: Path) -> Path:
    return train_tiny(store, store.parent / "runs" / "tiny", epochs=2)


def test_a_run_is_named_three_ways(run: Path):
    runs = run.parent
    assert (runs / "LATEST").read_text().strip() == run.name
    for name in (run, runs, runs / "LATEST"):
        assert find_run(name) == run
    assert find_run(None, runs) == run
    opened = open_run(runs / "LATEST")
    assert opened.path == run and opened.finished and opened.stopped == ""
    assert opened.f == 20 and opened.weights.name == "model.pt" and opened.epochs_done == 2


def test_a_stopped_run_is_used_from_its_checkpoint(run: Path, tmp_path: Path):
    stopped = tmp_path / "stopped"
    shutil.copytree(run, stopped)
    (stopped / "model.pt").unlink()
    (stopped / "log.jsonl").write_text((run / "log.jsonl").read_text().splitlines()[0] + "\n")
    opened = open_run(stopped)
    assert opened.weights.name == "checkpoint.pt" and not opened.finished
    assert opened.stopped == "run stopped at epoch 1 of 2"
    # a folder of runs with neither LATEST nor a finished run is refused in one line
    with pytest.raises(RunError, match="no finished run"):
        find_run(tmp_path)


@pytest.mark.parametrize("edit, words", [
    ({"f": "six"}, "'f' must be an integer, got 'six'"),
    ({"num_joints": 0}, "'num_joints' must be a positive integer"),
    ({"method": "nope"}, "method must be one of"),
])
def test_a_broken_config_is_the_same_one_line_error_for_every_command(
        store: Path, run: Path, tmp_path: Path, edit: dict, words: str):
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    info = json.loads((bad / "config.json").read_text())
    info.update(edit)
    (bad / "config.json").write_text(json.dumps(info))
    commands = {
        "eval": ["eval", "--data", str(store), "--run", str(bad)],
        "match": ["match", str(store), "--gallery", str(store), "--run", str(bad)],
        "index": ["index", "--data", str(store), "--run", str(bad), "--out",
                  str(tmp_path / "g.idx")],
        "group": ["group", "--data", str(store), "--run", str(bad), "--out",
                  str(tmp_path / "people.csv"), "--no-progress"],
        "train --init": ["train", "--data", str(store), "--out", str(tmp_path / "ft"),
                         "--init", str(bad), *TINY],
    }
    lines = {}
    for name, argv in commands.items():
        r = CliRunner().invoke(app, argv)
        assert r.exit_code != 0, (name, r.output)
        assert "Traceback" not in r.output, (name, r.output)
        errors = [s for s in r.output.splitlines() if s.startswith("error:")]
        assert len(errors) == 1, (name, r.output)
        lines[name] = errors[0].replace("--init ", "--run ", 1)
    assert len(set(lines.values())) == 1, lines
    line = next(iter(lines.values()))
    assert str(bad / "config.json") in line and words in line, line
    assert not (tmp_path / "g.idx").exists() and not (tmp_path / "people.csv").exists()
    assert not (tmp_path / "ft").exists()


def test_one_vector_per_walk_whichever_command_asks(store: Path, run: Path):
    """eval's sequence features, match's and group's walk features are the same numbers."""
    from vid2reid.evaluate import evaluate
    from vid2reid.grouping import walk_features

    opened = open_run(run)
    walks = opened.embedder().store(store)
    lean = opened.embedder().store(store, keep_windows=False)
    np.testing.assert_array_equal(walks.features, lean.features)
    assert walks.paths == lean.paths and len(lean.window_features) == 0
    res = evaluate(store, run_dir=run, probe="Bags", gallery="Normal", keep_features=True,
                   protocol="all")
    seq = res["features"]["sequence"]["gallery"]
    for key, x in zip(seq["video"], seq["x"]):
        np.testing.assert_array_equal(x, walks.features[walks.keys.index(key)])
    records, feats, _, _ = walk_features(store, run, progress=False)
    unit = walks.features / np.linalg.norm(walks.features, axis=1, keepdims=True)
    by_path = {p: i for i, p in enumerate(walks.paths)}
    np.testing.assert_allclose(feats, unit[[by_path[r.path] for r in records]], rtol=1e-6,
                               atol=1e-7)


def test_windows_are_non_overlapping_from_frame_zero(store: Path, run: Path):
    opened = open_run(run)
    rec = read_manifest(store)[0]
    walks = opened.embedder().store(store)
    i = walks.paths.index(rec.path)
    starts = walks.window_start[walks.window_walk == i]
    assert starts.tolist() == list(range(0, (rec.frames // 20) * 20, 20))


def test_batches_do_not_change_features(store: Path, run: Path):
    emb = open_run(run).embedder()
    whole = emb.store(store)
    emb.batch = 7  # every walk split across batches
    try:
        small = emb.store(store)
    finally:
        emb.batch = 4096
    np.testing.assert_allclose(small.features, whole.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(small.window_walk, whole.window_walk)


def test_device_names(store: Path, run: Path):
    from vid2reid.device import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:N"):
        resolve_device("gpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")
        for argv in (["eval", "--data", str(store)], ["group", "--data", str(store)],
                     ["match", str(store), "--gallery", str(store)]):
            r = CliRunner().invoke(app, [*argv, "--run", str(run), "--device", "cuda"])
            assert r.exit_code != 0 and "Traceback" not in r.output, r.output
            assert "no CUDA GPU" in r.output, r.output


def test_every_command_takes_runs_latest_and_defaults_to_the_latest_run(
        store: Path, run: Path, tmp_path: Path, monkeypatch):
    """--run runs/LATEST (and a folder of runs) for eval, match, index, group and export; no
    --run at all: the latest run in ./runs, like eval and match. load_run the same."""
    import vid2reid

    monkeypatch.chdir(run.parent.parent)  # ./runs is the folder of runs
    assert vid2reid.load_run("runs/LATEST").path.resolve() == run.resolve()
    assert vid2reid.load_run().path.resolve() == run.resolve()
    runner = CliRunner()
    for k, how in enumerate((["--run", "runs/LATEST"], ["--run", "runs"], [])):
        commands = [
            ["eval", "--data", str(store), "--probe", "Bags", "--gallery", "Normal"],
            ["match", str(store), "--gallery", str(store), "--query-split", "test", "--top", "1"],
            ["index", "--data", str(store), "--out", str(tmp_path / f"g{k}.idx")],
            ["group", "--data", str(store), "--out", str(tmp_path / f"people{k}.csv"),
             "--no-progress"],
            ["export", "--format", "torchscript", "--out", str(tmp_path / f"m{k}.pt")],
        ]
        for cmd in commands:
            r = runner.invoke(app, cmd + how)
            assert r.exit_code == 0, (cmd + how, r.output)
