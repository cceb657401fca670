"""Integration fixtures: a tiny test image made without any registry.

The image is Debian's static busybox binary plus one symlink per applet, imported with
`docker import` from a tar built here. It is tagged `hitless-test/busybox:1` and kept across
runs (building it again only when it is missing).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time

import pytest

BUSYBOX = "/bin/busybox"
BUSYBOX_IMAGE = "hitless-test/busybox:1"
_INDEX_HTML = b"hitless test page\n"


def ensure_busybox() -> str:
    """Path of a static busybox binary, installing Debian's busybox-static when absent."""
    if os.path.exists(BUSYBOX):
        return BUSYBOX
    if shutil.which("apt-get") is None:
        pytest.fail(f"{BUSYBOX} is missing and apt-get is not available to install busybox-static")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "busybox-static"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"could not install busybox-static: {done.stderr.strip()[-300:]}")
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"busybox-static installed but {BUSYBOX} is missing")
    return BUSYBOX


def _busybox_rootfs_tar(busybox: str) -> bytes:
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(info)

        for d in ("bin", "etc", "www", "data", "proc", "sys", "dev", "root"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet in ("busybox", "[", "[["):
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, now
            tar.addfile(link)
        for name, data in (
            ("www/index.html", _INDEX_HTML),
            ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
            ("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:
    """The tag of a local busybox image (built once, cached in the engine across runs)."""
    import docker

    try:
        docker_client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    repo, tag = BUSYBOX_IMAGE.rsplit(":", 1)
    docker_client.api.import_image_from_data(
        _busybox_rootfs_tar(ensure_busybox()),
        repository=repo,
        tag=tag,
        changes=['ENV PATH=/bin', 'CMD ["/bin/sh"]', "WORKDIR /"],
    )
    docker_client.images.get(BUSYBOX_IMAGE)  # fails loudly when the import did not tag it
    return BUSYBOX_IMAGE


# -- helpers for the runtime tests ------------------------------------------------------------

@pytest.fixture
def make_launch():
    """A factory of LaunchSpecs with a unique project per test."""
    import uuid

    from hitless.runtime.base import ContainerOptions, Labels, LaunchSpec

    project = f"rt-{uuid.uuid4().hex[:10]}"

    def make(
        name: str,
        image: str,
        command: tuple[str, ...] | None,
        *,
        port: int = 8080,
        network: str = "bridge",
        environment: dict[str, str] | None = None,
        mounts: tuple = (),
        stop_signal: str = "SIGTERM",
        options: ContainerOptions | None = None,
        slot: int = 0,
        generation: int = 1,
        one_shot: bool = False,
    ) -> LaunchSpec:
        return LaunchSpec(
            name=f"{project}-{name}",
            image=image,
            command=command,
            environment=dict(environment or {}),
            mounts=tuple(mounts),
            network=network,  # type: ignore[arg-type]
            stop_signal=stop_signal,
            options=options or ContainerOptions(),
            labels=Labels(
                project=project,
                set_path="tests/runtime",
                service=name,
                slot=slot,
                generation=generation,
                config_hash="cafe01",
                image=image,
                port=port,
            ),
            one_shot=one_shot,
        )

    make.project = project  # type: ignore[attr-defined]
    return make


@pytest.fixture
def project(tmp_path, docker_client, netapi_images):
    """Make netapi deployments (tests.support.project.Project) that are torn down afterwards."""
    from tests.support.project import Project

    made: list[Project] = []

    def make(template: str | None = None, **fields) -> Project:
        made.append(Project(tmp_path, docker_client, **({"template": template} if template else {}), **fields))
        return made[-1]

    yield make
    for p in made:
        p.cleanup()
