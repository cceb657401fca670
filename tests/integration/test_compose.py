"""netapi written as a compose file (hitless_demo/netapi/compose.yaml), upgraded under load three
ways, on real Docker:

1. as a compose user does today: Debian's `docker-compose` 1.29 (`up -d` with the new image: the
   one container is recreated), its migration run by hand with `docker-compose run`;
2. taken over by `hitless up -f compose.yaml --adopt`: hitless's two instances started and warm,
   the compose container stopped gracefully, the proxy binding its port at once (the gap printed);
3. `hitless upgrade -f compose.yaml` to netapi 3.0 with 2 replicas (a table rebuilt online): 0 failed.

The same file throughout; only its `.env` changes, as a user would edit it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hitless_demo.paths import NETAPI_DIR
from tests.support.load import Load
from tests.support.net import free_port, http_get
from tests.support.neutron import NeutronCycle
from tests.support.project import stop_leftover_proxy
from tests.support.skips import skip_or_fail
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

DOCKER_COMPOSE = "/usr/bin/docker-compose"  # Debian's docker-compose 1.29, on Debian's own python3


class ComposeProject:
    """The example compose file in a folder of its own, with the `.env` a user edits."""

    def __init__(self, folder: Path, docker_client):
        self.folder, self.docker = folder, docker_client
        self.name = f"hlcompose-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        folder.mkdir()
        shutil.copy2(NETAPI_DIR / "compose.yaml", folder / "compose.yaml")
        self.env = {"COMPOSE_PROJECT_NAME": self.name, "NETAPI_LISTEN": f"127.0.0.1:{self.port}",
                    "NETAPI_TAG": "1.0", "NETAPI_REPLICAS": "1"}
        self.write_env()

    def write_env(self, **changes: str) -> None:
        self.env.update(changes)
        (self.folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))

    @staticmethod
    def _environ() -> dict[str, str]:
        # The user's shell, without this test run's virtualenv or the variables the .env sets.
        keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "TMPDIR")
        return {k: v for k, v in os.environ.items() if k in keep}

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([DOCKER_COMPOSE, *args], cwd=self.folder, capture_output=True, text=True,
                                timeout=timeout, env=self._environ())
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def hitless(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hitless", *args], cwd=self.folder, capture_output=True,
                              text=True, timeout=timeout, env={**self._environ(), "COLUMNS": "250"})

    def compose_containers(self) -> list:
        return self.docker.containers.list(filters={"label": f"com.docker.compose.project={self.name}"})

    def hitless_containers(self) -> list:
        return self.docker.containers.list(filters={"label": f"io.hitless.project={self.name}"})

    def version(self) -> str | None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            return response.getheader("X-Netapi-Version")
        finally:
            conn.close()

    def cleanup(self) -> None:
        self.hitless("down", timeout=180)
        subprocess.run([DOCKER_COMPOSE, "down", "--volumes", "--remove-orphans"], cwd=self.folder,
                       capture_output=True, timeout=180, env=self._environ())
        for label in (self.name, f"{self.name}.jobs"):
            for c in self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={label}"}):
                c.remove(force=True)
        for c in self.docker.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.name}"}):
            c.remove(force=True)
        for volume in self.docker.volumes.list(filters={"name": self.name}):
            volume.remove(force=True)
        stop_leftover_proxy(self.folder)


@pytest.fixture
def compose_project(tmp_path, docker_client, netapi_images):
    if not os.access(DOCKER_COMPOSE, os.X_OK):
        skip_or_fail(f"{DOCKER_COMPOSE} is missing (Debian's docker-compose: apt-get install docker-compose)")
    project = ComposeProject(tmp_path / "netapi", docker_client)
    yield project
    project.cleanup()


class Measured:
    """Load of both kinds of clients plus the seeds' network create/delete loop, counted together."""

    def __init__(self, port: int):
        self.load = Load("127.0.0.1", port, workers=2)
        self.cycle = NeutronCycle("127.0.0.1", port, clients=2, period=0.25)

    def __enter__(self) -> Measured:
        self.load.__enter__()
        self.cycle.__enter__()
        time.sleep(1.0)  # a steady state first
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)
        self.cycle.stop()
        self.load.stop()

    def summary(self) -> str:
        failures = [f.error or str(f.status) for f in self.load.failures()] + \
                   [c.error or str(c.status) for c in self.cycle.failures()]
        kinds = sorted({re.sub(r"\[Errno \d+\] ", "", f.split(":")[0]) for f in failures})
        total = self.load.count() + len(self.cycle.calls)
        return f"{total} requests, {len(failures)} failed" + (f" ({', '.join(kinds)})" if kinds else "")

    def failed(self) -> int:
        return len(self.load.failures()) + len(self.cycle.failures())


