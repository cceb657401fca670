"""Instances on several hosts: one Docker engine per host of the spec's `hosts:`, and this
machine's own engine for what is placed on no host (and where images are built).

Observed state is read from every engine (the engine a container is found on is its host);
an instance id is `HOST/CONTAINER-ID` for a host's container, the bare id for a local one.
Images reach a host without a registry: when the host lacks the image, or holds another image
under the same tag, it is streamed from this machine's engine (`save` → `load`), checked by id.
An engine that does not answer is one line naming its host (RuntimeUnavailable, exit 3): the
run stops there and `hitless resume` carries on once it answers again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hitless.errors import BadInput, OperationFailed, RuntimeUnavailable
from hitless.runtime.base import ExecResult, ForeignContainer, Instance, LaunchSpec
from hitless.runtime.docker import DockerRuntime, engine_errors
from hitless.spec.model import Host

T = TypeVar("T")

HOST_PING_TIMEOUT = 10  # seconds a host's engine has to answer a ping
# and any other call (image loads get their own, longer, client); HITLESS_HOST_TIMEOUT overrides
# The SDK times its calls out in whole seconds.
HOST_API_TIMEOUT = math.ceil(float(os.environ.get("HITLESS_HOST_TIMEOUT", "30")))
IMAGE_LOAD_TIMEOUT = 1800

Note = Callable[[str], None]


def connect(name: str, host: Host, timeout: int = HOST_API_TIMEOUT) -> DockerRuntime:
    """A DockerRuntime on a host's engine; RuntimeUnavailable naming the host when it does not answer."""
    import docker

    try:
        # ssh:// goes through the ssh binary (its config, keys and agent), as `docker -H ssh://` does.
        client = docker.DockerClient(base_url=host.engine, timeout=timeout,
                                     use_ssh_client=host.engine.startswith("ssh://"))
        client.api.timeout = HOST_PING_TIMEOUT
        client.ping()
        client.api.timeout = timeout
    except Exception as exc:  # any failure to reach the engine, whatever the layer
        raise RuntimeUnavailable(f"host {name}: the Docker engine at {host.engine} does not answer "
                                 f"({' '.join(str(exc).split())[:300]})") from None
    return DockerRuntime(client)


