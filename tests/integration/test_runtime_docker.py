"""DockerRuntime against the real engine, with a busybox image made locally (no registry)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from hitless.errors import BadInput, OperationFailed
from hitless.runtime.base import ContainerOptions, Instance, Mount, Runtime
from hitless.runtime.docker import RESTART_POLICY, DockerRuntime
from hitless.runtime.stop import graceful_stop
from tests.support.net import free_port, http_get
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

# PID 1 ignores SIGTERM until it traps it: each service says "ready" once its trap is set.
TERM_EXITS_3_AFTER_2S = "trap 'sleep 2; exit 3' TERM; echo ready; sleep 1000 & wait"
TERM_TAKES_30S = "trap 'sleep 30; exit 0' TERM; echo ready; sleep 1000 & wait"


@pytest.fixture
def docker_rt(docker_client, make_launch):
    """A DockerRuntime; every container of the test's project is removed afterwards."""
    runtime = DockerRuntime(docker_client)
    extra: list[str] = []
    runtime.extra_ids = extra  # containers a test makes outside the runtime
    yield runtime
    for instance in runtime.instances(make_launch.project):
        runtime.remove(instance.id)
    for container_id in extra:
        runtime.remove(container_id)
    runtime.close()


def wait_for_log(runtime: Runtime, instance_id: str, text: str, timeout: float = 10.0) -> None:
    wait_until(lambda: text in runtime.logs(instance_id, tail=100), timeout,
               message=f"{text!r} in the logs of {instance_id}")


def start_sh(runtime: DockerRuntime, make_launch, image: str, name: str, script: str, **kw) -> Instance:
    return runtime.start(make_launch(name, image, ("sh", "-c", script), **kw))


def test_start_list_and_reach_on_the_bridge(docker_rt, docker_client, busybox_image, make_launch):
    launch = make_launch("web", busybox_image, ("httpd", "-f", "-p", "8080", "-h", "/www"), port=8080)
    started = docker_rt.start(launch)
    # A container with the project label but not the rest is foreign: list skips it.
    foreign = docker_client.containers.create(
        busybox_image, ["sleep", "60"], labels={"io.hitless.project": make_launch.project}
    )
    docker_rt.extra_ids.append(foreign.id)

    listed = docker_rt.instances(make_launch.project)
    assert [i.id for i in listed] == [started.id]
    instance = listed[0]
    assert instance.labels == launch.labels
    assert instance.name == launch.name
    assert instance.state == "running" and instance.running and instance.exit_code is None
    assert instance.host not in (None, "127.0.0.1")
    assert abs((dt.datetime.now(dt.UTC) - instance.started_at).total_seconds()) < 60
    assert instance.address == (instance.host, 8080)
    status, body = http_get(*instance.address, "/index.html")
    assert (status, body) == (200, b"hitless test page\n")

    attrs = docker_client.api.inspect_container(started.id)
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == RESTART_POLICY["Name"]
    assert attrs["Config"]["StopSignal"] == "SIGTERM"


def test_host_network_answers_on_loopback(docker_rt, busybox_image, make_launch):
    port = free_port()
    launch = make_launch(
        "hostweb", busybox_image, ("httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"), port=port, network="host"
    )
    instance = docker_rt.start(launch)
    assert instance.host == "127.0.0.1" and instance.address == ("127.0.0.1", port)
    assert http_get("127.0.0.1", port, "/index.html")[0] == 200


def test_sigterm_then_wait_exit_and_no_restart(docker_rt, docker_client, busybox_image, make_launch):
    instance = start_sh(docker_rt, make_launch, busybox_image, "term", TERM_EXITS_3_AFTER_2S)
    wait_for_log(docker_rt, instance.id, "ready")
    assert docker_rt.wait_exit(instance.id, 0.3) is None

    began = time.monotonic()
    docker_rt.signal(instance.id, "SIGTERM")
    assert docker_rt.wait_exit(instance.id, 1.0) is None  # not before its 2 s shutdown
    assert docker_rt.wait_exit(instance.id, 10) == 3
    assert 1.8 <= time.monotonic() - began < 5

    # unless-stopped: a kill with the container's stop signal must not be restarted.
    time.sleep(1.5)
    attrs = docker_client.api.inspect_container(instance.id)
    assert attrs["RestartCount"] == 0
    assert attrs["State"]["Status"] == "exited"
    observed = docker_rt.get(instance.id)
    assert observed.state == "exited" and observed.exit_code == 3 and observed.address is None
    docker_rt.signal(instance.id, "SIGTERM")  # not running any more: a no-op


def test_a_crash_is_restarted_by_the_engine(docker_rt, docker_client, busybox_image, make_launch):
    """The other half of the restart policy: a service that dies on its own comes back."""
    instance = start_sh(docker_rt, make_launch, busybox_image, "crash", "sleep 0.2; exit 1")
    wait_until(lambda: docker_client.api.inspect_container(instance.id)["RestartCount"] >= 1, 10, interval=0.1,
               message="the engine restarting a crashed container")


def test_graceful_stop_clean_exit(docker_rt, busybox_image, make_launch):
    script = "trap 'sleep 1; exit 0' TERM; echo ready; sleep 1000 & wait"
    instance = start_sh(docker_rt, make_launch, busybox_image, "clean", script)
    wait_for_log(docker_rt, instance.id, "ready")
    events: list[tuple[str, str]] = []
    outcome = graceful_stop(docker_rt, instance.id, grace=10, on_event=lambda *e: events.append(e))
    assert outcome.exit_code == 0 and not outcome.killed
    assert 0.8 <= outcome.seconds < 5
    assert all(level == "info" for level, _ in events)


