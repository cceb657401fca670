"""netapi's schema history: revisions, the phase each belongs to, and which version runs on which.

    revision       phase     what it does                                          runs 1.0  2.0  3.0
    1.0_base       base      networks (with the legacy tenant_id), schema_migrations    yes   -    -
    2.0_expand     expand    + mtu, revision_number, project_id (backfilled)            yes  yes   -
    2.0_contract   contract  - tenant_id (project_id backfilled once more first)         -   yes   -
    3.0_copy       copy      (optional) network_v3 filled online, kept in step with      -   yes   -
                             networks by triggers while 2.0 serves (netapi.db.online)
    3.0_offline    offline   networks -> network_v3: a surrogate key `seq`, id UNIQUE,  -    -   yes
                             project_id NOT NULL; every row copied, networks dropped
                             (after a copy: a cut-over, counts checked, networks dropped)

A phase applies, in order, the pending revisions this version knows (those of versions up to
its own) whose phase it may run: `expand` runs expand revisions only (old and new versions both
work after it), `contract` also runs pending expands, `offline` (and `cutover`, its name after a
copy) runs everything (nothing runs during an offline window). It stops at the first revision
it may not run, except an optional one (`3.0_copy`, made only by `netapi.migrate copy`): that
one is passed over.

Every step checks before it acts (column there? table there? row copied?), because MariaDB
commits each ALTER/CREATE/DROP on its own: a migration cut short is finished by running it
again. On SQLite and PostgreSQL a revision is one transaction (a savepoint on SQLite). Processes
that change the schema hold a lock while they do (MariaDB GET_LOCK, PostgreSQL advisory lock,
SQLite a BEGIN IMMEDIATE transaction around the whole phase), so two replicas bootstrapping an
empty database, or a migration run twice at once, apply each revision once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Callable

from . import online
from .dialect import Connection, Dialect

PHASES = ("expand", "contract", "offline", "copy", "cutover")
MAY_RUN = {
    "expand": {"base", "expand"},
    "contract": {"base", "expand", "contract"},
    "offline": {"base", "expand", "contract", "offline"},
    "cutover": {"base", "expand", "contract", "offline"},
}
MIGRATIONS_TABLE = "schema_migrations"

Log = Callable[[str], None]


class SchemaError(Exception):
    """The schema is not one this version can use or migrate; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Revision:
    name: str
    phase: str
    version: str  # the netapi version that introduced it
    apply: Callable[[Connection, Dialect, Log], None]
    optional: bool = False  # a phase that may not run it passes it over instead of stopping

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


# The first and last revision each major version runs on.
RUNS_ON = {1: ("1.0_base", "2.0_expand"), 2: ("2.0_expand", "3.0_copy"), 3: ("3.0_offline", "3.0_offline")}


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# steps: each checks before it acts


def _add_column(conn: Connection, d: Dialect, log: Log, table: str, column: str, ddl: str) -> None:
    if column in d.columns(conn, table):
        log(f"{table}.{column} is already there")
        return
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
    log(f"added column {table}.{column} {ddl}")


def _drop_column(conn: Connection, d: Dialect, log: Log, table: str, column: str) -> None:
    if column not in d.columns(conn, table):
        log(f"{table}.{column} is already gone")
        return
    if d.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        raise SchemaError(f"SQLite {sqlite3.sqlite_version} cannot drop a column (3.35 or later needed)")
    conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    log(f"dropped column {table}.{column}")


def _create_table(conn: Connection, d: Dialect, log: Log, table: str, body: str) -> None:
    if table in d.tables(conn):
        log(f"table {table} is already there")
        return
    conn.execute(f"CREATE TABLE {table} ({body}){d.table_options}")
    log(f"created table {table}")


def _create_index(conn: Connection, log: Log, name: str, table: str, columns: str) -> None:
    # IF NOT EXISTS: SQLite, PostgreSQL 9.5+ and MariaDB 10.1+ all have it.
    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")
    log(f"index {name} on {table} ({columns})")


