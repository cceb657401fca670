"""The admin API and its client, over the Unix socket and loopback TCP."""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
import sys

import pytest

from hitless.errors import ExitStatus
from hitless.proxy.admin.client import AdminClient, ProxyError, ProxyUnavailable, WaitTimeout
from tests.integration.proxy.proxy_support import frontend, wait_ready
from tests.support.net import free_port


def test_operations_through_the_client(launch, tmp_path):
    b1, b2 = launch.backend("b1"), launch.backend("b2")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    admin_port = free_port()
    proxy = launch.proxy(extra=["--admin-tcp", f"127.0.0.1:{admin_port}",
                                "--admin-token-file", str(token)])
    assert stat.S_IMODE(os.stat(proxy.admin_socket).st_mode) == 0o600
    client = proxy.client

    # frontends are added at run time
    added = client.add_frontend(frontend("api"))
    assert added["name"] == "api" and added["backends"] == []
    with pytest.raises(ProxyError) as err:
        client.add_frontend(frontend("api"))
    assert err.value.status == 409
    port = proxy.port("api")

    # backends: add, wait ready, list
    assert client.add_backend("api", "g1", b1.address)["state"] == "warming"
    assert client.wait_backend("api", "g1", "ready", timeout=5)["state"] == "ready"
    client.add_backend("api", "g2", b2.address, ready=True)
    assert {b["id"]: b["state"] for b in client.backends("api")} == {"g1": "ready",
                                                                     "g2": "ready"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(4):
        conn.request("GET", "/")
        conn.getresponse().read()
    assert client.frontends()[0]["backends"][0]["served"] >= 1

    # drain, wait drained, remove
    assert client.drain_backend("api", "g1")["state"] in ("draining", "gone")
    assert client.wait_backend("api", "g1", "drained", timeout=5)["state"] == "gone"
    assert client.remove_backend("api", "g1")["id"] == "g1"
    assert client.wait_backend("api", "g1", "drained", timeout=1)["state"] == "gone"
    with pytest.raises(ProxyError) as err:
        client.backend("api", "g1")
    assert err.value.status == 404

    # a backend that never passes its checks: the wait times out
    client.add_backend("api", "bad", "127.0.0.1:1")
    with pytest.raises(WaitTimeout):
        client.wait_backend("api", "bad", "ready", timeout=0.3)

    # pause / resume, stats, metrics
    assert client.pause("api")["paused"] is True
    assert client.resume("api")["paused"] is False
    assert client.stats()["api"]["requests"]["200"] == 4
    metrics = client.metrics()
    assert 'hitless_proxy_requests_total{frontend="api",status="200"} 4.0' in metrics
    assert 'hitless_proxy_backend_state{backend="g2",frontend="api",state="ready"} 1.0' in metrics

    # errors are answered, not crashed on
    with pytest.raises(ProxyError) as err:
        client.add_backend("api", "x", "not-an-address")
    assert err.value.status == 400
    with pytest.raises(ProxyError) as err:
        client.frontend("nope")
    assert err.value.status == 404
    with pytest.raises(ProxyError) as err:
        client.add_frontend({"name": "z", "listen": "127.0.0.1:0", "bogus": 1})
    assert err.value.status == 400 and "bogus" in err.value.message

    # loopback TCP: refused without the token, served with it
    assert AdminClient(tcp=f"127.0.0.1:{admin_port}", token="s3cret").status()["pid"] == proxy.pid
    for bad in (None, "wrong"):
        with pytest.raises(ProxyError) as err:
            AdminClient(tcp=f"127.0.0.1:{admin_port}", token=bad).status()
        assert err.value.status == 401
    with pytest.raises(ProxyError) as err:
        AdminClient(tcp=f"127.0.0.1:{admin_port}", token="s3cret")._call("POST", "/v1/takeover")
    assert err.value.status == 403

    # removing a frontend stops its listener
    client.remove_frontend("api")
    assert client.frontends() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_client_reports_a_missing_proxy(tmp_path):
    with pytest.raises(ProxyUnavailable) as err:
        AdminClient(str(tmp_path / "nothing.sock")).status()
    assert err.value.exit_status == ExitStatus.RUNTIME_UNAVAILABLE


def test_second_proxy_on_the_same_socket_is_refused(launch):
    proxy = launch.proxy([frontend("web")])
    result = subprocess.run(
        [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(proxy.admin_socket)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == ExitStatus.FAILED
    assert "already answers" in result.stderr and "--takeover" in result.stderr
    assert proxy.client.status()["pid"] == proxy.pid


@pytest.mark.parametrize("args, message", [
    (["--admin-tcp", "127.0.0.1:9"], "needs --admin-token-file"),
    (["--admin-tcp", "nowhere", "--admin-token-file", "TOKEN"], "address must be host:port"),
    (["--config", "MISSING.yaml"], "cannot read"),
    (["--config", "BAD.yaml"], "unknown key"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "TOKEN").write_text("t")
    (tmp_path / "BAD.yaml").write_text("frontends:\n  - {name: a, listen: '127.0.0.1:0', x: 1}\n")
    args = [str(tmp_path / a) if a.isupper() or a.endswith(".yaml") else a for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(tmp_path / "a.sock"),
         *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == ExitStatus.BAD_INPUT
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_yaml_config_file(launch, tmp_path):
    b1 = launch.backend("b1")
    config = tmp_path / "frontends.yaml"
    config.write_text(f"""frontends:
  - name: web
    listen: 127.0.0.1:0
    health: {{path: /healthcheck, interval: 0.1, rise: 1}}
    hold: {{max_requests: 5}}
    backends: [{b1.address}]
""")
    proxy = launch.proxy(extra=["--config", str(config)])
    wait_ready(proxy, "web", 1)
    assert proxy.client.frontend("web")["config"]["hold"]["max_requests"] == 5


def test_long_waits_are_made_of_bounded_polls(launch, monkeypatch):
    import threading
    import time

    import hitless.proxy.admin.client as client_module

    monkeypatch.setattr(client_module, "LONG_POLL", 0.2)
    b1 = launch.backend("b1")
    proxy = launch.proxy([frontend("web", [b1.address])])
    wait_ready(proxy, "web", 1)
    port = proxy.port("web")

    def slow() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/sleep/1.5")
        c.getresponse().read()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    proxy.client.drain_backend("web", "web-0")
    started = time.monotonic()
    assert proxy.client.wait_backend("web", "web-0", "drained", timeout=10)["state"] == "gone"
    assert 0.8 < time.monotonic() - started < 5
    thread.join()
