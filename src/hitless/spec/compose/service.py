"""One compose service → one hitless service (as the raw mapping a hitless spec would hold).

Pure: the env files a service names are read through the `read_env_file` the caller gives.
Problems are appended as lines naming their compose path; `where` records, for each key of the
hitless service, the compose key it came from, so that what the hitless models refuse later is
reported at the compose path too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from hitless.spec.compose import values
from hitless.spec.compose.keys import (
    DEPENDS_ON,
    ENV_FILE_LONG,
    HEALTHCHECK,
    HEALTHCHECK_SUPPORTED,
    SERVICE,
    SERVICE_SUPPORTED,
    check_keys,
)
from hitless.spec.compose.update import deploy as map_deploy

# (path relative to the compose file's directory, required, raw format) → its variables; None when
# a file that is not required is missing. Raises ValueError with a one-line reason.
ReadEnvFile = Callable[[str, bool, bool], "dict[str, str] | None"]

X_HITLESS_SERVICE = ("frontend", "health", "stop", "update", "drain", "migrations", "hosts", "network")
_HEALTH_KINDS = ("http", "tcp", "command")
_RESTARTS = ("always", "unless-stopped")


@dataclasses.dataclass
class Context:
    """What every service of a file shares."""

    environment: Mapping[str, str]  # the project's: the process environment over `.env`
    volumes: dict[str, str]  # top-level volume name → the engine's volume name
    read_env_file: ReadEnvFile


@dataclasses.dataclass
class Mapped:
    """A service as hitless takes it: the raw service, its compose provenance, its dependencies."""

    service: dict[str, Any]
    where: dict[str, str]  # hitless key path (relative) → compose key path (relative)
    depends_on: list[str]


class _Builder:
    def __init__(self, name: str, raw: dict[str, Any], ctx: Context, problems: list[str]):
        self.path, self.raw, self.ctx, self.problems = f"services.{name}", raw, ctx, problems
        self.service: dict[str, Any] = {}
        self.where: dict[str, str] = {}

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}.{key}: {message}")

    def put(self, hitless_key: str, value: Any, compose_key: str) -> None:
        section, _, leaf = hitless_key.partition(".")
        if leaf:
            self.service.setdefault(section, {})[leaf] = value
        else:
            self.service[section] = value
        self.where[hitless_key] = compose_key

    def parsed(self, key: str, parse: Callable[[Any], Any]) -> Any:
        """`parse` of the key's value; None (and a problem) when it does not parse."""
        try:
            return parse(self.raw[key])
        except ValueError as exc:
            self.problem(key, str(exc))
            return None


def map_service(name: str, raw: Any, ctx: Context, problems: list[str]) -> Mapped | None:
    """The hitless service a compose service becomes, or None when it is no mapping."""
    if not isinstance(raw, dict):
        problems.append(f"services.{name}: expected a mapping of the service's keys")
        return None
    b = _Builder(name, raw, ctx, problems)
    check_keys(raw, b.path, SERVICE, SERVICE_SUPPORTED, problems)
    if "image" in raw:
        b.put("image", raw["image"], "image")
    elif "build" not in raw:
        b.problem("image", "required key missing (hitless starts a local image; it builds none)")
    for key in ("entrypoint", "command"):
        if key in raw:
            value = b.parsed(key, values.command)
            if value is not None:
                b.put(key, value, key)
    _environment(b)
    if "labels" in raw:
        labels = b.parsed("labels", lambda v: values.key_values(v, "labels", None))
        if labels:
            b.put("labels", labels, "labels")
    _volumes(b)
    _network(b)
    _healthcheck(b)
    if "stop_signal" in raw:
        b.put("stop.signal", raw["stop_signal"], "stop_signal")
    if "stop_grace_period" in raw:
        grace = b.parsed("stop_grace_period", values.duration)
        if grace is not None:
            b.put("stop.grace", values.seconds(grace), "stop_grace_period")
    if "deploy" in raw:
        map_deploy(raw["deploy"], f"{b.path}.deploy", b.put, problems)
    _options(b)
    _x_hitless(b)
    return Mapped(b.service, b.where, _depends_on(b))