def test_netapi_compose_file_docker_compose_then_adopted_then_hitless_upgrade(compose_project):
    p = compose_project
    report: list[str] = [f"netapi as a compose file ({p.name}), under load: 2 new-connection and 2 keep-alive "
                         "clients, 2 network create/delete loops"]

    # 1. What a compose user does today: up, then the new image with `up -d` (the migration by hand).
    p.compose("up", "-d")
    http_get("127.0.0.1", p.port, "/healthcheck", timeout=60)
    [first] = p.compose_containers()
    with Measured(p.port) as compose_upgrade:
        p.write_env(NETAPI_TAG="2.0")
        p.compose("run", "--rm", "--no-deps", "api", "python3", "-m", "netapi.migrate", "expand")
        p.compose("up", "-d")
        wait_until(lambda: p.version() == "2.0", 60, interval=0.1, message="netapi 2.0 answering")
    [second] = p.compose_containers()
    assert second.id != first.id and second.image.tags == ["netapi:2.0"]  # one container, recreated
    p.compose("run", "--rm", "--no-deps", "api", "python3", "-m", "netapi.migrate", "contract")
    report.append(f"  docker-compose up -d, 1.0 → 2.0 (one container recreated): {compose_upgrade.summary()}")

    # 2. hitless takes over, 2 replicas now; what the compose container held stays (the same volume).
    kept = wait_until(lambda: http_json_post(p.port, "/v2.0/networks", {"network": {"name": "kept"}}), 30)
    p.write_env(NETAPI_REPLICAS="2")
    refused = p.hitless("up", "-f", "compose.yaml")
    assert refused.returncode == 2 and "--adopt" in refused.stderr and f"127.0.0.1:{p.port}" in refused.stderr, \
        refused.stderr
    with Measured(p.port) as adoption:
        adopted = p.hitless("up", "-f", "compose.yaml", "--adopt")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    match = re.search(r"adopted api: .* gap (\d+) ms .* held (\d+) ms", adopted.stdout)
    assert match, adopted.stdout
    gap_ms, held_ms = int(match.group(1)), int(match.group(2))
    assert gap_ms < 1000, adopted.stdout
    assert p.compose_containers() == [] and len(p.hitless_containers()) == 2
    assert kept in {n["id"] for n in list_networks(p.port)}
    report.append(f"  hitless up --adopt (compose → hitless, 2 instances): gap {gap_ms} ms, then held {held_ms} ms; "
                  f"{adoption.summary()}")

    # 3. Every later upgrade is hitless's: 2.0 → 3.0, its table rebuilt online (copy, then a held cut-over).
    p.write_env(NETAPI_TAG="3.0")
    with Measured(p.port) as upgrade:
        upgraded = p.hitless("upgrade", "-f", "compose.yaml")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert {c.labels["io.hitless.image"] for c in p.hitless_containers()} == {"netapi:3.0"}
    assert len(p.hitless_containers()) == 2 and "3.0" in upgrade.load.versions()
    assert kept in {n["id"] for n in list_networks(p.port)}
    report.append(f"  hitless upgrade, 2.0 → 3.0 (2 replicas, online table rebuild): {upgrade.summary()}")
    print("\n" + "\n".join(report))
    assert upgrade.failed() == 0, [*upgrade.load.failures()[:5], *upgrade.cycle.failures()[:5]]


def http_json_post(port: int, path: str, body: dict) -> str | None:
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        return json.loads(data)["network"]["id"] if response.status == 201 else None
    finally:
        conn.close()


def list_networks(port: int) -> list[dict]:
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v2.0/networks")
        return json.loads(conn.getresponse().read())["networks"]
    finally:
        conn.close()
