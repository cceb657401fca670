"""Snapshots of a set's data, taken before an upgrade changes anything, and restored on request.

Three kinds, as the spec names them: `sqlite` (an online copy with SQLite's backup API: no writer
is stopped), `volume` (a tar of a named volume made by a short-lived helper instance), and
`command` (the user's own hot backup, on the host or in a one-shot instance of the current image,
writing the file named by $HITLESS_SNAPSHOT). Restoring only puts data back: the caller stops the
writers first and starts them after (a held window).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from hitless.engine.jobs import run_job
from hitless.errors import OperationFailed
from hitless.runtime.base import Mount, Runtime
from hitless.spec.model import SnapshotSpec
from hitless.spec.tree import DesiredTree, ServiceNode
from hitless.state.journal import Journal, Snapshot

SNAPSHOT_DIR = "/hitless-snapshot"  # where the snapshot directory is mounted in a helper instance
VOLUME_DIR = "/hitless-volume"
FILES = {"sqlite": "db.sqlite", "volume": "volume.tar", "command": "dump"}
JOB_TIMEOUT = 3600.0


def covered(tree: DesiredTree, key: str) -> list[ServiceNode]:
    """The services a snapshot key (a set or service path) covers, in upgrade order."""
    return [s for s in tree.services() if s.path == key or s.path.startswith(key + "/")]


class Snapshots:
    """Takes, lists, prunes and restores the snapshots of one project."""

    def __init__(self, tree: DesiredTree, runtime: Runtime, journal: Journal, root: Path):
        self.tree = tree
        self.runtime = runtime
        self.journal = journal
        self.root = root  # .hitless/snapshots

    def spec(self, set_path: str) -> SnapshotSpec:
        """The snapshot settings of a set; OperationFailed when it has none."""
        try:
            return self.tree.spec.snapshots[set_path]
        except KeyError:
            known = ", ".join(self.tree.spec.snapshots) or "none"
            raise OperationFailed(f"set {set_path!r} has no snapshot settings in the spec (snapshots: {known})") from None

    def take(self, set_path: str, deployment_id: int | None = None) -> Snapshot:
        """Snapshot the set's data now, record it, and prune beyond `keep`."""
        spec = self.spec(set_path)
        nodes = covered(self.tree, set_path)
        running = [i for i in self.runtime.instances(self.tree.project) if i.running]
        images = {n.path: next((i.labels.image for i in running if i.labels.service_path == n.path), n.service.image)
                  for n in nodes}
        revision = {n.path: self._revision(n, images[n.path])
                    for n in nodes if n.service.migrations and n.service.migrations.status}
        stamp = time.strftime("%Y%m%dT%H%M%S")
        directory = self.root / set_path.replace("/", "-") / f"{stamp}-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        directory.mkdir(parents=True)
        snapshot_id = self.journal.snapshot_started(self.tree.project, set_path, spec.kind, str(directory),
                                                    deployment_id, images, revision)
        target = directory / FILES[spec.kind]
        try:
            if spec.sqlite is not None:
                self._sqlite_backup(self._sqlite_file(spec), target)
            elif spec.volume is not None:
                self._job(nodes[0], spec.volume.image or images[nodes[0].path], directory, "snapshot",
                          ("tar", "-C", VOLUME_DIR, "-cf", f"{SNAPSHOT_DIR}/{target.name}", "."),
                          Mount(spec.volume.name, VOLUME_DIR, read_only=True))
            else:
                self._command(spec, nodes[0], images[nodes[0].path], directory, target, spec.command.backup, "snapshot")  # type: ignore[union-attr]
            if not target.exists():
                raise OperationFailed(f"snapshot of {set_path}: the backup wrote no {target.name}")
        except BaseException:
            self.journal.snapshot_finished(snapshot_id, "failed")
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self.journal.snapshot_finished(snapshot_id, "ok", target.stat().st_size)
        self.prune(set_path, spec.keep)
        return next(s for s in self.journal.snapshots(self.tree.project, set_path) if s.id == snapshot_id)

    def prune(self, set_path: str, keep: int) -> list[Snapshot]:
        """Delete all but the newest `keep` snapshots of the set; the ones deleted."""
        old = self.journal.snapshots(self.tree.project, set_path)[keep:]
        for snap in old:
            shutil.rmtree(snap.path, ignore_errors=True)
            self.journal.snapshot_finished(snap.id, "pruned", snap.size)
        return old

    def find(self, set_path: str, snapshot_id: int | None = None) -> Snapshot:
        """A snapshot of the set by id, or its newest."""
        snaps = self.journal.snapshots(self.tree.project, set_path)
        for snap in snaps:
            if snapshot_id is None or snap.id == snapshot_id:
                return snap
        what = f"snapshot {snapshot_id}" if snapshot_id is not None else "any snapshot"
        raise OperationFailed(f"no {what} of {set_path} (see `hitless snapshots`)")

    def restore_data(self, snap: Snapshot) -> None:
        """Put the snapshot's data back. The set's writers must be stopped."""
        spec = self.spec(snap.set_path)
        directory, nodes = Path(snap.path), covered(self.tree, snap.set_path)
        source = directory / FILES[snap.kind]
        if not source.exists():
            raise OperationFailed(f"snapshot {snap.id}: {source} is missing")
        if snap.kind == "sqlite":
            self._sqlite_restore(source, self._sqlite_file(spec))
        elif snap.kind == "volume":
            image = (spec.volume.image if spec.volume else None) or snap.images.get(nodes[0].path, nodes[0].service.image)
            self._job(nodes[0], image, directory, "restore",
                      ("sh", "-c", f"find {VOLUME_DIR} -mindepth 1 -delete"
                                   f" && tar -C {VOLUME_DIR} -xf {SNAPSHOT_DIR}/{source.name}"),
                      Mount(spec.volume.name if spec.volume else "", VOLUME_DIR))
        else:
            image = snap.images.get(nodes[0].path, nodes[0].service.image)
            self._command(spec, nodes[0], image, directory, source, spec.command.restore, "restore")  # type: ignore[union-attr]

    # -- kinds -------------------------------------------------------------------------

    def _sqlite_file(self, spec: SnapshotSpec) -> Path:
        sq = spec.sqlite
        assert sq is not None
        base = Path(sq.volume) if sq.volume.startswith("/") else self.runtime.volume_path(sq.volume)
        return base / sq.path.lstrip("/")

    @staticmethod
    def _sqlite_backup(source: Path, target: Path) -> None:
        if not source.exists():
            raise OperationFailed(f"sqlite snapshot: {source} does not exist")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # SQLite's online backup: consistent while writers go on
        finally:
            dst.close()
            src.close()

    @staticmethod
    def _sqlite_restore(snapshot: Path, target: Path) -> None:
        staged = target.with_name(target.name + ".hitless-restore")
        shutil.copyfile(snapshot, staged)
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)
        os.replace(staged, target)

    def _job(self, node: ServiceNode, image: str, directory: Path, what: str, argv: tuple[str, ...], mount: Mount) -> None:
        result = run_job(self.tree, self.runtime, node, image, argv, what, JOB_TIMEOUT,
                         mounts=(mount, Mount(str(directory), SNAPSHOT_DIR)))
        if result.exit_code != 0:
            tail = result.output.strip().splitlines()[-3:]
            raise OperationFailed(f"{what} of {node.path} exited with {result.exit_code}: {' / '.join(tail)}")

    def _command(self, spec: SnapshotSpec, node: ServiceNode, image: str, directory: Path, file: Path,
                 argv: tuple[str, ...], what: str) -> None:
        assert spec.command is not None
        if spec.command.where == "image":
            result = run_job(self.tree, self.runtime, node, image, argv, what, JOB_TIMEOUT,
                             mounts=(Mount(str(directory), SNAPSHOT_DIR),),
                             environment={"HITLESS_SNAPSHOT": f"{SNAPSHOT_DIR}/{file.name}"})
            code, output = result.exit_code, result.output
        else:
            proc = subprocess.run(list(argv), cwd=self.tree.base_dir, capture_output=True, text=True, timeout=JOB_TIMEOUT,
                                  env={**os.environ, "HITLESS_SNAPSHOT": str(file)})
            code, output = proc.returncode, proc.stdout + proc.stderr
        if code != 0:
            tail = output.strip().splitlines()[-3:]
            raise OperationFailed(f"{what} command of {node.path} exited with {code}: {' / '.join(tail)}")

    def _revision(self, node: ServiceNode, image: str) -> str:
        mig = node.service.migrations
        assert mig is not None and mig.status is not None
        result = run_job(self.tree, self.runtime, node, image, mig.status, "status", mig.timeout)
        lines = result.output.strip().splitlines()
        if result.exit_code != 0 or not lines:
            return f"unknown (status exited {result.exit_code})"
        try:  # a JSON status line names its revision; anything else is kept as printed
            return str(json.loads(lines[-1])["revision"])
        except (ValueError, KeyError, TypeError):
            return lines[-1]
