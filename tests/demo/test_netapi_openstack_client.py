"""The real OpenStack client against netapi: network create / list / show / delete.

What the SDK sends: GET / (version discovery), POST /v2.0/networks, and for `show NAME` and
`delete NAME` first GET /v2.0/networks/NAME (404) then GET /v2.0/networks?name=NAME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hitless_demo.localrun import running_netapi

pytest.importorskip("openstackclient", reason="python-openstackclient is a test dependency")


def openstack(app, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(tmp_path)  # no clouds.yaml from the developer's home
    argv = [sys.executable, "-m", "openstackclient.shell", "--os-auth-type", "none",
            "--os-endpoint", app.url, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_openstack_network_create_list_show_delete(tmp_path, version):
    with running_netapi(tmp_path, version=version) as app:
        created = openstack(app, tmp_path, "network", "create", "temp", "-f", "json")
        assert created.returncode == 0, created.stderr
        network = json.loads(created.stdout)
        assert network["name"] == "temp" and network["status"] == "ACTIVE"

        listed = openstack(app, tmp_path, "network", "list", "-f", "json")
        assert listed.returncode == 0, listed.stderr
        assert [(n["ID"], n["Name"]) for n in json.loads(listed.stdout)] == [(network["id"], "temp")]

        shown = openstack(app, tmp_path, "network", "show", "temp", "-f", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == network["id"]
        if version == "2.0":
            assert json.loads(shown.stdout)["revision_number"] == 1

        deleted = openstack(app, tmp_path, "network", "delete", "temp")
        assert deleted.returncode == 0, deleted.stderr
        missing = openstack(app, tmp_path, "network", "show", "temp")
        assert missing.returncode != 0 and "temp" in missing.stderr
