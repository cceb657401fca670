"""Upstream side of forwarding: one keep-alive connection to a backend, one request at a time.

The response is parsed with httptools; its head is rebuilt without hop-by-hop headers and its
body streamed to the client (re-chunked when the backend chunks). Whatever one read of the
backend produced goes to the client in one write.

When a connection dies before any response byte, the request may be retried elsewhere: always
when it was never written; when it was written, if its method is idempotent or the backend
reset it (a reset means the backend never read it) — but only once: a request that backends
keep dropping is failed, not sent around to crash them all. Such a failure is the request's,
not the backend's: only connect failures and health checks change a backend's state.

A backend that sends more than the one response asked for (bytes after it, in the same read or
while the connection is idle) is out of step: that response is the last on the connection.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING

import httptools

from hitless.proxy.traffic.messages import HOP_BY_HOP
from hitless.proxy.traffic.pool import State

if TYPE_CHECKING:
    from hitless.proxy.traffic.http import ClientConnection, Request
    from hitless.proxy.traffic.pool import Backend, Pool

RESET_PROBE = 0.005  # seconds to wait for a reset after a silent close, to tell who read what
MAX_DROPS = 1  # retries of a request that a backend took and dropped without an answer
_RESET_ERRORS = (errno.ECONNRESET, errno.EPIPE)
_STATUS_LINES = {200: b"HTTP/1.1 200 OK\r\n"}


class UpstreamConnection(asyncio.Protocol):
    """A connection from the proxy to one backend."""

    def __init__(self, backend: Backend, pool: Pool) -> None:
        self.backend = backend
        self.pool = pool
        self.transport: asyncio.Transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.req: Request | None = None
        self.client: ClientConnection | None = None
        self.out: list[bytes] = []
        self.closed = False
        self.reused = False
        self.got_bytes = False
        self.tunnel = False
        self._cut = False
        self._client_eof = self._backend_eof = False
        self.idle_since = 0.0
        self._reason = b""
        self._headers: list[bytes] = []
        self._chunked = False
        self._length = False
        self._rechunk = False
        self._until_close = False
        self._interim = False
        self._switching = False
        self._done = False
        self._reusable = True

    # -- use by the frontend ------------------------------------------------------------

    def usable(self) -> bool:
        return not self.closed and not self.transport.is_closing()

    def bind(self, req: Request) -> None:
        """Send `req` on this connection (head and whatever body has arrived)."""
        self.req = req
        self.client = client = req.client
        self.got_bytes = False
        req.backend = self.backend
        self.transport.write(client.bound(req, self))

    def close(self) -> None:
        self.closed = True
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def cut(self) -> None:
        """Abort on purpose (a drain timed out): the request fails, it is not retried."""
        self._cut = True
        self.abort()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.backend.conns.add(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            self.client.transport.write(data)
            return
        req = self.req
        if req is None:
            self.abort()  # bytes nobody asked for: this connection is out of step
            return
        self.got_bytes = True
        out = self.out
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self._switching:
                self._flush()
                self._start_tunnel(data[exc.args[0]:])
                return
            self._bad_response()
            return
        except httptools.HttpParserError:
            if self._done:
                # A complete response, then bytes of another one: the first is the answer,
                # the rest is never forwarded and the connection never reused.
                self._reusable = False
                if out:
                    self._flush()
                self._finish()
                return
            self._bad_response()
            return
        if out:
            self._flush()
        if self._done:
            self._finish()

    def eof_received(self) -> bool | None:
        if self.tunnel:
            return self.peer_eof_from_backend()
        req = self.req
        if req is not None and not self.got_bytes and not req.idempotent:
            # The backend closed without answering a request it may or may not have read:
            # a reset that follows says it never read it. Look again in a moment.
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(RESET_PROBE, self._probe_reset)
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        backend = self.backend
        backend.conns.discard(self)
        req, client = self.req, self.client
        if req is None:
            return
        self.req = None
        if self.tunnel:
            self.tunnel = False
            backend.tunnels -= 1
            backend.release()
            client.transport.close()
            client._finish(req)
            return
        backend.release()
        if self._until_close and self._done is False and req.responded:
            self._reusable = False
            client.response_done(req)
        elif not self.got_bytes and not self._cut:
            # A reset means the backend never read the request; an idempotent one is safe
            # to send again either way.
            retry = _dropped(req, req.idempotent or isinstance(exc, ConnectionResetError))
            client.upstream_failed(req, retry)
        else:
            client.upstream_failed(req, False)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_reading()  # the backend reads the body slower than it comes

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_reading()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            raise ExtraResponse("a second response to one request")
        self._reason = b""
        self._headers = []
        self._chunked = self._length = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"transfer-encoding":
                self._chunked = value.lower().rstrip().endswith(b"chunked")
            elif lname == b"upgrade":
                self._headers.append(b"Upgrade: %s\r\n" % value)
            return
        if lname == b"content-length":
            self._length = True
        self._headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        req = self.req
        client = self.client
        line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d %s\r\n" % (status, self._reason)
        if status < 200:
            if status == 101 and req.upgrade:
                self._switching = True
                self.out.append(b"".join((line, *self._headers, b"Connection: upgrade\r\n\r\n")))
                req.responded = True
            else:
                self._interim = True  # 100 Continue and friends; the final answer follows
                if not req.http10:
                    self.out.append(b"".join((line, *self._headers, b"\r\n")))
                    req.responded = True
            return
        self.client.fe.count_status(status)
        req.responded = True
        headers = self._headers
        close = client.must_close or client.closing or not req.keep_alive
        self._rechunk = self._until_close = False
        if req.method == b"HEAD" or status == 204 or status == 304:
            if req.method == b"HEAD":
                # httptools cannot be told a HEAD response has no body: answer now, and
                # do not reuse the connection (its parser would wait for that body).
                self._done = True
                self._reusable = False
        elif self._chunked:
            if req.http10:
                close = True
            else:
                self._rechunk = True
                headers.append(b"Transfer-Encoding: chunked\r\n")
        elif not self._length:
            self._until_close = True  # the body ends when the backend closes
            close = True
        if close:
            client.must_close = True
            headers.append(b"Connection: close\r\n")
        elif req.http10:
            headers.append(b"Connection: keep-alive\r\n")
        self.out.append(b"".join((line, *headers, b"\r\n")))

    def on_body(self, data: bytes) -> None:
        if self._done:
            return
        if self._rechunk:
            self.out.append(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.out.append(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._done:
            return
        if self._rechunk:
            self.out.append(b"0\r\n\r\n")
        self._reusable = self._reusable and self.parser.should_keep_alive()
        self._done = True

    # -- internals ----------------------------------------------------------------------

    def _flush(self) -> None:
        out = self.out
        self.client.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def _finish(self) -> None:
        req, client, backend = self.req, self.client, self.backend
        self.req = None
        self._done = False
        backend.release()
        # After an Upgrade request the backend may already speak the other protocol.
        if (self._reusable and req.complete and not req.upgrade
                and backend.state is State.READY and not self.closed):
            self.reused = True
            self.client = None
            self.idle_since = client.loop.time()
            backend.idle.append(self)
        else:
            self.close()
        self._reusable = True
        client.response_done(req)

    def _bad_response(self) -> None:
        req, client = self.req, self.client
        self.req = None
        self.out.clear()
        self.abort()
        self.backend.release()
        client.upstream_failed(req, False)

    def _start_tunnel(self, rest: bytes) -> None:
        self.tunnel = True
        self._switching = False
        self.backend.tunnels += 1
        client = self.client
        client.start_tunnel(self)
        if rest:
            client.transport.write(rest)

    def peer_eof(self) -> bool:
        """The client half-closed a tunnel: pass it on; once both sides did, close."""
        self._client_eof = True
        if self._backend_eof or not self.transport.can_write_eof():
            self.close()
            return False
        self.transport.write_eof()
        return True

    def peer_eof_from_backend(self) -> bool:
        self._backend_eof = True
        client = self.client
        if self._client_eof or client is None or not client.transport.can_write_eof():
            return False  # the transport closes; connection_lost closes the client
        client.transport.write_eof()
        return True

    def _probe_reset(self) -> None:
        req = self.req
        if req is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        reset = False
        try:
            reset = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in _RESET_ERRORS
        except OSError:
            pass
        self.req = None
        self.closed = True
        self.backend.conns.discard(self)
        self.transport.abort()
        self.backend.release()
        self.client.upstream_failed(req, _dropped(req, reset))


class ExtraResponse(Exception):
    """Raised in a parser callback: the backend answered more than it was asked."""


def _dropped(req: Request, retry: bool) -> bool:
    """A backend took `req` and closed without answering: may it go to another backend?"""
    req.resets += 1
    return retry and req.resets <= MAX_DROPS
