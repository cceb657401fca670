"""`up` and `down`: bring a first deployment to the spec, or take it all away, gracefully.

`up` creates missing slots, replaces slots whose instance died, removes surplus ones and puts
instances behind their frontends. It does not replace running instances whose image or config
changed: that is an upgrade, with its own zero-downtime path, and `up` says so instead.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from hitless.engine.adopt import Handover, Takeover, without_frontends
from hitless.engine.desired import config_hash, slot_record
from hitless.engine.migrate import MigrationFailed, needs_bootstrap, run_phase
from hitless.engine.plan import REASON_NOT_RUNNING, SlotChange, make_plan
from hitless.engine.proxyctl import ProxyControl, fronted
from hitless.engine.rollout import GateFailed, Rollout
from hitless.engine.steps import Emit, Event, StepRunner
from hitless.errors import BadInput
from hitless.runtime.base import ForeignContainer, Instance, Runtime
from hitless.runtime.stop import graceful_stop
from hitless.spec.model import Stop
from hitless.spec.tree import DesiredTree
from hitless.state.journal import Journal


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What `up` did."""

    started: tuple[Instance, ...]
    removed: int
    unchanged: int
    needs_upgrade: tuple[SlotChange, ...]  # running slots whose image or config differ
    handovers: tuple[Handover, ...] = ()  # services taken over from docker-compose (`up --adopt`)


def up(tree: DesiredTree, runtime: Runtime, journal: Journal, paths: tuple[str, ...], emit: Emit,
       takeovers: Mapping[str, tuple[ForeignContainer, ...]] | None = None) -> UpResult:
    """Converge the selected subtrees to a first deployment. When a service has a frontend, the
    proxy is reconciled first: started (supervised) if it is not running, handed over if it is
    another version, its pools refilled with every running, healthy instance. Raises BadInput
    before anything starts when an image is missing, GateFailed when a new instance does not
    become healthy (it is removed; its log tail is in the error), and MigrationFailed when a
    service's bootstrap (run before its first instance) fails.

    `takeovers` (service path → its docker-compose containers) takes those services over from
    compose (engine/adopt.py): their frontends are bound once the compose containers let go of
    their ports, the proxy's other frontends first."""
    takeovers = dict(takeovers or {})
    observed = runtime.instances(tree.project)
    plan = make_plan(tree, observed, paths)
    nodes = {n.path: n for n in tree.services()}
    to_start = [c for c in plan.changes if c.action == "create" or (c.action == "replace" and REASON_NOT_RUNNING in c.reasons)]
    missing = sorted({c.image for c in to_start if c.image and not runtime.has_image(c.image)})
    if missing:
        raise BadInput(f"image(s) not present on this {runtime.kind} runtime: {', '.join(missing)} "
                       "(build them first; no registry is used)")

    deployment = journal.begin_deployment(tree.project, " ".join(("up", *(["--adopt"] if takeovers else []), *paths)))
    steps = StepRunner(journal, deployment, emit, threading.Event())
    selected = tree.select(paths)
    proxy = ProxyControl(tree, runtime, emit) if fronted(tree) else None
    if proxy is not None:
        now = without_frontends(tree, set(takeovers))  # their ports are free only once compose lets go
        steps.run("proxy", proxy.where, functools.partial(proxy.reconcile, now, runtime),
                  "the proxy runs, supervised, and its pools hold what runs")
    rollout = Rollout(tree.project, tree.base_dir, runtime, journal, steps, proxy, replace=False)
    taking = Takeover(tree.project, runtime, steps, rollout, proxy)
    handovers: list[Handover] = []
    try:
        for node in selected:
            if needs_bootstrap(node, observed):
                steps.run("bootstrap", node.path, functools.partial(run_phase, tree, runtime, node, "bootstrap"),
                          f"bootstrap of {node.path} ({node.service.image}): its first instance", node.path)
            if node.path in takeovers:
                handovers.append(taking.service(node, takeovers[node.path]))
                emit(Event("phase", f"adopted: {handovers[-1].describe()}", fields={"handover": handovers[-1].to_dict()}))
            else:
                rollout.service(node)
        strays = [c for c in plan.of("remove") if c.service_path not in nodes and c.current]
        by_id = {i.id: i for i in observed}
        stop_and_remove(runtime, [(by_id[c.current.instance_id], Stop()) for c in strays
                                  if c.current is not None and c.current.instance_id in by_id], emit)
    except (GateFailed, MigrationFailed) as exc:
        journal.finish_deployment(deployment, "failed", str(exc))
        raise
    finally:
        rollout.close()
    wanted = {n.path: (n, (n.service.image, config_hash(n))) for n in selected}
    good = [slot_record(wanted[i.labels.service_path][0], i) for i in runtime.instances(tree.project)
            if i.running and i.labels.service_path in wanted
            and (i.labels.image, i.labels.config_hash) == wanted[i.labels.service_path][1]]
    journal.finish_deployment(deployment, "succeeded", good=good)
    return UpResult(tuple(i for _, i in rollout.started), len(plan.of("remove")),
                    len(plan.of("keep")), tuple(rollout.needs_upgrade), tuple(handovers))


def stop_and_remove(runtime: Runtime, victims: list[tuple[Instance, Stop]], emit: Emit) -> None:
    """Gracefully stop instances (each its own signal and grace) in parallel, then remove them."""
    def one(victim: tuple[Instance, Stop]) -> None:
        inst, stop = victim
        if inst.running:
            graceful_stop(runtime, inst.id, signal_name=stop.signal, grace=stop.grace, ceiling=stop.kill_after,
                          on_event=lambda level, msg: emit(Event(level, f"{inst.name}: {msg}")))
        runtime.remove(inst.id)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(victims)))) as pool:
        list(pool.map(one, victims))


def down(tree: DesiredTree, runtime: Runtime, paths: tuple[str, ...], emit: Emit) -> int:
    """Gracefully stop and remove every instance of the selected subtrees; with no selection,
    the whole project and its proxy. Named volumes are kept: they hold data. Returns the count."""
    observed = runtime.instances(tree.project)
    if paths:
        wanted = {n.path for n in tree.select(paths)}
        observed = [i for i in observed if i.labels.service_path in wanted]
    nodes = {n.path: n for n in tree.services()}
    stop_and_remove(runtime, [(i, nodes[i.labels.service_path].service.stop if i.labels.service_path in nodes else Stop())
                              for i in observed], emit)
    if not paths and ProxyControl(tree, runtime, emit).stop():
        emit(Event("info", "proxy stopped"))
    return len(observed)
