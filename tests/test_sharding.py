"""Extraction by many processes end to end: their outputs become one manifest.

The first test runs real ``vid2reid extract --shard i/n`` processes at the same time on the
bundled sample clips with MediaPipe. The array tests run five (or three) real ``vid2reid
extract`` processes with the environment of a Slurm array (stepped, list) through
``tests/standin_extract.py``: the real command with a fast stand-in pose model, so that they
take seconds. One process is killed mid-way and restarted. Each time the store must list
every clip exactly once.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vid2reid import store as store_mod
from vid2reid.pose.claims import Claims
from vid2reid.store import (append_fragment, assemble_manifest, index_store, read_manifest,
                            save_sequence)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_videos"
CLIPS = ["001-bg-01-090.avi", "001-nm-01-090.avi", "002-nm-01-090.avi", "075-cl-01-090.avi",
         "076-nm-02-090.avi"]


@pytest.mark.slow
def test_shards_running_together_give_one_manifest(tmp_path: Path):
    pytest.importorskip("mediapipe")
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in CLIPS:  # a folder input, as a cluster job would get
        (videos / name).symlink_to(SAMPLES / name)
    out = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", "vid2reid", "extract", str(videos),
                               "--out", str(out), "--backend", "mediapipe", "--workers", "1",
                               "--min-frames", "10", "--shard", f"{i}/2"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    records = read_manifest(out)
    # every clip exactly once, with the name's labels and all 64 frames
    expected = sorted(tuple(n[:-4].split("-")) for n in CLIPS)
    assert sorted((r.subject, r.condition, r.sequence, r.view) for r in records) == expected
    for r in records:
        joints = np.load(out / r.path)["joints"]
        assert joints.shape == (r.frames, 33, 3) and r.frames == 64
        assert np.isfinite(joints).all()
    # each shard wrote its own summary
    summaries = sorted((out / ".extract").glob("summary-shard*-of-2.json"))
    assert [p.name for p in summaries] == ["summary-shard0-of-2.json", "summary-shard1-of-2.json"]
    # a plain re-run finds everything finished and rebuilds the same manifest
    again = subprocess.run([sys.executable, "-m", "vid2reid", "extract", str(videos), "--out",
                            str(out), "--backend", "mediapipe", "--workers", "1"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 done, 5 skipped" in again.stdout + again.stderr
    assert read_manifest(out) == records


def test_shards_finishing_together_keep_every_sequence(tmp_path: Path, monkeypatch):
    """Shard 0 has scanned the store and is about to write its manifest when shard 1 writes
    its last sequence and rebuilds the manifest too. Whatever the order of the two writes, the
    manifest in the end lists both shards' sequences. (The pause only delays the real
    manifest writer; nothing is replaced.)"""
    store = tmp_path / "store"
    joints = np.random.default_rng(0).normal(size=(30, 17, 3)).astype(np.float32)
    save_sequence(store, "001/001-nm-01-090.npz", joints, "h36m-17", subject="001",
                  condition="nm", sequence="01", view="090")
    real_write = store_mod.write_manifest
    paused, release = threading.Event(), threading.Event()

    def slow_write(store_dir, records):
        if threading.current_thread().name == "shard0":
            paused.set()
            assert release.wait(30)
        return real_write(store_dir, records)

    monkeypatch.setattr(store_mod, "write_manifest", slow_write)
    errors = []

    def run(name: str) -> None:
        try:
            if name == "shard1":
                save_sequence(store, "002/002-nm-01-090.npz", joints + 1, "h36m-17",
                              subject="002", condition="nm", sequence="01", view="090")
            index_store(store)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    shard0 = threading.Thread(target=run, args=("shard0",), name="shard0")
    shard0.start()
    assert paused.wait(30)
    shard1 = threading.Thread(target=run, args=("shard1",), name="shard1")
    shard1.start()
    shard1.join(2.0)  # shard 1 may finish now (or wait for shard 0)
    release.set()
    shard0.join(30)
    shard1.join(30)
    assert not errors, errors
    assert [r.path for r in read_manifest(store)] == ["001/001-nm-01-090.npz",
                                                     "002/002-nm-01-090.npz"]


STANDIN = REPO / "tests" / "standin_extract.py"
TEN = ["001-bg-01-090", "001-nm-01-090", "001-cl-01-090", "002-nm-01-090", "002-bg-01-090",
       "075-cl-01-090", "075-nm-01-090", "076-nm-02-090", "076-bg-01-090", "076-cl-01-090"]


def _videos(tmp_path: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    for stem in TEN:
        assert (SAMPLES / f"{stem}.avi").is_file(), stem
        (videos / f"{stem}.avi").symlink_to(SAMPLES / f"{stem}.avi")
    return videos


def _start(videos: Path, out: Path, env: dict, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE"))
           } | {"PYTHONPATH": str(REPO)} | env
    return subprocess.Popen([sys.executable, str(STANDIN), "extract", str(videos), "--out", str(out),
                             "--backend", "mediapipe", "--workers", "1", "--min-frames", "10",
                             "--threads", "1", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _array_env(task: int, ids: list[int]) -> dict:
    return {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(min(ids)), "SLURM_ARRAY_TASK_MAX": str(max(ids)),
            "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
            **({"SLURM_ARRAY_TASK_STEP": str(ids[1] - ids[0])} if len(set(
                b - a for a, b in zip(ids, ids[1:]))) == 1 else {})}


def _check_store(out: Path) -> None:
    """Every clip listed exactly once, with the joints the stand-in makes of it, nothing left
    claimed, and every process's summary together reporting each clip done once."""
    records = read_manifest(out)
    assert sorted(Path(r.path).name[:-4] for r in records) == sorted(TEN)
    for r in records:
        assert np.load(out / r.path)["joints"].shape == (64, 33, 3)
    assert not list((out / ".extract" / "claims").rglob("*.claim*"))
    assert not list(out.rglob("*.tmp"))
    # the manifest assembled from fragments is the one a full re-read of the files gives
    assembled = (out / "manifest.csv").read_text()
    index_store(out)
    assert (out / "manifest.csv").read_text() == assembled


