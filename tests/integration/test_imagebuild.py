"""Local images without a registry: the python3 base and images built on it (netapi's own images:
tests/demo/test_netapi_images.py)."""

from __future__ import annotations

import time

import pytest

from hitless import imagebuild
from hitless.errors import OperationFailed

# Without Docker: the parts that decide what to do.

def test_debian_mirror_reads_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    assert imagebuild.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert imagebuild.debian_mirror(tmp_path) == "http://other.example/debian"
    assert imagebuild.debian_mirror(tmp_path / "missing") == imagebuild.DEFAULT_MIRROR


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, name: str):
        import docker.errors

        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return type("Image", (), {"id": "sha256:" + name})()


class FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = FakeImages(present)
        self.imported: list[tuple[str, str, str]] = []
        self.api = self

    def import_image(self, src, repository, tag, changes):
        self.imported.append((src, repository, tag))
        self.images.present.add(f"{repository}:{tag}")


def test_existing_base_is_returned_without_work(tmp_path):
    client = FakeClient({imagebuild.OFFICIAL_BASE})
    assert imagebuild.ensure_base_image(client, cache_dir=tmp_path) == imagebuild.OFFICIAL_BASE
    client = FakeClient({imagebuild.LOCAL_BASE})
    assert imagebuild.ensure_base_image(client, cache_dir=tmp_path, try_official=False) == imagebuild.LOCAL_BASE
    assert client.imported == []


def test_cached_rootfs_tarball_is_reimported_without_debootstrap(tmp_path, monkeypatch):
    def no_debootstrap(*args):
        raise AssertionError("debootstrap must not run when the tarball is cached")

    monkeypatch.setattr(imagebuild, "_debootstrap_rootfs_tarball", no_debootstrap)
    stale = tmp_path / "python3-base-bookworm-2.tar"  # from when the base carried netapi's database drivers
    stale.write_bytes(b"an old tarball")
    tarball = tmp_path / "python3-base-bookworm-3.tar"
    tarball.write_bytes(b"not really a tarball")
    client = FakeClient({"hitless/python3-base:bookworm-2"})
    assert imagebuild.ensure_base_image(client, cache_dir=tmp_path, try_official=False) == imagebuild.LOCAL_BASE
    assert client.imported == [(str(tarball), "hitless/python3-base", "bookworm-3")]


def test_the_debootstrap_base_holds_python3_only():
    """Images built on it bring their own packages (netapi its drivers, as wheels)."""
    assert imagebuild.LOCAL_BASE == "hitless/python3-base:bookworm-3"
    assert imagebuild.BASE_PACKAGES == ("python3",)


# With Docker.

def test_base_image_is_cached(docker_client):
    imagebuild.ensure_base_image(docker_client)
    started = time.monotonic()
    base = imagebuild.ensure_base_image(docker_client)
    assert time.monotonic() - started < 2
    assert base in (imagebuild.OFFICIAL_BASE, imagebuild.LOCAL_BASE)


def test_build_failure_is_one_line_with_the_failing_step(docker_client, tmp_path):
    base = imagebuild.ensure_base_image(docker_client)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo about to fail && false\n")
    with pytest.raises(OperationFailed) as caught:
        imagebuild.build_image(docker_client, tmp_path, "hitless-test/broken:1", {})
    message = str(caught.value)
    assert "\n" not in message
    assert "RUN echo about to fail" in message and "about to fail" in message.split("':", 1)[-1]
