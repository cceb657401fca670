"""Test hosts on one machine: network namespaces, each running its own Docker engine.

Multi-host tests need several Docker engines that behave like separate machines. Each test
host here is a network namespace ``{prefix}{i}`` (i = 1..count) joined by a veth pair to the
bridge ``{prefix}br`` in the root namespace, running its own ``dockerd`` (own data-root,
exec-root, socket, pidfile, and a UTS namespace whose hostname is the host's name, so the
engine's ``info()["Name"]`` is ``{prefix}{i}``). One host (``ssh_index``) also runs an sshd
on its address, and its engine URL is ``ssh://root@ADDRESS``; the others are reached through
``unix:///run/hitless-testhosts/{prefix}{i}/docker.sock``.

Addresses: the bridge is 10.X.0.1/24 and host i is 10.X.0.(i+1). X is the first free /24 in
10.240-10.250 (none of the machine's addresses or routes overlaps it), searched from
240 + crc32(prefix) % 11, so a prefix gets the same subnet each time unless that one is taken.
The choice is made under a lock; ``TestHosts.subnet`` holds it and ``up`` prints it.

Files::

    /run/hitless-testhosts/{prefix}/            client key, ssh client config (home/.ssh/config)
    /run/hitless-testhosts/{prefix}{i}/         socket, pidfiles, logs, exec-root, sshd config
    /var/lib/hitless-testhosts/{prefix}{i}/     data-root: kept by ``down()`` (images loaded into
                                                a host survive to the next ``up()``); removed by
                                                ``down(purge=True)`` / ``down --purge``
    /etc/ssh/ssh_config.d/hitless-testhosts-{prefix}.conf
                                                one ``Include`` of the client config, so plain
                                                ``ssh root@ADDRESS`` (and the docker SDK's
                                                ``use_ssh_client=True``) uses the harness key;
                                                it only matches the ssh host's address

Reaching the ssh host from the docker SDK (the ssh:// transport needs ``paramiko`` installed
even when it shells out)::

    docker.DockerClient(base_url=host.engine_url, use_ssh_client=True, timeout=10)

With paramiko itself (``use_ssh_client=False``) the SDK reads ``~/.ssh/config`` and
``~/.ssh/known_hosts`` from ``$HOME`` when the client is made: make it with
``HOME=host.ssh_home`` (``TestHost.client(use_ssh_client=False)`` does that). Such a client
does not recover once its ssh session broke (``SSHException: SSH session not active``); a
shell-out client does. A shell-out client ignores its timeout while the remote engine does
not answer (it reads the ssh pipe without one), so ``make_unreachable`` never freezes the
ssh host's dockerd: it stops its sshd.

Unreachable hosts (``TestHosts.unreachable(host)``), with a client timeout of N s: a
unix-socket host's dockerd is frozen (SIGSTOP), and requests raise
``requests.exceptions.ReadTimeout: UnixHTTPConnectionPool(host='localhost', port=None): Read
timed out. (read timeout=N)`` after N s; the ssh host's sshd and sessions are stopped, and
requests raise ``requests.exceptions.ConnectionError: ('Connection aborted.',
RemoteDisconnected(...))`` (or ``BrokenPipeError``) at once. Containers keep running.

Processes enter a host like ``ip netns exec`` does, minus its /sys remount (see ``_spawn``).

Bridged frames pass the root namespace's iptables FORWARD chain when br_netfilter is loaded
(Docker loads it and sets the policy to DROP), so ``up`` inserts one ACCEPT rule for traffic
within the bridge, tagged ``hitless-testhosts:{prefix}``; ``down`` deletes it.

Run as a script::

    python3 tests/support/testhosts.py up   [--name PREFIX] [--count 3] [--ssh-host 3]
    python3 tests/support/testhosts.py down [--name PREFIX] [--purge]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import http.client
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

RUN_ROOT = Path("/run/hitless-testhosts")
DATA_ROOT = Path("/var/lib/hitless-testhosts")
SSH_DROPIN_DIR = Path("/etc/ssh/ssh_config.d")
SUBNET_RANGE = range(240, 251)  # the X of 10.X.0.0/24
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SSHD = "/usr/sbin/sshd"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,8}[a-z]$|^[a-z]$")
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWNET = 0x00020000, 0x04000000, 0x40000000
_MS_REC, _MS_SLAVE = 0x4000, 0x80000


class TestHostError(RuntimeError):
    """A test host could not be brought up or fully removed."""

    __test__ = False


@dataclasses.dataclass
class TestHost:
    """One test host: a network namespace with its own dockerd (and maybe an sshd)."""

    __test__ = False

    name: str  # also the netns name and the engine's hostname (info()["Name"])
    index: int  # 1-based
    address: str  # its IPv4 address on the bridge
    netns: str
    engine_url: str  # unix:///...docker.sock, or ssh://root@ADDRESS for the ssh host
    socket: Path  # the engine's unix socket, usable from the root namespace for every host
    run_dir: Path
    data_root: Path
    exec_root: Path
    dockerd_pid: int
    containerd_pid: int  # dockerd's own containerd, under exec_root (never the main engine's)
    ssh: bool = False
    sshd_pid: int | None = None
    ssh_key: Path | None = None  # the client's private key (ssh host only)
    ssh_config: Path | None = None  # an ssh client config for this host: `ssh -F ssh_config ADDRESS`
    ssh_home: Path | None = None  # a HOME whose .ssh/ makes paramiko reach this host

    @property
    def local_url(self) -> str:
        """The engine's unix-socket URL, bypassing ssh (for setup and assertions)."""
        return f"unix://{self.socket}"

    def client(self, timeout: float = 10, *, use_ssh_client: bool = True, local: bool = False) -> docker.DockerClient:
        """A docker SDK client for this host's engine, through ``engine_url`` unless ``local``."""
        import docker

        url = self.local_url if local else self.engine_url
        if not url.startswith("ssh://"):
            return docker.DockerClient(base_url=url, timeout=timeout)
        if use_ssh_client:
            return docker.DockerClient(base_url=url, use_ssh_client=True, timeout=timeout)
        # paramiko reads ~/.ssh/config and ~/.ssh/known_hosts once, while the client is made.
        with _environ(HOME=str(self.ssh_home)):
            return docker.DockerClient(base_url=url, use_ssh_client=False, timeout=timeout)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["local_url"] = self.local_url
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


