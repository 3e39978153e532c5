"""Who extracts which video: claim files, so that any number of processes share one store.

A process claims a video by creating ``OUT/.extract/claims/<stem>.claim`` with ``O_EXCL``
(atomic, also on NFS v3+ and Lustre): the one whose create succeeds extracts it, the others
move on. No shard arithmetic is needed, so every form of Slurm array (range, step, list),
torchrun's ranks and hand-started processes work alike, and slow videos balance themselves.

While a video is being extracted its holder refreshes the claim's time every
``timeout / 10`` seconds. A claim is taken over when

- its holder ran on this machine and is gone (taken over at once), or
- it has not been refreshed for ``timeout`` seconds (a holder on another machine died), or
- ``resume`` is set and it has not been refreshed for two refresh periods.

A take-over renames the stale claim aside (only one process's rename succeeds), checks that
it renamed the claim it judged, and creates its own. A finished video's claim is removed
after its marker is written; a failed video's claim is kept (marked failed) so that the
other processes of the same run do not retry it, and is taken over by the next run.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

CLAIM_DIR = "claims"
DEFAULT_TIMEOUT_S = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


class Claims:
    """The claims this process holds in ``folder``, and the heartbeat that keeps them fresh."""

    def __init__(self, folder: Path | str, owner: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 resume: bool = False):
        self.folder = Path(folder)
        self.owner = owner
        self.run = uuid.uuid4().hex  # this extraction run: its own failed claims are final
        self.timeout_s = float(timeout_s)
        self.refresh_s = max(0.05, self.timeout_s / 10)
        self.resume = resume
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._held: dict[str, str] = {}  # stem -> token
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.taken_over: list[str] = []

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.claim"

    def _content(self, token: str, status: str = "working") -> bytes:
        return json.dumps({"owner": self.owner, "host": self.host, "pid": self.pid,
                           "run": self.run, "token": token, "status": status,
                           "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()

    def _create(self, stem: str) -> bool:
        path = self.path(stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content(token))
        finally:
            os.close(fd)
        with self._lock:
            self._held[stem] = token
        return True

    def holder(self, stem: str) -> dict | None:
        """What the current claim on ``stem`` says (None: unclaimed or unreadable)."""
        try:
            info = json.loads(self.path(stem).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _stale(self, info: dict | None, age_s: float) -> bool:
        if info is not None and info.get("host") == self.host and isinstance(info.get("pid"), int):
            if info["pid"] != self.pid and not _pid_alive(info["pid"]):
                return True
            if (info["pid"] == self.pid and info.get("owner") == self.owner
                    and info.get("status") == "failed" and info.get("run") != self.run):
                return True  # failed in this task's earlier run in this process (Python API)
        limit = 2 * self.refresh_s if self.resume else self.timeout_s
        if info is None:  # being written right now, or garbage: only by age
            return age_s > max(limit, 5.0)
        return age_s > limit

    def try_claim(self, stem: str) -> bool:
        """Claim ``stem``; False when a live process holds it."""
        if self._create(stem):
            return True
        path = self.path(stem)
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return self._create(stem)  # released meanwhile
        info = self.holder(stem)
        if not self._stale(info, age):
            return False
        aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return self._create(stem)  # another process took it over first
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = None
        if info is not None and (moved or {}).get("token") != info.get("token"):
            # someone took it over between our look and our rename: give theirs back
            try:
                os.link(aside, path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        if self._create(stem):
            self.taken_over.append(stem)
            return True
        return False

    def release(self, stem: str, failed: bool = False) -> None:
        """Done with ``stem``: remove the claim, or (``failed``) keep it marked as failed and
        stop refreshing it, so that this run's other processes skip it and the next run
        retries it."""
        with self._lock:
            token = self._held.pop(stem, None)
        if token is None:
            return
        path = self.path(stem)
        if failed:
            tmp = path.with_name(f".{path.name}.{token}.tmp")
            tmp.write_bytes(self._content(token, "failed"))
            os.replace(tmp, path)
        else:
            path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.refresh_s):
            with self._lock:
                held = list(self._held)
            for stem in held:
                try:
                    os.utime(self.path(stem))
                except OSError:
                    pass

    def __enter__(self) -> "Claims":
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:  # interrupted: what this process still holds is free again
            held, self._held = list(self._held), {}
        for stem in held:
            self.path(stem).unlink(missing_ok=True)
