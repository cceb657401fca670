"""Requests and their replies over a `Channel`: the master's side of talking to a process.

A request gets an ``id``; the reply names it under ``re``. Anything else the other side
sends (the fork server's exit reports) goes to `on_event`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from hitless.proxy.ipc.channel import Channel, ChannelClosed, Message

log = logging.getLogger("hitless.proxy")


class LinkClosed(ChannelClosed):
    """The process at the other end went away before it replied."""


class Link:
    """Request/reply over one channel; a reader task routes what arrives."""

    def __init__(self, channel: Channel, on_event: Callable[[Message], None] | None = None) -> None:
        self.channel = channel
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def closed(self) -> asyncio.Event:
        return self.channel.closed

    def request(self, message: Message, fds: Sequence[int] = ()) -> asyncio.Future[Message]:
        """Send a request now (queued in order); the future gets its reply."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            future.set_exception(LinkClosed("the process is gone"))
            return future
        request_id = next(self._ids)
        self._pending[request_id] = future
        self.channel.send({**message, "id": request_id}, fds)
        future.add_done_callback(lambda _: self._pending.pop(request_id, None))
        return future

    async def call(self, message: Message, fds: Sequence[int] = (),
                   timeout: float | None = None) -> Message:
        """Send a request and wait for its reply (LinkClosed if the process goes away)."""
        future = self.request(message, fds)
        if timeout is None:
            return await future
        return await asyncio.wait_for(future, timeout)

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Send a message that gets no reply; dropped if the process is gone."""
        if not self.closed.is_set():
            self.channel.send(message, fds)

    def close(self) -> None:
        self.channel.close()

    async def _read(self) -> None:
        try:
            while (item := await self.channel.receive()) is not None:
                message, socks = item
                for sock in socks:
                    sock.close()  # nobody sends descriptors back to the master
                future = self._pending.get(message.get("re", 0))
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                elif self._on_event is not None:
                    self._on_event(message)
                else:
                    log.debug("unexpected message %.200s", message)
        finally:
            for future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(LinkClosed("the process is gone"))
            self._pending.clear()


def reply(channel: Channel, request: Message, **payload: Any) -> None:
    """Answer `request` on `channel` (the worker's side); nothing if the master is gone."""
    if not channel.closed.is_set():
        channel.send({"re": request.get("id"), **payload})
