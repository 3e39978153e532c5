"""Walk association: which walks are one person, found without identity labels.

Used two ways: as training's default pseudo-labels (``--pseudo-labels people``,
``vid2reid.labels``) and by ``vid2reid group`` (``vid2reid.grouping``).

Every walk is one recording of one person, so walks are the units: a walk is
never split, only joined with others. Two cues describe a walk:

- **sequence features**: the mean (unit-length) feature of the walk's windows
  under the current encoder, which follows gait and posture;
- **body proportions**: the walk's median length of each bone (log, z-scored
  over the walks). The bones are read from the data, not from a layout's table:
  the tree over all joints whose pairs vary least in length within walks, in
  metres (a minimum spanning tree), so any layout works. Bone lengths do not change with
  gait, bags or speed.

Each cue is put on its own axes (features: their 16 principal axes; bones: one axis
per bone) and divided by its median distance between two random walks, so both start
with the same weight.

**The number of people** comes from a model of how walks vary, not from a threshold:
on every axis a walk is its person's mean plus noise, the person means spread around the
population's mean (a one-way random-effects model, both variances fitted per axis by
maximum likelihood). The person means are integrated out, so the marginal likelihood of a
grouping does not grow with its number of groups: joining two people inflates the noise,
splitting one shrinks it less than the extra spread costs. Candidate groupings are the
cuts of a merge tree: level after level, every two groups that are each other's nearest
group merge (root-mean-square distance between their walks, exact from the groups' means
and spreads; only the k nearest group means are searched, never a walks x walks matrix);
the likeliest cut is kept. Then, from that grouping, the noise is measured per axis and
the axes are turned so that noise and people are independent (bones share a person's
size) and weighted by how well they tell people apart (gait axes, which vary within a
person, fade), and the tree is built again; the likeliest grouping of these rounds is
kept. The first round's tree uses the bones alone: gait changes the features, not the
bones. Where people walk in several gaits the likeliest round splits each person by gait
(each gait is a tight cluster in the features); the first round's grouping is kept instead
when the bones themselves clearly favour it (``_bones_prefer``). Then the other way: a
group is split into the pieces that the first round's (bones') grouping and the likeliest
round's agree on, where the bones clearly favour them apart (``_bones_split``, the noise
refitted until nothing more splits): features can join people who walk alike, or whom a
training run learned as one, and bones change with neither. A walk the tree left alone then
joins its nearest group where the fitted model finds it likelier there (``join_alone``;
training leaves it alone). With ``people=N`` the chosen round's tree is cut at N groups.

Plausible range of the number of people: the counts whose likelihood lies within 1.92
of the best (a 95 % likelihood interval), every round's answer, and the counts reached by
moving every unsure walk (confidence below 0.5) to its alternative.

Per-walk confidence: under the fitted model, the probability that a walk belongs where it
was put rather than to its best alternative (the nearest other group, or a person of its
own; for a walk alone, the nearest group), with equal prior odds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vid2reid.errors import ConfigError

K_GRAPH = 10  # nearest group means searched per walk or group (then ranked exactly)
CUTS = 60  # candidate cuts of the tree, group counts spaced evenly in log scale
DENSE_BLOCK = 1_000_000  # up to this many walk x group pairs, all pairs are compared at once
SEARCH_DIMS = 32  # dimensions (principal axes) of that search for nearest walks
NEIGHBOURS = 20  # many walks: a walk's nearest other group is sought among its 20 nearest walks
FEATURE_AXES = 16  # sequence features enter on this many principal axes
ROUNDS = 4  # tree -> likeliest cut -> axis weights from that cut -> tree, at most this often
RHO_GRID = np.geomspace(1e-3, 1e4, 120)  # spread of person means / noise, searched per axis
PLAUSIBLE = 1.92  # log-likelihood below the best that a number of people stays plausible (chi2_1 95 %)


@dataclass
class Association:
    """Groups of walks: ``labels`` (W,) 0..P-1, ``confidence`` (W,) in [0, 1]."""

    labels: np.ndarray
    confidence: np.ndarray
    silhouette: float  # mean silhouette of the chosen cut (label-free quality)
    people_range: tuple[int, int] = (0, 0)  # plausible numbers of people (likelihood interval)

    @property
    def people(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def singletons(self) -> int:
        return int((np.bincount(self.labels) == 1).sum()) if len(self.labels) else 0


# ---------------------------------------------------------------------------
# Body proportions

def pair_lengths(frames: np.ndarray) -> np.ndarray:
    """(T, J(J-1)/2) distance of every joint pair in every frame of (T, J, 3) joints."""
    i, j = np.triu_indices(frames.shape[1], k=1)
    return np.linalg.norm(frames[:, i] - frames[:, j], axis=2)


def _frame_valid(frames: np.ndarray) -> np.ndarray:
    return np.isfinite(frames).all(axis=(1, 2)) & (np.abs(frames).sum(axis=(1, 2)) > 0)


def walk_pair_stats(walk_frames: Sequence[np.ndarray], max_frames: int = 200
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per walk: median length (W, P) and coefficient of variation (W, P) of every joint pair.

    At most ``max_frames`` frames per walk, evenly spaced (medians need no more).
    Frames with missing joints (NaN or all zero) are left out.
    """
    med, cv = [], []
    for fr in walk_frames:
        fr = np.asarray(fr, dtype=np.float32)
        fr = fr[_frame_valid(fr)]
        if len(fr) == 0:
            raise ConfigError("a walk has no frame with every joint present")
        if len(fr) > max_frames:
            fr = fr[np.linspace(0, len(fr) - 1, max_frames).astype(int)]
        d = pair_lengths(fr)
        m = np.median(d, axis=0)
        med.append(m)
        cv.append(d.std(axis=0) / np.maximum(d.mean(axis=0), 1e-9))
    return np.stack(med), np.stack(cv)


