"""All of netapi's database code: schema, versioned migrations, and the network table.

SQLite in WAL mode with a busy timeout, because replicas (containers) share one file through a
volume. Migrations are numbered; each netapi version applies the ones it knows, up to its own
schema, at start, inside one IMMEDIATE transaction so two replicas starting together do not
apply the same migration twice. An older version runs on a newer schema (that is what a rollback
does), so every migration must keep the previous version's queries working (expand only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import sqlite3
import uuid
from collections.abc import Iterator

BUSY_TIMEOUT_S = 30.0
POOL_SIZE = 16

# (number, statements). Number N is recorded in PRAGMA user_version once applied.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (1, (
        """CREATE TABLE IF NOT EXISTS networks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            tenant_id TEXT NOT NULL DEFAULT '',
            admin_state_up INTEGER NOT NULL DEFAULT 1,
            shared INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'ACTIVE',
            mtu INTEGER NOT NULL DEFAULT 1500,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS networks_name ON networks (name)",
    )),
    # 2.0 (expand): networks get a revision counter; 1.0 ignores it and inserts the default.
    (2, ("ALTER TABLE networks ADD COLUMN revision_number INTEGER NOT NULL DEFAULT 1",)),
]

# The newest schema each major version knows.
SCHEMA_FOR_MAJOR = {1: 1, 2: 2}

# Columns a list request may filter on, and how to read a query-string value for each.
FILTERS = {
    "id": str, "name": str, "description": str, "status": str, "tenant_id": str, "project_id": str,
    "admin_state_up": "bool", "shared": "bool", "mtu": int, "revision_number": int,
}


def schema_for(major: int) -> int:
    """The schema version a netapi major version runs with."""
    known = [v for m, v in SCHEMA_FOR_MAJOR.items() if m <= major]
    return max(known) if known else 1


def now() -> str:
    """A timestamp in Neutron's format."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


class Database:
    """A small pool of SQLite connections to one file, and the queries netapi needs."""

    def __init__(self, path: str, schema: int = 1) -> None:
        self.path = path
        self.target_schema = schema
        self.schema = 0  # the file's schema version after open()
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(POOL_SIZE)

    def open(self) -> None:
        """Create the directory, the file, WAL mode and the schema as far as this version knows it."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        with self.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        self.schema = self.migrate(self.target_schema)

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            try:
                self._pool.put_nowait(conn)
            except queue.Full:
                conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; IMMEDIATE takes the write lock up front instead of failing late."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def migrate(self, target: int) -> int:
        """Apply the migrations up to `target` that the file lacks; returns the file's schema version."""
        with self.transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in MIGRATIONS:
                if current < number <= target:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")
                    current = number
            return current

    # networks

    def create_network(self, project_id: str, name: str = "", description: str = "",
                       admin_state_up: bool = True, shared: bool = False, mtu: int = 1500) -> dict:
        stamp = now()
        row = {
            "id": str(uuid.uuid4()), "name": name, "description": description, "tenant_id": project_id,
            "admin_state_up": int(admin_state_up), "shared": int(shared), "status": "ACTIVE", "mtu": mtu,
            "created_at": stamp, "updated_at": stamp,
        }
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO networks ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                tuple(row.values()),
            )
            return self._get(conn, row["id"])  # type: ignore[return-value]

    def get_network(self, network_id: str) -> dict | None:
        with self.connection() as conn:
            return self._get(conn, network_id)

    def list_networks(self, filters: dict[str, list[str]]) -> list[dict]:
        """Networks matching every filter; a filter given several values matches any of them.

        Raises ValueError for a value that does not fit its column (e.g. shared=maybe).
        """
        clauses, params = [], []
        for key, values in filters.items():
            kind = FILTERS[key]
            column = "tenant_id" if key == "project_id" else key
            if column == "revision_number" and self.schema < 2:
                continue
            converted = [int(parse_bool(v)) if kind == "bool" else kind(v) for v in values]  # type: ignore[operator]
            clauses.append(f"{column} IN ({', '.join('?' for _ in converted)})")
            params.extend(converted)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.connection() as conn:
            rows = conn.execute(f"SELECT * FROM networks{where} ORDER BY rowid", params).fetchall()
        return [self._row(r) for r in rows]

    def update_network(self, network_id: str, changes: dict) -> dict | None:
        allowed = {"name", "description", "admin_state_up", "shared", "mtu"}
        values = {k: (int(v) if isinstance(v, bool) else v) for k, v in changes.items() if k in allowed}
        values["updated_at"] = now()
        sets = [f"{k} = ?" for k in values]
        if self.schema >= 2:
            sets.append("revision_number = revision_number + 1")
        with self.transaction() as conn:
            cursor = conn.execute(f"UPDATE networks SET {', '.join(sets)} WHERE id = ?", (*values.values(), network_id))
            return self._get(conn, network_id) if cursor.rowcount else None

    def delete_network(self, network_id: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM networks WHERE id = ?", (network_id,)).rowcount > 0

    def _get(self, conn: sqlite3.Connection, network_id: str) -> dict | None:
        row = conn.execute("SELECT * FROM networks WHERE id = ?", (network_id,)).fetchone()
        return self._row(row) if row is not None else None

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        record = dict(row)
        record["admin_state_up"] = bool(record["admin_state_up"])
        record["shared"] = bool(record["shared"])
        return record
