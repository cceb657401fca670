"""Reading a spec: YAML (the only I/O here) → validated DesiredTree, or every problem with its YAML path."""

from __future__ import annotations

import dataclasses
import os
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hitless.errors import BadInput
from hitless.spec.model import NAME_PATTERN, Service, Spec
from hitless.spec.tree import DesiredTree, Node, ServiceNode, SetNode
from hitless.spec.yaml_loader import LimitExceeded, SpecLoader

DEFAULT_SPEC = "hitless.yaml"
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")  # compose's own order
MAX_SPEC_BYTES = 4 * 2**20  # read no more: -f /dev/zero or a disk image must not fill memory


class SpecError(BadInput):
    """A spec with problems; one line per problem, each naming its YAML path."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: {len(problems)} problem(s)")
        self.source = source
        self.problems = problems

    def lines(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def _short_repr(value: Any) -> str:
    """A bounded repr: a value from the spec may be huge (aliases) or long."""
    return _REPR.repr(value)


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    if kind in ("value_error", "assertion_error") and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    message = error["msg"][0].lower() + error["msg"][1:]
    if kind in ("literal_error", "string_pattern_mismatch", "int_parsing", "bool_parsing", "greater_than_equal"):
        return f"{message}, got {_short_repr(error['input'])}"
    return message


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for error in exc.errors():
        # A union or a before-validator adds its own loc parts; keep only those the user wrote.
        loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "tagged-union"))]
        path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
        lines.append(f"{path or '(top level)'}: {_describe(error)}")
    return lines


def _build_set(raw: Any, path: str, yaml_path: str, problems: list[str]) -> SetNode | None:
    name = path.rsplit("/", 1)[-1]
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{yaml_path}: a set needs at least one child set or service")
        return None
    children: list[Node] = []
    for child_name, child_raw in raw.items():
        child_yaml = f"{yaml_path}.{child_name}"
        if not isinstance(child_name, str) or not re.match(NAME_PATTERN, child_name):
            problems.append(f"{child_yaml}: invalid name (lowercase letters, digits, '-' and '_')")
            continue
        child_path = f"{path}/{child_name}" if path else child_name
        if isinstance(child_raw, dict) and "image" in child_raw:
            try:
                service = Service.model_validate(child_raw)
            except ValidationError as exc:
                problems.extend(_problems(exc, child_yaml))
                continue
            children.append(ServiceNode(path=child_path, set_path=path, name=child_name, service=service))
        else:
            child_set = _build_set(child_raw, child_path, child_yaml, problems)
            if child_set is not None:
                children.append(child_set)
    return SetNode(path=path, name=name, children=tuple(children))


def _check_host_ports(root: SetNode, problems: list[str]) -> None:
    """Host-network services share the host's ports: each replica needs one of its service's range, and
    ranges must not overlap each other nor a frontend's address."""
    claimed: list[tuple[str, range]] = []
    listening: dict[int, str] = {}
    for node in root.services():
        if node.service.frontend is not None:
            port = int(node.service.frontend.listen.rsplit(":", 1)[1])
            if port in listening:
                problems.append(f"sets.{node.path.replace('/', '.')}.frontend.listen: "
                                f"port {port} is the frontend of {listening[port]} too")
            listening[port] = node.path
    for node in root.services():
        net = node.service.network
        if net.mode != "host" or net.ports is None:
            continue
        mine = range(net.ports.first, net.ports.last + 1)
        if node.service.replicas > len(mine):
            problems.append(f"sets.{node.path.replace('/', '.')}.replicas: {node.service.replicas} replicas on host networking "
                            f"need {node.service.replicas} ports, and network.ports {net.ports.first}-{net.ports.last} "
                            f"has {len(mine)}")
        for port, owner in listening.items():
            if port in mine:
                problems.append(f"sets.{node.path.replace('/', '.')}.network.ports: includes {port}, the frontend of {owner}")
        for other, theirs in claimed:
            if mine.start < theirs.stop and theirs.start < mine.stop:
                problems.append(f"sets.{node.path.replace('/', '.')}.network.ports: overlaps the range of {other}")
        claimed.append((node.path, mine))


def _check_contract_after(root: SetNode, problems: list[str]) -> None:
    """`migrations.contract_after` names sets and services of the tree."""
    known = {node.path for node in root.walk()}
    for node in root.services():
        mig = node.service.migrations
        for path in mig.contract_after if mig is not None else ():
            if path not in known:
                problems.append(f"sets.{node.path.replace('/', '.')}.migrations.contract_after: no set or service {path!r}")
            elif mig is not None and mig.contract is None:
                problems.append(f"sets.{node.path.replace('/', '.')}.migrations.contract_after: "
                                "there is no contract to wait with")


def _check_inventory(spec: Spec, problems: list[str]) -> None:
    """Groups name hosts, and no group is named like a host; the proxy's host exists."""
    for group, members in spec.groups.items():
        if group in spec.hosts:
            problems.append(f"groups.{group}: a host is named {group!r} too")
        problems += [f"groups.{group}: no host {m!r} in hosts" for m in members if m not in spec.hosts]
    if spec.proxy.host is not None and spec.proxy.host not in spec.hosts:
        problems.append(f"proxy.host: no host {spec.proxy.host!r} in hosts")


