"""Per-epoch pseudo-labels: SimMC's k-reciprocal Jaccard distance + DBSCAN, or walk groups.

``pseudo_labels`` picks the source (``cfg.pseudo_labels``): "clusters" is the
DBSCAN clustering below; "people" (the label-free default), "walks", "walk-groups"
and "walk-chains" label windows by the training walk they come from ("people":
walks associated into people by vid2reid.association; ``walk_groups``: mutual
nearest walks joined, or for "walk-chains" every walk joined to its nearest),
with no distance threshold to tune.

The distance is the re-ranking distance of Zhong et al., "Re-ranking Person
Re-identification with k-reciprocal Encoding" (CVPR 2017), as used by SimMC
and cluster-contrast (k1 = 20, k2 = 6), on L2-normalised features:

1. ``rank[i]``: i's nearest neighbours, i itself first;
2. ``R(i, k)``: j in i's (k+1)-NN and i in j's (k+1)-NN (k-reciprocal set);
3. expansion: add ``R(c, round(k1/2))`` for each c in ``R(i, k1)`` sharing
   more than 2/3 of it with ``R(i, k1)``;
4. ``V[i, j] = softmax_j(-(2 - 2 cos(i, j)))`` over the expanded set;
5. local query expansion: ``V[i] <- mean of V[r]`` over i's k2 nearest;
6. ``d(i, j) = 1 - S / (2 - S)`` with ``S = sum_k min(V[i, k], V[j, k])``.

What k1 means (``reading``). SimMC's presets (eps, min_samples per data set)
were tuned with the authors' code, which searches only k1 neighbours (i itself
included) and then asks for k1 + 1 of them: its ``R(i, k1)`` is built from
i's k1-NN, one neighbour fewer than the paper's formula, while ``R(i,
round(k1/2))`` and the k2 expansion are as written. ``reading="reference"``
(the default) follows that code, so the presets mean what the paper says;
``reading="zhong"`` is the textbook definition (k1 neighbours plus i itself).
On real Kinect window features the two readings give visibly different
clusters at the same eps (ARI 0.6-0.95); ``zhong`` at k1 equals ``reference``
at k1 + 1 only when round(k1/2) happens to agree.

The reference code builds dense N x N matrices with per-sample loops. Here
every step is vectorised on sparse matrices: V has a few dozen non-zeros per
row, and only pairs that share support get a stored distance. Every other pair
is at distance 1, which is never a DBSCAN neighbour for eps < 1, so DBSCAN
runs on the sparse matrix directly (N = 30k fits in well under 4 GB).
``jaccard_distance_loop`` is the plain per-sample formulation, kept only to
check the fast path in tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN

from vid2reid.errors import ConfigError

# How k1 is read: "reference" = the SimMC authors' code (default), "zhong" = Zhong et al. 2017.
K1_READINGS = ("reference", "zhong")
# Where the pseudo-labels come from (see ``pseudo_labels``): "clusters" = SimMC's DBSCAN over
# windows; "walks" = every training walk its own class; "walk-groups" = walks grouped with the
# walks they are mutual nearest neighbours of; "walk-chains" = every walk with its nearest walk;
# "people" = walks associated into people by features and body proportions (vid2reid.association).
PSEUDO_LABELS = ("people", "clusters", "walks", "walk-groups", "walk-chains")


def l2_normalise(feats: np.ndarray | torch.Tensor) -> np.ndarray:
    """Rows scaled to unit length, as float32 numpy (zero rows stay zero)."""
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().numpy()
    feats = np.asarray(feats, dtype=np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)


def nearest_neighbours(feats: np.ndarray, k: int, tile: int = 1024, margin: int = 8) -> np.ndarray:
    """(N, k) indices of each row's k most similar rows by dot product, itself first.

    Candidates come from float32 scores on centred features: with y = x - m
    (m the mean), ``x_i . x_j = y_i . y_j + y_j . m + (terms constant for row
    i)``, and ``s_ij = y_i . y_j + y_i . m + y_j . m`` ranks every row like
    ``x_i . x_j`` but is symmetric and small, which float32 resolves far better
    when features are nearly parallel (an untrained encoder's are). Being
    symmetric, s is computed in tiles of its upper triangle only (memory
    O(tile^2)), each tile offered to its rows and, transposed, to its columns.
    Every row keeps a running best ``k + margin``; once it has that many, only
    tile entries above its current worst are candidates (a boolean filter
    instead of a top-k over every entry). The candidates are then re-ranked
    with exact float64 dot products, ties by index.
    """
    n, dim = feats.shape
    k = min(k, n)
    kc = min(k + margin, n)
    mean = feats.mean(axis=0, dtype=np.float64)
    # s = [y, y.m, 1] . [y, 1, y.m]: one matmul per tile; y in float64, stored as float32
    lhs = torch.empty((n, dim + 2), dtype=torch.float32)
    ym = torch.empty(n, dtype=torch.float64)
    for a in range(0, n, 4096):
        y = feats[a:a + 4096].astype(np.float64) - mean
        lhs[a:a + 4096, :dim] = torch.from_numpy(y)
        ym[a:a + 4096] = torch.from_numpy(y @ mean)
    rhs = lhs.clone()
    lhs[:, dim], lhs[:, dim + 1] = ym, 1.0
    rhs[:, dim], rhs[:, dim + 1] = 1.0, ym
    best_s = torch.full((n, kc), -np.inf, dtype=torch.float32)
    best_i = torch.zeros((n, kc), dtype=torch.int64)
    with torch.no_grad():
        for a in range(0, n, tile):
            for b in range(a, n, tile):
                s = lhs[a:a + tile] @ rhs[b:b + tile].T
                if a == b:
                    s.fill_diagonal_(float("inf"))  # itself first, even with duplicates
                _offer(best_s, best_i, s, a, b, kc, transposed=False)
                if a != b:
                    _offer(best_s, best_i, s, b, a, kc, transposed=True)
    cand_all = best_i.numpy()
    out = np.empty((n, k), dtype=np.int64)
    for a in range(0, n, 64):  # small chunks: the gathered candidates stay in cache
        b = min(a + 64, n)
        cand = cand_all[a:b]
        exact = np.einsum("ij,icj->ic", feats[a:b].astype(np.float64),
                          feats[cand].astype(np.float64))
        exact[cand == np.arange(a, b)[:, None]] = np.inf
        order = np.lexsort((cand, -exact), axis=1)[:, :k]  # by similarity, ties by index
        out[a:b] = np.take_along_axis(cand, order, axis=1)
    return out


def _offer(best_s: torch.Tensor, best_i: torch.Tensor, s: torch.Tensor, row0: int, col0: int,
           kc: int, transposed: bool) -> None:
    """Merge a score tile into the running top-kc of rows ``row0...``.

    ``s`` holds scores of rows row0.. (columns col0..), or with ``transposed``
    its columns are the rows row0.. (and its rows the columns col0..).
    """
    st = s.T if transposed else s
    m = st.shape[0]
    worst = best_s[row0:row0 + m].min(dim=1).values
    if bool(torch.isneginf(worst).any()):  # some row has fewer than kc yet: plain top-k
        tv, ti = torch.topk(st.contiguous(), min(kc, st.shape[1]), dim=1, sorted=False)
        _merge(best_s, best_i, row0, tv, ti + col0, kc)
        return
    sn, wn = s.numpy(), worst.numpy()
    flat = np.flatnonzero(sn > (wn[None, :] if transposed else wn[:, None]))  # boolean scan: fast
    if len(flat) == 0:
        return
    i, j = np.divmod(flat, sn.shape[1])
    vals = sn[i, j]
    if transposed:  # group by column of s = row of the result
        order = np.argsort(j, kind="stable")
        i, j, vals = j[order], i[order], vals[order]
    count = np.bincount(i, minlength=m)
    slot = np.arange(len(i)) - (np.cumsum(count) - count)[i]
    pad_s = np.full((m, int(count.max())), -np.inf, dtype=np.float32)
    pad_i = np.zeros(pad_s.shape, dtype=np.int64)
    pad_s[i, slot] = vals
    pad_i[i, slot] = j + col0
    _merge(best_s, best_i, row0, torch.from_numpy(pad_s), torch.from_numpy(pad_i), kc)


def _merge(best_s: torch.Tensor, best_i: torch.Tensor, row0: int, new_s: torch.Tensor,
           new_i: torch.Tensor, kc: int) -> None:
    rows = slice(row0, row0 + new_s.shape[0])
    s = torch.cat([best_s[rows], new_s], dim=1)
    top_s, sel = torch.topk(s, kc, dim=1, sorted=False)
    best_i[rows] = torch.gather(torch.cat([best_i[rows], new_i], dim=1), 1, sel)
    best_s[rows] = top_s


def _reciprocal(rank: np.ndarray, width: int) -> sp.csr_matrix:
    """Boolean-valued CSR: R[i, j] = 1 iff j in rank[i, :width] and i in rank[j, :width]."""
    n = rank.shape[0]
    cols = rank[:, :width]
    m = cols.shape[1]
    fwd = sp.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, n * m + 1, m)),
                        shape=(n, n))
    fwd.sum_duplicates()
    return fwd.multiply(fwd.T).tocsr()


def _widths(k1: int, k2: int, reading: str) -> tuple[int, int, int]:
    """Neighbour-list widths (i itself included) of R(i, k1), R(i, round(k1/2)) and the k2
    expansion under a k1 reading (see the module docstring)."""
    if reading not in K1_READINGS:
        raise ConfigError(f"k1 reading must be one of {', '.join(K1_READINGS)}, got {reading!r}")
    half = int(np.around(k1 / 2)) + 1
    if reading == "zhong":
        return k1 + 1, half, k2
    # the authors' search returns k1 columns; every later slice is cut to them
    return k1, min(half, k1), min(k2, k1)


def _expanded_sets(rank: np.ndarray, width: int, half_width: int) -> sp.csr_matrix:
    """Boolean-valued CSR of each sample's expanded k-reciprocal set (step 3)."""
    r1 = _reciprocal(rank, width)
    rh = _reciprocal(rank, half_width)
    size_h = np.asarray(rh.sum(axis=1)).ravel()
    # overlap[i, c] = |R(i, k1) ∩ R(c, k1/2)|, kept only for candidates c in R(i, k1)
    overlap = (r1 @ rh.T).multiply(r1).tocsr()
    overlap.data = (overlap.data > 2 / 3 * size_h[overlap.indices]).astype(np.float32)
    overlap.eliminate_zeros()
    expanded = r1 + overlap @ rh
    expanded.data[:] = 1.0
    expanded.sort_indices()
    return expanded.tocsr()


def _encoding(feats: np.ndarray, expanded: sp.csr_matrix, pair_chunk: int = 4096) -> sp.csr_matrix:
    """V (step 4): softmax of -(2 - 2 cos) over each row's expanded set."""
    coo = expanded.tocoo()
    rows, cols = coo.row, coo.col
    dots = np.empty(len(rows), dtype=np.float64)
    for a in range(0, len(rows), pair_chunk):
        b = a + pair_chunk
        dots[a:b] = np.einsum("ij,ij->i", feats[rows[a:b]], feats[cols[a:b]], dtype=np.float64)
    dist = 2.0 - 2.0 * dots
    # softmax per row; distances lie in [0, 4] so exp(-d) needs no max shift
    w = np.exp(-dist)
    row_sum = np.bincount(rows, weights=w, minlength=expanded.shape[0])
    return sp.csr_matrix((w / row_sum[rows], (rows, cols)), shape=expanded.shape)


def _jaccard_from_encoding(v: sp.csr_matrix, max_dist: float | None = None,
                           block_elems: int = 1 << 18) -> sp.csr_matrix:
    """``1 - S / (2 - S)`` (float32 CSR), ``S[i, j] = sum_k min(V[i, k], V[j, k])``, for every
    pair sharing a column of V (with ``max_dist``: only pairs at distance <= max_dist).

    S is symmetric, so only ``j >= i`` is summed, then mirrored. For a block of
    rows, every stored (i, k) meets the stored (j >= i, k) of its column (a
    suffix of the column in CSC order); the min terms are summed into a dense
    (rows x (N - first row)) accumulator with one bincount (no sort), small
    enough to stay in cache, and its non-zeros become the block's rows of the
    upper triangle. V's entries are positive, so non-zero S means shared support.
    """
    n = v.shape[0]
    v = v.tocsr(copy=True)
    v.sort_indices()
    vc = v.tocsc()
    vc.sort_indices()
    # position of (i, k) itself in column k: the j >= i terms start there
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(v.indptr))
    col_key = np.repeat(np.arange(n, dtype=np.int64), np.diff(vc.indptr)) * n \
        + vc.indices.astype(np.int64)
    # int64 before multiplying: numpy 1.x keeps int32 * scalar in int32 (overflow past 46,340 rows)
    start = np.searchsorted(col_key, v.indices.astype(np.int64) * n + row_of)
    del col_key, row_of
    lens_all = vc.indptr[v.indices + 1] - start
    # d <= max_dist  <=>  S >= 2 (1 - max_dist) / (2 - max_dist); prefilter S a little below
    # that, then apply the exact test to the float32 distances
    if max_dist is not None and not max_dist >= 0:
        raise ConfigError(f"max_dist must be >= 0, got {max_dist}")
    s_min = 0.0 if max_dist is None else max(0.0, 2 * (1 - max_dist) / (2 - max_dist) - 1e-6)
    data, indices, counts = [], [], []
    a = 0
    while a < n:
        width = n - a  # columns a..n-1
        b = min(n, a + max(1, block_elems // width))
        e0, e1 = v.indptr[a], v.indptr[b]
        lens = lens_all[e0:e1]
        # term t pairs stored (i, k) with the (j, k) at CSC position pos[t]; runs of
        # consecutive positions, so np.repeat replaces fancy indexing
        first = np.cumsum(lens) - lens
        pos = np.arange(int(first[-1] + lens[-1])) + np.repeat(start[e0:e1] - first, lens)
        vals = np.minimum(np.repeat(v.data[e0:e1], lens), vc.data[pos])
        row_base = np.repeat(np.arange(b - a, dtype=np.int64) * width - a, np.diff(v.indptr[a:b + 1]))
        key = np.repeat(row_base, lens) + vc.indices[pos]
        acc = np.bincount(key, weights=vals, minlength=(b - a) * width)
        nz = np.flatnonzero(acc > s_min)  # a boolean scan is ~10x faster than on floats
        sim = acc[nz]
        dist = np.maximum(1.0 - sim / (2.0 - sim), 0.0).astype(np.float32)
        if max_dist is not None:
            keep = (dist <= max_dist) | (nz % width == nz // width)  # the diagonal stays
            nz, dist = nz[keep], dist[keep]
        data.append(dist)
        indices.append((nz % width + a).astype(np.int32))
        counts.append(np.bincount(nz // width, minlength=b - a))
        a = b
    return _mirror_upper(np.concatenate(data), np.concatenate(indices),
                         np.concatenate([[0], np.cumsum(np.concatenate(counts))]), n)


def _mirror_upper(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n: int) -> sp.csr_matrix:
    """Full symmetric CSR (sorted indices, explicit zeros kept) from its upper triangle.

    Every row of the upper triangle must start with its diagonal entry. Row i of
    the result is row i of the transpose (columns <= i, diagonal included) followed
    by row i of the upper triangle without its diagonal.
    """
    upper = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    lower = upper.T.tocsr()  # csr -> csc conversion: sorted indices, zeros kept
    lower_len = np.diff(lower.indptr)
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lower_len + np.diff(indptr) - 1, out=out_ptr[1:])
    # slots of the lower part: the first lower_len[i] of each output row
    mark = np.zeros(int(out_ptr[-1]) + 1, dtype=np.int8)
    np.add.at(mark, out_ptr[:-1], 1)
    np.add.at(mark, out_ptr[:-1] + lower_len, -1)
    is_lower = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
    off_diag = np.ones(len(data), dtype=bool)
    off_diag[indptr[:-1]] = False
    out_data = np.empty(len(is_lower), dtype=data.dtype)
    out_ind = np.empty(len(is_lower), dtype=np.int32)
    out_data[is_lower] = lower.data
    out_ind[is_lower] = lower.indices
    np.logical_not(is_lower, out=is_lower)
    out_data[is_lower] = data[off_diag]
    out_ind[is_lower] = indices[off_diag]
    return sp.csr_matrix((out_data, out_ind, out_ptr), shape=(n, n))


def jaccard_distance(feats: np.ndarray | torch.Tensor, k1: int = 20, k2: int = 6, *,
                     max_dist: float | None = None, reading: str = "reference") -> sp.csr_matrix:
    """k-reciprocal Jaccard distance as a sparse CSR matrix (float32, symmetric, sorted indices).

    Features are L2-normalised first. Only pairs sharing support are stored
    (the diagonal always is, at distance 0); missing pairs mean distance 1.
    With ``max_dist``, pairs farther than that are not stored either (what
    DBSCAN with eps = max_dist needs; typically well under 1 % of the pairs).
    ``reading`` says what k1 means: the SimMC authors' code (default) or Zhong et al.
    """
    if k1 < 1 or k2 < 1:
        raise ConfigError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    width, half_width, qe_width = _widths(k1, k2, reading)
    x = l2_normalise(feats)
    rank = nearest_neighbours(x, max(width, half_width, qe_width))
    v = _encoding(x, _expanded_sets(rank, width, half_width))
    if qe_width != 1:
        n = x.shape[0]
        qe = rank[:, :qe_width]
        q = sp.csr_matrix((np.full(qe.size, 1.0 / qe.shape[1]), qe.ravel(),
                           np.arange(0, qe.size + 1, qe.shape[1])), shape=(n, n))
        v = (q @ v).tocsr()
    return _jaccard_from_encoding(v, max_dist)


def dbscan_labels(dist: sp.spmatrix | np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN on a precomputed (sparse) distance matrix; -1 marks noise.

    With a sparse matrix only stored pairs can be neighbours, so eps must stay
    below 1 (the implied distance of pairs that are not stored).
    """
    _check_dbscan(eps, min_samples)
    if sp.issparse(dist):
        dist = _neighbour_graph(dist, eps)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)


def _neighbour_graph(dist: sp.spmatrix, eps: float) -> sp.csr_matrix:
    """The pairs within eps, each row sorted by distance (ties in column order).

    Pairs farther than eps are never DBSCAN neighbours: dropping them gives the
    same labels and a cheap neighbour search. Explicit zeros are kept. Sorted
    rows spare scikit-learn its own row-by-row sort in Python.
    """
    dist = sp.csr_matrix(dist)
    keep = dist.data <= eps
    rows = np.repeat(np.arange(dist.shape[0]), np.diff(dist.indptr))[keep]
    data, indices = dist.data[keep], dist.indices[keep]
    order = np.lexsort((data, rows))  # stable
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dist.shape[0]))])
    return sp.csr_matrix((data[order], indices[order], indptr), shape=dist.shape)


def _check_dbscan(eps: float, min_samples: int) -> None:
    if not 0 < eps < 1:
        raise ConfigError(f"eps must lie in (0, 1) for the Jaccard distance, got {eps}")
    if min_samples < 1:
        raise ConfigError(f"min_samples must be >= 1, got {min_samples}")


def cluster_features(feats: np.ndarray | torch.Tensor, k1: int, k2: int, eps: float,
                     min_samples: int, reading: str = "reference") -> np.ndarray:
    """Pseudo-labels (N,) for a feature set: Jaccard distance then DBSCAN.

    Only pairs within eps are kept from the start (the same labels as DBSCAN on
    the full distance matrix, which never uses the others).
    """
    _check_dbscan(eps, min_samples)
    return dbscan_labels(jaccard_distance(feats, k1, k2, max_dist=eps, reading=reading), eps,
                         min_samples)


def cluster_many(feature_sets: Sequence[np.ndarray | torch.Tensor], k1: int, k2: int, eps: float,
                 min_samples: int, reading: str = "reference") -> list[np.ndarray]:
    """``cluster_features`` of several feature sets (SimMC's views, Hi-MPC's levels).

    With more than one torch thread the sets are clustered side by side, so one
    set's single-threaded steps (Jaccard sums, DBSCAN) overlap another's; the
    labels are the same as one set at a time.
    """
    workers = min(len(feature_sets), torch.get_num_threads())

    def run(feats: np.ndarray | torch.Tensor) -> np.ndarray:
        return cluster_features(feats, k1, k2, eps, min_samples, reading)

    if workers <= 1:
        return [run(f) for f in feature_sets]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, feature_sets))


def walk_means(feats: torch.Tensor, walk: np.ndarray) -> torch.Tensor:
    """(W, D) unit-length mean feature of each walk 0..W-1 (``walk`` (N,) numbers every window)."""
    return torch.nn.functional.normalize(prototypes(feats, walk), dim=1)


def walk_groups(walk_feats: torch.Tensor | np.ndarray, k: int = 1, mutual: bool = True
                ) -> np.ndarray:
    """(W,) group of each walk: connected components of the mutual k-nearest-neighbour graph.

    Two walks join when each is among the other's k most similar walks (cosine);
    groups are the chains such pairs form (with k = 1, single walks and disjoint
    pairs: every walk has one nearest walk). A recording is one person, so its
    windows share one label and a walk is never split; mutual nearest walks are
    the likeliest same-person pairs, and requiring it both ways keeps a walk
    whose person has no other walk from being absorbed by its nearest neighbour
    (unless that walk picks it back).

    ``mutual=False``: one link per walk to its nearest walk, either way (the first
    partition of FINCH, Sarfraz et al. 2019): chains of any length, for collections
    with many walks per person.
    """
    from scipy.sparse.csgraph import connected_components

    w = torch.as_tensor(walk_feats, dtype=torch.float32)
    n = len(w)
    if n < 2 or k < 1:
        return np.arange(n, dtype=np.int64)
    nn = np.empty((n, min(k, n - 1)), dtype=np.int64)
    for a in range(0, n, 4096):  # row blocks: W x W similarities never held at once
        sim = w[a : a + 4096] @ w.T
        rows = torch.arange(len(sim), device=sim.device)
        sim[rows, rows + a] = -float("inf")
        nn[a : a + 4096] = torch.topk(sim, nn.shape[1], dim=1).indices.cpu().numpy()
    rows = np.repeat(np.arange(n), nn.shape[1])
    a = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, nn.ravel())), shape=(n, n))
    _, groups = connected_components(a.multiply(a.T) if mutual else a, directed=False)
    return groups.astype(np.int64)


def pseudo_labels(feature_sets: Sequence[torch.Tensor], walk: np.ndarray | None, cfg: object,
                  epoch: int, windows: torch.Tensor | np.ndarray | None = None) -> list[np.ndarray]:
    """One label array (N,) per feature set, from the source ``cfg.pseudo_labels`` names.

    ``walk`` (N,) says which training walk each window comes from (not who is
    in it: the walk number is part of every recording's file name, no identity
    label). "walk-groups" and "walk-chains" treat each walk as its own class for the first
    ``cfg.walk_warmup`` epochs, while the features are still too raw to match
    walks, then group walks by ``walk_groups`` (mutual or not) on each feature set's walk means.
    """
    source = getattr(cfg, "pseudo_labels", "clusters")
    if source == "clusters":
        return cluster_many(list(feature_sets), cfg.k1, cfg.k2, cfg.eps,  # type: ignore[attr-defined]
                            cfg.min_samples, cfg.k1_reading)  # type: ignore[attr-defined]
    if source not in PSEUDO_LABELS:
        raise ConfigError(f"pseudo-labels must be one of {', '.join(PSEUDO_LABELS)}, got {source!r}")
    if walk is None:
        raise ConfigError(f"pseudo-labels {source!r} need the walk of every training window")
    _, w = np.unique(np.asarray(walk), return_inverse=True)
    w = w.astype(np.int64)
    if source == "walks" or epoch < getattr(cfg, "walk_warmup", 0):
        return [w for _ in feature_sets]
    if source == "people":
        from vid2reid.association import associate, body_proportions, window_walk_frames

        body = None
        if windows is not None:
            xw = windows.detach().cpu().numpy() if isinstance(windows, torch.Tensor) else windows
            body = body_proportions(window_walk_frames(xw, w))
        views = []
        for fs in feature_sets:
            a = associate(walk_means(fs, w).cpu().numpy(), body, seed=epoch, with_confidence=True)
            views.append(confident_labels(a.labels, a.confidence))
        agreed = agreement(views)  # two walks share a class only where every view joins them
        return [agreed[w] for _ in feature_sets]
    mutual = source == "walk-groups"
    return [walk_groups(walk_means(fs, w), mutual=mutual)[w] for fs in feature_sets]


def confident_labels(labels: np.ndarray, confidence: np.ndarray, least: float = 0.5
                     ) -> np.ndarray:
    """Walk groups for training: a walk whose place is unsure (confidence below ``least``:
    its alternative is as likely) becomes a class of its own for this epoch, so a doubtful
    member does not pull a person's prototype; it rejoins when the grouping is sure of it."""
    out = np.asarray(labels, dtype=np.int64).copy()
    unsure = np.flatnonzero(np.asarray(confidence) < least)
    out[unsure] = out.max(initial=-1) + 1 + np.arange(len(unsure))
    return out


def agreement(labelings: Sequence[np.ndarray]) -> np.ndarray:
    """The finest grouping coarser than none of ``labelings``: walks share a group only where
    every labelling puts them together (the masked views of one epoch must agree)."""
    _, out = np.unique(np.stack([np.asarray(lab) for lab in labelings], axis=1), axis=0,
                       return_inverse=True)
    return out.ravel().astype(np.int64)


def prototypes(feats: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """(C, D) mean feature of each cluster 0..C-1 (noise, -1, is ignored)."""
    lab = torch.as_tensor(labels, device=feats.device, dtype=torch.long)
    keep = lab >= 0
    c = int(lab.max().item()) + 1 if keep.any() else 0
    sums = torch.zeros(c, feats.shape[1], dtype=feats.dtype, device=feats.device)
    sums.index_add_(0, lab[keep], feats[keep])
    counts = torch.bincount(lab[keep], minlength=c).clamp(min=1).to(feats.dtype)
    return sums / counts[:, None]


def jaccard_distance_loop(feats: np.ndarray | torch.Tensor, k1: int = 20, k2: int = 6,
                          reading: str = "reference") -> np.ndarray:
    """Dense N x N reference: the per-sample loops of the original re-ranking code.

    Only for tests and benchmarks (O(N^2) memory, slow); same definition as
    ``jaccard_distance``. As in the SimMC authors' code, the neighbour search
    returns ``k1`` columns (``reading="reference"``) or, as Zhong et al. define
    it, ``k1 + 1`` (``"zhong"``), and every later slice is cut to them.
    """
    if reading not in K1_READINGS:
        raise ConfigError(f"k1 reading must be one of {', '.join(K1_READINGS)}, got {reading!r}")
    x = l2_normalise(feats).astype(np.float64)
    n = x.shape[0]
    rank = np.empty((n, n), dtype=np.int64)
    for i in range(n):
        d = 2.0 - 2.0 * (x @ x[i])
        d[i] = -np.inf  # itself first
        rank[i] = np.argsort(d, kind="stable")
    rank = rank[:, :k1] if reading == "reference" else rank[:, :max(k1 + 1, k2)]

    def k_reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, : k + 1]
        backward = rank[forward, : k + 1]
        return forward[np.where(backward == i)[0]]

    kh = int(np.around(k1 / 2))
    nn_k1 = [k_reciprocal(i, k1) for i in range(n)]
    nn_half = [k_reciprocal(i, kh) for i in range(n)]
    v = np.zeros((n, n))
    for i in range(n):
        base = nn_k1[i]
        expanded = base
        for cand in base:
            cand_set = nn_half[cand]
            if len(np.intersect1d(cand_set, base)) > 2 / 3 * len(cand_set):
                expanded = np.append(expanded, cand_set)
        expanded = np.unique(expanded)
        w = np.exp(-(2.0 - 2.0 * (x[expanded] @ x[i])))
        v[i, expanded] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    inv_index = [np.where(v[:, k] != 0)[0] for k in range(n)]
    jac = np.zeros((n, n))
    for i in range(n):
        s = np.zeros(n)
        for k in np.where(v[i] != 0)[0]:
            s[inv_index[k]] += np.minimum(v[i, k], v[inv_index[k], k])
        jac[i] = 1.0 - s / (2.0 - s)
    return np.maximum(jac, 0.0)
