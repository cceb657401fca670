"""The load generator: asyncio and aiohttp, every request recorded.

Why aiohttp (not httpx): its connector states exactly what a connection does — `force_close`
opens a new connection per request and sends `Connection: close`, like a command-line client;
a connector with `limit=1` is one keep-alive connection, like a service — and its C-accelerated
parser lets one event loop on a small machine send a thousand requests a second without
becoming the bottleneck the probe is meant to find elsewhere. Its errors also tell refused
connections, resets and servers that hung up apart, which is what a user-facing failure is.

Clients run closed-loop (each sends, waits for the answer, pauses, sends again) or, with a
rate, open-loop (requests leave on a fixed schedule whatever the server does, as real users'
requests do). Stopping: no new request leaves; those in flight get `grace` seconds to finish,
then are abandoned (counted, not recorded: the probe cut them, not the server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from hitless.errors import BadInput
from hitless.probe.records import Record

SCENARIOS = ("get", "neutron-cycle", "long")
MODES = ("new", "keep")
VERSION_HEADER = "X-Netapi-Version"  # the demo service's; `hitless probe --version-header` names another
MAX_IN_FLIGHT = 2000  # open loop: past this many unanswered requests, sends are counted as missed


@dataclasses.dataclass(frozen=True)
class Workload:
    """One kind of traffic: a scenario, its clients and their pace.

    `concurrency` is the number of clients of each connection mode in `modes`. `interval` is a
    closed-loop client's period (a new request, or create/delete pair, starts every `interval`
    seconds; 0: as soon as the last one ended). `rate` (per second, all clients together) makes
    it open-loop.
    """

    url: str
    scenario: str = "get"
    concurrency: int = 2
    modes: tuple[str, ...] = MODES
    rate: float | None = None
    interval: float | None = None  # default: 0.5 s for neutron-cycle, 0 otherwise
    long_seconds: float = 15.0
    timeout: float = 30.0  # per request (a long request gets long_seconds on top)
    network_name: str = "temp"
    version_header: str = VERSION_HEADER

    def __post_init__(self) -> None:
        problems = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"{self.url}: expected an http:// URL")
        if self.scenario not in SCENARIOS:
            problems.append(f"scenario {self.scenario!r}: expected one of {', '.join(SCENARIOS)}")
        if self.concurrency < 1:
            problems.append(f"concurrency {self.concurrency}: expected at least 1")
        if not self.modes or set(self.modes) - set(MODES):
            problems.append(f"modes {self.modes}: expected some of {', '.join(MODES)}")
        if self.rate is not None and not self.rate > 0:
            problems.append(f"rate {self.rate}: expected a positive number of requests per second")
        if self.interval is not None and self.interval < 0:
            problems.append(f"interval {self.interval}: expected 0 or more seconds")
        if not self.long_seconds >= 0:
            problems.append(f"long request of {self.long_seconds} s: expected 0 or more seconds")
        if problems:
            raise BadInput("; ".join(problems))

    @property
    def period(self) -> float:
        if self.interval is not None:
            return self.interval
        return 0.5 if self.scenario == "neutron-cycle" else 0.0

    def base(self) -> str:
        """The URL without its path: where the Neutron-style API lives."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "modes": list(self.modes), "period": self.period}


