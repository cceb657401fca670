"""netapi's schema migrations on real databases (SQLite, MariaDB, PostgreSQL), with real netapi
processes serving while `python3 -m netapi.migrate PHASE` runs beside them, as a one-shot job would.

Each test gets its own database (a uniquely named one on the local server, dropped afterwards).
A server that does not answer skips its tests, except under CI=true, where they fail.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hitless_demo.localrun import create_scratch_database, drop_scratch_database, netapi_argv, run_migrate, start_netapi
from hitless_demo.paths import NETAPI_ROOT
from tests.support.net import free_port
from tests.support.skips import skip_or_fail


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def db_url(request, tmp_path):
    """An empty database of each kind, as a NETAPI_DB_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/netapi.db"
        return
    backend = "mysql" if request.param == "mariadb" else "postgresql"
    try:
        url = create_scratch_database(backend)
    except Exception as exc:  # no driver, no server: nothing to test against
        skip_or_fail(f"{request.param} does not answer on 127.0.0.1: {exc}")
    try:
        yield url
    finally:
        drop_scratch_database(url)


def call(app, method: str, path: str, body: object = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def create(app, name: str, **attrs) -> dict:
    status, doc = call(app, "POST", "/v2.0/networks", {"network": {"name": name, **attrs}},
                       headers={"X-Project-Id": "demo"})
    assert status == 201, doc
    return doc["network"]


def listed(app, query: str = "") -> list[dict]:
    status, doc = call(app, "GET", "/v2.0/networks" + query)
    assert status == 200, doc
    return doc["networks"]


class Writer:
    """Creates networks through one netapi, back to back, until stopped: writes during a migration."""

    def __init__(self, app, prefix: str) -> None:
        self.app, self.prefix = app, prefix
        self.created: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, doc = call(self.app, "POST", "/v2.0/networks",
                                   {"network": {"name": f"{self.prefix}-{len(self.created)}"}})
                if status == 201:
                    self.created.append(doc["network"]["id"])
                else:
                    self.failures.append(f"{status} {doc}")
            except OSError as exc:
                self.failures.append(repr(exc))
            time.sleep(0.01)

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(10)


def migrate(tmp_path: Path, db_url: str, phase: str, version: str, **env: str) -> subprocess.CompletedProcess:
    done = run_migrate(tmp_path, phase, version, db_url=db_url, env=env)
    return done


def status(tmp_path: Path, db_url: str, version: str) -> dict:
    done = migrate(tmp_path, db_url, "status", version)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def refused(tmp_path: Path, db_url: str, version: str) -> str:
    """Start netapi `version` on the database; it must exit 3 at once with a one-line reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETAPI_", "HITLESS_"))}
    env.update(NETAPI_VERSION=version, NETAPI_DB_URL=db_url, HITLESS_PORT=str(free_port()), NETAPI_BIND="127.0.0.1")
    done = subprocess.run(netapi_argv(), cwd=NETAPI_ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to start" in lines[0], done.stderr
    return lines[0]


def comparable(networks: list[dict]) -> list[tuple]:
    keys = ("id", "name", "project_id", "mtu", "revision_number", "admin_state_up", "shared", "created_at")
    return [tuple(n[k] for k in keys) for n in networks]


def test_expand_contract_offline_while_serving(tmp_path, db_url):
    v1 = start_netapi(tmp_path, "1.0", db_url=db_url)
    v2 = v3 = None
    try:
        # 1.0 made the base schema on the empty database.
        assert status(tmp_path, db_url, "2.0")["revision"] == "1.0_base"
        before = [create(v1, f"net{i}", admin_state_up=i % 2 == 0) for i in range(5)]
        assert "mtu" not in before[0]
        refused(tmp_path, db_url, "2.0")  # not before expand

        # The fault switch: expand fails, nothing changes, 1.0 serves on.
        failed = migrate(tmp_path, db_url, "expand", "2.0", NETAPI_FAIL_MIGRATION="expand")
        assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
        assert "expand failed" in failed.stderr and "nothing was changed" in failed.stderr
        assert status(tmp_path, db_url, "2.0")["revision"] == "1.0_base"

        # expand while 1.0 takes writes: no failed request.
        with Writer(v1, "during-expand") as writer:
            time.sleep(0.1)
            expanded = migrate(tmp_path, db_url, "expand", "2.0")
            time.sleep(0.1)
        assert expanded.returncode == 0, expanded.stderr
        assert "applied 2.0_expand" in expanded.stderr and "added column networks.mtu" in expanded.stderr
        assert writer.failures == [] and writer.created
        again = migrate(tmp_path, db_url, "expand", "2.0")
        assert again.returncode == 0 and "nothing to do" in again.stderr
        st = status(tmp_path, db_url, "2.0")
        assert (st["revision"], st["runs"], st["pending"]) == (
            "2.0_expand", ["1.0", "2.0"], [{"revision": "2.0_contract", "phase": "contract"}])

        # 1.0 and 2.0 side by side on the expanded schema: the same rows.
        v2 = start_netapi(tmp_path, "2.0", db_url=db_url)
        jumbo = create(v2, "jumbo", mtu=9000)
        old_view, new_view = listed(v1), listed(v2)
        assert [n["id"] for n in old_view] == [n["id"] for n in new_view]
        assert len(new_view) == len(before) + len(writer.created) + 1
        assert all("mtu" not in n and "revision_number" not in n for n in old_view)
        assert {n["mtu"] for n in new_view if n["id"] != jumbo["id"]} == {1500}
        assert next(n for n in old_view if n["id"] == jumbo["id"])["project_id"] == "demo"
        assert [n["name"] for n in listed(v1, "?tenant_id=demo")] == [n["name"] for n in listed(v2, "?project_id=demo")]
        assert call(v2, "GET", "/v2.0/networks?mtu=9000")[1]["networks"] == [
            call(v2, "GET", f"/v2.0/networks/{jumbo['id']}")[1]["network"]]

        # No 1.0 left: contract, while 2.0 (started before it) takes writes.
        assert v1.stop() == 0
        with Writer(v2, "during-contract") as writer2:
            time.sleep(0.1)
            contracted = migrate(tmp_path, db_url, "contract", "2.0")
            time.sleep(0.1)
        assert contracted.returncode == 0, contracted.stderr
        assert "dropped column networks.tenant_id" in contracted.stderr
        assert writer2.failures == [] and writer2.created
        assert "nothing to do" in migrate(tmp_path, db_url, "contract", "2.0").stderr
        status_code, updated = call(v2, "PUT", f"/v2.0/networks/{before[0]['id']}", {"network": {"mtu": 1450}})
        assert status_code == 200 and updated["network"]["revision_number"] == 2
        assert len(listed(v2, "?project_id=demo")) == len(before) + 1
        assert "too new for netapi 1.0" in refused(tmp_path, db_url, "1.0")
        assert "too old for netapi 3.0" in refused(tmp_path, db_url, "3.0")
        rows = listed(v2)
        assert v2.stop() == 0

        # 3.0's offline rebuild, with nothing running: every row kept, in order.
        offline = migrate(tmp_path, db_url, "offline", "3.0")
        assert offline.returncode == 0, offline.stderr
        assert f"copied {len(rows)} row(s)" in offline.stderr and "dropped table networks" in offline.stderr
        assert "nothing to do" in migrate(tmp_path, db_url, "offline", "3.0").stderr
        st = status(tmp_path, db_url, "3.0")
        assert (st["revision"], st["runs"], st["compatible"]) == ("3.0_offline", ["3.0"], True)
        assert "too new for netapi 2.0" in refused(tmp_path, db_url, "2.0")
        v3 = start_netapi(tmp_path, "3.0", db_url=db_url)
        assert comparable(listed(v3)) == comparable(rows)
        created = create(v3, "on-3", mtu=1400)
        assert listed(v3)[-1]["id"] == created["id"] and created["revision_number"] == 1
    finally:
        for app in (v1, v2, v3):
            if app is not None:
                app.stop()


def test_every_phase_is_idempotent_and_a_fresh_database_gets_the_version_schema(tmp_path, db_url):
    # An empty database and 2.0's contract: base, expand and contract in one go.
    first = migrate(tmp_path, db_url, "contract", "2.0")
    assert first.returncode == 0, first.stderr
    assert "applied 1.0_base, 2.0_expand, 2.0_contract" in first.stderr
    for phase in ("expand", "contract", "offline"):
        again = migrate(tmp_path, db_url, phase, "2.0")
        assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert status(tmp_path, db_url, "2.0")["applied"] == ["1.0_base", "2.0_expand", "2.0_contract"]
    # A 2.0 image cannot migrate a 3.0 schema: one line, exit 1.
    assert migrate(tmp_path, db_url, "offline", "3.0").returncode == 0
    newer = migrate(tmp_path, db_url, "expand", "2.0")
    assert newer.returncode == 1 and "newer than netapi 2.0" in newer.stderr
    assert newer.stderr.strip().splitlines()[-1].startswith("netapi.migrate: expand failed")


def test_a_fresh_3_0_bootstraps_its_own_schema_and_two_replicas_share_it(tmp_path, db_url):
    apps, errors = [], []

    def start() -> None:
        try:
            apps.append(start_netapi(tmp_path, "3.0", db_url=db_url))
        except Exception as exc:  # reported below
            errors.append(exc)

    try:
        # Two replicas start at once on the empty database: the schema is made once.
        starters = [threading.Thread(target=start) for _ in range(2)]
        for t in starters:
            t.start()
        for t in starters:
            t.join(60)
        assert errors == [] and len(apps) == 2
        made = [create(apps[i % 2], f"n{i}") for i in range(6)]
        assert [n["id"] for n in listed(apps[0])] == [n["id"] for n in made] == [n["id"] for n in listed(apps[1])]
        assert status(tmp_path, db_url, "3.0")["applied"] == ["1.0_base", "2.0_expand", "2.0_contract", "3.0_offline"]
    finally:
        for app in apps:
            app.stop()


class Churn(Writer):
    """Creates, renames and deletes networks through one netapi until stopped: every kind of
    write a copy's triggers must mirror."""

    def __init__(self, app, prefix: str, existing: list[str]) -> None:
        super().__init__(app, prefix)
        self.existing = list(existing)  # rows from before: renamed and deleted while they are copied
        self.deleted: list[str] = []

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                name = f"{self.prefix}-{len(self.created)}"
                status, doc = call(self.app, "POST", "/v2.0/networks", {"network": {"name": name}})
                if status == 201:
                    self.created.append(doc["network"]["id"])
                if self.existing:
                    victim = self.existing.pop()
                    answers = [call(self.app, "PUT", f"/v2.0/networks/{victim}", {"network": {"name": "renamed"}})[0]]
                    if len(self.existing) % 2:
                        answers.append(call(self.app, "DELETE", f"/v2.0/networks/{victim}")[0])
                        self.deleted.append(victim)
                    self.failures += [str(a) for a in answers if a not in (200, 204)]
            except OSError as exc:
                self.failures.append(repr(exc))
            time.sleep(0.005)


def test_copy_while_2_0_writes_then_cutover_keeps_every_row_in_creation_order(tmp_path, db_url):
    v2 = v3 = None
    try:
        assert migrate(tmp_path, db_url, "contract", "2.0").returncode == 0
        v2 = start_netapi(tmp_path, "2.0", db_url=db_url)
        before = [create(v2, f"net{i}")["id"] for i in range(120)]

        # A copy that fails half-way removes what it made: 2.0's schema as it was.
        failed = migrate(tmp_path, db_url, "copy", "3.0", NETAPI_FAIL_MIGRATION="copy-midway", NETAPI_COPY_CHUNK="25")
        assert failed.returncode == 1 and "nothing changed" in failed.stderr, failed.stderr
        st = status(tmp_path, db_url, "2.0")
        assert st["revision"] == "2.0_contract" and "3.0_copy" not in st["applied"]
        assert len(listed(v2)) == len(before)

        # A copy killed half-way leaves network_v3 and its triggers: the next copy starts again.
        from hitless_demo.netapi.db import online, schema
        from hitless_demo.netapi.db.dialect import dialect_for

        d = dialect_for(db_url)
        conn = d.connect()
        try:
            schema.create_v3(conn, d, lambda _: None)
            online._create_triggers(conn, d)
        finally:
            conn.close()

        # The copy, in chunks of 25, while 2.0 creates, renames and deletes.
        with Churn(v2, "during-copy", before) as churn:
            time.sleep(0.1)
            copied = migrate(tmp_path, db_url, "copy", "3.0", NETAPI_COPY_CHUNK="25")
            time.sleep(0.1)
        assert copied.returncode == 0, copied.stderr
        assert churn.failures == [] and churn.created and churn.deleted
        assert "removing what an interrupted copy left" in copied.stderr
        assert "copy done" in copied.stderr and "nothing to do" in migrate(tmp_path, db_url, "copy", "3.0").stderr
        st = status(tmp_path, db_url, "2.0")
        assert (st["revision"], st["compatible"]) == ("3.0_copy", True)  # 2.0 runs on, and may restart
        rows = listed(v2)
        assert {n["id"] for n in rows} == (set(before) - set(churn.deleted)) | set(churn.created)
        assert v2.stop() == 0

        # The cut-over, with nothing running: a moment's work, every row kept, creation order kept.
        cut = migrate(tmp_path, db_url, "cutover", "3.0")
        assert cut.returncode == 0, cut.stderr
        assert "cut over" in cut.stderr and "copied" not in cut.stderr
        assert status(tmp_path, db_url, "3.0")["revision"] == "3.0_offline"
        v3 = start_netapi(tmp_path, "3.0", db_url=db_url)
        assert comparable(listed(v3)) == comparable(rows)
        assert {n["name"] for n in listed(v3) if n["id"] in set(before) - set(churn.deleted)} >= {"renamed"}
    finally:
        for app in (v2, v3):
            if app is not None:
                app.stop()
