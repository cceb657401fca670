"""Taking a project over from docker-compose: its containers stopped, hitless's in their place.

Containers made by `docker-compose up` carry `com.docker.compose.project` and
`com.docker.compose.service`. When those of the spec's project run, `hitless up` says so (it
would run every service twice and fight for the published ports) unless asked to take over
(`--adopt`). Then, service by service in the spec's order:

- start-first strategies: hitless's instances are started on their own ports and pass their
  gates while the compose container serves; then the compose container gets its stop signal
  (in-flight requests finish; its grace, SIGKILL only at the ceiling), and the proxy binds the
  published address the moment the engine lets it go, holding what arrives until the warm
  instances are in its pool a moment later;
- stop-first strategies (`rolling`, `recreate`): the compose container is stopped first, the
  proxy binds its address at once and holds requests while hitless's instances start.

The gap, from the stop signal to the proxy's bind (the time new connections find no listener
or a container that no longer accepts), and the hold after it, are measured and reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from hitless.engine.proxyctl import ProxyControl, frontend_name
from hitless.engine.rollout import Rollout
from hitless.engine.steps import Event, StepRunner
from hitless.errors import BadInput
from hitless.runtime.base import ForeignContainer, Runtime
from hitless.runtime.stop import KILL_WAIT, StopOutcome, stop_running
from hitless.spec.tree import DesiredTree, ServiceNode, SetNode

PORT_RELEASE = 10.0  # seconds the engine may take to release a port once its container exited
STOP_FIRST = ("rolling", "recreate")
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"  # `docker-compose run`'s containers


class ComposeRuns(BadInput):
    """docker-compose's containers of the project run, or something else holds a frontend's port."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0])
        self._lines = lines

    def lines(self) -> list[str]:
        return self._lines


@dataclasses.dataclass(frozen=True)
class Survey:
    """What runs beside hitless that matters to the spec."""

    takeovers: dict[str, tuple[ForeignContainer, ...]]  # service path → its compose containers
    holders: list[str]  # lines: frontends' ports held by containers hitless cannot take over


@dataclasses.dataclass(frozen=True)
class Handover:
    """How one service moved from its compose containers to hitless, timed (monotonic seconds)."""

    service: str
    containers: tuple[str, ...]
    listen: str | None
    signalled: float
    bound: float | None
    served: float
    stops: tuple[StopOutcome, ...]

    @property
    def gap(self) -> float | None:
        """Seconds from the stop signal to the proxy's bind: what no listener answered."""
        return None if self.bound is None else self.bound - self.signalled

    def describe(self) -> str:
        """One line for a person."""
        who = ", ".join(self.containers)
        stopped = "; ".join(f"exit {o.exit_code} after {o.seconds:.2f} s" + (" (SIGKILL at its ceiling)" if o.killed else "")
                            for o in self.stops)
        if self.bound is None or self.gap is None:
            return f"{self.service}: {who} stopped ({stopped}); hitless's instances serve in its place"
        return (f"{self.service}: {self.listen} handed over from {who} to the proxy: gap {self.gap * 1000:.0f} ms "
                f"(from its stop signal until the proxy bound the port; {stopped}), then requests held "
                f"{(self.served - self.bound) * 1000:.0f} ms until hitless's instances took them")

    def to_dict(self) -> dict[str, object]:
        """For --json and the journal."""
        return {"service": self.service, "containers": list(self.containers), "listen": self.listen,
                "gap_seconds": self.gap, "held_seconds": None if self.bound is None else self.served - self.bound,
                "stop_seconds": [o.seconds for o in self.stops], "killed": any(o.killed for o in self.stops)}


