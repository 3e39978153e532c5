"""Run files and pose checkpoints load without running anything from the file (issue: a shared
run or checkpoint must not run its author's code).

Booby-trapped files carry a pickle whose ``__reduce__`` calls ``os.system`` / ``exec`` to create
a MARKER file; a positive control shows the payload really runs under a full unpickle, and every
vid2reid entry point (eval, resume, load_embedder, extract) must refuse it with one line and
leave no MARKER. Runs written by vid2reid 0.1.0 (plain ``torch.save`` with numpy values) still
load and give the same model.
"""

import io
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.errors import StoreError
from vid2reid.runfile import HEADER, load_run_file, save_run_file
from vid2reid.synthetic import make_synthetic_store
from vid2reid.config import TrainConfig
from vid2reid.settings import make_config
from vid2reid.run import open_run
from vid2reid.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(f=20, x=5, eps=0.5, batch_size=64)
REPO = Path(__file__).resolve().parents[1]
# exactly what vid2reid 0.1.0 put in checkpoint.pt and model.pt
LEGACY_CHECKPOINT_KEYS = ("epoch", "model", "optim", "rng", "torch_rng", "config", "history",
                          "stable", "stopped", "prev_labels")
LEGACY_MODEL_KEYS = ("model", "config", "num_joints", "layout", "epochs_done")


class ShellPayload:
    """Unpickling this runs ``touch MARKER`` through the shell."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class ExecPayload:
    """Unpickling this runs Python code that creates MARKER (no shell, no os module named)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


PAYLOADS = (ShellPayload, ExecPayload)


