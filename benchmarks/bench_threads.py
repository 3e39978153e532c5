"""Training and evaluation time against the thread count, on a free and on a busy machine.

Runs ``vid2reid train`` (and ``vid2reid eval``) as separate processes, once per
thread setting, first as the machine is, then with ``--busy N`` busy-loop
processes started by this script (each keeps one core fully busy, as other
users' jobs would), and prints one table of wall seconds side by side, with the
load averages seen before each run. Every process gets the same store, seed and
epochs, so only the threads differ.

Thread settings (``--variants``, comma-separated):

- ``N``: ``--threads N``;
- ``N:passive`` / ``N:active`` / ``N:unset``: ``--threads N`` with OpenMP's wait
  policy passive (waiting threads sleep), active (they spin) or OpenMP's default
  (they spin a while, then sleep: torch's threads under vid2reid before
  2026-12-05);
- ``default``: no ``--threads`` (vid2reid's default, ``vid2reid.threads``).

Example (a store of the sample videos' ground-truth joints)::

    python -m vid2reid import-ground-truth sample_videos --out /tmp/gt
    python benchmarks/bench_threads.py --data /tmp/gt --epochs 3 --busy 2 --json out.json

Nothing here is asserted; read the numbers with the load averages next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env(variant: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("OMP_NUM_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)
    if ":" in variant:
        policy = variant.split(":")[1]
        # "unset": OpenMP's own default (what torch had before vid2reid set a policy). An empty
        # value keeps vid2reid from setting one, and OpenMP reads it as unset (with a warning).
        env["OMP_WAIT_POLICY"] = "" if policy == "unset" else policy
    return env


def _thread_args(variant: str) -> list[str]:
    if variant == "default":
        return []
    return ["--threads", variant.split(":")[0]]


def _timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return wall


def _epoch_seconds(run: Path) -> float:
    """Seconds the epochs themselves took, from the run's log.jsonl (no start-up, no imports)."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return sum(float(r.get("epoch_s", 0.0)) for r in rows)


def _spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def measure(data: str, variants: list[str], busy: int, epochs: int, repeats: int,
            work: Path, eval_too: bool) -> list[dict]:
    """One row per (machine state, variant, task) with every wall time and the loads seen."""
    py = [sys.executable, "-m", "vid2reid"]
    base_run = work / "eval-run"
    r = subprocess.run(py + ["train", "--data", data, "--out", str(base_run), "--epochs", "1",
                             "--threads", "1", "--no-progress"], env=_env("1"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    rows = []
    states = [("as is", 0)] + ([(f"+{busy} busy loops", busy)] if busy else [])
    for state, n_busy in states:
        procs = _spinners(n_busy)
        try:
            if n_busy:
                time.sleep(3)  # let the spinners be scheduled
            times: dict[tuple[str, str], list[float]] = {}
            loads: dict[tuple[str, str], list[float]] = {}
            epochs_s: dict[str, list[float]] = {}
            for rep in range(repeats):
                order = variants if rep % 2 == 0 else variants[::-1]
                for v in order:
                    tasks = [("train", py + ["train", "--data", data, "--out", str(work / "r"),
                                             "--no-resume", "--epochs", str(epochs), "--seed", "0",
                                             "--no-progress"] + _thread_args(v))]
                    if eval_too:
                        tasks.append(("eval", py + ["eval", "--data", data, "--run", str(base_run),
                                                    "--probe", "Bags", "--gallery", "Normal"]
                                      + _thread_args(v)))
                    for task, cmd in tasks:
                        loads.setdefault((v, task), []).append(os.getloadavg()[0])
                        times.setdefault((v, task), []).append(_timed(cmd, _env(v)))
                        if task == "train":
                            epochs_s.setdefault(v, []).append(_epoch_seconds(work / "r"))
                        print(f"{state}, {v}, {task}: {times[(v, task)][-1]:.1f} s wall "
                              f"(load {loads[(v, task)][-1]:.1f})", file=sys.stderr, flush=True)
            for (v, task), ts in times.items():
                rows.append({"machine": state, "busy_loops": n_busy, "variant": v, "task": task,
                             "wall_s": [round(t, 2) for t in ts],
                             "median_s": round(statistics.median(ts), 2),
                             "load1_before": [round(x, 2) for x in loads[(v, task)]]})
                if task == "train":
                    rows[-1]["epochs_s"] = [round(t, 2) for t in epochs_s[v]]
                    rows[-1]["epochs_median_s"] = round(statistics.median(epochs_s[v]), 2)
        finally:
            _stop(procs)
            if n_busy:
                time.sleep(2)
    return rows


def table(rows: list[dict], variants: list[str]) -> str:
    """Median wall seconds (train: and the epochs' own seconds from log.jsonl): one line per
    task and variant, one column per machine state."""
    states = list(dict.fromkeys(r["machine"] for r in rows))
    by = {(r["task"], r["variant"], r["machine"]): r for r in rows}
    head = f"{'task':<6}{'threads':<12}" + "".join(f"{s:>28}" for s in states)
    lines = [head]
    for task in dict.fromkeys(r["task"] for r in rows):
        for v in variants:
            cells = []
            for s in states:
                r = by.get((task, v, s))
                if r is None:
                    cells.append(f"{'-':>28}")
                    continue
                load = statistics.mean(r["load1_before"])
                inner = f" [{r['epochs_median_s']:.1f}]" if "epochs_median_s" in r else ""
                cells.append(f"{r['median_s']:.1f} s{inner} (load {load:.1f})".rjust(28))
            lines.append(f"{task:<6}{v:<12}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="skeleton store to train and evaluate on")
    ap.add_argument("--variants", default="1,2,default")
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes for the busy runs (0: none)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(a.data, variants, a.busy, a.epochs, a.repeats, Path(tmp), not a.no_eval)
    import torch

    from vid2reid.threads import usable_cores

    info = {"started": started, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "usable_cores": usable_cores(), "torch_default_threads": torch.get_num_threads(),
            "load_at_start": [round(x, 2) for x in load0],
            "load_at_end": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print("median wall seconds of each command [train: of its epochs alone, from log.jsonl]; "
          "load = mean 1-minute load average before the runs")
    print(table(rows, variants))
    print(json.dumps({k: v for k, v in info.items() if k != "rows"}))
    if a.json:
        a.json.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
