"""``vid2reid group``: every walk of a store given a person, with a trained run's features.

The association itself (features + body proportions, merge tree, cut) is
vid2reid.association, the same code training's default pseudo-labels use; this
module reads a store one walk at a time, writes the CSV and the report page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.association import (Association, associate, body_proportions,
                                  compare_with_subjects)
from vid2reid.errors import ConfigError
from vid2reid.run.embed import has_identity


@dataclass
class StoreGrouping:
    """Every walk of a store with its person and confidence (``group_store``)."""

    records: list  # vid2reid.store.Record, one per walk, manifest order
    association: Association
    skipped: list[str]  # "path: why" for walks left out (too short, unreadable)
    evaluation: dict | None  # ARI and pairwise precision/recall against subjects, if any


def walk_features(store_dir: Path | str, run_dir: Path | str | None = None,
                  progress: bool = True, device: str = "cpu", runs_dir: Path | str = "runs"
                  ) -> tuple[list, np.ndarray, np.ndarray | None, list[str]]:
    """Read every walk of a store once: (records (each walk's first row), unit-length walk
    features (W, D) from the run's one embedder (vid2reid.run.embed), body proportions
    (W, B), skipped rows). One row's joints in memory at a time."""
    from vid2reid.data import normalise
    from vid2reid.errors import StoreError
    from vid2reid.run import open_run
    from vid2reid.run.embed import store_loader
    from vid2reid.store import read_manifest

    store_dir = Path(store_dir)
    records = read_manifest(store_dir)
    if not records:
        raise StoreError(f"{store_dir}: the store has no walks (manifest.csv lists none)")
    run = open_run(run_dir, runs_dir)
    layouts = sorted({r.layout for r in records if r.layout})
    if run.layout and layouts and layouts != [run.layout] and not run.any_layout:
        raise StoreError(f"{store_dir}: walks of layout {', '.join(layouts)} but the run "
                         f"{run.path} was trained on {run.layout!r}; group with a run of the "
                         f"same layout (or convert the store with 'vid2reid convert')")
    base = store_loader(store_dir, records)
    frames: dict[str, list[np.ndarray]] = {}  # per walk key: subsampled root-relative frames

    def load(i: int) -> np.ndarray:
        joints = base(i)
        rec = records[i]
        step = max(1, len(joints) // 200)
        frames.setdefault("|".join(rec.video_key), []).append(
            normalise(joints[::step], rec.layout or run.layout))
        return joints

    skipped: list[str] = []
    walks = run.embedder(device).walks(records, load, store=str(store_dir),
                                       keep_windows=False, progress=progress, skipped=skipped)
    if not len(walks):
        raise StoreError(f"{store_dir}: no walk could be grouped ({len(skipped)} left out; "
                         f"first: {skipped[0] if skipped else 'none'})")
    by_path = {r.path: r for r in records}
    kept = [by_path[p] for p in walks.paths]
    feats = walks.features.astype(np.float64)
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    try:
        body = body_proportions([np.concatenate(frames[k]) for k in walks.keys])
    except ConfigError:
        body = None
    return kept, feats.astype(np.float32), body, skipped


def group_store(store_dir: Path | str, run_dir: Path | str | None = None,
                people: int | None = None, progress: bool = True, device: str = "cpu",
                runs_dir: Path | str = "runs") -> StoreGrouping:
    """Assign every walk of a store a person (no labels read) and a confidence.

    Subjects, where the manifest names identities (not file names), are read only afterwards,
    for the ``evaluation`` (ARI, pairwise precision and recall).
    """
    records, feats, body, skipped = walk_features(store_dir, run_dir, progress, device,
                                                  runs_dir)
    assoc = associate(feats, body, people=people, with_confidence=True)
    subjects = [r.subject for r in records]
    # only identities: a subject that is just a video's file name says nothing about who it is
    named = all(has_identity(r.row()) for r in records)
    evaluation = compare_with_subjects(assoc.labels, subjects) if named else None
    return StoreGrouping(records, assoc, skipped, evaluation)


def write_grouping_csv(grouping: StoreGrouping, out: Path | str) -> Path:
    """CSV ``path,person,confidence`` (paths as the manifest writes them), written atomically."""
    import csv
    import io

    from vid2reid.store import atomic_write_bytes, spreadsheet_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "person", "confidence"])
    a = grouping.association
    for rec, p, c in zip(grouping.records, a.labels, a.confidence):
        w.writerow([spreadsheet_cell(rec.path), int(p), f"{float(c):.3f}"])
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue().encode())
    return out