def legacy_save(path: Path, obj: dict) -> None:
    """How vid2reid 0.1.0 wrote run files (train._save): a plain torch.save pickle."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())


def plant(path: Path, payload) -> None:
    """Rewrite the run file at ``path`` with its real content plus ``payload``."""
    obj = torch.load(path, weights_only=False) if path.is_file() else {}
    obj["extra"] = payload
    legacy_save(path, obj)


def one_line_error(text: str) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    assert "Traceback" not in text, text
    assert lines and lines[-1].startswith("error: "), text
    return lines[-1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("runfile") / "skeletons", n_subjects=8,
                                walks={"nm": 2, "bg": 1}, frames=(50, 60), seed=3)


@pytest.fixture(scope="module")
def run(store: Path, tmp_path_factory) -> Path:
    """A finished 2-epoch run (read-only for the tests: copy before changing it)."""
    out = tmp_path_factory.mktemp("runs") / "r"
    train(make_config("casia-b", epochs=2, seed=1, **SMALL), store, out, progress=False)
    return out


def copy_run(run: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for p in run.iterdir():
        if p.is_file():
            (dest / p.name).write_bytes(p.read_bytes())
    return dest


# --- the format ---------------------------------------------------------------------------------

def test_round_trip_loads_with_plain_weights_only(tmp_path: Path):
    rng = np.random.default_rng(7)
    rng.random(3)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    obj = {"model": m.state_dict(), "rng": rng.bit_generator.state, "n": np.int64(5),
           "prev_labels": np.array([3, -1, 0, 2]), "prev_keys": np.arange(4, dtype=np.int64) << 32,
           "nested": {"a": [np.float32(0.5), (np.zeros((2, 3), np.float32), None)]},
           "history": [{"loss": 1.5, "label_ari": None}], "stopped": False}
    path = tmp_path / "checkpoint.pt"
    save_run_file(path, obj)
    # the file itself needs nothing beyond torch's default allow-list
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["prev_labels"], torch.Tensor) and HEADER in raw
    back = load_run_file(path, required=("model",))
    assert HEADER not in back
    for key in ("prev_labels", "prev_keys"):
        assert isinstance(back[key], np.ndarray) and back[key].dtype == obj[key].dtype
        np.testing.assert_array_equal(back[key], obj[key])
    arr = back["nested"]["a"][1][0]
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 3) and arr.dtype == np.float32
    assert back["nested"]["a"][0] == 0.5 and back["n"] == 5 and type(back["n"]) is int
    assert back["rng"] == obj["rng"]  # 128-bit ints stay Python ints
    again = np.random.default_rng()
    again.bit_generator.state = back["rng"]
    assert again.random() == rng.random()
    m2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    m2.load_state_dict(back["model"])
    assert back["model"]._metadata == m.state_dict()._metadata
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_save_refuses_what_would_need_unpickling(tmp_path: Path):
    path = tmp_path / "model.pt"
    for bad in ({"x": ShellPayload(tmp_path / "MARKER")}, {"x": np.array(["a"], dtype=object)},
                {"x": Path("somewhere")}):
        with pytest.raises(TypeError):
            save_run_file(path, bad)
    assert not path.exists() and not (tmp_path / "MARKER").exists()
    with pytest.raises(TypeError):
        save_run_file(path, [1, 2])  # a run file is a dict


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_real_under_a_full_unpickle(tmp_path: Path, payload):
    """Positive control: the booby-trapped file does run its payload when fully unpickled."""
    marker = tmp_path / "MARKER"
    legacy_save(tmp_path / "model.pt", {"model": {}, "x": payload(marker)})
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_load_run_file_refuses_payload(tmp_path: Path, payload):
    marker = tmp_path / "MARKER"
    path = tmp_path / "checkpoint.pt"
    legacy_save(path, {"model": {}, "prev_labels": np.array([1, 2]), "x": payload(marker)})
    with pytest.raises(StoreError) as err:
        load_run_file(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "not a vid2reid run file, or written by an unsafe tool" in msg
    assert ("system" in msg) or ("exec" in msg)
    assert not marker.exists()


def test_refusals_are_one_line(tmp_path: Path):
    cases = {"empty.pt": b"", "text.pt": b"not a checkpoint\n", "zip.pt": b"PK\x03\x04junk"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(StoreError, match="not a vid2reid run file") as err:
            load_run_file(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(StoreError, match="holds a list"):
        load_run_file(tmp_path / "list.pt")
    save_run_file(tmp_path / "ok.pt", {"a": 1})
    with pytest.raises(StoreError, match="no 'model'"):
        load_run_file(tmp_path / "ok.pt", required=("model",))
    # legacy files may hold numpy integer arrays, nothing else numpy
    legacy_save(tmp_path / "float.pt", {"model": {}, "x": np.array([0.5])})
    with pytest.raises(StoreError, match="Float64DType|float64"):
        load_run_file(tmp_path / "float.pt")


# --- runs: eval, resume, legacy ---------------------------------------------------------------

def test_booby_trapped_run_refused_by_library(run: Path, store: Path, tmp_path: Path):
    for name in ("model.pt", "checkpoint.pt"):
        bad = copy_run(run, tmp_path / name)
        marker = tmp_path / f"MARKER-{name}"
        plant(bad / name, ShellPayload(marker))
        if name == "checkpoint.pt":
            (bad / "model.pt").unlink()  # an unfinished run: load_embedder reads the checkpoint
        with pytest.raises(StoreError, match="written by an unsafe tool"):
            open_run(bad).embedder()
        if name == "checkpoint.pt":  # resume reads only the checkpoint
            with pytest.raises(StoreError, match="written by an unsafe tool"):
                train(make_config("casia-b", epochs=3, seed=1, **SMALL), store, bad,
                      progress=False)
        assert not marker.exists()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "vid2reid", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_booby_trapped_run_refused_by_cli_eval_and_resume(run: Path, store: Path, tmp_path: Path):
    """The real commands in a fresh process: one-line error, exit 1, no MARKER."""
    bad = copy_run(run, tmp_path / "bad")
    marker = tmp_path / "MARKER"
    plant(bad / "model.pt", ExecPayload(marker))
    plant(bad / "checkpoint.pt", ShellPayload(marker))
    ev = _cli("eval", "--run", str(bad), "--data", str(store), "--protocol", "all", cwd=tmp_path)
    assert ev.returncode == 1, ev.stderr
    line = one_line_error(ev.stderr)
    assert str(bad / "model.pt") in line and "unsafe tool" in line
    tr = _cli("train", "--data", str(store), "--out", str(bad), "--epochs", "3", "--seed", "1",
              "--preset", "casia-b", "--f", "20", "--x", "5", "--eps", "0.5", "--batch-size", "64",
              "--no-progress",
              cwd=tmp_path)
    assert tr.returncode == 1, tr.stderr
    line = one_line_error(tr.stderr)
    assert str(bad / "checkpoint.pt") in line and "unsafe tool" in line
    assert not marker.exists()


def test_cli_eval_refuses_in_process(run: Path, store: Path, tmp_path: Path):
    ok = CliRunner().invoke(app, ["eval", "--run", str(run), "--data", str(store),
                                  "--protocol", "all"])
    assert ok.exit_code == 0, ok.output  # the clean run evaluates
    bad = copy_run(run, tmp_path / "bad")
    plant(bad / "model.pt", ShellPayload(tmp_path / "MARKER"))
    r = CliRunner().invoke(app, ["eval", "--run", str(bad), "--data", str(store),
                                 "--protocol", "all"])
    assert r.exit_code == 1 and "written by an unsafe tool" in r.output
    assert not (tmp_path / "MARKER").exists()


def _to_legacy(run_dir: Path) -> None:
    """Rewrite a run's files exactly as vid2reid 0.1.0 wrote them (numpy values pickled)."""
    ck = load_run_file(run_dir / "checkpoint.pt")
    assert isinstance(ck["prev_labels"], np.ndarray)
    legacy_save(run_dir / "checkpoint.pt", {k: ck[k] for k in LEGACY_CHECKPOINT_KEYS})
    if (run_dir / "model.pt").is_file():
        mo = load_run_file(run_dir / "model.pt")
        legacy_save(run_dir / "model.pt", {k: mo[k] for k in LEGACY_MODEL_KEYS})
    wanted = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
    found = torch.serialization.get_unsafe_globals_in_checkpoint(run_dir / "checkpoint.pt")
    assert wanted & set(found), found  # really the old format, with a pickled numpy array


