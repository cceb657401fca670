"""Client threads for tests: started on entering a `with`, stopped (and joined) on leaving it,
each recording what it saw under one lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class ClientThreads:
    """Runs `target(*args)` in one daemon thread per entry of `args_list` until stopped."""

    def __init__(self, target: Callable[..., None], args_list: list[tuple[Any, ...]]):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=target, args=args, daemon=True) for args in args_list]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask every client to stop, and wait for them (30 s at most each)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
