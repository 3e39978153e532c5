"""MMPose model weights and configs: which config file, which checkpoint, loaded safely.

Used by the 2D/3D pose models (vid2reid.pose.mmpose_backend) and RTMDet person boxes
(vid2reid.pose.boxes). Weights: a local file, else the config's URL downloaded into torch's hub
cache on first use; offline without a cached file, PoseError names the file and the option.
Checkpoints are unpickled with ``weights_only=True`` and a short allow-list
(:func:`openmmlab_safe_globals`), so a booby-trapped file is refused, not run.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import urllib.error
import urllib.parse
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError, PoseError

log = logging.getLogger(__name__)

# the repository's pose_configs/ (an installed wheel has none: point VID2REID_POSE_CONFIGS at a copy)
CONFIG_DIR = Path(os.environ.get("VID2REID_POSE_CONFIGS", Path(__file__).resolve().parents[2] / "pose_configs"))


def resolve_config(name: str) -> Path:
    """A model name from ``pose_configs/`` (e.g. ``videopose3d``) or a path to a config file."""
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return path
    cand = CONFIG_DIR / f"{name}.py"
    if cand.is_file():
        return cand
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.py"))
    raise ConfigError(f"unknown pose model {name!r}: not a config file and not one of "
                      f"{', '.join(known) or '(pose_configs/ is missing)'}")


def _history_buffer_method(obj: object, name: str) -> object:
    """Stands in for ``getattr`` in OpenMMLab checkpoints: a pickled mmengine ``HistoryBuffer``
    names its statistics methods as ``getattr(HistoryBuffer, 'mean')``; nothing else is served."""
    from mmengine.logging import HistoryBuffer

    if (obj is HistoryBuffer or type(obj) is HistoryBuffer) and name in ("min", "max", "current",
                                                                         "mean"):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed")


def openmmlab_safe_globals() -> list:
    """What ``torch.load(weights_only=True)`` must also accept for OpenMMLab checkpoints.

    Published checkpoints hold ``state_dict`` and ``meta``; meta's ``dataset_meta``
    has numpy arrays (uint8 colours, float32 sigmas and joint weights) and, in
    older (mmcv 1.x) files, ``hook_msgs`` may hold a numpy float scalar. Checkpoints
    straight from mmengine's CheckpointHook add ``message_hub`` (mmengine
    ``HistoryBuffer`` objects with float/int arrays, whose statistics methods are
    pickled as ``getattr(HistoryBuffer, name)``), numpy scalars, optimizer and scheduler
    state. Allowed: numpy arrays and scalars of bool/int/uint/float dtypes,
    ``HistoryBuffer`` (a plain container: loading sets its fields, runs none of its
    code) and a ``getattr`` that serves only a HistoryBuffer's four statistics
    methods. See docs/run-files.md.
    """
    from vid2reid.runfile import named_global, numpy_globals

    entries = numpy_globals("?" + np.typecodes["AllInteger"] + np.typecodes["Float"], scalars=True)
    try:
        from mmengine.logging import HistoryBuffer
    except ImportError:
        return entries
    return entries + [HistoryBuffer, named_global(_history_buffer_method, "builtins.getattr")]


def _download(url: str) -> Path:
    """The file at ``url`` in torch's hub cache (where mmengine keeps its downloads), fetched
    on first use."""
    import torch.hub

    name = os.path.basename(urllib.parse.urlparse(url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, cached)
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    return cached


def read_checkpoint(source: str) -> dict:
    """An OpenMMLab checkpoint (local file or http(s) URL), unpickled with ``weights_only=True``
    and :func:`openmmlab_safe_globals`: a file that asks for anything else is refused
    (PoseError naming it) before any of it runs."""
    from vid2reid.runfile import refusal_reason, safe_torch_load

    if "://" in source and not source.startswith(("http://", "https://")):
        raise PoseError(f"{source}: only local checkpoint files and http(s) URLs are supported")
    path = _download(source) if "://" in source else Path(source)
    if not path.is_file():
        raise PoseError(f"{source}: checkpoint file does not exist")
    try:
        ckpt = safe_torch_load(path, "cpu", openmmlab_safe_globals())
    except OSError as exc:
        raise PoseError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    except Exception as exc:  # the restricted unpickler's refusals, truncated or foreign files
        raise PoseError(f"{path}: not an OpenMMLab checkpoint, or written by an unsafe tool "
                        f"({refusal_reason(exc)})") from None
    if not isinstance(ckpt, dict):
        raise PoseError(f"{path}: not an OpenMMLab checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def _apply_checkpoint(model, ckpt: dict) -> None:
    """What mmengine's load_checkpoint does after reading: the state_dict (``module.`` prefix
    dropped) into the model, non-strict."""
    from collections import OrderedDict

    from mmengine.runner import load_state_dict

    state = ckpt.get("state_dict", ckpt)
    metadata = getattr(state, "_metadata", OrderedDict())
    state = OrderedDict((re.sub(r"^module\.", "", k), v) for k, v in state.items())
    state._metadata = metadata
    load_state_dict(model, state, strict=False, logger="silent")


def _is_network_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def load_weights(model, config_path: Path, checkpoint: str | None, option: str,
                 allow_random_weights: bool) -> str | None:
    """Load a local checkpoint, else the config's ``load_from`` URL (downloaded into torch's hub
    cache, as mmengine does), else keep random weights when allowed. Returns the weight source.

    Checkpoints are read with :func:`read_checkpoint` (no code in the file runs)."""
    from mmengine.config import Config

    source = checkpoint
    if source is not None:
        if not Path(source).is_file():
            raise PoseError(f"{source}: checkpoint given with {option} does not exist")
    elif not allow_random_weights:
        source = Config.fromfile(str(config_path)).get("load_from")
        if not source:
            raise PoseError(f"{config_path}: no checkpoint URL (load_from) in the config; pass {option} PATH")
    if source is None:
        log.warning("%s: using RANDOM weights (--allow-random-weights): results are meaningless",
                    config_path.stem)
        return None
    try:
        ckpt = read_checkpoint(str(source))
        _apply_checkpoint(model, ckpt)
    except PoseError:
        raise
    except Exception as exc:
        name = str(source).rsplit("/", 1)[-1]
        if _is_network_error(exc):
            raise PoseError(f"cannot download the {config_path.stem} checkpoint {name} from "
                            f"{source} (offline?): download it on a machine with internet "
                            f"and pass {option} PATH, or use --backend mediapipe, which "
                            f"needs no download") from None
        raise PoseError(f"{source}: cannot load checkpoint for {config_path.stem} ({exc})") from None
    meta = ckpt.get("meta") or {}
    if isinstance(meta, dict) and "dataset_meta" in meta and hasattr(model, "dataset_meta"):
        model.dataset_meta = meta["dataset_meta"]
    return str(source)
