"""`hitless demo`: netapi 1.0 → 2.0 upgraded twice under the same probe load, side by side:
(a) the Kolla way — HAProxy with kolla-ansible's settings, per replica `docker stop` (10 s, then
SIGKILL) and start the new image — and (b) `hitless upgrade`. Prints a table of what users saw
and the path of both reports; removes everything it started.

The demo runs the netapi example (hitless_demo/netapi/hitless.yaml) as its own project,
`hitless-demo`, with its own spec, state and reports under ./hitless-demo/netapi/, so it never
touches a deployment of the example itself; its volumes are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from hitless.cli.common import console, process_images, reporter, state_dir
from hitless.cli.progress import make_progress
from hitless.engine.converge import down, up
from hitless.engine.migrate import phase_commands
from hitless.engine.upgrade import Engine, UpgradeRequest
from hitless.errors import BadInput, ExitStatus, OperationFailed
from hitless.probe.load import Workload
from hitless.probe.report import ReportPaths, write_report
from hitless.probe.session import ProbeResult, ProbeSession
from hitless.runtime.select import open_runtime
from hitless.spec import DesiredTree, parse_spec
from hitless.state.journal import Journal
from hitless.state.lock import ProjectLock
from hitless_demo.images import build_netapi_images
from hitless_demo.kolla import KollaWay, ensure_haproxy
from hitless_demo.paths import NETAPI_DIR, work_dir
from hitless_demo.ports import free_port

PROJECT = "hitless-demo"
OLD, NEW = "1.0", "2.0"
STEADY = 3.0  # seconds of load before each upgrade
AFTER = 2.0  # and after it
LONG_SECONDS = 15.0  # a "snapshot" takes this long: longer than Docker's 10 s stop timeout
KEEP_REPORTS = 10  # runs whose reports are kept (each holds every request: a few MB)


def demo_load(url: str) -> list[Workload]:
    """What users do to the API during both upgrades: services polling on keep-alive connections
    and command-line clients on new connections (4 + 4 GET clients), the seeds' `network create`
    / `network delete` loop (2 CLI clients, a pair every 0.5 s each), and one long operation
    (a 15 s snapshot) started every second."""
    return [Workload(f"{url}/v2.0/networks", "get", concurrency=4, modes=("new", "keep"), interval=0.02),
            Workload(url, "neutron-cycle", concurrency=2, modes=("new",)),
            Workload(url, "long", concurrency=1, modes=("new",), rate=1.0, long_seconds=LONG_SECONDS)]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_spec(example: str) -> tuple[str, list[str], str]:
    """The demo's spec from the example's: its own project and volume names (snapshots follow
    the rename), image workdirs made absolute (the demo's base dir is elsewhere), and the frontend
    on 9696 unless that is taken. Both upgrades run the example's migrations.
    Returns (spec text, volume names, frontend listen address)."""
    raw = yaml.safe_load(example)
    raw["project"] = PROJECT
    raw.pop("runtime", None)
    for image in (raw.get("images") or {}).values():
        image["workdir"] = str((NETAPI_DIR / image.get("workdir", ".")).resolve())
    service = raw["sets"]["netapi"]["api"]
    volumes, renamed = [], {}
    for i, volume in enumerate(service.get("volumes") or []):
        source, sep, rest = str(volume).partition(":")
        if sep and not source.startswith(("/", ".")):
            renamed[source] = f"{PROJECT}-{source}"
            service["volumes"][i] = f"{renamed[source]}:{rest}"
            volumes.append(renamed[source])
    for snapshot in (raw.get("snapshots") or {}).values():  # they name volumes too
        for driver in snapshot.values() if isinstance(snapshot, dict) else ():
            if isinstance(driver, dict) and driver.get("volume") in renamed:
                driver["volume"] = renamed[driver["volume"]]
    host, _, port = service["frontend"]["listen"].rpartition(":")
    if not _free(int(port)):
        service["frontend"]["listen"] = f"{host}:{free_port()}"
    return yaml.safe_dump(raw, sort_keys=False), volumes, service["frontend"]["listen"]


@contextlib.contextmanager
def _measured(workloads: list[Workload], on_stop: Callable[[ProbeResult], None]) -> Iterator[ProbeSession]:
    """A probe around a block; stopped (its in-flight long requests given 1 s) whatever happens."""
    probe = ProbeSession(workloads=workloads, grace=1.0).start()
    try:
        yield probe
    finally:
        on_stop(probe.stop())


def kolla_way(runtime, tree: DesiredTree, out: Path, say: Callable[[str], None]) -> tuple[ReportPaths, dict[str, Any]]:
    """Upgrade (a): HAProxy and `docker stop`, measured."""
    node = next(n for n in tree.services() if n.path == "netapi/api")
    migrations = phase_commands(node.service.migrations, ("expand", "contract"))
    kolla = KollaWay(runtime, project=f"{PROJECT}-kolla", replicas=node.service.replicas, note=say)
    held: dict[str, Any] = {}
    try:
        kolla.start(f"netapi:{OLD}")
        say(f"(a) the Kolla way: HAProxy on {kolla.url} (check inter 2000 rise 2 fall 5, redispatch, retries 3), "
            f"{kolla.replicas} replicas on host networking; per replica: stop (10 s, then SIGKILL), start {NEW}")
        with _measured(demo_load(kolla.url), lambda r: held.update(result=r)) as probe:
            time.sleep(STEADY)
            began = probe.now()
            held["steps"] = kolla.upgrade(f"netapi:{NEW}", clock=probe.now, migrations=migrations)
            ended = probe.now()
            time.sleep(AFTER)
    finally:
        kolla.close()
    meta = {"title": f"netapi {OLD} → {NEW}, the Kolla way", "target": kolla.url, "runtime": runtime.kind,
            "command": "per replica: stop (SIGTERM, SIGKILL at 10 s: docker stop) and start the new image, behind HAProxy",
            "upgrade_started_at": began, "upgrade_finished_at": ended}
    return _report(out / "kolla", held, meta)


def hitless_way(runtime, journal: Journal, tree: DesiredTree, spec_text: str, spec_file: Path, listen: str,
                out: Path, keep: bool, say: Callable[[str], None]) -> tuple[ReportPaths, dict[str, Any]]:
    """Upgrade (b): `hitless upgrade`, measured."""
    progress = make_progress(False)
    held: dict[str, Any] = {}
    try:
        up(tree, runtime, journal, (), progress)
        url = f"http://{listen}"
        say(f"(b) hitless: its proxy on {url}, 2 replicas; `hitless upgrade --image netapi/api=netapi:{NEW}` "
            "(start new, gate, switch, drain old, stop it gracefully)")
        request = UpgradeRequest(kind="upgrade", spec_text=spec_text, source=str(spec_file), base_dir=str(tree.base_dir),
                          images={"netapi/api": f"netapi:{NEW}"})
        with _measured(demo_load(url), lambda r: held.update(result=r)) as probe:
            time.sleep(STEADY)
            began = probe.now()
            deployment = Engine(tree, runtime, journal, progress).run(request)
            ended = probe.now()
            time.sleep(AFTER)
        held["steps"] = journal.steps(deployment)
    finally:
        if not keep:
            _teardown(tree, runtime, progress)
        progress.close()
    meta = {"title": f"netapi {OLD} → {NEW} with hitless upgrade", "target": url, "runtime": runtime.kind,
            "command": f"hitless upgrade --image netapi/api=netapi:{NEW}", "deployment": deployment,
            "upgrade_started_at": began, "upgrade_finished_at": ended}
    return _report(out / "hitless", held, meta)


def _teardown(tree: DesiredTree, runtime, progress) -> None:
    """Remove the demo's instances at once (the measurement is over: the probe's last long
    requests need not finish), then `down` stops the proxy and clears the rest."""
    for inst in runtime.instances(tree.project):
        runtime.remove(inst.id)
    down(tree, runtime, (), progress)


def _report(folder: Path, held: dict[str, Any], meta: dict[str, Any]) -> tuple[ReportPaths, dict[str, Any]]:
    paths = write_report(folder, held["result"], held.get("steps", ()), meta)
    return paths, json.loads(paths.json.read_text())


def _cell(report: dict[str, Any], row: str) -> str:
    s, during = report["summary"], report["phases"]["during"]
    if row == "requests":
        return f"{s['requests']:,}"
    if row == "failed":
        return str(s["failed"])
    if row == "window":
        if not s["windows"]:
            return "none"
        return f"{s['longest_window_s']:.2f} s ({s['windows']} burst{'s' if s['windows'] != 1 else ''})"
    if row == "p99":
        p99 = during["latency_ms"]["p99"]
        return "—" if p99 is None else f"{p99:.1f} ms"
    if row == "cut":
        return "none" if s["longest_cut_ms"] is None else f"{s['longest_cut_ms'] / 1000:.1f} s"
    return f"{report['upgrade']['seconds']:.1f} s"


def table(kolla: dict[str, Any], hitless: dict[str, Any]) -> Table:
    """The side-by-side table."""
    out = Table(title=f"netapi {OLD} → {NEW} under the same load", title_justify="left")
    out.add_column("")
    out.add_column("Kolla way (HAProxy, stop-first)", justify="right")
    out.add_column("hitless upgrade", justify="right")
    for row, label in (("requests", "requests"), ("failed", "failed"), ("window", "unavailability window"),
                       ("p99", "p99 during"), ("cut", "longest request cut"), ("took", "upgrade took")):
        out.add_row(label, _cell(kolla, row), _cell(hitless, row))
    return out


def prune_reports(folder: Path, keep: int) -> None:
    """Remove all but the newest `keep` runs' reports."""
    runs = sorted((p for p in folder.glob("*") if p.is_dir()), key=lambda p: p.name)
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def remove_volumes(runtime, names: list[str]) -> None:
    """Remove named volumes (a warning for one that cannot be, not an error: cleaning up)."""
    for name in names:
        try:
            if runtime.kind == "docker":
                import docker.errors

                try:
                    runtime.client.volumes.get(name).remove(force=True)
                except docker.errors.NotFound:
                    pass
            else:
                shutil.rmtree(runtime.volume_path(name), ignore_errors=True)
        except Exception as exc:  # cleaning up: say what is left, carry on
            reporter("warning", f"could not remove volume {name}: {exc}")


