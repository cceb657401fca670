"""`hitless demo` end to end on Docker: both upgrades measured in the same run, hitless with zero
failed requests and the Kolla way with some; both reports written; nothing left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import unix_socket_answers

pytestmark = pytest.mark.docker


def _row(stdout: str, label: str) -> list[str]:
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) >= 4 and cells[1] == label:
            return cells[2:4]
    raise AssertionError(f"no row {label!r} in the table:\n{stdout}")


def test_demo_shows_kolla_failures_and_none_with_hitless(docker_client, netapi_images, tmp_path):
    result = subprocess.run([sys.executable, "-m", "hitless", "demo", "--runtime", "docker"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "runtime: docker" in result.stderr
    kolla_failed, hitless_failed = _row(out, "failed")
    assert int(kolla_failed) > 0, out
    assert int(hitless_failed) == 0, out
    kolla_requests, hitless_requests = (int(v.replace(",", "")) for v in _row(out, "requests"))
    assert kolla_requests > 1000 and hitless_requests > 1000
    assert _row(out, "longest request cut")[1] == "none"
    assert _row(out, "unavailability window")[1] == "none"

    reports = re.findall(r"(/\S+/report\.html)", out)
    assert len(reports) == 2 and "kolla" in reports[0] and "hitless" in reports[1]
    kolla, hitless = (json.loads(Path(r).with_name("report.json").read_text()) for r in reports)
    assert kolla["summary"]["failed"] == int(kolla_failed) and hitless["summary"]["failed"] == 0
    assert hitless["ledger"]["not_deleted"] == [] and hitless["summary"]["versions"].keys() == {"1.0", "2.0"}
    assert {s["name"] for s in hitless["steps"]} >= {"start", "gate", "proxy-add", "drain", "stop"}
    assert {s["name"] for s in kolla["steps"]} >= {"stop", "start"}
    for report in reports:
        assert Path(report).with_name("report.png").stat().st_size > 10_000

    # Nothing left: no container of either upgrade, no proxy.
    for project in ("hitless-demo", "hitless-demo-kolla", "hitless-demo.jobs"):
        left = docker_client.containers.list(all=True, filters={"label": f"io.hitless.project={project}"})
        assert left == [], [c.name for c in left]
    demo_dir = Path(reports[0]).parents[3]
    assert demo_dir.resolve() == (tmp_path / "hitless-demo" / "netapi").resolve()  # the demo works in ./hitless-demo
    assert not unix_socket_answers(demo_dir / ".hitless" / "proxy.sock")
