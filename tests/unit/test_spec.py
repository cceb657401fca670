import textwrap
from pathlib import Path

import pytest

from hitless.errors import BadInput, ExitStatus
from hitless.spec import parse_spec
from hitless.spec.load import SpecError, load_spec

GOOD = textwrap.dedent("""
    project: openstack
    runtime: docker
    sets:
      neutron:
        server:
          image: neutron-server:1.0
          command: neutron-server --config-file /etc/neutron.conf
          environment: {DEBUG: true, WORKERS: 4}
          volumes: [neutron-data:/var/lib/neutron, /etc/neutron:/etc/neutron:ro]
          replicas: 2
          network: {mode: bridge, port: 9696}
          health: {http: /healthcheck, interval: 1s, rise: 3}
          stop: {signal: TERM, grace: 15m, ceiling: 3h}
          update: {strategy: start-first, surge: 2}
        agents:
          dhcp:
            image: registry.local:5000/kolla/neutron-dhcp-agent:2024.1
            network: {mode: host, ports: 9100-9109}
            options: {privileged: true, cap_add: [NET_ADMIN], pid: host}
            update: {strategy: rolling}
      nova:
        conductor:
          image: nova-conductor:1.0
          network: {mode: host, ports: "9200-9201"}
          health: {command: [healthcheck_port, nova-conductor, "5672"]}
          update: {strategy: all-at-once}
""")


def test_a_good_spec_reads_into_an_ordered_tree():
    tree = parse_spec(GOOD)
    assert tree.project == "openstack"
    assert [s.path for s in tree.services()] == ["neutron/server", "neutron/agents/dhcp", "nova/conductor"]
    server = tree.services()[0].service
    assert server.command == ("neutron-server", "--config-file", "/etc/neutron.conf")
    assert server.environment == {"DEBUG": "true", "WORKERS": "4"}
    assert server.volumes[1].read_only and server.volumes[1].source == "/etc/neutron"
    assert server.stop.signal == "SIGTERM" and server.stop.grace == 900 and server.stop.kill_after == 10800
    assert server.health.kind == "http" and server.health.rise == 3 and server.health.fall == 3
    dhcp = tree.services()[1].service
    assert list(dhcp.network.ports) == list(range(9100, 9110))
    assert dhcp.options.cap_add == ("NET_ADMIN",)
    assert tree.services()[2].service.health.kind == "command"


def test_defaults_are_graceful_not_dockers_ten_seconds():
    tree = parse_spec("project: p\nsets: {a: {image: 'a:1', network: {port: 80}}}")
    svc = tree.services()[0].service
    assert svc.stop.grace == 3600 and svc.stop.kill_after == 3600 and svc.stop.signal == "SIGTERM"
    assert svc.update.strategy == "start-first" and svc.replicas == 1 and svc.health.kind == "tcp"


def test_select_takes_subtrees_in_upgrade_order():
    tree = parse_spec(GOOD)
    assert [s.path for s in tree.select(["nova", "neutron/agents"])] == ["neutron/agents/dhcp", "nova/conductor"]
    assert [s.path for s in tree.select(["neutron/server"])] == ["neutron/server"]
    with pytest.raises(BadInput, match="no set or service 'glance'"):
        tree.select(["glance"])


