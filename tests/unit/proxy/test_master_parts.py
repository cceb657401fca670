"""The master's pure parts: the routing table and its file, aggregation over workers, framing."""

from __future__ import annotations

import json
import socket

import pytest

from hitless.errors import BadInput
from hitless.proxy.config import FrontendConfig
from hitless.proxy.ipc.channel import Decoder, encode, receive_blocking, send_blocking
from hitless.proxy.master import merge, routes


def table() -> routes.Routes:
    table = routes.Routes()
    table.add_frontend(FrontendConfig(name="web", listen="127.0.0.1:8080", backends=["127.0.0.1:9001"]))
    table.add_backend("web", "web-g2", "127.0.0.1:9002", ready=True)
    table.drain_backend("web", "web-0")
    table.set_paused("web", True)
    return table


def test_the_routing_file_round_trips_and_is_private(tmp_path):
    path = tmp_path / "proxy-state.json"
    routes.save(path, table())
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["proxy-state.json"]  # no temporary left
    loaded = routes.load(path)
    assert loaded is not None and loaded.to_dict() == table().to_dict()
    web = loaded.frontends["web"]
    assert web.paused and {b.id: b.state for b in web.backends.values()} == {
        "web-0": routes.DRAINING, "web-g2": routes.READY}


def test_no_file_is_a_first_start_and_a_damaged_one_is_one_clear_error(tmp_path):
    path = tmp_path / "proxy-state.json"
    assert routes.load(path) is None
    path.write_text('{"version": 1, "frontends": [')
    with pytest.raises(BadInput, match=r"proxy-state.json is corrupt .* move it away"):
        routes.load(path)
    document = table().to_dict()
    document["frontends"][0]["backends"][0]["state"] = "on fire"
    path.write_text(json.dumps(document))
    with pytest.raises(BadInput, match="corrupt"):
        routes.load(path)


def test_health_checks_are_recorded_but_never_undo_a_drain():
    t = table()
    assert not t.observe("web", "web-0", "127.0.0.1:9001", "ready")  # draining stays draining
    assert t.observe("web", "web-g2", "127.0.0.1:9002", "down")
    assert t.frontends["web"].backends["web-g2"].state == routes.WARMING
    assert not t.observe("web", "web-g2", "127.0.0.1:9999", "ready")  # another address: stale
    assert not t.observe("nope", "web-g2", "127.0.0.1:9002", "ready")


def test_a_config_file_keeps_the_port_port_0_was_given():
    t = routes.Routes()
    t.add_frontend(FrontendConfig(name="web", listen="127.0.0.1:41234"))
    again = t.with_configs([FrontendConfig(name="web", listen="127.0.0.1:0")])
    assert again.frontends["web"].config.listen == "127.0.0.1:41234"
    assert t.with_configs([FrontendConfig(name="new", listen="127.0.0.1:0")]).frontends.keys() == {"web", "new"}


def test_backend_views_of_several_workers_are_summed_and_the_least_serving_state_wins():
    views = [(0, {"id": "b", "state": "ready", "inflight": 2, "served": 10}),
             (1, {"id": "b", "state": "draining", "inflight": 3, "served": 5})]
    merged = merge.merge_backend(views)
    assert (merged["inflight"], merged["served"], merged["state"]) == (5, 15, "draining")
    assert merged["per_worker"] == [{"worker": 0, "state": "ready", "inflight": 2},
                                    {"worker": 1, "state": "draining", "inflight": 3}]
    assert merge.merge_state(["gone", "gone"]) == "gone"
    assert merge.merge_state(["gone", "draining"]) == "draining"  # drained only when all are
    assert merge.merge_state([]) == "gone"


def test_a_wait_passes_only_when_every_worker_passed():
    ok = (200, {"id": "b", "state": "gone", "inflight": 0})
    late = (504, {"error": "not drained"})
    assert merge.merge_wait([(0, ok), (1, ok)], "b", "drained", 5)[0] == 200
    assert merge.merge_wait([(0, ok), (1, late)], "b", "drained", 5) == late
    status, payload = merge.merge_wait([(0, ok), (1, None)], "b", "drained", 5)
    assert status == 504 and "a worker was not running" in payload["error"]


def test_counters_of_a_replaced_worker_are_kept_for_frontends_that_still_exist():
    live = {"web": {"requests": 5, "connections": 1}}
    retired = {"web": {"requests": 7}, "gone": {"requests": 1}}
    assert merge.with_retired(live, retired) == {"web": {"requests": 12, "connections": 1}}


def test_messages_are_framed_across_arbitrary_chunks():
    data = encode({"op": "a", "n": 1}) + encode({"op": "b", "text": "é" * 100})
    decoder = Decoder()
    received = [m for i in range(0, len(data), 7) for m, _ in decoder.feed(data[i:i + 7])]
    assert received == [{"op": "a", "n": 1}, {"op": "b", "text": "é" * 100}]


def test_a_message_carries_open_sockets_to_the_other_process():
    left, right = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        send_blocking(left, {"op": "listen", "name": "web"}, [listener.fileno()])
        [(message, socks)] = receive_blocking(right, Decoder())
        assert message == {"op": "listen", "name": "web"}
        [passed] = socks
        assert passed.fileno() != listener.fileno()
        assert passed.getsockname() == listener.getsockname()  # the same socket, another descriptor
        passed.close()
        left.close()
        assert receive_blocking(right, Decoder()) is None  # the other end went away
    finally:
        for sock in (left, right, listener):
            sock.close()
