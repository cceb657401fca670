"""What goes into the proxy image: the proxy's modules, what they import, and their dependencies.

Containers reach no package registry, so the files come from this machine's installation (the
same as `pip install --target` would lay out, without a download): each distribution's files as
its RECORD lists them; of hitless, `hitless.proxy` and the hitless modules it imports (found
by reading the import statements, transitively), nothing else: a change to the engine, the
command line or the demos never rebuilds the proxy's image. The host's python3 and the image's
are both 3.11, so compiled extensions (uvloop, httptools) load in the image; the image build
imports them to prove it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import hitless

PROXY_DEPENDENCIES = ("uvloop", "httptools", "prometheus_client", "PyYAML")  # PyYAML: `--config FILE`
ROOTS = ("hitless.proxy",)  # the package the image runs, all of it


def _requirements(dist: importlib.metadata.Distribution) -> list[str]:
    """Names of what a distribution needs at run time (no extras), for this platform."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging comes with pip and matplotlib; without it, no closure
        return []
    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def distributions(names: Iterable[str] = PROXY_DEPENDENCIES) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need, with what they need in turn."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        dist = importlib.metadata.distribution(name)
        key = dist.metadata["Name"].lower().replace("-", "_")
        if key not in found:
            found[key] = dist
            pending += _requirements(dist)
    return [found[k] for k in sorted(found)]


def dependency_files(dists: Iterable[importlib.metadata.Distribution]) -> list[tuple[Path, str]]:
    """(file on this machine, path under site/) of every installed file of the distributions,
    but scripts outside site-packages and byte-code (compiled again in the image)."""
    files = []
    for dist in dists:
        for entry in dist.files or []:
            rel = PurePosixPath(str(entry))
            if rel.parts[0] == ".." or "__pycache__" in rel.parts or rel.suffix == ".pyc":
                continue
            source = Path(str(dist.locate_file(entry)))
            if source.is_file():
                files.append((source, str(rel)))
    return files


def _module_files(root: Path, name: str) -> list[Path]:
    """The files that make module or package `name` importable: its own, and its packages'
    `__init__.py` on the way down."""
    parts = name.split(".")[1:]
    files = [root / "__init__.py"]
    for depth in range(1, len(parts) + 1):
        if (root.joinpath(*parts[:depth]) / "__init__.py").is_file():
            files.append(root.joinpath(*parts[:depth]) / "__init__.py")
    module = root.joinpath(*parts).with_suffix(".py")
    if module.is_file():
        files.append(module)
    return files


def _imported(root: Path, path: Path) -> set[str]:
    """The hitless modules one file imports (a `from X import y` may name module X.y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hitless")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hitless":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if _module_files(root, name)[1:]}


def package_files(roots: Iterable[str] = ROOTS) -> list[tuple[Path, str]]:
    """(file, path under site/) of the hitless modules the image needs: every module under
    `roots`, and the closure of what they import."""
    root = Path(hitless.__file__).resolve().parent
    pending: list[Path] = []
    for name in roots:
        package = root.joinpath(*name.split(".")[1:])
        pending += _module_files(root, name) + sorted(package.rglob("*.py"))
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported(root, path):
            pending += _module_files(root, name)
    return sorted((p, f"hitless/{p.relative_to(root).as_posix()}") for p in seen)


def bundle_key(dists: Iterable[importlib.metadata.Distribution], own: list[tuple[Path, str]], *extra: str) -> str:
    """A key that changes when anything the image holds would: dependency versions, hitless's
    files (by content: a checkout changes without a new version), and `extra` (base image id,
    the Dockerfile)."""
    digest = hashlib.sha256()
    for dist in dists:
        digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    for source, rel in own:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(source.read_bytes()).digest())
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:24]


def stage(files: Iterable[tuple[Path, str]], site: Path) -> None:
    """Copy files under `site` (the image's PYTHONPATH)."""
    for source, rel in files:
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
