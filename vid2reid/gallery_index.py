"""The gallery index file: a gallery store's walks embedded once by a run, for repeated
``vid2reid match --gallery INDEX`` (``vid2reid index`` writes it).

An uncompressed ``.npz`` archive: the walks' features and windows, their manifest rows,
recording keys and content hashes, and the identity of the run that embedded them (a match
with another run is refused: its features could not be compared).

Version 3 adds ``digest``: SHA-256 over every array (name, dtype, shape, bytes) and the rest
of the metadata. :func:`load_index` checks every field's type, that the parts agree in
length, that features are finite and window numbers in range, and then the digest, so that
a file cut, reordered or edited by hand is refused in one line instead of answering wrongly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError, ProtocolError, StoreError
from vid2reid.run import Run, Walks
from vid2reid.safepath import check_output_file
from vid2reid.store import atomic_file

INDEX_FORMAT = "vid2reid-gallery-index"
INDEX_VERSION = 3  # 2: recording keys and per-row hashes; 3: the content digest
ARRAYS = ("features", "window_features", "window_walk", "window_start")


@dataclass
class GalleryIndex:
    """A gallery's walks and features, with the run that embedded them."""

    walks: Walks
    run_identity: str
    run_path: str
    store: str
    f: int

    def save(self, path: Path | str, search: str = "auto") -> Path:
        """Write the index atomically (an uncompressed ``.npz`` archive, any file name).

        With ``search`` "ivf" (or "auto" from vid2reid.search.AUTO_APPROXIMATE walks on, when
        faiss is installed) an approximate FAISS index of the walks is built once and written
        beside it (``PATH.ivf``), its SHA-256 in the digested metadata; match then uses it.
        """
        from vid2reid.search import chosen_search

        path = Path(path)
        w = self.walks
        approximate = chosen_search(len(w), search) == "ivf"
        ivf_bytes = b""
        if approximate:
            from vid2reid.ann import ApproxSearcher, serialize

            ivf_bytes = serialize(ApproxSearcher.build(w.features).index)
        meta = dict(format=INDEX_FORMAT, version=INDEX_VERSION, run_identity=self.run_identity,
                    run=self.run_path, store=self.store, f=self.f, layout=w.layout,
                    paths=w.paths, rows=w.rows, subjects=w.subjects, hashes=w.hashes,
                    keys=w.keys, row_hashes=[list(h) for h in w.row_hashes],
                    skipped_short=w.skipped_short)
        if approximate:
            meta.update(ivf=path.name + ".ivf", ivf_sha256=hashlib.sha256(ivf_bytes).hexdigest())
        arrays = dict(features=w.features, window_features=w.window_features,
                      window_walk=w.window_walk, window_start=w.window_start)
        meta["digest"] = content_digest(meta, arrays)
        if approximate:  # first: the index file never names a missing one
            from vid2reid.store import atomic_write_bytes

            atomic_write_bytes(path.parent / meta["ivf"], ivf_bytes)
        with atomic_file(path) as fh:
            np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
        return path


