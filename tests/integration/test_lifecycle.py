"""The foundation's promise, end to end through the real CLI, on Docker and on local processes:
`up` brings 2 healthy replicas, a second `up` restarts nothing, a new tag shows in `plan --json`
as exactly those slots replaced for reason `image`, and `down` removes everything it started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hitless_demo.paths import NETAPI_DIR, NETAPI_ROOT
from tests.support.net import free_port
from tests.support.project import stop_leftover_proxy

FRONTEND_PORT = free_port()


def hitless(spec: Path, *args: str, runtime: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hitless", *args, "-f", str(spec), "--runtime", runtime],
        capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "200"},
    )


def write_spec(folder: Path, project: str, tag: str, volume: str) -> Path:
    text = (NETAPI_DIR / "hitless.yaml").read_text()
    text = text.replace("project: netapi", f"project: {project}")
    text = text.replace("image: netapi:1.0", f"image: netapi:{tag}")
    text = text.replace("netapi-data:", f"{volume}:")
    text = text.replace("workdir: ..", f"workdir: {NETAPI_ROOT}")  # the spec is written elsewhere
    text = text.replace("127.0.0.1:9696", f"127.0.0.1:{FRONTEND_PORT}")
    spec = folder / "hitless.yaml"
    spec.write_text(text)
    return spec


def status(spec: Path, runtime: str) -> dict:
    result = hitless(spec, "status", "--json", runtime=runtime)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lifecycle(tmp_path: Path, runtime: str, list_ids) -> None:
    project = f"hltest-{uuid.uuid4().hex[:8]}"
    spec = write_spec(tmp_path, project, "1.0", f"{project}-data")

    first = hitless(spec, "up", runtime=runtime)
    assert first.returncode == 0, first.stderr
    state = status(spec, runtime)
    assert state["runtime"] == runtime
    [api] = state["services"]
    assert [(i["slot"], i["generation"], i["image"], i["health"]) for i in api["instances"]] == [
        (0, 1, "netapi:1.0", "healthy"), (1, 1, "netapi:1.0", "healthy")]
    ids = sorted(i["instance_id"] for i in api["instances"])
    assert list_ids(project) == ids
    versions = {_get_version(FRONTEND_PORT) for _ in range(6)}  # through the proxy `up` started
    assert versions == {"1.0"}

    second = hitless(spec, "up", runtime=runtime)
    assert second.returncode == 0, second.stderr
    assert "0 started, 0 removed, 2 unchanged" in second.stdout
    assert list_ids(project) == ids
    assert sorted(i["instance_id"] for i in status(spec, runtime)["services"][0]["instances"]) == ids

    write_spec(tmp_path, project, "2.0", f"{project}-data")
    plan = hitless(spec, "plan", "--json", runtime=runtime)
    assert plan.returncode == 0, plan.stderr
    changes = json.loads(plan.stdout)["changes"]
    assert [(c["service"], c["slot"], c["action"], c["reasons"]) for c in changes] == [
        ("netapi/api", 0, "replace", ["image"]), ("netapi/api", 1, "replace", ["image"])]
    assert {c["current"]["instance_id"] for c in changes} == set(ids)
    assert list_ids(project) == ids  # planning changed nothing

    down = hitless(spec, "down", runtime=runtime)
    assert down.returncode == 0, down.stderr
    assert list_ids(project) == []
    with pytest.raises(OSError):  # the proxy went with it
        socket.create_connection(("127.0.0.1", FRONTEND_PORT), timeout=2).close()


def _get_version(port: int) -> str | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v2.0/networks")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("X-Netapi-Version")
    finally:
        conn.close()


@pytest.mark.docker
def test_lifecycle_on_docker(tmp_path, docker_client, netapi_images):
    def list_ids(project: str) -> list[str]:
        found = docker_client.containers.list(all=True, filters={"label": f"io.hitless.project={project}"})
        return sorted(c.id for c in found)

    projects: list[str] = []
    try:
        lifecycle(tmp_path, "docker", lambda p: projects.append(p) or list_ids(p))
    finally:
        for project in set(projects):
            for cid in list_ids(project):
                docker_client.containers.get(cid).remove(force=True)
            for vol in docker_client.volumes.list(filters={"name": f"{project}-data"}):
                vol.remove(force=True)
        stop_leftover_proxy(tmp_path)


def test_lifecycle_on_local_processes(tmp_path):
    from hitless.runtime.process import ProcessRuntime

    runtime_view = ProcessRuntime(tmp_path / ".hitless" / "process", {})
    projects: list[str] = []

    def list_ids(project: str) -> list[str]:
        projects.append(project)
        return sorted(i.id for i in runtime_view.instances(project))

    try:
        lifecycle(tmp_path, "process", list_ids)
    finally:
        for project in set(projects):
            for inst in runtime_view.instances(project):
                runtime_view.remove(inst.id)
        stop_leftover_proxy(tmp_path)


def test_a_bad_spec_exits_2_with_every_problem_and_starts_nothing(tmp_path):
    spec = tmp_path / "hitless.yaml"
    spec.write_text(
        "project: bad\n"
        "sets:\n"
        "  neutron:\n"
        "    server:\n"
        "      image: neutron-server\n"
        "      network: {port: 9696}\n"
        "      stop: {grace: 5x}\n"
        "      replicaz: 2\n"
    )
    result = hitless(spec, "up", runtime="process")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"hitless: {spec}: sets.neutron.server.image: invalid image 'neutron-server' "
        "(expected repo:tag; the tag carries the version)",
        f"hitless: {spec}: sets.neutron.server.stop.grace: invalid duration '5x'",
        f"hitless: {spec}: sets.neutron.server.replicaz: unknown key",
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".hitless").exists()
