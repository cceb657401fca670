"""The probe in a background thread with its own event loop, around any blocking code:

    with ProbeSession("http://127.0.0.1:9696/v2.0/networks", "get") as probe:
        engine.run(request)                 # the upgrade, in this thread
    result = probe.result                   # every request, as the users saw it
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from hitless.errors import OperationFailed
from hitless.probe.load import MODES, Probe, Workload
from hitless.probe.records import Record, iso


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What a probe run saw."""

    records: list[Record]
    started_at: float  # epoch seconds
    finished_at: float
    workloads: list[dict[str, Any]]
    abandoned: int = 0  # in flight when the probe stopped, past its grace: cut by the probe, not recorded
    missed: int = 0  # open loop: sends skipped because too many requests were unanswered

    def meta(self) -> dict[str, Any]:
        """The run's description, for a report."""
        return {"started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
                "workloads": self.workloads, "abandoned": self.abandoned, "missed": self.missed}


def target_url(listen: str, path: str = "/") -> str:
    """The URL a probe uses for a frontend's listen address ("0.0.0.0:9696" → loopback)."""
    host, _, port = listen.rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    return f"http://{host}:{port}{path}"


def _loop_factory():
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency; the stdlib loop works too
        return None


class ProbeSession:
    """Start a probe in a background thread; `stop()` (or leaving the `with`) ends it and returns
    its `ProbeResult`.

    `target_url` and `scenario` make one workload (with `concurrency` clients of each mode in
    `modes`, or open-loop at `rate`); `workloads` replaces it with several (the demo's mix).
    `grace`: seconds given to requests in flight when stopping.
    """

    def __init__(self, target_url: str | None = None, scenario: str = "get", *, concurrency: int = 2,
                 modes: Sequence[str] = MODES, rate: float | None = None, interval: float | None = None,
                 long_seconds: float = 15.0, workloads: Sequence[Workload] | None = None, grace: float = 30.0):
        if workloads is None:
            if target_url is None:
                raise TypeError("ProbeSession needs a target_url or workloads")
            workloads = [Workload(target_url, scenario, concurrency, tuple(modes), rate, interval, long_seconds)]
        self.probe = Probe(list(workloads))
        self.grace = grace
        self.result: ProbeResult | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="hitless-probe", daemon=True)

    def _main(self) -> None:
        factory = _loop_factory()
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                self._loop = runner.get_loop()
                runner.run(self.probe.run(grace=self.grace, on_started=self._ready.set))
        except BaseException as exc:  # reported by stop(), in the caller's thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> ProbeSession:
        """Start sending load; returns when every client runs."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise OperationFailed(f"the probe could not start: {self._error}")
        return self

    def __enter__(self) -> ProbeSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def records(self) -> list[Record]:
        """The records so far (a snapshot copy while running)."""
        return list(self.probe.records)

    def now(self) -> float:
        """The probe's clock (epoch seconds), to mark moments on its timeline."""
        return self.probe.now()

    def stop(self) -> ProbeResult:
        """Stop sending, let requests in flight finish (up to the grace), return what was seen."""
        if self.result is not None:
            return self.result
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(self.probe.stop)
            except RuntimeError:  # the loop has just closed
                pass
        self._thread.join()
        if self._error is not None:
            raise OperationFailed(f"the probe failed: {type(self._error).__name__}: {self._error}")
        p = self.probe
        self.result = ProbeResult(sorted(p.records, key=lambda r: r.start), p.started_at or 0.0,
                                  p.finished_at or p.now(), [w.describe() for w in p.workloads],
                                  p.abandoned, p.missed)
        return self.result
