"""Client side of HTTP/1.1 forwarding: parse requests (httptools), hand them to the frontend.

One `ClientConnection` per accepted connection; one `Request` per request. Requests of one
connection are answered in order (pipelined ones wait, bodies buffered). The request head
sent upstream is built once, with hop-by-hop headers removed and X-Forwarded-* added.
Anything malformed or ambiguous gets 400 and the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import httptools

from hitless.proxy.traffic.messages import BAD_GATEWAY, BAD_REQUEST, HOP_BY_HOP, IDEMPOTENT, TIMEOUT, ListedProtected, drop_listed

if TYPE_CHECKING:
    from hitless.proxy.traffic.frontend import Frontend
    from hitless.proxy.traffic.pool import Backend
    from hitless.proxy.traffic.upstream import UpstreamConnection

MAX_HEAD = 64 * 1024  # bytes of request line + headers
REPLAY_LIMIT = 1024 * 1024  # request body kept for a retry; larger bodies cannot be retried
BUFFER_LIMIT = 1024 * 1024  # body buffered while connecting before reading pauses
LINGER = 2.0  # seconds to read and discard after an error response, so it is not reset

class BadRequest(Exception):
    """Raised inside a parser callback: the request is malformed or ambiguous."""


class Request:
    """One request on its way through the proxy."""

    __slots__ = (
        "client", "method", "head", "body", "body_bytes", "complete", "chunked",
        "keep_alive", "http10", "upgrade", "replayable", "dispatched", "attempts",
        "upstream", "backend", "held", "held_at", "released", "was_released",
        "responded", "finished", "resets",
    )

    def __init__(self, client: ClientConnection, method: bytes, head: bytes,
                 chunked: bool, keep_alive: bool, http10: bool, upgrade: bool) -> None:
        self.client = client
        self.method = method
        self.head = head
        self.body: list[bytes] = []  # framed as sent upstream; kept for a retry
        self.body_bytes = 0
        self.complete = False
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.http10 = http10
        self.upgrade = upgrade
        self.replayable = True
        self.dispatched = False
        self.attempts = 0
        self.upstream: UpstreamConnection | None = None
        self.backend: Backend | None = None
        self.held = False
        self.held_at = 0.0
        self.released = False  # released from the hold and not yet finished
        self.was_released = False
        self.responded = False  # some response bytes went to the client
        self.finished = False
        self.resets = 0  # times a backend reset this request before answering it

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT


class ClientConnection(asyncio.Protocol):
    """A connection accepted on a frontend's listener."""

    def __init__(self, frontend: Frontend) -> None:
        self.fe = frontend
        self.loop = frontend.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current: Request | None = None  # the request being answered
        self.parsing: Request | None = None  # the request whose bytes are being parsed
        self.pipeline: deque[Request] = deque()
        self.up_out: list[bytes] = []  # body bytes for the current upstream, per read
        self.tunnel: UpstreamConnection | None = None
        self.upgrading = False  # an Upgrade request was read: no more HTTP from this client
        self.early: bytes = b""  # bytes after an Upgrade request, before the 101
        self.must_close = False
        self.closing = False  # the server is draining: close after the current response
        self.lingering = False
        self.in_head = False
        self.lost = False
        self.last_active = 0.0  # last request begun or response finished: the idle clock
        self.last_read = 0.0  # last bytes read: the clock of a slow request body
        self.write_paused_since = 0.0  # the client stopped reading our response (0: it reads)
        self.head_started = 0.0
        self.forwarded = b""
        self._reading_paused = False
        self._url = b""
        self._headers: list[bytes] = []
        self._head_size = 0
        self._xff: bytes | None = None
        self._te: bytes | None = None
        self._conn_tokens: bytes | None = None
        self._upgrade: bytes | None = None
        self._has_body = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0].encode() if isinstance(peer, tuple) else b"unix"
        self.forwarded = b"X-Forwarded-Proto: " + self.fe.proto + b"\r\n"
        self.last_active = self.last_read = self.loop.time()
        self.fe.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.lingering:
            return
        if self.upgrading:
            self.early += data  # the client speaks the upgraded protocol before the 101
            self.pause_reading()
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrading = True
            self.early = data[exc.args[0]:]
            self.pause_reading()
        except (httptools.HttpParserError, BadRequest):
            self.bad_request()
            return
        req = self.current
        if req is not None and not req.finished:
            if self.up_out:
                req.upstream.transport.write(b"".join(self.up_out))
                self.up_out.clear()
            elif not req.dispatched:
                req.dispatched = True
                self.fe.dispatch(req)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.peer_eof()
        req = self.current
        if (req is not None and not req.finished and req.complete and not req.held
                and self.parsing is None):
            # A half-close after a request in flight still wants its answer; a held
            # request's client that closes has most likely given up: drop it.
            self.must_close = True
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.fe.connection_closed(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        for req in (self.current, *self.pipeline):
            if req is not None and not req.finished:
                self.abandon(req)
        self.pipeline.clear()
        self.current = None

    def pause_writing(self) -> None:
        self.write_paused_since = self.loop.time()
        req = self.current
        if req is not None and req.upstream is not None:
            req.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused_since = 0.0
        req = self.current
        if req is not None and req.upstream is not None:
            req.upstream.transport.resume_reading()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.lingering:
            raise BadRequest("connection is closing")
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._xff = self._te = self._conn_tokens = self._upgrade = None
        self._has_body = False
        # Only a request resets the idle clock: bare CRLFs between requests do not.
        self.head_started = self.last_active = self.last_read  # set by data_received, just now
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD:
            raise BadRequest("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD:
            raise BadRequest("header section too large")
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"transfer-encoding":
                self._te = value if self._te is None else self._te + b"," + value
            elif lname == b"connection":
                value = value.lower()
                self._conn_tokens = (value if self._conn_tokens is None
                                     else self._conn_tokens + b"," + value)
            elif lname == b"upgrade":
                self._upgrade = value
            elif lname == b"x-forwarded-for":
                self._xff = value if self._xff is None else self._xff + b", " + value
            return
        if lname == b"content-length" and value.strip() not in (b"0", b""):
            self._has_body = True
        self._headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        if version not in ("1.1", "1.0") or method == b"CONNECT":
            raise BadRequest("unsupported version or method")
        chunked = False
        if self._te is not None:
            if not self._te.lower().rstrip().endswith(b"chunked"):
                raise BadRequest("transfer-encoding without chunked")
            chunked = True
        headers = self._headers
        if self._conn_tokens is not None:
            try:
                headers = drop_listed(headers, self._conn_tokens)
            except ListedProtected as exc:
                raise BadRequest(f"Connection names {exc}") from None
        upgrade = parser.should_upgrade() and self._upgrade is not None
        if upgrade and (chunked or self._has_body):
            # Whether the body belongs to HTTP or to the upgraded protocol depends on the
            # backend's answer: no framing is safe for both, so refuse it.
            raise BadRequest("Upgrade request with a body")
        xff = self.peer_ip if self._xff is None else self._xff + b", " + self.peer_ip
        parts = [b"%s %s HTTP/1.1\r\n" % (method, self._url), *headers,
                 b"X-Forwarded-For: ", xff, b"\r\n", self.forwarded]
        if chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if upgrade:
            parts.append(b"Connection: upgrade\r\nUpgrade: %s\r\n" % self._upgrade)
        parts.append(b"\r\n")
        req = Request(self, method, b"".join(parts), chunked, parser.should_keep_alive(),
                      version == "1.0", upgrade)
        self.parsing = req
        if self.current is None:
            self.current = req
        else:
            self.pipeline.append(req)
            self.pause_reading()

    def on_body(self, data: bytes) -> None:
        req = self.parsing
        if req is None or req.finished:
            return
        if req.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._add_body(req, data)

    def on_message_complete(self) -> None:
        req = self.parsing
        self.parsing = None
        if req is None or req.finished:
            return
        if req.chunked:
            self._add_body(req, b"0\r\n\r\n")
        req.complete = True

    def _add_body(self, req: Request, data: bytes) -> None:
        n = len(data)
        if req.upstream is not None and req is self.current:
            self.up_out.append(data)
            if req.replayable:
                req.body.append(data)
                req.body_bytes += n
                if req.body_bytes > REPLAY_LIMIT:
                    req.replayable = False
                    req.body.clear()
                    req.body_bytes = 0
            return
        req.body.append(data)
        req.body_bytes += n
        if req.held:
            self.fe.hold.add_bytes(req, n)
        elif req.body_bytes > BUFFER_LIMIT:
            self.pause_reading()

    # -- called by the frontend and the upstream side -----------------------------------

    def bound(self, req: Request, conn: UpstreamConnection) -> bytes:
        """The request got an upstream connection: the bytes to send it first."""
        req.upstream = conn
        self.resume_reading()
        if not req.body:
            return req.head
        data = b"".join((req.head, *req.body))
        if req.body_bytes > REPLAY_LIMIT:
            req.replayable = False
            req.body.clear()
            req.body_bytes = 0
        return data

    def start_tunnel(self, conn: UpstreamConnection) -> None:
        """The backend switched protocols: relay bytes both ways from now on."""
        self.tunnel = conn
        if self.early:
            conn.transport.write(self.early)
            self.early = b""
        self.resume_reading()

    def response_done(self, req: Request) -> None:
        """The backend's response to `req` was written out in full."""
        self._finish(req)
        self.last_active = self.loop.time()
        if not req.complete or req.upgrade:
            self.must_close = True  # the rest of the request (or the upgrade) is unusable
        if self.must_close or self.closing or not req.keep_alive:
            self.transport.close()
            return
        self.current = None
        if self.pipeline:
            nxt = self.current = self.pipeline.popleft()
            self.resume_reading()
            nxt.dispatched = True
            self.fe.dispatch(nxt)

    def upstream_failed(self, req: Request, retry: bool) -> None:
        """The backend failed `req`; retry it elsewhere when it was never processed."""
        if req.finished:
            return
        req.upstream = None
        if retry and req.replayable and not self.lost:
            self.fe.retry(req)
            return
        self.fe.stats.failed += 1
        self._finish(req)
        if req.responded:
            self.transport.abort()
        else:
            self.fe.count_status(502)
            self.reply_and_close(BAD_GATEWAY)

    def reject_held(self, req: Request, retry_after: int) -> None:
        """A bound of the hold was reached: 503 with Retry-After, never a silent loss."""
        self.fe.count_status(503)
        self._finish(req)
        self.reply_and_close(self.fe.overflow_response)

    def abandon(self, req: Request) -> None:
        """The client went away: forget `req` wherever it is."""
        if req.held:
            self.fe.hold.drop(req)
        conn = req.upstream
        if conn is not None:
            req.upstream = None
            conn.abort()  # a half-sent request or half-read response cannot be reused
        self._finish(req)

    def _finish(self, req: Request) -> None:
        if req.finished:
            return
        req.finished = True
        if req.held:
            self.fe.hold.drop(req)
        if req.released:
            self.fe.hold.done(req)

    # -- closing ------------------------------------------------------------------------

    def bad_request(self) -> None:
        self.fe.stats.bad_requests += 1
        req = self.current
        if req is not None and not req.finished:
            self.abandon(req)
            if req.responded:
                self.transport.abort()
                return
        self.fe.count_status(400)
        self.reply_and_close(BAD_REQUEST)

    def reply_and_close(self, response: bytes) -> None:
        """Send a final response, then close without resetting it away.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the response in flight; so shut down writing and read on for a moment first.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.lingering = True
        self.must_close = True
        self.parser = None
        transport.write(response)
        self.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()

    def idle(self) -> bool:
        return (self.current is None and self.parsing is None and not self.in_head
                and not self.lingering)

    def timeout_head(self) -> None:
        self.fe.count_status(408)
        self.reply_and_close(TIMEOUT)

    def timeout_body(self) -> None:
        """The request body stalled: 408 if no answer began, else cut the connection."""
        req = self.current
        if req is not None and not req.finished:
            self.abandon(req)  # a half-sent body makes its upstream connection unusable
            if req.responded:
                self.transport.abort()
                return
        self.timeout_head()

    @property
    def reading_paused(self) -> bool:
        """True while the proxy itself holds back reading (backpressure, pipelining)."""
        return self._reading_paused

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
