"""A trained run, opened once: what every command that uses a run reads (eval, match, index,
group, report, ``train --init``).

``open_run`` accepts a run folder, a folder of runs (the run its ``LATEST`` names, else its
newest finished run) or a ``LATEST`` file, checks ``config.json`` field by field and picks the
weights by one rule: ``model.pt`` when training finished, else the last ``checkpoint.pt``
(a run stopped at epoch N). Every problem is one :class:`~vid2reid.errors.RunError` whose
message names the file and, for a setting, the field; it reads the same whichever command
opened the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from vid2reid.config import TrainConfig, check_run_config, config_from_run
from vid2reid.errors import ConfigError, RunError, StoreError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vid2reid.methods.base import Method
    from vid2reid.run.embed import Embedder, Walks

MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LATEST = "LATEST"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Run:
    """A run folder written by ``vid2reid train``, checked and typed.

    ``info`` is config.json as written (settings plus what training found: layout, joints,
    threads, versions); ``config`` the typed settings (legacy defaults filled in for older
    runs); ``weights`` the file the model is read from.
    """

    path: Path
    info: dict = field(repr=False)
    config: TrainConfig = field(repr=False)
    weights: Path
    finished: bool
    epochs_done: int
    unit_features_override: bool | None = None
    _embedders: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def f(self) -> int:
        """Frames per window, as trained."""
        return self.config.f

    @property
    def layout(self) -> str:
        """The joint layout the run was trained on ('' when unrecorded)."""
        return str(self.info.get("layout", ""))

    @property
    def num_joints(self) -> int:
        return int(self.info["num_joints"])

    @property
    def method(self) -> Method:
        from vid2reid.methods import get_method

        return get_method(self.config.method)

    @property
    def any_layout(self) -> bool:
        """True for methods that read several joint layouts (MS-CLR)."""
        return bool(self.method.several_layouts)

    @property
    def unit_features(self) -> bool:
        """Whether features are scaled to unit length (the run's setting unless overridden)."""
        if self.unit_features_override is not None:
            return self.unit_features_override
        return self.config.unit_features

    @property
    def stopped(self) -> str:
        """'' for a finished run, else e.g. 'run stopped at epoch 4 of 30'."""
        if self.finished:
            return ""
        return f"run stopped at epoch {self.epochs_done} of {self.config.epochs}"

    @cached_property
    def identity(self) -> str:
        """SHA-256 of the weights file and config.json: which model made a feature."""
        h = hashlib.sha256()
        h.update(_sha256_file(self.weights).encode())
        h.update(_sha256_file(self.path / CONFIG).encode())
        if self.unit_features_override is not None:
            h.update(f"unit_features={self.unit_features_override}".encode())
        return h.hexdigest()

    def check_layout(self, layout: str, num_joints: int, where: str) -> None:
        """StoreError naming ``where`` when its skeletons are not in the layout the run reads."""
        if self.any_layout:
            return
        if (layout and self.layout and layout != self.layout) or num_joints != self.num_joints:
            raise StoreError(f"{where}: skeletons in layout {layout or 'unknown'} "
                           f"({num_joints} joints), but run {self.path} was trained on "
                           f"{self.layout or 'unknown'} ({self.num_joints} joints); use a run "
                           f"of that layout, or 'vid2reid convert' the store")

    def state_dict(self, device: str | torch.device = "cpu") -> dict:
        """The model's tensors from the weights file (no code is unpickled)."""
        from vid2reid.runfile import load_run_file

        return load_run_file(self.weights, map_location=device, required=("model",))["model"]

    def model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained model on ``device``, in eval mode."""
        from vid2reid.runfile import load_state

        model = self.method.build_model(self.config, self.num_joints, self.layout).to(device)
        load_state(model, self.state_dict(device), self.weights, RunError)
        check_finite_parameters(model, self.weights)
        model.eval()
        return model

    def embedder(self, device: str = "cpu") -> Embedder:
        """The one way walks are turned into features with this run (vid2reid.run.embed);
        the model is loaded once per device."""
        from vid2reid.device import resolve_device

        dev = resolve_device(device)
        if str(dev) not in self._embedders:
            self._embedders[str(dev)] = _embedder_of(self, self.model(dev), dev)
        return self._embedders[str(dev)]

    def walks(self, store: Path | str, condition: str | None = None,
              split: str | None = None) -> Walks:
        """Every (selected) walk of a store with its features, paths and manifest rows."""
        return self.embedder().store(store, condition, split)

    def embed(self, data: Path | str | np.ndarray, level: str = "sequence",
              layout: str = "") -> np.ndarray:
        """Features of a store or of joints.

        - a store folder: one row per walk (sequence level, sorted by walk key) or per window
          (``level="window"``);
        - an array (T, J, 3) of raw joints: one walk, (1, D) (or its windows' features);
        - an array (N, f, J, 3) of normalised windows (as ``vid2reid.data.make_windows``
          cuts them): (N, D).
        """
        import numpy as np

        from vid2reid.store import Record

        if isinstance(data, (str, Path)):
            walks = self.walks(data)
            return walks.features if level == "sequence" else walks.window_features
        x = np.asarray(data, np.float32)
        if x.ndim == 4:
            return self.embedder().windows(x, layout)
        if x.ndim != 3 or x.shape[2] != 3:
            raise StoreError(f"joints must be (T, J, 3) for one walk or (N, f, J, 3) windows, "
                           f"got {tuple(x.shape)}")
        self.check_layout(layout, x.shape[1], "array")
        rec = Record("", "", "", "", "array", len(x), layout or self.layout)
        walks = self.embedder().walks([rec], [x], keys=["array"], store="array")
        if not len(walks):
            raise StoreError(f"array: {len(x)} frames, shorter than the run's window f={self.f}")
        return walks.features if level == "sequence" else walks.window_features


def _embedder_of(run: Run, model: torch.nn.Module, device: torch.device) -> Embedder:
    """``run``'s model on ``device`` as an Embedder (see Run.embedder)."""
    import numpy as np
    import torch

    from vid2reid.run.embed import Embedder

    method, unit = run.method, run.unit_features

    def fn(x: np.ndarray, layout: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if method.several_layouts:
            with torch.no_grad():
                return method.embed(model, torch.from_numpy(x).to(device),
                                    layout=layout or None).cpu().numpy()
        if layout and run.layout and layout != run.layout:
            raise StoreError(f"{run.path}: the model was trained on layout {run.layout!r} and "
                             f"cannot read {layout!r} (train with --method ms-clr, or convert "
                             f"the store with 'vid2reid convert')")
        if x.ndim != 4 or x.shape[2] != run.num_joints or x.shape[3] != 3:
            raise StoreError(f"{run.path}: the model expects windows (N, f, {run.num_joints}, "
                             f"3), got {tuple(x.shape)}")
        with torch.no_grad():
            z = method.embed(model, torch.from_numpy(x).to(device))
            if unit:
                z = torch.nn.functional.normalize(z, dim=1)
            return z.cpu().numpy()

    desc = f"run {run.path}" + (f" ({run.stopped})" if run.stopped else "")
    return Embedder(run.f, fn, desc, run.check_layout)


def check_finite_parameters(model: torch.nn.Module, path: Path) -> None:
    """RunError naming ``path`` and the first trained parameter holding NaN or an infinity: a
    diverged run (``train --lr`` too high) gives features that rank like anything else, so no
    command may use it. Buffers (e.g. attention masks) may hold -inf by design."""
    import torch

    for name, value in model.named_parameters():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise RunError(f"{path}: weight {name!r} holds NaN or infinite values (training "
                           f"diverged); this run cannot be used: train again with a lower --lr")


def find_run(path: Path | str | None = None, runs_dir: Path | str = "runs") -> Path:
    """The run folder ``path`` names: a run, a folder of runs (its ``LATEST``, else its newest
    finished run), or a ``LATEST`` file; ``None``: the latest run in ``runs_dir``."""
    p = Path(runs_dir) if path is None else Path(path)
    if p.is_file() and p.name == LATEST:
        return _named_by(p)
    if not p.exists():
        if path is None:
            raise RunError(f"{p / LATEST}: no latest run; train one with 'vid2reid train' or "
                           f"pass --run")
        raise RunError(f"{p}: no such run folder")
    if not p.is_dir():
        raise RunError(f"{p}: not a run folder (a file; pass the folder 'vid2reid train' wrote)")
    if (p / CONFIG).is_file():
        return p
    if (p / LATEST).is_file():
        return _named_by(p / LATEST)
    finished = sorted((r for r in p.iterdir() if r.is_dir() and (r / MODEL).is_file()
                       and (r / CONFIG).is_file()), key=lambda r: (r.stat().st_mtime, r.name))
    if finished:
        return finished[-1]
    raise RunError(f"{p}: not a training run (no {CONFIG}) and no finished run in it; run "
                   f"'vid2reid train' or pass --run")


def _named_by(marker: Path) -> Path:
    try:
        name = marker.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        raise RunError(f"{marker}: unreadable ({exc.strerror})") from None
    run = marker.parent / name
    if not name or "/" in name or "\\" in name or name in (".", "..") or not run.is_dir():
        raise RunError(f"{marker}: names run {name[:80]!r}, which does not exist; pass --run")
    return run


def open_run(path: Path | str | None = None, runs_dir: Path | str = "runs",
             unit_features: bool | None = None, option: str = "--run") -> Run:
    """Open and check a run (see :func:`find_run` for what ``path`` may be).

    ``unit_features`` (None: the run's setting) overrides whether features are scaled to unit
    length, for ablations; it changes the run's ``identity``. Errors start with ``option``
    (the command-line option that named the run), then the file and the field.
    """
    try:
        return _open(path, runs_dir, unit_features)
    except RunError as exc:
        raise RunError(f"{option} {exc}") from None


def _open(path: Path | str | None, runs_dir: Path | str, unit_features: bool | None) -> Run:
    run = find_run(path, runs_dir)
    cfg_path = run / CONFIG
    if not cfg_path.is_file():
        raise RunError(f"{run}: not a training run (no {CONFIG}); run 'vid2reid train' or pass "
                       f"--run")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{cfg_path}: unreadable ({exc})") from None
    except OSError as exc:
        raise RunError(f"{cfg_path}: unreadable ({exc.strerror})") from None
    info = check_run_config(raw, cfg_path)
    try:
        cfg = config_from_run(info)
        from vid2reid.methods import validate

        validate(cfg)
    except (ConfigError, TypeError) as exc:
        raise RunError(f"{cfg_path}: {exc}") from None
    finished = (run / MODEL).is_file()
    weights = run / MODEL if finished else run / CHECKPOINT
    if not weights.is_file():
        raise RunError(f"{run}: no {MODEL} or {CHECKPOINT} (training never finished an epoch)")
    return Run(run, info, cfg, weights, finished, _epochs_done(run, cfg, finished),
               unit_features)


def _epochs_done(run: Path, cfg: TrainConfig, finished: bool) -> int:
    """Epochs trained: the lines of log.jsonl (each a finished epoch)."""
    try:
        lines = (run / "log.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return cfg.epochs if finished else 0
    return sum(1 for line in lines if line.strip())


def load_init(model: torch.nn.Module, cfg: TrainConfig, num_joints: int, layout: str,
              device: torch.device) -> None:
    """Copy the encoder of the run ``cfg.init`` into ``model`` ("X + SimMC").

    ConfigError (one line) for a run of another layout or joint count, or an encoder that
    does not fit.
    """
    import logging

    from vid2reid.methods import get_method

    run = open_run(cfg.init, option="--init")
    if run.num_joints != num_joints or run.layout != layout:
        raise ConfigError(f"--init {run.path}: trained on {run.num_joints}-joint "
                          f"{run.layout or 'unknown'} skeletons, this data has "
                          f"{num_joints}-joint {layout or 'unknown'} skeletons")
    handover, taker = run.method.handover, get_method(cfg.method).load_init
    if handover is None or taker is None:
        raise ConfigError(f"--init {run.path}: a {run.config.method} run cannot start a "
                          f"{cfg.method} run")
    part = handover(run.info)
    state = run.state_dict(device)
    sub = {k[len(part.prefix):]: v for k, v in state.items() if k.startswith(part.prefix)}
    try:
        taker(model, part.part, sub)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "mismatch"
        raise ConfigError(f"--init {run.path}: its encoder does not fit this model ({first})"
                          ) from None
    try:
        check_finite_parameters(model, run.weights)  # what it handed over
    except RunError as exc:
        raise RunError(f"--init {exc}") from None
    logging.getLogger(__name__).info("encoder initialised from %s (%s, %d tensors)", run.path,
                                     run.config.method, len(sub))
