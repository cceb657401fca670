"""The networks netapi serves, stored the way each version stores them.

Each major version's code is what that release would really ship:
  1.0 reads and writes `networks` with the legacy `tenant_id` (no mtu, no revision numbers);
  2.0 reads and writes `networks` with `project_id`, `mtu` and `revision_number`; while the
      legacy `tenant_id` is still there (between expand and contract) it writes it too, so that
      1.0 replicas see 2.0's rows, and reads COALESCE(project_id, tenant_id), so that it sees
      1.0's. It notices a contract that happens while it runs: a statement that fails makes it
      look at the columns again and, if they changed, retry once;
  3.0 reads and writes `network_v3`.
Which schema revision a version accepts is checked once at open (schema.incompatibility).

Connections come from a small bounded pool; every one is in autocommit mode and writes are
explicit transactions, retried on deadlocks and lock timeouts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from . import schema
from .dialect import Connection, dialect_for, parse_url, sqlite_url

POOL_SIZE = 16
ATTEMPTS = 4  # a transaction that hits a deadlock or lock timeout is retried this many times in all

# Columns a list request may filter on, and how to read a query-string value for each.
FILTERS: dict[str, Any] = {
    "id": str, "name": str, "description": str, "status": str, "tenant_id": str, "project_id": str,
    "admin_state_up": "bool", "shared": "bool", "mtu": int, "revision_number": int,
}
V1_COLUMNS = "id, name, description, tenant_id, admin_state_up, shared, status, created_at, updated_at"

T = TypeVar("T")


def now() -> str:
    """A timestamp in Neutron's format."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp() -> str:
    """What is stored in created_at/updated_at: Neutron's format with microseconds, so that
    ordering by created_at is creation order across replicas."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def neutron_time(value: str) -> str:
    return value[:19] + "Z" if len(value) > 20 else value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


class Database:
    """One database (by URL, or a SQLite path), the connection pool, and netapi's queries."""

    def __init__(self, url: str, major: int = 1, version: str | None = None,
                 log: Callable[[str], None] = lambda message: None) -> None:
        if "://" not in url:
            url = sqlite_url(url)
        self.url = parse_url(url)
        self.dialect = dialect_for(self.url)
        self.major = major
        self.version = version or f"{major}.0"
        self.log = log
        self.revision: str | None = None  # the schema revision found at open()
        self._pool: queue.LifoQueue[Connection] = queue.LifoQueue(POOL_SIZE)
        self._slots = threading.BoundedSemaphore(POOL_SIZE)
        self._legacy_tenant = False  # 2.0: networks still has tenant_id (before contract)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return self.dialect.errors

    def open(self) -> None:
        """Bootstrap an empty database, then check that this version can serve on the schema.

        Raises schema.SchemaError (one line) when it cannot.
        """
        with self.connection() as conn:
            state = schema.bootstrap(conn, self.dialect, self.major, self.version, self.log)
            reason = schema.incompatibility(state, self.major, self.version)
            if reason:
                raise schema.SchemaError(reason)
            self.revision = state.revision
            self._legacy_tenant = self._has_tenant(conn)

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection (autocommit); at most POOL_SIZE are in use at once."""
        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self.dialect.connect()
            healthy = True
            try:
                yield conn
            except BaseException:
                healthy = self.dialect.alive(conn)
                raise
            finally:
                if healthy:
                    try:
                        self._pool.put_nowait(conn)
                    except queue.Full:
                        conn.close()
                else:
                    conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.connection() as conn:
            conn.execute(self.dialect.begin_write)
            try:
                yield conn
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except self.errors:
                    pass
                raise
            conn.execute("COMMIT")

    def _run(self, work: Callable[[Connection], T], write: bool) -> T:
        """Run `work` in a transaction (write) or on a connection, retrying what may be retried."""
        refreshed = False
        for attempt in range(ATTEMPTS):
            legacy_used = self._legacy_tenant  # the columns this attempt's statements assume
            try:
                if write:
                    with self.transaction() as conn:
                        return work(conn)
                with self.connection() as conn:
                    return work(conn)
            except self.errors as exc:
                if self.dialect.is_transient(exc) and attempt < ATTEMPTS - 1:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if self.major == 2 and not refreshed and "tenant_id" in str(exc) and self._contracted(legacy_used):
                    refreshed = True  # a contract ran meanwhile: once more, with the new columns
                    continue
                raise
        raise AssertionError("unreachable")

    def _has_tenant(self, conn: Connection) -> bool:
        return self.major == 2 and "tenant_id" in self.dialect.columns(conn, "networks")

    def _contracted(self, legacy_used: bool, wait: float = 2.0) -> bool:
        """After a statement failed on `tenant_id`: has the column gone? A table's definition can
        change a moment before the catalogue shows it (MariaDB), so look again for a little while."""
        deadline = time.monotonic() + wait
        while not self._schema_changed(legacy_used):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _schema_changed(self, legacy_used: bool) -> bool:
        """True when the columns differ from those a failed statement assumed. Compared with what
        that statement used, not with the shared flag: requests failing at the same time all
        retry, not only the first one to notice."""
        with self.connection() as conn:
            legacy = self._has_tenant(conn)
        if legacy != self._legacy_tenant:
            self._legacy_tenant = legacy
            self.log(f"networks.tenant_id is {'back' if legacy else 'gone (contracted)'}: queries adjusted")
        return legacy != legacy_used

    # what differs between versions

    @property
    def _table(self) -> str:
        return "network_v3" if self.major >= 3 else "networks"

    @property
    def _columns(self) -> str:
        return V1_COLUMNS if self.major == 1 else "*"

    @property
    def _order(self) -> str:
        return "seq" if self.major >= 3 else "created_at, id"

    def _owner(self) -> str:
        if self.major == 1:
            return "tenant_id"
        return "COALESCE(project_id, tenant_id)" if self._legacy_tenant else "project_id"

    # networks

    def create_network(self, project_id: str, name: str = "", description: str = "",
                       admin_state_up: bool = True, shared: bool = False, mtu: int = 1500) -> dict:
        network_id = str(uuid.uuid4())

        def insert(conn: Connection) -> dict:
            created = stamp()
            row: dict[str, Any] = {
                "id": network_id, "name": name, "description": description,
                "admin_state_up": bool(admin_state_up), "shared": bool(shared), "status": "ACTIVE",
                "created_at": created, "updated_at": created,
            }
            if self.major == 1:
                row["tenant_id"] = project_id
            else:
                row.update(project_id=project_id, mtu=mtu)
                if self._legacy_tenant:
                    row["tenant_id"] = project_id
            conn.execute(f"INSERT INTO {self._table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                         tuple(row.values()))
            return self._get(conn, network_id)  # type: ignore[return-value]

        return self._run(insert, write=True)

    def get_network(self, network_id: str) -> dict | None:
        return self._run(lambda conn: self._get(conn, network_id), write=False)

    def list_networks(self, filters: dict[str, list[str]]) -> list[dict]:
        """Networks matching every filter; a filter given several values matches any of them.

        Raises ValueError for a value that does not fit its column (e.g. shared=maybe).
        """
        converted: dict[str, list[Any]] = {}
        for key, values in filters.items():
            kind = FILTERS[key]
            if key in ("mtu", "revision_number") and self.major < 2:
                continue  # 1.0 has no such attribute; Neutron ignores unknown filters
            converted[key] = [parse_bool(v) if kind == "bool" else kind(v) for v in values]

        def select(conn: Connection) -> list[dict]:
            clauses, params = [], []
            for key, values in converted.items():
                column = self._owner() if key in ("project_id", "tenant_id") else key
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = conn.query(f"SELECT {self._columns} FROM {self._table}{where} ORDER BY {self._order}", params)
            return [self._record(r) for r in rows]

        return self._run(select, write=False)

    def update_network(self, network_id: str, changes: dict) -> dict | None:
        allowed = {"name", "description", "admin_state_up", "shared"} | ({"mtu"} if self.major >= 2 else set())
        values = {k: v for k, v in changes.items() if k in allowed}

        def update(conn: Connection) -> dict | None:
            assignments = dict(values, updated_at=stamp())
            sets = [f"{k} = ?" for k in assignments]
            if self.major >= 2:
                sets.append("revision_number = revision_number + 1")
            if self._legacy_tenant:
                sets.append("project_id = COALESCE(project_id, tenant_id)")
            count = conn.execute(f"UPDATE {self._table} SET {', '.join(sets)} WHERE id = ?",
                                 (*assignments.values(), network_id))
            return self._get(conn, network_id) if count else None

        return self._run(update, write=True)

    def delete_network(self, network_id: str) -> bool:
        return self._run(
            lambda conn: conn.execute(f"DELETE FROM {self._table} WHERE id = ?", (network_id,)) > 0, write=True)

    def _get(self, conn: Connection, network_id: str) -> dict | None:
        rows = conn.query(f"SELECT {self._columns} FROM {self._table} WHERE id = ?", (network_id,))
        return self._record(rows[0]) if rows else None

    def _record(self, row: dict[str, Any]) -> dict:
        """A row as the API layer sees it, whatever the version's table looks like."""
        project = row.get("project_id") or row.get("tenant_id") or ""
        return {
            "id": row["id"], "name": row["name"], "description": row["description"], "project_id": project,
            "admin_state_up": bool(row["admin_state_up"]), "shared": bool(row["shared"]), "status": row["status"],
            "mtu": row.get("mtu"), "revision_number": row.get("revision_number"),
            "created_at": neutron_time(row["created_at"]), "updated_at": neutron_time(row["updated_at"]),
        }
