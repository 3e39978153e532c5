"""A trained run as one deployable graph: ONNX (onnxruntime, no torch) or TorchScript.

The graph takes windows ``(N, f, J, 3)`` float32 exactly as they are cut from a store's joints
(``joints[s:s + f]`` of a walk file, in the run's joint layout: NOT root-relative) and returns
``(N, D)`` features, the same as ``Run.embedder()`` gives for those windows: the root-relative
normalisation (vid2reid.data.normalise) is inside the graph, and so is the unit length when the
run scores unit features. A walk's feature is then the mean of its non-overlapping windows'
features from frame 0 (vid2reid.run.embed's rule); docs/usage.md shows it with onnxruntime
alone. ``N`` is free (a dynamic axis); ``f`` and ``J`` are the run's.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError, RunError
from vid2reid.layouts import root_joint
from vid2reid.run.load import Run
from vid2reid.safepath import check_output_file, json_with
from vid2reid.store import atomic_write_bytes

FORMATS = ("onnx", "torchscript")
OPSET = 17


@contextlib.contextmanager
def _one_chunk(run: Run) -> Iterator[None]:
    """Methods embed in chunks of ``_CHUNK`` windows to bound memory; a traced graph would keep
    the traced batch's chunking and cut larger batches short, so while tracing the chunk is
    made larger than any batch (restored afterwards)."""
    module = importlib.import_module(run.method.build_model.__module__)
    before = getattr(module, "_CHUNK", None)
    if before is not None:
        module._CHUNK = 2**31 - 1
    try:
        yield
    finally:
        if before is not None:
            module._CHUNK = before


def export_module(run: Run):
    """The run's model wrapped as windows -> features (a torch module on the CPU)."""
    import torch

    model = run.model("cpu")
    method, layout = run.method, run.layout
    root = root_joint(layout)
    unit = run.unit_features and not method.several_layouts  # ms-clr normalises in embed

    class Exported(torch.nn.Module):
        """Raw windows (N, f, J, 3) -> features (N, D), as Run.embedder() computes them."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, windows: torch.Tensor) -> torch.Tensor:
            x = windows - windows[:, :, root:root + 1, :]
            if method.several_layouts:
                z = method.embed(self.model, x, layout=layout or None)
            else:
                z = method.embed(self.model, x)
            return torch.nn.functional.normalize(z, dim=1) if unit else z

    return Exported().eval()


SIDECAR_KEYS = ("format", "run", "f", "joints", "features")


def sidecar(out: Path | str) -> Path:
    """The settings file written next to an exported model (``model.onnx.json``)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def _is_export(path: Path) -> bool:
    """Whether ``path`` is a model ``vid2reid export`` wrote (its sidecar says so)."""
    try:
        return json_with(*SIDECAR_KEYS)(sidecar(path))
    except (OSError, ValueError):
        return False


def export_run(run: Run, fmt: str, out: Path | str, force: bool = False) -> dict:
    """Write ``run`` as ``fmt`` (onnx or torchscript) to ``out`` and a sidecar ``out.json``
    (f, joints, layout, feature size, unit length, the run); returns the sidecar's content.
    A file there that an earlier export did not write is refused unless ``force``."""
    import torch

    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    check_output_file(out, _is_export, "an exported model", force, "--out")
    check_output_file(sidecar(out), json_with(*SIDECAR_KEYS), "an exported model's settings",
                      force, "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = export_module(run)
    example = torch.zeros(2, run.f, run.num_joints, 3)
    tmp = out.with_name(f".{out.name}.tmp")
    with _one_chunk(run), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python ints, the legacy exporter's note
        dim = int(module(example).shape[1])
        if fmt == "onnx":
            try:
                import onnx  # noqa: F401  (torch's exporter writes through it)
            except ImportError:
                raise ConfigError("ONNX export needs the onnx package: pip install "
                                  "'vid2reid[export]' (or pip install onnx)") from None
            torch.onnx.export(module, (example,), str(tmp), dynamo=False,
                              input_names=["windows"], output_names=["features"],
                              dynamic_axes={"windows": {0: "n"}, "features": {0: "n"}},
                              opset_version=OPSET)
        else:
            traced = torch.jit.trace(module, (example,), check_trace=False)
            traced.save(str(tmp))
    try:
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunError(f"{out}: cannot write ({exc.strerror})") from None
    info = {"format": fmt, "run": str(run.path), "method": run.config.method, "f": run.f,
            "joints": run.num_joints, "layout": run.layout, "features": dim,
            "unit_features": bool(run.unit_features), "input": "windows (N, f, J, 3) float32 "
            "as cut from a store's joints (not root-relative)", "output": "features (N, D)",
            "walk": "mean of the features of a walk's non-overlapping f-frame windows from "
                    "frame 0"}
    atomic_write_bytes(sidecar(out), (json.dumps(info, indent=2) + "\n").encode())
    return info


def walk_windows(joints: np.ndarray, f: int) -> np.ndarray:
    """A walk's (T, J, 3) non-overlapping f-frame windows from frame 0, as the embedder cuts
    them (without normalising: the exported graph does that)."""
    n = len(joints) // f
    return np.asarray(joints[: n * f], np.float32).reshape(n, f, *joints.shape[1:])