def _environment(b: _Builder) -> None:
    found: dict[str, str] = {}
    if "env_file" in b.raw:
        entries = b.raw["env_file"]
        for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            where = f"env_file.{i}" if isinstance(entries, list) else "env_file"
            if isinstance(entry, dict):
                unknown = [k for k in entry if k not in ENV_FILE_LONG]
                if unknown:
                    b.problem(f"{where}.{unknown[0]}", "unknown key (not a key of the Compose Specification)")
                    continue
                path, fmt = entry.get("path"), entry.get("format")
                try:
                    required = values.boolean(entry.get("required", True))
                except ValueError as exc:
                    b.problem(f"{where}.required", str(exc))
                    continue
                if fmt not in (None, "raw"):
                    b.problem(f"{where}.format", f"unknown format {fmt!r} (compose knows raw)")
                    continue
            else:
                path, required, fmt = entry, True, None
            if not isinstance(path, str) or not path:
                b.problem(where, "expected the path of an env file")
                continue
            try:
                read = b.ctx.read_env_file(path, required, fmt == "raw")
            except ValueError as exc:
                b.problem(where, f"{path}: {exc}")
                continue
            found.update(read or {})
    if "environment" in b.raw:
        resolved = b.parsed("environment", lambda v: values.key_values(v, "variables", b.ctx.environment.get))
        found.update(resolved or {})
    if found:
        b.put("environment", found, "environment" if "environment" in b.raw else "env_file")


def _volumes(b: _Builder) -> None:
    entries = b.raw.get("volumes")
    if entries is None:
        return
    if not isinstance(entries, list):
        b.problem("volumes", "expected a list of volumes")
        return
    mounts = []
    for i, entry in enumerate(entries):
        try:
            m = values.mount(entry, b.ctx.environment)
        except ValueError as exc:
            b.problem(f"volumes.{i}", str(exc))
            continue
        source = m.source
        if m.named:
            if m.source not in b.ctx.volumes:
                b.problem(f"volumes.{i}", f"volume {m.source!r} is not declared in the top-level volumes")
                continue
            source = b.ctx.volumes[m.source]
        elif not source.startswith(("/", ".")):
            source = "./" + source
        mounts.append({"source": source, "target": m.target, "read_only": m.read_only})
    b.put("volumes", mounts, "volumes")


def _network(b: _Builder) -> None:
    mode = b.raw.get("network_mode", "bridge")
    if mode not in ("bridge", "host"):
        b.problem("network_mode", f"{mode}: not supported by hitless (bridge or host)")
        return
    target: int | None = None
    if "ports" in b.raw:
        ports = b.parsed("ports", lambda v: [values.port(p) for p in values.list_of(v, "ports")])
        if ports is not None and mode == "host":
            b.problem("ports", "not with network_mode: host (the service listens on the host's ports itself)")
        elif ports:
            unpublished = [i for i, p in enumerate(ports) if p.published is None]
            if unpublished:
                b.problem(f"ports.{unpublished[0]}", "a host port the engine picks: not supported by hitless (its proxy "
                          "publishes the service at a fixed address: HOST:CONTAINER)")
            elif len(ports) > 1:
                b.problem("ports", f"{len(ports)} published ports: not supported by hitless (a service has one "
                          "frontend; publish one)")
            else:
                target = ports[0].target
                b.put("frontend.listen", ports[0].listen, "ports")
    if target is None and "expose" in b.raw:
        exposed = b.parsed("expose", lambda v: [values.port(str(p)) for p in values.list_of(v, "ports")])
        if exposed and len(exposed) > 1:
            b.problem("expose", "several ports: name the one hitless checks and fronts in x-hitless.network.port")
        elif exposed:
            target = exposed[0].target
    x_network = isinstance(b.raw.get("x-hitless"), dict) and "network" in b.raw["x-hitless"]
    if x_network:
        return  # x-hitless.network says it all
    if mode == "host":
        b.problem("network_mode", "host networking needs x-hitless.network: {mode: host, ports: FIRST-LAST} (one port "
                  "per instance, given in $HITLESS_PORT)")
    elif target is None and not b.raw.get("ports"):  # (ports that did not parse are a problem already)
        b.problems.append(f"{b.path}: no port: publish the one the service listens on (ports), expose it (expose), "
                          "or give x-hitless.network")
    elif target is not None:
        b.put("network", {"mode": "bridge", "port": target}, "ports" if "ports" in b.raw else "expose")


def _healthcheck(b: _Builder) -> None:
    hc = b.raw.get("healthcheck")
    if hc is None:
        return
    if not isinstance(hc, dict):
        b.problem("healthcheck", "expected a mapping")
        return
    check_keys(hc, f"{b.path}.healthcheck", HEALTHCHECK, HEALTHCHECK_SUPPORTED, b.problems)
    try:
        disabled = values.boolean(hc.get("disable", False))
    except ValueError as exc:
        b.problem("healthcheck.disable", str(exc))
        return
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if test is not None and not disabled:
        if not isinstance(test, list) or not test or any(not isinstance(t, str) for t in test):
            b.problem("healthcheck.test", "expected a string or a list of strings")
        elif test[0] == "CMD" and len(test) > 1:
            b.put("health.command", test[1:], "healthcheck.test")
        elif test[0] == "CMD-SHELL" and len(test) > 1:
            b.put("health.command", ["/bin/sh", "-c", " ".join(test[1:])], "healthcheck.test")
        elif test[0] != "NONE":
            b.problem("healthcheck.test", f"the first item must be CMD, CMD-SHELL (each with a command) or NONE, "
                      f"not {test[0]!r}")
    for key, target in (("interval", "interval"), ("timeout", "timeout"), ("start_period", "start_period")):
        if key in hc:
            try:
                b.put(f"health.{target}", values.seconds(values.duration(hc[key])), f"healthcheck.{key}")
            except ValueError as exc:
                b.problem(f"healthcheck.{key}", str(exc))
    if "retries" in hc:
        try:
            b.put("health.fall", values.integer(hc["retries"], minimum=1), "healthcheck.retries")
        except ValueError as exc:
            b.problem("healthcheck.retries", str(exc))


