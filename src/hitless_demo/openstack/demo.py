"""`hitless demo --openstack`: real OpenStack releases from PyPI — Keystone 28.1.0 → 29.1.0, then
Neutron 28.0.2 → 29.0.0 — upgraded twice under the same users, side by side: (a) the Kolla way
(HAProxy with kolla-ansible's settings, the migration containers, then per replica `docker
stop` with its 10 s timeout and a start of the new image) and (b) `hitless upgrade`.

The users are the real client: an openstacksdk loop issuing and validating tokens while Keystone
is upgraded, and the seeds' `network create` / `network delete` loop while Neutron is. Each way
is its own deployment of the OpenStack example (own MariaDB databases, volumes and ports); both
are removed at the end. What every operation gave is kept under ./hitless-demo/openstack/reports/.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from hitless.cli.common import console, reporter
from hitless.cli.progress import make_progress
from hitless.engine.converge import down, up
from hitless.engine.migrate import phase_commands
from hitless.engine.upgrade import Engine, UpgradeRequest
from hitless.errors import BadInput, ExitStatus, OperationFailed
from hitless.runtime.select import open_runtime
from hitless.spec import parse_spec
from hitless.state.journal import Journal
from hitless.state.lock import ProjectLock
from hitless_demo.kolla import KollaService, KollaWay, ensure_haproxy
from hitless_demo.netapi_demo import KEEP_REPORTS, prune_reports, remove_volumes
from hitless_demo.openstack.images import build_openstack_images, ensure_client
from hitless_demo.openstack.load import (
    EXAMPLE_SPEC,
    NEW,
    OLD,
    SERVICES,
    ClientLoop,
    CloudLayout,
    check_mariadb,
    clouds_yaml,
    create_databases,
    drop_databases,
    failures,
    openstack_spec,
)
from hitless_demo.paths import OPENSTACK_DIR, work_dir
from hitless_demo.ports import free_port, free_port_range

PROJECT = "hitless-demo-os"
STEADY = 3.0  # seconds of load before each upgrade
AFTER = 2.0  # and after it
LOOPS = {"keystone": "tokens", "neutron": "networks"}  # what users do while that service is upgraded
Say = Callable[[str], None]


class Users:
    """The deployment's users: the client's virtualenv, a clouds.yaml, and their loops' records."""

    def __init__(self, client_bin: Path, layout: CloudLayout, folder: Path):
        self.client_bin, self.layout, self.folder = client_bin, layout, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.clouds = folder / "clouds.yaml"
        self.clouds.write_text(clouds_yaml(layout, layout.project))

    def register_network_endpoint(self) -> None:
        """What Kolla's service-ks-register does, with the real `openstack` command."""
        for argv in (("service", "create", "--name", "neutron", "network"),
                     ("endpoint", "create", "--region", "RegionOne", "network", "public", self.layout.network_url)):
            done = subprocess.run([str(self.client_bin / "openstack"), "--os-cloud", self.layout.project, *argv],
                                  capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds)})
            if done.returncode != 0:
                raise OperationFailed(f"openstack {' '.join(argv[:2])} failed: {done.stderr.strip()[-300:]}")

    def during(self, service: str, upgrade: Callable[[], object]) -> dict[str, Any]:
        """Run the service's loop, upgrade meanwhile; what users saw and how long it took."""
        loop = ClientLoop(self.client_bin, LOOPS[service], self.layout.project, self.clouds,
                          self.folder / f"{LOOPS[service]}.jsonl")
        try:
            loop.wait_for(2, timeout=120)
            time.sleep(STEADY)
            began = time.time()
            upgrade()
            took = time.time() - began
            time.sleep(AFTER)
        finally:
            records = loop.stop()
        return summary(records, took)


def summary(records: list[dict], took: float) -> dict[str, Any]:
    """Operations, failures (and the first one's error), slowest answer, upgrade time."""
    failed = failures(records)
    return {"operations": len(records), "failed": len(failed), "first_error": failed[0]["error"] if failed else None,
            "slowest_ms": max((r["ms"] for r in records), default=0.0), "upgrade_s": round(took, 1)}


