"""Rank a gallery's walks for query walks: exact Euclidean search, the ranking rule of
vid2reid.rank (identical recordings left out, conservative ties) and margins.

Features are the run's (vid2reid.run.embed): sequence level (a walk is the mean of its
windows' features, as eval's sequence level) or window level. Next to each ranking stands its
``margin``: how much farther the nearest walk of ANOTHER subject (when the gallery's manifest
names subjects) or else the next walk is than the best match. It is a distance, not a
probability. Identity labels from the manifests are shown next to the matches and order exact
ties only (vid2reid.rank); they play no other part in the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2reid.errors import ConfigError, ProtocolError
from vid2reid.rank import recording_groups, tie_order
from vid2reid.run.embed import Walks

LEVELS = ("sequence", "window")
# exact: every distance computed (numpy); flat: the same through a flat FAISS index; ivf: an
# approximate FAISS index whose shortlist is re-ranked exactly (vid2reid.ann); auto: ivf from
# AUTO_APPROXIMATE gallery items on when faiss is installed, else exact
SEARCHES = ("auto", "exact", "flat", "ivf")
AUTO_APPROXIMATE = 200_000


def _have_faiss() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def chosen_search(n: int, search: str = "auto") -> str:
    """What ``search`` means for a gallery of ``n`` items (see SEARCHES)."""
    if search not in SEARCHES:
        raise ConfigError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if search == "auto":
        return "ivf" if n >= AUTO_APPROXIMATE and _have_faiss() else "exact"
    return search


def make_searcher(features: np.ndarray, search: str = "auto"):
    """An exact Searcher or an approximate vid2reid.ann.ApproxSearcher (one interface)."""
    how = chosen_search(len(features), search)
    if how == "ivf":
        from vid2reid.ann import ApproxSearcher

        return ApproxSearcher.build(features)
    return Searcher(features, use_faiss=how == "flat")


class Searcher:
    """Exact Euclidean ranking over gallery features (optionally through a flat FAISS index).

    A float32 pass finds candidates, which are then ranked by float64 distances; when the
    float32 error could have left out a closer item, every distance is recomputed in float64,
    so the ranking is exact either way.
    """

    def __init__(self, features: np.ndarray, use_faiss: bool = False):
        self.g = np.ascontiguousarray(features, dtype=np.float32)
        self.sq = np.einsum("ij,ij->i", self.g, self.g)
        self.faiss = None
        if use_faiss:
            from vid2reid.ann import factory_index as faiss_build

            self.faiss = faiss_build(self.g, "Flat")

    def __len__(self) -> int:
        return len(self.g)

    def _keys(self, q: np.ndarray) -> np.ndarray:
        """Squared distances minus the constant ||q||^2 (float32; same order)."""
        return self.sq - 2.0 * (self.g @ q)

    def rank(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and Euclidean distances of the k nearest items, nearest first (ties: lower
        index first), ``exclude`` (indices) left out."""
        n = len(self.g)
        q = np.asarray(q, np.float32)
        q64 = q.astype(np.float64)
        n_ex = 0 if exclude is None else len(exclude)
        k = min(k, n - n_ex)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0)
        m = min(n, 4 * k + 32 + n_ex)
        if self.faiss is not None:
            _, cand = self.faiss.search(q[None, :], m)
            cand = cand[0][cand[0] >= 0]
            rest_min = None  # a flat FAISS index returns the m nearest (float32 distances)
        else:
            keys = self._keys(q)
            if m < n:
                part = np.argpartition(keys, m)
                cand, rest_min = part[:m], keys[part[m]]
            else:
                cand, rest_min = np.arange(n), None
        if exclude is not None and n_ex:
            cand = cand[~np.isin(cand, exclude)]
        d2 = ((self.g[cand].astype(np.float64) - q64) ** 2).sum(1)
        order = np.lexsort((cand, d2))[:k]
        idx, d2k = cand[order], d2[order]
        if rest_min is not None and len(idx):
            # Could an item outside the candidates be closer than the k-th? Bound the float32
            # error of its key by a generous multiple of eps times the magnitudes involved.
            qsq = float(q64 @ q64)
            tol = 1e-4 * (qsq + float(self.sq.max()) + 1.0)
            if rest_min + qsq - tol <= d2k[-1]:
                allow = np.ones(n, bool)
                if exclude is not None:
                    allow[exclude] = False
                cand = np.flatnonzero(allow)
                d2 = ((self.g[cand].astype(np.float64) - q64) ** 2).sum(1)
                order = np.lexsort((cand, d2))[:k]
                idx, d2k = cand[order], d2[order]
        return idx.astype(np.int64), np.sqrt(np.maximum(d2k, 0.0))

    def nearest_where(self, q: np.ndarray, allow: np.ndarray) -> tuple[int, float] | None:
        """The nearest item among ``allow`` (bool mask) and its distance; None when none."""
        cand = np.flatnonzero(allow)
        if not len(cand):
            return None
        q64 = np.asarray(q, np.float64)
        keys = self._keys(np.asarray(q, np.float32))[cand]
        top = cand[np.argsort(keys, kind="stable")[:32]]
        d2 = ((self.g[top].astype(np.float64) - q64) ** 2).sum(1)
        i = int(np.lexsort((top, d2))[0])
        return int(top[i]), float(np.sqrt(max(d2[i], 0.0)))


