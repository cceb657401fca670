"""A systemd unit that runs the proxy, for hosts that prefer systemd to restart it.

systemd restarts the master if it dies; the master restarts its workers. On stop, SIGTERM goes
to the master only (KillMode=mixed): it has its workers drain, and systemd waits for that.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

STOP_TIMEOUT = 3600  # seconds a stop may take: in-flight requests finish first
NOFILE = 1048576


def quote(arg: str) -> str:
    """One ExecStart argument, quoted the way systemd reads it (no specifier, no variable)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in " \t\n\"'\\;"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def unit(args: Sequence[str], python: str | None = None,
         description: str = "hitless proxy") -> str:
    """The unit text: ExecStart runs `python -m hitless proxy ARGS` (paths must be absolute)."""
    command = " ".join(quote(a) for a in [python or sys.executable, "-m", "hitless", "proxy",
                                          *args])
    return f"""[Unit]
Description={description}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={command}
Restart=always
RestartSec=1
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT}
LimitNOFILE={NOFILE}

[Install]
WantedBy=multi-user.target
"""
