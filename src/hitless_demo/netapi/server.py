"""HTTP/1.1 with keep-alive on a thread per connection, and oslo.service-style graceful shutdown.

On SIGTERM or SIGINT (the handler only records the signal and wakes the main thread):
  1. the listening socket is closed at once: new connections are refused;
  2. requests in flight run to completion (no timeout, unless NETAPI_SHUTDOWN_TIMEOUT);
     their responses carry `Connection: close` and their connections are closed after them;
  3. idle keep-alive connections are closed, each once it has been idle for KEEPALIVE_GRACE:
     a client that got a keep-alive response just before the signal may already be sending its
     next request on that connection; it gets an answer (with `Connection: close`), not a reset;
  4. the process exits 0 (1 when the shutdown timeout cut in-flight work short).
"""

from __future__ import annotations

import http.server
import os
import select
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid

from . import config as config_module
from .api import Api, Request, Response, error_response
from .db import Database, SchemaError, UrlError

IDLE, BUSY = "idle", "busy"
EXIT_SCHEMA = 3  # the database's schema revision is not one this version runs on
KEEPALIVE_GRACE = 0.25  # seconds an idle connection may stay open once draining


def log(message: str) -> None:
    print(f"netapi: {message}", file=sys.stderr, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms per keep-alive request).
    disable_nagle_algorithm = True
    server: Server

    idle_since = 0.0  # when the connection last started waiting for a request
    closing = False  # the drain loop shut its reading side

    def setup(self) -> None:
        super().setup()
        self.server.register(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unregister(self)

    def handle_one_request(self) -> None:
        # Like BaseHTTPRequestHandler's, plus the connection's idle/busy state for draining.
        self.server.enter_idle(self)
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:
            self.raw_requestline = b""
        self.server.enter_busy(self)
        try:
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
            self.serve()
            self.wfile.flush()
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True
        finally:
            self.server.leave_busy(self)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.respond(error_response(400, "HTTPBadRequest", "Malformed request body."))
            self.close_connection = True
            return
        request = Request(self.command, self.path, self.headers, body)
        try:
            response = self.server.api.handle(request)
        except Exception as exc:  # a bug must cost one 500, not the connection or the process
            log(f"error handling {self.command} {self.path}: {exc!r}")
            response = error_response(500, "HTTPInternalServerError",
                                      "Request Failed: internal server error while processing your request.")
        self.respond(response)

    def respond(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("X-Netapi-Version", self.server.config.version)
        self.send_header("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        if self.server.draining or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and response.status != 204:
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, unsupported method) in Neutron's shape.
        self.close_connection = True
        if not hasattr(self, "command") or self.command is None:
            self.command = "GET"
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # else http.server sends a body without a status line
        self.respond(error_response(code, "HTTPBadRequest" if code < 500 else "HTTPInternalServerError",
                                    message or self.responses.get(code, ("Error",))[0]))

    def log_message(self, format: str, *args: object) -> None:
        if self.server.config.access_log:
            log(f"{self.address_string()} {format % args}")

    # http.server dispatches to do_METHOD; every method goes through the router.
    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a forced shutdown must not wait for handler threads
    request_queue_size = 1024  # bursts of new connections must not be refused before accept

    def __init__(self, cfg: config_module.Config, api: Api) -> None:
        self.config = cfg
        self.api = api
        self.draining = False
        self.stop_signal: str | None = None
        self._lock = threading.Condition()
        self._connections: dict[Handler, str] = {}
        self.in_flight = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if ":" in cfg.bind:
            self.address_family = socket.AF_INET6
        super().__init__((cfg.bind, cfg.port), Handler)

    # connection bookkeeping, called from handler threads

    def register(self, handler: Handler) -> None:
        with self._lock:
            self._connections[handler] = BUSY

    def unregister(self, handler: Handler) -> None:
        with self._lock:
            self._connections.pop(handler, None)
            self._lock.notify_all()

    def enter_idle(self, handler: Handler) -> None:
        """Before waiting for the next request on a keep-alive connection."""
        with self._lock:
            self._connections[handler] = IDLE
            handler.idle_since = time.monotonic()
            handler.closing = False
            if self.draining:
                self._lock.notify_all()  # the drain loop schedules this connection's close

    def enter_busy(self, handler: Handler) -> None:
        with self._lock:
            self._connections[handler] = BUSY
            self.in_flight += 1

    def leave_busy(self, handler: Handler) -> None:
        with self._lock:
            self.in_flight -= 1
            self._lock.notify_all()

    # signals and the main loop

    def request_stop(self, signum: int, frame: object) -> None:
        """Signal handler: record the signal and wake the main loop, nothing else."""
        self.stop_signal = signal.Signals(signum).name
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> int:
        """Accept connections until a stop signal; then drain; returns the exit status."""
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while self.stop_signal is None:
                for key, _ in selector.select():
                    if key.fileobj == self._wake_r:
                        _drain_pipe(self._wake_r)
                    elif self.stop_signal is None:
                        self._accept_all()
        return self.drain()

    def _accept_all(self) -> None:
        while True:
            try:
                connection, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: keep serving what we have
                log(f"accept failed: {exc}")
                time.sleep(0.05)  # the socket stays readable: do not spin
                return
            try:
                self.process_request(connection, address)
            except Exception:
                self.shutdown_request(connection)

    def drain(self) -> int:
        self.socket.close()  # first: refuse new connections
        with self._lock:
            self.draining = True
            waited = self.in_flight
            idle = sum(1 for state in self._connections.values() if state == IDLE)
        log(f"{self.stop_signal}: stopped accepting; waiting for {waited} in-flight request(s); "
            f"closing {idle} idle connection(s)")
        deadline = None if self.config.shutdown_timeout is None else time.monotonic() + self.config.shutdown_timeout
        with self._lock:
            while self._connections:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    log(f"shutdown timeout ({self.config.shutdown_timeout:g} s) reached: abandoning "
                        f"{self.in_flight} in-flight request(s), exit 1")
                    return 1
                wake = deadline
                for handler, state in self._connections.items():
                    if state != IDLE or handler.closing:
                        continue
                    due = handler.idle_since + KEEPALIVE_GRACE
                    if now >= due:
                        handler.closing = _close_if_idle(handler)
                    if not handler.closing:
                        wake = min(wake or due, max(due, now + 0.01))
                self._lock.wait(None if wake is None else wake - now)
        log(f"stopped: {waited} in-flight request(s) finished, exit 0")
        return 0

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the bind address's FQDN, a DNS lookup that can hang.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def server_close(self) -> None:
        super().server_close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, OSError):
        pass


def _close_if_idle(handler: Handler) -> bool:
    """Wake an idle connection's thread (blocked reading) so it sees EOF and ends the connection.

    A connection whose next request has already arrived is left alone (False): its thread is
    about to serve that request, with `Connection: close`.
    """
    sock = handler.connection
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return False
        sock.shutdown(socket.SHUT_RD)
    except (OSError, ValueError):
        pass
    return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main() -> int:
    try:
        cfg = config_module.from_env()
    except config_module.ConfigError as exc:
        log(str(exc))
        return 2
    try:
        db = Database(cfg.database_url, major=cfg.major, version=cfg.version, log=log)
    except UrlError as exc:
        log(str(exc))
        return 2
    where = db.url.redacted()
    try:
        db.open()
    except SchemaError as exc:
        # The schema is not one this version works with: refuse to serve rather than fail requests.
        log(f"refusing to start on {where}: {exc}")
        db.close()
        return EXIT_SCHEMA
    except Exception as exc:
        log(f"cannot open database {where}: {_one_line(exc)}")
        db.close()
        return 1
    server_ref: list[Server] = []
    api = Api(cfg, db, draining=lambda: bool(server_ref) and server_ref[0].draining)
    try:
        server = Server(cfg, api)
    except OSError as exc:
        log(f"cannot listen on {cfg.bind}:{cfg.port}: {exc}")
        return 1
    server_ref.append(server)
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    host, port = server.server_address[:2]
    log(f"version {cfg.version} listening on {host!s}:{port} db={where} "
        f"(schema {db.revision}) pid={os.getpid()}")
    try:
        return server.run()
    finally:
        server.server_close()
        db.close()
