"""What the command line prints besides results: help in words (no Python type names),
``--version``, progress bars only on a terminal, FFmpeg's own decoder lines kept out, the
non-standard protocol said once, a failed ``train`` leaving no folder behind, and the
side-by-side verdict naming the metric that moved. Real commands, real files."""

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options
from vid2reid.cli import app
from vid2reid.render.samples import synthesize_ground_truth
from vid2reid.store import save_sequence, write_manifest

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = tiny_options(epochs=1)
COMMANDS = [["extract"], ["train"], ["eval"], ["convert"], ["import", "kgbd"], ["import", "csv"],
            ["render-samples"], ["import-ground-truth"], []]
COMMANDS += [[c.name] for c in app.registered_commands
             if c.name and [c.name] not in COMMANDS]  # commands added since (match, index, ...)


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes stderr into output
        return result.output


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "vid2reid")
def test_help_shows_words_not_python_types(cmd):
    out = runner.invoke(app, cmd + ["--help"], terminal_width=100).output
    assert "Usage:" in out
    for python_name in ("<list[", "list[Path]", "<path>", "<str>", "<int", "<float", "<dir>",
                        "<file>", "<bool>", "{"):
        assert python_name not in out, (cmd, python_name)


def test_help_names_arguments_in_capitals():
    out = runner.invoke(app, ["extract", "--help"], terminal_width=100).output
    usage = next(line for line in out.splitlines() if line.startswith("Usage:"))
    assert usage.endswith("extract [OPTIONS] VIDEOS...")
    assert re.search(r"^\s+VIDEOS\.\.\.\s+Video files", out, re.M)
    assert re.search(r"^\s+-o, --out PATH\s", out, re.M)
    out = runner.invoke(app, ["train", "--help"], terminal_width=100).output
    assert re.search(r"^\s+-e, --epochs N\s", out, re.M)
    assert re.search(r"^\s+--lr X\s", out, re.M)


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0
    try:
        expected = importlib.metadata.version("vid2reid")
    except importlib.metadata.PackageNotFoundError:
        expected = (REPO / "pyproject.toml").read_text().split('version = "')[1].split('"')[0]
    assert r.output.strip() == f"vid2reid {expected}"


def _store_for_convert(root: Path) -> Path:
    store = root / "s"
    synthesize_ground_truth(store, 2, 0, frames=45, conditions=(("nm", 2),))
    return store


def test_convert_and_import_write_no_progress_bar_into_a_redirected_stderr(tmp_path: Path):
    """tqdm draws '\\r' and '|###|' into whatever stderr is; under the test runner it is not a
    terminal, so nothing of a bar may appear."""
    store = _store_for_convert(tmp_path)
    r = runner.invoke(app, ["convert", str(store), "--layout", "coco-17", "--out",
                            str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "%|" not in _err(r) and "\r" not in _err(r) and "seq/s" not in _err(r)
    src = tmp_path / "mine"
    src.mkdir()
    np.save(src / "a.npy", np.ones((10, 20, 3)))
    (src / "mapping.csv").write_text("file,subject,condition,split\na.npy,1,x,test\n")
    r = runner.invoke(app, ["import", "csv", str(src), "--out", str(tmp_path / "i"),
                            "--layout", "kinect-v1-20"])
    assert r.exit_code == 0, r.output
    assert "imported 1 walk(s)" in r.output
    assert "%|" not in _err(r) and "\r" not in _err(r) and "walk/s" not in _err(r)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_convert_shows_its_progress_bar_on_a_terminal(tmp_path: Path):
    store = _store_for_convert(tmp_path)
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        p = subprocess.run([sys.executable, "-m", "vid2reid", "convert", str(store), "--layout",
                            "coco-17", "--out", str(tmp_path / "c")], stderr=slave,
                           stdout=subprocess.PIPE, env=_env(), timeout=120)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    assert p.returncode == 0
    assert "convert to coco-17" in b"".join(chunks).decode(errors="replace")


def test_a_truncated_h264_clip_gives_vid2reids_warning_and_no_ffmpeg_lines(tmp_path: Path):
    """Cut a real H.264 sample clip; decoding it prints vid2reid's one warning, not FFmpeg's
    '[h264 @ 0x...] error while decoding MB ...' (the level is read by OpenCV once per process,
    so this runs in a fresh one)."""
    clip = REPO / "sample_videos" / "001-bg-01-090.avi"
    data = clip.read_bytes()
    cut = tmp_path / "001-bg-01-090.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    code = ("import logging, sys; logging.basicConfig(stream=sys.stderr, format='%(message)s'); "
            "from vid2reid.pose.video import FrameReader; "
            f"r = FrameReader({str(cut)!r}); print(sum(1 for _ in r))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert 0 < int(p.stdout) < 64  # and nothing else on stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert lines == [f"{cut}: decoded {int(p.stdout)} of the 64 frames the header announces "
                     f"(truncated?)"]
    # without vid2reid's setting FFmpeg does print its lines here: the check above can fail
    env = _env()
    env["OPENCV_FFMPEG_LOGLEVEL"] = "16"  # AV_LOG_ERROR; vid2reid keeps a value the user set
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert "error while decoding" in p.stdout + p.stderr  # OpenCV logs it to either


def test_protocol_all_is_said_once(tmp_path: Path):
    store = tmp_path / "gt"
    synthesize_ground_truth(store, 3, 0, frames=45, conditions=(("nm", 2), ("bg", 1)))
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(run), "--protocol", "all"]
                      + TINY)
    assert r.exit_code == 0, r.output
    assert _err(r).count("NON-STANDARD") == 1
    r = runner.invoke(app, ["eval", "--data", str(store), "--run", str(run), "--protocol", "all",
                            "--probe", "bg", "--gallery", "nm", "--threads", "1"])
    assert r.exit_code == 0, r.output
    # the table's header and its note say it; no warning repeats it once per scored model
    assert "NON-STANDARD" not in _err(r)
    assert len([line for line in r.output.splitlines() if "NON-STANDARD" in line]) == 2


