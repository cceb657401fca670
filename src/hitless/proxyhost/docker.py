"""The proxy on Docker: one container per project, `<project>-hitless-proxy`.

Host network (it holds the public ports and dials the instances' bridge addresses), host pid
namespace (the pid it reports is a pid of this machine, as for every other proxy), the
project's `.hitless/` bind-mounted at the same absolute path (the admin socket and the persisted
routing have one path inside and out), restart policy `unless-stopped`: a crash, an OOM kill, a
dockerd restart or a reboot bring it back with no command. (`docker kill` and `docker stop` mark
it stopped by hand: then the next `hitless up`/`upgrade` starts it again.)

It is found by its labels, never remembered: the project, the state dir, the hitless version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
import docker.types

from hitless import __version__
from hitless.proxyhost.base import Hosted
from hitless.runtime.docker import engine_errors

REMOTE_STATE = "/var/lib/hitless-proxy"  # on a host: where its volume holds its socket, routing and token
LABEL_PROJECT = "io.hitless.proxy.project"
LABEL_STATE_DIR = "io.hitless.proxy.state-dir"
LABEL_VERSION = "io.hitless.proxy.version"
RESTART_POLICY = {"Name": "unless-stopped"}


def container_name(project: str) -> str:
    """The current proxy container of a project (retired ones carry a suffix)."""
    return f"{project}-hitless-proxy"


def _epoch(raw: str | None) -> float | None:
    if not raw or raw.startswith("0001-01-01"):
        return None
    head, _, frac = raw.rstrip("Z").partition(".")
    try:
        return dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp() + float(f"0.{frac or 0}")
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class OnHost:
    """The proxy on one of the spec's hosts: its state in a named volume there (REMOTE_STATE),
    its admin API on TCP at `admin` with a token (this machine cannot reach its Unix socket)."""

    host: str
    admin: str  # ADDRESS:PORT it listens on for the admin API
    token: str
    volume: str


class DockerProxyHost:
    """The project's proxy container(s), through the docker SDK: on this machine's engine, with
    `.hitless/` bind-mounted, or on a host's engine (`on_host`)."""

    kind = "docker"

    def __init__(self, client: Any, project: str, state_dir: Path, socket_path: Path,
                 image: Callable[[], str], on_host: OnHost | None = None) -> None:
        self.client = client
        self.project = project
        self.state_dir = state_dir.resolve()
        self.socket_path = socket_path
        self.name = container_name(project)
        self._image = image
        self.on_host = on_host

    def _containers(self) -> list[Any]:
        with engine_errors(f"list the proxy containers of {self.project}"):
            return self.client.containers.list(all=True, ignore_removed=True, filters={"label": [
                f"{LABEL_PROJECT}={self.project}", f"{LABEL_STATE_DIR}={self.state_dir}"]})

    def _current(self) -> Any | None:
        return next((c for c in self._containers() if c.name == self.name), None)

    def inspect(self) -> Hosted:
        """The current container: state, main pid (the proxy's), restarts, version label."""
        found = self._containers()
        current = next((c for c in found if c.name == self.name), None)
        retired = tuple(c.id for c in found if c.name != self.name)
        if current is None:
            return Hosted("docker", None, None, "missing", None, 0, None, None, retired)
        state = current.attrs.get("State") or {}
        status = state.get("Status", "dead")
        pid = int(state.get("Pid") or 0) if status == "running" else 0
        return Hosted("docker", current.id, current.name, "restarting" if state.get("Restarting") else status,
                      pid or None, int(current.attrs.get("RestartCount") or 0), current.labels.get(LABEL_VERSION),
                      _epoch(state.get("StartedAt")), retired)

    def launch(self, handover: bool) -> None:
        """Start the stopped container when it is this version's, else create a new one."""
        image = self._image()
        current = self._current()
        with engine_errors(f"start the proxy container {self.name}"):
            if current is not None:
                if current.status in ("running", "restarting"):
                    return  # Docker brings it back by itself
                if current.labels.get(LABEL_VERSION) == __version__ and current.image.id == self.client.images.get(image).id:
                    current.start()  # stopped by hand (docker kill/stop): its restart policy is on again
                    return
                current.remove(force=True, v=True)
            if self.on_host is None:
                self.state_dir.mkdir(parents=True, exist_ok=True)
                command = ["--admin-socket", str(self.socket_path)]
                mount = docker.types.Mount(target=str(self.state_dir), source=str(self.state_dir), type="bind")
            else:
                command = ["--admin-socket", f"{REMOTE_STATE}/proxy.sock", "--admin-tcp", self.on_host.admin,
                           "--admin-token-file", f"{REMOTE_STATE}/admin-token"]
                mount = docker.types.Mount(target=REMOTE_STATE, source=self.on_host.volume, type="volume")
            container = self.client.containers.create(
                image, command=command, name=self.name,
                labels={LABEL_PROJECT: self.project, LABEL_STATE_DIR: str(self.state_dir), LABEL_VERSION: __version__},
                network_mode="host", pid_mode="host", restart_policy=dict(RESTART_POLICY), stop_signal="SIGTERM",
                mounts=[mount],
            )
            try:
                if self.on_host is not None:
                    container.put_archive(REMOTE_STATE, _one_file_tar("admin-token", self.on_host.token.encode()))
                container.start()
            except docker.errors.APIError:
                container.remove(force=True, v=True)
                raise

    def retire(self) -> str | None:
        """The current container must not come back once it drained and exited: restart policy
        "no", and out of the way of the name."""
        current = self._current()
        if current is None:
            return None
        with engine_errors(f"retire the proxy container {self.name}"):
            current.update(restart_policy={"Name": "no"})
            current.rename(f"{self.name}-retired-{current.id[:12]}")
        return current.id

    def unretire(self, token: str | None) -> None:
        """After a failed hand-over: remove the new container, give the old its name and policy back."""
        with engine_errors(f"restore the proxy container {self.name}"):
            current = self._current()
            if current is not None and current.id != token:
                current.remove(force=True, v=True)
            if token:
                with contextlib.suppress(docker.errors.NotFound):
                    old = self.client.containers.get(token)
                    old.rename(self.name)
                    old.update(restart_policy=dict(RESTART_POLICY))

    def remove_retired(self, wait: float) -> tuple[str, ...]:
        """Remove retired containers that have exited; the ids of those still draining."""
        deadline = time.monotonic() + wait
        while True:
            left = []
            for c in self._containers():
                if c.name == self.name:
                    continue
                if c.status in ("running", "restarting", "paused"):
                    left.append(c.id)
                else:
                    with engine_errors(f"remove the retired proxy container {c.name}"), \
                            contextlib.suppress(docker.errors.NotFound):
                        c.remove(v=True)
            if not left or time.monotonic() >= deadline:
                return tuple(left)
            time.sleep(0.1)

    def stop(self, timeout: float) -> bool:
        """`docker stop` (SIGTERM: the proxy drains; SIGKILL after `timeout`), then remove, every
        proxy container of the project."""
        found = self._containers()
        for c in found:
            with engine_errors(f"stop the proxy container {c.name}"), contextlib.suppress(docker.errors.NotFound):
                if c.status in ("running", "restarting", "paused"):
                    c.stop(timeout=max(1, int(timeout)))
                c.remove(force=True, v=True)
        return bool(found)

    def logs_hint(self) -> str:
        """Where the proxy writes."""
        where = f" on host {self.on_host.host}" if self.on_host else ""
        return f"`docker logs {self.name}`{where}"


def _one_file_tar(name: str, data: bytes) -> bytes:
    """A tar archive of one file, mode 0600 (for put_archive)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
