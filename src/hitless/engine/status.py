"""What runs now, per service and slot, with a health check run on each instance; and the
project's proxy: its process, its host, and its pools against what runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hitless import __version__
from hitless.engine.desired import config_hash
from hitless.engine.health import CheckResult, check_once
from hitless.engine.proxyctl import ProxyControl, fronted, frontend_name
from hitless.engine.reconcile import Member, PoolDiff, pool_diff, pools_of
from hitless.errors import HitlessError
from hitless.runtime.base import Instance, Runtime
from hitless.spec.model import Health
from hitless.spec.tree import DesiredTree


@dataclasses.dataclass(frozen=True)
class InstanceStatus:
    """One instance as observed now."""

    service_path: str
    slot: int
    generation: int
    name: str
    instance_id: str
    image: str
    state: str
    health: str  # "healthy", "unhealthy", or the state when not running
    health_detail: str
    uptime_seconds: float | None
    address: str | None
    current: bool  # image and config match the spec
    host: str | None = None  # the spec's host it runs on; None: this machine


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """A service's desired state and its instances."""

    path: str
    image: str | None  # None when the service is no longer in the spec
    replicas: int
    instances: tuple[InstanceStatus, ...]


def _instance_status(runtime: Runtime, inst: Instance, health: Health, wanted: tuple[str, str] | None,
                     now: dt.datetime) -> InstanceStatus:
    result = check_once(runtime, inst, health) if inst.running else CheckResult(False, f"exit code {inst.exit_code}")
    uptime = (now - inst.started_at).total_seconds() if inst.running and inst.started_at else None
    address = f"{inst.address[0]}:{inst.address[1]}" if inst.address else None
    return InstanceStatus(
        service_path=inst.labels.service_path, slot=inst.labels.slot, generation=inst.labels.generation,
        name=inst.name, instance_id=inst.id, image=inst.labels.image, state=inst.state,
        health=("healthy" if result.ok else "unhealthy") if inst.running else inst.state,
        health_detail=result.detail, uptime_seconds=uptime, address=address,
        current=wanted == (inst.labels.image, inst.labels.config_hash), host=inst.host_name,
    )


def observe(tree: DesiredTree, runtime: Runtime) -> list[ServiceStatus]:
    """Every service of the spec (in upgrade order), then any the spec no longer names."""
    instances = runtime.instances(tree.project)
    nodes = tree.services()
    known = {n.path: n for n in nodes}
    wanted = {n.path: (n.service.image, config_hash(n)) for n in nodes}
    now = dt.datetime.now(dt.UTC)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(instances)))) as pool:
        statuses = list(pool.map(
            lambda i: _instance_status(
                runtime, i, known[i.labels.service_path].service.health if i.labels.service_path in known else Health(),
                wanted.get(i.labels.service_path), now),
            instances))
    by_path: dict[str, list[InstanceStatus]] = {}
    for status in sorted(statuses, key=lambda s: (s.slot, s.generation)):
        by_path.setdefault(status.service_path, []).append(status)
    result = [ServiceStatus(n.path, n.service.image, n.slots, tuple(by_path.pop(n.path, []))) for n in nodes]
    result += [ServiceStatus(path, None, 0, tuple(found)) for path, found in sorted(by_path.items())]
    return result


@dataclasses.dataclass(frozen=True)
class FrontendStatus:
    """One frontend of the proxy: its address and its backends, counted by state."""

    name: str
    listen: str
    paused: bool
    held: int
    by_state: dict[str, int]  # ready, warming, down, draining, gone → count
    backends: tuple[dict[str, Any], ...]  # id, address, state, inflight


@dataclasses.dataclass(frozen=True)
class ProxyStatus:
    """The project's proxy as observed now; `running` False when its admin socket is silent."""

    running: bool
    socket: str
    listens: tuple[str, ...]  # the spec's public addresses: refused while the proxy is down
    host: dict[str, Any]  # what supervises it (container or supervisor): see proxyhost.base.Hosted
    pid: int | None
    version: str | None
    installed_version: str
    uptime_seconds: float | None
    workers: tuple[dict[str, Any], ...]  # index, pid, started, restarts (a proxy with workers)
    state_file: str | None
    frontends: tuple[FrontendStatus, ...]
    drift: PoolDiff | None  # how the pools differ from the running, healthy instances
    error: str | None  # why it does not answer

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        data = dataclasses.asdict(self)
        data["drift"] = self.drift.to_dict() if self.drift is not None else None
        return data


def _frontend_status(raw: dict[str, Any]) -> FrontendStatus:
    backends = tuple({k: b.get(k) for k in ("id", "address", "state", "inflight")} for b in raw.get("backends", []))
    by_state: dict[str, int] = {}
    for b in backends:
        by_state[str(b["state"])] = by_state.get(str(b["state"]), 0) + 1
    return FrontendStatus(raw.get("name", "?"), raw.get("listen", "?"), bool(raw.get("paused")),
                          int(raw.get("held") or 0), by_state, backends)


def observe_proxy(tree: DesiredTree, runtime: Runtime, services: list[ServiceStatus]) -> ProxyStatus | None:
    """The proxy (None when no service has a frontend), its pools compared with the instances
    `services` observed running and healthy."""
    nodes = fronted(tree)
    if not nodes:
        return None
    control = ProxyControl(tree, runtime)
    listens = tuple(n.service.frontend.listen for n in nodes)  # type: ignore[union-attr]
    hosted = control.host.inspect().to_dict()
    try:
        status = control.client.status()
    except HitlessError as exc:
        return ProxyStatus(False, control.where, listens, hosted, None, None, __version__, None, (), None, (), None,
                           str(exc))
    frontends = tuple(_frontend_status(f) for f in status.get("frontends", []))
    pools = pools_of(status.get("frontends", []))
    wanted = {n.path for n in nodes}
    members = [Member(frontend_name(svc.path), i.name, i.address, i.health == "healthy")
               for svc in services if svc.path in wanted for i in svc.instances if i.state == "running" and i.address]
    started = status.get("started")
    return ProxyStatus(
        running=True, socket=control.where, listens=listens, host=hosted, pid=status.get("pid"),
        version=status.get("version"), installed_version=__version__,
        uptime_seconds=time.time() - float(started) if started else None,
        workers=tuple(status.get("workers") or ()), state_file=status.get("state_file"), frontends=frontends,
        drift=pool_diff([frontend_name(n.path) for n in nodes], pools, members), error=None,
    )
