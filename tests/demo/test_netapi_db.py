"""netapi's database layer without servers: URLs, the dialects' SQL, which phase applies what,
which version runs on which schema; and the whole 1.0 -> 2.0 -> 3.0 path on SQLite in-process."""

from __future__ import annotations

import sqlite3

import pytest

from hitless_demo.netapi import config as netapi_config
from hitless_demo.netapi import migrate as netapi_migrate
from hitless_demo.netapi.db import Database, SchemaError, UrlError, dialect_for, parse_url, schema


@pytest.mark.parametrize("text,expected", [
    ("sqlite:////var/lib/netapi/netapi.db", ("sqlite", "/var/lib/netapi/netapi.db", "", None, "", "", "")),
    ("sqlite:///rel.db", ("sqlite", "rel.db", "", None, "", "", "")),
    ("mysql://user:p%40ss@127.0.0.1:3306/netapi", ("mysql", "", "127.0.0.1", 3306, "user", "p@ss", "netapi")),
    ("mariadb+pymysql://root@db/netapi", ("mysql", "", "db", None, "root", "", "netapi")),
    ("postgresql://postgres@127.0.0.1:5432/test", ("postgresql", "", "127.0.0.1", 5432, "postgres", "", "test")),
    ("postgres://u:x@localhost/d", ("postgresql", "", "localhost", None, "u", "x", "d")),
])
def test_database_urls(text, expected):
    url = parse_url(text)
    assert (url.backend, url.path, url.host if url.backend != "sqlite" else "", url.port, url.user,
            url.password, url.database) == expected


@pytest.mark.parametrize("text", ["", "/var/lib/netapi.db", "oracle://x/y", "mysql://127.0.0.1:3306/",
                                  "postgresql://h:notaport/db", "sqlite://relative.db"])
def test_bad_database_urls_say_why(text):
    with pytest.raises(UrlError):
        parse_url(text)


def test_redacted_url_hides_the_password():
    assert parse_url("mysql://root:secret@127.0.0.1:3306/netapi").redacted() == "mysql://root:***@127.0.0.1:3306/netapi"
    assert "secret" not in repr(parse_url("postgresql://u:secret@h/d"))


def test_config_picks_the_url_over_the_sqlite_shorthand():
    assert netapi_config.from_env({"NETAPI_DB": "/data/n.db"}).database_url == "sqlite:////data/n.db"
    cfg = netapi_config.from_env({"NETAPI_DB": "/data/n.db", "NETAPI_DB_URL": "postgresql://postgres@127.0.0.1/x"})
    assert cfg.database_url == "postgresql://postgres@127.0.0.1/x"
    with pytest.raises(netapi_config.ConfigError, match="NETAPI_DB_URL"):
        netapi_config.from_env({"NETAPI_DB_URL": "nosuch://x"})
    assert netapi_config.from_env({"NETAPI_FAIL_MIGRATION": "Expand, offline"}).fail_migration == {"expand", "offline"}


def test_dialects_spell_placeholders_and_keys():
    sqlite, mysql, pg = (dialect_for(u) for u in ("sqlite:///x.db", "mysql://r@h/d", "postgresql://p@h/d"))
    assert sqlite.placeholders("a = ? AND b LIKE '5%'") == "a = ? AND b LIKE '5%'"
    assert mysql.placeholders("a = ? AND b LIKE '5%'") == "a = %s AND b LIKE '5%%'"
    assert pg.placeholders("a IN (?, ?)") == "a IN (%s, %s)"
    assert "AUTOINCREMENT" in sqlite.autoincrement_pk and "AUTO_INCREMENT" in mysql.autoincrement_pk
    assert "IDENTITY" in pg.autoincrement_pk
    assert (sqlite.bool_type, mysql.bool_type, pg.bool_type) == ("INTEGER", "BOOLEAN", "BOOLEAN")


def state(*applied: str) -> schema.State:
    tables = {"schema_migrations", "network_v3" if "3.0_offline" in applied else "networks"} if applied else set()
    return schema.State(tuple(applied), frozenset(tables))


