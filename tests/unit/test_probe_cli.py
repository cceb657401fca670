"""`hitless probe` arguments: bad input is one line and exit status 2, before any request."""

from __future__ import annotations

import pytest

from hitless.cli.main import build_parser, main
from hitless.cli.probe import workload_from
from hitless.errors import BadInput, ExitStatus
from hitless.probe.load import Workload, classify


def parse(*argv: str):
    return build_parser().parse_args(["probe", *argv])


def test_defaults_are_both_connection_kinds_closed_loop():
    w = workload_from(parse("http://127.0.0.1:9696/v2.0/networks"))
    assert (w.scenario, w.concurrency, w.modes, w.rate, w.period) == ("get", 2, ("new", "keep"), None, 0.0)
    w = workload_from(parse("http://127.0.0.1:9696", "--scenario", "neutron-cycle", "--new-connections"))
    assert w.modes == ("new",) and w.period == 0.5 and w.base() == "http://127.0.0.1:9696"
    w = workload_from(parse("http://h:1/", "--keep-alive", "--new-connections", "--rate", "50"))
    assert w.modes == ("new", "keep") and w.rate == 50


@pytest.mark.parametrize("argv, message", [
    (["ftp://127.0.0.1/"], "expected an http:// URL"),
    (["127.0.0.1:9696"], "expected an http:// URL"),
    (["http://127.0.0.1:1/", "--concurrency", "0"], "concurrency 0"),
    (["http://127.0.0.1:1/", "--rate", "-3"], "rate -3"),
    (["http://127.0.0.1:1/", "--duration", "0"], "--duration 0"),
    (["http://127.0.0.1:1/", "--interval", "-1"], "interval -1"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", *argv])
    assert exit_info.value.code == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hitless: ") and message in err[0]


def test_unknown_scenario_is_refused_by_the_parser():
    with pytest.raises(SystemExit) as exit_info:
        parse("http://127.0.0.1:1/", "--scenario", "nope")
    assert exit_info.value.code == 2


def test_workload_checks_everything_at_once():
    with pytest.raises(BadInput) as exc:
        Workload("nope", "bad", 0, ("x",))
    assert str(exc.value).count(";") == 3


def test_error_classes_name_what_the_user_saw():
    import errno

    import aiohttp

    class Key:  # what aiohttp's ClientConnectorError needs to describe a connection
        ssl, host, port = None, "127.0.0.1", 1

    refused = aiohttp.ClientConnectorError(Key(), ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert classify(refused) == "refused"
    assert classify(aiohttp.ServerDisconnectedError()) == "disconnected"
    assert classify(aiohttp.ClientOSError(errno.ECONNRESET, "reset")) == "reset"
    assert classify(TimeoutError()) == "timeout"
    assert classify(aiohttp.ClientPayloadError("cut")) == "truncated"
    assert classify(ValueError("x")) == "ValueError"


def test_target_url_of_a_frontend():
    from hitless.probe import target_url

    assert target_url("0.0.0.0:9696") == "http://127.0.0.1:9696/"
    assert target_url("127.0.0.1:9696", "/v2.0/networks") == "http://127.0.0.1:9696/v2.0/networks"
    assert target_url(":80") == "http://127.0.0.1:80/"
