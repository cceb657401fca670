"""Schema migrations as one-shot jobs: `python3 -m netapi.migrate expand|contract|offline|status`.

Run with the NEW version's image (NETAPI_VERSION says which revisions it knows), against the
database the service uses (NETAPI_DB_URL, or the SQLite file NETAPI_DB):

    expand    additive changes; the old and the new version both serve afterwards
    contract  removes what only the old version needed; run once no old instance is left
    offline   changes no running version could follow; run while every instance is stopped
    copy      3.0's table rebuild done online, while 2.0 serves (triggers keep the copy in step)
    cutover   after a copy: the rest of `offline`, a moment's work (run while no instance serves)
    status    prints the schema's state as one JSON line (changes nothing)

Exit 0 on success, also when there was nothing to do (running a phase twice is a no-op);
1 with a one-line error when the phase failed (what was applied before is kept and logged);
2 for a usage or configuration error. Logs go to stderr, one line per step.
NETAPI_FAIL_MIGRATION=PHASE[,PHASE] makes those phases fail at once, changing nothing (tests).
`python3 -m netapi migrate PHASE` is the same command.
"""

from __future__ import annotations

import json
import sys
import time

from . import config as config_module
from .db import PHASES, Database, SchemaError, UrlError, online, schema

USAGE = f"usage: python3 -m netapi.migrate {'|'.join(PHASES)}|status"
EXIT_FAILED, EXIT_USAGE = 1, 2


def log(message: str) -> None:
    print(f"netapi.migrate: {message}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def status_document(db: Database) -> dict:
    with db.connection() as conn:
        state = schema.read_state(conn, db.dialect)
    pending = [] if state.unknown_to(db.major) else schema.plan(state, "offline", db.major, db.version)[0]
    return {
        "revision": state.revision,
        "applied": list(state.applied),
        "pending": [{"revision": r.name, "phase": r.phase} for r in pending],
        "runs": schema.versions_running_on(state.revision),  # the netapi versions that serve on it
        "version": db.version,
        "compatible": schema.incompatibility(state, db.major, db.version) is None,
        "database": db.url.redacted(),
    }


def copy(db: Database, fail_midway: bool) -> int:
    """The online copy (netapi.db.online); nothing to do once it ran or the rebuild is done."""
    started = time.monotonic()
    d = db.dialect
    with db.connection() as conn:
        state = schema.read_state(conn, d)
        done = {"3.0_copy", "3.0_offline"} & set(state.applied)
        if done:
            log(f"copy: nothing to do; {sorted(done)[-1]} is applied")
            return 0
        if db.major < 3:
            raise SchemaError(f"netapi {db.version} has no copy to make (3.0's image makes it)")
        if "2.0_expand" not in state.applied:
            raise SchemaError(f"schema revision {state.revision} is too old to copy from: run `expand` first")
        revision = next(r for r in schema.REVISIONS if r.name == "3.0_copy")
        online.copy(conn, d, lambda: schema.create_v3(conn, d, log),
                    lambda: schema.record_revision(conn, d, revision, db.version), log, fail_after_chunk=fail_midway)
    log(f"copy done in {time.monotonic() - started:.2f} s; `cutover` finishes it while no instance serves")
    return 0


def run(phase: str, db: Database) -> int:
    started = time.monotonic()
    where = db.url.redacted()
    log(f"netapi {db.version}: {phase} on {where}")
    with db.connection() as conn:
        applied = schema.run_phase(conn, db.dialect, phase, db.major, db.version, log)
        revision = schema.read_state(conn, db.dialect).revision
    took = time.monotonic() - started
    if applied:
        log(f"{phase} done in {took:.2f} s: applied {', '.join(applied)}; schema at {revision}")
    else:
        log(f"{phase}: nothing to do; schema at {revision}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in (*PHASES, "status"):
        log(USAGE)
        return EXIT_USAGE
    phase = args[0]
    try:
        cfg = config_module.from_env()
    except config_module.ConfigError as exc:
        log(str(exc))
        return EXIT_USAGE
    if phase in cfg.fail_migration:
        # Before touching the database: a failed phase must leave nothing changed.
        log(f"{phase} failed: injected by NETAPI_FAIL_MIGRATION={','.join(sorted(cfg.fail_migration))}; "
            "nothing was changed")
        return EXIT_FAILED
    try:
        db = Database(cfg.database_url, major=cfg.major, version=cfg.version)
    except UrlError as exc:
        log(str(exc))
        return EXIT_USAGE
    try:
        if phase == "status":
            print(json.dumps(status_document(db), sort_keys=True), flush=True)
            return 0
        if phase == "copy":
            return copy(db, "copy-midway" in cfg.fail_migration)
        return run(phase, db)
    except (SchemaError, online.CopyFailed) as exc:
        log(f"{phase} failed: {exc}")
        return EXIT_FAILED
    except Exception as exc:  # a database error: one line, not a traceback
        log(f"{phase} failed on {db.url.redacted()}: {_one_line(exc)}")
        return EXIT_FAILED
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