def test_every_mistake_is_reported_with_its_yaml_path():
    bad = textwrap.dedent("""
        project: demo
        runtime: kubernetes
        sets:
          neutron:
            server:
              image: neutron-server
              replicas: -1
              network: {mode: bridge}
              stop: {grace: 5x, signal: SIGFOO}
              colour: blue
            agents:
              dhcp:
                image: "neutron-dhcp:1.0"
                network: {mode: host, ports: 9000-8000}
                health: {http: /h, tcp: true}
    """)
    with pytest.raises(SpecError) as caught:
        parse_spec(bad, source="hitless.yaml")
    lines = caught.value.lines()
    expected = [
        "runtime: input should be 'auto', 'docker' or 'process'",
        "sets.neutron.server.image: invalid image 'neutron-server'",
        "sets.neutron.server.replicas: input should be greater than or equal to 0",
        "sets.neutron.server.network: bridge networking needs 'port'",
        "sets.neutron.server.stop.grace: invalid duration '5x'",
        "sets.neutron.server.stop.signal: unknown signal 'SIGFOO'",
        "sets.neutron.server.colour: unknown key",
        "sets.neutron.agents.dhcp.network.ports: invalid port range 9000-8000",
        "sets.neutron.agents.dhcp.health: choose one health check kind, not http and tcp",
    ]
    for text in expected:
        assert any(line.startswith("hitless.yaml: " + text) for line in lines), (text, lines)
    assert len(lines) == len(expected)
    assert caught.value.exit_status == ExitStatus.BAD_INPUT


@pytest.mark.parametrize("text, problem", [
    ("project: p\nsets: {a: {image: 'a:1', network: {port: 80}}, a: {}}", "duplicate key 'a'"),
    ("project: p\nsets: [1, 2]", "sets: a set needs at least one child"),
    ("project: p\nsets: {a: {b: {}}}", "sets.a.b: a set needs at least one child"),
    ("project: p", "sets: required key missing"),
    ("project: P!\nsets: {a: {image: 'a:1', network: {port: 80}}}", "project: string should match pattern"),
    ("project: p\nsets: {Bad: {image: 'a:1', network: {port: 80}}}", "sets.Bad: invalid name"),
    ("project: p\nsets: {a: {image: 'a:1', network: {mode: host, port: 80}}}", "sets.a.network: host networking needs 'ports'"),
    ("project: p\nsets: {a: {image: 'a:1', network: {port: 80}, volumes: ['data']}}", "sets.a.volumes.0: invalid volume 'data'"),
    ("project: p\nsets: {a: {image: 'a:1', network: {port: 80}, stop: {grace: 1h, ceiling: 1m}}}",
     "sets.a.stop: ceiling must not be shorter"),
    ("project: p\nsets:\n  a: {image: 'a:1', network: {mode: host, ports: 10-20}}\n"
     "  b: {image: 'b:1', network: {mode: host, ports: 15-30}}",
     "sets.b.network.ports: overlaps the range of a"),
    ("project: p\nsets: {a: {image: 'a:1', network: {port: 80}, update: {strategy: blue-green}}}",
     "sets.a.update.strategy: input should be"),
    ("project: p\n  sets: x: y", "invalid YAML"),
    ("project: p\nsets: {a: {{b: 1}: 2}}", "invalid YAML: a key must be a plain value, not a dict"),
])
def test_single_mistakes(text, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="s.yaml")
    assert any(problem in line for line in caught.value.lines()), caught.value.lines()


def test_project_defaults_to_the_spec_directory(tmp_path: Path):
    folder = tmp_path / "My Cloud"
    folder.mkdir()
    (folder / "hitless.yaml").write_text("sets: {a: {image: 'a:1', network: {port: 80}}}")
    assert load_spec(folder / "hitless.yaml").project == "my-cloud"


