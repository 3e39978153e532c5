"""How far a condition (a coat, a bag) moves a person, next to how far other people lie.

For every walk of a store: its distance to the mean of one reference group of walks (one
subject in one condition, e.g. person 001's normal walks; a reference walk is measured
against the mean of the others), by body proportions (root-mean-square over the bones of the
z-scored log lengths, as the association sees them) and, with ``--run``, by the run's walk
features (Euclidean, unit length). Printed per subject and condition. Where the same person
in another condition lies farther than other people do, no grouping by these cues can join
that person's conditions without joining the other people too.

Subjects and conditions are read to print the table: an analysis, not a method.

    PYTHONPATH=. .venv/bin/python benchmarks/condition_shift.py CLIPS_STORE --run RUN --ref 001:nm
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from vid2reid.association import body_proportions


def distances(x: np.ndarray, ref: np.ndarray, rms: bool) -> np.ndarray:
    """(W,) distance of each row of ``x`` to the mean of the rows ``ref`` (bool mask); a
    reference row to the mean of the other reference rows."""
    total, n = x[ref].sum(axis=0), int(ref.sum())
    centre = np.where(ref[:, None], (total - x) / max(n - 1, 1), total / n)
    d = (x - centre) ** 2
    return np.sqrt(d.mean(axis=1) if rms else d.sum(axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--run", type=Path, default=None, help="also the run's walk features")
    ap.add_argument("--ref", default=None, metavar="SUBJECT:CONDITION",
                    help="the reference walks (default: the subject and condition with the "
                         "most walks)")
    args = ap.parse_args()
    if args.run is not None:
        from vid2reid.grouping import walk_features

        records, feats, body, _ = walk_features(args.store, args.run, progress=False)
        cues = {"bones": (body, True), "features": (feats.astype(np.float64), False)}
    else:
        from vid2reid.data import normalise
        from vid2reid.store import load_joints, read_manifest

        records = read_manifest(args.store)
        body = body_proportions([normalise(load_joints(args.store, r), r.layout)
                                 for r in records])
        cues = {"bones": (body, True)}
    key = np.array([f"{r.subject}:{r.condition}" for r in records])
    ref = args.ref or Counter(key.tolist()).most_common(1)[0][0]
    if (key == ref).sum() < 2:
        raise SystemExit(f"{args.store}: --ref {ref} names fewer than two walks")
    dist = {c: distances(x, key == ref, rms) for c, (x, rms) in cues.items()}
    print(f"distance to the mean of {ref}'s walks ({(key == ref).sum()} walks; "
          f"bones: rms z over {body.shape[1]} bones"
          + (f"; features: Euclidean, run {args.run}" if args.run else "") + ")")
    print(f"{'subject:condition':<20} {'walks':>5} " + " ".join(f"{c:>16}" for c in dist))
    for k in sorted(set(key.tolist()), key=lambda k: (k != ref, k)):
        cells = []
        for d in dist.values():
            v = d[key == k]
            cells.append(f"{v.mean():>7.2f} ({v.min():.2f}-{v.max():.2f})".rjust(16))
        print(f"{k:<20} {(key == k).sum():>5} " + " ".join(cells))


if __name__ == "__main__":
    main()
