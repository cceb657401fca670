"""netapi over real sockets: a subprocess on a free port, a temp database."""

from __future__ import annotations

import http.client
import json

import pytest

from hitless_demo.localrun import run_migrate, running_netapi, start_netapi


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object = None):
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload else {}
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    document = json.loads(raw) if raw and response.getheader("Content-Type") == "application/json" else raw
    return response, document


@pytest.fixture
def app(tmp_path):
    with running_netapi(tmp_path, version="1.0") as running:
        yield running


def test_crud_filters_and_version_header_on_one_keep_alive_connection(app):
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        response, doc = request(conn, "POST", "/v2.0/networks", {"network": {"name": "temp"}})
        assert response.status == 201
        sock = conn.sock  # the same connection must serve every request below
        net_id = doc["network"]["id"]
        request(conn, "POST", "/v2.0/networks", {"network": {"name": "other"}})
        response, doc = request(conn, "GET", "/v2.0/networks?name=temp")
        assert [n["id"] for n in doc["networks"]] == [net_id]
        response, doc = request(conn, "GET", f"/v2.0/networks/{net_id}")
        assert doc["network"]["name"] == "temp"
        response, _ = request(conn, "DELETE", f"/v2.0/networks/{net_id}")
        assert response.status == 204
        response, doc = request(conn, "GET", f"/v2.0/networks/{net_id}")
        assert response.status == 404 and doc["NeutronError"]["type"] == "NetworkNotFound"
        for path in ("/", "/v2.0/extensions", "/healthcheck", "/nowhere"):
            response, _ = request(conn, "GET", path)
            assert response.getheader("X-Netapi-Version") == "1.0", path
        assert conn.sock is sock
    finally:
        conn.close()


def test_malformed_request_line_gets_a_json_error_with_the_version(app):
    import socket

    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        chunks = []
        while chunk := sock.recv(4096):  # the server closes after an error
            chunks.append(chunk)
        answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 400") and "Connection: close" in answer
    assert "X-Netapi-Version: 1.0" in answer and "NeutronError" in answer


def test_2_0_differs_from_1_0_and_two_replicas_share_the_database(tmp_path):
    with running_netapi(tmp_path, version="1.0") as v1:
        # 2.0 does not migrate at start: its expand phase runs first, as a one-shot job.
        with pytest.raises(RuntimeError, match="too old for netapi 2.0"):
            start_netapi(tmp_path, version="2.0")
        expanded = run_migrate(tmp_path, "expand", "2.0")
        assert expanded.returncode == 0, expanded.stderr
        with running_netapi(tmp_path, version="2.0") as v2:
            _check_side_by_side(v1, v2)


def _check_side_by_side(v1, v2) -> None:
    c1 = http.client.HTTPConnection("127.0.0.1", v1.port, timeout=5)
    c2 = http.client.HTTPConnection("127.0.0.1", v2.port, timeout=5)
    try:
        _, doc = request(c1, "POST", "/v2.0/networks", {"network": {"name": "from-1"}})
        response, doc2 = request(c2, "GET", f"/v2.0/networks/{doc['network']['id']}")
        assert response.getheader("X-Netapi-Version") == "2.0"
        assert doc2["network"]["revision_number"] == 1 and doc2["network"]["mtu"] == 1500
        request(c2, "POST", "/v2.0/networks", {"network": {"name": "from-2"}})
        _, listed = request(c1, "GET", "/v2.0/networks")
        assert [n["name"] for n in listed["networks"]] == ["from-1", "from-2"]
        assert all("revision_number" not in n for n in listed["networks"])
    finally:
        c1.close()
        c2.close()


def test_bad_configuration_exits_with_one_line(tmp_path):
    with pytest.raises(RuntimeError, match="HITLESS_PORT must be a port number"):
        start_netapi(tmp_path, env={"HITLESS_PORT": "nope"})
