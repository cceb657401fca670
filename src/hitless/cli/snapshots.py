"""`hitless snapshots` lists a project's snapshots; `hitless snapshot SET` takes one now."""

from __future__ import annotations

import argparse
import dataclasses

from rich.table import Table

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, print_json, state_dir
from hitless.engine.snapshots import Snapshots
from hitless.errors import ExitStatus


def register(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("snapshots", help="list the snapshots taken before upgrades (newest first)")
    add_spec_options(listing)
    add_json_option(listing)
    listing.add_argument("set", nargs="?", metavar="SET", help="only this set's")
    listing.set_defaults(func=run_list)

    take = sub.add_parser("snapshot", help="snapshot a set's data now (online)")
    add_spec_options(take)
    add_json_option(take)
    take.add_argument("set", metavar="SET", help="the set, as named under `snapshots:` in the spec")
    take.set_defaults(func=run_take)


def run_list(args: argparse.Namespace) -> int:
    with open_context(args) as ctx:
        snaps = ctx.journal.snapshots(ctx.tree.project, args.set)
    if args.json:
        print_json([dataclasses.asdict(s) for s in snaps])
        return ExitStatus.OK
    table = Table(title=f"snapshots of {ctx.tree.project}", title_justify="left")
    for column in ("id", "set", "kind", "taken", "size", "images", "revision", "deployment"):
        table.add_column(column)
    for s in snaps:
        table.add_row(str(s.id), s.set_path, s.kind, s.created_at, f"{s.size:,}", ", ".join(s.images.values()),
                      "; ".join(s.revision.values()) or "—", str(s.deployment_id or "—"))
    console.print(table)
    return ExitStatus.OK


def run_take(args: argparse.Namespace) -> int:
    with open_context(args, lock="snapshot") as ctx:
        snap = Snapshots(ctx.tree, ctx.runtime, ctx.journal, state_dir(ctx.tree) / "snapshots").take(args.set)
    if args.json:
        print_json(dataclasses.asdict(snap))
    else:
        console.print(f"snapshot {snap.id} of {snap.set_path}: {snap.size:,} bytes in {snap.path}", markup=False, soft_wrap=True)
    return ExitStatus.OK