class TestHosts:
    """Create and remove ``count`` test hosts named ``{prefix}1..{prefix}{count}``.

    ``up()`` first removes whatever an earlier run with the same prefix left; ``down()``
    removes everything of that prefix (even after a partial ``up()``, even from another
    process) and keeps the data-roots unless ``purge`` (or ``keep_data=False``).
    """

    __test__ = False

    def __init__(self, prefix: str = "hlh", count: int = 3, ssh_index: int | None = None, *,
                 keep_data: bool = True, ready_timeout: float = READY_TIMEOUT) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix {prefix!r}: 1-10 lowercase letters/digits, starting and ending with a letter")
        if not 1 <= count <= 9:
            raise ValueError(f"count {count}: 1..9 hosts")
        ssh_index = count if ssh_index is None else ssh_index
        if not 0 <= ssh_index <= count:
            raise ValueError(f"ssh_index {ssh_index}: 0 (no ssh host) or 1..{count}")
        self.prefix = prefix
        self.count = count
        self.ssh_index = ssh_index
        self.keep_data = keep_data
        self.ready_timeout = ready_timeout
        self.bridge = f"{prefix}br"
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway: str | None = None  # the bridge's address, in the root namespace
        self.hosts: list[TestHost] = []
        self.state_dir = RUN_ROOT / prefix
        self.ssh_dropin = SSH_DROPIN_DIR / f"hitless-testhosts-{prefix}.conf"
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> TestHosts:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> list[TestHost]:
        """Bring all hosts up (after removing leftovers of this prefix); on failure remove them."""
        self.down()
        try:
            self._up()
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise
        return self.hosts

    def _up(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._make_network()
        started = [self._start_dockerd(i) for i in range(1, self.count + 1)]
        self.hosts = [self._wait_dockerd(i, proc) for i, proc in enumerate(started, start=1)]
        if self.ssh_index:
            self._start_ssh(self.hosts[self.ssh_index - 1])

    def down(self, purge: bool | None = None) -> None:
        """Stop and remove everything of this prefix; keep data-roots unless purging.

        Pieces already gone are skipped silently; anything that could not be removed is
        reported in one TestHostError after everything else was tried.
        """
        purge = (not self.keep_data) if purge is None else purge
        errors: list[str] = []
        names = self._leftover_names()
        _try_each(self.prefix, [lambda: self._stop_processes(names)], errors)
        for ns in names:
            _try_each(ns, self._host_removal(ns, purge), errors)
        _try_each(self.prefix, [
            lambda: _run(["ip", "link", "del", self.bridge], missing_ok=True),
            self._drop_forward_rules,
            lambda: self.ssh_dropin.unlink(missing_ok=True),
            lambda: shutil.rmtree(self.state_dir) if self.state_dir.exists() else None,
        ], errors)  # fmt: skip
        self.hosts = []
        self._procs.clear()
        if errors:
            raise TestHostError("test hosts not fully removed:\n  " + "\n  ".join(errors))

    def _host_removal(self, ns: str, purge: bool) -> list[Callable[[], object]]:
        """The steps removing host ``ns`` once its processes are gone, each safe when its piece is."""
        run_dir, data_root = RUN_ROOT / ns, DATA_ROOT / ns
        return [
            lambda: _unmount_under(run_dir, data_root),
            lambda: _run(["ip", "netns", "del", ns], missing_ok=True),
            lambda: _run(["ip", "link", "del", f"{ns}-v"], missing_ok=True),
            lambda: shutil.rmtree(run_dir) if run_dir.exists() else None,
            lambda: shutil.rmtree(data_root) if purge and data_root.exists() else None,
        ]

    def _leftover_names(self) -> list[str]:
        """Host names of this prefix found anywhere: netns, run dirs, this object, data dirs."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}\d+$")
        names = {h.name for h in self.hosts}
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        names.update(line.split()[0] for line in listed.splitlines() if line.split())
        for root in (RUN_ROOT, DATA_ROOT):
            if root.is_dir():
                names.update(p.name for p in root.iterdir())
        return sorted(n for n in names if pattern.match(n))

    # -- network --------------------------------------------------------------------------

    def _make_network(self) -> None:
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        with open(RUN_ROOT / ".lock", "w") as lock:
            # Two prefixes coming up at once must not pick the same free /24.
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet(self.prefix)
            self.gateway = str(self.subnet.network_address + 1)
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
        (self.state_dir / "subnet").write_text(f"{self.subnet}\n")
        self._add_forward_rule()
        for i in range(1, self.count + 1):
            ns, address = self._name(i), self._address(i)
            _run(["ip", "netns", "add", ns])
            _run(["ip", "link", "add", f"{ns}-v", "type", "veth", "peer", "name", "eth0", "netns", ns])
            _run(["ip", "link", "set", f"{ns}-v", "master", self.bridge, "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _name(self, i: int) -> str:
        return f"{self.prefix}{i}"

    def _address(self, i: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1 + i)

    @property
    def _rule_tag(self) -> str:
        return f"hitless-testhosts:{self.prefix}"

    def _add_forward_rule(self) -> None:
        if shutil.which("iptables") is None:
            return
        rule = ["-i", self.bridge, "-o", self.bridge, "-m", "comment", "--comment", self._rule_tag, "-j", "ACCEPT"]
        done = subprocess.run(["iptables", "-w", "-I", "FORWARD", "1", *rule], capture_output=True, text=True)
        if done.returncode != 0 and _bridge_netfilter_on():
            raise TestHostError(f"iptables: cannot let traffic cross {self.bridge}: {done.stderr.strip()}")

    def _drop_forward_rules(self) -> None:
        if shutil.which("iptables") is None:
            return
        listed = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            args = shlex.split(line)
            if args[:1] == ["-A"] and self._rule_tag in args:
                _run(["iptables", "-w", "-D", *args[1:]])

    # -- dockerd --------------------------------------------------------------------------

    def _start_dockerd(self, i: int) -> subprocess.Popen[bytes]:
        ns = self._name(i)
        run_dir, data_root = RUN_ROOT / ns, DATA_ROOT / ns
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data_root.mkdir(mode=0o710, parents=True, exist_ok=True)
        # An own config file, so a machine-wide /etc/docker/daemon.json (hosts, data-root,
        # ...) does not leak into (or conflict with) this engine.
        config: dict[str, str] = {}
        if _dockerd_major() < 23:
            # Before 23.0 the engine ID (info()["ID"]) derives from /etc/docker/key.json,
            # which every engine on the machine would share; 23.0+ keeps it in the data-root.
            config["deprecated-key-path"] = str(data_root / "key.json")
        (run_dir / "daemon.json").write_text(json.dumps(config) + "\n")
        argv = [
            "dockerd",
            "--config-file", str(run_dir / "daemon.json"),
            "--data-root", str(data_root),
            "--exec-root", str(run_dir / "exec"),
            "--pidfile", str(run_dir / "dockerd.pid"),
            "-H", f"unix://{run_dir / 'docker.sock'}",
            "--bridge=none", "--iptables=false", "--ip6tables=false",
            "--ip-forward=false", "--ip-masq=false",
        ]  # fmt: skip
        return self._spawn(ns, argv, run_dir / "dockerd.log")

    def _wait_dockerd(self, i: int, proc: subprocess.Popen[bytes]) -> TestHost:
        ns = self._name(i)
        run_dir = RUN_ROOT / ns
        sock, log = run_dir / "docker.sock", run_dir / "dockerd.log"
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise TestHostError(f"{ns}: dockerd exited with {proc.returncode}\n{_tail(log)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if _engine_get(sock, "/_ping")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise TestHostError(f"{ns}: dockerd silent on {sock} for {self.ready_timeout:.0f} s\n{_tail(log)}")
            time.sleep(0.2)
        info = json.loads(_engine_get(sock, "/info")[1])
        if info.get("Name") != ns or info.get("DockerRootDir") != str(DATA_ROOT / ns):
            raise TestHostError(f"{ns}: {sock} answers as {info.get('Name')} with {info.get('DockerRootDir')}")
        address = self._address(i)
        return TestHost(
            name=ns, index=i, address=address, netns=ns,
            engine_url=f"unix://{sock}", socket=sock, run_dir=run_dir,
            data_root=DATA_ROOT / ns, exec_root=run_dir / "exec",
            dockerd_pid=proc.pid, containerd_pid=_own_containerd(proc.pid, run_dir / "exec"),
        )  # fmt: skip

    def _stop_processes(self, names: list[str]) -> None:
        """Stop the sshds, then the dockerds of hosts ``names``, all hosts at once.

        At once, because a dockerd stops its running containers first, waiting up to each
        one's stop timeout (10 s by default).
        """
        self._stop_sshds([RUN_ROOT / ns for ns in names])
        # Trees collected first: a dockerd that needs SIGKILL orphans its containerd, shims
        # and containers, which must go too.
        dockerds = {pid: _descendants(pid) for ns in names if (pid := _pid_from(RUN_ROOT / ns / "dockerd.pid"))}
        killed = self._stop_all(list(dockerds), STOP_TIMEOUT)
        self._stop_all([child for pid in killed for child in dockerds[pid]], 5.0)
        # Left by a dockerd killed earlier (or one that never wrote its pidfile): it, its
        # containerd and its shims name paths in our run dir; a shim's children are containers.
        strays = [s for ns in names for s in _pids_mentioning(f"{RUN_ROOT / ns}/")]
        self._stop_all([p for stray in strays for p in (stray, *_descendants(stray))], 5.0)

    # -- sshd -----------------------------------------------------------------------------

    def _start_ssh(self, host: TestHost) -> None:
        key = self.state_dir / "id_ed25519"
        home_ssh = self.state_dir / "home" / ".ssh"
        home_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        host_key = host.run_dir / "ssh_host_ed25519_key"
        for path, comment in ((key, f"hitless-testhosts:{self.prefix}"), (host_key, host.name)):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
        (host.run_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        known_hosts = home_ssh / "known_hosts"
        host_pub = host_key.with_suffix(".pub").read_text().split()
        known_hosts.write_text(f"{host.address} {host_pub[0]} {host_pub[1]}\n")
        (host.run_dir / "sshd_config").write_text(self._sshd_config(host))
        # Both OpenSSH and paramiko read this file; paramiko ignores the options it lacks.
        config = home_ssh / "config"
        config.write_text(
            f"Host {host.address}\n"
            "  User root\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n"
            f"  GlobalKnownHostsFile {known_hosts}\n"  # wins even when ~/.ssh/config sets UserKnownHostsFile
            "  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  ServerAliveInterval 2\n"
            "  ServerAliveCountMax 3\n"
            "  ControlMaster no\n"
            "  LogLevel ERROR\n"
        )
        SSH_DROPIN_DIR.mkdir(parents=True, exist_ok=True)
        self.ssh_dropin.write_text(f"# hitless test hosts ({self.prefix}); removed by their down()\nInclude {config}\n")
        host.engine_url = f"ssh://root@{host.address}"
        host.ssh, host.ssh_key, host.ssh_config, host.ssh_home = True, key, config, home_ssh.parent
        self._start_sshd(host)
        # The command line the docker SDK runs (use_ssh_client=True), so this proves the
        # drop-in is read, the key and host key, and SetEnv DOCKER_HOST: the remote docker
        # CLI must land on this host's engine.
        done = subprocess.run(
            ["ssh", "-l", "root", "--", host.address, "docker info --format '{{.Name}} {{.DockerRootDir}}'"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.stdout.split() != [host.name, str(host.data_root)]:
            raise TestHostError(
                f"{host.name}: `ssh root@{host.address} docker info` answered {done.stdout!r} {done.stderr.strip()!r}"
                f" (does /etc/ssh/ssh_config Include {SSH_DROPIN_DIR}/*.conf?)"
            )

    def _sshd_config(self, host: TestHost) -> str:
        run = host.run_dir
        lines = [
            f"ListenAddress {host.address}:22",
            f"HostKey {run / 'ssh_host_ed25519_key'}",
            f"PidFile {run / 'sshd.pid'}",
            f"AuthorizedKeysFile {run / 'authorized_keys'}",
            "AllowUsers root",
            "PermitRootLogin prohibit-password",
            "AuthenticationMethods publickey",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "MaxStartups 64",
            # The docker SDK's ssh:// transport runs `docker system dial-stdio` remotely.
            f"SetEnv DOCKER_HOST=unix://{host.socket}",
        ]
        if _sshd_version() >= (9, 8):
            lines.append("PerSourcePenalties no")  # the unreachable() tests refuse on purpose
        return "\n".join(lines) + "\n"

    def _start_sshd(self, host: TestHost) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        config, log = host.run_dir / "sshd_config", host.run_dir / "sshd.log"
        checked = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise TestHostError(f"{host.name}: sshd_config rejected: {checked.stderr.strip()}")
        proc = self._spawn(host.netns, [SSHD, "-D", "-f", str(config), "-E", str(log)], host.run_dir / "sshd.out")
        host.sshd_pid = proc.pid
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise TestHostError(f"{host.name}: sshd exited with {proc.returncode}\n{_tail(log)}")
            with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=1) as conn:
                if conn.recv(8).startswith(b"SSH-"):
                    return
            if time.monotonic() > deadline:
                raise TestHostError(f"{host.name}: sshd not listening on {host.address}:22\n{_tail(log)}")
            time.sleep(0.1)

    def _stop_sshds(self, run_dirs: list[Path]) -> None:
        pids = [pid for run_dir in run_dirs if (pid := _pid_from(run_dir / "sshd.pid"))]
        # Its session children (one per ssh connection, each with a docker dial-stdio) outlive
        # the listener; they are ours too, and keep serving pooled connections if left.
        self._stop_all([p for pid in pids for p in (pid, *_descendants(pid))], 5.0)
        for run_dir in run_dirs:
            (run_dir / "sshd.pid").unlink(missing_ok=True)

    # -- reachability ---------------------------------------------------------------------

    def make_unreachable(self, host: TestHost) -> None:
        """Cut ``host``'s engine off from clients, leaving its containers running.

        Unix-socket host: its dockerd is frozen (SIGSTOP); a request, on a pooled connection
        or a new one, gets no answer and the SDK raises ``requests.exceptions.ReadTimeout``
        after the client's timeout (a client made meanwhile: ``docker.errors.DockerException``
        "Error while fetching server API version: ... Read timed out"). ssh host: its sshd and
        every ssh session are stopped; the next request fails at once with
        ``requests.exceptions.ConnectionError`` ('Connection aborted.', RemoteDisconnected or
        BrokenPipeError), and ssh prints "Connection refused" on stderr.
        """
        if host.ssh:
            self._stop_sshds([host.run_dir])
            host.sshd_pid = None
        else:
            os.kill(host.dockerd_pid, signal.SIGSTOP)
            _wait_stopped(host.dockerd_pid)

    def make_reachable(self, host: TestHost) -> None:
        """Undo ``make_unreachable``."""
        if host.ssh:
            if host.sshd_pid is None:
                self._start_sshd(host)
        else:
            os.kill(host.dockerd_pid, signal.SIGCONT)

    @contextlib.contextmanager
    def unreachable(self, host: TestHost) -> Iterator[TestHost]:
        """``make_unreachable(host)`` for the duration of a with-block."""
        self.make_unreachable(host)
        try:
            yield host
        finally:
            self.make_reachable(host)

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, netns: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``netns``, in its own mount and UTS namespaces, as its own session.

        This is ``ip netns exec`` without its /sys remount: a fresh sysfs hides the cgroup v1
        mounts under /sys/fs/cgroup and dockerd then refuses to start ("Devices cgroup isn't
        mounted"). The own UTS namespace makes dockerd report the host's name, not the
        machine's; the own (slave) mount namespace keeps dockerd's overlay mounts out of the
        root namespace. The own session keeps a Ctrl-C in the test run from reaching it.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        netns_path = f"/run/netns/{netns}".encode()

        def enter() -> None:
            fd = os.open(netns_path, os.O_RDONLY)
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET)")
            os.close(fd)
            if libc.unshare(_CLONE_NEWNS | _CLONE_NEWUTS) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS|CLONE_NEWUTS)")
            if libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
                raise OSError(ctypes.get_errno(), "mount --make-rslave /")
            socket.sethostname(netns)

        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=enter)
        self._procs[proc.pid] = proc
        return proc

    def _stop_all(self, pids: list[int], timeout: float) -> list[int]:
        """SIGTERM ``pids`` together, SIGKILL those left after ``timeout``; returns the killed."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)  # a frozen (unreachable) dockerd must run to handle it
        left = self._wait_gone(pids, timeout)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if survivors := self._wait_gone(left, 10.0):
            raise TestHostError(f"pids {survivors} survived SIGKILL")
        return left

    def _wait_gone(self, pids: list[int], timeout: float) -> list[int]:
        """Wait up to ``timeout`` for ``pids`` to end; returns those still running."""
        deadline = time.monotonic() + timeout
        while True:
            for pid in pids:
                self._reap(pid)
            left = [pid for pid in pids if _alive(pid)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def _reap(self, pid: int) -> None:
        proc = self._procs.get(pid)
        if proc is not None:
            proc.poll()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    # -- description ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of the hosts (what ``up`` prints)."""
        return {
            "prefix": self.prefix,
            "subnet": str(self.subnet) if self.subnet else None,
            "bridge": self.bridge,
            "gateway": self.gateway,
            "ssh_dropin": str(self.ssh_dropin) if self.ssh_index else None,
            "hosts": [h.describe() for h in self.hosts],
        }


# -- helpers ----------------------------------------------------------------------------------


def _try_each(label: str, steps: list[Callable[[], object]], errors: list[str]) -> None:
    """Run every step; a failing one adds to ``errors`` instead of stopping the rest."""
    for step in steps:
        try:
            step()
        except Exception as exc:
            errors.append(f"{label}: {exc}")


def _run(argv: list[str], *, missing_ok: bool = False) -> None:
    """Run a command; with ``missing_ok``, a "does not exist" failure is not an error."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode == 0:
        return
    err = done.stderr.strip()
    if missing_ok and re.search(r"No such file|Cannot find device|does not exist|not found", err):
        return
    raise TestHostError(f"{shlex.join(argv)}: {err or f'exit {done.returncode}'}")


def _free_subnet(prefix: str) -> ipaddress.IPv4Network:
    """The first 10.X.0.0/24 (X in SUBNET_RANGE, starting at a hash of the prefix) that is free."""
    used: list[ipaddress.IPv4Network] = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for cidr in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", out):
            net = ipaddress.IPv4Network(cidr, strict=False)
            if net.prefixlen > 0:  # a default route overlaps everything
                used.append(net)
    n = len(SUBNET_RANGE)
    start = zlib.crc32(prefix.encode()) % n
    for k in range(n):
        candidate = ipaddress.IPv4Network(f"10.{SUBNET_RANGE[(start + k) % n]}.0.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise TestHostError(f"no free /24 among 10.{SUBNET_RANGE[0]}-10.{SUBNET_RANGE[-1]}")


def _bridge_netfilter_on() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


def _engine_get(sock: Path, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET an engine API path over its unix socket (no docker SDK needed here)."""
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _own_containerd(dockerd_pid: int, exec_root: Path) -> int:
    """The containerd dockerd started for itself, checked to live under ``exec_root``."""
    deadline = time.monotonic() + 10
    while True:
        for pid in _descendants(dockerd_pid):
            argv = _cmdline(pid)
            if argv and os.path.basename(argv[0]) == "containerd":
                if f"{exec_root}/containerd/containerd.toml" not in argv:
                    raise TestHostError(f"dockerd {dockerd_pid} runs a containerd outside {exec_root}: {argv}")
                if not (exec_root / "containerd" / "containerd.sock").is_socket():
                    raise TestHostError(f"containerd {pid} has no socket under {exec_root}")
                return pid
        if time.monotonic() > deadline:
            raise TestHostError(f"dockerd {dockerd_pid} has no containerd of its own")
        time.sleep(0.1)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
    except OSError:
        return []


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        fields = _stat(p)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _pids_mentioning(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (one of our own paths)."""
    me = os.getpid()
    return [p for p in _all_pids() if p != me and _alive(p) and any(marker in a for a in _cmdline(p))]


def _pid_from(pidfile: Path) -> int | None:
    """The live PID in ``pidfile`` if its command line names the pidfile's directory.

    The check guards against a stale pidfile whose PID now belongs to another process.
    """
    marker = f"{pidfile.parent}/"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    if _alive(pid) and any(marker in a for a in _cmdline(pid)):
        return pid
    return None


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def _unmount_under(*roots: Path) -> None:
    """Lazily unmount anything still mounted under ``roots`` (deepest first)."""
    for point in sorted(_mount_points(), key=len, reverse=True):
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            _run(["umount", "-l", point], missing_ok=True)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@functools.cache
def _dockerd_major() -> int:
    out = subprocess.run(["dockerd", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.", out)
    return int(found.group(1)) if found else 0


@functools.cache
def _sshd_version() -> tuple[int, int]:
    out = subprocess.run([SSHD, "-V"], capture_output=True, text=True).stderr
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    """The command line: ``up`` prints the hosts as JSON, ``down`` removes them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create the hosts (removing leftovers first) and print them as JSON")
    down = sub.add_parser("down", help="remove the hosts; data-roots stay unless --purge")
    for p in (up, down):
        p.add_argument("--name", default="hlh", help="prefix of the host names (default: hlh)")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--ssh-host", type=int, default=None, help="index of the ssh host; 0 for none (default: last)")
    down.add_argument("--purge", action="store_true", help="also remove the data-roots")
    args = parser.parse_args(argv)
    if args.command == "up":
        hosts = TestHosts(args.name, args.count, args.ssh_host)
        hosts.up()
        json.dump(hosts.describe(), sys.stdout, indent=2)
        print()
    else:
        TestHosts(args.name).down(purge=args.purge)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Wait until every thread of ``pid`` is stopped: SIGSTOP takes effect on each thread as it
    next leaves the kernel, and a thread busy meanwhile (a loaded machine) could still answer."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rpartition(")")[2].split()[0])
            except (OSError, IndexError):
                continue
        if states and all(s in "tT" for s in states):
            return
        if time.monotonic() > deadline:
            raise TestHostError(f"dockerd {pid} not stopped {timeout:g} s after SIGSTOP (thread states {states})")
        time.sleep(0.01)
