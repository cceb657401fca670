"""The plan: a pure diff between the desired tree and the observed instances.

No I/O here. `make_plan` takes what the spec asks for and what the runtime reports, and says
for every slot whether it is created, replaced (and why), removed, or left alone.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from hitless.engine.desired import config_hash
from hitless.runtime.base import Instance
from hitless.spec.tree import DesiredTree, ServiceNode

Action = Literal["create", "replace", "remove", "keep"]
ACTIONS: tuple[Action, ...] = ("create", "replace", "remove", "keep")

# Why a slot is replaced or removed.
REASON_IMAGE = "image"  # the image tag changed
REASON_CONFIG = "config"  # the effective config changed
REASON_NOT_RUNNING = "not-running"  # the slot's instance exited or died
REASON_SCALED_DOWN = "scaled-down"  # slot index is at or above the new replica count
REASON_NOT_IN_SPEC = "not-in-spec"  # the service is no longer in the spec
REASON_SUPERSEDED = "superseded"  # an older generation left beside the slot's current one
REASON_HOST = "host"  # the slot's instance runs on another host than the spec places the slot on


@dataclasses.dataclass(frozen=True)
class Current:
    """The instance a slot has now."""

    instance_id: str
    name: str
    generation: int
    image: str
    config_hash: str
    state: str


@dataclasses.dataclass(frozen=True)
class SlotChange:
    """What the plan does to one slot (or to one stray instance)."""

    service_path: str
    slot: int
    action: Action
    reasons: tuple[str, ...]
    current: Current | None
    image: str | None  # desired image; None when removed
    config_hash: str | None
    host: str | None = None  # the spec's host the slot is on (for a removal: the instance's)

    def to_dict(self) -> dict:
        """A JSON-ready form."""
        return {
            "service": self.service_path,
            "slot": self.slot,
            "action": self.action,
            "reasons": list(self.reasons),
            "current": dataclasses.asdict(self.current) if self.current else None,
            "desired": {"image": self.image, "config_hash": self.config_hash} if self.image else None,
            "host": self.host,
        }


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every slot's change, services in upgrade order, slots ascending."""

    project: str
    changes: tuple[SlotChange, ...]

    def of(self, *actions: Action) -> list[SlotChange]:
        """The changes with one of these actions."""
        return [c for c in self.changes if c.action in actions]

    @property
    def is_noop(self) -> bool:
        """True when nothing would be created, replaced or removed."""
        return all(c.action == "keep" for c in self.changes)

    def summary(self) -> dict[str, int]:
        """How many slots per action."""
        return {a: sum(1 for c in self.changes if c.action == a) for a in ACTIONS}

    def to_dict(self) -> dict:
        """A JSON-ready form (what `hitless plan --json` prints)."""
        return {"project": self.project, "summary": self.summary(), "changes": [c.to_dict() for c in self.changes]}


def _current(instance: Instance) -> Current:
    lab = instance.labels
    return Current(instance.id, instance.name, lab.generation, lab.image, lab.config_hash, instance.state)


def _replace_reasons(instance: Instance, image: str, wanted_hash: str) -> tuple[str, ...]:
    reasons = []
    if instance.labels.image != image:
        reasons.append(REASON_IMAGE)
    if instance.labels.config_hash != wanted_hash:
        reasons.append(REASON_CONFIG)
    if not instance.running:
        reasons.append(REASON_NOT_RUNNING)
    return tuple(reasons)


def plan_service(node: ServiceNode, mine: list[Instance]) -> list[SlotChange]:
    """The changes to one service's slots, given its observed instances."""
    by_slot: dict[int, list[Instance]] = defaultdict(list)
    for inst in mine:
        by_slot[inst.labels.slot].append(inst)
    image, wanted_hash = node.service.image, config_hash(node)
    changes: list[SlotChange] = []
    for slot in sorted(set(range(node.slots)) | set(by_slot)):
        # The slot's current instance: running first, then the one already as the spec asks (an
        # interrupted upgrade or rollback leaves two), then the newest. The rest are leftovers.
        ranked = sorted(
            by_slot.get(slot, []),
            key=lambda i: (i.running, (i.labels.image, i.labels.config_hash) == (image, wanted_hash), i.labels.generation),
            reverse=True,
        )
        if slot >= node.slots:
            changes += [SlotChange(node.path, slot, "remove", (REASON_SCALED_DOWN,), _current(i), None, None, i.host_name)
                        for i in ranked]
            continue
        host = node.host_of(slot)
        if not ranked:
            changes.append(SlotChange(node.path, slot, "create", (), None, image, wanted_hash, host))
            continue
        head, rest = ranked[0], ranked[1:]
        reasons = _replace_reasons(head, image, wanted_hash)
        if head.host_name != host:
            reasons += (REASON_HOST,)
        changes.append(SlotChange(node.path, slot, "replace" if reasons else "keep", reasons, _current(head), image,
                                  wanted_hash, host))
        changes += [SlotChange(node.path, slot, "remove", (REASON_SUPERSEDED,), _current(i), None, None, i.host_name)
                    for i in rest]
    return changes


def make_plan(tree: DesiredTree, observed: Iterable[Instance], paths: Iterable[str] = ()) -> Plan:
    """The diff between the spec and what runs, for the selected subtrees (all when none)."""
    paths = tuple(paths)
    selected = tree.select(paths)
    by_service: dict[str, list[Instance]] = defaultdict(list)
    for inst in observed:
        if inst.labels.project == tree.project:
            by_service[inst.labels.service_path].append(inst)
    changes: list[SlotChange] = []
    for node in selected:
        changes += plan_service(node, by_service.pop(node.path, []))
    if not paths:
        # Only a whole-project plan may remove services the spec no longer names.
        known = {s.path for s in tree.services()}
        for path in sorted(set(by_service) - known):
            for inst in sorted(by_service[path], key=lambda i: (i.labels.slot, i.labels.generation)):
                changes.append(SlotChange(path, inst.labels.slot, "remove", (REASON_NOT_IN_SPEC,), _current(inst), None, None))
    return Plan(project=tree.project, changes=tuple(changes))
