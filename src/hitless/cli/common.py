"""What most commands share: the -f/--runtime options, and opening spec, runtime and journal."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from hitless.runtime.base import Runtime
from hitless.runtime.process import ProcessImage
from hitless.runtime.select import open_runtime
from hitless.spec import DesiredTree
from hitless.spec.load import LoadedSpec, read_spec
from hitless.state.journal import Journal
from hitless.state.lock import ProjectLock

STATE_DIR = ".hitless"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def add_spec_options(parser: argparse.ArgumentParser, *, runtime: bool = True) -> None:
    """-f FILE, and --runtime for commands that touch instances."""
    parser.add_argument("-f", "--file", dest="spec_file", metavar="FILE", default=None,
                        help="spec file: hitless's own or a compose file (default: hitless.yaml in the current "
                             "directory, else compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml)")
    if runtime:
        parser.add_argument("--runtime", choices=("auto", "docker", "process"), default=None,
                            help="where instances run (default: the spec's 'runtime', else auto)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """--json: machine-readable output on stdout."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def state_dir(tree: DesiredTree) -> Path:
    """Where the project's state lives: `.hitless/` beside the spec."""
    return tree.base_dir / STATE_DIR


def process_images(tree: DesiredTree) -> dict[str, ProcessImage]:
    """The spec's `images:` section as the process runtime takes it (workdirs made absolute)."""
    return {
        ref: ProcessImage(
            entrypoint=tuple(img.entrypoint), command=tuple(img.command), environment=dict(img.environment),
            workdir=str((tree.base_dir / img.workdir).resolve()) if img.workdir else str(tree.base_dir),
        )
        for ref, img in tree.process_images.items()
    }


@dataclasses.dataclass
class Context:
    """An opened spec with its runtime and journal."""

    tree: DesiredTree
    runtime: Runtime
    journal: Journal


@contextlib.contextmanager
def open_context(args: argparse.Namespace, lock: str | None = None) -> Iterator[Context]:
    """Load the spec (failing before anything else on a bad one), take the project lock when
    the command changes anything (`lock` names the command), then open runtime and journal."""
    tree = load(args).tree
    with contextlib.ExitStack() as stack:
        if lock is not None:
            stack.enter_context(ProjectLock(state_dir(tree), lock))
        yield stack.enter_context(_opened(tree, getattr(args, "runtime", None) or tree.spec.runtime))


def load(args: argparse.Namespace) -> LoadedSpec:
    """Read the spec `-f` names (or the one found by default); say what its reading warns about."""
    loaded = read_spec(args.spec_file)
    for warning in loaded.warnings:
        reporter("warning", f"{loaded.source}: {warning}")
    return loaded


@contextlib.contextmanager
def _opened(tree: DesiredTree, kind: str) -> Iterator[Context]:
    runtime = open_runtime(kind, state_dir(tree) / "process", process_images(tree),
                           on_note=lambda note: reporter("info", note), hosts=tree.spec.hosts)
    journal = Journal(state_dir(tree) / "state.db")
    try:
        yield Context(tree, runtime, journal)
    finally:
        journal.close()
        runtime.close()


def print_json(data: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def reporter(level: str, message: str) -> None:
    """Progress lines for a person: warnings loud, the rest plain."""
    style = {"warning": "bold yellow", "error": "bold red"}.get(level, "")
    prefix = {"warning": "WARNING ", "error": "ERROR "}.get(level, "")
    err_console.print(f"{prefix}{message}", style=style, markup=False, soft_wrap=True)
