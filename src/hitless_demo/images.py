"""The demo service's images, netapi:VERSION, built locally (no registry).

    python3 -m hitless_demo.images [--versions 1.0 2.0 3.0]

The base image is python:3.11-slim when the engine has or can pull it, otherwise the Debian base
hitless makes with debootstrap (cached in /var/cache/hitless; the first build takes about a
minute, later ones seconds). The database drivers come as wheels fetched once on this machine
(containers reach no registry) and are installed into the image by pip run from its own wheel.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hitless.errors import HitlessError, OperationFailed
from hitless.imagebuild import DEFAULT_CACHE_DIR, Progress, build_versioned_images, engine_client, quiet
from hitless_demo.paths import NETAPI_DIR
from hitless_demo.venvimage import fill_wheelhouse, pip_wheel

REPOSITORY = "netapi"
VERSIONS = ("1.0", "2.0", "3.0")
DRIVERS = ("PyMySQL==1.2.4", "psycopg2-binary==2.9.13")
NOT_IN_IMAGE = ("Dockerfile", "hitless.yaml", "compose.yaml", "*.md", "__pycache__", "*.pyc")


def _driver_wheels(wheelhouse: Path) -> list[Path]:
    """The wheels of DRIVERS in the wheelhouse (a wheel's name folds case and dashes)."""
    found = []
    for pin in DRIVERS:
        name, _, version = pin.partition("==")
        wheels = sorted(wheelhouse.glob(f"{name.lower().replace('-', '_')}-{version}-*.whl"))
        if not wheels:
            raise OperationFailed(f"no wheel of {pin} in {wheelhouse}")
        found.append(wheels[-1])
    return found


def stage_context(target: Path, wheelhouse: Path, progress: Progress = quiet) -> Path:
    """A build context for netapi's Dockerfile at `target`: the Dockerfile, the package as
    netapi/, and wheels/ with pip (as pip.whl) and the drivers."""
    fill_wheelhouse(wheelhouse, DRIVERS, what="netapi's database drivers", progress=progress)
    shutil.copy2(NETAPI_DIR / "Dockerfile", target / "Dockerfile")
    shutil.copytree(NETAPI_DIR, target / "netapi", ignore=shutil.ignore_patterns(*NOT_IN_IMAGE))
    wheels = target / "wheels"
    wheels.mkdir()
    shutil.copy2(pip_wheel(wheelhouse), wheels / "pip.whl")
    for wheel in _driver_wheels(wheelhouse):
        shutil.copy2(wheel, wheels / wheel.name)
    return target


def build_netapi_images(client: Any, versions: Sequence[str] = VERSIONS, cache_dir: Path | None = None,
                        progress: Progress = quiet) -> list[str]:
    """Build netapi:VERSION for each version; the image ids."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    with tempfile.TemporaryDirectory(prefix="netapi-context-") as scratch:
        context = stage_context(Path(scratch), cache / "wheelhouse", progress)
        return build_versioned_images(client, context, REPOSITORY, versions, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """Build the images; print each tag with its image id."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), metavar="VERSION")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    try:
        ids = build_netapi_images(engine_client(), args.versions, progress=progress)
    except HitlessError as exc:
        print(f"hitless_demo.images: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    for version, image_id in zip(args.versions, ids, strict=True):
        print(f"{REPOSITORY}:{version} {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
