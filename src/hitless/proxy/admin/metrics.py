"""Prometheus metrics of the proxy, read from its plain counters at scrape time.

The request path only bumps integers; turning them into metric families happens here, when
someone asks, so that counting costs nothing measurable per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hitless.proxy.traffic.pool import State

if TYPE_CHECKING:
    from hitless.proxy.traffic.frontend import Frontend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class MetricsData:
    """What the metrics are made of: /v1/stats counters by frontend, the frontends' dicts
    (pause flags, backend states and in-flight counts) and, in the master, its workers."""

    stats: dict[str, dict[str, Any]]
    frontends: list[dict[str, Any]]
    workers: list[dict[str, Any]] | None = None


def local_data(frontends: Iterable[Frontend]) -> MetricsData:
    """The metrics data of the frontends of this process."""
    fes = list(frontends)
    return MetricsData(stats(fes), [fe.to_dict() for fe in fes])


class ProxyCollector(Collector):
    """Turns metrics data (of one process, or merged over the workers) into metric families."""

    def __init__(self, source: Callable[[], MetricsData]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        data = self._source()
        requests = CounterMetricFamily(
            "hitless_proxy_requests", "Responses sent to clients, by frontend and status.",
            labels=["frontend", "status"])
        held = CounterMetricFamily("hitless_proxy_held", "Requests that entered the hold.",
                                   labels=["frontend"])
        released = CounterMetricFamily("hitless_proxy_released",
                                       "Held requests released to a backend.", labels=["frontend"])
        rejected = CounterMetricFamily(
            "hitless_proxy_rejected", "Held requests answered 503 because a bound was reached.",
            labels=["frontend", "reason"])
        dropped = CounterMetricFamily("hitless_proxy_hold_dropped",
                                      "Held requests whose client went away.", labels=["frontend"])
        retries = CounterMetricFamily("hitless_proxy_retries",
                                      "Requests sent again after a backend never processed them.",
                                      labels=["frontend"])
        failed = CounterMetricFamily("hitless_proxy_upstream_failures",
                                     "Requests failed by a backend (502 or a cut response).",
                                     labels=["frontend"])
        bad = CounterMetricFamily("hitless_proxy_bad_requests",
                                  "Malformed requests answered 400.", labels=["frontend"])
        holding = GaugeMetricFamily("hitless_proxy_holding", "Requests held now.",
                                    labels=["frontend"])
        paused = GaugeMetricFamily("hitless_proxy_paused", "1 while the frontend is paused.",
                                   labels=["frontend"])
        conns = GaugeMetricFamily("hitless_proxy_connections", "Open client connections.",
                                  labels=["frontend"])
        states = GaugeMetricFamily("hitless_proxy_backend_state",
                                   "1 for the state each backend is in.",
                                   labels=["frontend", "backend", "state"])
        inflight = GaugeMetricFamily("hitless_proxy_backend_inflight",
                                     "Requests and tunnels in flight to each backend.",
                                     labels=["frontend", "backend"])
        families: list[Metric] = [requests, held, released, rejected, dropped, retries, failed,
                                  bad, holding, paused, conns, states, inflight]
        for name, s in data.stats.items():
            for status, n in sorted(s.get("requests", {}).items(), key=lambda kv: int(kv[0])):
                requests.add_metric([name, str(status)], n)
            held.add_metric([name], s.get("held", 0))
            released.add_metric([name], s.get("released", 0))
            for reason in ("max_requests", "max_bytes", "max_wait"):
                rejected.add_metric([name, reason], s.get("rejected", {}).get(reason, 0))
            dropped.add_metric([name], s.get("hold_dropped", 0))
            retries.add_metric([name], s.get("retries", 0))
            failed.add_metric([name], s.get("upstream_failures", 0))
            bad.add_metric([name], s.get("bad_requests", 0))
            holding.add_metric([name], s.get("holding", 0))
            conns.add_metric([name], s.get("connections", 0))
        for fe in data.frontends:
            name = fe["name"]
            paused.add_metric([name], 1 if fe.get("paused") else 0)
            for backend in fe.get("backends", []):
                for state in State:
                    states.add_metric([name, backend["id"], state.value],
                                      1 if backend.get("state") == state.value else 0)
                inflight.add_metric([name, backend["id"]], backend.get("inflight", 0))
        if data.workers is not None:
            live = GaugeMetricFamily("hitless_proxy_workers", "Worker processes serving now.")
            live.add_metric([], sum(1 for w in data.workers if w.get("pid") and w.get("live")))
            restarts = CounterMetricFamily("hitless_proxy_worker_restarts",
                                           "Times the master replaced a worker that died.",
                                           labels=["worker"])
            for w in data.workers:
                restarts.add_metric([str(w["index"])], w.get("restarts", 0))
            families += [live, restarts]
        yield from families


def make_registry(source: Callable[[], MetricsData]) -> CollectorRegistry:
    """A registry of its own (not the global one), holding a collector of `source`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(source))
    return registry


def render_data(data: MetricsData) -> bytes:
    """The Prometheus text exposition of `data`."""
    return render(make_registry(lambda: data))


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)


def stats(frontends: Iterable[Frontend]) -> dict[str, dict[str, object]]:
    """The same counters as plain JSON-ready data, by frontend."""
    out: dict[str, dict[str, object]] = {}
    for fe in frontends:
        h = fe.hold.stats
        out[fe.name] = {
            "requests": {str(k): v for k, v in sorted(fe.stats.status.items())},
            "held": h.held,
            "released": h.released,
            "rejected": {"max_requests": h.rejected_count, "max_bytes": h.rejected_bytes,
                         "max_wait": h.expired},
            "hold_dropped": h.dropped,
            "holding": fe.hold.count,
            "retries": fe.stats.retries,
            "upstream_failures": fe.stats.failed,
            "bad_requests": fe.stats.bad_requests,
            "connections": len(fe.clients),
            "connections_total": fe.stats.connections_total,
        }
    return out
