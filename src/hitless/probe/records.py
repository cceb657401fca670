"""What the probe keeps of each request, and of the engine's steps, in a form that survives JSON.

Times are wall-clock seconds since the epoch (UTC), so that a request and a journaled engine step
(ISO 8601 in the journal) can be put on one timeline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Record:
    """One request as the user saw it."""

    start: float  # wall clock, epoch seconds, when the request was sent
    latency: float  # seconds until the response was read in full, or until it failed
    status: int | None  # HTTP status; None when no response came
    error: str | None  # error class when no response came ("refused", "reset", "disconnected", ...)
    version: str | None  # the X-Netapi-Version header (or the probe's --version-header)
    ok: bool  # the answer the scenario expects (200 for a GET, 201 for a create, ...)
    op: str = "get"  # "get", "create", "delete", "snapshot"
    client: str = "new"  # "new": a new connection per request (a CLI); "keep": keep-alive (a service)
    client_id: int = 0
    resource: str | None = None  # the network a create made or a delete removed (neutron-cycle)

    @property
    def end(self) -> float:
        """When the user had the answer (or the error)."""
        return self.start + self.latency

    @property
    def outcome(self) -> str:
        """The status as a string, or the error class."""
        return str(self.status) if self.status is not None else (self.error or "error")

    def to_dict(self) -> dict[str, Any]:
        """The record as one JSON object (the field names of the dataclass)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Read back what `to_dict` wrote."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True)
class StepSpan:
    """One engine step on the timeline: its name (the journal's kind), its target, start and end."""

    name: str
    target: str
    started_at: float  # epoch seconds
    finished_at: float | None  # None: it never finished (the run was killed during it)
    status: str = "done"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def epoch(value: float | str | dt.datetime | None) -> float | None:
    """Epoch seconds from an ISO 8601 string (the journal's), a datetime or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:  # the journal writes UTC; a naive time is taken as UTC too
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def iso(value: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (the journal's format)."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="milliseconds")


def step_spans(steps: Iterable[Any]) -> list[StepSpan]:
    """Normalize steps: journal `Step`s (kind, target, started_at, finished_at), `StepSpan`s,
    tuples (name, target, started_at, finished_at) or dicts with those keys."""
    spans = []
    for step in steps:
        if isinstance(step, StepSpan):
            spans.append(step)
            continue
        if isinstance(step, dict):
            name, target = step.get("name") or step.get("kind"), step.get("target", "")
            began, ended, status = step.get("started_at"), step.get("finished_at"), step.get("status", "done")
        elif isinstance(step, tuple):
            name, target, began, ended = step[:4]
            status = step[4] if len(step) > 4 else "done"
        else:  # the journal's Step
            name, target = step.kind, step.target
            began, ended, status = step.started_at, step.finished_at, getattr(step, "status", "done")
        start = epoch(began)
        if start is None:
            continue
        spans.append(StepSpan(str(name), str(target), start, epoch(ended), str(status)))
    return sorted(spans, key=lambda s: s.started_at)
