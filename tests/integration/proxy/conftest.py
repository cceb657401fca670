"""The `launch` fixture: starts backends and proxies, stops every one by PID afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.proxy.proxy_support import Launcher


@pytest.fixture
def launch(tmp_path: Path):
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