@dataclass
class Match:
    """One gallery item in a query's ranking."""

    rank: int
    index: int  # walk index in the gallery
    distance: float
    path: str
    subject: str
    row: dict
    window_start: int | None = None  # window level: first frame within the walk


@dataclass
class QueryResult:
    """A query item and its top-k gallery items, best first."""

    path: str
    row: dict
    subject: str
    matches: list[Match]
    margin: float | None  # distance to the nearest item of another group minus the best's
    margin_to: str  # "other subject" or "next walk"
    excluded: int  # gallery walks identical to the query, left out
    window_start: int | None = None
    known: bool | None = None  # open-set verdict (vid2reid.openset): rank-1 is the person
    score: float | None = None  # rank-1 distance / the open-set threshold (under 1: known)


def _prepare(gallery: Walks, level: str, search: str) -> dict:
    """The gallery's search structures for one level, built once per Walks object.

    ``groups``: per item, the group its margin is taken against (a code of its subject when
    every walk names one, else of its walk).
    """
    key = (level, search)
    if key not in gallery._prepared:
        if level == "sequence":
            feats, walk = gallery.features, np.arange(len(gallery))
        else:
            feats, walk = gallery.window_features, gallery.window_walk
        if all(gallery.subjects):
            _, codes = np.unique(np.asarray(gallery.subjects), return_inverse=True)
            groups = codes.ravel()[walk]
        else:
            groups = walk
        # an index file may bring its approximate searcher, built once by 'vid2reid index'
        built = gallery._prepared.get(("built", level))
        use_built = built is not None and search in ("auto", "ivf")
        gallery._prepared[key] = dict(searcher=built if use_built
                                      else make_searcher(feats, search), walk=walk,
                                      groups=groups,
                                      margin_to="other subject" if all(gallery.subjects)
                                      else "next walk")
    return gallery._prepared[key]


def _ranked(searcher: Searcher, q: np.ndarray, k: int, exclude: np.ndarray | None,
            same_subject: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The k first items by vid2reid.rank's order; items tied with the k-th are all fetched
    before the tie is broken, so the cut at k follows the rule too."""
    n = len(searcher)
    fetch = min(n, k + 1)
    while True:
        idx, dist = searcher.rank(q, fetch, exclude)
        complete = len(idx) < fetch or fetch >= n
        if complete or len(idx) <= k or dist[-1] != dist[k - 1]:
            break
        fetch = min(n, 2 * fetch)
    mine = None if same_subject is None else same_subject[idx]
    order = tie_order(dist, idx, mine)[:k]
    return idx[order], dist[order]


def rank_gallery(queries: Walks, gallery: Walks, top: int = 10, level: str = "sequence",
                 search: str = "auto") -> list[QueryResult]:
    """Rank the gallery for every query walk (or window, ``level="window"``); ``search``:
    one of SEARCHES (approximate search changes which items reach a list, never a distance)."""
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if not len(gallery):
        raise ProtocolError("the gallery is empty")
    if queries.features.shape[1] != gallery.features.shape[1]:
        raise ConfigError(f"query features have {queries.features.shape[1]} dimensions, the "
                          f"gallery's {gallery.features.shape[1]}: not made by the same run")
    prep = _prepare(gallery, level, search)
    searcher, g_walk, groups = prep["searcher"], prep["walk"], prep["groups"]
    rec = recording_groups({"q": queries.keys, "g": gallery.keys},
                           {"q": queries.row_hashes, "g": gallery.row_hashes})
    g_subjects = np.asarray(gallery.subjects, dtype=object)
    if level == "sequence":
        q_feats, q_walk = queries.features, np.arange(len(queries))
        q_start: list[int | None] = [None] * len(queries)
    else:
        q_feats, q_walk = queries.window_features, queries.window_walk
        q_start = [int(s) for s in queries.window_start]
    margin_to = prep["margin_to"]
    results = []
    for qi, (qf, qw) in enumerate(zip(q_feats, q_walk)):
        same = np.flatnonzero(rec["g"] == rec["q"][qw])
        exclude = None
        if len(same):
            exclude = same if level == "sequence" else np.flatnonzero(np.isin(g_walk, same))
        subject = queries.subjects[qw]
        mine = (g_subjects == subject)[g_walk] if subject else None
        idx, dist = _ranked(searcher, qf, top, exclude, mine)
        matches = [Match(r + 1, int(g_walk[i]), float(d), gallery.paths[g_walk[i]],
                         gallery.subjects[g_walk[i]], gallery.rows[g_walk[i]],
                         None if level == "sequence" else int(gallery.window_start[i]))
                   for r, (i, d) in enumerate(zip(idx, dist))]
        margin = None
        if len(idx):
            best = groups[idx[0]]
            other = next((d for i, d in zip(idx[1:], dist[1:]) if groups[i] != best), None)
            if other is None:
                allow = groups != best
                if exclude is not None:
                    allow[exclude] = False
                found = searcher.nearest_where(qf, allow)
                other = None if found is None else found[1]
            margin = None if other is None else float(other - dist[0])
        results.append(QueryResult(queries.paths[qw], queries.rows[qw], subject, matches,
                                   margin, margin_to, len(same), q_start[qi]))
    return results
