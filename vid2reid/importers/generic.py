"""The generic importer: your own per-walk skeleton files plus a small mapping CSV.

``SRC`` is a folder of walk files, one walk per file:

- ``.csv`` / ``.txt``: one frame per row, J*3 numbers (x, y, z of joint 0,
  then joint 1, ...), separated by commas, semicolons, tabs or spaces. A first
  row that is not numbers is taken as a header and skipped. An empty cell or
  ``nan`` marks a missing value (that frame is dropped).
- ``.npy``: an array of shape (T, J, 3) (or (T, J*3)).

The mapping CSV (default ``SRC/mapping.csv``) has one row per walk with the
columns ``file`` (relative to SRC), ``subject``, ``condition``, ``split``
(``train``, ``test`` or empty), optionally ``sequence`` (default: the file
name without its extension) and ``view`` (default empty). Any other column is
copied into the manifest. Files not in the mapping are not imported.

``layout`` names the joints: a known layout (``vid2reid.layouts``, e.g.
``kinect-v1-20``, ``h36m-17``), whose joint count every file must have, or
any other name, in which case every file must have the same number of joints
as the first one read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vid2reid import safepath
from vid2reid.importers.common import (ImportSummary, SourceError, StoreWriter, check_src,
                                       check_trim, natural_key, releases_output)
from vid2reid.layouts import LAYOUTS
from vid2reid.store import SPLITS, read_table

MAPPING_COLUMNS = ("file", "subject", "condition", "split")
_RESERVED = {"path", "frames", "layout", "joints", "dropped_frames", "source", "content_hash"}
_DELIMS = re.compile(r"[,;\t ]+")


def read_walk_file(path: Path) -> np.ndarray:
    """One generic walk file -> (T, J, 3) float64 (NaN where a value is missing)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # bad headers surface as several exception types
            raise SourceError(f"{path}: cannot read .npy file ({exc})") from None
        if arr.ndim == 2 and arr.shape[1] % 3 == 0 and arr.shape[1]:
            arr = arr.reshape(arr.shape[0], -1, 3)
        if arr.ndim != 3 or arr.shape[2] != 3 or not arr.shape[1]:
            raise SourceError(f"{path}: array of shape {arr.shape}, expected (T, J, 3)")
        if not np.issubdtype(arr.dtype, np.number):
            raise SourceError(f"{path}: array of {arr.dtype}, expected numbers")
        if arr.shape[0] == 0:
            raise SourceError(f"{path}: no frames")
        return arr.astype(np.float64)
    if suffix not in (".csv", ".txt"):
        raise SourceError(f"{path}: unsupported file type {suffix or '(none)'} "
                          f"(use .csv, .txt or .npy)")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not a text file") from None
    rows = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
    values, width = [], None
    for n, (lineno, line) in enumerate(rows):
        cells = _DELIMS.split(line) if "," not in line and ";" not in line else \
            [c.strip() for c in re.split(r"[,;]", line)]
        try:
            nums = [float(c) if c else np.nan for c in cells]
        except ValueError:
            if n == 0:
                continue  # a header row
            raise SourceError(f"{path}:{lineno}: not a row of numbers: {line[:60]!r}") from None
        if width is None:
            width = len(nums)
            if width % 3:
                raise SourceError(f"{path}:{lineno}: {width} values per row, not a multiple "
                                  f"of 3 (x, y, z per joint)")
        elif len(nums) != width:
            raise SourceError(f"{path}:{lineno}: {len(nums)} values, but the first frame has "
                              f"{width}")
        values.append(nums)
    if not values:
        raise SourceError(f"{path}: no frames")
    return np.array(values, dtype=np.float64).reshape(len(values), -1, 3)


