"""The multi-host test harness (tests/support/testhosts.py): three namespaced engines, one over ssh."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.net import http_get
from tests.support.skips import skip_or_fail
from tests.support.testhosts import RUN_ROOT, SSHD, TestHosts

pytestmark = pytest.mark.docker

PREFIX = "hlt"  # not the CLI's default "hlh": a developer's hosts survive this test
BUSYBOX = "/bin/busybox"
IMAGE = "hitless-testhosts/busybox:1"
PAGE = b"served from host 1\n"


def _require_tools() -> None:
    if os.geteuid() != 0:
        skip_or_fail("test hosts need root (network namespaces, dockerd)")
    missing = [t for t in ("ip", "dockerd", "docker", "ssh", "ssh-keygen", "iptables") if shutil.which(t) is None]
    missing += [p for p in (SSHD, BUSYBOX) if not os.path.exists(p)]
    if missing:
        skip_or_fail(f"test hosts need {', '.join(missing)} (apt-get install openssh-server busybox-static)")


def _busybox_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "httpd"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
        page = tarfile.TarInfo("www/index.html")
        page.size, page.mode = len(PAGE), 0o644
        tar.addfile(page, io.BytesIO(PAGE))
    return buf.getvalue()


def _http_get(address: str, port: int) -> bytes:
    status, body = http_get(address, port, "/", timeout=10.0, interval=0.1)
    assert status == 200
    return body


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.monotonic()
    return fn(*args, **kwargs), time.monotonic() - start


def test_three_hosts_separate_engines_unreachable_and_clean_down() -> None:
    _require_tools()
    import docker
    import requests

    user_ssh_config = Path.home() / ".ssh" / "config"
    user_ssh_before = user_ssh_config.read_bytes() if user_ssh_config.exists() else None
    hosts = TestHosts(prefix=PREFIX, count=3, ssh_index=3)
    try:
        _, up_seconds = _timed(hosts.up)
        h1, h2, h3 = hosts.hosts
        assert [h.name for h in hosts.hosts] == ["hlt1", "hlt2", "hlt3"]
        assert hosts.subnet is not None
        assert [h.address for h in hosts.hosts] == [str(hosts.subnet.network_address + i) for i in (2, 3, 4)]
        assert h1.engine_url == f"unix://{RUN_ROOT}/hlt1/docker.sock"
        assert h3.engine_url == f"ssh://root@{h3.address}"

        # Each engine URL, as the product will use it, reaches that host's own engine.
        clients = [docker.DockerClient(base_url=h.engine_url, use_ssh_client=True, timeout=10) for h in hosts.hosts]
        c1, c2, c3 = clients
        ids = set()
        for host, client in zip(hosts.hosts, clients, strict=True):
            assert client.ping()
            info = client.info()
            assert (info["Name"], info["DockerRootDir"]) == (host.name, str(host.data_root))
            ids.add(info["ID"])
        assert len(ids) == 3, "every engine has its own ID"

        # A container on host 1, on the host's network, reachable from the root namespace and
        # from host 2 (across the bridge).
        _, load_seconds = _timed(c1.api.import_image_from_data, _busybox_tar(), repository=IMAGE.split(":")[0],
                                 tag=IMAGE.split(":")[1], changes=["ENV PATH=/bin"])
        c1.containers.run(IMAGE, ["httpd", "-f", "-p", f"{h1.address}:8080", "-h", "/www"], name="hlt-web",
                          network_mode="host", stop_signal="SIGKILL", detach=True)
        assert _http_get(h1.address, 8080) == PAGE
        across = subprocess.run(
            ["ip", "netns", "exec", h2.netns, "python3", "-c",
             f"import urllib.request; print(urllib.request.urlopen('http://{h1.address}:8080/', timeout=5).read())"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert across.stdout.strip() == repr(PAGE), across.stderr

        # Separate engines: hosts 2 and 3 see neither the container nor the image.
        for other in (c2, c3):
            assert [c.name for c in other.containers.list(all=True)] == []
            assert not any(IMAGE in img.tags for img in other.images.list())

        # Unix-socket host unreachable: frozen dockerd, so a request times out after the
        # client's timeout; its containers keep running meanwhile.
        quick2 = docker.DockerClient(base_url=h2.engine_url, timeout=2)
        assert quick2.ping()
        with hosts.unreachable(h2):
            start = time.monotonic()
            with pytest.raises(requests.exceptions.ReadTimeout, match=r"Read timed out\. \(read timeout=2\)"):
                quick2.ping()
            assert 1.5 < time.monotonic() - start < 5
        assert quick2.ping()
        with hosts.unreachable(h1):
            assert _http_get(h1.address, 8080) == PAGE
        # ssh host unreachable: sshd and its sessions stopped, so a request fails at once,
        # and the same client works again afterwards.
        with hosts.unreachable(h3):
            start = time.monotonic()
            with pytest.raises(requests.exceptions.ConnectionError, match="Connection aborted"):
                c3.ping()
            assert time.monotonic() - start < 2
        assert c3.ping()
        for client in (*clients, quick2):
            client.close()

        # down() with a container still running leaves nothing behind but the data-roots.
        pids = [h1.dockerd_pid, h1.containerd_pid, h2.dockerd_pid, h3.dockerd_pid, h3.sshd_pid]
        _, down_seconds = _timed(hosts.down)
        print(f"\nup {up_seconds:.1f}s, busybox import {load_seconds:.1f}s, down {down_seconds:.1f}s")
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert not [line for line in netns.splitlines() if line.startswith(PREFIX)]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert f" {PREFIX}" not in links
        assert "hitless-testhosts" not in Path("/proc/mounts").read_text()
        assert [pid for pid in pids if pid and _running(pid)] == []
        assert not list(RUN_ROOT.glob(f"{PREFIX}*"))
        assert not hosts.ssh_dropin.exists()
        rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
        assert f"hitless-testhosts:{PREFIX}" not in rules
        assert all(h.data_root.is_dir() for h in (h1, h2, h3)), "data-roots are kept by default"
        hosts.down(purge=True)
        assert not any(h.data_root.exists() for h in (h1, h2, h3))
        assert (user_ssh_config.read_bytes() if user_ssh_config.exists() else None) == user_ssh_before
    finally:
        hosts.down(purge=True)
