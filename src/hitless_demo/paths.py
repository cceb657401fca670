"""Where the demos find their files and where they write theirs.

Their files (netapi's source, Dockerfiles, specs, configs) are package data, found beside these
modules wherever the package is installed. What a demo writes (its derived specs, hitless's
state, reports) goes under the current directory, in `hitless-demo/`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
NETAPI_DIR = PACKAGE_DIR / "netapi"  # the netapi package, with its Dockerfile and hitless.yaml
# `python3 -m netapi` runs from here on this machine, as from /opt/netapi in its image; so no
# module beside it may take the name of one netapi imports (tests/demo/test_paths.py checks).
NETAPI_ROOT = PACKAGE_DIR
OPENSTACK_DIR = PACKAGE_DIR / "openstack"  # the OpenStack example: spec, configs, wsgi-serve
WORK_DIR_NAME = "hitless-demo"


def work_dir(name: str) -> Path:
    """A demo's own directory under `./hitless-demo/` (made when missing)."""
    path = Path.cwd() / WORK_DIR_NAME / name
    path.mkdir(parents=True, exist_ok=True)
    return path