def test_legacy_run_evaluates_identically(run: Path, tmp_path: Path):
    old = copy_run(run, tmp_path / "old")
    _to_legacy(old)
    x = np.random.default_rng(0).normal(size=(4, 20, 17, 3)).astype(np.float32)
    new_embed = open_run(run).embedder().windows
    old_embed = open_run(old).embedder().windows
    np.testing.assert_array_equal(old_embed(x), new_embed(x))
    ck = load_run_file(old / "checkpoint.pt")
    assert isinstance(ck["prev_labels"], np.ndarray) and ck["prev_labels"].dtype.kind == "i"
    assert isinstance(ck["rng"]["state"]["state"], int)


def test_train_resume_eval_and_legacy_resume_match_uninterrupted(store: Path, tmp_path: Path):
    # vid2reid 0.1.0 cut the same windows every epoch; where the setting exists, say so
    fixed = {"windows": "fixed"} if "windows" in {f.name for f in fields(TrainConfig)} else {}
    full = train(make_config("casia-b", epochs=3, seed=2, **SMALL, **fixed), store,
                 tmp_path / "full", progress=False)
    for name, legacy in (("new", False), ("old", True)):
        part = tmp_path / name
        train(make_config("casia-b", epochs=2, seed=2, **SMALL, **fixed), store, part,
              progress=False)
        if legacy:
            _to_legacy(part)
        resumed = train(make_config("casia-b", epochs=3, seed=2, **SMALL, **fixed), store, part,
                        progress=False)
        assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history], name
        a = load_run_file(tmp_path / "full" / "model.pt")["model"]
        b = load_run_file(part / "model.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
        # what resume wrote is the new format again
        assert torch.load(part / "checkpoint.pt", weights_only=True)[HEADER]["format"] == 1
        opened = open_run(part)
        embed, info = opened.embedder().windows, opened.info
        assert embed(np.zeros((2, 20, 17, 3), np.float32)).shape[0] == 2


# --- pose checkpoints (MMPose backend) ---------------------------------------------------------

def _pose_ckpt(path: Path, payload=None, legacy_format: bool = False) -> Path:
    """An OpenMMLab-style published checkpoint: state_dict + meta with numpy dataset_meta."""
    meta = {"dataset_meta": {"sigmas": np.array([0.026, 0.025], np.float32),
                             "keypoint_colors": np.array([[51, 153, 255]], np.uint8),
                             "empty": np.array([], np.float32)},
            "seed": 0, "hook_msgs": {"best_score": np.float64(0.75)}}
    if payload is not None:
        meta["dataset_meta"]["trap"] = payload
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": meta}, path,
               _use_new_zipfile_serialization=not legacy_format)
    return path


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pose_checkpoint_with_payload_refused(tmp_path: Path, payload):
    pytest.importorskip("mmengine")
    from vid2reid.errors import PoseError
    from vid2reid.pose.weights import read_checkpoint

    marker = tmp_path / "MARKER"
    for legacy in (False, True):
        path = _pose_ckpt(tmp_path / f"evil{int(legacy)}.pth", payload(marker), legacy)
        with pytest.raises(PoseError, match="written by an unsafe tool") as err:
            read_checkpoint(str(path))
        assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()
    ok = read_checkpoint(str(_pose_ckpt(tmp_path / "ok.pth", legacy_format=True)))
    assert ok["meta"]["dataset_meta"]["sigmas"].dtype == np.float32
    assert ok["meta"]["hook_msgs"]["best_score"] == 0.75


def test_pose_getattr_stand_in_serves_only_history_buffer_statistics(tmp_path: Path):
    pytest.importorskip("mmengine")
    from mmengine.logging import HistoryBuffer

    from vid2reid.errors import PoseError
    from vid2reid.pose.weights import read_checkpoint

    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, "update"))

    torch.save({"state_dict": {}, "x": Sneaky()}, tmp_path / "sneaky.pth")
    with pytest.raises(PoseError, match="not allowed"):
        read_checkpoint(str(tmp_path / "sneaky.pth"))


