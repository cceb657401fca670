"""Holding: a frontend's bounded FIFO of requests waiting for a ready backend.

Requests are held while the frontend is paused or has no ready backend. They are released
in arrival order, at most `release_concurrency` at a time, each one written to a backend
before the next is released, so backends see them in the order clients sent them.
A request over a bound (count, bytes, wait) is answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from hitless.proxy.config import HoldLimits

if TYPE_CHECKING:
    from hitless.proxy.traffic.http import Request


class HoldStats:
    """Counters of every outcome of holding (exported as metrics)."""

    __slots__ = ("held", "released", "rejected_count", "rejected_bytes", "expired", "dropped")

    def __init__(self) -> None:
        self.held = 0  # requests that entered the hold
        self.released = 0  # requests released to a backend
        self.rejected_count = 0  # 503: the hold was full (max_requests)
        self.rejected_bytes = 0  # 503: the buffered bytes would exceed max_bytes
        self.expired = 0  # 503: held longer than max_wait
        self.dropped = 0  # the client went away while held


class Hold:
    """The hold queue of one frontend."""

    def __init__(self, limits: HoldLimits, can_release: Callable[[], bool],
                 forward: Callable[[Request], bool]) -> None:
        self.limits = limits
        self.paused = False
        self.queue: deque[Request] = deque()
        self.count = 0  # held requests not yet dropped (the queue may keep dropped ones)
        self.bytes = 0
        self.releasing = 0  # released requests still in flight
        self.stats = HoldStats()
        self._can_release = can_release
        self._forward = forward
        self._connecting: Request | None = None  # released, waiting for its connection
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def active(self) -> bool:
        """True when a new request must queue: paused, or others are waiting before it."""
        return self.paused or self.count > 0 or self._connecting is not None

    def admit(self, req: Request, front: bool = False) -> bool:
        """Hold a request (at the front when it was released and could not be served).

        Returns False, after answering 503, when the hold is full.
        """
        limits = self.limits
        if front:
            # Back from a release that found no backend: it arrived before everything queued.
            if req.released:
                req.released = False
                self.releasing -= 1
            if not req.held_at:
                self.stats.held += 1
                req.held_at = self._loop.time()
            self.queue.appendleft(req)
        else:
            if self.count >= limits.max_requests:
                self.stats.rejected_count += 1
                req.client.reject_held(req, limits.retry_after)
                return False
            if self.bytes + req.body_bytes > limits.max_bytes:
                self.stats.rejected_bytes += 1
                req.client.reject_held(req, limits.retry_after)
                return False
            self.stats.held += 1
            req.held_at = self._loop.time()
            self.queue.append(req)
        req.held = True
        self.count += 1
        self.bytes += req.body_bytes
        if self._timer is None and limits.max_wait > 0:
            self._arm()
        return True

    def add_bytes(self, req: Request, n: int) -> bool:
        """Body bytes of a held request arrived; False (after a 503) when over max_bytes."""
        if self.bytes + n > self.limits.max_bytes:
            self.stats.rejected_bytes += 1
            self._remove(req)
            req.client.reject_held(req, self.limits.retry_after)
            return False
        self.bytes += n
        return True

    def drop(self, req: Request) -> None:
        """The client of a held request went away."""
        if req.held:
            self.stats.dropped += 1
            self._remove(req)

    def done(self, req: Request) -> None:
        """A released request finished (answered, failed, or its client went away)."""
        req.released = False
        self.releasing -= 1
        self.pump()

    def connected(self, req: Request) -> None:
        """The released request that waited for a new connection got one (or failed)."""
        if self._connecting is req:
            self._connecting = None
            self.pump()

    def pump(self) -> None:
        """Release held requests in order while a backend can take them."""
        queue = self.queue
        cap = self.limits.release_concurrency
        while (queue and not self.paused and self._connecting is None
               and self.releasing < cap and self._can_release()):
            req = queue.popleft()
            if not req.held:
                continue  # dropped or rejected while queued
            req.held = False
            self.count -= 1
            self.bytes -= req.body_bytes
            if not req.released:
                req.released = True
                self.releasing += 1
                if not req.was_released:
                    req.was_released = True
                    self.stats.released += 1
            if not self._forward(req):
                self._connecting = req
        if not queue and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def expire_all(self) -> None:
        """Answer 503 to everything held (the frontend is going away)."""
        while self.queue:
            req = self.queue.popleft()
            if req.held:
                req.held = False
                self.stats.expired += 1
                req.client.reject_held(req, self.limits.retry_after)
        self.count = self.bytes = 0

    def _remove(self, req: Request) -> None:
        req.held = False
        self.count -= 1
        self.bytes -= req.body_bytes

    def _arm(self) -> None:
        for req in self.queue:
            if req.held:
                self._timer = self._loop.call_at(req.held_at + self.limits.max_wait, self._expire)
                return
        self._timer = None

    def _expire(self) -> None:
        # FIFO: the oldest held requests are at the head of the queue.
        self._timer = None
        deadline = self._loop.time() - self.limits.max_wait
        queue = self.queue
        while queue and (not queue[0].held or queue[0].held_at <= deadline):
            req = queue.popleft()
            if req.held:
                self._remove(req)
                self.stats.expired += 1
                req.client.reject_held(req, self.limits.retry_after)
        if queue:
            self._arm()
