"""A folder of compose files: the Compose Specification's own examples (rewritten), which
validate, and files hitless refuses or that are hostile, each with the one line it must give.

Each refused file's first line says what is expected: `# expect: TEXT` (a part of the line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitless.errors import ExitStatus
from hitless.spec.load import SpecError, read_spec

FOLDER = Path(__file__).resolve().parent.parent / "compose"
ENVIRON = {"HOME": "/root"}  # nothing else: interpolations take their defaults


@pytest.mark.parametrize("path", sorted((FOLDER / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_the_specification_examples_validate(path: Path):
    loaded = read_spec(path, environ=ENVIRON)
    assert loaded.compose and loaded.tree.services()


@pytest.mark.parametrize("path", sorted((FOLDER / "refused").glob("*.yaml")), ids=lambda p: p.name)
def test_what_hitless_cannot_honour_is_one_clear_line(path: Path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(SpecError) as caught:
        read_spec(path, environ=ENVIRON)
    lines = caught.value.lines()
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith(f"{path}: ") and expected in lines[0], lines[0]
    assert caught.value.exit_status == ExitStatus.BAD_INPUT


def test_the_folder_holds_enough_of_each():
    assert len(list((FOLDER / "valid").glob("*.yaml"))) >= 10
    assert len(list((FOLDER / "refused").glob("*.yaml"))) >= 40
