"""The quickstart path (extract with MediaPipe -> train -> eval Bags vs Normal) on a
reduced copy of the bundled sample videos: one view, three people, real files, real models."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid2reid.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "sample_videos"
pytest.importorskip("mediapipe")


def test_quickstart_path_on_reduced_samples(tmp_path: Path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for subject in ("001", "002", "003"):
        for walk in ("nm-01", "nm-02", "bg-01"):
            shutil.copy(SAMPLES / f"{subject}-{walk}-090.avi", videos)
        shutil.copy(SAMPLES / f"{subject}-bkgrd-090.avi", videos)
    store, run, out = tmp_path / "skeletons", tmp_path / "run", tmp_path / "eval.json"
    runner = CliRunner()
    r = runner.invoke(app, ["extract", str(videos), "--out", str(store), "--backend", "mediapipe"])
    assert r.exit_code == 0, r.output
    assert len((store / "manifest.csv").read_text().strip().splitlines()) == 1 + 9
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(run), "--preset", "casia-b",
                            "--protocol", "all", "--epochs", "2", "--seed", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "--run", str(run), "--data", str(store), "--protocol", "all",
                            "--probe", "Bags", "--gallery", "Normal", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "NON-STANDARD" in r.output
    result = json.loads(out.read_text())
    assert result["probe"] in ("bg", "Bags") and result["sequence"]["probes"] == 3
    assert result["sequence"]["gallery"] == 6
    assert 0.0 <= result["sequence"]["top1"] <= 1.0
