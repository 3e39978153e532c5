"""CMC/mAP against hand-computed cases and against a plain per-probe loop."""

import numpy as np
import pytest

from vid2reid.errors import ProtocolError
from vid2reid.metrics import TOPK, RankMetrics, _count_at_or_below, rank_metrics


def reference(probe_ids, gallery_ids, distances, probe_groups=None, gallery_groups=None):
    """The definition, one probe at a time with a full sort (same conventions)."""
    distances = np.asarray(distances, dtype=np.float64)
    n_p, n_g = distances.shape
    hits, aps = np.zeros(len(TOPK)), []
    for i in range(n_p):
        keep = np.ones(n_g, bool) if probe_groups is None else \
            np.asarray(gallery_groups) != probe_groups[i]
        d = distances[i][keep]
        match = np.asarray(gallery_ids)[keep] == probe_ids[i]
        if not match.any():
            continue
        order = np.lexsort((match, d))  # by distance, then non-matches (False) first
        pos = np.flatnonzero(match[order]) + 1
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
        hits += pos[0] <= np.array(TOPK)
    n = len(aps)
    return RankMetrics(*(hits / n).tolist(), float(np.mean(aps)), n, n_g, n_p - n)


def test_hand_computed_ranking():
    # Ranked gallery: miss, hit (pos 2), miss, hit (pos 4) -> AP = (1/2 + 2/4) / 2.
    m = rank_metrics([0], [1, 0, 1, 0], distances=[[1.0, 2.0, 3.0, 4.0]])
    assert (m.top1, m.top5, m.top10) == (0.0, 1.0, 1.0)
    assert m.mAP == pytest.approx(0.5)
    assert (m.probes, m.gallery, m.no_match) == (1, 4, 0)


def test_top5_and_top10_boundaries():
    # First true match at position 6: not in top-5, in top-10.
    d = [[float(i) for i in range(12)]]
    ids = [1] * 5 + [0] + [1] * 6
    m = rank_metrics([0], ids, distances=d)
    assert (m.top1, m.top5, m.top10) == (0.0, 0.0, 1.0)
    assert m.mAP == pytest.approx(1 / 6)


def test_ties_are_conservative_and_order_free():
    # A true and a false match at the same distance: the false one ranks first.
    for ids in ([0, 1], [1, 0]):
        m = rank_metrics([0], ids, distances=[[1.0, 1.0]])
        assert m.top1 == 0.0 and m.mAP == pytest.approx(0.5)
    # Two true matches tied with one miss: positions 2 and 3.
    m = rank_metrics([0], [0, 0, 1], distances=[[1.0, 1.0, 1.0]])
    assert m.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    # A strictly closer true match is not affected by a tie behind it.
    m = rank_metrics([0], [0, 1, 0], distances=[[0.5, 1.0, 1.0]])
    assert m.top1 == 1.0 and m.mAP == pytest.approx((1 + 2 / 3) / 2)


def test_probe_without_true_match_is_excluded_and_counted():
    d = [[1.0, 2.0], [1.0, 2.0]]
    m = rank_metrics([0, 7], [1, 0], distances=d)
    assert (m.probes, m.no_match) == (1, 1)
    assert m.top1 == 0.0 and m.mAP == pytest.approx(0.5)
    none = rank_metrics([7], [1, 0], distances=[[1.0, 2.0]])
    assert (none.probes, none.no_match) == (0, 1)


def test_own_video_is_excluded():
    # Gallery: same id and same video at distance 0, a miss at 2, same id other video at 3.
    d = [[0.0, 2.0, 3.0]]
    ids = [0, 1, 0]
    m = rank_metrics([0], ids, distances=d, probe_groups=["v1"], gallery_groups=["v1", "v2", "v3"])
    assert m.top1 == 0.0 and m.mAP == pytest.approx(0.5) and m.gallery == 3
    # Without video keys the own-video item would have scored.
    m = rank_metrics([0], ids, distances=d)
    assert m.top1 == 1.0 and m.mAP == pytest.approx((1 + 2 / 3) / 2)
    # A probe whose only true match is its own video has no true match.
    m = rank_metrics([0], [0, 1], distances=[[0.0, 1.0]], probe_groups=["v"],
                     gallery_groups=["v", "w"])
    assert (m.probes, m.no_match) == (0, 1)


