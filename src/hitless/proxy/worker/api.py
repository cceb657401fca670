"""The admin operations of one worker process, on its own frontends (`ProxyServer`); the master
asks them of each worker over its channel and merges the answers."""

from __future__ import annotations

import logging
from typing import Any

from hitless.proxy.admin.metrics import render, stats
from hitless.proxy.admin.server import MAX_WAIT, AdminServer, ApiError
from hitless.proxy.config import FrontendConfig
from hitless.proxy.traffic.pool import State
from hitless.proxy.worker.server import ProxyServer

log = logging.getLogger("hitless.proxy")

class WorkerApi(AdminServer):
    """The operations of one process, on its own frontends."""

    def __init__(self, proxy: ProxyServer, token: str | None = None) -> None:
        super().__init__(token)
        self.proxy = proxy

    async def metrics_text(self) -> bytes:
        """The Prometheus text exposition of this process's counters."""
        return render(self.proxy.registry)

    # -- operations ---------------------------------------------------------------------

    def _frontend(self, name: str) -> Any:
        try:
            return self.proxy.frontends[name]
        except KeyError:
            raise ApiError(404, f"no frontend {name!r}") from None

    def _backend(self, fe: str, be: str) -> Any:
        try:
            return self._frontend(fe).pool.backends[be]
        except KeyError:
            raise ApiError(404, f"no backend {be!r} in frontend {fe!r}") from None

    async def status(self, **_: Any) -> tuple[int, Any]:
        return 200, self.proxy.status()

    async def stats(self, **_: Any) -> tuple[int, Any]:
        return 200, {"frontends": stats(self.proxy.frontends.values())}

    async def list_frontends(self, **_: Any) -> tuple[int, Any]:
        return 200, {"frontends": [f.to_dict() for f in self.proxy.frontends.values()]}

    async def add_frontend(self, data: dict[str, Any], **_: Any) -> tuple[int, Any]:
        config = FrontendConfig.from_dict(data)
        if config.name in self.proxy.frontends:
            raise ApiError(409, f"frontend {config.name!r} exists")
        try:
            fe = await self.proxy.add_frontend(config)
        except OSError as exc:
            raise ApiError(409, f"cannot listen on {config.listen}: {exc.strerror}") from None
        return 201, fe.to_dict()

    async def get_frontend(self, fe: str, **_: Any) -> tuple[int, Any]:
        return 200, self._frontend(fe).to_dict()

    async def remove_frontend(self, fe: str, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        self._frontend(fe)
        timeout = float(query["timeout"]) if "timeout" in query else None
        await self.proxy.remove_frontend(fe, timeout)
        return 200, {"removed": fe}

    async def pause(self, fe: str, **_: Any) -> tuple[int, Any]:
        frontend = self._frontend(fe)
        frontend.hold.paused = True
        log.info("frontend %s paused", fe)
        return 200, frontend.to_dict()

    async def resume(self, fe: str, **_: Any) -> tuple[int, Any]:
        frontend = self._frontend(fe)
        frontend.hold.paused = False
        frontend.hold.pump()
        log.info("frontend %s resumed (%d held)", fe, frontend.hold.count)
        return 200, frontend.to_dict()

    async def list_backends(self, fe: str, **_: Any) -> tuple[int, Any]:
        pool = self._frontend(fe).pool
        return 200, {"backends": [b.to_dict() for b in pool.backends.values()]}

    async def add_backend(self, fe: str, data: dict[str, Any], **_: Any) -> tuple[int, Any]:
        pool = self._frontend(fe).pool
        backend_id, address = data.get("id"), data.get("address")
        if not isinstance(backend_id, str) or not backend_id or "/" in backend_id:
            raise ApiError(400, "a backend needs an 'id' (a string without '/')")
        if not isinstance(address, str):
            raise ApiError(400, "a backend needs an 'address' (host:port)")
        state = State.READY if data.get("ready") else State.WARMING
        backend = pool.add(backend_id, address, state)
        return 201, backend.to_dict()

    async def get_backend(self, fe: str, be: str, **_: Any) -> tuple[int, Any]:
        return 200, self._backend(fe, be).to_dict()

    async def remove_backend(self, fe: str, be: str, **_: Any) -> tuple[int, Any]:
        self._backend(fe, be)
        return 200, self._frontend(fe).pool.remove(be).to_dict()

    async def drain_backend(self, fe: str, be: str, data: dict[str, Any],
                            **_: Any) -> tuple[int, Any]:
        self._backend(fe, be)
        timeout = data.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ApiError(400, "timeout must be a number of seconds or null")
        return 200, self._frontend(fe).pool.drain(be, timeout).to_dict()

    async def wait_backend(self, fe: str, be: str, query: dict[str, str],
                           **_: Any) -> tuple[int, Any]:
        until = query.get("until", "ready")
        if until not in ("ready", "drained"):
            raise ApiError(400, "until must be 'ready' or 'drained'")
        timeout = min(float(query.get("timeout", "30")), MAX_WAIT)
        pool = self._frontend(fe).pool
        try:
            backend = await pool.wait(be, until, timeout)
        except KeyError:
            raise ApiError(404, f"no backend {be!r} in frontend {fe!r}") from None
        if backend is not None:
            return 200, backend.to_dict()
        if until == "drained" and be not in pool.backends:
            return 200, {"id": be, "state": State.GONE.value}
        current = pool.backends.get(be)
        return 504, {"error": f"backend {be!r} not {until} after {timeout:g}s",
                     "backend": current.to_dict() if current else None}
