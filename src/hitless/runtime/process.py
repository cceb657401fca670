"""ProcessRuntime: the container lifecycle as local processes, for machines with no Docker.

Each instance lives in `state_dir/instances/<name>/`: `labels.json` and `launch.json` (written
atomically), `pid`, `output.log` and `exit_code` (written by the supervisor shim, see
process_shim.py). Observed state is read back from these files and the live process table on
every call: nothing is remembered in this object, so a fresh ProcessRuntime on the same state
dir sees what an earlier one started, and the instances outlive the command that started them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hitless.errors import BadInput, OperationFailed
from hitless.runtime import process_shim
from hitless.runtime.base import ExecResult, ForeignContainer, Instance, InstanceState, Labels, LaunchSpec, Mount

SHIM = Path(process_shim.__file__).resolve()
EXEC_TIMEOUT_EXIT = 124  # the exit status of timeout(1)
UNKNOWN_EXIT = 255  # what Docker reports for a container whose end it did not see
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # Docker's container name rule
# What an instance inherits from the host environment; everything else comes from the image
# and the launch, as in a container.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


@dataclasses.dataclass(frozen=True)
class ProcessImage:
    """What an image reference means to the process runtime: a program and its defaults."""

    entrypoint: tuple[str, ...]
    command: tuple[str, ...] = ()  # default arguments, replaced by a launch's command
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    workdir: str | None = None


def rewrite_paths(text: str, mapping: Mapping[str, str]) -> str:
    """Rewrite each occurrence of a mount target, as a path prefix, to its host directory.

    "/data" matches in "/data", "/data/x.db", "--db=/data/x" and "sqlite:////data/x.db", but not
    in "/database", "/srv/data" or "/data.db". The longest target wins (nested mounts).
    """
    targets = sorted((t for t in mapping if t != "/"), key=len, reverse=True)
    if not targets:
        return text
    pattern = re.compile(
        r"(?<![\w.~-])(" + "|".join(re.escape(t) for t in targets) + r")(?![\w.~-])"
    )
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def _signal_number(name: str) -> signal.Signals:
    text = name.strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise BadInput(f"unknown signal {name!r}") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_process(pid: object, start_time: object, boot: object) -> bool:
    """True when `pid` is alive and is the process that had this start time in this boot."""
    if not isinstance(pid, int) or pid <= 0 or start_time is None:
        return False
    if boot and boot != process_shim.boot_id():
        return False
    stat = process_shim.proc_stat(pid)
    return stat is not None and stat[0] not in "ZX" and stat[2] == start_time


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (pins the process: signals through it cannot hit a reused PID)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _send(pid: object, start_time: object, boot: object, sig: int, *, group: bool = False) -> bool:
    """Signal our process (or its group) when it still is ours; False when it is not alive."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    fd = _pidfd(pid)
    try:
        # Verify identity after pinning it, so a PID reused meanwhile fails the check.
        if not _same_process(pid, start_time, boot):
            return False
        try:
            if group:
                os.killpg(pid, sig)
            elif fd is not None:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _tail(path: Path, lines: int) -> str:
    if lines <= 0:
        return ""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(65536, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    kept = data.splitlines(keepends=True)[-lines:]
    return b"".join(kept).decode(errors="replace")


class ProcessRuntime:
    """Instances as local processes under a supervisor shim, on the host's network."""

    kind = "process"

    def __init__(self, state_dir: Path, images: Mapping[str, ProcessImage]) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.images = dict(images)
        self._instances = self.state_dir / "instances"
        self._volumes = self.state_dir / "volumes"

    # -- files ----------------------------------------------------------------------------

    def _dir(self, instance_id: str) -> Path | None:
        if not _NAME.match(instance_id):
            return None
        path = self._instances / instance_id
        return path if path.is_dir() else None

    def _need_dir(self, instance_id: str, what: str) -> Path:
        path = self._dir(instance_id)
        if path is None:
            raise OperationFailed(f"{what} instance {instance_id!r}: no such instance")
        return path

    def _host_dirs(self, mounts: Iterable[Mount]) -> dict[str, str]:
        """Mount target -> host directory (named volumes are created under state_dir/volumes)."""
        mapping: dict[str, str] = {}
        for mount in mounts:
            if mount.is_named_volume:
                if not _NAME.match(mount.source):
                    raise BadInput(f"volume name {mount.source!r} is not a valid name")
                host = self._volumes / mount.source
                host.mkdir(parents=True, exist_ok=True)
            else:
                host = Path(mount.source)
            target = mount.target.rstrip("/")
            if not target.startswith("/"):
                raise BadInput(f"mount target {mount.target!r} must be an absolute path")
            mapping[target] = str(host)
        return mapping

    def _observe(self, instance_id: str, directory: Path) -> Instance | None:
        raw_labels = _read_json(directory / "labels.json")
        if raw_labels is None:
            return None  # being created, or not ours
        try:
            labels = Labels.from_dict({str(k): str(v) for k, v in raw_labels.items()})
        except (TypeError, ValueError):
            return None
        if labels is None:
            return None
        record = _read_json(directory / "pid")
        started_at = None
        state: InstanceState
        exit_code = self._exit_code(directory)
        if record is not None:
            with contextlib.suppress(TypeError, ValueError):
                started_at = dt.datetime.fromisoformat(str(record.get("started_at")))
        if exit_code is not None:
            state = "exited"
        elif record is None:
            state = "created"
        elif _same_process(record.get("pid"), record.get("start_time"), record.get("boot_id")):
            state = "running"
        else:
            # The shim writes exit_code before it exits: look once more, then it died unseen
            # (SIGKILL, reboot) and its PID, if alive, belongs to someone else.
            exit_code = self._exit_code(directory)
            state, exit_code = ("exited", exit_code) if exit_code is not None else ("dead", UNKNOWN_EXIT)
        return Instance(
            id=instance_id,
            name=instance_id,
            labels=labels,
            state=state,
            started_at=started_at,
            exit_code=exit_code,
            host="127.0.0.1" if state == "running" else None,
        )

    @staticmethod
    def _exit_code(directory: Path) -> int | None:
        try:
            return int((directory / "exit_code").read_text().strip())
        except (OSError, ValueError):
            return None

    # -- Runtime --------------------------------------------------------------------------

    def instances(self, project: str) -> list[Instance]:
        """Every instance in the state dir labelled with this project, running or not."""
        found = []
        try:
            entries = sorted(self._instances.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.is_dir() and _NAME.match(entry.name):
                instance = self._observe(entry.name, entry)
                if instance is not None and instance.labels.project == project:
                    found.append(instance)
        return found

    def get(self, instance_id: str) -> Instance | None:
        """The instance as it is now; None when it does not exist."""
        directory = self._dir(instance_id)
        return self._observe(instance_id, directory) if directory is not None else None

    def start(self, launch: LaunchSpec) -> Instance:
        """Start the image's program under a detached supervisor shim."""
        image = self.images.get(launch.image)
        if image is None:
            known = ", ".join(sorted(self.images)) or "none"
            raise BadInput(f"image '{launch.image}' is not known to the process runtime (known: {known})")
        if not _NAME.match(launch.name):
            raise BadInput(f"instance name {launch.name!r} is not valid (letters, digits, '_', '.', '-')")
        mapping = self._host_dirs(launch.mounts)
        # As in Docker: an entrypoint of the launch replaces the image's and drops its default command.
        entrypoint = launch.entrypoint if launch.entrypoint is not None else image.entrypoint
        default = image.command if launch.entrypoint is None else ()
        command = launch.command if launch.command is not None else default
        argv = [rewrite_paths(a, mapping) for a in (*entrypoint, *command)]
        if not argv:
            raise BadInput(f"image '{launch.image}' has no entrypoint and the launch no command")
        environment = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        environment.update(image.environment)
        environment.update(launch.environment)
        environment = {k: rewrite_paths(str(v), mapping) for k, v in environment.items()}
        directory = self._instances / launch.name
        workdir = launch.options.workdir or image.workdir
        cwd = Path(rewrite_paths(workdir, mapping)) if workdir else directory

        self._instances.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:
            raise OperationFailed(
                f"start instance {launch.name!r}: the name is already in use (remove the old instance first)"
            ) from None
        try:
            record = {
                "name": launch.name,
                "image": launch.image,
                "argv": argv,
                "environment": environment,
                "cwd": str(cwd),
                "stop_signal": launch.stop_signal,
                "init": launch.options.init,
                "labels": launch.extra_labels,
                "network": "host",
                "mounts": [
                    {"source": m.source, "target": m.target, "host": mapping[m.target.rstrip("/")], "read_only": m.read_only}
                    for m in launch.mounts
                ],
            }
            process_shim.write_atomic(str(directory / "launch.json"), json.dumps(record, indent=1) + "\n")
            process_shim.write_atomic(str(directory / "labels.json"), json.dumps(launch.labels.to_dict(), indent=1) + "\n")
            cwd.mkdir(parents=True, exist_ok=True)  # Docker creates a missing workdir too
            shim = subprocess.Popen(
                [sys.executable, "-I", str(SHIM), "--dir", str(directory), *(["--init"] if launch.options.init else []),
                 "--", *argv],
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
            try:
                _, err = shim.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                shim.kill()
                shim.communicate()
                raise OperationFailed(f"start instance {launch.name!r}: the process shim did not answer in 30 s") from None
            if shim.returncode != 0:
                reason = " ".join(err.decode(errors="replace").split()) or f"shim exit status {shim.returncode}"
                raise OperationFailed(f"start instance {launch.name!r}: {reason}")
        except OSError as exc:
            self.remove(launch.name)
            raise OperationFailed(f"start instance {launch.name!r}: {exc}") from None
        except BaseException:
            self.remove(launch.name)  # like a container that never started: leave nothing
            raise
        observed = self.get(launch.name)
        if observed is None:
            raise OperationFailed(f"instance {launch.name!r} vanished right after it started")
        return observed

    def signal(self, instance_id: str, signal_name: str) -> None:
        """Send a signal to the instance (the shim forwards it); a no-op when it does not run.

        SIGKILL and SIGSTOP cannot be caught and forwarded: they go to the service itself (the
        shim then records 137 for SIGKILL, as Docker does).
        """
        sig = _signal_number(signal_name)
        directory = self._need_dir(instance_id, f"signal {sig.name} to")
        record = _read_json(directory / "pid")
        if record is None or self._exit_code(directory) is not None:
            return
        boot = record.get("boot_id")
        if sig in process_shim.UNCATCHABLE:
            if _send(record.get("service_pid"), record.get("service_start_time"), boot, sig):
                return
            if sig == signal.SIGKILL:  # no service to find: kill the whole group
                _send(record.get("pid"), record.get("start_time"), boot, sig, group=True)
            return
        _send(record.get("pid"), record.get("start_time"), boot, sig)

    def wait_exit(self, instance_id: str, timeout: float) -> int | None:
        """The instance's exit code, or None when it still runs after `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            directory = self._need_dir(instance_id, "wait for")
            instance = self._observe(instance_id, directory)
            if instance is not None and instance.state in ("exited", "dead"):
                return instance.exit_code
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            record = _read_json(directory / "pid") or {}
            self._wait_for_pid(record.get("pid"), min(remaining, 1.0))

    @staticmethod
    def _wait_for_pid(pid: object, timeout: float) -> None:
        """Sleep up to `timeout`, waking early when `pid` exits (pidfd), else in short steps."""
        fd = _pidfd(pid) if isinstance(pid, int) and pid > 0 else None
        if fd is None:
            time.sleep(min(timeout, 0.05))
            return
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(max(0, int(timeout * 1000)))
        finally:
            os.close(fd)

    def remove(self, instance_id: str) -> None:
        """Kill the instance if it runs (SIGKILL to its process group), then delete its directory.

        Named volumes (state_dir/volumes) are kept. Removing an unknown instance does nothing.
        """
        directory = self._dir(instance_id)
        if directory is None:
            return
        record = _read_json(directory / "pid")
        if record is not None:
            pid, start, boot = record.get("pid"), record.get("start_time"), record.get("boot_id")
            _send(record.get("service_pid"), record.get("service_start_time"), boot, signal.SIGKILL)
            _send(pid, start, boot, signal.SIGKILL, group=True)
            deadline = time.monotonic() + 10
            while _same_process(pid, start, boot) and time.monotonic() < deadline:
                self._wait_for_pid(pid, 0.2)
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            raise OperationFailed(f"remove instance {instance_id!r}: could not delete {directory}")

    def exec(self, instance_id: str, argv: list[str], timeout: float) -> ExecResult:
        """Run argv on the host with the instance's environment and cwd; killed after `timeout` (124)."""
        directory = self._need_dir(instance_id, "exec in")
        instance = self._observe(instance_id, directory)
        if instance is None or not instance.running:
            raise OperationFailed(f"exec in instance {instance_id!r}: it is not running")
        launch = _read_json(directory / "launch.json") or {}
        mapping = {str(m["target"]).rstrip("/"): str(m["host"]) for m in launch.get("mounts", [])}
        command = [rewrite_paths(a, mapping) for a in argv]
        try:
            process = subprocess.Popen(
                command,
                cwd=launch.get("cwd") or directory,
                env=launch.get("environment") or {},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a timeout kills its children too
            )
        except OSError as exc:
            code = 126 if isinstance(exc, PermissionError) else 127
            return ExecResult(exit_code=code, output=f"cannot run {argv[0]!r}: {exc.strerror or exc}\n")
        try:
            output, _ = process.communicate(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            text = output.decode(errors="replace")
            return ExecResult(
                exit_code=EXEC_TIMEOUT_EXIT,
                output=text + f"\n[hitless: {argv[0]!r} killed after the {timeout:g} s timeout]\n",
            )
        return ExecResult(exit_code=process_shim.exit_status(process.returncode), output=output.decode(errors="replace"))

    def logs(self, instance_id: str, tail: int = 50) -> str:
        """The last `tail` lines of the instance's output.log."""
        directory = self._need_dir(instance_id, "logs of")
        return _tail(directory / "output.log", tail)

    def volume_path(self, name: str) -> Path:
        """The directory standing for a named volume (created when missing)."""
        if not _NAME.match(name):
            raise BadInput(f"volume name {name!r} is not a valid name")
        path = self._volumes / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def foreign(self) -> list[ForeignContainer]:
        """Local processes hold no container of anyone else's."""
        return []

    def has_image(self, image: str) -> bool:
        """True when the image reference is in the mapping this runtime was given."""
        return image in self.images

    def close(self) -> None:
        """Nothing to release: every call reads the state dir afresh."""
