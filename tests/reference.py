"""Slow, plain reference implementations the package's fast paths are checked against (tests
and benchmarks only; never imported by vid2reid)."""

from __future__ import annotations

import numpy as np
import torch

from vid2reid.cluster import K1_READINGS, l2_normalise
from vid2reid.errors import ConfigError


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
