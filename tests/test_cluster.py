"""k-reciprocal Jaccard distance (fast sparse path vs the per-sample loop) and DBSCAN."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import adjusted_rand_score

from reference import jaccard_distance_loop
from vid2reid.cluster import (cluster_features, cluster_many, dbscan_labels, jaccard_distance,
                              nearest_neighbours, prototypes, walk_groups, walk_means)
from vid2reid.labels import pseudo_labels
from vid2reid.errors import ConfigError


def _blobs(n: int, centres: int, dim: int = 16, spread: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    lab = rng.integers(0, centres, n)
    return (c[lab] + spread * rng.normal(size=(n, dim))).astype(np.float32), lab


def _dense(d: sp.csr_matrix) -> np.ndarray:
    """Sparse distances as dense, with the implied 1 for pairs that are not stored."""
    out = np.ones(d.shape)
    coo = d.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


@pytest.mark.parametrize("reading", ["reference", "zhong"])
@pytest.mark.parametrize("n,centres,k1,k2", [(60, 4, 20, 6), (200, 12, 20, 6), (150, 10, 8, 1),
                                             (120, 40, 5, 3), (90, 9, 3, 6)])
def test_fast_jaccard_equals_loop_reference(n, centres, k1, k2, reading):
    x, _ = _blobs(n, centres, seed=n)
    fast = jaccard_distance(x, k1, k2, reading=reading)
    ref = jaccard_distance_loop(x, k1, k2, reading=reading)
    assert isinstance(fast, sp.csr_matrix)
    np.testing.assert_allclose(_dense(fast), ref, atol=1e-5)
    # pairs that are not stored really are at distance 1 (no shared support)
    assert np.all(ref[_dense(fast) == 1] > 1 - 1e-6)
    assert np.allclose(fast.diagonal(), 0, atol=1e-6)


def test_distance_is_symmetric_and_sparse():
    x, _ = _blobs(2000, 200, seed=3)
    d = jaccard_distance(x)
    assert (d != d.T).nnz == 0  # the upper triangle is computed once and mirrored
    assert d.has_sorted_indices
    assert d.nnz < 0.25 * 2000 * 2000  # a few hundred stored pairs per row, not N


def test_features_are_normalised_first():
    x, _ = _blobs(80, 5, seed=4)
    scale = np.random.default_rng(0).uniform(0.1, 10, (80, 1)).astype(np.float32)
    np.testing.assert_allclose(_dense(jaccard_distance(x)), _dense(jaccard_distance(x * scale)),
                               atol=1e-5)


def test_dbscan_on_sparse_equals_dense_reference():
    x, _ = _blobs(200, 12, seed=5)
    for eps, ms in ((0.5, 2), (0.6, 4), (0.3, 2)):
        a = dbscan_labels(jaccard_distance(x), eps, ms)
        b = dbscan_labels(jaccard_distance_loop(x), eps, ms)
        assert adjusted_rand_score(a, b) == 1.0 and np.array_equal(a < 0, b < 0)


def test_clear_clusters_are_found():
    x, lab = _blobs(240, 6, spread=0.05, seed=6)
    got = cluster_features(torch.from_numpy(x), 20, 6, 0.6, 2)
    assert adjusted_rand_score(lab, got) == 1.0


def test_prototypes_are_cluster_means():
    feats = torch.tensor([[1.0, 0], [3, 0], [0, 2], [9, 9]])
    p = prototypes(feats, np.array([0, 0, 1, -1]))
    assert torch.allclose(p, torch.tensor([[2.0, 0], [0, 2]]))


def test_bad_settings_raise_config_error():
    x, _ = _blobs(30, 3)
    with pytest.raises(ConfigError, match="eps"):
        dbscan_labels(jaccard_distance(x), 1.0, 2)
    with pytest.raises(ConfigError):
        jaccard_distance(x, k1=0)


def test_near_tied_similarities_match_reference():
    # an untrained encoder's features are nearly parallel: similarities tie at float32 precision
    rng = np.random.default_rng(7)
    base = rng.normal(size=(1, 64))
    x = (base + 2e-3 * rng.normal(size=(300, 64))).astype(np.float32)
    np.testing.assert_allclose(_dense(jaccard_distance(x)), jaccard_distance_loop(x), atol=1e-5)


def _knn_reference(x: np.ndarray, k: int) -> np.ndarray:
    """Plain float64 ranking: itself first, then by dot product, ties by index."""
    x = x.astype(np.float64)
    sim = (x[:, None, :] * x[None, :, :]).sum(-1)  # the same sum for duplicated rows (BLAS may differ)
    np.fill_diagonal(sim, np.inf)
    idx = np.arange(len(x))
    return np.stack([np.lexsort((idx, -row))[:k] for row in sim])


@pytest.mark.parametrize("tile", [7, 16, 50, 2048])
@pytest.mark.parametrize("spread", [1.0, 2e-3])
def test_tiled_nearest_neighbours_equal_plain_ranking(tile, spread):
    # small tiles exercise the partial tiles, the transposed offers and the threshold filter;
    # duplicated rows tie exactly, and spread 2e-3 gives nearly parallel rows (near-ties)
    rng = np.random.default_rng(tile)
    x = np.ones((1, 16)) + spread * rng.normal(size=(130, 16))
    x = np.concatenate([x, x[:15]]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for k in (1, 5, 21, len(x)):
        np.testing.assert_array_equal(nearest_neighbours(x, k, tile=tile), _knn_reference(x, k))


def test_duplicate_features_keep_explicit_zero_distances():
    x, _ = _blobs(100, 5, seed=8)
    x = np.concatenate([x, x[:10]])  # rows 100.. duplicate rows 0..9: distance 0, stored
    d = jaccard_distance(x)
    np.testing.assert_allclose(_dense(d), jaccard_distance_loop(x), atol=1e-5)
    assert np.all(d[np.arange(10), np.arange(100, 110)] < 1e-6)
    assert d[np.arange(10), np.arange(100, 110)].size == 10
    assert np.array_equal(dbscan_labels(d, 0.5, 2), dbscan_labels(jaccard_distance_loop(x), 0.5, 2))


@pytest.mark.parametrize("eps,min_samples", [(0.3, 2), (0.5, 2), (0.6, 4), (0.75, 3)])
def test_cluster_features_keeps_only_pairs_within_eps_same_labels(eps, min_samples):
    x, _ = _blobs(300, 15, spread=0.8, seed=9)
    full = jaccard_distance(x)
    near = jaccard_distance(x, max_dist=eps)
    dense_full, dense_near = _dense(full), _dense(near)
    within = dense_full <= np.float32(eps)
    np.testing.assert_array_equal(dense_near[within], dense_full[within])
    assert np.all(dense_near[~within] == 1) and near.nnz == within.sum()
    assert (near != near.T).nnz == 0
    labels = cluster_features(x, 20, 6, eps, min_samples)
    np.testing.assert_array_equal(labels, dbscan_labels(full, eps, min_samples))
    np.testing.assert_array_equal(labels, dbscan_labels(jaccard_distance_loop(x), eps, min_samples))


@pytest.mark.parametrize("threads", [1, 2])
def test_cluster_many_equals_one_set_at_a_time(threads):
    sets = [_blobs(400, 12, spread=0.7, seed=s)[0] for s in (1, 2, 3)]
    sets[1] = torch.from_numpy(sets[1])  # views arrive as tensors, levels too
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        many = cluster_many(sets, 20, 6, 0.6, 4)
    finally:
        torch.set_num_threads(before)
    assert len(many) == 3
    for x, lab in zip(sets, many):
        assert lab.max() >= 5  # real clusters, not all noise
        np.testing.assert_array_equal(lab, cluster_features(x, 20, 6, 0.6, 4))


def test_dbscan_gets_rows_sorted_by_distance_same_labels():
    from sklearn.cluster import DBSCAN

    from vid2reid.cluster import _neighbour_graph

    x, _ = _blobs(500, 15, spread=0.8, seed=4)
    d = jaccard_distance(x)
    g = _neighbour_graph(d, 0.6)
    rows = np.repeat(np.arange(g.shape[0]), np.diff(g.indptr))
    assert np.all(g.data <= 0.6) and g.nnz == (d.data <= 0.6).sum()
    assert np.all((np.diff(g.data) >= 0) | (np.diff(rows) != 0))  # ascending within each row
    np.testing.assert_array_equal(_dense(g)[_dense(d) <= 0.6], _dense(d)[_dense(d) <= 0.6])
    labels = dbscan_labels(d, 0.6, 4)
    np.testing.assert_array_equal(labels, DBSCAN(eps=0.6, min_samples=4,
                                                 metric="precomputed").fit_predict(d))
    assert labels.max() >= 5


def _overlapping_groups(n: int = 600, groups: int = 30, seed: int = 11) -> np.ndarray:
    """Real-feature-like data: many groups of unequal size that overlap (like window features
    of walks by similar people), where a neighbour more or less changes the clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 32))
    size = rng.dirichlet(np.full(groups, 2.0))
    lab = rng.choice(groups, n, p=size)
    return (centres[lab] + rng.gamma(2.0, 0.45, (n, 1)) * rng.normal(size=(n, 32))).astype(np.float32)