def classify(exc: BaseException) -> str:
    """A short name for why no response came, as a user would tell it apart."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"  # the server hung up before answering
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = getattr(exc.os_error, "errno", None)
        return "refused" if code == errno.ECONNREFUSED else f"connect-{errno.errorcode.get(code, 'error') if code else 'error'}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated"
    if isinstance(exc, aiohttp.ClientOSError):
        code = getattr(exc, "errno", None)
        return {errno.ECONNRESET: "reset", errno.EPIPE: "broken-pipe"}.get(code, "os-error")  # type: ignore[arg-type]
    if isinstance(exc, aiohttp.ClientResponseError):
        return "bad-response"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection-closed"
    return type(exc).__name__


class Probe:
    """Runs workloads until asked to stop; `records` grows as answers come."""

    def __init__(self, workloads: list[Workload]):
        if not workloads:
            raise BadInput("the probe needs at least one workload")
        self.workloads = workloads
        self.records: list[Record] = []
        self.abandoned = 0
        self.missed = 0
        self._ids = itertools.count()
        self._offset = time.time() - time.monotonic()  # wall clock from the monotonic one
        self._stopping: asyncio.Event | None = None
        self._in_flight: set[asyncio.Task] = set()
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def now(self) -> float:
        return self._offset + time.monotonic()

    # -- running --------------------------------------------------------------------------------

    async def run(self, duration: float | None = None, grace: float = 30.0,
                  on_started: Callable[[], None] | None = None) -> None:
        """Send load until `stop()` (or for `duration` seconds), then wait up to `grace` seconds
        for requests in flight."""
        self._stopping = asyncio.Event()
        self.started_at = self.now()
        sessions: list[aiohttp.ClientSession] = []
        clients: list[Awaitable[None]] = []
        for w in self.workloads:
            for index, mode in enumerate(w.modes):
                if w.rate is not None:
                    session = self._session(mode, limit=0)
                    sessions.append(session)
                    # Interleaved: the modes' schedules together send one request every 1/rate s.
                    clients.append(self._open_loop(w, mode, session, w.rate / len(w.modes), index / w.rate))
                    continue
                for _ in range(w.concurrency):
                    session = self._session(mode, limit=1)
                    sessions.append(session)
                    clients.append(self._closed_loop(w, mode, session, next(self._ids)))
        tasks = [asyncio.ensure_future(c) for c in clients]
        if on_started is not None:
            on_started()
        try:
            if duration is not None:
                try:
                    await asyncio.wait_for(self._stopping.wait(), duration)
                except TimeoutError:
                    self._stopping.set()
            else:
                await self._stopping.wait()
            # Clients finish what they are doing (a create gets its delete); then in-flight ones.
            done, pending = await asyncio.wait(tasks, timeout=grace)
            if self._in_flight:
                _, late = await asyncio.wait(list(self._in_flight), timeout=max(0.1, grace))
                pending |= late
            self.abandoned += len([t for t in pending if not t.done()])
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # a bug in the probe: say so
        finally:
            for session in sessions:
                await session.close()
            self.finished_at = self.now()

    def stop(self) -> None:
        """Ask the probe to stop (from the loop's thread; see ProbeSession for other threads)."""
        if self._stopping is not None:
            self._stopping.set()

    @staticmethod
    def _session(mode: str, limit: int) -> aiohttp.ClientSession:
        # force_close: a new connection per request, with `Connection: close`, like a CLI.
        connector = aiohttp.TCPConnector(force_close=(mode == "new"), limit=limit if mode == "keep" else 0,
                                         use_dns_cache=True)
        return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",),
                                     headers={"User-Agent": "hitless-probe"})

    async def _pause_until(self, deadline: float) -> bool:
        """Sleep until `deadline` (monotonic) or the stop; True when stopping."""
        assert self._stopping is not None
        delay = deadline - time.monotonic()
        if delay > 0 and not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
        return self._stopping.is_set()

    async def _closed_loop(self, w: Workload, mode: str, session: aiohttp.ClientSession, client_id: int) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            began = time.monotonic()
            await self._one(w, mode, session, client_id)
            if await self._pause_until(began + w.period):
                return

    async def _open_loop(self, w: Workload, mode: str, session: aiohttp.ClientSession, rate: float,
                         offset: float = 0.0) -> None:
        period, began = 1.0 / rate, time.monotonic() + offset
        for n in itertools.count():
            if await self._pause_until(began + n * period):
                return
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                self.missed += 1
                continue
            task = asyncio.ensure_future(self._one(w, mode, session, next(self._ids)))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    # -- one unit of work ---------------------------------------------------------------------------

    async def _one(self, w: Workload, mode: str, session: aiohttp.ClientSession, client_id: int) -> None:
        if w.scenario == "get":
            await self._request(w, session, "GET", w.url, "get", (200, 399), mode, client_id)
        elif w.scenario == "long":
            snapshot = {"snapshot": {"seconds": w.long_seconds}}
            await self._request(w, session, "POST", f"{w.base()}/v2.0/snapshots", "snapshot", (201, 201), mode,
                                client_id, snapshot, w.timeout + w.long_seconds)
        else:
            body = {"network": {"name": w.network_name}}
            created = await self._request(w, session, "POST", f"{w.base()}/v2.0/networks", "create", (201, 201),
                                          mode, client_id, body)
            if created is not None:
                # Deleted even when the probe is stopping: a stop must not leave networks behind.
                await self._request(w, session, "DELETE", f"{w.base()}/v2.0/networks/{created}", "delete",
                                    (204, 204), mode, client_id, resource=created)

    async def _request(self, w: Workload, session: aiohttp.ClientSession, method: str, url: str, op: str,
                       expect: tuple[int, int], mode: str, client_id: int, body: Any = None,
                       timeout: float | None = None, resource: str | None = None) -> str | None:
        """Send one request and record it; returns the id of a network a create made."""
        began = time.monotonic()
        start = self._offset + began
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with session.request(method, url, data=data, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout or w.timeout)) as response:
                payload = await response.read()
                status, version = response.status, response.headers.get(w.version_header)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is a record, never the end of the client
            self.records.append(Record(start, time.monotonic() - began, None, classify(exc), None, False, op, mode,
                                       client_id, resource))
            return None
        ok = expect[0] <= status <= expect[1]
        if op == "create" and ok:
            try:
                resource = json.loads(payload)["network"]["id"]
            except (ValueError, KeyError, TypeError):
                ok = False  # a 201 without the network is not what a client can use
        self.records.append(Record(start, time.monotonic() - began, status, None, version, ok, op, mode,
                                   client_id, resource))
        return resource if op == "create" and ok else None
