"""vid2reid.threads: torch's threads and OpenMP's wait policy for train, extract and eval
(speed is measured in benchmarks/bench_threads.py, not here)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.errors import ConfigError
from vid2reid.threads import set_threads, usable_cores

REPO = Path(__file__).resolve().parents[1]


def test_usable_cores_is_what_this_process_may_run_on():
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))
    else:
        assert usable_cores() == os.cpu_count()


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_set_threads_sets_torch_or_keeps_its_count(restore_threads):
    assert set_threads(3) == 3 and torch.get_num_threads() == 3
    torch.set_num_threads(2)
    assert set_threads(None) == 2 and torch.get_num_threads() == 2
    with pytest.raises(ConfigError, match="at least 1"):
        set_threads(0)


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


@pytest.mark.parametrize("given, first, expected", [
    (None, "", "PASSIVE"),            # set before torch is loaded: OpenMP reads it then
    ("active", "", "active"),         # a user's own value is kept
    (None, "import torch; ", None)])  # torch already loaded: too late, left alone
def test_wait_policy_is_set_before_torch_loads(given, first, expected):
    code = (f"{first}import os; from vid2reid.threads import set_threads; set_threads(); "
            f"print(os.environ.get('OMP_WAIT_POLICY'))")
    env = _env(**({"OMP_WAIT_POLICY": given} if given else {}))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(expected)


def test_the_command_line_sets_the_policy_before_torch_loads(tmp_path: Path):
    """`vid2reid eval -v` says which policy its torch got: the command line calls
    set_threads before anything imports torch."""
    from vid2reid.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", n_subjects=4, frames=(45, 50), seed=3)
    p = subprocess.run([sys.executable, "-m", "vid2reid", "eval", "--baseline", "raw", "--data",
                        str(store), "--f", "20", "--probe", "Bags", "--gallery", "Normal", "-v"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stderr.splitlines() if x.startswith("torch threads:"))
    assert line.endswith("OpenMP wait policy PASSIVE"), line


def test_eval_applies_threads(restore_threads, tmp_path: Path):
    from vid2reid.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", n_subjects=4, frames=(45, 50), seed=3)
    torch.set_num_threads(2)
    r = CliRunner().invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--f", "20",
                                 "--probe", "Bags", "--gallery", "Normal", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == 1
    r = CliRunner().invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--f", "20",
                                 "--threads", "0"])
    assert r.exit_code == 2  # refused by the option's range before any work
