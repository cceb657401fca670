"""`up` and `down`: bring a first deployment to the spec, or take it all away, gracefully.

`up` creates missing slots, replaces slots whose instance died, and removes surplus ones. It does
not replace running instances whose image or config changed: that is an upgrade, with its own
zero-downtime path, and `up` says so instead of restarting anything.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from hitless.engine.desired import allocate_port, launch_spec, ports_in_use, slot_record
from hitless.engine.health import CheckResult, wait_healthy
from hitless.engine.plan import REASON_NOT_RUNNING, Plan, SlotChange, make_plan
from hitless.errors import BadInput, OperationFailed
from hitless.runtime.base import Instance, Runtime
from hitless.runtime.stop import graceful_stop
from hitless.spec.model import Stop
from hitless.spec.tree import DesiredTree, ServiceNode
from hitless.state.journal import Journal

Report = Callable[[str, str], None]  # (level, message); level is "info", "warning" or "error"


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What `up` did."""

    plan: Plan
    started: tuple[Instance, ...]
    removed: tuple[str, ...]  # instance names
    needs_upgrade: tuple[SlotChange, ...]  # running slots whose image or config differ


def _quiet(level: str, message: str) -> None:
    pass


def stop_and_remove(runtime: Runtime, instance: Instance, stop: Stop, report: Report) -> None:
    """Gracefully stop an instance (its stop signal, then as long as its grace allows) and remove it."""
    if instance.running:
        graceful_stop(
            runtime, instance.id, signal_name=stop.signal, grace=stop.grace, ceiling=stop.kill_after,
            on_event=lambda level, msg: report(level, f"{instance.name}: {msg}"),
        )
    runtime.remove(instance.id)


def _start(tree: DesiredTree, runtime: Runtime, journal: Journal, deployment: int, node: ServiceNode,
           slot: int, observed: list[Instance], taken: set[int]) -> Instance:
    gens = [i.labels.generation for i in observed if i.labels.service_path == node.path and i.labels.slot == slot]
    generation = journal.allocate_generation(tree.project, node.path, slot, observed_max=max(gens, default=0))
    port = allocate_port(node, runtime.kind, taken)
    taken.add(port)
    spec = launch_spec(tree.project, node, slot, generation, port, tree.base_dir)
    instance = runtime.start(spec)
    journal.record_slot(deployment, slot_record(node, instance), "create")
    return instance


def up(tree: DesiredTree, runtime: Runtime, journal: Journal, paths: tuple[str, ...] = (), report: Report = _quiet) -> UpResult:
    """Converge the selected subtrees to a first deployment; returns what was done.

    Raises BadInput before anything starts when an image is missing, and OperationFailed when a
    new instance does not become healthy (failed instances are removed; their log tail is in the error).
    """
    observed = runtime.list(tree.project)
    plan = make_plan(tree, observed, paths)
    nodes = {n.path: n for n in tree.services()}
    to_start = [c for c in plan.changes if c.action == "create" or (c.action == "replace" and REASON_NOT_RUNNING in c.reasons)]
    needs_upgrade = tuple(c for c in plan.of("replace") if REASON_NOT_RUNNING not in c.reasons)
    missing = sorted({c.image for c in to_start if c.image and not runtime.has_image(c.image)})
    if missing:
        raise BadInput(f"image(s) not present on this {runtime.kind} runtime: {', '.join(missing)} (build them first; no registry is used)")

    deployment = journal.begin_deployment(tree.project, "up " + " ".join(paths) if paths else "up")
    taken = ports_in_use(observed)
    started: list[tuple[SlotChange, Instance]] = []
    try:
        for change in to_start:
            node = nodes[change.service_path]
            inst = _start(tree, runtime, journal, deployment, node, change.slot, observed, taken)
            report("info", f"started {inst.name} ({node.service.image}) generation {inst.labels.generation}")
            started.append((change, inst))
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(started)))) as pool:
            results: list[CheckResult] = list(pool.map(
                lambda pair: wait_healthy(runtime, pair[1].id, nodes[pair[0].service_path].service.health), started))
    except BaseException:
        journal.finish_deployment(deployment, "interrupted", "stopped while starting instances")
        raise
    failed = [(inst, res) for (_, inst), res in zip(started, results) if not res.ok]
    if failed:
        lines = []
        for inst, res in failed:
            tail = runtime.logs(inst.id, tail=10).rstrip().splitlines()
            lines.append(f"{inst.name} did not become healthy: {res.detail}")
            lines += [f"  | {line}" for line in tail]
            runtime.remove(inst.id)
        journal.finish_deployment(deployment, "failed", lines[0])
        raise OperationFailed("\n".join(lines))
    for _, inst in started:
        report("info", f"{inst.name} is healthy")

    removed = _remove_changes(plan, runtime, nodes, observed, report)
    by_id = {i.id: i for i in observed}
    good = [slot_record(nodes[c.service_path], i) for c, i in started]
    good += [slot_record(nodes[c.service_path], by_id[c.current.instance_id]) for c in plan.of("keep") if c.current]
    journal.finish_deployment(deployment, "succeeded", good=good)
    return UpResult(plan, tuple(i for _, i in started), removed, needs_upgrade)


def _remove_changes(plan: Plan, runtime: Runtime, nodes: dict[str, ServiceNode], observed: list[Instance],
                    report: Report) -> tuple[str, ...]:
    by_id = {i.id: i for i in observed}
    doomed = [c for c in plan.changes if c.current and (c.action == "remove" or REASON_NOT_RUNNING in c.reasons)]
    victims = [(by_id[c.current.instance_id], nodes[c.service_path].service.stop if c.service_path in nodes else Stop())
               for c in doomed if c.current.instance_id in by_id]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(victims)))) as pool:
        list(pool.map(lambda v: stop_and_remove(runtime, v[0], v[1], report), victims))
    return tuple(v[0].name for v in victims)


def down(tree: DesiredTree, runtime: Runtime, paths: tuple[str, ...] = (), report: Report = _quiet) -> list[str]:
    """Gracefully stop and remove every instance of the selected subtrees (all of the project when
    none is selected), in parallel. Named volumes are kept: they hold data."""
    observed = runtime.list(tree.project)
    if paths:
        wanted = {n.path for n in tree.select(paths)}
        observed = [i for i in observed if i.labels.service_path in wanted]
    nodes = {n.path: n for n in tree.services()}
    victims = [(i, nodes[i.labels.service_path].service.stop if i.labels.service_path in nodes else Stop()) for i in observed]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(victims)))) as pool:
        list(pool.map(lambda v: stop_and_remove(runtime, v[0], v[1], report), victims))
    return [i.name for i, _ in victims]
