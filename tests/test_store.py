"""The skeleton store: round trip, atomic writes, and the errors users see."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vid2reid.data import make_windows, normalise
from vid2reid.errors import StoreError
from vid2reid.store import (Record, canonical_condition, common_frames, index_store, load_store,
                            read_manifest, save_sequence, start_frame, write_manifest)


def _seq(t=50, j=17, seed=0):
    return np.random.default_rng(seed).normal(size=(t, j, 3)).astype(np.float32)


def test_round_trip_any_joint_count(tmp_path: Path):
    for j in (14, 17, 18, 20, 25, 33):
        store = tmp_path / f"s{j}"
        joints = _seq(j=j, seed=j) * 1e3  # values, not only shapes, must come back exactly
        rec = save_sequence(store, "a/001-nm-01-090.npz", joints, f"layout{j}",
                            subject="001", condition="nm", sequence="01", view="090",
                            split="test", quality=0.25)
        write_manifest(store, [rec])
        loaded = load_store(store)
        np.testing.assert_array_equal(loaded.joints[0], joints)
        assert loaded.joints[0].dtype == np.float32
        (back,) = loaded.records
        assert (back.subject, back.condition, back.sequence, back.view, back.path, back.frames,
                back.layout, back.split) == ("001", "nm", "01", "090", "a/001-nm-01-090.npz", 50,
                                             f"layout{j}", "test")
        # the content hash as docs/store-format.md defines it: SHA-256 of "(T, J, 3)" and the
        # float32 little-endian bytes
        digest = hashlib.sha256(f"{joints.shape}".encode() + joints.astype("<f4").tobytes())
        assert dict(back.extra) == {"quality": "0.25", "content_hash": digest.hexdigest()}
        # and as stored: a plain numpy file with the joints and labels inside
        with np.load(store / "a/001-nm-01-090.npz") as data:
            np.testing.assert_array_equal(data["joints"], joints)
            assert str(data["subject"]) == "001" and str(data["layout"]) == f"layout{j}"


def test_conditions_aliases():
    assert [canonical_condition(c) for c in ("Normal", "bags", "CLOTHES", "nm", "AR")] == \
        ["nm", "bg", "cl", "nm", "AR"]


def test_index_store_rebuilds_manifest_and_keeps_split(tmp_path: Path):
    a = save_sequence(tmp_path, "x/1.npz", _seq(), "h36m-17", subject="001", condition="bg",
                      sequence="02", view="018", quality=0.9)
    b = save_sequence(tmp_path, "x/2.npz", _seq(60), "h36m-17", subject="002", condition="AR",
                      sequence="1", view="0")
    write_manifest(tmp_path, [a, Record(**{**b.__dict__, "split": "test"})])
    recs = index_store(tmp_path)
    assert [r.path for r in recs] == ["x/1.npz", "x/2.npz"]
    assert recs[1].split == "test" and recs[1].frames == 60
    assert dict(recs[0].extra)["quality"] == "0.9"
    back = read_manifest(tmp_path)
    assert back[0].video_key == ("001", "bg", "02", "018")
    assert dict(back[0].extra)["quality"] == "0.9"


@pytest.mark.parametrize("problem, message", [
    ("missing_store", "skeleton store not found"),
    ("no_manifest", "no manifest"),
    ("empty", "no sequences"),
    ("missing_file", "missing"),
    ("bad_shape", "must have shape"),
    ("nan", "NaN"),
    ("bad_column", "missing column"),
])
def test_bad_stores_name_the_file(tmp_path: Path, problem: str, message: str):
    store = tmp_path / "store"
    store.mkdir()
    rec = save_sequence(store, "a.npz", _seq(), "h36m-17", subject="1", condition="nm",
                        sequence="1", view="0")
    write_manifest(store, [rec])
    if problem == "missing_store":
        store = tmp_path / "nope"
    elif problem == "no_manifest":
        (store / "manifest.csv").unlink()
    elif problem == "empty":
        write_manifest(store, [])
    elif problem == "missing_file":
        (store / "a.npz").unlink()
    elif problem == "bad_shape":
        np.savez(store / "a.npz", joints=np.zeros((10, 17), np.float32))
    elif problem == "nan":
        bad = _seq()
        bad[3, 2, 1] = np.nan
        np.savez(store / "a.npz", joints=bad)
    elif problem == "bad_column":
        (store / "manifest.csv").write_text("subject,path\n1,a.npz\n")
    with pytest.raises(StoreError, match=message) as err:
        load_store(store)
    assert str(store) in str(err.value)


def test_save_rejects_nan_and_leaves_no_partial_file(tmp_path: Path):
    bad = _seq()
    bad[0, 0, 0] = np.inf
    with pytest.raises(StoreError):
        save_sequence(tmp_path, "a.npz", bad, "h36m-17")
    assert list(tmp_path.iterdir()) == []


def test_short_sequences_are_skipped_and_counted(tmp_path: Path):
    recs = [save_sequence(tmp_path, f"{t}.npz", _seq(t), "h36m-17", subject="1") for t in (10, 50)]
    write_manifest(tmp_path, recs)
    loaded = load_store(tmp_path, min_frames=40)
    assert loaded.skipped_short == 1 and len(loaded.records) == 1
    with pytest.raises(StoreError, match="shorter than 60"):
        load_store(tmp_path, min_frames=60)


def test_windows_are_root_relative_and_cover_the_sequence():
    j = _seq(t=100)
    rec = Record("1", "nm", "01", "090", "a.npz", 100, layout="h36m-17")
    ws = make_windows([rec], [j], f=40, stride=20)
    assert ws.x.shape == (4, 40, 17, 3)
    assert np.allclose(ws.x[:, :, 0], 0)
    assert np.allclose(ws.x[1, 0], normalise(j, "h36m-17")[20])
    assert make_windows([rec], [j[:30]], f=40).x.shape[0] == 0


def _manifest_without_layout(store: Path) -> None:
    lines = (store / "manifest.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("layout")
    rows = [",".join(v for k, v in enumerate(line.split(",")) if k != col) for line in lines]
    (store / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_layout_comes_from_the_files_when_the_manifest_has_none(tmp_path: Path):
    recs = [save_sequence(tmp_path, f"{i}.npz", _seq(j=20, seed=i), "kinect-v1-20", subject=str(i))
            for i in range(3)]
    write_manifest(tmp_path, recs)
    _manifest_without_layout(tmp_path)
    assert "layout" not in (tmp_path / "manifest.csv").read_text().splitlines()[0]
    loaded = load_store(tmp_path)
    assert [r.layout for r in loaded.records] == ["kinect-v1-20"] * 3
    assert [r.layout for r in read_manifest(tmp_path)] == ["kinect-v1-20"] * 3


def test_empty_layout_values_are_filled_from_the_files(tmp_path: Path):
    a = save_sequence(tmp_path, "a.npz", _seq(j=20), "kinect-v1-20", subject="1")
    b = save_sequence(tmp_path, "b.npz", _seq(j=20), "kinect-v1-20", subject="2")
    write_manifest(tmp_path, [a, Record(**{**b.__dict__, "layout": ""})])
    assert [r.layout for r in load_store(tmp_path).records] == ["kinect-v1-20"] * 2


def test_mixed_layouts_name_two_files(tmp_path: Path):
    a = save_sequence(tmp_path, "a.npz", _seq(j=20), "kinect-v1-20", subject="1")
    b = save_sequence(tmp_path, "b.npz", _seq(j=20), "my-20", subject="2")
    write_manifest(tmp_path, [a, b])
    _manifest_without_layout(tmp_path)
    with pytest.raises(StoreError) as err:
        load_store(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "a.npz") in msg and str(tmp_path / "b.npz") in msg
    assert "'kinect-v1-20'" in msg and "'my-20'" in msg and "one joint layout" in msg
    write_manifest(tmp_path, [a, b])  # declared in the manifest: the same rule
    with pytest.raises(StoreError, match="one joint layout"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("frames, message", [
    ([17], "frame 17 contains NaN or infinite"),
    ([17, 20, 30], r"frame 17 \(and 2 more\) contain NaN or infinite"),
])
def test_non_finite_message_names_file_and_first_frame(tmp_path: Path, frames, message):
    bad = _seq()
    for k, t in enumerate(frames):
        bad[t, k, 0] = np.nan if k % 2 == 0 else np.inf
    with pytest.raises(StoreError, match=message) as err:
        save_sequence(tmp_path, "x.npz", bad, "h36m-17")
    assert str(err.value).startswith(str(tmp_path / "x.npz") + ": frame 17")
    np.savez(tmp_path / "x.npz", joints=bad, layout=np.array("h36m-17"))
    write_manifest(tmp_path, [Record("1", "nm", "01", "0", "x.npz", 50)])
    with pytest.raises(StoreError, match=message):
        load_store(tmp_path)


def _copy(path: str, frames: int, start: int | None) -> Record:
    extra = () if start is None else (("start_frame", str(start)),)
    return Record("001", "nm", "01", "090", path, frames, "h36m-17", extra=extra)


def test_common_frames_lines_copies_up_by_their_start_frame():
    stores = [Path("mp"), Path("mm")]
    # one estimator missed the walker in video frame 0: frames 1-63 against 0-63
    spans = common_frames(stores, [_copy("a.npz", 63, 1), _copy("a.npz", 64, 0)])
    assert spans == [slice(0, 63), slice(1, 64)]
    spans = common_frames(stores, [_copy("a.npz", 50, 10), _copy("a.npz", 50, 0)])
    assert spans == [slice(0, 40), slice(10, 50)]
    # equal lengths line up as they are, start known or not (a converted store)
    assert common_frames(stores, [_copy("a.npz", 30, None), _copy("a.npz", 30, 0)]) \
        == [slice(0, 30)] * 2
    assert start_frame(_copy("a.npz", 5, None)) is None and start_frame(_copy("a.npz", 5, 7)) == 7


def test_common_frames_refuses_copies_it_cannot_line_up():
    stores = [Path("mp"), Path("mm")]
    with pytest.raises(StoreError, match=r"mm/a\.npz: 64 frames, mp/a\.npz has 63, and without a "
                                         r"start_frame column"):
        common_frames(stores, [_copy("a.npz", 63, None), _copy("a.npz", 64, 0)])
    with pytest.raises(StoreError, match=r"mp/a\.npz: .*share no video frame \(frames 0-9, 20-29\)"):
        common_frames(stores, [_copy("a.npz", 10, 0), _copy("a.npz", 10, 20)])
