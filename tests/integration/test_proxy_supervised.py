"""The proxy is supervised by the project's runtime: on Docker a container with restart policy
`unless-stopped`, on local processes a supervisor. A proxy killed with SIGKILL under load comes
back with no hitless command; `status` shows it and fails loudly when it is down; `down`
stops it. One netapi deployment per runtime serves the whole file."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from hitless import __version__
from hitless.proxyhost.image import PROXY_KEY_LABEL, proxy_image_tag
from hitless.runtime.process_shim import proc_stat
from tests.support.load import Load
from tests.support.project import (
    BOTH_RUNTIMES_SPEC,
    answers_200,
    assert_ok,
    kill_9,
    project_on,
    proxy_containers,
    proxy_pids,
    proxy_status,
    status_json,
    supervisor_record,
    take_down_for_good,
)
from tests.support.waiting import wait_until

RECOVERY_TARGET = 2.0  # seconds from SIGKILL to the first 200 through the frontend


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def deployed(request, tmp_path_factory):
    """netapi 1.0 × 2 behind its frontend, on one runtime, `up` done."""
    p = project_on(request, tmp_path_factory, "supervised", BOTH_RUNTIMES_SPEC, migrations="")
    try:
        assert_ok(p.cli("up"))
        yield p
    finally:
        p.cleanup()


def test_the_proxy_runs_under_its_runtimes_supervision(deployed):
    p = deployed
    status = proxy_status(p.folder)
    assert status is not None and status["version"] == __version__
    if p.runtime == "process":
        record = supervisor_record(p)
        assert record["proxy_pid"] == status["pid"] and record["version"] == __version__
        assert os.getsid(record["pid"]) == record["pid"]  # detached: a session of its own
        assert os.getpgid(status["pid"]) == status["pid"]  # the proxy: a process group of its own
        return
    [container] = proxy_containers(p.folder)
    attrs = container.attrs
    assert container.name == f"{p.name}-hitless-proxy" and container.status == "running"
    assert container.labels["io.hitless.proxy.project"] == p.name
    assert container.labels["io.hitless.proxy.version"] == __version__
    # hitless-proxy:<version>-<key>: the key of its contents, so that two checkouts of one version
    # on one engine never take each other's image.
    key = container.image.labels[PROXY_KEY_LABEL]
    assert attrs["Config"]["Image"] == proxy_image_tag(key) == f"hitless-proxy:{__version__}-{key[:12]}"
    host = attrs["HostConfig"]
    assert (host["NetworkMode"], host["PidMode"], host["RestartPolicy"]["Name"]) == ("host", "host", "unless-stopped")
    assert [(m["Type"], m["Source"], m["Destination"]) for m in attrs["Mounts"]] == [
        ("bind", str(p.state_dir), str(p.state_dir))]
    assert attrs["State"]["Pid"] == status["pid"]  # the pid it reports is this machine's
    assert not p.containers() or all("io.hitless.slot" in c.labels for c in p.containers())  # not an instance


def test_status_shows_the_proxy(deployed):
    p = deployed
    code, data = status_json(p)
    assert code == 0
    proxy = data["proxy"]
    assert proxy["running"] and proxy["version"] == proxy["installed_version"] == __version__
    assert proxy["pid"] == proxy_status(p.folder)["pid"] and proxy["uptime_seconds"] > 0
    assert proxy["host"]["kind"] == p.runtime and proxy["host"]["main_pid"] == proxy["pid"]
    [frontend] = proxy["frontends"]
    assert frontend["name"] == "netapi.api" and frontend["by_state"] == {"ready": 2}
    assert proxy["drift"]["in_sync"]
    text = p.cli("status").stdout
    assert f"proxy pid {proxy['pid']} hitless {__version__}" in text and "netapi.api" in text and "2 ready" in text


def test_kill_9_of_the_whole_proxy_under_load_recovers_with_no_command(deployed):
    p = deployed
    before = proxy_status(p.folder)
    with Load("127.0.0.1", p.port, workers=1, pause=0.02) as load:
        wait_until(lambda: any(r.status == 200 for r in list(load.records)), 10, interval=0.01, message="load answered")
        killed_at = time.monotonic()
        kill_9(proxy_pids(before))
        back = wait_until(lambda: (s := proxy_status(p.folder)) and s["pid"] != before["pid"] and s, 10, interval=0.01,
                          message="the proxy answered its admin socket again")
        admin_back = time.monotonic() - killed_at
        assert back["state_file"]  # the routing it restored before listening again
        wait_until(lambda: answers_200(p), 10, interval=0.01, message="a request through the frontend answered 200")
        time.sleep(0.3)
    recovered = min((r.started + r.latency for r in load.records if r.status == 200 and r.started >= killed_at),
                    default=None)
    recovery = recovered - killed_at if recovered is not None else None
    print(f"\n{p.runtime}: proxy back on its admin socket {admin_back:.3f}s after SIGKILL; "
          f"first 200 through the frontend after {recovery if recovery is None else round(recovery, 3)}s; "
          f"{len(load.failures())} of {load.count()} requests failed")
    assert admin_back < RECOVERY_TARGET
    if p.runtime == "process":
        record = supervisor_record(p)
        assert record["restarts"] >= 1 and record["proxy_pid"] == back["pid"]
        assert f"proxy {before['pid']} killed by SIGKILL" in (p.state_dir / "proxy.log").read_text()
    else:
        [container] = proxy_containers(p.folder)
        assert container.attrs["RestartCount"] >= 1 and container.attrs["State"]["Pid"] == back["pid"]
    assert recovery is not None and recovery < RECOVERY_TARGET, recovery
    code, data = status_json(p)
    assert code == 0 and data["proxy"]["drift"]["in_sync"], data["proxy"]["drift"]


def test_status_fails_loudly_while_the_proxy_is_down_and_up_brings_it_back(deployed):
    p = deployed
    take_down_for_good(p)
    time.sleep(1.5)  # a restart policy or supervisor would have acted by now
    assert proxy_status(p.folder) is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p.port), timeout=2).close()

    result = p.cli("status")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PROXY DOWN" in result.stdout and f"127.0.0.1:{p.port} refuse connections" in result.stdout
    code, data = status_json(p)
    assert code == 1 and data["proxy"]["running"] is False and data["proxy"]["error"]
    assert data["proxy"]["host"]["state"] == "exited"
    plan = json.loads(p.cli("plan", "--json").stdout)
    assert plan["proxy"]["running"] is False and plan["changes"][0]["action"] == "keep"
    assert "proxy: not running" in p.cli("plan").stdout

    up = p.cli("up")
    assert_ok(up)
    assert "WARNING the proxy was not running" in up.stderr and "0 started" in up.stdout
    assert answers_200(p)
    code, data = status_json(p)
    assert code == 0 and data["proxy"]["frontends"][0]["by_state"] == {"ready": 2}


def test_down_stops_the_proxy_and_its_host(deployed):
    p = deployed
    status = proxy_status(p.folder)
    supervisor = supervisor_record(p)["pid"] if p.runtime == "process" else None
    assert_ok(p.cli("down"))
    assert proxy_status(p.folder) is None and proxy_containers(p.folder) == []
    for pid in (status["pid"], supervisor):
        if pid is not None:
            stat = proc_stat(pid)  # a zombie is gone too: this machine's init may reap orphans late
            assert stat is None or stat[0] in "ZX", (pid, stat)
    assert not (p.state_dir / "proxy-supervisor.json").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p.port), timeout=2).close()
