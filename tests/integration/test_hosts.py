"""One spec, several hosts: netapi on two control hosts, the proxy on a third reached over
ssh://, each host a network namespace with its own Docker engine (tests/support/testhosts.py).

Upgraded host by host (hosts_serial: 1) under load through the proxy: 0 failed. Then one
host's engine stops answering in the middle of a run: the run stops with one line naming the
host (exit 3), and once the engine answers again `hitless resume` converges, still with 0 failed.
The instances share one MariaDB database (this machine's, reached through a relay on the
hosts' bridge), as replicas on several hosts share their database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from hitless.probe.load import Workload
from hitless.probe.session import ProbeSession
from hitless_demo.localrun import create_scratch_database, drop_scratch_database
from tests.support.net import free_port, free_port_range
from tests.support.project import assert_ok
from tests.support.relay import Relay
from tests.support.skips import skip_or_fail
from tests.support.testhosts import TestHosts

pytestmark = pytest.mark.docker

SPEC = """
project: {project}
hosts:
{hosts}
groups: {{control: [{c1}, {c2}]}}
proxy: {{host: {c3}, admin_port: {admin_port}}}
sets:
  netapi:
    api:
      image: netapi:{tag}
      hosts: control
      replicas: 1
      environment: {{NETAPI_DB_URL: "{db_url}", NETAPI_ACCESS_LOG: "{access_log}"}}
      network: {{mode: host, ports: {ports}}}
      health: {{http: /healthcheck, interval: 500ms, timeout: 1s, start_period: 30s, rise: 2, fall: 2}}
      stop: {{signal: SIGTERM, grace: 10m}}
      update: {{strategy: start-first, min_ready: 500ms, watch: 2s, hosts_serial: 1}}
      frontend: {{listen: "0.0.0.0:{port}"}}
      migrations:
        expand: [python3, -m, netapi.migrate, expand]
        contract: [python3, -m, netapi.migrate, contract]
