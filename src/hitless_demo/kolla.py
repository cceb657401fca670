"""The baseline the demo measures hitless against: an upgrade done the way Kolla does it.

Kolla's own setup, as kolla-ansible deploys it: replicas on host networking, HAProxy in front with
kolla-ansible's defaults (`balance roundrobin`, `option redispatch`, `retries 3`, connect 10 s,
client/server 1 min, and `server ... check inter 2000 rise 2 fall 5`: a TCP check every 2 s, out
after 5 failures, back after 2). The upgrade, per replica: `docker stop` with Docker's stop timeout
(10 s: SIGTERM, then SIGKILL), remove, start the new image, wait until it answers its health
check, next replica. HAProxy is not told anything: it notices by its checks, or by retrying.
On the process runtime the same: SIGTERM, SIGKILL after 10 s, start the new version.

Everything started here is stopped here, by instance id and PID.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hitless.engine.desired import service_mounts
from hitless.errors import OperationFailed, RuntimeUnavailable
from hitless.probe.records import StepSpan
from hitless.runtime.base import ContainerOptions, Instance, Labels, LaunchSpec, Mount, Runtime
from hitless.spec.tree import ServiceNode
from hitless_demo.ports import free_port

DOCKER_STOP_TIMEOUT = 10.0  # `docker stop`'s default, which Kolla's restarts go through
HAPROXY_BIN = "haproxy"

HAPROXY_CONFIG = """\
# kolla-ansible's haproxy.cfg defaults and one service, as it renders them (maxconn lowered
# to what a default file-descriptor limit allows)
global
    maxconn 4000
defaults
    mode http
    option redispatch
    retries 3
    timeout http-request 10s
    timeout queue 1m
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout check 10s
    balance roundrobin
    maxconn 4000