def rigid_pairs(cv: np.ndarray, med: np.ndarray, num_joints: int) -> np.ndarray:
    """Indices (into the J(J-1)/2 pairs) of the skeleton's bones, read from the data: the
    tree over all joints whose pairs vary least in length within walks (minimum spanning
    tree of the median of ``cv`` over walks), so every joint is attached by its most rigid
    link, J - 1 pairs. ``body_proportions`` passes the spread in metres (coefficient of
    variation x median length): relative to its length a pair spanning two bones varies
    less than either bone, in metres more, so the spread in metres finds the bones."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    score = np.median(cv, axis=0)
    typical = np.median(med, axis=0)
    score = np.where(typical > 1e-6 * max(float(typical.max()), 1e-12), score, 1e6)
    i, j = np.triu_indices(num_joints, k=1)
    w = np.zeros((num_joints, num_joints))
    w[i, j] = score + 1e-9  # zero weights would read as missing edges
    tree = minimum_spanning_tree(w).tocoo()
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j))}
    return np.sort([index[(min(a, b), max(a, b))] for a, b in zip(tree.row, tree.col)])


def body_proportions(walk_frames: Sequence[np.ndarray]) -> np.ndarray:
    """(W, B) z-scored log median length of each rigid joint pair of every walk.

    ``walk_frames``: per walk, (T, J, 3) joints (any layout, root-relative or not).
    """
    if len(walk_frames) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    med, cv = walk_pair_stats(walk_frames)
    keep = rigid_pairs(cv * med, med, np.asarray(walk_frames[0]).shape[1])
    logs = np.log(np.maximum(med[:, keep], 1e-6))
    sd = logs.std(axis=0)
    return ((logs - logs.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0)).astype(np.float32)


def window_walk_frames(x: np.ndarray, walk: np.ndarray, per_walk: int = 40) -> list[np.ndarray]:
    """Frames of each walk 0..W-1 from its training windows (N, f, J, 3), at most ``per_walk``
    windows each (evenly spaced), for ``body_proportions``."""
    walk = np.asarray(walk)
    order = np.argsort(walk, kind="stable")
    bounds = np.searchsorted(walk[order], np.arange(int(walk.max()) + 2))
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        if len(idx) > per_walk:
            idx = idx[np.linspace(0, len(idx) - 1, per_walk).astype(int)]
        out.append(np.asarray(x[idx]).reshape(-1, *x.shape[2:]))
    return out


# ---------------------------------------------------------------------------
# Combining the cues

def _pair_scale(v: np.ndarray, rng: np.random.Generator, pairs: int = 20000) -> float:
    """Median distance between two walks drawn at random (on up to ``pairs`` pairs)."""
    n = len(v)
    if n < 2:
        return 1.0
    i = rng.integers(0, n, pairs)
    j = (i + rng.integers(1, n, pairs)) % n  # never i itself
    s = float(np.median(np.linalg.norm(v[i] - v[j], axis=1)))
    return s if s > 1e-9 else 1.0


# ---------------------------------------------------------------------------
# Hierarchy and cut

def _nearest_per_row(rows: np.ndarray, cols: np.ndarray, d2: np.ndarray, n: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For candidate pairs (rows, cols) with squared distances d2: each of the n rows' nearest
    column and its distance (-1 and inf for a row without a candidate; ties: the smaller column)."""
    order = np.lexsort((cols, d2, rows))
    rows, cols, d2 = rows[order], cols[order], d2[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    best = np.full(n, -1, dtype=np.int64)
    out = np.full(n, np.inf)
    best[rows[first]], out[rows[first]] = cols[first], d2[first]
    return best, out


def _nearest_groups(x: np.ndarray, mu: np.ndarray, s2: np.ndarray, k: int, exclude: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each row of x: the group g (of means mu, spreads s2) with the smallest
    ``|x - mu_g|^2 + s2_g`` (the mean squared distance from x to g's walks) among the k
    nearest means, skipping ``exclude[i]``; returns (group, squared distance)."""
    from sklearn.neighbors import NearestNeighbors

    g = len(mu)
    kk = min(k + (exclude is not None), g)
    if len(x) * g <= DENSE_BLOCK:  # small: one exact block is faster than a search structure
        d2 = ((x ** 2).sum(axis=1)[:, None] + (mu ** 2).sum(axis=1)[None, :] - 2.0 * x @ mu.T
              + s2[None, :])
        idx = np.broadcast_to(np.arange(g), d2.shape)
        d2 = np.maximum(d2, s2[None, :])
    else:
        dist, idx = NearestNeighbors(n_neighbors=kk).fit(mu).kneighbors(x)
        d2 = dist.astype(np.float64) ** 2 + s2[idx]
    if exclude is not None:
        d2[idx == exclude[:, None]] = np.inf
    j = np.argmin(d2, axis=1)
    rows = np.arange(len(x))
    return idx[rows, j], d2[rows, j]


def _nearest_among(x: np.ndarray, own: np.ndarray, cand: np.ndarray, mu: np.ndarray,
                   s2: np.ndarray, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Like ``_nearest_groups`` (excluding each row's own group ``own``) but only among the
    candidate groups ``cand`` (rows, K): the groups of each walk's nearest walks, for many
    walks. Rows with no candidate fall back to the search over all group means."""
    n, g = len(x), len(mu)
    rows = np.repeat(np.arange(n, dtype=np.int64), cand.shape[1])
    grp = cand.ravel().astype(np.int64)
    keep = grp != own[rows]
    key = np.unique(rows[keep] * g + grp[keep])  # each (walk, group) once, sorted by walk
    r, c = key // g, key % g
    d2 = np.empty(len(key))
    for a in range(0, len(key), chunk):
        diff = x[r[a:a + chunk]] - mu[c[a:a + chunk]]
        d2[a:a + chunk] = np.einsum("ij,ij->i", diff, diff) + s2[c[a:a + chunk]]
    best, out = _nearest_per_row(r, c, d2, n)
    lost = best < 0
    if lost.any() and g > 1:
        best[lost], out[lost] = _nearest_groups(x[lost], mu, s2, K_GRAPH, exclude=own[lost])
    return best, out


def walk_neighbours(v: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray | None:
    """(W, k) nearest walks of every walk, for collections too big to compare every walk
    with every group (None below that size: the exact search is used)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(v)
    if n * n <= DENSE_BLOCK:
        return None
    x = np.asarray(v, dtype=np.float32)
    if x.shape[1] > SEARCH_DIMS:  # candidates only: the principal axes suffice to find them
        from sklearn.decomposition import PCA

        x = PCA(SEARCH_DIMS, svd_solver="randomized", random_state=0).fit_transform(x)
    return NearestNeighbors(n_neighbors=min(k + 1, n)).fit(x).kneighbors(
        x, return_distance=False)[:, 1:]


@dataclass
class _Groups:
    labels: np.ndarray  # (W,) group of each walk
    mu: np.ndarray  # (G, D) mean vector of each group
    s2: np.ndarray  # (G,) mean squared distance of a group's walks to its mean
    size: np.ndarray  # (G,) walks per group


def _singletons(v: np.ndarray) -> _Groups:
    n = len(v)
    return _Groups(np.arange(n), v.astype(np.float64), np.zeros(n), np.ones(n))


def _merge(gr: _Groups, a: np.ndarray, b: np.ndarray) -> _Groups:
    """Groups b[i] joined into a[i] (disjoint pairs); means and spreads updated exactly."""
    g = len(gr.mu)
    new = np.arange(g)
    new[b] = a
    _, new = np.unique(new, return_inverse=True)
    m = int(new.max()) + 1
    size = np.bincount(new, weights=gr.size, minlength=m)
    mu = np.zeros((m, gr.mu.shape[1]))
    np.add.at(mu, new, gr.mu * gr.size[:, None])
    mu /= size[:, None]
    second = np.bincount(new, weights=(gr.s2 + (gr.mu ** 2).sum(axis=1)) * gr.size, minlength=m)
    s2 = np.maximum(second / size - (mu ** 2).sum(axis=1), 0.0)
    return _Groups(new[gr.labels], mu, s2, size)


def merge_levels(v: np.ndarray, k: int = K_GRAPH, nbr: np.ndarray | None = None
                 ) -> Iterator[tuple[_Groups, np.ndarray, np.ndarray, np.ndarray]]:
    """The hierarchy, one level at a time (a generator): every pair of groups that are each
    other's nearest group merges (distance: root-mean-square distance between their walks,
    from ``|mu_a - mu_b|^2 + s2_a + s2_b``, exact from the groups' means and spreads).

    Level 0 is every walk alone; level 1 joins mutual nearest walks (as ``walk-groups``).
    Yields, per level, (groups, then the next level's merges a, b and their distances);
    the last level has no merges. Only group means are searched (k nearest), never a
    walks x walks matrix.
    """
    gr = _singletons(v)
    while True:
        g = len(gr.mu)
        if g < 2:
            yield gr, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
            return
        if nbr is not None and g * g > DENSE_BLOCK:
            best, d2 = _nearest_linked_groups(gr, nbr)
        else:
            best, d2 = _nearest_groups(gr.mu, gr.mu, gr.s2, k, exclude=np.arange(g))
        d2 = d2 + gr.s2
        mutual = (best[best] == np.arange(g)) & (np.arange(g) < best)
        a = np.flatnonzero(mutual)
        yield gr, a, best[a], np.sqrt(d2[a])
        if len(a) == 0:
            return
        gr = _merge(gr, a, best[a])


def _nearest_linked_groups(gr: _Groups, nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group's nearest other group (|mu_a - mu_b|^2 + s2_b) among the groups its walks'
    nearest walks belong to (groups with none: among all group means)."""
    g = len(gr.mu)
    a = np.repeat(gr.labels, nbr.shape[1])
    b = gr.labels[nbr.ravel()]
    keep = a != b
    key = np.unique(a[keep] * g + b[keep])
    a, b = key // g, key % g
    d2 = np.empty(len(a))
    for i in range(0, len(a), 65536):
        diff = gr.mu[a[i:i + 65536]] - gr.mu[b[i:i + 65536]]
        d2[i:i + 65536] = np.einsum("ij,ij->i", diff, diff) + gr.s2[b[i:i + 65536]]
    best, out = _nearest_per_row(a, b, d2, g)
    lost = best < 0
    if lost.any():
        best[lost], out[lost] = _nearest_groups(gr.mu[lost], gr.mu, gr.s2, K_GRAPH,
                                                exclude=np.flatnonzero(lost))
    return best, out


def rms_silhouettes(v: np.ndarray, gr: _Groups, k: int = K_GRAPH,
                    nbr: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """(W,) silhouette of every walk (or of ``rows`` only) by root-mean-square distances:
    a = to the other walks of its group, b = to the walks of the nearest other group; 0 for
    a walk alone."""
    if rows is not None:
        v, nbr = v[rows], (None if nbr is None else nbr[rows])
        own = gr.labels[rows]
    else:
        own = gr.labels
    x = np.asarray(v, dtype=np.float64)
    n_own = gr.size[own]
    a2 = ((x - gr.mu[own]) ** 2).sum(axis=1) + gr.s2[own]
    a = np.sqrt(np.maximum(a2 * n_own / np.maximum(n_own - 1, 1), 0.0))
    if len(gr.mu) < 2:
        return np.zeros(len(x))
    if nbr is not None and len(x) * len(gr.mu) > DENSE_BLOCK:
        _, b2 = _nearest_among(x, own, gr.labels[nbr], gr.mu, gr.s2)
    else:
        _, b2 = _nearest_groups(x, gr.mu, gr.s2, k, exclude=own)
    b = np.sqrt(b2)
    sil = np.where(np.isfinite(b), (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return np.where(n_own > 1, sil, 0.0)


def associate(feats: np.ndarray | None, body: np.ndarray | None, people: int | None = None,
              seed: int = 0, with_confidence: bool = False, join_alone: bool = True,
              prior: str | None = None) -> Association:
    """Group walks into people from their features and/or body proportions (no labels).

    ``feats`` (W, D) walk features, ``body`` (W, B) from ``body_proportions``; ``people``
    forces the number of groups. Returns labels (W,) numbered by first appearance, the
    plausible range of the number of people and (``with_confidence``) a confidence per walk.
    ``join_alone``: a walk the tree left alone joins its nearest group where the fitted model
    finds it likelier there (training passes False: a wrong join costs it more than a walk
    left alone, and it trains doubtful walks as their own class anyway).
    ``prior="crp"`` adds a prior over groupings to every cut's likelihood (``_crp_log_prior``):
    an experiment ``benchmarks/people.py --prior crp`` measures, not the default.
    The number of people is the likeliest cut under a random-effects model, or the bones'
    own grouping where the bones clearly favour it, and groups the bones clearly say hold
    several people are split (module docstring); a walk is never split.
    """
    if prior not in (None, "crp"):
        raise ConfigError(f"unknown prior {prior!r} (None or 'crp')")
    axes, blocks = cue_axes(feats, body, seed)
    n = len(axes)
    if people is not None and not 1 <= people <= max(n, 1):
        raise ConfigError(f"--people must lie in 1..{n} (the number of walks), got {people}")
    if n < 2:
        return Association(np.zeros(n, np.int64), np.ones(n), 0.0, (n, n))
    weights = np.ones(axes.shape[1])
    if body is not None and len(blocks) > 1:
        weights[blocks[0]] = 0.0  # the first tree on the bones alone: gait does not change them
    best, first, found = _rounds(axes, blocks, weights, prior)
    pieces = first[1] * (int(best[1].max()) + 1) + best[1]  # what both groupings join
    if body is not None and feats is not None and _bones_prefer(first, best, blocks[-1]):
        best = first
    _, labels, span, x, v, nbr = best
    if people is not None:  # the chosen round's axes, its tree cut at N groups
        pairs, _ = merge_tree(v, nbr)
        labels = cut(pairs, n, max(0, min(n - people, len(pairs))))
        span = (people, people)
    elif body is not None and feats is not None:
        for _ in range(ROUNDS):  # the noise refitted on the split groups, until none splits
            split = _bones_split(x[:, blocks[-1]], labels, pieces)
            if _same_partition(split, labels):
                break
            labels = split
    gr = groups_of(v, labels)
    conf = None
    if people is None and join_alone:  # a walk alone joins its nearest group, if likelier there
        conf, other = _confidence_and_rival(x, v, gr, nbr)
        join = (gr.size[gr.labels] == 1) & (conf < 0.5) & (other >= 0)
        if join.any():
            labels = gr.labels.copy()
            labels[join] = other[join]
            gr, conf = groups_of(v, labels), None
    sil = float(rms_silhouettes(v, gr, nbr=nbr).mean())
    if not with_confidence:
        conf = np.ones(n)
    elif conf is None:  # not yet computed for these groups
        conf = walk_confidence(x, v, gr, nbr)
    if people is None:
        # plausible: the likelihood interval, every round's answer, and every unsure walk
        # (confidence below one half) moved to its rival: out of its group or into another
        alone = gr.size[gr.labels] == 1
        unsure = conf < 0.5 if with_confidence else np.zeros(n, bool)
        count = len(gr.mu)
        span = (max(1, min(span[0], *found, count - int((unsure & alone).sum()))),
                min(n, max(span[1], *found, count + int((unsure & ~alone).sum()))))
    return Association(_renumber(labels), conf, sil, span)


def _predictive(x: np.ndarray, mu: np.ndarray, m: np.ndarray, s2: np.ndarray, t2: np.ndarray
                ) -> np.ndarray:
    """Log density of walks x (N, A) as one more walk of groups of m other walks with mean mu
    (N, A; grand mean 0), under the random-effects model; m = 0: a person not seen yet."""
    k = (m[:, None] * t2) / (s2 + m[:, None] * t2)  # shrinkage of the group mean
    var = s2 + t2 * (1 - k)
    return -0.5 * (((x - k * mu) ** 2) / var + np.log(2 * np.pi * var)).sum(axis=1)


def walk_confidence(axes: np.ndarray, v: np.ndarray, gr: _Groups, nbr: np.ndarray | None = None
                    ) -> np.ndarray:
    """(W,) probability, under the fitted random-effects model (``_profile``), that a walk
    belongs where it was put rather than to the best alternative: its nearest other group,
    or a person of its own (for a walk alone: its nearest group). Equal prior odds."""
    return _confidence_and_rival(axes, v, gr, nbr)[0]


def _confidence_and_rival(axes: np.ndarray, v: np.ndarray, gr: _Groups,
                          nbr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``walk_confidence``, and each walk's nearest other group (-1 where there is none)."""
    x = axes - axes.mean(axis=0)
    _, s2, t2 = _profile(axes, gr.labels)
    lab = gr.labels
    m = gr.size[lab] - 1
    sums = np.zeros((len(gr.mu), x.shape[1]))
    np.add.at(sums, lab, x)
    own_mu = (sums[lab] - x) / np.maximum(m, 1)[:, None]
    own = _predictive(x, own_mu, m, s2, t2)
    alone = _predictive(x, np.zeros_like(x), np.zeros(len(x)), s2, t2)
    if len(gr.mu) > 1:
        if nbr is not None and len(v) * len(gr.mu) > DENSE_BLOCK:
            other, _ = _nearest_among(np.asarray(v, np.float64), lab, lab[nbr], gr.mu, gr.s2)
        else:
            other, _ = _nearest_groups(np.asarray(v, np.float64), gr.mu, gr.s2, K_GRAPH,
                                       exclude=lab)
        near = _predictive(x, sums[other] / gr.size[other][:, None], gr.size[other], s2, t2)
    else:
        other, near = np.full(len(x), -1), np.full(len(x), -np.inf)
    single = m == 0
    rival = np.where(single, near, np.maximum(near, alone))
    mine = np.where(single, alone, own)
    return 1.0 / (1.0 + np.exp(np.clip(rival - mine, -50, 50))), np.asarray(other)


def _rounds(axes: np.ndarray, blocks: list[slice], weights: np.ndarray,
            prior: str | None = None) -> tuple[tuple, tuple, list[int]]:
    """From one start (axis weights): tree -> likeliest cut -> noise axes and weights from
    that cut -> tree, until a grouping repeats (at most ``ROUNDS``). Returns the likeliest
    round and the first round, each as (log likelihood, labels, likelihood interval of the
    count, its axes, its weighted axes, its nearest walks), and every round's number of
    groups."""
    n = len(axes)
    basis, logdet = np.eye(axes.shape[1]), 0.0
    best: tuple | None = None
    first: tuple | None = None
    seen: list[np.ndarray] = []
    found: list[int] = []
    for _ in range(ROUNDS):
        x = axes @ basis
        v = x * weights
        nbr = walk_neighbours(v)
        pairs, _ = merge_tree(v, nbr)
        ll, labels, span = _likeliest_cut(x, pairs, prior)
        ll += n * logdet  # the density of the walks themselves: every round on one scale
        found.append(len(np.unique(labels)))
        if best is None or ll > best[0]:
            best = (ll, labels, span, x, v, nbr)
        if first is None:
            first = best
        if any(_same_partition(labels, old) for old in seen):
            break
        seen.append(labels)
        rotation = within_basis(axes, labels, blocks)
        if rotation is None:  # no two walks together: nothing to learn the noise from
            break
        basis, logdet = rotation
        weights = _axis_weights(axes @ basis, labels)
    assert best is not None and first is not None
    return best, first, found


def _bones_prefer(first: tuple, best: tuple, bones: slice) -> bool:
    """Whether the first round's grouping (a tree over the bones alone) is kept over the
    likeliest round's (features joined in): when, on the bones' own axes, it is the likelier
    by more than ``PLAUSIBLE`` per group it has fewer, so that its merges are, on average,
    each as sure as a 95 % likelihood interval asks.

    Where people walk in several gaits, the features split each person by gait and the
    full likelihood favours that split (gait clusters are tight in the features); the bones
    do not change with gait and join the gaits back, each join clearly. Where the bones are
    weak (few, noisy walks), the bones' tree joins people it cannot tell apart and the
    bones barely favour it, so the features' grouping stays."""
    fewer = len(np.unique(best[1])) - len(np.unique(first[1]))
    if fewer <= 0:
        return False
    x = best[3][:, bones]  # the bones on the likeliest round's noise axes
    gain = _profile(x, first[1])[0] - _profile(x, best[1])[0]
    return gain > PLAUSIBLE * fewer


def _one_person_ll(m: np.ndarray, total: np.ndarray, squares: np.ndarray, s2: np.ndarray,
                   t2: np.ndarray) -> np.ndarray:
    """Log marginal likelihood of sets of walks as one person each, from their counts m (K,),
    sums (K, A) and sums of squares (K, A) (grand mean 0), with the random-effects model's
    variances fixed: noise s2, spread of person means t2 (A,)."""
    m = np.asarray(m, dtype=np.float64)[:, None]
    quad = squares / s2 - t2 * total ** 2 / (s2 * (s2 + m * t2))
    return -0.5 * (quad + (m - 1) * np.log(s2) + np.log(s2 + m * t2)).sum(axis=1)


def _bones_split(bones: np.ndarray, labels: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Each group split into the pieces ``by`` makes of it (what the bones' grouping and the
    likeliest round's both join), where the bones alone find the pieces likelier apart by more
    than ``PLAUSIBLE`` each (random-effects likelihood with the variances fitted to the whole
    grouping, then held fixed): a group's pieces are joined, cheapest join first, while a join
    costs less than that (``_join_pieces``).

    Features can join people who walk alike (one gait, or a training run that learned its
    own wrong groups and then finds them again); the bones change with neither, so where they
    clearly say a group holds several people, it is split. Two groupings that err
    independently rarely join the same two people, so their pieces are mostly one person
    each. The pieces come from groupings over all walks, not from a tree fitted inside each
    group, which finds some split of a big group likelier than none. Weak bones (few, noisy
    walks) rarely favour a split: their noise, fitted on the grouping, is large."""
    x = bones - bones.mean(axis=0)
    _, s2, t2 = _profile(x, labels)
    s2 = np.maximum(s2, 1e-12)
    _, lab = np.unique(labels, return_inverse=True)
    _, by = np.unique(by, return_inverse=True)
    out = lab.copy()
    nxt = int(lab.max()) + 1
    key = lab.astype(np.int64) * (int(by.max()) + 1) + by
    order = np.lexsort((by, lab))
    bounds = np.searchsorted(lab[order], np.arange(int(lab.max()) + 2))
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        _, piece = np.unique(key[idx], return_inverse=True)
        if piece.max() == 0:
            continue
        k = int(piece.max()) + 1
        m = np.bincount(piece, minlength=k).astype(np.float64)
        total, squares = np.zeros((k, x.shape[1])), np.zeros((k, x.shape[1]))
        np.add.at(total, piece, x[idx])
        np.add.at(squares, piece, x[idx] ** 2)
        of = _join_pieces(m, total, squares, s2, t2)
        part = of[piece]
        out[idx[part > 0]] = nxt + part[part > 0] - 1
        nxt += int(of.max())
    return out


def _join_pieces(m: np.ndarray, total: np.ndarray, squares: np.ndarray, s2: np.ndarray,
                 t2: np.ndarray) -> np.ndarray:
    """Pieces (counts, sums, sums of squares) joined greedily: the join that costs the least
    log likelihood (``_one_person_ll``) first, while it costs at most ``PLAUSIBLE``. Returns
    each piece's part, 0.. (K,). Each piece's cheapest join is kept up to date, so a group of
    K pieces costs about K x K evaluations, not K x K per join."""
    k = len(m)
    m, total, squares = m.copy(), total.copy(), squares.copy()
    ll = _one_person_ll(m, total, squares, s2, t2)

    def join_cost(i: int, rest: np.ndarray) -> np.ndarray:
        return ll[i] + ll[rest] - _one_person_ll(m[i] + m[rest], total[i] + total[rest],
                                                 squares[i] + squares[rest], s2, t2)

    cost = np.full((k, k), np.inf)
    for i in range(k - 1):
        cost[i, i + 1:] = join_cost(i, np.arange(i + 1, k))
    cost = np.minimum(cost, cost.T)
    rows = np.arange(k)
    near = cost.argmin(axis=1)  # each piece's cheapest join
    alive = np.ones(k, bool)
    of = np.arange(k)  # the piece each piece has been joined into
    while True:
        i = int(np.argmin(cost[rows, near]))
        j = int(near[i])
        if not cost[i, j] <= PLAUSIBLE:
            return np.unique(of, return_inverse=True)[1]
        ll[i] = ll[i] + ll[j] - cost[i, j]
        m[i], total[i], squares[i] = m[i] + m[j], total[i] + total[j], squares[i] + squares[j]
        alive[j], of[of == j] = False, i
        cost[j, :] = cost[:, j] = np.inf
        rest = np.flatnonzero(alive & (rows != i))
        cost[i, rest] = cost[rest, i] = join_cost(i, rest)
        for r in np.flatnonzero((near == i) | (near == j)):  # their cheapest join moved or went
            near[r] = cost[r].argmin()
        near[cost[:, i] < cost[rows, near]] = i


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(_renumber(a), _renumber(b)))


def cue_axes(feats: np.ndarray | None, body: np.ndarray | None, seed: int = 0
             ) -> tuple[np.ndarray, list[slice]]:
    """(W, A) each cue on its principal axes, centred: unit features on at most
    ``FEATURE_AXES`` axes, body proportions on all of theirs; each cue divided by its median
    distance between random walks (``_pair_scale``) so that both start with the same weight.
    Also the columns of each cue (features first, then body proportions)."""
    rng = np.random.default_rng(seed)
    parts = []
    blocks: list[slice] = []
    for cue, unit, most in ((feats, True, FEATURE_AXES), (body, False, None)):
        if cue is None or cue.shape[1] == 0:
            continue
        c = np.asarray(cue, dtype=np.float64)
        if unit:
            c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        c = c - c.mean(axis=0)
        keep = min(c.shape[1], max(len(c) - 1, 1), most or c.shape[1])
        if unit and keep < c.shape[1]:  # features: their principal axes; bones stay bones
            from sklearn.decomposition import PCA

            c = PCA(keep, svd_solver="randomized" if len(c) > 2000 else "full",
                    random_state=seed).fit_transform(c)
        start = sum(p.shape[1] for p in parts)
        parts.append(c / _pair_scale(c, rng))
        blocks.append(slice(start, start + c.shape[1]))
    if not parts:
        raise ConfigError("walk association needs sequence features or body proportions")
    return np.concatenate(parts, axis=1), blocks


def _group_sums(axes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per axis the within-group sum of squares (A,), and per distinct group size the
    sizes (S,) with their counts (S,) and summed ``n * (mean - grand mean)^2`` (S, A)."""
    x = axes - axes.mean(axis=0)
    g = groups_of(x, labels)
    lab, mu, size = g.labels, g.mu, g.size
    within = ((x - mu[lab]) ** 2).sum(axis=0)
    sizes, inv, counts = np.unique(size, return_inverse=True, return_counts=True)
    between = np.zeros((len(sizes), x.shape[1]))
    np.add.at(between, inv, size[:, None] * mu ** 2)
    return within, np.stack([sizes, counts]), between


def _profile(axes: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log marginal likelihood of a grouping under the random-effects model (each axis:
    walk = person mean + noise, noise variance s2, person means spread t2 around the
    grand mean, both fitted per axis by maximum likelihood), and the fitted (A,) s2, t2.

    The person means are integrated out, so a grouping is not rewarded for its number of
    groups: merging two people raises the noise variance, splitting one lowers the spread
    of person means less than it costs. With every walk alone it equals any other model of
    the same total variance (no noise is identifiable)."""
    within, (sizes, counts), between = _group_sums(axes, labels)
    n = float(len(axes))
    rho = RHO_GRID[:, None]  # t2 / s2
    shrink = 1.0 / (1.0 + rho * sizes[None, :])  # (R, S)
    s2 = (within[None, :] + shrink @ between) / n  # (R, A) best noise variance for each rho
    logdet = -(np.log(shrink) * counts[None, :]).sum(axis=1)  # (R,) sum_g log(1 + n_g rho)
    f = n * np.log(np.maximum(s2, 1e-300)) + logdet[:, None]
    k = np.argmin(f, axis=0)
    cols = np.arange(axes.shape[1])
    ll = float(-0.5 * (f[k, cols].sum() + n * axes.shape[1] * (1.0 + np.log(2 * np.pi))))
    return ll, s2[k, cols], RHO_GRID[k] * s2[k, cols]


def _crp_log_prior(labels: np.ndarray) -> float:
    """Log probability of a grouping under a Chinese-restaurant process whose concentration is
    fitted by maximum likelihood to the grouping (0 for one group or every walk alone).

    Measured, not the default (methods.md): a tree built on the axes a grouping weights most
    can carve a person's many walks into tight pieces, and on those same axes the pieces look
    likelier than the person; this prior costs such a cut its many small groups."""
    from scipy.optimize import brentq
    from scipy.special import digamma, gammaln

    m = np.bincount(np.unique(labels, return_inverse=True)[1]).astype(np.float64)
    n, k = float(m.sum()), len(m)
    if k in (1, int(n)):
        return 0.0

    def expected_groups_minus_k(log_alpha: float) -> float:  # increasing in alpha
        a = np.exp(log_alpha)
        return float(a * (digamma(a + n) - digamma(a))) - k

    # the root lies between alpha ~ 0 (one group expected) and ~150 n^2 (n - 1/300 expected)
    log_alpha = brentq(expected_groups_minus_k, -30.0, 2 * np.log(n) + 5.0, xtol=1e-10)
    a = np.exp(log_alpha)
    return float(k * log_alpha + gammaln(m).sum() - gammaln(a + n) + gammaln(a))


def _likeliest_cut(axes: np.ndarray, pairs: np.ndarray, prior: str | None = None
                   ) -> tuple[float, np.ndarray, tuple[int, int]]:
    """The cut of the merge tree with the highest marginal likelihood (``_profile``; plus the
    log prior of ``_crp_log_prior`` with ``prior="crp"``), and the range of group counts whose
    likelihood lies within ``PLAUSIBLE`` log units of it."""
    n = len(axes)

    def score(labels: np.ndarray) -> float:
        return _profile(axes, labels)[0] + (_crp_log_prior(labels) if prior == "crp" else 0.0)

    fewest = max(n - len(pairs), 1)
    counts = np.unique(np.round(np.geomspace(n, fewest, CUTS)).astype(int))[::-1]
    lls = np.array([score(cut(pairs, n, max(0, min(n - int(p), len(pairs))))) for p in counts])
    i = int(np.argmax(lls))
    hi, lo = counts[max(i - 1, 0)], counts[min(i + 1, len(counts) - 1)]
    fine = np.unique(np.concatenate([np.arange(lo, hi + 1) if hi - lo <= 4 * CUTS else
                                     np.round(np.linspace(lo, hi, 4 * CUTS)).astype(int),
                                     counts]))[::-1]
    labels = [cut(pairs, n, max(0, min(n - int(p), len(pairs)))) for p in fine]
    lls = np.array([score(lab) for lab in labels])
    i = int(np.argmax(lls))
    near = fine[lls >= lls[i] - PLAUSIBLE]
    return float(lls[i]), labels[i], (int(near.min()), int(near.max()))


def within_basis(axes: np.ndarray, labels: np.ndarray, blocks: list[slice] | None = None
                 ) -> tuple[np.ndarray, float] | None:
    """(A, A) axes on which a grouping's within-person noise is white and the spread of
    person means is uncorrelated, and log |det| of that map; None when no group has two walks.

    The noise is taken as independent from axis to axis of each cue (bone to bone: a walk's
    estimation error in one bone says nothing of another; features: their principal axes),
    with its variance per axis measured within the groups; the people are not (bones share a
    person's size): the generalised eigenvectors of the total covariance against that
    diagonal noise make both independent, as the per-axis model of ``_profile`` assumes.
    Only A noise variances are fitted, not A x A, so a grouping cannot shape the axes to
    itself. With ``blocks`` each cue is rotated on its own."""
    if blocks is not None and len(blocks) > 1:
        out = np.zeros((axes.shape[1], axes.shape[1]))
        logdet = 0.0
        for b in blocks:
            r = within_basis(axes[:, b], labels)
            if r is None:
                return None
            out[b, b] = r[0]
            logdet += r[1]
        return out, logdet
    from scipy.linalg import eigh

    x = axes - axes.mean(axis=0)
    _, lab = np.unique(labels, return_inverse=True)
    m, n = int(lab.max()) + 1, len(x)
    if n - m < 1:
        return None
    mu = np.zeros((m, x.shape[1]))
    np.add.at(mu, lab, x)
    mu /= np.bincount(lab, minlength=m)[:, None]
    noise = ((x - mu[lab]) ** 2).sum(axis=0) / (n - m)
    noise = np.maximum(noise, 1e-9 * max(float(noise.sum()), 1e-12))
    st = x.T @ x / max(n - 1, 1)
    _, vecs = eigh(st, np.diag(noise))
    return vecs, float(np.linalg.slogdet(vecs)[1])


def _axis_weights(axes: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Per axis, how much it tells people apart under a grouping: the square root of
    ``t2 / (s2 (s2 + t2))``, the weight of a squared difference in the log likelihood ratio
    of "one person" against "two people". Axes that vary within a person (gait, under these
    groups) fade, axes that separate people count. None when no group has two walks."""
    if len(np.unique(labels)) == len(labels):
        return None
    _, s2, t2 = _profile(axes, labels)
    w = np.sqrt(t2 / np.maximum(s2 * (s2 + t2), 1e-300))
    return w / max(float(np.sqrt((w ** 2).mean())), 1e-12)


def merge_tree(v: np.ndarray, nbr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every merge of the hierarchy as (M, 2) walks whose groups it joins, and its distance
    (M,), in order of distance: the dendrogram of ``merge_levels`` (the linkage is
    reducible, so merging mutual nearest groups level by level builds the same tree as
    one merge at a time; cutting it at a distance keeps the merges below it)."""
    reps, dists = [], []
    for gr, a, b, d in merge_levels(v, nbr=nbr):
        if len(a) == 0:
            break
        first = np.full(len(gr.mu), -1, dtype=np.int64)
        order = np.arange(len(gr.labels))[::-1]
        first[gr.labels[order]] = order  # a walk of each group (its first)
        reps.append(np.stack([first[a], first[b]], axis=1))
        dists.append(d)
    if not reps:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    pairs, dist = np.concatenate(reps), np.concatenate(dists)
    order = np.argsort(dist, kind="stable")
    return pairs[order], dist[order]


def cut(pairs: np.ndarray, n: int, merges: int) -> np.ndarray:
    """(n,) group of each walk after the ``merges`` closest merges of ``merge_tree``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    p = pairs[:merges]
    g = coo_matrix((np.ones(len(p), np.int8), (p[:, 0], p[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def groups_of(v: np.ndarray, labels: np.ndarray) -> _Groups:
    """Means, spreads and sizes of the groups a labelling makes."""
    x = np.asarray(v, dtype=np.float64)
    _, lab = np.unique(labels, return_inverse=True)
    m = int(lab.max()) + 1
    size = np.bincount(lab, minlength=m).astype(np.float64)
    mu = np.zeros((m, x.shape[1]))
    np.add.at(mu, lab, x)
    mu /= size[:, None]
    second = np.bincount(lab, weights=(x ** 2).sum(axis=1), minlength=m) / size
    return _Groups(lab, mu, np.maximum(second - (mu ** 2).sum(axis=1), 0.0), size)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Groups numbered 0.. in order of their first walk."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inv].astype(np.int64)


def compare_with_subjects(labels: np.ndarray, subjects: Sequence[str]) -> dict:
    """Evaluation only: ARI and pairwise precision/recall of groups against subjects.

    Pairwise precision: of the walk pairs put in one group, the share that is one
    subject; recall: of one subject's walk pairs, the share put in one group.
    Counted from contingency tables (no pair list).
    """
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import contingency_matrix

    _, subj = np.unique(np.asarray(subjects), return_inverse=True)
    c = contingency_matrix(subj, labels, sparse=True)
    pairs = lambda x: float((np.asarray(x, dtype=np.float64) * (np.asarray(x) - 1) / 2).sum())
    both = pairs(c.data)
    grouped = pairs(np.asarray(c.sum(axis=0)).ravel())
    same = pairs(np.asarray(c.sum(axis=1)).ravel())
    return {"ari": float(adjusted_rand_score(subj, labels)),
            "precision": both / grouped if grouped else 1.0,
            "recall": both / same if same else 1.0,
            "subjects": int(subj.max()) + 1}
