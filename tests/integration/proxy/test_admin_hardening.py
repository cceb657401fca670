"""The admin API on loopback TCP against clients without the token: raw bytes, real sockets."""

from __future__ import annotations

import socket
import time

import pytest

from hitless.proxy.admin.client import AdminClient
from tests.support.net import free_port

TOKEN = "s3cret"


def _start(launch, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    proxy = launch.proxy(extra=["--admin-tcp", f"127.0.0.1:{port}",
                                "--admin-token-file", str(token)])
    return proxy, port


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything until the server closes; and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        data += b"<timeout>"
    return data, time.monotonic() - started


@pytest.fixture
def admin(launch, tmp_path):
    return _start(launch, tmp_path)


def test_token_is_checked_before_the_body_is_read(admin):
    _, port = admin
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # A large body is announced and never sent: the answer must not wait for it.
        sock.sendall(b"POST /v1/frontends HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
        reply, took = _read_all(sock, 3.0)
    assert reply.startswith(b"HTTP/1.1 401 ") and b"<timeout>" not in reply, reply
    assert took < 1.0


def test_unauthenticated_connections_are_bounded_and_timed_out(admin):
    proxy, port = admin
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            reply, took = _read_all(extra, 3.0)
        assert reply == b"" and took < 1.0  # the 17th is closed at once, unread
        assert proxy.client.status()["pid"] == proxy.pid  # the Unix socket still answers
        started = time.monotonic()
        reply, took = _read_all(idle[0], 10.0)
        assert reply == b"" and time.monotonic() - started < 7.0  # closed after the timeout
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert AdminClient(tcp=f"127.0.0.1:{port}", token=TOKEN).status()["pid"] == proxy.pid


def test_aborted_body_leaves_no_traceback(launch, tmp_path, capfd):
    # Started in the test, not in a fixture: capfd sees the proxy's stderr only from here.
    proxy, port = _start(launch, tmp_path)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/frontends HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"name\":")
    time.sleep(0.5)
    assert AdminClient(tcp=f"127.0.0.1:{port}", token=TOKEN).status()["pid"] == proxy.pid
    err = capfd.readouterr().err
    assert "Traceback" not in err and "IncompleteReadError" not in err, err
