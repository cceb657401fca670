"""The probe's statistics and report document on hand-made records: no I/O, no clock."""

from __future__ import annotations

import datetime as dt

import pytest

from hitless.probe import stats
from hitless.probe.records import Record, StepSpan, epoch, iso, step_spans
from hitless.probe.report import build_report

T0 = 1_700_000_000.0


def rec(at: float, latency: float = 0.01, status: int | None = 200, *, ok: bool | None = None, version: str | None = "1.0",
        op: str = "get", client: str = "new", error: str | None = None, resource: str | None = None) -> Record:
    if status is None and error is None:
        error = "refused"
    return Record(T0 + at, latency, status, error, version if status else None,
                  ok if ok is not None else (status is not None and status < 400), op, client, 0, resource)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 0.50) == 50.0
    assert stats.percentile(values, 0.99) == 99.0
    assert stats.percentile(values, 1.0) == 100.0
    assert stats.percentile([7.0], 0.99) == 7.0
    assert stats.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert stats.percentile([], 0.5) is None


def test_failures_are_what_the_scenario_did_not_expect():
    records = [rec(0), rec(1, status=502), rec(2, status=None, error="reset"), rec(3, status=404, op="delete", ok=False),
               rec(4, status=201, op="create")]
    assert [r.outcome for r in stats.failures(records)] == ["502", "reset", "404"]


def test_windows_group_failures_seen_less_than_gap_apart():
    records = [rec(0.0), rec(1.0, status=502), rec(1.5, status=502), rec(2.2, status=None),  # one burst: 1.0 → 2.2
               rec(5.0, status=503),  # alone
               rec(9.0, latency=10.0, status=502, op="snapshot")]  # seen at 19.0: alone
    found = stats.windows(records, gap=1.0)
    assert [(w.start - T0, w.end - T0, w.failed) for w in found] == [
        (pytest.approx(1.01), pytest.approx(2.21), 3), (pytest.approx(5.01), pytest.approx(5.01), 1),
        (pytest.approx(19.0), pytest.approx(19.0), 1)]
    assert found[0].seconds == pytest.approx(1.2)
    assert stats.windows([rec(0), rec(1)]) == []


def test_split_by_when_the_request_was_sent():
    records = [rec(0), rec(0.99), rec(1.0), rec(2.5), rec(3.0), rec(4)]
    parts = stats.split(records, T0 + 1.0, T0 + 3.0)
    assert [len(parts[p]) for p in ("before", "during", "after")] == [2, 2, 2]
    assert len(stats.split(records, None, None)["during"]) == 6


def test_summarize_counts_latency_and_cuts():
    records = [rec(i * 0.1, latency=0.001 * (i + 1)) for i in range(100)]
    records += [rec(10, latency=15.0, status=201, op="snapshot"),  # a long one: not in the percentiles
                rec(11, latency=10.4, status=502, op="snapshot", version=None),  # cut after 10.4 s
                rec(11, latency=0.002, status=None, error="refused")]
    s = stats.summarize(records)
    assert (s["requests"], s["ok"], s["failed"]) == (103, 101, 2)
    assert s["failed_by_outcome"] == {"502": 1, "refused": 1}
    assert s["latency_ms"] == {"p50": 50.0, "p99": 99.0, "max": 100.0, "count": 100}
    assert s["longest_cut_ms"] == pytest.approx(10400.0)
    assert s["versions"] == {"1.0": 101}
    assert s["by_op"] == {"get": 101, "snapshot": 2}
    assert s["windows"] == 2  # the refusal seen at 11 s, the cut seen at 21.4 s
    empty = stats.summarize([])
    assert empty["requests"] == 0 and empty["latency_ms"]["p50"] is None and empty["longest_cut_ms"] is None


