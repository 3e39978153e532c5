"""The run folder: what training writes and what eval, ``--init`` and other commands load.

A run folder holds ``config.json`` (every setting and what the run found: layout, windows,
threads, library versions), ``checkpoint.pt`` (after every epoch, atomically), ``model.pt``
(when training finished), ``log.jsonl`` (one line per finished epoch) and ``train.log``. The
runs directory's ``LATEST`` names its newest finished run, when the run's parent is a folder of
runs (vid2reid.safepath.runs_folder). Run files load without unpickling code
(vid2reid.runfile). A run folder is claimed and locked while training (vid2reid.locks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vid2reid.config import (LEGACY_DEFAULTS, RESUMABLE_CHANGES, TrainConfig, config_dict,
                             check_run_config, config_from_run, read_run_config,
                             validate)
from vid2reid import safepath
from vid2reid.errors import ConfigError, StoreError, Vid2ReidError
from vid2reid.locks import claim_output
from vid2reid.methods import get_method
from vid2reid.runfile import load_run_file, save_run_file
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


def load_state(model: torch.nn.Module, state: object, path: Path,
               error: type[Vid2ReidError] = StoreError) -> None:
    """``model.load_state_dict(state)``; one line naming ``path`` when the weights do not fit
    (a model.pt of another layout, a resume onto other data)."""
    try:
        model.load_state_dict(state)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["mismatch"]
        first = lines[1 if len(lines) > 1 else 0][:200]  # the first mismatch, not the heading
        raise error(f"{path}: does not fit the model its config.json describes ({first})"
                    ) from None


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


def latest_run(runs_dir: Path | str = "runs") -> Path:
    """The run named in ``runs_dir/LATEST`` (written by ``vid2reid train`` when a run finishes)."""
    marker = Path(runs_dir) / "LATEST"
    if not marker.is_file():
        raise ConfigError(f"{marker}: no latest run; train one with 'vid2reid train', pass --run, "
                          f"or score raw coordinates with --baseline raw")
    name = marker.read_text().strip()
    run = Path(runs_dir) / name
    if not name or not run.is_dir():
        raise ConfigError(f"{marker}: names run {name!r}, which does not exist; pass --run")
    return run


def progress(info: dict, run_dir: Path) -> str:
    """'' for a finished run, else e.g. 'run stopped at epoch 4 of 30' (from log.jsonl)."""
    if (run_dir / MODEL).is_file():
        return ""
    try:
        done = sum(1 for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        done = 0
    return f"run stopped at epoch {done} of {info.get('epochs', '?')}"


def load_init(model: torch.nn.Module, cfg: TrainConfig, num_joints: int, layout: str,
              device: torch.device) -> None:
    """Copy the encoder of the run ``cfg.init`` into ``model`` ("X + SimMC").

    ConfigError (one line) for a run of another layout or joint count, or an encoder that
    does not fit.
    """
    run = Path(cfg.init)
    info = read_run_config(run, "--init")
    if int(info.get("num_joints", -1)) != num_joints or str(info.get("layout", "")) != layout:
        raise ConfigError(f"--init {run}: trained on {info.get('num_joints')}-joint "
                          f"{info.get('layout') or 'unknown'!s} skeletons, this data has "
                          f"{num_joints}-joint {layout or 'unknown'} skeletons")
    handover = get_method(info.get("method", "simmc")).handover
    taker = get_method(cfg.method).load_init
    if handover is None or taker is None:
        raise ConfigError(f"--init {run}: a {info.get('method')} run cannot start a "
                          f"{cfg.method} run")
    part = handover(info)
    weights = run / MODEL if (run / MODEL).is_file() else run / CHECKPOINT
    state = load_run_file(weights, map_location=device, required=("model",))["model"]
    sub = {k[len(part.prefix):]: v for k, v in state.items() if k.startswith(part.prefix)}
    try:
        taker(model, part.part, sub)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "mismatch"
        raise ConfigError(f"--init {run}: its encoder does not fit this model ({first})") from None
    log.info("encoder initialised from %s (%s, %d tensors)", run, info.get("method"), len(sub))


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; ConfigError if CUDA is asked for but absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(device)


def load_embedder(run_dir: Path | str, device: str = "cpu", unit_features: bool | None = None
                  ) -> tuple[Callable[..., np.ndarray], dict]:
    """``(embed, config)`` for a run directory: ``embed`` maps windows (N, f, J, 3) to (N, D).

    Uses model.pt (or the last checkpoint of an unfinished run) and the method
    recorded in config.json; ``unit_features`` (None: the run's setting) says
    whether features are scaled to unit length.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not run_dir.exists():
        raise StoreError(f"{run_dir}: no such folder (--run)")
    if not cfg_path.is_file():
        raise StoreError(f"{run_dir}: not a training run (no config.json); run 'vid2reid train' "
                         f"or pass --run")
    try:
        info = check_run_config(json.loads(cfg_path.read_text(encoding="utf-8")), cfg_path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{cfg_path}: unreadable ({exc})") from None
    weights = run_dir / MODEL
    if not weights.is_file():
        weights = run_dir / CHECKPOINT
    if not weights.is_file():
        raise StoreError(f"{run_dir}: no model.pt or checkpoint.pt (training never finished an epoch)")
    cfg = config_from_run(info)
    try:
        validate(cfg)
    except ConfigError as exc:
        raise StoreError(f"{cfg_path}: {exc}") from None
    method = get_method(cfg.method)
    dev = resolve_device(device)
    num_joints, layout = int(info["num_joints"]), str(info.get("layout", ""))
    model = method.build_model(cfg, num_joints, layout).to(dev)
    state = load_run_file(weights, map_location=dev, required=("model",))
    load_state(model, state["model"], weights)
    model.eval()

    def embed(x: np.ndarray, layout_of_x: str | None = None) -> np.ndarray:
        """Windows (N, f, J, 3) -> (N, D); ``layout_of_x`` names their layout when known."""
        x = np.asarray(x, dtype=np.float32)
        if method.several_layouts:
            with torch.no_grad():
                return method.embed(model, torch.from_numpy(x).to(dev),
                                    layout=layout_of_x).cpu().numpy()
        if layout_of_x and layout and layout_of_x != layout:
            raise StoreError(f"{run_dir}: the model was trained on layout {layout!r} and cannot "
                             f"read {layout_of_x!r} (train with --method ms-clr, or convert the "
                             f"store with 'vid2reid convert')")
        if x.ndim != 4 or x.shape[2] != num_joints or x.shape[3] != 3:
            raise StoreError(f"{run_dir}: the model expects windows (N, f, {num_joints}, 3), "
                             f"got {tuple(x.shape)}")
        with torch.no_grad():
            z = method.embed(model, torch.from_numpy(x).to(dev))
            if cfg.unit_features if unit_features is None else unit_features:
                z = torch.nn.functional.normalize(z, dim=1)
            return z.cpu().numpy()

    return embed, info
