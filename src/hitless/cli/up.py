"""`hitless up`: converge a first deployment; a second `up` restarts nothing. `--adopt` takes
the project over from docker-compose (engine/adopt.py)."""

from __future__ import annotations

import argparse

from hitless.cli.common import add_spec_options, console, open_context
from hitless.cli.progress import make_progress
from hitless.engine.adopt import ADOPT_ADVICE, ComposeRuns, compose_lines, survey
from hitless.engine.converge import up
from hitless.engine.steps import Event
from hitless.errors import BadInput, ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("up", help="start what the spec asks for and is not running (and the proxy)")
    add_spec_options(parser)
    parser.add_argument("sets", nargs="*", metavar="SET", help="limit to these sets or services")
    parser.add_argument("--adopt", action="store_true",
                        help="take the project over from docker-compose: start hitless's instances, then stop "
                             "compose's containers gracefully, the proxy binding their published ports at once")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    progress = make_progress(False)
    try:
        with open_context(args, lock="up") as ctx:
            takeovers = None
            if ctx.runtime.kind == "docker":
                found = survey(ctx.tree, ctx.runtime)
                if found.holders:
                    raise ComposeRuns(found.holders)
                if found.takeovers and not args.adopt:
                    raise ComposeRuns(compose_lines(ctx.tree, found, ADOPT_ADVICE))
                wanted = {n.path for n in ctx.tree.select(tuple(args.sets))}
                takeovers = {path: c for path, c in found.takeovers.items() if path in wanted}
                if args.adopt and not takeovers:
                    progress(Event("info", f"--adopt: no container of docker-compose project {ctx.tree.project} "
                                           "runs: nothing to take over"))
            elif args.adopt:
                raise BadInput("--adopt takes docker-compose's containers over: it needs the Docker runtime")
            result = up(ctx.tree, ctx.runtime, ctx.journal, tuple(args.sets), progress, takeovers)
        for change in result.needs_upgrade:
            progress(Event("warning", f"{change.service_path} slot {change.slot} runs "
                           f"{change.current.image if change.current else '?'} but the spec differs "
                           f"({', '.join(change.reasons)}): `up` does not restart running instances; "
                           "`hitless upgrade` replaces them with zero downtime"))
    finally:
        progress.close()
    for handover in result.handovers:
        console.print(f"adopted {handover.describe()}", markup=False, soft_wrap=True)
    console.print(f"up: {len(result.started)} started, {result.removed} removed, {result.unchanged} unchanged"
                  + (f", {len(result.handovers)} taken over from docker-compose" if result.handovers else ""))
    return ExitStatus.OK
