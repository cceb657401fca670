"""Reading a compose file: its `.env` and env files (the only I/O of the compose loader), the
conversion, and the hitless validation of the result, with every problem at its compose path."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hitless.errors import BadInput
from hitless.spec.compose.convert import ComposeProblems, Converted, convert
from hitless.spec.compose.envfile import EnvFileError, parse_env_file
from hitless.spec.load import SpecError, build_tree, read_text
from hitless.spec.tree import DesiredTree

DOTENV = ".env"
OVERRIDES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
             "docker-compose.override.yml")


@dataclasses.dataclass(frozen=True)
class LoadedCompose:
    """A compose file as hitless takes it."""

    tree: DesiredTree
    text: str  # the hitless spec it became, as YAML (`hitless validate --explain`)
    warnings: list[str]


def _read_env(file: Path, environment: Mapping[str, str], raw: bool = False) -> dict[str, str]:
    try:
        return parse_env_file(read_text(file, "env"), environment, raw=raw)
    except SpecError as exc:
        raise ValueError(exc.problems[0]) from None
    except BadInput as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    except EnvFileError as exc:
        raise ValueError(str(exc)) from None


def project_environment(directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What variables a compose file sees: `.env` beside it, under the process's environment."""
    dotenv = directory / DOTENV
    if not dotenv.is_file():
        return dict(environ)
    try:
        values = _read_env(dotenv, environ)
    except ValueError as exc:
        raise SpecError(str(dotenv), [str(exc)]) from None
    return {**values, **environ}


def load_compose(file: Path, raw: Any, environ: Mapping[str, str]) -> LoadedCompose:
    """Convert and validate a compose file already read from YAML; SpecError lists what is wrong."""
    directory = file.resolve().parent
    source = str(file)
    beside = [name for name in OVERRIDES if (directory / name).is_file()]
    if beside:
        raise SpecError(source, [f"{beside[0]} beside it: override files are not merged by hitless (merge it into "
                                 f"{file.name}; `docker compose config` prints the merged file)"])
    environment = project_environment(directory, environ)

    def read_env_file(path: str, required: bool, raw_format: bool) -> dict[str, str] | None:
        target = directory / path
        if not target.exists():
            if required:
                raise ValueError("no such env file")
            return None
        return _read_env(target, environment, raw_format)

    try:
        converted = convert(raw, environment, directory.name, read_env_file)
    except ComposeProblems as exc:
        raise SpecError(source, exc.problems) from None
    try:
        tree = build_tree(converted.spec, source, directory)
    except SpecError as exc:
        raise SpecError(source, [translate(p, converted) for p in exc.problems]) from None
    return LoadedCompose(tree, explain(converted), converted.warnings)


def translate(problem: str, converted: Converted) -> str:
    """A problem hitless's validation found, at the compose path its key came from."""
    path, sep, message = problem.partition(": ")
    if not sep:
        return problem
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in converted.where:
            return ": ".join([".".join([converted.where[prefix], *parts[end:]]), message])
    return problem


class _Dumper(yaml.SafeDumper):
    """Block style, but a list or mapping of plain values on one line, as a person writes a spec."""

    def represent_sequence(self, tag, sequence, flow_style=None):
        flat = all(not isinstance(v, (dict, list)) for v in sequence)
        return super().represent_sequence(tag, sequence, flow_style=flat and bool(sequence))


def explain(converted: Converted) -> str:
    """The hitless spec a compose file became, as YAML a hitless spec file could hold."""
    return yaml.dump(converted.spec, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=110)
