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
rows (default 4M distances, 16 MB in float32), so peak memory is
O(max_elements + gallery x feature size), never O(probes x gallery).
The j-th true match (by distance) of a probe sits at rank j + c_j, c_j the
number of non-matches at distance <= its distance; CMC and AP need only the
c_j, so nothing of length G is sorted. Per probe, distances are mapped to
min(4096, G / 2) bins by a monotone map spanning its true-match distances; one bincount
and a cumulative sum give, for every true match, the non-matches in lower
bins, and only the few non-matches sharing a bin with a true match are
compared exactly (about 2x faster than sorting every row).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
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
    """Map two label arrays (any dtype, e.g. subject strings) to shared codes 0..K-1."""
    a, b = np.asarray(a), np.asarray(b)
    if not (a.dtype.kind in "iub" and b.dtype.kind in "iub"):
        a, b = a.astype(str), b.astype(str)
    _, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.astype(np.int64).ravel()
    return torch.from_numpy(inv[: len(a)]), torch.from_numpy(inv[len(a):])


def _count_at_or_below(d: np.ndarray, t: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """``c[p, j] = #{g : d[p, g] <= t[p, j]}`` for ``j < n_true[p]`` (0 elsewhere), float64.

    ``t`` (P, R) is sorted ascending per row. Exact, without sorting ``d``: the
    bin ``q = clip(trunc((x - lo) * scale + 1), 0, B - 1)`` is a non-decreasing
    function of x in floating point (each rounding step is monotone), so
    ``q(d) < q(t)`` implies ``d < t`` and ``q(d) > q(t)`` implies ``d > t``; only
    elements in the bin of some true match are compared directly. ``lo`` and
    ``scale`` put a row's true matches in bins 1 .. B - 2, so elements below or
    above all of them land in bins 0 and B - 1 and are never compared.
    B = G / 2, at most 4096. NaN distances are never counted.
    """
    n_p, n_r = t.shape
    nb = int(min(4096, max(16, d.shape[1] // 2)))
    rows = np.arange(n_p)
    valid = np.arange(n_r)[None, :] < n_true[:, None]
    t = np.where(np.isnan(t), np.inf, t)
    has = n_true > 0
    lo = np.where(has, t[:, 0], 0).astype(d.dtype)
    hi = np.where(has, t[rows, np.maximum(n_true - 1, 0)], 0).astype(d.dtype)
    span = hi.astype(np.float64) - lo
    span = np.where(np.isfinite(span) & (span > 0), span, 1e-30)
    scale = np.minimum((nb - 3) / span, 1e30).astype(d.dtype)

    def bins(v: np.ndarray) -> np.ndarray:
        x = v - lo[:, None]
        x *= scale[:, None]
        x += 1.0
        np.clip(x, 0, nb - 1, out=x)
        nan = np.isnan(x)
        if nan.any():
            x[nan] = nb - 1
        return x.astype(np.intp)

    key = bins(d)
    key += (rows * nb)[:, None]  # one histogram of nb bins per row
    below_bin = np.cumsum(np.bincount(key.ravel(), minlength=n_p * nb).reshape(n_p, nb), axis=1)
    tq = bins(np.where(valid, t, lo[:, None]).astype(d.dtype))  # >= 1 where valid
    t_in_bin = np.zeros((n_p, nb), dtype=np.intp)
    np.add.at(t_in_bin, (np.broadcast_to(rows[:, None], tq.shape)[valid], tq[valid]), 1)
    t_upto_bin = np.cumsum(t_in_bin, axis=1)
    count = np.take_along_axis(below_bin, tq - 1, axis=1).astype(np.float64)  # lower bins
    # elements sharing a bin with true matches j_hi - len .. j_hi - 1: +1 for each with d <= t_j
    amb = np.flatnonzero((t_in_bin > 0).ravel()[key.ravel()])  # boolean scan: fast
    if len(amb):
        ka = key.ravel()[amb]
        pa = ka // nb
        j_hi = t_upto_bin.ravel()[ka]
        lens = t_in_bin.ravel()[ka]
        e = np.repeat(np.arange(len(amb)), lens)
        j = np.repeat(j_hi - lens - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        hit = d.ravel()[amb][e] <= t[pa[e], j]
        count += np.bincount(pa[e] * n_r + j, weights=hit, minlength=n_p * n_r).reshape(n_p, n_r)
    count[~valid] = 0
    return count


def _chunk_sums(d: torch.Tensor, pid: torch.Tensor, pgr: torch.Tensor, gid_sorted: torch.Tensor,
                ggr: torch.Tensor, start: torch.Tensor, size: torch.Tensor, r_max: int,
                check_groups: bool, pool: ThreadPoolExecutor | None,
                workers: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CMC hit counts, AP sum and number of probes with a match, for one probe chunk.

    ``d`` (P, G) distances to a gallery sorted by identity, so that probe i's
    same-identity items are the block ``start[pid[i]] : start + size``. ``d`` is
    overwritten.
    """
    inf = torch.tensor(float("inf"), dtype=d.dtype)
    # Same-identity gallery items per probe: (P, r_max) indices into the block.
    off = torch.arange(r_max)
    in_block = off[None, :] < size[pid][:, None]
    idx = start[pid][:, None] + torch.where(in_block, off[None, :], torch.zeros_like(off)[None, :])
    idx = idx.clamp_(max=d.shape[1] - 1)
    own = ggr[idx] == pgr[:, None]  # same identity but the probe's own video: not a match
    is_true = in_block & ~own & (gid_sorted[idx] == pid[:, None])
    n_true = is_true.sum(1)
    t = torch.where(is_true, torch.gather(d, 1, idx), inf)
    t, _ = torch.sort(t, dim=1)  # true-match distances ascending, +inf padded
    # Non-matches only: blank out the identity block (matches and own video) and,
    # if probe and gallery share videos at all, every own-video item.
    d.scatter_(1, idx, float("inf"))
    if check_groups:
        d.masked_fill_(pgr[:, None] == ggr[None, :], inf)
    # c_j = number of non-matches at distance <= t_j (<=: a non-match tied with a
    # true match ranks before it, the conservative convention); the j-th true match
    # sits at rank j + c_j. Rows split over threads (numpy releases the GIL).
    dn, tn, nn = d.numpy(), t.numpy(), n_true.numpy()
    # row blocks of about 1M distances keep the temporaries small; threads take turns
    n_parts = max(workers if pool is not None else 1, -(-dn.size // (1 << 20)))
    bounds = np.linspace(0, len(dn), min(n_parts, len(dn)) + 1).astype(int)
    parts = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    run = (lambda ab: _count_at_or_below(dn[ab[0]:ab[1]], tn[ab[0]:ab[1]], nn[ab[0]:ab[1]]))
    before = torch.from_numpy(np.concatenate(list(pool.map(run, parts) if pool is not None
                                                  and len(parts) > 1 else map(run, parts))))
    j = torch.arange(1, r_max + 1, dtype=torch.float64)
    has = n_true > 0
    ap = torch.where(j[None, :] <= n_true[:, None], j / (j + before), torch.zeros_like(before))
    ap = ap.sum(1) / n_true.clamp(min=1).double()
    first_rank = 1 + before[:, 0]
    hits = torch.stack([((first_rank <= k) & has).sum() for k in TOPK])
    return hits, ap[has].sum(), has.sum()


def rank_metrics(probe_ids: np.ndarray, gallery_ids: np.ndarray,
                 probe_feats: np.ndarray | None = None, gallery_feats: np.ndarray | None = None,
                 *, distances: np.ndarray | None = None,
                 probe_groups: np.ndarray | None = None, gallery_groups: np.ndarray | None = None,
                 max_elements: int = 1 << 22) -> RankMetrics:
    """CMC top-1/5/10 and mAP of probes ranked against a gallery.

    Give either features (``probe_feats`` (P, D), ``gallery_feats`` (G, D);
    ranked by squared Euclidean distance, the same ranking as Euclidean) or a precomputed
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
    check_groups = bool(np.intersect1d(pgr.numpy(), ggr.numpy()).size)
    # Sort the gallery by identity (the result does not depend on gallery order).
    order = torch.from_numpy(np.argsort(gid.numpy(), kind="stable"))
    gid, ggr = gid[order], ggr[order]
    n_codes = int(max(pid.max(), gid.max())) + 1
    size = torch.bincount(gid, minlength=n_codes)
    start = torch.cumsum(size, 0) - size
    r_max = max(1, int(size[pid].max()))
    if distances is not None:
        dist = torch.as_tensor(np.asarray(distances))
        if dist.dtype not in (torch.float32, torch.float64):
            dist = dist.double()  # exact for ints and float16; inf for the masks
        if tuple(dist.shape) != (n_p, n_g):
            raise ValueError(f"distances must be ({n_p}, {n_g}), got {tuple(dist.shape)}")
        dist = dist[:, order]
    else:
        p_raw = torch.as_tensor(np.asarray(probe_feats))
        g_raw = torch.as_tensor(np.asarray(gallery_feats))
        dtype = p_raw.dtype if p_raw.dtype == g_raw.dtype else torch.float64
        # ||p - g||^2 = ||p||^2 + (||g||^2 - 2 p.g); ||p||^2 is the same for a probe's whole
        # row, so the ranking needs only [p, 1] . [-2g, ||g||^2]: one matmul per chunk.
        # Filled in place to keep the set-up at about one extra copy of the features.
        pf = torch.ones((n_p, p_raw.shape[1] + 1), dtype=dtype)
        pf[:, :-1] = p_raw
        gf = torch.empty((n_g, g_raw.shape[1] + 1), dtype=dtype)
        gf[:, :-1] = g_raw[order]
        gf[:, -1] = torch.einsum("ij,ij->i", gf[:, :-1], gf[:, :-1])
        gf[:, :-1] *= -2
    chunk = max(1, max_elements // n_g)
    workers = max(1, torch.get_num_threads())
    pool = ThreadPoolExecutor(workers) if workers > 1 and n_p > 1 else None
    hits = torch.zeros(len(TOPK), dtype=torch.int64)
    ap_sum = torch.zeros((), dtype=torch.float64)
    scored = torch.zeros((), dtype=torch.int64)
    with torch.no_grad(), (pool or contextlib.nullcontext()):
        for s in range(0, n_p, chunk):
            e = min(n_p, s + chunk)
            if distances is not None:
                d = dist[s:e].clone()
            else:
                d = pf[s:e] @ gf.T  # squared distance minus the row constant ||p||^2
            h, a, c = _chunk_sums(d, pid[s:e], pgr[s:e], gid, ggr, start, size, r_max,
                                  check_groups, pool, workers)
            hits += h
            ap_sum += a
            scored += c
    n = int(scored)
    if n == 0:
        return RankMetrics(0.0, 0.0, 0.0, 0.0, probes=0, gallery=n_g, no_match=n_p)
    top = (hits.double() / n).tolist()
    return RankMetrics(top1=top[0], top5=top[1], top10=top[2], mAP=float(ap_sum) / n,
                       probes=n, gallery=n_g, no_match=n_p - n)

