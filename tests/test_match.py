"""vid2reid.search, vid2reid.match, vid2reid.gallery_index: rankings against oracles computed here (eval's features, brute-force
float64 distances), the self-match rule, the gallery index, load_run and the README example."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options, train_tiny
from vid2reid.cli import app
from vid2reid.errors import ConfigError, ProtocolError, StoreError
from vid2reid import load_run
from vid2reid.gallery_index import build_index, load_index
from vid2reid.match import match
from vid2reid.search import Searcher, rank_gallery
from vid2reid.store import load_joints, read_manifest, save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
TINY = tiny_options(epochs=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("retr") / "skeletons", n_subjects=6,
                                frames=(60, 80), seed=11)


@pytest.fixture(scope="module")
def run(store: Path) -> Path:
    return train_tiny(store, store.parent / "runs" / "tiny")


def _key(row: dict) -> str:
    return "|".join((row["subject"], row["condition"], row["sequence"], row["view"]))


def test_rankings_equal_eval_sequence_level(store: Path, run: Path):
    from vid2reid.evaluate import evaluate

    res = evaluate(store, run_dir=run, probe="Bags", gallery="Normal", keep_features=True)
    p, g = res["features"]["sequence"]["probe"], res["features"]["sequence"]["gallery"]
    # oracle: eval's sequence features, float64 Euclidean distances, ties by gallery order
    d = np.sqrt(((p["x"][:, None, :].astype(np.float64) - g["x"][None].astype(np.float64)) ** 2)
                .sum(-1))
    m = load_run(run)
    queries = m.embedder().store(store, condition="Bags", split="test", side="query")
    gallery = m.embedder().store(store, condition="Normal", split="test")
    assert sorted(_key(r) for r in queries.rows) == sorted(p["video"].tolist())
    results = rank_gallery(queries, gallery, top=len(gallery))
    assert len(results) == len(p["video"])
    for res_q in results:
        i = p["video"].tolist().index(_key(res_q.row))
        np.testing.assert_array_equal(queries.features[queries.paths.index(res_q.path)],
                                      p["x"][i])
        order = np.lexsort((np.arange(len(g["video"])), d[i]))
        assert [_key(mm.row) for mm in res_q.matches] == g["video"][order].tolist()
        np.testing.assert_allclose([mm.distance for mm in res_q.matches], d[i][order],
                                   rtol=1e-6, atol=1e-7)
        # margin: nearest walk of another subject than the best match, minus the best
        best = res_q.matches[0].subject
        other = min(mm.distance for mm in res_q.matches if mm.subject != best)
        assert res_q.margin == pytest.approx(other - res_q.matches[0].distance)
        assert res_q.margin_to == "other subject"


def test_self_match_rule_is_by_content(store: Path, run: Path, tmp_path: Path):
    """The query's own recording is never returned, under any name; a walk that differs by a
    millimetre is."""
    records = [r for r in read_manifest(store) if r.split == "test"]
    gal = tmp_path / "gallery"
    kept = []
    for r in records:
        kept.append(save_sequence(gal, r.path, load_joints(store, r), r.layout, subject=r.subject,
                                  condition=r.condition, sequence=r.sequence, view=r.view))
    first = records[0]
    j = load_joints(store, first)
    kept.append(save_sequence(gal, "copy/renamed.npz", j, first.layout, subject="999",
                              condition="nm", sequence="09", view="090"))
    moved = j.copy()
    moved[:, 3, 0] += 0.001
    kept.append(save_sequence(gal, "copy/moved.npz", moved, first.layout, subject="998",
                              condition="nm", sequence="09", view="090"))
    write_manifest(gal, kept)
    m = load_run(run)
    q = m.embedder().store(store, condition=first.condition, split="test", side="query")
    g = m.embedder().store(gal)
    results = rank_gallery(q, g, top=len(g))
    mine = next(r for r in results if r.path == first.path)
    listed = [mm.path for mm in mine.matches]
    assert first.path not in listed and "copy/renamed.npz" not in listed
    assert mine.excluded == 2 and len(listed) == len(g) - 2
    assert "copy/moved.npz" in listed
    for res in results:  # no query meets itself
        assert res.path not in [mm.path for mm in res.matches]


def test_searcher_matches_brute_force_with_ties_and_exclusions():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3000, 24)).astype(np.float32)
    g[100] = g[7]  # an exact tie: the lower index comes first
    q = g[7] + rng.normal(scale=1e-3, size=24).astype(np.float32)
    s = Searcher(g)
    d = np.sqrt(((g.astype(np.float64) - q.astype(np.float64)) ** 2).sum(1))
    for exclude in (None, np.array([7, 5, 2999])):
        idx, dist = s.rank(q, 20, exclude)
        dd = d.copy()
        if exclude is not None:
            dd[exclude] = np.inf
        want = np.lexsort((np.arange(len(g)), dd))[:20]
        assert idx.tolist() == want.tolist()
        np.testing.assert_allclose(dist, dd[want], rtol=1e-9)
    assert s.rank(q, 20)[0][:2].tolist() == [7, 100]
    assert len(s.rank(q, 5000)[0]) == 3000  # k larger than the gallery: all, in order


def test_searcher_through_faiss_equals_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    g = rng.normal(size=(2000, 16)).astype(np.float32)
    q = rng.normal(size=16).astype(np.float32)
    a, da = Searcher(g).rank(q, 10)
    b, db = Searcher(g, use_faiss=True).rank(q, 10)
    assert a.tolist() == b.tolist()
    np.testing.assert_allclose(da, db)


def test_index_round_trip_and_refusal(store: Path, run: Path, tmp_path: Path):
    m = load_run(run)
    index = build_index(m, store, condition="Normal", split="test")
    path = index.save(tmp_path / "gallery.idx")
    back = load_index(path)
    np.testing.assert_array_equal(back.walks.features, index.walks.features)
    np.testing.assert_array_equal(back.walks.window_features, index.walks.window_features)
    assert back.walks.rows == index.walks.rows and back.walks.hashes == index.walks.hashes
    assert back.run_identity == m.identity
    via_store = match([store], store, run_dir=run, top=5, query_condition="Bags",
                      query_split="test", gallery_condition="Normal", gallery_split="test")
    via_index = match([store], path, top=5, query_condition="Bags", query_split="test")
    assert [[(mm.path, mm.distance) for mm in r.matches] for r in via_index.results] == \
        [[(mm.path, mm.distance) for mm in r.matches] for r in via_store.results]
    other = train_tiny(store, tmp_path / "other", seed=1)
    with pytest.raises(ConfigError, match="built by run"):
        match([store], path, run_dir=other, query_split="test")
    (tmp_path / "junk.idx").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(StoreError, match="junk.idx.*not a gallery index"):
        load_index(tmp_path / "junk.idx")
    (tmp_path / "notes.txt").write_text("a gallery?")
    with pytest.raises(StoreError, match="notes.txt.*not a gallery index"):
        match([store], tmp_path / "notes.txt", run_dir=run)


def test_window_level_best_is_the_nearest_window(store: Path, run: Path):
    m = load_run(run)
    q = m.embedder().store(store, condition="Bags", split="test")
    g = m.embedder().store(store, condition="Normal", split="test")
    results = rank_gallery(q, g, top=3, level="window")
    assert len(results) == len(q.window_features)
    for res, qf in zip(results, q.window_features):
        d = np.sqrt(((g.window_features.astype(np.float64) - qf) ** 2).sum(1))
        assert res.matches[0].distance == pytest.approx(d.min(), rel=1e-6)
        best = int(np.argmin(d))
        assert res.matches[0].path == g.paths[g.window_walk[best]]
        assert res.matches[0].window_start == g.window_start[best]


def test_errors_name_the_problem(store: Path, run: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.csv").write_text("subject,condition,sequence,view,path,frames\n")
    with pytest.raises(StoreError, match="empty store"):
        match([store], empty, run_dir=run)
    with pytest.raises(ProtocolError, match="no gallery walks"):
        match([store], store, run_dir=run, gallery_condition="xx")
    # a store in another joint layout than the run: the gallery is refused, a query reported
    from vid2reid.convert import convert_store

    coco = tmp_path / "coco"
    convert_store(store, "coco-17", coco)
    with pytest.raises(StoreError, match=r"coco.*layout coco-17.*trained on h36m-17"):
        match([store], coco, run_dir=run)
    out = match([coco, store], store, run_dir=run, query_split="test", gallery_split="test")
    assert len(out.errors) == 1 and "coco-17" in out.errors[0] and "\n" not in out.errors[0]
    assert out.results  # the good query still ran


def test_load_run_embed_store_and_arrays(store: Path, run: Path):
    m = load_run(run)
    feats = m.embed(store)
    walks = m.embedder().store(store)
    np.testing.assert_array_equal(feats, walks.features)
    rec = read_manifest(store)[0]
    one = m.embed(load_joints(store, rec))
    i = walks.paths.index(rec.path)
    np.testing.assert_allclose(one[0], walks.features[i], rtol=1e-5, atol=1e-6)
    with pytest.raises(StoreError, match="shorter than the run's window"):
        m.embed(load_joints(store, rec)[:5])


def test_readme_example_runs(store: Path, run: Path, tmp_path: Path, monkeypatch):
    """The README's Python example, executed as written against a small trained run."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Match your own videos.*?```python\n(.*?)```", text, re.S)
    assert block, "README has no Python block under 'Match your own videos'"
    (tmp_path / "runs").mkdir()
    shutil.copytree(run, tmp_path / "runs" / "quickstart")
    shutil.copytree(store, tmp_path / "skeletons-samples")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    feats = scope["feats"]
    assert feats.shape == (len(load_run(run).embedder().store(store)), 32)


