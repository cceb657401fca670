"""The proxy host for a project's runtime: a container on Docker, a supervisor on processes."""

from __future__ import annotations

from pathlib import Path

from hitless.proxyhost.base import ProxyHost
from hitless.proxyhost.process import ProcessProxyHost
from hitless.runtime.base import Runtime


def host_for(runtime: Runtime, project: str, socket_path: Path) -> ProxyHost:
    """Where the proxy of `project` runs, chosen by the runtime its instances run on. The
    proxy's files (admin socket, persisted routing, log, supervisor record) share the socket's
    directory, `.hitless/` by default."""
    directory = socket_path.parent
    if runtime.kind == "docker":
        from hitless.imagebuild import ensure_proxy_image
        from hitless.proxyhost.docker import DockerProxyHost

        client = runtime.client  # type: ignore[attr-defined]
        return DockerProxyHost(client, project, directory, socket_path, lambda: ensure_proxy_image(client))
    return ProcessProxyHost(directory, socket_path)