def test_features_give_squared_euclidean_ranking():
    probe = np.array([[0.0, 0.0]], np.float32)
    gallery = np.array([[1.0, 0.0], [0.0, -2.0], [3.0, 0.0]], np.float32)
    ids = ["b", "a", "a"]  # string labels work
    m = rank_metrics(["a"], ids, probe, gallery)
    assert m.top1 == 0.0 and m.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_chunked_equals_unchunked_equals_loop():
    rng = np.random.default_rng(0)
    n_p, n_g = 53, 71
    # Coarse integer features create many exact distance ties.
    pf = rng.integers(-2, 3, (n_p, 4)).astype(np.float32)
    gf = rng.integers(-2, 3, (n_g, 4)).astype(np.float32)
    pid, gid = rng.integers(0, 12, n_p), rng.integers(0, 10, n_g)  # ids 10, 11: no match
    pgr, ggr = rng.integers(0, 20, n_p), rng.integers(0, 20, n_g)
    d = ((pf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    want = reference(pid, gid, d, pgr, ggr)
    assert want.no_match > 0 and want.probes > 0
    for max_elements in (1, 7 * n_g, 10 ** 9):
        got = rank_metrics(pid, gid, pf, gf, probe_groups=pgr, gallery_groups=ggr,
                           max_elements=max_elements)
        assert (got.probes, got.gallery, got.no_match) == (want.probes, want.gallery, want.no_match)
        for k in ("top1", "top5", "top10", "mAP"):
            assert getattr(got, k) == pytest.approx(getattr(want, k), abs=1e-12), k
        from_d = rank_metrics(pid, gid, distances=d, probe_groups=pgr, gallery_groups=ggr,
                              max_elements=max_elements)
        assert from_d == got


def test_empty_inputs_raise():
    with pytest.raises(ProtocolError):
        rank_metrics([], [0], distances=np.zeros((0, 1)))


def test_label_types_do_not_matter():
    d = [[1.0, 2.0, 3.0]]
    want = rank_metrics([0], [1, 0, 0], distances=d)
    assert rank_metrics([-5], [7, -5, -5], distances=d) == want
    assert rank_metrics(["s1"], ["s2", "s1", "s1"], distances=d) == want


@pytest.mark.parametrize("gallery", [1, 5, 40, 9000])
def test_count_at_or_below_equals_brute_force(gallery):
    # the binned count against a direct comparison: ties, negatives, -0.0 vs +0.0, inf, NaN,
    # rows with no true match, true matches all equal, and galleries small and large
    rng = np.random.default_rng(gallery)
    for trial in range(40):
        n_p, n_r = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        if trial % 2:
            d = rng.integers(-3, 4, (n_p, gallery)).astype(np.float32) * np.float32(0.25)
        else:
            d = rng.normal(size=(n_p, gallery)).astype(np.float32) * np.float32(10.0 ** rng.integers(-3, 4))
        d[rng.random(d.shape) < 0.1] = np.inf
        d[rng.random(d.shape) < 0.05] = -0.0
        d[rng.random(d.shape) < 0.02] = np.nan
        n_true = rng.integers(0, n_r + 1, n_p)
        t = np.full((n_p, n_r), np.inf, np.float32)
        for p in range(n_p):
            pool = d[p][np.isfinite(d[p])]
            pick = rng.choice(pool, n_true[p]) if len(pool) and trial % 3 else \
                np.full(n_true[p], rng.normal())
            t[p, : n_true[p]] = np.sort(np.where(pick == 0, 0.0, pick))  # +0.0 against -0.0
        want = np.array([[np.sum(d[p] <= t[p, j]) if j < n_true[p] else 0 for j in range(n_r)]
                         for p in range(n_p)])
        np.testing.assert_array_equal(_count_at_or_below(d, t, n_true), want)
        np.testing.assert_array_equal(_count_at_or_below(d.astype(np.float64), t.astype(np.float64),
                                                         n_true), want)


@pytest.mark.parametrize("seed", [1, 2])
def test_large_gallery_with_many_ties_equals_loop(seed):
    # a gallery large enough for the full 4096-bin histogram, with coarse (tied) distances
    rng = np.random.default_rng(seed)
    n_p, n_g = 25, 9000
    pf = rng.integers(-3, 4, (n_p, 3)).astype(np.float32)
    gf = rng.integers(-3, 4, (n_g, 3)).astype(np.float32)
    pid, gid = rng.integers(0, 40, n_p), rng.integers(0, 30, n_g)
    pgr, ggr = rng.integers(0, 50, n_p), rng.integers(0, 3000, n_g)
    d = ((pf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    want = reference(pid, gid, d, pgr, ggr)
    assert want.no_match > 0 and want.probes > 0
    for max_elements in (n_g, 10 ** 9):
        got = rank_metrics(pid, gid, pf, gf, probe_groups=pgr, gallery_groups=ggr,
                           max_elements=max_elements)
        assert (got.probes, got.no_match) == (want.probes, want.no_match)
        for k in ("top1", "top5", "top10", "mAP"):
            assert getattr(got, k) == pytest.approx(getattr(want, k), abs=1e-12), k
        assert rank_metrics(pid, gid, distances=d.astype(np.float16), probe_groups=pgr,
                            gallery_groups=ggr, max_elements=max_elements) == got