def _run_array(tmp_path: Path, ids: list[int]) -> Path:
    videos, out = _videos(tmp_path), tmp_path / "store"
    procs = [_start(videos, out, _array_env(i, ids)) for i in ids]
    done = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        done.append(stdout)
    _check_store(out)
    summaries = sorted(p.name for p in (out / ".extract").glob("summary-*.json"))
    assert summaries == sorted(f"summary-slurm-77-task{i}.json" for i in ids)
    counts = [json.loads((out / ".extract" / n).read_text()) for n in summaries]
    finished = [o["video"] for c in counts for o in c["outcomes"] if o["status"] == "done"]
    assert sorted(Path(v).name[:-4] for v in finished) == sorted(TEN)  # each done by one process
    return out


def test_stepped_array_extracts_every_clip_once(tmp_path: Path):
    """--array=0-8:2: task ids 0,2,4,6,8, count 5 (shard arithmetic gave indices 6 and 8 of 5)."""
    _run_array(tmp_path, [0, 2, 4, 6, 8])


def test_list_array_extracts_every_clip_once(tmp_path: Path):
    """--array=1,4,7: ids with gaps and no step."""
    _run_array(tmp_path, [1, 4, 7])


def test_killed_process_is_taken_over_on_restart(tmp_path: Path):
    """Two tasks; one is killed (SIGKILL: no clean-up) while it holds a claim, the other
    finishes its share; the killed task, started again, takes the dead claim over at once
    (its process is gone on this machine) and the store ends with every clip once."""
    videos, out = _videos(tmp_path), tmp_path / "store"
    slow = {"STANDIN_DELAY_S": "0.6"}
    victim = _start(videos, out, _array_env(0, [0, 1]) | slow)
    deadline = time.time() + 60
    while not list((out / ".extract" / "parts").glob("*.jsonl")):  # one video done
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.05)
    while not list((out / ".extract" / "claims").rglob("*.claim")):  # holds the next one
        assert time.time() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    held = list((out / ".extract" / "claims").rglob("*.claim"))
    assert held, "the killed process left its claim behind"
    other = _start(videos, out, _array_env(1, [0, 1]))
    _, err = other.communicate(timeout=120)
    assert other.returncode == 0, err[-2000:]
    again = _start(videos, out, _array_env(0, [0, 1]))
    stdout, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    _check_store(out)


