"""The one ranking rule: which gallery items a query is ranked against, and how ties fall.

eval's metrics (vid2reid.metrics) and match's lists (vid2reid.search) both follow it, so their
top-1 cannot disagree on the same features:

- **Identical recordings are never ranked against each other.** Items of one recording share
  a group: the same video key (subject, condition, sequence, view: rows cut from one video)
  or identical joints (the same content hash), across probe and gallery and transitively, so
  a walk listed twice under two names, or copied into another store, is one recording.
- **Ties are broken conservatively.** At exactly equal distance an item of another subject
  ranks before an item of the query's own subject (so a tie never flatters a result, and
  degenerate features such as all-equal ones cannot score by luck); otherwise, and when the
  query's subject is unknown, the lower gallery index comes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def recording_groups(keys: Mapping[str, Sequence[str]],
                     hashes: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, np.ndarray]:
    """Per side, a group label for each item: items with the same key, or sharing a content
    hash (``hashes[side][i]``: the hashes of item i's rows), share a label, across sides and
    transitively."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for side in keys:
        for k, hs in zip(keys[side], hashes[side]):
            for h in hs:
                ra, rb = find("v" + str(k)), find("h" + str(h))
                if ra != rb:
                    parent[rb] = ra
    return {side: np.array([find("v" + str(k)) for k in keys[side]], dtype=object)
            for side in keys}


def tie_order(distances: np.ndarray, index: np.ndarray,
              same_subject: np.ndarray | None = None) -> np.ndarray:
    """The order (a permutation) in which items with these distances and gallery indices are
    listed: nearest first; at equal distance other subjects before the query's own
    (``same_subject``, when the query's subject is known), then lower index first."""
    mine = np.zeros(len(index), bool) if same_subject is None else np.asarray(same_subject, bool)
    return np.lexsort((np.asarray(index), mine, np.asarray(distances)))
