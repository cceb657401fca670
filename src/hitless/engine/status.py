"""What runs now, per service and slot, with a health check run on each instance."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from hitless.engine.desired import config_hash
from hitless.engine.health import CheckResult, check_once
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
        current=wanted == (inst.labels.image, inst.labels.config_hash),
    )


def observe(tree: DesiredTree, runtime: Runtime) -> list[ServiceStatus]:
    """Every service of the spec (in upgrade order), then any the spec no longer names."""
    instances = runtime.list(tree.project)
    nodes = tree.services()
    known = {n.path: n for n in nodes}
    wanted = {n.path: (n.service.image, config_hash(n)) for n in nodes}
    now = dt.datetime.now(dt.timezone.utc)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(instances)))) as pool:
        statuses = list(pool.map(
            lambda i: _instance_status(
                runtime, i, known[i.labels.service_path].service.health if i.labels.service_path in known else Health(),
                wanted.get(i.labels.service_path), now),
            instances))
    by_path: dict[str, list[InstanceStatus]] = {}
    for status in sorted(statuses, key=lambda s: (s.slot, s.generation)):
        by_path.setdefault(status.service_path, []).append(status)
    result = [ServiceStatus(n.path, n.service.image, n.service.replicas, tuple(by_path.pop(n.path, []))) for n in nodes]
    result += [ServiceStatus(path, None, 0, tuple(found)) for path, found in sorted(by_path.items())]
    return result
