"""Re-ID ranking metrics: CMC top-k and mAP (Zheng et al., ICCV 2015).

Probes are ranked against the gallery by Euclidean distance. Conventions:

- a gallery item from the probe's own video (same group key) is removed from
  that probe's ranking, never counted as a match or a miss;
- probes with no true match left in the gallery are excluded from CMC and mAP
  and counted in ``RankMetrics.no_match``;
- ties (equal distances, compared exactly) are broken CONSERVATIVELY: at equal
  distance every non-match ranks before every match. The result then does not
  depend on the gallery's order, and degenerate features (e.g. all equal)
  cannot score by luck.

Memory: probes are processed in chunks of ``max(1, max_elements // gallery)``
rows, so peak memory is O(max_elements + gallery), not O(probes x gallery).
No full sort is needed: each probe's true-match distances are sorted (few),
every non-match is bucketed between them with ``searchsorted``, and the
bucket counts give the rank of every true match, hence CMC and AP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vid2reid.errors import ProtocolError

TOPK = (1, 5, 10)


@dataclass(frozen=True)
class RankMetrics:
    """CMC top-1/5/10 and mAP as fractions in 0..1, over the ``probes`` scored."""

    top1: float
    top5: float
    top10: float
    mAP: float
    probes: int  # probes scored (with at least one true match in the gallery)
    gallery: int  # gallery items
    no_match: int  # probes left out because the gallery holds no true match for them

    def as_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "top10": self.top10, "mAP": self.mAP,
                "probes": self.probes, "gallery": self.gallery, "no_match": self.no_match}


def _codes(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Map two label arrays (any hashable dtype) to shared int64 codes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return torch.from_numpy(a.astype(np.int64)), torch.from_numpy(b.astype(np.int64))
    _, inv = np.unique(np.concatenate([a.astype(str), b.astype(str)]), return_inverse=True)
    inv = inv.astype(np.int64)
    return torch.from_numpy(inv[: len(a)]), torch.from_numpy(inv[len(a):])


def _chunk_sums(d: torch.Tensor, true: torch.Tensor, valid: torch.Tensor,
                topk: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-chunk CMC hit counts, AP sum and number of probes with a match.

    ``d`` (P, G) distances, ``true`` (P, G) same identity and kept, ``valid``
    (P, G) kept (not the probe's own video).
    """
    n_true = true.sum(1)  # (P,)
    has = n_true > 0
    if not bool(has.any()):
        return torch.zeros(len(topk), dtype=torch.int64), torch.zeros((), dtype=torch.float64), \
            torch.zeros((), dtype=torch.int64)
    d, true, valid, n_true = d[has], true[has], valid[has], n_true[has]
    r_max = int(n_true.max())
    inf = torch.tensor(float("inf"), dtype=d.dtype)
    # Sorted true-match distances, +inf padded to r_max per row.
    t, _ = torch.topk(torch.where(true, d, inf), r_max, dim=1, largest=False, sorted=True)
    # Bucket of each non-match: number of true distances strictly below it. With
    # side='left', a non-match tied with a true match lands before it (conservative).
    b = torch.searchsorted(t.contiguous(), d.contiguous(), side="left", out_int32=True)
    false = valid & ~true
    b = torch.where(false, b, torch.full_like(b, r_max + 1))  # dump bucket for the rest
    hist = torch.zeros((len(d), r_max + 2), dtype=torch.int32)
    hist.scatter_add_(1, b.long(), torch.ones_like(b))
    before = torch.cumsum(hist[:, :r_max], dim=1).double()  # c_j: non-matches ranked before true j
    j = torch.arange(1, r_max + 1, dtype=torch.float64)
    in_row = j[None, :] <= n_true[:, None]
    ap = torch.where(in_row, j / (j + before), torch.zeros_like(before)).sum(1) / n_true.double()
    first_rank = 1 + before[:, 0]
    hits = torch.stack([(first_rank <= k).sum() for k in topk])
    return hits, ap.sum(), has.sum()


def rank_metrics(probe_ids: np.ndarray, gallery_ids: np.ndarray,
                 probe_feats: np.ndarray | None = None, gallery_feats: np.ndarray | None = None,
                 *, distances: np.ndarray | None = None,
                 probe_groups: np.ndarray | None = None, gallery_groups: np.ndarray | None = None,
                 max_elements: int = 1 << 24) -> RankMetrics:
    """CMC top-1/5/10 and mAP of probes ranked against a gallery.

    Give either features (``probe_feats`` (P, D), ``gallery_feats`` (G, D);
    squared Euclidean distance, same ranking as Euclidean) or a precomputed
    ``distances`` (P, G) matrix (smaller = closer). ``*_groups`` mark items of
    one video: a probe is never ranked against gallery items of its own group.
    ``max_elements`` bounds the probe-chunk x gallery block held in memory.
    """
    n_p, n_g = len(probe_ids), len(gallery_ids)
    if distances is None and (probe_feats is None or gallery_feats is None):
        raise ValueError("give probe_feats and gallery_feats, or distances")
    if n_p == 0 or n_g == 0:
        raise ProtocolError(f"nothing to rank: {n_p} probe(s) and {n_g} gallery item(s)")
    pid, gid = _codes(probe_ids, gallery_ids)
    if probe_groups is not None and gallery_groups is not None:
        pgr, ggr = _codes(probe_groups, gallery_groups)
    else:  # no grouping: distinct codes, nothing excluded
        pgr, ggr = torch.arange(n_p), torch.arange(n_p, n_p + n_g)
    if distances is not None:
        dist = torch.as_tensor(np.asarray(distances))
        if tuple(dist.shape) != (n_p, n_g):
            raise ValueError(f"distances must be ({n_p}, {n_g}), got {tuple(dist.shape)}")
    else:
        pf = torch.as_tensor(np.ascontiguousarray(probe_feats))
        gf = torch.as_tensor(np.ascontiguousarray(gallery_feats))
        if pf.dtype != gf.dtype:
            pf, gf = pf.double(), gf.double()
        g_sq = (gf * gf).sum(1)
    chunk = max(1, max_elements // n_g)
    hits = torch.zeros(len(TOPK), dtype=torch.int64)
    ap_sum = torch.zeros((), dtype=torch.float64)
    scored = torch.zeros((), dtype=torch.int64)
    with torch.no_grad():
        for s in range(0, n_p, chunk):
            e = min(n_p, s + chunk)
            if distances is not None:
                d = dist[s:e]
            else:
                p = pf[s:e]
                # ||p||^2 + ||g||^2 - 2 p.g, one matmul per chunk; clamp rounding below 0.
                d = torch.addmm(g_sq[None, :] + (p * p).sum(1, keepdim=True), p, gf.T,
                                alpha=-2.0).clamp_(min=0)
            valid = pgr[s:e, None] != ggr[None, :]
            true = (pid[s:e, None] == gid[None, :]) & valid
            h, a, c = _chunk_sums(d, true, valid, TOPK)
            hits += h
            ap_sum += a
            scored += c
    n = int(scored)
    if n == 0:
        return RankMetrics(0.0, 0.0, 0.0, 0.0, probes=0, gallery=n_g, no_match=n_p)
    top = (hits.double() / n).tolist()
    return RankMetrics(top1=top[0], top5=top[1], top10=top[2], mAP=float(ap_sum) / n,
                       probes=n, gallery=n_g, no_match=n_p - n)

