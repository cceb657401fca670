"""The admin API: JSON over HTTP/1.1, on a Unix socket (mode 0600) and optionally loopback TCP.

Operations (all answers are JSON objects; errors are ``{"error": "..."}``)::

    GET    /v1/status                                   pid, version, frontends
    GET    /v1/frontends                                frontends with backends and counts
    POST   /v1/frontends                    {config}    add a frontend (FrontendConfig shape)
    GET    /v1/frontends/NAME
    DELETE /v1/frontends/NAME?timeout=S                 stop listening, drain, forget
    POST   /v1/frontends/NAME/pause                     hold every new request
    POST   /v1/frontends/NAME/resume                    release held requests in order
    GET    /v1/frontends/NAME/backends
    POST   /v1/frontends/NAME/backends      {"id", "address", "ready": false}
    GET    /v1/frontends/NAME/backends/ID
    DELETE /v1/frontends/NAME/backends/ID               forget now (in-flight requests finish)
    POST   /v1/frontends/NAME/backends/ID/drain  {"timeout": null}
    GET    /v1/frontends/NAME/backends/ID/wait?until=ready|drained&timeout=S
                                                        long-poll; 504 when the timeout passes
    GET    /v1/stats                                    counters by frontend
    GET    /metrics                                     Prometheus text format
    POST   /v1/takeover                                 hand the listeners to a new process

Over TCP every request needs ``Authorization: Bearer TOKEN``; without it: 401.
"""

from __future__ import annotations

import abc
import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hitless.errors import BadInput
from hitless.proxy.admin.metrics import CONTENT_TYPE

log = logging.getLogger("hitless.proxy")

MAX_BODY = 1024 * 1024
MAX_WAIT = 3600.0
ADMIN_READ_TIMEOUT = 5.0  # a request head (and then its body) must arrive within this
ADMIN_IDLE_TIMEOUT = 120.0  # an authenticated connection may wait this long between requests
MAX_UNAUTHENTICATED = 16  # TCP connections at once that have not shown the token yet

Handler = Callable[..., Awaitable[tuple[int, Any]]]


