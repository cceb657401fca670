"""`hitless proxy`: run the proxy in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hitless.errors import BadInput, ExitStatus
from hitless.proxy.config import DEFAULT_ADMIN_SOCKET, load_frontends


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "proxy",
        help="run the proxy (holds the public ports) in the foreground",
        description="Run the hitless proxy in the foreground. It forwards HTTP/1.1 from each "
                    "frontend to that frontend's ready backends, holds requests while none is "
                    "ready, and is driven through its admin API. SIGTERM or Ctrl-C: stop "
                    "accepting, finish in-flight requests, exit; a second one cuts them.",
    )
    parser.add_argument("--admin-socket", default=DEFAULT_ADMIN_SOCKET, metavar="PATH",
                        help=f"admin API Unix socket, mode 0600 (default {DEFAULT_ADMIN_SOCKET})")
    parser.add_argument("--config", metavar="FILE",
                        help="frontends to start with (YAML or JSON); more can be added at "
                             "run time through the admin API")
    parser.add_argument("--takeover", action="store_true",
                        help="take the listening sockets over from the proxy running on "
                             "--admin-socket, without refusing a connection; it then drains "
                             "and exits")
    parser.add_argument("--admin-tcp", metavar="HOST:PORT",
                        help="also serve the admin API on this loopback address "
                             "(needs --admin-token-file)")
    parser.add_argument("--admin-token-file", metavar="FILE",
                        help="file holding the bearer token required on --admin-tcp")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hitless.proxy.server import ProxyServer, run_proxy

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    frontends = []
    if args.config:
        if args.takeover:
            raise BadInput("--config and --takeover exclude each other: "
                           "a takeover inherits the running proxy's frontends")
        try:
            frontends = load_frontends(args.config)
        except OSError as exc:
            raise BadInput(f"cannot read {args.config}: {exc.strerror}") from None
    token = None
    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text().strip()
        except OSError as exc:
            raise BadInput(f"cannot read {args.admin_token_file}: {exc.strerror}") from None
        if not token:
            raise BadInput(f"{args.admin_token_file} is empty")
    elif args.admin_tcp:
        raise BadInput("--admin-tcp needs --admin-token-file")
    server = ProxyServer(args.admin_socket, frontends, admin_tcp=args.admin_tcp,
                         admin_token=token)
    try:
        run_proxy(server, take_over=args.takeover)
    except OSError as exc:
        raise BadInput(f"cannot listen: {exc.strerror or exc}") from None
    return ExitStatus.OK
