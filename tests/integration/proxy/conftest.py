"""The `launch` fixture: starts backends and proxies, stops every one by PID afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from proxy_support import Launcher  # noqa: E402


@pytest.fixture
def launch(tmp_path: Path):
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
