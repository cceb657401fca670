"""Interpolation and the env file format, as the Compose Specification defines them (pure)."""

from __future__ import annotations

import pytest

from hitless.spec.compose.envfile import EnvFileError, parse_env_file
from hitless.spec.compose.interpolate import InterpolationError, Interpolator

ENV = {"SET": "value", "EMPTY": "", "OTHER": "other"}


@pytest.mark.parametrize(("template", "expected"), [
    ("${SET}", "value"),
    ("$SET", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET.txt", "value.txt"),
    ("${UNSET}", ""),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${SET:-default}", "value"),
    ("${UNSET-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${SET-default}", "value"),
    ("${EMPTY?error}", ""),
    ("${SET:?error}", "value"),
    ("${SET:+replaced}", "replaced"),
    ("${EMPTY:+replaced}", ""),
    ("${EMPTY+replaced}", "replaced"),
    ("${UNSET+replaced}", ""),
    ("${UNSET:-${OTHER}}", "other"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-$OTHER}", "other"),
    ("${UNSET:-a}${UNSET:-b}", "ab"),
    ("$$SET", "$SET"),
    ("$${SET}", "${SET}"),
    ("cost: 5$", "cost: 5$"),
    ("$1 and $-", "$1 and $-"),
    ("echo $$HOSTNAME", "echo $HOSTNAME"),
])
def test_the_forms_of_interpolation(template: str, expected: str):
    assert Interpolator(ENV).text(template) == expected


def test_an_unset_variable_without_default_is_empty_and_warned_about_once():
    interpolator = Interpolator(ENV)
    assert interpolator.text("${UNSET}/$UNSET/${UNSET:-x}") == "//x"
    assert interpolator.unset == ["UNSET"]


@pytest.mark.parametrize(("template", "message"), [
    ("${UNSET:?set it please}", "required variable UNSET is missing a value: set it please"),
    ("${EMPTY:?must not be empty}", "required variable EMPTY is missing a value: must not be empty"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${UNSET?${OTHER} needed}", "required variable UNSET is missing a value: other needed"),
    ("${SET/foo/bar}", "invalid interpolation format for ${SET/foo/bar}"),
    ("${}", "invalid interpolation format"),
    ("${SET", "no closing brace"),
    ("${1BAD}", "invalid interpolation format"),
])
def test_mandatory_variables_and_unreadable_templates_are_errors(template: str, message: str):
    with pytest.raises(InterpolationError, match=message.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        Interpolator(ENV).text(template)


def test_values_are_interpolated_keys_are_not_and_errors_name_their_path():
    data = {"services": {"${SET}": {"image": "a:${SET}", "ports": ["${OTHER}:80", 8080], "init": True}}}
    assert Interpolator(ENV).value(data) == {"services": {"${SET}": {"image": "a:value", "ports": ["other:80", 8080],
                                                                        "init": True}}}
    with pytest.raises(InterpolationError, match=r"^services\.web\.ports\.1: required variable UNSET"):
        Interpolator(ENV).value({"services": {"web": {"ports": ["80", "${UNSET:?}"]}}})


def test_nesting_is_bounded():
    deep = "${A:-" * 40 + "x" + "}" * 40
    with pytest.raises(InterpolationError, match="nested deeper"):
        Interpolator({}).text(deep)


ENV_FILE = r"""
# a comment, then a blank line

RACK_ENV=development
export EXPORTED=yes
UNQUOTED = spaced out   # an inline comment
NO_COMMENT=VAL# not a comment
SINGLE='$OTHER and \'quotes\' and \t'
DOUBLE="tab\there, newline\nthere, quote \" and ${OTHER}"
DOUBLE_COMMENT="VAL # not a comment" # but this is
EARLIER=${RACK_ENV}-mode
EMPTY_VALUE=
FROM_ENVIRONMENT
NOT_IN_ENVIRONMENT
MULTI="line one
line two"
"""


def test_the_env_file_format():
    found = parse_env_file(ENV_FILE, {"OTHER": "other", "FROM_ENVIRONMENT": "from env"})
    assert found == {
        "RACK_ENV": "development",
        "EXPORTED": "yes",
        "UNQUOTED": "spaced out",
        "NO_COMMENT": "VAL# not a comment",
        "SINGLE": "$OTHER and 'quotes' and \\t",
        "DOUBLE": 'tab\there, newline\nthere, quote " and other',
        "DOUBLE_COMMENT": "VAL # not a comment",
        "EARLIER": "development-mode",
        "EMPTY_VALUE": "",
        "FROM_ENVIRONMENT": "from env",
        "MULTI": "line one\nline two",
    }


def test_the_raw_format_takes_values_as_written():
    assert parse_env_file('A="quoted $X"\nB=${Y}', {"X": "x"}, raw=True) == {"A": '"quoted $X"', "B": "${Y}"}


@pytest.mark.parametrize(("text", "message"), [
    ("1BAD=x", "line 1: invalid variable name"),
    ("OK=1\nA='never closed\nB=2", "line 2: the quoted value of A is never closed"),
    ('A="closed" trailing', "line 1: unexpected 'trailing'"),
    ("A=${B:?needed}", "line 1: A: required variable B is missing a value: needed"),
])
def test_env_file_errors_name_their_line(text: str, message: str):
    with pytest.raises(EnvFileError, match=message):
        parse_env_file(text, {})