def run(args: argparse.Namespace) -> int:
    """The demo; exit status 0 when hitless failed no request."""
    began = time.monotonic()
    example = NETAPI_DIR / "hitless.yaml"
    if not example.is_file():
        raise BadInput(f"the netapi example is not at {example} (a broken installation of hitless)")
    say = lambda line: reporter("info", line)  # noqa: E731
    demo_dir = work_dir("netapi")
    say(f"the demo's spec, state and reports: {demo_dir}")
    with ProjectLock(demo_dir / ".hitless", "demo"):
        # The example as it is (its image workdirs relative to it) tells the process runtime
        # what an image means; the demo's own spec depends on the runtime chosen.
        example_tree = parse_spec(example.read_text(encoding="utf-8"), str(example), NETAPI_DIR)
        runtime = open_runtime(args.runtime, demo_dir / ".hitless" / "process", process_images(example_tree))
        try:
            why = "as asked" if args.runtime != "auto" else (
                "a Docker engine answers" if runtime.kind == "docker" else "no Docker engine answers")
            say(f"runtime: {runtime.kind}" + (" (Docker containers" if runtime.kind == "docker" else " (local processes")
                + f": {why})")
            spec_text, volumes, listen = demo_spec(example.read_text(encoding="utf-8"))
            spec_file = demo_dir / "hitless.yaml"
            spec_file.write_text(spec_text, encoding="utf-8")
            tree = parse_spec(spec_text, str(spec_file), demo_dir)
            if runtime.kind == "docker":
                say("building (or reusing) the netapi images; the first build makes a Debian base (~1 min)")
                build_netapi_images(runtime.client, versions=(OLD, NEW),  # type: ignore[attr-defined]
                                    progress=lambda line: None if line.startswith("Step ") else say(line))
            ensure_haproxy(say)
            out = demo_dir / "reports" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            prune_reports(demo_dir / "reports", KEEP_REPORTS - 1)
            with Journal(state_dir(tree) / "state.db") as journal:
                if runtime.instances(PROJECT):
                    say("removing a demo deployment left running by an earlier demo")
                    _teardown(tree, runtime, make_progress(False))
                remove_volumes(runtime, volumes)  # every run starts from an empty 1.0 database
                kolla_paths, kolla = kolla_way(runtime, tree, out, say)
                hitless_paths, hitless = hitless_way(runtime, journal, tree, spec_text, spec_file, listen, out,
                                                     args.keep, say)
            if not args.keep:
                remove_volumes(runtime, volumes)
        finally:
            runtime.close()
    console.print(table(kolla, hitless))
    console.print(f"reports: {kolla_paths.html}\n         {hitless_paths.html}", markup=False, soft_wrap=True)
    console.print(f"demo done in {time.monotonic() - began:.0f}s on the {runtime.kind} runtime"
                  + (f" (left running: `hitless down -f {spec_file}`)" if args.keep else ""), markup=False, soft_wrap=True)
    if hitless["summary"]["failed"]:
        raise OperationFailed(f"hitless upgrade: {hitless['summary']['failed']} request(s) failed; see {hitless_paths.html}")
    return ExitStatus.OK
