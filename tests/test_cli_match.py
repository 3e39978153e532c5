"""``vid2reid match`` and ``vid2reid index`` through the real command line: outputs, the page,
one-line errors, and a video query through the real MediaPipe backend."""

import csv
import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options
from vid2reid.cli import app
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_videos"
TINY = tiny_options(epochs=1)


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes stderr into output
        return result.output


def _error_lines(result) -> list[str]:
    return [line for line in _err(result).splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("match")
    store = make_synthetic_store(root / "skeletons", n_subjects=6, frames=(60, 80), seed=3)
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(root / "run"), *TINY])
    assert r.exit_code == 0, r.output
    return store, root / "run"


def test_store_query_table_csv_json_and_page(setup, tmp_path: Path):
    store, run = setup
    out_csv, out_json, page = tmp_path / "m.csv", tmp_path / "m.json", tmp_path / "page"
    r = runner.invoke(app, ["match", str(store), "--gallery", str(store), "--run", str(run),
                            "--query-split", "test", "--query-condition", "Bags",
                            "--gallery-split", "test", "--gallery-condition", "Normal",
                            "--top", "3", "--csv", str(out_csv), "--json", str(out_json),
                            "--report", str(page)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out_csv.open()))
    assert {"query", "rank", "gallery", "distance"} <= set(rows[0])
    queries = sorted({row["query"] for row in rows})
    # 3 test subjects x 2 Bags walks, each with its top 3 of 12 Normal walks
    assert len(queries) == 6 and len(rows) == 18
    assert all(re.fullmatch(r"\d{3}/\d{3}-bg-0[12]-090\.npz", q) for q in queries)
    for q in queries:
        mine = [row for row in rows if row["query"] == q]
        assert [int(row["rank"]) for row in mine] == [1, 2, 3]
        d = [float(row["distance"]) for row in mine]
        assert d == sorted(d)
        assert all("-nm-" in row["gallery"] for row in mine)
    data = json.loads(out_json.read_text())
    assert len(data["queries"]) == 6 and data["queries"][0]["matches"][0]["rank"] == 1
    assert "query" in r.output and "margin" in r.output
    # open set: one verdict per query, the same on each of its CSV rows, in the JSON and table
    for q in queries:
        verdicts = {(row["known"], row["score"]) for row in rows if row["query"] == q}
        assert len(verdicts) == 1 and next(iter(verdicts))[0] in ("yes", "no")
    for qd in data["queries"]:
        assert qd["known"] == (qd["score"] <= 1.0)
        assert qd["verdict"] in ("known", "nobody in the gallery")
        assert qd["score"] == pytest.approx(qd["matches"][0]["distance"] / data["threshold"])
    assert data["threshold_source"] == "gallery" and data["threshold"] > 0
    assert r.output.count("verdict: ") == 6
    # --threshold overrides: 0 turns every query away, a huge one accepts every query
    for value, word in (("0", "no"), ("1e9", "yes")):
        r2 = runner.invoke(app, ["match", str(store), "--gallery", str(store), "--run", str(run),
                                 "--query-split", "test", "--query-condition", "Bags",
                                 "--gallery-split", "test", "--gallery-condition", "Normal",
                                 "--top", "2", "--threshold", value, "--csv",
                                 str(tmp_path / f"t{value}.csv")])
        assert r2.exit_code == 0, r2.output
        assert {row["known"] for row in csv.DictReader((tmp_path / f"t{value}.csv").open())} \
            == {word}
        assert "(--threshold)" in r2.output
    html = (page / "index.html").read_text()
    assert html.count("nobody in the gallery") + html.count(">known<") >= 6
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(srcs) == 6 * (1 + 3)  # each query and its top 3
    for src in set(srcs):
        img = cv2.imread(str(page / src))
        assert img is not None and img.shape[0] > 20, src
    assert "identities from the manifest, not used for ranking" in html
    assert "class=same" in html or "class=other" in html
    assert "http" not in html  # opens from disk, nothing fetched


