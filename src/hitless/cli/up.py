"""`hitless up`: converge a first deployment; a second `up` restarts nothing."""

from __future__ import annotations

import argparse

from hitless.cli.common import add_spec_options, console, open_context, reporter
from hitless.cli.plan import render
from hitless.engine.converge import up
from hitless.errors import ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("up", help="start what the spec asks for and is not running")
    add_spec_options(parser)
    parser.add_argument("sets", nargs="*", metavar="SET", help="limit to these sets or services")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_context(args, lock="up") as ctx:
        reporter("info", f"runtime: {ctx.runtime.kind}")
        result = up(ctx.tree, ctx.runtime, ctx.journal, tuple(args.sets), report=reporter)
    if not result.plan.is_noop:
        console.print(render(result.plan))
    console.print(f"up: {len(result.started)} started, {len(result.removed)} removed, "
                  f"{len(result.plan.of('keep'))} unchanged")
    for change in result.needs_upgrade:
        reporter("warning", f"{change.service_path} slot {change.slot} runs {change.current.image if change.current else '?'}"
                 f" but the spec differs ({', '.join(change.reasons)}): `up` does not restart running instances; "
                 "upgrade it with zero downtime instead")
    return ExitStatus.OK
