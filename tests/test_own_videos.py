"""A practitioner's own clips, named as they like: extract (every clip accounted for, the
person-less one named), train with the defaults (every walk, no split needed), eval saying what
it lacks, and match with an open-set verdict. Real sample videos, the real MediaPipe model, the
real command line."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid2reid.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "sample_videos"
pytest.importorskip("mediapipe")

CLIPS = {"alice_1.avi": "001-nm-01-090.avi", "alice_2.avi": "001-bg-01-090.avi",
         "bob walking.avi": "002-nm-01-090.avi", "empty_room.avi": "001-bkgrd-090.avi"}


@pytest.mark.slow
def test_own_file_names_extract_train_eval_match(tmp_path: Path, monkeypatch):
    videos = tmp_path / "my videos"
    videos.mkdir()
    for name, sample in CLIPS.items():
        shutil.copy(SAMPLES / sample, videos / name)
    shutil.copy(SAMPLES / "002-bkgrd-090.avi", videos)  # a CASIA-B background clip: no walk
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["extract", str(videos), "--backend", "mediapipe", "--workers", "1",
                            "--threads", "1"])
    assert r.exit_code == 0, r.output
    # every clip accounted for: 3 done, the empty room named as person-less
    assert "4 videos: 3 done" in r.output and "1 without a usable person" in r.output
    assert "no-person:" in r.output and "empty_room.avi" in r.output
    assert "1 background clip(s) (*-bkgrd-*) in the folders" in r.output
    r = runner.invoke(app, ["train", "--epochs", "2", "--threads", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.output.count("training on every walk (3)") == 1
    assert "no train sequences" not in r.output and "people)" in r.output
    assert Path("runs/LATEST").is_file()
    r = runner.invoke(app, ["eval"])
    assert r.exit_code == 1 and "eval needs identities" in r.output
    r = runner.invoke(app, ["match", str(videos / "alice_2.avi"), "--gallery", "skeletons",
                            "--top", "2", "--json", "m.json"])
    assert r.exit_code == 0, r.output
    q = json.loads(Path("m.json").read_text())["queries"]
    assert len(q) == 1 and q[0]["verdict"] in ("known", "nobody in the gallery")
    assert q[0]["excluded_identical"] == 1  # alice_2 itself is in the gallery store
    # the group page shows the videos' frames with the skeleton drawn, as the match page does
    r = runner.invoke(app, ["group", "--data", "skeletons", "--report", "people",
                            "--videos", str(videos), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "evaluation against" not in r.output  # file names are not identities
    page = Path("people/index.html").read_text()
    assert page.count("data-shows='video+skeleton'") == 3 and page.count("class=d>confidence") == 3
