"""A service's `bootstrap` migration: run by `up` before its first instance, once per first
deployment (again after `down`, never while an instance exists), and a failing one starts
nothing. Real `hitless` CLI, real instances, on local processes and on Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.project import BOTH_RUNTIMES_SPEC, assert_ok, project_on


def _bootstrap(script: str) -> str:
    return "migrations: {bootstrap: [sh, -c, '" + script + "']}"


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def project(request, tmp_path_factory):
    p = project_on(request, tmp_path_factory, "bootstrap", BOTH_RUNTIMES_SPEC)
    try:
        yield p
    finally:
        p.cleanup()


def test_bootstrap_runs_before_the_first_instance_and_only_then(project):
    # The job sees the service's volume and environment: it leaves its mark in the data volume.
    project.write("1.0", _bootstrap('echo ran >> "$NETAPI_DB.boot"'))
    assert_ok(project.cli("up"))
    assert len(project_marks(project)) == 1
    assert_ok(project.cli("up"))  # instances exist: no bootstrap
    assert len(project_marks(project)) == 1
    assert_ok(project.cli("down"))
    assert_ok(project.cli("up"))  # a first deployment again
    assert len(project_marks(project)) == 2


def test_a_failing_bootstrap_starts_nothing(project):
    project.write("1.0", _bootstrap("echo the schema is broken; exit 3"))
    result = project.cli("up")
    assert result.returncode != 0
    assert "bootstrap migration of netapi/api failed: exit code 3" in result.stdout + result.stderr
    assert "the schema is broken" in result.stdout + result.stderr
    status = json.loads(project.cli("status", "--json").stdout)
    assert [s["instances"] for s in status["services"]] == [[]], status


def project_marks(project) -> list[str]:
    """The lines the bootstrap jobs wrote into the service's data volume."""
    volume = f"{project.name}-data"
    if project.runtime == "process":
        folder = project.state_dir / "process" / "volumes" / volume
    else:
        folder = Path(project.docker.volumes.get(volume).attrs["Mountpoint"])
    mark = folder / "netapi.db.boot"
    return mark.read_text().splitlines() if mark.exists() else []
