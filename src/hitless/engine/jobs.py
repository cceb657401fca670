"""One-shot jobs: a migration phase or a backup helper, run to completion as an instance of an
image, its exit code and output captured, then removed.

Jobs carry the project label `<project>.jobs`, which no spec project can have (a dot is not
allowed in project names), so they never appear among a project's instances.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hitless.engine.desired import launch_spec
from hitless.errors import OperationFailed
from hitless.runtime.base import ExecResult, Mount, Runtime
from hitless.runtime.stop import graceful_stop
from hitless.spec.tree import DesiredTree, ServiceNode

JOB_STOP_GRACE = 10.0
OUTPUT_EVERY = 1.0  # seconds between two reads of a job's output, when it is followed
OUTPUT_TAIL = 100_000  # lines read back each time


def jobs_project(project: str) -> str:
    """The label project of a project's jobs."""
    return f"{project}.jobs"


def run_job(tree: DesiredTree, runtime: Runtime, node: ServiceNode, image: str, argv: tuple[str, ...], what: str,
            timeout: float, *, slot: int = 0, mounts: tuple[Mount, ...] = (), environment: dict[str, str] | None = None,
            on_output: Callable[[str], None] | None = None) -> ExecResult:
    """Run `argv` in a one-shot instance of `image` with the service's environment, volumes and
    network (so it reaches what the service reaches), on the host of its slot `slot`, plus extra
    mounts and environment; each line it prints goes to `on_output` within about a second."""
    return run_project_job(tree.project, tree.base_dir, runtime, node, image, argv, what, timeout, slot=slot,
                           mounts=mounts, environment=environment, on_output=on_output)


def run_project_job(project: str, base_dir: Path, runtime: Runtime, node: ServiceNode, image: str,
                    argv: tuple[str, ...], what: str, timeout: float, *, slot: int = 0, mounts: tuple[Mount, ...] = (),
                    environment: dict[str, str] | None = None,
                    on_output: Callable[[str], None] | None = None) -> ExecResult:
    """`run_job` for a project known by its name and directory."""
    base = launch_spec(project, node, slot=slot, generation=0, port=0, base_dir=base_dir)
    launch = dataclasses.replace(
        base,
        name=f"{project}-{node.path.replace('/', '-')}-{what}-{uuid.uuid4().hex[:6]}",
        image=image,
        command=tuple(argv),
        environment={**base.environment, **(environment or {})},
        mounts=base.mounts + mounts,
        labels=dataclasses.replace(base.labels, project=jobs_project(project), image=image),
        one_shot=True,
    )
    instance = runtime.start(launch)
    try:
        code = _wait(runtime, instance.id, timeout, on_output)
        if code is None:
            graceful_stop(runtime, instance.id, signal_name="SIGTERM", grace=JOB_STOP_GRACE)
            raise OperationFailed(f"{what} of {node.path} did not finish within {timeout:.0f}s; stopped it")
        return ExecResult(code, runtime.logs(instance.id, tail=200))
    finally:
        runtime.remove(instance.id)


def _wait(runtime: Runtime, instance_id: str, timeout: float, on_output: Callable[[str], None] | None) -> int | None:
    if on_output is None:
        return runtime.wait_exit(instance_id, timeout)
    deadline, seen = time.monotonic() + timeout, 0
    while True:
        code = runtime.wait_exit(instance_id, max(0.0, min(OUTPUT_EVERY, deadline - time.monotonic())))
        lines = runtime.logs(instance_id, tail=OUTPUT_TAIL).splitlines()
        for line in lines[seen:]:
            on_output(line)
        seen = len(lines)
        if code is not None or time.monotonic() >= deadline:
            return code


def remove_stale_jobs(runtime: Runtime, project: str) -> int:
    """Remove jobs a killed run left behind; how many."""
    stale = runtime.instances(jobs_project(project))
    for job in stale:
        runtime.remove(job.id)
    return len(stale)
