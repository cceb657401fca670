"""Run netapi as a local process (tests, the process runtime, benchmarks).

    from localrun import running_netapi
    with running_netapi(tmp_path, version="2.0") as app:
        urllib.request.urlopen(app.url + "/")

Equivalent command line: cd examples/netapi && NETAPI_VERSION=1.0 HITLESS_PORT=9696
NETAPI_DB=/tmp/netapi.db python3 -m netapi
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

NETAPI_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def netapi_argv(python: str = sys.executable) -> list[str]:
    """The command that runs netapi; run it with cwd=NETAPI_DIR."""
    return [python, "-m", "netapi"]


class NetapiProcess:
    """One netapi process started by `start_netapi`; stop it with `stop()` (by PID, never by name)."""

    def __init__(self, popen: subprocess.Popen, port: int, db: Path, log_path: Path, version: str) -> None:
        self.popen, self.port, self.db, self.log_path, self.version = popen, port, db, log_path, version

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, then SIGKILL: always leaves no process behind."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_healthy(host: str, port: int, timeout: float = 10.0, popen: subprocess.Popen | None = None) -> None:
    """Poll GET /healthcheck until it answers 200; RuntimeError on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None and popen.poll() is not None:
            raise RuntimeError(f"netapi exited with status {popen.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            try:
                conn.request("GET", "/healthcheck")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"netapi on {host}:{port} not healthy after {timeout:.0f} s")
        time.sleep(0.02)


def start_netapi(workdir: Path, version: str = "1.0", port: int | None = None, db: Path | None = None,
                 env: dict[str, str] | None = None, python: str = sys.executable) -> NetapiProcess:
    """Start netapi on 127.0.0.1 and wait until it is healthy. Logs go to workdir/netapi-PORT.log."""
    port = port or free_port()
    db = db or Path(workdir) / "netapi.db"
    log_path = Path(workdir) / f"netapi-{port}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NETAPI_", "HITLESS_"))}
    child_env.update({"NETAPI_VERSION": version, "HITLESS_PORT": str(port), "NETAPI_DB": str(db),
                      "NETAPI_BIND": "127.0.0.1", "PYTHONDONTWRITEBYTECODE": "1"})
    child_env.update(env or {})
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(netapi_argv(python), cwd=NETAPI_DIR, env=child_env,
                                 stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    app = NetapiProcess(popen, port, db, log_path, version)
    try:
        wait_healthy("127.0.0.1", port, popen=popen)
    except BaseException:
        app.stop()
        raise RuntimeError(f"netapi did not start: {app.log().strip()[-500:]}") from None
    return app


@contextlib.contextmanager
def running_netapi(workdir: Path, **kwargs) -> Iterator[NetapiProcess]:
    """start_netapi, and stop the process on the way out whatever happened."""
    app = start_netapi(workdir, **kwargs)
    try:
        yield app
    finally:
        app.stop()
