"""ProcessRuntime with real processes: the same lifecycle as containers, state read back from disk."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hitless.errors import BadInput, OperationFailed
from hitless.runtime import process_shim
from hitless.runtime.base import ContainerOptions, Instance, Mount, Runtime
from hitless.runtime.process import ProcessImage, ProcessRuntime
from hitless.runtime.stop import graceful_stop
from tests.support.net import free_port, http_get
from tests.support.waiting import wait_until

TERM_EXITS_3_AFTER_2S = "trap 'sleep 2; exit 3' TERM; echo ready; sleep 1000 & wait"
TERM_TAKES_30S = "trap 'sleep 30; exit 0' TERM; echo ready; sleep 1000 & wait"


def images(www: Path) -> dict[str, ProcessImage]:
    return {
        "sh:1": ProcessImage(entrypoint=("/bin/sh", "-c"), command=("echo default; sleep 1000",)),
        "web:1": ProcessImage(
            entrypoint=("/bin/sh", "-c"),
            command=(f'exec {sys.executable} -m http.server --bind 127.0.0.1 "$HITLESS_PORT"',),
            environment={"PYTHONUNBUFFERED": "1"},
            workdir=str(www),
        ),
    }


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def www(tmp_path: Path) -> Path:
    path = tmp_path / "www"
    path.mkdir()
    (path / "index.html").write_text("process test page\n")
    return path


@pytest.fixture
def proc_rt(state_dir, www, make_launch):
    """A ProcessRuntime; every instance of the test's project is removed (killed) afterwards."""
    runtime = ProcessRuntime(state_dir, images(www))
    yield runtime
    cleaner = ProcessRuntime(state_dir, {})
    for instance in cleaner.instances(make_launch.project):
        cleaner.remove(instance.id)


def wait_for_log(runtime: Runtime, instance_id: str, text: str, timeout: float = 10.0) -> None:
    wait_until(lambda: text in runtime.logs(instance_id, tail=100), timeout, interval=0.02,
               message=f"{text!r} in the logs of {instance_id}")


def start_sh(runtime: ProcessRuntime, make_launch, name: str, script: str, **kw) -> Instance:
    return runtime.start(make_launch(name, "sh:1", (script,), **kw))


def pid_record(state_dir: Path, instance_id: str) -> dict:
    return json.loads((state_dir / "instances" / instance_id / "pid").read_text())


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = process_shim.proc_stat(int(entry))
            if stat is not None and stat[1] == pgid and stat[0] not in "ZX":
                found.append(int(entry))
    return found


def test_start_list_and_reach(proc_rt, state_dir, make_launch):
    port = free_port()
    launch = make_launch("web", "web:1", None, port=port, environment={"HITLESS_PORT": str(port)})
    started = proc_rt.start(launch)
    listed = proc_rt.instances(make_launch.project)
    assert [i.id for i in listed] == [started.id] == [launch.name]
    instance = listed[0]
    assert instance.labels == launch.labels
    assert instance.state == "running" and instance.exit_code is None
    assert instance.address == ("127.0.0.1", port)
    assert abs((dt.datetime.now(dt.UTC) - instance.started_at).total_seconds()) < 60
    assert http_get("127.0.0.1", port, "/index.html") == (200, b"process test page\n")
    directory = state_dir / "instances" / launch.name
    assert {p.name for p in directory.iterdir()} >= {"labels.json", "launch.json", "pid", "output.log"}
    assert proc_rt.instances("some-other-project") == []


