"""The pure parts of keeping the proxy right: the pool diff, the hand-over decision, the
supervisor's backoff."""

from __future__ import annotations

import signal

from hitless.engine.proxyctl import handover_reasons
from hitless.engine.reconcile import Member, PoolAction, ProxiedBackend, pool_diff
from hitless.proxy.launch import describe_exit, proxy_argv, split_args
from hitless.proxyhost.base import Hosted
from hitless.proxyhost.supervisor import MAX_BACKOFF, backoff

FE = "netapi.api"


def member(name: str, address: str = "", healthy: bool = True, fe: str = FE) -> Member:
    return Member(fe, name, address or f"10.0.0.{name[-1]}:9696", healthy)


def kinds(diff) -> list[tuple[str, str, str]]:
    return [(a.kind, a.frontend, a.backend_id) for a in diff.actions]


def test_in_sync_when_every_running_healthy_instance_is_in_its_pool():
    pools = {FE: {"a1": ProxiedBackend("10.0.0.1:9696", "ready"), "a2": ProxiedBackend("10.0.0.2:9696", "ready")}}
    diff = pool_diff([FE], pools, [member("a1"), member("a2")])
    assert diff.in_sync and diff.actions == () and diff.unhealthy == ()


def test_a_proxy_that_came_back_empty_gets_its_frontend_then_its_instances():
    diff = pool_diff([FE], {}, [member("a2"), member("a1")])
    assert kinds(diff) == [("add-frontend", FE, ""), ("add", FE, "a1"), ("add", FE, "a2")]
    assert diff.actions[1].address == "10.0.0.1:9696"


def test_instances_the_spec_does_not_name_count_as_what_runs():
    # Deployed with `upgrade --image`: the spec says 1.0, 2.0 runs; labels are the truth, so
    # the pure diff never looks at images at all: a running member is a member.
    pools = {FE: {"old-g1": ProxiedBackend("10.0.0.1:9696", "ready")}}
    diff = pool_diff([FE], pools, [member("new-g2")])
    assert kinds(diff) == [("add", FE, "new-g2"), ("remove", FE, "old-g1")]
    assert diff.actions[1].why == "no running instance"


def test_adds_come_before_removes_so_a_pool_is_never_emptier_than_it_must_be():
    pools = {FE: {"x1": ProxiedBackend("10.0.0.9:9696", "ready")}}
    assert [a.kind for a in pool_diff([FE], pools, [member("a1")]).actions] == ["add", "remove"]


def test_an_unhealthy_instance_is_left_out_and_reported():
    diff = pool_diff([FE], {FE: {}}, [member("a1", healthy=False), member("a2")])
    assert kinds(diff) == [("add", FE, "a2")]
    assert [m.backend_id for m in diff.unhealthy] == ["a1"]


def test_an_unhealthy_instance_already_in_the_pool_stays_for_the_proxy_checks_to_judge():
    pools = {FE: {"a1": ProxiedBackend("10.0.0.1:9696", "down")}}
    assert pool_diff([FE], pools, [member("a1", healthy=False)]).in_sync


def test_a_backend_at_a_stale_address_is_readdressed():
    # After a reboot a container may come back on another bridge address.
    pools = {FE: {"a1": ProxiedBackend("10.0.0.7:9696", "ready")}}
    diff = pool_diff([FE], pools, [member("a1", "10.0.0.1:9696")])
    assert kinds(diff) == [("readdress", FE, "a1")]
    assert diff.actions[0].address == "10.0.0.1:9696" and "10.0.0.7:9696" in diff.actions[0].why


def test_a_stale_address_whose_instance_is_not_healthy_goes_out_of_the_pool():
    pools = {FE: {"a1": ProxiedBackend("10.0.0.7:9696", "ready")}}
    diff = pool_diff([FE], pools, [member("a1", "10.0.0.1:9696", healthy=False)])
    assert kinds(diff) == [("remove", FE, "a1")] and [m.backend_id for m in diff.unhealthy] == ["a1"]


