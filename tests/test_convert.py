"""Layout conversion: corresponding joints copied exactly, derived joints, missing joints,
refused pairs, and whole stores on disk through the CLI (re-runnable, atomic)."""

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.convert import conversion_plan, convert_joints, convert_store, convertible_pairs
from vid2reid.data import normalise
from vid2reid.errors import ConfigError, StoreError
from vid2reid.layouts import LAYOUTS
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()

# Written out by hand from the joints' meaning (the oracle; not the code's alias table).
KINECT1_TO_H36M = {"pelvis": "hip_center", "spine": "spine", "thorax": "shoulder_center",
                   "head": "head", **{f"{s}_{j}": f"{s}_{j}" for s in "lr"
                                      for j in ("hip", "knee", "ankle", "shoulder", "elbow",
                                                "wrist")}}


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):
        return result.output


def _random(layout: str, t: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(t, LAYOUTS[layout].num_joints, 3)
                                              ).astype(np.float32)


def test_kinect_to_h36m_by_hand():
    src = _random("kinect-v1-20")
    out = convert_joints(src, conversion_plan("kinect-v1-20", "h36m-17"))
    k, h = LAYOUTS["kinect-v1-20"].joints, LAYOUTS["h36m-17"].joints
    for dst_name, src_name in KINECT1_TO_H36M.items():
        assert np.array_equal(out[:, h.index(dst_name)], src[:, k.index(src_name)]), dst_name
    # neck: mid-point of thorax (shoulder_center) and head, the one derived joint
    neck = 0.5 * (src[:, k.index("shoulder_center")] + src[:, k.index("head")])
    np.testing.assert_allclose(out[:, h.index("neck")], neck, atol=1e-6)
    assert conversion_plan("kinect-v1-20", "h36m-17").derived == ("neck",)


@pytest.mark.parametrize("pair", convertible_pairs())
def test_joints_of_the_same_name_are_copied_bit_for_bit(pair):
    src_l, dst_l = pair
    src = _random(src_l, seed=hash(pair) % 1000)
    out = convert_joints(src, conversion_plan(src_l, dst_l))
    s, d = LAYOUTS[src_l].joints, LAYOUTS[dst_l].joints
    shared = set(s) & set(d) - {"neck"}  # casia-14's "neck" is between the shoulders
    assert len(shared) >= 12
    for name in shared:
        assert np.array_equal(out[:, d.index(name)], src[:, s.index(name)]), name


@pytest.mark.parametrize("a,b", [("kinect-v1-20", "kinect-v2-25"), ("coco-17", "blazepose-33"),
                                 ("h36m-17", "kinect-v2-25"), ("blazepose-33", "coco-17")])
def test_round_trip_is_exact_where_nothing_is_lost(a, b):
    src = _random(a, seed=3)
    there = convert_joints(src, conversion_plan(a, b))
    back = convert_joints(there, conversion_plan(b, a))
    if LAYOUTS[a].num_joints <= LAYOUTS[b].num_joints:
        assert np.array_equal(back, src)
    else:  # blazepose -> coco -> blazepose: the 17 COCO joints come back exactly
        names = LAYOUTS[b].joints
        idx = [LAYOUTS[a].joints.index(n) for n in names]
        assert np.array_equal(back[:, idx], src[:, idx])


def test_derived_and_missing_joints():
    src = _random("coco-17")
    c = LAYOUTS["coco-17"].joints
    plan = conversion_plan("coco-17", "h36m-17")
    out = convert_joints(src, plan)
    h = LAYOUTS["h36m-17"].joints
    hips = 0.5 * (src[:, c.index("l_hip")] + src[:, c.index("r_hip")])
    shoulders = 0.5 * (src[:, c.index("l_shoulder")] + src[:, c.index("r_shoulder")])
    np.testing.assert_allclose(out[:, h.index("pelvis")], hips, atol=1e-6)
    np.testing.assert_allclose(out[:, h.index("thorax")], shoulders, atol=1e-6)
    np.testing.assert_allclose(out[:, h.index("spine")], 0.5 * (hips + shoulders), atol=1e-6)
    assert set(plan.derived) == {"pelvis", "spine", "thorax", "neck", "head"}
    # Kinect has no face: COCO's face joints are missing and read as 0 after normalisation
    k2c = conversion_plan("kinect-v1-20", "coco-17")
    assert k2c.missing == ("nose", "l_eye", "r_eye", "l_ear", "r_ear")
    conv = normalise(convert_joints(_random("kinect-v1-20"), k2c), "coco-17")
    assert not conv[:, :5].any() and (np.abs(conv[:, 5:]).sum(axis=-1) > 0).sum() == 7 * 11


@pytest.mark.parametrize("a,b,why", [
    ("kinect-v1-20", "blazepose-33", "only 12 of blazepose-33's 33"),
    ("h36m-17", "casia-14", "root joint 'nose'"),
    ("coco-17", "coco-17", "already in layout"),
    ("coco-17", "openpose-25", "not a built-in layout"),
])
def test_refused_pairs_say_why(a, b, why):
    with pytest.raises(ConfigError, match=why):
        conversion_plan(a, b)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("conv") / "h36m", n_subjects=4,
                                walks={"nm": 2}, frames=(20, 30), seed=5)


def test_store_through_the_cli(store: Path, tmp_path: Path):
    out = tmp_path / "coco"
    r = runner.invoke(app, ["convert", str(store), "--layout", "coco-17", "--out", str(out),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "12 of 17 joints copied" in r.output and "8 written" in r.output
    with open(store / "manifest.csv") as fh:
        src_rows = list(csv.DictReader(fh))
    with open(out / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [r["path"] for r in src_rows]
    for a, b in zip(src_rows, rows):
        assert (a["subject"], a["condition"], a["sequence"], a["split"], a["frames"]) == \
            (b["subject"], b["condition"], b["sequence"], b["split"], b["frames"])
        assert (b["layout"], b["converted_from"]) == ("coco-17", "h36m-17")
        assert b["missing"] == "nose,l_eye,r_eye,l_ear,r_ear"
        src = np.load(store / a["path"])["joints"]
        dst = np.load(out / b["path"])["joints"]
        # COCO's l_shoulder (5) is H36M's l_shoulder (11), bit for bit
        assert np.array_equal(dst[:, 5], src[:, 11]) and np.array_equal(dst[:, 16], src[:, 3])
    # re-running skips what is done and leaves the files as they were
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    r2 = runner.invoke(app, ["convert", str(store), "--layout", "coco-17", "--out", str(out),
                             "--no-progress"])
    assert r2.exit_code == 0 and "0 written, 8 already converted" in r2.output
    assert stamp == {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert not list(out.rglob("*.tmp"))


def test_store_errors_are_one_line(store: Path, tmp_path: Path):
    r = runner.invoke(app, ["convert", str(store), "--layout", "casia-14", "--out",
                            str(tmp_path / "c")])
    assert r.exit_code == 1 and _err(r).strip().count("\n") == 0
    assert "root joint 'nose'" in _err(r)
    r = runner.invoke(app, ["convert", str(store), "--layout", "coco-17", "--out", str(store)])
    assert r.exit_code == 1 and "another folder" in _err(r)
    broken = tmp_path / "broken"
    make_synthetic_store(broken, n_subjects=2, walks={"nm": 1}, frames=(10, 12), seed=1)
    victim = sorted(broken.rglob("*.npz"))[0]
    victim.unlink()
    with pytest.raises(StoreError, match=str(victim.name)):
        convert_store(broken, "coco-17", tmp_path / "b2", progress=False)
