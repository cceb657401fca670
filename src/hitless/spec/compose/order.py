"""The tree a compose file becomes, in the order `depends_on` asks for.

Compose services are flat; `x-hitless.sets` may group them into sets (a set name → a list of
service names, or a mapping of the same shape, for sets in sets). Services no set names stay at
the top, where the file has them. At every level the children are ordered so that what a
service depends on comes first (stable: the file's order otherwise) — hitless upgrades the tree
in that order, each service healthy before the next starts, as compose starts them.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from typing import Any

from hitless.spec.model import NAME_PATTERN


@dataclasses.dataclass
class Group:
    """A set of the tree, or the root (name "")."""

    name: str
    children: list[Group | str] = dataclasses.field(default_factory=list)

    def services(self) -> list[str]:
        """Every service name below it."""
        found: list[str] = []
        for child in self.children:
            found += child.services() if isinstance(child, Group) else [child]
        return found


def check_dependencies(names: list[str], depends: dict[str, list[str]], problems: list[str]) -> bool:
    """Every dependency names a service of the file and none goes round in a cycle. False when not."""
    ok = True
    for name in names:
        for dep in depends.get(name, []):
            if dep not in depends:
                problems.append(f"services.{name}.depends_on: no service {dep!r} in the file")
                ok = False
    if not ok:
        return False
    done: set[str] = set()
    for start in names:
        # Depth first without recursion: a chain of thousands of services must not overflow the stack.
        trail: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                if name in done:
                    continue
                if name in trail:
                    cycle = trail[trail.index(name):] + [name]
                    problems.append(f"services.{cycle[0]}.depends_on: a cycle: {' → '.join(cycle)}")
                    return False
                trail.append(name)
            deps = depends.get(name, [])
            if index < len(deps):
                stack.append((name, index + 1))
                stack.append((deps[index], 0))
            else:
                trail.pop()
                done.add(name)
    return True


def _groups(raw: Any, path: str, names: set[str], placed: set[str], problems: list[str]) -> list[Group | str]:
    items: list[Group | str] = []
    entries = raw.items() if isinstance(raw, dict) else ((None, v) for v in raw) if isinstance(raw, list) else None
    if entries is None:
        problems.append(f"{path}: expected a mapping of set names to their services, or a list of services")
        return items
    for key, value in entries:
        if key is None:  # a list entry: a service name
            if not isinstance(value, str) or value not in names:
                problems.append(f"{path}: no service {value!r} in the file")
            elif value in placed:
                problems.append(f"{path}: service {value!r} is in more than one set")
            else:
                placed.add(value)
                items.append(value)
            continue
        where = f"{path}.{key}"
        if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
            problems.append(f"{where}: invalid set name (lowercase letters, digits, '-' and '_')")
        elif key in names:
            problems.append(f"{where}: a service is named {key!r} too")
        else:
            children = _groups(value, where, names, placed, problems)
            if not children:
                problems.append(f"{where}: a set needs at least one service")
            items.append(Group(key, children))
    return items


def _sorted(items: list[Group | str], position: dict[str, int], depends: dict[str, list[str]],
            where: str, problems: list[str]) -> list[Group | str]:
    """Items ordered dependencies first, otherwise by the file's order of their first service
    (Kahn's algorithm, the earliest ready item first)."""
    members = [i.services() if isinstance(i, Group) else [i] for i in items]
    item_of = {s: k for k, mine in enumerate(members) for s in mine}
    needs: list[set[int]] = [{item_of[d] for s in mine for d in depends[s] if item_of.get(d, k) != k}
                             for k, mine in enumerate(members)]
    waiting = [len(n) for n in needs]
    needed_by: list[list[int]] = [[] for _ in items]
    for k, mine in enumerate(needs):
        for j in mine:
            needed_by[j].append(k)
    first = [min(position[s] for s in mine) for mine in members]
    ready = [(first[k], k) for k in range(len(items)) if not waiting[k]]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for j in needed_by[k]:
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready, (first[j], j))
    if len(order) < len(items):
        stuck = ", ".join(i.name if isinstance(i, Group) else i for k, i in enumerate(items) if waiting[k])
        problems.append(f"{where}: {stuck} depend on each other through depends_on: put them in one set")
        return items
    result: list[Group | str] = []
    for k in order:
        item = items[k]
        if isinstance(item, Group):
            item.children = _sorted(item.children, position, depends, where, problems)
        result.append(item)
    return result


def tree(names: list[str], depends: dict[str, list[str]], sets: Any, problems: list[str]) -> Group:
    """The root of the tree: `x-hitless.sets` (None: no sets) and the other services, ordered."""
    placed: set[str] = set()
    grouped = _groups(sets, "x-hitless.sets", set(names), placed, problems) if sets is not None else []
    root = Group("", [*grouped, *(n for n in names if n not in placed)])
    position = {n: i for i, n in enumerate(names)}
    root.children = _sorted(root.children, position, depends, "x-hitless.sets", problems)
    return root
