"""The proxy's modules import each other without cycles, and never the command line.

Imports under `if TYPE_CHECKING:` are left out: they are not run, and the request path's
classes still name each other in annotations (client, upstream and pool connections).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hitless

SRC = Path(hitless.__file__).parent


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the hitless modules it imports (at any level), for every module of `package`."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / package).glob("*.py")):
        name = f"hitless.{package}.{path.stem}"
        targets: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("hitless"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hitless"):
                targets.add(node.module)
                # `from hitless.proxy import routes` names a module, not a package attribute
                targets.update(f"{node.module}.{a.name}" for a in node.names
                               if (SRC / node.module.removeprefix("hitless.").replace(".", "/") / f"{a.name}.py").exists())
        graph[name] = targets
    return graph


def _runtime_nodes(tree: ast.Module):
    """Every node of `tree` except what lies under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done or node not in graph:
            return None
        for target in sorted(graph[node]):
            found = visit(target, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in graph:
        found = visit(start, [])
        if found:
            return found
    return None


def test_no_import_cycle_inside_the_proxy_at_run_time():
    graph = _imports("proxy")
    assert len(graph) > 10
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_proxy_never_imports_the_command_line():
    for package in ("proxy", "proxyhost"):
        for module, targets in _imports(package).items():
            assert not any(t == "hitless.cli" or t.startswith("hitless.cli.") for t in targets), module


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
