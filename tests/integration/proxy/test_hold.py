"""Holding: pause under load, FIFO release, bounds answered 503 + Retry-After, drops."""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time

from tests.integration.proxy.proxy_support import Load, frontend, wait_ready
from tests.support.waiting import wait_until

PAUSE = 5.0  # the "pause for 5 s under load"


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"content-length: (\d+)", head, re.I)
            if m and len(body) >= int(m.group(1)):
                break
    return data


def _send(port: int, path: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def test_pause_under_load_releases_in_arrival_order(launch):
    """Two frontends paused together under load: "web" releases 16 at a time (the default),
    so the backend may read requests released together in any order, but none before one
    released a full window earlier (request k is let go only once every request but 15 of
    those before it has been answered); "strict" releases one at a time: exact arrival order.
    How late the backend reads a request is up to the backend (its event loop may read the
    connections released together in any order), so only earliness is bounded."""
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address]),
                          frontend("strict", [b1.address], hold={"release_concurrency": 1})])
    wait_ready(proxy, "web", 1)
    wait_ready(proxy, "strict", 1)
    ports = {"web": proxy.port("web"), "strict": proxy.port("strict")}
    ordered: list[socket.socket] = []
    with Load(ports["web"], threads=4, pause=0.005) as load, \
            Load(ports["strict"], threads=2, pause=0.005) as strict_load:
        time.sleep(0.5)
        proxy.client.pause("web")
        proxy.client.pause("strict")
        paused_at = time.monotonic()
        n = 0
        while time.monotonic() - paused_at < PAUSE:
            for name, port in ports.items():
                ordered.append(_send(port, f"/{name}?n={n}"))
            n += 1
            time.sleep(0.02)
        time.sleep(0.1)
        assert proxy.client.frontend("web")["held"] >= n
        resumed_at = time.monotonic()
        proxy.client.resume("web")
        proxy.client.resume("strict")
        replies = [_read_response(s) for s in ordered]
        time.sleep(0.5)
    for s in ordered:
        s.close()

    assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
    assert not load.failures() and not strict_load.failures()
    held = [r for r in load.results if r["start"] < resumed_at and r["end"] > resumed_at]
    assert held and all(r["end"] - r["start"] > PAUSE - 1.0 for r in held)
    log = "\n".join(b1.seen())
    strict = [int(x) for x in re.findall(r"/strict\?n=(\d+)", log)]
    assert strict == list(range(n))  # released in exactly the order they arrived
    window = [int(x) for x in re.findall(r"/web\?n=(\d+)", log)]
    assert sorted(window) == list(range(n))
    assert max(k - i for i, k in enumerate(window)) < 16  # never seen 16 places early
    stats = proxy.client.stats()
    for name in ports:
        assert stats[name]["held"] >= n and stats[name]["released"] == stats[name]["held"]
        assert stats[name]["rejected"] == {"max_requests": 0, "max_bytes": 0, "max_wait": 0}


def test_hold_bounds_answer_503_with_retry_after(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([
        frontend("count", [b1.address], hold={"max_requests": 3, "retry_after": 7}),
        frontend("wait", [b1.address], hold={"max_wait": 0.3, "retry_after": 2}),
        frontend("bytes", [b1.address], hold={"max_bytes": 1000}),
    ])
    for fe in ("count", "wait", "bytes"):
        wait_ready(proxy, fe, 1)
        proxy.client.pause(fe)

    # max_requests: the 4th and 5th are answered at once; the first 3 wait for resume.
    port = proxy.port("count")
    socks = []
    for i in range(5):
        socks.append(_send(port, f"/c?n={i}"))
        time.sleep(0.05)
    for s in socks[3:]:
        reply = _read_response(s)
        assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 7\r\n" in reply
    proxy.client.resume("count")
    assert all(_read_response(s).startswith(b"HTTP/1.1 200") for s in socks[:3])

    # max_wait
    started = time.monotonic()
    reply = _read_response(_send(proxy.port("wait"), "/w"))
    assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 2\r\n" in reply
    assert 0.25 <= time.monotonic() - started < 3

    # max_bytes
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port("bytes"), timeout=5)
    conn.request("POST", "/b", body=b"x" * 2000)
    resp = conn.getresponse()
    assert resp.status == 503 and resp.getheader("Retry-After") == "1"

    stats = proxy.client.stats()
    assert stats["count"]["rejected"]["max_requests"] == 2
    assert stats["wait"]["rejected"]["max_wait"] == 1
    assert stats["bytes"]["rejected"]["max_bytes"] == 1
    assert not any(line.endswith(("/w", "/b")) for line in b1.seen())
    metrics = proxy.client.metrics()
    assert 'hitless_proxy_rejected_total{frontend="count",reason="max_requests"} 2.0' in metrics


def test_held_request_of_a_gone_client_is_dropped(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    proxy.client.pause("web")
    _send(proxy.port("web"), "/gone").close()
    wait_until(lambda: proxy.client.stats()["web"]["hold_dropped"] == 1, 5, interval=0.02,
               message=lambda: f"the held request dropped: {proxy.client.stats()['web']}")
    assert proxy.client.frontend("web")["held"] == 0
    proxy.client.resume("web")
    time.sleep(0.2)
    assert not any("/gone" in line for line in b1.seen())


def test_requests_wait_for_a_first_ready_backend(launch):
    proxy = launch.proxy([frontend("web")])
    port = proxy.port("web")
    result: dict = {}

    def request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/first")
        resp = c.getresponse()
        result.update(status=resp.status, end=time.monotonic())

    started = time.monotonic()
    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.5)
    assert proxy.client.frontend("web")["held"] == 1
    b1 = launch.backend("b1")
    proxy.client.add_backend("web", "b1", b1.address)
    proxy.client.wait_backend("web", "b1", "ready", timeout=5)
    thread.join(10)
    assert result["status"] == 200 and result["end"] - started >= 0.5
