"""Importers: real files in each data set's documented format, written by the tests."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vid2reid.cli import app
from vid2reid.errors import ConfigError
from vid2reid.importers.common import NothingImportedError, SourceError, draw_roles, natural_key
from vid2reid.importers.generic import import_csv
from vid2reid.importers.kinect import (KGBD_JOINTS, import_biwi, import_ias, import_kgbd,
                                       import_ks20)
from vid2reid.layouts import LAYOUTS
from vid2reid.store import load_store, read_manifest

KGBD_NAMES = list(KGBD_JOINTS)
# KGBD line index of each kinect-v1-20 joint, written out independently of the importer.
KGBD_FOR_SDK = [11, 10, 1, 0, 3, 5, 7, 9, 2, 4, 6, 8, 13, 15, 17, 19, 12, 14, 16, 18]


# ---------------------------------------------------------------------------
# writers of the raw formats

def kgbd_walk(path: Path, frames: int, zero: dict[int, str] | None = None,
              shuffle_frames: tuple[int, ...] = ()) -> None:
    """A KGBD walk file: 'Name;x;y;z', 20 lines a frame from Head; x = KGBD index + 1, y = frame.

    ``zero`` makes joint NAME all-zero in frame t; frames in ``shuffle_frames`` list
    their joints in reverse order (names still tell which is which).
    """
    zero = zero or {}
    lines = []
    for t in range(frames):
        order = range(19, -1, -1) if t in shuffle_frames else range(20)
        for k in order:
            name = KGBD_NAMES[k]
            xyz = (0, 0, 0) if zero.get(t) == name else (k + 1, t, 2.5)
            lines.append(f"{name};{xyz[0]};{xyz[1]};{xyz[2]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # the real files use CRLF


def kgbd_set(root: Path, walks: dict[str, int], frames: int = 30) -> Path:
    for person, n in walks.items():
        for k in range(1, n + 1):
            kgbd_walk(root / person / f"{k}.txt", frames)
    return root


def skel_frame(path: Path, t: int, rows: int = 20, state: int = 2, dup: bool = False,
               extra_rows: int = 0) -> None:
    """An IAS-Lab/BIWI *skel.txt frame: 14 comma-separated columns per joint row.

    x = joint index + 1, y = frame t. ``dup`` copies hands into wrists and feet into
    ankles (IAS-Lab's NiTE remapping).
    """
    lines = []
    for j in range(rows + extra_rows):
        src = {6: 7, 10: 11, 14: 15, 18: 19}.get(j, j) if dup else j
        x = (src % 20) + 1 if j < rows else 99.0
        lines.append(",".join(str(v) for v in (1, x, t, 2.5, 100, 200, state if j == 3 else 2,
                                                0, 0, 1, 0, 0, 0, 1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def ks20_frame(path: Path, ts: int, frame_marker: float) -> None:
    """A KS20 per-frame file: 25 comma-separated rows, column 0 the joint, x = marker."""
    rows = [f"{j},{frame_marker},{j + 1},3.0" for j in range(25)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def manifest_rows(store: Path) -> list[dict[str, str]]:
    with open(store / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def roles_by_person(store: Path) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for r in manifest_rows(store):
        out.setdefault(r["subject"], Counter())[r["condition"]] += 1
    return out


# ---------------------------------------------------------------------------
# KGBD

def test_kgbd_joints_reordered_by_name_into_sdk_order(tmp_path: Path):
    src = tmp_path / "Data"
    kgbd_walk(src / "Person001" / "1.txt", 30, shuffle_frames=(12, 15))
    summary = import_kgbd(src, tmp_path / "store", trim=0, progress=False)
    assert summary.walks == 1 and summary.frames == 30
    joints = load_store(tmp_path / "store").joints[0]
    sdk = LAYOUTS["kinect-v1-20"].joints
    for i, name in enumerate(sdk):
        assert np.all(joints[:, i, 0] == KGBD_FOR_SDK[i] + 1), name
    assert joints[0, sdk.index("head"), 0] == KGBD_NAMES.index("Head") + 1
    assert joints[0, sdk.index("hip_center"), 0] == KGBD_NAMES.index("Hip-centro") + 1
    assert joints[0, sdk.index("l_foot"), 0] == KGBD_NAMES.index("Foot-Left") + 1
    assert np.array_equal(joints[:, 0, 1], np.arange(30))  # frames in file order


def test_kgbd_split_per_person_and_protocol_columns(tmp_path: Path):
    walks = {"Person001": 5, "Person002": 4, "Person015": 3, "Person020": 6, "Person021": 5}
    src = kgbd_set(tmp_path / "Data", walks)
    summary = import_kgbd(src, tmp_path / "store", seed=0, progress=False)
    roles = roles_by_person(tmp_path / "store")
    for person, n in walks.items():
        expected = {"probe": 1, "gallery": 1, "train": 1} if n == 3 else \
            {"probe": 1, "gallery": 2, "train": n - 3}
        assert dict(roles[person]) == expected, person
    recs = read_manifest(tmp_path / "store")
    assert all(r.split == ("train" if r.condition == "train" else "test") for r in recs)
    assert {r.layout for r in recs} == {"kinect-v1-20"} and {r.view for r in recs} == {""}
    assert summary.by_condition == {"probe": 5, "gallery": 9, "train": 9}
    assert summary.subjects == 5 and summary.walks == 23


def test_kgbd_same_seed_same_split_other_seed_other(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {f"Person{i:03d}": 5 for i in range(1, 7)}, frames=25)

    def split(seed: int, name: str) -> dict[str, str]:
        import_kgbd(src, tmp_path / name, seed=seed, progress=False)
        return {r["path"]: r["condition"] for r in manifest_rows(tmp_path / name)}

    a, b, c = split(0, "a"), split(0, "b"), split(1, "c")
    assert a == b and a != c


def test_kgbd_walk_files_sorted_numerically(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 11}, frames=25)
    import_kgbd(src, tmp_path / "store", progress=False)
    seqs = [r["sequence"] for r in manifest_rows(tmp_path / "store")]
    assert sorted(seqs, key=natural_key) == [str(k) for k in range(1, 12)]
    assert sorted(["10.txt", "2.txt", "1.txt"], key=natural_key) == ["1.txt", "2.txt", "10.txt"]


def test_kgbd_dropout_frames_dropped_and_counted_then_trimmed(tmp_path: Path):
    src = tmp_path / "Data"
    kgbd_walk(src / "Person001" / "1.txt", 40, zero={20: "Shoulder-Center", 25: "Hip-Left"})
    kgbd_walk(src / "Person001" / "2.txt", 40)
    summary = import_kgbd(src, tmp_path / "store", trim=10, progress=False)
    assert summary.dropped_frames == 2 and summary.dropped_by_reason == {"all-zero joint": 2}
    assert summary.trimmed_frames == 40 and summary.frames == (38 - 20) + (40 - 20)
    rows = {r["sequence"]: r for r in manifest_rows(tmp_path / "store")}
    assert rows["1"]["dropped_frames"] == "2" and rows["2"]["dropped_frames"] == "0"
    store = load_store(tmp_path / "store")
    one = store.joints[[r.sequence for r in store.records].index("1")]
    kept = [t for t in range(40) if t not in (20, 25)][10:-10]  # dropped first, then trimmed
    assert np.array_equal(one[:, 0, 1], kept)
    assert "all-zero joint 2" in "\n".join(summary.lines())


def test_kgbd_bad_files_are_one_line_and_the_batch_goes_on(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 5, "Person002": 5}, frames=25)
    lines = (src / "Person001" / "2.txt").read_text().splitlines()
    lines[45] = "Knee-Right;0.1;oops;2.5"
    (src / "Person001" / "2.txt").write_text("\n".join(lines))
    lines = (src / "Person002" / "3.txt").read_text().splitlines()
    lines[21] = lines[21].replace("Shoulder-Center", "Neck")
    (src / "Person002" / "3.txt").write_text("\n".join(lines))
    (src / "Person002" / "4.txt").write_text("Head;1;2;3\n")
    summary = import_kgbd(src, tmp_path / "store", progress=False)
    assert summary.walks == 7 and len(summary.skipped) == 3
    bad = "\n".join(summary.skipped)
    assert f"{src / 'Person001' / '2.txt'}:46: expected 'JointName;x;y;z'" in bad
    assert f"{src / 'Person002' / '3.txt'}:22: unknown joint name 'Neck'" in bad
    assert f"{src / 'Person002' / '4.txt'}: 1 joint line(s)" in bad
    assert all("\n" not in s for s in summary.skipped)
    roles = roles_by_person(tmp_path / "store")
    assert dict(roles["Person002"]) == {"probe": 1, "gallery": 1, "train": 1}  # of the 3 read


def test_kgbd_partial_last_frame_is_dropped(tmp_path: Path):
    path = tmp_path / "Data" / "Person001" / "1.txt"
    kgbd_walk(path, 25)
    with open(path, "a") as fh:
        fh.write("Head;1;2;3\r\nShoulder-Center;1;2;3\r\n")
    summary = import_kgbd(tmp_path / "Data", tmp_path / "store", trim=0, progress=False)
    assert summary.frames == 25 and summary.dropped_by_reason == {"incomplete last frame": 1}


def test_kgbd_rerun_gives_the_same_store_and_removes_stale_files(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 5, "Person002": 4}, frames=30)
    store = tmp_path / "store"
    import_kgbd(src, store, seed=3, progress=False)
    first = (store / "manifest.csv").read_text()
    arrays = {p.name: np.load(p)["joints"] for p in store.rglob("*.npz")}
    again = import_kgbd(src, store, seed=3, progress=False)
    assert (store / "manifest.csv").read_text() == first and again.removed_stale == 0
    for p in store.rglob("*.npz"):
        assert np.array_equal(np.load(p)["joints"], arrays[p.name])
    (src / "Person001" / "5.txt").unlink()
    import shutil
    shutil.rmtree(src / "Person002")
    summary = import_kgbd(src, store, seed=3, trim=5, progress=False)
    assert summary.removed_stale == 5
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*.npz")) == \
        [f"Person001/{k}.npz" for k in range(1, 5)]
    assert [r["path"] for r in manifest_rows(store)] == [f"Person001/{k}.npz" for k in range(1, 5)]
    assert not (store / "Person002").exists()
    assert {r["frames"] for r in manifest_rows(store)} == {"20"}


def test_kgbd_source_errors(tmp_path: Path):
    with pytest.raises(SourceError, match="data set folder not found"):
        import_kgbd(tmp_path / "nope", tmp_path / "store", progress=False)
    kgbd_set(tmp_path / "KGBD" / "kinect gait raw dataset", {"Person001": 3}, frames=25)
    with pytest.raises(SourceError, match="did you mean .*kinect gait raw dataset"):
        import_kgbd(tmp_path / "KGBD", tmp_path / "store", progress=False)
    with pytest.raises(ConfigError, match="--seed"):
        import_kgbd(tmp_path / "KGBD", tmp_path / "store", seed=-1, progress=False)
    (tmp_path / "Data" / "Person001").mkdir(parents=True)
    (tmp_path / "Data" / "Person001" / "1.txt").write_text("garbage\n")
    with pytest.raises(NothingImportedError, match="nothing could be imported") as err:
        import_kgbd(tmp_path / "Data", tmp_path / "store", progress=False)
    assert err.value.summary.skipped and not (tmp_path / "store" / "manifest.csv").exists()


def test_draw_roles_counts():
    for n, expected in [(1, {"train": 1}), (2, {"probe": 1, "gallery": 1}),
                        (3, {"probe": 1, "gallery": 1, "train": 1}),
                        (4, {"probe": 1, "gallery": 2, "train": 1}),
                        (6, {"probe": 1, "gallery": 2, "train": 3})]:
        assert Counter(draw_roles("Person001", n, 0, galleries=2)) == expected
    assert Counter(draw_roles("body1", 3, 0, galleries=1)) == {"probe": 1, "gallery": 1,
                                                                 "train": 1}


def test_cli_kgbd_end_to_end(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 5, "Person015": 3}, frames=30)
    (src / "Person001" / "4.txt").write_text("nonsense\n")
    runner = CliRunner()
    res = runner.invoke(app, ["import", "kgbd", str(src), "--out", str(tmp_path / "s"),
                              "--seed", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "kgbd: imported 7 walk(s) of 2 subject(s), 70 frames, layout kinect-v1-20" in out
    assert "dropped 0 frame(s); trimmed 140 frame(s)" in out
    assert f"skipped 1 file(s):\n  {src / 'Person001' / '4.txt'}:1: expected" in out
    res = runner.invoke(app, ["import", "kgbd", str(tmp_path / "empty"), "--out",
                              str(tmp_path / "s2")])
    assert res.exit_code == 1 and "error: " in res.output and "not found" in res.output
    bad = tmp_path / "bad" / "Person001"
    bad.mkdir(parents=True)
    (bad / "1.txt").write_text("x\n")
    res = runner.invoke(app, ["import", "kgbd", str(tmp_path / "bad"), "--out",
                              str(tmp_path / "s3"), "--no-progress"])
    assert res.exit_code == 1 and "nothing could be imported" in res.output


# ---------------------------------------------------------------------------
# KS20

def ks20_set(root: Path, bodies=(1, 2), gcs=("gc1", "gc2", "gc3"), views=("frontal", "left_lateral"),
             frames: int = 12) -> Path:
    for view in views:
        for body in bodies:
            for gc in gcs:
                for t in range(frames):
                    ts = 995 + t  # 995..1006: the names sort 1000 before 995
                    ks20_frame(root / view / f"{gc}_body{body}_{ts}_skel.txt", ts, ts)
    return root


def test_ks20_sequences_by_timestamp_and_split_by_gc(tmp_path: Path):
    src = ks20_set(tmp_path / "KS20")
    summary = import_ks20(src, tmp_path / "store", seed=0, progress=False)
    assert summary.walks == 2 * 3 * 2 and summary.layout == "kinect-v2-25"
    store = load_store(tmp_path / "store")
    for rec, joints in zip(store.records, store.joints):
        assert joints.shape == (12, 25, 3)
        assert np.array_equal(joints[:, 0, 0], np.arange(995, 1007))  # timestamp order
        assert np.array_equal(joints[0, :, 1], np.arange(1, 26))
        assert rec.sequence == dict(rec.extra)["gc"] and rec.view in ("frontal", "left_lateral")
    for body in ("body1", "body2"):
        recs = [r for r in store.records if r.subject == body]
        role = {r.sequence: r.condition for r in recs}
        assert sorted(role.values()) == ["gallery", "probe", "train"]
        assert all(r.condition == role[r.sequence] for r in recs)  # same role in every view
        assert all(r.split == ("train" if r.condition == "train" else "test") for r in recs)
    other = import_ks20(src, tmp_path / "store2", seed=0, progress=False)
    assert other.by_condition == summary.by_condition
    assert manifest_rows(tmp_path / "store") == manifest_rows(tmp_path / "store2")


def test_ks20_empty_and_bad_frame_files(tmp_path: Path):
    src = ks20_set(tmp_path / "KS20", bodies=(1,), views=("frontal",))
    (src / "frontal" / "gc1_body1_1000_skel.txt").write_text("")
    (src / "frontal" / "gc2_body1_997_skel.txt").write_text("0,1,2,3\n" * 10)
    (src / "frontal" / "notes.txt").write_text("hello")
    summary = import_ks20(src, tmp_path / "store", progress=False)
    assert summary.walks == 2 and summary.dropped_by_reason == {"empty frame file": 1}
    bad = "\n".join(summary.skipped)
    assert "gc2_body1_997_skel.txt: 10 joint row(s), expected at least 25" in bad
    assert "(sequence gc2_body1 skipped)" in bad and "notes.txt: name is not" in bad
    assert any("view folder(s) not found" in n for n in summary.notes)
    with pytest.raises(SourceError, match="none of KS20's view folders"):
        import_ks20(tmp_path, tmp_path / "s", progress=False)


# ---------------------------------------------------------------------------
# IAS-Lab and BIWI

def test_ias_persons_from_folder_names_duplicates_kept_and_tracking_filter(tmp_path: Path):
    src = tmp_path / "IAS"
    for split in ("Training", "TestingA", "TestingB"):
        for person in ("07", "3"):  # created out of order on purpose
            for t in range(30):
                state = 0 if (split == "TestingA" and t == 15) else 2
                skel_frame(src / split / person / f"{t:05d}_skel.txt", t, state=state, dup=True)
            (src / split / person / "00000_rgb.txt").write_text("not a skeleton")
    summary = import_ias(src, tmp_path / "store", progress=False)
    assert summary.walks == 6 and summary.dropped_by_reason == {
        "untracked joint (TrackingState 0)": 2}
    store = load_store(tmp_path / "store")
    by = {(r.condition, r.subject): (r, j) for r, j in zip(store.records, store.joints)}
    assert set(by) == {(c, s) for c in ("Training", "TestingA", "TestingB") for s in ("7", "3")}
    train = by[("Training", "3")][1]
    assert np.array_equal(train[:, 0, 1], np.arange(10, 30))  # Training: start trimmed only
    test_b = by[("TestingB", "7")][1]
    assert np.array_equal(test_b[:, 0, 1], np.arange(10, 20))  # testing: both ends
    test_a = by[("TestingA", "3")][1]
    assert 15 not in test_a[:, 0, 1] and test_a.shape[0] == 29 - 20
    assert np.array_equal(train[:, 6], train[:, 7]) and np.array_equal(train[:, 14], train[:, 15])
    assert {r.split for r in store.records if r.condition == "Training"} == {"train"}
    assert {r.split for r in store.records if r.condition != "Training"} == {"test"}


def test_ias_frame_with_wrong_row_count_skips_the_sequence(tmp_path: Path):
    src = tmp_path / "IAS"
    for person in ("1", "2"):
        for t in range(25):
            skel_frame(src / "TestingA" / person / f"{t:05d}_skel.txt", t)
    skel_frame(src / "TestingA" / "2" / "00004_skel.txt", 4, extra_rows=3)
    summary = import_ias(src, tmp_path / "store", progress=False)
    assert summary.walks == 1
    assert any("00004_skel.txt: 23 joint row(s), expected exactly 20" in s
               for s in summary.skipped)
    assert any("folder(s) not found: Training, TestingB" in n for n in summary.notes)


def test_biwi_first_skeleton_only_tracking_filter_trimming(tmp_path: Path):
    src = tmp_path / "BIWI"
    layout = {"Training": ("003", "012"), "Testing/Walking": ("003",), "Testing/Still": ("012",)}
    for folder, people in layout.items():
        for person in people:
            for t in range(40):
                skel_frame(src / folder / person / f"{t:06d}_skel.txt", t,
                           state=0 if t in (5, 30) else 2, extra_rows=20)
    (src / "Training" / "abc").mkdir()
    summary = import_biwi(src, tmp_path / "store", progress=False)
    assert summary.walks == 4
    assert summary.dropped_by_reason == {"untracked joint (TrackingState 0)": 8}
    assert any("abc: folder name is not a person number" in s for s in summary.skipped)
    store = load_store(tmp_path / "store")
    assert sorted((r.condition, r.subject, r.split) for r in store.records) == [
        ("Still", "12", "test"), ("Training", "12", "train"), ("Training", "3", "train"),
        ("Walking", "3", "test")]
    kept = [t for t in range(40) if t not in (5, 30)][10:-10]
    for joints in store.joints:
        assert np.array_equal(joints[:, 0, 1], kept)
        assert np.array_equal(joints[0, :, 0], np.arange(1, 21))  # the second skeleton ignored


# ---------------------------------------------------------------------------
# generic csv / npy

def test_csv_import_files_mapping_layout_and_dropout(tmp_path: Path):
    src = tmp_path / "mine"
    src.mkdir()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 17, 3)) + 5
    a[4, 2] = 0.0
    rows = [",".join(f"{v:.6f}" for v in frame.ravel()) for frame in a]
    rows[7] = rows[7].replace(rows[7].split(",")[0], "", 1)  # a missing value
    (src / "a.csv").write_text("header\n" + "\n".join(rows) + "\n")
    np.save(src / "b.npy", rng.normal(size=(20, 17, 3)).astype(np.float32) + 5)
    np.save(src / "c.npy", rng.normal(size=(20, 18, 3)))
    (src / "d.txt").write_text("\n".join(" ".join("1.0" for _ in range(51)) for _ in range(8)))
    (src / "mapping.csv").write_text(
        "file,subject,condition,split,sequence,camera\n"
        "a.csv,s1,walk,train,,left\nb.npy,s2,walk,test,07,right\nc.npy,s3,walk,test,,x\n"
        "d.txt,s4,run,test,,y\nmissing.csv,s5,walk,test,,z\n")
    summary = import_csv(src, tmp_path / "store", layout="h36m-17", progress=False)
    assert summary.walks == 3
    assert summary.dropped_by_reason == {"all-zero joint": 1, "NaN or infinite coordinate": 1}
    bad = "\n".join(summary.skipped)
    assert "c.npy: 18 joints, but layout h36m-17 has 17" in bad
    assert "missing.csv: file listed in mapping.csv (line 6) not found" in bad
    recs = {r.subject: r for r in read_manifest(tmp_path / "store")}
    assert recs["s1"].sequence == "a" and recs["s2"].sequence == "07"
    assert dict(recs["s1"].extra)["camera"] == "left" and recs["s1"].layout == "h36m-17"
    assert recs["s1"].frames == 28 and recs["s4"].frames == 8
    store = load_store(tmp_path / "store")
    s1 = store.joints[[r.subject for r in store.records].index("s1")]
    assert np.allclose(s1[4], a[5], atol=1e-5)  # frames 4 and 7 dropped


def test_csv_unknown_layout_needs_a_consistent_joint_count(tmp_path: Path):
    src = tmp_path / "mine"
    src.mkdir()
    np.save(src / "a.npy", np.ones((10, 5, 3)))
    np.save(src / "b.npy", np.ones((10, 6, 3)))
    np.save(src / "c.npy", np.zeros((10, 5, 3)))
    (src / "m.csv").write_text("file,subject,condition,split\na.npy,1,x,\nb.npy,2,x,\n"
                               "c.npy,3,x,\n")
    summary = import_csv(src, tmp_path / "store", layout="my-5", mapping=src / "m.csv",
                         progress=False)
    assert summary.walks == 1 and summary.layout == "my-5"
    bad = "\n".join(summary.skipped)
    assert f"b.npy: 6 joints, but {src / 'a.npy'} has 5" in bad
    assert "c.npy: too short" in bad and "--keep-zero-joints" in bad
    summary = import_csv(src, tmp_path / "store", layout="my-5", mapping=src / "m.csv",
                         drop_zero_joints=False, progress=False)
    assert summary.walks == 2 and summary.removed_stale == 0
    (src / "m.csv").write_text("file,subject,split\na.npy,1,\n")
    with pytest.raises(SourceError, match="missing column.*condition"):
        import_csv(src, tmp_path / "store", layout="my-5", mapping=src / "m.csv", progress=False)


def test_cli_csv(tmp_path: Path):
    src = tmp_path / "mine"
    src.mkdir()
    np.save(src / "a.npy", np.ones((10, 20, 3)))
    (src / "mapping.csv").write_text("file,subject,condition,split\na.npy,1,x,test\n")
    res = CliRunner().invoke(app, ["import", "csv", str(src), "--out", str(tmp_path / "s"),
                                   "--layout", "kinect-v1-20", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "csv: imported 1 walk(s) of 1 subject(s), 10 frames, layout kinect-v1-20" in res.output


@pytest.mark.parametrize("probe, gallery", [("probe", "gallery"), ("gallery", "probe")])
def test_imported_kgbd_store_evaluates_with_its_conditions(tmp_path: Path, probe, gallery):
    rng = np.random.default_rng(1)
    src = tmp_path / "Data"
    for p in range(1, 4):
        for k in range(1, 5):
            kgbd_walk(src / f"Person{p:03d}" / f"{k}.txt", 30)
            path = src / f"Person{p:03d}" / f"{k}.txt"  # per-person body size, noisy frames
            lines = [f"{n};{float(x) * p + rng.normal(0, .01)};{y};{z}" for n, x, y, z in
                     (line.split(";") for line in path.read_text().splitlines())]
            path.write_text("\n".join(lines))
    import_kgbd(src, tmp_path / "store", progress=False)
    res = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "store"), "--baseline", "raw",
                                   "--f", "5", "--probe", probe, "--gallery", gallery])
    assert res.exit_code == 0, res.output
    assert "split column" in res.output and "100.0%" in res.output
