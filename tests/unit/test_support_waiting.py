"""The tests' own wait (tests/support/waiting.py): it returns what it waited for, says what it
waited for when the time runs out, and lets a predicate give up at once."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.waiting import wait_until


def test_returns_the_first_truthy_value():
    calls = itertools.count()
    assert wait_until(lambda: (n := next(calls)) >= 3 and f"after {n}", 5, interval=0.001) == "after 3"


def test_an_exception_is_not_yet_and_is_named_on_timeout():
    def refused():
        raise ConnectionRefusedError("nothing listens")

    with pytest.raises(AssertionError, match=r"waiting for the server \(last raised ConnectionRefusedError: "
                                             r"nothing listens\)") as caught:
        wait_until(refused, 0.05, interval=0.01, message="the server")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_the_last_value_and_a_message_made_on_timeout():
    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.1 s waiting for 2 ready: \['warming'\] "
                                             r"\(last value \[\]\)"):
        wait_until(lambda: [], 0.1, interval=0.02, message=lambda: "2 ready: ['warming']")
    assert 0.1 <= time.monotonic() - began < 1


def test_an_assertion_in_the_predicate_fails_at_once():
    def gone():
        raise AssertionError("the process exited")

    began = time.monotonic()
    with pytest.raises(AssertionError, match="the process exited"):
        wait_until(gone, 10)
    assert time.monotonic() - began < 1
