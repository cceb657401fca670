"""What goes into the proxy image: hitless's own package and the proxy's runtime dependencies.

Containers reach no package registry, so the files come from this machine's installation (the
same as `pip install --target` would lay out, without a download): each distribution's files as
its RECORD lists them, hitless from its package directory. The host's python3 and the image's
are both 3.11, so compiled extensions (uvloop, httptools) load in the image; the image build
imports them to prove it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import hitless

PROXY_DEPENDENCIES = ("uvloop", "httptools", "prometheus_client")


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


def package_files() -> list[tuple[Path, str]]:
    """(file, path under site/) of hitless's own package, as it is installed (or checked out)."""
    root = Path(hitless.__file__).resolve().parent
    return sorted((p, f"hitless/{p.relative_to(root).as_posix()}") for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


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