def test_mmengine_checkpoint_hook_files_load(tmp_path: Path):
    """Files written by mmengine's Runner + CheckpointHook (message_hub with HistoryBuffers,
    numpy dataset_meta, numpy scalars, optimizer and scheduler state), as is and published."""
    pytest.importorskip("mmengine")
    import torch.nn as nn
    from mmengine.evaluator import BaseMetric
    from mmengine.logging import HistoryBuffer
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    from vid2reid.pose.weights import read_checkpoint

    meta = {"dataset_name": "h36m", "sigmas": np.array([], np.float32),
            "keypoint_colors": np.full((17, 3), 51, np.uint8),
            "dataset_keypoint_weights": np.ones(17, np.float32),
            "stats_info": {"bbox_center": np.array([528.0, 427.0], np.float32)},
            "flip_pairs": [(1, 4), (4, 1)]}

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, x, y=None, mode="tensor"):
            out = self.lin(x).squeeze(1)
            if mode == "loss":
                return {"loss": ((out - y) ** 2).mean()}
            return list(zip(out, y)) if mode == "predict" else out

    class Data(Dataset):
        metainfo = meta

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return {"x": torch.full((2,), float(i)), "y": torch.tensor(float(i % 2))}

    class Mse(BaseMetric):
        def process(self, batch, preds):
            self.results += [float((o - t) ** 2) for o, t in preds]

        def compute_metrics(self, results):
            return {"mse": np.float64(np.mean(results))}

    loader = dict(dataset=Data(), sampler=dict(type="DefaultSampler", shuffle=False),
                  batch_size=4, collate_fn=dict(type="default_collate"))
    Runner(model=Toy(), work_dir=str(tmp_path / "work"), train_dataloader=loader,
           train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1), val_dataloader=loader,
           val_cfg=dict(), val_evaluator=dict(type=Mse),
           optim_wrapper=dict(optimizer=dict(type="Adam", lr=1e-3)),
           param_scheduler=[dict(type="MultiStepLR", milestones=[1], by_epoch=True)],
           default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1,
                                              save_best="mse", rule="less")),
           randomness=dict(seed=0), default_scope="mmengine").train()
    files = sorted((tmp_path / "work").glob("*.pth"))
    assert {p.name for p in files} == {"epoch_1.pth", "best_mse_epoch_1.pth"}
    for path in files:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe  # a real mmengine file
        ck = read_checkpoint(str(path))
        assert torch.equal(ck["state_dict"]["lin.weight"], torch.load(
            path, weights_only=False)["state_dict"]["lin.weight"])
        assert ck["meta"]["dataset_meta"]["keypoint_colors"].dtype == np.uint8
        loss = ck["message_hub"]["log_scalars"]["train/loss"]
        assert isinstance(loss, HistoryBuffer) and np.isfinite(loss.mean())
        assert isinstance(ck["message_hub"]["runtime_info"]["best_score"], float)
        # published the way OpenMMLab releases weights (publish_model.py: meta + state_dict,
        # old serialization)
        pub = tmp_path / f"pub-{path.name}"
        torch.save({k: ck[k] for k in ("meta", "state_dict")}, pub,
                   _use_new_zipfile_serialization=False)
        assert read_checkpoint(str(pub))["meta"]["seed"] == 0


def test_extract_refuses_booby_trapped_checkpoint_2d(tmp_path: Path):
    pytest.importorskip("mmpose")
    from dataclasses import replace

    from vid2reid.errors import PoseError
    from vid2reid.pose.mmpose_backend import MMPoseBackend, MMPoseSettings

    marker = tmp_path / "MARKER"
    evil = _pose_ckpt(tmp_path / "rtmpose.pth", ShellPayload(marker))
    fast = MMPoseSettings(lifter="videopose3d-27", allow_random_weights=True, batch_size=8)
    for option in ("checkpoint_2d", "checkpoint_3d"):
        with pytest.raises(PoseError, match="written by an unsafe tool"):
            MMPoseBackend(replace(fast, **{option: str(evil)}))
    import cv2

    video = tmp_path / "001-nm-01-090.avi"  # a CASIA-B name; never read: loading fails first
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    writer.release()
    r = CliRunner().invoke(app, ["extract", str(video), "--out", str(tmp_path / "store"),
                                 "--backend", "mmpose", "--lifter", "videopose3d-27",
                                 "--checkpoint-2d", str(evil), "--allow-random-weights"])
    assert r.exit_code == 1, r.output
    assert "written by an unsafe tool" in r.output and "Traceback" not in r.output
    assert not marker.exists()
