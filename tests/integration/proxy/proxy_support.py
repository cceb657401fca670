"""Helpers of the proxy's integration tests: real processes over real sockets.

Every process a test starts is stopped by its PID when the test ends, pass or fail
(see the `launch` fixture in conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hitless.proxy.admin.client import AdminClient, ProxyUnavailable
from tests.support.clients import ClientThreads
from tests.support.waiting import wait_until

HERE = Path(__file__).parent
BACKEND_APP = HERE / "backend_app.py"


class Proc:
    """A child process with its PID; stopped by PID only."""

    def __init__(self, popen: subprocess.Popen[str], name: str) -> None:
        self.popen = popen
        self.name = name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def alive(self) -> bool:
        return self.popen.poll() is None


class Backend(Proc):
    def __init__(self, popen: subprocess.Popen[str], name: str, port: int,
                 log: Path | None) -> None:
        super().__init__(popen, name)
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log = log

    def seen(self) -> list[str]:
        """Request lines the backend logged (when it read each request's head)."""
        if self.log is None or not self.log.exists():
            return []
        return self.log.read_text().splitlines()

    def set_healthy(self, healthy: bool) -> None:
        marker = Path(f"{self.log}.unhealthy")
        if healthy:
            marker.unlink(missing_ok=True)
        else:
            marker.touch()


# Worker processes of each proxy the tests start. The existing tests check what one process
# does (least-in-flight order, FIFO release across connections, per-process bounds), so one
# worker unless a test asks for more; HITLESS_TEST_PROXY_WORKERS runs them all with N.
DEFAULT_WORKERS = int(os.environ.get("HITLESS_TEST_PROXY_WORKERS", "1"))


class Proxy(Proc):
    def __init__(self, popen: subprocess.Popen[str], admin_socket: Path) -> None:
        super().__init__(popen, "proxy")
        self.admin_socket = admin_socket
        self.client = AdminClient(str(admin_socket))
        self.known_pids: set[int] = set()  # its fork server and workers, as status showed them

    def port(self, frontend: str) -> int:
        return int(self.client.frontend(frontend)["listen"].rsplit(":", 1)[1])

    def status(self) -> dict[str, Any]:
        """GET /v1/status, remembering the pids of the fork server and the workers."""
        status = self.client.status()
        self.known_pids.update(w["pid"] for w in status.get("workers", []) if w["pid"])
        if status.get("forker_pid"):
            self.known_pids.add(status["forker_pid"])
        return status

    def worker_pids(self) -> list[int]:
        """Pids of the workers serving now, by index."""
        return [w["pid"] for w in self.status()["workers"]]

    def kill_all(self) -> None:
        """SIGKILL the master, then every worker and fork server it was seen with."""
        try:
            self.status()
        except ProxyUnavailable:
            pass
        self.kill()
        for pid in self.known_pids:
            kill_pid(pid)
        for pid in self.known_pids:
            wait_gone(pid)


def _ours(pid: int) -> bool:
    """True if `pid` still runs a hitless proxy process (not a reused pid, not a zombie)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return b"hitless.proxy" in cmdline and state not in ("Z", "X")


def kill_pid(pid: int) -> None:
    """SIGKILL a proxy process by pid, if it is still one."""
    if _ours(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    wait_until(lambda: not _ours(pid), timeout, interval=0.01, message=f"proxy process {pid} gone")


class Launcher:
    """Starts backends and proxies for one test and stops them all afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []

    def backend(self, name: str, port: int = 0, log: bool = True) -> Backend:
        log_path = self.tmp / f"{name}.log" if log else None
        cmd = [sys.executable, str(BACKEND_APP), "--name", name, "--port", str(port)]
        if log_path:
            cmd += ["--log", str(log_path)]
        popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = popen.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            popen.kill()
            raise RuntimeError(f"backend {name} did not start: {line!r}")
        backend = Backend(popen, name, int(line.split()[1]), log_path)
        self.procs.append(backend)
        return backend

    def proxy(self, frontends: list[dict[str, Any]] | None = None, *, takeover: bool = False,
              admin_socket: Path | None = None, extra: list[str] | None = None,
              workers: int | None = None, state_file: Path | None = None) -> Proxy:
        admin_socket = admin_socket or self.tmp / "proxy.sock"
        cmd = [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(admin_socket),
               "--log-level", "warning", "--workers", str(workers or DEFAULT_WORKERS)]
        if state_file is not None:
            cmd += ["--state-file", str(state_file)]
        if frontends:
            import json

            config = self.tmp / f"frontends-{len(self.procs)}.json"
            config.write_text(json.dumps({"frontends": frontends}))
            cmd += ["--config", str(config)]
        if takeover:
            cmd.append("--takeover")
        cmd += extra or []
        popen = subprocess.Popen(cmd, text=True)
        proxy = Proxy(popen, admin_socket)
        self.procs.append(proxy)

        def answering() -> bool:
            assert popen.poll() is None, f"proxy exited with {popen.returncode}"
            return proxy.status()["pid"] == popen.pid

        wait_until(answering, 15, interval=0.02, message="the proxy answering on its admin socket")
        return proxy

    def stop_all(self) -> None:
        """Stop every process, whatever fails on the way; the first failure is raised at the end."""
        failures: list[AssertionError] = []
        for proc in reversed(self.procs):
            if isinstance(proc, Proxy):
                try:
                    proc.kill_all()  # the workers too: by pid, never by name
                except AssertionError as exc:  # one that outlived its SIGKILL: stop the others first
                    failures.append(exc)
            elif proc.alive():
                proc.signal(signal.SIGKILL)
                try:
                    proc.popen.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        if failures:
            raise failures[0]


def frontend(name: str = "web", backends: list[str] | None = None, **overrides: Any) -> dict:
    """A frontend config on an ephemeral port with fast health checks."""
    config: dict[str, Any] = {
        "name": name,
        "listen": "127.0.0.1:0",
        "health": {"path": "/healthcheck", "interval": 0.1, "timeout": 0.5, "rise": 1,
                   "fall": 2},
        "backends": backends or [],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def wait_ready(proxy: Proxy, fe: str, count: int, timeout: float = 10.0) -> None:
    wait_until(lambda: [b["state"] for b in proxy.client.backends(fe)].count("ready") >= count, timeout, interval=0.02,
               message=lambda: f"{count} ready backend(s) of {fe}: {proxy.client.backends(fe)}")


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes, read until the proxy closes (or the timeout): everything it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<timeout>")
        return b"".join(chunks)


class Load(ClientThreads):
    """Client threads sending requests until stopped; every outcome is recorded.

    Each thread uses one keep-alive connection (reopened after an error) or, with
    new_connections, a new connection per request. Paths get a unique `id` query.
    """

    def __init__(self, port: int, threads: int = 4, paths: tuple[str, ...] = ("/load",),
                 methods: tuple[str, ...] = ("GET",), new_connections: bool = False,
                 pause: float = 0.0) -> None:
        import itertools

        self.port = port
        self.paths = paths
        self.methods = methods
        self.new_connections = new_connections
        self.pause = pause
        self.results: list[dict[str, Any]] = []
        self._ids = itertools.count()
        super().__init__(self._run, [(i,) for i in range(threads)])

    def _run(self, index: int) -> None:
        import http.client

        conn = None
        turn = index
        while not self._stop.is_set():
            with self._lock:
                rid = next(self._ids)
            method = self.methods[turn % len(self.methods)]
            path = f"{self.paths[turn % len(self.paths)]}?id={rid}"
            turn += 1
            result: dict[str, Any] = {"id": rid, "method": method, "path": path,
                                      "start": time.monotonic(), "fresh": conn is None}
            try:
                if conn is None or self.new_connections:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    result["fresh"] = True
                conn.request(method, path, body=b"payload" if method == "POST" else None)
                resp = conn.getresponse()
                resp.read()
                result["status"] = resp.status
                result["backend"] = resp.getheader("X-Backend")
                if resp.getheader("Connection", "").lower() == "close" or self.new_connections:
                    conn.close()
                    conn = None
            except Exception as exc:  # every failure is a result, never a crash
                result["error"] = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
            result["end"] = time.monotonic()
            with self._lock:
                self.results.append(result)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") != 200]
