"""The proxy's pools against what runs: a pure diff, like the plan. No I/O here.

What runs is the truth: every running instance of a service with a frontend, whatever its image
(an instance deployed with `upgrade --image` counts as much as one the spec names), belongs in
its frontend's pool once healthy; a backend with no running instance behind it goes. Backends the
engine is draining or has drained are left alone while their instance runs: a run that was
killed mid-way left them so, and `resume` finishes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

PoolActionKind = Literal["add-frontend", "add", "readdress", "remove"]
RETIRING = ("draining", "gone")


@dataclasses.dataclass(frozen=True)
class Member:
    """A running instance of a service with a frontend, as observed now."""

    frontend: str
    backend_id: str  # the instance's name
    address: str  # host:port
    healthy: bool


@dataclasses.dataclass(frozen=True)
class ProxiedBackend:
    """A backend as the proxy has it."""

    address: str
    state: str  # warming, ready, down, draining, gone


@dataclasses.dataclass(frozen=True)
class PoolAction:
    """One change to the proxy."""

    kind: PoolActionKind
    frontend: str
    backend_id: str = ""
    address: str = ""
    why: str = ""

    def describe(self) -> str:
        """One line for a person."""
        if self.kind == "add-frontend":
            return f"add frontend {self.frontend} ({self.why})"
        verb = {"add": "add", "readdress": "re-address", "remove": "remove"}[self.kind]
        where = f" at {self.address}" if self.address and self.kind != "remove" else ""
        return f"{verb} {self.backend_id}{where} in {self.frontend} ({self.why})"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready form."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


@dataclasses.dataclass(frozen=True)
class PoolDiff:
    """What to change so that the pools match what runs."""

    actions: tuple[PoolAction, ...]
    unhealthy: tuple[Member, ...]  # running, not in the pool, not healthy: left out until they are

    @property
    def in_sync(self) -> bool:
        """True when nothing needs to change."""
        return not self.actions

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {"in_sync": self.in_sync, "actions": [a.to_dict() for a in self.actions],
                "unhealthy": [dataclasses.asdict(m) for m in self.unhealthy]}


def pools_of(frontends: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, ProxiedBackend]]:
    """The pools in the proxy's frontend list (its admin API's form): backends by id, by frontend."""
    return {str(f["name"]): {str(b["id"]): ProxiedBackend(str(b.get("address") or ""), str(b.get("state") or ""))
                             for b in f.get("backends", [])}
            for f in frontends}


def pool_diff(frontends: Iterable[str], pools: Mapping[str, Mapping[str, ProxiedBackend]],
              members: Iterable[Member]) -> PoolDiff:
    """The actions that bring the pools of `frontends` (the spec's, in its order) to `members`.

    `pools` is every frontend the proxy has, by name, with its backends by id; a frontend of
    the spec it lacks is added first. Frontends the spec does not name are not touched.
    Actions come frontend by frontend: adds before removes, so a pool is never emptier than it
    must be.
    """
    wanted = list(dict.fromkeys(frontends))
    by_frontend: dict[str, list[Member]] = {fe: [] for fe in wanted}
    for member in members:
        if member.frontend in by_frontend:
            by_frontend[member.frontend].append(member)
    actions = [PoolAction("add-frontend", fe, why="missing from the proxy") for fe in wanted if fe not in pools]
    unhealthy = []
    for fe in wanted:
        pool = pools.get(fe, {})
        running = {m.backend_id for m in by_frontend[fe]}
        for m in sorted(by_frontend[fe], key=lambda m: m.backend_id):
            known = pool.get(m.backend_id)
            if known is None:
                if m.healthy:
                    actions.append(PoolAction("add", fe, m.backend_id, m.address, "running and healthy, not in the pool"))
                else:
                    unhealthy.append(m)
            elif known.address != m.address and known.state not in RETIRING:
                # After a reboot an instance may come back on another address, and its old one
                # may now be another container's: the stale entry goes either way.
                why = f"the pool has {known.address}, it runs at {m.address}"
                if m.healthy:
                    actions.append(PoolAction("readdress", fe, m.backend_id, m.address, why))
                else:
                    actions.append(PoolAction("remove", fe, m.backend_id, known.address, why))
                    unhealthy.append(m)
        for backend_id in sorted(set(pool) - running):
            actions.append(PoolAction("remove", fe, backend_id, pool[backend_id].address, "no running instance"))
    return PoolDiff(tuple(actions), tuple(unhealthy))
