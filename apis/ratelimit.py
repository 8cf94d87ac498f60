"""Rate limits per authenticated client and tier: a sliding-window counter, in memory or shared through Redis.

Memory by default; with ``STRATUM_REDIS_URL`` the counters live in Redis, so every gateway process and host
shares one budget per client. Quotas are written in the ``limits`` library's notation ("600/minute",
"20/second;1000/hour") and parsed by it.

The strategy is the sliding-window counter (as ``limits`` names it): per quota item, a count for the current
fixed window and one for the previous; a request is allowed while ``previous * (share of the previous window
still inside the sliding window) + current`` stays within the amount. As cheap as a fixed window, without
its burst at the window edge. Windows are aligned to the clock (Redis's, when shared), so every process
agrees on them.

It is our own code rather than ``limits``' strategies because a governed request must cost one Redis round
trip: ``limits`` reads the window and records the hit in separate scripts (two round trips and 13 commands
per request, x0.66 of the memory-backed throughput in bench/gateway_overhead.py), and has no call that
decides every item of a quota at once. Here one script (``_HIT_SCRIPT``) decides all of a quota's items,
records the hit only if every item allows it (a refused request spends nothing), and answers the figures the
headers need; requests that arrive while a call is in flight share the next one (``RedisWindows``).

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
import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import redis
import redis.asyncio
import redis.exceptions
from limits import RateLimitItem, parse_many

from apis.logging import get_logger
from apis.metrics import STATE_STORE_UNAVAILABLE
from apis.state import REDIS_SOCKET_TIMEOUT_SECONDS, redis_client_options

__all__ = ["MemoryWindows", "Quota", "RateLimitDecision", "RateLimiter", "RedisWindows"]

log = get_logger("stratum.ratelimit")
KEY_PREFIX = "stratum-rl"


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


class WindowsUnavailable(Exception):
    """The counter store did not answer (Redis down, timed out, refused)."""


# One item's outcome: (used, reset in ms). ``used`` is the weighted count with this request in, or, for a
# refused request, -1 on the item that refused it; reset is when the count next drops (a window's length
# when the item had no count yet).
ItemOutcome = tuple[int, int]


def _item_outcome(
    previous: int, current: int, elapsed_ms: int, expiry_ms: int, amount: int
) -> tuple[bool, ItemOutcome]:
    """The arithmetic both stores share (the Lua script below is the same, line for line)."""
    previous_left_ms = expiry_ms - elapsed_ms  # how long the previous window still counts
    weighted = math.floor(previous * previous_left_ms / expiry_ms) + current
    if previous == 0 and current == 0:
        reset_ms = expiry_ms
    else:
        reset_ms = previous_left_ms  # the current window's count leaves no earlier than its end
        if previous:
            # The previous window's count drops by one every expiry/previous ms.
            reset_ms = min(reset_ms, int(previous_left_ms % (expiry_ms / previous)) or 1)
    if weighted + 1 > amount:
        return False, (-1, reset_ms)
    return True, (weighted + 1, reset_ms)


class MemoryWindows:
    """The counters in this process: per key, (window number, current count, previous count).

    Bounded: every ``_SWEEP_EVERY`` hits, keys whose windows have both passed (they count for nothing any
    more) are dropped, so the store holds only the clients seen in the last two windows."""

    _SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, list[int]] = {}
        self._hits = 0

    def __len__(self) -> int:
        return len(self._windows)

    def hit(
        self, keys: Sequence[str], amounts: Sequence[int], expiries_ms: Sequence[int]
    ) -> list[ItemOutcome]:
        now_ms = int(self._clock() * 1000)
        self._hits += 1
        if self._hits % self._SWEEP_EVERY == 0:
            self._sweep(now_ms)
        outcomes: list[ItemOutcome] = []
        states: list[list[int]] = []
        allowed = True
        for key, amount, expiry_ms in zip(keys, amounts, expiries_ms, strict=True):
            window = now_ms // expiry_ms
            state = self._windows.get(key)
            if state is None or state[0] < window - 1:
                state = [window, 0, 0, expiry_ms]
            elif state[0] == window - 1:
                state = [window, 0, state[1], expiry_ms]
            ok, outcome = _item_outcome(state[2], state[1], now_ms - window * expiry_ms, expiry_ms, amount)
            states.append(state)
            outcomes.append(outcome)
            allowed = allowed and ok
        if allowed:
            for key, state in zip(keys, states, strict=True):
                state[1] += 1
                self._windows[key] = state
        return outcomes

    def _sweep(self, now_ms: int) -> None:
        stale = [
            key for key, (window, _, _, expiry) in self._windows.items() if window < now_ms // expiry - 1
        ]
        for key in stale:
            del self._windows[key]

    async def close(self) -> None:
        self._windows.clear()


# Several requests' hits in one call, decided one after another as if sent one by one. KEYS: every request's
# item hashes, in order. ARGV: the number of requests, then per request its number of items and, per item,
# its amount and window in ms. Reads the server's clock, so every gateway process agrees on the windows; a
# request's hit is written only when every one of its items allows it. Answers, per item of each request,
# the used count (-1 on the item that refused it) and the reset in ms: the same as _item_outcome.
_HIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local key = 0
local arg = 2
for r = 1, tonumber(ARGV[1]) do
  local items = tonumber(ARGV[arg])
  arg = arg + 1
  local windows = {}
  local allowed = true
  for i = 1, items do
    local amount = tonumber(ARGV[arg])
    local expiry = tonumber(ARGV[arg + 1])
    arg = arg + 2
    local name = KEYS[key + i]
    local window = math.floor(now / expiry)
    local stored = redis.call('HMGET', name, 'w', 'c', 'p')
    local w = tonumber(stored[1])
    local current = tonumber(stored[2]) or 0
    local previous = tonumber(stored[3]) or 0
    if w == nil or w < window - 1 then
      current, previous = 0, 0
    elseif w == window - 1 then
      current, previous = 0, current
    end
    local left = expiry - (now - window * expiry)
    local weighted = math.floor(previous * left / expiry) + current
    local reset = expiry
    if previous ~= 0 or current ~= 0 then
      reset = left
      if previous ~= 0 then
        local drop = math.floor(math.fmod(left, expiry / previous))
        if drop == 0 then drop = 1 end
        if drop < reset then reset = drop end
      end
    end
    if weighted + 1 > amount then
      allowed = false
      out[#out + 1] = -1
    else
      out[#out + 1] = weighted + 1
    end
    out[#out + 1] = reset
    windows[i] = {name, window, current, previous, expiry}
  end
  if allowed then
    for i = 1, items do
      local s = windows[i]
      redis.call('HSET', s[1], 'w', s[2], 'c', s[3] + 1, 'p', s[4])
      redis.call('PEXPIRE', s[1], s[5] * 2)
    end
  end
  key = key + items
end
return out
"""