def test_graceful_stop_kills_at_the_ceiling(docker_rt, docker_client, busybox_image, make_launch):
    instance = start_sh(docker_rt, make_launch, busybox_image, "slow", TERM_TAKES_30S)
    wait_for_log(docker_rt, instance.id, "ready")
    events: list[tuple[str, str]] = []
    outcome = graceful_stop(docker_rt, instance.id, grace=0.5, ceiling=1.0, on_event=lambda *e: events.append(e))
    assert outcome.killed and outcome.exit_code == 137
    assert 0.9 <= outcome.seconds < 5
    warnings = [message for level, message in events if level == "warning"]
    assert any("still running after grace" in m for m in warnings)
    assert any("SIGKILL" in m for m in warnings)
    time.sleep(0.5)
    assert docker_client.api.inspect_container(instance.id)["RestartCount"] == 0


def test_exec_output_exit_code_options_and_timeout(docker_rt, busybox_image, make_launch):
    options = ContainerOptions(user="65534", workdir="/tmp", cap_drop=("NET_RAW",))
    instance = start_sh(
        docker_rt, make_launch, busybox_image, "exec", "sleep 1000", environment={"GREETING": "hello"}, options=options
    )
    result = docker_rt.exec(instance.id, ["sh", "-c", 'echo "$GREETING $(id -u) $(pwd)"; echo oops >&2; exit 4'], 10)
    assert result.exit_code == 4
    # stdout and stderr are two streams in the engine: their relative order is not kept.
    assert sorted(result.output.splitlines()) == ["hello 65534 /tmp", "oops"]

    began = time.monotonic()
    result = docker_rt.exec(instance.id, ["sleep", "37"], 1.0)
    assert result.exit_code == 124 and "timeout" in result.output
    assert time.monotonic() - began < 4
    assert "sleep 37" not in docker_rt.exec(instance.id, ["ps"], 10).output  # it was killed


def test_logs_remove_and_named_volume_kept(docker_rt, docker_client, busybox_image, make_launch):
    volume = f"{make_launch.project}-data"
    mounts = (Mount(source=volume, target="/data"),)
    script = "for i in 1 2 3 4 5; do echo line$i; done; echo kept > /data/file; sleep 1000"
    try:
        instance = start_sh(docker_rt, make_launch, busybox_image, "logs", script, mounts=mounts)
        wait_for_log(docker_rt, instance.id, "line5")
        assert docker_rt.logs(instance.id, tail=2) == "line4\nline5\n"
        docker_rt.remove(instance.id)  # running: killed first
        assert docker_rt.get(instance.id) is None
        assert docker_rt.instances(make_launch.project) == []
        docker_rt.remove(instance.id)  # already gone: nothing to do
        # The named volume survives its container, with its data.
        # A one-shot job is not restarted after it exits (unless-stopped would restart it).
        reader = start_sh(docker_rt, make_launch, busybox_image, "reader", "cat /data/file", mounts=mounts, one_shot=True)
        assert docker_rt.wait_exit(reader.id, 10) == 0
        time.sleep(0.5)
        assert docker_client.api.inspect_container(reader.id)["RestartCount"] == 0
        assert docker_rt.logs(reader.id) == "kept\n"
        docker_rt.remove(reader.id)
    finally:
        for inst in docker_rt.instances(make_launch.project):
            docker_rt.remove(inst.id)
        docker_client.volumes.get(volume).remove(force=True)


def test_read_only_bind_mount(docker_rt, busybox_image, make_launch, tmp_path):
    (tmp_path / "settings").write_text("x=1\n")
    mounts = (Mount(source=str(tmp_path), target="/etc/svc", read_only=True),)
    instance = start_sh(docker_rt, make_launch, busybox_image, "bind", "sleep 1000", mounts=mounts)
    assert docker_rt.exec(instance.id, ["cat", "/etc/svc/settings"], 10).output == "x=1\n"
    assert docker_rt.exec(instance.id, ["touch", "/etc/svc/new"], 10).exit_code != 0
    assert not (tmp_path / "new").exists()


def test_errors_are_one_line(docker_rt, busybox_image, make_launch):
    assert docker_rt.has_image(busybox_image)
    assert not docker_rt.has_image("netapi:9.9")
    with pytest.raises(BadInput) as missing:
        docker_rt.start(make_launch("nope", "netapi:9.9", None))
    assert str(missing.value) == "image 'netapi:9.9' is not present (no registry is used: build it first)"

    launch = make_launch("dup", busybox_image, ("sleep", "1000"))
    docker_rt.start(launch)
    with pytest.raises(OperationFailed, match="already in use") as dup:
        docker_rt.start(launch)
    assert "\n" not in str(dup.value)

    with pytest.raises(OperationFailed) as bad_start:
        docker_rt.start(make_launch("badcmd", busybox_image, ("/no/such/program",)))
    assert "\n" not in str(bad_start.value) and "badcmd" in str(bad_start.value)
    assert [i.name for i in docker_rt.instances(make_launch.project)] == [launch.name]  # no "created" leftover

    assert docker_rt.get("0123456789ab-no-such-container") is None
    with pytest.raises(OperationFailed, match="no such container"):
        docker_rt.signal("0123456789ab-no-such-container", "SIGTERM")


def test_auto_chooses_docker_when_an_engine_answers(docker_client, tmp_path):
    from hitless.runtime.select import open_runtime

    notes: list[str] = []
    runtime = open_runtime("auto", tmp_path, {}, on_note=notes.append)
    try:
        assert runtime.kind == "docker" and isinstance(runtime, Runtime)
        assert notes == ["runtime auto: a Docker engine answers; using Docker"]
    finally:
        runtime.close()
