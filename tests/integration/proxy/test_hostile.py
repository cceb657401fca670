"""Hostile input against a running proxy: 400 and close; never a crash or a leaked connection."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.proxy.proxy_support import frontend, raw_exchange, wait_ready
from tests.support.waiting import wait_until

BAD = {
    "content-length and transfer-encoding": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two content-lengths": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                           b"Content-Length: 2\r\n\r\nab",
    "invalid chunk size": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\nabc\r\n0\r\n\r\n",
    "transfer-encoding not chunked": b"POST / HTTP/1.1\r\nHost: a\r\n"
                                     b"Transfer-Encoding: gzip\r\n\r\n",
    "header section over 64 KiB": b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70_000
                                  + b"\r\n\r\n",
    "many headers over 64 KiB": b"GET / HTTP/1.1\r\n"
                                + b"".join(b"X-%d: %s\r\n" % (i, b"c" * 100) for i in range(700))
                                + b"\r\n",
    "bad request line": b"GET/HTTP/1.1\r\n\r\n",
    "garbage": b"\x00\x01\x02 hello\r\n\r\n",
    "http/0.9": b"GET /\r\n\r\n",
    "connect": b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\n\r\n",
    "space in header name": b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
    "bare LF in chunk": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\nabc\r\n0\r\n\r\n",
}


@pytest.fixture
def proxy_and_backend(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    return proxy, b1


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_requests_get_400_and_close(proxy_and_backend, name):
    proxy, b1 = proxy_and_backend
    reply = raw_exchange(proxy.port("web"), BAD[name])
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert reply.endswith(b"400 Bad Request\n")  # and then the proxy closed
    _assert_clean(proxy)


def _assert_clean(proxy) -> None:
    """No client connection left open, the proxy alive and still serving."""
    wait_until(lambda: not proxy.client.stats()["web"]["connections"], 5, interval=0.02,
               message=lambda: f"no client connection left: {proxy.client.stats()}")
    assert proxy.alive()
    assert raw_exchange(proxy.port("web"),
                        b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                        ).startswith(b"HTTP/1.1 200")


# Byte streams built to be near-HTTP: valid pieces, mutated, with random bytes in between.
_tokens = st.sampled_from([
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"/", b"/echo", b" HTTP/1.1", b" HTTP/1.0",
    b" HTTP/2.0", b"\r\n", b"\n", b"\r", b"Host: a", b"Content-Length: ", b"Content-Length: 5",
    b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity",
    b"Connection: close", b"Connection: Upgrade", b"Upgrade: websocket", b"Expect: 100-continue",
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"ffffffffffffffffff\r\n", b": ", b" ", b"\t", b"\x00",
    b"\xff", b"hello", b"\r\n\r\n", b"X-Forwarded-For: 1.2.3.4",
])
_streams = st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(_tokens, st.binary(max_size=8)), max_size=40).map(b"".join),
)


def test_generated_byte_streams(proxy_and_backend):
    proxy, _ = proxy_and_backend
    port = proxy.port("web")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=_streams)
    def exchange(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the proxy may have answered 400 and closed before all was sent
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail(f"the proxy neither answered nor closed: {data!r}")
        # Whatever came back is HTTP responses, and a 400 is the last thing said.
        assert reply == b"" or reply.startswith(b"HTTP/1.1 "), reply[:100]
        if b"HTTP/1.1 400" in reply:
            assert reply.endswith(b"400 Bad Request\n")
        assert proxy.alive()

    exchange()
    _assert_clean(proxy)  # after every stream: no connection left open, still serving
    assert proxy.client.backends("web")[0]["inflight"] == 0


def test_no_leak_after_the_storm(proxy_and_backend):
    proxy, _ = proxy_and_backend
    # Half-sent requests that the client abandons must not stay open either.
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", proxy.port("web")))
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial")
        socks.append(s)
    time.sleep(0.2)
    for s in socks:
        s.close()
    _assert_clean(proxy)
    assert proxy.client.backends("web")[0]["inflight"] == 0
