"""Measure what users saw during an upgrade: a load generator whose every request is recorded,
pure statistics over the records, and a report (JSON, self-contained HTML, PNG).

    from hitless.probe import ProbeSession, write_report

    with ProbeSession("http://127.0.0.1:9696/v2.0/networks", "neutron-cycle") as probe:
        deployment = engine.run(request)
    paths = write_report(".hitless/reports/run-1", probe.result, journal.steps(deployment),
                         {"title": "netapi 1.0 → 2.0"})

Modules: records (Record, StepSpan), stats (pure), load (the async generator), session (the probe
in a background thread), report / page / svg / png (the report), kolla (the Kolla-way baseline
of `hitless demo`).
"""

from hitless.probe.load import SCENARIOS, Workload
from hitless.probe.records import Record, StepSpan
from hitless.probe.report import ReportPaths, build_report, load_records, write_report
from hitless.probe.session import ProbeResult, ProbeSession, target_url

__all__ = ["SCENARIOS", "ProbeResult", "ProbeSession", "Record", "ReportPaths", "StepSpan", "Workload",
           "build_report", "load_records", "target_url", "write_report"]
