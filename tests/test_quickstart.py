"""The quickstart path (extract with MediaPipe -> train -> eval Bags vs Normal -> report) on a
reduced copy of the bundled sample videos under the standard protocol: training people 001-002,
new test people 075-076, real files, real models, the real CLI with its defaults."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid2reid.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "sample_videos"
pytest.importorskip("mediapipe")


@pytest.mark.slow
def test_quickstart_path_on_reduced_samples(tmp_path: Path, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    walks = {"001": ("nm-01", "bg-01"), "002": ("nm-01", "bg-01"),
             "075": ("nm-01", "nm-02", "bg-01"), "076": ("nm-01", "nm-02", "bg-01")}
    for subject, names in walks.items():
        for walk in names:
            shutil.copy(SAMPLES / f"{subject}-{walk}-090.avi", videos)
        shutil.copy(SAMPLES / f"{subject}-bkgrd-090.avi", videos)
    monkeypatch.chdir(tmp_path)  # the commands' default paths: skeletons/, runs/
    runner = CliRunner()
    r = runner.invoke(app, ["extract", "videos", "--backend", "mediapipe"])
    assert r.exit_code == 0, r.output
    assert len(Path("skeletons/manifest.csv").read_text().strip().splitlines()) == 1 + 10
    r = runner.invoke(app, ["train", "--epochs", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", "--probe", "Bags", "--gallery", "Normal", "--json", "m.json",
                            "--report", "out"])
    assert r.exit_code == 0, r.output
    assert "NON-STANDARD" not in r.output and "meaning:" in r.output
    result = json.loads(Path("m.json").read_text())
    assert result["protocol"] == "simmc" and result["standard"]
    assert result["sequence"]["probes"] == 2 and result["sequence"]["gallery"] == 4  # new people
    assert result["raw"]["sequence"]["probes"] == 2
    assert Path("out/index.html").is_file() and Path("out/training.png").is_file()
    # the quickstart's last step: new people's clips as queries against the test gallery
    r = runner.invoke(app, ["match", "videos/075-bg-01-090.avi", "videos/076-bg-01-090.avi",
                            "--gallery", "skeletons", "--gallery-split", "test",
                            "--gallery-condition", "nm", "--top", "5", "--csv", "match.csv",
                            "--report", "match"])
    assert r.exit_code == 0, r.output
    rows = Path("match.csv").read_text().strip().splitlines()[1:]
    # 2 queries x the 4 Normal walks of the test people (fewer than 5)
    assert len(rows) == 8 and {row.split(",")[0] for row in rows} == \
        {"videos/075-bg-01-090.avi", "videos/076-bg-01-090.avi"}
    assert all(row.split(",")[2].split("/")[0] in ("075", "076") for row in rows)
    assert Path("match/index.html").is_file()
