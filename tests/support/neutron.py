"""The seeds' own test: clients that create a network and delete it again, one pair every
0.5 s each, recording every request and every id, so a test can count errors and prove that
nothing was lost."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time

from tests.support.clients import ClientThreads


@dataclasses.dataclass(frozen=True)
class Call:
    started: float
    latency: float
    method: str
    status: int | None
    error: str | None  # the exception, or the body of an error answer


class NeutronCycle(ClientThreads):
    """`clients` threads, each creating then deleting a network every `period` seconds."""

    def __init__(self, host: str, port: int, *, clients: int = 4, period: float = 0.5):
        self.host, self.port, self.period = host, port, period
        self.calls: list[Call] = []
        self.created: set[str] = set()
        self.deleted: set[str] = set()
        super().__init__(self._client, [(n,) for n in range(clients)])

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int | None, dict | None]:
        began = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)  # a new connection, like the CLI
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            status = response.status
            error = raw[:300].decode(errors="replace") if status >= 400 else None
        except (OSError, http.client.HTTPException) as exc:
            status, raw, error = None, b"", f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        with self._lock:
            self.calls.append(Call(began, time.monotonic() - began, method, status, error))
        return status, (json.loads(raw) if raw and status and status < 300 else None)

    def _client(self, number: int) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            status, body = self._call("POST", "/v2.0/networks", {"network": {"name": f"temp-{number}"}})
            if status == 201 and body:
                net_id = body["network"]["id"]
                with self._lock:
                    self.created.add(net_id)
                status, _ = self._call("DELETE", f"/v2.0/networks/{net_id}")
                if status == 204:
                    with self._lock:
                        self.deleted.add(net_id)
            self._stop.wait(max(0.0, self.period - (time.monotonic() - began)))

    def failures(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.status is None or c.status >= 400]
