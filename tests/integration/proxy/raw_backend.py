"""A misbehaving backend for the proxy's tests: real sockets, scripted answers, every byte logged.

It runs in a thread of the test process. Each request it reads (head up to the blank line,
then a Content-Length body) is logged with the connection it came on, and answered by the
`answer(path)` callable given, which returns what to do:

    ("send", bytes)            write these bytes (one write, keep the connection)
    ("send-later", b1, b2)     write b1, then b2 a moment later (while the proxy holds it idle)
    ("send-reset", bytes)      write these bytes, then reset the connection (RST)
    ("reset",)                 reset the connection without answering

/healthcheck is always answered 200, on connections that are not counted.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

Action = tuple


def ok(body: bytes = b"ok") -> bytes:
    """A complete keep-alive 200 response."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class RawBackend:
    """A scripted HTTP/1.1 backend on 127.0.0.1; stop() closes it and every connection."""

    def __init__(self, answer: Callable[[str], Action]) -> None:
        self.answer = answer
        self.requests: list[tuple[int, str]] = []  # (connection number, request line)
        self.connections = 0  # connections that carried a request other than a health check
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def paths(self) -> list[str]:
        with self._lock:
            return [line.split()[1] for _, line in self.requests if len(line.split()) > 1]

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in list(self._conns):
            try:
                conn.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> RawBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        number: int | None = None
        buf = b""
        while not self._stop.is_set():
            while b"\r\n\r\n" not in buf:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    if self._stop.is_set():
                        return
                    continue
                except OSError:
                    return
                if not data:
                    conn.close()
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(buf) < length:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
            buf = buf[length:]
            path = lines[0].split()[1] if len(lines[0].split()) > 1 else ""
            if path == "/healthcheck":
                conn.sendall(ok())
                continue
            with self._lock:
                if number is None:
                    self.connections += 1
                    number = self.connections
                self.requests.append((number, lines[0]))
            action = self.answer(path)
            try:
                if action[0] == "send":
                    conn.sendall(action[1])
                elif action[0] == "send-later":
                    conn.sendall(action[1])
                    time.sleep(0.3)
                    conn.sendall(action[2])
                elif action[0] == "send-reset":
                    conn.sendall(action[1])
                    time.sleep(0.05)
                    _reset(conn)
                    return
                elif action[0] == "reset":
                    _reset(conn)
                    return
            except OSError:
                return


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
