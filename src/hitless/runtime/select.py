"""Choosing a runtime: Docker when asked (or when one answers, for "auto"), else processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from hitless.errors import BadInput, RuntimeUnavailable
from hitless.runtime.base import Runtime
from hitless.runtime.process import ProcessImage, ProcessRuntime
from hitless.spec.model import Host

KINDS = ("docker", "process", "auto")
AUTO_PING_TIMEOUT = 2  # seconds


def open_runtime(
    kind: str,
    state_dir: Path,
    process_images: Mapping[str, ProcessImage],
    *,
    on_note: Callable[[str], None] | None = None,
    hosts: Mapping[str, Host] | None = None,
) -> Runtime:
    """Open the runtime of this kind; the result's `kind` says which one was chosen.

    "docker" raises RuntimeUnavailable when no engine answers; "auto" uses Docker when an
    engine answers within about 2 s, else local processes, and tells `on_note` why. With
    `hosts` (the spec's), Docker on this machine and on each host (their engines are reached
    when first needed).
    """
    if kind not in KINDS:
        raise BadInput(f"unknown runtime {kind!r} (choose one of: {', '.join(KINDS)})")
    if hosts:
        if kind == "process":
            raise BadInput("a spec with hosts runs on Docker engines: drop --runtime process (or runtime: process)")
        from hitless.runtime.docker import DockerRuntime
        from hitless.runtime.hosts import HostsRuntime

        return HostsRuntime(DockerRuntime(), hosts, note=on_note or (lambda _: None))
    if kind == "process":
        return ProcessRuntime(state_dir, process_images)
    from hitless.runtime.docker import DockerRuntime  # the SDK is imported only when needed

    if kind == "docker":
        return DockerRuntime()
    try:
        runtime: Runtime = DockerRuntime(ping_timeout=AUTO_PING_TIMEOUT)
    except RuntimeUnavailable as exc:
        if on_note is not None:
            on_note(f"runtime auto: {exc}; using local processes")
        return ProcessRuntime(state_dir, process_images)
    if on_note is not None:
        on_note("runtime auto: a Docker engine answers; using Docker")
    return runtime
