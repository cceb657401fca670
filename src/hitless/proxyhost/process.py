"""The proxy on the process runtime: run by `hitless.proxyhost.supervisor`, found by its record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hitless.errors import OperationFailed
from hitless.proxyhost.base import Hosted
from hitless.proxyhost.supervisor import RECORD, read_record
from hitless.runtime.process_shim import boot_id, proc_stat, write_atomic

LAUNCH_TIMEOUT = 30.0


def _is_ours(pid: object, start_time: object, boot: object) -> bool:
    """True when `pid` is alive and is the process that had this start time in this boot."""
    if not isinstance(pid, int) or pid <= 0 or start_time is None or (boot and boot != boot_id()):
        return False
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in "ZX" and stat[2] == start_time


def _signal(record: dict, sig: int) -> bool:
    """Signal the supervisor a record names, through a pidfd, when it is still that process."""
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        # Pinned first, checked second: a pid reused meanwhile fails the check.
        if not _is_ours(pid, record.get("start_time"), record.get("boot_id")):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


class ProcessProxyHost:
    """A detached supervisor per project, its record in the state dir, its log in proxy.log."""

    kind = "process"

    def __init__(self, state_dir: Path, socket_path: Path) -> None:
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.log_path = state_dir / "proxy.log"

    def _live_record(self) -> dict | None:
        record = read_record(str(self.state_dir))
        if record is None or not _is_ours(record.get("pid"), record.get("start_time"), record.get("boot_id")):
            return None
        return record

    def inspect(self) -> Hosted:
        """The supervisor that runs now, and the proxy it runs (its pid only while alive)."""
        record = self._live_record()
        if record is None:
            # A record left behind: its supervisor died (SIGKILL, a reboot), like an exited container.
            left = read_record(str(self.state_dir))
            return Hosted("process", None, None, "exited" if left else "missing", None,
                          int((left or {}).get("restarts") or 0), (left or {}).get("version"), None)
        proxy = record.get("proxy_pid")
        alive = _is_ours(proxy, record.get("proxy_start_time"), record.get("boot_id"))
        return Hosted("process", str(record["pid"]), "supervisor", "running" if alive else "restarting",
                      proxy if alive else None, int(record.get("restarts") or 0), record.get("version"),
                      record.get("started"))

    def launch(self, handover: bool) -> None:
        """Start a supervisor (a running one restarts its proxy by itself: then nothing to do)."""
        if not handover and self._live_record() is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "hitless.proxyhost.supervisor", "--state-dir", str(self.state_dir),
                "--admin-socket", str(self.socket_path), *(["--handover"] if handover else [])]
        with open(self.log_path, "ab") as log:
            # The supervisor forks away and answers once the proxy is spawned; its output (and
            # the proxy's) goes to the log, never to a pipe this command would wait on.
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=LAUNCH_TIMEOUT)
        if done.returncode != 0:
            raise OperationFailed(f"the proxy supervisor did not start; see {self.log_path}")

    def retire(self) -> str | None:
        """Nothing to change: the new supervisor's record supersedes this one, which then never
        restarts its proxy. The record is kept to be put back if the hand-over fails."""
        record = self._live_record()
        return json.dumps(record) if record is not None else None

    def unretire(self, token: str | None) -> None:
        """Stop the supervisor a failed hand-over started and put the old record back."""
        current = self._live_record()
        old = json.loads(token) if token else None
        if current is not None and (old is None or current.get("pid") != old.get("pid")):
            _signal(current, signal.SIGTERM)
            self._wait_gone(current, 30.0)
        if old is not None and _is_ours(old.get("pid"), old.get("start_time"), old.get("boot_id")):
            write_atomic(str(self.state_dir / RECORD), json.dumps(old, indent=1) + "\n")

    def remove_retired(self, wait: float) -> tuple[str, ...]:
        """A superseded supervisor exits by itself once its proxy has drained: nothing to remove."""
        return ()

    def stop(self, timeout: float) -> bool:
        """SIGTERM to the supervisor (forwarded: the proxy drains); wait until both are gone."""
        record = self._live_record()
        if record is None or not _signal(record, signal.SIGTERM):
            return False
        if not self._wait_gone(record, timeout):
            raise OperationFailed(f"the proxy supervisor (pid {record['pid']}) did not exit within "
                                  f"{timeout:.0f}s of SIGTERM; see {self.log_path}")
        return True

    @staticmethod
    def _wait_gone(record: dict, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _is_ours(record.get("pid"), record.get("start_time"), record.get("boot_id")):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def logs_hint(self) -> str:
        """Where the proxy and its supervisor write."""
        return str(self.log_path)
