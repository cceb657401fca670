"""A request longer than any stop timeout, in flight when the upgrade starts, completes; the old
container is drained first and then exits by itself."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time

import pytest

from tests.support.load import Load
from tests.support.project import assert_ok

pytestmark = pytest.mark.docker


def test_a_request_longer_than_any_stop_timeout_completes_and_the_old_container_exits_by_itself(project):
    p = project(replicas=1)
    assert_ok(p.cli("up"))
    [old] = p.containers()
    outcome: dict = {}

    def long_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=300)
        conn.request("POST", "/v2.0/snapshots", body=json.dumps({"snapshot": {"seconds": 120}}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        outcome.update(status=response.status, version=response.getheader("X-Netapi-Version"), at=time.monotonic())
        conn.close()

    thread = threading.Thread(target=long_request)
    thread.start()
    time.sleep(1)
    p.write("2.0")
    with Load("127.0.0.1", p.port, workers=1) as load:
        result = p.cli("upgrade", timeout=400)
        finished = time.monotonic()
    thread.join(timeout=200)
    assert_ok(result)
    assert outcome["status"] == 201 and outcome["version"] == "1.0"
    assert outcome["at"] <= finished  # the upgrade waited for the request before it ended
    # SIGTERM was sent only after the drain, and the old container exited by itself, cleanly.
    assert re.search(rf"{old.name}: exited with code 0 after \d", result.stderr), result.stderr
    assert "SIGKILL" not in result.stderr
    assert old.id not in {c.id for c in p.containers()}
    assert load.failures() == [] and load.versions() >= {"2.0"}
