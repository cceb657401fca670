"""`hitless upgrade`, `hitless resume` and `hitless rollback`: zero-downtime changes.

Ctrl-C (or SIGTERM) once: the current step finishes, then the run stops, resumable.
Twice: stop now; the journal is left resumable (every record is one SQLite transaction).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

from hitless.cli.common import add_json_option, add_spec_options, console, open_context
from hitless.cli.plan import render
from hitless.cli.progress import make_progress
from hitless.engine.steps import Event
from hitless.engine.upgrade import Engine, Request, plan_for, rollback_request
from hitless.errors import BadInput, ExitStatus
from hitless.spec.load import DEFAULT_SPEC


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("upgrade", help="replace what changed, with zero downtime; roll back on failure")
    add_spec_options(up)
    add_json_option(up)
    up.add_argument("sets", nargs="*", metavar="SET", help="upgrade only these sets or services (e.g. neutron/server)")
    up.add_argument("--image", action="append", default=[], metavar="SERVICE=REPO:TAG",
                    help="use this image for a service instead of the spec's (repeatable)")
    up.add_argument("--until", metavar="STAGE", help="stop after this set or service; run again to continue")
    up.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    up.set_defaults(func=run_upgrade)

    resume = sub.add_parser("resume", help="finish (or finish rolling back) an upgrade that was killed or interrupted")
    add_spec_options(resume)
    add_json_option(resume)
    resume.set_defaults(func=run_resume)

    back = sub.add_parser("rollback", help="return sets to their last known good version, with zero downtime")
    add_spec_options(back)
    add_json_option(back)
    back.add_argument("sets", nargs="*", metavar="SET", help="the sets or services to roll back (all when none)")
    back.add_argument("--to-generation", type=int, metavar="N", help="the known good state holding generation N")
    back.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    back.set_defaults(func=run_rollback)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: ask the engine to stop after the current step. Second: exit now.

    The handler only sets a flag and writes with os.write: it may interrupt a thread that holds
    the output's lock, so it must take none.
    """
    def handle(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            os.write(2, f"hitless: {name} again: stopping now; `hitless resume` finishes the run\n".encode())
            os._exit(ExitStatus.INTERRUPTED)
        stop.set()
        os.write(2, f"hitless: {name}: finishing the current step, then stopping (again to stop now)\n".encode())

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _parse_images(pairs: list[str]) -> dict[str, str]:
    images = {}
    for pair in pairs:
        service, sep, image = pair.partition("=")
        if not sep or not service or not image:
            raise BadInput(f"--image {pair}: expected SERVICE=REPO:TAG")
        images[service] = image
    return images


def _base_request(args: argparse.Namespace, kind: str) -> Request:
    spec = Path(args.spec_file or DEFAULT_SPEC)
    return Request(kind=kind, spec_text=spec.read_text(encoding="utf-8"), source=str(spec),
                   base_dir=str(spec.resolve().parent), paths=tuple(getattr(args, "sets", ())),
                   images=_parse_images(getattr(args, "image", [])), until=getattr(args, "until", None))


def _execute(args: argparse.Namespace, kind: str) -> int:
    progress = make_progress(args.json)
    stop = threading.Event()
    try:
        with open_context(args, lock=kind) as ctx, _stop_on_signals(stop):
            engine = Engine(ctx.tree, ctx.runtime, ctx.journal, progress, stop)
            resumed = engine.resume_unfinished()
            if kind == "resume":
                if not resumed:
                    progress(Event("info", "nothing to resume: no unfinished run"))
                return ExitStatus.OK
            request = _base_request(args, kind)
            if kind == "rollback":
                request = rollback_request(ctx.tree, ctx.runtime, ctx.journal, request, args.to_generation)
            plan = plan_for(request, ctx.runtime)
            if args.json:
                progress(Event("plan", "plan", fields={"plan": plan.to_dict()}))
            else:
                console.print(render(plan))
            if args.dry_run:
                return ExitStatus.OK
            if plan.is_noop:
                progress(Event("info", "nothing to do: everything runs as asked"))
                return ExitStatus.OK
            deployment = engine.run(request)
            progress(Event("phase", f"{kind} done (deployment {deployment})"))
            return ExitStatus.OK
    finally:
        progress.close()


def run_upgrade(args: argparse.Namespace) -> int:
    return _execute(args, "upgrade")


def run_resume(args: argparse.Namespace) -> int:
    args.dry_run = False
    return _execute(args, "resume")


def run_rollback(args: argparse.Namespace) -> int:
    return _execute(args, "rollback")
