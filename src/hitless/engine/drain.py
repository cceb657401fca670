"""A service's own drain (spec `drain`): what tells it to stop taking work before its old
instance stops, when it has none left, and to take work again once its new instance is healthy.

The proxy drains what it fronts; this is for what it does not: RPC consumers, host-bound agents
(a nova-compute told by its API to take no new builds, until no server of its host is busy).
Every command is one journaled step, so `hitless resume` after a kill runs them again: they
must be idempotent.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from pathlib import Path

from hitless.engine.jobs import run_project_job
from hitless.engine.steps import StepRunner
from hitless.errors import OperationFailed
from hitless.runtime.base import Instance, Runtime
from hitless.spec.tree import ServiceNode

OUTPUT_LINES = 3  # of a failed command, in its error


class ServiceDrain:
    """Runs the drain commands of a project's services."""

    def __init__(self, project: str, base_dir: Path, runtime: Runtime, steps: StepRunner) -> None:
        self.project = project
        self.base_dir = base_dir
        self.runtime = runtime
        self.steps = steps

    def before_stop(self, node: ServiceNode, old: Instance) -> None:
        """`before`, each in turn, then `until` every `interval` until it says drained (a
        warning, and the stop goes ahead, when `deadline` passes first)."""
        drain = node.service.drain
        for argv in drain.before:
            self.steps.run("drain-before", old.name, functools.partial(self._must, node, old, argv, "drain-before"),
                           f"{old.name}: {' '.join(argv)}", node.path)
        if drain.until is not None:
            drained = self.steps.run("drain-wait", old.name, functools.partial(self._wait, node, old),
                                     f"wait until {old.name} is drained: {' '.join(drain.until)} "
                                     f"(every {drain.interval:g}s, up to {drain.deadline:.0f}s)", node.path)
            if not drained:
                self.steps.warning(f"{old.name}: not drained after {drain.deadline:.0f}s; stopping it all the same")

    def after_start(self, node: ServiceNode, new: Instance) -> None:
        """`after`, each in turn, once a new instance passed its gate."""
        for argv in node.service.drain.after:
            self.steps.run("drain-after", new.name, functools.partial(self._must, node, new, argv, "drain-after"),
                           f"{new.name}: {' '.join(argv)}", node.path)

    def _wait(self, node: ServiceNode, old: Instance) -> bool:
        drain = node.service.drain
        assert drain.until is not None
        deadline = time.monotonic() + drain.deadline
        while True:
            code, _ = self._run(node, old, drain.until, "drain-wait", max(1.0, deadline - time.monotonic()))
            if code == 0:
                return True
            if time.monotonic() + drain.interval > deadline:
                return False
            self.steps.check()  # Ctrl-C between two polls stops here, resumable
            time.sleep(drain.interval)

    def _must(self, node: ServiceNode, inst: Instance, argv: tuple[str, ...], what: str) -> None:
        code, output = self._run(node, inst, argv, what, node.service.drain.deadline)
        if code != 0:
            tail = " / ".join(output.strip().splitlines()[-OUTPUT_LINES:])
            raise OperationFailed(f"{what} of {inst.name} ({' '.join(argv)}) exited with {code}: {tail}")

    def _run(self, node: ServiceNode, inst: Instance, argv: tuple[str, ...], what: str,
             timeout: float) -> tuple[int, str]:
        drain = node.service.drain
        env = {**drain.environment, "HITLESS_INSTANCE": inst.name, "HITLESS_HOST": inst.host_name or ""}
        if drain.where == "host":
            try:
                done = subprocess.run(list(argv), cwd=self.base_dir, capture_output=True, text=True, timeout=timeout,
                                      env={**os.environ, **env}, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return 124, f"{argv[0]} did not finish within {timeout:.0f}s"
            except OSError as exc:
                return 127, f"cannot run {argv[0]!r}: {exc.strerror or exc}"
            return done.returncode, done.stdout + done.stderr
        result = run_project_job(self.project, self.base_dir, self.runtime, node, drain.image or node.service.image,
                                 argv, what, timeout, slot=inst.labels.slot, environment=env)
        return result.exit_code, result.output
