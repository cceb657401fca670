"""`hitless upgrade` against real Docker, with the proxy and netapi, under continuous load:
zero failed requests, generations +1 per replacement, automatic rollback, recreate for singletons."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.load import Load
from tests.support.project import assert_ok

pytestmark = pytest.mark.docker


def test_upgrade_and_back_under_load_fails_no_request(project):
    p = project()
    assert_ok(p.cli("up"))
    assert p.slots() == {0: (1, "netapi:1.0"), 1: (1, "netapi:1.0")}
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(1)
        p.write("2.0")
        assert_ok(p.cli("upgrade"))
        assert p.slots() == {0: (2, "netapi:2.0"), 1: (2, "netapi:2.0")}
        p.write("1.0")
        assert_ok(p.cli("upgrade"))
        assert p.slots() == {0: (3, "netapi:1.0"), 1: (3, "netapi:1.0")}
        ids = sorted(c.id for c in p.containers())
        again = p.cli("upgrade")
        assert_ok(again)
        assert "nothing to do" in again.stderr
        assert sorted(c.id for c in p.containers()) == ids
        # One command back to the known good state before the current one; no version named.
        assert_ok(p.cli("rollback", "netapi"))
        assert p.slots() == {0: (4, "netapi:2.0"), 1: (4, "netapi:2.0")}
        assert_ok(p.cli("rollback", "netapi/api", "--to-generation", "1"))
        assert p.slots() == {0: (5, "netapi:1.0"), 1: (5, "netapi:1.0")}
        time.sleep(0.5)
    assert load.count() > 500
    assert load.failures() == []
    assert load.versions() == {"1.0", "2.0"}


def test_an_image_that_fails_its_health_check_is_rolled_back_automatically(project, docker_client, tmp_path):
    from hitless.imagebuild import build_image

    context = tmp_path / "broken"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM netapi:2.0\nENV NETAPI_BROKEN_HEALTH=1\n")
    build_image(docker_client, context, "netapi:2.1-broken")
    p = project()
    assert_ok(p.cli("up"))
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(0.5)
        result = p.cli("upgrade", "--image", "api=netapi:2.1-broken", "--probe", "get")
        time.sleep(0.5)
    assert result.returncode == 1
    assert "failed its health gate" in result.stderr and "rolled back: netapi/api → netapi:1.0" in result.stderr
    assert {img for _, img in p.slots().values()} == {"netapi:1.0"}
    assert load.failures() == []
    assert load.versions() == {"1.0"}
    # The probe's report is written for a failed upgrade too: what users saw, with the steps.
    [report_dir] = (p.folder / ".hitless" / "reports").iterdir()
    report = json.loads((report_dir / "report.json").read_text())
    assert (report_dir / "report.html").exists() and (report_dir / "report.png").exists()
    assert report["summary"]["requests"] > 0 and report["summary"]["failed"] == 0
    assert {"gate", "drain"} & {s["name"] for s in report["steps"]}


def test_a_recreate_singleton_is_upgraded_under_load_without_a_failed_request(project):
    p = project(replicas=1, strategy="recreate")
    assert_ok(p.cli("up"))
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(0.5)
        p.write("2.0")
        result = p.cli("upgrade")
        time.sleep(0.5)
    assert_ok(result)
    assert "pause" in result.stderr and "resume" in result.stderr
    assert p.slots() == {0: (2, "netapi:2.0")}
    assert load.failures() == []
    assert load.versions() == {"1.0", "2.0"}
