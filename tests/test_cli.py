"""The CLI end to end through typer's test runner on a tiny synthetic store."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("cli") / "skeletons", n_subjects=6,
                                frames=(60, 80), seed=11)


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes stderr into output
        return result.output


def test_eval_baseline_raw_json(store: Path, tmp_path: Path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--probe", "Bags",
                            "--gallery", "Normal", "--f", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    # the file holds what the library computes for the same settings
    from vid2reid.evaluate import evaluate

    lib = evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=20)
    for lvl in ("window", "sequence"):
        assert res[lvl] == pytest.approx(lib[lvl])
    assert (res["protocol"], res["probe"], res["gallery"]) == ("simmc", "bg", "nm")
    assert "top-1" in r.output and str(res["window"]["probes"]) in r.output
    assert not list(tmp_path.glob("*.tmp"))


def test_eval_preset_gives_f(store: Path):
    r = runner.invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--probe", "cl",
                            "--gallery", "nm", "--preset", "kgbd"])
    assert r.exit_code == 0, r.output
    assert "f=6" in r.output


def test_missing_store_is_one_line_error(tmp_path: Path):
    r = runner.invoke(app, ["eval", "--baseline", "raw", "--data", str(tmp_path / "nope")])
    assert r.exit_code == 1
    msg = _err(r).strip()
    assert msg.startswith("error:") and "nope" in msg and len(msg.splitlines()) == 1
    assert "Traceback" not in r.output


def test_no_probe_items_is_one_line_error(store: Path, tmp_path: Path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--probe", "AR",
                            "--gallery", "Normal", "--json", str(out)])
    assert r.exit_code == 1
    msg = _err(r).strip()
    assert "no probe items" in msg and "nm-01,02,03,04" in msg and len(msg.splitlines()) == 1
    assert not out.exists()


def test_no_run_is_one_line_error(store: Path, tmp_path: Path):
    r = runner.invoke(app, ["eval", "--data", str(store), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 1 and "no latest run" in _err(r)


@pytest.mark.skipif(not any(c.name == "train" for c in app.registered_commands),
                    reason="the train command is not there yet")
@pytest.mark.slow
def test_train_then_eval_latest_run(store: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(runs / "tiny"),
                            "--epochs", "1", "--f", "20", "--x", "5", "--batch-size", "16",
                            "--hidden", "32", "--device", "cpu", "--no-progress"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--data", str(store), "--runs-dir", str(runs), "--probe",
                            "Bags", "--gallery", "Normal", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["representation"] == "run" and res["run"] == str(runs / "tiny")
    assert res["f"] == 20 and res["window"]["probes"] > 0
    r = runner.invoke(app, ["eval", "--data", str(store), "--run", str(runs / "tiny"),
                            "--f", "30"])
    assert r.exit_code == 1 and "trained with f=20" in _err(r)
