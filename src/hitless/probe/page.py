"""report.html: one self-contained page (inline CSS and SVG; no script, no font, no image fetched)
that a person would rather look at than read: the headline numbers, the timeline, the phases,
the engine's steps, the failures."""

from __future__ import annotations

from html import escape
from typing import Any

from hitless.probe.svg import render_svg

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: #666; margin-bottom: 18px; }
.cards { display: flex; gap: 14px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 130px; }
.card .n { font-size: 26px; font-weight: 600; } .card .l { color: #666; font-size: 12px; }
.card.bad .n { color: #d62728; } .card.good .n { color: #2ca02c; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; } td.l { text-align: left; }
.defs { color: #555; font-size: 12px; } .defs dt { font-weight: 600; } .defs dd { margin: 0 0 6px 12px; }
"""


def _ms(value: float | None) -> str:
    return "—" if value is None else (f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s")


def _card(label: str, value: str, cls: str = "", ident: str = "") -> str:
    attr = f' id="{ident}"' if ident else ""
    return f'<div class="card {cls}"><div class="n"{attr}>{escape(value)}</div><div class="l">{escape(label)}</div></div>'


def _step_row(step: dict[str, Any]) -> str:
    end = "—" if step["end"] is None else f'{step["end"]:.2f} s'
    took = "—" if step["end"] is None else f'{step["end"] - step["start"]:.2f} s'
    return (f'<tr class="step-row"><td>{escape(step["name"])}</td><td class="l">{escape(step["target"])}</td>'
            f'<td>{step["start"]:.2f} s</td><td>{end}</td><td>{took}</td><td class="l">{escape(step["status"])}</td></tr>')


def _phase_rows(report: dict[str, Any]) -> str:
    rows = []
    for name in ("before", "during", "after"):
        p = report["phases"][name]
        lat = p["latency_ms"]
        versions = ", ".join(f"{v}: {n}" for v, n in p["versions"].items()) or "—"
        rows.append(f'<tr><td>{name}</td><td>{p["requests"]}</td><td>{p["failed"]}</td><td>{_ms(lat["p50"])}</td>'
                    f'<td>{_ms(lat["p99"])}</td><td>{_ms(lat["max"])}</td><td>{p["rate_per_s"] or "—"}</td>'
                    f'<td class="l">{escape(versions)}</td></tr>')
    return "".join(rows)


def render_html(report: dict[str, Any]) -> str:
    """The page for a report document (see report.build_report)."""
    meta, summary, upgrade = report["meta"], report["summary"], report["upgrade"]
    during = report["phases"]["during"]
    title = meta.get("title") or "Upgrade report"
    failed = summary["failed"]
    subtitle = " · ".join(escape(str(v)) for v in (meta.get("target"), meta.get("runtime") and f"runtime {meta['runtime']}",
                                                   meta.get("command"), report.get("origin")) if v)
    cards = "".join([
        _card("requests", f'{summary["requests"]:,}'),
        _card("failed requests", str(failed), "bad" if failed else "good", "failed-count"),
        _card("unavailability (longest window)", f'{summary["longest_window_s"]:.2f} s' if summary["windows"] else "none",
              "bad" if summary["windows"] else "good"),
        _card("p99 during the upgrade", _ms(during["latency_ms"]["p99"])),
        _card("longest request cut", _ms(summary["longest_cut_ms"]) if summary["longest_cut_ms"] is not None else "none",
              "bad" if summary["longest_cut_ms"] is not None else "good"),
        _card("upgrade", f'{upgrade["seconds"]:.1f} s' if upgrade.get("seconds") is not None else "—"),
    ])
    steps = "".join(_step_row(s) for s in report["steps"])
    windows = "".join(f'<tr><td>{w["start"]:.2f} s</td><td>{w["end"]:.2f} s</td><td>{w["seconds"]:.2f} s</td>'
                      f'<td>{w["failed"]}</td></tr>' for w in report["windows"])
    failures = "".join(
        f'<tr class="failure-row"><td>{f["seen"]:.2f} s</td><td class="l">{escape(f["op"])}</td>'
        f'<td class="l">{escape(f["client"])}</td><td class="l">{escape(f["outcome"])}</td>'
        f'<td>{f["latency"] * 1000:.0f} ms</td><td class="l">{escape(f["version"] or "")}</td></tr>'
        for f in report["failures"][:200])
    ledger = report.get("ledger")
    ledger_html = ""
    if ledger is not None:
        lost = ledger["not_deleted"]
        ledger_html = (f'<h2>Networks created and deleted</h2><p id="ledger">{ledger["created"]} created, '
                       f'{ledger["deleted"]} deleted, {len(lost)} not deleted'
                       + (f': {escape(", ".join(lost[:20]))}' if lost else " — nothing lost") + "</p>")
    defs = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in report["definitions"].items())
    phases_head = "".join(f"<th>{h}</th>" for h in ("phase", "requests", "failed", "p50", "p99", "max", "req/s", "versions"))
    windows_html = (f'<table id="windows"><tr><th>from</th><th>to</th><th>length</th><th>failed</th></tr>{windows}</table>'
                    if windows else '<p id="windows">none: no request failed</p>')
    failures_head = "".join(f"<th>{h}</th>" for h in ("seen at", "operation", "client", "outcome", "after", "version"))
    failures_html = (f'<table id="failures"><tr>{failures_head}</tr>{failures}</table>'
                     if failures else '<p id="failures">none</p>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<div class="sub">{subtitle}</div>
<div class="cards">{cards}</div>
<h2>Timeline</h2>
<p class="sub">Requests per second by the version that answered, failures in red (bars: when the requests were sent;
✕: when each failure was seen, at the height of how long it had run), latency, and the engine's steps; the upgrade
is shaded. Time in seconds from the start of the probe.</p>
{render_svg(report)}
<h2>Before, during and after the upgrade</h2>
<table id="phases"><tr>{phases_head}</tr>
{_phase_rows(report)}</table>
<h2>Unavailability windows</h2>
{windows_html}
<h2>Engine steps</h2>
<table id="steps"><tr><th>step</th><th>target</th><th>start</th><th>end</th><th>took</th><th>status</th></tr>{steps}</table>
<h2>Failed requests</h2>
{failures_html}
{ledger_html}
<h2>Definitions</h2><dl class="defs">{defs}</dl>
</body></html>
"""
