"""The run folder as training writes it: settings, checkpoints, the log, resume, LATEST.

A run folder holds ``config.json`` (every setting and what the run found: layout, windows,
threads, library versions), ``checkpoint.pt`` (after every epoch, atomically), ``model.pt``
(when training finished), ``log.jsonl`` (one line per finished epoch) and ``train.log``. The
runs directory's ``LATEST`` names its newest finished run, when the run's parent is a folder of
runs (vid2reid.safepath.runs_folder). Run files load without unpickling code
(vid2reid.runfile). A run folder is claimed and locked while training (vid2reid.locks).
Everything that reads a run afterwards (eval, match, index, group, ``--init``) opens it
through vid2reid.run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vid2reid.config import LEGACY_DEFAULTS, RESUMABLE_CHANGES, TrainConfig, config_dict
from vid2reid import safepath
from vid2reid.errors import ConfigError
from vid2reid.locks import claim_output
from vid2reid.runfile import load_run_file, load_state, save_run_file
from vid2reid.store import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
CHECKPOINT_KEYS = ("epoch", "model", "optim", "rng", "torch_rng", "config", "history", "stable",
                   "stopped", "prev_labels")


def write_json(path: Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def environment() -> dict:
    """What else decides a run's numbers: thread count and library versions."""
    import sklearn

    return {"threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__,
            "python": platform.python_version()}


def rewrite_log(out: Path, history: list[dict]) -> None:
    """log.jsonl holds exactly the checkpointed epochs (drops lines of an unfinished epoch)."""
    atomic_write_bytes(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())


def append_log(out: Path, row: dict) -> None:
    """Add one finished epoch to log.jsonl."""
    with open(out / "log.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def save_checkpoint(out: Path, state: dict) -> None:
    """Write checkpoint.pt atomically (a crash leaves the previous epoch's)."""
    save_run_file(out / CHECKPOINT, state)


def load_checkpoint(out: Path, cfg: TrainConfig, device: torch.device) -> dict | None:
    """The checkpoint to resume from, or None; ConfigError if it was trained with other settings."""
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    ck = load_run_file(path, map_location=device, required=CHECKPOINT_KEYS)
    now = config_dict(cfg)
    for key, value in now.items():
        was = ck["config"].get(key, LEGACY_DEFAULTS.get(key))
        if key not in RESUMABLE_CHANGES and was != value:
            raise ConfigError(f"{path}: was trained with {key}={was!r}, not {value!r}; use "
                              f"another --out or --no-resume to start over")
    return ck


def check_same_data(saved: object, now: str, out: Path) -> None:
    """A resume continues on the data the run started with (vid2reid.store.data_hash)."""
    if saved is None:
        log.warning("%s: this run recorded no hash of its training data (an older vid2reid), so "
                    "the resume cannot check that --data is the same", out)
    elif saved != now:
        raise ConfigError(f"{out / CHECKPOINT}: was trained on other data (training walks hash "
                          f"{saved}, this --data gives {now}); use the same --data, another "
                          f"--out, or --no-resume to start over")


def finish(out: Path, model: torch.nn.Module, cfg: TrainConfig, num_joints: int, layout: str,
           epochs_done: int, latest: Path | None = None) -> None:
    """Write model.pt; name the run in ``latest``/LATEST (the parent when it is a folder of
    runs, see vid2reid.safepath.runs_folder; None: nowhere)."""
    save_run_file(out / MODEL, {"model": model.state_dict(), "config": config_dict(cfg),
                                "num_joints": num_joints, "layout": layout,
                                "epochs_done": epochs_done})
    if latest is not None:
        atomic_write_bytes(latest / "LATEST", (out.name + "\n").encode())


RUN_SCRATCH = ("train.log", "config.json", "log.jsonl")  # what a run writes before a checkpoint


@contextlib.contextmanager
def run_folder(out: Path, force: bool = False) -> Iterator[Path]:
    """Claim ``out`` for a run (refusing a folder that is not a run unless ``force``; locked
    against a second writer, vid2reid.locks) and log to its train.log. A run that fails before
    finishing an epoch in a folder it created removes what it wrote and the folder; nothing
    else is ever deleted."""
    claim = claim_output(out, safepath.RUN, force)
    failed = True
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    pkg_log = logging.getLogger("vid2reid")
    pkg_log.addHandler(handler)
    if pkg_log.level == logging.NOTSET or pkg_log.level > logging.INFO:
        pkg_log.setLevel(logging.INFO)
    try:
        yield out
        failed = False
    finally:
        pkg_log.removeHandler(handler)
        handler.close()
        claim.release(failed=failed,
                      scratch=() if (out / CHECKPOINT).exists() else RUN_SCRATCH)


def unfinished_run(runs_dir: Path, cfg: TrainConfig, data: list[str]) -> Path | None:
    """The newest run in ``runs_dir`` that stopped before its last epoch with these settings and
    data: re-running the same ``vid2reid train`` without --out continues it."""
    if not runs_dir.is_dir():
        return None
    now = {k: v for k, v in config_dict(cfg).items() if k not in RESUMABLE_CHANGES}
    for run in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if (run / MODEL).is_file() or not (run / CHECKPOINT).is_file():
            continue
        try:
            info = json.loads((run / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict):
            continue
        same = all(info.get(k, LEGACY_DEFAULTS.get(k)) == v for k, v in now.items())
        if same and info.get("data_stores", [info.get("data")]) == data:
            return run
    return None


def default_run_dir(runs_dir: Path, cfg: TrainConfig, data: list, resume: bool = True) -> Path:
    """Where ``vid2reid train`` without --out writes: the unfinished run of the same settings and
    data when there is one (so that re-running the command resumes it), else a new
    ``runs_dir/<date-time>``."""
    stores = [str(Path(d).resolve()) for d in data]
    found = unfinished_run(runs_dir, cfg, stores) if resume else None
    if found is not None:
        log.info("continuing the unfinished run %s (same settings and data; --no-resume starts "
                 "a new one)", found)
        return found
    return new_run_dir(runs_dir)


def new_run_dir(runs_dir: Path) -> Path:
    """``runs_dir/<date-time>``, made unique if a run of the same second exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run, n = runs_dir / stamp, 1
    while run.exists():
        n += 1
        run = runs_dir / f"{stamp}-{n}"
    return run
