"""A small HTTP/1.1 backend for the proxy's tests, run as its own process.

    python backend_app.py --name b1 [--port 0] [--log FILE]

Prints ``PORT <n>`` once listening. Routes:
    /healthcheck        200, or 503 while the file <log>.unhealthy exists
    /sleep/<seconds>    answers after that long
    /echo               answers the request body
    /chunked/<n>        a chunked answer of n chunks
    /until-close        an answer without length, ended by closing the connection
    /ws                 101 Switching Protocols, then echoes raw bytes
    anything else       JSON describing the request
Every answer carries ``X-Backend: <name>``. With --log, each request is appended as
``<name> <method> <path>`` when its head is read, before it is answered.
SIGTERM: stop accepting, finish in-flight requests, exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import httptools


class Handler(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.tunnel = False
        self.queue: asyncio.Queue[tuple] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.app.conns.add(self)
        self.task = asyncio.get_running_loop().create_task(self.worker())

    def connection_lost(self, exc) -> None:
        self.app.conns.discard(self)
        if self.task:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            self.transport.write(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        method = self.parser.get_method().decode()
        self.app.log(f"{self.app.name} {method} {self.url.decode()}")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.app.inflight += 1
        self.queue.put_nowait((self.parser.get_method().decode(), self.url.decode(),
                               self.headers, b"".join(self.body), self.parser.should_keep_alive()))

    async def worker(self) -> None:
        while True:
            method, url, headers, body, keep = await self.queue.get()
            try:
                await self.respond(method, url, headers, body, keep)
            finally:
                self.app.inflight -= 1
                self.app.idle.set()

    def send(self, status: int, body: bytes, keep: bool, extra: str = "") -> None:
        head = (f"HTTP/1.1 {status} X\r\nX-Backend: {self.app.name}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}")
        if not keep or self.app.stopping:
            head += "Connection: close\r\n"
        self.transport.write(head.encode() + b"\r\n" + body)
        if not keep or self.app.stopping:
            self.transport.close()

    async def respond(self, method: str, url: str, headers: dict, body: bytes,
                      keep: bool) -> None:
        path = url.split("?")[0]
        if path == "/healthcheck":
            bad = self.app.log_path and os.path.exists(self.app.log_path + ".unhealthy")
            self.send(503 if bad else 200, b"ok", keep)
        elif path.startswith("/sleep/"):
            await asyncio.sleep(float(path.split("/")[2]))
            self.send(200, b"slept", keep)
        elif path == "/echo":
            self.send(200, body, keep)
        elif path.startswith("/chunked/"):
            n = int(path.split("/")[2])
            out = [f"HTTP/1.1 200 OK\r\nX-Backend: {self.app.name}\r\n"
                   f"Transfer-Encoding: chunked\r\n\r\n".encode()]
            for i in range(n):
                chunk = f"chunk{i};".encode()
                out.append(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            out.append(b"0\r\n\r\n")
            self.transport.write(b"".join(out))
        elif path == "/until-close":
            self.transport.write(b"HTTP/1.1 200 OK\r\nX-Backend: " + self.app.name.encode()
                                 + b"\r\n\r\nuntil-close-body")
            self.transport.close()
        elif path == "/ws" and headers.get("upgrade"):
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                                 + headers["upgrade"].encode()
                                 + b"\r\nConnection: Upgrade\r\n\r\n")
            self.tunnel = True
        else:
            info = {"backend": self.app.name, "method": method, "url": url,
                    "headers": headers, "body_length": len(body)}
            self.send(200, json.dumps(info).encode(), keep, "Content-Type: application/json\r\n")


class App:
    def __init__(self, name: str, log_path: str | None) -> None:
        self.name = name
        self.log_path = log_path
        self.logfile = open(log_path, "a", buffering=1) if log_path else None
        self.conns: set[Handler] = set()
        self.inflight = 0
        self.idle = asyncio.Event()
        self.stopping = False

    def log(self, line: str) -> None:
        if self.logfile:
            self.logfile.write(line + "\n")
            self.logfile.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    args = parser.parse_args()
    app = App(args.name, args.log)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Handler(app), "127.0.0.1", args.port,
                                      reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    app.stopping = True
    server.close()
    while app.inflight:
        app.idle.clear()
        await app.idle.wait()
    for conn in list(app.conns):
        if not conn.tunnel:
            conn.transport.close()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    sys.exit(0)
