"""A worker process: serves client traffic on the listening sockets its master sends.

It talks to the master over one channel (a Unix socket pair), and only to it:

    master -> worker   {"op": "listen", "name"} + 1 socket    a frontend's listener, to keep
                       {"op": "init", "frontends": [...]}     the routing table to serve
                       {"op": "http", "method", "target", "body"}   an admin request
                       {"op": "snapshot"}                      stats and frontends, at once
                       {"op": "stop"} / {"op": "cut"}          drain and exit / cut and exit
    worker -> master   {"re": id, ...}                         the reply to a request

Messages are handled in the order they come, so changes apply in the master's order. The
long ones (waits, removing a frontend) run on while the next message is read; what they
change, they change before their first pause.

The end of the channel means the master is gone: the worker lets go of its listeners at once
(so that a new master can bind them), finishes what is in flight for a short grace, exits.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
from typing import Any

from hitless.proxy.admin.metrics import stats
from hitless.proxy.ipc.channel import Channel, Message
from hitless.proxy.ipc.link import reply
from hitless.proxy.worker.api import WorkerApi
from hitless.proxy.worker.server import ProxyServer

log = logging.getLogger("hitless.proxy")

ORPHAN_GRACE = 5.0  # seconds an orphaned worker lets in-flight requests finish


def _long(method: str, target: str) -> bool:
    path = target.split("?", 1)[0]
    return (method == "GET" and path.endswith("/wait")) or (
        method == "DELETE" and path.count("/") == 3)  # DELETE /v1/frontends/NAME


class Worker:
    """One worker: its frontends, its admin API (reached through the master), its life."""

    def __init__(self, channel: Channel, index: int) -> None:
        self.channel = channel
        self.index = index
        self.server = ProxyServer(index)
        self.api = WorkerApi(self.server)
        self._stop = asyncio.Event()
        self._cut = asyncio.Event()
        self._orphan = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Serve until told to stop (by the master, SIGTERM, or the master's death)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        reader = loop.create_task(self._read())
        await self._stop.wait()
        await self.server.drain(self._cut, ORPHAN_GRACE if self._orphan else None)
        reader.cancel()
        self.channel.close()
        log.info("worker %d (pid %d) stopped", self.index, os.getpid())
        return 0

    def _on_sigterm(self) -> None:
        # Only flags: the first asks for a drain, the second cuts.
        if self._stop.is_set():
            self._cut.set()
        self._stop.set()

    async def _read(self) -> None:
        while (item := await self.channel.receive()) is not None:
            message, socks = item
            try:
                await self._handle(message, socks)
            except Exception:
                log.exception("worker %d: message %s failed", self.index, message.get("op"))
                reply(self.channel, message, status=500, payload={"error": "worker error"})
        if not self._stop.is_set():
            log.warning("worker %d (pid %d): the master is gone; letting go of the listeners",
                        self.index, os.getpid())
            self._orphan = True
            self._stop.set()

    async def _handle(self, message: Message, socks: list[socket.socket]) -> None:
        op = message.get("op")
        if op == "listen":
            old = self.server.listeners.pop(message["name"], None)
            if old is not None:
                old.close()
            self.server.listeners[message["name"]] = socks[0]
        elif op == "init":
            for route in message["frontends"]:
                await self.server.restore(route)
            reply(self.channel, message, pid=os.getpid())
        elif op == "http":
            if _long(message["method"], message["target"]):
                task = asyncio.get_running_loop().create_task(self._http(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(0)  # let it make its change before the next message
            else:
                await self._http(message)
        elif op == "snapshot":
            fes = self.server.frontends.values()
            reply(self.channel, message, stats=stats(fes), frontends=[f.to_dict() for f in fes])
        elif op == "stop":
            self._stop.set()
        elif op == "cut":
            self._stop.set()
            self._cut.set()
        else:
            for sock in socks:
                sock.close()
            reply(self.channel, message, status=400, payload={"error": f"unknown op {op!r}"})

    async def _http(self, message: Message) -> None:
        body: Any = message.get("body")
        raw = json.dumps(body).encode() if body is not None else b""
        status, payload = await self.api.handle(message["method"], message["target"], raw)
        reply(self.channel, message, status=status, payload=payload)


def main(sock: socket.socket, index: int) -> int:
    """The worker process's life, on its own uvloop event loop; its exit status."""
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    # What the fork server imported lives as long as the worker: keep the collector's full
    # passes from walking it (and from writing to the pages it shares with the fork server).
    gc.freeze()

    async def serve() -> int:
        return await Worker(Channel(sock), index).run()

    return uvloop.run(serve())
