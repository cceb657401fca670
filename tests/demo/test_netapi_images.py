"""netapi's images, built locally without a registry (netapi:1.0, 2.0 and 3.0), run in Docker."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from hitless_demo.images import build_netapi_images
from tests.support.containers import wait_healthy

pytestmark = pytest.mark.docker
TEST_LABEL = {"io.hitless.test": "test_netapi_images"}


@pytest.fixture(scope="module")
def netapi_images(docker_client):
    started = time.monotonic()
    ids = build_netapi_images(docker_client, ("1.0", "2.0", "3.0"))
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
