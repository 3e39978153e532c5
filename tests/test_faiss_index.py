"""FAISS-index scoring against the exact metrics (real faiss, real files on disk)."""

import numpy as np
import pytest

from vid2reid.errors import ConfigError
from faiss_scoring import build_index, index_rank_metrics
from vid2reid.metrics import rank_metrics


def _walkers(n_probe: int, n_gallery: int, seed: int = 0):
    """Features around 40 identity centres, 4 items per video; probe and gallery share videos."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 32)).astype(np.float32)

    def side(n):
        ids = rng.integers(0, 40, n)
        return centres[ids] + 1.5 * rng.normal(size=(n, 32)).astype(np.float32), ids, \
            np.arange(n) // 4

    return side(n_probe), side(n_gallery)


def test_flat_index_matches_exact_cmc_and_full_k_mAP():
    (pf, pid, pv), (gf, gid, gv) = _walkers(600, 900)
    exact = rank_metrics(pid, gid, pf, gf, probe_groups=pv, gallery_groups=gv)
    full = index_rank_metrics(pid, gid, pf, gf, k=len(gid), probe_groups=pv, gallery_groups=gv)
    assert (full.top1, full.top5, full.top10) == pytest.approx((exact.top1, exact.top5,
                                                                exact.top10))
    assert full.mAP_at_k == pytest.approx(exact.mAP, abs=1e-6)
    assert (full.probes, full.no_match, full.gallery) == (exact.probes, exact.no_match, 900)
    assert full.exact
    short = index_rank_metrics(pid, gid, pf, gf, k=20, probe_groups=pv, gallery_groups=gv)
    assert short.top1 == pytest.approx(exact.top1)
    assert 0 < short.mAP_at_k < exact.mAP  # a lower bound: true matches beyond rank 20 are lost


def test_own_video_is_removed_and_probes_without_match_counted():
    # Probe 0's nearest item is its own video (same id): skipped, so its first
    # true match is at rank 2 after a miss. Probe 1 (id 5) has no true match.
    gallery = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)
    gid = np.array([0, 1, 0, 1])
    ggr = np.array(["v1", "v2", "v3", "v4"])
    probes = np.array([[0.0], [0.1]], np.float32)
    m = index_rank_metrics(np.array([0, 5]), gid, probes, gallery, k=10,
                           probe_groups=np.array(["v1", "v9"]), gallery_groups=ggr)
    assert (m.top1, m.top5, m.probes, m.no_match) == (0.0, 1.0, 1, 1)
    assert m.mAP_at_k == pytest.approx(0.5)  # one true match left, at rank 2


def test_memmap_gallery_and_ivf_with_every_list_searched(tmp_path, caplog):
    (pf, pid, pv), (gf, gid, gv) = _walkers(300, 4000, seed=1)
    path = tmp_path / "gallery.f32"
    gf.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=gf.shape)
    index = build_index(mm, "IVF8,Flat", chunk=1000)
    assert index.ntotal == len(gid)
    ivf = index_rank_metrics(pid, gid, pf, index=index, nprobe=8, k=50, probe_groups=pv,
                             gallery_groups=gv + 10_000)
    flat = index_rank_metrics(pid, gid, pf, gf, k=50, probe_groups=pv, gallery_groups=gv + 10_000)
    assert not ivf.exact and "approximate" in caplog.text  # said even when nprobe covers all
    # searching all 8 lists is exhaustive: the same neighbours as the flat index
    assert (ivf.top1, ivf.top5, ivf.top10, ivf.mAP_at_k) == pytest.approx(
        (flat.top1, flat.top5, flat.top10, flat.mAP_at_k))


def test_bad_factory_and_small_k_are_clear_errors():
    (pf, pid, _), (gf, gid, _) = _walkers(10, 20)
    with pytest.raises(ConfigError, match="NotAnIndex"):
        index_rank_metrics(pid, gid, pf, gf, factory="NotAnIndex")
    with pytest.raises(ConfigError, match="at least 10"):
        index_rank_metrics(pid, gid, pf, gf, k=5)
