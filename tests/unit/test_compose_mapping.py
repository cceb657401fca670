"""The mapping of a compose file to hitless's spec, key by key (pure: no engine, no files but tmp ones)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hitless.engine.desired import config_hash, effective_config, launch_spec
from hitless.spec import parse_spec
from hitless.spec.compose import values
from hitless.spec.compose.convert import ComposeProblems, convert
from hitless.spec.load import SpecError, build_tree, read_spec


def convert_text(text: str, environment: dict[str, str] | None = None, env_files: dict[str, str] | None = None,
                 directory: str = "proj"):
    def read(path: str, required: bool, raw: bool) -> dict[str, str] | None:
        from hitless.spec.compose.envfile import parse_env_file

        if path not in (env_files or {}):
            if required:
                raise ValueError("no such env file")
            return None
        return parse_env_file((env_files or {})[path], environment or {}, raw=raw)

    return convert(yaml.safe_load(text), environment or {}, directory, read)


def service(text: str, name: str = "web", **kwargs) -> dict:
    return convert_text(text, **kwargs).spec["sets"][name]


def problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(ComposeProblems) as caught:
        convert_text(text, **kwargs)
    return caught.value.problems


WEB = "services:\n  web:\n    image: example/web:1\n    ports: ['8080:80']\n"


@pytest.mark.parametrize(("text", "seconds"), [
    ("10ms", 0.01), ("40s", 40), ("1m30s", 90), ("1h5m30s20ms", 3930.02), ("0", 0), ("1.5s", 1.5), ("500us", 0.0005),
    ("2h", 7200),
])
def test_durations_as_compose_writes_them(text: str, seconds: float):
    assert values.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "1y", "s", "1m 30s", "-5s", "", "1d"])
def test_what_is_no_compose_duration(text: str):
    with pytest.raises(ValueError):
        values.duration(text if text != "10" else 10)


@pytest.mark.parametrize(("entry", "target", "listen"), [
    ("8000:8000", 8000, "0.0.0.0:8000"),
    ("49100:22", 22, "0.0.0.0:49100"),
    ("127.0.0.1:8001:8001", 8001, "127.0.0.1:8001"),
    ("[::1]:6001:6001", 6001, "[::1]:6001"),
    ("::1:6000:6000", 6000, "[::1]:6000"),
    ("8080:80/tcp", 80, "0.0.0.0:8080"),
    ({"target": 80, "published": "8080", "host_ip": "127.0.0.1", "protocol": "tcp", "mode": "host"}, 80, "127.0.0.1:8080"),
    ({"target": "80", "published": 8080}, 80, "0.0.0.0:8080"),
])
def test_a_published_port_becomes_the_frontend_and_its_target_the_instances_port(entry, target: int, listen: str):
    svc = service(yaml.safe_dump({"services": {"web": {"image": "a:1", "ports": [entry]}}}))
    assert svc["network"] == {"mode": "bridge", "port": target}
    assert svc["frontend"] == {"listen": listen}


def test_a_service_without_published_port_takes_its_exposed_port_and_has_no_frontend():
    svc = service("services:\n  db: {image: 'postgres:16', expose: ['5432/tcp']}\n", "db")
    assert svc["network"] == {"mode": "bridge", "port": 5432} and "frontend" not in svc


def test_environment_as_a_map_or_a_list_over_env_files_and_from_the_shell():
    text = """
services:
  web:
    image: a:1
    expose: [80]
    env_file: [./a.env, {path: ./b.env}, {path: ./missing.env, required: false}]
    environment:
      - FROM_LIST=list
      - SHARED=environment wins
      - FROM_SHELL
      - NOT_IN_SHELL
