"""The generic training loop: run directory, resume, reproducibility, split, CLI, accuracy."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.errors import ConfigError, ProtocolError
from vid2reid.store import read_manifest, write_manifest
from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.run import open_run
from vid2reid.train import epoch_windows, train
from vid2reid.data import training_sequences

runner = CliRunner()
SMALL = dict(f=20, x=5, eps=0.5, batch_size=64)  # a small store needs a small window and batch


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("train") / "skeletons", n_subjects=10,
                                walks={"nm": 3, "bg": 2}, frames=(60, 80), seed=5)


def _weights(run: Path) -> dict:
    return torch.load(run / "model.pt", weights_only=False)["model"]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_layout_and_embedder(store: Path, tmp_path: Path):
    cfg = make_config("casia-b", epochs=2, seed=1, **SMALL)
    res = train(cfg, store, tmp_path / "runs" / "r1", progress=False)
    run = res.run_dir
    for name in ("config.json", "checkpoint.pt", "model.pt", "log.jsonl", "train.log"):
        assert (run / name).is_file(), name
    assert (tmp_path / "runs" / "LATEST").read_text().strip() == "r1"
    info = json.loads((run / "config.json").read_text())
    for key in ("method", "preset", "f", "x", "q", "tau", "eps", "min_samples", "lam", "k1", "k2",
                "lr", "batch_size", "epochs", "hidden", "seed", "data", "protocol"):
        assert key in info, key
    assert (info["method"], info["f"], info["eps"], info["tau"]) == ("simmc", 20, 0.5, 0.075)
    lines = [json.loads(s) for s in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert {"loss", "clusters", "outliers"} <= set(lines[0])
    opened = open_run(run)
    embed, conf = opened.embedder().windows, opened.info
    out = embed(np.zeros((3, 20, 17, 3), np.float32))
    assert out.shape == (3, 256) and conf["method"] == "simmc"
    assert not list(run.glob("*.tmp"))


def test_only_train_split_is_used(store: Path):
    cfg = make_config("casia-b", **SMALL)
    bank, records, layout = training_sequences(store, cfg)
    train_recs = [r for r in read_manifest(store) if r.split == "train"]
    assert {r.path for r in records} == {r.path for r in train_recs}
    assert layout == "h36m-17" and bank.frames.shape[1:] == (17, 3)
    assert len(bank.length) == len(records)
    x, _ = epoch_windows(bank, cfg, np.random.default_rng(0))
    assert x.shape[1:] == (20, 17, 3)


def test_store_without_split_trains_on_every_walk(store: Path, tmp_path: Path, caplog):
    """Own names, no split column: label-free training needs no split, so every walk trains
    (said in one line); a split column that marks no 'train' row is still refused."""
    recs = read_manifest(store)
    import dataclasses
    import json
    import logging
    import shutil

    odd = [dataclasses.replace(r, subject=f"p{r.subject}", split="") for r in recs]
    shutil.copytree(store, tmp_path / "odd")  # a store reads only files inside it
    write_manifest(tmp_path / "odd", odd)
    with caplog.at_level(logging.INFO):
        train(make_config("casia-b", epochs=1, **SMALL), tmp_path / "odd", tmp_path / "run",
              progress=False)
    assert sum("training on every walk" in m for m in caplog.messages) == 1
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["train_sequences"] == len(recs)
    write_manifest(tmp_path / "odd", [dataclasses.replace(r, split="test") for r in odd])
    with pytest.raises(ProtocolError, match="split column"):
        train(make_config("casia-b", epochs=1, **SMALL), tmp_path / "odd", tmp_path / "run2",
              progress=False)


def test_same_seed_same_model_other_seed_differs(store: Path, tmp_path: Path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cfg = make_config("casia-b", epochs=2, seed=seed, **SMALL)
        runs[name] = train(cfg, store, tmp_path / name, progress=False)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert runs["a"].history[-1]["loss"] == runs["b"].history[-1]["loss"]
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_resume_equals_uninterrupted_run(store: Path, tmp_path: Path):
    full = train(make_config("casia-b", epochs=3, seed=2, **SMALL), store, tmp_path / "full",
                 progress=False)
    train(make_config("casia-b", epochs=2, seed=2, **SMALL), store, tmp_path / "part",
          progress=False)
    resumed = train(make_config("casia-b", epochs=3, seed=2, **SMALL), store, tmp_path / "part",
                    progress=False)
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "part"))
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert len((tmp_path / "part" / "log.jsonl").read_text().splitlines()) == 3


def test_cli_train_and_errors(store: Path, tmp_path: Path):
    out = tmp_path / "cli_run"
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(out), "--epochs", "1",
                            "--preset", "casia-b", "--f", "20", "--eps", "0.5", "-b", "64", "--ablation",
                            "npc", "--no-progress"])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "config.json").read_text())
    assert (info["ablation"], info["q"], info["x"], info["lam"], info["epochs"]) == \
        ("npc", 1, 0, 0.0, 1)
    bad = runner.invoke(app, ["train", "--data", str(store), "--out", str(tmp_path / "x"),
                              "--preset", "casia-b", "--eps", "1.5"])
    assert bad.exit_code == 1 and "eps must be in (0, 1)" in bad.output and "Traceback" not in bad.output
    none = runner.invoke(app, ["train", "--data", str(store), "--out", str(tmp_path / "y"),
                               "--preset", "casia-b", "--f", "20", "--x", "5",
                               "--min-samples", "100000", "--no-progress"])
    assert none.exit_code == 1 and "no cluster" in none.output
    assert runner.invoke(app, ["train", "--help"]).exit_code == 0


def test_stops_early_when_pseudo_labels_are_stable(store: Path, tmp_path: Path):
    cfg = make_config("casia-b", epochs=8, seed=1, stop_ari=0.5, stop_patience=2, **SMALL)
    res = train(cfg, store, tmp_path / "r", progress=False)
    aris = [h["label_ari"] for h in res.history]
    assert aris[0] is None and all(isinstance(a, float) for a in aris[1:])  # nothing to compare
    # the rule, read off the log: stop after the first 2 epochs in a row with ARI >= 0.5
    ok = [a is not None and a >= 0.5 for a in aris]
    first = next(i for i in range(1, len(ok)) if ok[i] and ok[i - 1])
    assert res.stopped_early and res.epochs_done == first + 1 < 8
    assert (tmp_path / "r" / "log.jsonl").read_text().count("\n") == res.epochs_done
    # resuming a stopped run trains nothing more
    again = train(cfg, store, tmp_path / "r", progress=False)
    assert again.epochs_done == res.epochs_done


@pytest.mark.slow
def test_simmc_beats_raw_baseline(tmp_path: Path):
    """Kinect data-set protocol (KS20/KGBD/IAS/BIWI: the same people, other walks), KGBD preset.

    Measured over store seeds 1-4 (README): SimMC beats raw on N-N sequence top-1
    and doubles window mAP on every seed; window top-1 is above raw on 3 of 4,
    so that is not asserted.
    """
    from vid2reid.evaluate import evaluate

    walks = {"nm": 6, "bg": 2, "cl": 2}
    data = make_synthetic_store(tmp_path / "s", n_subjects=15, walks=walks, train_walks=walks,
                                seed=1)
    # shifted windows: on these noiseless periodic walkers the every-start cut ("all", what
    # "auto" picks for a store this small) clusters gait phases across people instead of walks
    # (measured: window top-1 / mAP 32.0 / 20.8 against shifted 64.5 / 39.2 and raw 55.6 / 15.4);
    # on real Kinect walks it does not (docs/kgbd.md)
    cfg = make_config("kgbd", epochs=8, seed=0, batch_size=64, windows="shifted")
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.history[-1]["clusters"] > 15  # the prototype loss had something to contrast
    ours = evaluate(data, run_dir=tmp_path / "run", probe="nm", gallery="nm")
    raw = evaluate(data, baseline="raw", f=cfg.f, probe="nm", gallery="nm")
    assert ours["sequence"]["probes"] == raw["sequence"]["probes"] == 30
    assert ours["sequence"]["top1"] > raw["sequence"]["top1"]
    assert ours["window"]["mAP"] > 1.5 * raw["window"]["mAP"]


@pytest.mark.slow
def test_default_people_beat_raw_on_same_people(tmp_path: Path):
    """The label-free default (no preset: walks grouped into people) against raw coordinates.

    Measured (store seed 1, 8 epochs): window mAP 35.8 vs raw 15.4, sequence mAP 47.6 vs
    42.9, sequence top-1 tied at 46.7; window top-1 47.7 vs raw 55.6 is below raw on these
    noiseless synthetic walkers (each synthetic walk has its own fixed quirks, which
    walk-level classes learn), so it is not asserted; real data: docs/kgbd.md.
    """
    from vid2reid.evaluate import evaluate

    walks = {"nm": 6, "bg": 2, "cl": 2}
    data = make_synthetic_store(tmp_path / "s", n_subjects=15, walks=walks, train_walks=walks,
                                seed=1)
    cfg = make_config(f=6, epochs=8, seed=0, batch_size=64)
    assert (cfg.preset, cfg.pseudo_labels, cfg.x) == ("none", "people", 2)
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.history[0]["clusters"] == 15 * 10  # warm-up: one class per training walk
    assert res.history[-1]["clusters"] < 15 * 10  # then walks are grouped into people
    ours = evaluate(data, run_dir=tmp_path / "run", probe="nm", gallery="nm")
    raw = evaluate(data, baseline="raw", f=cfg.f, probe="nm", gallery="nm")
    assert ours["window"]["mAP"] > 2 * raw["window"]["mAP"]
    assert ours["sequence"]["mAP"] > raw["sequence"]["mAP"]
    assert ours["sequence"]["top1"] >= raw["sequence"]["top1"]


def test_label_free_defaults_and_clear_errors():
    cfg = make_config()
    assert (cfg.preset, cfg.pseudo_labels, cfg.f, cfg.x) == ("none", "people", 40, 10)
    assert make_config("kgbd").pseudo_labels == "clusters"  # a preset reproduces the paper
    assert make_config("kgbd", pseudo_labels="walks").eps == 0.6
    with pytest.raises(ConfigError, match="only apply to --pseudo-labels clusters"):
        make_config(f=6, eps=0.5)
    with pytest.raises(ConfigError, match="pseudo-labels must be one of"):
        make_config(pseudo_labels="persons")
