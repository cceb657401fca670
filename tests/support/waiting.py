"""Waiting in tests for something to become true, with a bound and a failure that says what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               message: str | Callable[[], str] | None = None) -> T:
    """Call `predicate` until it returns a truthy value, and return that value.

    An exception it raises counts as "not yet" (a server not listening yet, a file half
    written), except AssertionError, which fails at once: that is how a predicate says that
    what it waits for can no longer come. After `timeout` seconds, AssertionError naming what
    was awaited and the last value or exception. `message` says what is awaited: a string, or
    a function called once on timeout (to show the state things were left in); by default the
    predicate's name.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # "not yet": tried again until the time is up
            error: Exception | None = exc
            last = f"last raised {type(exc).__name__}: {_short(str(exc))}"
        else:
            if value:
                return value
            error, last = None, f"last value {_short(repr(value))}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {_what(message, predicate)} ({last})") from error
        time.sleep(min(interval, remaining))


def _what(message: str | Callable[[], str] | None, predicate: Callable[[], object]) -> str:
    if message is None:
        return getattr(predicate, "__qualname__", None) or repr(predicate)
    if callable(message):
        try:
            return message()
        except Exception as exc:  # the failure to report matters more than its decoration
            return f"<message failed: {type(exc).__name__}: {exc}>"
    return message


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
