"""PID 1 done right (`init: true`): a server without a SIGTERM handler is stopped by the signal,
not SIGKILLed at its ceiling, and orphaned processes are reaped, not left zombies.

On Docker the server is PID 1 of its container, where the kernel ignores every signal it has no
handler for: `busybox httpd -f` is killed only at the ceiling. Under Docker's init (tini, from the
compose file's `init: true`) it gets the signal and exits at once. On the process runtime the
shim is the init: with `init` it adopts the service's orphans (a child subreaper) and reaps them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hitless.engine.desired import launch_spec
from hitless.runtime.base import ContainerOptions, Runtime
from hitless.runtime.docker import DockerRuntime
from hitless.runtime.process import ProcessImage, ProcessRuntime
from hitless.runtime.process_shim import proc_stat
from hitless.runtime.stop import graceful_stop
from hitless.spec.compose.convert import convert
from hitless.spec.load import build_tree
from tests.support.net import free_port, http_get
from tests.support.waiting import wait_until

BUSYBOX = "/bin/busybox"


def compose_service(project: str, image: str, command: str, init: bool) -> dict:
    """The compose file a user writes, as hitless reads it."""
    return {"name": project, "services": {"web": {
        "image": image, "command": command, "expose": [8080], "init": init, "stop_grace_period": "3s"}}}


def launch_from_compose(project: str, image: str, command: str, init: bool, generation: int = 1):
    tree = build_tree(convert(compose_service(project, image, command, init), {}, project, lambda *_: None).spec)
    return launch_spec(project, tree.services()[0], 0, generation, 8080, Path("/"))


@pytest.fixture
def docker_rt(docker_client, make_launch):
    runtime = DockerRuntime(docker_client)
    yield runtime
    for instance in runtime.instances(make_launch.project):
        runtime.remove(instance.id)
    runtime.close()


def zombies_in(runtime: Runtime, instance_id: str) -> list[str]:
    """The zombie processes inside a container: `PID (NAME) Z PPID` lines."""
    out = runtime.exec(instance_id, ["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"], timeout=10).output
    return [" ".join(line.split()[:4]) for line in out.splitlines() if line.split()[2:3] == ["Z"]]


@pytest.mark.docker
@pytest.mark.parametrize("init", [False, True], ids=["pid1-httpd", "under-init"])
def test_a_pid_1_server_without_sigterm_handler_is_stopped_by_the_signal_under_init(
        docker_rt, busybox_image, make_launch, init: bool):
    launch = launch_from_compose(make_launch.project, busybox_image, "httpd -f -p 8080", init)
    assert launch.options.init is init
    instance = docker_rt.start(launch)
    host, port = wait_until(lambda: (docker_rt.get(instance.id) or instance).address, 10)
    http_get(host, port, "/")  # it serves
    outcome = graceful_stop(docker_rt, instance.id, signal_name="SIGTERM", grace=3, ceiling=3)
    print(f"\nbusybox httpd -f as {'a child of docker-init' if init else 'PID 1'}: "
          f"exit {outcome.exit_code} after {outcome.seconds:.2f} s{' (SIGKILL at the ceiling)' if outcome.killed else ''}")
    if init:
        assert not outcome.killed and outcome.exit_code == 143 and outcome.seconds < 2
    else:  # what hitless warns about loudly: the signal is ignored, the ceiling kills it
        assert outcome.killed and outcome.exit_code == 137 and outcome.seconds >= 3


@pytest.mark.docker
@pytest.mark.parametrize("init", [False, True], ids=["pid1-never-waits", "under-init"])
def test_orphans_are_reaped_under_init(docker_rt, busybox_image, make_launch, init: bool):
    # PID 1 (busybox sleep) never waits for a child: orphans reparented to it stay zombies.
    instance = docker_rt.start(launch_from_compose(make_launch.project, busybox_image, "sleep 1000", init))
    for _ in range(3):
        docker_rt.exec(instance.id, ["sh", "-c", "sleep 0.2 & exit 0"], timeout=10)  # the sleep is orphaned
    time.sleep(1.0)
    zombies = zombies_in(docker_rt, instance.id)
    print(f"\nzombies {'under docker-init' if init else 'under a PID 1 that never waits'}: {zombies}")
    if init:
        assert zombies == []
    else:
        assert len(zombies) == 3 and all(z.endswith(" Z 1") for z in zombies)


# -- the process runtime: the shim is the init ---------------------------------------------------

@pytest.fixture
def proc_rt(tmp_path: Path, make_launch):
    runtime = ProcessRuntime(tmp_path / "state", {"busybox:1": ProcessImage(entrypoint=(BUSYBOX,))})
    yield runtime
    for instance in runtime.instances(make_launch.project):
        runtime.remove(instance.id)


def shim_pid(runtime: ProcessRuntime, name: str) -> int:
    return int(json.loads((runtime.state_dir / "instances" / name / "pid").read_text())["pid"])


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize("init", [False, True], ids=["shim", "shim-as-init"])
def test_the_process_runtime_s_shim_reaps_orphans_as_an_init(proc_rt, make_launch, tmp_path: Path, init: bool):
    recorded = tmp_path / f"orphan-{init}.pid"
    # The inner shell backgrounds a sleep and exits: the sleep is orphaned; the service never waits.
    script = f"{BUSYBOX} sh -c '{BUSYBOX} sleep 1.5 & echo $! > {recorded}'; exec {BUSYBOX} sleep 1000"
    launch = make_launch("orphans", "busybox:1", ("sh", "-c", script), options=ContainerOptions(init=init))
    instance = proc_rt.start(launch)
    orphan = int(wait_until(lambda: recorded.exists() and recorded.read_text().strip(), 10))
    shim = shim_pid(proc_rt, instance.id)
    adopted_by = wait_until(lambda: parent_of(orphan), 5)
    print(f"\norphan {orphan} adopted by {adopted_by} (the shim is {shim}, init={init})")
    if not init:
        assert adopted_by != shim  # the host's reaper takes it, whatever that is
        return
    assert adopted_by == shim
    # Once it exits the shim reaps it at once: no zombie is left, its pid is gone.
    wait_until(lambda: proc_stat(orphan) is None, 10, message=f"orphan {orphan} reaped (now {proc_stat(orphan)})")
    assert proc_rt.get(instance.id).running  # type: ignore[union-attr]  # the service goes on


def test_a_server_under_the_process_shim_as_init_stops_by_the_signal(proc_rt, make_launch):
    port = free_port()
    launch = make_launch("httpd", "busybox:1", ("httpd", "-f", "-p", f"127.0.0.1:{port}"),
                         options=ContainerOptions(init=True))
    instance = proc_rt.start(launch)
    http_get("127.0.0.1", port, "/", timeout=10)
    outcome = graceful_stop(proc_rt, instance.id, signal_name="SIGTERM", grace=3, ceiling=3)
    assert not outcome.killed and outcome.exit_code == 143 and outcome.seconds < 2