def names(revisions) -> list[str]:
    return [r.name for r in revisions]


def test_each_phase_applies_only_what_it_may():
    base = state("1.0_base")
    todo, blocked = schema.plan(base, "expand", 2, "2.0")
    assert names(todo) == ["2.0_expand"] and blocked.name == "2.0_contract"
    assert names(schema.plan(base, "contract", 2, "2.0")[0]) == ["2.0_expand", "2.0_contract"]
    assert names(schema.plan(base, "offline", 3, "3.0")[0]) == ["2.0_expand", "2.0_contract", "3.0_offline"]
    contracted = state("1.0_base", "2.0_expand", "2.0_contract")
    # 3.0_copy, optional, is passed over: expand stops before the rebuild itself
    assert schema.plan(contracted, "expand", 3, "3.0") == ([], next(r for r in schema.REVISIONS if r.name == "3.0_offline"))
    assert names(schema.plan(contracted, "cutover", 3, "3.0")[0]) == ["3.0_offline"]
    copied = state("1.0_base", "2.0_expand", "2.0_contract", "3.0_copy")
    assert names(schema.plan(copied, "offline", 3, "3.0")[0]) == ["3.0_offline"]
    assert schema.plan(contracted, "contract", 2, "2.0") == ([], None)  # done: a no-op
    assert names(schema.plan(state(), "expand", 1, "1.0")[0]) == ["1.0_base"]
    with pytest.raises(SchemaError, match="newer than netapi 2.0"):
        schema.plan(state("1.0_base", "2.0_expand", "2.0_contract", "3.0_offline"), "expand", 2, "2.0")
    with pytest.raises(SchemaError, match="unknown phase"):
        schema.plan(base, "sideways", 2, "2.0")


@pytest.mark.parametrize("applied,runs", [
    (("1.0_base",), ["1.0"]),
    (("1.0_base", "2.0_expand"), ["1.0", "2.0"]),
    (("1.0_base", "2.0_expand", "2.0_contract"), ["2.0"]),
    (("1.0_base", "2.0_expand", "2.0_contract", "3.0_copy"), ["2.0"]),  # copied online: 2.0 serves on
    (("1.0_base", "2.0_expand", "2.0_contract", "3.0_offline"), ["3.0"]),
    (("1.0_base", "2.0_expand", "2.0_contract", "3.0_copy", "3.0_offline"), ["3.0"]),
])
def test_which_version_runs_on_which_revision(applied, runs):
    st = state(*applied)
    assert schema.versions_running_on(st.revision) == runs
    for major in (1, 2, 3):
        reason = schema.incompatibility(st, major, f"{major}.0")
        assert (reason is None) == (f"{major}.0" in runs), (major, reason)
        assert reason is None or "\n" not in reason


def test_refusals_say_what_to_do():
    too_old = schema.incompatibility(state("1.0_base"), 2, "2.0")
    assert "run `python3 -m netapi.migrate expand` with netapi 2.0" in too_old
    assert "too new for netapi 1.0" in schema.incompatibility(state("1.0_base", "2.0_expand", "2.0_contract"), 1, "1.0")
    assert "migrate offline" in schema.incompatibility(state("1.0_base", "2.0_expand", "2.0_contract"), 3, "3.0")
    future = schema.State(("1.0_base", "9.0_new"), frozenset({"schema_migrations", "networks"}))
    assert "9.0_new is unknown to netapi 1.0" in schema.incompatibility(future, 1, "1.0")


# The same path the integration tests take, in-process on SQLite (fast).

def run_phase(url: str, phase: str, version: str) -> list[str]:
    db = Database(url, major=int(version.split(".")[0]), version=version)
    try:
        with db.connection() as conn:
            return schema.run_phase(conn, db.dialect, phase, db.major, version, lambda message: None)
    finally:
        db.close()


def opened(url: str, version: str) -> Database:
    db = Database(url, major=int(version.split(".")[0]), version=version)
    db.open()
    return db


