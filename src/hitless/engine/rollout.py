"""Converging one service at a time to its spec, by its update strategy, with zero downtime.

Each call re-reads what runs from the runtime and the proxy, plans the service's slots, and
acts, so a run interrupted anywhere is finished by running it again: an instance a killed run
had started is adopted (gated, put in the pool) or removed; an old one left behind is drained
and stopped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from hitless.engine.desired import allocate_port, launch_spec, slot_record
from hitless.engine.drain import ServiceDrain
from hitless.engine.health import CheckResult, check_once, wait_healthy
from hitless.engine.plan import REASON_NOT_RUNNING, REASON_SUPERSEDED, SlotChange, plan_service
from hitless.engine.proxyctl import ProxyControl, frontend_name
from hitless.engine.steps import Event, StepRunner
from hitless.errors import OperationFailed
from hitless.runtime.base import Instance, Runtime
from hitless.runtime.stop import graceful_stop
from hitless.spec.model import Stop
from hitless.spec.tree import ServiceNode
from hitless.state.journal import Journal

FAILED_GATE_STOP = 30.0  # seconds a new instance that failed its gate gets to stop; it serves nobody


class GateFailed(OperationFailed):
    """A new instance did not pass its health gate; carries the tail of its log."""

    def __init__(self, instance: str, service_path: str, detail: str, log_tail: list[str]):
        super().__init__(f"{instance} failed its health gate: {detail}")
        self.instance = instance
        self.service_path = service_path
        self.log_tail = log_tail

    def lines(self) -> list[str]:
        return [str(self), *(f"  | {line}" for line in self.log_tail)]


class Rollout:
    """Converges services of one project; `replace=False` (for `up`) never touches a running
    instance whose image or config differ, it only reports them."""

    def __init__(self, project: str, base_dir: Path, runtime: Runtime, journal: Journal, steps: StepRunner,
                 proxy: ProxyControl | None, *, replace: bool = True):
        self.project = project
        self.base_dir = base_dir
        self.runtime = runtime
        self.journal = journal
        self.steps = steps
        self.proxy = proxy
        self.replace = replace
        self.started: list[tuple[ServiceNode, Instance]] = []
        self.needs_upgrade: list[SlotChange] = []
        self.drain = ServiceDrain(project, base_dir, runtime, steps)
        self._background = ThreadPoolExecutor(max_workers=16, thread_name_prefix="retire")
        self._retiring: list[Future] = []

    def close(self) -> None:
        """Wait for background work and release its threads."""
        self._background.shutdown(wait=True)

    # -- one service ---------------------------------------------------------------------

    def service(self, node: ServiceNode, hosts: Collection[str] | None = None) -> None:
        """Bring one service's slots to its spec (only the slots placed on `hosts`, when given)."""
        mine = [i for i in self.runtime.instances(self.project) if i.labels.service_path == node.path]
        by_id = {i.id: i for i in mine}
        changes = plan_service(node, mine)
        if hosts is not None:
            changes = [c for c in changes if node.host_of(c.slot) in hosts]
        fe = self._frontend(node)
        try:
            superseded = {c.slot for c in changes if REASON_SUPERSEDED in c.reasons}
            pool = self._proxy.backends(fe) if fe else {}
            for c in changes:
                inst = by_id[c.current.instance_id] if c.current else None
                if c.action == "keep" and inst is not None:
                    state = pool.get(inst.name, {}).get("state")
                    if (fe and state != "ready") or c.slot in superseded:
                        # Started by a run that was killed before it finished: gate it like a new one.
                        self._gate(node, inst)
                        self._serve(fe, node, inst)
                        self.started.append((node, inst))
                elif c.action == "remove" and inst is not None:
                    self._retire_later(fe, node, inst)
            dead = [c for c in changes if c.action == "replace" and REASON_NOT_RUNNING in c.reasons]
            for c in dead:
                if c.current is not None:  # a replacement always has a current instance
                    self._retire_now(fe, node, by_id[c.current.instance_id])
            fresh = [c.slot for c in changes if c.action == "create"] + [c.slot for c in dead]
            if fresh:
                self._batch_start(fe, node, fresh)
            alive = [c for c in changes if c.action == "replace" and REASON_NOT_RUNNING not in c.reasons]
            if alive and not self.replace:
                self.needs_upgrade += alive
            elif alive:
                olds = [by_id[c.current.instance_id] for c in alive if c.current]
                self._replace(fe, node, olds)
            self.finish_retiring()
        finally:
            if fe and self._proxy.is_paused(fe):
                self.steps.run("resume", fe, lambda: self._proxy.resume(fe), service=node.path)

    def window(self, nodes: list[ServiceNode], middle: Callable[[], object], what: str) -> None:
        """A held window: the nodes' frontends hold requests while every instance of the nodes
        drains and stops, `middle` runs (an offline migration, a restore), and the nodes start
        again and pass their gates; then the held requests are released, in order."""
        frontends = {n.path: self._frontend(n) for n in nodes}
        held = [fe for fe in frontends.values() if fe]
        for fe in held:
            self.steps.run("pause", fe, functools.partial(self._proxy.pause, fe), f"pause {fe}: requests are held")
        try:
            observed = self.runtime.instances(self.project)
            for node in nodes:
                olds = [i for i in observed if i.labels.service_path == node.path]
                self._each(functools.partial(self._retire_now, frontends[node.path], node), olds)
            self.steps.run(what, ",".join(n.path for n in nodes), middle)
            for node in nodes:
                self._batch_start(frontends[node.path], node, list(range(node.slots)))
        finally:
            for fe in held:
                self.steps.run("resume", fe, functools.partial(self._proxy.resume, fe), f"resume {fe}: held requests released")

    @property
    def _proxy(self) -> ProxyControl:
        """The proxy, where a frontend is concerned: a service has a frontend only when there is one."""
        if self.proxy is None:
            raise OperationFailed("a frontend without a proxy (a bug in hitless)")
        return self.proxy

    def _frontend(self, node: ServiceNode) -> str | None:
        if self.proxy is None or node.service.frontend is None:
            return None
        return self.steps.run("frontend", node.path, functools.partial(self._proxy.ensure_frontend, node),
                              service=node.path)

    def _replace(self, fe: str | None, node: ServiceNode, olds: list[Instance]) -> None:
        strategy = node.service.update.strategy
        if strategy == "start-first":
            size = node.service.update.surge
            for batch in _batches(olds, size):
                self._batch_start(fe, node, [o.labels.slot for o in batch])
                for old in batch:
                    self._retire_later(fe, node, old)
        elif strategy == "all-at-once":
            self._batch_start(fe, node, [o.labels.slot for o in olds])
            for old in olds:
                self._retire_later(fe, node, old)
        elif strategy == "rolling":
            for batch in _batches(olds, node.service.update.serial):
                for old in batch:
                    self._retire_now(fe, node, old)
                self._batch_start(fe, node, [o.labels.slot for o in batch])
        else:  # recreate: hold requests at the proxy while the singleton is replaced
            if fe:
                self.steps.run("pause", fe, lambda: self._proxy.pause(fe), f"pause {fe}: requests are held", node.path)
            for old in olds:
                self._retire_now(fe, node, old)
                self._batch_start(fe, node, [old.labels.slot])
            if fe:
                self.steps.run("resume", fe, lambda: self._proxy.resume(fe), f"resume {fe}: held requests released", node.path)

    # -- steps ---------------------------------------------------------------------------

    def _batch_start(self, fe: str | None, node: ServiceNode, slots: list[int]) -> None:
        news = [self._start(node, slot) for slot in slots]
        self._each(lambda new: self._gate(node, new), news)
        self._each(lambda new: self._serve(fe, node, new), news)
        if node.service.drain.after:
            self._each(functools.partial(self.drain.after_start, node), news)

    @staticmethod
    def _each(action: Callable[[Instance], None], instances: list[Instance]) -> None:
        """Run a step for several instances at once; the first failure is raised after all ended."""
        if not instances:
            return
        if len(instances) == 1:
            action(instances[0])
            return
        with ThreadPoolExecutor(max_workers=len(instances)) as pool:
            futures = [pool.submit(action, inst) for inst in instances]
        first = next((f.exception() for f in futures if f.exception() is not None), None)
        if first is not None:
            raise first

    def _start(self, node: ServiceNode, slot: int) -> Instance:
        def start() -> Instance:
            observed = self.runtime.instances(self.project)
            seen = [i.labels.generation for i in observed if i.labels.service_path == node.path and i.labels.slot == slot]
            generation = self.journal.allocate_generation(self.project, node.path, slot, observed_max=max(seen, default=0))
            port = allocate_port(node, self.runtime.kind, observed, host)
            instance = self.runtime.start(launch_spec(self.project, node, slot, generation, port, self.base_dir))
            self.journal.record_slot(self.steps.deployment_id, slot_record(node, instance), "start")
            return instance

        host = node.host_of(slot)
        where = f" on {host}" if host else ""
        new = self.steps.run("start", f"{node.path}/{slot}", start,
                             f"start {node.path} slot {slot}{where} ({node.service.image})", node.path)
        self.started.append((node, new))
        self.steps.info(f"{new.name} started: generation {new.labels.generation}", instance=new.name,
                        generation=new.labels.generation, service=node.path, slot=slot)
        return new

    def _gate(self, node: ServiceNode, inst: Instance) -> None:
        def gate() -> None:
            result = wait_healthy(self.runtime, inst.id, node.service.health)
            if result.ok:
                result = self._stays_ready(node, inst)
            if not result.ok:
                tail = self.runtime.logs(inst.id, tail=15).rstrip().splitlines()
                self._discard(node, inst)
                raise GateFailed(inst.name, node.path, result.detail, tail)

        self.steps.run("gate", inst.name, gate, f"health gate of {inst.name}", node.path)

    def _stays_ready(self, node: ServiceNode, inst: Instance) -> CheckResult:
        """The minimum ready time: healthy at every check for `update.min_ready` seconds."""
        health, until = node.service.health, time.monotonic() + node.service.update.min_ready
        result = CheckResult(True, "healthy")
        while time.monotonic() < until:
            time.sleep(min(health.interval, max(0.0, until - time.monotonic())))
            current = self.runtime.get(inst.id)
            if current is None:
                return CheckResult(False, "instance disappeared")
            result = check_once(self.runtime, current, health)
            if not result.ok:
                return CheckResult(False, f"unhealthy during the minimum ready time: {result.detail}")
        return result

    def _serve(self, fe: str | None, node: ServiceNode, inst: Instance) -> None:
        if not fe:
            return
        current = self.runtime.get(inst.id) or inst
        health = node.service.health
        timeout = health.start_period + health.interval * (health.rise + health.fall) + 10
        self.steps.run("proxy-add", current.name, lambda: self._proxy.add_and_wait_ready(fe, current, timeout),
                       f"add {current.name} to {fe} and wait until ready", node.path)

    def _retire_later(self, fe: str | None, node: ServiceNode, old: Instance) -> None:
        """Drain, stop and remove in the background: a long request on the old instance does not
        hold the rollout up; the run waits for it at the end of the service."""
        self._retiring.append(self._background.submit(self._retire_now, fe, node, old))

    def finish_retiring(self) -> None:
        """Wait for every background retirement; re-raise the first failure."""
        pending, self._retiring = self._retiring, []
        errors = [f.exception() for f in pending]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def _retire_now(self, fe: str | None, node: ServiceNode, old: Instance) -> None:
        deadline = node.service.drain.deadline
        if fe:
            drained = self.steps.run("drain", old.name, lambda: self._proxy.drain_and_forget(fe, old.name, deadline),
                                     f"drain {old.name}: no new requests, in-flight ones finish", node.path)
            if not drained:
                self.steps.warning(f"{old.name}: requests still in flight after {deadline:.0f}s of draining")
        if node.service.drain.before or node.service.drain.until:
            self.drain.before_stop(node, old)
        self._stop(old, node.service.stop)

    def _discard(self, node: ServiceNode, inst: Instance) -> None:
        """Take a failed new instance away: out of the pool, stopped, removed."""
        if self.proxy is not None and node.service.frontend is not None:
            self.proxy.forget(frontend_name(node.path), inst.name)
        stop = node.service.stop
        graceful_stop(self.runtime, inst.id, signal_name=stop.signal, grace=min(stop.grace, FAILED_GATE_STOP),
                      ceiling=min(stop.kill_after, FAILED_GATE_STOP))
        self.runtime.remove(inst.id)

    def _stop(self, inst: Instance, stop: Stop) -> None:
        def stop_it() -> None:
            outcome = graceful_stop(self.runtime, inst.id, signal_name=stop.signal, grace=stop.grace,
                                    ceiling=stop.kill_after,
                                    on_event=lambda level, msg: self.steps.emit(Event(level, f"{inst.name}: {msg}")))
            if outcome.killed:
                self.steps.warning(f"{inst.name} was SIGKILLed at its ceiling of {stop.kill_after:.0f}s: in-flight work was cut")

        if self.runtime.get(inst.id) is not None:
            service = inst.labels.service_path
            self.steps.run("stop", inst.name, stop_it, f"stop {inst.name} with {stop.signal} (grace {stop.grace:.0f}s)", service)
            self.steps.run("remove", inst.name, lambda: self.runtime.remove(inst.id), service=service)


def _batches(items: list[Instance], size: int) -> list[list[Instance]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
