"""Import contracts: the product never imports its demos, its packages import each other without
a cycle, and the proxy's modules (at run time) neither.

Imports under `if TYPE_CHECKING:` count between packages (a cycle of types is a cycle of
design) but not between the proxy's modules, whose request path still names its classes in
annotations across modules (client, upstream and pool connections) until it is rebuilt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import hitless

SRC = Path(hitless.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py").is_file()


def _imported(path: Path, type_checking: bool) -> set[str]:
    """The modules one file imports (`from a.b import c` names module a.b.c when c is one)."""
    targets: set[str] = set()
    for node in _nodes(ast.parse(path.read_text()), type_checking):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets.add(node.module)
            targets.update(f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}"))
    return targets


def _nodes(tree: ast.Module, type_checking: bool) -> Iterator[ast.AST]:
    """Every node of `tree`; those under `if TYPE_CHECKING:` only when `type_checking`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if (not type_checking and isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def module_graph(root: Path, type_checking: bool) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module under `root`."""
    return {_module_name(path): _imported(path, type_checking) for path in sorted(root.rglob("*.py"))}


def package_graph(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The same graph between packages: names cut to their first `depth` parts (hitless.X for
    2), a package's own imports left out."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = ".".join(module.split(".")[:depth])
        for target in targets:
            cut = ".".join(target.split(".")[:depth])
            if cut != source and cut.startswith("hitless.") and _is_module(cut):
                packages.setdefault(source, set()).add(cut)
        packages.setdefault(source, set())
    return packages


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as a path that ends where it began; None when it has none."""
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


def demo_imports(graph: dict[str, set[str]]) -> list[str]:
    """`module -> target` for every product module that imports the demo package."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if target == "hitless_demo" or target.startswith("hitless_demo."))


def test_the_product_never_imports_the_demos():
    graph = module_graph(SRC, type_checking=True)
    assert len(graph) > 50
    assert demo_imports(graph) == []


def test_no_import_cycle_between_the_products_packages():
    packages = package_graph(module_graph(SRC, type_checking=True), depth=2)
    assert {"hitless.engine", "hitless.proxy", "hitless.proxyhost", "hitless.runtime", "hitless.spec"} <= set(packages)
    assert find_cycle(packages) is None, " -> ".join(find_cycle(packages) or [])


def test_no_import_cycle_between_the_proxys_parts():
    graph = {m: t for m, t in module_graph(SRC / "proxy", type_checking=True).items()}
    parts = package_graph(graph, depth=3)
    assert {"hitless.proxy.traffic", "hitless.proxy.master", "hitless.proxy.admin", "hitless.proxy.worker"} <= set(parts)
    assert find_cycle(parts) is None, " -> ".join(find_cycle(parts) or [])


def test_no_import_cycle_inside_the_proxy_at_run_time():
    graph = module_graph(SRC / "proxy", type_checking=False)
    assert len(graph) > 20
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_proxy_never_imports_the_command_line_or_the_engine():
    for package in ("proxy", "proxyhost"):
        for module, targets in module_graph(SRC / package, type_checking=True).items():
            assert not any(t.startswith(("hitless.cli", "hitless.engine")) for t in targets), module


def test_a_demo_import_and_a_cycle_are_found_when_there_are_some(tmp_path):
    """The checks above can fail: a product module that imports the demo is named, and so is a
    cycle between packages."""
    (tmp_path / "engine.py").write_text("from hitless_demo.netapi_demo import run\nimport hitless.spec.tree\n")
    graph = {"hitless.engine.upgrade": _imported(tmp_path / "engine.py", type_checking=True),
             "hitless.spec.tree": {"hitless.engine.upgrade"}}
    assert demo_imports(graph) == ["hitless.engine.upgrade -> hitless_demo.netapi_demo"]
    assert find_cycle(package_graph(graph, depth=2)) == ["hitless.engine", "hitless.spec", "hitless.engine"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
