"""report.png: the report's timeline drawn by matplotlib (Agg: no display needed), the same three
panels as the page's SVG: requests per second by version with failures, latency p50/p99 with the
failures marked, and the engine's steps."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never look for a display
import matplotlib.pyplot as plt  # noqa: E402

from hitless.probe.svg import FAIL_COLOR, STEP_COLORS, version_colors  # noqa: E402

MAX_STEPS = 60


def render_png(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Draw the report's chart into a PNG file."""
    rows, bucket = report["timeline"], report.get("bucket_s", 1.0)
    steps = report["steps"][:MAX_STEPS]
    versions = sorted({v for r in rows for v in r["by_version"]})
    colors = version_colors(versions)
    lanes = max(1, len(steps))
    fig, (rate, lat, lane) = plt.subplots(
        3, 1, sharex=True, figsize=(12, 6 + lanes * 0.16),
        gridspec_kw={"height_ratios": [3, 2, max(1.0, lanes * 0.16)]})
    try:
        title = report["meta"].get("title") or "Upgrade report"
        summary = report["summary"]
        fig.suptitle(f"{title}: {summary['requests']:,} requests, {summary['failed']} failed")
        ts = [r["t"] for r in rows]
        bottom = [0.0] * len(rows)
        for v in versions:
            heights = [r["by_version"].get(v, 0) / bucket for r in rows]
            rate.bar(ts, heights, width=bucket, bottom=bottom, align="edge", color=colors[v], label=f"version {v}")
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        failed = [r["failed"] / bucket for r in rows]
        if any(failed):
            rate.bar(ts, failed, width=bucket, bottom=bottom, align="edge", color=FAIL_COLOR, label="failed")
        rate.set_ylabel("requests / s")
        rate.legend(loc="upper right", fontsize=8)

        for key, color, label in (("p50_ms", "#1f77b4", "p50"), ("p99_ms", "#ff7f0e", "p99")):
            pts = [(r["t"] + bucket / 2, r[key]) for r in rows if r[key]]
            if pts:
                lat.plot([p[0] for p in pts], [p[1] for p in pts], color=color, label=label, linewidth=1.2)
        fails = report.get("failures", [])
        if fails:
            lat.scatter([f["seen"] for f in fails], [max(f["latency"] * 1000, 0.1) for f in fails], marker="x",
                        color=FAIL_COLOR, label="failed request", zorder=3)
        lat.set_yscale("log")
        lat.set_ylabel("latency (ms)")
        lat.legend(loc="upper right", fontsize=8)

        t_end = max([r["t"] + bucket for r in rows] + [0.0])
        for i, s in enumerate(steps):
            end = s["end"] if s["end"] is not None else t_end
            color = STEP_COLORS.get(s["name"], "#555555")
            lane.barh(i, max(end - s["start"], bucket / 20), left=s["start"], height=0.7, color=color)
            lane.text(end, i, f" {s['name']} {s['target']}", va="center", fontsize=6)
            for ax in (rate, lat):
                ax.axvline(s["start"], color=color, linewidth=0.6, linestyle="--", alpha=0.6)
        lane.set_ylim(lanes - 0.5, -0.5)
        lane.set_yticks([])
        lane.set_ylabel("engine steps")
        lane.set_xlabel("seconds from the start of the probe")
        upgrade = report.get("upgrade") or {}
        if upgrade.get("start") is not None and upgrade.get("end") is not None:
            for ax in (rate, lat, lane):
                ax.axvspan(upgrade["start"], upgrade["end"], color="#fff3c4", alpha=0.6, zorder=0)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
