"""Importers for the Kinect skeleton re-ID data sets: KGBD, KS20, IAS-Lab and BIWI.

Each function reads the data set's raw text files, reorders the joints into
the Kinect SDK order of the store's layout (``kinect-v1-20`` for KGBD, IAS-Lab
and BIWI, ``kinect-v2-25`` for KS20), drops dropout frames, trims as the
SimMC / Hi-MPC preprocessing does, and writes the evaluation protocol of those
papers into the manifest: the ``condition`` column names the probe and gallery
sets, the ``split`` column says which walks train (``train``) and which are
only evaluated (``test``). Coordinates are stored as in the files (metres,
camera space); training and evaluation make them root-relative later.

See docs/importers.md for the formats and the protocols in full.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vid2reid.importers.common import (EMPTY_FRAME, PARTIAL_FRAME, ImportSummary, SourceError,
                                StoreWriter, check_seed, check_src, check_trim, draw_roles,
                                find_below, natural_key, person_id, releases_output)
from vid2reid.layouts import LAYOUTS

V1 = "kinect-v1-20"
V2 = "kinect-v2-25"

# ---------------------------------------------------------------------------
# KGBD

# KGBD's joint names, in the order its files list them, and the kinect-v1-20 joint each one is.
KGBD_JOINTS = {
    "Head": "head", "Shoulder-Center": "shoulder_center", "Shoulder-Right": "r_shoulder",
    "Shoulder-Left": "l_shoulder", "Elbow-Right": "r_elbow", "Elbow-Left": "l_elbow",
    "Wrist-Right": "r_wrist", "Wrist-Left": "l_wrist", "Hand-Right": "r_hand",
    "Hand-Left": "l_hand", "Spine": "spine", "Hip-centro": "hip_center", "Hip-Right": "r_hip",
    "Hip-Left": "l_hip", "Knee-Right": "r_knee", "Knee-Left": "l_knee",
    "Ankle-Right": "r_ankle", "Ankle-Left": "l_ankle", "Foot-Right": "r_foot",
    "Foot-Left": "l_foot",
}


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


# Names compare without case and separators; 'Hip-Center' is accepted for 'Hip-centro'.
_KGBD_INDEX = {_name_key(k): LAYOUTS[V1].joints.index(v) for k, v in KGBD_JOINTS.items()}
_KGBD_INDEX.update({"hipcenter": _KGBD_INDEX["hipcentro"], "hipcentre": _KGBD_INDEX["hipcentro"],
                    "shouldercentre": _KGBD_INDEX["shouldercenter"]})
_PERSON = re.compile(r"person\s*(\d+)$", re.IGNORECASE)


def _read_text(path: Path) -> str:
    """A walk or frame file's text; SourceError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not a text file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_kgbd_walk(path: Path) -> tuple[np.ndarray, Counter]:
    """One KGBD walk file -> joints (T, 20, 3) in kinect-v1-20 order, and frames left out.

    Lines are ``JointName;x;y;z``; every 20 lines are one frame. Each frame is
    reordered by the joint names it lists (so a file in another joint order
    still maps right); a frame that does not list the 20 KGBD joints is an
    error. An incomplete frame at the end of the file is left out and counted.
    """
    text = _read_text(path)
    raw = text.splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(raw) if line.strip()]
    if not numbered:
        raise SourceError(f"{path}: empty file")
    names, rests = [], []
    for _, line in numbered:
        name, _, rest = line.partition(";")
        names.append(name.strip())
        rests.append(rest)
    fields = ";".join(rests).split(";")
    try:
        if len(fields) != 3 * len(rests):
            raise ValueError
        values = np.array(fields, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        for lineno, line in numbered:
            parts = line.split(";")
            try:
                if len(parts) != 4:
                    raise ValueError
                [float(p) for p in parts[1:]]
            except ValueError:
                raise SourceError(f"{path}:{lineno}: expected 'JointName;x;y;z', got "
                                  f"{line.strip()[:60]!r}") from None
        raise SourceError(f"{path}: cannot read the coordinates") from None  # pragma: no cover
    frames, partial = divmod(len(numbered), 20)
    dropped = Counter({PARTIAL_FRAME: 1} if partial else {})
    if frames == 0:
        raise SourceError(f"{path}: {len(numbered)} joint line(s), less than one 20-joint frame")
    out = np.empty((frames, 20, 3), dtype=np.float64)
    values = values[:frames * 20].reshape(frames, 20, 3)
    name_rows = np.array(names[:frames * 20], dtype=object).reshape(frames, 20)
    same = (name_rows == name_rows[0]).all(axis=1)
    orders: dict[tuple[str, ...], np.ndarray] = {}
    for t in range(frames):
        row = tuple(name_rows[0] if same[t] else name_rows[t])
        order = orders.get(row)
        if order is None:
            order = orders[row] = _kgbd_order(row, path, numbered[t * 20][0], t)
        out[t, order] = values[t]
    return out, dropped


def _kgbd_order(names: tuple[str, ...], path: Path, lineno: int, frame: int) -> np.ndarray:
    """kinect-v1-20 index of each of a frame's 20 lines; SourceError if the names are not KGBD's."""
    order = []
    for k, name in enumerate(names):
        idx = _KGBD_INDEX.get(_name_key(name))
        if idx is None:
            raise SourceError(f"{path}:{lineno + k}: unknown joint name {name!r} in frame {frame} "
                              f"(KGBD's are {', '.join(KGBD_JOINTS)})")
        order.append(idx)
    if len(set(order)) != 20:
        dup = Counter(order).most_common(1)[0][0]
        twice = [n for n, i in zip(names, order) if i == dup]
        raise SourceError(f"{path}:{lineno}: frame {frame} lists {twice[0]!r} twice "
                          f"(as {' and '.join(repr(n) for n in twice)}) and misses a joint; "
                          f"each frame must list KGBD's 20 joints once")
    return np.array(order)


def _kgbd_people(src: Path) -> list[tuple[str, Path]]:
    people = []
    for sub in src.iterdir():
        m = _PERSON.search(sub.name)
        if m and sub.is_dir():
            people.append((sub.name, sub, int(m.group(1))))
    if not people:
        hint = find_below(src, lambda d: any(_PERSON.search(p.name) for p in d.iterdir()))
        raise SourceError(f"{src}: no PersonNNN folders (KGBD's layout is "
                          f"SRC/Person001/1.txt ...){hint}")
    people.sort(key=lambda p: (p[2], p[0]))
    return [(name, path) for name, path, _ in people]


@releases_output
def import_kgbd(src: Path | str, out: Path | str, seed: int = 0, trim: int = 10,
                progress: bool = True, force: bool = False) -> ImportSummary:
    """Import KGBD (Kinect Gait Biometry Dataset) into the store ``out``.

    ``src`` holds ``PersonNNN/`` folders with one walk per ``k.txt`` (164
    people, 822 walks in the full set). Subject = the folder name
    (``Person001``), sequence = the walk number, layout ``kinect-v1-20``.
    Protocol (SimMC's, with a seed): per person, drawn at random among the
    walks that could be read, one walk is the probe, two are gallery walks and
    the rest train (a person with three walks: one of each); conditions
    ``probe``, ``gallery``, ``train``, split ``test`` for probe and gallery
    walks and ``train`` for the rest. ``trim`` frames are cut at both ends of
    every walk (10, as the reference preprocessing does).
    """
    seed, trim = check_seed(seed), check_trim(trim)
    src = check_src(src)
    people = _kgbd_people(src)
    writer = StoreWriter("kgbd", src, out, V1, force=force)
    walk_files = {}
    for name, folder in people:
        files = [f for f in folder.iterdir() if f.suffix.lower() == ".txt" and f.is_file()
                 and writer.readable(f)]
        if not files:
            writer.skip(f"{writer.rel(folder)}: no walk files (*.txt)")
        walk_files[name] = []
        for f in sorted(files, key=lambda f: (natural_key(f.name), f.name)):
            same = next((g for g in walk_files[name] if g.stem == f.stem), None)
            if same is not None:  # 1.txt and 1.TXT: one walk name, two files
                writer.skip(f"{writer.rel(f)}: same walk name {f.stem!r} as "
                            f"{writer.rel(same)}; skipped")
                continue
            walk_files[name].append(f)
    bar = tqdm(total=sum(len(v) for v in walk_files.values()), unit="walk", desc="kgbd",
               disable=not progress)
    with bar:
        for name, folder in people:
            walks = []
            for f in walk_files[name]:
                try:
                    joints, dropped = read_kgbd_walk(f)
                except SourceError as exc:
                    writer.skip(str(exc))
                else:
                    walk = writer.clean(joints, f, trim=(trim, trim), dropped=dropped)
                    if walk is not None:
                        walks.append((f.stem, walk))
                bar.update(1)
            roles = draw_roles(name, len(walks), seed, galleries=2)
            for (seq, walk), role in zip(walks, roles):
                writer.save(f"{folder.name}/{seq}.npz", walk, subject=name, condition=role,
                            sequence=seq, view="", split="train" if role == "train" else "test")
    return writer.finish()


# ---------------------------------------------------------------------------
# KS20

KS20_VIEWS = ("frontal", "left_diagonal", "left_lateral", "right_diagonal", "right_lateral")
_KS20_NAME = re.compile(r"^(gc\d+)_body(\d+)_(\d+)", re.IGNORECASE)


def _read_rows(path: Path, rows: int, exact: bool, min_cols: int) -> list[list[str]] | None:
    """The first ``rows`` comma-separated rows of a per-frame file; None for an empty file."""
    text = _read_text(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) < rows or (exact and len(lines) != rows):
        raise SourceError(f"{path}: {len(lines)} joint row(s), expected "
                          f"{'exactly' if exact else 'at least'} {rows}")
    out = []
    for k, line in enumerate(lines[:rows]):
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < min_cols:
            raise SourceError(f"{path}: row {k + 1} has {len(cols)} comma-separated column(s), "
                              f"expected at least {min_cols}")
        out.append(cols)
    return out


def _numbers(cols: list[str], path: Path, row: int, what: str) -> list[float]:
    try:
        return [float(c) for c in cols]
    except ValueError:
        raise SourceError(f"{path}: row {row}: {what} {cols!r} are not numbers") from None


def read_ks20_frame(path: Path) -> np.ndarray | None:
    """One KS20 per-frame file -> (25, 3): the first 25 rows, columns 1-3 (x, y, z).

    Column 0 is not used. None for an empty file (counted as a dropped frame).
    """
    rows = _read_rows(path, 25, exact=False, min_cols=4)
    if rows is None:
        return None
    return np.array([_numbers(r[1:4], path, k + 1, "x, y, z") for k, r in enumerate(rows)])


@releases_output
def import_ks20(src: Path | str, out: Path | str, seed: int = 0, trim: int = 0,
                progress: bool = True, force: bool = False) -> ImportSummary:
    """Import KS20 (VisLab multi-view Kinect v2 skeletons, txt form) into the store ``out``.

    ``src`` holds the five view folders (frontal, left_diagonal, left_lateral,
    right_diagonal, right_lateral), each with one file per frame named
    ``<gc>_body<N>_<timestamp>...``. A sequence is every frame of one
    (view, gc, body), in timestamp order (the number, not the file name).
    Subject = ``body<N>`` (the raw N), sequence = the gc setting, view = the
    folder, layout ``kinect-v2-25``, the gc setting also in column ``gc``.
    Protocol: per person, among the gc settings that could be read, one drawn
    at random is the probe, another the gallery, the rest train, across all
    views; conditions ``probe``, ``gallery``, ``train``. No trimming by default
    (the reference trims none).
    """
    seed, trim = check_seed(seed), check_trim(trim)
    src = check_src(src)
    views = [v for v in KS20_VIEWS if (src / v).is_dir()]
    if not views:
        hint = find_below(src, lambda d: any((d / v).is_dir() for v in KS20_VIEWS))
        raise SourceError(f"{src}: none of KS20's view folders ({', '.join(KS20_VIEWS)}){hint}")
    writer = StoreWriter("ks20", src, out, V2, force=force)
    other = sorted(p.name for p in src.iterdir() if p.is_dir() and p.name not in KS20_VIEWS
                   and not p.name.startswith("."))
    if other:
        writer.note(f"ignored folder(s) that are not KS20 views: {', '.join(other)}")
    missing = [v for v in KS20_VIEWS if v not in views]
    if missing:
        writer.note(f"view folder(s) not found: {', '.join(missing)}")
    runs: dict[tuple[str, str, str], list[tuple[int, str, Path]]] = defaultdict(list)
    for view in views:
        for f in sorted((src / view).iterdir()):
            if f.name.startswith(".") or not f.is_file() or not writer.readable(f):
                continue
            m = _KS20_NAME.match(f.name)
            if not m:
                writer.skip(f"{writer.rel(f)}: name is not <gc>_body<N>_<timestamp>...")
                continue
            runs[(m.group(2), m.group(1).lower(), view)].append((int(m.group(3)), f.name, f))
    by_person: dict[str, list[tuple[str, str, object]]] = defaultdict(list)
    with tqdm(total=len(runs), unit="seq", desc="ks20", disable=not progress) as bar:
        for (body, gc, view), frames in sorted(runs.items(),
                                               key=lambda kv: (int(kv[0][0]), kv[0][1:])):
            frames.sort(key=lambda x: (x[0], natural_key(x[1])))
            walk = _read_frames([f for _, _, f in frames], read_ks20_frame, writer,
                                src / view, (trim, trim), f"{gc}_body{body}")
            if walk is not None:
                by_person[f"body{body}"].append((gc, view, walk))
            bar.update(1)
    for subject in sorted(by_person, key=natural_key):
        items = by_person[subject]
        gcs = sorted({gc for gc, _, _ in items}, key=natural_key)
        role = dict(zip(gcs, draw_roles(subject, len(gcs), seed, galleries=1)))
        for gc, view, walk in items:
            writer.save(f"{view}/{gc}_{subject}.npz", walk, subject=subject,
                        condition=role[gc], sequence=gc, view=view,
                        split="train" if role[gc] == "train" else "test", gc=gc)
    return writer.finish()


def _read_frames(files: list[Path], reader, writer: StoreWriter, source: Path,
                 trim: tuple[int, int], label: str, with_state: bool = False):
    """Read one sequence of per-frame files into a cleaned walk (None and a skip line if bad)."""
    frames, states, dropped = [], [], Counter()
    try:
        for f in files:
            frame = reader(f)
            if frame is None:
                dropped[EMPTY_FRAME] += 1
                continue
            if with_state:
                frames.append(frame[0])
                states.append(frame[1])
            else:
                frames.append(frame)
    except SourceError as exc:
        writer.skip(f"{exc} (sequence {label} skipped)")
        return None
    if not frames:
        writer.skip(f"{writer.rel(source)}: sequence {label}: every frame file is empty")
        return None
    joints = np.stack(frames)
    untracked = (np.stack(states) == 0).any(axis=1) if with_state else None
    hint = f" (sequence {label})" if label else ""
    return writer.clean(joints, source, trim=trim, untracked=untracked, dropped=dropped, hint=hint)


# ---------------------------------------------------------------------------
# IAS-Lab and BIWI: one leaf folder per sequence, one *skel.txt file per frame

def read_skel_frame(path: Path, exact: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """One IAS-Lab / BIWI ``*skel.txt`` frame -> ((20, 3) x, y, z, (20,) tracking state).

    Rows are comma-separated: track id, x, y, z, 2D x, 2D y, TrackingState,
    ... IAS-Lab files must hold exactly 20 rows, BIWI's first 20 are used.
    None for an empty file.
    """
    rows = _read_rows(path, 20, exact=exact, min_cols=7)
    if rows is None:
        return None
    xyz = np.array([_numbers(r[1:4], path, k + 1, "x, y, z") for k, r in enumerate(rows)])
    state = np.array([_numbers(r[6:7], path, k + 1, "TrackingState")[0]
                      for k, r in enumerate(rows)])
    return xyz, state


def _leaf_folders(root: Path) -> list[Path]:
    leaves = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if not dirnames and Path(dirpath) != root:
            leaves.append(Path(dirpath))
    return sorted(leaves, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def _import_leaf_sets(dataset: str, src: Path | str, out: Path | str,
                      splits: tuple[tuple[str, str, str, tuple[int, int]], ...], exact: bool,
                      int_names: bool, progress: bool, force: bool = False) -> ImportSummary:
    """Shared IAS-Lab / BIWI importer. ``splits``: (folder, condition, split, (trim start, end))."""
    src = check_src(src)
    present = [s for s in splits if (src / s[0]).is_dir()]
    if not present:
        names = ", ".join(s[0] for s in splits)
        hint = find_below(src, lambda d: any((d / s[0]).is_dir() for s in splits))
        raise SourceError(f"{src}: none of {dataset}'s folders ({names}){hint}")
    writer = StoreWriter(dataset, src, out, V1, force=force)
    missing = [s[0] for s in splits if s not in present]
    if missing:
        writer.note(f"folder(s) not found: {', '.join(missing)}")
    leaves = [(s, leaf) for s in present for leaf in _leaf_folders(src / s[0])]
    with tqdm(total=len(leaves), unit="seq", desc=dataset, disable=not progress) as bar:
        for (folder, condition, split, trim), leaf in leaves:
            bar.update(1)
            start, end = trim
            if int_names and not leaf.name.strip().isdecimal():
                writer.skip(f"{writer.rel(leaf)}: folder name is not a person number")
                continue
            frames = sorted((f for f in leaf.iterdir()
                             if "skel.txt" in f.name.lower() and f.is_file()
                             and writer.readable(f)),
                            key=lambda f: natural_key(f.name))
            if not frames:
                writer.skip(f"{writer.rel(leaf)}: no *skel.txt frame files")
                continue
            walk = _read_frames(frames, lambda f: read_skel_frame(f, exact), writer, leaf,
                                (start, end), "", with_state=True)
            if walk is None:
                continue
            seq = leaf.relative_to(src / folder).as_posix()
            subject = person_id(leaf.name)
            writer.save(f"{condition}/{seq}.npz", walk, subject=subject, condition=condition,
                        sequence=seq, view="", split=split)
    return writer.finish()


@releases_output
def import_ias(src: Path | str, out: Path | str, trim: int = 10,
               progress: bool = True, force: bool = False) -> ImportSummary:
    """Import IAS-Lab RGBD-ID into the store ``out``.

    ``src`` holds ``Training``, ``TestingA`` and ``TestingB``, each with one
    leaf folder per person-sequence full of ``*skel.txt`` frame files (20
    comma-separated rows: track id, x, y, z, 2D x, 2D y, TrackingState, ...).
    Subject = the leaf folder's name (a number loses its zero padding), never
    the order the folders are walked in, so the three sets agree. The joints
    are kept as in the files, wrists equal to hands and ankles to feet (the
    NiTE tracker's 15 joints copied into 20 slots). A frame with any joint at
    TrackingState 0 is dropped. Trimming as the reference: ``trim`` frames at
    the start of Training walks, at both ends of TestingA/TestingB walks.
    Conditions ``Training`` (split train), ``TestingA`` and ``TestingB`` (split
    test): evaluate with ``--probe TestingA --gallery TestingB`` and the
    reverse.
    """
    trim = check_trim(trim)
    return _import_leaf_sets("ias", src, out, (
        ("Training", "Training", "train", (trim, 0)),
        ("TestingA", "TestingA", "test", (trim, trim)),
        ("TestingB", "TestingB", "test", (trim, trim))), exact=True, int_names=False,
        progress=progress, force=force)


@releases_output
def import_biwi(src: Path | str, out: Path | str, trim: int = 10,
                progress: bool = True, force: bool = False) -> ImportSummary:
    """Import BIWI RGBD-ID into the store ``out``.

    ``src`` holds ``Training``, ``Testing/Walking`` and ``Testing/Still``;
    every leaf folder below them is one sequence, named by the person number,
    holding one ``*skel.txt`` file per frame (comma-separated rows: track id,
    x, y, z, 2D x, 2D y, TrackingState, quality, ...). Only the first 20 rows
    (the first skeleton) are used; a frame with any of them at TrackingState 0
    is dropped. ``trim`` frames are cut at both ends of every sequence.
    Subject = the folder's number (zero padding dropped), conditions
    ``Training`` (split train), ``Walking`` and ``Still`` (split test):
    evaluate with ``--probe Walking --gallery Still`` and the reverse.
    """
    trim = check_trim(trim)
    return _import_leaf_sets("biwi", src, out, (
        ("Training", "Training", "train", (trim, trim)),
        ("Testing/Walking", "Walking", "test", (trim, trim)),
        ("Testing/Still", "Still", "test", (trim, trim))), exact=False, int_names=True,
        progress=progress, force=force)
