"""A service's own drain (spec `drain`), for what the proxy does not front: its commands run
around the replacement of each old instance, in order, on local processes.

The service stands for a host-bound agent: `rolling` (its old instance stops before the new one
starts), no frontend. `before` tells it to take no new work, `until` says when it has none left
(here: when the test removes a marker file, as a long task ending would), `after` tells the new
instance to take work again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.net import free_port_range
from tests.support.waiting import wait_until

SPEC = """
project: {project}
images:
  "agent:1": {{command: [sh, -c, 'exec python3 -m http.server "$HITLESS_PORT" --bind 127.0.0.1'],
              environment: {{AGENT: "1"}}}}
  "agent:2": {{command: [sh, -c, 'exec python3 -m http.server "$HITLESS_PORT" --bind 127.0.0.1'],
              environment: {{AGENT: "2"}}}}
sets:
  compute:
    agent:
      image: agent:{tag}
      network: {{mode: host, ports: {first}-{last}}}
      health: {{tcp: true, interval: 200ms, timeout: 1s, start_period: 10s, rise: 1}}
      stop: {{grace: 30s}}
      update: {{strategy: rolling, min_ready: 200ms, watch: 500ms}}
      drain:
        where: host
        before: [[sh, -c, 'echo "before $HITLESS_INSTANCE" >> log']]
        until: [sh, -c, 'echo "until $HITLESS_INSTANCE" >> log; test ! -e busy']
        interval: 300ms
        deadline: {deadline}
        after: [[sh, -c, 'echo "after $HITLESS_INSTANCE" >> log']]
"""


def _hitless(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hitless", *args, "--runtime", "process"], cwd=folder,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def project(tmp_path):
    name = f"hltest-{uuid.uuid4().hex[:8]}"
    first = free_port_range(4)

    def write(tag: str, deadline: str = "1m") -> None:
        (tmp_path / "hitless.yaml").write_text(SPEC.format(project=name, tag=tag, first=first, last=first + 3,
                                                           deadline=deadline))

    write("1")
    yield tmp_path, write
    _hitless(tmp_path, "down")


def _instances(folder: Path) -> list[dict]:
    status = json.loads(_hitless(folder, "status", "--json").stdout)
    return [i for s in status["services"] for i in s["instances"]]


def test_drain_commands_run_in_order_and_the_old_instance_waits_for_until(project):
    folder, write = project
    assert _hitless(folder, "up").returncode == 0
    [old] = _instances(folder)
    assert (folder / "log").read_text().split() == ["after", old["name"]]  # a first instance takes work too
    (folder / "log").unlink()
    (folder / "busy").touch()  # the old instance is busy: `until` says not drained
    write("2")
    upgrade = threading.Thread(target=lambda: _hitless(folder, "upgrade"))
    upgrade.start()
    wait_until(lambda: (folder / "log").read_text().count("until") >= 3 if (folder / "log").exists() else False, 30,
               message="until polled three times")
    assert [i["name"] for i in _instances(folder)] == [old["name"]]  # still running, not drained yet
    time.sleep(0.5)
    (folder / "busy").unlink()  # its last task ended
    upgrade.join(120)
    [new] = _instances(folder)
    assert new["image"] == "agent:2" and new["name"] != old["name"]
    lines = (folder / "log").read_text().splitlines()
    assert lines[0] == f"before {old['name']}"
    assert set(lines[1:-1]) == {f"until {old['name']}"} and len(lines) >= 5
    assert lines[-1] == f"after {new['name']}"


def test_a_drain_that_never_ends_stops_the_old_instance_at_its_deadline(project):
    folder, write = project
    assert _hitless(folder, "up").returncode == 0
    (folder / "busy").touch()
    write("2", deadline="2s")
    began = time.monotonic()
    result = _hitless(folder, "upgrade")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - began < 60
    assert "not drained after 2s; stopping it all the same" in result.stdout + result.stderr
    [new] = _instances(folder)
    assert new["image"] == "agent:2"
