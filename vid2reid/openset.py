"""Open-set verdicts: is a query's rank-1 walk the same person, or is nobody in the gallery?

A ranking always has a rank-1, so ``match`` needs a distance above which it says "nobody in the
gallery". That threshold is set from the gallery's walks alone, never from labels:

* The gallery's walks are grouped into people without labels, by the association ``group``
  uses (vid2reid.association, on the walks' features alone).
* For every gallery walk, the distance to the nearest walk of *another* person found is what a
  person absent from the gallery would have to their rank-1 (identical recordings are never
  compared, vid2reid.rank's rule). Where the association finds a single person, a walk's
  nearest neighbour is set aside instead when the two are each other's nearest neighbour
  (most likely the same person's other walk), and the nearest walk left is taken.
* The threshold is the ``QUANTILE`` quantile of those distances: an absent person's walk lands
  nearer than it about that often, judging from the gallery itself.

A query is ``known`` when its rank-1 distance is at most the threshold; its ``score`` is the
rank-1 distance divided by the threshold (under 1: known). ``--threshold`` replaces the value.
docs/usage.md gives the measured false-alarm and detection rates (benchmarks/open_set.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from vid2reid.errors import ConfigError
from vid2reid.rank import recording_groups
from vid2reid.run.embed import Walks
from vid2reid.search import QueryResult

QUANTILE = 0.1  # of the gallery's distances to somebody else (see the module docstring)


@dataclass(frozen=True)
class Threshold:
    """The distance up to which a rank-1 walk counts as the query's person."""

    value: float | None  # None: the gallery is too small to set one (every verdict unknown)
    source: str  # "gallery" or "--threshold"

    def describe(self) -> str:
        """One line for the notes."""
        if self.value is None:
            return ("no threshold: the gallery needs 3 walks or more to set one from its own "
                    "distances; give --threshold")
        if self.source == "gallery":
            return (f"threshold {self.value:.4f}: set from the gallery's own distances (the "
                    f"{QUANTILE:.0%} quantile of its walks' distances to the people found "
                    f"among the others; no labels); a query farther from its rank-1 is 'nobody "
                    f"in the gallery'")
        return f"threshold {self.value:.4f} (--threshold)"


def other_person_distances(features: np.ndarray, groups: np.ndarray,
                           people: np.ndarray | None = None, block: int = 1024) -> np.ndarray:
    """Per walk, the distance to somebody else (see the module docstring): the nearest walk of
    another person (``people``: a label per walk, found without labels), or, without people,
    the nearest walk once a mutual nearest neighbour is set aside. ``groups[i] == groups[j]``:
    the same recording, never compared. Walks with nothing left are left out. Memory: ``block``
    rows at a time."""
    x = np.asarray(features, np.float64)
    n = len(x)
    sq = (x * x).sum(1)
    near = np.full((n, 2), np.inf)
    who = np.full((n, 2), -1, np.int64)
    for s in range(0, n, block):
        d = np.sqrt(np.maximum(sq[s:s + block, None] + sq[None, :] - 2.0 * x[s:s + block] @ x.T,
                               0.0))
        d[groups[s:s + block, None] == groups[None, :]] = np.inf
        if people is not None:
            d[people[s:s + block, None] == people[None, :]] = np.inf
        k = min(2, n)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if n > k else \
            np.tile(np.arange(n), (len(d), 1))
        vals = np.take_along_axis(d, part, 1)
        order = np.lexsort((part, vals), axis=1)
        who[s:s + block, :k] = np.take_along_axis(part, order, 1)
        near[s:s + block, :k] = np.take_along_axis(vals, order, 1)
    if people is not None:
        out = near[:, 0]
    else:
        first = who[:, 0]
        mutual = (first >= 0) & (who[np.maximum(first, 0), 0] == np.arange(n))
        out = np.where(mutual, near[:, 1], near[:, 0])
    return out[np.isfinite(out)]


def people_found(features: np.ndarray) -> np.ndarray | None:
    """The gallery's walks grouped into people without labels (vid2reid.association on the
    unit-length walk features); None when it finds a single person or fewer than 3 walks."""
    if len(features) < 3:
        return None
    from vid2reid.association import associate

    x = np.asarray(features, np.float64)
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = associate(u.astype(np.float32), None).labels
    return labels if len(np.unique(labels)) > 1 else None


def _evenly(n: int, most: int) -> np.ndarray:
    """At most ``most`` of ``n`` indices, evenly spaced (all of them when n <= most)."""
    return np.unique(np.linspace(0, n - 1, min(most, n)).astype(np.int64))


def gallery_threshold(gallery: Walks, level: str = "sequence", quantile: float = QUANTILE,
                      most: int = 20000, most_walks: int = 4000) -> Threshold:
    """The threshold set from ``gallery``'s own features, no labels: its walks' (sequence
    level) or its windows' (window level; windows of one recording never compared, at most
    ``most`` windows, evenly spaced) distances to somebody else. A gallery of more than
    ``most_walks`` walks is read through that many, evenly spaced in store order (the
    association's time grows faster than the number of walks)."""
    groups = recording_groups({"g": gallery.keys}, {"g": gallery.row_hashes})["g"]
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    codes = codes.ravel()
    if len(np.unique(codes)) < 3:
        return Threshold(None, "gallery")
    keep = _evenly(len(gallery), most_walks)  # all walks, or an even sample of them
    feats, codes = gallery.features[keep], codes[keep]
    people = people_found(feats)
    if level == "window" and len(gallery.window_features):
        renumber = np.full(len(gallery), -1, np.int64)
        renumber[keep] = np.arange(len(keep))
        walk = renumber[gallery.window_walk]
        rows = np.flatnonzero(walk >= 0)
        pick = rows[_evenly(len(rows), most)]
        walk = walk[pick]
        d = other_person_distances(gallery.window_features[pick], codes[walk],
                                   None if people is None else people[walk])
    else:
        d = other_person_distances(feats, codes, people)
    if len(d) == 0:
        return Threshold(None, "gallery")
    return Threshold(float(np.quantile(d, quantile)), "gallery")


def fixed_threshold(value: float) -> Threshold:
    """A threshold the user gives (``--threshold``)."""
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"--threshold must be a distance (a number >= 0), got {value}")
    return Threshold(float(value), "--threshold")


def decide(results: list[QueryResult], threshold: Threshold) -> list[QueryResult]:
    """``results`` with a verdict each: ``known`` (rank-1 within the threshold) and ``score``
    (rank-1 distance / threshold); both None without a threshold or a match."""
    out = []
    for r in results:
        known = score = None
        if threshold.value is not None and r.matches:
            d = r.matches[0].distance
            known = bool(d <= threshold.value)
            score = d / threshold.value if threshold.value > 0 else (0.0 if d == 0 else np.inf)
        out.append(dataclasses.replace(r, known=known, score=None if score is None
                                       else float(score)))
    return out