"""


class Deployment:
    """The spec in a folder, driven through the real `hitless` CLI."""

    def __init__(self, folder: Path, hosts: TestHosts, db_url: str):
        self.folder, self.testhosts = folder, hosts
        self.name = f"hlhosts-{uuid.uuid4().hex[:6]}"
        self.c1, self.c2, self.c3 = (h.name for h in hosts.hosts)
        self.port = free_port()
        self.fields = dict(
            project=self.name, c1=self.c1, c2=self.c2, c3=self.c3, admin_port=free_port(), db_url=db_url,
            ports=f"{(first := free_port_range(4))}-{first + 3}", port=self.port,
            hosts="\n".join(f"  {h.name}: {{engine: \"{h.engine_url}\", address: {h.address}}}" for h in hosts.hosts))
        self.url = f"http://{hosts.hosts[2].address}:{self.port}"

    def write(self, tag: str, access_log: str = "0") -> None:
        (self.folder / "hitless.yaml").write_text(SPEC.format(tag=tag, access_log=access_log, **self.fields))

    def env(self) -> dict[str, str]:
        return {**os.environ, "COLUMNS": "200", "HITLESS_HOST_TIMEOUT": "5"}

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hitless", *args], cwd=self.folder, capture_output=True,
                              text=True, timeout=timeout, env=self.env())

    def placed(self) -> dict[str, str]:
        """host → image of the running instances, from `hitless status --json`."""
        status = json.loads(self.cli("status", "--json").stdout)
        return {i["host"]: i["image"] for s in status["services"] for i in s["instances"] if i["state"] == "running"}

    def cleanup(self) -> None:
        self.cli("down", timeout=300)
        for host in self.testhosts.hosts:  # whatever `down` could not remove, by label, on each engine
            client = host.client(timeout=30)
            try:
                for project in (self.name, f"{self.name}.jobs"):
                    for c in client.containers.list(all=True, filters={"label": f"io.hitless.project={project}"}):
                        c.remove(force=True)
                for c in client.containers.list(all=True, filters={"label": f"io.hitless.proxy.project={self.name}"}):
                    c.remove(force=True)
                for v in client.volumes.list(filters={"name": f"{self.name}-hitless-proxy"}):
                    v.remove(force=True)
            finally:
                client.close()


@pytest.fixture(scope="module")
def testhosts():
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("ip") or not os.path.exists("/usr/sbin/sshd"):
        skip_or_fail("test hosts need root, dockerd, ip and sshd")
    hosts = TestHosts(prefix="hlmh", count=3, ssh_index=3)
    try:
        hosts.up()
        yield hosts
    finally:
        hosts.down()


@pytest.fixture(scope="module")
def deployment(testhosts, docker_client, netapi_images, tmp_path_factory):
    try:
        url = create_scratch_database("mysql", prefix="hlhosts")
    except Exception as exc:  # no server: nothing to share
        skip_or_fail(f"MariaDB does not answer on 127.0.0.1: {exc}")
    relay = Relay((testhosts.gateway, 0), ("127.0.0.1", 3306))
    user_host, _, database = url.removeprefix("mysql://").rpartition("/")
    db_url = f"mysql://{user_host.split('@')[0]}@{relay.address[0]}:{relay.address[1]}/{database}"
    d = Deployment(tmp_path_factory.mktemp("hosts"), testhosts, db_url)
    try:
        yield d
    finally:
        try:
            d.cleanup()
        finally:
            relay.close()
            drop_scratch_database(url)


def test_upgraded_host_by_host_then_resumed_after_an_engine_stopped_answering(deployment, testhosts):
    d = deployment
    d.write("1.0")
    assert_ok(d.cli("up"))
    assert d.placed() == {d.c1: "netapi:1.0", d.c2: "netapi:1.0"}

    load = [Workload(f"{d.url}/v2.0/networks", "get", concurrency=2, modes=("new", "keep"), interval=0.02),
            Workload(d.url, "neutron-cycle", concurrency=1, modes=("new",))]
    probe = ProbeSession(workloads=load, grace=5.0).start()
    try:
        time.sleep(1.0)
        d.write("2.0")
        upgraded = d.cli("upgrade")
        assert_ok(upgraded)
        said = upgraded.stdout + upgraded.stderr
        assert said.index(f"host(s) {d.c1}") < said.index(f"host(s) {d.c2}")  # one host at a time
        assert f"slot 0 on {d.c1}" in said and f"slot 1 on {d.c2}" in said  # steps name their host
        assert d.placed() == {d.c1: "netapi:2.0", d.c2: "netapi:2.0"}

        # A config change replaces both again; once the first host is done, the second host's
        # engine stops answering (its containers keep serving).
        d.write("2.0", access_log="1")
        run = subprocess.Popen([sys.executable, "-m", "hitless", "upgrade"], cwd=d.folder, env=d.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        second_host = threading.Event()

        def read() -> None:
            for line in run.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if f"host(s) {d.c2}" in line:
                    second_host.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert second_host.wait(300), "".join(lines)
        with testhosts.unreachable(testhosts.hosts[1]):
            assert run.wait(120) == 3, "".join(lines)
            reader.join(10)
            last = [line for line in lines if line.strip()][-1]
            assert last.startswith(f"hitless: host {d.c2}: "), "".join(lines)
            print(f"the run stopped with: {last.strip()}")
        resumed = d.cli("resume")
        assert_ok(resumed)
        assert d.placed() == {d.c1: "netapi:2.0", d.c2: "netapi:2.0"}
        again = d.cli("upgrade")
        assert "nothing to do" in again.stdout + again.stderr
        time.sleep(1.0)
    finally:
        result = probe.stop()
    failed = [r for r in result.records if not r.ok]
    print(f"{len(result.records)} requests through the proxy on {d.c3}, {len(failed)} failed")
    assert len(result.records) > 200
    assert failed == [], failed[:5]



def test_some_hosts_now_the_others_at_their_own_pace(deployment):
    d = deployment
    d.write("2.0", access_log="0")  # differs from what runs (access_log 1): every slot is replaced
    first = d.cli("upgrade", "--hosts", d.c1)
    assert_ok(first)
    said = first.stdout + first.stderr
    assert f"slot 0 on {d.c1}" in said and f"on {d.c2}" not in said
    plan = json.loads(d.cli("plan", "--json").stdout)
    actions = {c["host"]: c["action"] for c in plan["changes"]}
    assert actions == {d.c1: "keep", d.c2: "replace"}  # the second host waits for its turn
    assert_ok(d.cli("upgrade", "--hosts", d.c2))
    assert {c["action"] for c in json.loads(d.cli("plan", "--json").stdout)["changes"]} == {"keep"}
    unknown = d.cli("upgrade", "--hosts", "nowhere")
    assert unknown.returncode == 2 and "no host nowhere" in unknown.stderr
