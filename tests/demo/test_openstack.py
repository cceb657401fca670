"""Real OpenStack under hitless, with the real client: Keystone 28.1.0 → 29.1.0 under a token
loop, Neutron 28.0.2 → 29.0.0 under the seeds' `network create` / `network delete` loop.

The images are built from PyPI releases (hitless_demo/openstack; cached: seconds once built), the
databases are real MariaDB ones made for this run, the users are openstacksdk loops and
`openstack` commands in the client's own virtualenv, everything goes through the proxy's
frontends, and the upgrades are the real `hitless` CLI with the example's migrations
(Keystone's db_sync --expand/--migrate/--contract, neutron-db-manage --expand/--contract).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from hitless.errors import RuntimeUnavailable
from hitless_demo.openstack.load import (
    ADMIN_PASSWORD,
    EXAMPLE_SPEC,
    NEW,
    OLD,
    ClientLoop,
    CloudLayout,
    check_mariadb,
    clouds_yaml,
    counts,
    create_databases,
    drop_databases,
    failures,
    openstack_spec,
)
from tests.support.net import free_port, free_port_range
from tests.support.project import assert_ok, stop_leftover_proxy
from tests.support.skips import skip_or_fail

pytestmark = pytest.mark.docker


class Cloud:
    """The example deployed in a folder of its own, as one run's project."""

    def __init__(self, folder: Path, docker_client, client_bin: Path):
        self.folder, self.docker, self.client_bin = folder, docker_client, client_bin
        self.layout = CloudLayout(f"ostest-{uuid.uuid4().hex[:8]}", free_port(), free_port(), free_port_range(18))
        self.name = self.layout.project
        self.images = dict(OLD)
        self.clouds_file = folder / "clouds.yaml"
        self.clouds_file.write_text(clouds_yaml(self.layout, self.name))
        self.write()

    def write(self) -> None:
        (self.folder / "hitless.yaml").write_text(openstack_spec(EXAMPLE_SPEC.read_text(), self.layout, self.images))

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hitless", *args], cwd=self.folder, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})

    def openstack(self, *args: str) -> subprocess.CompletedProcess:
        """The real `openstack` command, as the deployment's admin."""
        return subprocess.run([str(self.client_bin / "openstack"), "--os-cloud", self.name, *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_file)})

    def loop(self, kind: str) -> ClientLoop:
        out = self.folder / f"{kind}-{uuid.uuid4().hex[:4]}.jsonl"
        return ClientLoop(self.client_bin, kind, self.name, self.clouds_file, out)

    def running_images(self, set_name: str) -> set[str]:
        found = self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}"})
        return {c.labels["io.hitless.image"] for c in found if c.labels["io.hitless.set-path"] == set_name}

    def one_shot(self, image: str, config: str, *argv: str) -> str:
        """A command in a throwaway container of `image`, with the service's config and database."""
        service = image.partition(":")[0]
        return self.docker.containers.run(
            image, list(argv), remove=True, network_mode="host", stderr=True,
            volumes={str(EXAMPLE_SPEC.parent / "etc" / config): {"bind": f"/etc/{config}", "mode": "ro"}},
            environment={"OS_DATABASE__CONNECTION": self.layout.url(service)},
        ).decode(errors="replace")

    def cleanup(self) -> None:
        self.cli("down", timeout=300)
        for project in (self.name, f"{self.name}.jobs"):
            for c in self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={project}"}):
                c.remove(force=True)
        for name in self.layout.volumes():
            for volume in self.docker.volumes.list(filters={"name": name}):
                volume.remove(force=True)
        drop_databases(self.layout)
        assert not stop_leftover_proxy(self.folder), "the proxy outlived `hitless down`"


@pytest.fixture(scope="module")
def cloud(docker_client, tmp_path_factory):
    """Keystone 28.1.0 and Neutron 28.0.2, two of each, `up`, the network endpoint registered."""
    from hitless_demo.openstack.images import build_openstack_images, ensure_client

    build_openstack_images(docker_client)
    client_bin = ensure_client()
    try:
        check_mariadb()
    except RuntimeUnavailable as exc:
        skip_or_fail(str(exc))
    c = Cloud(tmp_path_factory.mktemp("openstack"), docker_client, client_bin)
    try:
        create_databases(c.layout)
        assert_ok(c.cli("up"))
        # What Kolla's service-ks-register does, with the real command-line client.
        assert_ok(c.openstack("service", "create", "--name", "neutron", "network"))
        assert_ok(c.openstack("endpoint", "create", "--region", "RegionOne", "network", "public", c.layout.network_url))
        yield c
    finally:
        c.cleanup()


def _admin_token(layout: CloudLayout) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    request = urllib.request.Request(f"{layout.auth_url}/v3/auth/tokens", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers["X-Subject-Token"]


def _validate(layout: CloudLayout, token: str) -> dict:
    request = urllib.request.Request(f"{layout.auth_url}/v3/auth/tokens",
                                     headers={"X-Auth-Token": _admin_token(layout), "X-Subject-Token": token})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["token"]


def _upgrade_under(c: Cloud, loop_kind: str, set_name: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Start the loop, upgrade the set to its NEW release while it runs, let it run a little
    longer on the new release, stop it; the upgrade's result and what the loop recorded."""
    loop = c.loop(loop_kind)
    try:
        loop.wait_for(4)
        c.images[set_name] = NEW[set_name]
        c.write()
        result = c.cli("upgrade", set_name)
        done = sum(r["ok"] for r in loop.records())
        loop.wait_for(done + 4)
    finally:
        records = loop.stop()
    return result, records


def test_keystone_upgrade_under_a_token_loop_fails_nothing_and_keeps_old_tokens(cloud):
    old_token = cloud.openstack("token", "issue", "-f", "value", "-c", "id")
    assert_ok(old_token)
    issued_by_old = _validate(cloud.layout, old_token.stdout.strip())

    result, records = _upgrade_under(cloud, "tokens", "keystone")

    assert_ok(result)
    said = result.stdout + result.stderr
    assert "expand migration of keystone/api" in said and "contract migration of keystone/api" in said
    assert failures(records) == [], failures(records)[:5]
    assert counts(records)["token-issue"][0] >= 10 and counts(records)["token-validate"][0] >= 10
    assert cloud.running_images("keystone") == {NEW["keystone"]}
    # A token issued by 28.1.0 validates on 29.1.0: the fernet keys are shared, not regenerated.
    assert _validate(cloud.layout, old_token.stdout.strip())["audit_ids"] == issued_by_old["audit_ids"]
    # The schema is at the new release's heads, expand and contract both (exit 0, else it raises).
    cloud.one_shot(NEW["keystone"], "keystone", "keystone-manage", "db_sync", "--check")


def test_neutron_upgrade_under_the_seeds_loop_fails_nothing(cloud):
    result, records = _upgrade_under(cloud, "networks", "neutron")

    assert_ok(result)
    said = result.stdout + result.stderr
    assert "expand migration of neutron/server" in said and "contract migration of neutron/server" in said
    assert failures(records) == [], failures(records)[:5]
    created, _ = counts(records)["network-create"]
    assert created >= 10 and counts(records)["network-delete"] == (created, 0)
    assert cloud.running_images("neutron") == {NEW["neutron"]}
    listed = cloud.openstack("network", "list", "-f", "json")
    assert_ok(listed)
    assert [n for n in json.loads(listed.stdout) if n["Name"] == "temp"] == []  # every create had its delete
    current = cloud.one_shot(NEW["neutron"], "neutron", "neutron-db-manage", "current")
    assert current.count("(head)") == 2, current  # expand and contract branches both at head
