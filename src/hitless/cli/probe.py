"""`hitless probe URL`: send load, record every request, say what users saw.

Exit status 0 when every request got the answer it expects, 1 when any failed (so a script can
assert "zero failed"), 2 for bad input. Ctrl-C ends the run early; the results are still printed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from hitless.cli.common import console, print_json
from hitless.errors import BadInput, ExitStatus
from hitless.probe import stats
from hitless.probe.load import SCENARIOS, VERSION_HEADER, Workload
from hitless.probe.report import build_report, write_report
from hitless.probe.session import ProbeResult, ProbeSession

MAX_FAILURES_SHOWN = 20


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("probe", help="send load to a URL and report every failed request, latency and versions")
    parser.add_argument("url", metavar="URL", help="e.g. http://127.0.0.1:9696/v2.0/networks (the API's root for "
                                                     "neutron-cycle and long)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="get",
                        help="get: GET the URL; neutron-cycle: create a network and delete it again (the seeds' "
                             "test, one pair per client every 0.5 s); long: long POST /v2.0/snapshots requests")
    parser.add_argument("--concurrency", type=int, default=2, metavar="N",
                        help="clients of each connection kind (default 2)")
    parser.add_argument("--rate", type=float, metavar="R",
                        help="open loop: R requests (or create/delete pairs) per second in total, whatever the answers")
    parser.add_argument("--new-connections", action="store_true",
                        help="clients that open a new connection per request, like a CLI")
    parser.add_argument("--keep-alive", action="store_true", help="clients that keep their connection, like a service")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds of load (default 10)")
    parser.add_argument("--interval", type=float, metavar="S",
                        help="closed loop: a client starts a request every S seconds (default 0.5 for neutron-cycle, "
                             "else as soon as the last one ended)")
    parser.add_argument("--long-seconds", type=float, default=15.0, metavar="S",
                        help="how long each request of the long scenario takes (default 15)")
    parser.add_argument("--version-header", default=VERSION_HEADER, metavar="NAME",
                        help=f"the response header that names the version that answered (default {VERSION_HEADER})")
    parser.add_argument("--report", metavar="DIR", help="also write report.json, report.html and report.png into DIR")
    parser.add_argument("--json", action="store_true", help="print the report document as JSON instead of text")
    parser.set_defaults(func=run)


def workload_from(args: argparse.Namespace) -> Workload:
    """The workload the arguments ask for (BadInput, one line, when they make no sense)."""
    modes = tuple(m for m, on in (("new", args.new_connections), ("keep", args.keep_alive)) if on) or ("new", "keep")
    if not args.duration > 0:
        raise BadInput(f"--duration {args.duration}: expected a positive number of seconds")
    return Workload(args.url, args.scenario, args.concurrency, modes, args.rate, args.interval, args.long_seconds,
                    version_header=args.version_header)


def _describe(w: Workload, duration: float) -> str:
    kinds = " + ".join(f"{w.concurrency} {'new-connection' if m == 'new' else 'keep-alive'}" for m in w.modes)
    pace = f"open loop at {w.rate:g}/s" if w.rate else f"closed loop{f', every {w.period:g} s' if w.period else ''}"
    return f"probe {w.url}: {w.scenario}, " + (f"{' + '.join(w.modes)} clients" if w.rate else f"{kinds} clients") \
        + f", {pace}, {duration:g} s"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def render(result: ProbeResult, report: dict[str, Any]) -> list[str]:
    """The text a person reads after a probe run."""
    s = report["summary"]
    lines = [f"requests {s['requests']:,}  ok {s['ok']:,}  failed {s['failed']:,}"
             + (f"  ({s['rate_per_s']:g}/s)" if s["rate_per_s"] else "")
             + (f"  abandoned at stop {result.abandoned}" if result.abandoned else "")]
    lat = s["latency_ms"]
    lines.append(f"latency p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}  max {_ms(lat['max'])}"
                 + (f"  longest request cut {_ms(s['longest_cut_ms'])}" if s["longest_cut_ms"] is not None else ""))
    if report["windows"]:
        lines.append(f"unavailability windows ({len(report['windows'])}):")
        lines += [f"  {w['start']:7.2f}s → {w['end']:7.2f}s  {w['seconds']:.2f} s  {w['failed']} failed"
                  for w in report["windows"]]
    else:
        lines.append("unavailability windows: none")
    if s["failed"]:
        lines.append(f"failed requests (by outcome: {', '.join(f'{k} × {v}' for k, v in s['failed_by_outcome'].items())}):")
        for f in report["failures"][:MAX_FAILURES_SHOWN]:
            lines.append(f"  {f['seen']:7.2f}s  {f['op']:<8} {f['client']:<4} {f['outcome']:<14} after "
                         f"{f['latency'] * 1000:.0f} ms")
        if s["failed"] > MAX_FAILURES_SHOWN:
            lines.append(f"  … and {s['failed'] - MAX_FAILURES_SHOWN} more")
    versions = sorted(s["versions"])
    span = (result.finished_at - result.started_at) if result.records else 0
    bucket = max(1.0, round(span / 10))
    if result.records:
        lines.append("requests per version over time (answered ok, by when they were sent):")
        lines.append("  " + f"{'t (s)':>11}" + "".join(f"{v:>9}" for v in versions) + f"{'failed':>9}")
        for t, counts, failed in stats.versions_over_time(result.records, result.started_at, bucket):
            lines.append("  " + f"{t:>5g}-{t + bucket:<5g}" + "".join(f"{counts.get(v, 0):>9}" for v in versions)
                         + f"{failed:>9}")
    ledger = report.get("ledger")
    if ledger is not None:
        lost = ledger["not_deleted"]
        lines.append(f"networks: {ledger['created']} created, {ledger['deleted']} deleted, "
                     + (f"{len(lost)} not deleted: {', '.join(lost[:5])}" if lost else "nothing lost"))
    return lines


def run(args: argparse.Namespace) -> int:
    workload = workload_from(args)
    grace = max(5.0, workload.long_seconds + 5 if workload.scenario == "long" else 5.0)
    session = ProbeSession(workloads=[workload], grace=grace)
    if not args.json:
        console.print(_describe(workload, args.duration), markup=False, soft_wrap=True)
    session.start()
    try:
        time.sleep(args.duration)
    except KeyboardInterrupt:
        console.print("interrupted: stopping the probe", markup=False)
    result = session.stop()
    meta = {"title": f"hitless probe {workload.url}", "target": workload.url, "probe_started_at": result.started_at,
            "probe": result.meta()}
    report = build_report(result.records, (), meta)
    if args.report:
        paths = write_report(args.report, result, (), {"title": meta["title"], "target": workload.url})
        report["files"] = {"json": str(paths.json), "html": str(paths.html), "png": str(paths.png) if paths.png else None}
    if args.json:
        print_json(report)
    else:
        for line in render(result, report):
            console.print(line, markup=False, soft_wrap=True, highlight=False)
        if args.report:
            console.print(f"report: {paths.html}", markup=False, soft_wrap=True)
    return ExitStatus.FAILED if report["summary"]["failed"] else ExitStatus.OK
