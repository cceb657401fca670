#!/usr/bin/env python3
"""Build the demo images netapi:1.0, netapi:2.0 and netapi:3.0 locally, without any registry.

    python3 examples/netapi/build_images.py [--versions 1.0 2.0 3.0]

The base image is python:3.11-slim when the engine has or can pull it, otherwise one made with
debootstrap (cached in /var/cache/hitless; the first build takes about a minute, later ones
seconds). Other code calls hitless.imagebuild.build_netapi_images(client, versions).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hitless.errors import HitlessError
from hitless.imagebuild import NETAPI_REPOSITORY, build_netapi_images, engine_client

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["1.0", "2.0", "3.0"], metavar="VERSION")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    try:
        client = engine_client()
        ids = build_netapi_images(client, args.versions, context_dir=HERE, progress=progress)
    except HitlessError as exc:
        print(f"build_images: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    for version, image_id in zip(args.versions, ids):
        print(f"{NETAPI_REPOSITORY}:{version} {image_id}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
