"""One hitless changing a project at a time: an exclusive flock on `.hitless/lock`.

The kernel releases a flock when its holder dies, even by SIGKILL, so a lock can never be
left stale; the file records who holds it, for the message another process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from hitless.errors import ExitStatus, HitlessError


class Locked(HitlessError):
    """Another hitless process is changing this project."""

    exit_status = ExitStatus.LOCKED


class ProjectLock:
    """Hold the project's lock for the duration of a `with` block."""

    def __init__(self, state_dir: Path, command: str):
        self.path = state_dir / "lock"
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> ProjectLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise Locked(f"{self.path.parent.parent}: locked by {holder}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": self.command, "since": time.time()}).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            since = time.strftime("%H:%M:%S", time.localtime(info["since"]))
            return f"pid {info['pid']} (`hitless {info['command']}` since {since})"
        except (ValueError, KeyError, OSError):
            return "another hitless process"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
