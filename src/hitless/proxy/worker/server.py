"""The frontends of one worker process, and what the admin API needs of them.

The master binds every listening socket and hands each worker its own descriptor of it;
`ProxyServer` serves them. Shutdown goes in explicit steps: stop accepting, let every
in-flight request finish, close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from hitless import __version__
from hitless.errors import BadInput
from hitless.proxy.admin.metrics import local_data, make_registry
from hitless.proxy.config import FrontendConfig
from hitless.proxy.traffic.frontend import Frontend
from hitless.proxy.traffic.pool import State

log = logging.getLogger("hitless.proxy")


class ProxyServer:
    """The frontends one worker serves; `WorkerApi` drives it."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.frontends: dict[str, Frontend] = {}
        # Listening sockets the master sent, waiting for their frontend to be added.
        self.listeners: dict[str, socket.socket] = {}
        self.registry = make_registry(lambda: local_data(self.frontends.values()))
        self.started = time.time()

    async def add_frontend(self, config: FrontendConfig, sock: socket.socket | None = None,
                           with_backends: bool = True) -> Frontend:
        """Serve a frontend on the listening socket the master sent for it; the backends its
        config lists are added as `NAME-i`, warming (as the master's table has them)."""
        if config.name in self.frontends:
            raise BadInput(f"frontend {config.name!r} exists")
        sock = sock or self.listeners.pop(config.name, None)
        if sock is None:
            raise BadInput(f"no listening socket was sent for frontend {config.name!r}")
        fe = Frontend(config)
        try:
            await fe.start(sock, with_backends=with_backends)
        except BaseException:
            sock.close()
            raise
        self.frontends[config.name] = fe
        return fe

    async def restore(self, route: dict[str, Any]) -> Frontend:
        """A frontend as the routing table has it: backends in their states, paused or not.

        A ready backend starts ready (checks and failed connections mark it down if it is
        not); a draining one is drained at once, since this process sent it nothing.
        """
        fe = await self.add_frontend(FrontendConfig.from_dict(route["config"]),
                                     with_backends=False)
        for b in route.get("backends", []):
            state = State.READY if b["state"] == State.READY.value else State.WARMING
            fe.pool.add(b["id"], b["address"], state)
            if b["state"] == State.DRAINING.value:
                fe.pool.drain(b["id"])
        fe.hold.paused = bool(route.get("paused"))
        return fe

    async def remove_frontend(self, name: str, timeout: float | None = None) -> None:
        fe = self.frontends.pop(name)  # before any await: later messages see it gone
        await fe.close(timeout)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "worker": self.index,
            "version": __version__,
            "started": self.started,
            "frontends": [fe.to_dict() for fe in self.frontends.values()],
        }

    def open_connections(self) -> int:
        return sum(len(fe.clients) for fe in self.frontends.values())

    def stop_accepting(self) -> None:
        """Stop accepting and let go of the listening sockets; finish what is open."""
        for fe in self.frontends.values():
            fe.stop_accepting()
            fe.begin_drain()
            # This process's descriptor only: the master (or a successor) may hold others,
            # and once nobody does, new connections are refused rather than left waiting.
            if fe.sock is not None:
                fe.sock.close()
        for sock in self.listeners.values():
            sock.close()
        self.listeners.clear()

    async def drain(self, cut: asyncio.Event, grace: float | None = None) -> None:
        """Wait for open connections to finish (until `cut` is set or `grace` passes), close."""
        self.stop_accepting()
        log.info("worker %d (pid %d) draining %d connection(s)", self.index, os.getpid(),
                 self.open_connections())
        deadline = None if grace is None else time.monotonic() + grace
        while self.open_connections():
            if cut.is_set() or (deadline is not None and time.monotonic() > deadline):
                log.warning("worker %d (pid %d): cutting %d connection(s)", self.index,
                            os.getpid(), self.open_connections())
                break
            await asyncio.sleep(0.05)
        for fe in list(self.frontends.values()):
            await fe.close(timeout=0)
