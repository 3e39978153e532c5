"""Open-set verdicts: is a query's rank-1 walk the same person, or is nobody in the gallery?

A ranking always has a rank-1, so ``match`` needs a distance above which it says "nobody in the
gallery". That threshold is set from the gallery's walks alone, never from labels:

* For every gallery walk, the distances to the other gallery walks are taken (identical
  recordings left out, vid2reid.rank's rule). Its nearest neighbour is set aside when the two
  are each other's nearest neighbour (most likely another walk of the same person); the
  distance to the nearest walk left is then a walk's distance to *somebody else*: the distance
  a person absent from the gallery would have to their rank-1.
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
                    f"{QUANTILE:.0%} quantile of its walks' distances to somebody else; no "
                    f"labels); a query farther from its rank-1 is 'nobody in the gallery'")
        return f"threshold {self.value:.4f} (--threshold)"


def other_person_distances(features: np.ndarray, groups: np.ndarray, block: int = 1024
                           ) -> np.ndarray:
    """Per walk, the distance to the nearest other walk once a mutual nearest neighbour is
    set aside (see the module docstring); ``groups[i] == groups[j]``: the same recording,
    never compared. Walks with nothing left are left out. Memory: ``block`` rows at a time."""
    x = np.asarray(features, np.float64)
    n = len(x)
    sq = (x * x).sum(1)
    near = np.full((n, 2), np.inf)
    who = np.full((n, 2), -1, np.int64)
    for s in range(0, n, block):
        d = np.sqrt(np.maximum(sq[s:s + block, None] + sq[None, :] - 2.0 * x[s:s + block] @ x.T,
                               0.0))
        d[groups[s:s + block, None] == groups[None, :]] = np.inf
        k = min(2, n)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if n > k else \
            np.tile(np.arange(n), (len(d), 1))
        vals = np.take_along_axis(d, part, 1)
        order = np.lexsort((part, vals), axis=1)
        who[s:s + block, :k] = np.take_along_axis(part, order, 1)
        near[s:s + block, :k] = np.take_along_axis(vals, order, 1)
    first = who[:, 0]
    mutual = (first >= 0) & (who[np.maximum(first, 0), 0] == np.arange(n))
    out = np.where(mutual, near[:, 1], near[:, 0])
    return out[np.isfinite(out)]


def gallery_threshold(gallery: Walks, level: str = "sequence", quantile: float = QUANTILE,
                      most: int = 20000) -> Threshold:
    """The threshold set from ``gallery``'s own features, no labels: its walks' (sequence
    level) or its windows' (window level; windows of one recording never compared, at most
    ``most`` windows, evenly spaced) distances to somebody else."""
    groups = recording_groups({"g": gallery.keys}, {"g": gallery.row_hashes})["g"]
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    codes = codes.ravel()
    if level == "window" and len(gallery.window_features):
        pick = np.unique(np.linspace(0, len(gallery.window_features) - 1,
                                     min(most, len(gallery.window_features))).astype(np.int64))
        feats, codes = gallery.window_features[pick], codes[gallery.window_walk[pick]]
    else:
        feats = gallery.features
    d = other_person_distances(feats, codes) if len(np.unique(codes)) >= 3 else np.empty(0)
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
