"""One writer per output folder: an exclusive lock file that names its holder.

Every command that writes a run, a store or a page (``train``, ``import``, ``convert``,
``eval``/``match``/``group --report``) takes :func:`claim_output` on its output folder first
(``extract`` checks its folder with the same rule). It

1. refuses a folder of another kind unless ``--force`` (:func:`vid2reid.safepath.check_output_folder`);
2. creates the folder if needed (and remembers that it did);
3. takes an exclusive ``fcntl.flock`` lock on ``FOLDER/.vid2reid.lock`` without waiting.
   A second writer gets a one-line :class:`LockError` naming the holder (pid, host, command,
   start time), which the holder wrote into the file. The kernel drops the lock when the
   holder exits, so a process that died (even by SIGKILL) never blocks the next one;
4. records the folder's kind in the lock file, which stays after the lock is released, so
   that the next command knows who wrote the folder.

Where ``fcntl`` does not exist (Windows) the folder is checked but not locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from vid2reid.errors import LockError, StoreError
from vid2reid.safepath import LOCK_NAME, check_output_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _holder(path: Path) -> str:
    """The holder of a lock, in words, from what it wrote into the lock file (a holder that has
    just taken the lock writes it a moment later: wait up to half a second for it)."""
    info = None
    for _ in range(10):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return (f"pid {info.get('pid')} on {info.get('host', '?')}, since {info.get('started', '?')}"
            f": {str(info.get('command', '?'))[:160]}")


def _command() -> str:
    return " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else "python"


class OutputClaim:
    """An output folder this process may write: checked, created if needed, and locked.

    ``previous``: the folder's kind before this command (``missing``, ``empty``, ``run``, ...;
    see :func:`vid2reid.safepath.folder_kind`); ``created``: whether this command made it.
    Use as a context manager, or call :meth:`release` yourself.
    """

    def __init__(self, out: Path | str, kind: str, force: bool = False, option: str = "--out"):
        self.path, self.kind = Path(out), kind
        self.previous = check_output_folder(self.path, kind, force, option)
        self.created = False
        self._new_parents = [d for d in self.path.parents if not d.exists()]  # e.g. runs/
        try:
            self.path.mkdir(parents=True)
            self.created = True
        except FileExistsError:
            pass
        self._fd: int | None = None
        self._lock()

    def _lock(self) -> None:
        path = self.path / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the lock file ({exc.strerror or exc})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise LockError(f"{self.path}: being written by {_holder(path)}; wait for it to "
                                f"finish or choose another folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "kind": self.kind}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self, failed: bool = False, scratch: tuple[str, ...] = ()) -> None:
        """Unlock. After a failure in a folder this command created, the ``scratch`` files it
        wrote are removed, and the folder too when nothing else is left in it (and the parent
        folders it made, such as runs/, while empty)."""
        if self._fd is None:
            return
        try:
            if failed and self.created:
                for name in scratch:
                    (self.path / name).unlink(missing_ok=True)
                if {p.name for p in self.path.iterdir()} == {LOCK_NAME}:
                    (self.path / LOCK_NAME).unlink(missing_ok=True)  # still locked: no one waits
                    try:
                        self.path.rmdir()
                        for parent in self._new_parents:  # the folders made for it (runs/)
                            parent.rmdir()  # innermost first; stops at one not empty
                    except OSError:
                        pass  # someone else created a file meanwhile: leave it
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> "OutputClaim":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release(failed=exc_type is not None)


def claim_output(out: Path | str, kind: str, force: bool = False,
                 option: str = "--out") -> OutputClaim:
    """Check, create and lock the output folder ``out`` for a command that writes ``kind``."""
    return OutputClaim(out, kind, force, option)
