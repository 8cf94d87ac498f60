"""The sliding-window counter itself: the same arithmetic in memory and in Redis, one Redis round trip per
request, nothing spent by a refused request, and a memory store that forgets clients whose windows passed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from apis.ratelimit import MemoryWindows, RateLimiter
from tests.private_redis import PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, so its command statistics count this test's calls only."""
    server = PrivateRedis(tmp_path / "redis", persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def script_calls(url: str) -> int:
    """How many scripts Redis has run (EVALSHA, or EVAL after a NOSCRIPT): the limiter's only command, one
    round trip each. Read from the server's own statistics, so nothing in the client is patched."""
    with redis.Redis.from_url(url) as server:
        stats = server.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_previous_window_counts_by_the_share_of_it_still_inside_the_sliding_window() -> None:
    clock = Clock(6_000_000.0)  # the start of a 60 s window
    limiter = RateLimiter(clock=clock)
    quota = limiter.quota("system", "10/minute")
    clock.now += 59
    assert all([(await limiter.hit(quota, "c")).allowed for _ in range(10)])
    assert not (await limiter.hit(quota, "c")).allowed
    # 15 s into the next window, three quarters of the previous one still count: floor(7.5) = 7 used.
    clock.now += 16
    first = await limiter.hit(quota, "c")
    assert (first.allowed, first.remaining) == (True, 2)
    assert [(await limiter.hit(quota, "c")).allowed for _ in range(3)] == [True, True, False]
    # Two windows on, nothing counts.
    clock.now += 120
    assert (await limiter.hit(quota, "c")).remaining == 9


async def test_a_refused_request_spends_no_item_of_the_quota() -> None:
    clock = Clock(6_000_000.0)
    limiter = RateLimiter(clock=clock)
    quota = limiter.quota("system", "2/second;3/minute")
    assert [(await limiter.hit(quota, "c")).allowed for _ in range(3)] == [True, True, False]
    # The refused third request did not count against the minute: one more fits once the second passes.
    clock.now += 2.5
    decision = await limiter.hit(quota, "c")
    assert (decision.allowed, decision.remaining) == (True, 0)
    assert decision.headers["RateLimit-Policy"] == '"system";q=2;w=1, "system";q=3;w=60'


async def test_a_refusal_says_when_to_come_back_and_never_zero_seconds() -> None:
    clock = Clock(6_000_000.0)
    limiter = RateLimiter(clock=clock)
    quota = limiter.quota("system", "2/minute")
    await limiter.hit(quota, "c")
    clock.now += 59.9
    await limiter.hit(quota, "c")
    refused = await limiter.hit(quota, "c")
    assert not refused.allowed
    assert refused.reset_seconds == 1
    assert refused.headers["RateLimit"] == '"system";r=0;t=1'


def test_the_memory_store_forgets_clients_whose_windows_have_passed() -> None:
    clock = Clock(6_000_000.0)
    windows = MemoryWindows(clock)
    for n in range(5000):
        windows.hit([f"k{n}"], [10], [60_000])
    assert len(windows) == 5000
    clock.now += 121  # both windows of every key have passed
    for _ in range(MemoryWindows._SWEEP_EVERY):
        windows.hit(["active"], [10_000], [60_000])
    assert len(windows) == 1


async def test_redis_counts_as_memory_does_in_one_round_trip_per_request(
    private_redis: PrivateRedis, unique: Callable[[str], str]
) -> None:
    limiter = RateLimiter(private_redis.url)
    memory = RateLimiter()
    client = unique("client")
    try:
        quota, same = limiter.quota("system", "3/hour;5/day"), memory.quota("system", "3/hour;5/day")
        await limiter.hit(quota, client)  # loads the script
        before = script_calls(private_redis.url)
        shared = [await limiter.hit(quota, client) for _ in range(3)]
        assert script_calls(private_redis.url) - before == 3
        await memory.hit(same, client)
        local = [await memory.hit(same, client) for _ in range(3)]
        assert [(d.allowed, d.remaining) for d in shared] == [(d.allowed, d.remaining) for d in local]
        assert [d.allowed for d in shared] == [True, True, False]
    finally:
        await limiter.close()
        await memory.close()


async def test_requests_arriving_together_share_one_redis_call_and_are_decided_in_order(
    private_redis: PrivateRedis, unique: Callable[[str], str]
) -> None:
    limiter = RateLimiter(private_redis.url)
    client, other = unique("client"), unique("other")
    try:
        quota = limiter.quota("system", "3/hour")
        await limiter.hit(quota, other)  # loads the script
        before = script_calls(private_redis.url)
        decisions = await asyncio.gather(
            *(limiter.hit(quota, client) for _ in range(5)), limiter.hit(quota, other)
        )
        assert script_calls(private_redis.url) - before == 1
        assert [(d.allowed, d.remaining) for d in decisions] == [
            (True, 2),
            (True, 1),
            (True, 0),
            (False, 0),
            (False, 0),
            (True, 1),
        ]
    finally:
        await limiter.close()


async def test_a_request_that_goes_away_takes_no_other_request_s_answer_with_it(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    limiter = RateLimiter(redis_url)
    client = unique("client")
    try:
        quota = limiter.quota("system", "10/hour")
        sender = asyncio.create_task(limiter.hit(quota, client))
        await asyncio.sleep(0)  # its hit is waiting for the sender
        joined = asyncio.create_task(limiter.hit(quota, client))
        await asyncio.sleep(0)
        sender.cancel()
        decision = await asyncio.wait_for(joined, 5)
        assert decision.allowed
    finally:
        await limiter.close()
