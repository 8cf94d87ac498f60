"""Rate limits per authenticated client and tier, with the ``limits`` library.

Memory storage by default; with ``STRATUM_REDIS_URL`` the counters live in Redis, so every gateway process
and host shares one budget per client. The sliding-window-counter strategy keeps two counters per key: as
cheap as a fixed window, without its burst at the window edge.

Headers follow the IETF httpapi RateLimit draft: ``RateLimit-Policy: "system";q=1200;w=60`` and
``RateLimit: "system";r=1187;t=42``.

When Redis does not answer, rate limiting fails open: requests are let through unmetered (with a full
budget in the headers), one warning is logged per outage and ``stratum_state_store_unavailable_total
{function="rate_limit"}`` counts each unmetered request. A quota protects the gateway and the vendors from a
greedy client; refusing every client because the counter store is down would be a worse outage than the
one it guards against (the vendor adapters keep their own limits and breakers).
"""

from __future__ import annotations

import asyncio
import math
import time

import msgspec
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from apis.logging import get_logger
from apis.metrics import STATE_STORE_UNAVAILABLE
from apis.state import redis_client_options

__all__ = ["Quota", "RateLimitDecision", "RateLimiter"]

log = get_logger("stratum.ratelimit")


class Quota(msgspec.Struct, frozen=True):
    name: str
    items: tuple[RateLimitItem, ...]

    @property
    def policy_header(self) -> str:
        return ", ".join(f'"{self.name}";q={i.amount};w={i.get_expiry()}' for i in self.items)


class RateLimitDecision(msgspec.Struct, frozen=True):
    allowed: bool
    quota: Quota
    remaining: int
    reset_seconds: int

    @property
    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": self.quota.policy_header,
            "RateLimit": f'"{self.quota.name}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.storage: Storage = (
            RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix="stratum-rl",
                # Every client error (refused, timed out, loading) as one StorageError, to fail open on.
                wrap_exceptions=True,
                # The same short timeouts and one-retry reconnect as the state store.
                **redis_client_options(),
            )
            if redis_url
            else MemoryStorage()
        )
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._quotas: dict[str, Quota] = {}
        # Whether the storage is known to be down: the outage is logged when it starts and when it ends,
        # not once per request. Process-wide like the storage; no per-request state.
        self._storage_down = False

    def quota(self, name: str, spec: str) -> Quota:
        """A named quota from a ``limits`` spec such as "600/minute" or "20/second;1000/hour"."""
        quota = self._quotas.get(name)
        if quota is None:
            quota = self._quotas[name] = Quota(name, tuple(parse_many(spec)))
        return quota

    async def hit(self, quota: Quota, key: str) -> RateLimitDecision:
        """Spend one request of ``key``'s budget under every item of ``quota``; the tightest one decides.
        Allowed, with a full budget, when the storage does not answer (fail open)."""
        try:
            decision = await self._hit(quota, key)
        except StorageError as exc:
            STATE_STORE_UNAVAILABLE.labels("rate_limit").inc()
            if not self._storage_down:
                self._storage_down = True
                log.warning("rate_limit_storage_unavailable", quota=quota.name, error=repr(exc.storage_error))
            first = quota.items[0]
            return RateLimitDecision(True, quota, first.amount, first.get_expiry())
        if self._storage_down:
            self._storage_down = False
            log.info("rate_limit_storage_recovered", quota=quota.name)
        return decision

    async def _hit(self, quota: Quota, key: str) -> RateLimitDecision:
        tightest: RateLimitDecision | None = None
        for item in quota.items:
            # The window stats and the hit are two storage calls: issue them together (one round trip of
            # latency on Redis instead of two). The stats are read first, so count this hit in by hand;
            # under concurrency the header can be off by the requests in flight, which the draft allows.
            (reset_at, remaining), allowed = await asyncio.gather(
                self._strategy.get_window_stats(item, quota.name, key),
                self._strategy.hit(item, quota.name, key),
            )
            remaining = max(0, remaining - 1) if allowed else 0
            # An empty window (this is its first hit) resets a full window from now.
            reset = max(0, math.ceil(reset_at - time.time())) or item.get_expiry()
            # A refusal always tells the client to wait at least a second (Retry-After: 0 invites a spin).
            decision = RateLimitDecision(allowed, quota, remaining, reset if allowed else max(1, reset))
            if not allowed:
                return decision
            if tightest is None or decision.remaining < tightest.remaining:
                tightest = decision
        assert tightest is not None
        return tightest

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        if bridge is not None:
            await bridge.get_connection().aclose()