"""
    env_files = {"./a.env": "SHARED=a\nONLY_A=a\nLATER=a", "./b.env": "LATER=b\nREF=${FROM_SHELL}"}
    svc = service(text, environment={"FROM_SHELL": "shell"}, env_files=env_files)
    assert svc["environment"] == {"SHARED": "environment wins", "ONLY_A": "a", "LATER": "b", "REF": "shell",
                                  "FROM_LIST": "list", "FROM_SHELL": "shell"}
    mapped = service("services:\n  web: {image: 'a:1', expose: [80], environment: {A: 1, B: true, C: '', D: null}}\n",
                     environment={"D": "d"})
    assert mapped["environment"] == {"A": "1", "B": "true", "C": "", "D": "d"}


def test_a_required_env_file_that_is_missing_is_one_line():
    lines = problems("services:\n  web: {image: 'a:1', expose: [80], env_file: ./nope.env}\n")
    assert lines == ["services.web.env_file: ./nope.env: no such env file"]


@pytest.mark.parametrize(("test", "command"), [
    (["CMD", "curl", "-f", "http://localhost"], ["curl", "-f", "http://localhost"]),
    (["CMD-SHELL", "curl -f http://localhost || exit 1"], ["/bin/sh", "-c", "curl -f http://localhost || exit 1"]),
    ("curl -f http://localhost || exit 1", ["/bin/sh", "-c", "curl -f http://localhost || exit 1"]),
])
def test_healthcheck_test_forms(test, command: list[str]):
    hc = {"test": test, "interval": "1m30s", "timeout": "10s", "retries": 5, "start_period": "40s"}
    svc = service(yaml.safe_dump({"services": {"web": {"image": "a:1", "expose": [80], "healthcheck": hc}}}))
    assert svc["health"] == {"command": command, "interval": 90, "timeout": 10, "start_period": 40, "fall": 5}


@pytest.mark.parametrize("hc", [{"test": ["NONE"]}, {"disable": True}, {"test": ["CMD", "x"], "disable": "true"}])
def test_a_disabled_healthcheck_leaves_hitless_its_tcp_check(hc):
    svc = service(yaml.safe_dump({"services": {"web": {"image": "a:1", "expose": [80], "healthcheck": hc}}}))
    tree = build_tree(convert_text(yaml.safe_dump({"services": {"web": {"image": "a:1", "expose": [80],
                                                                          "healthcheck": hc}}})).spec)
    assert "command" not in svc.get("health", {}) and tree.services()[0].service.health.kind == "tcp"


@pytest.mark.parametrize(("config", "update"), [
    ({}, {}),
    ({"order": "start-first"}, {"strategy": "start-first"}),
    ({"order": "start-first", "parallelism": 2}, {"strategy": "start-first", "surge": 2}),
    ({"order": "start-first", "parallelism": 0}, {"strategy": "all-at-once"}),
    ({"order": "stop-first"}, {"strategy": "rolling"}),
    ({"order": "stop-first", "parallelism": 3}, {"strategy": "rolling", "serial": 3}),
    ({"order": "stop-first", "parallelism": 0}, {"strategy": "recreate"}),
    ({"parallelism": 1, "delay": "10s", "monitor": "1m", "failure_action": "rollback"},
     {"strategy": "start-first", "surge": 1, "min_ready": 10, "watch": 60}),
])
def test_update_config_becomes_the_update_strategy(config: dict, update: dict):
    deploy = {"replicas": 3, **({"update_config": config} if config else {})}
    svc = service(yaml.safe_dump({"services": {"web": {"image": "a:1", "expose": [80], "deploy": deploy}}}))
    assert svc["replicas"] == 3 and svc.get("update", {}) == update


def test_depends_on_orders_the_tree_and_sets_group_services():
    text = """
services:
  web: {image: 'w:1', ports: ['80:80'], depends_on: {api: {condition: service_healthy}}}
  api: {image: 'a:1', expose: [1], depends_on: [db, cache]}
  cache: {image: 'c:1', expose: [1]}
  db: {image: 'd:1', expose: [1]}
  admin: {image: 'x:1', expose: [1]}
"""
    assert list(convert_text(text).spec["sets"]) == ["cache", "db", "api", "web", "admin"]
    grouped = convert_text(text + "x-hitless:\n  sets:\n    front: [web, admin]\n    data: {stores: [db, cache]}\n")
    sets = grouped.spec["sets"]
    assert list(sets) == ["data", "api", "front"]
    assert list(sets["data"]["stores"]) == ["cache", "db"] and list(sets["front"]) == ["web", "admin"]
    tree = build_tree(grouped.spec)
    assert [n.path for n in tree.services()] == ["data/stores/cache", "data/stores/db", "api", "front/web", "front/admin"]


def test_sets_that_depend_on_each_other_both_ways_are_one_line():
    text = """
services:
  a: {image: 'a:1', expose: [1], depends_on: [d]}
  b: {image: 'b:1', expose: [1]}
  c: {image: 'c:1', expose: [1], depends_on: [b]}
  d: {image: 'd:1', expose: [1]}
