"""A small load generator for tests: threads sending requests, each one recorded.

Clients of two kinds, as users are: a new connection per request (like a CLI) and keep-alive
(like a service). Every request's outcome is kept, so a test can count failures exactly.
"""

from __future__ import annotations

import dataclasses
import http.client
import time

from tests.support.clients import ClientThreads


@dataclasses.dataclass(frozen=True)
class Record:
    started: float
    latency: float
    status: int | None  # None: the request failed before a response
    error: str | None
    version: str | None


class Load(ClientThreads):
    """Runs `workers` clients of each kind against host:port until stopped."""

    def __init__(self, host: str, port: int, *, workers: int = 2, path: str = "/v2.0/networks", pause: float = 0.01):
        self.host, self.port, self.path, self.pause = host, port, path, pause
        self.records: list[Record] = []
        super().__init__(self._client, [(keep,) for keep in (False, True) for _ in range(workers)])

    def _client(self, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            began = time.monotonic()
            try:
                conn.request("GET", self.path, headers={} if keep_alive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                record = Record(began, time.monotonic() - began, response.status, None, response.getheader("X-Netapi-Version"))
                if not keep_alive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                record = Record(began, time.monotonic() - began, None, f"{type(exc).__name__}: {exc}", None)
                conn.close()
                conn = None
            with self._lock:
                self.records.append(record)
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def failures(self) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.status is None or r.status >= 500]

    def versions(self) -> set[str]:
        with self._lock:
            return {r.version for r in self.records if r.version}

    def count(self) -> int:
        with self._lock:
            return len(self.records)
