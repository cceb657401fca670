"""How engine events reach a person or a program: a live view on a terminal, plain lines
otherwise, or one JSON object per line with --json."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hitless.engine.steps import Event

_STYLE = {"warning": "bold yellow", "error": "bold red", "phase": "bold cyan"}
_STATUS = {"started": "[yellow]…[/]", "done": "[green]✓[/]", "failed": "[bold red]✗[/]"}


class PlainProgress:
    """A line per event on stderr; warnings and errors stand out."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.kind == "step" and event.status == "done" and event.step not in ("gate", "drain", "stop"):
            return  # the start line said it; long steps get their end line too
        stamp = time.strftime("%H:%M:%S")
        prefix = {"warning": "WARNING ", "error": "ERROR "}.get(event.kind, "")
        suffix = {"done": " — done", "failed": ""}.get(event.status or "", "")
        with self._lock:
            self.console.print(f"{stamp} {prefix}{event.message}{suffix}", style=_STYLE.get(event.kind, ""), markup=False)

    def close(self) -> None:
        """Nothing to tidy."""


class JsonProgress:
    """One JSON object per event on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(event.to_dict()) + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        """Nothing to tidy."""


class LiveProgress:
    """A live table of what each instance is doing, with phases, warnings and errors above it."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self._rows: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self._live.start()

    def _render(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("target", "step", "", "since"):
            table.add_column(column)
        for target, (step, status, since) in list(self._rows.items())[-20:]:
            table.add_row(target, step, _STATUS.get(status, status), since)
        return table

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "step" and event.target:
                self._rows[event.target] = (event.step or "", event.status or "", time.strftime("%H:%M:%S"))
                if event.status == "failed":
                    self.console.print(event.message, style="bold red", markup=False)
            else:
                self.console.print(f"{time.strftime('%H:%M:%S')} {event.message}", style=_STYLE.get(event.kind, ""), markup=False)
            self._live.update(self._render())

    def close(self) -> None:
        """Stop the live view, leaving the final table printed."""
        with self._lock:
            self._live.stop()
            self.console.print(self._render())


def make_progress(json_mode: bool) -> PlainProgress | JsonProgress | LiveProgress:
    """The right view for where output goes."""
    if json_mode:
        return JsonProgress()
    if sys.stderr.isatty():
        return LiveProgress()
    return PlainProgress()


Emitter = Callable[[Event], None]
