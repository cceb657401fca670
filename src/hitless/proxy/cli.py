"""The proxy's command line: `hitless proxy` and `python -m hitless.proxy` both use it."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from hitless.errors import BadInput, ExitStatus
from hitless.proxy.config import DEFAULT_ADMIN_SOCKET, load_frontends
from hitless.proxy.master.routes import STATE_FILE_NAME, default_state_file


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The proxy's options, on `parser`."""
    parser.add_argument("--admin-socket", default=DEFAULT_ADMIN_SOCKET, metavar="PATH",
                        help=f"admin API Unix socket, mode 0600 (default {DEFAULT_ADMIN_SOCKET})")
    parser.add_argument("--state-file", metavar="PATH",
                        help=f"where the routing is kept across restarts, mode 0600 (default "
                             f"{STATE_FILE_NAME} beside the admin socket); restored at start")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"worker processes serving traffic (default: one per CPU, "
                             f"{default_workers()} here)")
    parser.add_argument("--config", metavar="FILE",
                        help="frontends to start with (YAML or JSON); more can be added at "
                             "run time through the admin API. For a frontend the state file "
                             "has too, its backends and pause flag come from the state file")
    parser.add_argument("--takeover", action="store_true",
                        help="take the sockets and routing over from the proxy running on "
                             "--admin-socket, without refusing a connection; it then drains "
                             "and exits")
    parser.add_argument("--admin-tcp", metavar="HOST:PORT",
                        help="also serve the admin API on this address (needs --admin-token-file; "
                             "plain HTTP: keep it on loopback or a trusted network)")
    parser.add_argument("--admin-token-file", metavar="FILE",
                        help="file holding the bearer token required on --admin-tcp")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))
    parser.add_argument("--systemd-unit", action="store_true",
                        help="print a systemd unit running the proxy with these options, "
                             "and exit")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `proxy` command to a command line's subparsers."""
    parser = subparsers.add_parser(
        "proxy",
        help="run the proxy (holds the public ports) in the foreground",
        description="Run the hitless proxy in the foreground: a master that holds the "
                    "sockets and the routing, and worker processes that forward HTTP/1.1 from "
                    "each frontend to its ready backends and hold requests while none is "
                    "ready. Driven through its admin API; every change is kept in the state "
                    "file. A worker that dies is replaced at once. SIGTERM or Ctrl-C: stop "
                    "accepting, finish in-flight requests, exit; a second one cuts them.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _absolute(path: str) -> str:
    return str(Path(path).absolute())


def _unit_args(args: argparse.Namespace, state_file: str, workers: int) -> list[str]:
    out = ["--admin-socket", _absolute(args.admin_socket), "--state-file", _absolute(state_file),
           "--workers", str(workers), "--log-level", args.log_level]
    if args.config:
        out += ["--config", _absolute(args.config)]
    if args.admin_tcp:
        out += ["--admin-tcp", args.admin_tcp]
    if args.admin_token_file:
        out += ["--admin-token-file", _absolute(args.admin_token_file)]
    return out


def run(args: argparse.Namespace) -> int:
    """Run the proxy (or print its systemd unit) as `args` say."""
    from hitless.proxy.master.process import MasterOptions, run_master

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise BadInput(f"--workers must be at least 1, not {workers}")
    state_file = args.state_file or default_state_file(args.admin_socket)
    if args.systemd_unit:
        from hitless.proxy.systemd import unit

        if args.takeover:
            raise BadInput("--systemd-unit and --takeover exclude each other: "
                           "systemd starts the proxy afresh")
        print(unit(_unit_args(args, state_file, workers)), end="")
        return ExitStatus.OK
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
    options = MasterOptions(admin_socket=args.admin_socket, state_file=state_file,
                            workers=workers, frontends=frontends, admin_tcp=args.admin_tcp,
                            admin_token=token, takeover=args.takeover,
                            log_level=args.log_level)
    try:
        run_master(options)
    except OSError as exc:
        raise BadInput(f"cannot listen: {exc.strerror or exc}") from None
    return ExitStatus.OK
