"""The real OpenStack services of examples/openstack, as images: Keystone and Neutron releases
from PyPI, each in a virtualenv on the project's base image, served by gunicorn through
examples/openstack/wsgi-serve. Also the command-line client (openstacksdk and
python-openstackclient) in a virtualenv on this machine, from the same wheelhouse.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from hitless.errors import BadInput, OperationFailed
from hitless.imagebuild import DEFAULT_CACHE_DIR, Progress, _file_lock, _quiet, _tail
from hitless.venvimage import VENV_PATH, VenvImage, ensure_venv_images, fill_wheelhouse

OPENSTACK_CONTEXT = Path(__file__).resolve().parents[2] / "examples" / "openstack"

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


def openstack_image(tag: str, context: Path = OPENSTACK_CONTEXT) -> VenvImage:
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
                           progress: Progress = _quiet) -> list[str]:
    """Build (or find up to date) the images of these releases; their tags."""
    return ensure_venv_images(client, [openstack_image(tag) for tag in tags], cache_dir, progress)


def ensure_client(cache_dir: Path | None = None, progress: Progress = _quiet) -> Path:
    """A virtualenv on this machine with openstacksdk and the `openstack` command; its bin/."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    venv = cache / "openstack-client"
    marker = venv / ".complete"
    wanted = "\n".join(CLIENT_REQUIREMENTS) + "\n"
    with _file_lock(cache / "openstack-client.lock"):
        if marker.is_file() and marker.read_text() == wanted:
            return venv / "bin"
        fill_wheelhouse(cache / "wheelhouse", CLIENT_REQUIREMENTS, what="the OpenStack client", progress=progress)
        progress(f"making the OpenStack client's virtualenv at {venv}")
        for argv in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                     [str(venv / "bin" / "python3"), "-m", "pip", "install", "--quiet", "--no-index",
                      "--find-links", str(cache / "wheelhouse"), *CLIENT_REQUIREMENTS]):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise OperationFailed(f"making the OpenStack client failed: {_tail(done.stderr)}")
        marker.write_text(wanted)
    return venv / "bin"