def _options(b: _Builder) -> None:
    for key, target in (("user", "user"), ("working_dir", "workdir")):
        if key in b.raw:
            b.put(f"options.{target}", str(b.raw[key]), key)
    for key in ("privileged", "init"):
        if key in b.raw:
            flag = b.parsed(key, values.boolean)
            if flag is not None:
                b.put(f"options.{key}", flag, key)
    for key in ("cap_add", "cap_drop"):
        if key in b.raw:
            caps = b.parsed(key, lambda v: values.string_list(v, "capabilities"))
            if caps is not None:
                b.put(f"options.{key}", caps, key)
    if b.raw.get("pid") is not None:
        if b.raw["pid"] == "host":
            b.put("options.pid", "host", "pid")
        else:
            b.problem("pid", f"{b.raw['pid']}: not supported by hitless (host only)")
    if b.raw.get("ipc") is not None:
        if str(b.raw["ipc"]).startswith(("service:", "container:")):
            b.problem("ipc", f"{b.raw['ipc']}: not supported by hitless (another instance's namespace may be "
                      "replaced under it)")
        else:
            b.put("options.ipc", str(b.raw["ipc"]), "ipc")
    if "restart" in b.raw and b.raw["restart"] not in _RESTARTS:
        b.problem("restart", f"{b.raw['restart']}: not supported by hitless (its instances restart after a crash or "
                  "a reboot, as unless-stopped: give always or unless-stopped, or leave it out)")


def _x_hitless(b: _Builder) -> None:
    ext = b.raw.get("x-hitless")
    if ext is None:
        return
    if not isinstance(ext, dict):
        b.problem("x-hitless", f"expected a mapping with some of {', '.join(X_HITLESS_SERVICE)}")
        return
    for key, value in ext.items():
        if key not in X_HITLESS_SERVICE:
            b.problem(f"x-hitless.{key}", f"unknown key (x-hitless of a service takes {', '.join(X_HITLESS_SERVICE)})")
            continue
        mapped = b.service.get(key)
        if isinstance(value, dict) and isinstance(mapped, dict) and key != "network":
            if key == "health" and any(k in value for k in _HEALTH_KINDS):
                mapped = {k: v for k, v in mapped.items() if k not in _HEALTH_KINDS}
            b.service[key] = {**mapped, **value}
            for leaf in value:
                b.where[f"{key}.{leaf}"] = f"x-hitless.{key}.{leaf}"
        else:
            b.service[key] = value
            b.where[key] = f"x-hitless.{key}"
            b.where.update({f"{key}.{leaf}": f"x-hitless.{key}.{leaf}" for leaf in (value if isinstance(value, dict) else ())})


def _depends_on(b: _Builder) -> list[str]:
    raw = b.raw.get("depends_on")
    if raw is None:
        return []
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return list(raw)
    if not isinstance(raw, dict):
        b.problem("depends_on", "expected a list of services or a mapping of service → condition")
        return []
    names = []
    for dep, options in raw.items():
        where = f"depends_on.{dep}"
        names.append(str(dep))
        if not isinstance(options, dict):
            b.problem(where, "expected a mapping with condition")
            continue
        check_keys(options, f"{b.path}.{where}", DEPENDS_ON, DEPENDS_ON, b.problems)
        condition = options.get("condition", "service_started")
        if condition == "service_completed_successfully":
            b.problem(f"{where}.condition", "service_completed_successfully: not supported by hitless (a one-shot "
                      "service: run it as x-hitless.migrations.bootstrap of the service that needs it)")
        elif condition not in ("service_started", "service_healthy"):
            b.problem(f"{where}.condition", f"unknown condition {condition!r}")
        try:
            if values.boolean(options.get("restart", False)):
                b.problem(f"{where}.restart", "true: not supported by hitless (an upgrade replaces only the services "
                          "that changed)")
            values.boolean(options.get("required", True))
        except ValueError as exc:
            b.problem(where, str(exc))
    return names