def read_mapping(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of the mapping CSV with their line numbers; SourceError on the first problem."""
    if not path.is_file():
        raise SourceError(f"{path}: mapping file not found (columns: "
                          f"{', '.join(MAPPING_COLUMNS)}[, sequence, view]; pass --mapping)")
    cols, table = read_table(path, (), SourceError)
    missing = [c for c in MAPPING_COLUMNS if c not in cols]
    if missing:
        raise SourceError(f"{path}: missing column(s) {', '.join(missing)} (needs "
                          f"{', '.join(MAPPING_COLUMNS)}; sequence, view optional)")
    reserved = sorted(_RESERVED & set(cols))
    if reserved:
        raise SourceError(f"{path}: column(s) {', '.join(reserved)} are written by the "
                          f"importer; rename them")
    rows, seen = [], {}
    for line, row in table:
        where = f"{path}:{line}"
        if not row.get("file"):
            raise SourceError(f"{where}: empty 'file'")
        if not row.get("subject"):
            raise SourceError(f"{where}: empty 'subject'")
        row["split"] = row.get("split", "").lower()
        if row["split"] not in SPLITS:
            raise SourceError(f"{where}: 'split' must be train, test or empty, got "
                              f"{row['split']!r}")
        key = Path(row["file"]).as_posix()
        if key in seen:
            raise SourceError(f"{where}: file {row['file']!r} is listed twice (also on "
                              f"line {seen[key]})")
        seen[key] = line
        rows.append((line, row))
    if not rows:
        raise SourceError(f"{path}: no rows")
    return rows


@releases_output
def import_csv(src: Path | str, out: Path | str, layout: str, mapping: Path | str | None = None,
               trim: int = 0, drop_zero_joints: bool = True,
               progress: bool = True, force: bool = False) -> ImportSummary:
    """Import your own per-walk skeleton files into the store ``out``.

    See the module docstring for the file and mapping formats. Frames with a
    NaN/missing value, and (unless ``drop_zero_joints`` is False) frames with
    an all-zero joint, are dropped and counted; turn the latter off for data
    that is already root-centred (the root joint is 0,0,0 in every frame).
    ``trim`` frames are cut at both ends of every walk (default none).
    """
    trim = check_trim(trim)
    src = check_src(src)
    if not layout or not layout.strip():
        raise SourceError("--layout is required: a known layout "
                          f"({', '.join(sorted(LAYOUTS))}) or any name for your joint order")
    layout = layout.strip()
    known = LAYOUTS.get(layout)
    mapping = Path(mapping) if mapping else src / "mapping.csv"
    rows = read_mapping(mapping)
    # each row's file, inside SRC ('..', absolute paths and links leading out are errors), once
    targets, seen = {}, {}
    for line, row in rows:
        path = safepath.inside(src, row["file"], f"{mapping}:{line}", SourceError)
        key = path.resolve()
        if key in seen:
            raise SourceError(f"{mapping}:{line}: {row['file']!r} is the same file as "
                              f"{rows[seen[key]][1]['file']!r} on line {rows[seen[key]][0]}")
        seen[key] = len(targets)
        targets[line] = path
    writer = StoreWriter("csv", src, out, layout, force=force)
    joints_per_frame = known.num_joints if known else None
    first_file = f"layout {layout}" if known else ""
    listed = set()
    for line, row in tqdm(rows, unit="walk", desc="csv", disable=not progress):
        path = targets[line]
        listed.add(path.resolve())
        if not path.is_file():
            writer.skip(f"{path}: file listed in {mapping.name} (line {line}) not found")
            continue
        try:
            joints = read_walk_file(path)
        except SourceError as exc:
            writer.skip(str(exc))
            continue
        if joints_per_frame is None:
            joints_per_frame, first_file = joints.shape[1], str(path)
        if joints.shape[1] != joints_per_frame:
            writer.skip(f"{path}: {joints.shape[1]} joints, but {first_file} has "
                        f"{joints_per_frame}")
            continue
        walk = writer.clean(joints, path, trim=(trim, trim), zero_is_dropout=drop_zero_joints,
                            zero_hint="root-centred data? use --keep-zero-joints")
        if walk is None:
            continue
        rel = Path(row["file"]).with_suffix(".npz").as_posix()
        extra = {k: v for k, v in row.items()
                 if k not in MAPPING_COLUMNS and k not in ("sequence", "view")}
        writer.save(rel, walk, subject=row["subject"], condition=row["condition"],
                    sequence=row.get("sequence") or Path(row["file"]).stem,
                    view=row.get("view", ""), split=row["split"], **extra)
    unlisted = [p for p in src.rglob("*") if p.suffix.lower() in (".csv", ".txt", ".npy")
                and p.is_file() and p.resolve() not in listed and p.resolve() != mapping.resolve()
                and not p.resolve().is_relative_to(Path(out).resolve())]
    if unlisted:
        names = ", ".join(sorted((writer.rel(p) for p in unlisted), key=natural_key)[:3])
        writer.note(f"{len(unlisted)} walk file(s) in {src} not in {mapping.name}, not imported "
                    f"({names}{', ...' if len(unlisted) > 3 else ''})")
    return writer.finish()
