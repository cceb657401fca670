"""Run netapi as a local process (tests, the process runtime, benchmarks).

    from hitless_demo.localrun import running_netapi
    with running_netapi(tmp_path, version="2.0") as app:
        urllib.request.urlopen(app.url + "/")

Equivalent command line, from the directory that holds the netapi package (NETAPI_ROOT):
NETAPI_VERSION=1.0 HITLESS_PORT=9696 NETAPI_DB=/tmp/netapi.db python3 -m netapi

`run_migrate` runs a migration phase the same way; `create_scratch_database` and
`drop_scratch_database` make and remove throwaway databases on the local MariaDB/PostgreSQL.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hitless_demo.paths import NETAPI_ROOT
from hitless_demo.ports import free_port


def netapi_argv(python: str = sys.executable) -> list[str]:
    """The command that runs netapi; run it with cwd=NETAPI_ROOT."""
    return [python, "-m", "netapi"]


class NetapiProcess:
    """One netapi process started by `start_netapi`; stop it with `stop()` (by PID, never by name)."""

    def __init__(self, popen: subprocess.Popen, port: int, db: Path, log_path: Path, version: str) -> None:
        self.popen, self.port, self.db, self.log_path, self.version = popen, port, db, log_path, version

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, then SIGKILL: always leaves no process behind."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_healthy(host: str, port: int, timeout: float = 10.0, popen: subprocess.Popen | None = None) -> None:
    """Poll GET /healthcheck until it answers 200; RuntimeError on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None and popen.poll() is not None:
            raise RuntimeError(f"netapi exited with status {popen.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            try:
                conn.request("GET", "/healthcheck")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"netapi on {host}:{port} not healthy after {timeout:.0f} s")
        time.sleep(0.02)


def _child_env(version: str, db: Path, db_url: str | None, env: dict[str, str] | None) -> dict[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NETAPI_", "HITLESS_"))}
    child_env.update({"NETAPI_VERSION": version, "NETAPI_DB": str(db), "PYTHONDONTWRITEBYTECODE": "1"})
    if db_url:
        child_env["NETAPI_DB_URL"] = db_url
    child_env.update(env or {})
    return child_env


def run_migrate(workdir: Path, phase: str, version: str, db: Path | None = None, db_url: str | None = None,
                env: dict[str, str] | None = None, python: str = sys.executable,
                timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`python3 -m netapi.migrate PHASE` as netapi `version` would run it (a one-shot job)."""
    db = db or Path(workdir) / "netapi.db"
    return subprocess.run([python, "-m", "netapi.migrate", phase], cwd=NETAPI_ROOT,
                          env=_child_env(version, db, db_url, env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def start_netapi(workdir: Path, version: str = "1.0", port: int | None = None, db: Path | None = None,
                 env: dict[str, str] | None = None, python: str = sys.executable,
                 db_url: str | None = None) -> NetapiProcess:
    """Start netapi on 127.0.0.1 and wait until it is healthy. Logs go to workdir/netapi-PORT.log.

    The database is the SQLite file `db` (default workdir/netapi.db), or `db_url` when given.
    """
    port = port or free_port()
    db = db or Path(workdir) / "netapi.db"
    log_path = Path(workdir) / f"netapi-{port}.log"
    child_env = _child_env(version, db, db_url, env)
    child_env.update({"HITLESS_PORT": str(port), "NETAPI_BIND": "127.0.0.1"})
    child_env.update(env or {})
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(netapi_argv(python), cwd=NETAPI_ROOT, env=child_env,
                                 stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    app = NetapiProcess(popen, port, db, log_path, version)
    try:
        wait_healthy("127.0.0.1", port, popen=popen)
    except BaseException:
        app.stop()
        raise RuntimeError(f"netapi did not start: {app.log().strip()[-500:]}") from None
    return app


@contextlib.contextmanager
def running_netapi(workdir: Path, **kwargs) -> Iterator[NetapiProcess]:
    """start_netapi, and stop the process on the way out whatever happened."""
    app = start_netapi(workdir, **kwargs)
    try:
        yield app
    finally:
        app.stop()


# Scratch databases on the local MariaDB and PostgreSQL servers (tests, benchmarks).

MYSQL_ADMIN: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
POSTGRES_ADMIN: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def _admin_connection(backend: str):
    if backend == "mysql":
        import pymysql

        return pymysql.connect(**MYSQL_ADMIN, autocommit=True, connect_timeout=3)
    import psycopg2

    conn = psycopg2.connect(**POSTGRES_ADMIN, connect_timeout=3)
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def create_scratch_database(backend: str, prefix: str = "netapi_test") -> str:
    """Create a uniquely named, empty database on the local `mysql` or `postgresql` server; its URL.

    Raises whatever the driver raises when the server does not answer (ImportError without the driver).
    """
    import uuid

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _admin_connection(backend)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    if backend == "mysql":
        return f"mysql://{MYSQL_ADMIN['user']}@{MYSQL_ADMIN['host']}:{MYSQL_ADMIN['port']}/{name}"
    return f"postgresql://{POSTGRES_ADMIN['user']}@{POSTGRES_ADMIN['host']}:{POSTGRES_ADMIN['port']}/{name}"


def drop_scratch_database(url: str) -> None:
    """Drop a database made by create_scratch_database (PostgreSQL: its lingering sessions too)."""
    backend = "mysql" if url.startswith("mysql") else "postgresql"
    name = url.rsplit("/", 1)[1]
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a scratch database: {url}")
    conn = _admin_connection(backend)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if backend == "postgresql" else ""))
    finally:
        conn.close()
