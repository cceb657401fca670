"""Proxy benchmark: the same load directly against a fast backend, through hitless, through HAProxy.

    python3 -m benchmarks.proxy [--duration 10] [--rounds 3] [--connections 50] [--rate 1000]
                                [--workers 1] [--wrk-threads 1] [--baseline SRC] [--json]

1. Throughput: `wrk` (keep-alive, small responses) against each target in turn; prints
   requests/s, p50/p99 latency and the ratios (hitless / HAProxy, each / direct).
2. Added latency: one keep-alive connection paced at a fixed --rate (default 1,000 req/s),
   timed per request; added latency = percentile through a proxy minus the same direct.

--workers N runs hitless with N workers and HAProxy with `nbthread N`. --baseline SRC also runs
the proxy of another checkout (its `src` directory, e.g. a `git worktree` of main) in the same run,
as the target "baseline", so a change is measured against what it changes.

Targets (DESIGN.md): hitless >= 0.5 x HAProxy's requests/s; added p50 <= 0.3 ms at 1,000 req/s.
HAProxy and wrk come from Debian's packages and are installed with apt-get when missing.
Every process started here is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]  # where `python3 -m benchmarks.proxy` finds this module
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            b"\r\nHello, world!")


# -- the fast backend (run in its own process) ---------------------------------------------

class FastBackend(asyncio.Protocol):
    """Answers every request head with a fixed small response; no parsing beyond counting."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4:] if n else data
        if n:
            self.transport.write(RESPONSE * n)


def serve_backend(port: int) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FastBackend, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


# -- helpers ---------------------------------------------------------------------------------

