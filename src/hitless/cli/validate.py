"""`hitless validate`: check a spec and say what it describes (`--explain`: what a compose file became)."""

from __future__ import annotations

import argparse
import sys

from hitless.cli.common import add_spec_options, console, load
from hitless.errors import ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check the spec; print one line per problem with its YAML path")
    add_spec_options(parser, runtime=False)
    parser.add_argument("--explain", action="store_true",
                        help="print the hitless spec the file stands for (what a compose file became), as YAML")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load(args)
    if args.explain:
        if loaded.compose:
            sys.stdout.write(f"# the hitless spec {loaded.source} stands for\n")
        sys.stdout.write(loaded.text if loaded.text.endswith("\n") else loaded.text + "\n")
        return ExitStatus.OK
    tree = loaded.tree
    services = tree.services()
    replicas = sum(s.service.replicas for s in services)
    kind = "compose file" if loaded.compose else "spec"
    console.print(f"{loaded.source}: valid {kind} — project {tree.project}, "
                  f"{len(services)} service(s), {replicas} replica(s)", markup=False, soft_wrap=True)
    return ExitStatus.OK
