"""The skeleton store: a directory of per-sequence ``.npz`` files indexed by ``manifest.csv``.

This is the stable format between the pose stage and training/evaluation, and
the format users write when they bring their own skeletons (Kinect data sets,
other pose estimators). See README.md, "Skeleton store format".

- ``manifest.csv``: one row per sequence with at least the columns
  ``subject, condition, sequence, view, path, frames`` (``layout`` and
  ``split`` optional; extra columns are kept). Without a ``layout`` value the
  layout comes from the sequence file; one store uses one layout.
- each ``.npz``: ``joints`` float32 (T, J, 3), a ``layout`` name, and optional
  metadata (subject, condition, ...) so that the manifest can be rebuilt from
  the files alone (``index_store``), which is what parallel extraction does.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vid2reid import safepath
from vid2reid.errors import StoreError, Vid2ReidError

MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ("subject", "condition", "sequence", "view", "path", "frames")
COLUMNS = REQUIRED_COLUMNS + ("layout", "split")
SPLITS = ("", "train", "test")
_META_KEYS = ("subject", "condition", "sequence", "view", "split")
CONTENT_HASH = "content_hash"  # manifest column: content_hash() of the file's joints
REPLACED = ".manifest.csv.replaced"  # the manifest of a store while it is being rewritten
# A sequence file whose joints would take more memory than this is refused before it is loaded
# (a few hundred KB of .npz can expand to GBs). 256 MiB: some 650,000 frames of 33 joints.
# VID2REID_MAX_SEQUENCE_MB overrides it.
MAX_SEQUENCE_BYTES = 256 << 20

# CASIA-B's condition codes and their long names (case-insensitive).
_CONDITION_ALIASES = {"normal": "nm", "nm": "nm", "bags": "bg", "bag": "bg", "bg": "bg",
                      "clothes": "cl", "coat": "cl", "cl": "cl"}


def canonical_condition(name: str) -> str:
    """``Normal/Bags/Clothes`` (any case) -> ``nm/bg/cl``; any other code as written."""
    return _CONDITION_ALIASES.get(name.strip().lower(), name.strip())


@dataclass(frozen=True)
class Record:
    """One manifest row: a sequence and where its joints are stored."""

    subject: str
    condition: str
    sequence: str
    view: str
    path: str
    frames: int
    layout: str = ""
    split: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def video_key(self) -> tuple[str, str, str, str]:
        """Identifies the source video; sequences split from one video share it."""
        return (self.subject, canonical_condition(self.condition), self.sequence, self.view)

    def row(self) -> dict[str, str]:
        row = {c: str(getattr(self, c)) for c in COLUMNS}
        row.update(dict(self.extra))
        return row


@dataclass
class LoadedStore:
    """Sequences loaded into memory, with how many were too short to use."""

    records: list[Record]
    joints: list[np.ndarray]
    skipped_short: int = 0


def umask_file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask (0644 under umask 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` when the block ends without an error, so that
    readers see the old file or the new one, never half; on an error nothing is left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a read-only or missing folder: name the file, not a temp name
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        os.chmod(tmp, umask_file_mode())  # mkstemp makes 0600; others may need to read a store
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk while writing: the old file stays, no temp file
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    with atomic_file(path) as fh:
        fh.write(data)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run (OWASP's rule for CSV injection): text that would
    start with ``= + - @``, a tab or a carriage return gets a leading ``'``; numbers (and text
    that reads as a number, such as ``-0.25``) are left alone. For outputs opened in a
    spreadsheet (match's and group's CSV), never for a store's own manifest."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def _check_joints(joints: np.ndarray, where: str) -> np.ndarray:
    if joints.dtype.kind not in "iuf":
        raise StoreError(f"{where}: joints are of type {joints.dtype}, not real numbers")
    if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[1] < 1:
        raise StoreError(f"{where}: joints must have shape (T, J, 3), got {tuple(joints.shape)}")
    if joints.shape[0] == 0:
        raise StoreError(f"{where}: sequence has no frames")
    if not np.isfinite(joints).all():
        bad = np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))
        which = (f"frame {bad[0]} (and {len(bad) - 1} more) contain" if len(bad) > 1
                 else f"frame {bad[0]} contains")
        raise StoreError(f"{where}: {which} NaN or infinite coordinates")
    return joints.astype(np.float32, copy=False)


def save_sequence(store_dir: Path | str, rel_path: str, joints: np.ndarray, layout: str,
                  **meta: object) -> Record:
    """Atomically write one sequence file and return its manifest record.

    ``meta`` may hold subject/condition/sequence/view/split and any extra
    scalar fields (e.g. quality numbers); all are stored inside the file.
    """
    store_dir = Path(store_dir)
    target = safepath.inside(store_dir, rel_path, f"{store_dir}: sequence to write")
    joints = np.asarray(joints)
    if joints.dtype.kind in "iuf":
        joints = joints.astype(np.float32, copy=False)
    joints = _check_joints(joints, str(target))
    meta = {k: v for k, v in meta.items() if k != CONTENT_HASH}
    arrays = {"joints": joints, "layout": np.array(layout)}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(target, buf.getvalue())
    scalars = {k: v for k, v in meta.items() if np.ndim(v) == 0}  # as index_store lists them
    return _record_from_meta(rel_path, joints.shape[0], layout,
                             {**scalars, CONTENT_HASH: content_hash(joints)})


def content_hash(joints: np.ndarray) -> str:
    """What identifies a recording by its data: SHA-256 (hex) of the joints' shape as Python
    writes it, ``(T, J, 3)``, then their little-endian float32 bytes. Two rows with the same
    hash hold the same walk."""
    arr = np.ascontiguousarray(np.asarray(joints, dtype="<f4"))
    h = hashlib.sha256(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def record_hash(record: Record) -> str:
    """The ``content_hash`` a record carries ('' when its manifest has none)."""
    return dict(record.extra).get(CONTENT_HASH, "")


def with_hash(record: Record, value: str) -> Record:
    """``record`` carrying ``content_hash`` ``value``."""
    extra = tuple((k, v) for k, v in record.extra if k != CONTENT_HASH) + ((CONTENT_HASH, value),)
    return replace(record, extra=tuple(sorted(extra)))


def data_hash(records: list[Record]) -> str:
    """One hash for a set of walks (their paths and content hashes): what a training run
    records so that a resume can check it continues on the same data."""
    h = hashlib.sha256()
    for path, value in sorted((r.path, record_hash(r)) for r in records):
        h.update(f"{path}\t{value}\n".encode())
    return h.hexdigest()


def _record_from_meta(rel_path: str, frames: int, layout: str, meta: dict) -> Record:
    extra = tuple((k, str(v)) for k, v in sorted(meta.items()) if k not in _META_KEYS)
    return Record(subject=str(meta.get("subject", "")), condition=str(meta.get("condition", "")),
                  sequence=str(meta.get("sequence", "")), view=str(meta.get("view", "")),
                  path=rel_path, frames=int(frames), layout=layout,
                  split=str(meta.get("split", "")), extra=extra)


def write_manifest(store_dir: Path | str, records: list[Record]) -> Path:
    """Atomically write ``manifest.csv`` for ``records`` (sorted by path)."""
    records = sorted(records, key=lambda r: r.path)
    extra_cols = sorted({k for r in records for k, _ in r.extra} - set(COLUMNS))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS) + extra_cols, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(r.row())
    path = Path(store_dir) / MANIFEST
    atomic_write_bytes(path, out.getvalue().encode())
    return path


def read_manifest(store_dir: Path | str) -> list[Record]:
    """Read and validate ``manifest.csv``; StoreError names the file and the problem."""
    store_dir = Path(store_dir)
    path = store_dir / MANIFEST
    if not store_dir.is_dir():
        raise StoreError(f"{store_dir}: skeleton store not found (run 'vid2reid extract' first "
                         f"or pass --data)")
    if not path.is_file():
        if (store_dir / REPLACED).is_file():
            raise StoreError(f"{path}: missing: a command rewriting this store (import or "
                             f"convert) stopped before it finished; run it again")
        raise StoreError(f"{path}: no manifest in this store (run 'vid2reid extract', or write "
                         f"one as described in README 'Skeleton store format')")
    _, rows = read_table(path, REQUIRED_COLUMNS)
    records, seen = [], {}
    for line, row in rows:
        rec = _parse_row(row, path, line, store_dir)
        key = (store_dir / rec.path).resolve()
        if key in seen:
            raise StoreError(f"{path}:{line}: {rec.path!r} is listed twice (also on line "
                             f"{seen[key]}); list each sequence once")
        seen[key] = line
        records.append(rec)
    if not records:
        raise StoreError(f"{path}: manifest has no sequences (empty store)")
    return _resolve_layouts(store_dir, records)


def read_table(path: Path, required: tuple[str, ...] | list[str],
               error: type[Vid2ReidError] = StoreError) -> tuple[list[str], list[tuple[int, dict]]]:
    """The columns and rows (with line numbers) of a CSV file such as ``manifest.csv``.

    UTF-8 with or without a byte-order mark; names and values are stripped. ``error`` (one
    line naming the file) for bytes that are not UTF-8, a missing or repeated column, a row
    with fewer fields than the header (or more that are not empty), or a field over csv's
    size limit. Blank lines are skipped.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); save "
                    f"the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip() for c in next(reader, [])]
        dup = sorted({c for c in header if c and header.count(c) > 1})
        if dup:
            raise error(f"{path}:1: column(s) {', '.join(dup)} appear more than once")
        missing = [c for c in required if c not in header]
        if missing:
            raise error(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for cells in reader:
            line = reader.line_num
            if not cells or not any(c.strip() for c in cells):
                continue
            if len(cells) < len(header) or any(c.strip() for c in cells[len(header):]):
                raise error(f"{path}:{line}: {len(cells)} field(s), but the header has "
                            f"{len(header)}")
            rows.append((line, {k: v.strip() for k, v in zip(header, cells) if k}))
    except csv.Error as exc:
        raise error(f"{path}:{reader.line_num}: not a valid CSV row ({exc})") from None
    return header, rows


def file_layout(path: Path | str) -> str:
    """The ``layout`` name stored inside one sequence file ('' when it has none)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["layout"]) if "layout" in data.files else ""
    except Exception as exc:  # zip/npz corruption surfaces as many exception types
        raise StoreError(f"{path}: cannot read sequence file ({exc})") from None


def _resolve_layouts(store_dir: Path, records: list[Record]) -> list[Record]:
    """Fill empty manifest layouts from the files; one store must use one layout.

    A manifest without a ``layout`` column (or with empty values) takes each
    sequence's layout from its ``.npz`` file. A listed file that is missing is
    left for ``load_joints`` to report. Sequences whose layout is unknown
    everywhere ('') do not count as disagreeing.
    """
    out, first = [], None
    for rec in records:
        if not rec.layout and (store_dir / rec.path).is_file():
            rec = replace(rec, layout=file_layout(store_dir / rec.path))
        if rec.layout:
            if first is None:
                first = rec
            elif rec.layout != first.layout:
                raise StoreError(f"{store_dir / rec.path}: layout {rec.layout!r} but "
                                 f"{store_dir / first.path} has layout {first.layout!r}; "
                                 f"one store must use one joint layout")
        out.append(rec)
    return out


def _parse_row(row: dict[str, str], path: Path, line: int, store_dir: Path) -> Record:
    where = f"{path}:{line}"
    try:
        frames = int(row["frames"])
    except (TypeError, ValueError):
        raise StoreError(f"{where}: 'frames' must be an integer, got {row['frames']!r}") from None
    if frames < 0:
        raise StoreError(f"{where}: 'frames' must be 0 or more, got {frames}")
    split = (row.get("split") or "").strip().lower()
    if split not in SPLITS:
        raise StoreError(f"{where}: 'split' must be train, test or empty, got {split!r}")
    if not (row.get("path") or "").strip():
        raise StoreError(f"{where}: empty 'path'")
    safepath.inside(store_dir, row["path"].strip(), where)
    extra = tuple((k, v or "") for k, v in row.items() if k not in COLUMNS and k is not None)
    return Record(subject=row["subject"].strip(), condition=row["condition"].strip(),
                  sequence=row["sequence"].strip(), view=row["view"].strip(),
                  path=row["path"].strip(), frames=frames,
                  layout=(row.get("layout") or "").strip(), split=split, extra=extra)


def start_frame(record: Record) -> int | None:
    """The video frame a sequence starts at (manifest column ``start_frame``), None if unknown."""
    value = dict(record.extra).get("start_frame", "")
    try:
        return int(value)
    except ValueError:
        return None


def common_frames(stores: list[Path], records: list[Record]) -> list[slice]:
    """Per store, the part of its copy of one recording that every store holds.

    Two pose estimators may keep different frames of one video (one misses the
    walker in the first frame); their sequences are lined up by ``start_frame``.
    Copies of equal length line up as they are when a start is unknown (a store
    made by ``vid2reid convert`` or an importer). StoreError, naming the file, when
    the copies cannot be lined up or share no frame.
    """
    lengths = [r.frames for r in records]
    starts = [start_frame(r) for r in records]
    if None in starts or len(set(starts)) == 1:
        if len(set(lengths)) == 1:
            return [slice(0, lengths[0])] * len(records)
        if None in starts:
            bad = next(i for i, n in enumerate(lengths) if n != lengths[0])
            raise StoreError(f"{Path(stores[bad]) / records[bad].path}: {lengths[bad]} frames, "
                             f"{Path(stores[0]) / records[0].path} has {lengths[0]}, and without a "
                             f"start_frame column the stores' frames cannot be lined up")
    lo = max(starts)
    hi = min(s + n for s, n in zip(starts, lengths))
    if hi <= lo:
        spans = ", ".join(f"{s}-{s + n - 1}" for s, n in zip(starts, lengths))
        raise StoreError(f"{Path(stores[0]) / records[0].path}: the stores' copies of this "
                         f"recording share no video frame (frames {spans})")
    return [slice(lo - s, hi - s) for s in starts]


def cut_to_common(stores: list[Path], copies: list[list[tuple[Record, np.ndarray]]], f: int
                  ) -> tuple[list[list[tuple[Record, np.ndarray]]], int, int]:
    """Every store's copies of the same recordings (``copies[k][i]``: store k, recording i) cut
    to the frames all stores hold (:func:`common_frames`), each record's ``frames`` updated.

    Returns the kept copies, how many recordings were cut, and how many were dropped because
    fewer than ``f`` common frames were left.
    """
    kept: list[list[tuple[Record, np.ndarray]]] = [[] for _ in copies]
    cut = short = 0
    for i in range(len(copies[0])):
        recs = [replace(c[i][0], frames=len(c[i][1])) for c in copies]
        spans = common_frames(stores, recs)
        cut += any(sp != slice(0, r.frames) for sp, r in zip(spans, recs))
        if spans[0].stop - spans[0].start < f:
            short += 1
            continue
        for k, (c, span) in enumerate(zip(copies, spans)):
            kept[k].append((replace(c[i][0], frames=span.stop - span.start), c[i][1][span]))
    return kept, cut, short


def load_joints(store_dir: Path | str, record: Record) -> np.ndarray:
    """Load one sequence's joints (T, J, 3) float32, validating shape and values."""
    path = safepath.inside(store_dir, record.path, f"{Path(store_dir) / MANIFEST}")
    if not path.is_file():
        raise StoreError(f"{path}: file listed in manifest is missing")
    shape = joints_shape(path)
    check_size(path, shape)
    try:
        with np.load(path, allow_pickle=False) as data:
            joints = np.asarray(data["joints"])
            layout = str(data["layout"]) if "layout" in data.files else ""
    except StoreError:
        raise
    except Exception as exc:  # zip/npz corruption surfaces as many exception types
        raise StoreError(f"{path}: cannot read sequence file ({exc})") from None
    joints = _check_joints(joints, str(path))
    _check_layout(path, record, layout, joints.shape[1])
    stored = record_hash(record)
    if stored and stored != content_hash(joints):
        raise StoreError(f"{path}: its joints do not match the manifest's content_hash (the file "
                         f"changed after the manifest was written); write the store again")
    return joints


def _check_layout(path: Path, record: Record, file_layout_: str, joints: int) -> None:
    """StoreError when the manifest's layout contradicts the file (its layout or joint count)."""
    from vid2reid.layouts import LAYOUTS

    if record.layout and file_layout_ and record.layout != file_layout_:
        raise StoreError(f"{path}: the manifest says layout {record.layout!r}, the file says "
                         f"{file_layout_!r}")
    known = LAYOUTS.get(record.layout or file_layout_)
    if known is not None and known.num_joints != joints:
        raise StoreError(f"{path}: {joints} joints, but layout {known.name!r} has "
                         f"{known.num_joints}")


def joints_shape(path: Path) -> tuple[int, ...]:
    """The shape of the ``joints`` array in a sequence file, read from the .npy header inside
    the archive without loading (or decompressing) the array."""
    if not zipfile.is_zipfile(path):
        raise StoreError(f"{path}: not an .npz file (not a complete zip archive)")
    try:
        with zipfile.ZipFile(path) as zf, zf.open("joints.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, _ = read(fh)
    except KeyError:
        raise StoreError(f"{path}: no 'joints' array in file") from None
    except Exception as exc:  # a corrupt archive or header surfaces as many exception types
        raise StoreError(f"{path}: cannot read sequence file ({exc})") from None
    return tuple(int(n) for n in shape)


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable; else total RAM)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _max_sequence_bytes() -> int:
    value = os.environ.get("VID2REID_MAX_SEQUENCE_MB", "")
    try:
        return int(float(value) * (1 << 20)) if value else MAX_SEQUENCE_BYTES
    except ValueError:
        return MAX_SEQUENCE_BYTES


def check_size(path: Path, shape: tuple[int, ...], already: int = 0) -> int:
    """The bytes a sequence of ``shape`` takes as float32; StoreError (before anything is
    loaded) when that is over the per-sequence bound (:data:`MAX_SEQUENCE_BYTES`) or, with the
    ``already`` loaded bytes, over half the memory available now."""
    need = 4 * int(np.prod(shape, dtype=np.float64)) if shape else 4
    bound = _max_sequence_bytes()
    if need > bound:
        raise StoreError(f"{path}: joints of shape {shape} would take {need / 2**20:,.0f} MiB, "
                         f"more than the {bound / 2**20:,.0f} MiB a sequence may have (raise "
                         f"VID2REID_MAX_SEQUENCE_MB if it is real)")
    free = available_memory()
    if already + need > free // 2:
        raise StoreError(f"{path}: loading it would bring the store to {(already + need) / 2**30:.1f}"
                         f" GiB, more than half the {free / 2**30:.1f} GiB of memory available")
    return need


def load_store(store_dir: Path | str, min_frames: int = 1) -> LoadedStore:
    """Load every sequence with at least ``min_frames`` frames.

    Shorter sequences are skipped and counted (not an error). All sequences
    must have the same number of joints.
    """
    records = read_manifest(store_dir)
    kept, arrays, short, loaded = [], [], 0, 0
    for rec in records:
        path = Path(store_dir) / rec.path
        if path.is_file() and zipfile.is_zipfile(path):
            loaded += check_size(path, joints_shape(path), loaded)
        joints = load_joints(store_dir, rec)
        if not record_hash(rec):
            rec = with_hash(rec, content_hash(joints))
        if joints.shape[0] < min_frames:
            short += 1
            continue
        if arrays and joints.shape[1] != arrays[0].shape[1]:
            raise StoreError(f"{Path(store_dir) / rec.path}: has {joints.shape[1]} joints but "
                             f"{Path(store_dir) / kept[0].path} has {arrays[0].shape[1]}; "
                             f"one store must use one joint layout")
        if rec.frames != joints.shape[0]:
            rec = replace(rec, frames=joints.shape[0])
        kept.append(rec)
        arrays.append(joints)
    if not kept:
        raise StoreError(f"{store_dir}: all {len(records)} sequences are shorter than "
                         f"{min_frames} frames")
    return LoadedStore(kept, arrays, short)


def retire_manifest(store_dir: Path | str) -> list[Record] | None:
    """Before a command rewrites a store's files: move its manifest aside (to
    ``.manifest.csv.replaced``), so that the store is never read with a manifest that
    disagrees with files already rewritten. Returns the old records (read leniently; None
    when there was none or it could not be read). :func:`write_manifest` of the new store,
    then :func:`forget_replaced`, finish the rewrite; an interrupted one leaves a store that
    says so when read."""
    store_dir = Path(store_dir)
    current, aside = store_dir / MANIFEST, store_dir / REPLACED
    if current.is_file():
        os.replace(current, aside)
    if not aside.is_file():
        return None
    try:
        _, rows = read_table(aside, ("path",))
    except StoreError:
        return None
    return [Record(subject=r.get("subject", ""), condition=r.get("condition", ""),
                   sequence=r.get("sequence", ""), view=r.get("view", ""), path=r["path"],
                   frames=0, layout=r.get("layout", ""),
                   extra=((CONTENT_HASH, r.get(CONTENT_HASH, "")),)) for _, r in rows if r["path"]]


def forget_replaced(store_dir: Path | str) -> None:
    """The rewrite of a store finished (its new manifest is written): drop the old one."""
    (Path(store_dir) / REPLACED).unlink(missing_ok=True)


@contextlib.contextmanager
def _manifest_lock(store_dir: Path):
    """Hold an exclusive lock on ``store_dir/.manifest.lock`` (POSIX advisory lock).

    Two extraction shards that finish at the same moment both rebuild the manifest; without
    the lock one could scan the files before the other's last sequence is written and then
    write its (shorter) manifest last. With it, each rebuild scans after the previous one
    wrote. Where ``fcntl`` does not exist (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    store_dir.mkdir(parents=True, exist_ok=True)
    with open(store_dir / ".manifest.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_file_record(store_dir: Path, path: Path) -> Record:
    """The manifest record of one self-describing sequence file (reads and hashes its joints)."""
    rel = path.relative_to(store_dir).as_posix()
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = {k: data[k].item() for k in data.files
                    if k not in ("joints", "layout") and data[k].ndim == 0}
            frames = int(data["joints"].shape[0])
            layout = str(data["layout"]) if "layout" in data.files else ""
            meta[CONTENT_HASH] = content_hash(data["joints"])
    except Exception as exc:
        raise StoreError(f"{path}: cannot read sequence file ({exc})") from None
    return _record_from_meta(rel, frames, layout, meta)


def _old_splits(store_dir: Path) -> dict[str, str]:
    """``split`` values of the current manifest (set by hand, kept by a rebuild); {} if none."""
    if not (store_dir / MANIFEST).is_file():
        return {}
    try:
        return {r.path: r.split for r in read_manifest(store_dir)}
    except StoreError:
        return {}


def _store_files(store_dir: Path) -> list[Path]:
    """Every sequence file of a store (links pointing outside it are not part of it)."""
    return [p for p in sorted(store_dir.rglob("*.npz")) if safepath.is_inside(store_dir, p)]


def index_store(store_dir: Path | str) -> list[Record]:
    """Rebuild ``manifest.csv`` from the self-describing ``.npz`` files in a store.

    Reads every file; extraction uses :func:`assemble_manifest` instead, which reads only
    the files no manifest fragment lists. A ``split`` value set by hand in an existing
    manifest is kept.
    """
    store_dir = Path(store_dir)
    with _manifest_lock(store_dir):  # shards that finish together rebuild one after another
        old_split = _old_splits(store_dir)
        records = []
        for path in _store_files(store_dir):
            rec = _read_file_record(store_dir, path)
            if old_split.get(rec.path):
                rec = replace(rec, split=old_split[rec.path])
            records.append(rec)
        if records:
            write_manifest(store_dir, records)
        return records


def append_fragment(path: Path | str, records: list[Record]) -> None:
    """Add ``records`` (one finished video's sequences) to a manifest fragment: one JSON line
    each, appended and synced. Each extraction process writes its own fragment, so no lock is
    needed; a process killed mid-line leaves a last line that :func:`assemble_manifest` skips."""
    if not records:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r.row(), sort_keys=True) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lines)
        fh.flush()
        os.fsync(fh.fileno())


def _fragment_records(folder: Path) -> dict[str, Record]:
    """Every record the fragments in ``folder`` hold, by path (a later line wins)."""
    found: dict[str, Record] = {}
    for frag in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            text = frag.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # unreadable: its files are read instead
        for line in text.splitlines():
            try:
                row = json.loads(line)
                rec = Record(subject=row["subject"], condition=row["condition"],
                             sequence=row["sequence"], view=row["view"], path=row["path"],
                             frames=int(row["frames"]), layout=row.get("layout", ""),
                             split=row.get("split", ""),
                             extra=tuple(sorted((k, str(v)) for k, v in row.items()
                                                if k not in COLUMNS)))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # the half-written last line of a killed process
            found[rec.path] = rec
    return found


def assemble_manifest(store_dir: Path | str, fragments: Path | str) -> list[Record]:
    """Write ``manifest.csv`` from the manifest fragments in the folder ``fragments`` without
    re-reading the sequence files they list (only files no fragment lists are read, e.g. of a
    store extracted before fragments existed, or of a process killed between writing a file
    and its fragment line). Listed files that no longer exist are left out; a ``split`` set
    by hand is kept. Every extraction process calls it when it ends; the lock makes the last
    one to finish see every other's fragment, so the final manifest is complete."""
    store_dir = Path(store_dir)
    with _manifest_lock(store_dir):
        listed = _fragment_records(Path(fragments))
        old_split = _old_splits(store_dir)
        records = []
        for path in _store_files(store_dir):
            rel = path.relative_to(store_dir).as_posix()
            rec = listed.get(rel) or _read_file_record(store_dir, path)
            if old_split.get(rel):
                rec = replace(rec, split=old_split[rel])
            records.append(rec)
        if records:
            write_manifest(store_dir, records)
        return records
