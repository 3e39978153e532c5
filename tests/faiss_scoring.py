"""Probe x gallery scoring through a FAISS index (tests and benchmarks only: the package scores
exactly, vid2reid.metrics; searches approximately, vid2reid.ann).

``vid2reid.metrics.rank_metrics`` is exact and chunked, but it still computes
every probe-gallery distance and holds the gallery's features. With a FAISS
index the gallery can be compressed (e.g. ``"IVF1024,PQ32"``: 32 bytes an
item), added in chunks from a ``np.memmap``, and each probe needs only its k
nearest items. What that gives, and what it does not:

- CMC top-1/5/10 are exact when the index is (``"Flat"``). With IVF / PQ
  they are approximate and can be far off: in bench_eval they were 12 to 34
  points ABOVE the exact top-1, most likely because an IVF search visits only
  the cells near the probe and so skips confusable other identities on a
  gallery clustered by identity. ``exact`` says which; report exact numbers.
- mAP is replaced by ``mAP_at_k``: each probe's average precision over its k
  nearest items, divided by ALL its true matches in the gallery. It is a lower
  bound of the exact mAP (equal when every true match is among the k nearest)
  and must not be reported as mAP (with an approximate index it is not even
  a bound).

Same conventions as the exact path: a probe's own video (group) is removed from
its ranking, probes without a true match in the gallery are counted in
``no_match`` and left out. Ties are ordered as FAISS returns them (the exact
path ranks non-matches first), which matters only for duplicate features.
faiss is an optional dependency: ``pip install faiss-cpu`` (or faiss-gpu).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vid2reid.ann import factory_index as build_index
from vid2reid.errors import ConfigError, ProtocolError
from vid2reid.metrics import TOPK, _codes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexedMetrics:
    """CMC top-1/5/10 and mAP truncated at k (fractions in 0..1), from an index search."""

    top1: float
    top5: float
    top10: float
    mAP_at_k: float  # lower bound of mAP; see the module docstring
    k: int
    probes: int
    gallery: int
    no_match: int
    index: str
    exact: bool  # a flat (exhaustive) index: top-k exact, mAP_at_k a lower bound of mAP

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def _true_match_counts(pid: np.ndarray, pgr: np.ndarray, gid: np.ndarray,
                       ggr: np.ndarray) -> np.ndarray:
    """Per probe: gallery items of its identity outside its own group (codes are shared)."""
    n_groups = int(max(pgr.max(), ggr.max())) + 1
    per_id = np.bincount(gid, minlength=int(max(pid.max(), gid.max())) + 1)
    keys, counts = np.unique(gid * n_groups + ggr, return_counts=True)
    probe_keys = pid * n_groups + pgr
    pos = np.minimum(np.searchsorted(keys, probe_keys), len(keys) - 1)
    own = np.where(keys[pos] == probe_keys, counts[pos], 0)
    return per_id[pid] - own


def index_rank_metrics(probe_ids: np.ndarray, gallery_ids: np.ndarray, probe_feats: np.ndarray,
                       gallery_feats: np.ndarray | None = None, *, index=None,
                       factory: str = "Flat", k: int = 100, nprobe: int = 16,
                       probe_groups: np.ndarray | None = None,
                       gallery_groups: np.ndarray | None = None,
                       batch: int = 4096) -> IndexedMetrics:
    """CMC top-1/5/10 and mAP@k of probes searched in a FAISS index of the gallery.

    Pass a built ``index`` (rows in ``gallery_ids`` order) or ``gallery_feats``
    to build one from ``factory``. ``k`` nearest items are kept per probe after
    removing its own group; ``nprobe`` is the number of IVF lists searched.
    """
    if k < max(TOPK):
        raise ConfigError(f"k must be at least {max(TOPK)} for top-{max(TOPK)}, got {k}")
    n_p, n_g = len(probe_ids), len(gallery_ids)
    if n_p == 0 or n_g == 0:
        raise ProtocolError(f"nothing to rank: {n_p} probe(s) and {n_g} gallery item(s)")
    if index is None:
        if gallery_feats is None:
            raise ValueError("give gallery_feats or a built index")
        index = build_index(gallery_feats, factory)
        name = factory
    else:
        name = type(index).__name__
    from vid2reid.ann import _faiss

    faiss = _faiss()
    exact = isinstance(index, faiss.IndexFlat)
    if not exact:
        log.warning("FAISS index %s is approximate: CMC and mAP@k can differ from the exact "
                    "metrics in either direction; use a Flat index for reported numbers", name)
    if index.ntotal != n_g:
        raise ValueError(f"index holds {index.ntotal} items but gallery_ids has {n_g}")
    try:  # IVF indexes, also when wrapped in a pre-transform; others have no lists
        faiss.extract_index_ivf(index).nprobe = nprobe
    except RuntimeError:
        pass
    if probe_groups is None or gallery_groups is None:
        probe_groups, gallery_groups = np.arange(n_p), np.arange(n_p, n_p + n_g)
    pid, gid = (c.numpy() for c in _codes(probe_ids, gallery_ids))
    pgr, ggr = (c.numpy() for c in _codes(probe_groups, gallery_groups))
    n_true = _true_match_counts(pid, pgr, gid, ggr)
    # search past the largest own group so that k items remain after removing it
    shared = np.intersect1d(pgr, ggr)
    own_max = int(np.bincount(ggr)[shared].max()) if len(shared) else 0
    k_search = min(n_g, k + own_max)
    hits = np.zeros(len(TOPK), np.int64)
    ap_sum = 0.0
    for s in range(0, n_p, batch):
        q = np.ascontiguousarray(probe_feats[s:s + batch], dtype=np.float32)
        _, nn = index.search(q, k_search)
        valid = nn >= 0  # -1: fewer than k_search items found (IVF with small nprobe)
        nn_safe = np.where(valid, nn, 0)
        keep = valid & (ggr[nn_safe] != pgr[s:s + batch, None])
        rank = np.cumsum(keep, 1)
        keep &= rank <= k
        match = keep & (gid[nn_safe] == pid[s:s + batch, None])
        has = n_true[s:s + batch] > 0
        first = np.where(match.any(1), np.where(match, rank, k + 1).min(1), k + 1)
        hits += np.array([((first <= t) & has).sum() for t in TOPK])
        j = np.cumsum(match, 1)  # true matches up to each position
        prec = np.where(match, j / np.maximum(rank, 1), 0.0).sum(1)
        ap_sum += float((prec[has] / n_true[s:s + batch][has]).sum())
    scored = int((n_true > 0).sum())
    if scored == 0:
        return IndexedMetrics(0.0, 0.0, 0.0, 0.0, k, 0, n_g, n_p, name, exact)
    top = hits / scored
    return IndexedMetrics(float(top[0]), float(top[1]), float(top[2]), ap_sum / scored, k,
                          scored, n_g, n_p - scored, name, exact)