def _place(root: SetNode, spec: Spec, problems: list[str]) -> SetNode:
    """Each service's `hosts:` resolved (a group to its hosts, in order, each once), checked."""
    children: list[Node] = []
    for child in root.children:
        if isinstance(child, SetNode):
            children.append(_place(child, spec, problems))
            continue
        where = f"sets.{child.path.replace('/', '.')}"
        hosts: list[str] = []
        for name in child.service.hosts:
            found = spec.groups.get(name, (name,) if name in spec.hosts else None)
            if found is None:
                problems.append(f"{where}.hosts: no group or host {name!r}")
                continue
            hosts += [h for h in found if h not in hosts]
        if hosts and child.service.network.mode != "host":
            problems.append(f"{where}.network.mode: a service on hosts needs host networking (mode: host, ports: ...): "
                            "a bridge address is not reachable from other hosts")
        children.append(dataclasses.replace(child, hosts=tuple(hosts)))
    return dataclasses.replace(root, children=tuple(children))


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML error: where, then what (PyYAML's own text spans several lines)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return (f"line {line}, column {column}: invalid YAML: character #x{exc.character:04x} is not allowed "
                "(a binary file?)")
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return f"{where}{'refused' if isinstance(exc, LimitExceeded) else 'invalid YAML'}: {problem}"


def read_yaml(text: str, source: str) -> Any:
    """The YAML document in `text`, read with the bounded loader; SpecError with one line if unreadable."""
    try:
        return yaml.load(text, Loader=SpecLoader)
    except yaml.YAMLError as exc:
        raise SpecError(source, [_yaml_problem(exc, text)]) from None


def parse_spec(text: str, source: str = DEFAULT_SPEC, base_dir: Path | None = None) -> DesiredTree:
    """Validate spec text; raises SpecError listing every problem found."""
    return build_tree(read_yaml(text, source), source, base_dir)


def build_tree(raw: Any, source: str = DEFAULT_SPEC, base_dir: Path | None = None) -> DesiredTree:
    """Validate a spec read from YAML; raises SpecError listing every problem found."""
    if not isinstance(raw, dict):
        raise SpecError(source, ["(top level): expected a mapping with 'project' and 'sets'"])
    problems: list[str] = []
    top = {k: v for k, v in raw.items() if k != "sets"}
    if "project" not in top and base_dir is not None:
        top["project"] = re.sub(r"[^a-z0-9_-]", "-", base_dir.resolve().name.lower()).strip("-_") or "default"
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(top)
    except ValidationError as exc:
        problems.extend(_problems(exc, ""))
    root = None
    if "sets" not in raw:
        problems.append("sets: required key missing")
    else:
        root = _build_set(raw["sets"], "", "sets", problems)
        if root is not None:
            _check_host_ports(root, problems)
            _check_contract_after(root, problems)
            if spec is not None:
                _check_inventory(spec, problems)
                root = _place(root, spec, problems)
                paths = {n.path for n in root.walk() if n is not root}
                problems += [f"snapshots.{key}: no set or service '{key}' in sets" for key in spec.snapshots if key not in paths]
    if problems or spec is None or root is None:
        raise SpecError(source, problems)
    return DesiredTree(spec=spec, root=root, base_dir=(base_dir or Path.cwd()).resolve())


def find_spec(path: str | Path | None = None, directory: Path | None = None) -> Path:
    """The spec file to read: `path`, else the first of `hitless.yaml` and compose's own names
    (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml) found in `directory`."""
    if path:
        return Path(path)
    where = directory or Path()
    for name in (DEFAULT_SPEC, *COMPOSE_NAMES):
        if (where / name).is_file():
            return where / name
    raise BadInput(f"no {DEFAULT_SPEC} (nor {', '.join(COMPOSE_NAMES)}) in {where.resolve()} (use -f FILE)")


def read_text(file: Path, what: str = "spec") -> str:
    """A spec (or a file it names) as text: bounded, UTF-8, one line when it cannot be read."""
    try:
        with file.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{file}: no such {what} file" + (" (use -f FILE)" if what == "spec" else "")) from None
    except OSError as exc:
        raise BadInput(f"{file}: cannot read {what}: {exc.strerror}") from None
    if len(data) > MAX_SPEC_BYTES:
        article = "an" if what[0] in "aeiou" else "a"
        raise SpecError(str(file), [f"larger than {MAX_SPEC_BYTES // 2**20} MiB: not {article} {what} file?"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(str(file), [f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
                                    f"a {what} is a {'YAML ' if what == 'spec' else ''}text file"]) from None


def is_compose(file: Path, raw: Any) -> bool:
    """A compose file: by its name, or by its shape (`services:` and no `sets:`)."""
    return file.name in COMPOSE_NAMES or (isinstance(raw, dict) and "services" in raw and "sets" not in raw)


@dataclasses.dataclass(frozen=True)
class LoadedSpec:
    """A spec file as read: its tree, the hitless spec text it stands for, and what to warn about."""

    tree: DesiredTree
    text: str  # the hitless spec: the file itself, or what a compose file became
    source: str
    compose: bool
    warnings: tuple[str, ...] = ()


def read_spec(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read and validate a spec file: hitless's own, or a compose file (see `find_spec`).
    A compose file's `.env` and env files are read here too, and `environ` (default: this
    process's environment) interpolated into it."""
    file = find_spec(path)
    text = read_text(file)
    raw = read_yaml(text, str(file))
    base_dir = file.resolve().parent
    if is_compose(file, raw):
        from hitless.spec.compose.load import load_compose

        loaded = load_compose(file, raw, os.environ if environ is None else environ)
        return LoadedSpec(loaded.tree, loaded.text, str(file), True, tuple(loaded.warnings))
    return LoadedSpec(build_tree(raw, str(file), base_dir), text, str(file), False)


def load_spec(path: str | Path | None = None) -> DesiredTree:
    """Read and validate a spec file (default: `hitless.yaml`, else a compose file, in the current directory)."""
    return read_spec(path).tree
