"""An upgrade (or a rollback) from start to end: journaled, watched, rolled back on failure,
and resumable after the process running it was killed at any moment."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hitless.engine.desired import config_hash, slot_record
from hitless.engine.health import check_once
from hitless.engine.jobs import remove_stale_jobs
from hitless.engine.migrate import MigrationFailed, needs_bootstrap, older_generations, run_phase
from hitless.engine.plan import REASON_IMAGE, make_plan, plan_service
from hitless.engine.proxyctl import ProxyControl, fronted
from hitless.engine.rollout import GateFailed, Rollout
from hitless.engine.snapshots import Snapshots, covered
from hitless.engine.steps import Emit, Event, Interrupted, StepRunner
from hitless.errors import BadInput, OperationFailed
from hitless.runtime.base import Runtime
from hitless.spec import parse_spec
from hitless.spec.model import Service
from hitless.spec.tree import DesiredTree, Node, ServiceNode, SetNode
from hitless.state.journal import Journal, SlotRecord


class UpgradeFailed(OperationFailed):
    """The change failed and was rolled back; says why, with the failing instance's log tail."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0])
        self._lines = lines

    def lines(self) -> list[str]:
        return self._lines


@dataclasses.dataclass(frozen=True)
class UpgradeRequest:
    """What was asked, kept in the journal so a resumed run carries on exactly as asked."""

    kind: str  # "upgrade" or "rollback"
    spec_text: str
    source: str
    base_dir: str
    paths: tuple[str, ...] = ()
    images: dict[str, str] = dataclasses.field(default_factory=dict)  # service path → repo:tag
    until: str | None = None
    services: dict[str, str] = dataclasses.field(default_factory=dict)  # service path → spec JSON (rollback)
    snapshot: int | None = None  # restore this snapshot in a held window ("restore", "rollback --restore-db")
    snapshot_set: str | None = None
    hosts: tuple[str, ...] = ()  # only the slots placed on these hosts ("computes at their own pace")

    def to_json(self) -> dict[str, Any]:
        """The form stored in the journal."""
        return {**dataclasses.asdict(self), "paths": list(self.paths), "hosts": list(self.hosts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpgradeRequest:
        """Read back what `to_json` stored."""
        return cls(**{**data, "paths": tuple(data.get("paths", ())), "hosts": tuple(data.get("hosts", ()))})

    def tree(self) -> DesiredTree:
        """The desired tree: the spec as it was read, with --image overrides and, for a rollback,
        the services as their known good state had them."""
        tree = with_images(parse_spec(self.spec_text, self.source, Path(self.base_dir)), self.images)
        if not self.services:
            return tree
        nodes = {n.path: n for n in tree.services()}
        return _tree_with(tree, [dataclasses.replace(nodes[p], service=Service.model_validate_json(j))
                                 for p, j in self.services.items() if p in nodes])


def with_images(tree: DesiredTree, images: dict[str, str]) -> DesiredTree:
    """The tree with some services' images replaced (`--image SERVICE=REPO:TAG`)."""
    if not images:
        return tree
    known = {s.path: s for s in tree.services()}
    by_name = defaultdict(list)
    for s in known.values():
        by_name[s.name].append(s.path)
    resolved: dict[str, str] = {}
    for key, image in images.items():
        paths = [key] if key in known else by_name.get(key, [])
        if len(paths) != 1:
            raise BadInput(f"--image {key}={image}: " + ("ambiguous service name" if paths else "no such service")
                           + f" (services: {', '.join(known)})")
        resolved[paths[0]] = image

    def rebuild(node: SetNode) -> SetNode:
        children: list[Node] = []
        for child in node.children:
            if isinstance(child, SetNode):
                children.append(rebuild(child))
            elif child.path in resolved:
                try:
                    service = Service.model_validate({**child.service.model_dump(), "image": resolved[child.path]})
                except ValidationError as exc:
                    raise BadInput(f"--image {child.path}={resolved[child.path]}: {exc.errors()[0]['msg']}") from None
                children.append(dataclasses.replace(child, service=service))
            else:
                children.append(child)
        return dataclasses.replace(node, children=tuple(children))

    return dataclasses.replace(tree, root=rebuild(tree.root))


def selected_services(tree: DesiredTree, paths: tuple[str, ...], until: str | None) -> list[ServiceNode]:
    """The services to converge, in upgrade order; with `until`, only up to that stage."""
    chosen = tree.select(paths)
    if until is None:
        return chosen
    stage = {s.path for s in tree.select([until])}
    if not stage & {s.path for s in chosen}:
        raise BadInput(f"--until {until}: not among the services being upgraded")
    last = max(i for i, s in enumerate(chosen) if s.path in stage)
    return chosen[: last + 1]


class Engine:
    """Runs upgrades and rollbacks of one project."""

    def __init__(self, tree: DesiredTree, runtime: Runtime, journal: Journal, emit: Emit,
                 stop_requested: threading.Event | None = None, state_dir: Path | None = None):
        self.state_dir = state_dir or tree.base_dir / ".hitless"
        self.tree = tree
        self.runtime = runtime
        self.journal = journal
        self.emit = emit
        self.stop_requested = stop_requested or threading.Event()

    # -- entry points -------------------------------------------------------------------

    def reconcile_proxy(self) -> None:
        """Before anything else: when a service has a frontend, the proxy runs (supervised, at
        the installed version) and its pools hold every running, healthy instance, whatever
        image it runs (an `--image` deployment included), and nothing else."""
        if fronted(self.tree):
            ProxyControl(self.tree, self.runtime, self.emit).reconcile(self.tree, self.runtime)

    def resume_unfinished(self) -> bool:
        """Finish (or finish rolling back) a run that was killed or interrupted; False when none."""
        # Under the project lock no job of ours runs: any left was a killed run's.
        stale = remove_stale_jobs(self.runtime, self.tree.project)
        if stale:
            self.emit(Event("info", f"removed {stale} one-shot job(s) a killed run left behind"))
        run = self.journal.unfinished(self.tree.project)
        if run is None:
            return False
        if not run.request:
            self.journal.finish_deployment(run.id, "failed", "interrupted; `up` converges it again")
            return False
        request = UpgradeRequest.from_json(run.request)
        self.emit(Event("phase", f"resuming deployment {run.id} ({run.command}, {run.phase}) "
                                 f"left unfinished at {run.started_at}"))
        self.journal.set_deployment(run.id, status="running")
        if run.phase == "rollback" and request.kind == "upgrade":
            self._rollback_after_failure(run.id, request, ["resumed: the run was rolling back when it stopped"])
        else:
            self._run(run.id, request)
        return True

    def run(self, request: UpgradeRequest) -> int:
        """Start and carry out a new upgrade or rollback; returns the deployment id."""
        tree = request.tree()
        for node in self._targets(request, tree):
            if not self.runtime.has_image(node.service.image):
                raise BadInput(f"{node.path}: image {node.service.image} is not present on this {self.runtime.kind} "
                               "runtime (build it first; no registry is used)")
        command = f"{request.kind} {' '.join(request.paths)}".strip()
        deployment = self.journal.begin_deployment(self.tree.project, command, request.to_json())
        if request.kind == "upgrade":
            self._snapshot_before(tree, self._targets(request, tree), deployment)
        self._run(deployment, request)
        return deployment

    def _snapshot_before(self, tree: DesiredTree, targets: list[ServiceNode], deployment: int) -> None:
        """Snapshot every set whose services this run changes, before anything changes.
        A snapshot that fails ends the run there: nothing was changed."""
        changing = {c.service_path for c in plan_for_tree(tree, self.runtime, targets).changes if c.action != "keep"}
        steps = StepRunner(self.journal, deployment, self.emit, self.stop_requested)
        snapshots = Snapshots(tree, self.runtime, self.journal, self.state_dir / "snapshots")
        for key in tree.spec.snapshots:
            if any(n.path in changing for n in covered(tree, key)):
                try:
                    snap = steps.run("snapshot", key, functools.partial(snapshots.take, key, deployment),
                                     f"snapshot {key} before any change")
                except BaseException as exc:
                    self.journal.finish_deployment(deployment, "failed", f"snapshot of {key} failed: {exc}")
                    raise
                self.emit(Event("info", f"snapshot {snap.id} of {key}: {snap.size} bytes in {snap.path}",
                                fields={"snapshot": snap.id, "revision": snap.revision}))

    # -- the run ------------------------------------------------------------------------

    @staticmethod
    def _targets(request: UpgradeRequest, tree: DesiredTree) -> list[ServiceNode]:
        return selected_services(tree, request.paths, request.until)

    def _run(self, deployment: int, request: UpgradeRequest) -> None:
        tree = request.tree()
        targets = self._targets(request, tree)
        steps = StepRunner(self.journal, deployment, self.emit, self.stop_requested)
        rollout = self._rollout(tree, steps, targets)
        done = {(s.kind, s.target) for s in self.journal.steps(deployment) if s.status == "done"}
        try:
            if request.snapshot is not None:
                snapshots = Snapshots(tree, self.runtime, self.journal, self.state_dir / "snapshots")
                snap = snapshots.find(request.snapshot_set or "", request.snapshot)
                self.emit(Event("phase", f"held window: restore snapshot {snap.id} of {snap.set_path} ({snap.created_at})"))
                rollout.window(targets, lambda: snapshots.restore_data(snap), "restore")
            else:
                order = list(reversed(targets)) if request.kind == "rollback" else targets
                for node in order:
                    self.emit(Event("phase", f"{node.path}: {node.service.update.strategy} to {node.service.image}",
                                    target=node.path))
                    self._converge(tree, rollout, steps, node, request, done)
            failure = self._watch(rollout, targets)
            if failure is None and request.kind == "upgrade":
                self._contract(tree, steps, targets, done, partial=bool(request.hosts))
        except (GateFailed, MigrationFailed) as exc:
            failure = exc.lines()
        except Interrupted:
            rollout.close()
            self.journal.set_deployment(deployment, status="interrupted")
            raise
        except BaseException:
            rollout.close()
            raise
        rollout.close()
        if failure and request.kind == "upgrade":
            self._rollback_after_failure(deployment, request, failure)
        elif failure:
            self.journal.finish_deployment(deployment, "failed", failure[0])
            raise UpgradeFailed(failure)
        else:
            good = self._good_records(tree, targets)
            self.journal.finish_deployment(deployment, "succeeded", good=good)

    def _converge(self, tree: DesiredTree, rollout: Rollout, steps: StepRunner, node: ServiceNode, request: UpgradeRequest,
                  done: set[tuple[str, str]]) -> None:
        """One service: through an offline window when its migration needs one, else expand
        (once per run) and its strategy, host batch by host batch (`update.hosts_serial`), on
        the hosts asked for (all when none)."""
        mig = node.service.migrations if request.kind == "upgrade" else None
        mine = [i for i in self.runtime.instances(tree.project) if i.labels.service_path == node.path]
        changes = plan_service(node, mine)
        new_image = any(c.action == "create" or (c.action == "replace" and REASON_IMAGE in c.reasons) for c in changes)
        if mig is not None and mig.offline is not None and new_image and ("offline", node.path) not in done:
            rollout.window([node], lambda: run_phase(tree, self.runtime, node, "offline"), "offline")
            return
        if mig is not None and mig.online is not None and new_image and ("cutover", node.path) not in done:
            if ("copy", node.path) not in done:
                progress = lambda line: self.emit(Event("info", f"{node.path} copy: {line.strip()}", target=node.path))  # noqa: E731
                steps.run("copy", node.path, lambda: run_phase(tree, self.runtime, node, "copy", progress),
                          f"copy for {node.path} while its old version serves ({node.service.image})", node.path)
            rollout.window([node], lambda: run_phase(tree, self.runtime, node, "cutover"), "cutover")
            return
        if mig is not None and ("bootstrap", node.path) not in done and needs_bootstrap(node, mine):
            steps.run("bootstrap", node.path, lambda: run_phase(tree, self.runtime, node, "bootstrap"),
                      f"bootstrap of {node.path} ({node.service.image}): its first instance", node.path)
        elif mig is not None and mig.expand is not None and new_image and ("expand", node.path) not in done:
            steps.run("expand", node.path, lambda: run_phase(tree, self.runtime, node, "expand"),
                      f"expand migration of {node.path} ({node.service.image})", node.path)
        if not node.hosts:
            rollout.service(node)
            return
        hosts = [h for h in node.hosts if not request.hosts or h in request.hosts]
        size = node.service.update.hosts_serial or len(hosts) or 1
        for first in range(0, len(hosts), size):
            batch = hosts[first:first + size]
            self.emit(Event("phase", f"{node.path}: host(s) {', '.join(batch)}", target=node.path))
            rollout.service(node, hosts=batch)

    def _contract(self, tree: DesiredTree, steps: StepRunner, targets: list[ServiceNode], done: set[tuple[str, str]],
                  partial: bool = False) -> None:
        """Contract migrations, once no instance of an older generation remains: of the service
        itself (after an upgrade of some hosts only, `partial`, older ones elsewhere make it wait,
        not fail), and of what its `contract_after` names, which make it wait: the run that
        upgrades the last of them runs it (a service's contract is looked at whenever one of them
        is upgraded)."""
        chosen = {n.path for n in targets}
        observed = self.runtime.instances(tree.project)
        for node in tree.services():
            mig = node.service.migrations
            if mig is None or mig.contract is None or ("contract", node.path) in done:
                continue
            after = [s for s in tree.select(mig.contract_after) if s.path != node.path]
            if node.path not in chosen and not chosen & {s.path for s in after}:
                continue
            older = older_generations(observed, node)
            if older and node.path in chosen and not partial:
                raise OperationFailed(f"contract migration of {node.path} refused: older instances remain "
                                      f"({', '.join(older)}); `hitless resume` once they are gone")
            older += [name for s in after for name in older_generations(observed, s)]
            if older:
                self.emit(Event("info", f"contract migration of {node.path} waits: {len(older)} instance(s) run an "
                                        f"older image ({', '.join(older[:5])}{', ...' if len(older) > 5 else ''}); "
                                        "it runs with the upgrade of the last of them"))
                continue
            steps.run("contract", node.path, functools.partial(run_phase, tree, self.runtime, node, "contract"),
                      f"contract migration of {node.path}", node.path)

    def _rollout(self, tree: DesiredTree, steps: StepRunner, targets: list[ServiceNode]) -> Rollout:
        proxy = None
        if any(n.service.frontend is not None for n in targets):
            proxy = ProxyControl(tree, self.runtime, self.emit)
            steps.run("proxy", proxy.where, proxy.ensure_running, "make sure the proxy runs")
        return Rollout(tree.project, tree.base_dir, self.runtime, self.journal, steps, proxy)

    def _watch(self, rollout: Rollout, targets: list[ServiceNode]) -> list[str] | None:
        """After the switch: any new instance that exits or turns unhealthy within the watch
        window fails the run. Returns the reason, or None."""
        watched = [(n, i) for n, i in rollout.started]
        if not watched:
            return None
        window = max(n.service.update.watch for n, _ in watched)
        self.emit(Event("phase", f"watching {len(watched)} new instance(s) for {window:.0f}s"))
        failures: Counter[str] = Counter()
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            for node, inst in watched:
                current = self.runtime.get(inst.id)
                if current is None or current.state in ("exited", "dead"):
                    code = current.exit_code if current else None
                    tail = self.runtime.logs(inst.id, tail=15).splitlines() if current else []
                    return [f"{inst.name} exited (code {code}) during the watch window", *(f"  | {line}" for line in tail)]
                result = check_once(self.runtime, current, node.service.health)
                failures[inst.id] = 0 if result.ok else failures[inst.id] + 1
                if failures[inst.id] >= node.service.health.fall:
                    tail = self.runtime.logs(inst.id, tail=15).splitlines()
                    return [f"{inst.name} turned unhealthy during the watch window: {result.detail}",
                            *(f"  | {line}" for line in tail)]
            if self.stop_requested.is_set():
                break
            time.sleep(min(min(n.service.health.interval for n, _ in watched), max(0.0, deadline - time.monotonic())))
        return None

    def _rollback_after_failure(self, deployment: int, request: UpgradeRequest, reason: list[str]) -> None:
        self.journal.set_deployment(deployment, phase="rollback", detail=reason[0])
        self.emit(Event("error", reason[0]))
        self.emit(Event("phase", "rolling back to the last known good state"))
        tree = request.tree()
        failed = selected_services(tree, request.paths, request.until)
        targets = [t[0] for t in (last_good(self.journal, tree, n, avoid=_desired_key(n)) for n in failed) if t is not None]
        steps = StepRunner(self.journal, deployment, self.emit, self.stop_requested)
        rollout = self._rollout(tree, steps, targets)
        try:
            for node in reversed(targets):
                rollout.service(node)
        except Interrupted:
            self.journal.set_deployment(deployment, status="interrupted")
            raise
        finally:
            rollout.close()
        restored = ", ".join(f"{t.path} → {t.service.image}" for t in targets) or "nothing (no known good state)"
        self.journal.finish_deployment(deployment, "rolled-back", reason[0])
        raise UpgradeFailed([*reason, f"rolled back: {restored}"])

    def _good_records(self, tree: DesiredTree, targets: list[ServiceNode]) -> list[SlotRecord]:
        by_path = {n.path: n for n in targets}
        return [slot_record(by_path[i.labels.service_path], i) for i in self.runtime.instances(tree.project)
                if i.running and i.labels.service_path in by_path]


def _desired_key(node: ServiceNode) -> tuple[str, str]:
    return (node.service.image, config_hash(node))


def _node_from(node: ServiceNode, records: list[SlotRecord]) -> ServiceNode:
    service = Service.model_validate_json(records[0].service_json)
    service = Service.model_validate({**service.model_dump(), "replicas": len(records)})
    return dataclasses.replace(node, service=service)


def last_good(journal: Journal, tree: DesiredTree, node: ServiceNode, avoid: tuple[str, str] | None = None,
              generation: int | None = None) -> tuple[ServiceNode, int] | None:
    """The service as its newest known good state had it (other than `avoid`, or the one
    holding `generation`), with the deployment that left it; None when there is none."""
    for deployment, records in journal.good_states(tree.project, node.path):
        keys = {(r.image, r.config_hash) for r in records}
        if generation is not None and generation not in {r.generation for r in records}:
            continue
        if generation is None and avoid is not None and keys == {avoid}:
            continue
        return _node_from(node, records), deployment
    return None


def rollback_targets(tree: DesiredTree, runtime: Runtime, journal: Journal, paths: tuple[str, ...],
                     generation: int | None) -> list[tuple[ServiceNode, int]]:
    """For `hitless rollback`: each selected service as the known good state before what runs
    now, with the deployment that left that state."""
    running: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for inst in runtime.instances(tree.project):
        if inst.running:
            running[inst.labels.service_path].add((inst.labels.image, inst.labels.config_hash))
    targets = []
    for node in tree.select(paths):
        now = running.get(node.path, set())
        found = last_good(journal, tree, node, avoid=next(iter(now)) if len(now) == 1 else None, generation=generation)
        if found is not None:
            targets.append(found)
    if not targets:
        what = f"generation {generation}" if generation is not None else "an earlier known good state"
        raise BadInput(f"nothing to roll back to: no {what} of {', '.join(paths) or tree.project} in the journal")
    return targets


def rollback_request(tree: DesiredTree, runtime: Runtime, journal: Journal, base: UpgradeRequest,
                     generation: int | None = None) -> UpgradeRequest:
    """A request that returns the selected services to their known good state (fixed now, so a
    resumed rollback goes to the same place)."""
    targets = [node for node, _ in rollback_targets(tree, runtime, journal, base.paths, generation)]
    return dataclasses.replace(base, kind="rollback", paths=tuple(t.path for t in targets),
                               services={t.path: t.service.model_dump_json() for t in targets})


def contracts_crossed(tree: DesiredTree, runtime: Runtime, journal: Journal, paths: tuple[str, ...],
                      generation: int | None = None) -> list[tuple[str, int, str]]:
    """(service, deployment, when) of each contract migration that ran after the known good state
    a rollback of `paths` would return to: the older version may not run on that schema."""
    crossed = []
    for node, good in rollback_targets(tree, runtime, journal, paths, generation):
        crossed += [(node.path, deployment, when) for deployment, when in journal.contracts_since(tree.project, node.path, good)]
    return crossed


def plan_for(request: UpgradeRequest, runtime: Runtime):
    """The plan a request would carry out (printed before anything runs)."""
    tree = request.tree()
    plan = plan_for_tree(tree, runtime, selected_services(tree, request.paths, request.until))
    if not request.hosts:
        return plan
    nodes = {n.path: n for n in tree.services()}
    return dataclasses.replace(plan, changes=tuple(
        c for c in plan.changes if c.service_path not in nodes or not nodes[c.service_path].hosts
        or nodes[c.service_path].host_of(c.slot) in request.hosts))


def plan_for_tree(tree: DesiredTree, runtime: Runtime, nodes: list[ServiceNode]):
    """The plan for some services of a tree."""
    return make_plan(tree, runtime.instances(tree.project), [s.path for s in nodes])


def _tree_with(tree: DesiredTree, nodes: list[ServiceNode]) -> DesiredTree:
    replaced = {n.path: n for n in nodes}

    def rebuild(node: SetNode) -> SetNode:
        return dataclasses.replace(node, children=tuple(
            rebuild(c) if isinstance(c, SetNode) else replaced.get(c.path, c) for c in node.children))

    return dataclasses.replace(tree, root=rebuild(tree.root))
