"""`hitless down`: gracefully stop and remove the project's instances and its proxy (named
volumes are kept)."""

from __future__ import annotations

import argparse

from hitless.cli.common import add_spec_options, console, open_context
from hitless.cli.progress import make_progress
from hitless.engine.converge import down
from hitless.errors import ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("down", help="stop (gracefully) and remove every instance of the project, and its proxy")
    add_spec_options(parser)
    parser.add_argument("sets", nargs="*", metavar="SET", help="limit to these sets or services (the proxy stays)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    progress = make_progress(False)
    try:
        with open_context(args, lock="down") as ctx:
            removed = down(ctx.tree, ctx.runtime, tuple(args.sets), progress)
    finally:
        progress.close()
    console.print(f"down: {removed} instance(s) removed")
    return ExitStatus.OK
