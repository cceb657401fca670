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


def one_line(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        read_spec(path, environ=ENVIRON)
    lines = caught.value.lines()
    assert len(lines) == 1 and "\n" not in lines[0], lines
    return lines[0]


def test_hostile_files_beside_it_are_one_line_each(tmp_path: Path):
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web: {image: 'a:1', ports: ['80:80'], env_file: [/dev/zero]}\n")
    assert one_line(compose) == f"{compose}: services.web.env_file.0: /dev/zero: larger than 4 MiB: not an env file?"
    compose.write_text("services:\n  web: {image: 'a:1', ports: ['80:80'], env_file: [./bin.env]}\n")
    (tmp_path / "bin.env").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert "services.web.env_file.0: ./bin.env: not UTF-8 text (byte 0x89 at offset 0)" in one_line(compose)
    (tmp_path / ".env").write_bytes(b"A=1\nB='never closed\n")
    assert one_line(compose) == f"{tmp_path / '.env'}: line 2: the quoted value of B is never closed"
    (tmp_path / ".env").write_text("")
    compose.write_bytes(b"\x00\x01 binary")
    assert "invalid YAML" in one_line(compose) or "not UTF-8" in one_line(compose)
