"""One-shot jobs: a migration phase or a backup helper, run to completion as an instance of an
image, its exit code and output captured, then removed.

Jobs carry the project label `<project>.jobs`, which no spec project can have (a dot is not
allowed in project names), so they never appear among a project's instances.
"""

from __future__ import annotations

import dataclasses
import uuid

from hitless.engine.desired import launch_spec
from hitless.errors import OperationFailed
from hitless.runtime.base import ExecResult, Mount, Runtime
from hitless.runtime.stop import graceful_stop
from hitless.spec.tree import DesiredTree, ServiceNode

JOB_STOP_GRACE = 10.0


def jobs_project(project: str) -> str:
    """The label project of a project's jobs."""
    return f"{project}.jobs"


def run_job(tree: DesiredTree, runtime: Runtime, node: ServiceNode, image: str, argv: tuple[str, ...], what: str,
            timeout: float, *, mounts: tuple[Mount, ...] = (), environment: dict[str, str] | None = None) -> ExecResult:
    """Run `argv` in a one-shot instance of `image` with the service's environment, volumes and
    network (so it reaches what the service reaches), plus extra mounts and environment."""
    base = launch_spec(tree.project, node, slot=0, generation=0, port=0, base_dir=tree.base_dir)
    launch = dataclasses.replace(
        base,
        name=f"{tree.project}-{node.path.replace('/', '-')}-{what}-{uuid.uuid4().hex[:6]}",
        image=image,
        command=tuple(argv),
        environment={**base.environment, **(environment or {})},
        mounts=base.mounts + mounts,
        labels=dataclasses.replace(base.labels, project=jobs_project(tree.project), image=image),
        one_shot=True,
    )
    instance = runtime.start(launch)
    try:
        code = runtime.wait_exit(instance.id, timeout)
        if code is None:
            graceful_stop(runtime, instance.id, signal_name="SIGTERM", grace=JOB_STOP_GRACE)
            raise OperationFailed(f"{what} of {node.path} did not finish within {timeout:.0f}s; stopped it")
        return ExecResult(code, runtime.logs(instance.id, tail=200))
    finally:
        runtime.remove(instance.id)


def remove_stale_jobs(runtime: Runtime, project: str) -> int:
    """Remove jobs a killed run left behind; how many."""
    stale = runtime.list(jobs_project(project))
    for job in stale:
        runtime.remove(job.id)
    return len(stale)