def test_msclr_run_matches_across_layouts(store: Path, tmp_path: Path):
    """A run that reads several layouts (MS-CLR) ranks coco-17 queries against an h36m-17
    gallery (a single-layout run refuses them: test_errors_name_the_problem)."""
    from vid2reid.convert import convert_store

    coco = tmp_path / "coco"
    convert_store(store, "coco-17", coco, progress=False)
    r = CliRunner().invoke(app, ["train", "--method", "ms-clr", "--data", str(store), "--data",
                                 str(coco), "--out", str(tmp_path / "ms"), *TINY])
    assert r.exit_code == 0, r.output
    out = match([coco], store, run_dir=tmp_path / "ms", top=3, query_split="test",
                gallery_split="test")
    assert not out.errors and len(out.results) == len(load_run(tmp_path / "ms").embedder().store(
                                                                  coco, split="test"))
    assert all(len(res.matches) == 3 for res in out.results)


def test_page_strips_video_skeleton_or_both(tmp_path: Path):
    """What a walk's strip shows follows what its store records: the video and 2D keypoints
    (frames cropped on the walker, skeleton drawn), the video alone (frames and the 3D
    skeleton), or neither (the skeleton alone)."""
    import cv2

    from vid2reid.match_report import STRIP_HEIGHT, walk_strip

    samples = REPO / "sample_videos"
    gt = np.load(samples / "075-nm-01-090.gt.npz")
    joints = gt["joints"]  # camera frame, metres: the rendered walker's true joints
    uvw = joints @ gt["K"].T
    uv = (uvw[..., :2] / uvw[..., 2:]).astype(np.float32)  # where they are in the frames
    video = str(samples / "075-nm-01-090.avi")
    store = tmp_path / "s"
    recs = [save_sequence(store, "both.npz", joints, "h36m-17", source=video, start_frame=0,
                          keypoints_2d=uv),
            save_sequence(store, "video.npz", joints, "h36m-17", source=video, start_frame=0),
            save_sequence(store, "none.npz", joints, "h36m-17")]
    rows = {r.path: {**r.row(), "store": str(store), "source": video if r.path != "none.npz"
                     else "", "start_frame": "0"} for r in recs}
    named = [video]  # outside the store: shown because the user named it (a query)
    both, kind_both = walk_strip(rows["both.npz"], allowed=named)
    video_only, kind_video = walk_strip(rows["video.npz"], allowed=named)
    alone, kind_alone = walk_strip(rows["none.npz"], allowed=named)
    missing, kind_missing = walk_strip({**rows["none.npz"], "path": "gone.npz"}, allowed=named)
    assert (kind_both, kind_video, kind_alone, kind_missing) == \
        ("video+skeleton", "video+3d", "skeleton", "missing")
    assert both.shape[0] == video_only.shape[0] == alone.shape[0] == STRIP_HEIGHT
    full = round(320 * STRIP_HEIGHT / 240)  # one whole 320 x 240 frame at strip height
    assert both.shape[1] < 4 * full / 2  # four frames, each cropped to the walker
    green = (both[..., 1] > 200) & (both[..., 0] < 80) & (both[..., 2] < 80)
    assert green.sum() > 100  # the skeleton's bones are drawn
    frame = cv2.VideoCapture(video).read()[1]  # the clip itself has no such green
    assert ((frame[..., 1] > 200) & (frame[..., 0] < 80) & (frame[..., 2] < 80)).sum() < 10


