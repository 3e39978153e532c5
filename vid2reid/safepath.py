"""Where vid2reid may read and write: paths inside a root, and output folders it may use.

Every reader and writer of a store, a data set being imported or a run goes through here:

- :func:`inside` turns a path written in a file (a ``manifest.csv`` or ``mapping.csv`` row)
  into a path under its root, refusing an absolute path, a ``..`` part, and a path that
  leads out of the root through a symbolic link (the root itself may be a link). The error is
  one line naming the file (and line) the path came from.
- :func:`is_inside` says whether a file found by listing a folder (an importer walking SRC)
  really lies inside it once symbolic links are followed.
- :func:`folder_kind` says what an existing output folder holds (a run, a store and which
  command wrote it, nothing, or something else), and :func:`check_output_folder` refuses a
  folder of another kind unless the user passed ``--force``. The kind a vid2reid command
  gives a folder is recorded in its lock file (:mod:`vid2reid.locks`); folders written before
  that are recognised by their files. Pages (``eval``/``match``/``group --report``) are kinds
  too.
- :func:`check_output_file` is the same rule for one file (an index, a CSV, a JSON file): it
  may replace a file vid2reid recognises as its own, anything else only with ``--force``;
  :func:`latest_is_ours` says whether a ``LATEST`` file is vid2reid's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

from vid2reid.errors import StoreError, Vid2ReidError

LOCK_NAME = ".vid2reid.lock"  # the lock file, which also records the folder's kind
# Files a folder may hold and still count as empty: our own bookkeeping, and Finder's.
_IGNORED = {LOCK_NAME, ".manifest.lock", ".manifest.csv.replaced", ".DS_Store"}

RUN = "run"
STORE = "store"  # a store whose writer is unknown (hand-written, import-ground-truth)
CONVERT = "store:convert"
EXTRACT = "store:extract"
IMPORT = "store:import"  # an import of unknown data set (written before the lock file existed)
EVAL_REPORT = "report:eval"  # a page written by 'vid2reid eval --report'
MATCH_REPORT = "report:match"  # ... by 'vid2reid match --report'
GROUP_REPORT = "report:group"  # ... by 'vid2reid group --report'

_NAMES = {RUN: "a training run", STORE: "a skeleton store", CONVERT: "a store written by "
          "'vid2reid convert'", EXTRACT: "a store written by 'vid2reid extract'",
          IMPORT: "a store written by 'vid2reid import'",
          EVAL_REPORT: "a page written by 'vid2reid eval --report'",
          MATCH_REPORT: "a page written by 'vid2reid match --report'",
          GROUP_REPORT: "a page written by 'vid2reid group --report'", "other": "files that are not "
          "vid2reid's", "not-a-folder": "a file, not a folder"}


def import_kind(dataset: str) -> str:
    """The kind of a store written by ``vid2reid import DATASET``."""
    return f"{IMPORT}:{dataset}"


def describe(kind: str) -> str:
    """A kind in words, for messages."""
    if kind.startswith(IMPORT + ":"):
        return f"a store written by 'vid2reid import {kind.split(':')[-1]}'"
    return _NAMES.get(kind, kind)


def inside(root: Path | str, rel: str, where: str, error: type[Vid2ReidError] = StoreError
           ) -> Path:
    """``root / rel`` for a path ``rel`` read from a file; ``error`` naming ``where`` (the file
    and line it came from) when ``rel`` is absolute, has a ``..`` part, or leads out of ``root``
    through a symbolic link."""
    text = str(rel)
    if "\0" in text:  # the OS refuses such a name; say where it came from instead
        raise error(f"{where}: path {text!r} contains a NUL byte; fix that line")
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(text).drive:
        raise error(f"{where}: path {text!r} is absolute; paths must be relative to {root}")
    if ".." in posix.parts:
        raise error(f"{where}: path {text!r} contains '..'; paths must stay inside {root}")
    target = Path(root) / posix
    try:
        ok = target.resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(f"{where}: path {text!r} cannot be resolved ({exc})") from None
    if not ok:
        raise error(f"{where}: path {text!r} leads outside {root} through a symbolic link "
                    f"(to {target.resolve()})")
    return target


def is_inside(root: Path | str, path: Path | str) -> bool:
    """Whether ``path`` (found under ``root``) still lies inside ``root`` with links followed."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):  # a loop, a NUL byte
        return False


def _recorded_kind(folder: Path) -> str | None:
    """The kind a vid2reid command recorded in the folder's lock file (None if none)."""
    path = folder / LOCK_NAME
    if path.is_symlink() or not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = info.get("kind") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) and kind else None


