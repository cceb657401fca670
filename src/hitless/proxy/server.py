"""The proxy process: admin listeners, frontends, signals, shutdown and hand-over.

Signal handlers only set a flag and wake the main coroutine; shutdown then goes in explicit
steps: stop accepting, let every in-flight request finish, exit. A second signal cuts what
is still in flight.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from hitless import __version__
from hitless.errors import BadInput, OperationFailed
from hitless.proxy import takeover
from hitless.proxy.admin import AdminApi, _reply
from hitless.proxy.config import FrontendConfig, parse_address
from hitless.proxy.frontend import Frontend
from hitless.proxy.metrics import make_registry
from hitless.proxy.pool import State

log = logging.getLogger("hitless.proxy")


class ProxyServer:
    """One proxy process."""

    def __init__(self, admin_socket: str, frontends: list[FrontendConfig] | None = None,
                 admin_tcp: str | None = None, admin_token: str | None = None) -> None:
        self.admin_socket = admin_socket
        self.admin_tcp = parse_address(admin_tcp) if admin_tcp else None
        if self.admin_tcp is not None:
            if not admin_token:
                raise BadInput("the admin TCP listener needs a token (--admin-token-file)")
            if not _is_loopback(self.admin_tcp[0]):
                raise BadInput(f"the admin TCP listener must be on loopback, "
                               f"not {self.admin_tcp[0]}")
        self.initial = list(frontends or [])
        self.frontends: dict[str, Frontend] = {}
        self.api = AdminApi(self, admin_token)
        self.registry = make_registry(lambda: list(self.frontends.values()))
        self.started = time.time()
        self.handed_over = False
        self.predecessor_pid: int | None = None
        self._signals = 0
        self._wake: asyncio.Event | None = None
        self._admin_servers: list[asyncio.AbstractServer] = []
        self._admin_socks: list[socket.socket] = []
        self._successor: asyncio.StreamWriter | None = None
        self._predecessor: socket.socket | None = None

    # -- running ------------------------------------------------------------------------

    async def serve(self, take_over: bool = False) -> None:
        """Start (taking over from a running proxy if asked), run until told to stop."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            if take_over:
                await self._take_over()
            else:
                await self._start_fresh()
            log.info("proxy %d ready (admin socket %s)", os.getpid(), self.admin_socket)
            while self._signals == 0 and not self.handed_over:
                await self._wake.wait()
                self._wake.clear()
            await self._shutdown()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        # Only a flag and a wake-up: the main coroutine does the work.
        self._signals += 1
        if self._wake is not None:
            self._wake.set()

    async def _shutdown(self) -> None:
        for server in self._admin_servers:
            server.close()
        if not self.handed_over:
            _unlink(self.admin_socket)
        for fe in self.frontends.values():
            fe.stop_accepting()
            fe.begin_drain()
        log.info("proxy %d draining %d connection(s)", os.getpid(), self._open_connections())
        seen = self._signals
        while self._open_connections():
            if self._signals > seen and not self.handed_over or self._signals > seen + 1:
                log.warning("proxy %d: second signal, cutting %d connection(s)",
                            os.getpid(), self._open_connections())
                break
            await asyncio.sleep(0.05)
        for fe in list(self.frontends.values()):
            await fe.close(timeout=0)
        if self._successor is not None:
            self._successor.close()
        log.info("proxy %d stopped", os.getpid())

    def _open_connections(self) -> int:
        return sum(len(fe.clients) for fe in self.frontends.values())

    # -- frontends ----------------------------------------------------------------------

    async def add_frontend(self, config: FrontendConfig, sock: socket.socket | None = None,
                           with_backends: bool = True) -> Frontend:
        if config.name in self.frontends:
            raise BadInput(f"frontend {config.name!r} exists")
        fe = Frontend(config)
        await fe.start(sock, with_backends=with_backends)
        self.frontends[config.name] = fe
        return fe

    async def remove_frontend(self, name: str, timeout: float | None = None) -> None:
        fe = self.frontends.pop(name)
        await fe.close(timeout)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started,
            "admin_socket": self.admin_socket,
            "predecessor_pid": self.predecessor_pid,
            "predecessor_running": self._predecessor is not None,
            "frontends": [fe.to_dict() for fe in self.frontends.values()],
        }

    # -- admin listeners ----------------------------------------------------------------

    async def _start_fresh(self) -> None:
        path = Path(self.admin_socket)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if _answers(str(path)):
                raise OperationFailed(f"a proxy already answers on {path}; "
                                      f"use --takeover to replace it")
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(128)
        tcp = None
        if self.admin_tcp is not None:
            host, port = self.admin_tcp
            tcp = socket.create_server((host, port), reuse_port=False)
        await self._serve_admin(sock, tcp)
        for config in self.initial:
            await self.add_frontend(config)

    async def _serve_admin(self, unix: socket.socket, tcp: socket.socket | None) -> None:
        self._admin_socks = [unix] + ([tcp] if tcp else [])
        self._admin_servers.append(
            await asyncio.start_unix_server(self.api.serve_unix, sock=unix))
        if tcp is not None:
            self._admin_servers.append(await asyncio.start_server(self.api.serve_tcp, sock=tcp))

    # -- hand-over ----------------------------------------------------------------------

    async def hand_over(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Old side: give the listeners to the process that asked, then drain and exit."""
        paused = [name for name, fe in self.frontends.items() if fe.hold.paused]
        if paused or self.handed_over:
            why = "already handed over" if self.handed_over else f"paused: {', '.join(paused)}"
            await _reply(writer, 409, {"error": f"cannot hand over now ({why})"}, close=True)
            writer.close()
            return
        socks = list(self._admin_socks)
        frontends = []
        for fe in self.frontends.values():
            frontends.append({
                "config": fe.config.to_dict(), "fd": len(socks),
                "backends": [{"id": b.id, "address": b.address, "state": b.state.value}
                             for b in fe.pool.backends.values()],
            })
            socks.append(fe.sock)
        state = {"pid": os.getpid(), "admin_tcp_fd": 1 if len(self._admin_socks) > 1 else None,
                 "frontends": frontends}
        await takeover.send_listeners(writer, state, [s.fileno() for s in socks])
        try:
            ack = await asyncio.wait_for(reader.readline(), takeover.TIMEOUT)
        except (TimeoutError, ConnectionError):
            ack = b""
        if ack != takeover.ACK:
            log.error("takeover aborted by the new process; serving on")
            writer.close()
            return
        log.info("proxy %d handed its listeners over; draining", os.getpid())
        self._successor = writer  # closed when this process is done: the successor watches it
        self.handed_over = True
        if self._wake is not None:
            self._wake.set()

    async def _take_over(self) -> None:
        """New side: receive the listeners of the proxy on our admin socket and serve them."""
        conn, state, socks = await asyncio.to_thread(takeover.receive_listeners,
                                                     self.admin_socket)
        try:
            self.predecessor_pid = int(state["pid"])
            tcp_fd = state.get("admin_tcp_fd")
            await self._serve_admin(socks[0], socks[tcp_fd] if tcp_fd else None)
            for item in state["frontends"]:
                config = FrontendConfig.from_dict(item["config"])
                fe = await self.add_frontend(config, socks[item["fd"]], with_backends=False)
                for b in item["backends"]:
                    backend = fe.pool.add(b["id"], b["address"], _inherited_state(b["state"]))
                    backend.inherited = True
                    if b["state"] in (State.DRAINING.value, State.GONE.value):
                        fe.pool.drain(b["id"])
                fe.pool.predecessor_done.clear()
            conn.sendall(takeover.ACK)
        except BaseException:
            conn.close()
            raise
        self._predecessor = conn
        asyncio.get_running_loop().create_task(self._watch_predecessor(conn))
        log.info("took over from proxy %d", self.predecessor_pid)

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
        log.info("previous proxy %s has exited", self.predecessor_pid)
        for fe in self.frontends.values():
            fe.pool.predecessor_done.set()


def _inherited_state(state: str) -> State:
    # A backend that was serving keeps serving without a warm-up gap.
    return State.READY if state == State.READY.value else State.WARMING


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def run_proxy(server: ProxyServer, take_over: bool = False) -> None:
    """Run `server` in the foreground on uvloop until it stops."""
    import uvloop

    uvloop.run(server.serve(take_over))
