"""A small synchronous client of the proxy's admin API (standard library only).

Used by the upgrade engine and the command line::

    proxy = AdminClient("/run/hitless/proxy.sock")
    proxy.add_backend("netapi", "netapi-1-g2", "127.0.0.1:18002")
    proxy.wait_backend("netapi", "netapi-1-g2", "ready", timeout=60)
    proxy.drain_backend("netapi", "netapi-1-g1")
    proxy.wait_backend("netapi", "netapi-1-g1", "drained", timeout=3600)
    proxy.remove_backend("netapi", "netapi-1-g1")

Errors: `ProxyUnavailable` when nothing answers, `ProxyError` when the proxy refuses an
operation (with its status and message), `WaitTimeout` when a wait runs out.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import quote, urlencode

from hitless.errors import OperationFailed, RuntimeUnavailable
from hitless.proxy.config import DEFAULT_ADMIN_SOCKET, FrontendConfig, parse_address
from hitless.proxy.ipc import unixpath

LONG_POLL = 300.0  # seconds of one wait request; longer waits are made of several


class ProxyUnavailable(RuntimeUnavailable):
    """The proxy's admin API does not answer."""


class ProxyError(OperationFailed):
    """The proxy answered an admin request with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"proxy: {message} (HTTP {status})")
        self.status = status
        self.message = message


class WaitTimeout(ProxyError):
    """A backend did not reach the state waited for in time."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            unixpath.connect(sock, self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """Talks to one proxy, over its Unix socket or its loopback TCP listener."""

    def __init__(self, socket_path: str | None = DEFAULT_ADMIN_SOCKET, *,
                 tcp: str | None = None, token: str | None = None,
                 timeout: float = 10.0) -> None:
        if tcp is None and socket_path is None:
            raise ValueError("give a socket path or a TCP address")
        self.socket_path = socket_path
        self.tcp = parse_address(tcp) if tcp else None
        self.token = token
        self.timeout = timeout

    # -- frontends ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Pid, version and every frontend of the proxy."""
        return self._call("GET", "/v1/status")

    def frontends(self) -> list[dict[str, Any]]:
        """Every frontend, with its backends, states and in-flight counts."""
        return self._call("GET", "/v1/frontends")["frontends"]

    def frontend(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/frontends/{quote(name, safe='')}")

    def add_frontend(self, config: FrontendConfig | dict[str, Any]) -> dict[str, Any]:
        """Start listening for a new frontend."""
        data = config.to_dict() if isinstance(config, FrontendConfig) else config
        return self._call("POST", "/v1/frontends", data)

    def remove_frontend(self, name: str, timeout: float | None = None) -> None:
        """Stop listening; in-flight requests finish (cut after `timeout` if given)."""
        query = f"?timeout={timeout}" if timeout is not None else ""
        self._call("DELETE", f"/v1/frontends/{quote(name, safe='')}{query}",
                   timeout=None if timeout is None else timeout + self.timeout)

    def pause(self, frontend: str) -> dict[str, Any]:
        """Hold every new request of the frontend (in arrival order) until `resume`."""
        return self._call("POST", f"/v1/frontends/{quote(frontend, safe='')}/pause")

    def resume(self, frontend: str) -> dict[str, Any]:
        """Release the held requests in order and forward new ones again."""
        return self._call("POST", f"/v1/frontends/{quote(frontend, safe='')}/resume")

    # -- backends -----------------------------------------------------------------------

    def backends(self, frontend: str) -> list[dict[str, Any]]:
        return self._call("GET", self._backends(frontend))["backends"]

    def backend(self, frontend: str, backend_id: str) -> dict[str, Any]:
        return self._call("GET", self._backend(frontend, backend_id))

    def add_backend(self, frontend: str, backend_id: str, address: str,
                    ready: bool = False) -> dict[str, Any]:
        """Add an instance; it is warming until it passes the frontend's health checks
        (`ready=True` skips that: for an instance known to be serving)."""
        return self._call("POST", self._backends(frontend),
                          {"id": backend_id, "address": address, "ready": ready})

    def drain_backend(self, frontend: str, backend_id: str,
                      timeout: float | None = None) -> dict[str, Any]:
        """No new request to the backend; in-flight ones finish (cut after `timeout`)."""
        return self._call("POST", self._backend(frontend, backend_id) + "/drain",
                          {"timeout": timeout})

    def remove_backend(self, frontend: str, backend_id: str) -> dict[str, Any]:
        """Forget the backend now (requests already sent to it still complete)."""
        return self._call("DELETE", self._backend(frontend, backend_id))

    def wait_backend(self, frontend: str, backend_id: str, until: str = "ready",
                     timeout: float = 60.0) -> dict[str, Any]:
        """Block until the backend is `ready` or `drained`; WaitTimeout after `timeout`.

        Any timeout works (hours, for a drain): the wait is a series of bounded long-polls,
        and it carries on across a proxy hand-over, when the admin socket briefly drops.
        """
        path = self._backend(frontend, backend_id) + "/wait?"
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            poll = min(remaining, LONG_POLL)
            try:
                return self._call("GET", path + urlencode({"until": until, "timeout": poll}),
                                  timeout=poll + self.timeout)
            except WaitTimeout:
                if time.monotonic() >= deadline:
                    raise
            except ProxyUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    # -- counters -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters by frontend: requests by status, held, released, rejected, retries."""
        return self._call("GET", "/v1/stats")["frontends"]

    def metrics(self) -> str:
        """The Prometheus text exposition."""
        status, body = self._request("GET", "/metrics", None, self.timeout)
        if status != 200:
            raise ProxyError(status, body.decode(errors="replace"))
        return body.decode()

    # -- plumbing -----------------------------------------------------------------------

    @staticmethod
    def _backends(frontend: str) -> str:
        return f"/v1/frontends/{quote(frontend, safe='')}/backends"

    def _backend(self, frontend: str, backend_id: str) -> str:
        return f"{self._backends(frontend)}/{quote(backend_id, safe='')}"

    def _call(self, method: str, path: str, data: dict[str, Any] | None = None,
              timeout: float | None = -1.0) -> Any:
        status, body = self._request(method, path, data,
                                     self.timeout if timeout == -1.0 else timeout)
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            raise ProxyError(status, "answer is not JSON") from None
        if status >= 400:
            message = payload.get("error", "error") if isinstance(payload, dict) else "error"
            raise (WaitTimeout if status == 504 else ProxyError)(status, message)
        return payload

    def _request(self, method: str, path: str, data: dict[str, Any] | None,
                 timeout: float | None) -> tuple[int, bytes]:
        if self.tcp is not None:
            conn: http.client.HTTPConnection = http.client.HTTPConnection(
                *self.tcp, timeout=timeout)
            where = f"{self.tcp[0]}:{self.tcp[1]}"
        else:
            conn = _UnixConnection(self.socket_path, timeout)  # type: ignore[arg-type]
            where = str(self.socket_path)
        headers = {"Connection": "close"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise ProxyUnavailable(f"no proxy answers on {where}: {exc.strerror}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ProxyUnavailable(f"proxy on {where}: {exc}") from None
        finally:
            conn.close()
