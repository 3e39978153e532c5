"""Sharded extraction end to end: several shards' outputs become one manifest.

The shards are real ``vid2reid extract --shard i/n`` processes running at the same time on
the bundled sample clips (MediaPipe finds a walker in every frame of them), so the store
gets real sequences. Two shards that finish at the same moment both rebuild the manifest;
the second test forces the worst interleaving of those two rebuilds.
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vid2reid import store as store_mod
from vid2reid.store import index_store, read_manifest, save_sequence

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
    # each shard reported its own share: 3 and 2 of the sorted clips
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
