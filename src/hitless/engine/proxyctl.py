"""Driving the project's proxy: keep it running (supervised by its host, at the installed
hitless version), mirror the spec's frontends, keep its pools matching what runs, and move
instances in and out of them. Every call goes through the proxy's admin client or its host."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hitless import __version__
from hitless.engine.health import check_once
from hitless.engine.reconcile import Member, PoolAction, PoolDiff, ProxiedBackend, pool_diff, pools_of
from hitless.engine.steps import Emit, Event
from hitless.errors import HitlessError, OperationFailed
from hitless.proxy.admin.client import AdminClient, ProxyError, ProxyUnavailable, WaitTimeout
from hitless.proxy.config import FrontendConfig, HealthCheck, HoldLimits, Timeouts
from hitless.proxyhost.base import Hosted
from hitless.proxyhost.select import host_for, proxy_on_host
from hitless.runtime.base import Instance, Runtime
from hitless.spec.tree import DesiredTree, ServiceNode

START_TIMEOUT = 15.0
BIND_POLL = 0.005  # seconds between two tries at an address another process is letting go of
RETIRED_WAIT = 5.0  # seconds a hand-over waits for the old proxy to exit before leaving it to drain


def frontend_name(service_path: str) -> str:
    """The proxy frontend of a service: its path with dots (`neutron.server`)."""
    return service_path.replace("/", ".")


def frontend_config(node: ServiceNode) -> FrontendConfig:
    """The proxy's view of a service's `frontend:` section and health check."""
    svc = node.service
    assert svc.frontend is not None
    health = svc.health
    hold = svc.frontend.hold
    return FrontendConfig(
        name=frontend_name(node.path),
        listen=svc.frontend.listen,
        # The proxy cannot run a command inside an instance; it connects instead.
        health=HealthCheck(path=health.http, interval=health.interval, timeout=health.timeout,
                           rise=health.rise, fall=health.fall),
        hold=HoldLimits(max_requests=hold.max_requests, max_bytes=hold.max_bytes, max_wait=hold.max_wait,
                        release_concurrency=hold.release_concurrency),
        timeouts=Timeouts(**svc.frontend.timeouts.model_dump()),
    )


def backend_address(instance: Instance) -> str:
    """host:port of an instance, as the proxy dials it."""
    if instance.address is None:
        raise OperationFailed(f"{instance.name} has no address (state {instance.state})")
    host, port = instance.address
    return f"{host}:{port}"


def fronted(tree: DesiredTree) -> list[ServiceNode]:
    """The services of the spec that have a frontend, in upgrade order."""
    return [n for n in tree.services() if n.service.frontend is not None]


def handover_reasons(status: dict[str, Any], hosted: Hosted, installed: str = __version__) -> list[str]:
    """Why the proxy answering must hand over to a new one: another hitless version, or no
    host supervises it. Empty when it is the one it should be."""
    reasons = []
    if status.get("version") != installed:
        reasons.append(f"it runs hitless {status.get('version')}, {installed} is installed")
    if hosted.main_pid is None or hosted.main_pid != status.get("pid"):
        reasons.append(f"no {hosted.kind} host supervises it")
    return reasons


def observe_members(tree: DesiredTree, runtime: Runtime) -> list[Member]:
    """Every running instance of a service with a frontend, by its labels (whatever its image),
    health-checked now with its service's check."""
    nodes = {n.path: n for n in fronted(tree)}
    running = [i for i in runtime.instances(tree.project) if i.running and i.address and i.labels.service_path in nodes]

    def member(inst: Instance) -> Member:
        ok = check_once(runtime, inst, nodes[inst.labels.service_path].service.health).ok
        return Member(frontend_name(inst.labels.service_path), inst.name, backend_address(inst), ok)

    if not running:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(running))) as pool:
        return list(pool.map(member, running))


def _quiet(_: Event) -> None:
    pass


