"""The validated tree of sets and services, in declared (upgrade) order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from hitless.errors import BadInput
from hitless.spec.model import ProcessImageSpec, Service, Spec


@dataclasses.dataclass(frozen=True)
class ServiceNode:
    """A service at its place in the tree."""

    path: str  # "neutron/server"
    set_path: str  # "neutron"
    name: str  # "server"
    service: Service
    hosts: tuple[str, ...] = ()  # where it runs, its `hosts:` resolved (groups expanded); () = this machine

    @property
    def slots(self) -> int:
        """How many instances it has: `replicas` on each of its hosts."""
        return self.service.replicas * max(1, len(self.hosts))

    def host_of(self, slot: int) -> str | None:
        """The host a slot runs on (slots fill the hosts in order), None for this machine."""
        if not self.hosts or self.service.replicas == 0:
            return None
        return self.hosts[min(slot // self.service.replicas, len(self.hosts) - 1)]


@dataclasses.dataclass(frozen=True)
class SetNode:
    """A set: children upgraded in the order they are declared."""

    path: str  # "" for the root
    name: str
    children: tuple[Node, ...]

    def services(self) -> Iterator[ServiceNode]:
        """Every service below this set, depth first, in declared order."""
        for child in self.children:
            if isinstance(child, ServiceNode):
                yield child
            else:
                yield from child.services()

    def walk(self) -> Iterator[Node]:
        """This set and every node below it, depth first."""
        yield self
        for child in self.children:
            if isinstance(child, SetNode):
                yield from child.walk()
            else:
                yield child


Node = SetNode | ServiceNode


@dataclasses.dataclass(frozen=True)
class DesiredTree:
    """What the spec asks for: the project, its runtime choice and its tree."""

    spec: Spec
    root: SetNode
    base_dir: Path  # the spec file's directory; relative paths are read from here

    @property
    def project(self) -> str:
        """The project name every instance is labelled with."""
        return self.spec.project

    @property
    def process_images(self) -> dict[str, ProcessImageSpec]:
        """Image references as the process runtime understands them."""
        return self.spec.images

    def services(self) -> list[ServiceNode]:
        """Every service, in upgrade order."""
        return list(self.root.services())

    def node(self, path: str) -> Node:
        """A set or service by its path (`neutron`, `neutron/server`)."""
        wanted = path.strip("/")
        for node in self.root.walk():
            if node.path == wanted and node is not self.root:
                return node
        known = ", ".join(n.path for n in self.root.walk() if n is not self.root)
        raise BadInput(f"no set or service '{path}' in the spec (known: {known})")

    def select(self, paths: list[str] | tuple[str, ...] = ()) -> list[ServiceNode]:
        """The services under the given paths, in upgrade order; all services when no path is given."""
        if not paths:
            return self.services()
        chosen: set[str] = set()
        for path in paths:
            node = self.node(path)
            chosen.update(s.path for s in ([node] if isinstance(node, ServiceNode) else node.services()))
        return [s for s in self.services() if s.path in chosen]
