"""Pool states and choice, and the hold queue, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from hitless.proxy.config import HealthCheck, HoldLimits
from hitless.proxy.traffic.hold import Hold
from hitless.proxy.traffic.messages import drop_listed
from hitless.proxy.traffic.pool import Pool, State


def run(coro):
    return asyncio.run(coro)


def _pool(on_ready=lambda: None) -> Pool:
    # Checks against a closed port never pass: states move only as the test says.
    return Pool("fe", HealthCheck(interval=60, timeout=0.01), on_ready)


def test_least_inflight_with_rotation_on_ties():
    async def main():
        pool = _pool()
        a = pool.add("a", "127.0.0.1:1", State.READY)
        b = pool.add("b", "127.0.0.1:1", State.READY)
        c = pool.add("c", "127.0.0.1:1", State.WARMING)
        assert {pool.pick().id for _ in range(4)} == {"a", "b"}  # ties rotate; c not ready
        a.inflight = 3
        b.inflight = 1
        assert all(pool.pick() is b for _ in range(5))
        pool._set(c, State.READY)
        assert pool.pick() is c
        pool.close()
    run(main())


def test_passive_failure_marks_down_and_drain_goes_gone():
    async def main():
        pool = _pool()
        a = pool.add("a", "127.0.0.1:1", State.READY)
        pool.connect_failed(a)
        assert a.state is State.DOWN and pool.pick() is None
        b = pool.add("b", "127.0.0.1:1", State.READY)
        b.inflight = 1
        pool.drain("b")
        assert b.state is State.DRAINING and pool.pick() is None
        waiter = asyncio.ensure_future(pool.wait("b", "drained", 5))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        b.release()
        assert (await waiter) is b and b.state is State.GONE
        assert await pool.wait("missing", "drained", 0) is None
        with pytest.raises(KeyError):
            await pool.wait("missing", "ready", 0)
        assert await pool.wait("a", "ready", 0.05) is None  # timeout
        pool.close()
    run(main())


def test_inherited_backend_is_drained_only_when_the_predecessor_is_gone():
    async def main():
        pool = _pool()
        b = pool.add("b", "127.0.0.1:1", State.READY)
        b.inherited = True
        pool.predecessor_done.clear()
        pool.drain("b")
        assert b.state is State.GONE
        assert await pool.wait("b", "drained", 0.05) is None
        pool.predecessor_done.set()
        assert await pool.wait("b", "drained", 0.05) is b
        pool.close()
    run(main())


def test_drain_timeout_cuts_connections():
    async def main():
        pool = _pool()
        b = pool.add("b", "127.0.0.1:1", State.READY)
        b.inflight = 1
        cut = []

        class Conn:
            def cut(self):
                cut.append(self)
        b.conns.add(Conn())
        pool.drain("b", timeout=0.01)
        await asyncio.sleep(0.05)
        assert b.state is State.GONE and len(cut) == 1
        pool.close()
    run(main())


class FakeClient:
    def __init__(self):
        self.rejected = []

    def reject_held(self, req, retry_after):
        self.rejected.append((req, retry_after))
        req.finished = True


class FakeRequest:
    def __init__(self, client, body_bytes=0):
        self.client = client
        self.body_bytes = body_bytes
        self.held = False
        self.held_at = 0.0
        self.released = False
        self.was_released = False
        self.finished = False


def test_hold_bounds_order_and_concurrency_cap():
    async def main():
        client = FakeClient()
        forwarded = []
        ready = [False]
        hold = Hold(HoldLimits(max_requests=3, max_bytes=100, release_concurrency=2,
                               retry_after=9), lambda: ready[0],
                    lambda r: forwarded.append(r) or True)
        hold.paused = True
        reqs = [FakeRequest(client, 10) for _ in range(3)]
        for r in reqs:
            assert hold.admit(r)
        assert not hold.admit(FakeRequest(client))  # count bound
        assert not hold.admit(FakeRequest(client, 0)) and len(client.rejected) == 2
        assert hold.stats.rejected_count == 2 and client.rejected[0][1] == 9
        assert hold.count == 3 and hold.bytes == 30 and hold.active
        assert not hold.add_bytes(reqs[2], 80)  # byte bound: reqs[2] is answered 503
        assert hold.stats.rejected_bytes == 1 and hold.count == 2
        hold.paused = False
        ready[0] = True
        hold.pump()
        assert forwarded == reqs[:2]  # in order, and no more than the cap at once
        assert hold.releasing == 2 and hold.count == 0
        hold.done(reqs[0])
        assert hold.releasing == 1 and hold.stats.released == 2
        assert not hold.active
    run(main())


def test_hold_expiry_and_drop():
    async def main():
        client = FakeClient()
        hold = Hold(HoldLimits(max_wait=0.05), lambda: False, lambda r: True)
        a, b = FakeRequest(client), FakeRequest(client)
        hold.admit(a)
        hold.admit(b)
        hold.drop(b)
        assert hold.stats.dropped == 1 and hold.count == 1
        await asyncio.sleep(0.1)
        assert hold.stats.expired == 1 and client.rejected == [(a, 1)]
        assert hold.count == 0 and not hold.queue
    run(main())


def test_connecting_release_blocks_the_next():
    async def main():
        client = FakeClient()
        forwarded = []
        hold = Hold(HoldLimits(), lambda: True, lambda r: forwarded.append(r) and False)
        hold.paused = True
        reqs = [FakeRequest(client) for _ in range(3)]
        for r in reqs:
            hold.admit(r)
        hold.paused = False
        hold.pump()
        assert forwarded == reqs[:1]  # waits for its connection before the next one
        hold.connected(reqs[0])
        assert forwarded == reqs[:2]
    run(main())


def test_connection_listed_headers_are_dropped():
    headers = [b"A: 1\r\n", b"X-Secret: 2\r\n", b"B: 3\r\n"]
    assert drop_listed(headers, b"keep-alive, x-secret") == [b"A: 1\r\n", b"B: 3\r\n"]
    assert drop_listed(headers, b"close") is headers
