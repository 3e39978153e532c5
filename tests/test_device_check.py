"""benchmarks/device_check.py: the prepared check of every device path, run as its CPU dry run.

The dry run (``--device cpu --quick``) goes through every path a GPU run takes (the MMPose
backend, one epoch of each method, pseudo-labels, a run's embedder and the ranking), so that
the check cannot rot while no GPU is there. Its "device" is the CPU, so every comparison with
the CPU must come out exact. Speed is printed, never asserted.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_check.py"
PATHS = ["extract fp32", "extract bf16", "train simmc", "train himpc", "train sm-sge",
         "train ms-clr", "cluster walk-groups", "cluster dbscan", "eval rankings", "eval 2k x 2k"]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO)))


def _module():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("device_check", mod)  # dataclasses look their module up by name
    spec.loader.exec_module(sys.modules["device_check"])
    return sys.modules["device_check"]


@pytest.mark.slow
def test_cpu_dry_run_has_every_path_ok(tmp_path):
    out = tmp_path / "check.json"
    proc = _run("--device", "cpu", "--quick", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["path"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == PATHS
    assert {p: r["status"] for p, r in rows.items()} == {p: "ok" for p in PATHS}
    # the printed table says the same, one line per path
    table = {line.split(" | ")[0].strip(): line.rsplit(" | ", 1)[1].strip()
             for line in proc.stdout.splitlines() if " | " in line}
    assert {p: table[p] for p in PATHS} == {p: "ok" for p in PATHS}
    # extraction ran over the whole first sample clip (frame count read with OpenCV)
    clip = cv2.VideoCapture(str(REPO / "sample_videos" / "001-nm-01-090.avi"))
    frames = int(clip.get(cv2.CAP_PROP_FRAME_COUNT))
    clip.release()
    for precision in ("fp32", "bf16"):
        assert rows[f"extract {precision}"]["numbers"]["frames"] == frames
    # the dry run's "device" is the CPU: the CPU comparisons are exact
    assert rows["extract fp32"]["numbers"]["px_max"] == 0.0
    assert rows["extract fp32"]["numbers"]["mm_max"] == 0.0
    for m in ("simmc", "himpc", "sm-sge", "ms-clr"):
        n = rows[f"train {m}"]["numbers"]
        assert n["first_batch_loss"] == n["first_batch_loss_cpu"]
        assert np.isfinite(n["loss"]) and n["epoch_s"] > 0
    ev = rows["eval rankings"]["numbers"]
    assert ev["max_feature_diff"] == 0.0 and ev["metrics"] == ev["metrics_cpu"]
    assert rows["eval 2k x 2k"]["numbers"]["metrics"]["probes"] + \
        rows["eval 2k x 2k"]["numbers"]["metrics"]["no_match"] == 2000


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_a_one_line_error():
    proc = _run("--device", "cuda", timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: PyTorch sees no CUDA GPU")


@pytest.mark.slow
def test_a_budget_too_small_skips_every_row_and_says_so(tmp_path):
    out = tmp_path / "check.json"
    proc = _run("--device", "cpu", "--quick", "--threads", "1", "--budget", "1", "--json",
                str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["path"] for r in rows] == PATHS
    assert {r["status"] for r in rows} == {"skipped"}
    # every row but the last says what the budget lacked; the last needs the run of the one before
    assert all(r["note"].startswith("budget: needs ~") for r in rows[:-1])
    assert rows[-1]["note"] == "needs the eval rankings row's run"


def test_comparisons_can_fail():
    mod = _module()
    labels = np.array([0, 0, 1, -1])
    a = {"loss": 2.0, "labels": labels}
    assert mod.compare_first_batch(a, {"loss": 2.0, "labels": labels.copy()})[0]
    assert not mod.compare_first_batch(a, {"loss": 2.0 * (1 + 3 * mod.LOSS_RTOL),
                                           "labels": labels.copy()})[0]
    ok, text = mod.compare_first_batch(a, {"loss": 2.0, "labels": np.array([0, 1, 1, -1])})
    assert not ok and "DIFFER" in text
    row = mod.Row("x", status="FAILED")
    mod.fail(row, ValueError("first line\nsecond line"))
    assert row.status == "FAILED" and row.note == "ValueError: first line"
