#!/usr/bin/env python3
"""Schema change benchmark (run by hand, needs Docker, MariaDB and PostgreSQL on loopback):
netapi 2.0 → 3.0 (a table rebuild no running version could follow) on a table of N rows, with
two replicas behind the hitless proxy, under the seeds' create/delete loop and keep-alive and
new-connection readers, done both ways in the same run:

  offline   `migrations.offline`: the whole rebuild inside the held window
  online    `migrations.online`: a copy while 2.0 serves (triggers keep it in step), then only
            the cut-over inside the held window

For each database and way it prints the held window (pause to resume: stop old, migrate, start
and gate new), failed requests, the slowest request, whether every row was kept, and the whole
upgrade's time; then the window's ratio, online / offline.

    python3 -m benchmarks.schema_change [--rows 1000000] [--databases mariadb postgresql] [--ways offline online]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from hitless_demo.localrun import create_scratch_database, drop_scratch_database, run_migrate
from hitless_demo.netapi.db.dialect import dialect_for
from tests.support.load import Load
from tests.support.net import free_port, free_port_range
from tests.support.neutron import NeutronCycle

MIGRATE = "[python3, -m, netapi.migrate, {phase}]"
WAYS = {
    "offline": "{offline: " + MIGRATE.format(phase="offline") + "}",
    "online": "{online: {copy: " + MIGRATE.format(phase="copy") + ", cutover: " + MIGRATE.format(phase="cutover") + "}}",
}
SPEC = """
project: bench-schema
sets:
  netapi:
    api:
      image: netapi:{tag}
      replicas: 2
      environment: {{NETAPI_DB_URL: "{url}"}}
      network: {{mode: host, ports: {ports}}}
      health: {{http: /healthcheck, interval: 200ms, timeout: 1s, start_period: 60s, rise: 1, fall: 3}}
      stop: {{grace: 10m}}
      update: {{strategy: start-first, min_ready: 200ms, watch: 2s}}
      frontend: {{listen: "127.0.0.1:{port}", hold: {{max_wait: 120s}}}}
      migrations: {migrations}
"""
FILL = {  # N rows of 2.0's table, in creation order; ids are random
    "mysql": ("INSERT INTO networks (id, name, description, admin_state_up, shared, status, created_at, updated_at, "
              "mtu, revision_number, project_id) SELECT UUID(), CONCAT('bench-', seq), '', 1, 0, 'ACTIVE', "
              "CONCAT('2026-01-01T00:00:00.', LPAD(seq, 7, '0'), 'Z'), CONCAT('2026-01-01T00:00:00.', LPAD(seq, 7, '0'), 'Z'), "
              "1500, 1, 'bench' FROM seq_1_to_{rows}"),
    "postgresql": ("INSERT INTO networks (id, name, description, admin_state_up, shared, status, created_at, updated_at, "
                   "mtu, revision_number, project_id) SELECT gen_random_uuid()::text, 'bench-' || s, '', TRUE, FALSE, "
                   "'ACTIVE', '2026-01-01T00:00:00.' || LPAD(s::text, 7, '0') || 'Z', "
                   "'2026-01-01T00:00:00.' || LPAD(s::text, 7, '0') || 'Z', 1500, 1, 'bench' "
                   "FROM generate_series(1, {rows}) AS s"),
}
BACKENDS = {"mariadb": "mysql", "postgresql": "postgresql"}


def sql(url: str, statement: str) -> object:
    """One statement on the benchmark's database (netapi's own driver layer); its first value."""
    conn = dialect_for(url).connect()
    try:
        return conn.scalar(statement) if statement.lstrip().upper().startswith("SELECT") else conn.execute(statement)
    finally:
        conn.close()


def at(events: list[dict], step: str) -> float:
    stamp = next(e["at"] for e in events if e.get("step") == step and e.get("status") == "done")
    return datetime.fromisoformat(stamp).timestamp()


def one(database: str, way: str, rows: int) -> dict:
    backend = BACKENDS[database]
    url = create_scratch_database(backend, prefix="bench_schema")
    folder = Path(tempfile.mkdtemp(prefix="hitless-bench-schema-"))
    port = free_port()

    def hitless(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "hitless", *argv], cwd=folder, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise SystemExit(f"hitless {' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done

    def write(tag: str) -> None:
        first = free_port_range(4) if not hasattr(write, "ports") else write.ports  # type: ignore[attr-defined]
        write.ports = first  # type: ignore[attr-defined]
        (folder / "hitless.yaml").write_text(SPEC.format(tag=tag, url=url, ports=f"{first}-{first + 3}", port=port,
                                                         migrations=WAYS[way]))

    try:
        assert run_migrate(folder, "contract", "2.0", db_url=url).returncode == 0
        began = time.monotonic()
        sql(url, FILL[backend].format(rows=rows))
        filled = time.monotonic() - began
        some_id = sql(url, "SELECT id FROM networks WHERE name = 'bench-7'")
        write("2.0")
        hitless("up")
        readers = Load("127.0.0.1", port, workers=2, path=f"/v2.0/networks/{some_id}")
        with readers, NeutronCycle("127.0.0.1", port, clients=2) as cycle:
            time.sleep(2.0)
            write("3.0")
            began = time.monotonic()
            upgrade = hitless("upgrade", "--json")
            took = time.monotonic() - began
            time.sleep(1.0)
        events = [json.loads(line) for line in upgrade.stdout.splitlines() if line.startswith("{")]
        window = at(events, "resume") - at(events, "pause")
        failed = [c for c in cycle.calls if c.error] + [r for r in readers.records if r.error or r.status != 200]
        slowest = max([c.latency for c in cycle.calls] + [r.latency for r in readers.records])
        kept = sql(url, "SELECT COUNT(*) FROM network_v3 WHERE name LIKE 'bench-%'")
        requests = len(cycle.calls) + len(readers.records)
        return {"database": database, "way": way, "rows": rows, "fill_s": filled, "window_s": window,
                "requests": requests, "failed": len(failed), "slowest_s": slowest, "kept": kept == rows,
                "upgrade_s": took}
    finally:
        hitless("down", check=False)
        drop_scratch_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    args = parser.parse_args()
    import docker

    from hitless_demo.images import build_netapi_images

    build_netapi_images(docker.from_env(timeout=600), ("2.0", "3.0"))
    results = []
    for database in args.databases:
        for way in args.ways:
            result = one(database, way, args.rows)
            results.append(result)
            print(f"{database:10} {way:7} rows {result['rows']:>9,}  held window {result['window_s']:6.2f} s  "
                  f"failed {result['failed']}/{result['requests']}  slowest request {result['slowest_s']:6.2f} s  "
                  f"every row kept: {result['kept']}  upgrade {result['upgrade_s']:6.1f} s  (fill {result['fill_s']:.1f} s)",
                  flush=True)
    for database in args.databases:
        by_way = {r["way"]: r for r in results if r["database"] == database}
        if len(by_way) == 2:
            ratio = by_way["online"]["window_s"] / by_way["offline"]["window_s"]
            print(f"{database}: held window online / offline = {ratio:.3f}")
    return 0 if all(r["failed"] == 0 and r["kept"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
