"""`hitless demo`: the netapi showcase, on Docker when an engine answers, else on local processes.

For now it builds (or reuses) the netapi images, deploys 2 replicas with `up`, shows the status,
sends a request to each replica, and cleans up after itself (unless --keep).
"""

from __future__ import annotations

import argparse
import http.client
import time

from hitless.cli.common import console, open_context, reporter
from hitless.cli.progress import make_progress
from hitless.cli.status import render
from hitless.engine.converge import down, up
from hitless.engine.status import observe
from hitless.errors import ExitStatus
from hitless.imagebuild import NETAPI_CONTEXT, build_netapi_images


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="deploy the netapi demo service and show it")
    parser.add_argument("--runtime", choices=("auto", "docker", "process"), default="auto",
                        help="where the demo runs (default: Docker when an engine answers)")
    parser.add_argument("--keep", action="store_true", help="leave the demo running (remove it with `hitless down`)")
    parser.set_defaults(func=run, spec_file=str(NETAPI_CONTEXT / "hitless.yaml"))


def _ask(address: str) -> str:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/v2.0/networks")
        response = conn.getresponse()
        response.read()
        return f"{response.status}, X-Netapi-Version: {response.getheader('X-Netapi-Version')}"
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    with open_context(args, lock="demo") as ctx:
        if ctx.runtime.kind == "docker":
            reporter("info", "building (or reusing) the netapi images; the first build makes a Debian base (~1 min)")
            build_netapi_images(ctx.runtime.client, progress=lambda line: reporter("info", line))
        progress = make_progress(False)
        try:
            up(ctx.tree, ctx.runtime, ctx.journal, (), progress)
            services = observe(ctx.tree, ctx.runtime)
            console.print(render(ctx.tree.project, ctx.runtime.kind, services))
            for inst in (i for s in services for i in s.instances if i.address):
                console.print(f"GET http://{inst.address}/v2.0/networks → {_ask(inst.address)}", markup=False, soft_wrap=True)
            for node in ctx.tree.services():
                if node.service.frontend is not None:
                    listen = node.service.frontend.listen
                    console.print(f"GET http://{listen}/v2.0/networks (the frontend) → {_ask(listen)}", markup=False, soft_wrap=True)
        finally:
            if not args.keep:
                down(ctx.tree, ctx.runtime, (), progress)
            progress.close()
    console.print(f"demo done in {time.monotonic() - began:.1f}s on the {ctx.runtime.kind} runtime"
                  + (" (left running: `hitless down -f examples/netapi/hitless.yaml`)" if args.keep else ""))
    return ExitStatus.OK
