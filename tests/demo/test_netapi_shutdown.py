"""netapi's graceful shutdown, like oslo.service: refuse new, finish in-flight, close idle, exit 0."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time

import pytest

from hitless_demo.localrun import running_netapi
from tests.support.waiting import wait_until


def slow_request_in_thread(port: int, seconds: float) -> tuple[threading.Thread, dict]:
    """POST a snapshot of `seconds` in a thread; the result dict gets status, headers, body."""
    result: dict = {}
    sent = threading.Event()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 10)
        try:
            conn.request("POST", "/v2.0/snapshots", body=json.dumps({"snapshot": {"seconds": seconds}}),
                         headers={"Content-Type": "application/json"})
            sent.set()
            response = conn.getresponse()
            result.update(status=response.status, connection=response.getheader("Connection"),
                          body=json.loads(response.read()))
        except Exception as exc:  # reported through the result
            result["error"] = repr(exc)
        finally:
            sent.set()
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    sent.wait(5)
    return thread, result


def wait_for_log(app, text: str, timeout: float = 5.0) -> None:
    wait_until(lambda: text in app.log(), timeout, interval=0.02, message=lambda: f"{text!r} in the log: {app.log()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_refuses_new_and_exits_0(tmp_path, signum):
    seconds = 3.0 if signum == signal.SIGTERM else 1.0
    with running_netapi(tmp_path) as app:
        idle = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
        idle.request("GET", "/healthcheck")
        assert idle.getresponse().read() == b"OK"  # now an idle keep-alive connection
        thread, result = slow_request_in_thread(app.port, seconds)
        time.sleep(0.3)  # the request is being handled
        started = time.monotonic()
        app.signal(signum)
        wait_for_log(app, "stopped accepting")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", app.port), timeout=2).close()
        idle.sock.settimeout(5)
        assert idle.sock.recv(1) == b""  # the idle connection was closed by the server
        idle.close()
        assert app.wait(timeout=seconds + 10) == 0
        thread.join(5)
        assert result.get("status") == 201, result
        assert result["body"]["snapshot"]["seconds"] == seconds
        assert result["connection"] == "close"
        assert time.monotonic() - started >= seconds - 0.5
    assert "waiting for 1 in-flight request(s)" in app.log()


def test_shutdown_timeout_abandons_in_flight_work_and_exits_1(tmp_path):
    with running_netapi(tmp_path, env={"NETAPI_SHUTDOWN_TIMEOUT": "0.5"}) as app:
        thread, result = slow_request_in_thread(app.port, 30)
        time.sleep(0.3)
        started = time.monotonic()
        app.signal(signal.SIGTERM)
        assert app.wait(timeout=10) == 1
        assert time.monotonic() - started < 5
        thread.join(5)
        assert "status" not in result
        assert "shutdown timeout (0.5 s) reached" in app.log()


def test_keep_alive_request_arriving_during_drain_is_answered_with_connection_close(tmp_path):
    with running_netapi(tmp_path) as app:
        thread, result = slow_request_in_thread(app.port, 1.5)
        busy = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        busy.request("POST", "/v2.0/snapshots?seconds=1")  # in flight on its own keep-alive connection
        time.sleep(0.3)
        app.signal(signal.SIGTERM)
        response = busy.getresponse()
        assert response.status == 201 and response.getheader("Connection") == "close"
        response.read()
        busy.close()
        assert app.wait(timeout=10) == 0
        thread.join(5)
        assert result.get("status") == 201, result
