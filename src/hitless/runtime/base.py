"""The Runtime interface, and the labels that make observed state the truth.

Every instance hitless starts carries labels naming its project, set path, service, slot,
generation and config hash. hitless never remembers what runs: it lists instances by label.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

LABEL_PREFIX = "io.hitless."

InstanceState = Literal["created", "running", "exited", "dead", "paused", "restarting", "removing"]


@dataclasses.dataclass(frozen=True)
class Labels:
    """What an instance is, as written on it when it was started."""

    project: str
    set_path: str  # "neutron" or "neutron/agents"; the set that holds the service
    service: str  # the service's name inside its set, e.g. "server"
    slot: int  # replica position, 0-based
    generation: int  # the slot's version counter
    config_hash: str  # hash of the effective config (everything but the image)
    image: str  # "repo:tag" as the spec asked for it
    port: int  # the port the instance serves on (container port, or allocated host port)

    @property
    def service_path(self) -> str:
        """The service's full path in the tree, e.g. "neutron/server"."""
        return f"{self.set_path}/{self.service}" if self.set_path else self.service

    def to_dict(self) -> dict[str, str]:
        """Labels as engine key/value strings."""
        return {LABEL_PREFIX + f.name.replace("_", "-"): str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> Labels | None:
        """Read labels back; None when the instance was not started by hitless (or is foreign)."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            key = LABEL_PREFIX + f.name.replace("_", "-")
            if key not in raw:
                return None
            values[f.name] = int(raw[key]) if f.type in ("int", int) else raw[key]
        return cls(**values)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Mount:
    """A volume mount: a named volume or a host path (absolute), mounted at `target`."""

    source: str
    target: str
    read_only: bool = False

    @property
    def is_named_volume(self) -> bool:
        """True for a named volume, False for a host path bind mount."""
        return not self.source.startswith("/")


@dataclasses.dataclass(frozen=True)
class ContainerOptions:
    """Pass-through options, as Kolla gives them to its containers."""

    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    pid_mode: str | None = None  # "host"
    ipc_mode: str | None = None  # "host", "shareable"
    user: str | None = None
    workdir: str | None = None
    init: bool = False  # an init as PID 1: forwards signals, reaps orphans (Docker's docker-init)


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one instance, fully resolved (no defaults left to apply)."""

    name: str  # unique per project, e.g. "netapi-netapi-api-0-g3"
    image: str
    command: tuple[str, ...] | None  # None: the image's default command
    environment: dict[str, str]
    mounts: tuple[Mount, ...]
    network: Literal["bridge", "host"]
    stop_signal: str  # e.g. "SIGTERM"
    options: ContainerOptions
    labels: Labels
    # A job that runs to completion (bootstrap, migration): the engine must not restart it.
    # Services (False) get a restart policy that brings them back after a crash or a reboot.
    one_shot: bool = False
    host: str | None = None  # the spec's host to run on; None: this machine's runtime
    # None: the image's entrypoint. Given, it replaces the image's, and a command left None
    # runs no default arguments (Docker drops the image's CMD when the entrypoint is set).
    entrypoint: tuple[str, ...] | None = None
    extra_labels: dict[str, str] = dataclasses.field(default_factory=dict)  # the user's, beside hitless's


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance as the runtime reports it now."""

    id: str
    name: str
    labels: Labels
    state: InstanceState
    started_at: dt.datetime | None
    exit_code: int | None  # set when state is "exited" or "dead"
    host: str | None  # where its port answers from this machine (container IP, 127.0.0.1, a host's address)
    host_name: str | None = None  # the spec's host it runs on; None: this machine's runtime

    @property
    def running(self) -> bool:
        """True while the instance's main process runs."""
        return self.state == "running"

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to reach the service from this machine, or None when not running."""
        if not self.running or self.host is None:
            return None
        return (self.host, self.labels.port)


COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"


@dataclasses.dataclass(frozen=True)
class ForeignContainer:
    """A running container hitless did not start (docker-compose's, say), as the engine lists it."""

    id: str
    name: str
    image: str
    labels: dict[str, str]
    published: tuple[tuple[str, int], ...]  # (host address, host port) of each TCP port it publishes

    @property
    def compose_project(self) -> str | None:
        """The docker-compose project that made it, if any."""
        return self.labels.get(COMPOSE_PROJECT_LABEL)

    @property
    def compose_service(self) -> str | None:
        """The docker-compose service it is a container of, if any."""
        return self.labels.get(COMPOSE_SERVICE_LABEL)


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """Result of a command run inside an instance."""

    exit_code: int
    output: str


@runtime_checkable
class Runtime(Protocol):
    """Where instances run. Every side effect on instances goes through this interface."""

    kind: str  # "docker" or "process"

    def instances(self, project: str) -> list[Instance]:
        """Every instance labelled with this project, running or not."""
        ...

    def get(self, instance_id: str) -> Instance | None:
        """One instance as it is now, or None when it no longer exists."""
        ...

    def start(self, launch: LaunchSpec) -> Instance:
        """Create and start an instance; returns it as observed right after start."""
        ...

    def signal(self, instance_id: str, signal_name: str) -> None:
        """Send a signal (e.g. "SIGTERM") to the instance's main process, like the engine's kill."""
        ...

    def wait_exit(self, instance_id: str, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the instance to exit; its exit code, or None if still running."""
        ...

    def remove(self, instance_id: str) -> None:
        """Remove a stopped instance (and its anonymous resources). Running instances are killed first."""
        ...

    def exec(self, instance_id: str, argv: list[str], timeout: float) -> ExecResult:
        """Run a command inside the running instance (a health check, say)."""
        ...

    def logs(self, instance_id: str, tail: int = 50) -> str:
        """The last `tail` lines of the instance's output (stdout and stderr)."""
        ...

    def has_image(self, image: str) -> bool:
        """True when the image can be started without fetching anything."""
        ...

    def volume_path(self, name: str) -> Path:
        """The host directory holding a named volume's data (created when missing)."""
        ...

    def foreign(self) -> list[ForeignContainer]:
        """Running containers on this machine that hitless did not start (none for local processes):
        what may hold a frontend's port, or run a compose project hitless is to take over."""
        ...

    def close(self) -> None:
        """Release client resources."""
        ...
