"""One answer from the answers of every worker: the master's aggregation rules. Pure data.

Each worker sees its own share of the traffic, so counts (in flight, tunnels, served, idle
connections, held requests, client connections, counters) are summed. A backend's state is
what every worker says when they agree; when they do not, the state furthest from serving
wins, so that "ready" means ready everywhere and "gone" means drained everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

View = dict[str, Any]
Reply = tuple[int, Any]

BACKEND_SUMS = ("inflight", "tunnels", "served", "idle_connections", "failures")
FRONTEND_SUMS = ("held", "held_bytes", "releasing", "connections")
# Disagreeing workers: the first of these that any of them reports.
STATE_PRECEDENCE = ("draining", "down", "warming")
# Counters of /v1/stats that must not go back when a worker is replaced (the rest are gauges).
COUNTERS = ("requests", "held", "released", "rejected", "hold_dropped", "retries",
            "upstream_failures", "bad_requests", "connections_total")


def merge_state(states: Sequence[str]) -> str:
    """The state of a backend over every worker's view (first view first)."""
    if not states:
        return "gone"
    if all(s == states[0] for s in states):
        return states[0]
    for state in STATE_PRECEDENCE:
        if state in states:
            return state
    return states[0]


def _summed(views: Sequence[tuple[int, View]], keys: Sequence[str]) -> View:
    """The first view, with each of `keys` that any view has summed over all of them."""
    out = dict(views[0][1])
    for key in keys:
        if any(key in v for _, v in views):
            out[key] = sum(v.get(key, 0) for _, v in views)
    return out


def merge_backend(views: Sequence[tuple[int, View]]) -> View:
    """One backend seen by several workers, as (worker index, its dict) pairs."""
    out = _summed(views, BACKEND_SUMS)
    out["state"] = merge_state([v["state"] for _, v in views if "state" in v])
    out["per_worker"] = [{"worker": i, "state": v.get("state"),
                          "inflight": v.get("inflight", 0)} for i, v in views]
    return out


def merge_backends(views: Sequence[tuple[int, list[View]]]) -> list[View]:
    """Backend lists of several workers: every id once, in the first worker's order."""
    by_id: dict[str, list[tuple[int, View]]] = {}
    for index, backends in views:
        for backend in backends:
            by_id.setdefault(backend["id"], []).append((index, backend))
    return [merge_backend(group) for group in by_id.values()]


def merge_frontend(views: Sequence[tuple[int, View]]) -> View:
    """One frontend seen by several workers."""
    out = _summed(views, FRONTEND_SUMS)
    out["backends"] = merge_backends([(i, v.get("backends", [])) for i, v in views])
    out["per_worker"] = [{"worker": i, "connections": v.get("connections", 0),
                          "held": v.get("held", 0), "paused": v.get("paused")}
                         for i, v in views]
    return out


def merge_frontends(views: Sequence[tuple[int, list[View]]]) -> list[View]:
    """Frontend lists of several workers: every name once, in the first worker's order."""
    by_name: dict[str, list[tuple[int, View]]] = {}
    for index, frontends in views:
        for frontend in frontends:
            by_name.setdefault(frontend["name"], []).append((index, frontend))
    return [merge_frontend(group) for group in by_name.values()]


def sum_tree(trees: Sequence[Any]) -> Any:
    """Sum numbers found at the same place in nested mappings; keys of every tree kept."""
    numbers = [t for t in trees if isinstance(t, (int, float)) and not isinstance(t, bool)]
    if numbers and len(numbers) == len(trees):
        return sum(numbers)
    mappings = [t for t in trees if isinstance(t, dict)]
    if not mappings:
        return trees[0] if trees else None
    keys: dict[str, None] = {}
    for m in mappings:
        keys.update(dict.fromkeys(m))
    return {k: sum_tree([m[k] for m in mappings if k in m]) for k in keys}


def merge_stats(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """/v1/stats of several workers (each: counters by frontend), summed."""
    return sum_tree(list(views)) if views else {}


def counters_only(stats: dict[str, Any]) -> dict[str, Any]:
    """The monotonic counters of a /v1/stats answer (what a dead worker leaves behind)."""
    return {name: {k: v for k, v in fe.items() if k in COUNTERS} for name, fe in stats.items()}


def with_retired(live: dict[str, Any], retired: dict[str, Any]) -> dict[str, Any]:
    """Live stats plus the counters of replaced workers, for frontends that still exist."""
    kept = {name: fe for name, fe in retired.items() if name in live}
    return merge_stats([live, kept]) if kept else live


def merge_replies(replies: Sequence[tuple[int, Reply]], merge: Any) -> Reply:
    """The answer to a change every worker made: the merged successes, or the first error.

    `replies` are (worker index, (status, payload)); `merge` takes (index, payload) pairs.
    """
    ok = [(i, payload) for i, (status, payload) in replies if status < 400]
    if not ok:
        return replies[0][1]
    status = next(s for _, (s, _) in replies if s < 400)
    return status, merge(ok)


def merge_wait(replies: Sequence[tuple[int, Reply | None]], backend: str,
               until: str, timeout: float) -> Reply:
    """A wait every worker must pass: 200 only when each one answered 200.

    None stands for a worker that was not running when the time ran out.
    """
    failed = [r for _, r in replies if r is None or r[0] != 200]
    if not failed:
        views = [(i, r[1]) for i, r in replies if r is not None]
        if all("inflight" in v for _, v in views):
            return 200, merge_backend(views)
        return 200, {"id": backend, "state": merge_state([v.get("state", "gone")
                                                            for _, v in views])}
    for reply in failed:
        if reply is not None and reply[0] != 504:
            return reply
    for reply in failed:
        if reply is not None:
            return reply
    return 504, {"error": f"backend {backend!r} not {until} after {timeout:g}s "
                          f"(a worker was not running)", "backend": None}