x-hitless:
  sets: {one: [a, b], two: [c, d]}
"""
    assert problems(text) == ["x-hitless.sets: one, two depend on each other through depends_on: put them in one set"]


def test_a_long_chain_of_dependencies_is_no_recursion_problem():
    names = [f"s{i}" for i in range(3000)]  # deeper than Python's recursion limit
    services = {n: {"image": "a:1", "expose": [1], **({"depends_on": [names[i + 1]]} if i + 1 < len(names) else {})}
                for i, n in enumerate(names)}
    converted = convert({"services": services}, {}, "proj", lambda *_: None)
    assert list(converted.spec["sets"])[:2] == ["s2999", "s2998"]
    services["s2999"]["depends_on"] = ["s0"]
    with pytest.raises(ComposeProblems) as caught:
        convert({"services": services}, {}, "proj", lambda *_: None)
    [line] = caught.value.problems
    assert line.startswith("services.s0.depends_on: a cycle: s0 → s1 → s2 → ") and line.endswith("s2999 → s0")


def test_x_hitless_adds_what_compose_lacks_and_a_health_kind_replaces_compose_s_test():
    text = """
services:
  web:
    image: a:1
    ports: ['127.0.0.1:9696:9696']
    healthcheck: {test: [CMD, 'true'], interval: 1s}
    stop_grace_period: 30s
    x-hitless:
      health: {http: /healthcheck, rise: 3}
      frontend: {hold: {max_wait: 20s}}
      stop: {ceiling: 1h}
      migrations: {expand: [migrate, expand]}
"""
    svc = service(text)
    assert svc["health"] == {"interval": 1, "http": "/healthcheck", "rise": 3}
    assert svc["frontend"] == {"listen": "127.0.0.1:9696", "hold": {"max_wait": "20s"}}
    assert svc["stop"] == {"grace": 30, "ceiling": "1h"}
    assert build_tree(convert_text(text).spec).services()[0].service.migrations is not None


def test_named_volumes_take_compose_s_names():
    text = """
services:
  db:
    image: d:1
    expose: [1]
    volumes: [data:/a, 'ext:/b:ro', 'named:/c', './conf:/d', '/abs:/e', {type: bind, source: ~/x, target: /f}]
volumes:
  data:
  ext: {external: true}
  named: {name: exactly-this}
"""
    mounts = service(text, "db", environment={"HOME": "/home/me"}, directory="My App")["volumes"]
    assert [(m["source"], m["target"], m["read_only"]) for m in mounts] == [
        ("myapp_data", "/a", False), ("ext", "/b", True), ("exactly-this", "/c", False), ("./conf", "/d", False),
        ("/abs", "/e", False), ("/home/me/x", "/f", False)]


@pytest.mark.parametrize(("environment", "name", "project"), [
    ({}, None, "my_dir-2"),
    ({}, "from-name", "from-name"),
    ({"COMPOSE_PROJECT_NAME": "from-env"}, "from-name", "from-env"),
    ({"SUFFIX": "x"}, "app-${SUFFIX}", "app-x"),
])
def test_the_project_is_compose_s(environment: dict, name: str | None, project: str):
    text = ("" if name is None else f"name: '{name}'\n") + WEB
    assert convert_text(text, environment=environment, directory="My_Dir-2").spec["project"] == project


def test_compose_project_name_is_there_to_interpolate():
    text = "name: shop\nservices:\n  web: {image: 'a:1', expose: [1], environment: {P: '${COMPOSE_PROJECT_NAME}'}}\n"
    assert service(text)["environment"] == {"P": "shop"}


def test_container_options_and_pid_1_init():
    text = """
services:
  web:
    image: a:1
    expose: [1]
    user: nobody
    working_dir: /srv
    privileged: 'true'
    init: true
    cap_add: [NET_ADMIN]
    pid: host
    ipc: shareable
    labels: [com.example.team=infra, com.example.flag]
    entrypoint: [/init.sh]
    command: serve --port 1
