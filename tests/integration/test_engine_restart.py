"""A Docker engine restart, as after a reboot or a package upgrade: dockerd stops every
container and starts those with a restart policy again. Runs alone (`-m engine_restart`,
after the other tests), since every other test's containers stop with the engine."""

from __future__ import annotations

import json

import pytest

from tests.support.engine import restart_engine
from tests.support.net import free_port_range
from tests.support.project import (
    BOTH_RUNTIMES_SPEC,
    Project,
    answers_200,
    assert_ok,
    proxy_containers,
    proxy_status,
    status_json,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.engine_restart]

# Host networking, as Kolla runs services: an instance's address is a port of this host,
# which it gets back when the engine starts it again.
HOST_NETWORK_SPEC = BOTH_RUNTIMES_SPEC.replace("network: {{mode: bridge, port: 9696}}",
                                               "network: {{mode: host, ports: {ports}}}")


def deploy(tmp_path, docker_client, template: str, **fields: object) -> Project:
    p = Project(tmp_path, docker_client, template, runtime="docker", migrations="", **fields)
    assert_ok(p.cli("up"))
    assert answers_200(p)
    return p


def proxy_back_after_restart(p: Project) -> dict:
    before = proxy_status(p.folder)
    restart_engine()
    back = wait_until(lambda: (s := proxy_status(p.folder)) and s["pid"] != before["pid"] and s, 60, interval=0.01,
                      message="the proxy answered its admin socket after the engine restart")
    [container] = proxy_containers(p.folder)
    assert container.status == "running" and container.attrs["State"]["Pid"] == back["pid"]
    frontends = {f["name"] for f in back.get("frontends", [])} or {
        f["name"] for f in json.loads(p.cli("status", "--json").stdout)["proxy"]["frontends"]}
    assert frontends == {"netapi.api"}  # its routing, from its state file: no command ran
    return back


def test_host_networked_services_are_served_again_with_no_command(tmp_path, docker_client, netapi_images):
    p = deploy(tmp_path, docker_client, HOST_NETWORK_SPEC, ports=f"{(first := free_port_range(4))}-{first + 3}")
    try:
        proxy_back_after_restart(p)
        wait_until(lambda: answers_200(p), 60, interval=0.01, message="a request through the frontend answered 200")
        wait_until(lambda: status_json(p)[1]["proxy"]["frontends"][0]["by_state"] == {"ready": 2}, 30,
                   interval=0.01, message="both instances ready in the proxy")
        code, data = status_json(p)
        assert code == 0 and data["proxy"]["drift"]["in_sync"], data["proxy"]["drift"]
    finally:
        p.cleanup()


def test_bridge_networked_services_that_came_back_elsewhere_are_named_and_the_next_command_follows(
        tmp_path, docker_client, netapi_images):
    """On Docker's default bridge, the engine may give an instance another address when it
    starts it again: the proxy cannot know it, `status` names it, the next command fixes it."""
    p = deploy(tmp_path, docker_client, BOTH_RUNTIMES_SPEC, replicas=2)
    try:
        proxy_back_after_restart(p)
        wait_until(lambda: all(c.status == "running" for c in p.containers()), 60, interval=0.01,
                   message="the instances run again")
        code, data = status_json(p)
        moved = {a["backend_id"] for a in data["proxy"]["drift"]["actions"] if a["kind"] == "readdress"}
        pool = {b["id"]: b["address"] for b in _backends(p)}
        for c in p.containers():
            c.reload()
            address = f"{c.attrs['NetworkSettings']['IPAddress']}:9696"
            assert (pool[c.name] == address) != (c.name in moved), (c.name, pool[c.name], address, moved)
        assert code == 0  # the proxy runs: drift is named, not a failure
        assert_ok(p.cli("up"))
        code, data = status_json(p)
        assert code == 0 and data["proxy"]["drift"]["in_sync"], data["proxy"]["drift"]
        wait_until(lambda: answers_200(p), 30, interval=0.01, message="a request through the frontend answered 200")
    finally:
        p.cleanup()


def _backends(p: Project) -> list[dict]:
    from hitless.proxy.admin.client import AdminClient

    return AdminClient(str(p.folder / ".hitless" / "proxy.sock")).backends("netapi.api")
