"""The proxy's supervisor on the process runtime: what Docker's restart policy is to the proxy
container.

    python3 -m hitless.proxyhost.supervisor --state-dir DIR --admin-socket PATH [--handover] [-- PROXY ARGS]

It detaches (fork, new session; the command that started it gets "ok" once the proxy is
spawned), runs the proxy (`hitless.proxy.launch`'s command line: `--takeover` when a proxy
answers on the socket) in a process group of its own, and:

- the proxy dies by a signal or exits non-zero: what is left of its group is killed (as the
  kernel does to a container) and it is started again at once; a crash loop backs off, capped
  at 1 s. Each restart is one line in the log.
- the proxy exits 0 (it was stopped, or handed its listeners over and drained): the supervisor
  exits too.
- SIGTERM/SIGINT to the supervisor: forwarded to the proxy (a second one too: the proxy then
  cuts what is in flight); the supervisor exits when the proxy has.
- another supervisor took over the record (a hand-over): this one never restarts its proxy.

Its record, `DIR/proxy-supervisor.json` (written atomically at every start of the proxy), names
its pid and the proxy's, with /proc start times and the boot id so a reused pid is never taken
for it. Signals are blocked and taken with sigtimedwait: no handler runs at an arbitrary point.
Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

from hitless import __version__
from hitless.proxy.launch import answers, describe_exit, proxy_argv
from hitless.runtime.process_shim import boot_id, proc_stat, write_atomic

RECORD = "proxy-supervisor.json"
QUICK = 5.0  # a run shorter than this counts toward a crash loop
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0
WATCHED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}


def backoff(previous: float, ran_for: float) -> float:
    """Seconds to wait before the next start: none after a run that lasted, then doubling from
    0.1 s up to 1 s while the proxy keeps dying young."""
    if ran_for >= QUICK:
        return 0.0
    return min(MAX_BACKOFF, max(FIRST_BACKOFF, previous * 2))


def read_record(state_dir: str) -> dict | None:
    """The supervisor record, or None."""
    try:
        with open(os.path.join(state_dir, RECORD)) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _log(message: str) -> None:
    stamp = dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
    print(f"{stamp} supervisor {os.getpid()}: {message}", flush=True)


class ProxySupervisor:
    """Keeps one proxy running until told to stop."""

    def __init__(self, state_dir: str, admin_socket: str, extra: list[str], handover: bool) -> None:
        self.state_dir = state_dir
        self.admin_socket = admin_socket
        self.extra = extra
        self.handover = handover
        self.started = time.time()
        self.restarts = 0
        self.last_exit: str | None = None
        self.child: subprocess.Popen | None = None
        self.child_started = 0.0

    def _record(self) -> None:
        me = os.getpid()
        child = self.child
        write_atomic(os.path.join(self.state_dir, RECORD), json.dumps({
            "pid": me, "start_time": (proc_stat(me) or ("", 0, None))[2], "boot_id": boot_id(),
            "started": self.started, "version": __version__, "admin_socket": self.admin_socket,
            "proxy_pid": child.pid if child else None,
            "proxy_start_time": (proc_stat(child.pid) or ("", 0, None))[2] if child else None,
            "proxy_started": self.child_started if child else None,
            "restarts": self.restarts, "last_exit": self.last_exit,
        }, indent=1) + "\n")

    def superseded(self) -> bool:
        """True when the record names another supervisor (a hand-over started one)."""
        record = read_record(self.state_dir)
        return record is not None and record.get("pid") != os.getpid()

    def spawn(self) -> None:
        """Start the proxy; it takes over from a proxy answering on the socket."""
        takeover = answers(self.admin_socket)
        argv = proxy_argv(sys.executable, self.admin_socket, self.extra, takeover)
        self.child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, process_group=0,
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED),
        )
        self.child_started = time.time()
        self._record()
        _log(f"proxy {self.child.pid} started{' (taking over)' if takeover else ''}")

    def _reap(self) -> int | None:
        """The proxy's return code once it has exited (the rest of its group killed), else None."""
        child = self.child
        if child is None or child.poll() is None:
            return None
        try:
            os.killpg(child.pid, signal.SIGKILL)  # its workers must not outlive it
        except (ProcessLookupError, PermissionError):
            pass
        return child.returncode

    def run(self) -> int:
        """Supervise until the proxy exits 0, or exits after a forwarded stop signal."""
        stops = 0
        delay = 0.0
        restart_at: float | None = None
        while True:
            timeout = 1.0 if restart_at is None else max(0.0, restart_at - time.monotonic())
            info = signal.sigtimedwait(WATCHED, timeout)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                stops += 1
                if self.child is None or self.child.returncode is not None:
                    _log(f"{signal.Signals(info.si_signo).name}: no proxy runs; exiting")
                    return 0
                _log(f"{signal.Signals(info.si_signo).name}: forwarded to proxy {self.child.pid}")
                self.child.send_signal(info.si_signo)
            if restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                if self.superseded():
                    _log("another supervisor took over: not restarting")
                    return 0
                self.restarts += 1
                self.spawn()
                continue
            code = self._reap()
            if code is None:
                continue
            ran_for = time.time() - self.child_started
            self.last_exit = describe_exit(code)
            if stops:
                _log(f"proxy {self.child.pid} {self.last_exit} after the stop signal; exiting")  # type: ignore[union-attr]
                return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1
            if code == 0:
                _log(f"proxy {self.child.pid} exited 0 (stopped or handed over); exiting")  # type: ignore[union-attr]
                return 0
            if self.handover and self.restarts == 0 and ran_for < QUICK:
                _log(f"proxy {self.child.pid} {self.last_exit} while taking over; giving up")  # type: ignore[union-attr]
                return 1
            if self.superseded():
                _log(f"proxy {self.child.pid} {self.last_exit}; another supervisor took over: not restarting")  # type: ignore[union-attr]
                return 0
            delay = backoff(delay, ran_for)
            _log(f"proxy {self.child.pid} {self.last_exit} after {ran_for:.1f}s; "  # type: ignore[union-attr]
                 f"restart {self.restarts + 1} in {delay:.1f}s")
            restart_at = time.monotonic() + delay


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m hitless.proxyhost.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--admin-socket", required=True)
    parser.add_argument("--handover", action="store_true", help="the first proxy takes over; give up if it fails")
    parser.add_argument("extra", nargs="*", help="more proxy arguments (after --)")
    args = parser.parse_args(argv)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:  # the launcher's child: report what the daemon says, then go
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
        message = b"".join(chunks).decode(errors="replace").strip()
        if message != "ok":
            sys.stderr.write((message or "the supervisor died before it started the proxy") + "\n")
            return 1
        return 0
    os.close(read_end)
    os.setsid()
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        supervisor = ProxySupervisor(os.path.abspath(args.state_dir), args.admin_socket, args.extra, args.handover)
        _log(f"supervising the proxy on {args.admin_socket} (hitless {__version__})")
        supervisor.spawn()
    except BaseException as exc:
        os.write(write_end, f"cannot start the proxy: {exc}".encode())
        os._exit(1)
    os.write(write_end, b"ok")
    os.close(write_end)
    code = 1
    try:
        code = supervisor.run()
    finally:
        record = read_record(supervisor.state_dir)
        if record is not None and record.get("pid") == os.getpid():
            try:
                os.unlink(os.path.join(supervisor.state_dir, RECORD))
            except FileNotFoundError:
                pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
