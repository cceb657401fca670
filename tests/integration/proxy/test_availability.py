"""What one client must not be able to do to everybody else: mark backends down, keep
connections for ever, exhaust descriptors. Real proxy, real sockets."""

from __future__ import annotations

import http.client
import resource
import socket
import threading
import time

from hitless.proxy.admin.client import ProxyUnavailable
from tests.integration.proxy.proxy_support import frontend, raw_exchange, wait_ready
from tests.integration.proxy.raw_backend import RawBackend, ok
from tests.support.waiting import wait_until


def _states(proxy) -> list[str]:
    return [b["state"] for b in proxy.client.backends("web")]


def test_reset_after_a_complete_response_leaves_the_backend_ready(launch):
    """A backend that answers, then resets the connection (as on an unread body) is fine."""
    with RawBackend(lambda path: ("send-reset", ok(b"done"))
                    if path == "/answer-then-reset" else ("send", ok())) as backend:
        proxy = launch.proxy([frontend("web", [backend.address], health={"interval": 5.0})])
        wait_ready(proxy, "web", 1)
        port = proxy.port("web")
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/answer-then-reset", body=b"x" * 10)
            assert conn.getresponse().read() == b"done"
            conn.close()
            time.sleep(0.2)  # the reset arrives while the connection is idle in the pool
        assert _states(proxy) == ["ready"]
        assert proxy.client.backend("web", "web-0")["failures"] == 0


def test_a_request_backends_reset_is_retried_once_and_marks_nobody_down(launch):
    def answer(path: str):
        return ("reset",) if path == "/query-of-death" else ("send", ok(path.encode()))

    with RawBackend(answer) as b1, RawBackend(answer) as b2:
        # Slow health checks: any state change in this test would come from the requests.
        proxy = launch.proxy([frontend("web", [b1.address, b2.address],
                                       health={"interval": 5.0})])
        wait_ready(proxy, "web", 2)
        port = proxy.port("web")
        for _ in range(2):
            reply = raw_exchange(port, b"GET /query-of-death HTTP/1.1\r\nHost: a\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 502 "), reply[:100]
        # Sent once and retried once, each time: not five times around every backend.
        assert b1.paths().count("/query-of-death") + b2.paths().count("/query-of-death") == 4
        assert _states(proxy) == ["ready", "ready"]
        started = time.monotonic()
        reply = raw_exchange(port, b"GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert reply.endswith(b"/fine") and time.monotonic() - started < 1.0  # not held


def test_a_dropped_request_is_retried_on_another_backend(launch):
    def flaky(path: str):
        return ("reset",) if path.startswith("/flaky") else ("send", ok(path.encode()))

    b2 = launch.backend("b2")
    with RawBackend(flaky) as b1:
        proxy = launch.proxy([frontend("web", [b1.address, b2.address], health={"interval": 5.0})])
        wait_ready(proxy, "web", 2)
        port = proxy.port("web")
        # A long request in flight on b2: least-in-flight alone would send every retry back to b1.
        slow: list[threading.Thread] = []
        deadline = time.monotonic() + 5
        while proxy.client.backend("web", "web-1")["inflight"] == 0:  # b1 answers at once
            assert time.monotonic() < deadline, "no long request reached b2"
            slow.append(threading.Thread(target=raw_exchange, args=(
                port, b"GET /sleep/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 10)))
            slow[-1].start()
            time.sleep(0.1)
        for i in range(5):
            reply = raw_exchange(port, f"GET /flaky/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]
        for thread in slow:
            thread.join()
        # Each one b1 dropped went to b2 on its one retry, never back to b1.
        assert [p for p in b1.paths() if p.startswith("/flaky")] == [f"/flaky/{i}" for i in range(5)]
        assert _states(proxy) == ["ready", "ready"]  # a dropped request marks nobody down


def test_bare_crlf_does_not_keep_an_idle_connection_open(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address], timeouts={"keepalive": 1.0})])
    wait_ready(proxy, "web", 1)
    with socket.create_connection(("127.0.0.1", proxy.port("web")), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        sock.settimeout(0.3)
        closed_after = None
        while time.monotonic() - started < 4.0:
            try:
                sock.sendall(b"\r\n")
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None and closed_after < 3.0


def test_slow_request_body_gets_408(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address], timeouts={"body": 1.0})])
    wait_ready(proxy, "web", 1)
    started = time.monotonic()
    reply = raw_exchange(proxy.port("web"), b"POST /echo HTTP/1.1\r\nHost: a\r\n"
                                            b"Content-Length: 100\r\n\r\n0123456789", timeout=6)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:100]
    assert time.monotonic() - started < 4.0
    assert proxy.client.backend("web", "web-0")["inflight"] == 0