class ApiError(Exception):
    """An error answered to the admin client with a status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AdminServer(abc.ABC):
    """The admin API's HTTP side: connections, the token, routing a request to an operation.
    What each operation does is the subclass's: a worker (`hitless.proxy.worker.api.WorkerApi`) or the master over
    its workers (`hitless.proxy.master.api.MasterApi`)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self._unauthenticated = 0
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        r = self._routes
        fe, be = r"/v1/frontends/(?P<fe>[^/]+)", r"/backends/(?P<be>[^/]+)"
        for method, pattern, handler in (
            ("GET", r"/v1/status", self.status),
            ("GET", r"/v1/stats", self.stats),
            ("GET", r"/v1/frontends", self.list_frontends),
            ("POST", r"/v1/frontends", self.add_frontend),
            ("GET", fe, self.get_frontend),
            ("DELETE", fe, self.remove_frontend),
            ("POST", fe + r"/pause", self.pause),
            ("POST", fe + r"/resume", self.resume),
            ("GET", fe + r"/backends", self.list_backends),
            ("POST", fe + r"/backends", self.add_backend),
            ("GET", fe + be, self.get_backend),
            ("DELETE", fe + be, self.remove_backend),
            ("POST", fe + be + r"/drain", self.drain_backend),
            ("GET", fe + be + r"/wait", self.wait_backend),
        ):
            r.append((method, re.compile(pattern + "$"), handler))

    async def serve_unix(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, need_token=False)

    async def serve_tcp(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, need_token=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     need_token: bool) -> None:
        # Over TCP, a connection is unauthenticated until a request shows the token: such
        # connections are few (MAX_UNAUTHENTICATED), short (ADMIN_READ_TIMEOUT) and never
        # get a body read.
        unauthenticated = need_token
        if unauthenticated:
            if self._unauthenticated >= MAX_UNAUTHENTICATED:
                log.warning("admin: %d unauthenticated connections open; refusing another",
                            self._unauthenticated)
                writer.close()
                return
            self._unauthenticated += 1
        first = True
        try:
            while True:
                wait = ADMIN_READ_TIMEOUT if first or unauthenticated else ADMIN_IDLE_TIMEOUT
                async with asyncio.timeout(wait):
                    head = await reader.readuntil(b"\r\n\r\n")
                first = False
                method, target, headers = _parse_head(head)
                if need_token and not self._authorized(headers):
                    await _reply(writer, 401, {"error": "a bearer token is required"},
                                 close=True)
                    return
                if unauthenticated:
                    unauthenticated = False
                    self._unauthenticated -= 1
                length = int(headers.get("content-length", "0") or 0)
                if not 0 <= length <= MAX_BODY:
                    await _reply(writer, 413, {"error": "body too large"}, close=True)
                    return
                async with asyncio.timeout(ADMIN_READ_TIMEOUT):
                    body = await reader.readexactly(length) if length else b""
                path = urlsplit(target).path
                if method == "POST" and path == "/v1/takeover":
                    if not need_token:
                        await self.takeover(reader, writer)
                        return
                    await _reply(writer, 403, {"error": "takeover only over the Unix socket"})
                    continue
                if method == "GET" and path == "/metrics":
                    await _reply_raw(writer, 200, await self.metrics_text(), CONTENT_TYPE)
                    continue
                status, payload = await self.handle(method, target, body)
                await _reply(writer, status, payload)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, ValueError, UnicodeDecodeError, TimeoutError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            # A client that went away, stalled or sent garbage: nothing to report upward.
            log.debug("admin connection: %s", exc or type(exc).__name__)
        finally:
            if unauthenticated:
                self._unauthenticated -= 1
            writer.close()

    def _authorized(self, headers: dict[str, str]) -> bool:
        given = headers.get("authorization", "")
        expected = f"Bearer {self.token}" if self.token else None
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    async def handle(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        """Answer one admin request: (status, JSON-ready payload)."""
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        allowed = False
        for m, pattern, handler in self._routes:
            match = pattern.match(split.path)
            if match is None:
                continue
            allowed = True
            if m != method:
                continue
            try:
                data = json.loads(body) if body else {}
                if not isinstance(data, dict):
                    raise ApiError(400, "the body must be a JSON object")
                args = {k: unquote(v) for k, v in match.groupdict().items()}
                return await handler(data=data, query=query, **args)
            except ApiError as exc:
                return exc.status, {"error": str(exc)}
            except BadInput as exc:
                return 400, {"error": str(exc)}
            except (ValueError, TypeError) as exc:
                return 400, {"error": f"bad request: {exc}"}
        if allowed:
            return 405, {"error": f"{method} not allowed on {split.path}"}
        return 404, {"error": f"no such operation: {method} {split.path}"}

    async def takeover(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hand this process's listeners over to a new one (only a master has them)."""
        await _reply(writer, 404, {"error": "no listeners to hand over here"}, close=True)

    @abc.abstractmethod
    async def metrics_text(self) -> bytes:
        """The Prometheus text exposition of the counters."""

    @abc.abstractmethod
    async def status(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def stats(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def list_frontends(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def add_frontend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def get_frontend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def remove_frontend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def pause(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def resume(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def list_backends(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def add_backend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def get_backend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def remove_backend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def drain_backend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""

    @abc.abstractmethod
    async def wait_backend(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One operation of the table above: (status, JSON-ready payload)."""




def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _reply(writer: asyncio.StreamWriter, status: int, payload: Any,
                 close: bool = False) -> None:
    await _reply_raw(writer, status, json.dumps(payload).encode() + b"\n",
                     "application/json", close)


async def _reply_raw(writer: asyncio.StreamWriter, status: int, body: bytes,
                     content_type: str, close: bool = False) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")
    writer.write(head.encode() + body)
    await writer.drain()


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            413: "Payload Too Large", 504: "Gateway Timeout"}
