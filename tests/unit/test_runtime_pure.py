"""Pure helpers of the runtimes: mount path rewriting, engine times, inspect documents, signals."""

from __future__ import annotations

import datetime as dt

import pytest

from hitless.errors import BadInput
from hitless.runtime.base import Labels
from hitless.runtime.docker import instance_from_attrs, parse_engine_time
from hitless.runtime.process import _signal_number, rewrite_paths
from hitless.runtime.process_shim import exit_status

MAPPING = {"/data": "/srv/state/volumes/data", "/data/logs": "/var/log/svc", "/etc/svc": "/home/me/cfg"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/data", "/srv/state/volumes/data"),
        ("/data/", "/srv/state/volumes/data/"),
        ("/data/x.db", "/srv/state/volumes/data/x.db"),
        ("--db=/data/x.db", "--db=/srv/state/volumes/data/x.db"),
        ("sqlite:////data/x.db", "sqlite:////srv/state/volumes/data/x.db"),
        ("/data/logs/app.log", "/var/log/svc/app.log"),  # the longest target wins
        ("a:/data:/etc/svc/z", "a:/srv/state/volumes/data:/home/me/cfg/z"),
        ("/database", "/database"),
        ("/srv/data/x", "/srv/data/x"),
        ("/data.db", "/data.db"),
        ("data/x", "data/x"),
        ("~/data", "~/data"),
        ("", ""),
    ],
)
def test_rewrite_paths(text: str, expected: str) -> None:
    assert rewrite_paths(text, MAPPING) == expected


def test_rewrite_paths_without_mounts_is_identity() -> None:
    assert rewrite_paths("/data/x", {}) == "/data/x"


def test_parse_engine_time() -> None:
    parsed = parse_engine_time("2024-05-01T12:34:56.123456789Z")
    assert parsed == dt.datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=dt.UTC)
    assert parse_engine_time("2024-05-01T12:34:56Z") == dt.datetime(2024, 5, 1, 12, 34, 56, tzinfo=dt.UTC)
    assert parse_engine_time("2024-05-01T12:34:56.5+02:00").utcoffset() == dt.timedelta(hours=2)
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("") is None and parse_engine_time(None) is None
    assert parse_engine_time("garbage") is None


LABELS = Labels("p", "nova", "api", 1, 4, "abc", "nova-api:2", 8774)


def _attrs(status: str = "running", network_mode: str = "bridge", labels: dict | None = None) -> dict:
    return {
        "Id": "f" * 64,
        "Name": "/p-nova-api-1-g4",
        "Config": {"Labels": LABELS.to_dict() if labels is None else labels},
        "State": {"Status": status, "ExitCode": 3 if status == "exited" else 0, "StartedAt": "2024-05-01T12:00:00.5Z"},
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {"IPAddress": "", "Networks": {"bridge": {"IPAddress": "172.17.0.9"}}},
    }


def test_instance_from_inspect_document() -> None:
    instance = instance_from_attrs(_attrs())
    assert instance.name == "p-nova-api-1-g4" and instance.labels == LABELS
    assert instance.state == "running" and instance.exit_code is None
    assert instance.address == ("172.17.0.9", 8774)
    assert instance_from_attrs(_attrs(network_mode="host")).address == ("127.0.0.1", 8774)
    exited = instance_from_attrs(_attrs(status="exited"))
    assert exited.exit_code == 3 and exited.host is None and exited.address is None


def test_foreign_containers_are_not_instances() -> None:
    assert instance_from_attrs(_attrs(labels={})) is None
    assert instance_from_attrs(_attrs(labels={"io.hitless.project": "p"})) is None
    broken = dict(LABELS.to_dict(), **{"io.hitless.slot": "one"})
    assert instance_from_attrs(_attrs(labels=broken)) is None


def test_signal_names_and_exit_statuses() -> None:
    assert _signal_number("SIGTERM").name == "SIGTERM"
    assert _signal_number("term").name == "SIGTERM"
    assert _signal_number("9").name == "SIGKILL"
    with pytest.raises(BadInput):
        _signal_number("SIGNOPE")
    assert exit_status(3) == 3 and exit_status(-9) == 137 and exit_status(-15) == 143
