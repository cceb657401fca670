#!/usr/bin/env python3
"""Upgrade benchmark (run by hand, needs Docker): netapi 1.0 → 2.0 with 2 replicas behind the
hitless proxy, under load from keep-alive and new-connection clients.

Prints failed requests, p50/p99 latency before and during the upgrade (and the ratio during /
before: target p99 ≤ 1.2×), and the wall time of the upgrade.

    python3 -m benchmarks.upgrade [--workers 2] [--steady 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.load import Load
from tests.support.net import free_port

SPEC = """
project: bench-upgrade
sets:
  netapi:
    api:
      image: netapi:{tag}
      replicas: 2
      environment: {{NETAPI_DB: /var/lib/netapi/netapi.db}}
      volumes: [bench-upgrade-data:/var/lib/netapi]
      network: {{mode: bridge, port: 9696}}
      health: {{http: /healthcheck, interval: 1s, timeout: 1s, start_period: 30s, rise: 2, fall: 3}}
      update: {{strategy: start-first, min_ready: 1s, watch: 5s}}
      frontend: {{listen: "127.0.0.1:{port}"}}
      migrations: {{expand: [python3, -m, netapi.migrate, expand]}}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="clients of each kind (keep-alive, new connection)")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds of load before the upgrade")
    args = parser.parse_args()
    import docker

    from hitless_demo.images import build_netapi_images

    build_netapi_images(docker.from_env())
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="hitless-bench-"))
    spec = folder / "hitless.yaml"

    def hitless(*argv: str) -> None:
        subprocess.run([sys.executable, "-m", "hitless", *argv, "--runtime", "docker"], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    spec.write_text(SPEC.format(tag="1.0", port=port))
    hitless("up")
    try:
        with Load("127.0.0.1", port, workers=args.workers) as load:
            time.sleep(args.steady)
            spec.write_text(SPEC.format(tag="2.0", port=port))
            began = time.monotonic()
            hitless("upgrade")
            ended = time.monotonic()
            time.sleep(1)
        before = [r.latency for r in load.records if r.started < began]
        during = [r.latency for r in load.records if began <= r.started < ended]
        failed = load.failures()
        print(f"requests: {load.count()}  failed: {len(failed)}")
        for name, latencies in (("before", before), ("during", during)):
            print(f"{name} : n={len(latencies):6d} p50={percentile(latencies, .5) * 1000:7.2f} ms  "
                  f"p99={percentile(latencies, .99) * 1000:7.2f} ms")
        print(f"p99 during / before: {percentile(during, .99) / percentile(before, .99):.2f}  (target ≤ 1.2)")
        print(f"upgrade wall time (2 replicas, incl. 5 s watch window): {ended - began:.1f} s")
    finally:
        hitless("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
