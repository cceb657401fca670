"""Choosing a runtime: Docker when asked (or when one answers, for "auto"), else processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from hitless.errors import BadInput, RuntimeUnavailable
from hitless.runtime.base import Runtime
from hitless.runtime.process import ProcessImage, ProcessRuntime

KINDS = ("docker", "process", "auto")
AUTO_PING_TIMEOUT = 2.0


def open_runtime(
    kind: str,
    state_dir: Path,
    process_images: Mapping[str, ProcessImage],
    *,
    on_note: Callable[[str], None] | None = None,
) -> Runtime:
    """Open the runtime of this kind; the result's `kind` says which one was chosen.

    "docker" raises RuntimeUnavailable when no engine answers; "auto" uses Docker when an
    engine answers within about 2 s, else local processes, and tells `on_note` why.
    """
    if kind not in KINDS:
        raise BadInput(f"unknown runtime {kind!r} (choose one of: {', '.join(KINDS)})")
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
