"""Database URLs, and everything that differs between SQLite, MariaDB/MySQL and PostgreSQL.

No ORM: SQL is written once with `?` placeholders and portable types spelled through a Dialect
(`{text64}`-style names are not used; the few differences are methods). The drivers are imported
only for the backend a URL names, so a SQLite-only image needs nothing but the standard library.

    sqlite:////var/lib/netapi/netapi.db          (absolute path: four slashes)
    mysql://root:secret@127.0.0.1:3306/netapi    (MariaDB or MySQL, driver PyMySQL)
    postgresql://postgres@127.0.0.1:5432/netapi  (driver psycopg2)
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from typing import Any
from urllib.parse import unquote, urlsplit

BUSY_TIMEOUT_S = 30.0  # SQLite: how long a writer waits for another's lock
CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT_S = 30  # how long a migration waits for a table lock before giving up

SCHEMES = {
    "sqlite": "sqlite",
    "mysql": "mysql", "mariadb": "mysql", "mysql+pymysql": "mysql", "mariadb+pymysql": "mysql",
    "postgresql": "postgresql", "postgres": "postgresql", "postgresql+psycopg2": "postgresql",
}


class UrlError(ValueError):
    """A database URL that cannot be used."""


@dataclasses.dataclass(frozen=True)
class DatabaseUrl:
    backend: str  # sqlite | mysql | postgresql
    path: str = ""  # sqlite only
    host: str = "127.0.0.1"
    port: int | None = None
    user: str = ""
    password: str = dataclasses.field(default="", repr=False)
    database: str = ""

    def redacted(self) -> str:
        """The URL with its password hidden: for logs."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        auth = self.user + (":***" if self.password else "")
        port = f":{self.port}" if self.port else ""
        return f"{self.backend}://{auth}{'@' if auth else ''}{self.host}{port}/{self.database}"


def parse_url(text: str) -> DatabaseUrl:
    """A DatabaseUrl from `sqlite:///PATH`, `mysql://...` or `postgresql://...`; UrlError says why not."""
    scheme, sep, rest = text.strip().partition("://")
    backend = SCHEMES.get(scheme.lower()) if sep else None
    if backend is None:
        raise UrlError(f"database URL {text!r} must start with sqlite://, mysql:// or postgresql://")
    if backend == "sqlite":
        # sqlite:////abs/path.db -> /abs/path.db; sqlite:///rel.db -> rel.db
        if not rest.startswith("/") or rest == "/":
            raise UrlError(f"SQLite URL {text!r} must be sqlite:////absolute/path.db or sqlite:///relative.db")
        return DatabaseUrl("sqlite", path=unquote(rest[1:].split("?", 1)[0]))
    parts = urlsplit(text.strip())
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise UrlError(f"database URL {DatabaseUrl(backend, host=parts.hostname or '').redacted()} names no database")
    try:
        port = parts.port
    except ValueError:
        raise UrlError(f"database URL for {backend} has a bad port") from None
    return DatabaseUrl(
        backend, host=parts.hostname or "127.0.0.1", port=port,
        user=unquote(parts.username or ""), password=unquote(parts.password or ""), database=database,
    )


def sqlite_url(path: str) -> str:
    """The URL of a SQLite file (NETAPI_DB is this shorthand): sqlite:////abs/path or sqlite:///rel."""
    return "sqlite:///" + path


