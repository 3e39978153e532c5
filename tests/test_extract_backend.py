"""``vid2reid extract`` picks its backend: MMPose when its weights can be had, otherwise the
offline MediaPipe backend with a one-line notice; a store keeps the backend it was made with;
a run that cannot start leaves no store folder behind. Real CLI, real clip, real models."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vid2reid.pose.extract import MARKER_DIR, ExtractSettings, resolve_backend
from vid2reid.store import read_manifest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_videos"
VID2REID = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "vid2reid"
UNREACHABLE = "http://127.0.0.1:9/videopose.pth"  # the discard port: refused at once, on- or offline


def _cli() -> list[str]:
    exe = VID2REID if VID2REID.is_file() else shutil.which("vid2reid")
    if not exe:
        pytest.skip("the vid2reid console script is not installed")
    return [str(exe)]


def _one_clip(tmp_path: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(SAMPLES / "001-nm-01-090.avi", videos)
    shutil.copy(SAMPLES / "001-bkgrd-090.avi", videos)
    return videos


def _unreachable_lifter(tmp_path: Path) -> Path:
    """The default lifter's config, with a download URL that cannot be reached."""
    cfg = tmp_path / "lifter-unreachable.py"
    cfg.write_text(f"_base_ = [{str(REPO / 'pose_configs' / 'videopose3d.py')!r}]\n"
                   f"load_from = {UNREACHABLE!r}\n")
    return cfg


def test_default_backend_falls_back_to_mediapipe_with_one_line_notice(tmp_path: Path):
    pytest.importorskip("mediapipe")
    pytest.importorskip("mmengine")
    videos, store = _one_clip(tmp_path), tmp_path / "skeletons"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home")}  # no cached weights
    r = subprocess.run(_cli() + ["extract", str(videos), "--out", str(store),
                                 "--lifter", str(_unreachable_lifter(tmp_path))],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    notices = [line for line in r.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1, r.stderr[-2000:]
    assert "MediaPipe" in notices[0] and "checkpoint" in notices[0]
    assert "(mediapipe)" in r.stdout
    (rec,) = read_manifest(store)
    assert rec.layout == "blazepose-33" and dict(rec.extra)["backend"] == "mediapipe"
    # MediaPipe's native start-up lines (I0000/W0000 ..., TF Lite's notice) are held back
    assert not any(line[:1] in "IW" and line[1:5].isdigit() for line in r.stderr.splitlines())
    assert "Created TensorFlow Lite" not in r.stderr
    # not a terminal: progress as whole lines, no progress bar redrawn with carriage returns
    assert "\r" not in r.stderr and "extract: 1/1 videos" in r.stderr


def test_explicit_mmpose_does_not_fall_back_and_leaves_no_store(tmp_path: Path):
    pytest.importorskip("mmengine")
    videos, store = _one_clip(tmp_path), tmp_path / "skeletons"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home")}
    r = subprocess.run(_cli() + ["extract", str(videos), "--out", str(store), "--backend", "mmpose",
                                 "--checkpoint-2d", str(tmp_path / "missing-rtmpose.pth")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing-rtmpose.pth" in errors[0]
    assert not store.exists()


def test_auto_keeps_the_backend_a_store_was_made_with(tmp_path: Path):
    store = tmp_path / "skeletons"
    (store / MARKER_DIR).mkdir(parents=True)
    (store / MARKER_DIR / "001-nm-01-090.json").write_text(json.dumps({"backend": "mediapipe"}))
    (store / MARKER_DIR / "summary-shard0-of-1.json").write_text("{}")
    assert resolve_backend(ExtractSettings(out=store)).backend == "mediapipe"
    (store / MARKER_DIR / "001-nm-01-090.json").write_text(json.dumps({"backend": "mmpose"}))
    assert resolve_backend(ExtractSettings(out=store)).backend == "mmpose"
    # explicit choices are never changed
    assert resolve_backend(ExtractSettings(out=store, backend="mediapipe")).backend == "mediapipe"


def test_auto_uses_mmpose_when_local_checkpoints_are_given(tmp_path: Path):
    pytest.importorskip("mmpose")
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    from vid2reid.pose.mmpose_backend import MMPoseSettings

    s = ExtractSettings(out=tmp_path / "s", mmpose=MMPoseSettings(checkpoint_2d=str(a),
                                                                  checkpoint_3d=str(b)))
    assert resolve_backend(s).backend == "mmpose"


def test_missing_dependency_of_mediapipe_is_named(tmp_path: Path):
    """When a module MediaPipe imports is missing, the error names it, not mediapipe."""
    pytest.importorskip("mediapipe")
    code = ("import sys; sys.modules['matplotlib'] = None\n"  # an import of it now fails, as if absent
            "from vid2reid.pose.mediapipe_backend import _import_pose\n"
            "try:\n    _import_pose()\nexcept Exception as exc:\n    print(exc)\n")
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "'matplotlib'" in r.stdout and "pip install matplotlib" in r.stdout, r.stdout + r.stderr


def test_visualize_draws_2d_and_3d_side_by_side_and_says_where(tmp_path: Path):
    pytest.importorskip("mediapipe")
    import cv2

    from vid2reid.pose.extract import VISUALIZE_DIR, run_extract

    store = tmp_path / "skeletons"
    summary = run_extract([_one_clip(tmp_path)], ExtractSettings(out=store, backend="mediapipe",
                                                                  visualize=True))
    (video,) = (store / VISUALIZE_DIR).rglob("*.mp4")
    assert any(str(store / VISUALIZE_DIR) in line for line in summary.lines())
    cap = cv2.VideoCapture(str(video))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320 + 240, 240)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 64
    panel = frames[30][:, 320:].astype(int)
    assert (np.abs(panel - 32).sum(axis=2) > 60).mean() > 0.005  # a skeleton is drawn there
    try:
        import av
    except ImportError:
        return
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
