"""A service's `deploy` section: its replicas, and how an upgrade replaces them.

`update_config.order: start-first` is hitless's `start-first` (surge = `parallelism`; 0, all
at once, is `all-at-once`), `stop-first` is `rolling` (serial = `parallelism`; 0 is `recreate`,
requests held while every instance is replaced); without `order` hitless starts first, unlike
swarm's stop-first default. `delay` (the wait between batches) is the gate's minimum ready time:
each batch stays healthy that long before the next one starts. `monitor` is the watch window
after the switch. hitless rolls a failed upgrade back: `failure_action: rollback` is what it does,
`pause` and `continue` are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hitless.spec.compose import values
from hitless.spec.compose.keys import DEPLOY, DEPLOY_SUPPORTED, UPDATE_CONFIG, check_keys

Put = Callable[[str, Any, str], None]  # (hitless key, value, compose key)


def deploy(raw: Any, path: str, put: Put, problems: list[str]) -> None:
    """Map `deploy` through `put`, appending a problem for what hitless cannot honour."""
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping")
        return
    check_keys(raw, path, DEPLOY, DEPLOY_SUPPORTED, problems)
    mode = raw.get("mode", "replicated")
    if mode == "global":
        problems.append(f"{path}.mode: global: not supported by hitless (x-hitless.hosts runs `replicas` instances on "
                        "each host it names)")
    elif mode != "replicated":
        problems.append(f"{path}.mode: unknown mode {mode!r} (replicated or global)")
    if "replicas" in raw:
        try:
            put("replicas", values.integer(raw["replicas"]), "deploy.replicas")
        except ValueError as exc:
            problems.append(f"{path}.replicas: {exc}")
    if "update_config" in raw:
        _update_config(raw["update_config"], f"{path}.update_config", put, problems)


def _update_config(raw: Any, path: str, put: Put, problems: list[str]) -> None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping")
        return
    check_keys(raw, path, UPDATE_CONFIG, UPDATE_CONFIG, problems)
    where = "deploy.update_config"
    order = raw.get("order", "start-first")
    if order not in ("start-first", "stop-first"):
        problems.append(f"{path}.order: expected start-first or stop-first, got {order!r}")
        return
    parallelism = None
    if "parallelism" in raw:
        try:
            parallelism = values.integer(raw["parallelism"])
        except ValueError as exc:
            problems.append(f"{path}.parallelism: {exc}")
    if order == "start-first":
        put("update.strategy", "start-first" if parallelism != 0 else "all-at-once", f"{where}.order")
        if parallelism:
            put("update.surge", parallelism, f"{where}.parallelism")
    else:
        put("update.strategy", "rolling" if parallelism != 0 else "recreate", f"{where}.order")
        if parallelism:
            put("update.serial", parallelism, f"{where}.parallelism")
    for key, target in (("delay", "min_ready"), ("monitor", "watch")):
        if key in raw:
            try:
                put(f"update.{target}", values.seconds(values.duration(raw[key])), f"{where}.{key}")
            except ValueError as exc:
                problems.append(f"{path}.{key}: {exc}")
    action = raw.get("failure_action", "rollback")
    if action in ("pause", "continue"):
        problems.append(f"{path}.failure_action: {action}: not supported by hitless (it rolls a failed upgrade back "
                        "to the last known good state: failure_action: rollback)")
    elif action != "rollback":
        problems.append(f"{path}.failure_action: expected rollback, pause or continue, got {action!r}")
    if "max_failure_ratio" in raw:
        try:
            ratio = float(raw["max_failure_ratio"])
        except (TypeError, ValueError):
            problems.append(f"{path}.max_failure_ratio: expected a number, got {raw['max_failure_ratio']!r}")
            return
        if ratio != 0:
            problems.append(f"{path}.max_failure_ratio: {raw['max_failure_ratio']}: not supported by hitless (any "
                            "failed instance rolls the upgrade back)")
