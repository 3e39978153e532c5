"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; when
that is a weakref callback or a ``__del__`` (e.g. the threading module's
bookkeeping as a finished frame-decoding thread is freed), the exception is
printed as "Exception ignored" and the program runs on. The command line
installs :func:`on_sigint`, which also remembers the interrupt; long loops call
:func:`check` so that a swallowed Ctrl-C still stops the work at the next step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_pending = threading.Event()


def on_sigint(signum: int, frame: object) -> None:
    """SIGINT handler: remember the interrupt, then raise KeyboardInterrupt as Python does."""
    _pending.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived whose exception was swallowed."""
    if _pending.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def remembered() -> Iterator[None]:
    """Install :func:`on_sigint` for the block (main thread, default handler only)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # SIGINT ignored or handled by someone else: leave it so
        return
    _pending.clear()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _pending.clear()