def _network_columns(d: Dialect) -> str:
    """The columns every version's network table has (types spelled for the dialect)."""
    return f"""name VARCHAR(255) NOT NULL DEFAULT '',
        description VARCHAR(255) NOT NULL DEFAULT '',
        admin_state_up {d.bool_type} NOT NULL DEFAULT {d.true},
        shared {d.bool_type} NOT NULL DEFAULT {d.false},
        status VARCHAR(16) NOT NULL DEFAULT 'ACTIVE',
        created_at VARCHAR(32) NOT NULL,
        updated_at VARCHAR(32) NOT NULL"""


# revisions


def _base(conn: Connection, d: Dialect, log: Log) -> None:
    _create_table(conn, d, log, "networks", f"""
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(255) NOT NULL DEFAULT '',
        {_network_columns(d)}""")
    _create_index(conn, log, "networks_name", "networks", "name")


def _expand_2_0(conn: Connection, d: Dialect, log: Log) -> None:
    # All additive, all with defaults: 1.0's INSERTs (which name their columns) keep working.
    _add_column(conn, d, log, "networks", "mtu", "INTEGER NOT NULL DEFAULT 1500")
    _add_column(conn, d, log, "networks", "revision_number", "INTEGER NOT NULL DEFAULT 1")
    _add_column(conn, d, log, "networks", "project_id", "VARCHAR(255) NULL")
    _create_index(conn, log, "networks_project", "networks", "project_id")
    _backfill_project(conn, d, log)


def _backfill_project(conn: Connection, d: Dialect, log: Log) -> None:
    # 1.0 writes tenant_id only; 2.0 writes both while tenant_id exists, and reads
    # COALESCE(project_id, tenant_id), so rows 1.0 writes after this are still right.
    if "tenant_id" not in d.columns(conn, "networks"):
        return
    count = conn.execute("UPDATE networks SET project_id = tenant_id WHERE project_id IS NULL")
    log(f"backfilled project_id from tenant_id in {max(count, 0)} row(s)")


def _contract_2_0(conn: Connection, d: Dialect, log: Log) -> None:
    _backfill_project(conn, d, log)  # rows 1.0 wrote since expand
    _drop_column(conn, d, log, "networks", "tenant_id")


def create_v3(conn: Connection, d: Dialect, log: Log) -> None:
    # A table rebuild no online version could follow: a new name, a new primary key (a
    # surrogate `seq` that keeps creation order; the API's id becomes a unique key) and
    # project_id NOT NULL.
    _create_table(conn, d, log, "network_v3", f"""
        seq {d.autoincrement_pk},
        id VARCHAR(36) NOT NULL UNIQUE,
        project_id VARCHAR(255) NOT NULL,
        {_network_columns(d)},
        mtu INTEGER NOT NULL DEFAULT 1500,
        revision_number INTEGER NOT NULL DEFAULT 1""")
    _create_index(conn, log, "network_v3_project_name", "network_v3", "project_id, name")


def _copied_online(conn: Connection, d: Dialect, log: Log) -> None:
    raise SchemaError("3.0_copy is made by `python3 -m netapi.migrate copy`, while 2.0 serves")


def _offline_3_0(conn: Connection, d: Dialect, log: Log) -> None:
    if "networks" in d.tables(conn) and "3.0_copy" in read_state(conn, d).applied:
        online.cutover(conn, d, log)  # copied while 2.0 served: only the cut-over is left
        return
    create_v3(conn, d, log)
    if "networks" not in d.tables(conn):
        log("table networks is already gone")
        return
    columns = "id, name, description, admin_state_up, shared, status, created_at, updated_at, mtu, revision_number"
    source = ", ".join(f"n.{c}" for c in columns.split(", "))
    # Rows not copied yet, in creation order (seq follows it); a run cut short goes on from there.
    copied = conn.execute(
        f"INSERT INTO network_v3 ({columns}, project_id) SELECT {source}, COALESCE(n.project_id, '') "
        "FROM networks n LEFT JOIN network_v3 v ON v.id = n.id WHERE v.id IS NULL ORDER BY n.created_at, n.id")
    log(f"copied {max(copied, 0)} row(s) from networks to network_v3")
    missing = conn.scalar(
        "SELECT COUNT(*) FROM networks n LEFT JOIN network_v3 v ON v.id = n.id WHERE v.id IS NULL")
    if missing:
        raise SchemaError(f"{missing} row(s) of networks are not in network_v3: networks kept")
    total = conn.scalar("SELECT COUNT(*) FROM networks")
    conn.execute("DROP TABLE networks")
    log(f"dropped table networks ({total} row(s), all in network_v3)")


