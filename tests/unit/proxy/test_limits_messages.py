"""Pure pieces of the proxy's hardening: Connection-listed headers, timeouts, descriptor cap."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from hitless.errors import BadInput
from hitless.proxy.config import FrontendConfig, Timeouts
from hitless.proxy.traffic.limits import RESERVE, connection_cap
from hitless.proxy.traffic.messages import ListedProtected, drop_listed


@pytest.mark.parametrize("tokens", [b"content-length", b"keep-alive, Transfer-Encoding",
                                    b"x-a,host"])
def test_connection_may_not_name_framing_headers(tokens):
    with pytest.raises(ListedProtected):
        drop_listed([b"Content-Length: 3\r\n"], tokens.lower())


def test_timeouts_round_trip_and_refuse_nonsense():
    config = FrontendConfig.from_dict({"name": "web", "listen": "127.0.0.1:0",
                                       "timeouts": {"keepalive": 5, "send": 2.5}})
    assert config.timeouts == Timeouts(keepalive=5, send=2.5)
    assert FrontendConfig.from_dict(config.to_dict()) == config
    for bad in ({"body": 0}, {"head": float("inf")}, {"send": "1"}, {"idle": 1}):
        with pytest.raises(BadInput):
            FrontendConfig.from_dict({"name": "web", "listen": "127.0.0.1:0", "timeouts": bad})


def test_connection_cap_leaves_a_reserve_and_one_descriptor_per_upstream():
    assert connection_cap(1024) == (1024 - RESERVE) // 2
    assert connection_cap(10) == 1


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one():
    code = ("import resource; from hitless.proxy.traffic.limits import raise_fd_limit; "
            "print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run([sys.executable, "-c", code], preexec_fn=lower, capture_output=True,
                         text=True, check=True).stdout.split()
    assert int(out[0]) == int(out[1]) == hard
