"""Unix socket paths of any length.

A socket address holds 107 bytes of path, and a project in a deep directory has a longer one
(`.../.hitless/proxy.sock`). A longer path is reached through a descriptor of its directory,
`/proc/self/fd/N/NAME`, which the kernel resolves like the path itself: binding there makes the
socket at the real path, and connecting there reaches it. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

MAX_PATH = 107  # sizeof(sun_path) less its terminating NUL


@contextlib.contextmanager
def reachable(path: str) -> Iterator[str]:
    """A path to bind or connect to that names `path` and fits a socket address."""
    if len(os.fsencode(path)) <= MAX_PATH:
        yield path
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def bind(sock: socket.socket, path: str) -> None:
    """`sock.bind(path)`, whatever the path's length."""
    with reachable(path) as short:
        sock.bind(short)


def connect(sock: socket.socket, path: str) -> None:
    """`sock.connect(path)`, whatever the path's length."""
    with reachable(path) as short:
        sock.connect(short)