def test_a_failed_train_with_the_default_out_creates_no_runs_folder(tmp_path: Path):
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        r = runner.invoke(app, ["train", "--data", "no_such_store"] + TINY)
    finally:
        os.chdir(old)
    assert r.exit_code == 1
    assert "no_such_store" in _err(r) and len(_err(r).strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_train_keeps_an_existing_runs_folder(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        r = runner.invoke(app, ["train", "--data", "no_such_store"] + TINY)
    finally:
        os.chdir(old)
    assert r.exit_code == 1
    assert [p.name for p in tmp_path.iterdir()] == ["runs"] and not any((tmp_path / "runs").iterdir())


def _verdict_of(top1: float, mAP: float, raw_top1: float, raw_mAP: float, probes: int) -> str:
    try:
        from vid2reid.report import _verdict
    except ImportError:
        from vid2reid.evaluate import _verdict
    return _verdict({"window": {"top1": top1, "mAP": mAP, "probes": probes},
                     "raw": {"window": {"top1": raw_top1, "mAP": raw_mAP, "probes": probes}},
                     "run": None})


def test_verdict_names_the_metric_that_moved():
    # the case seen: top-1 equal, mAP 6.4 points lower, 12 probes
    v = _verdict_of(0.5, 0.496, 0.5, 0.560, 12)
    assert v.startswith("meaning: raw joint coordinates beat the trained model on mAP only, "
                        "level on top-1 (window top-1 +0.0, mAP -6.4 points)")
    assert "one probe moves top-1 by 8.3 points" in v
    v = _verdict_of(0.75, 0.60, 0.70, 0.60, 200)
    assert v.startswith("meaning: the trained model beats raw joint coordinates on top-1 only, "
                        "level on mAP (window top-1 +5.0, mAP +0.0 points)")
    v = _verdict_of(0.833, 0.692, 0.5, 0.56, 12)
    assert v.startswith("meaning: the trained model beats raw joint coordinates (window top-1 "
                        "+33.3, mAP +13.2 points)")
    v = _verdict_of(0.6, 0.3, 0.5, 0.4, 200)
    assert v.startswith("meaning: the trained model and raw joint coordinates split the metrics: "
                        "the trained model ahead on top-1, raw coordinates on mAP")
    assert _verdict_of(0.5, 0.4, 0.5, 0.4, 200).startswith(
        "meaning: the trained model and raw joint coordinates are level (window top-1 +0.0, "
        "mAP +0.0 points)")
