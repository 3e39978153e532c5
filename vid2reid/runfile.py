"""Run files (``checkpoint.pt``, ``model.pt``) that load without running anything from the file.

A run directory is something people share, so opening one must never run
code its author put there. ``torch.load(weights_only=False)`` unpickles
arbitrary objects, and a pickle can name any function to call (``os.system``
included). These helpers keep to PyTorch's restricted unpickler
(``weights_only=True``):

- :func:`save_run_file` writes only what that unpickler accepts with no
  extra allowances: tensors, dicts (also ``OrderedDict``), lists, tuples,
  strings, numbers (Python ints of any size, so numpy's RNG state as it is),
  booleans and None. numpy arrays become tensors and numpy scalars Python
  numbers; the file lists where the arrays were so that loading gives them
  back as numpy arrays. The file is checked by loading it that way before it
  is written (atomically).
- :func:`load_run_file` loads with ``weights_only=True``. Files written before
  this format (vid2reid 0.1.0 and earlier) hold one numpy integer array
  (``prev_labels``); for them, and only for that, numpy's array
  reconstructor, ``ndarray``, ``dtype`` and the integer dtypes are allowed.
  Anything else a file asks for is refused with a :class:`StoreError` naming
  the file, before any of it runs.

See docs/run-files.md for the allowed types and why.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from vid2reid.errors import StoreError, Vid2ReidError
from vid2reid.store import atomic_write_bytes

FORMAT = 1
HEADER = "_vid2reid_run_file"  # top-level key: {"format": FORMAT, "numpy": [key path, ...]}
_NUMPY_KINDS = "biufc"  # bool, signed, unsigned, float, complex: numpy arrays torch can hold


def _numpy_alias_names(fn: object) -> list[str]:
    """The names numpy 1.x and 2.x pickle a numpy function under (numpy.core / numpy._core)."""
    module, name = fn.__module__, fn.__qualname__  # type: ignore[attr-defined]
    names = {f"{module}.{name}"}
    for old, new in (("numpy.core.", "numpy._core."), ("numpy._core.", "numpy.core.")):
        if module.startswith(old):
            names.add(new + module[len(old):] + "." + name)
    return sorted(names)


def _supports_named_globals() -> bool:
    """``(object, "module.name")`` entries in safe_globals arrived with torch 2.6."""
    return torch.__version__ >= (2, 6)  # type: ignore[operator]


def named_global(obj: object, name: str) -> object:
    """An allow-list entry that serves ``obj`` where a pickle names ``name``."""
    return (obj, name)


def _empty_bytes(*args: object) -> bytes:
    """Stands in for ``bytes`` in pickles: protocol 2 writes ``b''`` (an empty array's data) as
    ``bytes()``; nothing else is served."""
    if args:
        raise pickle.UnpicklingError("bytes(...) with arguments is not allowed")
    return b""


def numpy_globals(dtype_codes: Iterable[str], scalars: bool = False) -> list:
    """Allow-list entries for numpy arrays (and with ``scalars``, numpy scalars) of these dtypes.

    What a pickled array needs: numpy's array reconstructor and ``ndarray``
    (an empty array of that class, then filled from bytes), ``dtype`` (called
    with a type code such as ``'i8'``) and the dtype's own class, whose state
    (byte order) is set on load. A scalar needs ``numpy.core.multiarray.scalar``
    (a dtype and its bytes). An empty array's data is pickled as ``bytes()``,
    served by a stand-in that makes only ``b''``. None of these runs code named by
    the file.
    """
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    entries: list = [np.ndarray, np.dtype, named_global(_empty_bytes, "builtins.bytes")]
    funcs = [reconstruct]
    if scalars:
        funcs.append(np.float64(0).__reduce__()[0])
    for fn in funcs:
        entries.append(fn)  # under its own name; the other numpy major version's name too:
        native = f"{fn.__module__}.{fn.__qualname__}"  # type: ignore[attr-defined]
        entries += [named_global(fn, n) for n in _numpy_alias_names(fn) if n != native]
    entries += sorted({type(np.dtype(c)) for c in dtype_codes}, key=lambda t: t.__name__)
    return entries


#: Integer arrays: what run files written before FORMAT 1 hold (``prev_labels``).
LEGACY_RUN_FILE_GLOBALS = numpy_globals(np.typecodes["AllInteger"])


@contextlib.contextmanager
def allowing(entries: Iterable) -> Iterator[None]:
    """``torch.serialization.safe_globals(entries)`` for the duration of the block.

    Plain entries are allowed under their own name; ``(obj, name)`` entries only
    where torch supports them (2.6+). Without ``safe_globals`` (torch < 2.5)
    nothing extra is allowed, so such files are refused rather than trusted.
    """
    entries = [e for e in entries if not isinstance(e, tuple) or _supports_named_globals()]
    if not entries or not hasattr(torch.serialization, "safe_globals"):
        yield
        return
    with torch.serialization.safe_globals(entries):
        yield


def safe_torch_load(source, map_location=None, allowed: Iterable = ()) -> object:
    """``torch.load(source, weights_only=True)`` with ``allowed`` added to the allow-list."""
    with allowing(allowed):
        return torch.load(source, map_location=map_location, weights_only=True)


def refusal_reason(exc: BaseException) -> str:
    """A short, one-line account of why torch's restricted unpickler refused a file."""
    msg = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", msg)
    if found:
        return f"it asks for {found.group(1)}, which is not allowed"
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
    text = found.group(1) if found else (msg.strip().splitlines() or [type(exc).__name__])[0]
    text = text.strip().rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _to_savable(value: object, path: tuple, arrays: list[list]) -> object:
    """``value`` with numpy arrays as tensors (paths noted in ``arrays``) and numpy scalars as
    Python numbers; containers are copied only where something changed."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMPY_KINDS:
            raise TypeError(f"{'/'.join(map(str, path))}: a numpy array of dtype {value.dtype} "
                            f"cannot be stored in a run file")
        arr = np.ascontiguousarray(value)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        arrays.append(list(path))
        return torch.from_numpy(arr.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        new = {k: _to_savable(v, path + (k,), arrays) for k, v in value.items()}
        if all(new[k] is value[k] for k in value):
            return value
        out = OrderedDict(new) if isinstance(value, OrderedDict) else new
        if hasattr(value, "_metadata"):  # a module state_dict's version info
            out._metadata = value._metadata  # type: ignore[union-attr]
        return out
    if isinstance(value, (list, tuple)):
        new_items = [_to_savable(v, path + (i,), arrays) for i, v in enumerate(value)]
        if all(a is b for a, b in zip(new_items, value)):
            return value
        return type(value)(new_items) if type(value) in (list, tuple) else new_items
    return value


def encode_run_file(obj: dict) -> bytes:
    """The bytes :func:`save_run_file` writes (checked to load with ``weights_only=True``)."""
    if not isinstance(obj, dict):
        raise TypeError(f"a run file holds a dict, not {type(obj).__name__}")
    if HEADER in obj:
        raise TypeError(f"{HEADER!r} is reserved in run files")
    arrays: list[list] = []
    body = _to_savable(obj, (), arrays)
    out = dict(body)  # type: ignore[call-overload]
    out[HEADER] = {"format": FORMAT, "numpy": arrays}
    buf = io.BytesIO()
    torch.save(out, buf)
    data = buf.getvalue()
    try:  # exactly the load readers do, without the legacy allowance
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TypeError(f"cannot be stored in a run file: {refusal_reason(exc)}") from None
    return data


def save_run_file(path: Path | str, obj: dict) -> None:
    """Write ``obj`` (a dict) to ``path`` atomically, in a form ``weights_only=True`` loads.

    TypeError (nothing written) if ``obj`` holds anything else than tensors, numpy
    arrays/scalars, dicts, lists, tuples, strings, numbers, booleans and None.
    """
    try:
        data = encode_run_file(obj)
    except TypeError as exc:
        raise TypeError(f"{path}: {exc}") from None
    atomic_write_bytes(Path(path), data)


def _restore_array(node: object, path: list, where: Path) -> object:
    if not path:
        if not isinstance(node, torch.Tensor):
            raise StoreError(f"{where}: not a vid2reid run file (its numpy index names a "
                             f"{type(node).__name__}, not a tensor)")
        return node.detach().cpu().numpy()
    key, rest = path[0], path[1:]
    try:
        child = node[key]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise StoreError(f"{where}: not a vid2reid run file (its numpy index does not match "
                         f"its contents)") from None
    new = _restore_array(child, rest, where)
    if isinstance(node, tuple):
        return node[:key] + (new,) + node[key + 1:]
    node[key] = new  # type: ignore[index]
    return node


def load_run_file(path: Path | str, map_location=None, required: Iterable[str] = ()) -> dict:
    """The dict in run file ``path``, loaded with ``weights_only=True``; numpy arrays come back
    as numpy arrays. StoreError (one line naming the file) when the file needs anything beyond
    plain data, or lacks a ``required`` key; nothing from a refused file runs."""
    path = Path(path)
    try:
        obj = safe_torch_load(path, map_location, LEGACY_RUN_FILE_GLOBALS)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: not a vid2reid run file, or written by an unsafe tool "
                         f"({refusal_reason(exc)})") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{path}: not a vid2reid run file (it holds a {type(obj).__name__}, "
                         f"not a dict)")
    header = obj.pop(HEADER, None)
    if header is not None:
        fmt = header.get("format") if isinstance(header, dict) else None
        if not isinstance(fmt, int) or fmt < 1:
            raise StoreError(f"{path}: not a vid2reid run file (bad format header)")
        if fmt > FORMAT:
            raise StoreError(f"{path}: written by a newer vid2reid (run-file format {fmt}; this "
                             f"version reads up to {FORMAT}); upgrade vid2reid")
        for where in header.get("numpy", []):
            if not isinstance(where, list):
                raise StoreError(f"{path}: not a vid2reid run file (bad numpy index)")
            obj = _restore_array(obj, where, path)  # type: ignore[assignment]
    missing = [k for k in required if k not in obj]
    if missing:
        raise StoreError(f"{path}: not a vid2reid run file (no {', '.join(map(repr, missing))})")
    return obj


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
