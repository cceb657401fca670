"""A frontend: one listener, its pool of backends, its hold queue, and request dispatch."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from hitless.proxy.config import FrontendConfig
from hitless.proxy.traffic.hold import Hold
from hitless.proxy.traffic.http import ClientConnection, Request
from hitless.proxy.traffic.limits import CAP
from hitless.proxy.traffic.messages import canned
from hitless.proxy.traffic.pool import LOCAL_EXHAUSTION, Backend, Pool, State
from hitless.proxy.traffic.upstream import UpstreamConnection

log = logging.getLogger("hitless.proxy")

MAX_ATTEMPTS = 5  # backends tried for one request before 502
CONNECT_TIMEOUT = 5.0
DRAIN_IDLE_GRACE = 1.0  # when draining, an idle client connection gets this long to ask again
UPSTREAM_IDLE = 3.0  # shorter than common backend keep-alive timeouts, to dodge their close race
SWEEP_INTERVAL = 0.5
BACKLOG = 4096


class FrontendStats:
    """Counters of one frontend (exported as metrics)."""

    __slots__ = ("status", "retries", "failed", "bad_requests", "connections_total")

    def __init__(self) -> None:
        self.status: dict[int, int] = {}  # responses sent, by status code
        self.retries = 0  # requests sent again to another backend
        self.failed = 0  # requests the backends failed (502 or a cut response)
        self.bad_requests = 0  # malformed requests (400)
        self.connections_total = 0


def bind_listener(address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket; SO_REUSEADDR so a restart does not wait for TIME_WAIT."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Frontend:
    """A public listen address routed to the ready backends of one service."""

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config
        self.name = config.name
        self.proto = config.proto.encode()
        self.loop = asyncio.get_running_loop()
        self.pool = Pool(config.name, config.health, on_ready=self._on_ready)
        self.hold = Hold(config.hold, can_release=self._can_release, forward=self.forward)
        self.stats = FrontendStats()
        self.clients: set[ClientConnection] = set()
        self.overflow_response = canned(503, "Service Unavailable",
                                         f"Retry-After: {config.hold.retry_after}\r\n")
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] = (config.host, config.port)
        self.draining = False
        self._server: asyncio.AbstractServer | None = None
        self._accepting = False
        self._sweeper: asyncio.Task[None] | None = None
        self._drain_started = 0.0

    # -- life cycle ---------------------------------------------------------------------

    async def start(self, sock: socket.socket | None = None, with_backends: bool = True) -> None:
        """Listen (on `sock` when one is handed over) and start serving."""
        if sock is None:
            sock = bind_listener((self.config.host, self.config.port))
        self.sock = sock
        self.address = sock.getsockname()[:2]
        self._accepting = True
        CAP.register(self)  # pauses accepting at once when the cap is reached
        await self._serve()
        self._sweeper = self.loop.create_task(self._sweep())
        for i, address in enumerate(self.config.backends if with_backends else ()):
            self.pool.add(f"{self.name}-{i}", address)
        log.info("frontend %s listening on %s:%d", self.name, *self.address)

    def stop_accepting(self) -> None:
        """Stop accepting; the listening socket lives on in whoever else holds it."""
        self._accepting = False
        CAP.unregister(self)
        self._close_server()

    def pause_accepting(self) -> None:
        """At the connection cap: leave new connections in the listen queue."""
        self._accepting = False
        self._close_server()

    def resume_accepting(self) -> None:
        """Below the cap again: accept what waits in the listen queue."""
        if not self._accepting and self.sock is not None and not self.draining:
            self._accepting = True
            self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        # The server gets a duplicate of the listening socket: closing it to pause accepting
        # leaves the socket (and its queue of waiting connections) open.
        if not self._accepting or self.sock is None or self.sock.fileno() < 0:
            return
        server = await self.loop.create_server(
            lambda: ClientConnection(self), sock=self.sock.dup(), backlog=BACKLOG)
        if self._accepting and self._server is None:
            self._server = server
        else:
            server.close()

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def begin_drain(self) -> None:
        """Close every client connection once its current response is out."""
        self.draining = True
        self._drain_started = self.loop.time()
        for client in self.clients:
            client.closing = True

    async def close(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish (up to `timeout`), then stop."""
        self.stop_accepting()
        self.begin_drain()
        try:
            async with asyncio.timeout(timeout):
                while self.clients:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            for client in list(self.clients):
                if client.transport is not None:
                    client.transport.abort()
        self.hold.expire_all()
        self.pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.sock is not None:
            self.sock.close()

    # -- dispatch (hot path) ------------------------------------------------------------

    def dispatch(self, req: Request) -> None:
        """A new request, its head complete: forward it, or hold it."""
        if self.hold.active or not self.pool.ready:
            self.hold.admit(req)
        else:
            self.forward(req)

    def forward(self, req: Request, failed: Backend | None = None) -> bool:
        """Send `req` to the best ready backend, another than `failed` (the one that just
        dropped it) if one is ready; False while a new connection is opening."""
        backend = self.pool.pick(failed)
        if backend is None:
            self.hold.admit(req, front=True)
            return True
        backend.inflight += 1
        req.attempts += 1
        req.backend = backend
        # Back to the backend that dropped it: on a new connection, since its idle ones may
        # have died with the one that did.
        conn = backend.take_idle() if backend is not failed else None
        if conn is not None:
            conn.bind(req)
            return True
        self.loop.create_task(self._connect(req, backend))
        return False

    def retry(self, req: Request) -> bool:
        """Send again a request that no backend processed; True while it waits to connect."""
        self.stats.retries += 1
        failed, req.backend = req.backend, None
        if req.attempts >= MAX_ATTEMPTS:
            req.client.upstream_failed(req, False)
            return False
        if self.pool.ready and not self.hold.paused:
            return not self.forward(req, failed)
        self.hold.admit(req, front=True)
        return False

    def count_status(self, status: int) -> None:
        counts = self.stats.status
        counts[status] = counts.get(status, 0) + 1

    def connection_opened(self, client: ClientConnection) -> None:
        self.clients.add(client)
        CAP.opened()
        self.stats.connections_total += 1
        if self.draining:
            client.closing = True

    def connection_closed(self, client: ClientConnection) -> None:
        if client in self.clients:
            self.clients.discard(client)
            CAP.closed()

    async def _connect(self, req: Request, backend: Backend) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, conn = await self.loop.create_connection(
                    lambda: UpstreamConnection(backend, self.pool), backend.host, backend.port)
        except (OSError, TimeoutError) as exc:
            backend.release()
            if isinstance(exc, OSError) and exc.errno in LOCAL_EXHAUSTION:
                log.warning("frontend %s: cannot connect to %s: %s (this process is out of "
                            "resources; the backend stays %s)", self.name, backend.id,
                            exc.strerror, backend.state.value)
                if not req.finished:
                    req.client.reject_held(req, self.config.hold.retry_after)
                self.hold.connected(req)
                return
            self.pool.connect_failed(backend)
            if req.finished or not self.retry(req):
                self.hold.connected(req)
            return
        if req.finished:  # the client went away meanwhile
            backend.release()
            if backend.state is State.READY:
                conn.idle_since = self.loop.time()
                backend.idle.append(conn)
            else:
                conn.close()
        else:
            conn.bind(req)
        self.hold.connected(req)

    def _can_release(self) -> bool:
        return bool(self.pool.ready)

    def _on_ready(self) -> None:
        if self.hold.count:
            self.hold.pump()

    # -- housekeeping -------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close idle and stuck connections; one timer for all, not one per request."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.loop.time()
            timeouts = self.config.timeouts
            for client in list(self.clients):
                if client.idle():
                    limit = DRAIN_IDLE_GRACE if client.closing else timeouts.keepalive
                    since = max(client.last_active, self._drain_started)
                    if now - since > limit and client.transport is not None:
                        client.transport.close()
                elif (client.in_head and client.current is None and not client.lingering
                      and now - client.head_started > timeouts.head):
                    client.timeout_head()
                elif (client.parsing is not None and not client.in_head
                      and not client.reading_paused and now - client.last_read > timeouts.body):
                    log.info("frontend %s: request body stalled for %.0fs: giving up",
                             self.name, now - client.last_read)
                    client.timeout_body()
                if (client.write_paused_since and client.transport is not None
                        and now - client.write_paused_since > timeouts.send):
                    log.info("frontend %s: client read nothing for %.0fs: closing",
                             self.name, now - client.write_paused_since)
                    client.transport.abort()
            for backend in self.pool.backends.values():
                if backend.idle and now - backend.idle[0].idle_since > UPSTREAM_IDLE:
                    keep = []
                    for conn in backend.idle:
                        if now - conn.idle_since > UPSTREAM_IDLE:
                            conn.close()
                        else:
                            keep.append(conn)
                    backend.idle[:] = keep

    def to_dict(self) -> dict[str, Any]:
        hold = self.hold
        return {
            "name": self.name,
            "listen": f"{self.address[0]}:{self.address[1]}",
            "paused": hold.paused,
            "held": hold.count,
            "held_bytes": hold.bytes,
            "releasing": hold.releasing,
            "connections": len(self.clients),
            "config": self.config.to_dict(),
            "backends": [b.to_dict() for b in self.pool.backends.values()],
        }
