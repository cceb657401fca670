"""The report from a real probe run (against a loopback server that fails for a while and then
answers with a new version): its numbers agree with the raw records, recomputed here from
records.jsonl; the page is self-contained; the PNG is a picture; and headless Chromium (Debian's
`chromium`) draws the chart with the steps and the failure count."""

from __future__ import annotations

import http.server
import json
import math
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hitless.probe.records import StepSpan, epoch
from hitless.probe.report import load_records, write_report
from hitless.probe.session import ProbeSession

CHROMIUM = "/usr/bin/chromium"
VERSION_COLORS = {"1.0": (0x1F, 0x77, 0xB4), "2.0": (0x2C, 0xA0, 0x2C)}
FAIL_COLOR = (0xD6, 0x27, 0x28)


class Server(http.server.ThreadingHTTPServer):
    """200 with `X-Netapi-Version: <version>`, or 503 while `failing`."""

    daemon_threads = True
    version = "1.0"
    failing = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(503 if self.server.failing else 200)
        self.send_header("X-Netapi-Version", self.server.version)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of 2.5 s of load around a pretend upgrade: 0.3 s of 503s, then version 2.0."""
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with ProbeSession(url, "get", concurrency=2, interval=0.004) as probe:
            time.sleep(0.8)
            t0 = probe.now()
            server.failing = True
            time.sleep(0.3)
            t1 = probe.now()
            server.version, server.failing = "2.0", False
            t2 = probe.now()
            time.sleep(0.4)
            t3 = probe.now()
            time.sleep(1.0)
    finally:
        server.shutdown()
        server.server_close()
    steps = [StepSpan("stop", "api-0", t0, t1), StepSpan("start", "api/0", t1, t2), StepSpan("gate", "api-0-g2", t2, t3)]
    folder = tmp_path_factory.mktemp("report")
    paths = write_report(folder, probe.result, steps, {"title": "pretend upgrade", "target": url})
    return paths, json.loads(paths.json.read_text()), steps


def nearest_rank(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] if ordered else None


def test_numbers_agree_with_the_raw_records(report):
    paths, doc, steps = report
    lines = [json.loads(line) for line in paths.records.read_text().splitlines()]
    assert len(lines) == doc["summary"]["requests"] > 300
    assert load_records(paths.records)[0].start == lines[0]["start"]
    failed = [r for r in lines if not r["ok"]]
    assert len(failed) == doc["summary"]["failed"] > 10
    assert {r["status"] for r in failed} == {503}
    assert doc["summary"]["failed_by_outcome"] == {"503": len(failed)}
    ok = [r for r in lines if r["ok"]]
    assert doc["summary"]["versions"] == {v: sum(1 for r in ok if r["version"] == v) for v in ("1.0", "2.0")}
    assert doc["summary"]["latency_ms"]["p99"] == pytest.approx(nearest_rank([r["latency"] for r in ok], 0.99) * 1000, abs=1e-3)
    assert doc["summary"]["latency_ms"]["max"] == pytest.approx(max(r["latency"] for r in ok) * 1000, abs=1e-3)
    assert doc["summary"]["longest_cut_ms"] == pytest.approx(max(r["latency"] for r in failed) * 1000, abs=1e-3)

    # Phases by the time a request was sent, against the upgrade's start and end (the steps').
    began, ended = doc["upgrade"]["started_epoch"], doc["upgrade"]["finished_epoch"]
    assert (began, ended) == (steps[0].started_at, steps[-1].finished_at)
    assert epoch(doc["upgrade"]["started_at"]) == pytest.approx(began, abs=1e-3)
    parts = {"before": [r for r in lines if r["start"] < began], "during": [r for r in lines if began <= r["start"] < ended],
             "after": [r for r in lines if r["start"] >= ended]}
    for name, part in parts.items():
        phase = doc["phases"][name]
        assert phase["requests"] == len(part), name
        assert phase["failed"] == sum(1 for r in part if not r["ok"]), name
        lat = [r["latency"] for r in part if r["ok"]]
        assert phase["latency_ms"]["p50"] == pytest.approx(nearest_rank(lat, 0.5) * 1000, abs=1e-3), name
    # (a request sent just before the failures began may be answered by them)
    assert all(r["start"] > began - 0.05 for r in failed) and doc["phases"]["after"]["failed"] == 0
    assert set(doc["phases"]["before"]["versions"]) == {"1.0"}
    assert doc["phases"]["after"]["versions"] == {"2.0": len(parts["after"])}

    # One burst of failures, from the first seen to the last seen.
    seen = sorted(r["start"] + r["latency"] for r in failed)
    assert len(doc["windows"]) == 1
    window = doc["windows"][0]
    origin = doc["origin_epoch"]
    assert window["failed"] == len(failed)
    assert window["start"] == pytest.approx(seen[0] - origin, abs=1e-3)
    assert window["end"] == pytest.approx(seen[-1] - origin, abs=1e-3)
    assert 0.2 < window["seconds"] < 0.6

    # The timeline adds up to the same requests; steps are where they were.
    assert sum(sum(row["by_version"].values()) + row["failed"] for row in doc["timeline"]) == len(lines)
    assert [(s["name"], s["target"]) for s in doc["steps"]] == [("stop", "api-0"), ("start", "api/0"), ("gate", "api-0-g2")]
    assert doc["steps"][0]["start"] == pytest.approx(steps[0].started_at - origin, abs=1e-3)


def test_page_is_self_contained_and_png_is_a_picture(report):
    paths, doc, _ = report
    page = paths.html.read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "src=" not in page and "href=" not in page, "nothing is fetched: everything is inline"
    assert 'id="timeline-chart"' in page and f'id="failed-count">{doc["summary"]["failed"]}<' in page
    assert page.count('class="step-marker"') == 3
    import matplotlib.image

    assert paths.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(paths.png)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert _has_color(pixels, VERSION_COLORS["1.0"]) and _has_color(pixels, VERSION_COLORS["2.0"])
    assert _has_color(pixels, FAIL_COLOR)


def _has_color(pixels, rgb: tuple[int, int, int], tolerance: int = 6, at_least: int = 20) -> bool:
    import numpy as np

    rgb_pixels = (pixels[..., :3] * 255).astype(int) if pixels.dtype != np.uint8 else pixels[..., :3].astype(int)
    close = np.all(np.abs(rgb_pixels - np.array(rgb)) <= tolerance, axis=-1)
    return int(close.sum()) >= at_least


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{CHROMIUM} is missing (scripts/test.sh installs Debian's chromium); CI=true: this test must run")
    pytest.skip(f"{CHROMIUM} is missing (scripts/test.sh installs Debian's chromium)")


def _headless(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_chromium_draws_the_chart_with_steps_and_failures(report, tmp_path):
    paths, doc, _ = report
    dom = _headless(tmp_path, "--dump-dom", paths.html.as_uri()).stdout
    assert '<svg' in dom and 'id="timeline-chart"' in dom
    assert dom.count('class="rate-bar"') >= 3, "bars of requests per second"
    assert dom.count('class="step-marker"') == 3 and 'data-step="stop"' in dom and 'data-step="gate"' in dom
    assert f'id="failed-count">{doc["summary"]["failed"]}</div>' in dom
    assert dom.count('class="failure-mark"') == doc["summary"]["failed"]

    shot = tmp_path / "report.png"
    _headless(tmp_path, "--hide-scrollbars", "--window-size=1200,1100", f"--screenshot={shot}", paths.html.as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1200
    # Drawn, not just parsed: both versions' bars and the failures are on the screen.
    assert _has_color(pixels, VERSION_COLORS["1.0"], at_least=500)
    assert _has_color(pixels, VERSION_COLORS["2.0"], at_least=500)
    assert _has_color(pixels, FAIL_COLOR, at_least=20)
