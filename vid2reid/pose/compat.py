"""Make mmpose 1.3.2 import beside mmcv-lite (mmcv without compiled ops) and a missing torchvision.

Some mmpose and mmdet modules import ``mmcv.ops`` at import time, which loads
the compiled extension ``mmcv._ext``; mmcv-lite has none, so ``import
mmpose.models`` fails although RTMPose, VideoPose3D and MotionBERT never call
those ops. When (and only when) ``mmcv._ext`` is missing, a placeholder module
is registered in its place whose functions raise a clear error if an op is
ever called. ``mmpose.visualization.simcc_vis`` imports torchvision, which
often does not import beside a CPU torch from PyPI; only when torchvision
cannot be imported, that one module is replaced by a placeholder.

With a full mmcv and a working torchvision nothing is touched.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types

log = logging.getLogger(__name__)

_OPS_HINT = ("this needs mmcv with compiled ops (pip install mmcv==2.1.0, built with "
             "MMCV_WITH_OPS=1); vid2reid's pose models do not use it")


def has_compiled_mmcv_ops() -> bool:
    """True when the installed mmcv has its compiled extension (full mmcv, not mmcv-lite)."""
    if "mmcv._ext" in sys.modules:
        return not getattr(sys.modules["mmcv._ext"], "_vid2reid_placeholder", False)
    if importlib.util.find_spec("mmcv") is None:
        return False
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def _missing_op(name: str):
    def op(*args, **kwargs):
        raise RuntimeError(f"mmcv op '{name}' is not available: {_OPS_HINT}")
    op.__name__ = name
    return op


def _ext_placeholder() -> types.ModuleType:
    mod = types.ModuleType("mmcv._ext")
    mod.__doc__ = "vid2reid placeholder for mmcv's compiled ops (mmcv-lite is installed)."
    mod._vid2reid_placeholder = True

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing_op(name)

    mod.__getattr__ = __getattr__  # PEP 562: hasattr(ext, 'nms') is True, calling it raises
    return mod


def _torchvision_imports() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision")
        return True
    except Exception:  # e.g. "operator torchvision::nms does not exist" with a mismatched torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False


def _simcc_vis_placeholder() -> types.ModuleType:
    mod = types.ModuleType("mmpose.visualization.simcc_vis")

    class SimCCVisualizer:  # noqa: D401 - mirrors mmpose's class name
        """Placeholder: SimCC heatmap drawing needs torchvision, which does not import here."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError("SimCCVisualizer needs torchvision, which does not import here")

    mod.SimCCVisualizer = SimCCVisualizer
    return mod


_MMPOSE_MODULES = ("mmpose.apis", "mmpose.models", "mmpose.datasets", "mmpose.codecs",
                   "mmpose.evaluation", "mmpose.engine", "mmpose.visualization")


def import_mmpose_apis() -> types.ModuleType:
    """Import ``mmpose.apis`` (and the modules mmpose's registries load) with the placeholders needed.

    The ``mmcv._ext`` placeholder is only present while mmpose is imported, so
    that afterwards ``mmengine``'s "is full mmcv installed?" check still says
    no. Raises PoseError when mmpose cannot be imported at all.
    """
    from vid2reid.errors import PoseError

    if "mmpose.apis" in sys.modules:
        return sys.modules["mmpose.apis"]
    placeholder = "mmcv._ext" not in sys.modules and not has_compiled_mmcv_ops()
    if placeholder:
        sys.modules["mmcv._ext"] = _ext_placeholder()
        log.debug("mmpose compatibility: mmcv._ext placeholder (mmcv-lite: no compiled ops)")
    if "mmpose.visualization.simcc_vis" not in sys.modules and not _torchvision_imports():
        sys.modules["mmpose.visualization.simcc_vis"] = _simcc_vis_placeholder()
        log.debug("mmpose compatibility: simcc_vis placeholder (torchvision does not import)")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation and similar noise
            for name in _MMPOSE_MODULES:
                importlib.import_module(name)
    except ImportError as exc:
        raise PoseError(f"the MMPose backend cannot import mmpose ({exc}); install the pose "
                        f"extra with 'bash scripts/setup.sh', or use --backend mediapipe") from None
    finally:
        if placeholder and getattr(sys.modules.get("mmcv._ext"), "_vid2reid_placeholder", False):
            del sys.modules["mmcv._ext"]
    return sys.modules["mmpose.apis"]