def test_timeline_has_every_bucket_with_versions_and_failures():
    records = [rec(0.1), rec(0.5, version="2.0"), rec(0.7, status=502), rec(3.2, version="2.0")]
    rows = stats.timeline(records, T0, bucket=1.0)
    assert [r["t"] for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert rows[0]["by_version"] == {"1.0": 1, "2.0": 1} and rows[0]["failed"] == 1
    assert rows[1] == {"t": 1.0, "by_version": {}, "failed": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    assert rows[3]["by_version"] == {"2.0": 1}
    assert stats.versions_over_time(records, T0, 2.0) == [(0.0, {"1.0": 1, "2.0": 1}, 1), (2.0, {"2.0": 1}, 0)]


def test_ledger_shows_what_was_created_and_never_deleted():
    records = [rec(0, status=201, op="create", resource="a"), rec(0.1, status=204, op="delete", resource="a"),
               rec(1, status=201, op="create", resource="b"), rec(1.1, status=None, op="delete", resource="b"),
               rec(2, status=None, op="create")]
    assert stats.ledger(records) == {"created": 2, "deleted": 1, "not_deleted": ["b"]}


def test_record_round_trip_and_times():
    r = rec(1.5, latency=0.25, status=None, error="reset", op="create", client="keep", resource="x")
    assert Record.from_dict(r.to_dict()) == r
    assert r.end == pytest.approx(T0 + 1.75)
    assert epoch(iso(T0 + 0.123)) == pytest.approx(T0 + 0.123)
    assert epoch(dt.datetime.fromtimestamp(T0, dt.UTC)) == T0
    assert epoch("2026-01-01T00:00:00") == epoch("2026-01-01T00:00:00+00:00")  # the journal writes UTC
    assert epoch(None) is None


def test_step_spans_take_journal_steps_tuples_and_dicts():
    class JournalStep:  # the shape of hitless.state.journal.Step
        kind, target, status = "drain", "api-0", "done"
        started_at, finished_at = iso(T0 + 2), iso(T0 + 5)

    spans = step_spans([JournalStep(), ("start", "api/0", T0 + 1, T0 + 1.5),
                        {"name": "stop", "target": "api-0", "started_at": T0 + 6, "finished_at": None}])
    assert [(s.name, s.started_at - T0) for s in spans] == [("start", 1), ("drain", 2), ("stop", 6)]
    assert spans[2].finished_at is None


def test_report_splits_phases_by_the_upgrade_and_places_steps():
    records = [rec(t / 10) for t in range(100)] + [rec(4.0, status=502)]
    steps = [StepSpan("start", "api/0", T0 + 3, T0 + 4), StepSpan("stop", "api-0", T0 + 5, T0 + 6)]
    doc = build_report(records, steps, {"probe_started_at": T0, "title": "t"})
    assert doc["upgrade"]["start"] == 3.0 and doc["upgrade"]["end"] == 6.0 and doc["upgrade"]["seconds"] == 3.0
    assert [doc["phases"][p]["requests"] for p in ("before", "during", "after")] == [30, 31, 40]
    assert doc["phases"]["during"]["failed"] == 1 and doc["summary"]["failed"] == 1
    assert [(s["name"], s["start"], s["end"]) for s in doc["steps"]] == [("start", 3.0, 4.0), ("stop", 5.0, 6.0)]
    assert doc["failures"][0]["seen"] == pytest.approx(4.01) and doc["windows"][0]["failed"] == 1
    assert "ledger" not in doc
    # An explicit upgrade interval wins over the steps'.
    doc = build_report(records, steps, {"probe_started_at": T0, "upgrade_started_at": T0 + 1,
                                        "upgrade_finished_at": iso(T0 + 2)})
    assert doc["upgrade"]["start"] == 1.0 and doc["phases"]["during"]["requests"] == 10


def test_report_of_no_records_is_still_a_document():
    doc = build_report([], [], {})
    assert doc["summary"]["requests"] == 0 and doc["timeline"] == [] and doc["upgrade"]["seconds"] is None