def _manifest_columns(path: Path) -> set[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            return {c.strip() for c in next(csv.reader(fh), [])}
    except (OSError, csv.Error):
        return set()


def _is_run_config(path: Path) -> bool:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "method" in info


def folder_kind(folder: Path | str) -> str:
    """What ``folder`` holds: ``missing``, ``not-a-folder``, ``empty``, ``run``, ``store``,
    ``store:convert``, ``store:extract``, ``store:import[:DATASET]`` or ``other``."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return "missing"
    if not folder.is_dir():
        return "not-a-folder"
    recorded = _recorded_kind(folder)
    if recorded:
        return recorded
    names = {p.name for p in folder.iterdir()} - _IGNORED
    if not names:
        return "empty"
    if _is_run_config(folder / "config.json"):
        return RUN
    if (folder / ".extract").is_dir():
        return EXTRACT
    if (folder / "manifest.csv").is_file():
        cols = _manifest_columns(folder / "manifest.csv")
        if "converted_from" in cols:
            return CONVERT
        if {"source", "dropped_frames"} <= cols:
            return IMPORT
        return STORE
    if names <= {"train.log", "log.jsonl"}:  # a run that failed before writing config.json
        return RUN
    return "other"


def same_kind(found: str, wanted: str) -> bool:
    """Whether a folder of kind ``found`` may be written by a command making ``wanted``."""
    if found in ("missing", "empty") or found == wanted:
        return True
    return found == IMPORT and wanted.startswith(IMPORT + ":")  # an import before lock files


def check_output_folder(out: Path | str, kind: str, force: bool = False,
                        option: str = "--out") -> str:
    """The kind ``out`` holds now; a one-line error when it holds something else than a
    ``kind`` folder and ``force`` is false (a file is refused even with ``force``)."""
    out = Path(out)
    found = folder_kind(out)
    if found == "not-a-folder":
        raise StoreError(f"{out}: exists and is not a folder; choose another {option}")
    if not same_kind(found, kind) and not force:
        raise StoreError(f"{out}: holds {describe(found)}, not {describe(kind)}; choose another "
                         f"{option}, or pass --force to write into it anyway (nothing this "
                         f"command did not write is deleted)")
    return found


def check_output_file(path: Path | str, ours: Callable[[Path], bool], what: str,
                      force: bool = False, option: str = "--out") -> None:
    """One rule for a single output file (an index, a CSV, LATEST): a missing file, or one
    ``ours(path)`` recognises as written by vid2reid, may be replaced; anything else only with
    ``force``. A folder is refused even with ``force``. ``what``: the file in words."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not {what}; choose another {option}")
    if not path.exists() and not path.is_symlink():
        return
    if force:
        return
    try:
        mine = not path.is_symlink() and path.is_file() and ours(path)
    except (OSError, ValueError):
        mine = False
    if not mine:
        raise StoreError(f"{path}: exists and is not {what} written by vid2reid; choose another "
                         f"{option}, or pass --force to replace it")


def csv_starts_with(header: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`check_output_file`: a CSV whose first line starts ``header``."""
    def ours(path: Path) -> bool:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline(4096).startswith(header)
    return ours


def json_with(*keys: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`check_output_file`: a JSON object holding every one of ``keys``
    (read only when small enough to be what vid2reid writes, 256 MB)."""
    def ours(path: Path) -> bool:
        if path.stat().st_size > 256 << 20:
            return False
        info = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(info, dict) and all(k in info for k in keys)
    return ours


def latest_is_ours(folder: Path | str) -> bool:
    """Whether ``folder/LATEST`` is one vid2reid wrote: one line naming a run folder beside it
    (or a folder since deleted, in a folder holding folders only). A user's file of that name
    (text with spaces, several lines, beside files) is not."""
    folder = Path(folder)
    latest = folder / "LATEST"
    try:
        if latest.is_symlink() or not latest.is_file() or latest.stat().st_size > 1024:
            return False
        text = latest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    name = text.strip()
    if text.count("\n") > 1 or not name or name.startswith(".") or any(
            c in name for c in "/\\\0") or not name.isprintable() or len(name.split()) > 1:
        return False
    run = folder / name
    if run.is_dir():
        return folder_kind(run) in (RUN, "empty")
    try:  # the run it named was deleted: still ours in a folder of folders (runs)
        others = [p for p in folder.iterdir() if p.name != "LATEST" and p.name not in _IGNORED
                  and not p.name.startswith(".")]
    except OSError:
        return False
    return bool(others) and all(p.is_dir() for p in others)


def runs_folder(out: Path | str, force: bool = False) -> Path | None:
    """The folder whose ``LATEST`` file a training run into ``out`` may update, or None.

    ``LATEST`` belongs in a folder of runs: the parent of ``out`` when this command creates
    it, when it already holds a ``LATEST`` (written by an earlier run), or when everything
    else in it is a run folder. ``train --out some_folder`` next to a store or a user's files
    writes no ``LATEST`` (pass ``--run`` to eval instead). A ``LATEST`` vid2reid did not
    write (:func:`latest_is_ours`) is never replaced unless ``force``.
    """
    out = Path(out)
    parent = out.parent
    if not parent.exists():
        return parent
    latest = parent / "LATEST"
    if latest.exists() or latest.is_symlink():
        return parent if force and latest.is_file() or latest_is_ours(parent) else None
    try:
        others = [p for p in parent.iterdir()
                  if p.name != out.name and p.name not in _IGNORED and not p.name.startswith(".")]
    except OSError:
        return None
    if all(p.is_dir() and folder_kind(p) in (RUN, "empty") for p in others):
        return parent
    return None
