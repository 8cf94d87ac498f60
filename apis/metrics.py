"""Prometheus metrics: requests and latency by tier, route template and status.

Labels use the route *template* (``/system/v1/crm/accounts/{id:str}``), never the raw path, so ids cannot
blow up the series count. With several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` and /metrics
aggregates them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REQUESTS",
    "REQUEST_SECONDS",
    "STATE_STORE_EVICTIONS",
    "STATE_STORE_UNAVAILABLE",
    "collect_before_scrape",
    "refresh_before_scrape",
    "render_metrics",
]

# Gauges read from elsewhere (the run database) when /metrics is scraped, not kept up to date on every change.
_SCRAPE_HOOKS: list[Callable[[], Awaitable[None]]] = []


def collect_before_scrape(hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Run ``hook`` before each scrape; returns the closer that removes it (for ``Runtime.on_close``)."""
    _SCRAPE_HOOKS.append(hook)

    async def remove() -> None:
        if hook in _SCRAPE_HOOKS:
            _SCRAPE_HOOKS.remove(hook)

    return remove


async def refresh_before_scrape(timeout_seconds: float = 2.0) -> None:
    """A hook that fails or is slow leaves its gauges as they were; the scrape itself always answers."""
    for hook in list(_SCRAPE_HOOKS):
        try:
            await asyncio.wait_for(hook(), timeout_seconds)
        except Exception:  # noqa: S112 - stale gauges beat a failed scrape
            continue


REQUESTS = Counter(
    "stratum_http_requests_total",
    "HTTP requests answered, by tier, route template, method and status.",
    ["tier", "route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "stratum_http_request_duration_seconds",
    "Time to answer an HTTP request, by tier, route template and method.",
    ["tier", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# One series per gateway function, so an alert says what an outage did: "rate_limit" let requests through
# unmetered (fail open); "idempotency", "events_publish", "events_read" and "crm_event_dedupe" refused.
STATE_STORE_UNAVAILABLE = Counter(
    "stratum_state_store_unavailable_total",
    "Operations that found the gateway state store (Redis) unavailable, by the function that needed it.",
    ["function"],
)

# The in-process state store at its bound drops its oldest keys (apis.state.MEMORY_STORE_MAX_BYTES): any
# increase means idempotency records are kept for less than their 24 h, and the gateway wants Redis.
STATE_STORE_EVICTIONS = Counter(
    "stratum_state_store_evictions_total",
    "Keys the in-process state store dropped before they expired, to stay within its memory bound.",
)


def render_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
