"""Process limits of the proxy: file descriptors, and the client connections they allow.

Every client connection costs a descriptor, and so does its upstream connection. When the
process runs out, accept() fails with EMFILE, and so would a connect() to a healthy backend:
without a cap, a flood of idle clients could make the proxy refuse work and its admin socket.
So the proxy raises its soft limit to the hard limit at start, and accepts client connections
only up to a cap that leaves a reserve for upstream connections, health checks and the admin
API.
"""

from __future__ import annotations

import logging
import os
import resource
from typing import Protocol

log = logging.getLogger("hitless.proxy")

RESERVE = 64  # descriptors kept for the admin API, health checks, logs and listeners


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft


def connection_cap(fd_limit: int) -> int:
    """Client connections one process accepts at once under `fd_limit` descriptors.

    Each client may hold one upstream connection too, so half of what is left after the
    reserve; at least 1.
    """
    return max(1, (fd_limit - RESERVE) // 2)


class Acceptor(Protocol):
    """What the cap pauses and resumes: a frontend's accepting."""

    def pause_accepting(self) -> None: ...

    def resume_accepting(self) -> None: ...


class ConnectionCap:
    """Client connections of this process across its frontends, accepted up to a limit.

    At the limit every frontend stops accepting: new connections wait in the kernel's listen
    queue (they are not refused) until one closes. The limit is `connection_cap` of the
    open-files limit in force (the master raised it at start; its workers inherit it);
    HITLESS_PROXY_MAX_CONNECTIONS sets it instead.
    """

    def __init__(self) -> None:
        self.open = 0
        self.full = False
        self._limit: int | None = None
        self._acceptors: set[Acceptor] = set()

    @property
    def limit(self) -> int:
        """The cap (computed once, on first use)."""
        if self._limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            given = os.environ.get("HITLESS_PROXY_MAX_CONNECTIONS", "").strip()
            self._limit = int(given) if given.isdigit() and int(given) > 0 else connection_cap(fd_limit)
        return self._limit

    def register(self, acceptor: Acceptor) -> None:
        """A frontend starts accepting (paused at once if the cap is reached)."""
        _ = self.limit  # computed before the first accept
        self._acceptors.add(acceptor)
        if self.full:
            acceptor.pause_accepting()

    def unregister(self, acceptor: Acceptor) -> None:
        """A frontend stopped accepting for good."""
        self._acceptors.discard(acceptor)

    def opened(self) -> None:
        """A client connection was accepted."""
        self.open += 1
        if self.open >= self.limit and not self.full:
            self.full = True
            log.warning("connection cap reached: %d client connections open (limit %d, from the "
                        "open-files limit %d); new connections wait in the listen queue until one "
                        "closes", self.open, self.limit,
                        resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            for acceptor in self._acceptors:
                acceptor.pause_accepting()

    def closed(self) -> None:
        """A client connection closed."""
        self.open -= 1
        if self.full and self.open < self.limit:
            self.full = False
            log.info("below the connection cap again (%d open): accepting", self.open)
            for acceptor in self._acceptors:
                acceptor.resume_accepting()


CAP = ConnectionCap()  # one per process: the descriptors are the process's
