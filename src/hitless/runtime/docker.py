"""DockerRuntime: instances are containers of the local Docker engine, driven through the SDK.

Observed state is read back from the engine (labels, State, NetworkSettings) on every call;
nothing about running containers is remembered here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from hitless.errors import BadInput, HitlessError, OperationFailed, RuntimeUnavailable
from hitless.runtime.base import LABEL_PREFIX, ExecResult, ForeignContainer, Instance, Labels, LaunchSpec

# Kolla's policy, so services come back after a reboot or a crash. Verified against dockerd
# 20.10 (tests/integration/test_runtime_docker.py): the engine's kill with the container's stop
# signal (and SIGKILL) cancels the restart ("exit on next") and marks the container manually
# stopped, so the containers hitless stops are not restarted, while a crash still is.
RESTART_POLICY = {"Name": "unless-stopped"}
# unless-stopped restarts any exit not caused by a kill, even a clean one: jobs get "no".
ONE_SHOT_RESTART_POLICY = {"Name": "no"}

EXEC_TIMEOUT_EXIT = 124  # the exit status of timeout(1), for a command that ran out of time


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _engine_message(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return _one_line(explanation or exc)


def parse_engine_time(raw: str | None) -> dt.datetime | None:
    """The engine's RFC 3339 time (nanoseconds, "Z") as an aware datetime; None when unset."""
    if not raw or raw.startswith("0001-01-01"):
        return None
    text = raw.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python keeps microseconds: cut the fraction to 6 digits.
    head, sep, rest = text.partition(".")
    if sep:
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _labels_of(attrs: dict[str, Any]) -> Labels | None:
    raw = (attrs.get("Config") or {}).get("Labels") or {}
    try:
        return Labels.from_dict(raw)
    except (ValueError, TypeError):  # hitless-like labels that do not parse: foreign
        return None


def _host_of(attrs: dict[str, Any]) -> str | None:
    if (attrs.get("HostConfig") or {}).get("NetworkMode") == "host":
        return "127.0.0.1"
    settings = attrs.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return str(settings["IPAddress"])
    for network in (settings.get("Networks") or {}).values():
        if network and network.get("IPAddress"):
            return str(network["IPAddress"])
    return None


