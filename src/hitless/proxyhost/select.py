"""The proxy host for a project's runtime: a container on Docker, a supervisor on processes,
or a container on one of the spec's hosts (`proxy.host`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from hitless.proxy.admin.client import AdminClient
from hitless.proxyhost.base import ProxyHost
from hitless.proxyhost.process import ProcessProxyHost
from hitless.runtime.base import Runtime
from hitless.spec.tree import DesiredTree

TOKEN_FILE = "proxy-admin-token"


def host_for(runtime: Runtime, project: str, socket_path: Path) -> ProxyHost:
    """Where the proxy of `project` runs, chosen by the runtime its instances run on. The
    proxy's files (admin socket, persisted routing, log, supervisor record) share the socket's
    directory, `.hitless/` by default."""
    directory = socket_path.parent
    if runtime.kind == "docker":
        from hitless.proxyhost.docker import DockerProxyHost
        from hitless.proxyhost.image import ensure_proxy_image

        client = runtime.client  # type: ignore[attr-defined]
        return DockerProxyHost(client, project, directory, socket_path, lambda: ensure_proxy_image(client))
    return ProcessProxyHost(directory, socket_path)


def admin_token(directory: Path) -> str:
    """The token of the proxy's admin API over TCP: made once (0600) in the state directory."""
    path = directory / TOKEN_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def proxy_on_host(runtime: Any, tree: DesiredTree, socket_path: Path) -> tuple[AdminClient, ProxyHost, str]:
    """The proxy on the spec's `proxy.host`: (its admin client over TCP, its host, where it answers).
    Its image is built here and shipped to the host like any other."""
    from hitless.proxyhost.docker import DockerProxyHost, OnHost
    from hitless.proxyhost.image import ensure_proxy_image

    name = tree.spec.proxy.host
    assert name is not None
    admin = f"{tree.spec.hosts[name].address}:{tree.spec.proxy.admin_port}"
    token = admin_token(socket_path.parent)

    def image() -> str:
        tag = ensure_proxy_image(runtime.client)
        runtime.ship_image(tag, name)
        return tag

    where = OnHost(name, admin, token, f"{tree.project}-hitless-proxy")
    host = DockerProxyHost(runtime.engine(name).client, tree.project, socket_path.parent, socket_path, image, where)
    return AdminClient(None, tcp=admin, token=token), host, f"{admin} on host {name}"