"""
    tree = build_tree(convert_text(text).spec)
    svc = tree.services()[0].service
    assert svc.options.init and svc.options.privileged and svc.options.user == "nobody" and svc.options.pid == "host"
    assert svc.labels == {"com.example.team": "infra", "com.example.flag": ""}
    launch = launch_spec("p", tree.services()[0], 0, 1, 1, Path("/"))
    assert launch.options.init and launch.entrypoint == ("/init.sh",) and launch.command == ("serve", "--port", "1")
    assert launch.extra_labels == {"com.example.team": "infra", "com.example.flag": ""}


def test_what_ran_before_keeps_its_config_hash():
    """init, entrypoint and labels count in the hash only when set: an upgrade of hitless alone replaces nothing."""
    node = parse_spec("project: p\nsets:\n  a: {image: 'a:1', network: {port: 80}, options: {user: x}}\n").services()[0]
    config = effective_config(node)
    assert "init" not in config["options"] and "entrypoint" not in config and "labels" not in config
    assert config_hash(node) == "39657a07f6d243ed"  # the hash this service had before these keys existed
    with_init = parse_spec("project: p\nsets:\n  a: {image: 'a:1', network: {port: 80}, options: {user: x, init: true}}\n")
    assert config_hash(with_init.services()[0]) != config_hash(node)


def test_explain_is_a_hitless_spec_that_reads_back_to_the_same_tree(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text((Path(__file__).parent.parent / "compose" / "valid" / "x_hitless.yaml").read_text())
    loaded = read_spec(tmp_path / "compose.yaml", environ={})
    again = parse_spec(loaded.text, "explained.yaml", tmp_path)
    assert again.project == loaded.tree.project == "neutron"
    assert [(n.path, n.service) for n in again.services()] == [(n.path, n.service) for n in loaded.tree.services()]
    assert again.spec == loaded.tree.spec


def test_dot_env_beside_the_file_is_read_and_the_shell_wins(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: 'a:${TAG}', ports: ['${PORT}:80']}\n")
    (tmp_path / ".env").write_text("TAG=1.0\nPORT=8080\nCOMPOSE_PROJECT_NAME=from-dotenv\n")
    loaded = read_spec(tmp_path / "compose.yaml", environ={"TAG": "2.0"})
    web = loaded.tree.services()[0].service
    assert (web.image, web.frontend.listen if web.frontend else None) == ("a:2.0", "0.0.0.0:8080")
    assert loaded.tree.project == "from-dotenv"


def test_a_compose_file_is_found_as_hitless_yaml_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docker-compose.yml").write_text(WEB)
    assert read_spec(None, environ={}).source == "docker-compose.yml"
    (tmp_path / "compose.yaml").write_text(WEB)
    assert read_spec(None, environ={}).source == "compose.yaml"
    (tmp_path / "hitless.yaml").write_text("project: p\nsets: {a: {image: 'a:1', network: {port: 80}}}\n")
    assert read_spec(None, environ={}).source == "hitless.yaml"


def test_an_override_file_beside_it_is_refused_not_ignored(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(WEB)
    (tmp_path / "compose.override.yaml").write_text("services: {web: {environment: {A: b}}}\n")
    with pytest.raises(SpecError) as caught:
        read_spec(tmp_path / "compose.yaml", environ={})
    assert caught.value.lines() == [f"{tmp_path / 'compose.yaml'}: compose.override.yaml beside it: override files are "
                                    "not merged by hitless (merge it into compose.yaml; `docker compose config` prints "
                                    "the merged file)"]


def test_problems_found_by_hitless_s_models_are_reported_at_the_compose_path():
    text = WEB.replace("ports:", "stop_signal: SIGNOPE\n    ports:")
    assert problems_of_tree(text) == ["services.web.stop_signal: unknown signal 'SIGNOPE'"]
    text = WEB + "    x-hitless: {health: {http: healthcheck}}\n"
    assert problems_of_tree(text) == ["services.web.x-hitless.health.http: http health check path must start with '/', "
                                      "got 'healthcheck'"]


def problems_of_tree(text: str) -> list[str]:
    from hitless.spec.compose.load import translate

    converted = convert_text(text)
    with pytest.raises(SpecError) as caught:
        build_tree(converted.spec)
    return [translate(p, converted) for p in caught.value.problems]


def test_every_problem_of_a_file_is_listed():
    text = "services:\n  web:\n    image: a:1\n    ports: ['80:80']\n    networks: [x]\n    tty: true\n    foo: 1\n"
    assert problems(text) == [
        "services.web.networks: not supported by hitless (hitless runs instances on Docker's default bridge and "
        "reaches them through its proxy's frontends)",
        "services.web.tty: not supported by hitless (hitless gives instances no terminal)",
        "services.web.foo: unknown key (not a key of the Compose Specification)",
    ]
