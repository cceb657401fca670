"""Choosing a runtime, and what happens when no Docker engine answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitless.errors import BadInput, ExitStatus, RuntimeUnavailable
from hitless.runtime.base import Runtime
from hitless.runtime.process import ProcessImage, ProcessRuntime
from hitless.runtime.select import open_runtime
from hitless.runtime.stop import graceful_stop

IMAGES = {"sh:1": ProcessImage(entrypoint=("/bin/sh", "-c"))}


def test_process_runtime_is_a_runtime(tmp_path: Path) -> None:
    runtime = open_runtime("process", tmp_path, IMAGES)
    assert isinstance(runtime, ProcessRuntime) and isinstance(runtime, Runtime)
    assert runtime.kind == "process" and runtime.has_image("sh:1")
    assert runtime.instances("anything") == []


def test_unknown_kind_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown runtime 'podman'"):
        open_runtime("podman", tmp_path, IMAGES)


def test_no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(RuntimeUnavailable) as failed:
        open_runtime("docker", tmp_path, IMAGES)
    assert failed.value.exit_status == ExitStatus.RUNTIME_UNAVAILABLE
    assert "\n" not in str(failed.value) and str(failed.value).startswith("no Docker engine answers")
    notes: list[str] = []
    runtime = open_runtime("auto", tmp_path, IMAGES, on_note=notes.append)
    assert runtime.kind == "process"
    assert notes and "using local processes" in notes[0]


def test_docker_runtime_with_a_client_that_cannot_reach_an_engine(tmp_path: Path) -> None:
    import docker

    from hitless.runtime.docker import DockerRuntime

    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41", timeout=2)
    with pytest.raises(RuntimeUnavailable):
        DockerRuntime(client)
    client.close()


def test_graceful_stop_checks_its_durations(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path, IMAGES)
    with pytest.raises(BadInput, match="ceiling"):
        graceful_stop(runtime, "x", grace=10, ceiling=5)
    with pytest.raises(BadInput, match="grace"):
        graceful_stop(runtime, "x", grace=-1)
    assert graceful_stop(runtime, "not-there", grace=1).exit_code is None
