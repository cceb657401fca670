"""Frontend configuration: what the spec loader maps a service's `frontend:` section onto.

A frontend is one public listen address routed to the ready instances of one service.
Shape (YAML or JSON; every key but `name` and `listen` is optional)::

    frontends:
      - name: netapi                 # unique; used in the admin API and metrics
        listen: 0.0.0.0:9696         # host:port ("[::]:9696" for IPv6)
        proto: http                  # value of X-Forwarded-Proto
        health:
          path: /healthcheck         # null: a TCP connect is the check
          interval: 1.0              # seconds between checks of one backend
          timeout: 1.0               # seconds before one check counts as failed
          rise: 2                    # consecutive successes to become ready
          fall: 3                    # consecutive failures to be marked down
        hold:
          max_requests: 10000        # held requests at once, per frontend
          max_bytes: 67108864        # buffered request bytes at once (64 MiB)
          max_wait: 60.0             # seconds a request may be held
          release_concurrency: 16    # released requests in flight at once
          retry_after: 1             # Retry-After (s) on the 503 of an overflow
        timeouts:                    # seconds, on the client side
          keepalive: 75.0            # an idle connection between requests is closed
          head: 30.0                 # a request head must arrive within this (408)
          body: 60.0                 # a request body may stall this long (408)
          send: 60.0                 # a client may read none of its answer this long
        backends: [127.0.0.1:8001]   # optional; start warming, health-checked

Everything here is plain data: no I/O but `load_frontends`, which reads a file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitless.errors import BadInput

DEFAULT_ADMIN_SOCKET = "/run/hitless/proxy.sock"


@dataclass(frozen=True)
class HealthCheck:
    """Active health check of each backend of a frontend."""

    path: str | None = "/healthcheck"
    interval: float = 1.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 3

    def __post_init__(self) -> None:
        if self.path is not None and not self.path.startswith("/"):
            raise BadInput(f"health.path must start with '/': {self.path!r}")
        if self.interval <= 0 or self.timeout <= 0:
            raise BadInput("health.interval and health.timeout must be > 0")
        if self.rise < 1 or self.fall < 1:
            raise BadInput("health.rise and health.fall must be >= 1")


@dataclass(frozen=True)
class HoldLimits:
    """Bounds of a frontend's hold queue; a request over a bound gets 503 + Retry-After."""

    max_requests: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_wait: float = 60.0
    release_concurrency: int = 16
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.max_requests < 0 or self.max_bytes < 0 or self.max_wait < 0:
            raise BadInput("hold bounds must be >= 0")
        if self.release_concurrency < 1:
            raise BadInput("hold.release_concurrency must be >= 1")
        if self.retry_after < 0:
            raise BadInput("hold.retry_after must be >= 0")


@dataclass(frozen=True)
class Timeouts:
    """Client-side timeouts of a frontend: slow or idle clients never hold a connection for ever.

    None of them cuts a slow backend: a request the backend takes hours to answer completes.
    """

    keepalive: float = 75.0
    head: float = 30.0
    body: float = 60.0
    send: float = 60.0

    def __post_init__(self) -> None:
        for name in ("keepalive", "head", "body", "send"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise BadInput(f"timeouts.{name} must be a number of seconds > 0, not {value!r}")


@dataclass(frozen=True)
class FrontendConfig:
    """One public listen address and how its backends are checked and its requests held."""

    name: str
    listen: str
    proto: str = "http"
    health: HealthCheck = field(default_factory=HealthCheck)
    hold: HoldLimits = field(default_factory=HoldLimits)
    backends: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise BadInput(f"frontend name must be non-empty without '/': {self.name!r}")
        parse_address(self.listen)
        for address in self.backends:
            parse_address(address)

    @property
    def host(self) -> str:
        return parse_address(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_address(self.listen)[1]

    @classmethod
    def from_dict(cls, data: Any) -> FrontendConfig:
        """Build from plain data (parsed YAML/JSON: anything, checked); unknown keys are an error."""
        if not isinstance(data, dict):
            raise BadInput(f"a frontend must be a mapping, not {type(data).__name__}")
        data = dict(data)
        try:
            health = _sub(HealthCheck, data.pop("health", None), "health")
            hold = _sub(HoldLimits, data.pop("hold", None), "hold")
            timeouts = _sub(Timeouts, data.pop("timeouts", None), "timeouts")
            backends = tuple(str(b) for b in data.pop("backends", None) or ())
            _check_keys(cls, data, "frontend",
                        skip=frozenset({"health", "hold", "backends", "timeouts"}))
            return cls(**data, health=health, hold=hold, backends=backends, timeouts=timeouts)
        except TypeError as exc:
            raise BadInput(f"frontend {data.get('name', '?')}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `from_dict` reads back."""
        out = dataclasses.asdict(self)
        out["backends"] = list(self.backends)
        return out


def _check_keys(cls: type, data: dict[str, Any], where: str,
                skip: frozenset[str] = frozenset()) -> None:
    known = {f.name for f in dataclasses.fields(cls)} - skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}")


def _sub(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise BadInput(f"{where} must be a mapping")
    _check_keys(cls, data, where)
    return cls(**data)


def parse_address(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadInput(f"address must be host:port, not {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


def load_frontends(path: str | os.PathLike[str]) -> list[FrontendConfig]:
    """Read a frontends file (YAML or JSON): a list, or a mapping with a `frontends` list."""
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml  # only here: the proxy's hot path never needs it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("frontends", [])
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a list of frontends")
    frontends = [FrontendConfig.from_dict(item) for item in data]
    names = [f.name for f in frontends]
    if len(set(names)) != len(names):
        raise BadInput(f"{path}: duplicate frontend names")
    return frontends
