"""The proxy's routing, as the master keeps it and the state file persists it.

Frontends (their configuration and pause flag) and their backends (id, address, and a state:
``ready``, ``warming`` or ``draining``). The master changes this table on every successful
admin change, writes it atomically to the state file, and gives it to every worker it starts;
a proxy started again with the same file serves the same routes before any admin call::

    {"version": 1, "frontends": [{"config": {...FrontendConfig...}, "paused": false,
      "backends": [{"id": "web-1", "address": "10.0.0.5:8080", "state": "ready"}]}]}

Only `load` and `save` do I/O.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitless.errors import BadInput
from hitless.proxy.config import FrontendConfig, parse_address

READY, WARMING, DRAINING = "ready", "warming", "draining"
STATES = (READY, WARMING, DRAINING)
VERSION = 1
STATE_FILE_NAME = "proxy-state.json"


@dataclass
class BackendRoute:
    """One backend as the table records it."""

    id: str
    address: str
    state: str = WARMING

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "state": self.state}


@dataclass
class FrontendRoute:
    """One frontend: its configuration, whether it holds requests, its backends."""

    config: FrontendConfig
    paused: bool = False
    backends: dict[str, BackendRoute] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "paused": self.paused,
                "backends": [b.to_dict() for b in self.backends.values()]}


class Routes:
    """The routing table: frontends by name, in the order they were added."""

    def __init__(self, frontends: dict[str, FrontendRoute] | None = None) -> None:
        self.frontends: dict[str, FrontendRoute] = frontends or {}

    # -- changes (each raises KeyError for a name that is not there) ---------------------

    def add_frontend(self, config: FrontendConfig) -> FrontendRoute:
        """A new frontend; the backends its config lists are `NAME-i`, warming."""
        route = FrontendRoute(config, backends={
            f"{config.name}-{i}": BackendRoute(f"{config.name}-{i}", address)
            for i, address in enumerate(config.backends)})
        self.frontends[config.name] = route
        return route

    def remove_frontend(self, name: str) -> None:
        del self.frontends[name]

    def set_paused(self, name: str, paused: bool) -> None:
        self.frontends[name].paused = paused

    def add_backend(self, frontend: str, backend_id: str, address: str,
                    ready: bool = False) -> BackendRoute:
        """Add (or replace) a backend."""
        parse_address(address)
        route = BackendRoute(backend_id, address, READY if ready else WARMING)
        self.frontends[frontend].backends[backend_id] = route
        return route

    def remove_backend(self, frontend: str, backend_id: str) -> None:
        del self.frontends[frontend].backends[backend_id]

    def drain_backend(self, frontend: str, backend_id: str) -> None:
        self.frontends[frontend].backends[backend_id].state = DRAINING

    def observe(self, frontend: str, backend_id: str, address: str, live_state: str) -> bool:
        """Record what health checks made of a backend; True if the table changed.

        Ready stays ready across a restart; down (or not yet ready) must pass its checks
        again. Draining is the admin's decision: checks never undo it.
        """
        route = self.frontends.get(frontend)
        backend = route.backends.get(backend_id) if route else None
        if backend is None or backend.address != address or backend.state == DRAINING:
            return False
        state = {"ready": READY, "down": WARMING, "warming": WARMING}.get(live_state)
        if state is None or state == backend.state:
            return False
        backend.state = state
        return True

    # -- whole tables ----------------------------------------------------------------

    def copy(self) -> Routes:
        """A copy to change: the configs are immutable and shared, the rest is new."""
        return Routes({name: FrontendRoute(r.config, r.paused,
                                           {i: dataclasses.replace(b) for i, b in r.backends.items()})
                       for name, r in self.frontends.items()})

    def with_configs(self, configs: list[FrontendConfig]) -> Routes:
        """This table with the frontends of a config file: the file's configuration, and
        (for a frontend the table has too) the table's backends and pause flag."""
        out = self.copy()
        for config in configs:
            known = out.frontends.get(config.name)
            if known is None:
                out.add_frontend(config)
                continue
            if config.port == 0 and known.config.host == config.host:
                # Port 0 was given a port when first bound: keep it across restarts.
                config = dataclasses.replace(config, listen=known.config.listen)
            known.config = config
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "frontends": [r.to_dict() for r in self.frontends.values()]}

    @classmethod
    def from_dict(cls, data: Any) -> Routes:
        """Read back `to_dict`; ValueError (or BadInput) saying what is wrong."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} routing table")
        items = data.get("frontends")
        if not isinstance(items, list):
            raise ValueError("'frontends' must be a list")
        routes = cls()
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("paused", False), bool):
                raise ValueError("a frontend must be a mapping with a boolean 'paused'")
            config = FrontendConfig.from_dict(item.get("config"))
            if config.name in routes.frontends:
                raise ValueError(f"frontend {config.name!r} appears twice")
            route = FrontendRoute(config, item.get("paused", False))
            for b in item.get("backends") or []:
                if not isinstance(b, dict) or b.get("state") not in STATES:
                    raise ValueError(f"frontend {config.name!r}: a backend needs a state "
                                     f"in {', '.join(STATES)}")
                backend_id, address = b.get("id"), b.get("address")
                if not isinstance(backend_id, str) or not backend_id or "/" in backend_id:
                    raise ValueError(f"frontend {config.name!r}: bad backend id {backend_id!r}")
                if not isinstance(address, str):
                    raise ValueError(f"frontend {config.name!r}: bad backend address")
                parse_address(address)
                route.backends[backend_id] = BackendRoute(backend_id, address, b["state"])
            routes.frontends[config.name] = route
        return routes


def default_state_file(admin_socket: str | os.PathLike[str]) -> str:
    """`proxy-state.json` beside the admin socket."""
    return str(Path(admin_socket).with_name(STATE_FILE_NAME))


def load(path: str | os.PathLike[str]) -> Routes | None:
    """The table saved in `path`; None when there is no such file (a first start).

    A file that cannot be read or understood is BadInput: starting with no routing instead
    would silently serve nothing.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the state file {path}: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        return Routes.from_dict(json.loads(text))
    except (ValueError, BadInput) as exc:
        raise BadInput(f"the state file {path} is corrupt ({exc}); move it away to start "
                       f"without the saved routing") from None


def save(path: str | os.PathLike[str], routes: Routes) -> None:
    """Write the table so that a reader (or a crash) sees the old file or the new, whole.

    A temporary file in the same directory (mode 0600), fsync, rename over, fsync the
    directory.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(routes.to_dict(), indent=1) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
