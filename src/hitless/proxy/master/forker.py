"""The fork server: starts worker processes for the master in a few milliseconds.

A new Python process takes a third of a second to import the proxy; a fork of one that has
already imported it takes milliseconds. The master cannot fork itself safely (it runs an
event loop), so it starts this small process once, without threads or event loop, and asks
it for workers:

    master -> forker   {"op": "spawn", "index": i, "id": n} + the worker's channel socket
    forker -> master   {"re": n, "pid": p}
                       {"op": "exited", "pid": p, "status": code or -signal}

The forker is the workers' parent, so it reaps them and reports how each one ended. It exits
when the master's end of the channel closes; the workers see their own channels close and
stop by themselves.

    python -m hitless.proxy.master.forker FD LOG_LEVEL
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import sys
import traceback

from hitless.proxy.ipc.channel import Decoder, Message, receive_blocking, send_blocking
from hitless.proxy.worker import process as worker  # imported here, before any fork: the point of this process

log = logging.getLogger("hitless.proxy")

POLL = 0.2  # seconds between reaping rounds when pidfds are not available
EXIT_CRASH = 70


def _report_exits(sock: socket.socket, children: dict[int, int | None],
                  sel: selectors.BaseSelector) -> None:
    for pid, pidfd in list(children.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == 0:
            continue
        del children[pid]
        if pidfd is not None:
            sel.unregister(pidfd)
            os.close(pidfd)
        send_blocking(sock, {"op": "exited", "pid": pid,
                             "status": os.waitstatus_to_exitcode(status)})


def _spawn(message: Message, channel: socket.socket, sock: socket.socket,
           sel: selectors.BaseSelector, log_level: str) -> int:
    index = int(message["index"])
    pid = os.fork()
    if pid:
        return pid
    # The child: nothing of the forker's may stay open in a worker.
    code = EXIT_CRASH
    try:
        sel.close()
        sock.detach()
        keep = channel.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)
        _log_as_worker(index, log_level)
        code = worker.main(channel, index)
    except BaseException:  # a worker must never fall back into the forker's loop
        traceback.print_exc()
    finally:
        os._exit(code)


def _log_as_worker(index: int, log_level: str) -> None:
    fmt = (f"%(asctime)s %(levelname)s %(name)s[worker {index} pid {os.getpid()}]: "
           f"%(message)s")
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(fmt))
    root.setLevel(log_level.upper())


def serve(sock: socket.socket, log_level: str) -> int:
    """Fork workers on request until the master goes away."""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    decoder = Decoder()
    children: dict[int, int | None] = {}  # pid -> its pidfd (None: polled)
    polled = False
    while True:
        events = sel.select(POLL if polled else None)
        if any(key.fileobj is sock for key, _ in events):
            messages = receive_blocking(sock, decoder)
            if messages is None:
                return 0
            for message, socks in messages:
                if message.get("op") != "spawn" or len(socks) != 1:
                    for s in socks:
                        s.close()
                    continue
                pid = _spawn(message, socks[0], sock, sel, log_level)
                socks[0].close()
                try:
                    pidfd: int | None = os.pidfd_open(pid)
                except (AttributeError, OSError):
                    pidfd, polled = None, True
                if pidfd is not None:
                    sel.register(pidfd, selectors.EVENT_READ)
                children[pid] = pidfd
                send_blocking(sock, {"re": message.get("id"), "pid": pid})
        _report_exits(sock, children, sel)


def main(argv: list[str]) -> int:
    fd, log_level = int(argv[0]), argv[1]
    # Only the channel: whatever else was inherited would live on in every worker.
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 20)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    try:
        return serve(sock, log_level)
    except (ConnectionError, OSError) as exc:
        log.debug("forker: %s", exc)
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
