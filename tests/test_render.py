"""The parametric walker renderer: determinism, identities, names, ground truth that matches the pixels."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.pose.names import parse_video_name
from vid2reid.render import walker as W
from vid2reid.render.samples import RenderError, import_ground_truth, make_samples
from vid2reid.store import load_joints, read_manifest

TINY = dict(n_subjects=1, views=("090",), frames=6, conditions=(("nm", 1), ("bg", 1)))


def _digest(folder: Path, pattern: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob(pattern))}


def _read(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_same_seed_same_bytes_other_seed_other_video(tmp_path: Path) -> None:
    make_samples(tmp_path / "a", seed=7, **TINY)
    make_samples(tmp_path / "b", seed=7, **TINY)
    make_samples(tmp_path / "c", seed=8, **TINY)
    a, b, c = (_digest(tmp_path / d, "*") for d in "abc")
    assert len(a) == 5 and a == b  # two clips, their sidecars and one background clip
    assert a["001-nm-01-090.avi"] != c["001-nm-01-090.avi"]
    assert a["001-nm-01-090.gt.npz"] != c["001-nm-01-090.gt.npz"]


def test_clips_are_320x240_25fps_and_named_like_casia_b(tmp_path: Path) -> None:
    make_samples(tmp_path, seed=1, n_subjects=2, views=("090", "054"), frames=4,
                 conditions=(("nm", 2), ("bg", 1), ("cl", 1)))
    clips = sorted(p for p in tmp_path.glob("*.avi") if "bkgrd" not in p.name)
    assert len(clips) == 2 * 2 * 4
    assert sorted(p.name for p in tmp_path.glob("*bkgrd*")) == [
        "001-bkgrd-054.avi", "001-bkgrd-090.avi", "002-bkgrd-054.avi", "002-bkgrd-090.avi"]
    seen = set()
    for clip in clips:
        name = parse_video_name(clip)
        assert name.name_format == "casia-b"
        seen.add((name.subject, name.condition, name.sequence, name.view))
        assert (clip.parent / f"{clip.stem}.gt.npz").exists()
    assert ("002", "cl", "01", "054") in seen and ("001", "nm", "02", "090") in seen
    cap = cv2.VideoCapture(str(clips[0]))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    assert len(_read(clips[0])) == 4


def test_ground_truth_lands_on_the_rendered_walker(tmp_path: Path) -> None:
    make_samples(tmp_path, seed=3, **TINY)
    frames = _read(tmp_path / "001-nm-01-090.avi")
    bg = _read(tmp_path / "001-bkgrd-090.avi")[0].astype(int)
    gt = np.load(tmp_path / "001-nm-01-090.gt.npz")
    assert str(gt["layout"]) == "h36m-17" and gt["joints"].shape == (6, 17, 3)
    cam = gt["joints"].astype(float)
    uv = cam[..., :2] / cam[..., 2:] @ gt["K"][:2, :2].T + gt["K"][:2, 2]
    changed_on, changed_off = [], []
    for t, frame in enumerate(frames):
        diff = np.abs(frame.astype(int) - bg).sum(axis=2)
        for j in (W.PELVIS, W.SPINE, W.THORAX):  # on the torso: always painted
            u, v = np.round(uv[t, j]).astype(int)
            changed_on.append(diff[v, u] > 40)
        u, v = np.round(uv[t, W.PELVIS]).astype(int)
        changed_off.append(diff[v, (u + 120) % 320] > 40)  # far from the walker
    assert np.mean(changed_on) > 0.95
    assert np.mean(changed_off) < 0.05
    # World joints come back from the camera frame; the walker stands on the floor.
    world = (cam - gt["t"]) @ gt["R"]
    assert np.all(world[:, [W.R_ANKLE, W.L_ANKLE], 1].min(axis=1) > 0.03)
    assert np.all(world[:, W.HEAD, 1] > 1.3)


def _features(joints: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """Measurements a gait-recognition method could take from the skeleton alone."""
    def bone(a: int, b: int) -> float:
        return float(np.linalg.norm(joints[:, a] - joints[:, b], axis=1).mean())

    leg = bone(W.R_HIP, W.R_KNEE) + bone(W.R_KNEE, W.R_ANKLE)
    arm = bone(W.R_SHOULDER, W.R_ELBOW) + bone(W.R_ELBOW, W.R_WRIST)
    shoulders = bone(W.L_SHOULDER, W.R_SHOULDER)
    torso = bone(W.PELVIS, W.THORAX)
    # Cadence from the feet's fore-aft separation, which oscillates once per step pair.
    sep = joints[:, W.R_ANKLE, 0] - joints[:, W.L_ANKLE, 0]
    spec = np.abs(np.fft.rfft(sep - sep.mean(), n=8192))
    stride_hz = np.fft.rfftfreq(8192, 1 / fps)[spec.argmax()]
    return np.array([leg, arm, shoulders, torso, 120 * stride_hz])


def test_identities_differ_more_than_walks_of_one_identity() -> None:
    feats = []
    for s in range(6):
        ident = W.make_identity(np.random.default_rng([11, s]))
        feats.append([_features(W.walk_frames(W.make_walk(ident, "nm", np.random.default_rng([11, s, n])),
                                              150).joints) for n in range(4)])
    feats = np.array(feats)  # (identities, walks, features)
    within = feats.std(axis=1).mean(axis=0)
    between = feats.mean(axis=1).std(axis=0)
    assert np.all(between > 3 * np.maximum(within, 1e-4)), (between, within)
    # Every walk's nearest other walk (standardised features) is a walk of the same person.
    flat = feats.reshape(-1, feats.shape[2])
    z = (flat - flat.mean(0)) / flat.std(0)
    dist = np.linalg.norm(z[:, None] - z[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    assert np.all(dist.argmin(axis=1) // 4 == np.arange(len(flat)) // 4)


def test_bag_damps_the_carrying_arm_and_coat_widens_the_silhouette(tmp_path: Path) -> None:
    base = W.make_identity(np.random.default_rng([5, 1]))
    for kind, arm in (("hand", 0), ("shoulder", 1)):  # right hand carries; left hand holds strap
        ident = replace(base, bag_kind=kind)
        swing = {}
        for cond in ("nm", "bg"):
            j = W.walk_frames(W.make_walk(ident, cond, np.random.default_rng(0)), 60).joints
            rel = j[:, [W.R_WRIST, W.L_WRIST], 0] - j[:, [W.R_SHOULDER, W.L_SHOULDER], 0]
            swing[cond] = rel.max(axis=0) - rel.min(axis=0)
        assert swing["bg"][arm] < 0.5 * swing["nm"][arm]
        assert swing["bg"][1 - arm] > 0.7 * swing["nm"][1 - arm]
    make_samples(tmp_path, seed=5, n_subjects=1, views=("090",), frames=6,
                 conditions=(("nm", 1), ("cl", 1)))
    bg = _read(tmp_path / "001-bkgrd-090.avi")[0].astype(int)

    def area(name: str) -> float:
        return float(np.mean([(np.abs(f.astype(int) - bg).sum(axis=2) > 40).sum()
                              for f in _read(tmp_path / name)]))

    assert area("001-cl-01-090.avi") > 1.1 * area("001-nm-01-090.avi")


def test_import_ground_truth_writes_a_store(tmp_path: Path) -> None:
    make_samples(tmp_path / "samples", seed=2, **TINY)
    records = import_ground_truth(tmp_path / "samples", tmp_path / "store")
    manifest = read_manifest(tmp_path / "store")
    assert {(r.subject, r.condition, r.sequence, r.view) for r in manifest} == {
        ("001", "nm", "01", "090"), ("001", "bg", "01", "090")}
    assert len(records) == 2 and all(r.layout == "h36m-17" for r in manifest)
    joints = load_joints(tmp_path / "store", manifest[0])
    assert joints.shape == (6, 17, 3) and joints.dtype == np.float32


def test_import_ground_truth_skips_a_bad_sidecar_and_fails_on_none(tmp_path: Path) -> None:
    make_samples(tmp_path, seed=2, **TINY)
    (tmp_path / "001-cl-01-090.gt.npz").write_bytes(b"not a zip file")
    good = (tmp_path / "001-nm-01-090.gt.npz").read_bytes()
    (tmp_path / "001-cl-02-090.gt.npz").write_bytes(good[: len(good) // 2])  # truncated zip
    records = import_ground_truth(tmp_path, tmp_path / "store")
    assert len(records) == 2
    with pytest.raises(Exception, match="no ground-truth sidecars"):
        import_ground_truth(tmp_path / "store", tmp_path / "store2")


def test_cli_renders_and_reports_bad_views(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["render-samples", str(tmp_path / "s"), "--subjects", "1",
                              "--test-subjects", "1", "--views", "090", "--frames", "2",
                              "--ground-truth",
                              str(tmp_path / "gt")])
    assert res.exit_code == 0, res.output
    assert len(read_manifest(tmp_path / "gt")) == 2 * 10  # nm-01..06, bg-01..02, cl-01..02
    assert {r.subject for r in read_manifest(tmp_path / "gt")} == {"001", "075"}
    res = runner.invoke(app, ["render-samples", str(tmp_path / "s2"), "--views", "090,270"])
    assert res.exit_code == 1 and "view '270'" in res.output
    with pytest.raises(RenderError):
        make_samples(tmp_path / "s3", n_subjects=0)


def test_training_and_test_identities_are_numbered_like_casia_b(tmp_path: Path) -> None:
    from vid2reid.protocols import train_test_records
    from vid2reid.render.samples import subject_numbers, synthesize_ground_truth

    assert subject_numbers(3, 2) == [1, 2, 3, 75, 76]
    with pytest.raises(RenderError, match="numbered 001..074"):
        subject_numbers(75, 1)
    records = synthesize_ground_truth(tmp_path / "gt", 2, 1, frames=4,
                                      conditions=(("nm", 1), ("bg", 1)))
    for protocol in ("simmc", "opengait"):  # new people under both standard protocols
        train, test = train_test_records(records, protocol)
        assert {records[i].subject for i in train} == {"001", "002"}
        assert {records[i].subject for i in test} == {"075"}


def test_synthesized_ground_truth_equals_the_rendered_sidecars(tmp_path: Path) -> None:
    from vid2reid.render.samples import synthesize_ground_truth

    make_samples(tmp_path / "s", seed=4, n_subjects=1, n_test_subjects=1, views=("090",), frames=5,
                 conditions=(("nm", 1), ("cl", 1)))
    records = synthesize_ground_truth(tmp_path / "gt", 1, 1, views=("090",), frames=5, seed=4,
                                      conditions=(("nm", 1), ("cl", 1)))
    assert len(records) == 4
    for rec in records:
        stem = f"{rec.subject}-{rec.condition}-{rec.sequence}-{rec.view}"
        side = np.load(tmp_path / "s" / f"{stem}.gt.npz")["joints"]
        assert np.array_equal(load_joints(tmp_path / "gt", rec), side)