class HostsRuntime:
    """The Runtime over this machine's engine and each host's; engines are reached when first needed."""

    kind = "docker"

    def __init__(self, local: DockerRuntime, hosts: Mapping[str, Host], note: Note = lambda _: None):
        self.local = local
        self.client = local.client  # images are built, and the local proxy runs, on this machine
        self.hosts = dict(hosts)
        self.note = note
        self._engines: dict[str, DockerRuntime] = {}
        self._shipping = threading.Lock()

    def engine(self, name: str) -> DockerRuntime:
        """The host's engine (connected once)."""
        if name not in self.hosts:
            raise BadInput(f"no host {name!r} in the spec's hosts")
        if name not in self._engines:
            self._engines[name] = connect(name, self.hosts[name])
        return self._engines[name]

    def _route(self, instance_id: str) -> tuple[str | None, str]:
        host, sep, container = instance_id.partition("/")
        return (host, container) if sep else (None, instance_id)

    def _on(self, host: str | None) -> DockerRuntime:
        return self.local if host is None else self.engine(host)

    def _call(self, host: str | None, action: Callable[[DockerRuntime], T]) -> T:
        """Run one call on a host's engine; its failure to answer names the host."""
        try:
            return action(self._on(host))
        except RuntimeUnavailable as exc:
            if host is None or str(exc).startswith(f"host {host}:"):
                raise
            raise RuntimeUnavailable(f"host {host}: {exc}") from None

    def _placed(self, host: str | None, inst: Instance) -> Instance:
        """An instance as seen from this machine: its host's name, id and address."""
        if host is None:
            return inst
        address = self.hosts[host].address if inst.host is not None else None
        return dataclasses.replace(inst, id=f"{host}/{inst.id}", host=address, host_name=host)

    # -- Runtime ---------------------------------------------------------------------------

    def instances(self, project: str) -> list[Instance]:
        """Every instance of the project on this machine and on every host, by name."""
        names: list[str | None] = [None, *self.hosts]
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            found = list(pool.map(lambda h: [self._placed(h, i) for i in self._call(h, lambda r: r.instances(project))], names))
        return sorted((i for batch in found for i in batch), key=lambda i: i.name)

    def get(self, instance_id: str) -> Instance | None:
        host, container = self._route(instance_id)
        found = self._call(host, lambda r: r.get(container))
        return None if found is None else self._placed(host, found)

    def start(self, launch: LaunchSpec) -> Instance:
        """Start on the launch's host, the image shipped there first when it lacks it."""
        if launch.host is not None:
            self.ship_image(launch.image, launch.host)
        return self._placed(launch.host, self._call(launch.host, lambda r: r.start(launch)))

    def signal(self, instance_id: str, signal_name: str) -> None:
        host, container = self._route(instance_id)
        self._call(host, lambda r: r.signal(container, signal_name))

    def wait_exit(self, instance_id: str, timeout: float) -> int | None:
        host, container = self._route(instance_id)
        return self._call(host, lambda r: r.wait_exit(container, timeout))

    def remove(self, instance_id: str) -> None:
        host, container = self._route(instance_id)
        self._call(host, lambda r: r.remove(container))

    def exec(self, instance_id: str, argv: list[str], timeout: float) -> ExecResult:
        host, container = self._route(instance_id)
        return self._call(host, lambda r: r.exec(container, argv, timeout))

    def logs(self, instance_id: str, tail: int = 50) -> str:
        host, container = self._route(instance_id)
        return self._call(host, lambda r: r.logs(container, tail))

    def has_image(self, image: str) -> bool:
        """True when this machine holds the image (it is shipped to hosts as they need it)."""
        return self.local.has_image(image)

    def volume_path(self, name: str) -> Path:
        """A named volume of this machine's engine (a host's volumes are not reachable from here)."""
        return self.local.volume_path(name)

    def foreign(self) -> list[ForeignContainer]:
        """What runs on this machine's engine without hitless's labels (a compose project runs here)."""
        return self.local.foreign()

    def close(self) -> None:
        for engine in self._engines.values():
            engine.client.close()
        self._engines.clear()
        self.local.close()

    # -- images ----------------------------------------------------------------------------

    def ship_image(self, image: str, host: str) -> bool:
        """The host holds `image` as this machine has it (same id); streamed there when not.
        True when it was shipped."""
        import docker.errors

        with engine_errors(f"look up image '{image}' here"):
            try:
                wanted = self.local.client.images.get(image)
            except docker.errors.ImageNotFound:
                wanted = None
        with self._shipping:  # one transfer at a time: parallel starts on a host share it
            there = self._image_id(host, image)
            if wanted is None and there is not None:
                return False  # only there: pulled from a registry by its operator
            if wanted is None:
                raise BadInput(f"image '{image}' is on neither this machine nor host {host} (build it here first)")
            if there == wanted.id:
                return False
            self.note(f"shipping image {image} to host {host}")
            loader = connect(host, self.hosts[host], timeout=IMAGE_LOAD_TIMEOUT)
            try:
                with engine_errors(f"ship image '{image}' to host {host}"):
                    # save() streams chunks and load() posts them as they come (requests sends an
                    # iterator chunked), so an image never sits whole in memory; the stubs say bytes.
                    loader.client.images.load(wanted.save(named=True))  # type: ignore[arg-type]
            finally:
                loader.client.close()
            if self._image_id(host, image) != wanted.id:
                raise OperationFailed(f"image '{image}' was loaded on host {host} but its id differs from this machine's")
        return True

    def _image_id(self, host: str, image: str) -> str | None:
        import docker.errors

        def look(runtime: DockerRuntime) -> str | None:
            with engine_errors(f"look up image '{image}'"):
                try:
                    return str(runtime.client.images.get(image).id)
                except docker.errors.ImageNotFound:
                    return None

        return self._call(host, look)
