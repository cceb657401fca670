"""Unix sockets at paths longer than a socket address holds (a project in a deep directory)."""

from __future__ import annotations

import socket

import pytest

from hitless.proxy.ipc import unixpath


def test_a_path_longer_than_a_socket_address_is_bound_and_reached(tmp_path):
    directory = tmp_path / ("d" * 60) / ("e" * 60)
    directory.mkdir(parents=True)
    path = str(directory / "proxy.sock")
    assert len(path) > unixpath.MAX_PATH
    with pytest.raises(OSError):  # what the kernel says without the detour
        socket.socket(socket.AF_UNIX).bind(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        unixpath.bind(server, path)
        server.listen(1)
        assert (directory / "proxy.sock").is_socket()  # made at the real path
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            unixpath.connect(client, path)
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"


def test_a_short_path_is_used_as_it_is(tmp_path):
    with unixpath.reachable(str(tmp_path / "s")) as short:
        assert short == str(tmp_path / "s")
