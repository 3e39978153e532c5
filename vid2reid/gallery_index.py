"""The gallery index file: a gallery store's walks embedded once by a run, for repeated
``vid2reid match --gallery INDEX`` (``vid2reid index`` writes it).

An uncompressed ``.npz`` archive: the walks' features and windows, their manifest rows,
recording keys and content hashes, and the identity of the run that embedded them (a match
with another run is refused: its features could not be compared).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError, ProtocolError, StoreError
from vid2reid.run import Run, Walks
from vid2reid.store import atomic_file

INDEX_FORMAT = "vid2reid-gallery-index"
INDEX_VERSION = 2  # 2: recording keys and per-row hashes (version 1 still loads)


@dataclass
class GalleryIndex:
    """A gallery's walks and features, with the run that embedded them."""

    walks: Walks
    run_identity: str
    run_path: str
    store: str
    f: int

    def save(self, path: Path | str) -> Path:
        """Write the index atomically (an uncompressed ``.npz`` archive, any file name)."""
        path = Path(path)
        w = self.walks
        meta = dict(format=INDEX_FORMAT, version=INDEX_VERSION, run_identity=self.run_identity,
                    run=self.run_path, store=self.store, f=self.f, layout=w.layout,
                    paths=w.paths, rows=w.rows, subjects=w.subjects, hashes=w.hashes,
                    keys=w.keys, row_hashes=[list(h) for h in w.row_hashes],
                    skipped_short=w.skipped_short)
        with atomic_file(path) as fh:
            np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                     features=w.features, window_features=w.window_features,
                     window_walk=w.window_walk, window_start=w.window_start)
        return path


def build_index(run: Run, store: Path | str, condition: str | None = None,
                split: str | None = None, device: str = "cpu") -> GalleryIndex:
    """Embed a gallery store's walks once, for repeated ``match --gallery INDEX``."""
    walks = run.embedder(device).store(store, condition, split, side="gallery")
    return GalleryIndex(walks, run.identity, str(run.path.resolve()), str(Path(store).resolve()),
                        run.f)


def load_index(path: Path | str) -> GalleryIndex:
    """Read an index file; StoreError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: gallery index not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = {k: np.asarray(data[k]) for k in ("features", "window_features",
                                                       "window_walk", "window_start")}
    except Exception as exc:
        raise StoreError(f"{path}: not a gallery index written by 'vid2reid index' ({exc})") \
            from None
    if meta.get("format") != INDEX_FORMAT or meta.get("version") not in (1, INDEX_VERSION):
        raise StoreError(f"{path}: not a version-{INDEX_VERSION} gallery index; rebuild it with "
                         f"'vid2reid index'")
    walks = Walks(meta["paths"], meta["rows"], meta["subjects"], meta["hashes"],
                  arrays["features"], arrays["window_features"], arrays["window_walk"],
                  arrays["window_start"], meta.get("layout", ""), meta.get("skipped_short", 0),
                  list(meta.get("keys") or []),
                  [tuple(h) for h in meta.get("row_hashes") or []])
    if not len(walks):
        raise ProtocolError(f"{path}: the gallery index holds no walks")
    return GalleryIndex(walks, meta["run_identity"], meta["run"], meta["store"], int(meta["f"]))


def check_index_run(index: GalleryIndex, run: Run, where: str) -> None:
    """ConfigError unless ``index`` was built by this very run (same weights and config)."""
    if index.run_identity != run.identity:
        raise ConfigError(f"{where}: built by run {index.run_path} (model {index.run_identity[:12]}), "
                          f"not by {run.path} (model {run.identity[:12]}); its features cannot "
                          f"be compared; rebuild it with 'vid2reid index --run {run.path}'")