def ensure_tool(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit(f"{binary} is missing: apt-get install {package}")
    print(f"installing {package} with apt-get ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    path = shutil.which(binary)
    if not path:
        sys.exit(f"{binary} still missing after installing {package}")
    return path


def backend_command(port: int) -> list[str]:
    """The command that runs the fast backend on `port` (run it with cwd=REPO)."""
    return [sys.executable, "-m", "benchmarks.proxy", "--serve-backend", str(port)]


def wait_port(port: int, timeout: float = 10.0) -> None:
    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True

    wait_until(listening, timeout, interval=0.02, message=f"something listening on {port}")


def wait_http(port: int, timeout: float = 10.0) -> None:
    def answers_200() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return s.recv(100).startswith(b"HTTP/1.1 200")

    wait_until(answers_200, timeout, message=f"a 200 from port {port}")


def haproxy_config(listen: int, backend: int, threads: int) -> str:
    return f"""global
    nbthread {threads}
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend bench
    bind 127.0.0.1:{listen}
    default_backend app
backend app
    option forwardfor
    http-reuse always
    server s1 127.0.0.1:{backend}
"""


def run_wrk(wrk: str, port: int, duration: int, connections: int, threads: int) -> dict[str, float]:
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "errors": 0 if errors is None else 1}


def paced_latency(port: int, rate: float, count: int) -> list[float]:
    """Milliseconds per request on one keep-alive connection, sent at a fixed rate."""
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    interval = 1.0 / rate
    samples = []
    try:
        start = time.perf_counter()
        for i in range(count):
            due = start + i * interval
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now) if due - now > 0.0005 else None
                while time.perf_counter() < due:
                    pass
            t0 = time.perf_counter_ns()
            sock.sendall(request)
            data = b""
            while not data.endswith(b"Hello, world!"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("connection closed")
                data += chunk
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        sock.close()
    return samples


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process by its PID, then SIGKILL what has not exited 10 s later."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)


def pctl(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# -- the run ---------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per target")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0, help="req/s of the latency run")
    parser.add_argument("--latency-requests", type=int, default=5000)
    parser.add_argument("--no-haproxy", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="hitless workers, and HAProxy's nbthread")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per target (median kept)")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="src directory of another checkout whose proxy runs as 'baseline'")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return 0

    wrk = ensure_tool("wrk", "wrk")
    haproxy = None if args.no_haproxy else ensure_tool("haproxy", "haproxy")
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="hitless-bench-"))
    try:
        backend_port, hitless_port, haproxy_port, baseline_port = (free_port() for _ in range(4))
        procs.append(subprocess.Popen(backend_command(backend_port), cwd=REPO, stdout=subprocess.DEVNULL))
        wait_port(backend_port)
        targets = {"direct": backend_port}
        # The baseline may predate --workers and --state-file: it gets neither.
        runs = [("hitless", hitless_port, None,
                 ["--workers", str(args.workers), "--state-file", str(tmp / "state.json")])]
        if args.baseline:
            runs.append(("baseline", baseline_port, args.baseline.resolve(), []))
        for name, port, src, extra in runs:
            config = tmp / f"{name}.json"
            config.write_text(json.dumps({"frontends": [{
                "name": "bench", "listen": f"127.0.0.1:{port}",
                "health": {"path": None, "interval": 1.0, "rise": 1},
                "backends": [f"127.0.0.1:{backend_port}"]}]}))
            env = {**os.environ, "PYTHONPATH": str(src)} if src else None
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "hitless.proxy", "--admin-socket", str(tmp / f"{name}.sock"),
                 "--config", str(config), "--log-level", "warning", *extra], env=env))
            wait_http(port)
            targets[name] = port
        if haproxy:
            cfg = tmp / "haproxy.cfg"
            cfg.write_text(haproxy_config(haproxy_port, backend_port, args.workers))
            procs.append(subprocess.Popen([haproxy, "-f", str(cfg), "-db"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_http(haproxy_port)
            targets["haproxy"] = haproxy_port

        for port in targets.values():
            run_wrk(wrk, port, 1, args.connections, args.wrk_threads)  # warm-up
        # Rounds interleave the targets, so that drift in the machine's speed over the run
        # weighs on each alike; each target's median round is its result.
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, port in targets.items():
                rounds[name].append(run_wrk(wrk, port, args.duration, args.connections, args.wrk_threads))
        results = {name: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
                   for name, runs in rounds.items()}
        latency: dict[str, dict[str, float]] = {}
        for name, port in targets.items():
            paced_latency(port, args.rate, 500)  # warm-up
            samples = paced_latency(port, args.rate, args.latency_requests)
            latency[name] = {"p50_ms": pctl(samples, 50), "p99_ms": pctl(samples, 99),
                             "mean_ms": statistics.fmean(samples)}
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"throughput: wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s, median of "
          f"{args.rounds} interleaved rounds, keep-alive, "
          f"13-byte responses ({os.cpu_count()} CPUs; hitless workers = HAProxy nbthread = {args.workers})")
    print(f"  {'target':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs direct':>10}")
    for name, r in results.items():
        print(f"  {name:<8} {r['rps']:>10.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
              f"{r['rps'] / results['direct']['rps']:>10.2f}")
    summary: dict[str, float] = {}
    if "haproxy" in results:
        ratio = results["hitless"]["rps"] / results["haproxy"]["rps"]
        summary["hitless_vs_haproxy"] = ratio
        print(f"  hitless / haproxy = {ratio:.2f}  (target >= 0.50: "
              f"{'met' if ratio >= 0.5 else 'MISSED'})")
        if "baseline" in results:
            summary["baseline_vs_haproxy"] = results["baseline"]["rps"] / results["haproxy"]["rps"]
            print(f"  baseline / haproxy = {summary['baseline_vs_haproxy']:.2f}")
    if "baseline" in results:
        summary["hitless_vs_baseline"] = results["hitless"]["rps"] / results["baseline"]["rps"]
        print(f"  hitless / baseline = {summary['hitless_vs_baseline']:.2f}")
    print(f"added latency at {args.rate:.0f} req/s, one keep-alive connection, "
          f"{args.latency_requests} requests")
    print(f"  {'target':<8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10}")
    direct = latency["direct"]
    for name, r in latency.items():
        print(f"  {name:<8} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
              f"{r['p50_ms'] - direct['p50_ms']:>10.3f} {r['p99_ms'] - direct['p99_ms']:>10.3f}")
    added = latency["hitless"]["p50_ms"] - direct["p50_ms"]
    summary["hitless_added_p50_ms"] = added
    print(f"  hitless added p50 = {added:.3f} ms  (target <= 0.300: "
          f"{'met' if added <= 0.3 else 'MISSED'})")
    if args.json:
        print(json.dumps({"throughput": results, "latency": latency, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
