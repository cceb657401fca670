"""Pydantic models of one service and of the spec's top level.

Every model forbids unknown keys: a typo in a spec is an error, never silently ignored.
"""

from __future__ import annotations

import re
import shlex
import signal as _signal
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from hitless.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:\d+)?(/[a-z0-9._-]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_argv(value: object) -> object:
    """A command may be written as a list or as one shell-like string."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"unreadable command {value!r}: {exc}") from None
    return value


Argv = Annotated[tuple[str, ...], BeforeValidator(_as_argv)]


def _environment_values(value: object) -> object:
    """Environment values are strings; numbers and booleans are written as YAML spells them."""
    if isinstance(value, dict):
        return {k: ("true" if v is True else "false" if v is False else "" if v is None else str(v)) for k, v in value.items()}
    return value


class PortRange(_Strict):
    """An inclusive range of host ports, written `9100-9199` (or a single port)."""

    first: int = Field(ge=1, le=65535)
    last: int = Field(ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if isinstance(value, int):
            return {"first": value, "last": value}
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
            if not match:
                raise ValueError(f"invalid port range {value!r} (expected e.g. 9100-9199)")
            first = int(match.group(1))
            return {"first": first, "last": int(match.group(2) or first)}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.last < self.first:
            raise ValueError(f"invalid port range {self.first}-{self.last}: last port below first")
        return self

    def __iter__(self) -> Iterator[int]:  # type: ignore[override]  # the range's ports, not the model's fields
        return iter(range(self.first, self.last + 1))


class Network(_Strict):
    """Bridge networking with a container port, or host networking with a port range (Kolla-style)."""

    mode: Literal["bridge", "host"] = "bridge"
    port: int | None = Field(default=None, ge=1, le=65535, description="bridge: the port the service listens on")
    ports: PortRange | None = Field(default=None, description="host: one port per instance is allocated from here")

    @model_validator(mode="after")
    def _port_for_mode(self) -> Network:
        if self.mode == "bridge" and self.port is None:
            raise ValueError("bridge networking needs 'port' (the port the service listens on)")
        if self.mode == "bridge" and self.ports is not None:
            raise ValueError("'ports' is for host networking; bridge networking takes 'port'")
        if self.mode == "host" and self.ports is None:
            raise ValueError("host networking needs 'ports', a range to allocate one port per instance from")
        if self.mode == "host" and self.port is not None:
            raise ValueError("'port' is for bridge networking; host networking takes a 'ports' range")
        return self


class Health(_Strict):
    """How hitless decides an instance is healthy: an HTTP GET, a TCP connect, or a command inside it."""

    http: str | None = Field(default=None, description="path to GET; 2xx or 3xx is healthy")
    tcp: bool = False
    command: Argv | None = None
    interval: Duration = 2.0
    timeout: Duration = 2.0
    start_period: Duration = 60.0
    rise: int = Field(default=2, ge=1)
    fall: int = Field(default=3, ge=1)

    @field_validator("http")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"http health check path must start with '/', got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Health:
        kinds = [k for k, on in (("http", self.http is not None), ("tcp", self.tcp), ("command", self.command is not None)) if on]
        if len(kinds) > 1:
            raise ValueError(f"choose one health check kind, not {' and '.join(kinds)}")
        return self

    @property
    def kind(self) -> Literal["http", "tcp", "command"]:
        """The check's kind; a TCP connect when none is named."""
        if self.http is not None:
            return "http"
        if self.command is not None:
            return "command"
        return "tcp"


def _signal_name(value: object) -> object:
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in _signal.Signals.__members__:
            raise ValueError(f"unknown signal {value!r}")
        return name
    return value


class Stop(_Strict):
    """Graceful stop: the signal the service expects, then as long as in-flight work needs."""

    signal: Annotated[str, BeforeValidator(_signal_name)] = "SIGTERM"
    grace: Duration = Field(default=3600.0, description="warn when still running after this long")
    ceiling: Duration | None = Field(default=None, description="SIGKILL after this long (default: grace)")

    @model_validator(mode="after")
    def _ceiling_after_grace(self) -> Stop:
        if self.ceiling is not None and self.ceiling < self.grace:
            raise ValueError("ceiling must not be shorter than grace")
        return self

    @property
    def kill_after(self) -> float:
        """Seconds after the stop signal at which SIGKILL is sent."""
        return self.grace if self.ceiling is None else self.ceiling


class Drain(_Strict):
    """How an old instance is drained before it stops, and the bound of every drain.

    The proxy drains a service with a frontend: no new requests, in-flight ones finish. It waits
    at most `deadline`; then what is still open (a request, a WebSocket, another tunnel) is
    closed and the stop goes ahead. A service the proxy does not front (an RPC consumer, a
    host-bound agent) can name its own drain: `before` runs (each command in turn) before its
    old instance stops, `until` is run every `interval` until it exits 0 (drained; at most
    `deadline`), and `after` runs once each new instance is healthy. The commands run as
    one-shot instances of `image` (default: the service's own) with the service's environment,
    volumes and network, or on this machine (`where: host`); $HITLESS_INSTANCE names the
    instance being drained (empty for `after`), $HITLESS_HOST its host. They must be idempotent:
    a resumed upgrade may run them again.
    """

    deadline: Duration = Field(default=300.0, description="the longest any drain of this service may take")
    before: tuple[Argv, ...] = ()
    until: Argv | None = None
    interval: Duration = 5.0
    after: tuple[Argv, ...] = ()
    image: str | None = Field(default=None, description="the image the commands run in (default: the service's)")
    where: Literal["image", "host"] = "image"
    environment: Annotated[dict[str, str], BeforeValidator(_environment_values)] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _tagged(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError(f"invalid image {value!r} (expected repo:tag)")
        return value

    @property
    def has_commands(self) -> bool:
        """True when the service names commands of its own."""
        return bool(self.before or self.until or self.after)


class Update(_Strict):
    """How a service's slots are replaced in an upgrade."""

    strategy: Literal["start-first", "rolling", "all-at-once", "recreate"] = "start-first"
    surge: int = Field(default=1, ge=1, description="start-first: new instances started at once")
    serial: int = Field(default=1, ge=1, description="rolling: slots replaced at once")
    min_ready: Duration = Field(default=1.0, description="a new instance must stay healthy this long to pass its gate")
    watch: Duration = Field(default=30.0, description="after the switch, a failure within this window rolls back")
    hosts_serial: int | None = Field(default=None, ge=1, description="hosts upgraded at once (default: all)")


class Options(_Strict):
    """Pass-through container options, as Kolla gives them.

    `init`: an init as PID 1 that forwards signals to the service and reaps orphaned processes
    (Docker's `init`; the process runtime's shim does the same). A server that runs as PID 1
    without a SIGTERM handler ignores SIGTERM (the kernel ignores default-action signals sent to
    a namespace's PID 1) and is SIGKILLed at its ceiling; under an init it gets the signal.
    """

    init: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    pid: Literal["host"] | None = None
    ipc: str | None = None
    user: str | None = None
    workdir: str | None = None


def _parse_volume(value: object) -> object:
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise ValueError(f"invalid volume {value!r} (expected NAME:/path, /host/path:/path, optionally :ro)")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise ValueError(f"invalid volume mode {parts[2]!r} in {value!r} (expected ro or rw)")
    return {"source": parts[0], "target": parts[1], "read_only": len(parts) == 3 and parts[2] == "ro"}


RESERVED_LABELS = ("io.hitless.", "com.docker.compose.")


def _user_labels(value: dict[str, str]) -> dict[str, str]:
    """Labels are the truth of what an instance is: hitless's own and compose's are not the user's to set."""
    for key in value:
        if key.startswith(RESERVED_LABELS):
            raise ValueError(f"label {key!r}: the prefixes {' and '.join(RESERVED_LABELS)} are reserved")
    return value


def _names(value: object) -> object:
    """One name, or a list of names."""
    return (value,) if isinstance(value, str) else value


def _listen_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r} (expected host:port, e.g. 127.0.0.1:9696)")
    return value


class HoldSpec(_Strict):
    """Bounds of the queue of requests held while no instance can serve (a bound reached: 503)."""

    max_requests: int = Field(default=10_000, ge=0)
    max_bytes: Size = 64 * 1024 * 1024
    max_wait: Duration = 60.0
    release_concurrency: int = Field(default=16, ge=1)


class ClientTimeouts(_Strict):
    """How long the proxy waits on a client (a slow backend is never cut by these)."""

    keepalive: Duration = Field(default=75.0, gt=0)  # idle between two requests
    head: Duration = Field(default=30.0, gt=0)  # for a whole request head
    body: Duration = Field(default=60.0, gt=0)  # for the next bytes of a request body
    send: Duration = Field(default=60.0, gt=0)  # for a client to read some of its answer


class FrontendSpec(_Strict):
    """A public address on the proxy, routed to this service's ready instances."""

    listen: Annotated[str, AfterValidator(_listen_address)]
    hold: HoldSpec = HoldSpec()
    timeouts: ClientTimeouts = ClientTimeouts()


_ENGINE_URL = re.compile(r"^(unix:///\S+|tcp://[A-Za-z0-9.:\[\]-]+:\d+|ssh://([A-Za-z0-9._-]+@)?[A-Za-z0-9.\[\]:-]+)$")
_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")


class Host(_Strict):
    """A machine hitless drives: its Docker engine, and the address its instances are dialled at."""

    engine: str = Field(description="unix:///path/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]")
    address: str = Field(description="where the proxy and the other hosts reach this host's instances")

    @field_validator("engine")
    @classmethod
    def _engine_url(cls, value: str) -> str:
        if not _ENGINE_URL.match(value):
            raise ValueError(f"invalid engine URL {value!r} (expected unix:///path, tcp://host:port or ssh://user@host)")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError(f"invalid address {value!r} (expected an IP address or a host name)")
        return value


class Volume(_Strict):
    """A named volume or an absolute host path, mounted at `target`."""

    source: str
    target: str
    read_only: bool = False


class OnlineMigration(_Strict):
    """A change no running version could follow, made online (like pt-online-schema-change):
    `copy` runs while the old version serves (it copies, and keeps the copy in step with
    every write); `cutover` runs inside a held window as short as stopping the old instances,
    the cut-over and the new instances' gate. A copy that fails must change nothing."""

    copy_command: Argv = Field(alias="copy")  # `copy` would shadow pydantic's BaseModel.copy
    cutover: Argv


class Migrations(_Strict):
    """Schema migration phases, each run as a one-shot instance of the NEW image.

    `bootstrap` runs before a service's first instance starts, when no instance of it exists
    (a first `up`, or a service new to the spec): it creates the schema, keys, a first admin, as
    Kolla's bootstrap containers do; it may run again after `down`, so it must be idempotent.
    `expand` runs before the rollout (additive: old and new versions both work after it);
    `contract` after no instance of an older generation remains; `offline` inside a held window
    (requests held, old instances stopped, migration, new instances started, requests released);
    `online` splits what `offline` would do into a copy made while the old version serves and a
    cut-over inside the held window.
    `status` prints the schema revision, recorded with each snapshot.
    `contract_after` names sets or services that must all run their spec's image before
    `contract` runs (Nova's online data migrations wait for the last old compute): an upgrade
    that leaves one of them on an older image leaves the contract for the run that upgrades the
    last of them.
    """

    bootstrap: Argv | None = None
    expand: Argv | None = None
    contract: Argv | None = None
    offline: Argv | None = None
    online: OnlineMigration | None = None
    status: Argv | None = None
    contract_after: Annotated[tuple[str, ...], BeforeValidator(_names)] = Field(
        default=(), description="sets or services that must all be upgraded before `contract` runs")
    timeout: Duration = 3600.0

    @model_validator(mode="after")
    def _offline_alone(self) -> Migrations:
        for kind in ("offline", "online"):
            if getattr(self, kind) is not None and (self.expand is not None or self.contract is not None):
                raise ValueError(f"an '{kind}' migration replaces expand/contract: give one or the other")
        if self.offline is not None and self.online is not None:
            raise ValueError("give 'offline' or 'online', not both")
        return self


class Service(_Strict):
    """A leaf of the tree: one image, N replicas."""

    image: str
    entrypoint: Argv | None = Field(default=None, description="replaces the image's entrypoint (and, as in Docker, its command)")
    command: Argv | None = None
    environment: Annotated[dict[str, str], BeforeValidator(_environment_values)] = Field(default_factory=dict)
    labels: Annotated[dict[str, str], BeforeValidator(_environment_values), AfterValidator(_user_labels)] = Field(
        default_factory=dict, description="container labels (io.hitless.* and com.docker.compose.* are reserved)")
    volumes: tuple[Annotated[Volume, BeforeValidator(_parse_volume)], ...] = ()
    hosts: Annotated[tuple[str, ...], BeforeValidator(_names)] = Field(
        default=(), description="a group, a host, or a list of hosts: `replicas` instances run on each")
    replicas: int = Field(default=1, ge=0)
    network: Network
    health: Health = Health()
    stop: Stop = Stop()
    drain: Drain = Drain()
    update: Update = Update()
    options: Options = Options()
    frontend: FrontendSpec | None = None
    migrations: Migrations | None = None

    @field_validator("image")
    @classmethod
    def _tagged(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"invalid image {value!r} (expected repo:tag; the tag carries the version)")
        return value


class ProcessImageSpec(_Strict):
    """What an image reference means to the process runtime: a command line and its environment.

    As in Docker, the instance runs `entrypoint + command`, and a service's (or a job's)
    `command` replaces the image's.
    """

    entrypoint: Argv = ()
    command: Argv = Field(default=(), description="the default command, replaced by a service's `command` as in Docker")
    environment: Annotated[dict[str, str], BeforeValidator(_environment_values)] = Field(default_factory=dict)
    workdir: str | None = Field(default=None, description="relative to the spec file's directory")


class SqliteSnapshot(_Strict):
    """An SQLite file, copied online with SQLite's backup API (no writer stopped)."""

    volume: str = Field(description="the named volume (or absolute host directory) holding the file")
    path: str = Field(description="the file's path inside the volume")


class VolumeSnapshot(_Strict):
    """A named volume, tarred by a short-lived helper instance."""

    name: str
    image: str | None = Field(default=None,
                              description="image with tar for the helper (default: the set's first service's image)")


class CommandSnapshot(_Strict):
    """The user's own hot backup: `backup` writes the file named by $HITLESS_SNAPSHOT, `restore` reads it."""

    backup: Argv
    restore: Argv
    where: Literal["host", "image"] = "host"


class SnapshotSpec(_Strict):
    """How a set's data is snapshotted before each upgrade of the set, and how many to keep."""

    sqlite: SqliteSnapshot | None = None
    volume: VolumeSnapshot | None = None
    command: CommandSnapshot | None = None
    keep: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> SnapshotSpec:
        kinds = [k for k in ("sqlite", "volume", "command") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of sqlite, volume, command" + (f" (not {' and '.join(kinds)})" if kinds else ""))
        return self

    @property
    def kind(self) -> str:
        """"sqlite", "volume" or "command"."""
        return next(k for k in ("sqlite", "volume", "command") if getattr(self, k) is not None)


class ProxySettings(_Strict):
    """Where the project's proxy runs, and how it is driven."""

    admin_socket: str = Field(default=".hitless/proxy.sock", description="relative to the spec file's directory")
    host: str | None = Field(default=None, description="a host of `hosts:` to run it on (default: this machine)")
    admin_port: int = Field(default=9901, ge=1, le=65535, description="on a host: its admin API's TCP port")


class Spec(_Strict):
    """The spec's top level, without the tree (the tree is validated node by node)."""

    project: str = Field(pattern=NAME_PATTERN)
    proxy: ProxySettings = ProxySettings()
    snapshots: dict[str, SnapshotSpec] = Field(default_factory=dict,
                                               description="by set path: data to snapshot before its upgrades")
    runtime: Literal["auto", "docker", "process"] = "auto"
    images: dict[str, ProcessImageSpec] = Field(default_factory=dict)
    hosts: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Host] = Field(default_factory=dict)
    groups: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Annotated[tuple[str, ...], BeforeValidator(_names)]] = Field(
        default_factory=dict, description="name → hosts, like an inventory's groups (control, compute)")
