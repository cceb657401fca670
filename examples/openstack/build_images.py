#!/usr/bin/env python3
"""Build the example's images — keystone:28.1.0, keystone:29.1.0, neutron:28.0.2, neutron:29.0.0 —
and the OpenStack client's virtualenv, locally; containers never reach PyPI.

    python3 examples/openstack/build_images.py [--releases keystone:29.1.0 ...] [--no-client]

Wheels are fetched from PyPI once into /var/cache/hitless/wheelhouse (HITLESS_CACHE_DIR); a
second build needs no network, and an image already built from the same inputs is not built
again. Versions are pinned by constraints/*.txt. Other code calls
hitless.openstack_images.build_openstack_images(client, releases).
"""

from __future__ import annotations

import argparse
import sys
import time

from hitless.errors import HitlessError
from hitless.imagebuild import engine_client
from hitless.openstack_images import RELEASES, build_openstack_images, ensure_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", default=list(RELEASES), metavar="IMAGE", choices=list(RELEASES))
    parser.add_argument("--no-client", action="store_true", help="skip the client's virtualenv")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        if not message.startswith("Step "):
            print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    try:
        client = engine_client(timeout=900)
        for tag in build_openstack_images(client, args.releases, progress=progress):
            print(f"{tag} {client.images.get(tag).id}")
        if not args.no_client:
            print(f"openstack client: {ensure_client(progress=progress) / 'openstack'}")
    except HitlessError as exc:
        print(f"build_images: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
