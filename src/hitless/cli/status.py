"""`hitless status`: the tree with each instance's image, generation, health and uptime."""

from __future__ import annotations

import argparse
import dataclasses

from rich.tree import Tree

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, print_json
from hitless.units import format_duration
from hitless.engine.status import ServiceStatus, observe
from hitless.errors import ExitStatus

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
            node.add(f"slot {inst.slot} g{inst.generation} {inst.image} [{style}]{inst.health}[/] "
                     f"up {uptime} {inst.address or ''} [dim]{inst.name}[/]{mark}")
        if not svc.instances:
            node.add("[dim]no instance[/]")
    return root


def run(args: argparse.Namespace) -> int:
    with open_context(args) as ctx:
        services = observe(ctx.tree, ctx.runtime)
        kind = ctx.runtime.kind
    if args.json:
        print_json({"project": ctx.tree.project, "runtime": kind,
                    "services": [dataclasses.asdict(s) for s in services]})
    else:
        console.print(render(ctx.tree.project, kind, services))
    return ExitStatus.OK
