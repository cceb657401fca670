"""Prometheus metrics of the proxy, read from its plain counters at scrape time.

The request path only bumps integers; turning them into metric families happens here, when
someone asks, so that counting costs nothing measurable per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hitless.proxy.pool import State

if TYPE_CHECKING:
    from hitless.proxy.frontend import Frontend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ProxyCollector(Collector):
    """Collects the counters of every frontend of one proxy process."""

    def __init__(self, frontends: Callable[[], Iterable[Frontend]]) -> None:
        self._frontends = frontends

    def collect(self) -> Iterator[Metric]:
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
        for fe in self._frontends():
            name = fe.name
            for status, n in sorted(fe.stats.status.items()):
                requests.add_metric([name, str(status)], n)
            h = fe.hold.stats
            held.add_metric([name], h.held)
            released.add_metric([name], h.released)
            rejected.add_metric([name, "max_requests"], h.rejected_count)
            rejected.add_metric([name, "max_bytes"], h.rejected_bytes)
            rejected.add_metric([name, "max_wait"], h.expired)
            dropped.add_metric([name], h.dropped)
            retries.add_metric([name], fe.stats.retries)
            failed.add_metric([name], fe.stats.failed)
            bad.add_metric([name], fe.stats.bad_requests)
            holding.add_metric([name], fe.hold.count)
            paused.add_metric([name], 1 if fe.hold.paused else 0)
            conns.add_metric([name], len(fe.clients))
            for backend in fe.pool.backends.values():
                for state in State:
                    states.add_metric([name, backend.id, state.value],
                                      1 if backend.state is state else 0)
                inflight.add_metric([name, backend.id], backend.inflight)
        yield from (requests, held, released, rejected, dropped, retries, failed, bad,
                    holding, paused, conns, states, inflight)


def make_registry(frontends: Callable[[], Iterable[Frontend]]) -> CollectorRegistry:
    """A registry of its own (not the global one), holding the proxy's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(frontends))
    return registry


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
