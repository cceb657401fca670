"""The state journal: SQLite in WAL mode, every write one transaction.

It holds what cannot be read back from the runtime: the highest generation ever given to a slot
(so generations are never reused, even after the instance is gone), the record of each deployment,
and the last known good generation of each slot. What runs now is always read from the runtime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from hitless.errors import StateDamaged, StateError
from hitless.state import dbfile

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
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'rolled-back')),
    phase TEXT NOT NULL DEFAULT 'forward' CHECK (phase IN ('forward', 'rollback')),
    request TEXT NOT NULL DEFAULT '{}',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS steps (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    seq INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'done', 'failed')),
    detail TEXT NOT NULL DEFAULT '', started_at TEXT NOT NULL, finished_at TEXT,
    PRIMARY KEY (deployment_id, seq)
);
CREATE TABLE IF NOT EXISTS deployment_slots (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    service_path TEXT NOT NULL, slot INTEGER NOT NULL, generation INTEGER NOT NULL,
    image TEXT NOT NULL, config_hash TEXT NOT NULL, action TEXT NOT NULL, service_json TEXT NOT NULL,
    PRIMARY KEY (deployment_id, service_path, slot, generation)
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL, set_path TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    created_at TEXT NOT NULL, deployment_id INTEGER, images TEXT NOT NULL, revision TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('taking', 'ok', 'failed', 'pruned'))
);
CREATE TABLE IF NOT EXISTS good_slots (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    service_path TEXT NOT NULL, slot INTEGER NOT NULL, generation INTEGER NOT NULL,
    image TEXT NOT NULL, config_hash TEXT NOT NULL, service_json TEXT NOT NULL,
    PRIMARY KEY (deployment_id, service_path, slot)
);
"""


@dataclasses.dataclass(frozen=True)
class SlotRecord:
    """One slot's generation, image and config as a deployment left it.

    `service_json` is the service's whole spec at that generation: a rollback restarts the slot
    from it even after the spec file has changed.
    """

    service_path: str
    slot: int
    generation: int
    image: str
    config_hash: str
    service_json: str = "{}"


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One run of `up` or `upgrade` and how it ended."""

    id: int
    project: str
    command: str
    started_at: str
    finished_at: str | None
    status: str
    phase: str
    request: dict
    detail: str

    @property
    def unfinished(self) -> bool:
        """True when the run stopped before it succeeded, failed or rolled back (killed, interrupted)."""
        return self.status in ("running", "interrupted")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A snapshot of a set's data, with the images and schema revision it belongs to."""

    id: int
    set_path: str
    kind: str
    path: str  # the directory holding the snapshot's files
    created_at: str
    deployment_id: int | None
    images: dict[str, str]  # service path → image running when it was taken
    revision: dict[str, str]  # service path → schema revision its `migrations.status` printed
    size: int
    status: str


@dataclasses.dataclass(frozen=True)
class Step:
    """One journaled step of a deployment."""

    seq: int
    kind: str
    target: str
    status: str
    detail: str
    started_at: str
    finished_at: str | None


