import pytest

from hitless.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("3h", 10800), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800),
    ("10", 10), (7, 7), (1.5, 1.5), ("0.5s", 0.5),
])
def test_readable_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5x", "", "s", "1h 30m", "-3s", "m15", True, -1, "3hh"])
def test_unreadable_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_is_short():
    assert format_duration(0.85) == "850ms"
    assert format_duration(42) == "42s"
    assert format_duration(5400) == "1h30m"
