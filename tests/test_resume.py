"""Resuming a training run: refused settings, --no-resume, and a run killed mid-epoch.

Everything goes through the ``vid2reid train`` command line; the killed run is a real
``python -m vid2reid train`` subprocess that gets SIGKILL during its second epoch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.runfile import load_run_file
from vid2reid.synthetic import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")  # --threads 1 below sets torch's threads
ARGS = ["--preset", "casia-b", "--f", "20", "--x", "5", "--eps", "0.5", "--batch-size", "64",
        "--hidden", "64",
        "--device", "cpu", "--threads", "1", "--no-progress"]


def _weights(run: Path) -> dict:
    return torch.load(run / "model.pt", weights_only=True)["model"]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("resume") / "s", n_subjects=8,
                                walks={"nm": 3, "bg": 2}, frames=(60, 80), seed=4)


def _cli(store: Path, out: Path, *extra: str):
    """``vid2reid train`` in this process (typer's runner), with the same arguments."""
    return runner.invoke(app, ["train", "--data", str(store), "--out", str(out), *ARGS, *extra])


def test_changed_settings_are_refused_in_one_line(store: Path, tmp_path: Path):
    run = tmp_path / "run"
    base = {"--seed": "7", "--windows": "shifted"}
    first = _cli(store, run, "--epochs", "1", *(a for kv in base.items() for a in kv))
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in run.iterdir()
              if p.name not in ("train.log", ".vid2reid.lock")}  # the lock names its last holder
    for change, said in ((["--seed", "8"], "seed=7, not 8"), (["--f", "24"], "f=20, not 24"),
                         (["--windows", "all"], "windows='shifted', not 'all'"),
                         (["--method", "himpc"], "method='simmc', not 'himpc'")):
        settings = {"--epochs": "2", **base, **dict(zip(change[::2], change[1::2]))}
        res = _cli(store, run, *(a for kv in settings.items() for a in kv))
        assert res.exit_code == 1, (change, res.output)
        errors = [line for line in res.output.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and "Traceback" not in res.output, res.output
        assert errors[0].startswith("error: ") and str(run / "checkpoint.pt") in errors[0]
        assert f"was trained with {said}" in errors[0] and "--no-resume" in errors[0]
        after = {p.name: p.read_bytes() for p in run.iterdir()
                 if p.name not in ("train.log", ".vid2reid.lock")}  # the lock names its last holder
        assert after == before, change  # nothing of the run was touched
    # the settings that may change do not stop a resume
    ok = _cli(store, run, "--epochs", "2", "--stop-ari", "0.99",
              *(a for kv in base.items() for a in kv))
    assert ok.exit_code == 0, ok.output
    assert load_run_file(run / "checkpoint.pt")["epoch"] == 2


def test_no_resume_starts_over(store: Path, tmp_path: Path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    assert _cli(store, run, "--epochs", "2", "--seed", "1").exit_code == 0
    res = _cli(store, run, "--epochs", "2", "--seed", "5", "--f", "24", "--no-resume")
    assert res.exit_code == 0, res.output
    assert _cli(store, fresh, "--epochs", "2", "--seed", "5", "--f", "24").exit_code == 0
    assert _same_weights(run, fresh)
    assert _log(run) == _log(fresh) and len(_log(run)) == 2
    assert json.loads((run / "config.json").read_text())["seed"] == 5


def _log(run: Path) -> list[dict]:
    """log.jsonl without the timings."""
    return [{k: v for k, v in json.loads(s).items() if not k.endswith("_s")}
            for s in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_bitwise_equal(store: Path, tmp_path: Path):
    epochs = "6"
    ref = tmp_path / "ref"
    assert _cli(store, ref, "--epochs", epochs, "--seed", "3").exit_code == 0
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "vid2reid", "train", "--data", str(store), "--out", str(run),
           *ARGS, "--epochs", epochs, "--seed", "3"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    log = run / "log.jsonl"
    deadline = time.time() + 240
    # the second epoch is under way once the first epoch's line is in the log
    while proc.poll() is None and time.time() < deadline:
        if log.is_file() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    # the interruption is certain: the process died of the signal before the run finished
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (run / "model.pt").exists()
    done = load_run_file(run / "checkpoint.pt")["epoch"]
    assert 1 <= done < int(epochs)
    assert _cli(store, run, "--epochs", epochs, "--seed", "3").exit_code == 0
    assert _same_weights(run, ref)
    assert (run / "log.jsonl").read_text().count("\n") == int(epochs)
    assert _log(run) == _log(ref)


def test_default_out_resumes_the_unfinished_run_and_eval_says_it_is_unfinished(store: Path,
                                                                              tmp_path: Path):
    """Ctrl-C, then the same ``vid2reid train`` without --out: the same run continues (no second
    run folder); before that, eval of the stopped run says how far it got, and LATEST names only
    finished runs."""
    from vid2reid.evaluate import evaluate

    cmd = [sys.executable, "-m", "vid2reid", "train", "--data", str(store), "--epochs", "40", *ARGS]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,  # Ctrl-C as in a terminal, also
                            # when the test runner itself was started in the background
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob("runs/*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert not (run / "model.pt").exists() and not (tmp_path / "runs" / "LATEST").exists()
    done = len((run / "log.jsonl").read_text().splitlines())
    assert 1 <= done < 40

    result = evaluate(store, run_dir=run, probe="bg", gallery="nm")
    assert result["unfinished"] == f"run stopped at epoch {done} of 40"
    assert f"run stopped at epoch {done} of 40" in result["description"]

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] == [run]
    assert f"resuming {run.resolve()} after epoch" in again.stderr or \
        f"resuming runs/{run.name} after epoch" in again.stderr, again.stderr
    assert len((run / "log.jsonl").read_text().splitlines()) == 40
    assert (tmp_path / "runs" / "LATEST").read_text().strip() == run.name
    info = json.loads((run / "config.json").read_text())
    assert info["threads"] == 1 and info["torch"] == torch.__version__ and "numpy" in info
    assert "unfinished" not in evaluate(store, run_dir=run, probe="bg", gallery="nm")