def _port_of(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _overlaps(listen: str, published: tuple[str, int]) -> bool:
    host, port = _port_of(listen)
    wildcard = ("0.0.0.0", "::", "")
    return port == published[1] and (host == published[0] or host in wildcard or published[0] in wildcard)


def survey(tree: DesiredTree, runtime: Runtime) -> Survey:
    """The compose containers of the spec's project, by the service of the spec each stands for,
    and the frontends' ports held by any other container."""
    foreign = runtime.foreign()
    services = tree.services()
    by_name = defaultdict(list)
    for node in services:
        by_name[node.name].append(node)
    takeovers: dict[str, list[ForeignContainer]] = defaultdict(list)
    holders = []
    for container in foreign:
        mine = container.compose_project == tree.project and container.labels.get(COMPOSE_ONEOFF_LABEL) != "True"
        nodes = by_name.get(container.compose_service or "", []) if mine else []  # `run` containers are no service's
        if len(nodes) == 1:
            takeovers[nodes[0].path].append(container)
            continue
        for node in services:
            fe = node.service.frontend
            held = [p for p in container.published if fe is not None and _overlaps(fe.listen, p)]
            if fe is not None and held:
                owner = (f"docker-compose project {container.compose_project}, service {container.compose_service}"
                         if container.compose_project else f"image {container.image}")
                holders.append(f"{fe.listen}, the frontend of {node.path}, is held by container {container.name} "
                               f"({owner}), which is not one of this project's services: stop it first")
    return Survey({k: tuple(v) for k, v in takeovers.items()}, holders)


def compose_lines(tree: DesiredTree, found: Survey, advice: str) -> list[str]:
    """One line per compose container (and per port held by something else), ending in `advice`."""
    nodes = {n.path: n for n in tree.services()}
    lines = []
    for path, containers in found.takeovers.items():
        fe = nodes[path].service.frontend
        for c in containers:
            held = [f"{h}:{p}" for h, p in c.published if fe is not None and _overlaps(fe.listen, (h, p))]
            what = f" and holds {', '.join(held)}, the frontend of {path}" if held else f" (service {path} of the spec)"
            lines.append(f"{c.name} (docker-compose project {c.compose_project}, service {c.compose_service}) "
                         f"runs{what}: {advice}")
    return lines + found.holders


ADOPT_ADVICE = ("`hitless up --adopt` moves it behind hitless's proxy (hitless's instances started and warm first, "
                "the port handed over at once)")


def check_no_compose(tree: DesiredTree, runtime: Runtime, command: str) -> None:
    """Refuse (exit 2, nothing started) when compose's containers of the project run or a
    frontend's port is held by another container: never a silent port conflict."""
    found = survey(tree, runtime)
    advice = ADOPT_ADVICE if command == "up" else f"take the project over before `hitless {command}`: `hitless up --adopt`"
    lines = compose_lines(tree, found, advice)
    if lines:
        raise ComposeRuns(lines)


def without_frontends(tree: DesiredTree, paths: set[str]) -> DesiredTree:
    """The tree with these services' frontends left out (bound later, when their port is free)."""
    def rebuild(node: SetNode) -> SetNode:
        children = tuple(rebuild(c) if isinstance(c, SetNode) else deferred(c) if c.path in paths else c
                         for c in node.children)
        return dataclasses.replace(node, children=children)

    return dataclasses.replace(tree, root=rebuild(tree.root))


def deferred(node: ServiceNode) -> ServiceNode:
    """The service without its frontend: its instances start and pass their gates, out of any pool."""
    return dataclasses.replace(node, service=node.service.model_copy(update={"frontend": None}))


class Takeover:
    """Moves services from their compose containers to hitless's instances, one at a time."""

    def __init__(self, project: str, runtime: Runtime, steps: StepRunner, rollout: Rollout, proxy: ProxyControl | None):
        self.project, self.runtime, self.steps, self.rollout, self.proxy = project, runtime, steps, rollout, proxy

    def service(self, node: ServiceNode, containers: tuple[ForeignContainer, ...]) -> Handover:
        """Converge the service, taking its compose containers' place; how it went."""
        if node.service.update.strategy in STOP_FIRST:
            handover = self._switch(node, containers, serve=False)
            self.rollout.service(node)
            return dataclasses.replace(handover, served=time.monotonic())
        self.rollout.service(deferred(node))
        return self._switch(node, containers, serve=True)

    def _switch(self, node: ServiceNode, containers: tuple[ForeignContainer, ...], serve: bool) -> Handover:
        fronted = self.proxy is not None and node.service.frontend is not None
        warm = [i for i in self.runtime.instances(self.project)
                if i.labels.service_path == node.path and i.running and i.address] if serve else []
        stop = node.service.stop
        names = ", ".join(c.name for c in containers)
        times: dict[str, float] = {}
        outcomes: list[StopOutcome] = []

        def switch() -> None:
            def stop_one(c: ForeignContainer) -> StopOutcome:
                return stop_running(self.runtime, c.id, c.name, signal_name=stop.signal, grace=stop.grace,
                                    ceiling=stop.kill_after,
                                    on_event=lambda level, msg: self.steps.emit(Event(level, f"{c.name}: {msg}")))

            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                times["signalled"] = time.monotonic()
                futures = [pool.submit(stop_one, c) for c in containers]
                if fronted and self.proxy is not None:
                    until = times["signalled"] + stop.kill_after + KILL_WAIT + PORT_RELEASE
                    times["bound"] = self.proxy.bind_when_free(node, until)
                    if warm:
                        self.proxy.serve_now(frontend_name(node.path), warm)
                times["served"] = time.monotonic()
                outcomes.extend(f.result() for f in futures)
            for c in containers:
                self.runtime.remove(c.id)

        what = (f"stop {names} ({stop.signal}, grace {stop.grace:.0f}s)"
                + (f"; bind {node.service.frontend.listen} the moment it is free" if fronted and node.service.frontend else ""))
        self.steps.run("adopt", node.path, switch, what, node.path)
        return Handover(node.path, tuple(c.name for c in containers),
                        node.service.frontend.listen if fronted and node.service.frontend else None,
                        times["signalled"], times.get("bound"), times["served"], tuple(outcomes))
