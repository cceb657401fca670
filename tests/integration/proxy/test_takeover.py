"""Hand-over: a new proxy process takes the listeners over under load, without a gap."""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import sys
import threading
import time

from tests.integration.proxy.proxy_support import Load, frontend, wait_ready


def test_takeover_under_continuous_load(launch):
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    old = launch.proxy([frontend("web", [b1.address, b2.address])])
    wait_ready(old, "web", 2)
    port = old.port("web")
    old.client.drain_backend("web", "web-1")  # a state the new process must inherit
    long_result: dict = {}

    def long_request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/sleep/3")
        resp = c.getresponse()
        long_result.update(status=resp.status, body=resp.read())

    with Load(port, threads=3, pause=0.002) as keepalive, \
            Load(port, threads=3, pause=0.002, new_connections=True) as fresh:
        time.sleep(0.7)
        thread = threading.Thread(target=long_request)
        thread.start()
        time.sleep(0.2)
        new = launch.proxy(takeover=True, admin_socket=old.admin_socket)
        assert old.popen.wait(20) == 0  # drained its connections (the 3 s request too), exited
        exited_at = time.monotonic()
        time.sleep(0.7)
    thread.join(10)

    assert long_result == {"status": 200, "body": b"slept"}
    for load in (keepalive, fresh):
        assert not load.failures(), load.failures()[:5]
        assert any(r["start"] > exited_at for r in load.results)
    assert len(fresh.results) > 200
    status = new.client.status()
    assert status["predecessor_pid"] == old.pid and not status["predecessor_running"]
    assert new.port("web") == port
    states = {b["id"]: b["state"] for b in new.client.backends("web")}
    assert states == {"web-0": "ready", "web-1": "gone"}
    assert new.client.stats()["web"]["requests"]["200"] > 0
    mode = stat.S_IMODE(os.stat(new.admin_socket).st_mode)
    assert mode == 0o600


def test_takeover_is_refused_while_paused(launch):
    b1 = launch.backend("b1")
    old = launch.proxy([frontend("web", [b1.address])])
    old.client.pause("web")
    result = subprocess.run(
        [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(old.admin_socket),
         "--takeover"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "refused the takeover" in result.stderr and "paused: web" in result.stderr
    assert old.alive() and old.client.status()["pid"] == old.pid


def test_takeover_without_a_running_proxy(launch, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(tmp_path / "none.sock"),
         "--takeover"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "no proxy answers" in result.stderr


def test_sigterm_finishes_in_flight_requests_then_exits(launch):
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    port = proxy.port("web")
    result: dict = {}

    def long_request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/sleep/1")
        resp = c.getresponse()
        result.update(status=resp.status, body=resp.read())

    thread = threading.Thread(target=long_request)
    thread.start()
    time.sleep(0.3)
    assert proxy.stop(20) == 0
    thread.join(5)
    assert result == {"status": 200, "body": b"slept"}
    assert not proxy.admin_socket.exists()
