"""File-name parsing, video listing, sharding and gap filling of the pose stage (no models)."""

from pathlib import Path

import numpy as np
import pytest

from vid2reid.errors import ConfigError, PoseError
from vid2reid.pose.extract import parse_shard, shard_items, task_from_env
from vid2reid.pose.names import (background_clip_for, is_background_clip, list_videos,
                                 parse_video_name)
from vid2reid.pose.postprocess import drop_short, fill_and_split, runs


@pytest.mark.parametrize("path, expected", [
    ("data/001-bg-02-090.avi", ("001", "bg", "02", "090", "casia-b", "001/001-bg-02-090")),
    ("data/124-CL-01-180.mp4", ("124", "cl", "01", "180", "casia-b", "124/124-cl-01-180")),
    # a CASIA-B file name wins over the folders it sits in
    ("data/001/nm-01/090/001-nm-01-090.avi", ("001", "nm", "01", "090", "casia-b", "001/001-nm-01-090")),
    ("data/012/nm-05/036/video.avi", ("012", "nm", "05", "036", "casia-b-nested", "012/012-nm-05-036")),
    ("data/007/bg-02/144.avi", ("007", "bg", "02", "144", "casia-b-nested", "007/007-bg-02-144")),
])
def test_casia_names(path, expected):
    n = parse_video_name(Path(path))
    assert (n.subject, n.condition, n.sequence, n.view, n.name_format, n.stem) == expected


def test_other_names_use_pattern_or_file_name(tmp_path):
    (tmp_path / "cam1").mkdir()
    video = tmp_path / "cam1" / "p12_walk3.mp4"
    video.write_bytes(b"x")
    n = parse_video_name(video, tmp_path, r"p(?P<subject>\d+)_walk(?P<sequence>\d+)")
    assert (n.subject, n.condition, n.sequence, n.view, n.name_format) == ("12", "", "3", "", "pattern")
    assert n.stem == "cam1/p12_walk3"
    plain = parse_video_name(video, tmp_path)
    assert (plain.subject, plain.name_format, plain.stem) == ("p12_walk3", "filename", "cam1/p12_walk3")
    with pytest.raises(PoseError, match="does not match --pattern"):
        parse_video_name(video, tmp_path, r"subj(?P<subject>\d+)")
    with pytest.raises(ConfigError, match="subject"):
        parse_video_name(video, tmp_path, r"p(\d+)")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        parse_video_name(video, tmp_path, r"p(?P<subject>\d+")


def test_listing_skips_background_and_reports_bad_inputs(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    for name in ("001-nm-01-090.avi", "001-bkgrd-090.avi", "notes.txt", "002-nm-01-090.avi"):
        (d / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    videos, problems = list_videos([d, tmp_path / "empty", tmp_path / "missing.avi"])
    assert [v.name for v, _ in videos] == ["001-nm-01-090.avi", "002-nm-01-090.avi"]
    assert len(problems) == 2
    assert any("empty" in p and "no videos" in p for p in problems)
    assert any("missing.avi" in p and "no such file" in p for p in problems)
    assert is_background_clip(d / "001-bkgrd-090.avi")
    name = parse_video_name(d / "001-nm-01-090.avi")
    assert background_clip_for(d / "001-nm-01-090.avi", name) == d / "001-bkgrd-090.avi"
    assert background_clip_for(d / "002-nm-01-090.avi", parse_video_name(d / "002-nm-01-090.avi")) is None


def test_shards_partition_the_list():
    items = [f"v{i:03d}" for i in range(103)]
    for n in (1, 2, 3, 7):
        shards = [shard_items(items, i, n) for i in range(n)]
        flat = [x for s in shards for x in s]
        assert sorted(flat) == items and len(flat) == len(set(flat))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "a/b", "1", "-1/3"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    # the environment only names a process (claims decide its videos)
    assert task_from_env({"RANK": "3", "WORLD_SIZE": "8"}) == ("rank 3/8", "rank3-of-8")
    assert task_from_env({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "5",
                          "SLURM_ARRAY_JOB_ID": "12"})[1] == "slurm-12-task6"
    assert task_from_env({}) == ("", "")


def test_gaps_are_filled_or_split():
    T = 30
    values = np.arange(T, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    valid = np.ones(T, bool)
    valid[:3] = False  # leading missing frames are dropped
    valid[10:13] = False  # short gap: interpolated
    valid[18:26] = False  # long gap: split
    assert runs(valid) == [(3, 10), (13, 18), (26, 30)]
    segs = fill_and_split(np.where(valid[:, None], values, np.nan), valid, max_gap=5)
    assert [(s.start, s.stop) for s in segs] == [(3, 18), (26, 30)]
    np.testing.assert_allclose(segs[0].values[:, 0], np.arange(3, 18))  # linear gap filling
    assert segs[0].detected.sum() == 12 and not segs[0].detected[7:10].any()
    kept, dropped = drop_short(segs, 5)
    assert [(s.start, s.stop) for s in kept] == [(3, 18)] and dropped == 1
    assert fill_and_split(values, np.zeros(T, bool)) == []
