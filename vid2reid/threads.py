"""How many CPU threads torch may use: one function for training, extraction and evaluation.

Torch's own default is one thread per core. On a machine whose cores other
processes are already using, that is the worst choice: torch's OpenMP threads
wait for each other at the end of every operation, and whichever of them the
operating system has set aside holds all the others up (on 2 shared cores,
5-epoch training took 41 s with torch's default and 8 s with one thread). So the
default here counts the cores that are free right now (the cores this process
may run on, less the 1-minute load average) and uses that many, at least one:
on an idle machine every core, on a busy one a single thread, which never waits
for another. ``benchmarks/bench_threads.py`` measures the choice
(docs/benchmarks.md, "Threads").
"""

from __future__ import annotations

import logging
import math
import os

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads for torch when none are given: the cores not busy with other work.

    ``cores`` defaults to :func:`usable_cores` and ``load`` to the 1-minute load
    average (runnable processes, this one included only in the small part it
    has already run). Rounded to the nearest whole core, at least 1, at most
    ``cores``. Where the system has no load average, every core.
    """
    cores = usable_cores() if cores is None else max(1, int(cores))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return cores
    free = math.floor(cores - float(load) + 0.5)
    return max(1, min(cores, free))


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads: ``threads`` when given (>= 1), else :func:`default_threads`.

    Call it before any work (the command line calls it first). Returns the number
    used, also logged at debug level with the load it was chosen from.
    """
    import torch

    chosen = default_threads() if threads is None else int(threads)
    if chosen < 1:
        from vid2reid.errors import ConfigError

        raise ConfigError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(chosen)
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        load = "unknown"
    log.debug("torch threads: %d (%s; %d usable cores, 1-minute load %s)", chosen,
              "given" if threads is not None else "default", usable_cores(), load)
    return chosen
