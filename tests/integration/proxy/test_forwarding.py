"""Forwarding over real sockets: framing, headers, keep-alive, tunnels, balancing."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

from tests.integration.proxy.proxy_support import frontend, raw_exchange, wait_ready


def _get(conn: http.client.HTTPConnection, path: str, **kw) -> tuple[int, dict, bytes]:
    conn.request(kw.pop("method", "GET"), path, **kw)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_forwarding_end_to_end(launch):
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    proxy = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(proxy, "web", 2)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port("web"), timeout=5)

    # keep-alive, alternating backends (least in flight, ties rotate)
    seen = set()
    for i in range(6):
        status, headers, body = _get(conn, f"/item/{i}?q=1",
                                     headers={"X-Forwarded-For": "10.9.9.9",
                                              "Connection": "keep-alive, X-Secret",
                                              "X-Secret": "hop", "Keep-Alive": "timeout=5",
                                              "Proxy-Authorization": "x"})
        assert status == 200
        info = json.loads(body)
        seen.add(info["backend"])
        assert info["url"] == f"/item/{i}?q=1"
        assert info["headers"]["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
        assert info["headers"]["x-forwarded-proto"] == "http"
        for hop in ("x-secret", "keep-alive", "proxy-authorization", "connection"):
            assert hop not in info["headers"]
    assert seen == {"b1", "b2"}

    # request body streamed with Content-Length, and chunked (re-framed)
    payload = b"x" * 300_000
    status, _, body = _get(conn, "/echo", method="POST", body=payload)
    assert status == 200 and body == payload
    status, _, body = _get(conn, "/echo", method="POST",
                           body=iter([b"abc", b"defg", b"h" * 70_000]), encode_chunked=True,
                           headers={"Transfer-Encoding": "chunked"})
    assert status == 200 and body == b"abcdefg" + b"h" * 70_000

    # chunked response passes re-chunked; HEAD and until-close framing
    status, headers, body = _get(conn, "/chunked/5")
    assert headers["transfer-encoding"] == "chunked" and body == b"".join(
        f"chunk{i};".encode() for i in range(5))
    status, headers, body = _get(conn, "/x", method="HEAD")
    assert status == 200 and body == b""
    status, headers, body = _get(conn, "/until-close")
    assert body == b"until-close-body" and headers.get("connection") == "close"
    conn.close()

    # HTTP/1.0 client: answered, then closed
    reply = raw_exchange(proxy.port("web"), b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply

    # pipelined requests are answered in order on one connection
    reply = raw_exchange(proxy.port("web"),
                         b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n"
                         b"GET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [u.decode() for u in _urls(reply)] == ["/p1", "/p2", "/p3"]


def _urls(reply: bytes) -> list[bytes]:
    import re

    return re.findall(rb'"url": "([^"]+)"', reply)


def test_upgrade_is_tunnelled(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    with socket.create_connection(("127.0.0.1", proxy.port("web")), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\nearly-")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        data = head.split(b"\r\n\r\n", 1)[1]
        while len(data) < len(b"early-"):
            data += sock.recv(4096)
        assert data == b"early-"
        backend = proxy.client.backends("web")[0]
        assert backend["tunnels"] == 1 and backend["inflight"] == 1
        # Draining waits for open tunnels, however long they last.
        proxy.client.drain_backend("web", "web-0")
        for i in range(20):
            sock.sendall(b"ping%d" % i)
            want = b"ping%d" % i
            got = b""
            while len(got) < len(want):
                got += sock.recv(4096)
            assert got == want
        assert proxy.client.backend("web", "web-0")["state"] == "draining"
    gone = proxy.client.wait_backend("web", "web-0", "drained", timeout=5)
    assert gone["state"] == "gone" and gone["inflight"] == 0 and gone["tunnels"] == 0


def test_least_inflight_avoids_a_busy_backend(launch):
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    proxy = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(proxy, "web", 2)
    port = proxy.port("web")
    results = []

    def slow() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        results.append(_get(c, "/sleep/2")[1]["x-backend"])

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    states = {b["id"]: b["inflight"] for b in proxy.client.backends("web")}
    assert sorted(states.values()) == [1, 2]
    # Every quick request goes to the backend with fewer requests in flight.
    idle = min(states, key=states.get)
    idle_name = {"web-0": "b1", "web-1": "b2"}[idle]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(5):
        assert _get(c, "/quick")[1]["x-backend"] == idle_name
    for t in threads:
        t.join()
    assert len(results) == 3
