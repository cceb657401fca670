"""The state database as a file: private (it holds services' secrets), and never silently empty or
half-read when it is truncated or damaged."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.errors import ExitStatus, StateDamaged
from hitless.state.journal import Journal

REMEDY = "restore it from a backup, or move it aside to start a new, empty history"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The umask most machines have, under which a plain create is world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def filled(path: Path) -> Path:
    """A state database with enough history to span many pages."""
    with Journal(path) as journal:
        for _ in range(100):
            deployment = journal.begin_deployment("p", "up", {"spec": "x" * 500})
            journal.step_started(deployment, "start", "net/api/0", "started " * 50)
    return path


def test_the_state_db_and_its_wal_and_shm_are_private_from_the_start(tmp_path: Path, lax_umask: None):
    db = tmp_path / ".hitless" / "state.db"
    with Journal(db) as journal:
        journal.begin_deployment("p", "up", {"environment": {"DB_PASSWORD": "secret"}})
        assert {name: mode(tmp_path / ".hitless" / name) for name in ("state.db", "state.db-wal", "state.db-shm")} \
            == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}
    assert sorted(os.listdir(db.parent)) == ["state.db"]  # nothing left of how it was made


def test_a_world_readable_state_db_from_before_is_made_private(tmp_path: Path, lax_umask: None):
    db = tmp_path / "state.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)")
    db.chmod(0o644)
    Journal(db).close()
    assert mode(db) == 0o600


def test_a_state_db_truncated_to_nothing_is_an_error_not_a_new_history(tmp_path: Path):
    db = filled(tmp_path / "state.db")
    db.write_bytes(b"")
    with pytest.raises(StateDamaged) as caught:
        Journal(db)
    assert str(caught.value) == f"{db}: the state database is empty (0 bytes; truncated?): {REMEDY}"
    assert caught.value.exit_status == ExitStatus.STATE_DAMAGED
    assert db.stat().st_size == 0  # left as found, for the person who looks into it


def test_a_file_that_is_no_database_is_named_as_such(tmp_path: Path):
    db = tmp_path / "state.db"
    db.write_text("project: p\nsets: {}\n" * 100)
    with pytest.raises(StateDamaged) as caught:
        Journal(db)
    assert str(caught.value) == f"{db}: not a state database (file is not a database): {REMEDY}"
    assert caught.value.exit_status == ExitStatus.STATE_DAMAGED


def test_a_damaged_page_is_found_before_anything_is_written(tmp_path: Path):
    db = filled(tmp_path / "state.db")
    data = bytearray(db.read_bytes())
    data[4096 * 4:4096 * 5] = bytes(4096)  # page 5, inside the tables' b-trees
    db.write_bytes(data)
    with pytest.raises(StateDamaged) as caught:
        Journal(db)
    message = str(caught.value)
    assert message.startswith(f"{db}: the state database is damaged (") and message.endswith(REMEDY)
    assert "\n" not in message
    assert db.read_bytes() == data


class _DamagedConnection:
    """A connection whose disk went bad after the database was opened."""

    def __init__(self, real: sqlite3.Connection):
        self.real = real
        self.in_transaction = False

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        error = sqlite3.DatabaseError("database disk image is malformed")
        error.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
        raise error

    def close(self) -> None:
        self.real.close()


def test_damage_found_later_is_one_line_too(tmp_path: Path):
    journal = Journal(filled(tmp_path / "state.db"))
    journal._conn = _DamagedConnection(journal._conn)  # type: ignore[assignment]
    for use in (lambda: journal.deployments("p"), lambda: journal.begin_deployment("p", "up")):
        damaged = r"state.db: the state database is damaged \(database disk image is malformed\): restore"
        with pytest.raises(StateDamaged, match=damaged):
            use()
    journal.close()


def test_the_cli_says_one_line_and_exits_with_its_named_status(tmp_path: Path):
    (tmp_path / "hitless.yaml").write_text("project: p\nruntime: process\nsets: {a: {image: 'a:1', network: {port: 8080}}}\n")
    db = filled(tmp_path / ".hitless" / "state.db")
    data = bytearray(db.read_bytes())
    data[4096 * 4:4096 * 5] = bytes(4096)
    db.write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "hitless", "status"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == ExitStatus.STATE_DAMAGED == 5, result.stderr[-2000:]
    assert result.stderr.startswith(f"hitless: {db}: the state database is damaged (") and result.stderr.count("\n") == 1, \
        result.stderr[-2000:]
    assert result.stderr.rstrip().endswith(REMEDY)
