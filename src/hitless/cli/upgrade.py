"""`hitless upgrade`, `hitless resume` and `hitless rollback`: zero-downtime changes.

Ctrl-C (or SIGTERM) once: the current step finishes, then the run stops, resumable.
Twice: stop now; the journal is left resumable (every record is one SQLite transaction).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Iterator

from hitless.cli.common import add_json_option, add_spec_options, console, open_context, state_dir
from hitless.cli.plan import render
from hitless.cli.progress import make_progress
from hitless.engine.adopt import check_no_compose
from hitless.engine.snapshots import covered
from hitless.engine.steps import Event
from hitless.engine.upgrade import Engine, UpgradeRequest, contracts_crossed, plan_for, rollback_request, selected_services
from hitless.errors import BadInput, ExitStatus
from hitless.probe import SCENARIOS, ProbeSession, target_url, write_report
from hitless.spec.load import read_spec


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("upgrade", help="replace what changed, with zero downtime; roll back on failure")
    add_spec_options(up)
    add_json_option(up)
    up.add_argument("sets", nargs="*", metavar="SET", help="upgrade only these sets or services (e.g. neutron/server)")
    up.add_argument("--image", action="append", default=[], metavar="SERVICE=REPO:TAG",
                    help="use this image for a service instead of the spec's (repeatable)")
    up.add_argument("--until", metavar="STAGE", help="stop after this set or service; run again to continue")
    up.add_argument("--hosts", metavar="HOST[,HOST...]", default="",
                    help="replace only the instances on these hosts (the others at their own pace, later)")
    up.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    up.add_argument("--probe", choices=SCENARIOS, metavar="SCENARIO",
                    help=f"measure what users see through the upgrade ({', '.join(SCENARIOS)}); "
                         "writes a report to .hitless/reports/<deployment>/")
    up.set_defaults(func=run_upgrade)

    resume = sub.add_parser("resume", help="finish (or finish rolling back) an upgrade that was killed or interrupted")
    add_spec_options(resume)
    add_json_option(resume)
    resume.set_defaults(func=run_resume)

    back = sub.add_parser("rollback", help="return sets to their last known good version, with zero downtime")
    add_spec_options(back)
    add_json_option(back)
    back.add_argument("sets", nargs="*", metavar="SET", help="the sets or services to roll back (all when none)")
    back.add_argument("--to-generation", type=int, metavar="N", help="the known good state holding generation N")
    back.add_argument("--restore-db", action="store_true",
                      help="also restore the newest snapshot of the set, in a held window (discards writes made since)")
    back.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    back.set_defaults(func=run_rollback)

    restore = sub.add_parser("restore", help="restore a set's snapshot in a held window (requests held, writers stopped)")
    add_spec_options(restore)
    add_json_option(restore)
    restore.add_argument("set", metavar="SET", help="the set whose data to restore")
    restore.add_argument("snapshot", nargs="?", type=int, metavar="SNAPSHOT", help="snapshot id (default: the newest)")
    restore.add_argument("--dry-run", action="store_true", help="print what would be done and stop")
    restore.set_defaults(func=run_restore)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: ask the engine to stop after the current step. Second: exit now.

    The handler only sets a flag and writes with os.write: it may interrupt a thread that holds
    the output's lock, so it must take none.
    """
    def handle(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            os.write(2, f"hitless: {name} again: stopping now; `hitless resume` finishes the run\n".encode())
            os._exit(ExitStatus.INTERRUPTED)
        stop.set()
        os.write(2, f"hitless: {name}: finishing the current step, then stopping (again to stop now)\n".encode())

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _parse_images(pairs: list[str]) -> dict[str, str]:
    images = {}
    for pair in pairs:
        service, sep, image = pair.partition("=")
        if not sep or not service or not image:
            raise BadInput(f"--image {pair}: expected SERVICE=REPO:TAG")
        images[service] = image
    return images


def _base_request(args: argparse.Namespace, kind: str) -> UpgradeRequest:
    # The hitless spec the file stands for (a compose file's conversion, with its .env and env
    # files read now): a resumed run carries on with exactly what was asked.
    loaded = read_spec(args.spec_file)
    return UpgradeRequest(kind=kind, spec_text=loaded.text, source=loaded.source,
                   base_dir=str(loaded.tree.base_dir), paths=tuple(getattr(args, "sets", ())),
                   images=_parse_images(getattr(args, "image", [])), until=getattr(args, "until", None),
                   hosts=tuple(h for h in getattr(args, "hosts", "").split(",") if h))


def with_snapshot(tree, journal, request: UpgradeRequest, snapshot_id: int | None = None) -> UpgradeRequest:
    """The request, restoring the newest snapshot (or `snapshot_id`) of the set covering its services."""
    wanted = set(request.paths)
    for key in tree.spec.snapshots:
        if wanted & {n.path for n in covered(tree, key)}:
            snaps = [s for s in journal.snapshots(tree.project, key) if snapshot_id in (None, s.id)]
            if snaps:
                return dataclasses.replace(request, snapshot=snaps[0].id, snapshot_set=key)
    raise BadInput(f"no snapshot to restore for {', '.join(request.paths)} (see `hitless snapshots`)")


def refuse_across_contract(ctx, request: UpgradeRequest, generation: int | None) -> None:
    """A rollback to a version older than a contract migration since: refused before anything
    starts, naming the snapshot `--restore-db` would restore and what that discards."""
    crossed = contracts_crossed(ctx.tree, ctx.runtime, ctx.journal, request.paths, generation)
    if not crossed:
        return
    service, deployment, when = crossed[0]
    try:
        snap = ctx.journal.snapshots(ctx.tree.project, with_snapshot(ctx.tree, ctx.journal, request).snapshot_set)[0]
        remedy = (f"`hitless rollback {' '.join(request.paths)} --restore-db` restores snapshot {snap.id} of "
                  f"{snap.set_path}, taken {snap.created_at}, and discards every write made since")
    except BadInput:
        remedy = "no snapshot covers it: restore the database by hand first"
    raise BadInput(f"rollback of {service} refused: its contract migration ran at {when} (deployment {deployment}), "
                   f"after the known good state it would return to, whose version may not run on that schema; "
                   f"{remedy}")


def _execute(args: argparse.Namespace, kind: str) -> int:
    progress = make_progress(args.json)
    stop = threading.Event()
    try:
        with open_context(args, lock=kind) as ctx, _stop_on_signals(stop):
            if not args.dry_run and ctx.runtime.kind == "docker":
                check_no_compose(ctx.tree, ctx.runtime, kind)  # never a silent port conflict
            engine = Engine(ctx.tree, ctx.runtime, ctx.journal, progress, stop, state_dir(ctx.tree))
            if not args.dry_run:
                engine.reconcile_proxy()
            resumed = engine.resume_unfinished()
            if kind == "resume":
                if not resumed:
                    progress(Event("info", "nothing to resume: no unfinished run"))
                return ExitStatus.OK
            request = _base_request(args, kind)
            unknown = sorted(set(request.hosts) - set(ctx.tree.spec.hosts))
            if unknown:
                raise BadInput(f"--hosts: no host {', '.join(unknown)} in the spec's hosts")
            if kind == "restore":
                paths = tuple(n.path for n in covered(ctx.tree, args.set))
                if not paths:
                    raise BadInput(f"no set or service '{args.set}' in the spec")
                request = with_snapshot(ctx.tree, ctx.journal, dataclasses.replace(request, paths=paths), args.snapshot)
                request = dataclasses.replace(request, snapshot_set=args.set)
            if kind == "rollback":
                request = rollback_request(ctx.tree, ctx.runtime, ctx.journal, request, args.to_generation)
                if args.restore_db:
                    request = with_snapshot(ctx.tree, ctx.journal, request)
                else:
                    refuse_across_contract(ctx, request, args.to_generation)
            plan = plan_for(request, ctx.runtime)
            if args.json:
                progress(Event("plan", "plan", fields={"plan": plan.to_dict()}))
            else:
                console.print(render(plan))
            if args.dry_run:
                return ExitStatus.OK
            if plan.is_noop and request.snapshot is None:
                progress(Event("info", "nothing to do: everything runs as asked"))
                return ExitStatus.OK
            if getattr(args, "probe", None):
                deployment = _run_probed(ctx, engine, request, args.probe, progress)
            else:
                deployment = engine.run(request)
            progress(Event("phase", f"{kind} done (deployment {deployment})"))
            return ExitStatus.OK
    finally:
        progress.close()


def _run_probed(ctx, engine: Engine, request: UpgradeRequest, scenario: str, progress) -> int:
    """Run the upgrade under the probe's load, and write the report whatever the outcome."""
    fronted = [n for n in selected_services(request.tree(), request.paths, request.until) if n.service.frontend]
    if not fronted:
        raise BadInput("--probe needs a service with a frontend among those upgraded")
    url = target_url(fronted[0].service.frontend.listen)  # type: ignore[union-attr]
    progress(Event("info", f"probe: {scenario} load on {url}"))
    with ProbeSession(url, scenario) as probe:
        began = probe.now()
        try:
            return engine.run(request)
        finally:
            ended = probe.now()
            result = probe.stop()
            deployment = ctx.journal.deployments(ctx.tree.project, 1)[0].id
            paths = write_report(state_dir(ctx.tree) / "reports" / str(deployment), result,
                                 ctx.journal.steps(deployment),
                                 {"title": f"{ctx.tree.project}: upgrade (deployment {deployment})",
                                  "runtime": ctx.runtime.kind, "scenario": scenario,
                                  "upgrade_started_at": began, "upgrade_finished_at": ended})
            failed = sum(1 for r in result.records if not r.ok)
            progress(Event("phase", f"probe: {len(result.records)} requests, {failed} failed; "
                                    f"report {paths.html}", fields={"report": str(paths.json)}))


def run_upgrade(args: argparse.Namespace) -> int:
    return _execute(args, "upgrade")


def run_resume(args: argparse.Namespace) -> int:
    args.dry_run = False
    return _execute(args, "resume")


def run_rollback(args: argparse.Namespace) -> int:
    return _execute(args, "rollback")


def run_restore(args: argparse.Namespace) -> int:
    return _execute(args, "restore")
