"""Local images without a registry: the python3 base, netapi:1.0, 2.0 and 3.0, run in Docker."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from tests.support.containers import wait_healthy

from hitless import imagebuild
from hitless.errors import OperationFailed

TEST_LABEL = {"io.hitless.test": "test_imagebuild"}


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
    stale = tmp_path / "python3-base-bookworm.tar"  # from before the base had database drivers
    stale.write_bytes(b"an old tarball")
    tarball = tmp_path / "python3-base-bookworm-2.tar"
    tarball.write_bytes(b"not really a tarball")
    client = FakeClient({"hitless/python3-base:bookworm"})
    assert imagebuild.ensure_base_image(client, cache_dir=tmp_path, try_official=False) == imagebuild.LOCAL_BASE
    assert client.imported == [(str(tarball), "hitless/python3-base", "bookworm-2")]


def test_the_debootstrap_base_carries_the_database_drivers():
    assert imagebuild.LOCAL_BASE == "hitless/python3-base:bookworm-2"
    assert {"python3", "python3-pymysql", "python3-psycopg2"} <= set(imagebuild.BASE_PACKAGES)


# With Docker.

@pytest.fixture(scope="module")
def netapi_images(docker_client):
    started = time.monotonic()
    ids = imagebuild.build_netapi_images(docker_client, ("1.0", "2.0", "3.0"))
    assert len(ids) == 3 and all(i.startswith("sha256:") for i in ids)
    print(f"netapi images ready in {time.monotonic() - started:.1f} s")
    return ids


@pytest.fixture
def containers(docker_client):
    """Containers started by a test; removed (with their volumes) whatever happens."""
    started = []
    yield started
    for container in started:
        try:
            container.remove(force=True, v=True)
        except Exception:
            pass


def run_netapi(docker_client, containers, version: str):
    container = docker_client.containers.run(f"netapi:{version}", detach=True, labels=TEST_LABEL)
    containers.append(container)
    return container, wait_healthy(container, f"netapi:{version}")


def test_base_image_is_cached(docker_client):
    imagebuild.ensure_base_image(docker_client)
    started = time.monotonic()
    base = imagebuild.ensure_base_image(docker_client)
    assert time.monotonic() - started < 2
    assert base in (imagebuild.OFFICIAL_BASE, imagebuild.LOCAL_BASE)


def test_netapi_images_answer_with_their_version(docker_client, netapi_images, containers):
    for version in ("1.0", "2.0", "3.0"):
        _, ip = run_netapi(docker_client, containers, version)
        conn = http.client.HTTPConnection(ip, 9696, timeout=5)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("X-Netapi-Version") == version
        assert json.loads(response.read())["versions"][0]["id"] == "v2.0"
        conn.close()


def test_sigterm_lets_the_slow_request_finish_and_exits_0(docker_client, netapi_images, containers):
    container, ip = run_netapi(docker_client, containers, "1.0")
    result: dict = {}

    def slow() -> None:
        conn = http.client.HTTPConnection(ip, 9696, timeout=30)
        try:
            conn.request("POST", "/v2.0/snapshots?seconds=2")
            response = conn.getresponse()
            result.update(status=response.status, body=response.read())
        except Exception as exc:  # reported through the result
            result["error"] = repr(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    time.sleep(0.3)
    container.kill(signal="SIGTERM")
    assert container.wait(timeout=30)["StatusCode"] == 0
    thread.join(5)
    assert result.get("status") == 201, result
    logs = container.logs().decode()
    assert "waiting for 1 in-flight request(s)" in logs and "exit 0" in logs


def test_build_failure_is_one_line_with_the_failing_step(docker_client, tmp_path):
    base = imagebuild.ensure_base_image(docker_client)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo about to fail && false\n")
    with pytest.raises(OperationFailed) as caught:
        imagebuild.build_image(docker_client, tmp_path, "hitless-test/broken:1", {})
    message = str(caught.value)
    assert "\n" not in message
    assert "RUN echo about to fail" in message and "about to fail" in message.split("':", 1)[-1]
