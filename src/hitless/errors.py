"""The root exception type and the named exit statuses of the command line."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Exit statuses of every `hitless` command; scripts may rely on them."""

    OK = 0
    FAILED = 1  # the operation ran and did not succeed (unhealthy instance, failed step)
    BAD_INPUT = 2  # the spec or the command line is wrong; nothing was started
    RUNTIME_UNAVAILABLE = 3  # the container engine (or the proxy) does not answer
    LOCKED = 4  # another hitless process holds the project's lock
    STATE_DAMAGED = 5  # .hitless/state.db is empty, damaged or not a database; nothing was started
    INTERRUPTED = 130  # stopped by Ctrl-C


class HitlessError(Exception):
    """Root of every error hitless reports to a user as one line."""

    exit_status: ExitStatus = ExitStatus.FAILED

    def lines(self) -> list[str]:
        """The user-facing message, one problem per line."""
        return [str(self)]


class BadInput(HitlessError):
    """The user asked for something that cannot be done as asked."""

    exit_status = ExitStatus.BAD_INPUT


class RuntimeUnavailable(HitlessError):
    """The container engine or process supervisor cannot be reached."""

    exit_status = ExitStatus.RUNTIME_UNAVAILABLE


class OperationFailed(HitlessError):
    """An operation ran and failed (an instance never became healthy, a step failed)."""

    exit_status = ExitStatus.FAILED


class StateError(HitlessError):
    """The state database cannot be opened or written."""


class StateDamaged(StateError):
    """The state database is empty, damaged or not a database: a person must restore or move it."""

    exit_status = ExitStatus.STATE_DAMAGED