def test_k1_follows_the_authors_code_by_default():
    # The SimMC authors' search returns k1 neighbour columns (itself included) and
    # R(i, k1) is cut to them; R(i, round(k1/2)) and the k2 expansion are not.
    # On overlapping groups the two readings of k1 give different clusters at the
    # presets' eps, so this pins which one the presets run with.
    x = _overlapping_groups()
    ref = jaccard_distance_loop(x, 20, 6, reading="reference")
    zhong = jaccard_distance_loop(x, 20, 6, reading="zhong")
    np.testing.assert_allclose(_dense(jaccard_distance(x, 20, 6)), ref, atol=1e-5)
    for eps, ms in ((0.6, 4), (0.75, 2), (0.5, 4)):
        default = cluster_features(x, 20, 6, eps, ms)
        assert default.max() >= 10  # real clusters
        authors, textbook = dbscan_labels(ref, eps, ms), dbscan_labels(zhong, eps, ms)
        if eps == 0.5:
            # hundreds of pairs sit at d = 0.5 (S = 2/3) up to float rounding: float32 vs
            # float64 sums decide a few border windows, as they do between any two codes
            assert adjusted_rand_score(default, authors) >= 0.99
        else:
            assert adjusted_rand_score(default, authors) == 1.0
            np.testing.assert_array_equal(default < 0, authors < 0)
            assert adjusted_rand_score(cluster_features(x, 20, 6, eps, ms, reading="zhong"),
                                       textbook) == 1.0
        # the data tells the readings apart
        assert adjusted_rand_score(default, textbook) < adjusted_rand_score(default, authors)
    # the textbook reading at k1 = 19 searches as many neighbours as the authors' at k1 = 20
    # (and round(19/2) == round(20/2) == 10), so it is the same distance
    np.testing.assert_allclose(_dense(jaccard_distance(x, 19, 6, reading="zhong")), ref, atol=1e-5)