REVISIONS = (
    Revision("1.0_base", "base", "1.0", _base),
    Revision("2.0_expand", "expand", "2.0", _expand_2_0),
    Revision("2.0_contract", "contract", "2.0", _contract_2_0),
    Revision("3.0_copy", "copy", "3.0", _copied_online, optional=True),
    Revision("3.0_offline", "offline", "3.0", _offline_3_0),
)
ORDER = [r.name for r in REVISIONS]


def known(major: int) -> list[Revision]:
    """The revisions a netapi of this major version knows (its own and its predecessors')."""
    return [r for r in REVISIONS if r.major <= major]


def runs_on(major: int) -> tuple[str, str]:
    return RUNS_ON[min(max(major, 1), max(RUNS_ON))]


def versions_running_on(revision: str | None) -> list[str]:
    """The netapi versions that serve on a schema at this revision."""
    if revision not in ORDER:
        return []
    at = ORDER.index(revision)
    return [f"{m}.0" for m, (lo, hi) in sorted(RUNS_ON.items()) if ORDER.index(lo) <= at <= ORDER.index(hi)]


@dataclasses.dataclass(frozen=True)
class State:
    applied: tuple[str, ...]  # in ORDER, then any this code does not know
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.tables & {"networks", "network_v3", MIGRATIONS_TABLE}

    @property
    def unrecorded(self) -> bool:
        """A networks table without schema_migrations: made before revisions were recorded."""
        return MIGRATIONS_TABLE not in self.tables and "networks" in self.tables

    @property
    def revision(self) -> str | None:
        """The newest applied revision (an unknown one counts as newest)."""
        return self.applied[-1] if self.applied else None

    def unknown_to(self, major: int) -> list[str]:
        names = {r.name for r in known(major)}
        return [a for a in self.applied if a not in names]


def read_state(conn: Connection, d: Dialect) -> State:
    tables = frozenset(d.tables(conn))
    applied: list[str] = []
    if MIGRATIONS_TABLE in tables:
        rows = conn.query(f"SELECT revision FROM {MIGRATIONS_TABLE}")
        found = {r["revision"] for r in rows}
        applied = [name for name in ORDER if name in found] + sorted(found - set(ORDER))
    return State(tuple(applied), tables)


def incompatibility(state: State, major: int, version: str) -> str | None:
    """Why netapi `version` cannot serve on this schema, in one line; None when it can."""
    lo, hi = runs_on(major)
    if state.revision is None:
        return "the database has no netapi schema"
    if state.revision not in ORDER:
        return (f"schema revision {state.revision} is unknown to netapi {version} "
                f"(it runs on {lo}..{hi}); run a version made for it")
    at = ORDER.index(state.revision)
    if at < ORDER.index(lo):
        phase = next(r.phase for r in REVISIONS if r.name == lo)
        return (f"schema revision {state.revision} is too old for netapi {version} (it runs on {lo}..{hi}): "
                f"run `python3 -m netapi.migrate {phase}` with netapi {version} first")
    if at > ORDER.index(hi):
        return (f"schema revision {state.revision} is too new for netapi {version} (it runs on {lo}..{hi}); "
                f"versions that run on it: {', '.join(versions_running_on(state.revision)) or 'none'}")
    return None


