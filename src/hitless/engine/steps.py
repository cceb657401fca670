"""Running steps: each journaled before and after, announced as events, and a stop request
honoured between steps (Ctrl-C once: finish the current step, then stop)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hitless.errors import ExitStatus, HitlessError
from hitless.state.journal import Journal

T = TypeVar("T")


class Interrupted(HitlessError):
    """A stop was asked for; the journal is left resumable."""

    exit_status = ExitStatus.INTERRUPTED


@dataclasses.dataclass(frozen=True)
class Event:
    """Something the engine did or saw, for a progress view, a log line, or `--json`."""

    kind: str  # "step", "info", "warning", "error", "phase"
    message: str
    status: str | None = None  # for steps: "started", "done", "failed"
    step: str | None = None  # for steps: "start", "gate", "proxy-add", "drain", "stop", "remove", ...
    target: str | None = None  # service path or instance name
    seq: int | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    at: str = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))

    def to_dict(self) -> dict[str, Any]:
        """The event as one JSON object."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, {}) and k != "fields"}
        return {**data, **self.fields}


Emit = Callable[[Event], None]


class StepRunner:
    """Runs the steps of one deployment."""

    def __init__(self, journal: Journal, deployment_id: int, emit: Emit, stop_requested: threading.Event):
        self.journal = journal
        self.deployment_id = deployment_id
        self.emit = emit
        self.stop_requested = stop_requested

    def check(self) -> None:
        """Raise Interrupted when a stop was asked for (called between steps)."""
        if self.stop_requested.is_set():
            raise Interrupted(f"stopped between steps as asked; the run is resumable: `hitless resume` "
                              f"(deployment {self.deployment_id})")

    def run(self, step: str, target: str, action: Callable[[], T], message: str = "", service: str | None = None) -> T:
        """Journal the step, run it, journal how it ended; events before and after. `service`
        names the service the step belongs to, for progress views."""
        self.check()
        seq = self.journal.step_started(self.deployment_id, step, target, message)
        fields = {"service": service} if service else {}
        self.emit(Event("step", message or f"{step} {target}", "started", step, target, seq, fields))
        try:
            result = action()
        except BaseException as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.journal.step_finished(self.deployment_id, seq, False, detail[:500])
            self.emit(Event("step", f"{step} {target} failed: {detail}", "failed", step, target, seq, fields))
            raise
        self.journal.step_finished(self.deployment_id, seq, True)
        self.emit(Event("step", message or f"{step} {target}", "done", step, target, seq, fields))
        return result

    def info(self, message: str, **fields: Any) -> None:
        """An informational event."""
        self.emit(Event("info", message, fields=fields))

    def warning(self, message: str, **fields: Any) -> None:
        """A warning event: shown loudly."""
        self.emit(Event("warning", message, fields=fields))
