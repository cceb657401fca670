"""The network side of tests: free TCP ports on 127.0.0.1 (for what a test or a benchmark binds,
or has a spec bind), and a GET retried until a server answers."""

from __future__ import annotations

import http.client
import random
import socket
from pathlib import Path

from tests.support.waiting import wait_until


def free_port() -> int:
    """A TCP port nothing listens on right now (from the ephemeral range)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int) -> int:
    """The first of `count` consecutive TCP ports free right now, below the ephemeral range.

    For the ports a spec reserves for its instances, bound seconds or minutes later: in the
    ephemeral range the client connections of whatever runs beside could take them meanwhile.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        first = random.randrange(10000, low - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise OSError(f"no {count} consecutive free ports below {low}")


def http_get(host: str, port: int, path: str = "/", timeout: float = 10.0, interval: float = 0.05) -> tuple[int, bytes]:
    """GET http://host:port/path, tried again until the server answers or `timeout` seconds pass:
    (status, body)."""

    def once() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    return wait_until(once, timeout, interval, message=f"an answer from http://{host}:{port}{path}")
