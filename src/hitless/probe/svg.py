"""The report's timeline as inline SVG, drawn from the report document alone (no I/O, no
JavaScript): requests per second by version with failures on top, latency p50/p99 on a log scale
with each failure marked, and the engine's steps as bars on their own lanes. The upgrade is
shaded across all three panels; every step also gets a line across the panels at its start.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH = 1100
LEFT, RIGHT = 70, 20
PLOT_W = WIDTH - LEFT - RIGHT
RATE_H, LAT_H, LANE_H, GAP = 220, 160, 16, 34
FAIL_COLOR = "#d62728"
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f")
STEP_COLORS = {"start": "#2ca02c", "gate": "#98df8a", "proxy-add": "#17becf", "drain": "#ff7f0e",
               "stop": "#d62728", "remove": "#7f7f7f", "expand": "#9467bd", "contract": "#c5b0d5",
               "snapshot": "#8c564b", "pause": "#e377c2", "resume": "#e377c2"}


def version_colors(versions: list[str]) -> dict[str, str]:
    """A stable color per version, in version order ("none": grey)."""
    colors = {}
    for i, v in enumerate(sorted(v for v in versions if v != "none")):
        colors[v] = PALETTE[i % len(PALETTE)]
    colors["none"] = "#bbbbbb"
    return colors


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _ticks(top: float, count: int = 4) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _fmt(v: float) -> str:
    return f"{v:g}" if v < 1000 else f"{v / 1000:g}k"


def render_svg(report: dict[str, Any]) -> str:
    """The chart of a report document (see report.build_report)."""
    rows = report["timeline"]
    steps = report["steps"][:60]
    upgrade = report.get("upgrade") or {}
    failures = report.get("failures", [])
    bucket = report.get("bucket_s", 1.0)
    t_min = min([0.0] + [r["t"] for r in rows])
    t_max = max([bucket] + [r["t"] + bucket for r in rows] + [s["end"] or s["start"] for s in steps])
    span = max(t_max - t_min, 1e-9)

    def x(t: float) -> float:
        return LEFT + (t - t_min) / span * PLOT_W

    versions = sorted({v for r in rows for v in r["by_version"]})
    colors = version_colors(versions)
    lanes = len(steps)
    rate_top, lat_top = 30, 30 + RATE_H + GAP
    lane_top = lat_top + LAT_H + GAP
    height = lane_top + max(1, lanes) * LANE_H + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline-chart" class="chart" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">',
           '<title>Requests per second by version, latency and failures, with the engine steps</title>']

    # The upgrade, shaded across every panel.
    if upgrade.get("start") is not None and upgrade.get("end") is not None:
        ux0, ux1 = x(upgrade["start"]), x(upgrade["end"])
        out.append(f'<rect class="upgrade-window" x="{ux0:.1f}" y="{rate_top}" width="{max(ux1 - ux0, 1):.1f}" '
                   f'height="{height - 40 - rate_top}" fill="#fff3c4" opacity="0.6">'
                   f'<title>upgrade: {upgrade["start"]:.1f}s to {upgrade["end"]:.1f}s</title></rect>')

    # Panel 1: successful requests per second, stacked by version; failures on top in red.
    per_s = [(sum(r["by_version"].values()) + r["failed"]) / bucket for r in rows]
    top = _nice_max(max(per_s, default=1.0))
    out.append(_axis(rate_top, RATE_H, top, "requests / s", _fmt))
    bar_w = max(PLOT_W * bucket / span - 1, 1)
    for r in rows:
        y0 = rate_top + RATE_H
        for v in versions:
            n = r["by_version"].get(v, 0)
            if n:
                h = n / bucket / top * RATE_H
                y0 -= h
                out.append(f'<rect class="rate-bar" data-version="{escape(v)}" x="{x(r["t"]):.1f}" y="{y0:.1f}" '
                           f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colors[v]}">'
                           f'<title>{r["t"]:g}s: {n} ok on {escape(v)}</title></rect>')
        if r["failed"]:
            h = max(r["failed"] / bucket / top * RATE_H, 2)
            out.append(f'<rect class="fail-bar" x="{x(r["t"]):.1f}" y="{y0 - h:.1f}" width="{bar_w:.1f}" '
                       f'height="{h:.1f}" fill="{FAIL_COLOR}"><title>{r["t"]:g}s: {r["failed"]} failed</title></rect>')
    legend_x = LEFT + 60
    for v in versions:
        out.append(f'<rect x="{legend_x}" y="{rate_top - 22}" width="10" height="10" fill="{colors[v]}"/>'
                   f'<text class="legend" x="{legend_x + 14}" y="{rate_top - 13}">version {escape(v)}</text>')
        legend_x += 110
    out.append(f'<rect x="{legend_x}" y="{rate_top - 22}" width="10" height="10" fill="{FAIL_COLOR}"/>'
               f'<text class="legend" x="{legend_x + 14}" y="{rate_top - 13}">failed</text>')

    # Panel 2: latency p50 and p99 per bucket (log scale), failures as marks at the moment seen.
    lat_values = [r[k] for r in rows for k in ("p50_ms", "p99_ms") if r[k]]
    lo = 10 ** math.floor(math.log10(max(min(lat_values, default=1.0), 0.01)))
    hi = 10 ** math.ceil(math.log10(max(max(lat_values, default=10.0), lo * 10)))

    def ly(ms: float) -> float:
        ms = min(max(ms, lo), hi)
        return lat_top + LAT_H - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * LAT_H

    out.append(f'<text x="{LEFT - 60}" y="{lat_top - 8}">latency (ms, log)</text>')
    decade = lo
    while decade <= hi * 1.0001:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{ly(decade):.1f}" y2="{ly(decade):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{ly(decade) + 4:.1f}" text-anchor="end">{_fmt(decade)}</text>')
        decade *= 10
    out.append(f'<rect x="{LEFT}" y="{lat_top}" width="{PLOT_W}" height="{LAT_H}" fill="none" stroke="#999"/>')
    for key, color, label in (("p50_ms", "#1f77b4", "p50"), ("p99_ms", "#ff7f0e", "p99")):
        points = [f"{x(r['t'] + bucket / 2):.1f},{ly(r[key]):.1f}" for r in rows if r[key]]
        if points:
            out.append(f'<polyline class="latency-{label}" fill="none" stroke="{color}" stroke-width="1.5" '
                       f'points="{" ".join(points)}"><title>latency {label}</title></polyline>')
    out.append(f'<text x="{LEFT + PLOT_W - 90}" y="{lat_top + 14}" fill="#1f77b4">p50</text>'
               f'<text x="{LEFT + PLOT_W - 60}" y="{lat_top + 14}" fill="#ff7f0e">p99</text>')
    for f in failures[:500]:
        fx, fy = x(f["seen"]), ly(max(f["latency"] * 1000, lo))
        out.append(f'<path class="failure-mark" d="M{fx - 4:.1f},{fy - 4:.1f}L{fx + 4:.1f},{fy + 4:.1f}'
                   f'M{fx - 4:.1f},{fy + 4:.1f}L{fx + 4:.1f},{fy - 4:.1f}" stroke="{FAIL_COLOR}" stroke-width="2">'
                   f'<title>{f["seen"]:.2f}s: {escape(f["op"])} {escape(f["outcome"])} '
                   f'after {f["latency"] * 1000:.0f} ms</title></path>')

    # Panel 3: the engine's steps, one lane each; a line across the panels at each start.
    out.append(f'<text x="{LEFT - 60}" y="{lane_top - 8}">engine steps</text>')
    for i, s in enumerate(steps):
        y = lane_top + i * LANE_H
        color = STEP_COLORS.get(s["name"], "#555555")
        x0 = x(s["start"])
        x1 = x(s["end"]) if s["end"] is not None else x(t_max)
        label = f'{s["name"]} {s["target"]}'
        title = f'{label}: {s["start"]:.2f}s to ' + (f'{s["end"]:.2f}s' if s["end"] is not None else "unfinished")
        out.append(f'<g class="step-marker" data-step="{escape(s["name"])}">'
                   f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{rate_top}" y2="{y + LANE_H / 2:.1f}" stroke="{color}" '
                   f'stroke-width="0.8" stroke-dasharray="3,3" opacity="0.7"/>'
                   f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 2):.1f}" height="{LANE_H - 4}" fill="{color}"/>'
                   + (f'<text x="{x1 + 4:.1f}" y="{y + LANE_H - 4}">{escape(label)}</text>' if x1 < LEFT + PLOT_W * 0.7
                      else f'<text x="{x0 - 4:.1f}" y="{y + LANE_H - 4}" text-anchor="end">{escape(label)}</text>')
                   + f'<title>{escape(title)}</title></g>')
    if not steps:
        out.append(f'<text x="{LEFT + 10}" y="{lane_top + 12}" fill="#777">no engine steps recorded</text>')

    # The time axis, under everything.
    axis_y = lane_top + max(1, lanes) * LANE_H + 6
    tick = _nice_max(span / 10)
    t = math.ceil(t_min / tick) * tick
    while t <= t_max + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#333"/>'
                   f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{t:g}s</text>')
        t += tick
    out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{axis_y}" y2="{axis_y}" stroke="#333"/>')
    out.append("</svg>")
    return "\n".join(out)


def _axis(top: float, height: float, vmax: float, label: str, fmt) -> str:
    parts = [f'<text x="{LEFT - 60}" y="{top - 8 - 14}">{label}</text>']
    for v in _ticks(vmax):
        y = top + height - v / vmax * height
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    parts.append(f'<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{height}" fill="none" stroke="#999"/>')
    return "".join(parts)
