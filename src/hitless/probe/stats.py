"""Pure statistics over probe records: no I/O, no clock. Everything the probe prints and the
report shows is computed here, so a test can check it on hand-made records.

Definitions (the report states them too):
- a request *failed* when the scenario did not get the answer it expects (an error before any
  response, a 5xx, a 404 on a delete of a network it created, ...);
- latency percentiles are nearest-rank, over the requests that succeeded, long operations
  (`snapshot`) left out: a 15 s snapshot is not a slow GET;
- an *unavailability window* is a burst of failures: from the moment the first one was seen to the
  moment the last one was, where failures less than `gap` seconds apart belong to one burst;
- *longest request cut*: the longest a failed request had been running when it failed (a request
  killed after 10 s of work shows 10 s; a refused connection, ~0 s);
- phases: a request is *before*, *during* or *after* the upgrade by the time it was sent.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from hitless.probe.records import Record

LONG_OPS = frozenset({"snapshot"})
DEFAULT_GAP = 1.0  # seconds between two failures that still belong to one burst


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..1) of some values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def failures(records: Iterable[Record]) -> list[Record]:
    """The failed requests, in the order they were seen failing."""
    return sorted((r for r in records if not r.ok), key=lambda r: r.end)


def latencies(records: Iterable[Record]) -> list[float]:
    """Latencies that the percentiles are taken over: successful, not long operations."""
    return [r.latency for r in records if r.ok and r.op not in LONG_OPS]


@dataclasses.dataclass(frozen=True)
class Window:
    """A burst of failures: first seen at `start`, last seen at `end` (epoch seconds)."""

    start: float
    end: float
    failed: int

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self, origin: float = 0.0) -> dict[str, Any]:
        return {"start": round(self.start - origin, 3), "end": round(self.end - origin, 3),
                "seconds": round(self.seconds, 3), "failed": self.failed}


def windows(records: Iterable[Record], gap: float = DEFAULT_GAP) -> list[Window]:
    """The unavailability windows (bursts of failures), in time order."""
    found: list[Window] = []
    for r in failures(records):
        if found and r.end - found[-1].end <= gap:
            last = found[-1]
            found[-1] = Window(last.start, r.end, last.failed + 1)
        else:
            found.append(Window(r.end, r.end, 1))
    return found


def split(records: Iterable[Record], began: float | None, ended: float | None) -> dict[str, list[Record]]:
    """Records before, during and after the interval [began, ended) by the time they were sent.
    Without an interval, everything is "during"."""
    parts: dict[str, list[Record]] = {"before": [], "during": [], "after": []}
    for r in records:
        if began is None or ended is None:
            parts["during"].append(r)
        elif r.start < began:
            parts["before"].append(r)
        elif r.start < ended:
            parts["during"].append(r)
        else:
            parts["after"].append(r)
    return parts


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summarize(records: Sequence[Record], gap: float = DEFAULT_GAP) -> dict[str, Any]:
    """The numbers of a set of records: counts, failures by outcome, latency (ms), versions,
    windows, the longest request cut (ms), and the rate over the time they span."""
    failed = failures(records)
    lat = latencies(records)
    bursts = windows(records, gap)
    span = (max(r.start for r in records) - min(r.start for r in records)) if len(records) > 1 else 0.0
    return {
        "requests": len(records),
        "ok": len(records) - len(failed),
        "failed": len(failed),
        "failed_by_outcome": dict(sorted(Counter(r.outcome for r in failed).items())),
        "by_op": dict(sorted(Counter(r.op for r in records).items())),
        "by_client": dict(sorted(Counter(r.client for r in records).items())),
        "latency_ms": {"p50": _ms(percentile(lat, 0.50)), "p99": _ms(percentile(lat, 0.99)),
                       "max": _ms(max(lat) if lat else None), "count": len(lat)},
        "longest_cut_ms": _ms(max((r.latency for r in failed), default=None)),
        "versions": dict(sorted(Counter(r.version or "none" for r in records if r.ok).items())),
        "windows": len(bursts),
        "unavailable_s": round(sum(w.seconds for w in bursts), 3),
        "longest_window_s": round(max((w.seconds for w in bursts), default=0.0), 3),
        "rate_per_s": round(len(records) / span, 1) if span > 0 else None,
    }


def timeline(records: Iterable[Record], origin: float, bucket: float = 1.0) -> list[dict[str, Any]]:
    """Per bucket of `bucket` seconds from `origin` (by the time requests were sent): successful
    requests per version, failures, and latency p50/p99/max (ms). Every bucket from the first to
    the last is present, empty ones too, so a chart has no gaps it does not show."""
    buckets: dict[int, list[Record]] = {}
    for r in records:
        buckets.setdefault(int((r.start - origin) // bucket), []).append(r)
    if not buckets:
        return []
    rows = []
    for index in range(min(0, min(buckets)), max(buckets) + 1):
        inside = buckets.get(index, [])
        lat = latencies(inside)
        rows.append({
            "t": round(index * bucket, 3),
            "by_version": dict(sorted(Counter(r.version or "none" for r in inside if r.ok).items())),
            "failed": sum(1 for r in inside if not r.ok),
            "p50_ms": _ms(percentile(lat, 0.50)), "p99_ms": _ms(percentile(lat, 0.99)),
            "max_ms": _ms(max(lat) if lat else None),
        })
    return rows


def ledger(records: Iterable[Record]) -> dict[str, Any]:
    """For the create/delete cycle: what was created and deleted, and what was not deleted
    (a create that answered 201 with no successful delete of the same id): "nothing lost" is
    `not_deleted == []` and no failed request."""
    created, deleted = [], set()
    for r in records:
        if r.resource is None or not r.ok:
            continue
        if r.op == "create":
            created.append(r.resource)
        elif r.op == "delete":
            deleted.add(r.resource)
    return {"created": len(created), "deleted": len(deleted),
            "not_deleted": sorted(set(created) - deleted)}


def versions_over_time(records: Iterable[Record], origin: float, bucket: float) -> list[tuple[float, dict[str, int], int]]:
    """(offset, successful requests per version, failed) per bucket: the probe's printed table."""
    return [(row["t"], row["by_version"], row["failed"]) for row in timeline(records, origin, bucket)]
