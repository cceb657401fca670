"""What a proxy host is: the interface `ProxyControl` drives, and what it reports."""

from __future__ import annotations

import dataclasses
from typing import Protocol

STATE_FILE = "proxy-state.json"  # the proxy's persisted routing, beside its admin socket


@dataclasses.dataclass(frozen=True)
class Hosted:
    """The supervised proxy as its host sees it, without asking the proxy itself."""

    kind: str  # "docker" or "process"
    ident: str | None  # container id, or the supervisor's pid; None when nothing is hosted
    name: str | None  # container name, or "supervisor"
    state: str  # "running", "restarting", "exited", "created", or "missing"
    main_pid: int | None  # the proxy (master) process the host runs now, as a host pid
    restarts: int  # how often the host restarted the proxy
    version: str | None  # the hitless version the host was started with
    started: float | None  # epoch seconds the host (container, supervisor) started
    retired: tuple[str, ...] = ()  # earlier hosts still draining after a hand-over

    @property
    def alive(self) -> bool:
        """True while the host runs (the proxy may be between two restarts)."""
        return self.state in ("running", "restarting")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return dataclasses.asdict(self)


class ProxyHost(Protocol):
    """Starts, supervises, hands over and stops the proxy of one project."""

    kind: str

    def inspect(self) -> Hosted:
        """What runs now (reads the engine or the pidfile; never remembered)."""
        ...

    def launch(self, handover: bool) -> None:
        """Start a supervised proxy, or start again the stopped one. It takes over from a proxy
        answering on the admin socket (`handover`), else starts fresh (with the persisted
        routing). Returns once the host runs; the caller waits for the admin socket."""
        ...

    def retire(self) -> str | None:
        """Before a hand-over: the current host must not bring its proxy back once it drained
        and exited. Returns what `unretire` needs, None when nothing was hosted."""
        ...

    def unretire(self, token: str | None) -> None:
        """Undo `retire` and drop what `launch` started, after a hand-over that failed."""
        ...

    def remove_retired(self, wait: float) -> tuple[str, ...]:
        """Remove retired hosts that have exited (waiting up to `wait` s); those still draining."""
        ...

    def stop(self, timeout: float) -> bool:
        """Stop every proxy of the project (current and retired) gracefully: the proxy finishes
        in-flight requests, cut after `timeout`. True when one ran."""
        ...

    def logs_hint(self) -> str:
        """Where to read the proxy's log (for error messages)."""
        ...
