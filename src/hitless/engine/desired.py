"""From a spec service to what one slot's instance must be: config hash and launch spec."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable
from pathlib import Path

from hitless.errors import OperationFailed
from hitless.runtime.base import ContainerOptions, Instance, Labels, LaunchSpec, Mount
from hitless.spec.tree import ServiceNode
from hitless.state.journal import SlotRecord


def effective_config(node: ServiceNode) -> dict:
    """What the instance is started with, apart from its image and per-slot values.

    A change here means the instance must be replaced; health checks, stop grace and the update
    strategy act from outside the instance and are left out.
    """
    svc = node.service
    options = svc.options.model_dump(mode="json")
    config = {
        "command": list(svc.command) if svc.command is not None else None,
        "environment": dict(sorted(svc.environment.items())),
        "volumes": [v.model_dump() for v in svc.volumes],
        "network": {"mode": svc.network.mode, "port": svc.network.port},
        "stop_signal": svc.stop.signal,
        "options": {k: v for k, v in options.items() if k != "init" or v},
    }
    # Keys added since the first release count only when set: what ran before keeps its hash.
    if svc.entrypoint is not None:
        config["entrypoint"] = list(svc.entrypoint)
    if svc.labels:
        config["labels"] = dict(sorted(svc.labels.items()))
    return config


def config_hash(node: ServiceNode) -> str:
    """A short, stable hash of the effective config."""
    canonical = json.dumps(effective_config(node), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def instance_name(project: str, service_path: str, slot: int, generation: int) -> str:
    """The instance's unique name, e.g. `netapi-netapi-api-0-g3`."""
    return f"{project}-{service_path.replace('/', '-')}-{slot}-g{generation}"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _ephemeral_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def allocate_port(node: ServiceNode, runtime_kind: str, observed: Iterable[Instance], host: str | None = None) -> int:
    """The port a new instance will serve on.

    Bridge networking in Docker: the container port. Host networking: the lowest port of the
    service's range that no instance of the project on the same host holds and, on this
    machine, nothing is bound to (another host's sockets cannot be seen from here).
    The process runtime has no network namespace, so a bridge service gets a free loopback port.
    """
    net = node.service.network
    if net.mode == "bridge":
        if runtime_kind != "docker":
            return _ephemeral_port()
        if net.port is None:  # the spec's validation makes bridge networking name a port
            raise OperationFailed(f"{node.path}: bridge networking without a port")
        return net.port
    if net.ports is None:  # and host networking a range
        raise OperationFailed(f"{node.path}: host networking without a port range")
    used = ports_in_use(i for i in observed if i.host_name == host)
    for port in net.ports:
        if port not in used and (host is not None or _port_is_free(port)):
            return port
    raise OperationFailed(f"{node.path}: no free port left in {net.ports.first}-{net.ports.last}")


def service_mounts(node: ServiceNode, base_dir: Path) -> tuple[Mount, ...]:
    """The service's volumes as mounts, a relative host path (`./etc`) resolved from `base_dir`."""
    return tuple(Mount(source=v.source if not v.source.startswith(".") else str((base_dir / v.source).resolve()),
                       target=v.target, read_only=v.read_only)
                 for v in node.service.volumes)


def launch_spec(project: str, node: ServiceNode, slot: int, generation: int, port: int, base_dir: Path) -> LaunchSpec:
    """Everything the runtime needs to start this slot's instance at this generation."""
    svc = node.service
    labels = Labels(
        project=project, set_path=node.set_path, service=node.name, slot=slot, generation=generation,
        config_hash=config_hash(node), image=svc.image, port=port,
    )
    mounts = service_mounts(node, base_dir)
    environment = {**svc.environment, "HITLESS_PORT": str(port), "HITLESS_SLOT": str(slot),
                   "HITLESS_GENERATION": str(generation)}
    opts = svc.options
    return LaunchSpec(
        name=instance_name(project, node.path, slot, generation),
        image=svc.image,
        command=svc.command,
        environment=environment,
        mounts=mounts,
        network=svc.network.mode,
        stop_signal=svc.stop.signal,
        options=ContainerOptions(
            privileged=opts.privileged, cap_add=opts.cap_add, cap_drop=opts.cap_drop,
            pid_mode=opts.pid, ipc_mode=opts.ipc, user=opts.user, workdir=opts.workdir, init=opts.init,
        ),
        labels=labels,
        host=node.host_of(slot),
        entrypoint=svc.entrypoint,
        extra_labels=dict(svc.labels),
    )


def ports_in_use(instances: Iterable[Instance]) -> set[int]:
    """Ports held by instances that are still alive."""
    return {i.labels.port for i in instances if i.state in ("created", "running", "restarting", "paused")}


def slot_record(node: ServiceNode, instance: Instance) -> SlotRecord:
    """What the journal keeps of a slot's instance, with the service spec it was started from."""
    lab = instance.labels
    return SlotRecord(node.path, lab.slot, lab.generation, lab.image, lab.config_hash, node.service.model_dump_json())
