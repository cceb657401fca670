"""Backend life cycle under load: drain, sudden death, refused connections, graceful stop."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from hitless.proxy.admin.client import WaitTimeout
from tests.integration.proxy.proxy_support import Load, frontend, wait_ready
from tests.support.waiting import wait_until

LONG_REQUEST = 30.0  # the "30 s request in flight"


def _backend_of(proxy, fe: str, inflight: int = 1) -> str:
    return wait_until(lambda: next((b["id"] for b in proxy.client.backends(fe) if b["inflight"] >= inflight), None),
                      5, interval=0.01, message="a backend with the request in flight")


def test_drain_with_a_long_request_in_flight(launch):
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    proxy = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(proxy, "web", 2)
    port = proxy.port("web")
    by_id = {"web-0": b1, "web-1": b2}

    # A client connection that has already been served (keep-alive) before the drain.
    early = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(4):
        early.request("GET", "/before")
        assert early.getresponse().read()

    long_result: dict = {}

    def long_request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=LONG_REQUEST + 30)
        c.request("POST", f"/sleep/{LONG_REQUEST}", body=b"snapshot")
        resp = c.getresponse()
        long_result.update(status=resp.status, body=resp.read(),
                           backend=resp.getheader("X-Backend"), end=time.monotonic())

    started = time.monotonic()
    thread = threading.Thread(target=long_request)
    thread.start()
    draining_id = _backend_of(proxy, "web")
    draining = by_id[draining_id]
    other = b2 if draining is b1 else b1

    proxy.client.drain_backend("web", draining_id)
    seen_at_drain = len(draining.seen())
    state = proxy.client.backend("web", draining_id)
    assert state["state"] == "draining" and state["inflight"] == 1
    with pytest.raises(WaitTimeout):
        proxy.client.wait_backend("web", draining_id, "drained", timeout=0.5)

    with Load(port, threads=3, pause=0.01) as load:
        while thread.is_alive():
            early.request("GET", "/after")  # the old keep-alive connection keeps working
            resp = early.getresponse()
            assert resp.status == 200 and resp.getheader("X-Backend") == other.name
            resp.read()
            thread.join(0.5)
    gone = proxy.client.wait_backend("web", draining_id, "drained", timeout=10)

    assert long_result["status"] == 200 and long_result["body"] == b"slept"
    assert long_result["backend"] == draining.name
    assert long_result["end"] - started >= LONG_REQUEST
    assert gone["state"] == "gone"
    assert load.results and not load.failures()
    assert {r["backend"] for r in load.results} == {other.name}
    assert len(draining.seen()) == seen_at_drain  # no new request reached it


def test_drain_timeout_cuts_what_is_left(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    port = proxy.port("web")
    outcome: dict = {}

    def long_request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            c.request("GET", "/sleep/20")
            outcome["status"] = c.getresponse().status
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=long_request)
    thread.start()
    _backend_of(proxy, "web")
    proxy.client.drain_backend("web", "web-0", timeout=0.3)
    assert proxy.client.wait_backend("web", "web-0", "drained", timeout=5)["state"] == "gone"
    thread.join(10)
    assert outcome.get("status") == 502 or "error" in outcome


def test_backend_killed_mid_load(launch):
    """Only requests the dead backend had already read may fail; the rest are retried."""
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    proxy = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(proxy, "web", 2)
    with Load(proxy.port("web"), threads=8, paths=("/sleep/0.02",),
              methods=("GET", "POST")) as load:
        time.sleep(1.0)
        b1.kill()
        time.sleep(1.5)
    read_by_b1 = {line.split("id=")[1] for line in b1.seen() if "id=" in line}
    failures = load.failures()
    assert all(str(f["id"]) in read_by_b1 for f in failures), failures
    assert all(f["method"] == "POST" for f in failures)  # idempotent ones were retried
    assert len(failures) <= 8  # at most what was in flight when it died
    assert len(load.results) > 200
    assert proxy.client.backend("web", "web-0")["state"] == "down"
    assert proxy.client.stats()["web"]["retries"] >= 1  # what it had not answered went to b2
    late = [r for r in load.results if r["start"] > time.monotonic() - 1.0]
    assert late and all(r.get("backend") == "b2" for r in late)


def test_refused_connections_are_retried_elsewhere(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    dead = launch.backend("dead")
    dead.kill()  # its port now refuses connections
    proxy.client.add_backend("web", "dead", dead.address, ready=True)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port("web"), timeout=5)
    for i in range(20):
        conn.request("POST", f"/write?id={i}", body=b"x")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    assert proxy.client.backend("web", "dead")["state"] == "down"
    assert proxy.client.stats()["web"]["retries"] >= 1


def test_backend_stopping_gracefully_under_load(launch):
    """SIGTERM to a backend (it refuses new connections, closes idle ones): no failure seen
    for any request it did not read."""
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    proxy = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(proxy, "web", 2)
    with Load(proxy.port("web"), threads=6, methods=("GET", "POST")) as load:
        time.sleep(0.7)
        assert b1.stop() == 0
        time.sleep(0.7)
    read_by_b1 = {line.split("id=")[1] for line in b1.seen() if "id=" in line}
    failures = load.failures()
    assert all(str(f["id"]) in read_by_b1 for f in failures), failures
    assert len(load.results) > 200
