"""Check that ``vid2reid match`` ranks exactly as ``vid2reid eval`` scores, on a real store.

One command:

    python benchmarks/match_vs_eval.py --data STORE --run RUN --probe probe --gallery gallery

``eval``'s sequence-level probe and gallery features (``evaluate(keep_features=True)``) are
ranked here by float64 Euclidean distance (ties by vid2reid.rank's rule); ``match`` ranks the
same store's test walks of the probe condition against those of the gallery condition, the
whole gallery deep. Prints how many probes' orderings of the gallery are identical, the largest
feature and distance differences, match's share of right rank-1 answers next to eval's sequence
top-1 (they must be equal), and the time each side took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--probe", default="probe")
    ap.add_argument("--gallery", default="gallery")
    args = ap.parse_args()
    from vid2reid.evaluate import evaluate
    from vid2reid import load_run
    from vid2reid.rank import tie_order
    from vid2reid.search import rank_gallery

    t0 = time.perf_counter()
    res = evaluate(args.data, run_dir=args.run, probe=args.probe, gallery=args.gallery,
                   keep_features=True)
    t_eval = time.perf_counter() - t0
    p, g = res["features"]["sequence"]["probe"], res["features"]["sequence"]["gallery"]
    t0 = time.perf_counter()
    m = load_run(args.run)
    q = m.embedder().store(args.data, condition=args.probe, split="test", side="query")
    gw = m.embedder().store(args.data, condition=args.gallery, split="test")
    results = rank_gallery(q, gw, top=len(gw))
    t_match = time.perf_counter() - t0
    key = lambda row: "|".join((row["subject"], row["condition"], row["sequence"], row["view"]))
    p_keys, g_keys = p["video"].tolist(), g["video"].tolist()
    g_subjects = np.array([k.split("|")[0] for k in g_keys])
    same, feat_diff, dist_diff, hits, scored = 0, 0.0, 0.0, 0, 0
    for r in results:
        if r.subject in g_subjects:  # eval scores only probes with a true match
            scored += 1
            hits += r.matches[0].subject == r.subject
        i = p_keys.index(key(r.row))
        feat_diff = max(feat_diff, float(np.abs(q.features[q.paths.index(r.path)] - p["x"][i]).max()))
        d = np.sqrt(((g["x"].astype(np.float64) - p["x"][i].astype(np.float64)) ** 2).sum(1))
        order = tie_order(d, np.arange(len(g_keys)), g_subjects == r.subject)
        ours = [key(mm.row) for mm in r.matches]
        same += ours == [g_keys[j] for j in order]
        dist_diff = max(dist_diff, float(np.abs(np.array([mm.distance for mm in r.matches])
                                                - d[order]).max()))
    out = {"data": args.data, "run": args.run, "probes": len(results), "eval_probes": len(p_keys),
           "gallery": len(gw), "eval_gallery": len(g_keys), "identical_orderings": same,
           "max_feature_diff": feat_diff, "max_distance_diff": dist_diff,
           "eval_sequence_top1": res["sequence"]["top1"], "match_top1": hits / max(scored, 1),
           "eval_s": round(t_eval, 1), "match_s": round(t_match, 1)}
    print(json.dumps(out, indent=1))
    agree = abs(out["match_top1"] - out["eval_sequence_top1"]) < 1e-12
    return 0 if agree and same == len(results) == len(p_keys) and len(gw) == len(g_keys) else 1


if __name__ == "__main__":
    sys.exit(main())
