"""Every command that changes anything first puts the proxy right: running, supervised, this
hitless version, its pools holding what runs. One netapi deployment per runtime for the file:
1.0 from the spec, then 2.0 through `upgrade --image` (which the spec does not name)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hitless import __version__
from tests.support.load import Load
from tests.support.project import (
    BOTH_RUNTIMES_SPEC,
    Project,
    assert_ok,
    project_on,
    proxy_containers,
    proxy_pids,
    proxy_status,
    take_down_for_good,
)
from tests.support.waiting import wait_until


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def upgraded(request, tmp_path_factory):
    """netapi 2.0 × 1 running by `upgrade --image` while the spec still says 1.0."""
    p = project_on(request, tmp_path_factory, "reconcile", BOTH_RUNTIMES_SPEC, replicas=1)
    try:
        assert_ok(p.cli("up"))
        assert_ok(p.cli("upgrade", "--image", "netapi/api=netapi:2.0"))
        assert version_served(p) == "2.0"
        yield p
    finally:
        p.cleanup()


def version_served(p: Project) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    try:
        conn.request("GET", "/v2.0/networks")
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        return response.getheader("X-Netapi-Version")
    finally:
        conn.close()


def lose_the_proxy(p: Project) -> None:
    """The proxy and its host gone, and its persisted routing with them."""
    take_down_for_good(p)
    (p.state_dir / "proxy-state.json").unlink(missing_ok=True)


@pytest.mark.parametrize("command", [("up",), ("resume",)])
def test_a_lost_proxy_comes_back_with_the_instances_upgrade_image_deployed(upgraded, command):
    p = upgraded
    lose_the_proxy(p)
    assert p.cli("status").returncode == 1
    result = p.cli(*command)
    assert_ok(result)
    assert "proxy: add frontend netapi.api" in result.stderr
    assert "netapi-api-0-g2" in result.stderr and "running and healthy, not in the pool" in result.stderr
    assert {version_served(p) for _ in range(4)} == {"2.0"}
    if command == ("up",):
        # `up` restarts nothing: 2.0 runs where the spec says 1.0, which is an upgrade's business.
        assert "0 started, 0 removed" in result.stdout and "`hitless upgrade` replaces them" in result.stderr
    plan = json.loads(p.cli("plan", "--json").stdout)
    assert plan["proxy"]["running"] and plan["proxy"]["in_sync"], plan["proxy"]
    again = p.cli(*command)  # nothing left to do
    assert_ok(again)
    assert "proxy:" not in again.stderr


def test_plan_names_the_pool_drift_and_the_next_command_fixes_it(upgraded):
    p = upgraded
    from hitless.proxy.admin.client import AdminClient

    admin = AdminClient(str(p.state_dir / "proxy.sock"))
    [backend] = admin.backends("netapi.api")
    admin.remove_backend("netapi.api", backend["id"])
    admin.add_backend("netapi.api", "ghost-g9", "127.0.0.1:9", ready=False)
    plan = json.loads(p.cli("plan", "--json").stdout)["proxy"]
    assert not plan["in_sync"]
    assert [(a["kind"], a["backend_id"]) for a in plan["actions"]] == [("add", backend["id"]), ("remove", "ghost-g9")]
    assert "pools differ from what runs" in p.cli("plan").stdout
    status = json.loads(p.cli("status", "--json").stdout)["proxy"]
    assert not status["drift"]["in_sync"]
    assert_ok(p.cli("up"))
    assert [b["id"] for b in admin.backends("netapi.api")] == [backend["id"]]


def test_a_proxy_no_host_runs_is_handed_over_to_a_supervised_one_without_failing_a_request(upgraded, tmp_path):
    """As when hitless was upgraded from a version that ran the proxy bare: `up` replaces it by
    a supervised proxy through the listeners' hand-over, under load."""
    p = upgraded
    sock = str(p.state_dir / "proxy.sock")
    supervised = proxy_status(p.folder)
    with open(tmp_path / "bare.log", "wb") as log:
        bare = subprocess.Popen([sys.executable, "-m", "hitless", "proxy", "--admin-socket", sock, "--takeover"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: (s := proxy_status(p.folder)) and s["pid"] == bare.pid, 10, interval=0.01,
                   message="the bare proxy took over")
        if p.runtime == "docker":
            # The container's proxy exited 0 after handing over: Docker restarts it, and its
            # launcher takes the listeners back. Either way a supervised proxy ends up serving.
            pass
        else:
            wait_until(lambda: not (p.state_dir / "proxy-supervisor.json").exists(), 10, interval=0.01,
                       message="the supervisor left with its proxy (exit 0 after a hand-over)")
        with Load("127.0.0.1", p.port, workers=1, pause=0.01) as load:
            time.sleep(0.3)
            result = p.cli("up")
            time.sleep(0.5)
        assert_ok(result)
        now = proxy_status(p.folder)
        assert now["pid"] not in (bare.pid, supervised["pid"])
        code, data = p.cli("status", "--json").returncode, json.loads(p.cli("status", "--json").stdout)
        assert code == 0 and data["proxy"]["host"]["main_pid"] == now["pid"]
        assert load.failures() == [], load.failures()[:3]
        assert load.count() > 20
        bare.wait(timeout=30)  # it drained and exited by itself
    finally:
        if bare.poll() is None:
            bare.kill()
            bare.wait()


@pytest.mark.docker
@pytest.mark.parametrize("upgraded", ["docker"], indirect=True)
def test_on_docker_a_hand_over_retires_the_old_container_without_failing_a_request(upgraded, monkeypatch):
    """A new hitless version replaces the proxy container: the old one gets restart policy "no"
    (so it is not brought back once it drained and exited), the new one takes its listeners
    over, the old one is removed."""
    p = upgraded
    import hitless.engine.proxyctl as proxyctl
    from hitless.runtime.docker import DockerRuntime
    from hitless.spec import load_spec

    [old] = proxy_containers(p.folder)
    old_pid = proxy_status(p.folder)["pid"]
    monkeypatch.setattr(proxyctl, "handover_reasons",
                        lambda status, hosted, installed=__version__: ["a test asks"] if status["pid"] == old_pid else [])
    runtime = DockerRuntime()
    control = proxyctl.ProxyControl(load_spec(str(p.folder / "hitless.yaml")), runtime)
    policies = []
    retire = control.host.retire

    def watched_retire():
        token = retire()
        policies.append(p.docker.containers.get(token).attrs["HostConfig"]["RestartPolicy"]["Name"])
        return token

    control.host.retire = watched_retire  # type: ignore[method-assign]
    try:
        with Load("127.0.0.1", p.port, workers=1, pause=0.01) as load:
            time.sleep(0.3)
            new_pid = control.ensure_running()
            time.sleep(0.5)
        assert policies == ["no"]
        assert new_pid != old_pid and proxy_status(p.folder)["pid"] == new_pid
        assert control.host.remove_retired(20) == ()
        [new] = proxy_containers(p.folder)
        assert new.id != old.id and new.name == old.name and new.attrs["State"]["Pid"] == new_pid
        assert load.failures() == [], load.failures()[:3]
        assert load.count() > 20 and version_served(p) == "2.0"
    finally:
        runtime.close()
    status = proxy_status(p.folder)
    assert status["pid"] == new_pid and status["workers"]
    assert all(descends_from(pid, new_pid) for pid in proxy_pids(status)[1:]), status["workers"]


def descends_from(pid: int, ancestor: int) -> bool:
    """True if `ancestor` is `pid`'s parent, grandparent, and so on."""
    while pid > 1:
        fields = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]).split()
        pid = int(fields[1])
        if pid == ancestor:
            return True
    return False
