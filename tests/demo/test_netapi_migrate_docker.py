"""A migration phase as the engine runs it: a one-shot container of the NEW image (netapi:2.0)
against the SQLite file the service keeps in a named volume; and the drivers the images carry."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest

from hitless_demo.localrun import create_scratch_database, drop_scratch_database
from tests.support.containers import wait_healthy
from tests.support.skips import skip_or_fail

pytestmark = pytest.mark.docker
TEST_LABEL = {"io.hitless.test": "test_netapi_migrate_docker"}
DATA = "/var/lib/netapi"


@pytest.fixture
def volume(docker_client):
    """A named volume, and every container a test starts on it; all removed whatever happens."""
    name = f"netapi-migrate-{uuid.uuid4().hex[:8]}"
    docker_client.volumes.create(name, labels=TEST_LABEL)
    started: list = []
    yield name, started
    for container in started:
        try:
            container.remove(force=True)
        except Exception:
            pass
    try:
        docker_client.volumes.get(name).remove(force=True)
    except Exception:
        pass


def one_shot(docker_client, started: list, image: str, command: list[str], volume: str | None = None,
             environment: dict | None = None, **kwargs) -> tuple[int, str, str]:
    """Run a container to its end: (exit status, stdout, stderr)."""
    container = docker_client.containers.run(
        image, command, detach=True, labels=TEST_LABEL, environment=environment or {},
        volumes={volume: {"bind": DATA, "mode": "rw"}} if volume else {}, **kwargs)
    started.append(container)
    code = container.wait(timeout=60)["StatusCode"]
    out = container.logs(stdout=True, stderr=False).decode()
    err = container.logs(stdout=False, stderr=True).decode()
    container.remove()
    started.remove(container)
    return code, out, err


def serve(docker_client, started: list, image: str, volume: str):
    container = docker_client.containers.run(image, detach=True, labels=TEST_LABEL,
                                             volumes={volume: {"bind": DATA, "mode": "rw"}})
    started.append(container)
    return container, wait_healthy(container, image)


def request(ip: str, method: str, path: str, body: object = None) -> dict:
    conn = http.client.HTTPConnection(ip, 9696, timeout=5)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        document = json.loads(response.read())
        assert response.status in (200, 201), document
        return document
    finally:
        conn.close()


def test_expand_as_a_one_shot_container_of_the_new_image(docker_client, netapi_images, volume):
    name, started = volume
    migrate = ["python3", "-m", "netapi.migrate"]
    # The image's SQLite can drop a column (3.35+), and the drivers are there.
    code, out, _ = one_shot(docker_client, started, "netapi:2.0", [
        "python3", "-c", "import sqlite3, pymysql, psycopg2; print(sqlite3.sqlite_version_info >= (3, 35))"])
    assert (code, out.strip()) == (0, "True")

    v1, ip = serve(docker_client, started, "netapi:1.0", name)
    made = request(ip, "POST", "/v2.0/networks", {"network": {"name": "before"}})["network"]
    v1.kill(signal="SIGTERM")
    assert v1.wait(timeout=30)["StatusCode"] == 0

    code, _, err = one_shot(docker_client, started, "netapi:2.0", migrate + ["expand"], name,
                            {"NETAPI_FAIL_MIGRATION": "expand"})
    assert code == 1 and "nothing was changed" in err
    code, out, err = one_shot(docker_client, started, "netapi:2.0", migrate + ["status"], name)
    assert code == 0 and json.loads(out)["revision"] == "1.0_base", err

    code, _, err = one_shot(docker_client, started, "netapi:2.0", migrate + ["expand"], name)
    assert code == 0 and "applied 2.0_expand" in err, err
    # The same through the service's own entry point (`python3 -m netapi` + `migrate PHASE`).
    code, _, err = one_shot(docker_client, started, "netapi:2.0", ["python3", "-m", "netapi", "migrate", "expand"],
                            name)
    assert code == 0 and "nothing to do" in err, err
    code, out, err = one_shot(docker_client, started, "netapi:2.0", migrate + ["status"], name)
    assert code == 0 and json.loads(out)["revision"] == "2.0_expand", err

    _, ip = serve(docker_client, started, "netapi:2.0", name)
    shown = request(ip, "GET", f"/v2.0/networks/{made['id']}")["network"]
    assert (shown["name"], shown["mtu"], shown["revision_number"]) == ("before", 1500, 1)


@pytest.mark.parametrize("backend", ["mysql", "postgresql"])
def test_images_reach_mariadb_and_postgresql_on_loopback_with_host_networking(docker_client, netapi_images,
                                                                            volume, backend):
    _, started = volume
    try:
        url = create_scratch_database(backend)
    except Exception as exc:  # no server here: skip, but fail under CI=true
        skip_or_fail(f"{backend} does not answer on 127.0.0.1: {exc}")
    try:
        env = {"NETAPI_DB_URL": url}
        code, _, err = one_shot(docker_client, started, "netapi:3.0", ["python3", "-m", "netapi.migrate", "offline"],
                                environment=env, network_mode="host")
        assert code == 0 and "applied 1.0_base, 2.0_expand, 2.0_contract, 3.0_offline" in err, err
        code, out, err = one_shot(docker_client, started, "netapi:3.0", ["python3", "-m", "netapi.migrate", "status"],
                                  environment=env, network_mode="host")
        assert code == 0 and json.loads(out)["runs"] == ["3.0"], err
    finally:
        drop_scratch_database(url)
