"""Plot time vs N from the JSON of bench_cluster.py and bench_eval.py (matplotlib, if installed).

    .venv/bin/python benchmarks/bench_cluster.py --features walkers --threads 1 --out cluster.json
    .venv/bin/python benchmarks/bench_eval.py --out eval.json
    .venv/bin/python benchmarks/plot_scaling.py cluster.json eval.json --out scaling.png
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cluster_json")
    ap.add_argument("eval_json")
    ap.add_argument("--out", default="scaling.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cl = json.load(open(args.cluster_json))["results"]
    ev = json.load(open(args.eval_json))["results"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    n = [r["n"] for r in cl]
    a.loglog(n, [r["total_s"] for r in cl], "o-", label="jaccard_distance + DBSCAN (full matrix)")
    a.loglog(n, [r["cluster_s"] for r in cl], "s-", label="cluster_features (pairs within eps)")
    ref = [r for r in cl if r.get("loop_total_s")]
    if ref:
        a.loglog([r["n"] for r in ref], [r["loop_total_s"] for r in ref], "x--",
                 label="per-sample loop reference")
    a.set_xlabel("windows N")
    a.set_ylabel("seconds")
    a.set_title(f"clustering ({cl[0]['features']} features, {cl[0]['threads']} thread)")
    a.legend(fontsize=8)
    g = [r["gallery"] for r in ev]
    b.loglog(g, [r["seconds_best"] for r in ev], "o-", label="wall (best)")
    b.loglog(g, [r["cpu_seconds_best"] for r in ev], "s--", label="CPU")
    b.set_xlabel(f"gallery size ({ev[0]['probes']} probes)")
    b.set_ylabel("seconds")
    b.set_title(f"CMC + mAP ({ev[0]['torch_threads']} threads)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
