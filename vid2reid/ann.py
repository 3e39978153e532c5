"""Approximate nearest-walk search for galleries of millions of walks: FAISS IVF, re-ranked
exactly.

An inverted-file index (``PCA64,IVF<nlist>,SQ8``: the features projected on their 64 main
directions, cut into ``nlist`` cells by k-means, each stored as 8-bit codes, 64 bytes a walk)
finds a shortlist of candidates by visiting the ``nprobe`` cells nearest to the query. The shortlist is then
ranked by exact float64 Euclidean distances computed from the float32 features, which may
be a ``np.memmap`` (only the shortlist's rows are read). So every distance reported is
exact, and the only approximation is which items reach the shortlist: recall, measured by
``benchmarks/bench_match.py`` against exhaustive search.

:class:`ApproxSearcher` has the interface of vid2reid.search's exact ``Searcher``
(``rank``, ``nearest_where``), so a gallery can switch to it above a size. An index can be
built in parts on several machines from one trained (empty) index: :func:`train_index`
once, :func:`add_part` per machine on its rows, :func:`merge_parts`; the merged index holds
the same cells and codes as one built in one go, so it answers like it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vid2reid.errors import ConfigError

DEFAULT_CODEC = "SQ8"
TRAIN_ROWS = 100_000  # k-means sample: plenty for a few thousand cells (faiss wants >= 39 per cell)


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError("approximate search needs the faiss package: pip install faiss-cpu "
                          "(or 'vid2reid[faiss]'); exact search needs nothing extra") from exc
    return faiss


def factory_index(gallery_feats: np.ndarray, factory: str = "Flat", *, train_size: int = 100_000,
                chunk: int = 65_536, seed: int = 0):
    """A FAISS L2 index over the gallery, built by ``faiss.index_factory`` from ``factory``.

    Indexes that need training (IVF, PQ) are trained on at most ``train_size``
    gallery rows drawn with ``seed``. Rows are added ``chunk`` at a time, so a
    ``np.memmap`` gallery is never read into memory whole.
    """
    faiss = _faiss()
    n, dim = gallery_feats.shape
    try:
        index = faiss.index_factory(int(dim), factory, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ConfigError(f"FAISS index {factory!r}: {str(exc).strip().splitlines()[-1]}") from exc
    if not index.is_trained:
        rows = np.sort(np.random.default_rng(seed).choice(n, min(n, train_size), replace=False))
        index.train(np.ascontiguousarray(gallery_feats[rows], dtype=np.float32))
    for s in range(0, n, chunk):
        index.add(np.ascontiguousarray(gallery_feats[s:s + chunk], dtype=np.float32))
    return index


def default_nlist(n: int) -> int:
    """Cells for ``n`` walks: about 4 sqrt(n), a power of two (1M walks: 4096)."""
    return int(2 ** max(3, round(math.log2(4 * math.sqrt(max(n, 1))))))


def default_nprobe(nlist: int) -> int:
    """Cells visited per query: 4 sqrt(nlist) (1024 cells: 128, 4096: 256). On 256-d
    features with a trained embedding's spectrum that kept recall at 10 >= 0.99 at 100k and
    1M walks (benchmarks/bench_match.py --index ivf; docs/benchmarks.md)."""
    return int(min(nlist, max(8, round(4 * math.sqrt(nlist)))))


def default_transform(dim: int) -> str:
    """``PCA64`` for features of more than 64 dimensions, else none. A trained embedding's
    walks lie in few directions (KGBD, default run, 256-d: 99.8 % of the variance in 64), and
    the scan over 64-d codes was 27x faster than over 256-d ones at the same recall."""
    return "PCA64" if dim > 64 else ""


def _ivf(index):
    """The inverted-file index itself (inside a pre-transform such as PCA, if any)."""
    return _faiss().extract_index_ivf(index)


def train_index(sample: np.ndarray, nlist: int, codec: str = DEFAULT_CODEC, seed: int = 0,
                transform: str = ""):
    """An empty, trained IVF index (``[<transform>,]IVF<nlist>,<codec>``, L2) for features
    like ``sample``: what every part of an index built in parts starts from. ``transform``
    (e.g. ``PCA64``) makes the cells and codes in fewer dimensions: a faster scan for
    features whose variance lies in few directions, as a trained embedding's does; the
    re-rank still uses every dimension."""
    faiss = _faiss()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < nlist:
        raise ConfigError(f"an index of {nlist} cells needs at least {nlist} training "
                          f"features, got {len(sample)}")
    spec = f"{transform + ',' if transform else ''}IVF{nlist},{codec}"
    try:
        index = faiss.index_factory(sample.shape[1], spec, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ConfigError(f"FAISS index {spec}: {str(exc).strip().splitlines()[-1]}") from exc
    _ivf(index).cp.seed = seed  # k-means start: the same sample gives the same cells
    index.train(sample)
    return index


def add_part(trained, features: np.ndarray, first_id: int = 0, chunk: int = 65_536):
    """A copy of the ``trained`` empty index holding ``features`` as items ``first_id``,
    ``first_id + 1``, ... (read ``chunk`` rows at a time, so a memmap is never loaded whole)."""
    faiss = _faiss()
    part = faiss.clone_index(trained)
    for s in range(0, len(features), chunk):
        rows = np.ascontiguousarray(features[s:s + chunk], dtype=np.float32)
        part.add_with_ids(rows, np.arange(first_id + s, first_id + s + len(rows), dtype=np.int64))
    return part


def merge_parts(parts: list):
    """One index holding every part's items (parts made by :func:`add_part` from the same
    trained index, with disjoint item numbers)."""
    if not parts:
        raise ConfigError("no index parts to merge")
    faiss = _faiss()
    merged = faiss.clone_index(parts[0])
    for part in parts[1:]:
        a, b = _ivf(part), _ivf(merged)
        if a.nlist != b.nlist or part.d != merged.d or type(part) is not type(merged):
            raise ConfigError(f"index parts differ ({a.nlist} vs {b.nlist} cells, {part.d} vs "
                              f"{merged.d} dimensions); build every part from the same "
                              f"trained index")
        merged.merge_from(part, 0)
    return merged


@dataclass
class ApproxSearcher:
    """IVF shortlist, exact re-rank: ``rank`` and ``nearest_where`` like the exact Searcher.

    ``features`` (n, d) float32 (a memmap is fine) are the gallery rows the index numbers;
    ``nprobe`` cells are visited per query and ``shortlist`` candidates per wanted item (at
    least 64) are re-ranked exactly.
    """

    index: object
    features: np.ndarray
    nprobe: int | None = None  # None: default_nprobe(cells)
    shortlist: int = 8

    @classmethod
    def build(cls, features: np.ndarray, nlist: int | None = None, nprobe: int | None = None,
              codec: str = DEFAULT_CODEC, shortlist: int = 8, seed: int = 0,
              train_rows: int = TRAIN_ROWS, transform: str | None = None) -> "ApproxSearcher":
        """Train on up to ``train_rows`` rows drawn with ``seed`` and add every row;
        ``transform`` None: :func:`default_transform`."""
        n = len(features)
        nlist = nlist or default_nlist(n)
        rows = np.sort(np.random.default_rng(seed).choice(n, min(n, max(train_rows, 40 * nlist)),
                                                          replace=False))
        if transform is None:
            transform = default_transform(features.shape[1])
        index = add_part(train_index(features[rows], nlist, codec, seed, transform), features)
        return cls(index, features, nprobe, shortlist)

    def __post_init__(self) -> None:
        if self.index.ntotal != len(self.features):
            raise ConfigError(f"the index holds {self.index.ntotal} walks but there are "
                              f"{len(self.features)} features; build them together")
        if self.nprobe is None:
            self.nprobe = default_nprobe(_ivf(self.index).nlist)
        _ivf(self.index).nprobe = int(self.nprobe)

    def __len__(self) -> int:
        return len(self.features)

    def _exact(self, q64: np.ndarray, cand: np.ndarray) -> np.ndarray:
        rows = np.asarray(self.features[np.sort(cand)], dtype=np.float64)  # sorted: fewer seeks
        d2 = ((rows - q64) ** 2).sum(1)
        back = np.empty_like(d2)
        back[np.argsort(cand, kind="stable")] = d2
        return back

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query row: the k nearest items found and their exact distances, nearest first
        (ties: lower index first); -1 / inf pad a row when fewer were found."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        m = min(len(self), max(64, self.shortlist * k))
        _, cand = self.index.search(q, m)
        idx = np.full((len(q), k), -1, np.int64)
        dist = np.full((len(q), k), np.inf)
        for i in range(len(q)):
            c = cand[i][cand[i] >= 0]
            d2 = self._exact(q[i].astype(np.float64), c)
            order = np.lexsort((c, d2))[:k]
            idx[i, :len(order)] = c[order]
            dist[i, :len(order)] = np.sqrt(np.maximum(d2[order], 0.0))
        return idx, dist

    def rank(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and exact distances of the k nearest items found, ``exclude`` left out."""
        n_ex = 0 if exclude is None else len(exclude)
        k = min(k, len(self) - n_ex)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0)
        idx, dist = self.search(q, k + n_ex)
        idx, dist = idx[0], dist[0]
        keep = idx >= 0
        if n_ex:
            keep &= ~np.isin(idx, exclude)
        return idx[keep][:k], dist[keep][:k]

    def nearest_where(self, q: np.ndarray, allow: np.ndarray) -> tuple[int, float] | None:
        """The nearest item among ``allow`` (bool mask): from the shortlist when one is in
        it, else exactly over every allowed item (as the exact Searcher does)."""
        q = np.asarray(q, np.float32)
        q64 = q.astype(np.float64)
        _, cand = self.index.search(q[None, :], min(len(self), max(64, self.shortlist * 10)))
        cand = cand[0][cand[0] >= 0]
        cand = cand[allow[cand]]
        if not len(cand):
            cand = np.flatnonzero(allow)
            if not len(cand):
                return None
        d2 = self._exact(q64, cand)
        i = int(np.lexsort((cand, d2))[0])
        return int(cand[i]), float(np.sqrt(max(d2[i], 0.0)))


