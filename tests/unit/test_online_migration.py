"""The `online` migration kind in the spec, and which command each phase runs (pure)."""

from __future__ import annotations

import pytest

from hitless.engine.migrate import phase_argv
from hitless.spec import parse_spec
from hitless.spec.load import SpecError

SPEC = """
project: p
sets:
  netapi:
    api:
      image: netapi:3.0
      network: {{mode: bridge, port: 9696}}
      migrations: {migrations}
"""
ONLINE = "{online: {copy: [m, copy], cutover: 'm cutover'}, status: [m, status]}"


def test_copy_and_cutover_are_the_online_migration_commands():
    mig = parse_spec(SPEC.format(migrations=ONLINE)).services()[0].service.migrations
    assert phase_argv(mig, "copy") == ("m", "copy") and phase_argv(mig, "cutover") == ("m", "cutover")
    assert phase_argv(mig, "status") == ("m", "status") and phase_argv(mig, "offline") is None
    assert phase_argv(None, "copy") is None


@pytest.mark.parametrize("migrations, problem", [
    ("{online: {copy: [m, copy]}}", "sets.netapi.api.migrations.online.cutover: required"),
    ("{online: {copy: [a], cutover: [b]}, expand: [e]}", "an 'online' migration replaces expand/contract"),
    ("{online: {copy: [a], cutover: [b]}, offline: [o]}", "give 'offline' or 'online', not both"),
])
def test_an_incomplete_or_mixed_online_migration_is_one_line(migrations, problem):
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.format(migrations=migrations))
    assert any(problem in line for line in caught.value.lines()), caught.value.lines()
