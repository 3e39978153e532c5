"""Find videos and read subject/condition/sequence/view from their names.

CASIA-B names its videos ``SSS-CC-NN-VVV.avi`` (``001-bg-02-090.avi``: subject
001, condition bg, sequence 02, view 090); some copies nest them as
``SSS/CC-NN/VVV/<anything>`` or ``SSS/CC-NN/VVV.avi``. Other names are kept:
the subject (and optionally condition/sequence/view) comes from a ``--pattern``
regex with named groups, or, without one, the file name is the subject. The
manifest records which rule was used (column ``name_format``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vid2reid.errors import ConfigError, PoseError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")
_CASIA_FLAT = re.compile(r"^(?P<subject>\d{3})-(?P<condition>[a-z]{2})-(?P<sequence>\d{2})-(?P<view>\d{3})$",
                         re.IGNORECASE)
_CASIA_CONDSEQ = re.compile(r"^(?P<condition>[a-z]{2})-(?P<sequence>\d{2})$", re.IGNORECASE)
_SUBJECT = re.compile(r"^\d{3}$")
_VIEW = re.compile(r"^\d{3}$")
_BKGRD = re.compile(r"^(?P<subject>\d{3})-bkgrd-(?P<view>\d{3})$", re.IGNORECASE)


@dataclass(frozen=True)
class VideoName:
    """What a video's path says about it, and where its skeletons go in the store."""

    subject: str
    condition: str
    sequence: str
    view: str
    name_format: str  # "casia-b", "casia-b-nested", "pattern" or "filename"
    stem: str  # store path without suffix, relative to the store (posix)


def parse_video_name(path: Path, root: Path | None = None, pattern: str | None = None) -> VideoName:
    """Parse a video path as CASIA-B (flat or nested), else with ``pattern``, else by file name.

    ``root`` is the folder the user passed (names of other videos are mirrored
    below it in the store). ConfigError when ``pattern`` is not a valid regex
    with a ``subject`` group; PoseError when it does not match this path.
    """
    path = Path(path)
    rel = _relative(path, root)
    m = _CASIA_FLAT.match(path.stem)
    if m:
        g = {k: v.lower() for k, v in m.groupdict().items()}
        return VideoName(g["subject"], g["condition"], g["sequence"], g["view"], "casia-b",
                         f"{g['subject']}/{path.stem.lower()}")
    nested = _parse_nested(path)
    if nested is not None:
        subject, condition, sequence, view = nested
        return VideoName(subject, condition, sequence, view, "casia-b-nested",
                         f"{subject}/{subject}-{condition}-{sequence}-{view}")
    stem = str(rel.with_suffix(""))
    if pattern:
        regex = compile_pattern(pattern)
        m = regex.search(stem)
        if not m:
            raise PoseError(f"{path}: name does not match --pattern {pattern!r}")
        g = m.groupdict()
        return VideoName(g["subject"] or "", g.get("condition") or "", g.get("sequence") or "",
                         g.get("view") or "", "pattern", stem)
    return VideoName(path.stem, "", "", "", "filename", stem)


def compile_pattern(pattern: str) -> re.Pattern:
    """Compile a ``--pattern`` regex; it must have a named group ``subject``."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--pattern {pattern!r} is not a valid regular expression ({exc})") from None
    if "subject" not in regex.groupindex:
        raise ConfigError(f"--pattern {pattern!r} needs a named group (?P<subject>...); optional "
                          f"groups: condition, sequence, view")
    return regex


def _relative(path: Path, root: Path | None) -> PurePosixPath:
    if root is not None and root.is_dir():
        try:
            return PurePosixPath(path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
    return PurePosixPath(path.name)


def _parse_nested(path: Path) -> tuple[str, str, str, str] | None:
    parts = path.parts
    # SSS/CC-NN/VVV/<file>  or  SSS/CC-NN/VVV.<ext>
    candidates = []
    if len(parts) >= 4:
        candidates.append(parts[-4:-1])
    if len(parts) >= 3:
        candidates.append((parts[-3], parts[-2], path.stem))
    for subject, condseq, view in candidates:
        m = _CASIA_CONDSEQ.match(condseq)
        if _SUBJECT.match(subject) and m and _VIEW.match(view):
            return subject, m["condition"].lower(), m["sequence"], view
    return None


def is_background_clip(path: Path) -> bool:
    """True for CASIA-B's background-only clips (``001-bkgrd-090.avi``)."""
    return bool(_BKGRD.match(Path(path).stem)) or Path(path).parent.name.lower() == "bkgrd"


def background_clips(inputs: list[Path]) -> list[Path]:
    """The CASIA-B background clips in the input folders (list_videos leaves them out: they
    are backgrounds for --boxes, not walks), so that a summary can account for them."""
    return sorted(p for item in map(Path, inputs) if item.is_dir() for p in item.rglob("*")
                  if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and is_background_clip(p))


def background_clip_for(path: Path, name: VideoName) -> Path | None:
    """The view's background clip next to a CASIA-B video, when one exists."""
    if not name.name_format.startswith("casia-b"):
        return None
    folders = [Path(path).parent]
    if name.name_format == "casia-b-nested":
        folders += [p for p in Path(path).parents[:4]]
    for folder in folders:
        for suffix in VIDEO_SUFFIXES:
            cand = folder / f"{name.subject}-bkgrd-{name.view}{suffix}"
            if cand.is_file():
                return cand
    return None


def list_videos(inputs: list[Path]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Expand files and folders into sorted ``(video, root)`` pairs plus one problem line per bad input.

    Files given explicitly are taken whatever their suffix (a non-video file
    then fails clearly when decoded); folders are searched recursively for
    video suffixes, leaving out CASIA-B background clips. A missing path or a
    folder without videos is reported, not raised, so the rest still runs.
    """
    found: dict[Path, Path | None] = {}
    problems: list[str] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            vids = sorted(p for p in item.rglob("*") if p.is_file()
                          and p.suffix.lower() in VIDEO_SUFFIXES and not is_background_clip(p))
            if not vids:
                problems.append(f"{item}: folder has no videos ({' '.join(VIDEO_SUFFIXES)})")
            for v in vids:
                found.setdefault(v, item)
        elif item.is_file():
            found.setdefault(item, None)
        else:
            problems.append(f"{item}: no such file or folder")
    return sorted(found.items(), key=lambda kv: str(kv[0])), problems
