"""Hand-over of the listening sockets from a running proxy to a new one (SCM_RIGHTS).

The new master sends ``POST /v1/takeover`` on the admin Unix socket. The old one answers with
its routing table (frontends, their backends and states), the admin and listening sockets
attached to that answer as file descriptors. The new master starts its workers on them, and
once they all serve sends ``ACK``; only then do the old master's workers stop accepting. Both
accept from the same kernel queues meanwhile, so no connection is refused. The old process
keeps the admin connection open until it exits, which tells the new one when the requests it
still served are done.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import socket
from typing import Any

from hitless.errors import OperationFailed, RuntimeUnavailable
from hitless.proxy.ipc import unixpath
from hitless.proxy.ipc.channel import recv_chunk

ACK = b"ACK\n"
TIMEOUT = 30.0
MAX_FDS = 512


async def send_listeners(writer: asyncio.StreamWriter, state: dict[str, Any],
                         fds: list[int]) -> None:
    """Old side: answer the takeover request with `state`, the sockets `fds` attached."""
    body = json.dumps(state).encode()
    message = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    # A duplicate of the connection's descriptor: the transport has no sendmsg of its own.
    raw = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
    try:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            try:
                sent = raw.sendmsg([message], ancillary)
                break
            except BlockingIOError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.005)
        if sent < len(message):
            writer.write(message[sent:])  # the descriptors went with the first byte
            await writer.drain()
    finally:
        raw.close()


def receive_listeners(path: str) -> tuple[socket.socket, dict[str, Any], list[socket.socket]]:
    """New side: ask the proxy at `path` for its listeners.

    Returns the admin connection (send ACK on it, then keep it: it closes when the old
    process exits), the old process's state, and the sockets in the order the state names.
    """
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(TIMEOUT)
    try:
        unixpath.connect(conn, path)
    except OSError as exc:
        conn.close()
        raise RuntimeUnavailable(f"no proxy answers on {path} to take over from: "
                                 f"{exc.strerror or exc}") from None
    fds: list[int] = []
    try:
        conn.sendall(b"POST /v1/takeover HTTP/1.1\r\nHost: hitless\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += _recv(conn, fds)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(body) < length:
            body += _recv(conn, fds)
        payload = json.loads(body[:length] or b"{}")
        if status != 200:
            raise OperationFailed(f"the running proxy refused the takeover: "
                                  f"{payload.get('error', status)}")
        socks = [socket.socket(fileno=fd) for fd in fds]
        fds = []
        conn.settimeout(None)
        return conn, payload, socks
    except BaseException:
        for fd in fds:
            os.close(fd)
        conn.close()
        raise


def _recv(conn: socket.socket, fds: list[int]) -> bytes:
    data, got = recv_chunk(conn, MAX_FDS)
    fds.extend(got)
    if not data:
        raise OperationFailed("the running proxy closed the takeover connection")
    return data
