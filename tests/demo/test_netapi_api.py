"""netapi's API and database, called directly (no sockets)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from hitless_demo.netapi import config as netapi_config
from hitless_demo.netapi.api import Api, Request
from hitless_demo.netapi.db import Database, SchemaError, schema


def make_api(tmp_path: Path, version: str = "1.0", **kwargs) -> Api:
    cfg = netapi_config.Config(version=version, db_path=str(tmp_path / "n.db"))
    db = Database(cfg.database_url, major=cfg.major, version=version)
    db.open()
    return Api(cfg, db, **kwargs)


def migrate(tmp_path: Path, phase: str, version: str) -> list[str]:
    """Run a migration phase in-process, as netapi `version`'s migrate job would."""
    db = Database(str(tmp_path / "n.db"), major=int(version.split(".")[0]), version=version)
    try:
        with db.connection() as conn:
            return schema.run_phase(conn, db.dialect, phase, db.major, version, lambda message: None)
    finally:
        db.close()


def call(api: Api, method: str, target: str, body: object = None, headers: dict | None = None):
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response = api.handle(Request(method, target, headers or {"Host": "example:9696"}, raw))
    document = json.loads(response.body) if response.content_type == "application/json" and response.body else None
    return response.status, document


def test_config_from_env_defaults_and_errors():
    cfg = netapi_config.from_env({})
    assert (cfg.version, cfg.port, cfg.bind, cfg.db_path, cfg.shutdown_timeout) == (
        "1.0", 9696, "0.0.0.0", "/var/lib/netapi/netapi.db", None)
    cfg = netapi_config.from_env({"NETAPI_VERSION": "2.0", "HITLESS_PORT": "8080", "NETAPI_SHUTDOWN_TIMEOUT": "2.5"})
    assert (cfg.major, cfg.port, cfg.shutdown_timeout) == (2, 8080, 2.5)
    with pytest.raises(netapi_config.ConfigError, match="HITLESS_PORT"):
        netapi_config.from_env({"HITLESS_PORT": "http"})
    with pytest.raises(netapi_config.ConfigError, match="NETAPI_SHUTDOWN_TIMEOUT"):
        netapi_config.from_env({"NETAPI_SHUTDOWN_TIMEOUT": "-1"})


def test_versions_document_links_to_the_host_asked_for(tmp_path):
    status, doc = call(make_api(tmp_path), "GET", "/")
    assert status == 200
    assert doc == {"versions": [{"id": "v2.0", "status": "CURRENT",
                                 "links": [{"href": "http://example:9696/v2.0/", "rel": "self"}]}]}


def test_network_crud_and_filters(tmp_path):
    api = make_api(tmp_path)
    status, doc = call(api, "POST", "/v2.0/networks", {"network": {"name": "a", "admin_state_up": False}})
    assert status == 201
    net = doc["network"]
    assert net["name"] == "a" and net["admin_state_up"] is False and net["status"] == "ACTIVE"
    assert net["subnets"] == [] and net["shared"] is False and net["tenant_id"] == net["project_id"]
    assert "revision_number" not in net and "mtu" not in net
    _, b = call(api, "POST", "/v2.0/networks", {"network": {"name": "b", "shared": True}})
    assert [n["name"] for n in call(api, "GET", "/v2.0/networks")[1]["networks"]] == ["a", "b"]
    assert [n["name"] for n in call(api, "GET", "/v2.0/networks?name=b")[1]["networks"]] == ["b"]
    assert [n["name"] for n in call(api, "GET", "/v2.0/networks?shared=false")[1]["networks"]] == ["a"]
    both = call(api, "GET", f"/v2.0/networks?id={net['id']}&id={b['network']['id']}")[1]["networks"]
    assert len(both) == 2
    assert call(api, "GET", "/v2.0/networks?name=a&fields=id&fields=name")[1]["networks"] == [
        {"id": net["id"], "name": "a"}]
    assert call(api, "GET", "/v2.0/networks?limit=1")[1]["networks"][0]["name"] == "a"
    assert call(api, "GET", f"/v2.0/networks?marker={net['id']}")[1]["networks"][0]["name"] == "b"
    assert call(api, "GET", f"/v2.0/networks/{net['id']}")[1]["network"]["id"] == net["id"]
    status, doc = call(api, "PUT", f"/v2.0/networks/{net['id']}", {"network": {"name": "a2"}})
    assert status == 200 and doc["network"]["name"] == "a2"
    assert call(api, "DELETE", f"/v2.0/networks/{net['id']}") == (204, None)
    status, doc = call(api, "DELETE", f"/v2.0/networks/{net['id']}")
    assert status == 404 and doc["NeutronError"]["type"] == "NetworkNotFound"


