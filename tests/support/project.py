"""A netapi deployment in a temporary directory, driven through the real `hitless` CLI on Docker,
for the upgrade and database tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

UPGRADE_SPEC = """
project: {project}
sets:
  netapi:
    api:
      image: netapi:{tag}
      replicas: {replicas}
      environment: {{NETAPI_DB: /var/lib/netapi/netapi.db}}
      volumes: [{project}-data:/var/lib/netapi]
      network: {{mode: bridge, port: 9696}}
      health: {{http: /healthcheck, interval: 500ms, timeout: 1s, start_period: 20s, rise: 2, fall: 2}}
      stop: {{signal: SIGTERM, grace: 10m}}
      update: {{strategy: {strategy}, min_ready: 500ms, watch: 2s}}
      frontend: {{listen: "127.0.0.1:{port}"}}
      {migrations}
"""
EXPAND_ONLY = "migrations: {expand: [python3, -m, netapi.migrate, expand]}"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    """The command exited 0 (its output is the failure message otherwise)."""
    assert result.returncode == 0, result.stdout + result.stderr


class Project:
    """A spec from `template` (formatted with project, port, tag, migrations and `fields`)."""

    def __init__(self, folder: Path, docker_client, template: str = UPGRADE_SPEC, *, migrations: str = EXPAND_ONLY,
                 **fields: object):
        self.folder, self.docker, self.template = folder, docker_client, template
        self.name = f"hltest-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.fields = {"replicas": 2, "strategy": "start-first", **fields}
        self.write("1.0", migrations)

    def write(self, tag: str, migrations: str = EXPAND_ONLY) -> None:
        """Write the spec at this image tag (and these migrations)."""
        (self.folder / "hitless.yaml").write_text(self.template.format(
            project=self.name, tag=tag, port=self.port, migrations=migrations, **self.fields))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `hitless ARGS --runtime docker` in the project's folder."""
        return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", "docker"], cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})

    def events(self, *args: str) -> tuple[int, list[dict]]:
        """Run a command with --json: its exit code and its events."""
        result = self.cli(*args, "--json")
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def containers(self) -> list:
        return self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}"})

    def images(self) -> set[str]:
        return {c.labels["io.hitless.image"] for c in self.containers()}

    def slots(self) -> dict[int, tuple[int, str]]:
        """slot → (generation, image) of the running containers; fails on two per slot."""
        found: dict[int, tuple[int, str]] = {}
        for c in self.containers():
            assert c.status == "running", (c.name, c.status)
            slot = int(c.labels["io.hitless.slot"])
            assert slot not in found, f"two containers in slot {slot}"
            found[slot] = (int(c.labels["io.hitless.generation"]), c.labels["io.hitless.image"])
        return found

    def networks(self) -> list[dict]:
        """GET /v2.0/networks through the frontend."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/v2.0/networks")
            return json.loads(conn.getresponse().read())["networks"]
        finally:
            conn.close()

    def cleanup(self) -> None:
        """`hitless down`, then remove whatever is left (containers, jobs, the volume) by id."""
        self.cli("down", timeout=120)
        jobs = self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}.jobs"})
        for c in self.containers() + jobs:
            c.remove(force=True)
        for vol in self.docker.volumes.list(filters={"name": f"{self.name}-data"}):
            vol.remove(force=True)
        assert not stop_leftover_proxy(self.folder), "the proxy outlived `hitless down`"


def unix_socket_answers(path: Path) -> bool:
    """True when something accepts connections on this Unix socket."""
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def stop_leftover_proxy(folder: Path) -> bool:
    """Stop (by its pid) a proxy still answering on the folder's admin socket, as when `hitless
    down` could not run; True when there was one."""
    sock = folder / ".hitless" / "proxy.sock"
    if not (sock.exists() and unix_socket_answers(sock)):
        return False
    from hitless.proxy.client import AdminClient

    os.kill(int(AdminClient(str(sock)).status()["pid"]), signal.SIGTERM)
    return True
