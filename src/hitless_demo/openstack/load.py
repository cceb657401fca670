"""A real OpenStack cloud (the OpenStack example) deployed for one run, and its users.

`CloudLayout` names what one run owns: a project, its MariaDB databases, its ports and volumes.
`openstack_spec` turns the example's spec into that run's spec (pure). `ClientLoop` runs one of
the example's clients.py's loops (openstacksdk, in the client's own virtualenv) in a child
process and reads what it recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from hitless.errors import OperationFailed, RuntimeUnavailable
from hitless_demo.paths import OPENSTACK_DIR

EXAMPLE_SPEC = OPENSTACK_DIR / "hitless.yaml"
OLD = {"keystone": "keystone:28.1.0", "neutron": "neutron:28.0.2"}
NEW = {"keystone": "keystone:29.1.0", "neutron": "neutron:29.0.0"}
SERVICES = {"keystone": ("keystone", "api"), "neutron": ("neutron", "server")}  # name → (set, service)
ADMIN_PASSWORD = "admin-secret"  # the example's, read by `keystone-manage bootstrap`
# What the example spec names, and is renamed per run.
EXAMPLE_VOLUMES = ("keystone-keys", "neutron-state")
EXAMPLE_FRONTENDS = {"keystone": 5000, "neutron": 9696}


@dataclasses.dataclass(frozen=True)
class CloudLayout:
    """What one deployment of the example owns: its project name, ports and database names."""

    project: str
    keystone_port: int
    neutron_port: int
    first_instance_port: int  # 18 ports from here: 9 per service
    db_user: str = "hitless_os"
    db_password: str = "hitless-os"

    def database(self, service: str) -> str:
        return f"{self.project}_{service}".replace("-", "_")

    def url(self, service: str) -> str:
        return f"mysql+pymysql://{self.db_user}:{self.db_password}@127.0.0.1/{self.database(service)}"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.keystone_port}"

    @property
    def network_url(self) -> str:
        return f"http://127.0.0.1:{self.neutron_port}"

    def volumes(self) -> list[str]:
        return [f"{self.project}-{name}" for name in EXAMPLE_VOLUMES]


def openstack_spec(example: str, layout: CloudLayout, images: dict[str, str]) -> str:
    """The example's spec for this layout: its project, databases, ports and volumes, the config
    directories made absolute, and each service at the image given (`keystone`, `neutron`)."""
    raw = yaml.safe_load(example)
    raw["project"] = layout.project
    swaps = {f"127.0.0.1:{EXAMPLE_FRONTENDS['keystone']}": f"127.0.0.1:{layout.keystone_port}",
             f"127.0.0.1:{EXAMPLE_FRONTENDS['neutron']}": f"127.0.0.1:{layout.neutron_port}"}
    for name in SERVICES:
        swaps[f"{name}:{name}@127.0.0.1/{name}"] = f"{layout.db_user}:{layout.db_password}@127.0.0.1/{layout.database(name)}"
        swaps[f"-u {name} -p{name} {name}"] = f"-u {layout.db_user} -p{layout.db_password} {layout.database(name)}"
    raw = _replace_strings(raw, swaps)
    for i, (name, (set_name, service_name)) in enumerate(SERVICES.items()):
        service = raw["sets"][set_name][service_name]
        service["image"] = images[name]
        first = layout.first_instance_port + 9 * i
        service["network"]["ports"] = f"{first}-{first + 8}"
        volumes = []
        for volume in service.get("volumes", []):
            source, _, rest = volume.partition(":")
            if source.startswith("./"):
                source = str((OPENSTACK_DIR / source).resolve())
            elif source in EXAMPLE_VOLUMES:
                source = f"{layout.project}-{source}"
            volumes.append(f"{source}:{rest}")
        service["volumes"] = volumes
    return yaml.safe_dump(raw, sort_keys=False)


def _replace_strings(value: Any, swaps: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in swaps.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _replace_strings(v, swaps) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, swaps) for v in value]
    return value


def clouds_yaml(layout: CloudLayout, cloud: str) -> str:
    """A clouds.yaml naming the deployment's admin, reached through the keystone frontend."""
    return yaml.safe_dump({"clouds": {cloud: {
        "auth": {"auth_url": layout.auth_url, "username": "admin", "password": ADMIN_PASSWORD,
                 "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}}})


def create_databases(layout: CloudLayout, admin_user: str = "root", host: str = "127.0.0.1") -> None:
    """The deployment's databases and their user, made by MariaDB's administrator."""
    statements = [f"CREATE USER IF NOT EXISTS '{layout.db_user}'@'{where}' IDENTIFIED BY '{layout.db_password}'"
                  for where in ("%", "localhost")]
    for name in SERVICES:
        database = layout.database(name)
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        statements += [f"GRANT ALL ON `{database}`.* TO '{layout.db_user}'@'{where}'" for where in ("%", "localhost")]
    _mariadb(statements, admin_user, host)


def drop_databases(layout: CloudLayout, admin_user: str = "root", host: str = "127.0.0.1") -> None:
    """Remove the deployment's databases (the shared user stays)."""
    _mariadb([f"DROP DATABASE IF EXISTS `{layout.database(name)}`" for name in SERVICES], admin_user, host)


def check_mariadb(admin_user: str = "root", host: str = "127.0.0.1") -> None:
    """MariaDB answers its administrator at `host` (RuntimeUnavailable, one line, when not)."""
    done = _mariadb_cli(["SELECT 1"], admin_user, host)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"MariaDB does not answer {admin_user} on {host}: {done.stderr.strip()}")


def _mariadb(statements: list[str], user: str, host: str) -> None:
    done = _mariadb_cli(statements, user, host)
    if done.returncode != 0:
        raise OperationFailed(f"MariaDB at {host} refused the example's databases: {done.stderr.strip()}")


def _mariadb_cli(statements: list[str], user: str, host: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", "-h", host, "-u", user, "-e", ";\n".join(statements)],
                          capture_output=True, text=True, timeout=60)


class ClientLoop:
    """One loop of the example's clients.py in a child process, recording to a file."""

    def __init__(self, client_bin: Path, loop: str, cloud: str, clouds_file: Path, out: Path, interval: float | None = None):
        self.out = out
        argv = [str(client_bin / "python3"), str(OPENSTACK_DIR / "clients.py"), loop, "--cloud", cloud, "--out", str(out)]
        if interval is not None:
            argv += ["--interval", str(interval)]
        self.log = open(out.with_suffix(".log"), "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds_file)})

    def records(self) -> list[dict]:
        """What the loop recorded so far."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.endswith("}")]

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` operations succeeded (the loop runs), or fail with its log."""
        deadline = time.monotonic() + timeout
        while sum(r["ok"] for r in self.records()) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise OperationFailed(f"the client loop did not get going: {self.out.with_suffix('.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60.0) -> list[dict]:
        """Ask the loop to stop after its current operation; what it recorded."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.records()


def failures(records: list[dict]) -> list[dict]:
    """The operations that failed."""
    return [r for r in records if not r["ok"]]


def counts(records: list[dict]) -> dict[str, tuple[int, int]]:
    """op → (operations, failed)."""
    result: dict[str, tuple[int, int]] = {}
    for r in records:
        total, failed = result.get(r["op"], (0, 0))
        result[r["op"]] = (total + 1, failed + (not r["ok"]))
    return result
