"""Restart the local Docker engine the way a host reboot or a package upgrade does."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import docker

from hitless.runtime.process_shim import proc_stat
from tests.support.skips import skip_or_fail
from tests.support.waiting import wait_until

PIDFILE = Path("/var/run/docker.pid")
LOG = Path("/var/log/dockerd.log")


def restart_engine(timeout: float = 90.0) -> None:
    """Stop dockerd (its containers stop with it) and start it again with the same arguments.

    Under systemd, `systemctl restart docker`; otherwise the dockerd named by its pid file is
    sent SIGTERM and started again, detached, with its own command line. Returns once the new
    engine answers.
    """
    if _under_systemd():
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=timeout)
    else:
        try:
            pid = int(PIDFILE.read_text())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except (OSError, ValueError) as exc:
            skip_or_fail(f"no local dockerd to restart: {exc}")
        assert os.path.basename(argv[0]) == b"dockerd", argv
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: _gone(pid), timeout, interval=0.2, message=f"dockerd {pid} stopped")
        with LOG.open("ab") as log:
            _started.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True))
    wait_until(_answers, timeout, interval=0.2, message="dockerd answering again")


# The engines started here: a test that restarts the engine again reaps the one it stops.
_started: list[subprocess.Popen[bytes]] = []


def _gone(pid: int) -> bool:
    for proc in _started:
        if proc.pid == pid:
            return proc.poll() is not None
    state = proc_stat(pid)
    return state is None or state[0] in "ZX"


def _under_systemd() -> bool:
    if not Path("/run/systemd/system").is_dir():
        return False
    return subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False).returncode == 0


def _answers() -> bool:
    try:
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # not up yet, whatever the client makes of it
        return False
