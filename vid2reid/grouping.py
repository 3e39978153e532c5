"""``vid2reid group``: every walk of a store given a person, with a trained run's features.

The association itself (features + body proportions, merge tree, cut) is
vid2reid.association, the same code training's default pseudo-labels use; this
module reads a store one walk at a time, writes the CSV and the report page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.association import (Association, associate, body_proportions,
                                  compare_with_subjects)
from vid2reid.errors import ConfigError


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

    Subjects, where the manifest has them, are read only afterwards, for the
    ``evaluation`` (ARI, pairwise precision and recall).
    """
    records, feats, body, skipped = walk_features(store_dir, run_dir, progress, device,
                                                  runs_dir)
    assoc = associate(feats, body, people=people, with_confidence=True)
    subjects = [r.subject for r in records]
    evaluation = compare_with_subjects(assoc.labels, subjects) if all(subjects) else None
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


def write_group_report(grouping: StoreGrouping, store_dir: Path | str, out_dir: Path | str,
                       max_pictures: int = 5000, progress: bool = True,
                       force: bool = False) -> Path:
    """An HTML page (``out_dir/index.html``) listing each group with a picture per walk:
    the skeleton of the walk's middle frame, drawn in 3D (``walks/<n>.png``). Groups are
    listed largest first; after ``max_pictures`` pictures the rest are listed by name.
    A folder of files vid2reid did not write is refused unless ``force``."""
    from vid2reid.locks import claim_output
    from vid2reid.safepath import GROUP_REPORT

    with claim_output(out_dir, GROUP_REPORT, force, "--report"):
        return _write_group_report(grouping, store_dir, out_dir, max_pictures, progress)


def _write_group_report(grouping: StoreGrouping, store_dir: Path | str, out_dir: Path | str,
                        max_pictures: int, progress: bool) -> Path:
    import html

    import cv2
    from tqdm import tqdm

    from vid2reid.pose.visualize import draw_3d_panel
    from vid2reid.store import atomic_write_bytes, load_joints

    out = Path(out_dir)
    (out / "walks").mkdir(parents=True, exist_ok=True)
    a = grouping.association
    order = np.argsort(-np.bincount(a.labels)[a.labels] * len(a.labels) + a.labels, kind="stable")
    parts = [f"<h1>{a.people} people found among {len(a.labels)} walks</h1>",
             f"<p>{a.singletons} walks alone; mean silhouette {a.silhouette:.3f}. "
             "Confidence per walk in brackets.</p>"]
    drawn, current = 0, -1
    for i in tqdm(order, desc="pictures", unit="walk", disable=not progress, dynamic_ncols=True):
        rec, p = grouping.records[i], int(a.labels[i])
        if p != current:
            if current >= 0:
                parts.append("</div>")
            parts.append(f"<h2>person {p} ({int((a.labels == p).sum())} walks)</h2><div>")
            current = p
        label = html.escape(f"{rec.path} ({a.confidence[i]:.2f})")
        if drawn < max_pictures:
            joints = load_joints(store_dir, rec)
            mid = joints[len(joints) // 2]
            extent = float(np.nanmax(np.abs(mid - mid.mean(axis=0)))) * 1.1 or 1.0
            img = draw_3d_panel(mid, rec.layout, 160, extent)
            ok, png = cv2.imencode(".png", img)
            if not ok:
                raise ConfigError(f"{rec.path}: the picture could not be encoded")
            name = f"walks/{i}.png"
            atomic_write_bytes(out / name, png.tobytes())
            parts.append(f"<figure style='display:inline-block;margin:4px'><img src='{name}' "
                         f"width=160 height=160><figcaption style='font-size:small'>{label}"
                         "</figcaption></figure>")
            drawn += 1
        else:
            parts.append(f"<span style='margin:4px'>{label}</span>")
    parts.append("</div>")
    page = ("<!doctype html><meta charset='utf-8'><title>vid2reid group</title><body>"
            + "\n".join(parts) + "</body>")
    index = out / "index.html"
    atomic_write_bytes(index, page.encode())
    return index
