"""`hitless status`: the tree with each instance's image, generation, health and uptime, and
the proxy: its pid, version, workers, uptime, host and pools. Exits 1 (FAILED) when a service
has a frontend and no proxy answers: its public ports refuse connections, scripts must notice."""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, print_json
from hitless.engine.status import ProxyStatus, ServiceStatus, observe, observe_proxy
from hitless.errors import ExitStatus
from hitless.units import format_duration

_HEALTH_STYLE = {"healthy": "green", "unhealthy": "bold red"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="show the tree: image, generation, health, uptime of each instance")
    add_spec_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def render(project: str, runtime_kind: str, services: list[ServiceStatus]) -> Tree:
    """The project as a tree of sets, services and instances."""
    root = Tree(f"[bold]{project}[/] ({runtime_kind})")
    branches: dict[str, Tree] = {"": root}

    def branch(set_path: str) -> Tree:
        if set_path not in branches:
            parent, _, name = set_path.rpartition("/")
            branches[set_path] = branch(parent).add(f"[bold]{name}[/]")
        return branches[set_path]

    for svc in services:
        set_path, _, name = svc.path.rpartition("/")
        want = f"{svc.image} × {svc.replicas}" if svc.image else "[red]not in spec[/]"
        node = branch(set_path).add(f"[cyan]{name}[/] {want}")
        for inst in svc.instances:
            uptime = format_duration(inst.uptime_seconds) if inst.uptime_seconds is not None else "—"
            style = _HEALTH_STYLE.get(inst.health, "yellow")
            mark = "" if inst.current else " [yellow](differs from spec)[/]"
            where = f"on {inst.host} " if inst.host else ""
            node.add(f"slot {inst.slot} {where}g{inst.generation} {inst.image} [{style}]{inst.health}[/] "
                     f"up {uptime} {inst.address or ''} [dim]{inst.name}[/]{mark}")
        if not svc.instances:
            node.add("[dim]no instance[/]")
    return root


def _host_line(host: dict) -> str:
    if host.get("state") == "missing":
        return f"no {host.get('kind')} host"
    if host.get("kind") == "docker":
        what = f"container {host.get('name')}"
    else:
        what = f"supervisor pid {host.get('ident')}" if host.get("ident") else "supervisor"
    return f"{what} {host.get('state')}, {host.get('restarts', 0)} restart(s)"


def render_proxy(proxy: ProxyStatus) -> Group:
    """The proxy's lines: loud when it does not answer, is another version, or its pools differ."""
    if not proxy.running:
        listens = ", ".join(proxy.listens)
        return Group(Text.from_markup(
            f"[bold red]PROXY DOWN: {proxy.error}: {listens} refuse connections. `hitless up` starts it.[/]  "
            f"[dim]{_host_line(proxy.host)}[/]"))
    uptime = format_duration(proxy.uptime_seconds) if proxy.uptime_seconds is not None else "—"
    version = proxy.version if proxy.version == proxy.installed_version else \
        f"[bold yellow]{proxy.version} (installed: {proxy.installed_version})[/]"
    lines = [f"[bold]proxy[/] pid {proxy.pid} hitless {version} up {uptime} [dim]({_host_line(proxy.host)})[/]"]
    if proxy.workers:
        lines.append("  workers: " + ", ".join(f"#{w.get('index')} pid {w.get('pid')} restarts {w.get('restarts', 0)}"
                                               for w in proxy.workers))
    for fe in proxy.frontends:
        states = ", ".join(f"{n} {state}" for state, n in sorted(fe.by_state.items())) or "[bold red]no backend[/]"
        extra = f" [yellow]paused, {fe.held} held[/]" if fe.paused else ""
        lines.append(f"  [cyan]{fe.name}[/] {fe.listen}: {states}{extra}")
    if proxy.drift is not None:
        for action in proxy.drift.actions:
            lines.append(f"  [bold yellow]pools differ from what runs: {action.describe()}[/]")
    return Group(*(Text.from_markup(line) for line in lines))


def run(args: argparse.Namespace) -> int:
    with open_context(args) as ctx:
        services = observe(ctx.tree, ctx.runtime)
        proxy = observe_proxy(ctx.tree, ctx.runtime, services)
        kind = ctx.runtime.kind
    if args.json:
        print_json({"project": ctx.tree.project, "runtime": kind,
                    "services": [dataclasses.asdict(s) for s in services],
                    "proxy": proxy.to_dict() if proxy is not None else None})
    else:
        console.print(render(ctx.tree.project, kind, services))
        if proxy is not None:
            console.print(render_proxy(proxy))
    return ExitStatus.FAILED if proxy is not None and not proxy.running else ExitStatus.OK
