"""``vid2reid extract`` end to end with the MediaPipe backend: real CASIA-B clips, bad inputs,
resume after an interrupted run, and sharding."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vid2reid.pose.boxes import make_box_finder
from vid2reid.pose.extract import MARKER_DIR, ExtractSettings, default_workers, run_extract
from vid2reid.pose.postprocess import mean_bone_length_cv
from vid2reid.pose.video import read_frames
from vid2reid.store import read_manifest, load_joints

pytest.importorskip("mediapipe")

REPO = Path(__file__).resolve().parents[1]
CLIPS = (REPO.parent / "shared" / "data" / "casia-b-clips").resolve()
REAL = ["001-nm-01-090.avi", "001-bg-01-090.avi", "002-nm-01-090.avi"]
# BlazePose-33 limbs, shoulders and hips
BONES = [(11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28), (11, 12), (23, 24)]


def write_video(path: Path, frames: int, size=(96, 72), moving_box=True) -> Path:
    """A small MJPG video: a dark rectangle walking across a light background."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for t in range(frames):
        img = np.full((h, w, 3), 200, np.uint8)
        if moving_box:
            x = 5 + (t * 3) % (w - 25)
            cv2.rectangle(img, (x, h // 4), (x + 15, h - 8), (40, 40, 40), -1)
        writer.write(img)
    writer.release()
    return path


def settings(out: Path, **kw) -> ExtractSettings:
    return replace(ExtractSettings(out=out, backend="mediapipe", min_frames=10), **kw)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    if not all((CLIPS / n).is_file() for n in REAL):
        pytest.skip(f"real CASIA-B clips not found in {CLIPS}")
    out = tmp_path_factory.mktemp("store")
    summary = run_extract([CLIPS / n for n in REAL], settings(out, visualize=True))
    return out, summary


def test_real_clips_have_skeletons_when_walker_in_view(real_store):
    out, summary = real_store
    assert summary.failed == 0 and summary.count("done") == len(REAL)
    records = read_manifest(out)
    for name in REAL:
        video = CLIPS / name
        marker = json.loads((out / MARKER_DIR / f"{name[:3]}/{Path(name).stem}.json").read_text())
        # frames where a background-subtraction box (independent of BlazePose) lies fully inside
        frames = read_frames(video)
        finder = make_box_finder("bgsub", video, CLIPS / "001-bkgrd-090.avi")
        w = frames[0].shape[1]
        in_view = np.array([b is not None and b[0] > 1 and b[2] < w - 1 for b in map(finder, frames)])
        assert in_view.sum() >= 20, "the clip should show the whole walker for a while"
        recs = [r for r in records if Path(r.path).stem.startswith(Path(name).stem)]
        assert recs, f"no sequence for {name}"
        covered = np.zeros(len(frames), bool)
        for r in recs:
            extra = dict(r.extra)
            start = int(extra["start_frame"])
            covered[start:start + r.frames] = True
            assert r.layout == "blazepose-33"
            joints = load_joints(out, r)
            assert joints.shape == (r.frames, 33, 3)
            # metric world landmarks: a person is well under 2.5 m across
            assert np.ptp(joints, axis=1).max() < 2.5
            assert mean_bone_length_cv(joints, BONES) < 0.25, "bone lengths should be stable"
            assert 0.0 < float(extra["mean_score"]) <= 1.0
        rate = covered[in_view].mean()
        assert rate >= 0.9, f"{name}: skeleton in only {rate:.0%} of in-view frames"
        assert marker["status"] == "done"
        assert (out / "_visualize" / name[:3] / f"{Path(name).stem}.mp4").stat().st_size > 0


def test_real_manifest_parses_casia_names(real_store):
    out, _ = real_store
    got = {(r.subject, r.condition, r.sequence, r.view) for r in read_manifest(out)}
    assert got == {("001", "nm", "01", "090"), ("001", "bg", "01", "090"), ("002", "nm", "01", "090")}
    assert {dict(r.extra)["name_format"] for r in read_manifest(out)} == {"casia-b"}


def test_bad_inputs_are_reported_and_batch_continues(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    good = write_video(vids / "001-nm-01-000.avi", 12)
    (vids / "002-nm-01-000.avi").write_bytes(b"")  # zero bytes
    (vids / "003-nm-01-000.avi").write_bytes(b"this is not a video at all\n" * 50)
    zero = vids / "004-nm-01-000.avi"
    cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 72)).release()
    full = write_video(tmp_path / "full.avi", 30).read_bytes()
    (vids / "005-nm-01-000.avi").write_bytes(full[: len(full) // 3])  # truncated
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "store"
    summary = run_extract([vids, empty], settings(out))
    by_name = {Path(o.video).name: o for o in summary.outcomes}
    assert by_name[good.name].status in ("done", "no-person")  # a box is not necessarily a person
    for bad in ("002-nm-01-000.avi", "003-nm-01-000.avi", "004-nm-01-000.avi"):
        o = by_name[bad]
        assert o.status == "failed" and bad in o.message and "\n" not in o.message
    assert "0 bytes" in by_name["002-nm-01-000.avi"].message
    assert by_name["005-nm-01-000.avi"].status in ("done", "no-person", "failed")
    assert any("empty" in p and "no videos" in p for p in summary.problems)
    assert summary.failed >= 4
    # the good video is finished and is not redone on the next run; the bad ones are retried
    again = run_extract([vids], settings(out))
    again_by = {Path(o.video).name: o.status for o in again.outcomes}
    assert again_by[good.name] == "skipped" and again_by["003-nm-01-000.avi"] == "failed"


def test_no_person_is_recorded_and_not_redone(tmp_path):
    video = write_video(tmp_path / "001-nm-01-000.avi", 8, moving_box=False)
    out = tmp_path / "store"
    first = run_extract([video], settings(out))
    assert first.outcomes[0].status == "no-person" and first.failed == 0
    assert "no person" in first.outcomes[0].message
    second = run_extract([video], settings(out))
    assert second.outcomes[0].status == "skipped"
    assert not (out / "manifest.csv").exists()


def test_sharded_runs_cover_every_video_once(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(5):
        write_video(vids / f"{i + 1:03d}-nm-01-000.avi", 6, moving_box=False)
    out = tmp_path / "store"
    seen = []
    for i in range(3):  # shard 1 runs in two worker processes
        s = run_extract([vids], settings(out, shard=(i, 3), workers=2 if i == 1 else 1))
        assert s.shard == (i, 3)
        assert s.failed == 0 and {o.status for o in s.outcomes} == {"no-person"}
        seen += [o.video for o in s.outcomes]
    assert sorted(seen) == sorted(str(p) for p in vids.glob("*.avi"))
    markers = sorted(p.name for p in (out / MARKER_DIR).rglob("*-000.json"))
    assert len(markers) == 5


def test_resume_after_interrupted_run(tmp_path):
    if not all((CLIPS / n).is_file() for n in REAL[:2]):
        pytest.skip(f"real CASIA-B clips not found in {CLIPS}")
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "vid2reid", "extract", *(str(CLIPS / n) for n in REAL[:2]),
           "--out", str(out), "--backend", "mediapipe", "--min-frames", "10"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_marker = out / MARKER_DIR / "001" / "001-bg-01-090.json"  # sorted: bg before nm
    deadline = time.time() + 90
    while not first_marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert first_marker.exists(), err.decode()[-2000:]
    if proc.returncode != 0:  # interrupted before the end, as intended
        assert proc.returncode == 130, err.decode()[-2000:]
    summary = run_extract([CLIPS / n for n in REAL[:2]], settings(out))
    status = {Path(o.video).name: o.status for o in summary.outcomes}
    assert status["001-bg-01-090.avi"] == "skipped"
    assert summary.failed == 0
    assert {r.sequence for r in read_manifest(out)} == {"01"} and len(read_manifest(out)) == 2
    assert not list(out.rglob("*.tmp"))


def test_default_workers_one_per_core_for_mediapipe_only(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_workers("mediapipe", {}) == 8  # capped
    assert default_workers("mediapipe", {"LOCAL_WORLD_SIZE": "4"}) == 4  # ranks share the cores
    assert default_workers("mmpose", {}) == 1  # torch already uses every core
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers("mediapipe", {"LOCAL_WORLD_SIZE": "2"}) == 1
