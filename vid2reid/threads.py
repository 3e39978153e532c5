"""CPU threads for torch: one function for training, extraction and evaluation.

Torch's OpenMP threads wait for each other at the end of every parallel step,
and by default a waiting thread spins: it keeps its core busy. On cores that
other processes also want, the operating system then sets a spinning thread's
work aside for theirs, and every step waits for it: on 2 cores shared with other
jobs (load average ~11), two training epochs took 45 s with torch's two threads
and 3.8 s with one. Telling OpenMP to let waiting threads sleep
(``OMP_WAIT_POLICY=PASSIVE``) removes that: the same epochs took 3.5 s with two
threads, and 3.9 s against 9.1 s for one thread with two busy loops added
(``benchmarks/bench_threads.py``; docs/benchmarks.md, "Threads").

OpenMP reads the policy once, when torch is imported; :func:`set_threads` sets
it when torch has not been imported yet (the command line calls it first), and
keeps a value the user set.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

WAIT_POLICY = "PASSIVE"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads: ``threads`` when given (>= 1), else torch's own default (one
    per core, or ``OMP_NUM_THREADS``); with OpenMP's passive wait policy either way.

    Returns the number of threads torch will use. Logs at debug level whether the
    wait policy could be set (not when torch was imported before this call).
    """
    if threads is not None and int(threads) < 1:
        from vid2reid.errors import ConfigError

        raise ConfigError(f"--threads must be at least 1, got {threads}")
    before = "torch" in sys.modules
    if not before:
        os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
    chosen = torch.get_num_threads()
    log.debug("torch threads: %d (%s; %d usable cores); OpenMP wait policy %s", chosen,
              "given" if threads is not None else "default", usable_cores(),
              "unchanged: torch was imported before" if before
              else os.environ.get("OMP_WAIT_POLICY"))
    return chosen