def test_a_missing_spec_file_is_bad_input(tmp_path: Path):
    with pytest.raises(BadInput, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_frontends_and_update_windows():
    tree = parse_spec(
        "project: p\nsets:\n"
        "  a: {image: 'a:1', network: {port: 80}, frontend: {listen: '127.0.0.1:8080', hold: {max_bytes: 1MiB, max_wait: 5s}},"
        " update: {watch: 10s, min_ready: 500ms}}\n")
    svc = tree.services()[0].service
    assert svc.frontend.listen == "127.0.0.1:8080" and svc.frontend.hold.max_bytes == 1024 * 1024
    assert svc.frontend.hold.max_wait == 5 and svc.frontend.hold.max_requests == 10_000
    assert svc.update.watch == 10 and svc.update.min_ready == 0.5
    assert tree.spec.proxy.admin_socket == ".hitless/proxy.sock"


@pytest.mark.parametrize("text, problem", [
    ("  a: {image: 'a:1', network: {port: 80}, frontend: {listen: 'nowhere'}}",
     "sets.a.frontend.listen: invalid listen address 'nowhere'"),
    ("  a: {image: 'a:1', network: {port: 80}, frontend: {listen: ':80', hold: {max_bytes: lots}}}",
     "sets.a.frontend.listen: invalid listen"),
    ("  a: {image: 'a:1', network: {port: 80}, frontend: {listen: 'h:80', hold: {max_bytes: lots}}}",
     "sets.a.frontend.hold.max_bytes: invalid size 'lots'"),
    ("  a: {image: 'a:1', network: {port: 80}, frontend: {listen: 'h:80'}}\n"
     "  b: {image: 'b:1', network: {port: 80}, frontend: {listen: 'h:80'}}",
     "sets.b.frontend.listen: port 80 is the frontend of a too"),
    ("  a: {image: 'a:1', network: {port: 80}, frontend: {listen: 'h:9105'}}\n"
     "  b: {image: 'b:1', network: {mode: host, ports: 9100-9110}}",
     "sets.b.network.ports: includes 9105, the frontend of a"),
])
def test_frontend_mistakes(text, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec("project: p\nsets:\n" + text, source="s.yaml")
    assert any(problem in line for line in caught.value.lines()), caught.value.lines()


def test_snapshots_and_migrations():
    tree = parse_spec(
        "project: p\n"
        "snapshots:\n"
        "  net: {sqlite: {volume: net-data, path: net.db}, keep: 3}\n"
        "  db: {command: {backup: 'sh -c \"mariadb-dump x > $HITLESS_SNAPSHOT\"',"
        " restore: [sh, -c, 'mariadb x < $HITLESS_SNAPSHOT']}}\n"
        "sets:\n"
        "  net:\n"
        "    api: {image: 'a:1', network: {port: 80}, migrations: {expand: [m, expand], contract: [m, contract], timeout: 10m}}\n"
        "  db:\n"
        "    x: {image: 'x:1', network: {port: 81}, migrations: {offline: 'm offline'}}\n")
    assert tree.spec.snapshots["net"].kind == "sqlite" and tree.spec.snapshots["net"].keep == 3
    assert tree.spec.snapshots["db"].command.backup == ("sh", "-c", "mariadb-dump x > $HITLESS_SNAPSHOT")
    api, x = tree.services()
    assert api.service.migrations.expand == ("m", "expand") and api.service.migrations.timeout == 600
    assert x.service.migrations.offline == ("m", "offline")


@pytest.mark.parametrize("text, problem", [
    ("snapshots: {nova: {volume: {name: v}}}", "snapshots.nova: no set or service 'nova' in sets"),
    ("snapshots: {a: {}}", "snapshots.a: give exactly one of sqlite, volume, command"),
    ("snapshots: {a: {volume: {name: v}, sqlite: {volume: v, path: x}}}",
     "give exactly one of sqlite, volume, command (not sqlite and volume)"),
    ("snapshots: {a: {volume: {name: v}, keep: 0}}", "snapshots.a.keep: input should be greater than or equal to 1"),
])
def test_snapshot_mistakes(text, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec(text + "\nproject: p\nsets: {a: {image: 'a:1', network: {port: 80}}}", source="s.yaml")
    assert any(problem in line for line in caught.value.lines()), caught.value.lines()


def test_offline_migration_excludes_expand_and_contract():
    with pytest.raises(SpecError) as caught:
        parse_spec("project: p\nsets: {a: {image: 'a:1', network: {port: 80}, migrations: {offline: [m], expand: [m]}}}")
    assert caught.value.problems == ["sets.a.migrations: an 'offline' migration replaces expand/contract: give one or the other"]