def walks_word(n: int) -> str:
    """"1 walk", "2 walks"."""
    return f"{n} walk" if n == 1 else f"{n} walks"


def write_group_report(grouping: StoreGrouping, store_dir: Path | str, out_dir: Path | str,
                       max_pictures: int = 5000, progress: bool = True,
                       force: bool = False, videos: Sequence[Path | str] = ()) -> Path:
    """An HTML page (``out_dir/index.html``, opens from disk) that shows what the match page
    shows: each person found, largest first, with a strip of every walk (frames of its video
    with the estimated skeleton drawn, or the skeleton alone where the store records no
    video; vid2reid.match_report.walk_strip) and its confidence beside it. Thumbnails are
    ``out_dir/thumbs/<n>.jpg``; after ``max_pictures`` strips the rest are listed by name.
    Subjects the manifest names are shown in the captions; they were not used to group.
    A folder of files vid2reid did not write is refused unless ``force``; ``videos``: folders
    (or files) the user named whose videos may be shown besides those inside the store."""
    from vid2reid.locks import claim_output
    from vid2reid.safepath import GROUP_REPORT

    with claim_output(out_dir, GROUP_REPORT, force, "--report"):
        return _write_group_report(grouping, store_dir, out_dir, max_pictures, progress,
                                   videos)


def _write_group_report(grouping: StoreGrouping, store_dir: Path | str, out_dir: Path | str,
                        max_pictures: int, progress: bool, videos: Sequence[Path | str]
                        ) -> Path:
    import html

    import cv2
    from tqdm import tqdm

    from vid2reid.match_report import STYLE, caption, walk_strip
    from vid2reid.store import atomic_write_bytes

    out = Path(out_dir)
    a = grouping.association
    order = np.argsort(-np.bincount(a.labels)[a.labels] * len(a.labels) + a.labels, kind="stable")
    named = any(has_identity(r.row()) for r in grouping.records)
    parts = [f"<h1>{a.people} people found among {walks_word(len(a.labels))}</h1>",
             f"<p>{a.singletons} alone; mean silhouette {a.silhouette:.3f}. Beside every walk: "
             f"its confidence (0-1) in its person. Pictures: frames of the walk's video with "
             f"the estimated skeleton, or the skeleton alone where the store records no video."
             + (" Subjects in the captions come from the manifest and were <b>not used to "
                "group</b>." if named else "") + "</p>"]
    drawn, current = 0, -1
    for i in tqdm(order, desc="pictures", unit="walk", disable=not progress, dynamic_ncols=True):
        rec, p = grouping.records[i], int(a.labels[i])
        if p != current:
            if current >= 0:
                parts.append("</div>")
            parts.append(f"<h2>person {p} ({walks_word(int((a.labels == p).sum()))})</h2><div>")
            current = p
        conf = f"<span class=d>confidence {a.confidence[i]:.2f}</span><br>"
        if drawn < max_pictures:
            img, shows = walk_strip({**rec.row(), "store": str(store_dir)}, allowed=videos)
            ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise ConfigError(f"{rec.path}: the picture could not be encoded")
            name = f"thumbs/{i}.jpg"
            atomic_write_bytes(out / name, jpg.tobytes())
            parts.append(f"<figure style='display:inline-block;vertical-align:top;margin:4px'>"
                         f"<img src='{name}' alt='walk {i}' data-shows='{shows}'>"
                         f"<figcaption>{conf}{caption(rec.row(), rec.path)}</figcaption>"
                         f"</figure>")
            drawn += 1
        else:
            parts.append(f"<span style='margin:4px'>{html.escape(rec.path)} "
                         f"({a.confidence[i]:.2f})</span>")
    parts.append("</div>")
    page = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>vid2reid group</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    index = out / "index.html"
    atomic_write_bytes(index, page.encode())
    return index