def instance_from_attrs(attrs: dict[str, Any]) -> Instance | None:
    """An Instance from a container's inspect document; None when it is not a hitless one."""
    labels = _labels_of(attrs)
    if labels is None:
        return None
    state = attrs.get("State") or {}
    status = state.get("Status", "dead")
    exited = status in ("exited", "dead")
    return Instance(
        id=attrs["Id"],
        name=str(attrs.get("Name", "")).lstrip("/"),
        labels=labels,
        state=status,
        started_at=parse_engine_time(state.get("StartedAt")),
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        host=_host_of(attrs) if status == "running" else None,
    )


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Turn SDK and transport errors into one-line HitlessErrors naming `what` failed."""
    try:
        yield
    except HitlessError:
        raise
    except docker.errors.NotFound as exc:
        raise OperationFailed(f"{what}: not found ({_engine_message(exc)})") from None
    except docker.errors.APIError as exc:
        raise OperationFailed(f"{what}: {_engine_message(exc)}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise RuntimeUnavailable(f"{what}: the Docker engine does not answer ({_one_line(exc)})") from None
    except docker.errors.DockerException as exc:
        raise OperationFailed(f"{what}: {_one_line(exc)}") from None


class DockerRuntime:
    """Instances as containers of a Docker engine."""

    kind = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        ping_timeout: int = 5,
        api_timeout: int = 120,
    ) -> None:
        """Connect (to the environment's engine unless a client is given) and ping it.

        Raises RuntimeUnavailable when no engine answers within `ping_timeout` seconds.
        """
        self._owns_client = client is None
        if client is None:
            try:
                # Ping with a short-timeout client first: a hung engine must not block for minutes.
                probe = docker.from_env(timeout=ping_timeout)
                try:
                    probe.ping()
                finally:
                    probe.close()
                client = docker.from_env(timeout=api_timeout)
            except Exception as exc:  # any failure to reach the engine, whatever the layer
                raise RuntimeUnavailable(f"no Docker engine answers: {_one_line(exc)}") from None
        else:
            try:
                client.ping()
            except Exception as exc:
                raise RuntimeUnavailable(f"no Docker engine answers: {_one_line(exc)}") from None
        self.client = client

    # -- errors ---------------------------------------------------------------------------


    def _inspect(self, instance_id: str) -> dict[str, Any] | None:
        """The container's inspect document, or None when it no longer exists."""
        with engine_errors(f"inspect container {instance_id}"):
            try:
                return self.client.api.inspect_container(instance_id)
            except docker.errors.NotFound:
                return None

    # -- Runtime --------------------------------------------------------------------------

    def instances(self, project: str) -> list[Instance]:
        """Every container labelled with this project, running or not (foreign ones skipped)."""
        with engine_errors(f"list containers of project {project!r}"):
            containers = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_PREFIX}project={project}"}, ignore_removed=True
            )
        found = []
        for container in containers:
            instance = instance_from_attrs(container.attrs)
            if instance is not None and instance.labels.project == project:
                found.append(instance)
        return sorted(found, key=lambda i: i.name)

    def get(self, instance_id: str) -> Instance | None:
        """The container as it is now; None when it is gone (or was not started by hitless)."""
        attrs = self._inspect(instance_id)
        return instance_from_attrs(attrs) if attrs is not None else None

    def start(self, launch: LaunchSpec) -> Instance:
        """Create and start a container; never pulls (no registry is used)."""
        if not self.has_image(launch.image):
            raise BadInput(f"image '{launch.image}' is not present (no registry is used: build it first)")
        opts = launch.options
        mounts = [
            docker.types.Mount(
                target=m.target,
                source=m.source,
                type="volume" if m.is_named_volume else "bind",
                read_only=m.read_only,
            )
            for m in launch.mounts
        ]
        kwargs: dict[str, Any] = dict(
            name=launch.name,
            labels={**launch.extra_labels, **launch.labels.to_dict()},
            environment=dict(launch.environment),
            command=list(launch.command) if launch.command is not None else None,
            mounts=mounts,
            network_mode="host" if launch.network == "host" else "bridge",
            stop_signal=launch.stop_signal,
            privileged=opts.privileged,
            cap_add=list(opts.cap_add) or None,
            cap_drop=list(opts.cap_drop) or None,
            pid_mode=opts.pid_mode,
            ipc_mode=opts.ipc_mode,
            user=opts.user,
            working_dir=opts.workdir,
            restart_policy=dict(ONE_SHOT_RESTART_POLICY if launch.one_shot else RESTART_POLICY),
        )
        if launch.entrypoint is not None:
            # The engine reads [] as "not given" and [""] as "none": an empty one drops the image's.
            kwargs["entrypoint"] = list(launch.entrypoint) or [""]
        if opts.init:
            kwargs["init"] = True  # the engine's docker-init (tini) as PID 1
        # create + start rather than containers.run: run() pulls a missing image, and no
        # registry can be reached here.
        with engine_errors(f"create container {launch.name!r} from image '{launch.image}'"):
            try:
                container = self.client.containers.create(launch.image, **kwargs)
            except docker.errors.ImageNotFound:
                raise BadInput(
                    f"image '{launch.image}' is not present (no registry is used: build it first)"
                ) from None
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise OperationFailed(
                        f"create container {launch.name!r}: the name is already in use (remove the old container first)"
                    ) from None
                raise
        try:
            with engine_errors(f"start container {launch.name!r}"):
                container.start()
        except HitlessError:
            # A container that never started would linger as "created": remove it.
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
            raise
        observed = self.get(container.id) if container.id else None
        if observed is None:
            raise OperationFailed(f"container {launch.name!r} vanished right after it started")
        return observed

    def signal(self, instance_id: str, signal_name: str) -> None:
        """The engine's kill with this signal; a no-op when the container no longer runs.

        Note: the engine marks a container it kills (with any signal) as manually stopped, so
        until it is started again, unless-stopped will not restart it after a crash.
        """
        try:
            self.client.api.kill(instance_id, signal=signal_name)
        except docker.errors.NotFound:
            raise OperationFailed(f"signal {signal_name} to container {instance_id}: no such container") from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "not running" in _engine_message(exc).lower():
                return  # exited meanwhile: the race with exit is normal
            raise OperationFailed(f"signal {signal_name} to container {instance_id}: {_engine_message(exc)}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(
                f"signal {signal_name} to container {instance_id}: the Docker engine does not answer ({_one_line(exc)})"
            ) from None

    def wait_exit(self, instance_id: str, timeout: float) -> int | None:
        """The container's exit code, or None when it still runs after `timeout` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            attrs = self._inspect(instance_id)
            if attrs is None:
                raise OperationFailed(f"wait for container {instance_id}: no such container")
            state = attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead", "created"):
                return int(state.get("ExitCode", 0))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                # The SDK's wait timeout is the HTTP read timeout: a timeout raises, it does
                # not return. Wait in slices so that a very long grace is not one request.
                # The stubs say whole seconds; the SDK hands the float to requests, which takes it.
                result = self.client.api.wait(instance_id, timeout=max(0.05, min(remaining, 300.0)))  # type: ignore[arg-type]
                return int(result.get("StatusCode", 0))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                continue  # read timeout (urllib3 may report it either way): look again
            except docker.errors.NotFound:
                raise OperationFailed(f"wait for container {instance_id}: no such container") from None
            except docker.errors.APIError as exc:
                raise OperationFailed(f"wait for container {instance_id}: {_engine_message(exc)}") from None

    def remove(self, instance_id: str) -> None:
        """Force-remove the container and its anonymous volumes; named volumes are kept.

        Removing a container that is already gone does nothing.
        """
        try:
            self.client.api.remove_container(instance_id, force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            message = _engine_message(exc)
            if exc.status_code == 409 and "already in progress" in message:
                return
            raise OperationFailed(f"remove container {instance_id}: {message}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(
                f"remove container {instance_id}: the Docker engine does not answer ({_one_line(exc)})"
            ) from None

    def exec(self, instance_id: str, argv: list[str], timeout: float) -> ExecResult:
        """Run argv in the running container; after `timeout` seconds it is killed (exit 124).

        The SDK has no exec timeout: the output is read in a thread, and on timeout the exec's
        process is killed from the host by its PID (the engine has no exec kill call).
        """
        what = f"exec {argv[:1]} in container {instance_id}"
        with engine_errors(what):
            exec_id = self.client.api.exec_create(instance_id, list(argv), stdout=True, stderr=True)["Id"]
            stream = self.client.api.exec_start(exec_id, stream=True)
        chunks: list[bytes] = []
        failure: list[BaseException] = []

        def read() -> None:
            try:
                for chunk in stream:
                    chunks.append(chunk)
            except BaseException as exc:  # reported below; the thread must not die loudly
                failure.append(exc)

        reader = threading.Thread(target=read, name=f"exec-{exec_id[:12]}", daemon=True)
        reader.start()
        deadline = time.monotonic() + max(0.0, timeout)
        reader.join(max(0.0, deadline - time.monotonic()))
        while True:
            with engine_errors(what):
                info = self.client.api.exec_inspect(exec_id)
            if not info.get("Running"):
                reader.join(2.0)  # the stream ends right after the process
                output = b"".join(chunks).decode(errors="replace")
                return ExecResult(exit_code=int(info.get("ExitCode") or 0), output=output)
            if time.monotonic() >= deadline:
                killed = self._kill_exec(str(info.get("ContainerID") or instance_id), info.get("Pid"))
                reader.join(2.0 if killed else 0.1)
                output = b"".join(chunks).decode(errors="replace")
                fate = "killed" if killed else "left running (its process is not reachable from this host)"
                return ExecResult(
                    exit_code=EXEC_TIMEOUT_EXIT,
                    output=output + f"\n[hitless: {argv[0]!r} {fate} after the {timeout:g} s timeout]\n",
                )
            # The reader stopped early (e.g. the client's read timeout on a silent command):
            # poll the exec until it ends or the deadline passes.
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    @staticmethod
    def _kill_exec(container_id: str, pid: object) -> bool:
        """SIGKILL an exec'd process by its host PID, only when it is in this container's cgroup.

        The check keeps a remote engine's PID (or a PID reused meanwhile) from ever hitting an
        unrelated local process. False when it could not be killed from here.
        """
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            pidfd = os.pidfd_open(pid)  # pin the process before checking who it is
        except OSError:
            return False
        try:
            with open(f"/proc/{pid}/cgroup") as handle:
                if container_id not in handle.read():
                    return False
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return True
        except OSError:
            return False
        finally:
            os.close(pidfd)

    def logs(self, instance_id: str, tail: int = 50) -> str:
        """The last `tail` lines of the container's stdout and stderr."""
        with engine_errors(f"logs of container {instance_id}"):
            raw = self.client.api.logs(instance_id, stdout=True, stderr=True, tail=max(0, tail))
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def volume_path(self, name: str) -> Path:
        """The volume's mountpoint on this host (created when missing; local driver only)."""
        with engine_errors(f"look up volume {name!r}"):
            try:
                volume = self.client.volumes.get(name)
            except docker.errors.NotFound:
                volume = self.client.volumes.create(name)
        if volume.attrs.get("Driver") != "local":
            raise OperationFailed(f"volume {name!r} uses driver {volume.attrs.get('Driver')!r}: "
                                  "only local volumes have a host path")
        return Path(volume.attrs["Mountpoint"])

    def foreign(self) -> list[ForeignContainer]:
        """Running containers without hitless's labels, with their published TCP ports (one call:
        the engine's list, not an inspect of each)."""
        with engine_errors("list running containers"):
            listed = self.client.api.containers(filters={"status": "running"})
        found = []
        for entry in listed:
            labels = dict(entry.get("Labels") or {})
            # hitless's instances and jobs, and its proxy (an image's own io.hitless.* labels do not count)
            if f"{LABEL_PREFIX}project" in labels or f"{LABEL_PREFIX}proxy.project" in labels:
                continue
            ports = sorted({(str(p.get("IP") or "0.0.0.0"), int(p["PublicPort"])) for p in entry.get("Ports") or []
                            if p.get("PublicPort") and p.get("Type", "tcp") == "tcp"})
            names = entry.get("Names") or [entry["Id"][:12]]
            found.append(ForeignContainer(id=entry["Id"], name=str(names[0]).lstrip("/"), image=str(entry.get("Image", "")),
                                          labels=labels, published=tuple(ports)))
        return sorted(found, key=lambda c: c.name)

    def has_image(self, image: str) -> bool:
        """True when the engine holds the image locally."""
        try:
            self.client.api.inspect_image(image)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 400:  # an invalid reference cannot be present
                return False
            raise OperationFailed(f"look up image '{image}': {_engine_message(exc)}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(f"look up image '{image}': the Docker engine does not answer ({_one_line(exc)})") from None

    def close(self) -> None:
        """Close the SDK client when this runtime created it."""
        if self._owns_client:
            self.client.close()
