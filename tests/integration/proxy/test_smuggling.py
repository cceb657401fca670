"""Request smuggling and desynchronised backend connections, sent as raw bytes over real sockets.

Each test shows what the backend read (its request log), so a request hidden in another's
body would be seen there.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.integration.proxy.proxy_support import frontend, raw_exchange, wait_ready
from tests.integration.proxy.raw_backend import RawBackend, ok

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

CONNECTION_NAMES_FRAMING = {
    "content-length": b"POST /front HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "content-length among others": b"POST /front HTTP/1.1\r\nHost: a\r\n"
                                   b"Connection: keep-alive, x-a, content-length\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "second connection header": b"POST /front HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n"
                                b"Connection: Content-Length\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(SMUGGLED), SMUGGLED),
    "transfer-encoding": b"POST /front HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                         % (len(SMUGGLED), SMUGGLED),
    "host": b"GET /front HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n",
}

UPGRADE_WITH_BODY = {
    "content-length": b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "chunked": b"POST /front HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
               % (len(SMUGGLED), SMUGGLED),
}


@pytest.fixture
def web(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    return proxy, b1


def _requests(backend) -> list[str]:
    return [line for line in backend.seen() if "/healthcheck" not in line]


@pytest.mark.parametrize("name", sorted(CONNECTION_NAMES_FRAMING))
def test_connection_header_naming_a_framing_header_is_refused(web, name):
    proxy, b1 = web
    port = proxy.port("web")
    reply = raw_exchange(port, CONNECTION_NAMES_FRAMING[name])
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    victim = raw_exchange(port, b"GET /victim HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert json.loads(victim.split(b"\r\n\r\n", 1)[1])["url"] == "/victim"
    assert _requests(b1) == ["b1 GET /victim"]  # neither the front request nor a smuggled one


@pytest.mark.parametrize("name", sorted(UPGRADE_WITH_BODY))
def test_upgrade_request_with_a_body_is_refused(web, name):
    proxy, b1 = web
    reply = raw_exchange(proxy.port("web"), UPGRADE_WITH_BODY[name])
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert not any("/smuggled" in line for line in b1.seen())


def test_upgrade_answered_without_switching_does_not_return_the_connection_to_the_pool(web):
    proxy, b1 = web
    port = proxy.port("web")
    raw_exchange(port, b"GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert proxy.client.backend("web", "web-0")["idle_connections"] == 1  # a plain one is kept
    reply = raw_exchange(port, b"GET /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")  # the backend did not switch protocols
    # The pooled connection went to that request; after it, none is idle: it was closed.
    assert proxy.client.backend("web", "web-0")["idle_connections"] == 0


def _one_response(port: int, path: str) -> bytes:
    """Send one keep-alive request; everything that arrives within half a second after."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
        sock.settimeout(0.5)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return data


@pytest.mark.parametrize("when", ["same-read", "while-idle"])
def test_a_second_response_is_never_forwarded_nor_the_connection_reused(launch, when):
    def answer(path: str):
        if path == "/double":
            return ("send", ok(b"first") + ok(b"smuggled"))
        if path == "/late":
            return ("send-later", ok(b"first"), ok(b"smuggled"))
        return ("send", ok(path.encode()))

    with RawBackend(answer) as backend:
        proxy = launch.proxy([frontend("web", [backend.address])])
        wait_ready(proxy, "web", 1)
        port = proxy.port("web")
        first = _one_response(port, "/double" if when == "same-read" else "/late")
        assert first.endswith(b"\r\n\r\nfirst") and b"smuggled" not in first, first
        assert first.count(b"HTTP/1.1 ") == 1
        time.sleep(0.5)  # the late bytes arrive while the connection is idle
        second = _one_response(port, "/next")
        assert second.endswith(b"\r\n\r\n/next") and b"smuggled" not in second, second
        assert backend.connections == 2  # /next went on a new upstream connection
        assert proxy.client.backend("web", "web-0")["state"] == "ready"
