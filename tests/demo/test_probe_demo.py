"""The demo's pure parts: its spec derived from the example, its load, its table, and the
Kolla-way HAProxy settings."""

from __future__ import annotations

import socket

import yaml

from hitless.spec import parse_spec
from hitless_demo import netapi_demo as demo
from hitless_demo.kolla import HAPROXY_CONFIG
from hitless_demo.paths import NETAPI_DIR, NETAPI_ROOT, work_dir

EXAMPLE = """
project: netapi
runtime: auto
images:
  "netapi:1.0": {command: [python3, -m, netapi], environment: {NETAPI_VERSION: "1.0"}, workdir: .}
snapshots:
  netapi: {sqlite: {volume: netapi-data, path: netapi.db}, keep: 5}
sets:
  netapi:
    api:
      image: netapi:1.0
      replicas: 2
      volumes: [netapi-data:/var/lib/netapi, /etc/netapi:/etc/netapi:ro]
      network: {mode: bridge, port: 9696}
      frontend: {listen: "127.0.0.1:%d"}
      migrations: {expand: [python3, -m, netapi.migrate, expand]}
"""


def test_demo_spec_is_its_own_project_with_its_own_data(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text, volumes, listen = demo.demo_spec(EXAMPLE % port)
    raw = yaml.safe_load(text)
    assert raw["project"] == "hitless-demo" and "runtime" not in raw
    assert volumes == ["hitless-demo-netapi-data"]
    api = raw["sets"]["netapi"]["api"]
    assert api["volumes"] == ["hitless-demo-netapi-data:/var/lib/netapi", "/etc/netapi:/etc/netapi:ro"]
    assert raw["snapshots"]["netapi"]["sqlite"]["volume"] == "hitless-demo-netapi-data"
    assert raw["images"]["netapi:1.0"]["workdir"] == str(NETAPI_DIR.resolve())
    assert listen != f"127.0.0.1:{port}" and listen.startswith("127.0.0.1:"), "a taken port is not reused"
    assert api["migrations"] == {"expand": ["python3", "-m", "netapi.migrate", "expand"]}
    monkeypatch.chdir(tmp_path)  # the demo works in ./hitless-demo/netapi
    tree = parse_spec(text, "demo.yaml", work_dir("netapi"))  # still a valid spec
    assert tree.project == "hitless-demo"


def test_the_example_itself_makes_a_valid_demo_spec(tmp_path, monkeypatch):
    text, volumes, _ = demo.demo_spec((NETAPI_DIR / "hitless.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    tree = parse_spec(text, "demo.yaml", work_dir("netapi"))
    assert [n.path for n in tree.services()] == ["netapi/api"] and volumes
    # The process runtime runs `python3 -m netapi` from the directory that holds the package.
    assert {i["workdir"] for i in yaml.safe_load(text)["images"].values()} == {str(NETAPI_ROOT)}


def test_demo_load_has_both_connection_kinds_the_seeds_cycle_and_long_requests():
    load = demo.demo_load("http://127.0.0.1:1")
    assert [(w.scenario, w.modes) for w in load] == [("get", ("new", "keep")), ("neutron-cycle", ("new",)),
                                                     ("long", ("new",))]
    assert load[2].long_seconds > 10, "longer than Docker's stop timeout"


def test_table_rows():
    def report(failed: int, cut: float | None) -> dict:
        summary = {"requests": 1234, "failed": failed, "windows": 1 if failed else 0, "longest_window_s": 0.5,
                   "longest_cut_ms": cut}
        return {"summary": summary, "phases": {"during": {"latency_ms": {"p99": 12.34}}}, "upgrade": {"seconds": 20.0}}

    kolla, hitless = report(3, 14800.0), report(0, None)
    assert demo._cell(kolla, "failed") == "3" and demo._cell(hitless, "failed") == "0"
    assert demo._cell(kolla, "window") == "0.50 s (1 burst)" and demo._cell(hitless, "window") == "none"
    assert demo._cell(kolla, "cut") == "14.8 s" and demo._cell(hitless, "cut") == "none"
    assert demo._cell(kolla, "p99") == "12.3 ms" and demo._cell(kolla, "requests") == "1,234"


def test_haproxy_has_kolla_settings():
    config = HAPROXY_CONFIG.format(name="x", listen="127.0.0.1:1",
                                   servers="    server x-0 127.0.0.1:2 check inter 2000 rise 2 fall 5\n")
    for line in ("option redispatch", "retries 3", "balance roundrobin", "timeout connect 10s",
                 "check inter 2000 rise 2 fall 5"):
        assert line in config


def test_only_the_newest_reports_are_kept(tmp_path):
    for name in ("20260101-000000", "20260102-000000", "20260103-000000"):
        (tmp_path / name).mkdir()
    demo.prune_reports(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260102-000000", "20260103-000000"]
