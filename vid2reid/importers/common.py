"""What every importer shares: the store writer, the summary, source checks, roles.

See the package docstring (vid2reid.importers) for the rules every importer follows.
"""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid2reid import safepath
from vid2reid.errors import ConfigError, Vid2ReidError
from vid2reid.locks import claim_output
from vid2reid.store import (Record, content_hash, forget_replaced, record_hash, retire_manifest,
                            save_sequence, write_manifest)

# Reasons a frame is dropped (the summary's keys).
NON_FINITE = "NaN or infinite coordinate"
ZERO_JOINT = "all-zero joint"
UNTRACKED = "untracked joint (TrackingState 0)"
EMPTY_FRAME = "empty frame file"
PARTIAL_FRAME = "incomplete last frame"


class SourceError(Vid2ReidError):
    """A data set being imported (its folder or one of its files) is missing or malformed."""


class NothingImportedError(SourceError):
    """Not a single walk could be imported; ``summary`` lists what was skipped and why."""

    def __init__(self, message: str, summary: "ImportSummary"):
        super().__init__(message)
        self.summary = summary


@dataclass
class ImportSummary:
    """What an import wrote, dropped and skipped."""

    dataset: str
    src: str
    out: str
    layout: str
    walks: int = 0
    subjects: int = 0
    frames: int = 0
    dropped_frames: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    trimmed_frames: int = 0
    by_condition: dict[str, int] = field(default_factory=dict)
    by_split: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # one line each: "FILE: what is wrong"
    removed_stale: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as printable lines (what the CLI prints)."""
        def counts(d: dict[str, int]) -> str:
            return ", ".join(f"{k or '(empty)'} {v}" for k, v in sorted(d.items()))

        out = [f"{self.dataset}: imported {self.walks} walk(s) of {self.subjects} subject(s), "
               f"{self.frames} frames, layout {self.layout}, into {self.out}"]
        if self.walks:
            out.append(f"conditions: {counts(self.by_condition)}; split: {counts(self.by_split)}")
        dropped = f"dropped {self.dropped_frames} frame(s)"
        if self.dropped_by_reason:
            dropped += f" ({counts(self.dropped_by_reason)})"
        out.append(f"{dropped}; trimmed {self.trimmed_frames} frame(s)")
        if self.removed_stale:
            out.append(f"removed {self.removed_stale} sequence file(s) of the previous import "
                       f"that this one does not write")
        out.extend(f"note: {n}" for n in self.notes)
        out.append(f"skipped {len(self.skipped)} file(s)" + (":" if self.skipped else ""))
        out.extend(f"  {s}" for s in self.skipped)
        out.append(f"took {self.seconds:.1f} s")
        return out


@dataclass
class Walk:
    """One cleaned, trimmed walk ready to be saved."""

    joints: np.ndarray  # (T, J, 3)
    source: str  # the source file or folder, relative to the data set folder
    dropped: Counter
    trimmed: int


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers as numbers: 2.txt before 10.txt.

    Only ASCII digits count as numbers; other characters that Unicode calls digits
    (superscripts such as '²') sort as text.
    """
    return [(0, int(t), "") if t.isascii() and t.isdigit() else (1, 0, t.lower())
            for t in re.split(r"([0-9]+)", name)]


def person_id(name: str) -> str:
    """A folder name as a subject id: digits lose their zero padding ('007' -> '7')."""
    name = name.strip()
    return str(int(name)) if name.isdecimal() else name


def draw_roles(subject: str, n: int, seed: int, galleries: int) -> list[str]:
    """Probe/gallery/train roles for one person's ``n`` items, drawn at random.

    One probe, ``galleries`` gallery items (fewer when the person has too few
    items: at least one is left to train once there are three), the rest
    train. Two items: probe and gallery. One item: train. The draw uses
    ``numpy.random.default_rng`` seeded with ``seed`` and the subject name, so
    it depends on nothing else: adding or losing another person changes no one
    else's split.
    """
    if n <= 0:
        return []
    if n == 1:
        roles = ["train"]
    elif n == 2:
        roles = ["probe", "gallery"]
    else:
        g = min(galleries, n - 2)
        roles = ["probe"] + ["gallery"] * g + ["train"] * (n - 1 - g)
    rng = np.random.default_rng([seed, zlib.crc32(subject.encode())])
    out = [""] * n
    for role, i in zip(roles, rng.permutation(n)):
        out[int(i)] = role
    return out


