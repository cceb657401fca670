"""The proxy's launcher, in its container and under the process supervisor:

    python3 -m hitless.proxy.launch --admin-socket PATH [PROXY ARGS...]

It execs `python3 -m hitless.proxy` (keeping its pid, so the container's main process *is* the
proxy), with `--takeover` when a proxy already answers on the admin socket: a new proxy started
next to a running one takes its listeners over without refusing a connection, and one started
after a crash, a restart or a reboot starts fresh from its persisted routing. Standard library
only.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from hitless.proxy.ipc import unixpath


def answers(path: str, timeout: float = 2.0) -> bool:
    """True when something accepts connections on this Unix socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        unixpath.connect(probe, path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def describe_exit(returncode: int) -> str:
    """How a process ended, for the log."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def proxy_argv(python: str, admin_socket: str, extra: list[str], takeover: bool) -> list[str]:
    """The proxy's command line."""
    return [python, "-m", "hitless.proxy", "--admin-socket", admin_socket, *extra,
            *(["--takeover"] if takeover else [])]


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    """(admin socket, the other proxy arguments) from `--admin-socket PATH REST...`."""
    if len(argv) < 2 or argv[0] != "--admin-socket":
        raise SystemExit("usage: python3 -m hitless.proxy.launch --admin-socket PATH [PROXY ARGS...]")
    return argv[1], argv[2:]


def main(argv: list[str]) -> None:
    admin_socket, extra = split_args(argv)
    command = proxy_argv(sys.executable, admin_socket, extra, answers(admin_socket))
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