def content_digest(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the metadata (but ``digest``) and the arrays: what a reader checks."""
    h = hashlib.sha256()
    rest = {k: v for k, v in meta.items() if k != "digest"}
    h.update(json.dumps(rest, sort_keys=True).encode())
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def is_index_file(path: Path | str) -> bool:
    """Whether ``path`` is a gallery index (of any version): what ``index --out`` may replace."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
    except Exception:
        return False
    return isinstance(meta, dict) and meta.get("format") == INDEX_FORMAT


def check_index_out(path: Path | str, force: bool = False) -> None:
    """StoreError unless ``path`` is new, an index file, or ``force`` (a file that is not an
    index, such as a thesis saved under that name, is never replaced without ``--force``)."""
    check_output_file(path, is_index_file, "a gallery index", force, "--out")


def build_index(run: Run, store: Path | str, condition: str | None = None,
                split: str | None = None, device: str = "cpu") -> GalleryIndex:
    """Embed a gallery store's walks once, for repeated ``match --gallery INDEX``."""
    walks = run.embedder(device).store(store, condition, split, side="gallery")
    return GalleryIndex(walks, run.identity, str(run.path.resolve()), str(Path(store).resolve()),
                        run.f)


def _field(meta: dict, name: str, kind: str, path: Path) -> object:
    """``meta[name]`` when it is of ``kind`` (str, int, str-list, row-list, hash-list)."""
    if name not in meta:
        raise StoreError(f"{path}: field {name!r} is missing; rebuild it with 'vid2reid index'")
    v = meta[name]
    ok = {"str": isinstance(v, str),
          "int": isinstance(v, int) and not isinstance(v, bool) and v >= 0,
          "str-list": isinstance(v, list) and all(isinstance(x, str) for x in v),
          "row-list": isinstance(v, list) and all(
              isinstance(x, dict) and all(isinstance(k, str) and isinstance(y, str)
                                          for k, y in x.items()) for x in v),
          "hash-list": isinstance(v, list) and all(
              isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v)}[kind]
    if not ok:
        want = {"str": "a string", "int": "a whole number >= 0", "str-list": "a list of strings",
                "row-list": "a list of manifest rows (text fields)",
                "hash-list": "a list of lists of hashes"}[kind]
        raise StoreError(f"{path}: field {name!r} must be {want}, got {repr(v)[:60]}; rebuild "
                         f"it with 'vid2reid index'")
    return v


def _check_arrays(arrays: dict[str, np.ndarray], walks: int, path: Path) -> None:
    """Shapes, types, finiteness and window numbers of an index's arrays (one line each)."""
    feats, wf = arrays["features"], arrays["window_features"]
    ww, ws = arrays["window_walk"], arrays["window_start"]
    for name, a, kinds, ndim in (("features", feats, "f", 2), ("window_features", wf, "f", 2),
                                 ("window_walk", ww, "iu", 1), ("window_start", ws, "iu", 1)):
        if a.dtype.kind not in kinds or a.ndim != ndim:
            raise StoreError(f"{path}: {name} is a {a.ndim}-d array of {a.dtype}, not the "
                             f"{ndim}-d {'numbers' if kinds == 'f' else 'whole numbers'} "
                             f"'vid2reid index' writes; rebuild it")
    if len(feats) != walks:
        raise StoreError(f"{path}: features has {len(feats)} rows for {walks} walks (paths); "
                         f"the file was cut or edited; rebuild it with 'vid2reid index'")
    if len(wf) != len(ww) or len(ws) != len(ww) or (len(wf) and wf.shape[1] != feats.shape[1]):
        raise StoreError(f"{path}: window arrays disagree (window_features {wf.shape}, "
                         f"window_walk {ww.shape}, window_start {ws.shape}, features "
                         f"{feats.shape}); rebuild it with 'vid2reid index'")
    for name, a in (("features", feats), ("window_features", wf)):
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a).all(axis=1)).sum())
            raise StoreError(f"{path}: {bad} of {len(a)} rows of {name} hold NaN or infinite "
                             f"values; rebuild it with 'vid2reid index'")
    if len(ww) and (ww.min() < 0 or ww.max() >= walks):
        raise StoreError(f"{path}: window_walk holds walk numbers outside 0..{walks - 1} "
                         f"(found {int(ww.min())}..{int(ww.max())}); rebuild it with "
                         f"'vid2reid index'")
    if len(ws) and ws.min() < 0:
        raise StoreError(f"{path}: window_start holds a negative frame; rebuild it")


