"""`hitless validate`: check a spec and say what it describes."""

from __future__ import annotations

import argparse

from hitless.cli.common import add_spec_options, console
from hitless.errors import ExitStatus
from hitless.spec import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check the spec; print one line per problem with its YAML path")
    add_spec_options(parser, runtime=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tree = load_spec(args.spec_file)
    services = tree.services()
    replicas = sum(s.service.replicas for s in services)
    console.print(f"{args.spec_file or 'hitless.yaml'}: valid — project {tree.project}, "
                  f"{len(services)} service(s), {replicas} replica(s)", markup=False)
    return ExitStatus.OK