# ---------------------------------------------------------------------------------------------
# files: the index (FAISS's own format) and the features as .npy, which np.load memory-maps

INDEX_FILE = "ivf.faiss"
FEATURES_FILE = "features.npy"


def save_features(path, features: np.ndarray, chunk: int = 65_536) -> None:
    """Write (n, d) float32 features as an .npy file that :func:`load_searcher` memory-maps,
    ``chunk`` rows at a time (a memmap source is never read whole); atomic (temp, rename)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(len(features), features.shape[1]))
        for s in range(0, len(features), chunk):
            out[s:s + chunk] = features[s:s + chunk]
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def serialize(index) -> bytes:
    """A FAISS index as bytes (its own format)."""
    return _faiss().serialize_index(index).tobytes()


def deserialize(data: bytes, where: object = "index"):
    """The FAISS index ``serialize`` gave; ConfigError naming ``where`` when it is not one."""
    try:
        return _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        raise ConfigError(f"{where}: not a FAISS index "
                          f"({str(exc).strip().splitlines()[-1]})") from None


def save_searcher(folder, searcher: ApproxSearcher) -> None:
    """``folder/ivf.faiss`` and ``folder/features.npy`` (each written whole, then renamed)."""
    from pathlib import Path

    from vid2reid.store import atomic_write_bytes

    faiss = _faiss()
    folder = Path(folder)
    save_features(folder / FEATURES_FILE, searcher.features)
    atomic_write_bytes(folder / INDEX_FILE, faiss.serialize_index(searcher.index).tobytes())


def load_searcher(folder, nprobe: int | None = None) -> ApproxSearcher:
    """The searcher :func:`save_searcher` wrote; the features are memory-mapped, not read."""
    from pathlib import Path

    faiss = _faiss()
    folder = Path(folder)
    for name in (INDEX_FILE, FEATURES_FILE):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name}: missing (write the index with save_searcher)")
    try:
        index = faiss.deserialize_index(np.fromfile(folder / INDEX_FILE, dtype=np.uint8))
    except RuntimeError as exc:
        raise ConfigError(f"{folder / INDEX_FILE}: not a FAISS index "
                          f"({str(exc).strip().splitlines()[-1]})") from None
    try:
        features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    except ValueError as exc:
        raise ConfigError(f"{folder / FEATURES_FILE}: not an .npy array ({exc})") from None
    return ApproxSearcher(index, features, nprobe)
