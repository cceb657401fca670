"""What OpenStack users do while hitless upgrades the cloud under them, with the real client.

Run by the Python of the OpenStack client's virtualenv (openstacksdk; see
hitless_demo.openstack.images.ensure_client), one loop per process, until SIGTERM or SIGINT:

    python3 clients.py tokens   --cloud NAME --out FILE [--interval 0.2]
    python3 clients.py networks --cloud NAME --out FILE [--interval 0.5]

`tokens`: a new client (a new connection, like a command-line call) issues a token with a
password, then the token is validated by Keystone (GET /v3/auth/tokens).
`networks`: the seeds' own test, `network create temp` / `network delete temp` in a loop.

Every operation is one JSON line in FILE: {"t", "op", "ok", "ms", "error"}. The clients never
retry: a failure the server gives is a failure recorded. The cloud comes from clouds.yaml
(OS_CLIENT_CONFIG_FILE).
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import openstack

NO_RETRIES: dict[str, Any] = {"connect_retries": 0, "status_code_retries": 0}


class Recorder:
    """Appends one line per operation, flushed at once (the file is read while it grows)."""

    def __init__(self, path: str):
        self.out = open(path, "a", buffering=1)

    def run(self, op: str, action: Callable[[], Any]) -> Any:
        started = time.time()
        try:
            result = action()
        except Exception as exc:  # every failure a user would see
            self.write(op, started, f"{type(exc).__name__}: {exc}"[:500])
            return None
        self.write(op, started, None)
        return result

    def write(self, op: str, started: float, error: str | None) -> None:
        record = {"t": round(started, 4), "op": op, "ok": error is None,
                  "ms": round((time.time() - started) * 1000, 1), "error": error}
        self.out.write(json.dumps(record) + "\n")


def _connect(cloud: str) -> openstack.connection.Connection:
    return openstack.connect(cloud=cloud, **NO_RETRIES)


def tokens(cloud: str, recorder: Recorder, interval: float, running: Callable[[], bool]) -> None:
    admin = _connect(cloud)
    while running():
        started = time.monotonic()
        token = recorder.run("token-issue", lambda: _connect(cloud).authorize())
        if token:
            def validate(token: str = token) -> None:
                answer = admin.session.get("/auth/tokens", endpoint_filter={"service_type": "identity", "interface": "public"},
                                           headers={"X-Subject-Token": token}, raise_exc=True, **NO_RETRIES)
                if answer.json()["token"]["methods"] != ["password"]:
                    raise ValueError(f"unexpected token body {answer.text[:200]}")
            recorder.run("token-validate", validate)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def networks(cloud: str, recorder: Recorder, interval: float, running: Callable[[], bool]) -> None:
    conn = _connect(cloud)
    while running():
        started = time.monotonic()
        network = recorder.run("network-create", lambda: conn.network.create_network(name="temp"))
        if network is not None:
            recorder.run("network-delete", functools.partial(conn.network.delete_network, network, ignore_missing=False))
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("loop", choices=("tokens", "networks"))
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=None)
    args = parser.parse_args(argv)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    loop = {"tokens": tokens, "networks": networks}[args.loop]
    interval = args.interval if args.interval is not None else {"tokens": 0.2, "networks": 0.5}[args.loop]
    loop(args.cloud, Recorder(args.out), interval, lambda: not stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