def check_seed(seed: int) -> int:
    if int(seed) < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    return int(seed)


def check_trim(trim: int) -> int:
    if int(trim) < 0:
        raise ConfigError(f"--trim must be 0 or more frames, got {trim}")
    return int(trim)


def find_below(src: Path, wanted) -> str:
    """' (did you mean SRC/x?)' when a sub-folder of ``src`` holds what was expected."""
    try:
        for sub in sorted(p for p in src.iterdir() if p.is_dir()):
            if wanted(sub):
                return f" (did you mean {sub}?)"
    except OSError:
        pass
    return ""


def check_src(src: Path | str) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise SourceError(f"{src}: data set folder not found")
    return src


_open_writers: list["StoreWriter"] = []


def releases_output(fn):
    """Decorator of an importer: the output folder it claimed is unlocked however it ends."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        mark = len(_open_writers)
        failed = True
        try:
            out = fn(*args, **kwargs)
            failed = False
            return out
        finally:
            while len(_open_writers) > mark:
                _open_writers.pop().close(failed)
    return wrapper


class StoreWriter:
    """Cleans walks, writes them into the store, and keeps the summary's counts."""

    def __init__(self, dataset: str, src: Path, out: Path | str, layout: str,
                 force: bool = False):
        out = Path(out)
        self.src, self.out, self.layout = src, out, layout
        self.summary = ImportSummary(dataset=dataset, src=str(src), out=str(out), layout=layout)
        self.records: list[Record] = []
        self._claim = claim_output(out, safepath.import_kind(dataset), force)
        _open_writers.append(self)
        # files of an earlier import may be deleted when this one does not write them again
        self._own = self._claim.previous not in ("missing", "empty", "other") and \
            safepath.same_kind(self._claim.previous, self._claim.kind)
        self._old: list[Record] | None = None  # the previous manifest, once moved aside
        self._written: set[str] = set()
        self._subjects: set[str] = set()
        self._start = time.monotonic()

    def close(self, failed: bool = False) -> None:
        """Unlock the output folder (after a failure: remove it if this import made it and
        wrote nothing into it)."""
        self._claim.release(failed=failed)

    def readable(self, path: Path) -> bool:
        """Whether ``path`` lies inside the data set folder; if not (a symbolic link leading
        out of it) it is skipped with a line saying so."""
        if safepath.is_inside(self.src, path):
            return True
        self.skip(f"{self.rel(path)}: a symbolic link to a file outside {self.src}; skipped")
        return False

    def rel(self, path: Path) -> str:
        """``path`` relative to the data set folder, for messages and the manifest."""
        try:
            return Path(path).relative_to(self.src).as_posix()
        except ValueError:
            return str(path)

    def skip(self, message: str) -> None:
        """Count a file or walk that could not be imported ('FILE: what is wrong')."""
        self.summary.skipped.append(message)

    def note(self, message: str) -> None:
        self.summary.notes.append(message)

    def clean(self, joints: np.ndarray, source: Path, trim: tuple[int, int] = (0, 0),
              untracked: np.ndarray | None = None, dropped: Counter | None = None,
              zero_is_dropout: bool = True, hint: str = "", zero_hint: str = "") -> Walk | None:
        """Drop dropout frames, then trim; None (and a skip line) when nothing is left.

        ``untracked`` marks frames the format itself flags (tracking state);
        ``dropped`` holds frames the reader already left out (empty files).
        """
        joints = np.asarray(joints, dtype=np.float64)
        dropped = Counter(dropped or {})
        keep = np.ones(joints.shape[0], dtype=bool)
        checks = []
        if untracked is not None:
            checks.append((UNTRACKED, np.asarray(untracked, dtype=bool)))
        checks.append((NON_FINITE, ~np.isfinite(joints).all(axis=(1, 2))))
        if zero_is_dropout:
            checks.append((ZERO_JOINT, (joints == 0).all(axis=2).any(axis=1)))
        for reason, bad in checks:
            n = int((bad & keep).sum())
            if n:
                dropped[reason] += n
                keep &= ~bad
        kept = joints[keep]
        start, end = trim
        where = self.rel(source)
        if kept.shape[0] <= start + end:
            lost = sum(dropped.values())
            why = f"{kept.shape[0]} usable frame(s)"
            if lost:
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
                why += f" after dropping {lost} ({reasons})"
            why += f", not more than the {start + end} trimmed" if start + end else ""
            if dropped.get(ZERO_JOINT) and zero_hint:
                why += f" ({zero_hint})"
            self.skip(f"{where}: too short: {why}{hint}")
            return None
        return Walk(kept[start:kept.shape[0] - end], where, dropped, start + end)

    def save(self, rel_path: str, walk: Walk, subject: str, condition: str, sequence: str,
             view: str = "", split: str = "", **extra: object) -> None:
        """Write one walk (atomically) and count it; a second walk for the same file is
        skipped and named."""
        if rel_path in self._written:
            self.skip(f"{walk.source}: gives the same store file {rel_path} as a walk already "
                      f"imported; skipped")
            return
        if self._old is None:
            self._old = retire_manifest(self.out) or []
        rec = save_sequence(self.out, rel_path, walk.joints, self.layout, subject=subject,
                            condition=condition, sequence=sequence, view=view, split=split,
                            dropped_frames=sum(walk.dropped.values()), source=walk.source,
                            **extra)
        self.records.append(rec)
        self._written.add(rel_path)
        self._subjects.add(subject)
        s = self.summary
        s.walks += 1
        s.frames += walk.joints.shape[0]
        s.trimmed_frames += walk.trimmed
        s.dropped_frames += sum(walk.dropped.values())
        for k, v in walk.dropped.items():
            s.dropped_by_reason[k] = s.dropped_by_reason.get(k, 0) + v
        s.by_condition[condition] = s.by_condition.get(condition, 0) + 1
        s.by_split[split] = s.by_split.get(split, 0) + 1

    def finish(self) -> ImportSummary:
        """Write the manifest (last), delete stale sequence files, return the summary."""
        s = self.summary
        s.subjects = len(self._subjects)
        if not self.records:
            s.seconds = time.monotonic() - self._start
            first = f" (first: {s.skipped[0]})" if s.skipped else ""
            raise NothingImportedError(f"{self.src}: nothing could be imported: "
                                       f"{len(s.skipped)} file(s) skipped{first}", s)
        kept = self._hand_added()
        write_manifest(self.out, self.records + kept)
        if kept:
            s.notes.append(f"kept {len(kept)} walk(s) the store listed without a content_hash "
                           f"(added by hand, not by this import), e.g. {kept[0].path}; remove "
                           f"their rows from manifest.csv to drop them")
        forget_replaced(self.out)
        root = self.out.resolve()
        for old in (self._old or []) if self._own else []:
            if old.path in self._written:
                continue
            try:
                path = safepath.inside(self.out, old.path, str(self.out))
            except Vid2ReidError:
                continue
            if path.suffix != ".npz" or not path.is_file() or not self._unchanged(path, old):
                continue
            path.unlink()
            s.removed_stale += 1
            _remove_empty_parents(path.parent, root)
        s.seconds = time.monotonic() - self._start
        self.close()
        return s

    def _hand_added(self) -> list[Record]:
        """Rows of the previous manifest this import did not write and cannot have written (no
        content_hash) whose file is still there: a walk the user added by hand is kept."""
        kept = []
        for old in (self._old or []) if self._own else []:
            if old.path in self._written or record_hash(old):
                continue
            try:
                if safepath.inside(self.out, old.path, str(self.out)).is_file():
                    kept.append(old)
            except Vid2ReidError:
                continue
        return kept

    @staticmethod
    def _unchanged(path: Path, old: Record) -> bool:
        """Whether a stale file still holds the joints its manifest row recorded; False for a
        row without a content hash: nothing proves that an import wrote it, and a walk the
        user added by hand must never be deleted."""
        if not record_hash(old):
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                return content_hash(data["joints"]) == record_hash(old)
        except Exception:
            return False  # unreadable: not what the earlier import wrote; leave it


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder.resolve() != root and folder.resolve().is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