def test_claims_are_taken_over_only_when_stale(tmp_path: Path):
    folder = tmp_path / "claims"
    a = Claims(folder, "a", timeout_s=60)
    b = Claims(folder, "b", timeout_s=60)
    with a, b:
        assert a.try_claim("001/001-nm-01-090")
        assert not b.try_claim("001/001-nm-01-090")  # live holder (this very process)
        # a holder on another machine that stopped refreshing: taken over after the timeout
        path = b.path("002-nm-01-090")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"owner": "x", "host": "elsewhere", "pid": 1, "token": "t"}))
        os.utime(path, (time.time() - 30, time.time() - 30))
        assert not b.try_claim("002-nm-01-090")
        os.utime(path, (time.time() - 90, time.time() - 90))
        assert b.try_claim("002-nm-01-090") and b.taken_over == ["002-nm-01-090"]
        # --resume: a claim not refreshed for two refresh periods is taken over at once
        path = b.path("003-nm-01-090")
        path.write_text(json.dumps({"owner": "x", "host": "elsewhere", "pid": 1, "token": "u"}))
        os.utime(path, (time.time() - 13, time.time() - 13))
        assert not b.try_claim("003-nm-01-090")
        assert Claims(folder, "c", timeout_s=60, resume=True).try_claim("003-nm-01-090")
        # a dead process of this machine: at once
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        path = b.path("004-nm-01-090")
        path.write_text(json.dumps({"owner": "x", "host": socket.gethostname(), "pid": int(dead),
                                    "token": "v"}))
        assert b.try_claim("004-nm-01-090")
        # a failed video stays claimed (marked) for this run's other processes
        a.release("001/001-nm-01-090", failed=True)
        assert a.holder("001/001-nm-01-090")["status"] == "failed"
        assert not b.try_claim("001/001-nm-01-090")
        b.release("002-nm-01-090")
        assert not b.path("002-nm-01-090").exists()


def test_manifest_is_assembled_without_reading_listed_files(tmp_path: Path):
    """Files a fragment lists are not opened (a listed file overwritten with garbage does not
    stop the assembly, which a full rebuild would); a file no fragment lists is read; a half
    line left by a killed process is skipped."""
    store = tmp_path / "store"
    joints = np.random.default_rng(0).normal(size=(30, 17, 3)).astype(np.float32)
    listed = save_sequence(store, "001/001-nm-01-090.npz", joints, "h36m-17", subject="001",
                           condition="nm", sequence="01", view="090")
    save_sequence(store, "002/002-nm-01-090.npz", joints + 1, "h36m-17", subject="002",
                  condition="nm", sequence="01", view="090")  # in no fragment
    parts = tmp_path / "parts"
    append_fragment(parts / "a.jsonl", [listed])
    with open(parts / "a.jsonl", "a") as fh:
        fh.write('{"subject": "003", "path": "003/003-nm')  # killed mid-line
    (store / listed.path).write_bytes(b"garbage")
    records = assemble_manifest(store, parts)
    assert [r.path for r in records] == ["001/001-nm-01-090.npz", "002/002-nm-01-090.npz"]
    assert records[0] == listed and dict(records[0].extra) == dict(listed.extra)
    with pytest.raises(Exception):
        index_store(store)
