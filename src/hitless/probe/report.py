"""The upgrade report: `report.json` (the numbers, split before / during / after the upgrade, and
each engine step's start and end), `records.jsonl` (every request, raw: the numbers can be
recomputed from it), `report.html` (one self-contained page: inline SVG and CSS, nothing fetched)
and `report.png` (the same chart, drawn by matplotlib).

`build_report` is pure; `write_report` writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hitless.probe import stats
from hitless.probe.records import Record, StepSpan, epoch, iso, step_spans

REPORT_VERSION = 1
MAX_FAILURES_LISTED = 500

DEFINITIONS = {
    "failed": "the request did not get the answer its scenario expects (an error before any response, a 5xx, "
              "a 404 on deleting a network the probe created, ...)",
    "latency": "nearest-rank percentiles over successful requests, long operations (snapshots) left out",
    "window": "a burst of failures, from the moment the first was seen to the moment the last was; failures "
              "less than gap_s apart belong to one burst",
    "longest_cut": "the longest a failed request had been running when it failed",
    "phases": "a request belongs to before / during / after the upgrade by the time it was sent",
}


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    directory: Path
    json: Path
    html: Path
    png: Path | None  # None when matplotlib is not available
    records: Path


def _upgrade_interval(spans: Sequence[StepSpan], meta: Mapping[str, Any]) -> tuple[float | None, float | None]:
    began = epoch(meta.get("upgrade_started_at"))
    ended = epoch(meta.get("upgrade_finished_at"))
    if began is None and spans:
        began = min(s.started_at for s in spans)
    if ended is None and spans:
        ended = max((s.finished_at or s.started_at) for s in spans)
    return began, ended


def build_report(records: Sequence[Record], steps: Iterable[Any] = (), meta: Mapping[str, Any] | None = None, *,
                 bucket: float = 1.0, gap: float = stats.DEFAULT_GAP) -> dict[str, Any]:
    """The report document. `steps`: journal Steps, StepSpans or (name, target, started_at,
    finished_at) tuples. `meta` may carry `upgrade_started_at` / `upgrade_finished_at` (else the
    steps' first start and last end make the upgrade) and `probe_started_at` (the time origin;
    else the first request)."""
    meta = dict(meta or {})
    records = sorted(records, key=lambda r: r.start)
    spans = step_spans(steps)
    began, ended = _upgrade_interval(spans, meta)
    origin = epoch(meta.get("probe_started_at")) or (records[0].start if records else (began or 0.0))

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 3)

    parts = stats.split(records, began, ended)
    failed = stats.failures(records)
    document = {
        "report_version": REPORT_VERSION,
        "meta": meta,
        "definitions": {**DEFINITIONS, "gap_s": gap, "bucket_s": bucket},
        "origin": iso(origin),
        "origin_epoch": origin,  # exact (the ISO times are rounded to the millisecond)
        "bucket_s": bucket,
        "upgrade": {"started_at": iso(began), "finished_at": iso(ended), "started_epoch": began, "finished_epoch": ended,
                    "start": rel(began), "end": rel(ended),
                    "seconds": round(ended - began, 3) if began is not None and ended is not None else None},
        "summary": stats.summarize(records, gap),
        "phases": {name: stats.summarize(part, gap) for name, part in parts.items()},
        "windows": [w.to_dict(origin) for w in stats.windows(records, gap)],
        "failures": [{**r.to_dict(), "t": rel(r.start), "seen": rel(r.end), "outcome": r.outcome}
                     for r in failed[:MAX_FAILURES_LISTED]],
        "timeline": stats.timeline(records, origin, bucket),
        "steps": [{"name": s.name, "target": s.target, "status": s.status, "started_at": iso(s.started_at),
                   "finished_at": iso(s.finished_at), "start": rel(s.started_at), "end": rel(s.finished_at)}
                  for s in spans],
    }
    if any(r.op in ("create", "delete") for r in records):
        document["ledger"] = stats.ledger(records)
    return document


def write_report(directory: str | os.PathLike, records: Any, steps: Iterable[Any] = (),
                 meta: Mapping[str, Any] | None = None, *, bucket: float = 1.0, png: bool = True) -> ReportPaths:
    """Write report.json, records.jsonl, report.html and report.png into `directory` (created).
    `records`: a list of Records, or a ProbeResult (its start time and workloads go in the meta)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    if hasattr(records, "records") and hasattr(records, "meta"):  # a ProbeResult
        result = records
        meta = {"probe": result.meta(), "probe_started_at": iso(result.started_at), **meta}
        records = result.records
    document = build_report(records, steps, meta, bucket=bucket)
    paths = ReportPaths(folder, folder / "report.json", folder / "report.html",
                        folder / "report.png" if png else None, folder / "records.jsonl")
    document["files"] = {"records": paths.records.name, "html": paths.html.name,
                         "png": paths.png.name if paths.png else None}
    _atomic_write(paths.records, "".join(json.dumps(r.to_dict(), separators=(",", ":")) + "\n" for r in records))
    from hitless.probe.page import render_html  # noqa: PLC0415  (the page and chart only when writing)

    _atomic_write(paths.html, render_html(document))
    if paths.png is not None:
        png_path = paths.png
        try:
            from hitless.probe.png import render_png
        except ImportError:  # matplotlib missing: the JSON and HTML still tell everything
            paths = dataclasses.replace(paths, png=None)
            document["files"]["png"] = None
        else:
            render_png(document, png_path)
    _atomic_write(paths.json, json.dumps(document, indent=1) + "\n")
    return paths


def load_records(path: str | os.PathLike) -> list[Record]:
    """Read records.jsonl back."""
    with open(path, encoding="utf-8") as handle:
        return [Record.from_dict(json.loads(line)) for line in handle if line.strip()]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
