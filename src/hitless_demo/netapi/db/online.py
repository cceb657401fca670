"""netapi 3.0's table rebuild, online: copy while 2.0 serves, then a cut-over of a moment.

`copy` (run by a one-shot job of the 3.0 image while 2.0 instances serve):

1. under the schema lock: create `network_v3` (empty), an index on networks(created_at, id) to
   walk it in creation order, and triggers on `networks` that mirror every INSERT, UPDATE and
   DELETE 2.0 makes into `network_v3` from now on. `seq` of the rows the triggers add starts
   above a reserve, so that the rows copied next (numbered in creation order) come first;
2. the rows that were there before the triggers, in chunks of creation order, each chunk one
   short transaction whose rows are locked for share (a DELETE of one of them waits for the
   chunk, then its trigger removes the copy: no row comes back to life);
3. `3.0_copy` recorded: 2.0 still runs on this schema (and its writes are mirrored).

A copy that fails removes what it made (triggers, `network_v3`, the index): nothing changed.

`cutover` is the `offline` phase (`3.0_offline`), run while no instance serves: after a copy it
only checks that both tables hold as many rows and drops `networks` (its triggers with it); a
database that was never copied gets the whole offline rebuild instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .dialect import Connection, Dialect

CHUNK = int(os.environ.get("NETAPI_COPY_CHUNK", "10000"))  # rows per copy transaction
CREATION_INDEX = "networks_creation"
TRIGGER_FUNCTION = "networks_to_v3"  # PostgreSQL's triggers call a function
TRIGGERS = ("networks_v3_insert", "networks_v3_update", "networks_v3_delete")
# What a 3.0 row holds, and where it comes from in a 2.0 row.
V3_COLUMNS = ("id", "project_id", "name", "description", "admin_state_up", "shared", "status", "created_at",
              "updated_at", "mtu", "revision_number")
Log = Callable[[str], None]


class CopyFailed(Exception):
    """The copy stopped; what it made was removed (one line)."""


def _value(row: str, column: str) -> str:
    """The 3.0 value of a column, from a 2.0 row named `row` (NEW, n)."""
    return f"COALESCE({row}.project_id, '')" if column == "project_id" else f"{row}.{column}"


def _values(row: str) -> str:
    return ", ".join(_value(row, c) for c in V3_COLUMNS)


def _difference(conn: Connection) -> int:
    """Rows of networks minus rows of network_v3, read in one statement (one snapshot)."""
    return int(conn.scalar("SELECT (SELECT COUNT(*) FROM networks) - (SELECT COUNT(*) FROM network_v3)"))


def triggers_present(conn: Connection, d: Dialect) -> bool:
    """Whether the mirroring triggers are on `networks` (a copy ran or runs)."""
    if d.name == "sqlite":
        return bool(conn.scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?", (TRIGGERS[0],)))
    if d.name == "postgresql":
        return bool(conn.scalar("SELECT COUNT(*) FROM pg_trigger WHERE tgname = ?", (TRIGGERS[0],)))
    return bool(conn.scalar("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
                            "AND trigger_name = ?", (TRIGGERS[0],)))


def _create_triggers(conn: Connection, d: Dialect) -> None:
    columns = ", ".join(V3_COLUMNS)
    insert = f"INSERT INTO network_v3 ({columns}) VALUES ({_values('NEW')})"
    assignments = ", ".join(f"{c} = {_value('NEW', c)}" for c in V3_COLUMNS)
    update = f"UPDATE network_v3 SET {assignments} WHERE id = OLD.id"
    delete = "DELETE FROM network_v3 WHERE id = OLD.id"
    if d.name == "postgresql":
        conn.execute(f"""CREATE OR REPLACE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
              IF TG_OP = 'INSERT' THEN {insert};
              ELSIF TG_OP = 'UPDATE' THEN {update};
              ELSE {delete};
              END IF;
              RETURN NULL;
            END $body$""")
        conn.execute(f"CREATE TRIGGER {TRIGGERS[0]} AFTER INSERT OR UPDATE OR DELETE ON networks "
                     f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER_FUNCTION}()")
        return
    for name, event, body in zip(TRIGGERS, ("INSERT", "UPDATE", "DELETE"), (insert, update, delete), strict=True):
        if d.name == "sqlite":
            conn.execute(f"CREATE TRIGGER {name} AFTER {event} ON networks BEGIN {body}; END")
        else:
            conn.execute(f"CREATE TRIGGER {name} AFTER {event} ON networks FOR EACH ROW {body}")


def _reserve_seq(conn: Connection, d: Dialect, start: int) -> None:
    """Rows the triggers add get `seq` from `start` on; below it, the copied rows in creation order."""
    if d.name == "mysql":
        conn.execute(f"ALTER TABLE network_v3 AUTO_INCREMENT = {start}")
    elif d.name == "postgresql":
        conn.execute(f"ALTER TABLE network_v3 ALTER COLUMN seq RESTART WITH {start}")
    else:
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'network_v3'")
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('network_v3', ?)", (start - 1,))


def _create_creation_index(conn: Connection, d: Dialect) -> None:
    if d.name == "postgresql":  # without blocking 2.0's writes (and outside any transaction)
        conn.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {CREATION_INDEX} ON networks (created_at, id)")
    elif d.name == "mysql":
        if not conn.scalar("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() "
                           "AND table_name = 'networks' AND index_name = ?", (CREATION_INDEX,)):
            conn.execute(f"ALTER TABLE networks ADD INDEX {CREATION_INDEX} (created_at, id), ALGORITHM=INPLACE, LOCK=NONE")
    else:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {CREATION_INDEX} ON networks (created_at, id)")


def remove(conn: Connection, d: Dialect) -> None:
    """Undo a copy: triggers, `network_v3`, the index (whatever of them exists)."""
    if d.name == "postgresql":
        conn.execute(f"DROP FUNCTION IF EXISTS {TRIGGER_FUNCTION}() CASCADE")
        conn.execute(f"DROP INDEX IF EXISTS {CREATION_INDEX}")
    else:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(f"DROP INDEX IF EXISTS {CREATION_INDEX}" + (" ON networks" if d.name == "mysql" else ""))
    conn.execute("DROP TABLE IF EXISTS network_v3")


def copy(conn: Connection, d: Dialect, create_v3: Callable[[], None], record: Callable[[], None], log: Log,
         fail_after_chunk: bool = False) -> int:
    """Set up the mirror and copy every earlier row (see the module's doc); the rows copied.
    `create_v3` makes the empty `network_v3`, `record` records the `3.0_copy` revision."""
    started = time.monotonic()
    if triggers_present(conn, d) or "network_v3" in d.tables(conn):
        # A copy (or an offline rebuild) cut short: start again from nothing; networks holds every row.
        log("copy: removing what an interrupted copy left")
        remove(conn, d)
    try:
        _create_creation_index(conn, d)
        d.lock_schema(conn)
        try:
            d.begin_revision(conn)
            create_v3()
            before = int(conn.scalar("SELECT COUNT(*) FROM networks"))
            # Rows the triggers will mirror are numbered above the earlier ones: those number at
            # most `before` plus what is written until the triggers exist.
            _reserve_seq(conn, d, 2 * before + 1_000_000)
            _create_triggers(conn, d)
            d.commit_revision(conn)
        finally:
            d.unlock_schema(conn)
        log(f"copy: network_v3 and triggers made; copying {before} row(s) in chunks of {CHUNK}")
        copied = _backfill(conn, d, before, log, fail_after_chunk)
        if _difference(conn) != 0:
            raise CopyFailed("network_v3 does not hold as many rows as networks after the copy")
        record()
    except BaseException as exc:
        try:
            if d.name == "sqlite" and conn.raw.in_transaction:
                conn.execute("ROLLBACK")
            remove(conn, d)
        except d.errors as cleanup:
            log(f"copy: could not remove what it made: {cleanup}")
        else:
            log("copy: removed network_v3 and the triggers: nothing changed")
        if isinstance(exc, (CopyFailed, *d.errors)):
            raise CopyFailed(f"{exc}") from None
        raise
    log(f"copy: {copied} row(s) copied in {time.monotonic() - started:.1f} s; network_v3 follows every write "
        "until the cut-over")
    return copied


def _backfill(conn: Connection, d: Dialect, total: int, log: Log, fail_after_chunk: bool) -> int:
    """The rows without a copy, chunk by chunk in creation order, numbered from 1 in that order."""
    lock = {"postgresql": " FOR SHARE", "mysql": " LOCK IN SHARE MODE"}.get(d.name, "")
    after = "(n.created_at > ? OR (n.created_at = ? AND n.id > ?))"
    upto = "(n.created_at < ? OR (n.created_at = ? AND n.id <= ?))"
    last, numbered, copied, reported = ("", ""), 0, 0, time.monotonic()
    while True:
        conn.execute(d.begin_write)
        try:
            bounds = conn.query(f"SELECT n.created_at, n.id FROM networks n WHERE {after} "
                                f"ORDER BY n.created_at, n.id LIMIT {CHUNK}{lock}", (last[0], last[0], last[1]))
            if not bounds:
                conn.execute("COMMIT")
                return copied
            end = (bounds[-1]["created_at"], bounds[-1]["id"])
            copied += max(0, conn.execute(
                f"INSERT INTO network_v3 (seq, {', '.join(V3_COLUMNS)}) "
                f"SELECT {numbered} + ROW_NUMBER() OVER (ORDER BY n.created_at, n.id), {_values('n')} "
                f"FROM networks n LEFT JOIN network_v3 v ON v.id = n.id "
                f"WHERE v.id IS NULL AND {after} AND {upto}",
                (last[0], last[0], last[1], end[0], end[0], end[1])))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        numbered += len(bounds)
        last = end
        if fail_after_chunk:
            raise CopyFailed("failed after the first chunk: injected by NETAPI_FAIL_MIGRATION=copy-midway")
        if time.monotonic() - reported >= 1.0:
            reported = time.monotonic()
            log(f"copy: {copied}/{total} row(s) ({100 * copied // max(total, 1)}%)")


def cutover(conn: Connection, d: Dialect, log: Log) -> None:
    """After a copy, with no instance serving: both tables hold as many rows; drop `networks`."""
    missing = _difference(conn)
    if missing:
        raise CopyFailed(f"networks and network_v3 differ by {missing} row(s): networks kept")
    conn.execute("DROP TABLE networks")  # its index and triggers with it
    if d.name == "postgresql":
        conn.execute(f"DROP FUNCTION IF EXISTS {TRIGGER_FUNCTION}()")
    log("cut over: network_v3 holds every row; dropped networks and its triggers")
