"""The state database as a file: created private and complete, checked before use.

`state.db` holds every service's environment, secrets included, so it is created with mode 0600
(SQLite gives its -wal and -shm files the database's own mode). It is built under a temporary
name and linked into place, so `state.db` never exists empty: SQLite would take an empty file
for a new database, and a truncated history would pass for no history at all.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from hitless.errors import StateDamaged, StateError

PRIVATE = 0o600
_COMPANIONS = ("", "-wal", "-shm", "-journal")
_REMEDY = "restore it from a backup, or move it aside to start a new, empty history"
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_UNUSABLE = (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
             sqlite3.SQLITE_PERM)


def create_private(path: Path, initialize: Callable[[sqlite3.Connection], None]) -> None:
    """Create the database at `path` unless it exists: mode 0600 from the first byte, and
    `initialize` (journal mode, schema) done before the file appears under its name."""
    if path.exists():
        return
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            initialize(conn)
        finally:
            conn.close()
        _publish(temporary, path)
    finally:
        for suffix in _COMPANIONS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary + suffix)


def _publish(temporary: str, path: Path) -> None:
    # link() never replaces: when two first runs race, the one that lost keeps the winner's file.
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not path.exists():
            os.replace(temporary, path)


def make_private(path: Path) -> None:
    """Take group and other access away from the database and its companions (a state.db made
    by an older hitless was world-readable)."""
    for suffix in _COMPANIONS:
        file = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                os.chmod(file, PRIVATE)


def check_not_empty(path: Path) -> None:
    """Refuse a state database truncated to nothing: it is a lost history, not a new one."""
    if path.stat().st_size == 0:
        raise StateDamaged(f"{path}: the state database is empty (0 bytes; truncated?): {_REMEDY}")


def check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database with damaged pages before anything is written to it."""
    problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        # SQLite's report spans lines, the first naming the schema ("*** in database main ***").
        detail = "; ".join(line.strip() for line in problem.splitlines() if line.strip() and not line.startswith("***"))
        raise StateDamaged(f"{path}: the state database is damaged ({detail}): {_REMEDY}")


def state_error(path: Path, exc: sqlite3.Error) -> StateError | None:
    """The one-line error for an SQLite failure that is about the file, or None for any other
    (a constraint, a bug): those keep their own type."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # extended codes carry the primary one in the low byte
    if code == sqlite3.SQLITE_NOTADB:
        return StateDamaged(f"{path}: not a state database ({exc}): {_REMEDY}")
    if code in _DAMAGED:
        return StateDamaged(f"{path}: the state database is damaged ({exc}): {_REMEDY}")
    if code in _UNUSABLE:
        return StateError(f"{path}: cannot use the state database: {exc}")
    return None
