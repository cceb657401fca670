"""Databases in upgrades, on real Docker and real databases: the seeds' create/delete scenario
through 1.0 → 2.0 (snapshot, expand, rollout, contract) and 2.0 → 3.0 (SQLite: offline held
window; MariaDB: copied online, then a cut-over in the held window) with zero failed requests and
nothing lost; a failing expand changes nothing; restore is exact."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import uuid

import pytest

from tests.support.load import Load
from tests.support.net import free_port_range
from tests.support.neutron import NeutronCycle
from tests.support.project import Project
from tests.support.skips import skip_or_fail

pytestmark = pytest.mark.docker

MIGRATE = "[python3, -m, netapi.migrate, {phase}]"
ONLINE = "migrations: {expand: " + MIGRATE.format(phase="expand") + ", contract: " + MIGRATE.format(phase="contract") \
    + ", status: " + MIGRATE.format(phase="status") + "}"
OFFLINE = "migrations: {offline: " + MIGRATE.format(phase="offline") + ", status: " + MIGRATE.format(phase="status") + "}"
REBUILT_ONLINE = ("migrations: {online: {copy: " + MIGRATE.format(phase="copy") + ", cutover: "
                  + MIGRATE.format(phase="cutover") + "}, status: " + MIGRATE.format(phase="status") + "}")

SQLITE = """
project: {project}
snapshots:
  netapi: {{sqlite: {{volume: {project}-data, path: netapi.db}}, keep: 3}}
sets:
  netapi:
    api:
      image: netapi:{tag}
      replicas: 2
      environment: {{NETAPI_DB: /var/lib/netapi/netapi.db}}
      volumes: [{project}-data:/var/lib/netapi]
      network: {{mode: bridge, port: 9696}}
      health: {{http: /healthcheck, interval: 500ms, timeout: 1s, start_period: 20s, rise: 2, fall: 2}}
      update: {{strategy: start-first, min_ready: 500ms, watch: 2s}}
      frontend: {{listen: "127.0.0.1:{port}"}}
      {migrations}
"""

MARIADB = """
project: {project}
snapshots:
  netapi:
    command:
      backup: [sh, -c, 'mariadb-dump --single-transaction -h127.0.0.1 -uroot {db} > "$HITLESS_SNAPSHOT"']
      restore: [sh, -c, 'mariadb -h127.0.0.1 -uroot {db} < "$HITLESS_SNAPSHOT"']
sets:
  netapi:
    api:
      image: netapi:{tag}
      replicas: 2
      environment: {{NETAPI_DB_URL: "mysql://root@127.0.0.1:3306/{db}"}}
      network: {{mode: host, ports: {ports}}}
      health: {{http: /healthcheck, interval: 500ms, timeout: 1s, start_period: 20s, rise: 2, fall: 2}}
      update: {{strategy: start-first, min_ready: 500ms, watch: 2s}}
      frontend: {{listen: "127.0.0.1:{port}"}}
      {migrations}
"""


@pytest.fixture
def mariadb_database():
    name = f"hitless_{uuid.uuid4().hex[:8]}"

    def sql(statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mariadb", "-h127.0.0.1", "-uroot", "-e", statement], capture_output=True, text=True, timeout=30)

    probe = sql("SELECT 1")
    if probe.returncode != 0:
        skip_or_fail(f"MariaDB does not answer on 127.0.0.1:3306: {probe.stderr.strip()}")
    assert sql(f"CREATE DATABASE {name}").returncode == 0
    yield name
    sql(f"DROP DATABASE IF EXISTS {name}")


def step_names(events: list[dict]) -> list[str]:
    return [e["step"] for e in events if e.get("kind") == "step" and e.get("status") == "done"]


def held_window(events: list[dict]) -> float:
    """Seconds from the pause to the resume of the frontend."""
    def at(step: str) -> float:
        stamp = next(e["at"] for e in events if e.get("step") == step and e.get("status") == "done")
        from datetime import datetime
        return datetime.fromisoformat(stamp).timestamp()
    return at("resume") - at("pause")


def seeds_scenario(p: Project, report: dict, rebuild: str = OFFLINE) -> None:
    """1.0 → 2.0 (expand, contract), then 2.0 → 3.0 by `rebuild` (offline, or online: a copy
    while 2.0 serves, then a cut-over in the held window), under the seeds' create/delete loop."""
    assert p.cli("up").returncode == 0
    with NeutronCycle("127.0.0.1", p.port, clients=4) as cycle:
        time.sleep(2)
        p.write("2.0", ONLINE)
        code, events = p.events("upgrade")
        assert code == 0, "\n".join(str(e.get("message")) for e in events[-8:])
        steps = step_names(events)
        assert steps.index("snapshot") < steps.index("expand") < steps.index("start") < steps.index("contract")
        assert p.images() == {"netapi:2.0"}
        p.write("3.0", rebuild)
        window_began = time.monotonic()
        code, events = p.events("upgrade")
        assert code == 0, "\n".join(str(e.get("message")) for e in events[-8:])
        steps = step_names(events)
        if rebuild == OFFLINE:
            assert steps.index("pause") < steps.index("offline") < steps.index("resume")
        else:
            assert steps.index("copy") < steps.index("pause") < steps.index("cutover") < steps.index("resume")
            assert any("copy done" in str(e.get("message")) for e in events)  # its progress, as it ran
        assert p.images() == {"netapi:3.0"}
        report["window"] = held_window(events)
        time.sleep(2)
    assert cycle.failures() == []
    assert len(cycle.created) > 40
    during = [c.latency for c in cycle.calls if c.started >= window_began]
    report["max_latency_during"] = max(during)
    alive = {n["id"] for n in p.networks()}
    assert cycle.created - cycle.deleted <= alive  # created and not deleted by its client: still there
    assert not (cycle.deleted & alive)  # deleted by its client: gone
    print(f"held window {report['window']:.2f}s, max latency in the 2.0→3.0 upgrade {report['max_latency_during']:.2f}s")