_Hit = tuple[Sequence[str], Sequence[int], Sequence[int]]


class RedisWindows:
    """The counters in Redis: one script call, one round trip, per request whatever the quota's items.

    One sender task sends the calls, one at a time over one connection; the hits that arrive while a call is
    in flight go together in the next (the script takes several requests' hits and decides each by itself,
    in order, as if sent alone). Unloaded, a request's hit is a call of its own; under load a call's fixed
    cost (redis-py's CPU, a round trip's syscalls and wake-ups) is shared by the requests that waited for
    it, which is what keeps Redis-backed limits near the memory-backed throughput
    (bench/gateway_overhead.py)."""

    def __init__(self, redis_url: str) -> None:
        # The state store's options, except two that cost a third of each call on this path (54 -> 38 us of
        # CPU per call, 5,000 calls): the socket timeout, which redis-py enforces with a wait_for (a task on
        # Python 3.11) around both the send and the read, is one asyncio.timeout around the whole call
        # instead; and no periodic health-check PING: a connection Redis dropped fails the next call at
        # once, and the client's retry reconnects, so a check ahead of it buys nothing here.
        options = {**redis_client_options(), "socket_timeout": None, "health_check_interval": 0}
        # One connection, not a pool: the calls go one at a time anyway, and taking and returning a pooled
        # connection, with redis-py's script wrapper, was over half of each call's CPU (80 -> 33 us per
        # call, 4,000 calls).
        self._redis = redis.asyncio.Redis.from_url(redis_url, single_connection_client=True, **options)
        self._sha = hashlib.sha1(_HIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - how Redis names a script
        self._waiting: list[tuple[_Hit, asyncio.Future[list[ItemOutcome]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def hit(
        self, keys: Sequence[str], amounts: Sequence[int], expiries_ms: Sequence[int]
    ) -> list[ItemOutcome]:
        answer: asyncio.Future[list[ItemOutcome]] = asyncio.get_running_loop().create_future()
        self._waiting.append(((keys, amounts, expiries_ms), answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="stratum-rate-limit-sender")
        return await answer

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._call([hit for hit, _ in batch])
            except WindowsUnavailable as exc:
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            except BaseException as exc:  # closed under it
                for _, answer in (*batch, *self._waiting):
                    if not answer.done():
                        answer.set_exception(WindowsUnavailable(repr(exc)))
                self._waiting = []
                raise
            for (_, answer), outcome in zip(batch, outcomes, strict=True):
                if not answer.done():
                    answer.set_result(outcome)

    async def _call(self, hits: list[_Hit]) -> list[list[ItemOutcome]]:
        keys: list[str] = []
        args: list[int] = [len(hits)]
        for hit_keys, amounts, expiries_ms in hits:
            keys += hit_keys
            args.append(len(hit_keys))
            for amount, expiry_ms in zip(amounts, expiries_ms, strict=True):
                args += (amount, expiry_ms)
        try:
            # A call cut short by the timeout leaves no half-read reply behind: redis-py drops a connection
            # whose call was cancelled.
            async with asyncio.timeout(REDIS_SOCKET_TIMEOUT_SECONDS):
                try:
                    reply = await self._run("EVALSHA", self._sha, keys, args)
                except redis.exceptions.NoScriptError:  # a restarted or flushed Redis: send the script
                    reply = await self._run("EVAL", _HIT_SCRIPT, keys, args)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise WindowsUnavailable(repr(exc)) from exc
        outcomes: list[list[ItemOutcome]] = []
        at = 0
        for hit_keys, _, _ in hits:
            outcomes.append(
                [(int(reply[at + 2 * i]), int(reply[at + 2 * i + 1])) for i in range(len(hit_keys))]
            )
            at += 2 * len(hit_keys)
        return outcomes

    async def _run(self, command: str, script: str, keys: list[str], args: list[int]) -> Any:
        return await self._redis.execute_command(  # type: ignore[no-untyped-call]
            command, script, len(keys), *keys, *args
        )

    async def close(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._redis.aclose()


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.windows: MemoryWindows | RedisWindows = (
            RedisWindows(redis_url) if redis_url else MemoryWindows(clock)
        )
        self._quotas: dict[str, Quota] = {}
        # Per quota: its items' amounts and windows in ms, worked out once.
        self._shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        # Whether the store is known to be down: the outage is logged when it starts and when it ends, not
        # once per request. Process-wide like the store; no per-request state.
        self._storage_down = False

    def quota(self, name: str, spec: str) -> Quota:
        """A named quota from a ``limits`` spec such as "600/minute" or "20/second;1000/hour"."""
        quota = self._quotas.get(name)
        if quota is None:
            quota = self._quotas[name] = Quota(name, tuple(parse_many(spec)))
            self._shapes[name] = (
                tuple(item.amount for item in quota.items),
                tuple(item.get_expiry() * 1000 for item in quota.items),
            )
        return quota

    async def hit(self, quota: Quota, key: str) -> RateLimitDecision:
        """Spend one request of ``key``'s budget under every item of ``quota``, or none if any item refuses;
        the tightest item decides the headers. Allowed, with a full budget, when Redis does not answer."""
        amounts, expiries_ms = self._shapes.get(quota.name) or self._shape(quota)
        # The key names the quota, the window and the client, never a secret (client ids are public).
        keys = [f"{KEY_PREFIX}:{quota.name}:{expiry}:{key}" for expiry in expiries_ms]
        windows = self.windows
        if isinstance(windows, MemoryWindows):
            outcomes = windows.hit(keys, amounts, expiries_ms)
        else:
            try:
                outcomes = await windows.hit(keys, amounts, expiries_ms)
            except WindowsUnavailable as exc:
                STATE_STORE_UNAVAILABLE.labels("rate_limit").inc()
                if not self._storage_down:
                    self._storage_down = True
                    log.warning("rate_limit_storage_unavailable", quota=quota.name, error=str(exc))
                first = quota.items[0]
                return RateLimitDecision(True, quota, first.amount, first.get_expiry())
            if self._storage_down:
                self._storage_down = False
                log.info("rate_limit_storage_recovered", quota=quota.name)
        return _decide(quota, amounts, outcomes)

    def _shape(self, quota: Quota) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = (
            tuple(item.amount for item in quota.items),
            tuple(item.get_expiry() * 1000 for item in quota.items),
        )
        self._shapes[quota.name] = shape
        return shape

    async def close(self) -> None:
        await self.windows.close()


def _decide(quota: Quota, amounts: Sequence[int], outcomes: Sequence[ItemOutcome]) -> RateLimitDecision:
    tightest: RateLimitDecision | None = None
    for amount, (used, reset_ms) in zip(amounts, outcomes, strict=True):
        reset = math.ceil(reset_ms / 1000)
        if used < 0:
            # A refusal always tells the client to wait at least a second (Retry-After: 0 invites a spin).
            return RateLimitDecision(False, quota, 0, max(1, reset))
        decision = RateLimitDecision(True, quota, max(0, amount - used), reset)
        if tightest is None or decision.remaining < tightest.remaining:
            tightest = decision
    assert tightest is not None
    return tightest
