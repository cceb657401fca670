"""Entry point: parse arguments, dispatch to a command module, map errors to exit statuses.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func=run`, where `run(args) -> int` returns an ExitStatus. Commands from other packages (the
demos) come through the `hitless.commands` entry point group: each entry is such a `register`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys

from hitless import __version__
from hitless.errors import ExitStatus, HitlessError

# Modules under hitless.cli, in the order their commands appear in --help.
COMMAND_MODULES = ("validate", "plan", "up", "upgrade", "snapshots", "status", "down", "probe", "proxy")
ENTRY_POINT_GROUP = "hitless.commands"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command registered."""
    parser = argparse.ArgumentParser(
        prog="hitless",
        description="Upgrade containerized services with zero downtime as users see it.",
    )
    parser.add_argument("--version", action="version", version=f"hitless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"hitless.cli.{name}")
        module.register(sub)
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns (and exits with) its named status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args))
    except HitlessError as exc:
        for line in exc.lines():
            print(f"hitless: {line}", file=sys.stderr)
        status = int(exc.exit_status)
    except KeyboardInterrupt:
        print("hitless: interrupted", file=sys.stderr)
        status = int(ExitStatus.INTERRUPTED)
    sys.exit(status)
