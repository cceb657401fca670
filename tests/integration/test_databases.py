"""Databases in upgrades, on real Docker and real databases: the seeds' create/delete scenario
through 1.0 → 2.0 (snapshot, expand, rollout, contract) and 2.0 → 3.0 (offline held window) with
zero failed requests and nothing lost; a failing expand changes nothing; restore is exact."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.load import Load
from tests.support.neutron import NeutronCycle
from tests.support.skips import skip_or_fail

pytestmark = pytest.mark.docker

MIGRATE = "[python3, -m, netapi.migrate, {phase}]"
ONLINE = "migrations: {expand: " + MIGRATE.format(phase="expand") + ", contract: " + MIGRATE.format(phase="contract") \
    + ", status: " + MIGRATE.format(phase="status") + "}"
OFFLINE = "migrations: {offline: " + MIGRATE.format(phase="offline") + ", status: " + MIGRATE.format(phase="status") + "}"

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DbProject:
    def __init__(self, folder: Path, docker_client, template: str, **extra: str):
        self.folder, self.docker, self.template = folder, docker_client, template
        self.name = f"hldb-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.extra = extra
        self.write("1.0")

    def write(self, tag: str, migrations: str = "") -> None:
        (self.folder / "hitless.yaml").write_text(self.template.format(
            project=self.name, tag=tag, port=self.port, migrations=migrations, **self.extra))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", "docker"], cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})

    def events(self, *args: str) -> tuple[int, list[dict]]:
        result = self.cli(*args, "--json")
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def containers(self) -> list:
        return self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}"})

    def images(self) -> set[str]:
        return {c.labels["io.hitless.image"] for c in self.containers()}

    def networks(self) -> list[dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/v2.0/networks")
        body = json.loads(conn.getresponse().read())
        conn.close()
        return body["networks"]

    def cleanup(self) -> None:
        self.cli("down", timeout=120)
        for c in self.containers() + self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}.jobs"}):
            c.remove(force=True)
        for vol in self.docker.volumes.list(filters={"name": f"{self.name}-data"}):
            vol.remove(force=True)


@pytest.fixture
def db_project(tmp_path, docker_client, netapi_images):
    made: list[DbProject] = []

    def make(template: str, **extra: str) -> DbProject:
        made.append(DbProject(tmp_path, docker_client, template, **extra))
        return made[-1]

    yield make
    for p in made:
        p.cleanup()


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


def seeds_scenario(p: DbProject, report: dict) -> None:
    assert p.cli("up").returncode == 0
    with NeutronCycle("127.0.0.1", p.port, clients=4) as cycle:
        time.sleep(2)
        p.write("2.0", ONLINE)
        code, events = p.events("upgrade")
        assert code == 0, events[-5:]
        steps = step_names(events)
        assert steps.index("snapshot") < steps.index("expand") < steps.index("start") < steps.index("contract")
        assert p.images() == {"netapi:2.0"}
        p.write("3.0", OFFLINE)
        window_began = time.monotonic()
        code, events = p.events("upgrade")
        assert code == 0, events[-5:]
        steps = step_names(events)
        assert steps.index("pause") < steps.index("offline") < steps.index("resume")
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


def test_seeds_scenario_on_sqlite(db_project):
    seeds_scenario(db_project(SQLITE), {})


def test_seeds_scenario_on_mariadb(db_project, mariadb_database):
    first = free_port()
    seeds_scenario(db_project(MARIADB, db=mariadb_database, ports=f"{first}-{first + 3}"), {})


def test_a_failing_expand_aborts_before_anything_changed(db_project, docker_client, tmp_path):
    from hitless.imagebuild import build_image

    context = tmp_path / "badexpand"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM netapi:2.0\nENV NETAPI_FAIL_MIGRATION=expand\n")
    build_image(docker_client, context, "netapi:2.0-badexpand")
    p = db_project(SQLITE)
    assert p.cli("up").returncode == 0
    before = sorted(c.id for c in p.containers())
    with Load("127.0.0.1", p.port, workers=2) as load:
        p.write("2.0-badexpand", ONLINE)
        result = p.cli("upgrade")
    assert result.returncode == 1
    assert "expand migration of netapi/api failed" in result.stderr
    assert sorted(c.id for c in p.containers()) == before
    assert load.failures() == []


def test_restore_brings_the_data_back_exactly(db_project):
    p = db_project(SQLITE)
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


def test_rollback_across_a_contract_needs_and_gets_the_snapshot(db_project):
    """After 2.0's contract, 1.0 cannot run on the schema: `rollback --restore-db` returns the
    data to the snapshot taken before the upgrade, in a held window, and 1.0 serves it."""
    p = db_project(SQLITE)
    assert p.cli("up").returncode == 0
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
    conn.request("POST", "/v2.0/networks", body=json.dumps({"network": {"name": "before"}}))
    assert conn.getresponse().status == 201
    conn.close()
    before = p.networks()
    p.write("2.0", ONLINE)
    assert p.cli("upgrade").returncode == 0
    with Load("127.0.0.1", p.port, workers=1) as load:
        result = p.cli("rollback", "netapi", "--restore-db")
    assert result.returncode == 0, result.stderr
    assert p.images() == {"netapi:1.0"}
    assert p.networks() == before
    assert load.failures() == []