@pytest.mark.parametrize("method,target,body,status,kind", [
    ("POST", "/v2.0/networks", b"{not json", 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": {"admin_state_up": "maybe"}}, 400, "HTTPBadRequest"),
    ("POST", "/v2.0/networks", {"network": "x"}, 400, "HTTPBadRequest"),
    ("GET", "/v2.0/networks?shared=maybe", None, 400, "HTTPBadRequest"),
    ("GET", "/v2.0/networks/nope", None, 404, "NetworkNotFound"),
    ("GET", "/v2.0/ports", None, 404, "HTTPNotFound"),
    ("PATCH", "/v2.0/networks", None, 405, "HTTPMethodNotAllowed"),
    ("POST", "/v2.0/snapshots?seconds=-1", None, 400, "HTTPBadRequest"),
])
def test_errors_have_neutron_shape(tmp_path, method, target, body, status, kind):
    got, doc = call(make_api(tmp_path), method, target, body)
    assert got == status
    assert doc["NeutronError"]["type"] == kind and doc["NeutronError"]["message"]


def test_snapshot_takes_the_seconds_asked_for(tmp_path):
    slept = []
    api = make_api(tmp_path, sleep=slept.append)
    status, doc = call(api, "POST", "/v2.0/snapshots", {"snapshot": {"seconds": 2.5}})
    assert status == 201 and doc["snapshot"]["status"] == "COMPLETED"
    call(api, "POST", "/v2.0/snapshots?seconds=4", None)
    assert slept == [2.5, 4.0]


def test_healthcheck_reports_draining(tmp_path):
    draining = []
    api = make_api(tmp_path, draining=lambda: bool(draining))
    response = api.handle(Request("GET", "/healthcheck", {}, b""))
    assert (response.status, response.body) == (200, b"OK")
    draining.append(True)
    assert api.handle(Request("GET", "/healthcheck", {}, b"")).status == 503


def test_version_2_needs_expand_then_runs_beside_1_0(tmp_path):
    old = make_api(tmp_path, "1.0")
    created = call(old, "POST", "/v2.0/networks", {"network": {"name": "old", "mtu": 9000}})[1]["network"]
    assert "mtu" not in created  # 1.0 knows no MTU and ignores it
    with pytest.raises(SchemaError, match="too old for netapi 2.0.*migrate expand"):
        make_api(tmp_path, "2.0")
    assert migrate(tmp_path, "expand", "2.0") == ["2.0_expand"]
    new = make_api(tmp_path, "2.0")
    assert new.db.revision == "2.0_expand"
    shown = call(new, "GET", f"/v2.0/networks/{created['id']}")[1]["network"]
    assert (shown["revision_number"], shown["mtu"], shown["project_id"]) == (1, 1500, "netapi")
    updated = call(new, "PUT", f"/v2.0/networks/{created['id']}", {"network": {"name": "x", "mtu": 1450}})[1]["network"]
    assert (updated["revision_number"], updated["mtu"]) == (2, 1450)
    status, jumbo = call(new, "POST", "/v2.0/networks", {"network": {"name": "jumbo", "mtu": 9000}},
                         headers={"X-Project-Id": "p2"})
    assert status == 201 and jumbo["network"]["mtu"] == 9000 and jumbo["network"]["tenant_id"] == "p2"
    assert call(new, "POST", "/v2.0/networks", {"network": {"mtu": 10}})[0] == 400
    aliases = {e["alias"] for e in call(new, "GET", "/v2.0/extensions")[1]["extensions"]}
    assert {"standard-attr-revisions", "net-mtu"} <= aliases
    old_aliases = {e["alias"] for e in call(old, "GET", "/v2.0/extensions")[1]["extensions"]}
    assert not {"standard-attr-revisions", "net-mtu"} & old_aliases
    # 1.0 keeps working on the expanded schema and sees 2.0's rows (a rollback would be this).
    assert call(old, "POST", "/v2.0/networks", {"network": {"name": "again"}})[0] == 201
    listed = call(old, "GET", "/v2.0/networks?tenant_id=p2")[1]["networks"]
    assert [n["name"] for n in listed] == ["jumbo"] and "mtu" not in listed[0]
    assert [n["name"] for n in call(new, "GET", "/v2.0/networks?project_id=netapi")[1]["networks"]] == ["x", "again"]


def test_concurrent_bootstraps_and_migrations_apply_each_revision_once(tmp_path):
    path = str(tmp_path / "n.db")
    errors = []

    def run(work):
        try:
            work()
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    def open_2_0():
        Database(path, major=2).open()

    threads = [threading.Thread(target=run, args=(open_2_0,)) for _ in range(4)]
    threads += [threading.Thread(target=run, args=(lambda: migrate(tmp_path, "contract", "2.0"),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert sorted(r[0] for r in conn.execute("SELECT revision FROM schema_migrations")) == [
        "1.0_base", "2.0_contract", "2.0_expand"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
