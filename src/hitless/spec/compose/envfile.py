"""The env file format of compose (`.env` beside the file, and a service's `env_file`).

`VAR=VAL` per line; `#` starts a comment line; blank lines are skipped; `export VAR=VAL` is read
as `VAR=VAL`. Unquoted values end at ` #` (an inline comment) and are trimmed; single-quoted
values are literal (`\\'` is a quote); double-quoted values understand `\\n`, `\\r`, `\\t`, `\\\\`
and `\\"` and may span lines. Unquoted and double-quoted values are interpolated, from what
came earlier in the file and then the given environment. `VAR=` is the empty string; a line
`VAR` alone takes VAR from the environment, or leaves it unset. The `raw` format takes every
value as written, without quotes, escapes or interpolation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from hitless.spec.compose.interpolate import InterpolationError, Interpolator

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "\\$"}


class EnvFileError(ValueError):
    """A line an env file cannot hold; the message names the line."""


def parse_env_file(text: str, environment: Mapping[str, str], *, raw: bool = False) -> dict[str, str]:
    """The variables an env file sets, in order."""
    found: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").split("\n")
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise EnvFileError(f"line {number}: invalid variable name {key[:40]!r}")
        if not sep:
            if key in environment:
                found[key] = environment[key]
            continue
        if raw:
            found[key] = rest
            continue
        lookup = _Chain(found, environment)
        rest = rest.lstrip()
        if rest.startswith(("'", '"')):
            first = number
            while not _closed(rest):
                if number >= len(lines):
                    raise EnvFileError(f"line {first}: the quoted value of {key} is never closed")
                rest += "\n" + lines[number]
                number += 1
            found[key] = _quoted(rest, key, first, lookup)
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
            found[key] = _interpolated(value, key, number, lookup)
    return found


class _Chain(Mapping[str, str]):
    """Earlier lines of the file first, then the environment."""

    def __init__(self, first: Mapping[str, str], second: Mapping[str, str]):
        self.first, self.second = first, second

    def __getitem__(self, key: str) -> str:
        return self.first[key] if key in self.first else self.second[key]

    def __iter__(self):
        return iter({**self.second, **self.first})

    def __len__(self) -> int:
        return len({**self.second, **self.first})


def _closed(text: str) -> bool:
    """True when the quote opening `text` is closed in it (a backslash escapes a quote)."""
    quote, i = text[0], 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return True
        i += 1
    return False


def _quoted(text: str, key: str, number: int, lookup: Mapping[str, str]) -> str:
    quote, i, out = text[0], 1, []
    while text[i] != quote:
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == "'":
                out.append("'" if nxt == "'" else "\\" + nxt)
            else:
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    tail = text[i + 1:].strip()
    if tail and not tail.startswith("#"):
        raise EnvFileError(f"line {number}: unexpected {tail[:20]!r} after the quoted value of {key}")
    value = "".join(out)
    if quote == "'":
        return value
    # An escaped `\$` was kept as `\$` above so that interpolation leaves it a literal `$`.
    parts = value.split("\\$")
    return "$".join(_interpolated(p, key, number, lookup) for p in parts)


def _interpolated(value: str, key: str, number: int, lookup: Mapping[str, str]) -> str:
    try:
        return Interpolator(lookup).text(value)
    except InterpolationError as exc:
        raise EnvFileError(f"line {number}: {key}: {exc}") from None
