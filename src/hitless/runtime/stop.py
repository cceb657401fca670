"""Graceful stop, as the Kolla blueprint asks: the service's own signal, then patience.

Never `docker stop` (SIGKILL after a fixed 10 s): the configured signal goes through the
runtime's kill, hitless waits for the exit itself for as long as in-flight work needs, and
SIGKILL comes only at an explicit ceiling, announced loudly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from hitless.errors import BadInput, OperationFailed
from hitless.runtime.base import Runtime

log = logging.getLogger(__name__)

EventSink = Callable[[str, str], None]  # (level "info" | "warning", message)
KILL_WAIT = 30.0  # how long an instance may take to vanish after SIGKILL


@dataclasses.dataclass(frozen=True)
class StopOutcome:
    """How a graceful stop ended."""

    exit_code: int | None  # None only when the instance was already gone
    seconds: float  # seconds waited, from the signal to the observed exit
    killed: bool  # True when the ceiling was reached and SIGKILL was sent


def graceful_stop(
    runtime: Runtime,
    instance_id: str,
    *,
    signal_name: str = "SIGTERM",
    grace: float,
    ceiling: float | None = None,
    on_event: EventSink | None = None,
) -> StopOutcome:
    """Send `signal_name`, wait up to `grace` s, warn, wait up to `ceiling` s, then SIGKILL.

    `signal_name` should be the instance's configured stop signal. (dockerd 20.10 cancels the
    pending restart only for a kill with the container's stop signal or SIGKILL; it marks the
    container manually stopped on any kill, which is what keeps unless-stopped from restarting.)
    """
    if grace < 0:
        raise BadInput(f"grace must be 0 seconds or more, not {grace:g}")
    ceiling = grace if ceiling is None else ceiling
    if ceiling < grace:
        raise BadInput(f"the stop ceiling ({ceiling:g} s) must not be shorter than the grace ({grace:g} s)")

    instance = runtime.get(instance_id)
    if instance is None or not instance.running:
        what = "already gone" if instance is None else f"not running ({instance.state})"
        _sink(instance.name if instance else instance_id, on_event)("info", f"{what}, nothing to stop")
        return StopOutcome(exit_code=instance.exit_code if instance else None, seconds=0.0, killed=False)
    return stop_running(runtime, instance_id, instance.name, signal_name=signal_name, grace=grace, ceiling=ceiling,
                        on_event=on_event)


def _sink(name: str, on_event: EventSink | None) -> EventSink:
    def event(level: str, message: str) -> None:
        # Messages do not name the instance: the caller knows it (the log line does name it).
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s: %s", name, message)
        if on_event is not None:
            on_event(level, message)

    return event


def stop_running(
    runtime: Runtime,
    instance_id: str,
    name: str,
    *,
    signal_name: str,
    grace: float,
    ceiling: float,
    on_event: EventSink | None = None,
) -> StopOutcome:
    """`graceful_stop` of something known to run, hitless's or not (a compose container taken
    over): the signal, patience, SIGKILL only at the ceiling, loudly."""
    event = _sink(name, on_event)
    began = time.monotonic()
    runtime.signal(instance_id, signal_name)
    event("info", f"sent {signal_name}; waiting up to {grace:g} s for in-flight work to finish")
    code = runtime.wait_exit(instance_id, grace)
    if code is None and ceiling > grace:
        event(
            "warning",
            f"still running after grace ({grace:g} s); in-flight work continues until the ceiling ({ceiling:g} s)",
        )
        code = runtime.wait_exit(instance_id, max(0.0, began + ceiling - time.monotonic()))
    if code is not None:
        waited = time.monotonic() - began
        event("info", f"exited with code {code} after {waited:.1f} s")
        return StopOutcome(exit_code=code, seconds=waited, killed=False)

    event(
        "warning",
        f"STILL RUNNING AT THE {ceiling:g} s CEILING: sending SIGKILL; its in-flight work is lost",
    )
    runtime.signal(instance_id, "SIGKILL")
    code = runtime.wait_exit(instance_id, KILL_WAIT)
    waited = time.monotonic() - began
    if code is None:
        raise OperationFailed(f"{name}: still running {KILL_WAIT:g} s after SIGKILL")
    event("warning", f"killed (exit code {code}) after {waited:.1f} s")
    return StopOutcome(exit_code=code, seconds=waited, killed=True)
