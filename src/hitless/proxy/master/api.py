"""The master's admin API: the same paths and answers as a single process, over N workers.

A change is checked against the routing table first (so that every worker will accept it),
recorded and written to the state file, then sent to every worker in one step, without a
pause in between: a worker being started gets the table as it was before, or the change
after, never neither. The answer merges what the workers answered (`merge`).

A read asks every serving worker and merges. A wait passes only when every worker's does:
a backend is drained when no worker has anything in flight to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from hitless.proxy.admin.metrics import MetricsData, render_data
from hitless.proxy.admin.server import MAX_WAIT, AdminServer, ApiError
from hitless.proxy.config import FrontendConfig, parse_address
from hitless.proxy.master.merge import (
    Reply,
    counters_only,
    merge_backend,
    merge_frontend,
    merge_frontends,
    merge_replies,
    merge_stats,
    merge_wait,
    with_retired,
)

if TYPE_CHECKING:
    from hitless.proxy.ipc.link import Message
    from hitless.proxy.master.process import Master
    from hitless.proxy.master.workers import Slot

log = logging.getLogger("hitless.proxy")

READ_TIMEOUT = 10.0  # a worker that takes longer to answer a read is left out of the answer
CHANGE_TIMEOUT = 30.0
LIVE_WAIT = 5.0  # a read waits this long for a worker when none is serving (all restarting)


def _path(fe: str, be: str | None = None, suffix: str = "") -> str:
    path = f"/v1/frontends/{quote(fe, safe='')}"
    if be is not None:
        path += f"/backends/{quote(be, safe='')}"
    return path + suffix


def _http(method: str, target: str, body: dict[str, Any] | None = None) -> Message:
    return {"op": "http", "method": method, "target": target, "body": body}


class MasterApi(AdminServer):
    """Admin operations of the master, each fanned out to the workers."""

    def __init__(self, master: Master, token: str | None = None) -> None:
        super().__init__(token)
        self.master = master
        self._last_stats: dict[int, dict[str, Any]] = {}  # worker pid -> its latest /v1/stats
        self._retired: dict[str, Any] = {}  # counters of replaced workers, by frontend
        self._removing: set[str] = set()

    async def takeover(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hand the listeners, the admin sockets and the routing over to a new master."""
        await self.master.hand_over(reader, writer)

    # -- plumbing -----------------------------------------------------------------------

    async def _gather(self, slots: list[Slot], message: Message,
                      timeout: float | None) -> list[tuple[int, Message]]:
        """Send `message` to each slot now; their replies (late or dead ones left out)."""
        futures = {}
        for slot in slots:
            assert slot.link is not None
            futures[slot.link.request(message)] = slot
        if not futures:
            return []
        done, pending = await asyncio.wait(futures, timeout=timeout)
        for future in pending:
            future.cancel()
            log.warning("worker %d did not answer %s in time", futures[future].index,
                        message.get("target", message.get("op")))
        out = []
        for future, slot in futures.items():
            if future in done and future.exception() is None:
                answer = future.result()
                out.append((slot.index, answer))
                if "stats" in answer and slot.pid is not None:
                    self._last_stats[slot.pid] = answer["stats"]
        return sorted(out, key=lambda item: item[0])

    async def _read(self, message: Message) -> list[tuple[int, Message]]:
        slots = await self.master.workers.wait_live(LIVE_WAIT)
        replies = await self._gather(slots, message, READ_TIMEOUT)
        if not replies:
            raise ApiError(503, "no worker is running")
        return replies

    async def _read_http(self, method: str, target: str) -> list[tuple[int, Reply]]:
        return [(i, (r["status"], r["payload"])) for i, r in
                await self._read(_http(method, target))]

    async def _change(self, message: Message,
                      timeout: float | None = CHANGE_TIMEOUT) -> list[tuple[int, Reply]]:
        """Send a change to every worker in this very step; their answers."""
        replies = await self._gather(self.master.workers.targets(), message, timeout)
        out = [(i, (r["status"], r["payload"])) for i, r in replies]
        if any(status >= 400 for _, (status, _) in out):
            log.warning("workers disagree on %s %s: %s", message["method"], message["target"],
                        [(i, s, p) for i, (s, p) in out if s >= 400][:3])
        return out

    def _route(self, fe: str, be: str | None = None) -> None:
        route = self.master.routes.frontends.get(fe)
        if route is None:
            raise ApiError(404, f"no frontend {fe!r}")
        if be is not None and be not in route.backends:
            raise ApiError(404, f"no backend {be!r} in frontend {fe!r}")

    def _frontend_view(self, fe: str) -> dict[str, Any]:
        """What the table knows of a frontend, when no worker could answer."""
        route = self.master.routes.frontends[fe]
        return {"name": fe, "listen": route.config.listen, "paused": route.paused, "held": 0,
                "held_bytes": 0, "releasing": 0, "connections": 0,
                "config": route.config.to_dict(),
                "backends": [b.to_dict() for b in route.backends.values()]}

    def _backend_view(self, fe: str, be: str) -> dict[str, Any]:
        routes = self.master.routes.frontends.get(fe)
        backend = routes.backends.get(be) if routes else None
        return backend.to_dict() if backend else {"id": be, "state": "gone"}

    # -- reads --------------------------------------------------------------------------

    async def _frontends(self) -> list[dict[str, Any]]:
        replies = await self._read_http("GET", "/v1/frontends")
        return merge_frontends([(i, p["frontends"]) for i, (s, p) in replies if s == 200])

    async def status(self, **_: Any) -> tuple[int, Any]:
        # Answered even while every worker restarts: the pid is what supervisors look for.
        slots = self.master.workers.live()
        replies = await self._gather(slots, _http("GET", "/v1/frontends"), READ_TIMEOUT)
        if replies:
            frontends = merge_frontends([(i, r["payload"]["frontends"]) for i, r in replies
                                         if r["status"] == 200])
        else:
            frontends = [self._frontend_view(name) for name in self.master.routes.frontends]
        return 200, {**self.master.status(), "frontends": frontends}

    async def list_frontends(self, **_: Any) -> tuple[int, Any]:
        return 200, {"frontends": await self._frontends()}

    async def get_frontend(self, fe: str, **_: Any) -> tuple[int, Any]:
        self._route(fe)
        return merge_replies(await self._read_http("GET", _path(fe)), merge_frontend)

    async def list_backends(self, fe: str, **_: Any) -> tuple[int, Any]:
        self._route(fe)
        replies = await self._read_http("GET", _path(fe, suffix="/backends"))
        return merge_replies(replies, lambda ok: {"backends": merge_frontend(
            [(i, {"name": fe, "backends": p["backends"]}) for i, p in ok])["backends"]})

    async def get_backend(self, fe: str, be: str, **_: Any) -> tuple[int, Any]:
        self._route(fe, be)
        return merge_replies(await self._read_http("GET", _path(fe, be)), merge_backend)

    async def _snapshot(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Counters (with those of replaced workers) and frontends, merged."""
        replies = await self._read({"op": "snapshot"})
        live = merge_stats([r["stats"] for _, r in replies])
        return (with_retired(live, self._retired),
                merge_frontends([(i, r["frontends"]) for i, r in replies]))

    async def stats(self, **_: Any) -> tuple[int, Any]:
        return 200, {"frontends": (await self._snapshot())[0]}

    async def metrics_text(self) -> bytes:
        stats, frontends = await self._snapshot()
        return render_data(MetricsData(stats, frontends, self.master.workers.describe()))

    def retire(self, slot: Slot) -> None:
        """A worker ended: keep its counters, so that totals never go back."""
        last = self._last_stats.pop(slot.pid, None) if slot.pid is not None else None
        if last:
            self._retired = merge_stats([self._retired, counters_only(last)])

    async def sync(self) -> None:
        """Record in the table what health checks made of the backends (ready, or not)."""
        slots = self.master.workers.live()
        replies = await self._gather(slots, {"op": "snapshot"}, READ_TIMEOUT)
        if not replies:
            return
        seen = [(fe["name"], b["id"], b.get("address", ""), b["state"])
                for fe in merge_frontends([(i, r["frontends"]) for i, r in replies])
                for b in fe["backends"]]
        # A list, not any(): every observation is recorded, not only up to the first change.
        self.master.commit(lambda r: any([r.observe(*item) for item in seen]), if_changed=True)

    # -- changes ------------------------------------------------------------------------

    async def add_frontend(self, data: dict[str, Any], **_: Any) -> tuple[int, Any]:
        config = FrontendConfig.from_dict(data)
        if config.name in self.master.routes.frontends or config.name in self._removing:
            raise ApiError(409, f"frontend {config.name!r} exists")
        try:
            config, sock = self.master.bind(config)
        except OSError as exc:
            raise ApiError(409, f"cannot listen on {config.listen}: {exc.strerror}") from None
        try:
            self.master.commit(lambda r: r.add_frontend(config))
        except BaseException:
            sock.close()
            raise
        self.master.listeners[config.name] = sock
        for slot in self.master.workers.targets():
            assert slot.link is not None
            slot.link.send({"op": "listen", "name": config.name}, [sock.fileno()])
        replies = await self._change(_http("POST", "/v1/frontends", config.to_dict()))
        if not replies:
            return 201, self._frontend_view(config.name)
        return merge_replies(replies, merge_frontend)

    async def remove_frontend(self, fe: str, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        self._route(fe)
        timeout = float(query["timeout"]) if "timeout" in query else None
        self.master.commit(lambda r: r.remove_frontend(fe))
        sock = self.master.listeners.pop(fe, None)
        if sock is not None:
            sock.close()
        self._retired.pop(fe, None)
        self._removing.add(fe)
        target = _path(fe) + (f"?{urlencode({'timeout': timeout})}" if timeout is not None else "")
        try:
            await self._change(_http("DELETE", target), timeout=None)
        finally:
            self._removing.discard(fe)
        return 200, {"removed": fe}

    async def _pause(self, fe: str, paused: bool) -> tuple[int, Any]:
        self._route(fe)
        self.master.commit(lambda r: r.set_paused(fe, paused))
        log.info("frontend %s %s", fe, "paused" if paused else "resumed")
        replies = await self._change(_http("POST", _path(fe, suffix="/pause" if paused
                                                         else "/resume")))
        return merge_replies(replies, merge_frontend) if replies else (
            200, self._frontend_view(fe))

    async def pause(self, fe: str, **_: Any) -> tuple[int, Any]:
        return await self._pause(fe, True)

    async def resume(self, fe: str, **_: Any) -> tuple[int, Any]:
        return await self._pause(fe, False)

    async def add_backend(self, fe: str, data: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._route(fe)
        backend_id, address = data.get("id"), data.get("address")
        if not isinstance(backend_id, str) or not backend_id or "/" in backend_id:
            raise ApiError(400, "a backend needs an 'id' (a string without '/')")
        if not isinstance(address, str):
            raise ApiError(400, "a backend needs an 'address' (host:port)")
        parse_address(address)
        ready = bool(data.get("ready"))
        self.master.commit(lambda r: r.add_backend(fe, backend_id, address, ready))
        self.master.inherited.discard((fe, backend_id))
        replies = await self._change(_http("POST", _path(fe, suffix="/backends"),
                                           {"id": backend_id, "address": address,
                                            "ready": ready}))
        return merge_replies(replies, merge_backend) if replies else (
            201, self._backend_view(fe, backend_id))

    async def remove_backend(self, fe: str, be: str, **_: Any) -> tuple[int, Any]:
        self._route(fe, be)
        view = self._backend_view(fe, be)
        self.master.commit(lambda r: r.remove_backend(fe, be))
        replies = await self._change(_http("DELETE", _path(fe, be)))
        return merge_replies(replies, merge_backend) if replies else (200, view)

    async def drain_backend(self, fe: str, be: str, data: dict[str, Any],
                            **_: Any) -> tuple[int, Any]:
        self._route(fe, be)
        timeout = data.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ApiError(400, "timeout must be a number of seconds or null")
        self.master.commit(lambda r: r.drain_backend(fe, be))
        replies = await self._change(_http("POST", _path(fe, be, "/drain"), {"timeout": timeout}))
        return merge_replies(replies, merge_backend) if replies else (
            200, self._backend_view(fe, be))

    async def wait_backend(self, fe: str, be: str, query: dict[str, str],
                           **_: Any) -> tuple[int, Any]:
        until = query.get("until", "ready")
        if until not in ("ready", "drained"):
            raise ApiError(400, "until must be 'ready' or 'drained'")
        timeout = min(float(query.get("timeout", "30")), MAX_WAIT)
        self._route(fe)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        workers = self.master.workers

        def make(remaining: float) -> Message:
            return _http("GET", _path(fe, be, "/wait?") + urlencode(
                {"until": until, "timeout": remaining}))

        answers = await asyncio.gather(*(workers.call_index(s.index, make, deadline)
                                         for s in workers.slots))
        replies = [(i, None if a is None else (a["status"], a["payload"]))
                   for i, a in enumerate(answers)]
        status, payload = merge_wait(replies, be, until, timeout)
        if status == 200 and until == "drained" and (fe, be) in self.master.inherited:
            # The previous proxy may still have requests in flight to it.
            try:
                await asyncio.wait_for(self.master.predecessor_done.wait(),
                                       max(0.0, deadline - loop.time()))
            except TimeoutError:
                return 504, {"error": f"backend {be!r} not drained after {timeout:g}s "
                                      f"(the previous proxy still runs)", "backend": payload}
        if status == 200 and until == "ready":
            address = payload.get("address", "")
            self.master.commit(lambda r: r.observe(fe, be, address, "ready"), if_changed=True)
        return status, payload
