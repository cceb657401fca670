"""`hitless upgrade` against real Docker, with the proxy and netapi, under continuous load:
zero failed requests, generations +1 per replacement, graceful drains, automatic rollback,
recreate for singletons, and resume after SIGKILL at every step."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.load import Load

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker

SPEC = """
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
      migrations: {{expand: [python3, -m, netapi.migrate, expand]}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Project:
    """A netapi deployment in a temporary directory, driven through the real CLI."""

    def __init__(self, folder: Path, docker_client, *, replicas: int = 2, strategy: str = "start-first"):
        self.folder = folder
        self.docker = docker_client
        self.name = f"hlup-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.replicas, self.strategy = replicas, strategy
        self.write("1.0")

    def write(self, tag: str) -> None:
        (self.folder / "hitless.yaml").write_text(SPEC.format(
            project=self.name, tag=tag, replicas=self.replicas, strategy=self.strategy, port=self.port))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", "docker"], cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})

    def containers(self) -> list:
        return self.docker.containers.list(all=True, filters={"label": f"io.hitless.project={self.name}"})

    def slots(self) -> dict[int, tuple[int, str]]:
        """slot → (generation, image) of the running containers; fails on two per slot."""
        found: dict[int, tuple[int, str]] = {}
        for c in self.containers():
            assert c.status == "running", (c.name, c.status)
            slot = int(c.labels["io.hitless.slot"])
            assert slot not in found, f"two containers in slot {slot}"
            found[slot] = (int(c.labels["io.hitless.generation"]), c.labels["io.hitless.image"])
        return found

    def cleanup(self) -> None:
        self.cli("down", timeout=120)
        for c in self.containers():
            c.remove(force=True)
        for vol in self.docker.volumes.list(filters={"name": f"{self.name}-data"}):
            vol.remove(force=True)
        sock = self.folder / ".hitless" / "proxy.sock"
        assert not sock.exists() or not _answers(sock), "the proxy outlived `hitless down`"


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def project(tmp_path, docker_client, netapi_images):
    made: list[Project] = []

    def make(**kw) -> Project:
        made.append(Project(tmp_path, docker_client, **kw))
        return made[-1]

    yield make
    for p in made:
        p.cleanup()


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_upgrade_and_back_under_load_fails_no_request(project):
    p = project()
    assert_ok(p.cli("up"))
    assert p.slots() == {0: (1, "netapi:1.0"), 1: (1, "netapi:1.0")}
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(1)
        p.write("2.0")
        assert_ok(p.cli("upgrade"))
        assert p.slots() == {0: (2, "netapi:2.0"), 1: (2, "netapi:2.0")}
        p.write("1.0")
        assert_ok(p.cli("upgrade"))
        assert p.slots() == {0: (3, "netapi:1.0"), 1: (3, "netapi:1.0")}
        ids = sorted(c.id for c in p.containers())
        again = p.cli("upgrade")
        assert_ok(again)
        assert "nothing to do" in again.stderr
        assert sorted(c.id for c in p.containers()) == ids
        # One command back to the known good state before the current one; no version named.
        assert_ok(p.cli("rollback", "netapi"))
        assert p.slots() == {0: (4, "netapi:2.0"), 1: (4, "netapi:2.0")}
        assert_ok(p.cli("rollback", "netapi/api", "--to-generation", "1"))
        assert p.slots() == {0: (5, "netapi:1.0"), 1: (5, "netapi:1.0")}
        time.sleep(0.5)
    assert load.count() > 500
    assert load.failures() == []
    assert load.versions() == {"1.0", "2.0"}


def test_a_request_longer_than_any_stop_timeout_completes_and_the_old_container_exits_by_itself(project):
    import http.client

    p = project(replicas=1)
    assert_ok(p.cli("up"))
    [old] = p.containers()
    outcome: dict = {}

    def long_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=300)
        conn.request("POST", "/v2.0/snapshots", body=json.dumps({"snapshot": {"seconds": 120}}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        outcome.update(status=response.status, version=response.getheader("X-Netapi-Version"), at=time.monotonic())
        conn.close()

    thread = threading.Thread(target=long_request)
    thread.start()
    time.sleep(1)
    p.write("2.0")
    with Load("127.0.0.1", p.port, workers=1) as load:
        result = p.cli("upgrade", timeout=400)
        finished = time.monotonic()
    thread.join(timeout=200)
    assert_ok(result)
    assert outcome["status"] == 201 and outcome["version"] == "1.0"
    assert outcome["at"] <= finished  # the upgrade waited for the request before it ended
    # SIGTERM was sent only after the drain, and the old container exited by itself, cleanly.
    assert re.search(rf"{old.name}: exited with code 0 after \d", result.stderr), result.stderr
    assert "SIGKILL" not in result.stderr
    assert old.id not in {c.id for c in p.containers()}
    assert load.failures() == [] and load.versions() >= {"2.0"}


def test_an_image_that_fails_its_health_check_is_rolled_back_automatically(project, docker_client, tmp_path):
    from hitless.imagebuild import build_image

    context = tmp_path / "broken"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM netapi:2.0\nENV NETAPI_BROKEN_HEALTH=1\n")
    build_image(docker_client, context, "netapi:2.1-broken")
    p = project()
    assert_ok(p.cli("up"))
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(0.5)
        result = p.cli("upgrade", "--image", "api=netapi:2.1-broken")
        time.sleep(0.5)
    assert result.returncode == 1
    assert "failed its health gate" in result.stderr and "rolled back: netapi/api → netapi:1.0" in result.stderr
    assert {img for _, img in p.slots().values()} == {"netapi:1.0"}
    assert load.failures() == []
    assert load.versions() == {"1.0"}


def test_a_recreate_singleton_is_upgraded_under_load_without_a_failed_request(project):
    p = project(replicas=1, strategy="recreate")
    assert_ok(p.cli("up"))
    with Load("127.0.0.1", p.port, workers=2) as load:
        time.sleep(0.5)
        p.write("2.0")
        result = p.cli("upgrade")
        time.sleep(0.5)
    assert_ok(result)
    assert "pause" in result.stderr and "resume" in result.stderr
    assert p.slots() == {0: (2, "netapi:2.0")}
    assert load.failures() == []
    assert load.versions() == {"1.0", "2.0"}


def _upgrade_killed_at(p: Project, step_number: int) -> str | None:
    """Run `hitless upgrade --json`, SIGKILL it when its Nth step starts; that step's name,
    or None when the upgrade had fewer steps (it then ran to the end)."""
    proc = subprocess.Popen([sys.executable, "-m", "hitless", "upgrade", "--json", "--runtime", "docker"],
                            cwd=p.folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchdog = threading.Timer(120, proc.kill)  # a hung upgrade fails the test instead of the suite
    watchdog.start()
    seen = 0
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("kind") == "step" and event.get("status") == "started":
                seen += 1
                if seen == step_number:
                    proc.send_signal(signal.SIGKILL)
                    return event["step"]
        return None
    finally:
        proc.wait(timeout=300)
        watchdog.cancel()
        proc.stdout.close()


def test_upgrade_killed_at_each_step_then_resumed_converges_with_no_failed_request(project):
    p = project()
    assert_ok(p.cli("up"))
    tag, killed_at = "1.0", []
    with Load("127.0.0.1", p.port, workers=2) as load:
        for step_number in range(1, 40):
            tag = "2.0" if tag == "1.0" else "1.0"
            p.write(tag)
            step = _upgrade_killed_at(p, step_number)
            if step is None:
                break
            killed_at.append(step)
            resumed = p.cli("resume")
            assert_ok(resumed)
            slots = p.slots()  # exactly one running container per slot: no orphan
            assert {img for _, img in slots.values()} == {f"netapi:{tag}"}, (step_number, step, slots)
            assert sorted(slots) == [0, 1]
    assert {"start", "gate", "proxy-add", "drain", "stop", "remove"} <= set(killed_at)
    assert load.failures() == []


def test_ctrl_c_once_finishes_the_step_and_leaves_a_resumable_run(project):
    p = project()
    assert_ok(p.cli("up"))
    p.write("2.0")
    with Load("127.0.0.1", p.port, workers=1) as load:
        proc = subprocess.Popen([sys.executable, "-m", "hitless", "upgrade", "--json", "--runtime", "docker"],
                                cwd=p.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(120, proc.kill)  # a hung upgrade fails the test instead of the suite
        watchdog.start()
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("kind") == "step" and event.get("step") == "gate" and event.get("status") == "started":
                proc.send_signal(signal.SIGINT)
                break
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=120) == 130
        watchdog.cancel()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        # The gate that was running finished; no step started after the signal.
        assert [(e["step"], e["status"]) for e in rest if e.get("kind") == "step"] == [("gate", "done")]
        assert "resumable" in stderr
        assert_ok(p.cli("resume"))
        assert {img for _, img in p.slots().values()} == {"netapi:2.0"}
    assert load.failures() == []
