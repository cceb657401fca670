"""`hitless plan`: the diff between the spec and what runs, shown before anything runs."""

from __future__ import annotations

import argparse

from rich.table import Table

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, print_json
from hitless.engine.plan import Plan, make_plan
from hitless.errors import ExitStatus

_STYLE = {"create": "green", "replace": "yellow", "remove": "red", "keep": "dim"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", help="show which slots would be created, replaced (and why) or removed")
    add_spec_options(parser)
    add_json_option(parser)
    parser.add_argument("sets", nargs="*", metavar="SET", help="limit to these sets or services (e.g. neutron/server)")
    parser.set_defaults(func=run)


def render(plan: Plan) -> Table:
    """The plan as a table, in upgrade order."""
    table = Table(title=f"plan for {plan.project}", title_justify="left")
    for column in ("service", "slot", "action", "why", "now", "wanted"):
        table.add_column(column)
    for c in plan.changes:
        now = f"{c.current.image} g{c.current.generation} ({c.current.state})" if c.current else "—"
        table.add_row(c.service_path, str(c.slot), f"[{_STYLE[c.action]}]{c.action}[/]", ", ".join(c.reasons) or "—",
                      now, c.image or "—")
    return table


def run(args: argparse.Namespace) -> int:
    with open_context(args) as ctx:
        plan = make_plan(ctx.tree, ctx.runtime.list(ctx.tree.project), args.sets)
    if args.json:
        print_json(plan.to_dict())
        return ExitStatus.OK
    console.print(render(plan))
    s = plan.summary()
    console.print("no change: everything runs as the spec asks" if plan.is_noop else
                  f"{s['create']} to create, {s['replace']} to replace, {s['remove']} to remove, {s['keep']} unchanged")
    return ExitStatus.OK
