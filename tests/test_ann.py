"""The approximate index (vid2reid.ann) against exhaustive search: real faiss, real files."""

import numpy as np
import pytest

pytest.importorskip("faiss")

from vid2reid.ann import (ApproxSearcher, add_part, load_searcher, merge_parts, save_searcher,
                          train_index)
from vid2reid.errors import ConfigError


def _features(n: int = 4000, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Walks of 1000 identities (walk i: identity i % 1000); ``seed`` draws the walks."""
    centres = np.random.default_rng(99).normal(size=(1000, dim))
    rng = np.random.default_rng(seed)
    x = centres[np.arange(n) % 1000] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _exact(g: np.ndarray, q: np.ndarray, k: int):
    d2 = ((g.astype(np.float64) - q.astype(np.float64)) ** 2).sum(1)
    idx = np.lexsort((np.arange(len(g)), d2))[:k]
    return idx, np.sqrt(d2[idx])


def test_every_cell_visited_gives_the_exact_ranking_and_distances():
    g = _features()
    s = ApproxSearcher.build(g, nlist=16, nprobe=16, seed=0)
    q = _features(20, seed=1)
    for row in q:
        idx, dist = s.rank(row, 10)
        want_i, want_d = _exact(g, row, 10)
        assert list(idx) == list(want_i)
        assert np.allclose(dist, want_d, atol=1e-9)
    # excluded items are left out, the next ones move up
    idx, _ = s.rank(q[0], 5, exclude=_exact(g, q[0], 2)[0])
    assert list(idx) == list(_exact(g, q[0], 7)[0][2:7])
    # the nearest item of an allowed set (the margin's other subject)
    allow = np.arange(len(g)) % 3 == 0
    got = s.nearest_where(q[0], allow)
    cand = np.flatnonzero(allow)
    i, d = _exact(g[cand], q[0], 1)
    assert got[0] == cand[i[0]] and got[1] == pytest.approx(d[0])
    assert s.nearest_where(q[0], np.zeros(len(g), bool)) is None


def test_few_cells_visited_still_reports_exact_distances_and_high_recall():
    g = _features(8000)
    s = ApproxSearcher.build(g, nlist=64, nprobe=8)
    q = _features(50, seed=2)
    recall = []
    for row in q:
        idx, dist = s.rank(row, 10)
        assert np.allclose(dist, np.sqrt(((g[idx].astype(np.float64) - row) ** 2).sum(1)))
        assert np.all(np.diff(dist) >= 0)
        recall.append(len(np.intersect1d(idx, _exact(g, row, 10)[0])) / 10)
    assert np.mean(recall) >= 0.9


def test_index_built_in_parts_answers_like_one(tmp_path):
    g = _features(6000)
    trained = train_index(g[::3], 32)  # trained once, shared by every machine
    whole = add_part(trained, g)
    parts = [add_part(trained, g[a:b], first_id=a) for a, b in ((0, 2500), (2500, 4000),
                                                                 (4000, 6000))]
    merged = merge_parts(parts)
    assert merged.ntotal == len(g)
    q = _features(30, seed=3)
    a = ApproxSearcher(whole, g, nprobe=4).search(q, 10)
    b = ApproxSearcher(merged, g, nprobe=4).search(q, 10)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ConfigError, match="same trained index"):
        merge_parts([whole, add_part(train_index(g[::3], 16), g[:10])])
    # saved and loaded back: the features memory-mapped, the same answers
    save_searcher(tmp_path / "idx", ApproxSearcher(merged, g, nprobe=4))
    loaded = load_searcher(tmp_path / "idx", nprobe=4)
    assert isinstance(loaded.features, np.memmap)
    c = loaded.search(q, 10)
    assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
    assert not list((tmp_path / "idx").glob("*.tmp"))
    (tmp_path / "idx" / "ivf.faiss").write_bytes(b"nonsense")
    with pytest.raises(ConfigError, match="ivf.faiss"):
        load_searcher(tmp_path / "idx")


def test_features_and_index_must_agree():
    g = _features(1000)
    s = ApproxSearcher.build(g, nlist=8)
    with pytest.raises(ConfigError, match="1000 walks"):
        ApproxSearcher(s.index, g[:900])


def test_match_rules_hold_through_the_approximate_searcher(monkeypatch):
    """rank_gallery (match's ranking: the identical-recording rule, the margin to another
    subject) gives the same results with ApproxSearcher in place of the exact Searcher when
    every cell is visited: the two share one interface."""
    from vid2reid.run import Walks
    from vid2reid.search import rank_gallery

    g = _features(2000)
    subjects = [f"{i % 1000:04d}" for i in range(len(g))]
    rows = [{"subject": s, "path": f"{s}/{i}.npz"} for i, s in enumerate(subjects)]
    hashes = [f"h{i}" for i in range(len(g))]

    def walks(feats, hs, subs):
        return Walks([f"w{i}" for i in range(len(feats))], [{"subject": s} for s in subs], subs,
                     hs, feats, feats[:0], np.zeros(0, np.int64), np.zeros(0, np.int64))

    gallery = Walks([r["path"] for r in rows], rows, subjects, hashes, g, g[:0],
                    np.zeros(0, np.int64), np.zeros(0, np.int64))
    q_feats = np.concatenate([_features(8, seed=4), g[5:6]])  # the last: a gallery walk itself
    q = walks(q_feats, [f"q{i}" for i in range(8)] + ["h5"], ["0000"] * 9)
    exact = rank_gallery(q, gallery, top=5)
    fresh = Walks(gallery.paths, rows, subjects, hashes, g, g[:0], np.zeros(0, np.int64),
                  np.zeros(0, np.int64))  # a new object: the exact searcher is cached on the first
    fresh._prepared[("built", "sequence")] = ApproxSearcher.build(g, nlist=8, nprobe=8)
    approx = rank_gallery(q, fresh, top=5, search="ivf")
    assert approx[-1].excluded == 1 and "subject" in approx[-1].margin_to
    for a, b in zip(exact, approx):
        assert [m.path for m in a.matches] == [m.path for m in b.matches]
        assert np.allclose([m.distance for m in a.matches], [m.distance for m in b.matches])
        assert a.margin == pytest.approx(b.margin) and a.excluded == b.excluded


def test_a_pca_transform_keeps_distances_exact_and_parts_mergeable():
    g = _features(4000)
    trained = train_index(g[::2], 16, transform="PCA16")
    merged = merge_parts([add_part(trained, g[:1500]), add_part(trained, g[1500:], 1500)])
    s = ApproxSearcher(merged, g, nprobe=16)
    recall = []
    for row in _features(20, seed=6):
        idx, dist = s.rank(row, 10)
        assert np.allclose(dist, np.sqrt(((g[idx].astype(np.float64) - row) ** 2).sum(1)))
        recall.append(len(np.intersect1d(idx, _exact(g, row, 10)[0])) / 10)
    # these test features spread over all 32 directions, so 16 keep only the nearest few
    assert np.mean(recall) >= 0.6
    assert all(r >= 0.3 for r in recall)


def test_an_index_file_brings_its_approximate_searcher(tmp_path):
    """'vid2reid index --search ivf' writes the FAISS index beside the file (digested); match
    through the loaded index lists what exact search lists here, and a swapped FAISS file is
    refused in one line."""
    pytest.importorskip("faiss")
    from vid2reid.errors import StoreError
    from vid2reid.gallery_index import GalleryIndex, load_index
    from vid2reid.run import Walks
    from vid2reid.search import rank_gallery

    g = _features(3000)
    subjects = [f"{i % 700:04d}" for i in range(len(g))]
    rows = [{"subject": s, "path": f"{s}/{i}.npz"} for i, s in enumerate(subjects)]
    walks = Walks([r["path"] for r in rows], rows, subjects, [f"h{i}" for i in range(len(g))],
                  g, g[:0], np.zeros(0, np.int64), np.zeros(0, np.int64))
    path = tmp_path / "g.idx"
    GalleryIndex(walks, "run-id", "run", "store", 6).save(path, search="ivf")
    assert (tmp_path / "g.idx.ivf").is_file()
    loaded = load_index(path).walks
    q = Walks([f"q{i}" for i in range(6)], [{"subject": "x"}] * 6, [""] * 6,
              [f"q{i}" for i in range(6)], _features(6, seed=9), g[:0],
              np.zeros(0, np.int64), np.zeros(0, np.int64))
    approx = rank_gallery(q, loaded, top=10)  # auto: the index's own approximate searcher
    assert type(loaded._prepared[("sequence", "auto")]["searcher"]).__name__ == "ApproxSearcher"
    exact = rank_gallery(q, loaded, top=10, search="exact")
    same = np.mean([[m.path for m in a.matches] == [m.path for m in b.matches]
                    for a, b in zip(approx, exact)])
    assert same >= 5 / 6
    for a, b in zip(approx, exact):  # distances are exact either way
        for m in a.matches:
            assert m.distance == pytest.approx(float(np.linalg.norm(
                g[m.index].astype(np.float64) - q.features[int(a.path[1:])])), rel=1e-9)
    (tmp_path / "g.idx.ivf").write_bytes(b"not faiss")
    with pytest.raises(StoreError, match="does not match the digest"):
        load_index(path)