def test_observed_by_a_fresh_runtime_after_the_starter_exits(state_dir, www, proc_rt, make_launch):
    launch = make_launch("detached", "sh:1", None)
    starter = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from hitless.runtime.base import *
        from hitless.runtime.process import ProcessImage, ProcessRuntime
        image = ProcessImage(entrypoint=("/bin/sh", "-c"), command=("echo default; sleep 1000",))
        runtime = ProcessRuntime(Path({str(state_dir)!r}), {{"sh:1": image}})
        print(runtime.start({launch!r}).id)
        """
    )
    done = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    instance_id = done.stdout.strip()

    fresh = ProcessRuntime(state_dir, {})  # knows no image: observing needs none
    instance = fresh.get(instance_id)
    assert instance is not None and instance.running and instance.labels == launch.labels
    assert fresh.instances(make_launch.project) == [instance]
    wait_for_log(fresh, instance_id, "default")
    shim = pid_record(state_dir, instance_id)["pid"]
    assert os.getpgid(shim) == shim and os.getsid(shim) == shim  # its own session and group

    # An instance outlives the Python object that started it, too.
    second = make_launch("second", "sh:1", None)
    temporary = ProcessRuntime(state_dir, images(www))
    temporary.start(second)
    del temporary
    gc.collect()
    assert ProcessRuntime(state_dir, {}).get(second.name).running


def test_sigterm_then_wait_exit(proc_rt, make_launch):
    instance = start_sh(proc_rt, make_launch, "term", TERM_EXITS_3_AFTER_2S)
    wait_for_log(proc_rt, instance.id, "ready")
    assert proc_rt.wait_exit(instance.id, 0.3) is None
    began = time.monotonic()
    proc_rt.signal(instance.id, "SIGTERM")
    assert proc_rt.wait_exit(instance.id, 1.0) is None  # not before its 2 s shutdown
    assert proc_rt.wait_exit(instance.id, 10) == 3
    assert 1.8 <= time.monotonic() - began < 5
    observed = proc_rt.get(instance.id)
    assert observed.state == "exited" and observed.exit_code == 3 and observed.address is None
    proc_rt.signal(instance.id, "SIGTERM")  # not running any more: a no-op


def test_graceful_stop_kills_at_the_ceiling_and_the_whole_group(proc_rt, state_dir, make_launch):
    instance = start_sh(proc_rt, make_launch, "slow", TERM_TAKES_30S)
    wait_for_log(proc_rt, instance.id, "ready")
    shim = pid_record(state_dir, instance.id)["pid"]
    assert len(group_members(shim)) >= 3  # shim, sh, sleep
    events: list[tuple[str, str]] = []
    outcome = graceful_stop(proc_rt, instance.id, grace=0.5, ceiling=1.0, on_event=lambda *e: events.append(e))
    assert outcome.killed and outcome.exit_code == 137
    assert 0.9 <= outcome.seconds < 5
    warnings = [message for level, message in events if level == "warning"]
    assert any("still running after grace" in m for m in warnings)
    assert any("SIGKILL" in m for m in warnings)
    # The shim kills the service's leftovers, as the kernel would.
    wait_until(lambda: not group_members(shim), 5, message=f"no process left in group {shim}")
    assert proc_rt.get(instance.id).state == "exited"


def test_graceful_stop_clean_exit(proc_rt, make_launch):
    instance = start_sh(proc_rt, make_launch, "clean", "trap 'sleep 1; exit 0' TERM; echo ready; sleep 1000 & wait")
    wait_for_log(proc_rt, instance.id, "ready")
    outcome = graceful_stop(proc_rt, instance.id, grace=10)
    assert outcome.exit_code == 0 and not outcome.killed and 0.8 <= outcome.seconds < 5


def test_exec_environment_cwd_and_timeout(proc_rt, make_launch, tmp_path):
    workdir = tmp_path / "work"
    instance = start_sh(
        proc_rt, make_launch, "exec", "sleep 1000", environment={"GREETING": "hello"},
        options=ContainerOptions(workdir=str(workdir), user="nobody", privileged=True),
    )
    result = proc_rt.exec(instance.id, ["sh", "-c", 'echo "$GREETING $(pwd)"; echo oops >&2; exit 4'], 10)
    assert result.exit_code == 4 and result.output == f"hello {workdir}\noops\n"
    began = time.monotonic()
    result = proc_rt.exec(instance.id, ["sh", "-c", "sleep 37; echo never"], 1.0)
    assert result.exit_code == 124 and "never" not in result.output and "timeout" in result.output
    assert time.monotonic() - began < 4
    assert proc_rt.exec(instance.id, ["no-such-program"], 5).exit_code == 127


def test_logs_and_remove(proc_rt, state_dir, make_launch):
    instance = start_sh(proc_rt, make_launch, "logs", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1000")
    wait_for_log(proc_rt, instance.id, "line5")
    assert proc_rt.logs(instance.id, tail=2) == "line4\nline5\n"
    shim = pid_record(state_dir, instance.id)["pid"]
    proc_rt.remove(instance.id)  # running: killed first
    assert proc_rt.get(instance.id) is None and proc_rt.instances(make_launch.project) == []
    assert not (state_dir / "instances" / instance.id).exists()
    assert group_members(shim) == []
    proc_rt.remove(instance.id)  # already gone: nothing to do


def test_dead_and_reused_pids_are_not_running(proc_rt, state_dir, make_launch):
    instance = start_sh(proc_rt, make_launch, "victim", "sleep 1000")
    pid_file = state_dir / "instances" / instance.id / "pid"
    record = json.loads(pid_file.read_text())
    # The shim dies unseen (no exit_code written): dead, with Docker's "unknown" code.
    os.killpg(record["pid"], signal.SIGKILL)
    wait_until(lambda: not proc_rt.get(instance.id).running, 5, interval=0.02, message="the shim seen dead")
    dead = proc_rt.get(instance.id)
    assert dead.state == "dead" and dead.exit_code == 255 and dead.address is None
    assert proc_rt.wait_exit(instance.id, 5) == 255

    # Its PID now belongs to a stranger (same PID number, another start time): still dead,
    # and signals or removal never reach the stranger.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        stat = process_shim.proc_stat(stranger.pid)
        process_shim.write_atomic(str(pid_file), json.dumps(dict(record, pid=stranger.pid, service_pid=stranger.pid)))
        assert proc_rt.get(instance.id).state == "dead"
        # Even with the stranger's own start time, another boot's record is not ours.
        reused = dict(record, pid=stranger.pid, start_time=stat[2], service_pid=stranger.pid,
                      service_start_time=stat[2], boot_id="another-boot")
        process_shim.write_atomic(str(pid_file), json.dumps(reused))
        assert proc_rt.get(instance.id).state == "dead"
        proc_rt.signal(instance.id, "SIGTERM")
        proc_rt.signal(instance.id, "SIGKILL")
        proc_rt.remove(instance.id)
        assert stranger.poll() is None, "the stranger was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_mount_paths_are_rewritten(proc_rt, state_dir, make_launch, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "in").write_text("from the host\n")
    mounts = (Mount(source="data", target="/data"), Mount(source=str(config), target="/etc/svc", read_only=True))
    script = 'cat /etc/svc/in > /data/out; echo "$DB" > /data/db; pwd > /data/pwd; echo ready; sleep 1000'
    instance = start_sh(
        proc_rt, make_launch, "mounts", script, mounts=mounts,
        environment={"DB": "sqlite:////data/app.db", "OTHER": "/database"},
        options=ContainerOptions(workdir="/data/work"),
    )
    wait_for_log(proc_rt, instance.id, "ready")
    volume = state_dir / "volumes" / "data"
    assert (volume / "out").read_text() == "from the host\n"
    assert (volume / "db").read_text() == f"sqlite:///{volume}/app.db\n"
    assert (volume / "pwd").read_text() == f"{volume}/work\n"
    result = proc_rt.exec(instance.id, ["sh", "-c", 'cat /data/out; echo "$OTHER"'], 10)
    assert result.output == "from the host\n/database\n"
    proc_rt.remove(instance.id)
    assert (volume / "out").exists()  # named volumes outlive their instances


def test_errors_are_one_line(proc_rt, make_launch):
    assert proc_rt.has_image("sh:1") and not proc_rt.has_image("netapi:9.9")
    with pytest.raises(BadInput, match="image 'netapi:9.9' is not known"):
        proc_rt.start(make_launch("nope", "netapi:9.9", None))
    launch = make_launch("dup", "sh:1", None)
    proc_rt.start(launch)
    with pytest.raises(OperationFailed, match="already in use"):
        proc_rt.start(launch)
    broken = ProcessRuntime(proc_rt.state_dir, {"bad:1": ProcessImage(entrypoint=("/no/such/program",))})
    with pytest.raises(OperationFailed, match="cannot run '/no/such/program'") as bad:
        broken.start(make_launch("badcmd", "bad:1", None))
    assert "\n" not in str(bad.value)
    assert [i.name for i in proc_rt.instances(make_launch.project)] == [launch.name]  # nothing left of it
    with pytest.raises(BadInput, match="unknown signal"):
        proc_rt.signal(launch.name, "SIGNOPE")
    with pytest.raises(OperationFailed, match="no such instance"):
        proc_rt.signal("no-such-instance", "SIGTERM")
    assert proc_rt.get("no-such-instance") is None and proc_rt.get("../etc") is None
    finished = start_sh(proc_rt, make_launch, "finished", "exit 0")
    assert proc_rt.wait_exit(finished.id, 10) == 0
    with pytest.raises(OperationFailed, match="not running"):
        proc_rt.exec(finished.id, ["true"], 5)
