"""`hitless demo`: registered into hitless's command line through the `hitless.commands` entry
point group (see pyproject.toml), as any plug-in would be."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo` to hitless's commands."""
    parser = sub.add_parser("demo", help="upgrade netapi 1.0 → 2.0 the Kolla way and with hitless, under load, side by side")
    parser.add_argument("--runtime", choices=("auto", "docker", "process"), default="auto",
                        help="where the demo runs (default: Docker when an engine answers, else local processes)")
    parser.add_argument("--openstack", action="store_true",
                        help="instead of netapi: real Keystone 28.1.0 → 29.1.0 and Neutron 28.0.2 → 29.0.0 from PyPI, "
                             "under openstacksdk users (Docker and MariaDB needed)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the hitless deployment running on 2.0 (remove it with `hitless down -f FILE`, "
                             "FILE as printed)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The netapi demo, or the OpenStack one."""
    if args.openstack:
        from hitless_demo.openstack import demo

        return demo.run(args)
    from hitless_demo import netapi_demo

    return netapi_demo.run(args)
