"""The state journal: SQLite in WAL mode, every write one transaction.

It holds what cannot be read back from the runtime: the highest generation ever given to a slot
(so generations are never reused, even after the instance is gone), the record of each deployment,
and the last known good generation of each slot. What runs now is always read from the runtime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from hitless.errors import HitlessError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (
    project TEXT NOT NULL, service_path TEXT NOT NULL, slot INTEGER NOT NULL,
    last_generation INTEGER NOT NULL CHECK (last_generation >= 1),
    PRIMARY KEY (project, service_path, slot)
);
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL, command TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS deployment_slots (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    service_path TEXT NOT NULL, slot INTEGER NOT NULL, generation INTEGER NOT NULL,
    image TEXT NOT NULL, config_hash TEXT NOT NULL, action TEXT NOT NULL,
    PRIMARY KEY (deployment_id, service_path, slot, generation)
);
CREATE TABLE IF NOT EXISTS known_good (
    project TEXT NOT NULL, service_path TEXT NOT NULL, slot INTEGER NOT NULL,
    generation INTEGER NOT NULL, image TEXT NOT NULL, config_hash TEXT NOT NULL,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id), recorded_at TEXT NOT NULL,
    PRIMARY KEY (project, service_path, slot)
);
"""


class StateError(HitlessError):
    """The state database cannot be opened or written."""


@dataclasses.dataclass(frozen=True)
class SlotRecord:
    """One slot's generation, image and config as a deployment left it."""

    service_path: str
    slot: int
    generation: int
    image: str
    config_hash: str


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One run of `up` or `upgrade` and how it ended."""

    id: int
    project: str
    command: str
    started_at: str
    finished_at: str | None
    status: str
    detail: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Journal:
    """Transactional access to the state database; open one per command."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._transaction() as tx:
                tx.executescript_safe(_SCHEMA)
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot open state database: {exc}") from None
        version = int(self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(f"{path}: state database schema {version} is newer than this hitless ({SCHEMA_VERSION})")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator["_Tx"]:
        # BEGIN IMMEDIATE takes the write lock up front: two hitless processes never interleave.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Tx(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def allocate_generation(self, project: str, service_path: str, slot: int, observed_max: int = 0) -> int:
        """The slot's next generation: above every generation given before or seen running."""
        with self._transaction() as tx:
            row = tx.execute(
                "SELECT last_generation FROM slots WHERE project=? AND service_path=? AND slot=?",
                (project, service_path, slot),
            ).fetchone()
            generation = max(row[0] if row else 0, observed_max) + 1
            tx.execute(
                "INSERT INTO slots(project, service_path, slot, last_generation) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(project, service_path, slot) DO UPDATE SET last_generation=excluded.last_generation",
                (project, service_path, slot, generation),
            )
        return generation

    def last_generation(self, project: str, service_path: str, slot: int) -> int:
        """The highest generation ever given to the slot (0 when none)."""
        row = self._conn.execute(
            "SELECT last_generation FROM slots WHERE project=? AND service_path=? AND slot=?",
            (project, service_path, slot),
        ).fetchone()
        return row[0] if row else 0

    def begin_deployment(self, project: str, command: str) -> int:
        """Record the start of a deployment; returns its id."""
        with self._transaction() as tx:
            cur = tx.execute(
                "INSERT INTO deployments(project, command, started_at, status) VALUES (?, ?, ?, 'running')",
                (project, command, _now()),
            )
            return int(cur.lastrowid)

    def record_slot(self, deployment_id: int, record: SlotRecord, action: str) -> None:
        """Record what a deployment did to one slot."""
        with self._transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO deployment_slots VALUES (?, ?, ?, ?, ?, ?, ?)",
                (deployment_id, record.service_path, record.slot, record.generation, record.image, record.config_hash, action),
            )

    def finish_deployment(self, deployment_id: int, status: str, detail: str = "", good: Iterable[SlotRecord] = ()) -> None:
        """Close a deployment; on success its slots become the last known good, in the same transaction."""
        with self._transaction() as tx:
            tx.execute(
                "UPDATE deployments SET status=?, finished_at=?, detail=? WHERE id=?",
                (status, _now(), detail, deployment_id),
            )
            project = tx.execute("SELECT project FROM deployments WHERE id=?", (deployment_id,)).fetchone()[0]
            for record in good:
                tx.execute(
                    "INSERT OR REPLACE INTO known_good VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (project, record.service_path, record.slot, record.generation, record.image,
                     record.config_hash, deployment_id, _now()),
                )

    def forget_slots(self, project: str, service_path: str, keep_below: int) -> None:
        """Drop known-good records of slots at or above `keep_below` (the service was scaled down or removed)."""
        with self._transaction() as tx:
            tx.execute(
                "DELETE FROM known_good WHERE project=? AND service_path=? AND slot>=?",
                (project, service_path, keep_below),
            )

    def known_good(self, project: str) -> list[SlotRecord]:
        """The last known good generation of every slot of the project."""
        rows = self._conn.execute(
            "SELECT service_path, slot, generation, image, config_hash FROM known_good WHERE project=? "
            "ORDER BY service_path, slot",
            (project,),
        ).fetchall()
        return [SlotRecord(*row) for row in rows]

    def deployments(self, project: str, limit: int = 20) -> list[Deployment]:
        """The most recent deployments, newest first."""
        rows = self._conn.execute(
            "SELECT id, project, command, started_at, finished_at, status, detail FROM deployments "
            "WHERE project=? ORDER BY id DESC LIMIT ?",
            (project, limit),
        ).fetchall()
        return [Deployment(*row) for row in rows]


class _Tx:
    """The connection inside an open transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executescript_safe(self, script: str) -> None:
        # executescript() would COMMIT the open transaction; run the statements one by one instead.
        for statement in filter(None, (s.strip() for s in script.split(";"))):
            self._conn.execute(statement)
