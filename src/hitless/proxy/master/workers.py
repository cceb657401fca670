"""The master's workers: started through the fork server, replaced at once when one dies.

Each worker slot has a task that starts a worker, waits for it to end, and starts the next.
A worker is started by queueing, on a new channel, the listening sockets and the routing
table as they are at that instant, then asking the fork server for a process to read them:
any change made after that instant is sent to the new channel too, in order.

The end of a worker's channel is its death (nobody else holds its end): the replacement is
asked for at once. The fork server reports how the old one ended, for the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hitless.errors import OperationFailed
from hitless.proxy.ipc.channel import Channel, Message
from hitless.proxy.ipc.link import Link, LinkClosed
from hitless.proxy.launch import describe_exit

log = logging.getLogger("hitless.proxy")

SPAWN_TIMEOUT = 30.0  # the fork server's first start imports the whole proxy
INIT_TIMEOUT = 30.0
QUICK = 1.0  # a worker that dies sooner than this after its start is crash-looping
MAX_BACKOFF = 5.0
CUT_WAIT = 5.0  # after a cut, seconds before the master kills what is left

# (listeners by frontend name, routing table as plain data) at one instant
InitSnapshot = tuple[list[tuple[str, socket.socket]], list[dict[str, Any]]]


@dataclass
class Slot:
    """One worker position: the current process in it and its history."""

    index: int
    pid: int | None = None
    started: float | None = None  # when the current process began serving (epoch seconds)
    restarts: int = 0
    link: Link | None = None
    live: bool = False
    born: float = 0.0  # monotonic time of the current process's start
    quick_deaths: int = 0

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "pid": self.pid, "started": self.started,
                "restarts": self.restarts, "live": self.live}


class Workers:
    """Keeps `count` workers running until `stop`."""

    def __init__(self, count: int, snapshot: Callable[[], InitSnapshot], log_level: str,
                 on_exit: Callable[[Slot], None]) -> None:
        self.slots = [Slot(i) for i in range(count)]
        self.stopping = False
        self.forker_pid: int | None = None
        self._snapshot = snapshot
        self._log_level = log_level
        self._on_exit = on_exit
        self._forker: Link | None = None
        self._pids: dict[int, int] = {}  # pid of a worker process -> its slot
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    # -- starting -----------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> None:
        """Start every worker; OperationFailed if they are not all serving within `timeout`."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep(slot)) for slot in self.slots]
        deadline = loop.time() + timeout
        while not all(slot.live for slot in self.slots):
            if loop.time() > deadline:
                down = [str(s.index) for s in self.slots if not s.live]
                raise OperationFailed(f"worker(s) {', '.join(down)} did not start within "
                                      f"{timeout:.0f}s; see the log")
            await self._wait_change(deadline - loop.time())

    def _forker_link(self) -> Link:
        if self._forker is not None and not self._forker.closed.is_set():
            return self._forker
        mine, theirs = socket.socketpair()
        os.set_inheritable(theirs.fileno(), True)
        try:
            pid = os.posix_spawn(
                sys.executable, [sys.executable, "-m", "hitless.proxy.master.forker",
                                 str(theirs.fileno()), self._log_level], os.environ,
                setsigmask=(), setsigdef=(signal.SIGTERM, signal.SIGINT))
        finally:
            theirs.close()
        self.forker_pid = pid
        self._forker = Link(Channel(mine), on_event=self._on_forker_event)
        log.debug("fork server started: pid %d", pid)
        return self._forker

    async def _keep(self, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            # One quick death may be a kill that came early; two in a row are a crash loop.
            if slot.quick_deaths >= 2:
                delay = min(MAX_BACKOFF, 0.1 * 2 ** (slot.quick_deaths - 2))
                log.warning("worker %d keeps dying at start; next start in %.1fs",
                            slot.index, delay)
                await asyncio.sleep(delay)
                if self.stopping:
                    break
            link = await self._spawn(slot)
            await link.closed.wait()
            slot.live = False
            self._notify()
            self._on_exit(slot)
            if self.stopping:
                break
            slot.restarts += 1
            slot.quick_deaths = slot.quick_deaths + 1 if loop.time() - slot.born < QUICK else 0

    async def _spawn(self, slot: Slot) -> Link:
        mine, theirs = socket.socketpair()
        link = Link(Channel(mine))
        # One instant: this table and these sockets; later changes follow on this channel.
        listeners, frontends = self._snapshot()
        for name, sock in listeners:
            link.send({"op": "listen", "name": name}, [sock.fileno()])
        init = link.request({"op": "init", "index": slot.index, "frontends": frontends})
        slot.link, slot.pid, slot.started = link, None, None
        slot.born = asyncio.get_running_loop().time()
        try:
            spawned = self._forker_link().request({"op": "spawn", "index": slot.index},
                                                  [theirs.fileno()])
        finally:
            theirs.close()
        try:
            slot.pid = int((await asyncio.wait_for(spawned, SPAWN_TIMEOUT))["pid"])
            self._pids[slot.pid] = slot.index
            answer = await asyncio.wait_for(init, INIT_TIMEOUT)
            if "pid" not in answer:
                raise OperationFailed(str(answer.get("payload")))
        except (LinkClosed, TimeoutError, OperationFailed, KeyError, ValueError) as exc:
            log.error("worker %d did not start: %s", slot.index, exc or type(exc).__name__)
            link.send({"op": "cut"})
            link.close()
            return link
        slot.live = True
        slot.started = time.time()
        self._notify()
        log.info("worker %d serving (pid %d)", slot.index, slot.pid)
        return link

    def _on_forker_event(self, message: Message) -> None:
        if message.get("op") == "exited":
            self._ended(int(message["pid"]), int(message["status"]))

    def _ended(self, pid: int, code: int) -> None:
        index = self._pids.pop(pid, None)
        if index is None:
            return
        slot = self.slots[index]
        if self.stopping:
            log.info("worker %d (pid %d) %s", index, pid, describe_exit(code))
            return
        now = slot.pid if slot.pid not in (None, pid) else "(starting)"
        log.warning("worker %d (pid %d) %s; replaced by pid %s", index, pid,
                    describe_exit(code), now)

    def reap(self) -> None:
        """Collect exited children: the fork server, and workers it left to this process."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._ended(pid, os.waitstatus_to_exitcode(status))

    # -- using them ---------------------------------------------------------------------

    def targets(self) -> list[Slot]:
        """Workers that must get a change: every one with an open channel, serving or not."""
        return [s for s in self.slots if s.link is not None and not s.link.closed.is_set()]

    def live(self) -> list[Slot]:
        """Workers serving now, by index."""
        return [s for s in self.slots if s.live]

    async def wait_live(self, timeout: float) -> list[Slot]:
        """Workers serving now, waiting up to `timeout` for one if none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.live() and loop.time() < deadline and not self.stopping:
            await self._wait_change(deadline - loop.time())
        return self.live()

    async def call_index(self, index: int, make: Callable[[float], Message],
                         deadline: float) -> Message | None:
        """Ask worker `index` (its replacement, if it dies meanwhile) until `deadline`.

        `make(remaining)` builds the request for the time left; None when no worker was
        serving in that slot in time.
        """
        loop = asyncio.get_running_loop()
        slot = self.slots[index]
        while True:
            remaining = deadline - loop.time()
            if not slot.live or slot.link is None:
                if remaining <= 0 or self.stopping:
                    return None
                await self._wait_change(remaining)
                continue
            try:
                return await slot.link.call(make(max(0.0, remaining)))
            except LinkClosed:
                continue

    def describe(self) -> list[dict[str, Any]]:
        return [slot.describe() for slot in self.slots]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))
        except TimeoutError:
            pass

    # -- stopping -----------------------------------------------------------------------

    async def stop(self, cut: asyncio.Event) -> None:
        """Workers stop accepting, finish what is in flight, exit; `cut` cuts them short."""
        self.stopping = True
        self._notify()
        for slot in self.targets():
            assert slot.link is not None
            slot.link.send({"op": "stop"})
        cut_at: float | None = None
        loop = asyncio.get_running_loop()
        while open_ := self.targets():
            if cut.is_set() and cut_at is None:
                cut_at = loop.time()
                for slot in open_:
                    assert slot.link is not None
                    slot.link.send({"op": "cut"})
            if cut_at is not None and loop.time() - cut_at > CUT_WAIT:
                for slot in open_:
                    if slot.pid is not None and slot.pid in self._pids:
                        log.warning("worker %d (pid %d) ignored the cut: killing it",
                                    slot.index, slot.pid)
                        try:
                            os.kill(slot.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                break
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        if self._forker is not None:
            self._forker.close()  # the fork server exits when its channel closes