def test_seeds_scenario_on_sqlite(project):
    seeds_scenario(project(SQLITE), {})


def test_seeds_scenario_on_mariadb_with_the_rebuild_online(project, mariadb_database):
    first = free_port_range(4)
    seeds_scenario(project(MARIADB, db=mariadb_database, ports=f"{first}-{first + 3}"), {}, REBUILT_ONLINE)


def test_a_failing_expand_aborts_before_anything_changed(project, docker_client, tmp_path):
    from hitless.imagebuild import build_image

    context = tmp_path / "badexpand"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM netapi:2.0\nENV NETAPI_FAIL_MIGRATION=expand\n")
    build_image(docker_client, context, "netapi:2.0-badexpand")
    p = project(SQLITE)
    assert p.cli("up").returncode == 0
    before = sorted(c.id for c in p.containers())
    with Load("127.0.0.1", p.port, workers=2) as load:
        p.write("2.0-badexpand", ONLINE)
        result = p.cli("upgrade")
    assert result.returncode == 1
    assert "expand migration of netapi/api failed" in result.stderr
    assert sorted(c.id for c in p.containers()) == before
    assert load.failures() == []


def test_restore_brings_the_data_back_exactly(project):
    p = project(SQLITE)
    assert p.cli("up").returncode == 0
    for n in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
        conn.request("POST", "/v2.0/networks", body=json.dumps({"network": {"name": f"kept-{n}"}}))
        assert conn.getresponse().status == 201
        conn.close()
    snapshot = json.loads(p.cli("snapshot", "netapi", "--json").stdout)
    at_snapshot = sorted(p.networks(), key=lambda n: n["id"])
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    conn.request("DELETE", f"/v2.0/networks/{at_snapshot[0]['id']}")
    assert conn.getresponse().status == 204
    conn.close()
    with Load("127.0.0.1", p.port, workers=1) as load:
        restored = p.cli("restore", "netapi", str(snapshot["id"]))
    assert restored.returncode == 0, restored.stderr
    assert sorted(p.networks(), key=lambda n: n["id"]) == at_snapshot
    assert load.failures() == []
    listing = json.loads(p.cli("snapshots", "--json").stdout)
    assert [s["id"] for s in listing] == [snapshot["id"]]


def test_rollback_across_a_contract_needs_and_gets_the_snapshot(project):
    """After 2.0's contract, 1.0 cannot run on the schema: `rollback --restore-db` returns the
    data to the snapshot taken before the upgrade, in a held window, and 1.0 serves it."""
    p = project(SQLITE)
    assert p.cli("up").returncode == 0
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    conn.request("POST", "/v2.0/networks", body=json.dumps({"network": {"name": "before"}}))
    assert conn.getresponse().status == 201
    conn.close()
    before = p.networks()
    p.write("2.0", ONLINE)
    assert p.cli("upgrade").returncode == 0
    running = {c.id for c in p.containers()}
    refused = p.cli("rollback", "netapi")  # 1.0 would fail its gate on 2.0's contracted schema
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "rollback of netapi/api refused: its contract migration ran" in line
    assert "--restore-db` restores snapshot" in line and "discards every write made since" in line
    assert {c.id for c in p.containers()} == running and p.images() == {"netapi:2.0"}  # nothing started
    with Load("127.0.0.1", p.port, workers=1) as load:
        result = p.cli("rollback", "netapi", "--restore-db")
    assert result.returncode == 0, result.stderr
    assert p.images() == {"netapi:1.0"}
    assert p.networks() == before
    assert load.failures() == []
