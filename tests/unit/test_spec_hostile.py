"""Hostile specs: binary files, deep nesting, alias bombs, values no duration or size can be.

Each gives one line naming what is wrong and where, and exit status 2, fast.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.errors import ExitStatus
from hitless.spec import load_spec, parse_spec
from hitless.spec.load import SpecError

SERVICE = "{image: 'a:1', network: {port: 80}}"


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def laughs(levels: int = 9) -> str:
    """Anchors a0..a9, each a mapping of nine aliases of the one before: 9**9 services once expanded."""
    lines = [f"  a0: &a0 {SERVICE}"]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}")
    return "x-anchors:\n" + "\n".join(lines) + "\n"


def one_problem(caught: pytest.ExceptionInfo[SpecError]) -> str:
    lines = caught.value.lines()
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    return lines[0]


def test_a_binary_file_is_one_line_not_a_traceback(tmp_path: Path):
    spec = tmp_path / "hitless.yaml"
    spec.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert one_problem(caught) == f"{spec}: not UTF-8 text (byte 0x89 at offset 0): a spec is a YAML text file"


def test_control_characters_are_named_with_their_line_and_column():
    with pytest.raises(SpecError) as caught:
        parse_spec(f"project: p\nsets: {{a: {SERVICE}}}\nx: ab\x00c\n", source="s.yaml")
    assert one_problem(caught) == "s.yaml: line 3, column 6: invalid YAML: character #x0000 is not allowed (a binary file?)"


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path):
    spec = tmp_path / "hitless.yaml"
    spec.write_text(f"project: p\nsets: {{a: {SERVICE}}}\n" + "#" * (5 * 2**20) + "\n")
    with deadline(2), pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert one_problem(caught) == f"{spec}: larger than 4 MiB: not a spec file?"


@pytest.mark.parametrize("nested", [
    "[" * 5000 + "]" * 5000,  # flow style: PyYAML recurses once per level
    "{a: " * 3000 + "1" + "}" * 3000,
], ids=["sequences", "mappings"])
def test_deep_nesting_is_refused_fast(nested: str):
    started = time.monotonic()
    with deadline(5), pytest.raises(SpecError) as caught:
        parse_spec(f"project: p\nsets: {nested}\n", source="s.yaml")
    assert time.monotonic() - started < 2
    problem = one_problem(caught)
    assert problem.startswith("s.yaml: line 2, column ") and problem.endswith("refused: nested deeper than 64 levels")


def test_aliases_are_bounded_not_banned():
    # Sharing a block is what aliases are for, and a spec may do it often.
    text = ("project: p\nsets:\n  s0: {image: 'a:1', network: {port: 80}, health: &h {http: /healthz, rise: 3}}\n"
            + "".join(f"  s{i}: {{image: 'a:1', network: {{port: 80}}, health: *h}}\n" for i in range(1, 200)))
    tree = parse_spec(text, source="s.yaml")
    assert len(tree.services()) == 200 and tree.services()[-1].service.health.rise == 3
    started = time.monotonic()
    with deadline(5), pytest.raises(SpecError) as caught:
        parse_spec(laughs() + "project: p\nsets: {a: *a9}\n", source="s.yaml")
    assert time.monotonic() - started < 2
    assert one_problem(caught).startswith("s.yaml: line ")
    assert "refused: aliases repeat more than 10000 values (an alias bomb?)" in caught.value.lines()[0]


def test_an_alias_bomb_through_the_cli_exits_2_at_once(tmp_path: Path):
    (tmp_path / "hitless.yaml").write_text(laughs() + "project: p\nruntime: *a9\nsets: {a: *a9}\n")

    def bounded_memory() -> None:  # without the limit the bomb would take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "hitless", "validate"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=30, preexec_fn=bounded_memory)
    except subprocess.TimeoutExpired:
        pytest.fail("hitless validate still ran after 30 s")
    elapsed = time.monotonic() - started
    assert result.returncode == ExitStatus.BAD_INPUT, result.stderr[-2000:]
    assert result.stderr.startswith("hitless: hitless.yaml: line ") and result.stderr.count("\n") == 1, result.stderr
    assert "alias bomb" in result.stderr
    assert elapsed < 5  # the interpreter's start included; the parse itself is checked above (< 2 s)


@pytest.mark.parametrize("field, written, shown", [
    ("stop: {grace: .nan}", ".nan", "nan"),
    ("stop: {grace: .inf}", ".inf", "inf"),
    ("stop: {grace: -.inf}", "-.inf", "-inf"),
    ("health: {interval: .NaN}", ".NaN", "nan"),
    ("update: {watch: .Inf}", ".Inf", "inf"),
])
def test_nan_and_infinite_durations_are_refused_with_their_path(field: str, written: str, shown: str):
    key = field.split(":")[0] + "." + field.split("{")[1].split(":")[0]
    with pytest.raises(SpecError) as caught:
        parse_spec(f"project: p\nsets: {{net: {{api: {{image: 'a:1', network: {{port: 80}}, {field}}}}}}}",
                   source="hitless.yaml")
    assert one_problem(caught) == f"hitless.yaml: sets.net.api.{key}: invalid duration {shown}: not a finite number"


@pytest.mark.parametrize("value, problem", [
    ("stop: {grace: '" + "9" * 400 + "s'}", "sets.a.stop.grace: invalid duration '999"),
    ("frontend: {listen: 'h:80', hold: {max_bytes: '" + "9" * 400 + "GiB'}}",
     "sets.a.frontend.hold.max_bytes: invalid size '999"),
    ("replicas: " + "9" * 5000, "invalid YAML: unreadable int '999999999999999999999999…' (exceeds the limit"),
    ("replicas: 2001-13-45", "invalid YAML: unreadable timestamp '2001-13-45' (month must be in 1..12)"),
], ids=["infinite-duration", "infinite-size", "5000-digit-int", "impossible-date"])
def test_values_python_cannot_hold_are_one_line(value: str, problem: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(f"project: p\nsets: {{a: {{image: 'a:1', network: {{port: 80}}, {value}}}}}", source="s.yaml")
    assert problem in one_problem(caught)


def test_more_replicas_than_host_ports_names_the_yaml_path():
    spec = "project: p\nsets:\n  net:\n    agent: {{image: 'a:1', replicas: {n}, network: {{mode: host, ports: 9100-9101}}}}\n"
    assert parse_spec(spec.format(n=2)).services()[0].service.replicas == 2
    with pytest.raises(SpecError) as caught:
        parse_spec(spec.format(n=3), source="hitless.yaml")
    assert one_problem(caught) == ("hitless.yaml: sets.net.agent.replicas: 3 replicas on host networking need 3 ports, "
                                   "and network.ports 9100-9101 has 2")
