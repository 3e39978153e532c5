"""vid2reid.threads: torch's thread count for train, extract and eval (speed is measured in
benchmarks/bench_threads.py, not here)."""

import os

import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.errors import ConfigError
from vid2reid.threads import default_threads, set_threads, usable_cores


@pytest.mark.parametrize("cores, load, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.4, 1), (2, 7.0, 1),
    (16, 3.2, 13), (16, 0.0, 16), (16, 15.6, 1), (1, 0.0, 1)])
def test_default_is_the_cores_not_busy_rounded_at_least_one(cores, load, expected):
    assert default_threads(cores=cores, load=load) == expected


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


def test_set_threads_sets_torch(restore_threads):
    assert set_threads(3) == 3 and torch.get_num_threads() == 3
    chosen = set_threads(None)
    assert torch.get_num_threads() == chosen and 1 <= chosen <= usable_cores()
    with pytest.raises(ConfigError, match="at least 1"):
        set_threads(0)


def test_eval_applies_threads(restore_threads, tmp_path):
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
