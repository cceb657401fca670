"""Variable interpolation in a compose file, as the Compose Specification defines it.

`$VAR` and `${VAR}`; `${VAR:-default}` (unset or empty) and `${VAR-default}` (unset);
`${VAR:?error}` and `${VAR?error}` (mandatory); `${VAR:+replacement}` and `${VAR+replacement}`;
defaults, errors and replacements may hold interpolations themselves (`${A:-${B:-x}}`); `$$` is a
literal `$`; a `$` that starts no variable is kept as it is. Values only, never keys. An unset
variable with no default becomes the empty string, with a warning, as compose does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
MAX_NESTING = 16  # `${A:-${B:-...}}` levels: a template deeper than this is no configuration


class InterpolationError(ValueError):
    """A template compose cannot read, or a mandatory variable without a value."""


@dataclasses.dataclass
class Interpolator:
    """Substitutes variables from `environment`; `unset` collects the names used without a value."""

    environment: Mapping[str, str]
    unset: list[str] = dataclasses.field(default_factory=list)
    _depth: int = 0

    def text(self, template: str) -> str:
        """One string, interpolated."""
        if self._depth > MAX_NESTING:
            raise InterpolationError(f"interpolations nested deeper than {MAX_NESTING} levels")
        self._depth += 1
        try:
            return self._text(template)
        finally:
            self._depth -= 1

    def _text(self, template: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(template):
            char = template[i]
            if char != "$":
                out.append(char)
                i += 1
                continue
            following = template[i + 1:i + 2]
            if following == "$":
                out.append("$")
                i += 2
            elif following == "{":
                end = _closing_brace(template, i + 2)
                if end < 0:
                    raise InterpolationError(f"invalid interpolation format in {template!r}: no closing brace")
                out.append(self._braced(template[i + 2:end], template))
                i = end + 1
            else:
                match = _NAME.match(template, i + 1)
                if match is None:
                    out.append("$")  # not a variable: kept as written
                    i += 1
                    continue
                out.append(self._value(match.group(0)) or "")
                i = match.end()
        return "".join(out)

    def _value(self, name: str) -> str | None:
        value = self.environment.get(name)
        if value is None and name not in self.unset:
            self.unset.append(name)
        return value

    def _braced(self, inner: str, template: str) -> str:
        match = _NAME.match(inner)
        if match is None:
            raise InterpolationError(f"invalid interpolation format for ${{{inner}}} in {template!r}")
        name, rest = match.group(0), inner[match.end():]
        if not rest:
            return self._value(name) or ""
        operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
        if operator is None:
            raise InterpolationError(f"invalid interpolation format for ${{{inner}}} in {template!r} "
                                     "(compose supports :- - :? ? :+ +)")
        word = rest[len(operator):]
        value = self.environment.get(name)
        empty_counts = operator.startswith(":")
        missing = value is None or (empty_counts and value == "")
        if operator in (":-", "-"):
            return self.text(word) if missing else str(value)
        if operator in (":?", "?"):
            if missing:
                reason = self.text(word)
                raise InterpolationError(f"required variable {name} is missing a value" + (f": {reason}" if reason else ""))
            return str(value)
        return "" if missing else self.text(word)  # :+ and +

    def value(self, data: Any, path: str = "") -> Any:
        """Every string value in a YAML document, interpolated (keys are left alone)."""
        if isinstance(data, str):
            try:
                return self.text(data)
            except InterpolationError as exc:
                raise InterpolationError(f"{path or '(top level)'}: {exc}") from None
        if isinstance(data, dict):
            return {k: self.value(v, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v, f"{path}.{i}") for i, v in enumerate(data)]
        return data


def _closing_brace(text: str, start: int) -> int:
    """The index of the `}` closing a `${` whose content starts at `start` (nested `${...}` skipped)."""
    depth, i = 1, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1
