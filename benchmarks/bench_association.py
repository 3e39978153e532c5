"""Time of the walk association (vid2reid.association.associate) against the number of walks.

Synthetic walk vectors of known people (a centre per person, noise per walk; 256 feature
dims + 19 body dims, 2 to 50 walks per person), so the ARI of the grouping is printed too:

    .venv/bin/python benchmarks/bench_association.py --walks 331 10000 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from vid2reid.association import associate


def walks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([2, 3, 5, 10, 50], size=n)  # walks per person, mixed
    who = np.repeat(np.arange(n), sizes)[:n]
    p = int(who.max()) + 1
    feats = rng.normal(size=(p, 256))[who] + 0.7 * rng.normal(size=(n, 256))
    body = rng.normal(size=(p, 19))[who] + 0.5 * rng.normal(size=(n, 19))
    return feats.astype(np.float32), body.astype(np.float32), who


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walks", type=int, nargs="+", default=[331, 10000])
    args = ap.parse_args()
    for n in args.walks:
        f, b, who = walks(n)
        t = time.perf_counter()
        a = associate(f, b, with_confidence=True)
        dt = time.perf_counter() - t
        print(f"{n} walks ({who.max() + 1} people): {a.people} found, ARI "
              f"{adjusted_rand_score(who, a.labels):.3f}, {dt:.1f} s")


if __name__ == "__main__":
    main()