def test_client_that_does_not_read_is_cut_and_frees_the_backend(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address], timeouts={"send": 1.0})])
    wait_ready(proxy, "web", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", proxy.port("web")))
    try:
        sock.sendall(b"GET /chunked/200000 HTTP/1.1\r\nHost: a\r\n\r\n")  # about 2.5 MB
        time.sleep(0.5)
        assert proxy.client.backend("web", "web-0")["inflight"] == 1
        wait_until(lambda: not proxy.client.stats()["web"]["connections"], 5, interval=0.1,
                   message="the proxy letting go of a client that reads nothing")
        assert proxy.client.backend("web", "web-0")["inflight"] == 0
    finally:
        sock.close()


def _answered(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Of these sockets (each sent a request), the ones that got a response in time."""
    got = []
    deadline = time.monotonic() + timeout
    for sock in socks:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(65536).startswith(b"HTTP/1.1 200 "):
                got.append(sock)
        except TimeoutError:
            pass
    return got


def test_connection_cap_queues_new_connections_and_keeps_admin_reachable(launch, monkeypatch,
                                                                         capfd):
    monkeypatch.setenv("HITLESS_PROXY_MAX_CONNECTIONS", "20")
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    port = proxy.port("web")
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(25)]
    try:
        for sock in socks:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        served = _answered(socks, 3.0)
        assert len(served) == 20  # the cap; the other 5 wait in the listen queue
        assert proxy.client.status()["pid"] == proxy.pid  # the admin API still answers
        assert proxy.client.stats()["web"]["connections"] == 20
        waiting = [s for s in socks if s not in served]
        for sock in served[:5]:
            sock.close()
        assert len(_answered(waiting, 3.0)) == 5  # not refused: served once room was made
    finally:
        for sock in socks:
            sock.close()
    assert "connection cap reached" in capfd.readouterr().err


def test_out_of_descriptors_never_marks_a_backend_down(launch, monkeypatch, capfd):
    monkeypatch.setenv("HITLESS_PROXY_MAX_CONNECTIONS", "100000")  # no cap: run out for real
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    port = proxy.port("web")
    [worker] = proxy.worker_pids()  # the process that serves the frontend
    open_fds = len(list(__import__("pathlib").Path(f"/proc/{worker}/fd").iterdir()))
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (open_fds + 30, open_fds + 30))
    states: set[str] = set()
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            try:
                states.update(_states(proxy))
            except ProxyUnavailable:
                pass  # without a cap, the admin socket cannot accept either: that is the point
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(45)]
        time.sleep(0.5)  # the proxy accepts until it has no descriptor left
        for sock in socks:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(2.0)  # requests fail to connect upstream; health checks cannot run
        replies = []
        for sock in socks:
            sock.settimeout(0.05)
            try:
                replies.append(sock.recv(65536)[:12])
            except (TimeoutError, OSError):
                pass
    finally:
        for sock in socks:
            sock.close()
        watching.set()
        watcher.join()
    assert b"HTTP/1.1 503" in replies  # the path was hit: no descriptor for the upstream
    assert states == {"ready"}, states
    err = capfd.readouterr().err
    assert "out of resources" in err, err[-3000:]
    reply = raw_exchange(port, b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
