"""Which keys of the Compose Specification hitless honours, and why it refuses the others.

A key of the specification hitless cannot honour is one line naming its path and the reason;
a key the specification does not have is an unknown key. `x-` keys are extension fields, which
compose itself ignores by definition; `x-hitless` is hitless's own.
"""

from __future__ import annotations

TOP_LEVEL = frozenset({"version", "name", "services", "volumes", "networks", "configs", "secrets", "include", "models"})
TOP_SUPPORTED = frozenset({"version", "name", "services", "volumes"})

# Every service key of the Compose Specification (its JSON schema's service properties).
SERVICE = frozenset({
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on", "deploy", "develop",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck",
    "hostname", "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start", "pre_start",
    "pre_stop", "privileged", "profiles", "provider", "pull_policy", "pull_refresh_after", "read_only", "restart",
    "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal",
    "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volumes",
    "volumes_from", "working_dir",
})
SERVICE_SUPPORTED = frozenset({
    "image", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes", "healthcheck",
    "stop_signal", "stop_grace_period", "deploy", "depends_on", "user", "working_dir", "privileged", "cap_add",
    "cap_drop", "pid", "ipc", "init", "labels", "restart", "network_mode",
})

DEPLOY = frozenset({"endpoint_mode", "labels", "mode", "placement", "replicas", "resources", "restart_policy",
                    "rollback_config", "update_config"})
DEPLOY_SUPPORTED = frozenset({"mode", "replicas", "update_config"})
UPDATE_CONFIG = frozenset({"delay", "failure_action", "max_failure_ratio", "monitor", "order", "parallelism"})
HEALTHCHECK = frozenset({"disable", "interval", "retries", "start_interval", "start_period", "test", "timeout"})
HEALTHCHECK_SUPPORTED = HEALTHCHECK - {"start_interval"}
DEPENDS_ON = frozenset({"condition", "restart", "required"})
PORT_LONG = frozenset({"name", "mode", "host_ip", "target", "published", "protocol", "app_protocol"})
VOLUME_LONG = frozenset({"type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs", "image"})
VOLUME_LONG_SUPPORTED = frozenset({"type", "source", "target", "read_only"})
TOP_VOLUME = frozenset({"driver", "driver_opts", "external", "labels", "name"})
TOP_VOLUME_SUPPORTED = frozenset({"external", "name", "driver"})
ENV_FILE_LONG = frozenset({"path", "required", "format"})

_NETWORK = "hitless runs instances on Docker's default bridge and reaches them through its proxy's frontends"
_RESOURCES = "hitless does not pass resource limits to the engine"
_NAMESPACES = "hitless does not pass this namespace setting to the engine"

REASONS: dict[str, str] = {
    "build": "hitless builds nothing and pulls nothing: build the image first (e.g. `docker-compose build`) "
             "and name its tag in `image`",
    "container_name": "hitless names every instance (PROJECT-SERVICE-SLOT-gGENERATION): replicas and their "
                      "successors need names of their own",
    "networks": _NETWORK, "links": _NETWORK, "external_links": _NETWORK, "extra_hosts": _NETWORK,
    "dns": _NETWORK, "dns_opt": _NETWORK, "dns_search": _NETWORK, "hostname": _NETWORK, "domainname": _NETWORK,
    "mac_address": _NETWORK,
    "scale": "use deploy.replicas",
    "extends": "merge the service it extends into this one (`docker compose config` prints the merged file)",
    "profiles": "hitless deploys every service of the file",
    "secrets": "mount the file with `volumes` instead", "configs": "mount the file with `volumes` instead",
    "logging": "hitless leaves logging to the engine's defaults",
    "pull_policy": "hitless never pulls: images are built locally", "pull_refresh_after": "hitless never pulls",
    "platform": "hitless starts the image present on this engine",
    "tty": "hitless gives instances no terminal", "stdin_open": "hitless gives instances no standard input",
    "attach": "hitless does not attach to instances' output (`docker logs` reads it)",
    "volumes_from": "name the volumes in `volumes` instead",
    "tmpfs": "not passed to the engine by hitless", "read_only": "not passed to the engine by hitless",
    "security_opt": "not passed to the engine by hitless", "devices": "not passed to the engine by hitless",
    "sysctls": "not passed to the engine by hitless", "ulimits": "not passed to the engine by hitless",
    "post_start": "hitless runs no lifecycle hooks (its drain commands, x-hitless.drain, run around a stop)",
    "pre_start": "hitless runs no lifecycle hooks", "pre_stop": "hitless runs no lifecycle hooks "
                 "(x-hitless.drain.before runs before an old instance stops)",
    "userns_mode": _NAMESPACES, "uts": _NAMESPACES, "cgroup": _NAMESPACES, "cgroup_parent": _NAMESPACES,
    "isolation": _NAMESPACES, "runtime": "hitless starts instances with the engine's default runtime",
    "develop": "compose's watch mode is a development tool", "provider": "hitless runs containers only",
    "models": "hitless runs containers only", "gpus": _RESOURCES, "label_file": "give the labels in `labels`",
    "annotations": "not passed to the engine by hitless", "credential_spec": "a Windows option",
    "use_api_socket": "not passed to the engine by hitless", "group_add": "not passed to the engine by hitless",
    "storage_opt": _RESOURCES, "oom_kill_disable": _RESOURCES, "oom_score_adj": _RESOURCES, "shm_size": _RESOURCES,
    "pids_limit": _RESOURCES, "device_cgroup_rules": _RESOURCES, "blkio_config": _RESOURCES, "cpu_count": _RESOURCES,
    "cpu_percent": _RESOURCES, "cpu_period": _RESOURCES, "cpu_quota": _RESOURCES, "cpu_rt_period": _RESOURCES,
    "cpu_rt_runtime": _RESOURCES, "cpu_shares": _RESOURCES, "cpus": _RESOURCES, "cpuset": _RESOURCES,
    "mem_limit": _RESOURCES, "mem_reservation": _RESOURCES, "mem_swappiness": _RESOURCES, "memswap_limit": _RESOURCES,
    # deploy
    "resources": _RESOURCES, "placement": "hitless places instances by x-hitless.hosts",
    "restart_policy": "hitless's instances restart after a crash or a reboot (the engine's unless-stopped)",
    "rollback_config": "hitless rolls back to the last known good state by the same zero-downtime path",
    "endpoint_mode": "hitless's proxy is the service's endpoint",
    # top level
    "include": "merge the included file into this one (`docker compose config` prints the merged file)",
    "start_interval": "hitless polls a new instance every 0.25 s until its first healthy check",
}


def refused(key: str) -> str:
    """The line for a key of the specification hitless does not honour (without its path)."""
    reason = REASONS.get(key)
    return "not supported by hitless" + (f" ({reason})" if reason else "")


def check_keys(data: dict, path: str, known: frozenset[str], supported: frozenset[str], problems: list[str]) -> None:
    """One problem per key of `data` that hitless refuses (known) or that is no compose key at all;
    `x-` keys are extension fields and pass."""
    for key in data:
        text = str(key)
        if text.startswith("x-"):
            continue
        if text not in known:
            problems.append(f"{path}.{text}: unknown key (not a key of the Compose Specification)")
        elif text not in supported:
            problems.append(f"{path}.{text}: {refused(text)}")
