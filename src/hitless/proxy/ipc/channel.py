"""Messages between the proxy's own processes: JSON frames, file descriptors attached.

A frame is a 4-byte big-endian length, then a JSON object. A frame may carry descriptors
(SCM_RIGHTS): its object counts them under ``"fds"``, and they travel with the frame's first
byte, so the receiver takes them, in order, from the descriptors it has received so far.

`Channel` drives one end of a Unix stream socket from the running event loop; `send_blocking`
and `receive_blocking` serve the fork server, which has no event loop.
"""

from __future__ import annotations

import array
import asyncio
import json
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("hitless.proxy")

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
MAX_FDS = 64  # per frame; frames here carry one or two
_FD_SIZE = array.array("i").itemsize
_CMSG_SPACE = socket.CMSG_SPACE(MAX_FDS * _FD_SIZE)
_READS_PER_WAKEUP = 16

Message = dict[str, Any]
Received = tuple[Message, list[socket.socket]]


class ChannelClosed(ConnectionError):
    """The other end went away (or this one was closed)."""


def encode(message: Message, nfds: int = 0) -> bytes:
    """One frame: the length, then the message as JSON (counting `nfds` descriptors)."""
    if nfds:
        message = {**message, "fds": nfds}
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes is over {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


class Decoder:
    """Turns received bytes and descriptors back into messages, each with its sockets."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fds: deque[int] = deque()

    def feed(self, data: bytes, fds: Sequence[int] = ()) -> list[Received]:
        """Messages completed by `data`; their descriptors become sockets owned by the caller."""
        self._buffer += data
        self._fds.extend(fds)
        out: list[Received] = []
        buf = self._buffer
        while len(buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(buf)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes is over {MAX_FRAME}")
            if len(buf) < HEADER.size + size:
                break
            message = json.loads(bytes(buf[HEADER.size:HEADER.size + size]))
            del buf[:HEADER.size + size]
            if not isinstance(message, dict):
                raise ValueError("a message must be a JSON object")
            count = int(message.pop("fds", 0))
            if count > len(self._fds):
                raise ValueError(f"message announces {count} descriptor(s) that never came")
            socks = [socket.socket(fileno=self._fds.popleft()) for _ in range(count)]
            out.append((message, socks))
        return out

    def close(self) -> None:
        """Close descriptors received but not claimed by any message."""
        while self._fds:
            os.close(self._fds.popleft())


def recv_chunk(sock: socket.socket, max_fds: int = MAX_FDS) -> tuple[bytes, list[int]]:
    """One recvmsg: bytes and the descriptors that came with them (close-on-exec, so that
    none leaks into a process this one starts)."""
    space = _CMSG_SPACE if max_fds == MAX_FDS else socket.CMSG_SPACE(max_fds * _FD_SIZE)
    data, ancdata, flags, _ = sock.recvmsg(65536, space, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
            fds.extend(got)
    if flags & socket.MSG_CTRUNC:
        log.error("descriptors were lost on a channel (more than %d in one message)", max_fds)
    return data, fds


def _rights(fds: Sequence[int]) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


def send_blocking(sock: socket.socket, message: Message, fds: Sequence[int] = ()) -> None:
    """Send one message on a blocking socket."""
    data = encode(message, len(fds))
    sent = sock.sendmsg([data], _rights(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def receive_blocking(sock: socket.socket, decoder: Decoder) -> list[Received] | None:
    """Read once from a blocking socket: the messages it completed; None at end of stream."""
    data, fds = recv_chunk(sock)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    return decoder.feed(data, fds)


class Channel:
    """One end of a message channel, driven by the running event loop.

    `send` never blocks: what the socket cannot take yet is queued (descriptors duplicated, so
    the caller may close its own at once). `receive` returns None once the other end is gone.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._decoder = Decoder()
        self._inbox: asyncio.Queue[Received | None] = asyncio.Queue()
        self._outbox: deque[tuple[memoryview, list[int]]] = deque()
        self._writing = False
        self.closed = asyncio.Event()
        self._loop.add_reader(self._fd, self._on_readable)

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Queue one message (with duplicates of `fds`) and write what the socket takes now."""
        if self.closed.is_set():
            raise ChannelClosed("the channel is closed")
        data = encode(message, len(fds))
        self._outbox.append((memoryview(data), [os.dup(fd) for fd in fds]))
        self._flush()

    async def receive(self) -> Received | None:
        """The next message and its sockets; None once the channel is closed."""
        if self.closed.is_set() and self._inbox.empty():
            return None
        return await self._inbox.get()

    def close(self) -> None:
        """Close this end; pending messages and descriptors are dropped."""
        if self.closed.is_set():
            return
        self.closed.set()
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        for _, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()
        self._decoder.close()
        self._sock.close()
        self._inbox.put_nowait(None)

    def _flush(self) -> None:
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                sent = self._sock.sendmsg([data], _rights(fds)) if fds else self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            for fd in fds:
                os.close(fd)  # they left with the first byte
            if sent < len(data):
                self._outbox[0] = (data[sent:], [])
                break
            self._outbox.popleft()
        wanted = bool(self._outbox)
        if wanted != self._writing:
            self._writing = wanted
            if wanted:
                self._loop.add_writer(self._fd, self._flush)
            else:
                self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, fds = recv_chunk(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self.close()
                return
            try:
                messages = self._decoder.feed(data, fds)
            except ValueError as exc:
                log.error("dropping a channel that sent garbage: %s", exc)
                self.close()
                return
            for item in messages:
                self._inbox.put_nowait(item)
