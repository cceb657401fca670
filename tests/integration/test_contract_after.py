"""`migrations.contract_after`: a contract that waits for other services of its set, through an
upgrade staged over several runs (Nova's online data migrations run once the last old compute is
gone), on local processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.net import free_port_range

SPEC = """
project: {project}
images:
  "agent:1": {{command: [sh, -c, 'exec python3 -m http.server "$HITLESS_PORT" --bind 127.0.0.1']}}
  "agent:2": {{command: [sh, -c, 'exec python3 -m http.server "$HITLESS_PORT" --bind 127.0.0.1']}}
sets:
  nova:
    conductor:
      image: agent:{tag}
      network: {{mode: host, ports: {first}-{p1}}}
      health: {{tcp: true, interval: 200ms, start_period: 10s, rise: 1}}
      update: {{strategy: all-at-once, min_ready: 100ms, watch: 200ms}}
      migrations:
        expand: [sh, -c, 'echo "expand $(cat {folder}/stage 2>/dev/null)" >> {folder}/log']
        contract: [sh, -c, 'echo "contract $(cat {folder}/stage 2>/dev/null)" >> {folder}/log']
        contract_after: nova
    compute-a:
      image: agent:{tag}
      network: {{mode: host, ports: {p2}-{p3}}}
      health: {{tcp: true, interval: 200ms, start_period: 10s, rise: 1}}
      update: {{strategy: rolling, min_ready: 100ms, watch: 200ms}}
    compute-b:
      image: agent:{tag}
      network: {{mode: host, ports: {p4}-{p5}}}
      health: {{tcp: true, interval: 200ms, start_period: 10s, rise: 1}}
      update: {{strategy: rolling, min_ready: 100ms, watch: 200ms}}
"""


def _hitless(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", "process"], cwd=folder,
                          capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def project(tmp_path):
    first = free_port_range(6)
    fields = {"project": f"hltest-{uuid.uuid4().hex[:8]}", "first": first, "folder": tmp_path,
              **{f"p{i}": first + i for i in range(1, 6)}}
    (tmp_path / "hitless.yaml").write_text(SPEC.format(tag="1", **fields))
    yield tmp_path, lambda tag: (tmp_path / "hitless.yaml").write_text(SPEC.format(tag=tag, **fields))
    _hitless(tmp_path, "down")


def test_the_contract_waits_for_the_last_service_it_names(project):
    folder, write = project
    assert _hitless(folder, "up").returncode == 0
    write("2")

    def stage(name: str, *args: str) -> str:
        (folder / "stage").write_text(name)
        result = _hitless(folder, "upgrade", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    said = stage("control-plane", "nova", "--until", "nova/conductor")
    assert "contract migration of nova/conductor waits: 2 instance(s) run an older image" in said
    said = stage("compute-a", "nova/compute-a")
    assert "contract migration of nova/conductor waits: 1 instance(s)" in said
    stage("compute-b", "nova/compute-b")
    assert (folder / "log").read_text().splitlines() == ["expand control-plane", "contract compute-b"]
    stage("again", "nova/compute-b")  # nothing to upgrade: the contract (idempotent) may run again, nothing else
    assert (folder / "log").read_text().splitlines()[:2] == ["expand control-plane", "contract compute-b"]
