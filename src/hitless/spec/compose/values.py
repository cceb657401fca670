"""Compose's value syntaxes: durations, booleans, ports, volumes, environment and labels.

Each parser takes the (interpolated) YAML value and raises ValueError with a message that the
caller prefixes with the value's path.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from hitless.spec.compose.keys import PORT_LONG, VOLUME_LONG, VOLUME_LONG_SUPPORTED, refused

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"true", "yes", "y", "on"}
_FALSE = {"false", "no", "n", "off"}


def duration(value: Any) -> float:
    """Seconds in a compose duration (`10ms`, `40s`, `1m30s`, `1h5m30s20ms`; a bare `0`)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"invalid duration {value!r} (expected e.g. 1m30s)")
    text = str(value).strip()
    if text in ("0", "0.0"):
        return 0.0
    if isinstance(value, (int, float)):
        raise ValueError(f"invalid duration {value!r}: a compose duration carries its unit (e.g. {value}s)")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text or not math.isfinite(total):
        raise ValueError(f"invalid duration {value!r} (units us, ms, s, m, h; e.g. 1m30s)")
    return total


def seconds(value: float) -> int | float:
    """A duration as the hitless spec writes it: whole seconds as an int."""
    return int(value) if value == int(value) else round(value, 6)


def boolean(value: Any) -> bool:
    """A compose boolean: YAML's, or a string such as an interpolation gives (`true`, `no`, ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def integer(value: Any, minimum: int = 0) -> int:
    """A compose integer: YAML's, or digits in a string (an interpolation's result)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"expected a number, got {value!r}")
    if value < minimum:
        raise ValueError(f"must be {minimum} or more, got {value}")
    return value


def string_list(value: Any, what: str) -> list[str]:
    """A list of strings (numbers written as YAML numbers are taken as text)."""
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
        raise ValueError(f"expected a list of {what}")
    return [str(v) for v in value]


def list_of(value: Any, what: str) -> list[Any]:
    """The value when it is a list."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of {what}, got {type(value).__name__}")
    return value


def command(value: Any) -> list[str] | str | None:
    """`command`/`entrypoint`: a list (exec form), a string (split like a shell would), or null."""
    if value is None or isinstance(value, str):
        return value
    return string_list(value, "strings")


# -- environment and labels --------------------------------------------------------------------

def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def key_values(value: Any, what: str, resolve: Callable[[str], str | None] | None) -> dict[str, str]:
    """`environment` or `labels`: a map or a list of `KEY=VALUE`. A key with no value is looked up
    with `resolve` (an environment variable not found is left unset); without `resolve` it is ''."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                raise ValueError(f"{key}: expected a single value, not a {type(item).__name__}")
            if item is None:
                looked = resolve(str(key)) if resolve else ""
                if looked is not None:
                    found[str(key)] = looked
            else:
                found[str(key)] = _scalar_text(item)
        return found
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected {what} as KEY=VALUE strings, got {item!r}")
            key, sep, text = item.partition("=")
            if not key:
                raise ValueError(f"{item!r} names no variable")
            if sep:
                found[key] = text
            else:
                looked = resolve(key) if resolve else ""
                if looked is not None:
                    found[key] = looked
        return found
    raise ValueError(f"expected a map or a list of KEY=VALUE, got {type(value).__name__}")


# -- ports --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Port:
    """One entry of `ports`: the container port, and the host address it is published on (if any)."""

    target: int
    published: int | None
    host_ip: str

    @property
    def listen(self) -> str:
        """host:port for the proxy's frontend."""
        host = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{host}:{self.published}"


def _port_number(text: Any, what: str) -> int:
    raw = str(text).strip()
    if re.fullmatch(r"\d+-\d+", raw):
        first, last = (int(p) for p in raw.split("-"))
        if first != last:
            raise ValueError(f"the {what} port range {raw}: not supported by hitless (one frontend per service "
                             "fronts one port)")
        raw = str(first)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"invalid {what} port {text!r}")
    return int(raw)


