"""The supervisor shim of a ProcessRuntime instance: what `containerd-shim` is to a container.

    python3 -I process_shim.py --dir INSTANCE_DIR [--init] -- ARGV...

It detaches (fork, new session) so the instance outlives the command that started it, spawns
the service, forwards every catchable signal it receives to the service, waits for it, writes
`exit_code` atomically, kills what is left of its process group (as the kernel does to a
container when its PID 1 exits), and exits with the service's code (128+N after signal N).

With --init it is also what Docker's init is to a container: a child subreaper, so that the
service's orphaned descendants become its children, which it reaps as they exit (none is left
a zombie), and which it kills with the rest when the service exits.

Files it writes in INSTANCE_DIR: `pid` (JSON: its own and the service's PID with their
/proc start times and the boot id, so that a reused PID is never taken for ours), `output.log`
(the service's stdout and stderr) and `exit_code`.

This file uses the standard library only: it runs with `python3 -I` from its path, so that
the service's PYTHONPATH and friends cannot break it. ProcessRuntime imports its helpers.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile

PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
# SIGCHLD is the shim's own business (its child exiting); the others are forwarded.
NOT_FORWARDED = UNCATCHABLE | {signal.SIGCHLD}


def write_atomic(path: str, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, start time in clock ticks) of a live PID, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = raw.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str:
    """This boot's id: PIDs and start times from an earlier boot mean nothing now."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def exit_status(returncode: int) -> int:
    """Docker's convention: the exit code, or 128+N for a process ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().decode(errors="replace").rsplit(")", 1)[-1].split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux 3.4+); False when refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _kill_rest_of_group(children_too: bool = False) -> None:
    """SIGKILL every other process of our group (the service's leftovers) and, as an init,
    every orphan adopted meanwhile (it may have left the group: a daemon's setsid)."""
    me, group = os.getpid(), os.getpgrp()
    for _ in range(20):
        others = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me:
                stat = proc_stat(int(entry))
                if stat is None or stat[0] in "ZX":
                    continue
                if stat[1] == group or (children_too and _parent_of(int(entry)) == me):
                    others.append(int(entry))
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Killed children of ours (re-parented to us) must be reaped to leave the table.
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass


def _wait_reaping(service_pid: int) -> int:
    """Wait for the service as an init does: reap every child that exits (adopted orphans
    included) until the service itself has; its wait status as a Popen returncode."""
    while True:
        pid, status = os.waitpid(-1, 0)  # signal handlers run meanwhile (PEP 475 retries it)
        if pid == service_pid:
            return os.waitstatus_to_exitcode(status)


def _supervise(directory: str, argv: list[str], report_fd: int, init: bool = False) -> int:
    """Run in the detached grandchild: spawn, forward, wait, record."""
    pending: list[int] = []
    child: list[subprocess.Popen[bytes]] = []
    reaped = [False]

    def forward(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
        elif not reaped[0]:
            try:
                os.kill(child[0].pid, signum)
            except ProcessLookupError:
                pass

    for sig in signal.valid_signals():
        if sig in NOT_FORWARDED:
            continue
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError, RuntimeError):
            pass  # signals reserved by the C library

    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True, restore_signals=True)
    except OSError as exc:
        code = 126 if isinstance(exc, PermissionError) else 127
        message = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        print(f"hitless process shim: {message}", file=sys.stderr, flush=True)
        write_atomic(os.path.join(directory, "exit_code"), f"{code}\n")
        os.write(report_fd, f"{code} {message}".encode())
        os.close(report_fd)
        return code
    child.append(process)
    me, svc = proc_stat(os.getpid()), proc_stat(process.pid)
    record = {
        "pid": os.getpid(),
        "start_time": me[2] if me else None,
        "service_pid": process.pid,
        "service_start_time": svc[2] if svc else None,
        "boot_id": boot_id(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomic(os.path.join(directory, "pid"), json.dumps(record) + "\n")
    os.write(report_fd, b"0 started")
    os.close(report_fd)
    for signum in pending:
        forward(signum, None)

    if init:
        returncode = _wait_reaping(process.pid)
        process.returncode = returncode  # reaped here: Popen must not wait for it again
    else:
        returncode = process.wait()  # signal handlers run meanwhile (PEP 475 retries the wait)
    reaped[0] = True
    code = exit_status(returncode)
    write_atomic(os.path.join(directory, "exit_code"), f"{code}\n")
    _kill_rest_of_group(children_too=init)
    return code


def main(args: list[str]) -> int:
    """Parse `--dir DIR [--init] -- ARGV...`, detach, and report the service's start to our parent."""
    init = len(args) > 2 and args[2] == "--init"
    rest = args[3:] if init else args[2:]
    if len(args) < 4 or args[0] != "--dir" or not rest or rest[0] != "--" or len(rest) < 2:
        print("usage: process_shim.py --dir INSTANCE_DIR [--init] -- ARGV...", file=sys.stderr)
        return 2
    directory, argv = os.path.abspath(args[1]), rest[1:]
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        # The first process: wait for the detached one to say whether the service started.
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
        answer = b"".join(chunks).decode(errors="replace")
        code_text, _, message = answer.partition(" ")
        if not code_text.isdigit():
            print("the process shim died before it started the service", file=sys.stderr)
            return 1
        if code_text != "0":
            print(message, file=sys.stderr)
        return int(code_text)
    # The detached process: its own session and process group (so that the whole instance can
    # be killed at once), re-parented to init when the first process exits.
    os.close(read_fd)
    os.setsid()
    log = os.open(os.path.join(directory, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)  # also closes our copy of the parent's stderr pipe
    os.close(log)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    if init and not become_subreaper():
        print("hitless process shim: cannot become a child subreaper: orphans go to the host's init",
              file=sys.stderr, flush=True)
    try:
        code = _supervise(directory, argv, write_fd, init)
    except BaseException as exc:  # never leave the starter waiting, never lose the reason
        print(f"hitless process shim failed: {exc!r}", file=sys.stderr, flush=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
