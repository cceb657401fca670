"""A compose file (read from YAML) → the hitless spec it stands for, as a raw mapping.

Pure: the environment is given, and env files are read through the given callable. The project
is compose's: $COMPOSE_PROJECT_NAME, else the top-level `name`, else the directory's name made a
compose project name. What compose lacks comes from `x-hitless`, at the top (proxy, runtime,
images, snapshots, hosts, groups, sets) and per service (see service.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from hitless.spec.compose import order
from hitless.spec.compose.interpolate import InterpolationError, Interpolator
from hitless.spec.compose.keys import TOP_LEVEL, TOP_SUPPORTED, TOP_VOLUME, TOP_VOLUME_SUPPORTED, check_keys, refused
from hitless.spec.compose.service import Context, Mapped, ReadEnvFile, map_service
from hitless.spec.model import NAME_PATTERN

X_HITLESS_TOP = ("proxy", "runtime", "images", "snapshots", "hosts", "groups", "sets")


class ComposeProblems(ValueError):
    """Every problem found, one line each, naming its compose path."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class Converted:
    """The hitless spec a compose file became, where each part came from, and the warnings."""

    spec: dict[str, Any]
    where: dict[str, str]  # hitless key path → compose key path
    warnings: list[str]


def project_name(raw: dict[str, Any], environment: Mapping[str, str], directory: str) -> str:
    """Compose's project name: $COMPOSE_PROJECT_NAME, `name`, or the directory's name (lowercased,
    keeping letters, digits, '-' and '_', as compose does)."""
    if environment.get("COMPOSE_PROJECT_NAME"):
        return environment["COMPOSE_PROJECT_NAME"]
    if raw.get("name") is not None:
        return Interpolator(environment).text(str(raw["name"]))
    return re.sub(r"[^-_a-z0-9]", "", directory.lower()).lstrip("-_")


def convert(raw: Any, environment: Mapping[str, str], directory: str, read_env_file: ReadEnvFile) -> Converted:
    """The hitless spec of a compose file; raises ComposeProblems listing every problem found."""
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict) or not raw["services"]:
        raise ComposeProblems(["(top level): not a compose file: expected a mapping with `services`, each a mapping"])
    problems: list[str] = []
    for key in raw:
        text = str(key)
        if text.startswith("x-"):
            continue
        if text not in TOP_LEVEL:
            problems.append(f"{text}: unknown key (not a key of the Compose Specification)")
        elif text not in TOP_SUPPORTED and raw[key]:
            problems.append(f"{text}: {refused(text)}")
    try:
        project = project_name(raw, environment, directory)
    except InterpolationError as exc:
        raise ComposeProblems([f"name: {exc}"]) from None
    if not re.match(NAME_PATTERN, project):
        problems.append(f"name: project name {project!r} is not one hitless can use (lowercase letters, digits, '-' and "
                        "'_', starting with a letter or digit): set `name` or COMPOSE_PROJECT_NAME")
    environment = {**environment, "COMPOSE_PROJECT_NAME": project}
    interpolator = Interpolator(environment)
    try:
        data = interpolator.value({k: v for k, v in raw.items() if k != "name"})
    except InterpolationError as exc:
        raise ComposeProblems([str(exc)]) from None
    ctx = Context(environment, _volumes(data.get("volumes"), project, problems), read_env_file)
    mapped: dict[str, Mapped] = {}
    for name, service in data["services"].items():
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            problems.append(f"services.{name}: a service name hitless can use has lowercase letters, digits, '-' and '_'")
            continue
        one = map_service(name, service, ctx, problems)
        if one is not None:
            mapped[name] = one
    spec, where = _top(data.get("x-hitless"), project, problems)
    names = list(mapped)
    depends = {n: m.depends_on for n, m in mapped.items()}
    if order.check_dependencies(names, depends, problems):
        root = order.tree(names, depends, spec.pop("sets", None), problems)
        spec["sets"] = _sets(root, mapped, "sets", where)
    if problems:
        raise ComposeProblems(problems)
    warnings = [f"variable {name} is not set: an empty string is used" for name in interpolator.unset]
    return Converted(spec, where, warnings)


def _volumes(raw: Any, project: str, problems: list[str]) -> dict[str, str]:
    """Top-level volumes → the engine's names (compose's `PROJECT_NAME`, or `name`, or external as named)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("volumes: expected a mapping of volume names")
        return {}
    names = {}
    for key, options in raw.items():
        where = f"volumes.{key}"
        if options is None:
            options = {}
        if not isinstance(options, dict):
            problems.append(f"{where}: expected a mapping (or nothing)")
            continue
        check_keys(options, where, TOP_VOLUME, TOP_VOLUME_SUPPORTED, problems)
        if options.get("driver", "local") != "local":
            problems.append(f"{where}.driver: {options['driver']}: not supported by hitless (local volumes only)")
        name = options.get("name")
        names[str(key)] = str(name) if name else str(key) if options.get("external") else f"{project}_{key}"
    return names


def _top(raw: Any, project: str, problems: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    spec: dict[str, Any] = {"project": project}
    where = {"project": "name"}
    if raw is None:
        return spec, where
    if not isinstance(raw, dict):
        problems.append(f"x-hitless: expected a mapping with some of {', '.join(X_HITLESS_TOP)}")
        return spec, where
    for key, value in raw.items():
        if key not in X_HITLESS_TOP:
            problems.append(f"x-hitless.{key}: unknown key (x-hitless takes {', '.join(X_HITLESS_TOP)})")
            continue
        spec[key] = value
        where[key] = f"x-hitless.{key}"
    return spec, where


def _sets(group: order.Group, mapped: dict[str, Mapped], path: str, where: dict[str, str]) -> dict[str, Any]:
    """The hitless `sets` of a group, recording where each service's keys came from."""
    out: dict[str, Any] = {}
    for child in group.children:
        if isinstance(child, order.Group):
            out[child.name] = _sets(child, mapped, f"{path}.{child.name}", where)
            where[f"{path}.{child.name}"] = f"x-hitless.sets.{child.name}"
            continue
        service = mapped[child]
        at = f"{path}.{child}"
        out[child] = service.service
        where[at] = f"services.{child}"
        where.update({f"{at}.{k}": f"services.{child}.{v}" for k, v in service.where.items()})
    return out
