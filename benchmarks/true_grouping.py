"""The "true grouping" upper bound of walk association (evaluation only; reads the subjects).

Writes a copy of a skeleton store in which every training walk of one person is
joined, end to end, into one walk (``<subject>/train-all.npz``); test walks are
copied unchanged. Training that copy with ``--pseudo-labels walks`` is what the
label-free pipeline reaches when walks are grouped perfectly. The subjects are
read here, to build the oracle, and nowhere in the method:

    .venv/bin/python benchmarks/true_grouping.py --data kgbd --out kgbd-true
    vid2reid train --data kgbd-true --out runs/true --f 6 --seed 0 --pseudo-labels walks
    vid2reid eval --data kgbd-true --run runs/true --probe probe --gallery gallery

Also prints the ARI, pairwise precision and recall of a run's ``vid2reid group``
CSV against the subjects with ``--grouping people.csv`` (training walks only).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from vid2reid.association import compare_with_subjects
from vid2reid.store import load_joints, read_manifest, save_sequence, write_manifest


def oracle_store(data: Path, out: Path) -> tuple[int, int]:
    """Write the joined store; returns (training walks joined, people)."""
    records = read_manifest(data)
    per_person: dict[str, list] = defaultdict(list)
    new = []
    for rec in records:
        joints = load_joints(data, rec)
        if rec.split == "train":
            per_person[rec.subject].append((rec, joints))
            continue
        new.append(save_sequence(out, rec.path, joints, rec.layout, subject=rec.subject,
                                 condition=rec.condition, sequence=rec.sequence, view=rec.view,
                                 split=rec.split))
    for subject, walks in sorted(per_person.items()):
        rec = walks[0][0]
        joined = np.concatenate([j for _, j in walks])
        new.append(save_sequence(out, f"{subject}/train-all.npz", joined, rec.layout,
                                 subject=subject, condition=rec.condition, sequence="all",
                                 view=rec.view, split="train"))
    write_manifest(out, new)
    return sum(len(w) for w in per_person.values()), len(per_person)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--grouping", type=Path, help="a 'vid2reid group' CSV of --data to score")
    args = ap.parse_args()
    if args.out:
        walks, people = oracle_store(args.data, args.out)
        print(f"{args.out}: {walks} training walks joined into {people} (one per person)")
    if args.grouping:
        subj = {r.path: (r.subject, r.split) for r in read_manifest(args.data)}
        with open(args.grouping, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if subj[r["path"]][1] == "train"]
        ev = compare_with_subjects(np.array([int(r["person"]) for r in rows]),
                                   [subj[r["path"]][0] for r in rows])
        print(f"evaluation (training walks, reads subjects): ARI {ev['ari']:.3f}, pairwise "
              f"precision {ev['precision']:.3f}, recall {ev['recall']:.3f}, "
              f"{len({r['person'] for r in rows})} groups for {ev['subjects']} people")


if __name__ == "__main__":
    main()