listen {name}
    bind {listen}
    http-request del-header X-Forwarded-Proto
{servers}"""

Note = Callable[[str], None]


def ensure_haproxy(note: Note) -> str:
    """The haproxy binary; Debian's package is installed with apt-get when it is missing."""
    found = shutil.which(HAPROXY_BIN) or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RuntimeUnavailable("haproxy is not installed and apt-get is not available to install it")
    note("haproxy is not installed: installing Debian's haproxy package with apt-get (the Kolla-way baseline needs it)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "haproxy"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeUnavailable(f"could not install haproxy: {done.stderr.strip().splitlines()[-1:]}")
    path = shutil.which(HAPROXY_BIN) or "/usr/sbin/haproxy"
    if not os.path.exists(path):
        raise RuntimeUnavailable("haproxy was installed but its binary is missing")
    return path


def answers(host: str, port: int, path: str = "/healthcheck", timeout: float = 1.0) -> bool:
    """True when GET path answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise OperationFailed(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class KollaService:
    """What each replica runs, as kolla-ansible's service definition gives it: environment,
    volumes, command, and the path its health check asks. Its port comes in HITLESS_PORT."""

    name: str
    environment: dict[str, str]
    mounts: tuple[Mount, ...] = ()
    command: tuple[str, ...] | None = None
    health_path: str = "/healthcheck"

    @classmethod
    def of(cls, node: ServiceNode, base_dir: Path) -> KollaService:
        """The service a spec describes (its frontend and update settings are hitless's, not Kolla's)."""
        svc = node.service
        return cls(node.path.replace("/", "-"), dict(svc.environment), service_mounts(node, base_dir),
                   tuple(svc.command) if svc.command else None, svc.health.http or "/")


class KollaWay:
    """Replicas on host networking behind HAProxy, upgraded stop-first the way Kolla does it.

    Without a service, the replicas are netapi's, their data in a directory of the run's own."""

    def __init__(self, runtime: Runtime, service: KollaService | None = None, *, project: str = "hitless-demo-kolla",
                 replicas: int = 2, listen_port: int | None = None, stop_timeout: float = DOCKER_STOP_TIMEOUT,
                 note: Note = lambda _: None):
        self.runtime = runtime
        self.project = project
        self.replicas = replicas
        self.stop_timeout = stop_timeout
        self.note = note
        self.listen_port = listen_port or free_port()
        self.ports = [free_port() for _ in range(replicas)]
        self.workdir = Path(tempfile.mkdtemp(prefix="hitless-kolla-"))
        if service is None:
            (self.workdir / "data").mkdir()
            service = KollaService("netapi", {"NETAPI_BIND": "127.0.0.1", "NETAPI_DB": "/var/lib/netapi/netapi.db"},
                                   (Mount(str(self.workdir / "data"), "/var/lib/netapi"),))
        self.service = service
        self.instances: dict[int, Instance] = {}
        self.generation = 0
        self.haproxy: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Where users reach the service: HAProxy's frontend."""
        return f"http://127.0.0.1:{self.listen_port}"

    # -- set up and tear down ---------------------------------------------------------------------

    def start(self, image: str, bootstrap: tuple[str, ...] | None = None) -> None:
        """Start the replicas of `image` (after its bootstrap container, when given) and HAProxy
        in front of them; return when traffic flows."""
        binary = ensure_haproxy(self.note)
        self.generation += 1
        if bootstrap:
            self._job(image, "bootstrap", bootstrap)
        for slot in range(self.replicas):
            self.instances[slot] = self._launch(slot, image)
        for slot in range(self.replicas):
            self._wait_healthy(slot, image)
        servers = "".join(f"    server {self.project}-{slot} 127.0.0.1:{port} check inter 2000 rise 2 fall 5\n"
                          for slot, port in enumerate(self.ports))
        config = self.workdir / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(name=self.project,
                                                listen=f"127.0.0.1:{self.listen_port}", servers=servers))
        check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise OperationFailed(f"haproxy rejects its config: {(check.stderr or check.stdout).strip()[-300:]}")
        log = open(self.workdir / "haproxy.log", "wb")
        try:
            self.haproxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

        def serving() -> bool:
            if self.haproxy.poll() is not None:  # type: ignore[union-attr]
                tail = (self.workdir / "haproxy.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise OperationFailed(f"haproxy exited with status {self.haproxy.returncode}: {' '.join(tail)}")  # type: ignore[union-attr]
            return answers("127.0.0.1", self.listen_port, self.service.health_path)

        wait_until(serving, 20, "haproxy")

    def close(self) -> None:
        """Stop HAProxy (by its PID) and remove the replicas (by id) and their data."""
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.send_signal(signal.SIGTERM)
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
        for inst in list(self.instances.values()):
            try:
                self.runtime.remove(inst.id)
            except Exception as exc:  # keep cleaning; say what is left
                self.note(f"could not remove {inst.name}: {exc}")
        self.instances.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the upgrade ----------------------------------------------------------------------------

    def _launch_step(self, step: Callable[[str, str, Callable[[], object]], object], slot: int, image: str) -> Instance:
        new = step("start", f"{self.project}/{slot}", functools.partial(self._launch, slot, image))
        assert isinstance(new, Instance)
        return new

    def upgrade(self, image: str, clock: Callable[[], float] = time.time,
                migrations: dict[str, tuple[str, ...]] | None = None) -> list[StepSpan]:
        """Kolla's upgrade of one service: the new image's `expand` migration as a one-shot
        container (Kolla's bootstrap container), then per replica: stop (SIGTERM, SIGKILL at the
        stop timeout), remove, start `image`, wait until it answers its health check; then
        `contract`. Returns the steps, timed with `clock` (epoch seconds)."""
        spans: list[StepSpan] = []
        self.generation += 1
        migrations = migrations or {}

        def step(name: str, target: str, action: Callable[[], object]) -> object:
            began = clock()
            outcome = action()
            spans.append(StepSpan(name, target, began, clock(), "killed" if outcome is True else "done"))
            return outcome

        if "expand" in migrations:
            step("expand", self.project, lambda: self._job(image, "expand", migrations["expand"]))

        for slot in range(self.replicas):
            old = self.instances[slot]
            step("stop", old.name, functools.partial(self._stop, old))
            step("remove", old.name, functools.partial(self.runtime.remove, old.id))
            new = self._launch_step(step, slot, image)
            self.instances[slot] = new
            step("gate", new.name, functools.partial(self._wait_healthy, slot, image))
        if "contract" in migrations:
            step("contract", self.project, lambda: self._job(image, "contract", migrations["contract"]))
        return spans

    def _wait_healthy(self, slot: int, image: str) -> None:
        wait_until(lambda: answers("127.0.0.1", self.ports[slot], self.service.health_path, timeout=5.0), 120,
                   f"{image} replica {slot}")

    def _job(self, image: str, what: str, argv: tuple[str, ...]) -> None:
        """A one-shot instance of `image` on the replicas' data, run to completion."""
        launch = dataclasses.replace(self._launch_spec(0, image), name=f"{self.project}-{what}-g{self.generation}",
                                     command=tuple(argv), one_shot=True)
        inst = self.runtime.start(launch)
        try:
            code = self.runtime.wait_exit(inst.id, 300)
            if code != 0:
                tail = self.runtime.logs(inst.id, tail=5).strip().splitlines()[-1:]
                raise OperationFailed(f"{what} migration with {image} exited {code}: {' '.join(tail)}")
        finally:
            self.runtime.remove(inst.id)

    def _stop(self, inst: Instance) -> bool:
        """`docker stop` (or its process equivalent); True when SIGKILL was needed."""
        if self.runtime.kind == "docker":
            client = self.runtime.client  # type: ignore[attr-defined]
            began = time.monotonic()
            client.api.stop(inst.id, timeout=int(self.stop_timeout))
            return time.monotonic() - began >= self.stop_timeout
        self.runtime.signal(inst.id, "SIGTERM")
        if self.runtime.wait_exit(inst.id, self.stop_timeout) is not None:
            return False
        self.runtime.signal(inst.id, "SIGKILL")
        self.runtime.wait_exit(inst.id, 10)
        return True

    def _launch(self, slot: int, image: str) -> Instance:
        return self.runtime.start(self._launch_spec(slot, image))

    def _launch_spec(self, slot: int, image: str) -> LaunchSpec:
        port = self.ports[slot]
        labels = Labels(project=self.project, set_path="kolla", service=self.service.name, slot=slot,
                        generation=self.generation, config_hash="kolla", image=image, port=port)
        return LaunchSpec(
            name=f"{self.project}-{slot}-g{self.generation}", image=image, command=self.service.command,
            environment={**self.service.environment, "HITLESS_PORT": str(port)},
            mounts=self.service.mounts, network="host", stop_signal="SIGTERM",
            options=ContainerOptions(), labels=labels)
