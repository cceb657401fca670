"""An upgrade killed (SIGKILL) at each step in turn, or interrupted with Ctrl-C, is resumed and
converges, with no failed request and no orphaned container."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from tests.support.load import Load
from tests.support.project import Project, assert_ok

pytestmark = pytest.mark.docker


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
            jobs = p.docker.containers.list(all=True, filters={"label": f"io.hitless.project={p.name}.jobs"})
            assert jobs == [], (step_number, step, jobs)  # nor a migration job a killed run left
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
