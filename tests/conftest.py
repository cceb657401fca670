"""Shared fixtures: a real Docker engine when one answers.

A test that needs Docker skips locally when no engine answers, but fails under CI=true:
CI must run it.
"""

from __future__ import annotations

import pytest

from tests.support.skips import skip_or_fail


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client talking to a live engine."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # any failure means: no engine here
        skip_or_fail(f"no Docker engine answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def netapi_images(docker_client):
    """netapi:1.0, 2.0 and 3.0 built locally (cached: fast after the first build). The demo
    service is what the product's integration tests deploy, too."""
    from hitless_demo.images import build_netapi_images

    return build_netapi_images(docker_client)
