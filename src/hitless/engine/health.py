"""Health checks run by hitless from outside the instance: HTTP GET, TCP connect, or a command inside it."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import time
from collections.abc import Callable

from hitless.runtime.base import Instance, Runtime
from hitless.spec.model import Health


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check: healthy or not, and a short word on why."""

    ok: bool
    detail: str


def check_once(runtime: Runtime, instance: Instance, health: Health) -> CheckResult:
    """Run the service's health check against one instance, once."""
    if not instance.running:
        return CheckResult(False, f"not running ({instance.state}, exit code {instance.exit_code})")
    if health.kind == "command":
        try:
            result = runtime.exec(instance.id, list(health.command or ()), timeout=health.timeout)
        except Exception as exc:  # an exec that cannot run is a failed check, not a crash
            return CheckResult(False, f"command failed to run: {exc}")
        tail = result.output.strip().splitlines()[-1:] or [""]
        return CheckResult(result.exit_code == 0, f"exit {result.exit_code} {tail[0]}".strip())
    address = instance.address
    if address is None:
        return CheckResult(False, "no address")
    host, port = address
    if health.kind == "tcp":
        try:
            socket.create_connection((host, port), timeout=health.timeout).close()
        except OSError as exc:
            return CheckResult(False, f"tcp {host}:{port}: {exc.strerror or exc}")
        return CheckResult(True, f"tcp {host}:{port} accepted")
    conn = http.client.HTTPConnection(host, port, timeout=health.timeout)
    try:
        conn.request("GET", health.http or "/", headers={"User-Agent": "hitless-health", "Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return CheckResult(False, f"GET {health.http}: {getattr(exc, 'strerror', None) or exc}")
    finally:
        conn.close()
    return CheckResult(200 <= status < 400, f"GET {health.http} → {status}")


def wait_healthy(
    runtime: Runtime,
    instance_id: str,
    health: Health,
    *,
    on_check: Callable[[CheckResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckResult:
    """Check until `rise` successes in a row (healthy) or `fall` failures in a row after the
    start period (unhealthy). An instance that exits fails at once."""
    started = clock()
    successes = failures = 0
    ever_ok = False
    while True:
        instance = runtime.get(instance_id)
        if instance is None:
            return CheckResult(False, "instance disappeared")
        if instance.state in ("exited", "dead"):
            return CheckResult(False, f"exited with code {instance.exit_code}")
        result = check_once(runtime, instance, health)
        if on_check:
            on_check(result)
        if result.ok:
            ever_ok = True
            successes, failures = successes + 1, 0
            if successes >= health.rise:
                return result
        else:
            successes = 0
            if clock() - started >= health.start_period:
                failures += 1
                if failures >= health.fall:
                    return CheckResult(False, f"{failures} failed checks in a row: {result.detail}")
        # Until the first success, poll quickly (like Docker's start interval): a fresh
        # instance should not wait a whole interval to be noticed.
        sleep(health.interval if ever_ok else min(health.interval, 0.25))
