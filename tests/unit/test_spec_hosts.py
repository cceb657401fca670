"""Hosts, groups and placement in the spec, and what the plan makes of them (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from hitless.engine.desired import launch_spec
from hitless.engine.plan import REASON_HOST, plan_service
from hitless.runtime.base import Instance, Labels
from hitless.spec import parse_spec
from hitless.spec.load import SpecError

SPEC = """
project: p
hosts:
  c1: {engine: "unix:///run/c1/docker.sock", address: 10.0.0.2}
  c2: {engine: "ssh://root@10.0.0.3", address: 10.0.0.3}
  c3: {engine: "tcp://10.0.0.4:2375", address: 10.0.0.4}
groups:
  control: [c1, c2]
  compute: c3
proxy: {host: c3}
sets:
  api:
    server:
      image: x:1
      hosts: control
      replicas: 2
      network: {mode: host, ports: 9000-9009}
      update: {hosts_serial: 1}
  compute:
    agent:
      image: y:1
      hosts: [compute, c1]
      network: {mode: host, ports: 9100-9109}
"""


def service(tree, path):
    return next(n for n in tree.services() if n.path == path)


def test_groups_expand_in_order_and_slots_fill_hosts_in_turn():
    tree = parse_spec(SPEC)
    server = service(tree, "api/server")
    assert server.hosts == ("c1", "c2") and server.slots == 4
    assert [server.host_of(s) for s in range(4)] == ["c1", "c1", "c2", "c2"]
    agent = service(tree, "compute/agent")
    assert agent.hosts == ("c3", "c1") and agent.slots == 2
    assert tree.spec.proxy.host == "c3" and server.service.update.hosts_serial == 1


def test_a_service_on_no_host_runs_here():
    tree = parse_spec(SPEC.replace("      hosts: control\n", ""))
    server = service(tree, "api/server")
    assert server.hosts == () and server.slots == 2 and server.host_of(1) is None


@pytest.mark.parametrize("change, problem", [
    (("hosts: control", "hosts: [c9]"), "sets.api.server.hosts: no group or host 'c9'"),
    (("control: [c1, c2]", "control: [c1, zz]"), "groups.control: no host 'zz' in hosts"),
    (("compute: c3", "c1: c3"), "groups.c1: a host is named 'c1' too"),
    (("proxy: {host: c3}", "proxy: {host: c7}"), "proxy.host: no host 'c7' in hosts"),
    (("network: {mode: host, ports: 9000-9009}", "network: {mode: bridge, port: 80}"),
     "sets.api.server.network.mode: a service on hosts needs host networking"),
    (('"unix:///run/c1/docker.sock"', '"http://c1"'), "hosts.c1.engine: invalid engine URL 'http://c1'"),
    (("address: 10.0.0.2", "address: 'a b'"), "hosts.c1.address: invalid address 'a b'"),
    (("hosts_serial: 1", "hosts_serial: 0"), "sets.api.server.update.hosts_serial"),
])
def test_inventory_mistakes_are_one_line_with_their_path(change, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.replace(*change))
    assert any(problem in line for line in caught.value.lines()), caught.value.lines()


def instance(slot: int, host: str | None, tree) -> Instance:
    node = service(tree, "api/server")
    launch = launch_spec("p", node, slot, 1, 9000, tree.base_dir)
    labels: Labels = launch.labels
    return Instance(f"{host}/id{slot}", launch.name, labels, "running", dt.datetime.now(dt.UTC), None,
                    "10.0.0.2", host)


def test_launches_go_to_the_slot_host_and_a_misplaced_instance_is_replaced():
    tree = parse_spec(SPEC)
    node = service(tree, "api/server")
    assert [launch_spec("p", node, s, 1, 9000, tree.base_dir).host for s in range(4)] == ["c1", "c1", "c2", "c2"]
    # Slot 2 belongs on c2; found on c1 (the group was reordered, say), it is replaced.
    observed = [instance(0, "c1", tree), instance(1, "c1", tree), instance(2, "c1", tree), instance(3, "c2", tree)]
    changes = {c.slot: c for c in plan_service(node, observed)}
    assert [changes[s].action for s in range(4)] == ["keep", "keep", "replace", "keep"]
    assert changes[2].reasons == (REASON_HOST,) and changes[2].host == "c2"
