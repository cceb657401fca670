"""Backends of one frontend: states, least-in-flight choice, active and passive health.

A backend moves ``warming → ready → draining → gone``; a ready backend that fails its
checks (or refuses a connection) is ``down`` until it passes ``rise`` checks again.
Only ready backends receive new requests.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hitless.proxy.config import HealthCheck, parse_address

if TYPE_CHECKING:
    from hitless.proxy.traffic.upstream import UpstreamConnection

log = logging.getLogger("hitless.proxy")

# The process is out of descriptors (or memory): a failure that says nothing of a backend.
LOCAL_EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class State(enum.StrEnum):
    """Where a backend is in its life cycle."""

    WARMING = "warming"  # added; not yet passed `rise` checks
    READY = "ready"  # receives new requests
    DOWN = "down"  # failed `fall` checks or refused a connection; checked until it rises
    DRAINING = "draining"  # no new requests; in-flight ones and tunnels run to completion
    GONE = "gone"  # drained (or forced); holds no connection


class Backend:
    """One instance of a service, as seen by one frontend's pool."""

    __slots__ = (
        "id", "address", "host", "port", "state", "inflight", "tunnels", "idle", "conns",
        "rise_count", "fall_count", "since", "served", "failures", "inherited",
        "_checker", "_drain_timer", "_pool",
    )

    def __init__(self, pool: Pool, backend_id: str, address: str) -> None:
        self.id = backend_id
        self.address = address
        self.host, self.port = parse_address(address)
        self.state = State.WARMING
        self.inflight = 0  # requests and tunnels in flight, in this process
        self.tunnels = 0
        self.idle: list[UpstreamConnection] = []
        self.conns: set[UpstreamConnection] = set()
        self.rise_count = 0
        self.fall_count = 0
        self.since = time.time()
        self.served = 0
        self.failures = 0
        self.inherited = False  # taken over from a previous proxy that may still serve it
        self._checker: asyncio.Task[None] | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._pool = pool

    def take_idle(self) -> UpstreamConnection | None:
        """An idle keep-alive connection that is still open, most recently used first."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
        return None

    def release(self) -> None:
        """One request (or tunnel) of this backend ended."""
        self.inflight -= 1
        self.served += 1
        if self.state is State.DRAINING and self.inflight <= 0:
            self._pool.drained(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "state": self.state.value,
            "inflight": self.inflight,
            "tunnels": self.tunnels,
            "idle_connections": len(self.idle),
            "served": self.served,
            "failures": self.failures,
            "since": self.since,
        }


class Pool:
    """The backends of one frontend, with their health checks."""

    def __init__(self, frontend: str, health: HealthCheck, on_ready: Callable[[], None]) -> None:
        self.frontend = frontend
        self.health = health
        self.backends: dict[str, Backend] = {}
        self.ready: list[Backend] = []
        self._on_ready = on_ready
        self._turn = 0
        self._changed = asyncio.Event()
        self.predecessor_done = asyncio.Event()
        self.predecessor_done.set()

    # -- routing (hot path) ------------------------------------------------------------

    def pick(self, avoid: Backend | None = None) -> Backend | None:
        """The ready backend with the fewest requests in flight; ties rotate. `avoid` is only
        picked when no other backend is ready."""
        ready = self.ready
        if avoid is not None and len(ready) > 1 and avoid in ready:
            ready = [b for b in ready if b is not avoid]
        n = len(ready)
        if n == 0:
            return None
        if n == 1:
            return ready[0]
        self._turn = start = (self._turn + 1) % n
        best = ready[start]
        for i in range(1, n):
            b = ready[(start + i) % n]
            if b.inflight < best.inflight:
                best = b
        return best

    def connect_failed(self, backend: Backend) -> None:
        """Passive check: a connection the backend refused (or that timed out) marks it down
        at once. Nothing that happens on a connection once open may: a client can cause that."""
        backend.failures += 1
        if backend.state is State.READY:
            log.warning("backend %s/%s refused a connection: down", self.frontend, backend.id)
            backend.fall_count = self.health.fall
            backend.rise_count = 0
            self._set(backend, State.DOWN)

    # -- administration -----------------------------------------------------------------

    def add(self, backend_id: str, address: str, state: State = State.WARMING) -> Backend:
        """Add (or replace) a backend; it is health-checked and becomes ready after `rise`."""
        if backend_id in self.backends:
            self.remove(backend_id)
        backend = Backend(self, backend_id, address)
        self.backends[backend_id] = backend
        self._set(backend, state)
        backend._checker = asyncio.get_running_loop().create_task(self._check_loop(backend))
        return backend

    def remove(self, backend_id: str) -> Backend:
        """Forget a backend now; requests already sent to it still complete."""
        backend = self.backends.pop(backend_id)
        self._stop(backend)
        if backend.state is not State.GONE:
            self._set(backend, State.GONE)
        return backend

    def drain(self, backend_id: str, timeout: float | None = None) -> Backend:
        """Send no new request to the backend; let in-flight ones finish.

        With a timeout, whatever is still in flight when it expires is cut.
        """
        backend = self.backends[backend_id]
        if backend.state in (State.DRAINING, State.GONE):
            return backend
        self._set(backend, State.DRAINING)
        for conn in backend.idle:
            conn.close()
        backend.idle.clear()
        if backend.inflight <= 0:
            self.drained(backend)
        elif timeout is not None:
            loop = asyncio.get_running_loop()
            backend._drain_timer = loop.call_later(timeout, self._force_drained, backend)
        return backend

    def drained(self, backend: Backend) -> None:
        if backend.state is State.DRAINING:
            self._stop(backend)
            self._set(backend, State.GONE)

    def _force_drained(self, backend: Backend) -> None:
        backend._drain_timer = None
        if backend.state is State.DRAINING:
            log.warning("backend %s/%s: drain timeout, cutting %d in flight",
                        self.frontend, backend.id, backend.inflight)
            for conn in list(backend.conns):
                conn.cut()
            self.drained(backend)

    def close(self) -> None:
        """Stop every health check and close idle connections (the frontend is going away)."""
        for backend in self.backends.values():
            self._stop(backend)
            for conn in backend.idle:
                conn.close()
            backend.idle.clear()

    async def wait(self, backend_id: str, condition: str, timeout: float) -> Backend | None:
        """Wait until a backend is `ready` or `drained`; None on timeout.

        A backend that no longer exists counts as drained. An inherited backend is drained
        only once the previous proxy process, which may still serve it, has exited.
        """
        if condition not in ("ready", "drained"):
            raise ValueError(f"unknown condition {condition!r}")
        deadline = time.monotonic() + timeout
        while True:
            backend = self.backends.get(backend_id)
            if condition == "ready":
                if backend is None:
                    raise KeyError(backend_id)
                if backend.state is State.READY:
                    return backend
            elif backend is None or backend.state is State.GONE:
                if not backend or not backend.inherited or self.predecessor_done.is_set():
                    return backend
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            waiters = [asyncio.ensure_future(self._changed.wait())]
            if not self.predecessor_done.is_set():
                # Only while a predecessor runs: a set event would wake this loop at once, forever.
                waiters.append(asyncio.ensure_future(self.predecessor_done.wait()))
            _, pending = await asyncio.wait(waiters, timeout=remaining,
                                            return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()

    # -- internals ----------------------------------------------------------------------

    def _set(self, backend: Backend, state: State) -> None:
        previous = backend.state
        backend.state = state
        backend.since = time.time()
        if (state is State.READY) != (backend in self.ready):
            if state is State.READY:
                self.ready.append(backend)
            else:
                self.ready.remove(backend)
        if state is not previous:
            log.info("backend %s/%s: %s -> %s", self.frontend, backend.id,
                     previous.value, state.value)
        # Wake every waiter: they recheck their own condition.
        self._changed.set()
        self._changed = asyncio.Event()
        if state is State.READY:
            self._on_ready()

    def _stop(self, backend: Backend) -> None:
        if backend._checker is not None:
            backend._checker.cancel()
            backend._checker = None
        if backend._drain_timer is not None:
            backend._drain_timer.cancel()
            backend._drain_timer = None

    async def _check_loop(self, backend: Backend) -> None:
        health = self.health
        while backend.state in (State.WARMING, State.READY, State.DOWN):
            ok = await check_once(backend.host, backend.port, health.path, health.timeout)
            if backend.state not in (State.WARMING, State.READY, State.DOWN):
                break
            if ok is None:
                pass  # this process could not check: no verdict on the backend
            elif ok:
                backend.fall_count = 0
                backend.rise_count += 1
                if backend.state is not State.READY and backend.rise_count >= health.rise:
                    self._set(backend, State.READY)
            else:
                backend.rise_count = 0
                backend.fall_count += 1
                if backend.state is State.READY and backend.fall_count >= health.fall:
                    log.warning("backend %s/%s failed %d checks: down",
                                self.frontend, backend.id, backend.fall_count)
                    self._set(backend, State.DOWN)
            await asyncio.sleep(health.interval)


async def check_once(host: str, port: int, path: str | None, timeout: float) -> bool | None:
    """One active check: a TCP connect, then (with a path) a GET answered by 2xx or 3xx.

    None when this process is out of descriptors or memory: that says nothing of the backend.
    """
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            if path is None:
                return True
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                         b"User-Agent: hitless-proxy-check\r\n\r\n"
                         % (path.encode(), host.encode(), port))
            line = await reader.readline()
            parts = line.split(None, 2)
            return (len(parts) >= 2 and parts[0].startswith(b"HTTP/1.")
                    and parts[1].isdigit() and 200 <= int(parts[1]) < 400)
    except OSError as exc:
        return None if exc.errno in LOCAL_EXHAUSTION else False
    except (TimeoutError, asyncio.IncompleteReadError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()