def load_index(path: Path | str) -> GalleryIndex:
    """Read an index file and check it (see the module docstring); one StoreError line naming
    the file and the field when it is not an index, or not the one 'vid2reid index' wrote."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: gallery index not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = {k: np.asarray(data[k]) for k in ARRAYS}
    except Exception as exc:
        raise StoreError(f"{path}: not a gallery index written by 'vid2reid index' "
                         f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
                         ) from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise StoreError(f"{path}: not a gallery index written by 'vid2reid index'")
    if meta.get("version") != INDEX_VERSION:
        raise StoreError(f"{path}: a version-{meta.get('version')!r} gallery index, not version "
                         f"{INDEX_VERSION} (with a content digest); rebuild it with "
                         f"'vid2reid index'")
    for name in ("run_identity", "run", "store", "layout", "digest"):
        _field(meta, name, "str", path)
    for name in ("f", "skipped_short"):
        _field(meta, name, "int", path)
    if meta["f"] < 1:
        raise StoreError(f"{path}: field 'f' must be >= 1, got {meta['f']}")
    for name in ("paths", "subjects", "hashes", "keys"):
        _field(meta, name, "str-list", path)
    _field(meta, "rows", "row-list", path)
    _field(meta, "row_hashes", "hash-list", path)
    n = len(meta["paths"])
    for name in ("rows", "subjects", "hashes", "keys", "row_hashes"):
        if len(meta[name]) != n:
            raise StoreError(f"{path}: field {name!r} has {len(meta[name])} entries for {n} "
                             f"walks (paths); rebuild it with 'vid2reid index'")
    if not n:
        raise ProtocolError(f"{path}: the gallery index holds no walks")
    for i, row in enumerate(meta["rows"]):
        if row.get("store", meta["store"]) != meta["store"] or "video" in row:
            raise StoreError(f"{path}: row {i} names another store or a video than the index's "
                             f"store {meta['store']}; rebuild it with 'vid2reid index'")
    _check_arrays(arrays, n, path)
    if content_digest(meta, arrays) != meta["digest"]:
        raise StoreError(f"{path}: content does not match its digest (rows cut, reordered or "
                         f"edited since 'vid2reid index' wrote it); rebuild it")
    walks = Walks(meta["paths"], meta["rows"], meta["subjects"], meta["hashes"],
                  arrays["features"], arrays["window_features"], arrays["window_walk"],
                  arrays["window_start"], meta["layout"], meta["skipped_short"],
                  list(meta["keys"]), [tuple(h) for h in meta["row_hashes"]])
    if meta.get("ivf"):
        walks._prepared[("built", "sequence")] = _approximate(path, meta, walks.features)
    return GalleryIndex(walks, meta["run_identity"], meta["run"], meta["store"], meta["f"])


def _approximate(path: Path, meta: dict, features: np.ndarray):
    """The approximate searcher 'vid2reid index' wrote beside ``path`` (checked against the
    digested SHA-256; its shortlists are re-ranked with the index's own, checked features)."""
    from vid2reid.ann import ApproxSearcher, deserialize

    name = meta["ivf"]
    if not isinstance(name, str) or "/" in name or "\\" in name or name in (".", ".."):
        raise StoreError(f"{path}: field 'ivf' must name a file beside the index, got {name!r}")
    ivf = path.parent / name
    try:
        data = ivf.read_bytes()
    except OSError as exc:
        raise StoreError(f"{ivf}: the approximate index of {path} cannot be read "
                         f"({exc.strerror}); rebuild it with 'vid2reid index'") from None
    if hashlib.sha256(data).hexdigest() != meta.get("ivf_sha256"):
        raise StoreError(f"{ivf}: does not match the digest {path} holds; rebuild it with "
                         f"'vid2reid index'")
    return ApproxSearcher(deserialize(data, ivf), features)


def check_index_run(index: GalleryIndex, run: Run, where: str) -> None:
    """ConfigError unless ``index`` was built by this very run (same weights and config)."""
    if index.run_identity != run.identity:
        raise ConfigError(f"{where}: built by run {index.run_path} (model {index.run_identity[:12]}), "
                          f"not by {run.path} (model {run.identity[:12]}); its features cannot "
                          f"be compared; rebuild it with 'vid2reid index --run {run.path}'")