def test_unknown_k1_reading_is_a_config_error():
    x, _ = _blobs(30, 3)
    with pytest.raises(ConfigError, match="k1 reading"):
        jaccard_distance(x, reading="paper")


def test_jaccard_index_arithmetic_past_46340_rows():
    # N * N > 2**31: column keys (row * N + column) overflow if any product stays int32
    # (numpy 1.x keeps int32 array * int64 scalar in int32). A sparse V with a few shared
    # columns at high indices is cheap and has known distances.
    from vid2reid.cluster import _jaccard_from_encoding

    n = 50_000
    rows = np.arange(n)
    cols = np.arange(n)
    vals = np.ones(n)
    # rows 49_990 and 49_999 share column 49_995 (weights 0.5 / 0.25), row 7 shares it too
    extra_r = np.array([49_990, 49_999, 7])
    extra_c = np.array([49_995, 49_995, 49_995])
    extra_v = np.array([0.5, 0.25, 0.4])
    vals = vals.copy()
    vals[[49_990, 49_999, 7]] = [0.5, 0.75, 0.6]  # rows still sum to 1
    v = sp.csr_matrix((np.concatenate([vals, extra_v]),
                       (np.concatenate([rows, extra_r]), np.concatenate([cols, extra_c]))),
                      shape=(n, n))
    d = _jaccard_from_encoding(v)
    assert d.shape == (n, n) and (d != d.T).nnz == 0

    def expected(s: float) -> float:
        return 1 - s / (2 - s)

    # S(49990, 49999) = min(0.5, 0.25) = 0.25; S(7, 49990) = 0.4; S(7, 49999) = 0.25
    # row 49995 holds 1.0 in its own column 49995 and shares it with all three
    assert d[49_990, 49_999] == pytest.approx(expected(0.25), abs=1e-6)
    assert d[7, 49_990] == pytest.approx(expected(0.4), abs=1e-6)
    assert d[7, 49_999] == pytest.approx(expected(0.25), abs=1e-6)
    assert d[49_995, 49_990] == pytest.approx(expected(0.5), abs=1e-6)
    assert d[49_995, 7] == pytest.approx(expected(0.4), abs=1e-6)
    assert d[12_345, 12_345] == 0 and d.nnz == n + 2 * 6


def _unit(v: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(v, dtype=torch.float32), dim=1)


