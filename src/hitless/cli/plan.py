"""`hitless plan`: the diff between the spec and what runs, shown before anything runs; and
whether the proxy is down or its pools differ from what runs (what the next command fixes)."""

from __future__ import annotations

import argparse

from rich.table import Table

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, print_json
from hitless.engine.plan import Plan, make_plan
from hitless.engine.proxyctl import ProxyControl, fronted
from hitless.engine.reconcile import PoolAction
from hitless.errors import ExitStatus, HitlessError

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
    hosts = any(c.host for c in plan.changes)
    for column in ("service", "slot", *(("host",) if hosts else ()), "action", "why", "now", "wanted"):
        table.add_column(column)
    for c in plan.changes:
        now = f"{c.current.image} g{c.current.generation} ({c.current.state})" if c.current else "—"
        table.add_row(c.service_path, str(c.slot), *((c.host or "—",) if hosts else ()), f"[{_STYLE[c.action]}]{c.action}[/]",
                      ", ".join(c.reasons) or "—", now, c.image or "—")
    return table


def proxy_drift(ctx) -> dict | None:
    """The proxy as the next command finds it: {"running": False, "error"} when it does not
    answer, else {"running": True, "version", "in_sync", "actions", ...}; None without frontends."""
    if not fronted(ctx.tree):
        return None
    control = ProxyControl(ctx.tree, ctx.runtime)
    try:
        status = control.client.status()
        diff = control.drift(ctx.tree, ctx.runtime)
    except HitlessError as exc:
        return {"running": False, "error": str(exc)}
    return {"running": True, "pid": status.get("pid"), "version": status.get("version"), **diff.to_dict()}


def render_proxy(proxy: dict) -> list[str]:
    """What the next up/upgrade does to the proxy, loud when it is down."""
    if not proxy["running"]:
        return [f"[bold red]proxy: not running ({proxy['error']}): the next up/upgrade starts it and refills its pools[/]"]
    if proxy["in_sync"]:
        return ["proxy: its pools hold what runs"]
    return ["[bold yellow]proxy: pools differ from what runs; the next up/upgrade will:[/]"] + [
        f"  [yellow]{PoolAction(**action).describe()}[/]" for action in proxy["actions"]]


def run(args: argparse.Namespace) -> int:
    with open_context(args) as ctx:
        plan = make_plan(ctx.tree, ctx.runtime.instances(ctx.tree.project), args.sets)
        proxy = proxy_drift(ctx)
    if args.json:
        print_json({**plan.to_dict(), "proxy": proxy})
        return ExitStatus.OK
    console.print(render(plan))
    s = plan.summary()
    console.print("no change: everything runs as the spec asks" if plan.is_noop else
                  f"{s['create']} to create, {s['replace']} to replace, {s['remove']} to remove, {s['keep']} unchanged")
    for line in render_proxy(proxy) if proxy is not None else []:
        console.print(line)
    return ExitStatus.OK
