"""`hitless up`: converge a first deployment; a second `up` restarts nothing."""

from __future__ import annotations

import argparse

from hitless.cli.common import add_spec_options, console, open_context
from hitless.cli.progress import make_progress
from hitless.engine.converge import up
from hitless.engine.steps import Event
from hitless.errors import ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("up", help="start what the spec asks for and is not running (and the proxy)")
    add_spec_options(parser)
    parser.add_argument("sets", nargs="*", metavar="SET", help="limit to these sets or services")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    progress = make_progress(False)
    try:
        with open_context(args, lock="up") as ctx:
            result = up(ctx.tree, ctx.runtime, ctx.journal, tuple(args.sets), progress)
        for change in result.needs_upgrade:
            progress(Event("warning", f"{change.service_path} slot {change.slot} runs "
                           f"{change.current.image if change.current else '?'} but the spec differs "
                           f"({', '.join(change.reasons)}): `up` does not restart running instances; "
                           "`hitless upgrade` replaces them with zero downtime"))
    finally:
        progress.close()
    console.print(f"up: {len(result.started)} started, {result.removed} removed, {result.unchanged} unchanged")
    return ExitStatus.OK
