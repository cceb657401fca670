import datetime as dt

from hitless.engine.desired import config_hash, instance_name
from hitless.engine.plan import make_plan
from hitless.runtime.base import Instance, Labels
from hitless.spec import parse_spec

SPEC = """
project: p
sets:
  net:
    api: {image: 'api:1.0', replicas: 2, network: {port: 80}}
    worker: {image: 'worker:1.0', network: {port: 81}}
"""


def running(tree, path, slot, gen, image=None, chash=None, state="running"):
    node = next(s for s in tree.services() if s.path == path)
    set_path, _, name = path.rpartition("/")
    labels = Labels("p", set_path, name, slot, gen, chash or config_hash(node), image or node.service.image, 80)
    return Instance(f"id-{path}-{slot}-{gen}", instance_name("p", path, slot, gen), labels, state,
                    dt.datetime.now(dt.UTC), None if state == "running" else 1, "10.0.0.2")


def actions(plan):
    return [(c.service_path, c.slot, c.action, c.reasons) for c in plan.changes]


def test_nothing_running_creates_every_slot():
    tree = parse_spec(SPEC)
    plan = make_plan(tree, [])
    assert actions(plan) == [("net/api", 0, "create", ()), ("net/api", 1, "create", ()), ("net/worker", 0, "create", ())]
    assert plan.summary() == {"create": 3, "replace": 0, "remove": 0, "keep": 0}


def test_everything_current_is_a_noop():
    tree = parse_spec(SPEC)
    observed = [running(tree, "net/api", 0, 1), running(tree, "net/api", 1, 4), running(tree, "net/worker", 0, 2)]
    plan = make_plan(tree, observed)
    assert plan.is_noop
    assert [c.current.generation for c in plan.changes] == [1, 4, 2]


def test_a_new_tag_replaces_exactly_that_services_slots_with_reason_image():
    tree = parse_spec(SPEC.replace("api:1.0", "api:2.0"))
    old = parse_spec(SPEC)
    observed = [running(old, "net/api", 0, 1), running(old, "net/api", 1, 1), running(old, "net/worker", 0, 1)]
    plan = make_plan(tree, observed)
    assert [(c.service_path, c.slot, c.reasons) for c in plan.of("replace")] == [
        ("net/api", 0, ("image",)), ("net/api", 1, ("image",))]
    assert plan.of("keep")[0].service_path == "net/worker"
    assert plan.to_dict()["changes"][0]["desired"]["image"] == "api:2.0"


def test_config_change_and_dead_instances_are_reasons_too():
    tree = parse_spec(SPEC)
    observed = [running(tree, "net/api", 0, 1, chash="stale"), running(tree, "net/api", 1, 1, state="exited"),
                running(tree, "net/worker", 0, 1, image="worker:0.9", chash="stale")]
    assert [c.reasons for c in make_plan(tree, observed).changes] == [("config",), ("not-running",), ("image", "config")]


def test_scale_down_leftovers_and_services_gone_from_the_spec_are_removed():
    tree = parse_spec(SPEC.replace("replicas: 2", "replicas: 1"))
    observed = [running(tree, "net/api", 0, 2), running(tree, "net/api", 0, 1), running(tree, "net/api", 1, 1),
                running(tree, "net/worker", 0, 1)]
    gone = running(tree, "net/worker", 0, 3)
    gone = Instance(gone.id + "x", "old", Labels("p", "net", "cache", 0, 3, "h", "cache:1", 80), "running", None, None, None)
    plan = make_plan(tree, observed + [gone])
    assert actions(plan) == [
        ("net/api", 0, "keep", ()),
        ("net/api", 0, "remove", ("superseded",)),
        ("net/api", 1, "remove", ("scaled-down",)),
        ("net/worker", 0, "keep", ()),
        ("net/cache", 0, "remove", ("not-in-spec",)),
    ]
    assert make_plan(tree, observed + [gone], ["net/api"]).of("remove")[-1].reasons == ("scaled-down",)
    assert all(c.service_path == "net/api" for c in make_plan(tree, observed + [gone], ["net/api"]).changes)


def test_other_projects_are_ignored():
    tree = parse_spec(SPEC)
    foreign = running(tree, "net/api", 0, 1)
    foreign = Instance("f", "f", Labels("q", "net", "api", 0, 1, "h", "api:1.0", 80), "running", None, None, None)
    assert make_plan(tree, [foreign]).summary()["create"] == 3


def test_config_hash_ignores_health_and_stop_grace_but_not_environment():
    base = parse_spec(SPEC).services()[0]
    same = parse_spec(SPEC.replace("replicas: 2,", "replicas: 2, health: {http: /x}, stop: {grace: 5m},")).services()[0]
    other = parse_spec(SPEC.replace("replicas: 2,", "replicas: 2, environment: {A: 1},")).services()[0]
    assert config_hash(base) == config_hash(same) != config_hash(other)


def test_an_interrupted_change_keeps_the_instance_already_as_wanted():
    """A rollback killed half-way leaves the good old generation beside a newer bad one."""
    tree = parse_spec(SPEC)
    bad = parse_spec(SPEC.replace("api:1.0", "api:2.0"))
    observed = [running(tree, "net/api", 0, 1), running(bad, "net/api", 0, 2), running(tree, "net/api", 1, 1),
                running(tree, "net/worker", 0, 1)]
    plan = make_plan(tree, observed, ["net/api"])
    assert [(c.slot, c.action, c.reasons, c.current.generation) for c in plan.changes] == [
        (0, "keep", (), 1), (0, "remove", ("superseded",), 2), (1, "keep", (), 1)]
