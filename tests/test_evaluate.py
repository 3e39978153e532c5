"""evaluate(): levels, item counts, the raw baseline on a hand-built store, runs, errors."""

from pathlib import Path

import numpy as np
import pytest

from vid2reid.errors import RunError, ConfigError, ProtocolError, StoreError
from vid2reid.evaluate import evaluate
from vid2reid.report import format_table
from vid2reid.run import find_run
from vid2reid.run.embed import raw_features
from vid2reid.store import save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store

KEYS = {"top1", "top5", "top10", "mAP", "probes", "gallery"}


def _walker(x: float, frames: int) -> np.ndarray:
    """Joint 0 (the h36m root) at a moving origin, joint 1 at +x from it: raw feature is x."""
    j = np.zeros((frames, 17, 3), np.float32)
    j[:, 0, 2] = np.arange(frames)  # root moves; root-relative coordinates do not
    j[:, 1] = j[:, 0]
    j[:, 1, 0] += x
    return j


def _hand_store(root: Path, extra: list | None = None) -> Path:
    rows = [("A", "nm", "01", 1.0), ("A", "nm", "02", 1.0), ("B", "nm", "01", 2.0),
            ("B", "nm", "02", 2.0), ("A", "bg", "01", 1.4), ("B", "bg", "01", 1.45)]
    recs = [save_sequence(root, f"{s}-{c}-{q}.npz", _walker(x, 10), "h36m-17", subject=s,
                          condition=c, sequence=q, view="090", split="test")
            for s, c, q, x in rows + (extra or [])]
    write_manifest(root, recs)
    return root


def test_raw_baseline_hand_computed(tmp_path: Path):
    store = _hand_store(tmp_path / "s")
    res = evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=10)
    # Probe A-bg (1.4): A items at .4, B at .6 -> AP 1. Probe B-bg (1.45): A at .45 first,
    # B at ranks 3 and 4 -> AP (1/3 + 2/4) / 2.
    for lvl in ("window", "sequence"):
        m = res[lvl]
        assert KEYS <= set(m)
        assert (m["top1"], m["top5"]) == (0.5, 1.0)
        assert m["mAP"] == pytest.approx((1 + (1 / 3 + 2 / 4) / 2) / 2)
        assert (m["probes"], m["gallery"]) == (2, 4)
    assert (res["protocol"], res["probe"], res["gallery"]) == ("simmc", "bg", "nm")
    assert res["representation"] == "raw" and res["f"] == 10
    assert "probe bg vs gallery nm" in format_table(res)


def test_windows_and_videos_counted(tmp_path: Path):
    # Two store entries cut from one video (same subject/condition/sequence/view) are
    # separate window items but one sequence-level item.
    store = _hand_store(tmp_path / "s")
    split = save_sequence(store, "B-nm-02-part2.npz", _walker(2.0, 25), "h36m-17",
                          subject="B", condition="nm", sequence="02", view="090", split="test")
    from vid2reid.store import read_manifest
    write_manifest(store, read_manifest(store) + [split])
    res = evaluate(store, baseline="raw", probe="bg", gallery="nm", f=10)
    assert res["window"]["gallery"] == 4 + 2  # 25 frames -> 2 non-overlapping windows
    assert res["sequence"]["gallery"] == 4


def test_window_level_on_synthetic_store(tmp_path: Path):
    store = make_synthetic_store(tmp_path / "s", n_subjects=6, frames=(60, 60), seed=3)
    res = evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=20)
    # 3 test subjects; 60 frames -> 3 windows; bg: 2 walks, nm: 4 walks.
    assert (res["window"]["probes"], res["window"]["gallery"]) == (3 * 2 * 3, 3 * 4 * 3)
    assert (res["sequence"]["probes"], res["sequence"]["gallery"]) == (6, 12)
    assert any("split column" in n for n in res["setting_notes"])


def test_non_standard_protocol_says_so(tmp_path: Path):
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, frames=(40, 40), seed=3)
    res = evaluate(store, baseline="raw", probe="Normal", gallery="Normal", f=20, protocol="all")
    assert res["standard"] is False
    assert any("NON-STANDARD" in n for n in res["setting_notes"])
    assert "NON-STANDARD" in format_table(res)
    with pytest.raises(ProtocolError, match="--protocol all"):
        evaluate(store, baseline="raw", probe="Normal", gallery="Normal", f=20)


def test_errors(tmp_path: Path):
    store = _hand_store(tmp_path / "s")
    with pytest.raises(ProtocolError, match="no probe items.*'Clothes'"):
        evaluate(store, baseline="raw", probe="Clothes", gallery="Normal", f=10)
    with pytest.raises(ProtocolError, match="shorter than f=11"):
        evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=11)
    with pytest.raises(RunError, match="no latest run"):
        evaluate(store, runs_dir=tmp_path / "runs")
    with pytest.raises(ConfigError, match="unknown baseline"):
        evaluate(store, baseline="pixels")


def test_opengait_averages_over_other_views(tmp_path: Path):
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, walks={"nm": 6, "bg": 2},
                                 views=("000", "090"), frames=(40, 40), seed=5)
    res = evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=20,
                   protocol="opengait")
    assert res["window"]["gallery"] == 2 * 4 * 2 * 2  # subjects x nm-01..04 x views x windows
    assert res["window"]["probes"] == 2 * 2 * 2 * 2
    views = res["window"]["top1_per_probe_view"]
    assert set(views) == {"000", "090"}
    assert res["window"]["top1"] == pytest.approx(sum(views.values()) / 2)
    assert "top-1 per probe view: 000" in format_table(res)
    one_view = make_synthetic_store(tmp_path / "v", n_subjects=4, walks={"nm": 6, "bg": 2},
                                    frames=(40, 40), seed=5)
    with pytest.raises(ProtocolError, match="other gallery views"):
        evaluate(one_view, baseline="raw", probe="Bags", gallery="Normal", f=20,
                 protocol="opengait")


def test_raw_features_are_mean_root_relative_joints():
    x = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)
    assert raw_features(x).shape == (2, 6)
    assert np.allclose(raw_features(x)[1], x[1].mean(0).ravel())


def test_latest_run_marker(tmp_path: Path):
    (tmp_path / "r7").mkdir()
    (tmp_path / "LATEST").write_text("r7\n")
    assert find_run(None, tmp_path) == tmp_path / "r7"  # the default: runs_dir's LATEST
    assert find_run(tmp_path) == tmp_path / "r7"  # a folder of runs
    assert find_run(tmp_path / "LATEST") == tmp_path / "r7"  # the LATEST file itself
    (tmp_path / "LATEST").write_text("gone\n")
    with pytest.raises(RunError, match="does not exist"):
        find_run(None, tmp_path)


def test_mixed_joint_counts_name_the_file(tmp_path: Path):
    store = _hand_store(tmp_path / "s")
    odd = save_sequence(store, "B-nm-03.npz", np.zeros((10, 14, 3), np.float32), "casia-14",
                        subject="B", condition="nm", sequence="03", view="090", split="test")
    from vid2reid.store import read_manifest
    write_manifest(store, read_manifest(store) + [odd])
    with pytest.raises(StoreError, match="B-nm-03.npz: layout 'casia-14' but .*one joint layout"):
        evaluate(store, baseline="raw", probe="bg", gallery="nm", f=10)
