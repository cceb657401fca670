"""Units as people write them in a spec: durations (`90s`, `15m`, `3h`, `1h30m`, `250ms`) and sizes (`64MiB`)."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration; a bare number counts as seconds. Raises ValueError when unreadable."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, (int, float)):
        # YAML reads `.nan` and `.inf` as floats: a grace of NaN or forever is no duration.
        if not math.isfinite(text):
            raise ValueError(f"invalid duration {text!r}: not a finite number")
        if text < 0:
            raise ValueError(f"invalid duration {text!r}: negative")
        return float(text)
    raw = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return _finite(float(raw), text)
    pos, total = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"invalid duration {text!r}")
    return _finite(total, text)


def _finite(seconds: float, text: str) -> float:
    # float("9" * 400) is inf: a long enough string of digits is no duration either.
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: too large")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: `850ms`, `42s`, `15m`, `1h30m`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


_SIZES = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str | int) -> int:
    """Bytes in a size such as `64MiB`, `512kB` or a bare number of bytes. Raises ValueError when unreadable."""
    if isinstance(text, bool):
        raise ValueError(f"invalid size {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"invalid size {text!r}: negative")
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SIZES:
        raise ValueError(f"invalid size {text!r} (expected e.g. 64MiB)")
    size = float(match.group(1)) * _SIZES[match.group(2).lower()]
    if not math.isfinite(size):
        raise ValueError(f"invalid size {text!r}: too large")
    return int(size)
