import pytest

from hitless.units import format_duration, parse_duration, parse_size


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


@pytest.mark.parametrize("text, size", [("64MiB", 64 * 1024**2), ("512kB", 512000), (100, 100), ("1.5GiB", 1610612736), ("7", 7)])
def test_readable_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64 furlongs", "", "MiB", -1, True])
def test_unreadable_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)
