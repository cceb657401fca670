"""Free TCP ports on this machine, for what a run binds itself (frontends, replicas)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on now (from the ephemeral range)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int) -> int:
    """The first of `count` consecutive TCP ports free now, below the ephemeral range.

    Ports a spec reserves for instances are bound minutes later: from the ephemeral range,
    the client connections of what runs beside could take them meanwhile.
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