def _nodes(layout: CloudLayout) -> dict[str, Any]:
    tree = parse_spec(openstack_spec(EXAMPLE_SPEC.read_text(), layout, OLD), base_dir=OPENSTACK_DIR)
    return {name: next(n for n in tree.services() if n.path == "/".join(SERVICES[name])) for name in SERVICES}


def kolla_way(runtime, client_bin: Path, out: Path, say: Say) -> dict[str, dict[str, Any]]:
    """Upgrade (a): HAProxy, migration containers, `docker stop` and start, measured."""
    layout = CloudLayout(f"{PROJECT}-kolla", free_port(), free_port(), free_port_range(18))  # replicas: own ports
    nodes = _nodes(layout)
    ways = {name: KollaWay(runtime, KollaService.of(node, OPENSTACK_DIR), project=f"{layout.project}-{name}",
                           replicas=node.service.replicas, note=say,
                           listen_port=layout.keystone_port if name == "keystone" else layout.neutron_port)
            for name, node in nodes.items()}
    results = {}
    try:
        _fresh(runtime, layout)
        for name, way in ways.items():
            way.start(OLD[name], bootstrap=phase_commands(nodes[name].service.migrations, ("bootstrap",)).get("bootstrap"))
        say(f"(a) the Kolla way: HAProxy on {layout.auth_url} and {layout.network_url} (check inter 2000 rise 2 "
            "fall 5, redispatch, retries 3), 2 replicas each on host networking; per service: expand, then per "
            "replica stop (10 s, then SIGKILL) and start the new release, then contract")
        users = Users(client_bin, layout, out / "kolla")
        users.register_network_endpoint()
        for name, way in ways.items():
            phases = phase_commands(nodes[name].service.migrations, ("expand", "contract"))
            results[name] = users.during(name, functools.partial(way.upgrade, NEW[name], migrations=phases))
            say(f"    {OLD[name]} → {NEW[name]} the Kolla way: {_line(results[name])}")
    finally:
        for way in ways.values():
            way.close()
        _clear(runtime, layout)
    return results


def hitless_way(runtime, client_bin: Path, demo_dir: Path, out: Path, say: Say) -> dict[str, dict[str, Any]]:
    """Upgrade (b): `hitless up`, then `hitless upgrade keystone`, `hitless upgrade neutron`, measured."""
    layout = CloudLayout(PROJECT, free_port(), free_port(), free_port_range(18))
    folder = demo_dir / "hitless"
    folder.mkdir(parents=True, exist_ok=True)
    spec_text = openstack_spec(EXAMPLE_SPEC.read_text(), layout, OLD)
    spec_file = folder / "hitless.yaml"
    spec_file.write_text(spec_text)
    tree = parse_spec(spec_text, str(spec_file), folder)
    progress = make_progress(False)
    results = {}
    try:
        with Journal(folder / ".hitless" / "state.db") as journal:
            _fresh(runtime, layout)
            up(tree, runtime, journal, (), progress)
            say(f"(b) hitless: its proxy on {layout.auth_url} and {layout.network_url}, 2 replicas each; "
                "`hitless upgrade keystone`, then `hitless upgrade neutron` (expand, start new, gate, switch, "
                "drain old, stop it gracefully, contract)")
            users = Users(client_bin, layout, out / "hitless")
            users.register_network_endpoint()
            for name in SERVICES:
                path = "/".join(SERVICES[name])
                request = UpgradeRequest(kind="upgrade", spec_text=spec_text, source=str(spec_file), base_dir=str(folder),
                                  paths=(SERVICES[name][0],), images={path: NEW[name]})
                results[name] = users.during(name, functools.partial(Engine(tree, runtime, journal, progress).run, request))
                spec_text = spec_text.replace(f"image: {OLD[name]}", f"image: {NEW[name]}")
                say(f"    {OLD[name]} → {NEW[name]} with hitless: {_line(results[name])}")
    finally:
        try:
            for inst in runtime.instances(tree.project):  # measured: no need to drain what is left
                runtime.remove(inst.id)
            down(tree, runtime, (), progress)
        finally:
            progress.close()
            _clear(runtime, layout)
    return results


