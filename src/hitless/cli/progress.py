"""How engine events reach a person or a program: a live view on a terminal, plain lines
otherwise, or one JSON object per line with --json."""

from __future__ import annotations

import json
import re
import sys
import threading
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from hitless.engine.steps import Event

_STYLE = {"warning": "bold yellow", "error": "bold red", "phase": "bold cyan"}
_GLYPH = {"started": ("…", "yellow"), "done": ("✓", "green"), "failed": ("✗", "bold red")}


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
    """A live tree of sets and services, each instance with its generation, step and state;
    phases, warnings and errors are printed above it."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self._rows: dict[str, dict[str, tuple[str, str, str]]] = {}  # service → target → (step, status, since)
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self._live.start()

    def _render(self) -> Tree:
        root = Tree(Text("hitless", style="bold"))
        branches: dict[str, Tree] = {"": root}

        def branch(path: str) -> Tree:
            if path not in branches:
                parent, _, name = path.rpartition("/")
                branches[path] = branch(parent).add(Text(name, style="bold cyan"))
            return branches[path]

        for service, targets in self._rows.items():
            node = branch(service)
            for target, (step, status, since) in targets.items():
                generation = re.search(r"-g(\d+)$", target)
                node.add(Text.assemble(
                    (target, ""), (f"  g{generation.group(1)}" if generation else "", "magenta"),
                    (f"  {step} ", ""), _GLYPH.get(status, (status, "")), (f"  {since}", "dim")))
        return root

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "step" and event.target:
                service = event.fields.get("service", "")
                self._rows.setdefault(service, {})[event.target] = (
                    event.step or "", event.status or "", time.strftime("%H:%M:%S"))
                if event.status == "failed":
                    self.console.print(event.message, style="bold red", markup=False)
            else:
                self.console.print(f"{time.strftime('%H:%M:%S')} {event.message}", style=_STYLE.get(event.kind, ""), markup=False)
            self._live.update(self._render())

    def close(self) -> None:
        """Stop the live view, leaving the final tree printed."""
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
