"""Schema migration phases, each a one-shot job of the service's NEW image."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hitless.engine.jobs import run_job
from hitless.errors import OperationFailed
from hitless.runtime.base import Instance, Runtime
from hitless.spec.model import Migrations
from hitless.spec.tree import DesiredTree, ServiceNode

PHASES = ("bootstrap", "expand", "contract", "offline", "copy", "cutover")


class MigrationFailed(OperationFailed):
    """A migration phase exited non-zero; carries its log tail."""

    def __init__(self, service_path: str, phase: str, detail: str, log_tail: list[str]):
        super().__init__(f"{phase} migration of {service_path} failed: {detail}")
        self.phase = phase
        self.log_tail = log_tail

    def lines(self) -> list[str]:
        return [str(self), *(f"  | {line}" for line in self.log_tail)]


def phase_argv(mig: Migrations | None, phase: str) -> tuple[str, ...] | None:
    """The command of a phase (`copy` and `cutover` are the online migration's)."""
    if mig is None:
        return None
    if phase in ("copy", "cutover"):
        if mig.online is None:
            return None
        return mig.online.copy_command if phase == "copy" else mig.online.cutover
    return getattr(mig, phase)


def phase_commands(mig: Migrations | None, phases: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The commands of those phases the service has, by phase."""
    found = {phase: phase_argv(mig, phase) for phase in phases}
    return {phase: tuple(argv) for phase, argv in found.items() if argv}


def run_phase(tree: DesiredTree, runtime: Runtime, node: ServiceNode, phase: str,
              on_output: Callable[[str], None] | None = None) -> str:
    """Run one phase as a job of the service's image (the new version); its output, each line
    also given to `on_output` as it comes (progress)."""
    mig = node.service.migrations
    argv = phase_argv(mig, phase)
    if argv is None:
        raise OperationFailed(f"{node.path} has no {phase} migration")
    result = run_job(tree, runtime, node, node.service.image, tuple(argv), phase, mig.timeout,  # type: ignore[union-attr]
                     on_output=on_output)
    if result.exit_code != 0:
        raise MigrationFailed(node.path, phase, f"exit code {result.exit_code}", result.output.rstrip().splitlines()[-15:])
    return result.output


def needs_bootstrap(node: ServiceNode, observed: Iterable[Instance]) -> bool:
    """Whether the service has a bootstrap phase and no instance among `observed` (its first deployment)."""
    mig = node.service.migrations
    return (mig is not None and mig.bootstrap is not None and node.service.replicas > 0
            and not any(i.labels.service_path == node.path for i in observed))


def older_generations(observed: Iterable[Instance], node: ServiceNode) -> list[str]:
    """Names of the service's instances that do not run its image: contract must wait for them."""
    return [i.name for i in observed if i.labels.service_path == node.path and i.labels.image != node.service.image]