def test_match_top1_equals_eval_with_recordings_listed_under_two_subjects(store: Path,
                                                                            run: Path,
                                                                            tmp_path: Path):
    """Byte-identical recordings under two subject numbers tie exactly; eval and match break
    the tie by one rule (vid2reid.rank), so match's rank-1 answers are right exactly as often
    as eval's sequence top-1 says."""
    from vid2reid.evaluate import evaluate

    dup = tmp_path / "dup"
    rows = []
    for r in read_manifest(store):
        rows.append(save_sequence(dup, r.path, load_joints(store, r), r.layout,
                                  subject=r.subject, condition=r.condition, sequence=r.sequence,
                                  view=r.view, split=r.split))
    test_nm = [r for r in read_manifest(store) if r.split == "test" and r.condition == "nm"]
    half = sorted({r.subject for r in test_nm})[::2]
    for n, r in enumerate(x for x in test_nm if x.subject in half):  # some walks twice
        rows.append(save_sequence(dup, f"twin/{n}.npz", load_joints(store, r), r.layout,
                                  subject=f"9{n:02d}", condition="nm", sequence=r.sequence,
                                  view=r.view, split="test"))
    write_manifest(dup, rows)
    res = evaluate(dup, run_dir=run, probe="Bags", gallery="Normal")
    out = match([dup], dup, run_dir=run, top=3, query_condition="Bags", query_split="test",
                gallery_condition="Normal", gallery_split="test")
    assert not out.errors and len(out.results) == res["sequence"]["probes"]
    hits = [q.matches[0].subject == q.subject for q in out.results]
    assert np.mean(hits) == pytest.approx(res["sequence"]["top1"])
    tied = [q for q in out.results if q.matches[0].distance == q.matches[1].distance]
    assert tied  # the twins tie exactly; the query's own subject is never listed first
    for q in tied:
        assert q.matches[0].subject != q.subject and q.margin == 0.0