def test_draining_backends_of_a_killed_run_are_left_for_resume():
    pools = {FE: {"old": ProxiedBackend("10.0.0.1:9696", "draining"), "older": ProxiedBackend("10.0.0.2:9696", "gone"),
                  "new": ProxiedBackend("10.0.0.3:9696", "ready")}}
    members = [member("old", "10.0.0.1:9696"), member("older", "10.0.0.5:9696"), member("new", "10.0.0.3:9696")]
    assert pool_diff([FE], pools, members).in_sync


def test_draining_backends_with_no_instance_left_are_removed():
    pools = {FE: {"old": ProxiedBackend("10.0.0.1:9696", "draining")}}
    assert kinds(pool_diff([FE], pools, [])) == [("remove", FE, "old")]


def test_frontends_outside_the_spec_and_their_members_are_not_touched():
    pools = {FE: {}, "manual": {"m1": ProxiedBackend("10.0.0.1:1", "ready")}}
    diff = pool_diff([FE], pools, [member("z1", fe="gone.svc")])
    assert diff.in_sync


def test_several_frontends_in_spec_order():
    diff = pool_diff(["b.svc", "a.svc"], {"a.svc": {}}, [member("a1", fe="a.svc"), member("b1", fe="b.svc")])
    assert kinds(diff) == [("add-frontend", "b.svc", ""), ("add", "b.svc", "b1"), ("add", "a.svc", "a1")]


def test_actions_describe_themselves_in_one_line_and_as_json():
    action = PoolAction("add", FE, "a1", "10.0.0.1:9696", "running and healthy, not in the pool")
    assert action.describe() == "add a1 at 10.0.0.1:9696 in netapi.api (running and healthy, not in the pool)"
    assert PoolAction(**action.to_dict()) == action
    diff = pool_diff([FE], {}, [member("a1", healthy=False)])
    assert diff.to_dict()["in_sync"] is False and diff.to_dict()["unhealthy"][0]["backend_id"] == "a1"


def hosted(main_pid: int | None) -> Hosted:
    return Hosted("docker", "c1", "p-hitless-proxy", "running", main_pid, 0, "1.0", None)


def test_the_right_proxy_needs_no_hand_over():
    assert handover_reasons({"pid": 42, "version": "1.0"}, hosted(42), installed="1.0") == []


def test_another_version_or_no_supervisor_means_a_hand_over():
    assert handover_reasons({"pid": 42, "version": "0.9"}, hosted(42), installed="1.0") == [
        "it runs hitless 0.9, 1.0 is installed"]
    assert handover_reasons({"pid": 42, "version": "1.0"}, hosted(None), installed="1.0") == [
        "no docker host supervises it"]
    assert len(handover_reasons({"pid": 42, "version": "0.9"}, hosted(7), installed="1.0")) == 2


def test_the_supervisor_restarts_at_once_then_backs_off_to_one_second_in_a_crash_loop():
    assert backoff(0.0, ran_for=3600) == 0.0
    delays, delay = [], 0.0
    for _ in range(6):
        delay = backoff(delay, ran_for=0.2)
        delays.append(delay)
    assert delays == [0.1, 0.2, 0.4, 0.8, MAX_BACKOFF, MAX_BACKOFF]
    assert backoff(MAX_BACKOFF, ran_for=60) == 0.0  # a run that lasted resets it


def test_exits_are_described_for_the_log():
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def test_the_launcher_takes_over_only_when_a_proxy_answers():
    assert split_args(["--admin-socket", "/s", "--workers", "2"]) == ("/s", ["--workers", "2"])
    assert proxy_argv("py", "/s", [], takeover=False) == ["py", "-m", "hitless.proxy", "--admin-socket", "/s"]
    assert proxy_argv("py", "/s", ["-x"], takeover=True)[-2:] == ["-x", "--takeover"]