def port(value: Any) -> Port:
    """A `ports` entry, short (`[HOST_IP:][HOST:]CONTAINER[/PROTOCOL]`) or long syntax."""
    if isinstance(value, dict):
        for key in value:
            if str(key).startswith("x-"):
                continue
            if key not in PORT_LONG:
                raise ValueError(f"{key}: unknown key (not a key of the Compose Specification)")
        protocol = str(value.get("protocol", "tcp")).lower()
        app = value.get("app_protocol")
        if app is not None and str(app).lower() != "http":
            raise ValueError(f"app_protocol {app}: not supported by hitless (its proxy speaks HTTP/1.1)")
        if "target" not in value:
            raise ValueError("target: required key missing")
        published = value.get("published")
        host_ip = str(value.get("host_ip") or "0.0.0.0")
        parsed = Port(_port_number(value["target"], "container"),
                      None if published in (None, "") else _port_number(published, "published"), host_ip)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        text, _, protocol = text.partition("/")
        protocol = (protocol or "tcp").lower()
        parts = text.rsplit(":", 2)
        if len(parts) == 1:
            parsed = Port(_port_number(parts[0], "container"), None, "0.0.0.0")
        elif len(parts) == 2:
            parsed = Port(_port_number(parts[1], "container"), _port_number(parts[0], "published"), "0.0.0.0")
        else:
            ip = parts[0].strip("[]") or "0.0.0.0"
            parsed = Port(_port_number(parts[2], "container"),
                          _port_number(parts[1], "published") if parts[1] else None, ip)
    else:
        raise ValueError(f"invalid port {value!r}")
    if protocol != "tcp":
        raise ValueError(f"protocol {protocol}: not supported by hitless (its proxy fronts TCP, speaking HTTP/1.1)")
    return parsed


# -- volumes ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Mount:
    """A `volumes` entry: a named volume (`named`) or a host path, at `target`."""

    source: str
    target: str
    read_only: bool
    named: bool


def _host_path(source: str, environment: Mapping[str, str]) -> str:
    if source == "~" or source.startswith("~/"):
        home = environment.get("HOME")
        if not home:
            raise ValueError(f"{source}: HOME is not set, so '~' means nothing")
        return home.rstrip("/") + source[1:]
    return source


def mount(value: Any, environment: Mapping[str, str]) -> Mount:
    """A service's `volumes` entry, short (`SOURCE:TARGET[:MODE]`) or long syntax."""
    if isinstance(value, dict):
        for key in value:
            if str(key).startswith("x-"):
                continue
            if key not in VOLUME_LONG:
                raise ValueError(f"{key}: unknown key (not a key of the Compose Specification)")
            if key not in VOLUME_LONG_SUPPORTED:
                raise ValueError(f"{key}: {refused(key)}")
        kind = value.get("type")
        if kind not in ("volume", "bind"):
            raise ValueError(f"type {kind}: not supported by hitless (volume and bind mounts only)")
        source, target = value.get("source"), value.get("target")
        if not isinstance(target, str) or not target.startswith("/"):
            raise ValueError(f"target {target!r}: expected an absolute path in the container")
        if not isinstance(source, str) or not source:
            what = "an anonymous volume" if kind == "volume" else "a bind mount without a source"
            raise ValueError(f"{what}: not supported by hitless (a new instance would start with an empty one; "
                             "name it)")
        read_only = boolean(value.get("read_only", False))
        if kind == "bind":
            return Mount(_host_path(source, environment), target, read_only, named=False)
        return Mount(source, target, read_only, named=True)
    if not isinstance(value, str):
        raise ValueError(f"invalid volume {value!r}")
    parts = value.split(":")
    if len(parts) == 1:
        raise ValueError(f"{value}: an anonymous volume: not supported by hitless (a new instance would start with "
                         "an empty one; name it, NAME:{value})")
    if len(parts) > 3:
        raise ValueError(f"invalid volume {value!r} (expected SOURCE:TARGET[:MODE])")
    source, target = parts[0], parts[1]
    modes = parts[2].split(",") if len(parts) == 3 else []
    other = [m for m in modes if m not in ("ro", "rw")]
    if other:
        raise ValueError(f"mode {','.join(other)}: not supported by hitless (ro or rw)")
    if not target.startswith("/"):
        raise ValueError(f"target {target!r}: expected an absolute path in the container")
    named = not source.startswith(("/", ".", "~"))
    return Mount(source if named else _host_path(source, environment), target, "ro" in modes, named)
