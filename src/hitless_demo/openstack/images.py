"""The real OpenStack services of the OpenStack example, as images: releases from PyPI, each in a
virtualenv on the project's base image, served by gunicorn through the example's wsgi-serve.
Also the command-line client (openstacksdk and python-openstackclient) in a virtualenv on this
machine, from the same wheelhouse.

    python3 -m hitless_demo.openstack.images [--releases keystone:29.1.0 ...] [--no-client]

Wheels are fetched from PyPI once into /var/cache/hitless/wheelhouse (HITLESS_CACHE_DIR); a
second build needs no network, and an image already built from the same inputs is not built
again. Versions are pinned by constraints/*.txt.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hitless.errors import BadInput, HitlessError, OperationFailed
from hitless.imagebuild import DEFAULT_CACHE_DIR, Progress, engine_client, file_lock, quiet, tail
from hitless_demo.paths import OPENSTACK_DIR
from hitless_demo.venvimage import VENV_PATH, VenvImage, ensure_venv_images, fill_wheelhouse

# What each release needs beside itself. Neutron 28.0.2 admits neutron-lib 5, with which
# `GET /v2.0/networks` answers 500: its own release shipped with neutron-lib 3.25.
RELEASES: dict[str, tuple[str, ...]] = {
    "keystone:28.1.0": ("keystone==28.1.0",),
    "keystone:29.1.0": ("keystone==29.1.0",),
    "neutron:28.0.2": ("neutron==28.0.2", "neutron-lib==3.25.0"),
    "neutron:29.0.0": ("neutron==29.0.0",),
}
SERVER = ("gunicorn==27.0.1", "PyMySQL==1.2.4")
APPLICATIONS = {"keystone": "keystone.wsgi.api:application", "neutron": "neutron.wsgi.api:application"}
CLIENT_REQUIREMENTS = ("openstacksdk==4.22.0", "python-openstackclient==10.5.0")

DOCKERFILE = """\
ARG BASE
FROM ${{BASE}}
COPY venv/ {venv}/
COPY wsgi-serve {venv}/bin/wsgi-serve
RUN chmod 0755 {venv}/bin/wsgi-serve \\
 && mkdir -p /var/lib/{service} /etc/{service} \\
 && {venv}/bin/python3 -c "import gunicorn, pymysql, {service}"
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONUNBUFFERED=1
LABEL io.hitless.example="openstack" io.hitless.example.release="{tag}"
STOPSIGNAL SIGTERM
CMD ["wsgi-serve", "{application}"]
"""


def openstack_image(tag: str, context: Path = OPENSTACK_DIR) -> VenvImage:
    """The image of one release, e.g. `keystone:29.1.0`."""
    if tag not in RELEASES:
        raise BadInput(f"no OpenStack release {tag!r} in the example (known: {', '.join(RELEASES)})")
    service = tag.partition(":")[0]
    serve = context / "wsgi-serve"
    if not serve.is_file():
        raise BadInput(f"the openstack example is not at {context} (no wsgi-serve there)")
    constraints = context / "constraints" / f"{tag.replace(':', '-')}.txt"
    return VenvImage(
        tag=tag,
        requirements=RELEASES[tag] + SERVER,
        dockerfile=DOCKERFILE.format(venv=VENV_PATH, service=service, tag=tag, application=APPLICATIONS[service]),
        files={"wsgi-serve": serve.read_bytes()},
        constraints=constraints.read_text() if constraints.is_file() else "",
    )


def build_openstack_images(client: Any, tags: Sequence[str] = tuple(RELEASES), cache_dir: Path | None = None,
                           progress: Progress = quiet) -> list[str]:
    """Build (or find up to date) the images of these releases; their tags."""
    return ensure_venv_images(client, [openstack_image(tag) for tag in tags], cache_dir, progress)


def ensure_client(cache_dir: Path | None = None, progress: Progress = quiet) -> Path:
    """A virtualenv on this machine with openstacksdk and the `openstack` command; its bin/."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    venv = cache / "openstack-client"
    marker = venv / ".complete"
    wanted = "\n".join(CLIENT_REQUIREMENTS) + "\n"
    with file_lock(cache / "openstack-client.lock"):
        if marker.is_file() and marker.read_text() == wanted:
            return venv / "bin"
        fill_wheelhouse(cache / "wheelhouse", CLIENT_REQUIREMENTS, what="the OpenStack client", progress=progress)
        progress(f"making the OpenStack client's virtualenv at {venv}")
        for argv in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                     [str(venv / "bin" / "python3"), "-m", "pip", "install", "--quiet", "--no-index",
                      "--find-links", str(cache / "wheelhouse"), *CLIENT_REQUIREMENTS]):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise OperationFailed(f"making the OpenStack client failed: {tail(done.stderr)}")
        marker.write_text(wanted)
    return venv / "bin"


def main(argv: list[str] | None = None) -> int:
    """Build the images (and the client); print each tag with its image id."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
        print(f"hitless_demo.openstack.images: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
