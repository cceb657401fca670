"""Waiting for a netapi container started directly with the docker SDK."""

from __future__ import annotations

import http.client

from tests.support.waiting import wait_until


def wait_healthy(container, what: str, port: int = 9696, timeout: float = 20.0) -> str:
    """Poll GET /healthcheck on the container's bridge IP until 200; its IP. Fails with the
    container's log when it exits or the time runs out."""

    def healthy_ip() -> str | None:
        container.reload()
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        if ip:
            try:
                conn = http.client.HTTPConnection(ip, port, timeout=2)
                conn.request("GET", "/healthcheck")
                if conn.getresponse().status == 200:
                    conn.close()
                    return ip
            except OSError:
                pass
        assert container.status in ("created", "running"), container.logs().decode()
        return None

    return wait_until(healthy_ip, timeout, message=lambda: f"{what} healthy: {container.logs().decode()}")