def test_walk_groups_join_mutual_nearest_walks_only():
    rng = np.random.default_rng(0)
    people = rng.normal(size=(6, 32))
    # six people with two walks each (walks 2i, 2i+1), then walk 12: a lone walk whose nearest
    # walk is walk 0, while walk 0's nearest is its own partner, walk 1
    walks = np.repeat(people, 2, axis=0) + 0.05 * rng.normal(size=(12, 32))
    lone = people[0] + 0.6 * rng.normal(size=32)
    feats = _unit(np.vstack([walks, lone]))
    groups = walk_groups(feats)
    assert np.array_equal(groups[0:12:2], groups[1:12:2])  # each person's two walks together
    assert len(set(groups[:12].tolist())) == 6  # ... and no two people merged
    assert int((feats[12] @ feats[:12].T).argmax()) in (0, 1)  # lone's nearest is person 0
    assert groups[12] not in groups[:12]  # not picked back: it stays on its own
    # k=2: lone walk and person 0 are now within each other's 2 nearest
    assert walk_groups(feats, k=2)[12] == walk_groups(feats, k=2)[0]
    assert np.array_equal(walk_groups(feats[:1]), [0])


def test_walk_chains_follow_every_nearest_walk_link():
    """mutual=False (walk-chains): each walk joins its nearest walk's group, either way, so one
    person's many walks chain into one group where mutual pairs would split them."""
    rng = np.random.default_rng(2)
    # two people with five walks each, spread along a line: walk i's nearest is i-1 or i+1
    base = rng.normal(size=(2, 32))
    step = rng.normal(size=(2, 32))
    feats = _unit(np.vstack([base[p] + 0.15 * t * step[p] for p in range(2) for t in range(5)]))
    sim = feats @ feats.T
    sim.fill_diagonal_(-float("inf"))
    nn = sim.argmax(dim=1).numpy()
    assert all((nn[i] < 5) == (i < 5) for i in range(10))  # nearest walks stay within a person
    chains = walk_groups(feats, mutual=False)
    assert len(set(chains[:5].tolist())) == 1 and len(set(chains[5:].tolist())) == 1
    assert chains[0] != chains[5]
    assert np.array_equal(chains[np.arange(10)], chains[nn])  # every walk with its nearest
    pairs = walk_groups(feats)
    assert max(np.bincount(pairs)) <= 2 < 5  # mutual: pairs at most


def test_walk_groups_in_row_blocks_match_the_whole_matrix():
    rng = np.random.default_rng(3)
    feats = _unit(rng.normal(size=(5000, 8)))  # more walks than one 4096-row block
    sim = feats @ feats.T
    sim.fill_diagonal_(-float("inf"))
    nn = sim.argmax(dim=1).numpy()
    mutual = nn[nn] == np.arange(5000)
    groups = walk_groups(feats)
    assert np.array_equal(groups[mutual], groups[nn[mutual]])  # mutual pairs joined
    alone = ~mutual & ~np.isin(np.arange(5000), nn[mutual])
    sizes = np.bincount(groups)
    assert (sizes[groups[alone]] == 1).all()  # in no mutual pair: on its own


def test_pseudo_labels_never_split_a_walk():
    rng = np.random.default_rng(1)
    walk = np.repeat(np.arange(20) * 7, rng.integers(3, 9, 20))  # sparse walk numbers
    feats = [torch.as_tensor(rng.normal(size=(len(walk), 8)), dtype=torch.float32)
             for _ in range(2)]

    class Cfg:
        pseudo_labels, walk_warmup = "walk-groups", 1

    warm = pseudo_labels(feats, walk, Cfg, epoch=0)  # warm-up: every walk its own class
    assert all(adjusted_rand_score(walk, lab) == 1.0 for lab in warm)
    assert warm[0].min() == 0 and warm[0].max() == 19
    grouped = pseudo_labels(feats, walk, Cfg, epoch=1)
    for lab in grouped:
        for w in np.unique(walk):
            assert len(set(lab[walk == w].tolist())) == 1  # one label per walk
        assert len(set(lab.tolist())) < 20  # mutual nearest walks were joined
    Cfg.pseudo_labels = "walk-chains"
    chained = pseudo_labels(feats, walk, Cfg, epoch=1)
    for lab, pairs in zip(chained, grouped):
        for w in np.unique(walk):
            assert len(set(lab[walk == w].tolist())) == 1
        for g in np.unique(pairs):  # every mutual pair lies inside one chain
            assert len(set(lab[pairs == g].tolist())) == 1
        assert len(set(lab.tolist())) < len(set(pairs.tolist()))  # random walks: chains are longer
    Cfg.pseudo_labels = "walks"
    assert adjusted_rand_score(walk, pseudo_labels(feats, walk, Cfg, epoch=5)[0]) == 1.0
    with pytest.raises(ConfigError, match="walk of every training window"):
        pseudo_labels(feats, None, Cfg, epoch=0)


def test_walk_means_average_each_walk():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    m = walk_means(feats, np.array([0, 0, 1]))
    assert torch.allclose(m, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
