"""Atomic writes: a write or rename that fails leaves the old file intact and no temporary file.

Every file vid2reid writes (sequence files, manifests, checkpoints, model.pt, config.json,
eval's --json output) must be seen by readers as the old file or the new one, never half of
either. The failures are real OSErrors raised by the operating-system calls the writer makes
(the final ``os.replace``, or ``os.fsync`` after the data is written); nothing of vid2reid is
replaced.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.runfile import load_run_file
from vid2reid.store import (atomic_write_bytes, index_store, read_manifest, save_sequence,
                            write_manifest)
from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.train import train

SMALL = dict(f=20, x=5, eps=0.5, batch_size=64, hidden=32)


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fail_replace(monkeypatch, name: str) -> list[str]:
    """os.replace raises for targets called ``name``; returns the sources it was given."""
    real = os.replace
    seen: list[str] = []

    def replace(src, dst, *a, **kw):
        if Path(dst).name == name:
            seen.append(str(src))
            raise OSError(28, "No space left on device (test)")
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def _fail_fsync(monkeypatch) -> None:
    def fsync(fd):
        raise OSError(5, "Input/output error (test)")

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("how", ["replace", "write"])
def test_atomic_write_keeps_old_file_and_leaves_nothing(tmp_path: Path, monkeypatch, how):
    target = tmp_path / "out" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"old contents\n")
    before = _listing(tmp_path)
    if how == "replace":
        seen = _fail_replace(monkeypatch, "file.bin")
    else:
        _fail_fsync(monkeypatch)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new contents, longer than the old ones\n" * 100)
    assert _listing(tmp_path) == before
    if how == "replace":
        assert len(seen) == 1 and not Path(seen[0]).exists()  # the temporary file is gone


def test_a_reader_with_the_old_file_open_reads_all_of_it(tmp_path: Path):
    """Replacing, not overwriting: an open handle still reads the complete old contents."""
    target = tmp_path / "data.bin"
    old = bytes(range(256)) * 64
    target.write_bytes(old)
    with open(target, "rb") as fh:
        first = fh.read(100)
        atomic_write_bytes(target, b"x" * 10)
        rest = fh.read()
    assert first + rest == old
    assert target.read_bytes() == b"x" * 10


def _seq(t=30, seed=0):
    return np.random.default_rng(seed).normal(size=(t, 17, 3)).astype(np.float32)


@pytest.mark.parametrize("how", ["replace", "write"])
def test_sequence_file_and_manifests(tmp_path: Path, monkeypatch, how):
    store = tmp_path / "s"
    a = save_sequence(store, "a/x.npz", _seq(), "h36m-17", subject="001")
    write_manifest(store, [a])
    index_store(store)  # the same manifest again (and the lock file index_store keeps)
    before = _listing(store)
    with monkeypatch.context() as m:
        _fail_replace(m, "x.npz") if how == "replace" else _fail_fsync(m)
        with pytest.raises(OSError):
            save_sequence(store, "a/x.npz", _seq(40, seed=1), "h36m-17", subject="001")
    with monkeypatch.context() as m:
        _fail_replace(m, "manifest.csv") if how == "replace" else _fail_fsync(m)
        b = save_sequence(store, "b.npz", _seq(50), "h36m-17", subject="002") \
            if how == "replace" else None
        with pytest.raises(OSError):
            write_manifest(store, [a] + ([b] if b else []))
        with pytest.raises(OSError):
            index_store(store)
    after = _listing(store)
    after.pop("b.npz", None)
    assert after == before
    assert [r.path for r in read_manifest(store)] == ["a/x.npz"]
    assert np.load(store / "a/x.npz")["joints"].shape == (30, 17, 3)


@pytest.mark.usefixtures("one_thread")
def test_checkpoint_model_and_config_survive_a_failed_write(tmp_path: Path, monkeypatch):
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, walks={"nm": 2, "bg": 1},
                                 frames=(40, 50), seed=3)
    run = tmp_path / "run"
    train(make_config("casia-b", epochs=1, seed=1, **SMALL), store, run, progress=False)
    # config.json first: it is rewritten (with epochs=2) by every later, resumed call
    assert json.loads((run / "config.json").read_text())["epochs"] == 1
    for name in ("config.json", "checkpoint.pt", "model.pt"):
        before = _listing(run)
        with monkeypatch.context() as m:
            _fail_replace(m, name)
            with pytest.raises(OSError, match="No space left"):
                train(make_config("casia-b", epochs=2, seed=1, **SMALL), store, run,
                      progress=False)
        after = _listing(run)
        assert after[name] == before[name], name
        assert set(after) <= set(before) | {"checkpoint.pt", "log.jsonl", "train.log"}, name
        if name != "checkpoint.pt":  # the second epoch's checkpoint was written: undo it
            (run / "checkpoint.pt").write_bytes(before["checkpoint.pt"])
            (run / "log.jsonl").write_bytes(before["log.jsonl"])
        assert load_run_file(run / "checkpoint.pt")["epoch"] == 1
    # the run goes on from its intact checkpoint as if nothing had happened
    train(make_config("casia-b", epochs=2, seed=1, **SMALL), store, run, progress=False)
    train(make_config("casia-b", epochs=2, seed=1, **SMALL), store, tmp_path / "ref",
          progress=False)
    got = torch.load(run / "model.pt", weights_only=True)["model"]
    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_eval_json_output(tmp_path: Path, monkeypatch):
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, walks={"nm": 4, "bg": 2},
                                 frames=(40, 40), seed=3)
    out = tmp_path / "results"
    out.mkdir()
    (out / "m.json").write_text('{"old": true}\n')
    _fail_replace(monkeypatch, "m.json")
    r = CliRunner().invoke(app, ["eval", "--baseline", "raw", "--data", str(store), "--f", "20",
                                 "--json", str(out / "m.json")])
    assert r.exit_code != 0
    assert _listing(out) == {"m.json": b'{"old": true}\n'}
