"""Frontend configuration: shape, defaults, validation, files."""

from __future__ import annotations

import json

import pytest

from hitless.errors import BadInput
from hitless.proxy.config import FrontendConfig, HealthCheck, HoldLimits, load_frontends, parse_address


def test_defaults_match_the_issue():
    fe = FrontendConfig.from_dict({"name": "netapi", "listen": "0.0.0.0:9696"})
    assert fe.hold == HoldLimits(max_requests=10_000, max_bytes=64 * 1024 * 1024,
                                 max_wait=60.0, release_concurrency=16, retry_after=1)
    assert fe.health == HealthCheck(path="/healthcheck", interval=1.0, timeout=1.0, rise=2,
                                    fall=3)
    assert (fe.host, fe.port, fe.proto, fe.backends) == ("0.0.0.0", 9696, "http", ())


def test_round_trip():
    data = {"name": "a", "listen": "[::1]:80", "proto": "https",
            "health": {"path": None, "interval": 0.5, "timeout": 0.2, "rise": 1, "fall": 1},
            "hold": {"max_requests": 1, "max_bytes": 2, "max_wait": 3.0,
                     "release_concurrency": 4, "retry_after": 5},
            "backends": ["127.0.0.1:1"],
            "timeouts": {"keepalive": 1.0, "head": 2.0, "body": 3.0, "send": 4.0}}
    fe = FrontendConfig.from_dict(data)
    assert fe.to_dict() == data
    assert FrontendConfig.from_dict(json.loads(json.dumps(fe.to_dict()))) == fe
    assert fe.host == "::1"


@pytest.mark.parametrize("data, message", [
    ({"name": "a"}, "listen"),
    ({"name": "a", "listen": "nope"}, "host:port"),
    ({"name": "a", "listen": ":99999"}, "host:port"),
    ({"name": "a/b", "listen": ":1"}, "without '/'"),
    ({"name": "a", "listen": ":1", "extra": 1}, "unknown key(s) extra"),
    ({"name": "a", "listen": ":1", "health": {"path": "x"}}, "start with '/'"),
    ({"name": "a", "listen": ":1", "health": {"rise": 0}}, "rise"),
    ({"name": "a", "listen": ":1", "health": {"bogus": 0}}, "health: unknown"),
    ({"name": "a", "listen": ":1", "hold": {"release_concurrency": 0}}, "release_concurrency"),
    ({"name": "a", "listen": ":1", "hold": 5}, "hold must be a mapping"),
    ({"name": "a", "listen": ":1", "backends": ["x"]}, "host:port"),
])
def test_invalid(data, message):
    with pytest.raises(BadInput) as err:
        FrontendConfig.from_dict(data)
    assert message in str(err.value)


def test_parse_address():
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address(":8080") == ("0.0.0.0", 8080)
    assert parse_address("[::]:1") == ("::", 1)


def test_load_files(tmp_path):
    yml = tmp_path / "f.yaml"
    yml.write_text("frontends:\n  - name: a\n    listen: 127.0.0.1:1\n    hold: {max_wait: 2}\n")
    assert load_frontends(yml)[0].hold.max_wait == 2
    js = tmp_path / "f.json"
    js.write_text(json.dumps([{"name": "a", "listen": ":1"}, {"name": "b", "listen": ":2"}]))
    assert [f.name for f in load_frontends(js)] == ["a", "b"]
    js.write_text(json.dumps([{"name": "a", "listen": ":1"}, {"name": "a", "listen": ":2"}]))
    with pytest.raises(BadInput, match="duplicate"):
        load_frontends(js)
    yml.write_text("frontends: {a: 1}\n")
    with pytest.raises(BadInput, match="list of frontends"):
        load_frontends(yml)
    yml.write_text("frontends: [\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_frontends(yml)


def test_a_services_frontend_timeouts_reach_the_proxy():
    from hitless.engine.proxyctl import frontend_config
    from hitless.spec import parse_spec

    tree = parse_spec("""
project: p
sets:
  net:
    api:
      image: 'api:1.0'
      network: {port: 80}
      frontend: {listen: '127.0.0.1:9000', timeouts: {keepalive: 5s, body: 2m}}
""")
    [node] = tree.services()
    timeouts = frontend_config(node).timeouts
    assert (timeouts.keepalive, timeouts.head, timeouts.body, timeouts.send) == (5.0, 30.0, 120.0, 60.0)
