"""The proxy's master process: owns the sockets and the routing, keeps the workers running.

It binds the admin socket(s) and every frontend's listening socket (or takes them over from a
running master), restores the routing table from the state file before any of that is served,
starts the workers, and serves the admin API, fanning changes out to the workers. It never
reads client traffic: the workers share the listening sockets, so when one dies its share of
new connections waits in the kernel's queue for the others, and for its replacement.

Signal handlers only set a flag and wake the main coroutine. SIGTERM: the workers stop
accepting, finish in-flight requests and exit, then the master exits; a second one cuts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hitless import __version__
from hitless.errors import BadInput, OperationFailed
from hitless.proxy.admin.server import ApiError, _reply
from hitless.proxy.config import FrontendConfig, parse_address
from hitless.proxy.ipc import unixpath
from hitless.proxy.launch import answers
from hitless.proxy.master import routes as routing
from hitless.proxy.master import takeover
from hitless.proxy.master.api import MasterApi
from hitless.proxy.master.routes import Routes
from hitless.proxy.master.workers import InitSnapshot, Workers
from hitless.proxy.traffic.frontend import bind_listener
from hitless.proxy.traffic.limits import raise_fd_limit

log = logging.getLogger("hitless.proxy")

SYNC_INTERVAL = 1.0  # seconds between recordings of what health checks made of backends
BIND_RETRY = 3.0  # seconds a listener address in use is retried at start (a predecessor's
#                   orphaned workers let go of it within moments)
T = TypeVar("T")


@dataclass
class MasterOptions:
    """What `hitless proxy` was asked to run."""

    admin_socket: str
    state_file: str
    workers: int
    frontends: list[FrontendConfig] = field(default_factory=list)
    admin_tcp: str | None = None
    admin_token: str | None = None
    takeover: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise BadInput(f"--workers must be at least 1, not {self.workers}")
        if self.admin_tcp is not None:
            if not self.admin_token:
                raise BadInput("the admin TCP listener needs a token (--admin-token-file)")
            parse_address(self.admin_tcp)


class Master:
    """One proxy: sockets, routing table, workers, admin API."""

    def __init__(self, options: MasterOptions) -> None:
        self.options = options
        self.admin_socket = options.admin_socket
        self.state_file = options.state_file
        self.routes = Routes()
        self.listeners: dict[str, socket.socket] = {}
        self.api = MasterApi(self, options.admin_token)
        self.workers = Workers(options.workers, self._init_snapshot, options.log_level,
                                  on_exit=self.api.retire)
        self.started = time.time()
        self.handed_over = False
        self.predecessor_pid: int | None = None
        self.predecessor_done = asyncio.Event()
        self.predecessor_done.set()
        self.inherited: set[tuple[str, str]] = set()  # backends a predecessor may still serve
        self._predecessor: socket.socket | None = None
        self._successor: asyncio.StreamWriter | None = None
        self._handing_over = False
        self._admin_socks: list[socket.socket] = []
        self._admin_servers: list[asyncio.AbstractServer] = []
        self._signals = 0
        self._signals_at_stop: int | None = None
        self._wake: asyncio.Event | None = None
        self._cut = asyncio.Event()

    # -- before the event loop ----------------------------------------------------------

    def prepare(self) -> None:
        """Take the sockets and the routing: over from a running master, or fresh."""
        raise_fd_limit()
        try:
            if self.options.takeover:
                self._receive()
            else:
                self._claim()
        except BaseException:
            self._release()
            raise

    def _claim(self) -> None:
        path = Path(self.admin_socket)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if answers(str(path)):
                raise OperationFailed(f"a proxy already answers on {path}; "
                                      f"use --takeover to replace it")
            path.unlink()
        # The routing first: a corrupt state file stops us before anything listens.
        table = (routing.load(self.state_file) or Routes()).with_configs(self.options.frontends)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._admin_socks.append(sock)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            unixpath.bind(sock, str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(128)
        if self.options.admin_tcp is not None:
            self._admin_socks.append(socket.create_server(parse_address(self.options.admin_tcp)))
        for route in table.frontends.values():
            route.config, self.listeners[route.config.name] = self.bind(route.config, BIND_RETRY)
        routing.save(self.state_file, table)
        self.routes = table
        if table.frontends:
            log.info("routing restored: %s", ", ".join(
                f"{r.config.name} ({len(r.backends)} backend(s){', paused' if r.paused else ''})"
                for r in table.frontends.values()))

    def _receive(self) -> None:
        conn, state, socks = takeover.receive_listeners(self.admin_socket)
        self._predecessor = conn
        self.predecessor_pid = int(state["pid"])
        tcp_fd = state.get("admin_tcp_fd")
        self._admin_socks = [socks[0]] + ([socks[tcp_fd]] if tcp_fd else [])
        table = Routes()
        for item in state["frontends"]:
            route = table.add_frontend(FrontendConfig.from_dict(item["config"]))
            route.backends.clear()
            route.paused = bool(item.get("paused"))
            for b in item["backends"]:
                # An older proxy sends live states; down must pass its checks again.
                state_ = {"ready": routing.READY, "draining": routing.DRAINING,
                          "gone": routing.DRAINING}.get(b["state"], routing.WARMING)
                route.backends[b["id"]] = routing.BackendRoute(b["id"], b["address"], state_)
                self.inherited.add((route.config.name, b["id"]))
            self.listeners[route.config.name] = socks[item["fd"]]
        used = {0, tcp_fd} | {item["fd"] for item in state["frontends"]}
        for i, sock in enumerate(socks):
            if i not in used:
                sock.close()
        routing.save(self.state_file, table)
        self.routes = table
        self.predecessor_done.clear()

    def _release(self) -> None:
        for sock in [*self._admin_socks, *self.listeners.values()]:
            sock.close()
        if self._predecessor is not None:
            self._predecessor.close()  # without ACK: the running master serves on
        if not self.options.takeover and self._admin_socks:
            _unlink(self.admin_socket)

    def bind(self, config: FrontendConfig, retry: float = 0.0) -> tuple[FrontendConfig, socket.socket]:
        """A listening socket for `config`; port 0 becomes the port the system chose."""
        deadline = time.monotonic() + retry
        while True:
            try:
                sock = bind_listener((config.host, config.port))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if config.port == 0:
            host, port = sock.getsockname()[:2]
            listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            config = dataclasses.replace(config, listen=listen)
        return config, sock

    # -- the routing table --------------------------------------------------------------

    def commit(self, change: Callable[[Routes], T], if_changed: bool = False) -> T:
        """Apply `change` to a copy of the table, write it to the state file, keep it.

        With `if_changed`, a change that returns a false value leaves everything as it was
        (no write). Nothing changes if the file cannot be written: the answer is an error.
        """
        table = self.routes.copy()
        result = change(table)
        if if_changed and not result:
            return result
        if self._handing_over or self.handed_over:
            raise ApiError(503, "this proxy is handing over to a new one; ask again")
        try:
            routing.save(self.state_file, table)
        except OSError as exc:
            log.error("cannot write the state file %s: %s", self.state_file, exc)
            raise ApiError(500, f"cannot write the state file {self.state_file}: "
                                f"{exc.strerror or exc}") from None
        self.routes = table
        return result

    def _init_snapshot(self) -> InitSnapshot:
        return (list(self.listeners.items()),
                [r.to_dict() for r in self.routes.frontends.values()])

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started,
            "admin_socket": self.admin_socket,
            "state_file": self.state_file,
            "predecessor_pid": self.predecessor_pid,
            "predecessor_running": not self.predecessor_done.is_set(),
            "forker_pid": self.workers.forker_pid,
            "workers": self.workers.describe(),
        }

    # -- running ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Start the workers, serve the admin API, run until told to stop or handed over."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            try:
                await self.workers.start()
            except BaseException:
                self._cut.set()
                await self.workers.stop(self._cut)
                self._release()
                raise
            if self._predecessor is not None:
                self._predecessor.sendall(takeover.ACK)
                loop.create_task(self._watch_predecessor(self._predecessor))
                log.info("took over from proxy %d", self.predecessor_pid)
            unix, *tcp = self._admin_socks
            self._admin_servers.append(
                await asyncio.start_unix_server(self.api.serve_unix, sock=unix))
            if tcp:
                self._admin_servers.append(
                    await asyncio.start_server(self.api.serve_tcp, sock=tcp[0]))
            log.info("proxy %d ready (admin socket %s, %d worker(s))", os.getpid(),
                     self.admin_socket, len(self.workers.slots))
            syncer = loop.create_task(self._sync_loop())
            while self._signals == 0 and not self.handed_over:
                await self._wake.wait()
                self._wake.clear()
            syncer.cancel()
            await self._shutdown()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        # Only flags and a wake-up: the main coroutine does the work.
        self._signals += 1
        seen = self._signals_at_stop
        if seen is not None and (self._signals > seen and not self.handed_over
                                 or self._signals > seen + 1):
            self._cut.set()
        if self._wake is not None:
            self._wake.set()

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            self.workers.reap()
            try:
                await self.api.sync()
            except ApiError as exc:
                log.warning("routing not recorded: %s", exc)
            except Exception:
                log.exception("recording the routing failed")

    async def _shutdown(self) -> None:
        self._signals_at_stop = self._signals
        for server in self._admin_servers:
            server.close()
        if not self.handed_over:
            _unlink(self.admin_socket)
            try:
                await asyncio.wait_for(self.api.sync(), 2.0)  # readiness, for the next start
            except Exception as exc:
                log.debug("last sync: %s", exc)
        for sock in self.listeners.values():
            sock.close()  # the workers' copies go as they stop accepting
        log.info("proxy %d stopping its workers", os.getpid())
        await self.workers.stop(self._cut)
        self.workers.reap()
        if self._successor is not None:
            self._successor.close()
        log.info("proxy %d stopped", os.getpid())

    # -- hand-over ----------------------------------------------------------------------

    async def hand_over(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Old side: give the sockets and the routing to the master that asked, then stop."""
        paused = [name for name, r in self.routes.frontends.items() if r.paused]
        if paused or self.handed_over or self._handing_over or self._signals:
            why = ("already handed over" if self.handed_over or self._handing_over
                   else "stopping" if self._signals else f"paused: {', '.join(paused)}")
            await _reply(writer, 409, {"error": f"cannot hand over now ({why})"}, close=True)
            writer.close()
            return
        try:
            await asyncio.wait_for(self.api.sync(), 5.0)  # the latest readiness goes along
        except Exception as exc:
            log.debug("sync before hand-over: %s", exc)
        self._handing_over = True  # no change from here on: it would not reach the successor
        try:
            socks = list(self._admin_socks)
            frontends = []
            for name, route in self.routes.frontends.items():
                frontends.append({**route.to_dict(), "fd": len(socks)})
                socks.append(self.listeners[name])
            state = {"pid": os.getpid(), "admin_tcp_fd": 1 if len(self._admin_socks) > 1 else None,
                     "frontends": frontends}
            await takeover.send_listeners(writer, state, [s.fileno() for s in socks])
            try:
                ack = await asyncio.wait_for(reader.readline(), takeover.TIMEOUT)
            except (TimeoutError, ConnectionError):
                ack = b""
        finally:
            self._handing_over = False
        if ack != takeover.ACK:
            log.error("takeover aborted by the new process; serving on")
            writer.close()
            return
        log.info("proxy %d handed its sockets over; its workers drain", os.getpid())
        self._successor = writer  # closed when this master is done: the successor watches it
        self.handed_over = True
        if self._wake is not None:
            self._wake.set()

    async def _watch_predecessor(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            while await loop.sock_recv(conn, 4096):
                pass
        except OSError:
            pass
        conn.close()
        self._predecessor = None
        self.inherited.clear()
        self.predecessor_done.set()
        log.info("previous proxy %s has exited", self.predecessor_pid)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def run_master(options: MasterOptions) -> None:
    """Run a proxy in the foreground on uvloop until it stops."""
    import uvloop

    master = Master(options)
    master.prepare()
    uvloop.run(master.serve())