def plan(state: State, phase: str, major: int, version: str) -> tuple[list[Revision], Revision | None]:
    """The revisions `phase` applies now, and the first pending one it may not run (or None)."""
    if phase not in MAY_RUN:
        raise SchemaError(f"unknown phase {phase!r} (one of {', '.join(PHASES)})")
    newer = state.unknown_to(major)
    if newer and incompatibility(state, major, version) is None:
        # An older version (a rollback) on a newer schema it still runs on: nothing to do.
        return [], None
    if newer:
        raise SchemaError(f"schema revision {newer[-1]} is newer than netapi {version} knows: "
                          f"this image cannot migrate it")
    todo: list[Revision] = []
    for revision in known(major):
        if revision.name in state.applied:
            continue
        if revision.phase not in MAY_RUN[phase]:
            if revision.optional:
                continue
            return todo, revision
        todo.append(revision)
    return todo, None


def _ensure_migrations_table(conn: Connection, d: Dialect) -> None:
    if MIGRATIONS_TABLE not in d.tables(conn):
        conn.execute(f"""CREATE TABLE {MIGRATIONS_TABLE} (
            revision VARCHAR(64) NOT NULL PRIMARY KEY,
            phase VARCHAR(16) NOT NULL,
            netapi_version VARCHAR(16) NOT NULL,
            applied_at VARCHAR(32) NOT NULL
        ){d.table_options}""")


def record_revision(conn: Connection, d: Dialect, revision: Revision, version: str) -> None:
    """Note the revision as applied."""
    _ensure_migrations_table(conn, d)
    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (revision, phase, netapi_version, applied_at) VALUES (?, ?, ?, ?)",
                 (revision.name, revision.phase, version, _stamp()))


def apply_revision(conn: Connection, d: Dialect, revision: Revision, version: str, log: Log) -> bool:
    """Apply one revision and record it; False when another process had applied it meanwhile.

    The caller holds the schema lock.
    """
    def step(message: str) -> None:
        log(f"{revision.name}: {message}")

    if revision.name in read_state(conn, d).applied:
        return False
    d.begin_revision(conn)
    try:
        revision.apply(conn, d, step)
        record_revision(conn, d, revision, version)
    except BaseException:
        try:
            d.rollback_revision(conn)
        except d.errors:
            pass
        raise
    d.commit_revision(conn)
    log(f"applied {revision.name} ({revision.phase})")
    return True


def run_phase(conn: Connection, d: Dialect, phase: str, major: int, version: str, log: Log) -> list[str]:
    """Apply what `phase` may apply now; the names of the revisions this call applied."""
    d.lock_schema(conn)
    try:
        state = read_state(conn, d)
        todo, blocked = plan(state, phase, major, version)
        applied = [r.name for r in todo if apply_revision(conn, d, r, version, log)]
        if blocked is not None:
            log(f"{phase}: stops before {blocked.name}, which is for the {blocked.phase} phase")
        return applied
    finally:
        d.unlock_schema(conn)


def bootstrap(conn: Connection, d: Dialect, major: int, version: str, log: Log) -> State:
    """At a netapi's start: make an empty database ready for this version; the state after.

    An empty database gets every revision this version knows (a fresh install of 2.0 starts on
    2.0's schema). A networks table made before revisions were recorded is adopted as 1.0_base.
    Anything else is left alone: only migration phases change an existing schema.
    """
    state = read_state(conn, d)
    if not (state.empty or state.unrecorded) and incompatibility(state, major, version) is None:
        return state
    # Maybe another replica is bootstrapping right now (MariaDB shows its tables one by one):
    # wait for its lock, then look again.
    d.lock_schema(conn)
    try:
        state = read_state(conn, d)
        if state.empty:
            log(f"empty database: creating the schema of netapi {version}")
            for revision in known(major):
                if not revision.optional:  # a way to get somewhere, not a place an empty database needs
                    apply_revision(conn, d, revision, version, log)
        elif state.unrecorded:
            log("a networks table without schema_migrations: recording it as 1.0_base")
            apply_revision(conn, d, REVISIONS[0], version, log)
        return read_state(conn, d)
    finally:
        d.unlock_schema(conn)