def _line(result: dict[str, Any]) -> str:
    return f"{result['operations']} operations, {result['failed']} failed, upgrade {result['upgrade_s']} s"


def _fresh(runtime, layout: CloudLayout) -> None:
    """Empty databases and no volumes of an earlier run: every run starts from a first deployment."""
    _clear(runtime, layout)
    create_databases(layout)


def _clear(runtime, layout: CloudLayout) -> None:
    remove_volumes(runtime, layout.volumes())
    drop_databases(layout)


def _cell(result: dict[str, Any], key: str) -> str:
    value = result[key]
    return {"slowest_ms": f"{value:,.0f} ms", "upgrade_s": f"{value} s"}.get(key, f"{value:,}")


def table(kolla: dict[str, Any], hitless: dict[str, Any]) -> Table:
    """The side-by-side table."""
    out = Table(title="OpenStack under the same users: the Kolla way and hitless", title_justify="left")
    out.add_column("")
    out.add_column("Kolla way (HAProxy, stop-first)", justify="right")
    out.add_column("hitless upgrade", justify="right")
    for name in SERVICES:
        out.add_row(f"{OLD[name]} → {NEW[name].partition(':')[2]}", "", "", style="bold")
        for key, label in (("operations", f"  {LOOPS[name]} loop operations"), ("failed", "  failed"),
                           ("slowest_ms", "  slowest answer"), ("upgrade_s", "  upgrade took")):
            out.add_row(label, _cell(kolla[name], key), _cell(hitless[name], key))
    return out


def run(args) -> int:
    """The demo; exit status 0 when hitless failed nothing."""
    began = time.monotonic()
    say = lambda line: reporter("info", line)  # noqa: E731
    if not EXAMPLE_SPEC.is_file():
        raise BadInput(f"the openstack example is not at {EXAMPLE_SPEC.parent} (a broken installation of hitless)")
    if args.runtime == "process":
        raise BadInput("the OpenStack demo runs on Docker only (its releases live in images); drop --runtime process")
    check_mariadb()  # the demo's databases are made by its administrator
    demo_dir = work_dir("openstack")
    say(f"the demo's state and reports: {demo_dir}")
    with ProjectLock(demo_dir / ".hitless", "demo"):
        runtime = open_runtime("docker", demo_dir / "process", {})
        try:
            say("building (or reusing) keystone 28.1.0/29.1.0 and neutron 28.0.2/29.0.0 from PyPI "
                "(the first build fetches wheels and takes a few minutes; later ones need no network)")
            build_openstack_images(runtime.client, progress=lambda line: None if line.startswith("Step ") else say(line))  # type: ignore[attr-defined]
            client_bin = ensure_client(progress=say)
            ensure_haproxy(say)
            out = demo_dir / "reports" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            kolla = kolla_way(runtime, client_bin, out, say)
            hitless = hitless_way(runtime, client_bin, demo_dir, out, say)
        finally:
            runtime.close()
    (out / "summary.json").write_text(json.dumps({"kolla": kolla, "hitless": hitless}, indent=2))
    prune_reports(demo_dir / "reports", KEEP_REPORTS)
    console.print(table(kolla, hitless))
    console.print(f"every operation: {out}", markup=False, soft_wrap=True)
    console.print(f"demo done in {time.monotonic() - began:.0f}s", markup=False)
    failed = sum(r["failed"] for r in hitless.values())
    if failed:
        raise OperationFailed(f"hitless upgrade: {failed} operation(s) failed; see {out}")
    return ExitStatus.OK