class Connection:
    """One DB-API connection in autocommit mode, with `?` placeholders on every backend."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = self._run(sql, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        """Run one statement; every row as a dict keyed by lower-case column name."""
        cursor = self._run(sql, params)
        try:
            names = [d[0].lower() for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def scalar(self, sql: str, params: tuple | list = ()) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def _run(self, sql: str, params: tuple | list) -> Any:
        cursor = self.raw.cursor()
        try:
            if params:
                cursor.execute(self.dialect.placeholders(sql), tuple(params))
            else:
                cursor.execute(sql)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # closing a broken connection may fail; it is gone either way
            pass


class Dialect:
    """What differs between backends: connecting, types, introspection, locks, error kinds."""

    name = ""
    bool_type = "BOOLEAN"
    true, false = "TRUE", "FALSE"
    autoincrement_pk = ""
    table_options = ""
    begin_write = "BEGIN"

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The driver's base error classes (DB-API `Error`)."""
        raise NotImplementedError

    def connect(self) -> Connection:
        raise NotImplementedError

    def placeholders(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def tables(self, conn: Connection) -> set[str]:
        rows = conn.query(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = " + self._schema_expr)
        return {r["name"].lower() for r in rows}

    def columns(self, conn: Connection, table: str) -> set[str]:
        rows = conn.query(
            "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = "
            + self._schema_expr + " AND table_name = ?", (table,))
        return {r["name"].lower() for r in rows}

    _schema_expr = ""

    def lock_schema(self, conn: Connection) -> None:
        """Take the lock that serializes schema changes between processes (migrations, bootstraps)."""

    def unlock_schema(self, conn: Connection) -> None:
        pass

    # One revision is one transaction where DDL is transactional (see SQLiteDialect for SQLite).

    def begin_revision(self, conn: Connection) -> None:
        conn.execute("BEGIN")

    def commit_revision(self, conn: Connection) -> None:
        conn.execute("COMMIT")

    def rollback_revision(self, conn: Connection) -> None:
        conn.execute("ROLLBACK")

    def is_transient(self, exc: BaseException) -> bool:
        """A deadlock, a serialization failure or a lock timeout: the transaction may be retried."""
        return False

    def alive(self, conn: Connection) -> bool:
        """Whether a connection that just raised can go back to the pool."""
        return True


class SQLiteDialect(Dialect):
    name = "sqlite"
    bool_type = "INTEGER"
    true, false = "1", "0"
    autoincrement_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"
    # IMMEDIATE takes the write lock up front: a writer waits (busy timeout) instead of failing late.
    begin_write = "BEGIN IMMEDIATE"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def connect(self) -> Connection:
        path = self.url.path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # WAL: readers never block the writer; replicas and the migration job share the file.
        # Switching a new file to WAL takes an exclusive lock for a moment, and SQLite may report
        # "locked" at once (no busy handler) when several processes open it together: retry.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                raw.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if not self.is_transient(exc) or time.monotonic() > deadline:
                    raw.close()
                    raise
                time.sleep(0.02)
        raw.execute("PRAGMA synchronous=NORMAL")
        return Connection(raw, self)

    def placeholders(self, sql: str) -> str:
        return sql

    # The schema lock is a write transaction held for the whole bootstrap or phase (other
    # writers wait for it: busy timeout); each revision inside it is a savepoint, so a failing
    # revision is undone while the ones before it are kept.

    def lock_schema(self, conn: Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def unlock_schema(self, conn: Connection) -> None:
        if conn.raw.in_transaction:
            conn.execute("COMMIT")

    def begin_revision(self, conn: Connection) -> None:
        conn.execute("SAVEPOINT revision")

    def commit_revision(self, conn: Connection) -> None:
        conn.execute("RELEASE revision")

    def rollback_revision(self, conn: Connection) -> None:
        conn.execute("ROLLBACK TO revision")
        conn.execute("RELEASE revision")

    def tables(self, conn: Connection) -> set[str]:
        rows = conn.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r["name"].lower() for r in rows}

    def columns(self, conn: Connection, table: str) -> set[str]:
        if not table.isidentifier():
            raise ValueError(f"bad table name {table!r}")
        return {r["name"].lower() for r in conn.query(f"PRAGMA table_info({table})")}

    def is_transient(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class MySQLDialect(Dialect):
    name = "mysql"
    bool_type = "BOOLEAN"  # TINYINT(1)
    true, false = "1", "0"
    autoincrement_pk = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
    table_options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    begin_write = "START TRANSACTION"
    _schema_expr = "DATABASE()"
    LOCK_NAME = "netapi_schema"
    TRANSIENT = {1205, 1213}  # lock wait timeout, deadlock
    DISCONNECTED = {2003, 2006, 2013, 2055}

    @staticmethod
    def _driver() -> Any:
        try:
            import pymysql
        except ImportError:
            raise UrlError("a mysql:// URL needs PyMySQL (Debian: python3-pymysql; pip: PyMySQL)") from None
        return pymysql

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (self._driver().Error,)

    def connect(self) -> Connection:
        raw = self._driver().connect(
            host=self.url.host, port=self.url.port or 3306, user=self.url.user or "root",
            password=self.url.password, database=self.url.database, charset="utf8mb4",
            autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
        )
        return Connection(raw, self)

    # DDL commits on its own: a revision is a series of idempotent steps, not a transaction.
    def begin_revision(self, conn: Connection) -> None:
        pass

    def commit_revision(self, conn: Connection) -> None:
        pass

    def rollback_revision(self, conn: Connection) -> None:
        pass

    def lock_schema(self, conn: Connection) -> None:
        conn.execute(f"SET SESSION lock_wait_timeout = {LOCK_TIMEOUT_S}")
        got = conn.scalar("SELECT GET_LOCK(?, ?)", (self.LOCK_NAME, LOCK_TIMEOUT_S))
        if got != 1:
            raise TimeoutError(f"another process holds the schema lock ({self.LOCK_NAME}) for over {LOCK_TIMEOUT_S} s")

    def unlock_schema(self, conn: Connection) -> None:
        conn.execute("DO RELEASE_LOCK(?)", (self.LOCK_NAME,))

    def is_transient(self, exc: BaseException) -> bool:
        return bool(getattr(exc, "args", None)) and exc.args[0] in self.TRANSIENT

    def alive(self, conn: Connection) -> bool:
        return bool(getattr(conn.raw, "open", False))


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    autoincrement_pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    _schema_expr = "current_schema()"
    LOCK_KEY = 0x6E657461  # "neta": pg_advisory_lock's key for schema changes
    TRANSIENT = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available

    @staticmethod
    def _driver() -> Any:
        try:
            import psycopg2
        except ImportError:
            raise UrlError(
                "a postgresql:// URL needs psycopg2 (Debian: python3-psycopg2; pip: psycopg2-binary)") from None
        return psycopg2

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (self._driver().Error,)

    def connect(self) -> Connection:
        raw = self._driver().connect(
            host=self.url.host, port=self.url.port or 5432, user=self.url.user or "postgres",
            password=self.url.password or None, dbname=self.url.database,
            connect_timeout=CONNECT_TIMEOUT_S, application_name="netapi",
        )
        # Autocommit: a pooled connection never sits idle inside a transaction, where it would
        # hold a lock that makes a migration's ALTER TABLE wait.
        raw.autocommit = True
        return Connection(raw, self)

    def lock_schema(self, conn: Connection) -> None:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        conn.execute("SELECT pg_advisory_lock(?)", (self.LOCK_KEY,))

    def unlock_schema(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_unlock(?)", (self.LOCK_KEY,))

    def is_transient(self, exc: BaseException) -> bool:
        return getattr(exc, "pgcode", None) in self.TRANSIENT

    def alive(self, conn: Connection) -> bool:
        return getattr(conn.raw, "closed", 1) == 0


def dialect_for(url: DatabaseUrl | str) -> Dialect:
    parsed = parse_url(url) if isinstance(url, str) else url
    return {"sqlite": SQLiteDialect, "mysql": MySQLDialect, "postgresql": PostgreSQLDialect}[parsed.backend](parsed)