def _create_schema(tx: _Tx) -> None:
    tx.executescript_safe(_SCHEMA)
    tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _initialize(conn: sqlite3.Connection) -> None:
    """Make a new state database complete (WAL mode is kept in the file) before it is published."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    _create_schema(_Tx(conn))
    conn.execute("COMMIT")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Journal:
    """Transactional access to the state database; open one per command."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            dbfile.create_private(path, _initialize)
            dbfile.make_private(path)
            dbfile.check_not_empty(path)
            # Steps of one deployment run in several threads (old instances drain in parallel).
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise StateError(f"{path}: cannot open state database: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise self._open_error(exc) from None
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        try:
            # journal_mode reads the header: a file that is no database fails here, before any write.
            self._conn.execute("PRAGMA journal_mode=WAL")
            dbfile.check_intact(self._conn, self.path)
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._transaction() as tx:
                _create_schema(tx)
            rows = self._query("SELECT value FROM meta WHERE key='schema_version'")
        except sqlite3.Error as exc:
            raise self._open_error(exc) from None
        try:
            version = int(rows[0][0])
        except ValueError:
            raise StateDamaged(f"{self.path}: not a hitless state database (schema version {rows[0][0]!r})") from None
        if version > SCHEMA_VERSION:
            raise StateError(f"{self.path}: state database schema {version} is newer than this hitless ({SCHEMA_VERSION})")

    def _open_error(self, exc: sqlite3.Error) -> StateError:
        return dbfile.state_error(self.path, exc) or StateError(f"{self.path}: cannot open state database: {exc}")

    @contextlib.contextmanager
    def _file_errors(self) -> Iterator[None]:
        # A page can turn out damaged, or the disk full, in any statement: say so in one line.
        try:
            yield
        except sqlite3.Error as exc:
            error = dbfile.state_error(self.path, exc)
            if error is None:
                raise
            raise error from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Tx]:
        # BEGIN IMMEDIATE takes the write lock up front: two hitless processes never interleave.
        with self._lock, self._file_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._conn)
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (a damaged page, a full disk)
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock, self._file_errors():
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> Journal:
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
        rows = self._query(
            "SELECT last_generation FROM slots WHERE project=? AND service_path=? AND slot=?",
            (project, service_path, slot),
        )
        return rows[0][0] if rows else 0

    def begin_deployment(self, project: str, command: str, request: dict | None = None) -> int:
        """Record the start of a deployment; returns its id. `request` is what a resume needs to
        carry on exactly as asked (spec text, selection, image overrides)."""
        with self._transaction() as tx:
            cur = tx.execute(
                "INSERT INTO deployments(project, command, started_at, status, request) VALUES (?, ?, ?, 'running', ?)",
                (project, command, _now(), json.dumps(request or {})),
            )
            return _row_id(cur)

    def set_deployment(self, deployment_id: int, *, status: str | None = None, phase: str | None = None,
                       detail: str | None = None) -> None:
        """Change a running deployment's status, phase or detail."""
        with self._transaction() as tx:
            for column, value in (("status", status), ("phase", phase), ("detail", detail)):
                if value is not None:
                    tx.execute(f"UPDATE deployments SET {column}=? WHERE id=?", (value, deployment_id))

    def step_started(self, deployment_id: int, kind: str, target: str, detail: str = "") -> int:
        """Journal a step before it runs; returns its sequence number."""
        with self._transaction() as tx:
            seq = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE deployment_id=?", (deployment_id,)).fetchone()[0]
            tx.execute("INSERT INTO steps VALUES (?, ?, ?, ?, 'started', ?, ?, NULL)",
                       (deployment_id, seq, kind, target, detail, _now()))
        return int(seq)

    def step_finished(self, deployment_id: int, seq: int, ok: bool, detail: str = "") -> None:
        """Journal a step after it ran."""
        with self._transaction() as tx:
            tx.execute("UPDATE steps SET status=?, detail=CASE WHEN ?='' THEN detail ELSE ? END, finished_at=? "
                       "WHERE deployment_id=? AND seq=?",
                       ("done" if ok else "failed", detail, detail, _now(), deployment_id, seq))

    def steps(self, deployment_id: int) -> list[Step]:
        """Every step of a deployment, in order."""
        rows = self._query("SELECT seq, kind, target, status, detail, started_at, finished_at FROM steps "
                           "WHERE deployment_id=? ORDER BY seq",
                           (deployment_id,))
        return [Step(*row) for row in rows]

    def record_slot(self, deployment_id: int, record: SlotRecord, action: str) -> None:
        """Record what a deployment did to one slot."""
        with self._transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO deployment_slots VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (deployment_id, record.service_path, record.slot, record.generation, record.image, record.config_hash,
                 action, record.service_json),
            )

    def finish_deployment(self, deployment_id: int, status: str, detail: str = "", good: Iterable[SlotRecord] = ()) -> None:
        """Close a deployment. On success, `good` (every slot of the services it covered, as they
        run now) becomes a known good state, in the same transaction."""
        with self._transaction() as tx:
            tx.execute(
                "UPDATE deployments SET status=?, finished_at=?, detail=? WHERE id=?",
                (status, _now(), detail, deployment_id),
            )
            for r in good:
                tx.execute(
                    "INSERT OR REPLACE INTO good_slots VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (deployment_id, r.service_path, r.slot, r.generation, r.image, r.config_hash, r.service_json),
                )

    def contracts_since(self, project: str, service_path: str, deployment_id: int) -> list[tuple[int, str]]:
        """Contract migrations of a service that ran in deployments after `deployment_id`:
        (deployment id, when it finished), newest first."""
        rows = self._query(
            "SELECT s.deployment_id, s.finished_at FROM steps s JOIN deployments d ON d.id = s.deployment_id "
            "WHERE d.project=? AND s.kind='contract' AND s.target=? AND s.status='done' AND s.deployment_id > ? "
            "ORDER BY s.deployment_id DESC",
            (project, service_path, deployment_id),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def good_states(self, project: str, service_path: str) -> list[tuple[int, list[SlotRecord]]]:
        """The known good states of a service, newest first: (deployment id, its slots)."""
        rows = self._query(
            "SELECT g.deployment_id, g.service_path, g.slot, g.generation, g.image, g.config_hash, g.service_json "
            "FROM good_slots g JOIN deployments d ON d.id = g.deployment_id "
            "WHERE d.project=? AND g.service_path=? AND d.status='succeeded' ORDER BY g.deployment_id DESC, g.slot",
            (project, service_path),
        )
        states: dict[int, list[SlotRecord]] = {}
        for row in rows:
            states.setdefault(row[0], []).append(SlotRecord(*row[1:]))
        return list(states.items())

    def snapshot_started(self, project: str, set_path: str, kind: str, path: str, deployment_id: int | None,
                         images: dict[str, str], revision: dict[str, str]) -> int:
        """Record a snapshot being taken; its id."""
        with self._transaction() as tx:
            cur = tx.execute(
                "INSERT INTO snapshots(project, set_path, kind, path, created_at, deployment_id, images, revision, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'taking')",
                (project, set_path, kind, path, _now(), deployment_id, json.dumps(images), json.dumps(revision)),
            )
            return _row_id(cur)

    def snapshot_finished(self, snapshot_id: int, status: str, size: int = 0) -> None:
        """Mark a snapshot ok (with its size), failed, or pruned."""
        with self._transaction() as tx:
            tx.execute("UPDATE snapshots SET status=?, size=? WHERE id=?", (status, size, snapshot_id))

    def snapshots(self, project: str, set_path: str | None = None, status: str | None = "ok") -> list[Snapshot]:
        """Snapshots of the project (or of one set), newest first."""
        rows = self._query(
            "SELECT id, set_path, kind, path, created_at, deployment_id, images, revision, size, status FROM snapshots "
            "WHERE project=? AND (? IS NULL OR set_path=?) AND (? IS NULL OR status=?) ORDER BY id DESC",
            (project, set_path, set_path, status, status),
        )
        return [Snapshot(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), r[8], r[9])
                for r in rows]

    def deployments(self, project: str, limit: int = 20) -> list[Deployment]:
        """The most recent deployments, newest first."""
        rows = self._query(
            "SELECT id, project, command, started_at, finished_at, status, phase, request, detail FROM deployments "
            "WHERE project=? ORDER BY id DESC LIMIT ?",
            (project, limit),
        )
        return [Deployment(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8])
                for row in rows]

    def unfinished(self, project: str) -> Deployment | None:
        """The newest deployment that stopped half-way (killed or interrupted), if any."""
        return next((d for d in self.deployments(project, limit=50) if d.unfinished), None)


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


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made."""
    if cursor.lastrowid is None:
        raise StateDamaged("the state database gave no id for a row it inserted")
    return cursor.lastrowid