class ProxyControl:
    """The project's proxy, as the engine drives it."""

    def __init__(self, tree: DesiredTree, runtime: Runtime, emit: Emit = _quiet):
        self.socket_path = (tree.base_dir / tree.spec.proxy.admin_socket).resolve()
        self.local = tree.spec.proxy.host is None
        if self.local:
            self.client = AdminClient(str(self.socket_path))
            self.host = host_for(runtime, tree.project, self.socket_path)
            self.where = str(self.socket_path)
        else:
            self.client, self.host, self.where = proxy_on_host(runtime, tree, self.socket_path)
        self.emit = emit

    # -- the process ------------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        """The proxy's own status (pid, version, workers, frontends), or None when none answers."""
        try:
            return self.client.status()
        except ProxyUnavailable:
            return None

    def ensure_running(self) -> int:
        """A proxy answers, supervised by the runtime's host and at the installed version:
        started when none answers, handed over (no connection refused) when the one answering is
        another version or unsupervised. Its pid."""
        status = self.status()
        if status is None:
            hosted = self.host.inspect()
            self.host.launch(handover=False)
            pid = self._wait(lambda s: True)
            if hosted.state == "missing":
                self.emit(Event("info", f"proxy started (pid {pid}, supervised by its {self.host.kind} host)"))
            else:
                was = "was restarting" if hosted.alive else f"was not running (its host: {hosted.state})"
                self.emit(Event("warning", f"the proxy {was}: it answers now (pid {pid}, {self.host.kind} host)"))
            return pid
        pid = int(status["pid"])
        reasons = handover_reasons(status, self.host.inspect())
        if not reasons:
            self.host.remove_retired(0)
            return pid
        paused = [f.get("name") for f in status.get("frontends", []) if f.get("paused")]
        if paused:
            self.emit(Event("warning", f"the proxy (pid {pid}) should be replaced ({'; '.join(reasons)}) but "
                                       f"{', '.join(paused)} is paused: the hand-over waits for the next command"))
            return pid
        token = self.host.retire()
        try:
            self.host.launch(handover=True)
            new = self._wait(lambda s: int(s["pid"]) != pid and self.host.inspect().main_pid == int(s["pid"]))
        except HitlessError as exc:
            self.host.unretire(token)
            self.emit(Event("error", f"the proxy (pid {pid}) could not hand over ({exc}); it serves on"))
            return pid
        left = self.host.remove_retired(RETIRED_WAIT)
        tail = f"; the old one drains its {len(left)} container(s) and is removed later" if left else ""
        self.emit(Event("info", f"proxy handed over from pid {pid} to pid {new} ({'; '.join(reasons)}){tail}"))
        return new

    def _wait(self, accept) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and accept(status):
                return int(status["pid"])
            time.sleep(0.05)
        raise OperationFailed(f"the proxy did not answer on {self.where} within {START_TIMEOUT:.0f}s; "
                              f"see {self.host.logs_hint()}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the proxy gracefully (in-flight requests finish) and its host; True when one ran."""
        stopped = self.host.stop(timeout)
        status = self.status()
        if status is None or not self.local:  # a host's pids are not this machine's to signal
            return stopped
        # Answering still: a proxy no host of this runtime runs (another runtime's, or an older hitless's).
        pid = int(status["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # our child when this process started it: reap it
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        raise OperationFailed(f"the proxy (pid {pid}) did not exit within {timeout:.0f}s of SIGTERM")

    # -- reconciliation ---------------------------------------------------------------------

    def pools(self) -> dict[str, dict[str, ProxiedBackend]]:
        """Every frontend the proxy has, with its backends by id."""
        return pools_of(self.client.frontends())

    def drift(self, tree: DesiredTree, runtime: Runtime) -> PoolDiff:
        """How the proxy's frontends and pools differ from the spec's frontends and what runs."""
        return pool_diff([frontend_name(n.path) for n in fronted(tree)], self.pools(), observe_members(tree, runtime))

    def reconcile(self, tree: DesiredTree, runtime: Runtime) -> PoolDiff:
        """The proxy runs (supervised, this version), the spec's frontends exist, and each pool
        holds the running, healthy instances of its service and nothing else. What was changed."""
        self.ensure_running()
        diff = self.drift(tree, runtime)
        configs = {frontend_name(n.path): n for n in fronted(tree)}
        for action in diff.actions:
            self._apply(action, configs)
            self.emit(Event("info", f"proxy: {action.describe()}", fields={"proxy_action": action.to_dict()}))
        for m in diff.unhealthy:
            self.emit(Event("warning", f"proxy: {m.backend_id} runs but is not healthy: not added to {m.frontend}"))
        return diff

    def _apply(self, action: PoolAction, configs: dict[str, ServiceNode]) -> None:
        if action.kind == "add-frontend":
            self.client.add_frontend(frontend_config(configs[action.frontend]))
        elif action.kind == "remove":
            self.forget(action.frontend, action.backend_id)
        else:
            if action.kind == "readdress":
                self.forget(action.frontend, action.backend_id)
            # Healthy by the engine's check just now: it serves at once.
            self.client.add_backend(action.frontend, action.backend_id, action.address, ready=True)

    # -- frontends and backends ------------------------------------------------------------

    def ensure_frontend(self, node: ServiceNode) -> str:
        """The service's frontend exists on the proxy (added if not); its name."""
        config = frontend_config(node)
        existing = {f["name"]: f for f in self.client.frontends()}
        if config.name not in existing:
            self.client.add_frontend(config)
        return config.name

    def bind_when_free(self, node: ServiceNode, until: float) -> float:
        """Add the service's frontend the moment its address is free (another process is letting
        it go), trying every few milliseconds until the monotonic time `until`; when it bound.
        Until backends are added, the frontend holds what arrives."""
        config = frontend_config(node)
        while True:
            try:
                self.client.add_frontend(config)
                return time.monotonic()
            except ProxyError as exc:
                if exc.status == 409 and "exists" in exc.message:
                    return time.monotonic()  # a run cut short bound it already
                if exc.status != 409 or "cannot listen" not in exc.message or time.monotonic() > until:
                    raise
            time.sleep(BIND_POLL)

    def serve_now(self, frontend: str, instances: list[Instance]) -> None:
        """Put instances that passed their gate in the pool, serving at once (no warm-up checks)."""
        for instance in instances:
            self.client.add_backend(frontend, instance.name, backend_address(instance), ready=True)

    def backends(self, frontend: str) -> dict[str, dict]:
        """The frontend's backends by id (instance name)."""
        return {b["id"]: b for b in self.client.backends(frontend)}

    def add_and_wait_ready(self, frontend: str, instance: Instance, timeout: float) -> None:
        """Put an instance in the pool (unless there) and wait until the proxy sends it traffic."""
        known = self.backends(frontend).get(instance.name)
        if known is not None and known["state"] in ("draining", "gone"):
            # Drained by a run that was then rolled back: it serves again.
            self.forget(frontend, instance.name)
            known = None
        if known is None:
            self.client.add_backend(frontend, instance.name, backend_address(instance))
        try:
            self.client.wait_backend(frontend, instance.name, "ready", timeout=timeout)
        except WaitTimeout:
            raise OperationFailed(f"{instance.name} did not become ready in the proxy within {timeout:.0f}s") from None

    def drain_and_forget(self, frontend: str, backend_id: str, timeout: float | None) -> bool:
        """No new request to the backend; wait until its in-flight requests are done; forget it.
        False when the wait ran out (the caller stops the instance anyway, gracefully)."""
        if backend_id not in self.backends(frontend):
            return True
        self.client.drain_backend(frontend, backend_id)
        done = True
        try:
            self.client.wait_backend(frontend, backend_id, "drained", timeout=timeout if timeout is not None else 365 * 86400.0)
        except WaitTimeout:
            done = False
        self.forget(frontend, backend_id)
        return done

    def forget(self, frontend: str, backend_id: str) -> None:
        """Remove a backend from the pool if it is there."""
        try:
            self.client.remove_backend(frontend, backend_id)
        except ProxyError as exc:
            if exc.status != 404:
                raise

    def pause(self, frontend: str) -> None:
        """Hold the frontend's new requests until `resume`."""
        self.client.pause(frontend)

    def resume(self, frontend: str) -> None:
        """Release held requests in order; forward new ones again."""
        self.client.resume(frontend)

    def is_paused(self, frontend: str) -> bool:
        """True while the frontend holds requests on purpose."""
        return bool(self.client.frontend(frontend).get("paused"))
