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

from hitless.runtime.process_shim import proc_stat
from hitless_demo.paths import NETAPI_ROOT
from tests.support.net import free_port
from tests.support.waiting import wait_until

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
# The same deployment on Docker or as local processes (`images:` is what netapi:TAG means there).
BOTH_RUNTIMES_SPEC = """
project: {project}
images:
  "netapi:1.0": {{command: [python3, -m, netapi], environment: {{NETAPI_VERSION: "1.0"}}, workdir: {netapi}}}
  "netapi:2.0": {{command: [python3, -m, netapi], environment: {{NETAPI_VERSION: "2.0"}}, workdir: {netapi}}}
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
      update: {{strategy: start-first, min_ready: 500ms, watch: 1s}}
      frontend: {{listen: "127.0.0.1:{port}", hold: {{max_wait: 20s}}}}
      {migrations}
"""


def project_on(request, tmp_path_factory, prefix: str, template: str, **fields: object) -> Project:
    """A Project on the runtime a fixture is parametrized with ("process" or "docker"; on
    Docker the engine and the netapi images are fixtures too)."""
    client = None
    if request.param == "docker":
        client = request.getfixturevalue("docker_client")
        request.getfixturevalue("netapi_images")
    return Project(tmp_path_factory.mktemp(f"{prefix}-{request.param}"), client, template,
                   runtime=request.param, **fields)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    """The command exited 0 (its output is the failure message otherwise)."""
    assert result.returncode == 0, result.stdout + result.stderr


class Project:
    """A spec from `template` (formatted with project, port, tag, migrations and `fields`)."""

    def __init__(self, folder: Path, docker_client, template: str = UPGRADE_SPEC, *, migrations: str = EXPAND_ONLY,
                 runtime: str = "docker", **fields: object):
        self.folder, self.docker, self.template = folder, docker_client, template
        self.runtime = runtime  # "docker" (docker_client given) or "process" (docker_client may be None)
        self.name = f"hltest-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.fields = {"replicas": 2, "strategy": "start-first", "netapi": NETAPI_ROOT, **fields}
        self.write("1.0", migrations)

    def write(self, tag: str, migrations: str = EXPAND_ONLY) -> None:
        """Write the spec at this image tag (and these migrations)."""
        (self.folder / "hitless.yaml").write_text(self.template.format(
            project=self.name, tag=tag, port=self.port, migrations=migrations, **self.fields))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `hitless ARGS --runtime RUNTIME` in the project's folder."""
        return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", self.runtime], cwd=self.folder,
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

    @property
    def state_dir(self) -> Path:
        return (self.folder / ".hitless").resolve()

    def cleanup(self) -> None:
        """`hitless down`, then remove whatever is left (containers, jobs, the volume) by id."""
        self.cli("down", timeout=120)
        if self.runtime == "process":
            from hitless.runtime.process import ProcessRuntime

            view = ProcessRuntime(self.state_dir / "process", {})
            for project in (self.name, f"{self.name}.jobs"):
                for inst in view.instances(project):
                    view.remove(inst.id)  # by its recorded, verified pid
            assert not stop_leftover_proxy(self.folder), "the proxy outlived `hitless down`"
            return
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


def proxy_containers(folder: Path) -> list:
    """The proxy containers of the project in `folder` (found by label), [] without an engine."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception:  # no engine here: no container either
        return []
    from hitless.proxyhost.docker import LABEL_STATE_DIR

    return client.containers.list(all=True, filters={"label": f"{LABEL_STATE_DIR}={(folder / '.hitless').resolve()}"})


def stop_proxy_hosts(folder: Path) -> bool:
    """Remove the folder's proxy containers by id and stop its proxy supervisor by its verified
    pid, as when `hitless down` could not run; True when there was one."""
    from hitless.proxyhost.process import ProcessProxyHost

    found = False
    for container in proxy_containers(folder):
        container.remove(force=True)
        found = True
    state_dir = (folder / ".hitless").resolve()
    host = ProcessProxyHost(state_dir, state_dir / "proxy.sock")
    if host.inspect().alive:
        host.stop(30.0)
        found = True
    return found


def proxy_status(folder: Path) -> dict | None:
    """The admin status of the folder's proxy, or None when none answers."""
    from hitless.proxy.admin.client import AdminClient, ProxyUnavailable

    try:
        return AdminClient(str(folder / ".hitless" / "proxy.sock"), timeout=2).status()
    except ProxyUnavailable:
        return None


def stop_leftover_proxy(folder: Path) -> bool:
    """Stop a proxy still running for the folder, as when `hitless down` could not run: its
    container or supervisor, then (by its pid) one still answering on the admin socket. True
    when there was one."""
    hosted = stop_proxy_hosts(folder)
    sock = folder / ".hitless" / "proxy.sock"
    if not (sock.exists() and unix_socket_answers(sock)):
        return hosted
    from hitless.proxy.admin.client import AdminClient

    os.kill(int(AdminClient(str(sock)).status()["pid"]), signal.SIGTERM)
    return True


# -- the proxy of a deployment, supervised by its runtime ---------------------------------------

def supervisor_record(p: Project) -> dict:
    return json.loads((p.state_dir / "proxy-supervisor.json").read_text())


def proxy_pids(status: dict) -> list[int]:
    """The proxy's processes: the master (or only) one and its workers, as it reports them."""
    return [int(status["pid"]), *(int(w["pid"]) for w in status.get("workers") or [] if w.get("pid"))]


def kill_9(pids: list[int]) -> None:
    """SIGKILL each pid, after checking it is a hitless proxy process. One already dead or on
    its way out (a worker that exits as soon as its master is killed) is skipped."""
    for pid in pids:
        stat = proc_stat(pid)
        if stat is None or stat[0] in "ZX":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except FileNotFoundError:  # gone since
            continue
        if not cmdline:  # exiting: its memory, and its command line with it, already released
            continue
        assert b"hitless" in cmdline, (pid, cmdline)
        os.kill(pid, signal.SIGKILL)


def answers_200(p: Project) -> bool:
    try:
        return bool(p.networks() is not None)
    except (OSError, ValueError, KeyError):
        return False


def status_json(p: Project) -> tuple[int, dict]:
    result = p.cli("status", "--json")
    return result.returncode, json.loads(result.stdout)


def take_down_for_good(p: Project) -> None:
    """Stop the proxy so that nothing brings it back: SIGKILL to the supervisor and then to the
    proxy; on Docker `docker kill`, which marks the container stopped by hand."""
    if p.runtime == "process":
        record = supervisor_record(p)
        kill_9([record["pid"]])
        kill_9(proxy_pids(proxy_status(p.folder)))
    else:
        [container] = proxy_containers(p.folder)
        container.kill(signal="SIGKILL")
    wait_until(lambda: proxy_status(p.folder) is None, 5, interval=0.01, message="the proxy went away")