def test_index_round_trip_and_refusal(setup, tmp_path: Path):
    store, run = setup
    idx = tmp_path / "gallery.idx"
    r = runner.invoke(app, ["index", "--run", str(run), "--data", str(store), "--split", "test",
                            "--out", str(idx)])
    assert r.exit_code == 0, r.output
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    r = runner.invoke(app, ["match", str(store), "--gallery", str(idx), "--query-split", "test",
                            "--top", "4", "--csv", str(a)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["match", str(store), "--gallery", str(store), "--run", str(run),
                            "--query-split", "test", "--gallery-split", "test", "--top", "4",
                            "--csv", str(b)])
    assert r.exit_code == 0, r.output
    assert a.read_text() == b.read_text()
    rows = list(csv.DictReader(a.open()))
    assert all(row["query"] != row["gallery"] for row in rows)  # never itself
    other = tmp_path / "other"
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(other), "--seed", "5",
                            *TINY])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["match", str(store), "--gallery", str(idx), "--run", str(other),
                            "--query-split", "test"])
    assert r.exit_code == 1
    lines = _error_lines(r)
    assert len(lines) == 1 and "built by run" in lines[0] and str(idx) in lines[0]


def test_errors_are_one_line(setup, tmp_path: Path):
    store, run = setup
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.csv").write_text("subject,condition,sequence,view,path,frames\n")
    r = runner.invoke(app, ["match", str(store), "--gallery", str(empty), "--run", str(run)])
    assert r.exit_code == 1 and len(_error_lines(r)) == 1 and "empty store" in _err(r)
    from vid2reid.convert import convert_store

    coco = tmp_path / "coco"
    convert_store(store, "coco-17", coco, progress=False)
    r = runner.invoke(app, ["match", str(store), "--gallery", str(coco), "--run", str(run)])
    assert r.exit_code == 1
    lines = _error_lines(r)
    assert len(lines) == 1 and "coco-17" in lines[0] and "h36m-17" in lines[0]
    # a bad query among good ones: reported, the others still matched, exit code 1
    r = runner.invoke(app, ["match", str(coco), str(tmp_path / "nope.avi"), str(store),
                            "--gallery", str(store), "--run", str(run), "--query-split", "test",
                            "--top", "2"])
    assert r.exit_code == 1
    lines = _error_lines(r)
    assert len(lines) == 2
    assert any("nope.avi" in line and "no such file" in line for line in lines)
    assert any("coco-17" in line for line in lines)
    assert r.output.count("query ") >= 6


def test_a_stored_walk_file_is_a_query(setup, tmp_path: Path, monkeypatch):
    store, run = setup
    monkeypatch.chdir(tmp_path)  # where a stray match-cache/ would appear
    walk = sorted(store.glob("*/*-nm-01-*.npz"))[0]
    r = runner.invoke(app, ["match", str(walk), "--gallery", str(store), "--run", str(run),
                            "--top", "3", "--json", "m.json"])
    assert r.exit_code == 0, r.output
    q = json.loads(Path("m.json").read_text())["queries"]
    assert len(q) == 1 and q[0]["query"] == walk.relative_to(store).as_posix()
    assert q[0]["excluded_identical"] == 1  # itself, in the gallery store
    assert all(m["gallery"] != q[0]["query"] for m in q[0]["matches"])
    assert not Path("match-cache").exists()
    # a folder inside the store: its walks
    r = runner.invoke(app, ["match", str(walk.parent), "--gallery", str(store), "--run",
                            str(run), "--top", "1", "--json", "f.json"])
    assert r.exit_code == 0, r.output
    q = json.loads(Path("f.json").read_text())["queries"]
    assert sorted(x["query"] for x in q) == sorted(
        p.relative_to(store).as_posix() for p in walk.parent.glob("*.npz"))
    assert not Path("match-cache").exists()
    # a .npz no store lists: one error line naming it, nothing extracted
    stray = tmp_path / "loose.npz"
    stray.write_bytes(walk.read_bytes())
    r = runner.invoke(app, ["match", str(stray), "--gallery", str(store), "--run", str(run)])
    assert r.exit_code == 1
    lines = _error_lines(r)
    assert len(lines) == 1 and str(stray) in lines[0] and "not a walk of a skeleton store" \
        in lines[0]
    assert not Path("match-cache").exists()


needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="MediaPipe is not installed")


@pytest.mark.slow
@needs_mediapipe
def test_video_query_end_to_end_with_mediapipe(tmp_path: Path):
    """Sample clips through the real MediaPipe backend: the gallery from `extract`, a video
    query extracted into the cache (reused next call), its own recording never returned, and a
    video with nobody in it reported in one line."""
    clips = ["075-nm-01-090.avi", "075-nm-02-090.avi", "076-nm-01-090.avi"]
    vids = tmp_path / "vids"
    vids.mkdir()
    for c in clips:
        (vids / c).symlink_to(SAMPLES / c)
    gallery = tmp_path / "gallery"
    r = runner.invoke(app, ["extract", str(vids), "--out", str(gallery), "--backend",
                            "mediapipe", "--workers", "1"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", str(gallery), "--out", str(run), "--protocol",
                            "all", *TINY])
    assert r.exit_code == 0, r.output
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    for _ in range(50):
        writer.write(np.full((120, 160, 3), 200, np.uint8))
    writer.release()
    query = str(vids / clips[0])
    cache, out_csv, page = tmp_path / "cache", tmp_path / "m.csv", tmp_path / "page"
    args = ["match", query, str(empty), "--gallery", str(gallery), "--run", str(run),
            "--cache", str(cache), "--top", "5", "--csv", str(out_csv), "--report", str(page)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output  # the empty video is an error, the clip is matched
    lines = _error_lines(r)
    assert len(lines) == 1 and str(empty) in lines[0] and "no person" in lines[0]
    rows = list(csv.DictReader(out_csv.open()))
    assert {row["query"] for row in rows} == {query}
    # the query is the same recording as 075-nm-01 in the gallery: never listed
    assert [row["gallery"] for row in rows] and all("075-nm-01" not in row["gallery"]
                                                    for row in rows)
    assert len(rows) == 2 and "1 gallery walk(s) identical to the query left out" in r.output
    html = (page / "index.html").read_text()
    for src in re.findall(r'<img[^>]* src="([^"]+)"', html):
        assert cv2.imread(str(page / src)) is not None
    markers = sorted(cache.rglob("*.json"))
    assert markers
    stamp = [m.stat().st_mtime_ns for m in markers]
    r = runner.invoke(app, args)  # second call: the cache is reused, nothing re-extracted
    assert r.exit_code == 1
    assert [m.stat().st_mtime_ns for m in markers if "summary" not in m.name] == \
        [s for m, s in zip(markers, stamp) if "summary" not in m.name]
    # a folder of videos as the query: each video its own walk, named by its path
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "076-bg-01-090.avi").symlink_to(SAMPLES / "076-bg-01-090.avi")
    r = runner.invoke(app, ["match", str(folder), "--gallery", str(gallery), "--run", str(run),
                            "--cache", str(cache), "--top", "2", "--csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out_csv.open()))
    assert {row["query"] for row in rows} == {str(folder / "076-bg-01-090.avi")}
    assert len(rows) == 2  # nothing in the gallery is this recording


def test_window_level_lists_every_query_window(setup, tmp_path: Path):
    store, run = setup
    out_csv = tmp_path / "w.csv"
    r = runner.invoke(app, ["match", str(store), "--gallery", str(store), "--run", str(run),
                            "--query-split", "test", "--query-condition", "cl",
                            "--gallery-split", "test", "--gallery-condition", "nm",
                            "--level", "window", "--top", "2", "--csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out_csv.open()))
    manifest = list(csv.DictReader((store / "manifest.csv").open()))
    want = {(m["path"], str(s)) for m in manifest if m["split"] == "test" and m["condition"] == "cl"
            for s in range(0, int(m["frames"]) - 20 + 1, 20)}  # f = 20, non-overlapping
    assert {(row["query"], row["query_window_start"]) for row in rows} == want
    assert len(rows) == 2 * len(want)
    assert all(int(row["gallery_window_start"]) % 20 == 0 for row in rows)