def test_2_0_keeps_serving_through_its_contract_and_3_0_offline_keeps_every_row(tmp_path):
    url = f"sqlite:///{tmp_path}/n.db"
    v1 = opened(url, "1.0")
    first = [v1.create_network("t1", name=f"net{i}") for i in range(5)]
    run_phase(url, "expand", "2.0")
    v2 = opened(url, "2.0")
    from_1 = v1.create_network("t1", name="after-expand")  # project_id NULL: 2.0 reads tenant_id
    assert v2.get_network(from_1["id"])["project_id"] == "t1"
    from_2 = v2.create_network("t2", name="by-2", mtu=9000)
    assert v1.get_network(from_2["id"])["project_id"] == "t2"  # 2.0 wrote tenant_id too
    assert [n["id"] for n in v1.list_networks({})] == [n["id"] for n in v2.list_networks({})]

    assert run_phase(url, "contract", "2.0") == ["2.0_contract"]
    # The same 2.0 object, opened before the contract, notices it and carries on.
    assert [n["name"] for n in v2.list_networks({"project_id": ["t1"]})][-1] == "after-expand"
    assert v2.update_network(from_1["id"], {"mtu": 1400})["revision_number"] == 2
    v2.create_network("t2", name="after-contract")
    with pytest.raises(sqlite3.Error):
        v1.create_network("t1", name="too-late")  # what a 1.0 left running would see
    with pytest.raises(SchemaError, match="too new for netapi 1.0"):
        opened(url, "1.0")
    before = v2.list_networks({})
    assert len(before) == 8 and before[0]["id"] == first[0]["id"]

    with pytest.raises(SchemaError, match="too old for netapi 3.0"):
        opened(url, "3.0")
    assert run_phase(url, "offline", "3.0") == ["3.0_offline"]
    assert run_phase(url, "offline", "3.0") == []
    v3 = opened(url, "3.0")
    assert v3.list_networks({}) == before  # every row, same order, same values
    with pytest.raises(SchemaError, match="too new for netapi 2.0"):
        opened(url, "2.0")
    for db in (v1, v2, v3):
        db.close()


def test_a_table_from_before_revisions_is_adopted_as_1_0_base(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)  # what netapi made before schema_migrations existed
    conn.execute("""CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '', tenant_id TEXT NOT NULL DEFAULT '',
        admin_state_up INTEGER NOT NULL DEFAULT 1, shared INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'ACTIVE', mtu INTEGER NOT NULL DEFAULT 1500,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""")
    conn.execute("INSERT INTO networks (id, name, tenant_id, created_at, updated_at) "
                 "VALUES ('n1', 'kept', 'p', '2024-01-01T10:00:00Z', '2024-01-01T10:00:00Z')")
    conn.commit()
    conn.close()
    v1 = opened(str(path), "1.0")
    assert v1.revision == "1.0_base" and v1.get_network("n1")["name"] == "kept"
    v1.close()
    assert run_phase(str(path), "expand", "2.0") == ["2.0_expand"]  # mtu was there already: skipped
    v2 = opened(str(path), "2.0")
    assert v2.get_network("n1")["project_id"] == "p"
    v2.close()


def test_migrate_command_status_fault_switch_and_usage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETAPI_DB", str(tmp_path / "m.db"))
    monkeypatch.setenv("NETAPI_VERSION", "2.0")
    monkeypatch.delenv("NETAPI_DB_URL", raising=False)
    assert netapi_migrate.main(["bogus"]) == 2
    monkeypatch.setenv("NETAPI_FAIL_MIGRATION", "expand")
    assert netapi_migrate.main(["expand"]) == 1
    assert "injected by NETAPI_FAIL_MIGRATION=expand; nothing was changed" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()  # not even opened
    monkeypatch.delenv("NETAPI_FAIL_MIGRATION")
    assert netapi_migrate.main(["expand"]) == 0
    assert netapi_migrate.main(["status"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and '"revision": "2.0_expand"' in out[0] and '"runs": ["1.0", "2.0"]' in out[0]
