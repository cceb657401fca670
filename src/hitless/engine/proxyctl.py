"""Driving the project's proxy: start it when needed, mirror the spec's frontends, and move
instances in and out of its pools. Every call goes through the proxy's admin client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from hitless.errors import OperationFailed
from hitless.proxy.client import AdminClient, ProxyError, ProxyUnavailable, WaitTimeout
from hitless.proxy.config import FrontendConfig, HealthCheck, HoldLimits
from hitless.runtime.base import Instance
from hitless.spec.tree import DesiredTree, ServiceNode

START_TIMEOUT = 15.0


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
    )


def backend_address(instance: Instance) -> str:
    """host:port of an instance, as the proxy dials it."""
    if instance.address is None:
        raise OperationFailed(f"{instance.name} has no address (state {instance.state})")
    host, port = instance.address
    return f"{host}:{port}"


class ProxyControl:
    """The project's proxy, as the engine drives it."""

    def __init__(self, tree: DesiredTree):
        self.socket_path = (tree.base_dir / tree.spec.proxy.admin_socket).resolve()
        self.log_path = self.socket_path.parent / "proxy.log"
        self.client = AdminClient(str(self.socket_path))

    def running_pid(self) -> int | None:
        """The proxy's pid, or None when no proxy answers on the admin socket."""
        try:
            return int(self.client.status()["pid"])
        except ProxyUnavailable:
            return None

    def ensure_running(self) -> int:
        """Start the proxy (detached: it outlives this command) unless one answers; its pid."""
        pid = self.running_pid()
        if pid is not None:
            return pid
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hitless", "proxy", "--admin-socket", str(self.socket_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise OperationFailed(f"the proxy exited with code {proc.returncode} at start; see {self.log_path}")
            pid = self.running_pid()
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise OperationFailed(f"the proxy did not answer on {self.socket_path} within {START_TIMEOUT:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Ask the proxy to finish in-flight requests and exit; True when one was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # When this process started the proxy, it is our child: reap it, or it lingers as a zombie.
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        raise OperationFailed(f"the proxy (pid {pid}) did not exit within {timeout:.0f}s of SIGTERM")

    def ensure_frontend(self, node: ServiceNode) -> str:
        """The service's frontend exists on the proxy (added if not); its name."""
        config = frontend_config(node)
        existing = {f["name"]: f for f in self.client.frontends()}
        if config.name not in existing:
            self.client.add_frontend(config)
        return config.name

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
