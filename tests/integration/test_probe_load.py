"""The probe against real servers on loopback: every request recorded (and only those the server
saw), new-connection clients open one connection per request, keep-alive clients reuse theirs,
failures are classified, open loop keeps its rate, and the seeds' create/delete cycle against
netapi loses nothing."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from hitless.probe import stats
from hitless.probe.load import Workload
from hitless.probe.session import ProbeSession
from hitless_demo.localrun import running_netapi


class Scripted(http.server.ThreadingHTTPServer):
    """Answers GET with 200 and `X-Netapi-Version: 1.0`; /fail with 503; /hangup closes the
    connection without a response. Counts requests and connections."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests = 0
        self.close_requests = 0
        self.connections = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        with self.server.lock:
            self.server.requests += 1
            self.server.close_requests += self.headers.get("Connection", "").lower() == "close"
        if self.path == "/hangup":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = b"{}"
        self.send_response(503 if self.path == "/fail" else 200)
        self.send_header("X-Netapi-Version", "1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = Scripted()
    srv.thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def run_for(seconds: float, *workloads: Workload, grace: float = 5.0):
    with ProbeSession(workloads=list(workloads), grace=grace) as probe:
        time.sleep(seconds)
    return probe.result


def test_every_request_is_recorded_and_connections_behave_as_asked(server):
    result = run_for(1.0, Workload(server.url + "/", "get", concurrency=2, modes=("new", "keep"), interval=0.005))
    records = result.records
    assert len(records) > 100
    assert server.requests == len(records), "the probe recorded exactly what the server saw"
    assert all(r.ok and r.status == 200 and r.version == "1.0" for r in records)
    new = sum(1 for r in records if r.client == "new")
    keep = len(records) - new
    assert new > 20 and keep > 20
    assert server.close_requests == new, "new-connection clients send Connection: close"
    assert server.connections == new + 2, "each keep-alive client keeps its one connection"
    assert {r.client_id for r in records} == {0, 1, 2, 3}
    assert result.abandoned == 0 and result.started_at <= records[0].start <= records[-1].end <= result.finished_at


def test_failures_are_recorded_with_their_class(server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/"  # bound, not listening: refused
    try:
        result = run_for(0.6, Workload(server.url + "/fail", "get", 1, ("keep",), interval=0.05),
                         Workload(server.url + "/hangup", "get", 1, ("new",), interval=0.05),
                         Workload(refused_url, "get", 1, ("new",), interval=0.05))
    finally:
        closed.close()
    outcomes = {r.outcome for r in result.records}
    assert outcomes == {"503", "disconnected", "refused"}, outcomes
    assert not any(r.ok for r in result.records)
    s = stats.summarize(result.records)
    assert s["failed"] == len(result.records) and s["windows"] == 1


def test_open_loop_keeps_its_rate(server):
    result = run_for(2.0, Workload(server.url + "/", "get", modes=("new", "keep"), rate=100))
    assert 170 <= len(result.records) <= 210, len(result.records)
    gaps = sorted(b.start - a.start for a, b in zip(result.records, result.records[1:], strict=False))
    assert gaps[len(gaps) // 2] == pytest.approx(0.01, abs=0.004)


def test_neutron_cycle_and_long_requests_against_netapi(tmp_path):
    with running_netapi(tmp_path) as app:
        result = run_for(1.5, Workload(app.url, "neutron-cycle", concurrency=2, interval=0.1),
                         Workload(app.url, "long", concurrency=1, modes=("keep",), long_seconds=0.4))
    records = result.records
    creates = [r for r in records if r.op == "create"]
    deletes = [r for r in records if r.op == "delete"]
    assert len(creates) >= 20 and len(creates) == len(deletes), "a stop waits for the delete of every create"
    assert all(r.ok for r in records), [r for r in records if not r.ok][:3]
    assert {r.status for r in creates} == {201} and {r.status for r in deletes} == {204}
    ledger = stats.ledger(records)
    assert ledger == {"created": len(creates), "deleted": len(creates), "not_deleted": []}
    snapshots = [r for r in records if r.op == "snapshot"]
    assert 2 <= len(snapshots) <= 4 and all(r.latency >= 0.4 for r in snapshots)
    assert stats.summarize(records)["latency_ms"]["count"] == len(records) - len(snapshots)


def test_requests_still_in_flight_after_the_grace_are_abandoned_not_failed(tmp_path):
    with running_netapi(tmp_path) as app:
        result = run_for(0.3, Workload(app.url, "long", 1, ("new",), long_seconds=2), grace=0.2)
    assert result.records == [] and result.abandoned == 1
