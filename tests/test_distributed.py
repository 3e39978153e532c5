"""Data-parallel training: two real processes under torchrun with gloo, on the CPU.

The two processes split every global batch, share rank 0's pseudo-labels and average their
gradients, so they must train the same model as one process with the same settings (up to
float rounding); rank 0 alone writes the run, which records the number of processes, and a
second torchrun continues it from its checkpoint.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vid2reid.distributed import Dist, batch_share, from_env
from vid2reid.errors import ConfigError
from vid2reid.synthetic import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--preset", "casia-b", "--f", "20", "--eps", "0.5", "-b", "64", "--seed", "0",
        "--threads", "1", "--no-progress"]


def _train(store: Path, out: Path, epochs: int, processes: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(processes), "-m", "vid2reid"] if processes > 1
              else [sys.executable, "-m", "vid2reid"])
    r = subprocess.run(launch + ["train", "--data", str(store), "--out", str(out),
                                 "--epochs", str(epochs), *ARGS],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_two_gloo_processes_train_like_one(tmp_path: Path):
    store = make_synthetic_store(tmp_path / "store", n_subjects=10, walks={"nm": 3, "bg": 2},
                                 frames=(60, 80), seed=5)
    one = _train(store, tmp_path / "one", 2, 1)
    _train(store, tmp_path / "two", 1, 2)
    two = _train(store, tmp_path / "two", 2, 2)  # continues the 1-epoch run from its checkpoint
    assert two.stdout.count("trained 2 epoch(s)") == 1  # reported once, by rank 0
    assert "resuming" in (tmp_path / "two" / "train.log").read_text()
    info = json.loads((tmp_path / "two" / "config.json").read_text())
    assert info["processes"] == 2 and info["batch_size"] == 64
    assert json.loads((tmp_path / "one" / "config.json").read_text())["processes"] == 1
    a, b = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["epoch"] for r in b] == [1, 2]
    for ra, rb in zip(a, b):  # same batches, same pseudo-labels, same losses
        assert (ra["batches"], ra["clusters"], ra["kept"]) == (rb["batches"], rb["clusters"],
                                                              rb["kept"])
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4, abs=1e-4)
    wa = torch.load(tmp_path / "one" / "model.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "two" / "model.pt", weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-3), k
    # rank 1 wrote nothing of its own into the run
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if not p.name.startswith(".")) == \
        ["checkpoint.pt", "config.json", "log.jsonl", "model.pt", "train.log"]


def test_batches_are_split_among_ranks():
    import numpy as np

    idx = np.arange(10)
    parts = [batch_share(idx, Dist(r, 3)) for r in range(3)]
    assert np.array_equal(np.concatenate([p for p, _ in parts]), idx)
    assert sum(s for _, s in parts) == pytest.approx(1.0)
    small, share = batch_share(np.arange(2), Dist(2, 3))  # fewer windows than ranks: all train it
    assert list(small) == [0, 1] and share == pytest.approx(1 / 3)
    assert from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Dist(1, 4, 1)
    assert from_env({}) == Dist()
    with pytest.raises(ConfigError):
        from_env({"RANK": "4", "WORLD_SIZE": "4"})
