"""How much of a vendor's API budget this process is spending: requests, 429s and requests in flight.

``CallMeter`` counts every request a vendor client sends (each attempt and each request an auth flow adds,
since each one counts against the vendor's limits), per second of wall-clock time, in a fixed ring of
seconds. ``MeteredTransport`` wraps a vendor client's transport so that nothing reaches the vendor without
being counted and a request that fails is still taken off the in-flight count.

Counting is on every vendor call, so it is a few integer operations and no I/O: sharing the figures with
other gateway processes is ``system_apis.budgets``' background flush, which reads the ring.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

__all__ = ["RING_SECONDS", "CallMeter", "MeteredTransport", "SecondCounts"]

#: Seconds the ring keeps: Business Central's 5-minute window, plus room for a flush delayed by an outage.
RING_SECONDS = 512


class SecondCounts:
    """The counts of one second, as the ring holds them (a view: read, never kept)."""

    __slots__ = ("peak", "requests", "second", "throttled")

    def __init__(self, second: int, requests: int, throttled: int, peak: int) -> None:
        self.second = second
        self.requests = requests
        self.throttled = throttled
        self.peak = peak


class CallMeter:
    """Per-second request, 429 and peak-in-flight counts for one vendor principal. One event loop; the
    methods never await, so no lock is needed."""

    def __init__(self, vendor: str, *, clock: Callable[[], float] = time.time) -> None:
        self.vendor = vendor
        self._clock = clock
        self.in_flight = 0
        # Slot i holds the second s with s % RING_SECONDS == i; a slot whose stamp is not the second asked
        # for is stale (that second saw no call).
        self._stamp = [-1] * RING_SECONDS
        self._requests = [0] * RING_SECONDS
        self._throttled = [0] * RING_SECONDS
        self._peak = [0] * RING_SECONDS

    def _slot(self, second: int) -> int:
        slot = second % RING_SECONDS
        if self._stamp[slot] != second:
            self._stamp[slot] = second
            self._requests[slot] = 0
            self._throttled[slot] = 0
            # Requests still in flight from an earlier second are in flight in this one too.
            self._peak[slot] = self.in_flight
        return slot

    def started(self) -> None:
        """A request left for the vendor."""
        slot = self._slot(int(self._clock()))
        self.in_flight += 1
        self._requests[slot] += 1
        if self.in_flight > self._peak[slot]:
            self._peak[slot] = self.in_flight

    def finished(self, status: int | None) -> None:
        """The vendor answered ``status`` (None: no answer: refused, reset, timed out or cancelled)."""
        self.in_flight -= 1
        if status == 429:
            self._throttled[self._slot(int(self._clock()))] += 1

    def touch(self) -> int:
        """Open the current second (so requests in flight across it count in its peak); the second."""
        second = int(self._clock())
        self._slot(second)
        return second

    def now(self) -> float:
        return self._clock()

    def counts(self, second: int) -> SecondCounts | None:
        """What the ring holds for ``second``; None when it saw no call or fell out of the ring."""
        slot = second % RING_SECONDS
        if self._stamp[slot] != second:
            return None
        return SecondCounts(second, self._requests[slot], self._throttled[slot], self._peak[slot])

    def requests_since(self, window_seconds: int) -> int:
        """Requests sent in the last ``window_seconds`` seconds, this one included."""
        return self._sum(self._requests, window_seconds)

    def throttled_since(self, window_seconds: int) -> int:
        """429 answers in the last ``window_seconds`` seconds, this one included."""
        return self._sum(self._throttled, window_seconds)

    def peak_since(self, window_seconds: int) -> int:
        """The most requests in flight at once in the last ``window_seconds`` seconds (at least as many as
        are in flight now)."""
        now = int(self._clock())
        peak = self.in_flight
        for second in range(now - window_seconds + 1, now + 1):
            slot = second % RING_SECONDS
            if self._stamp[slot] == second and self._peak[slot] > peak:
                peak = self._peak[slot]
        return peak

    def _sum(self, values: list[int], window_seconds: int) -> int:
        now = int(self._clock())
        total = 0
        for second in range(now - min(window_seconds, RING_SECONDS) + 1, now + 1):
            slot = second % RING_SECONDS
            if self._stamp[slot] == second:
                total += values[slot]
        return total


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts each request through ``inner`` on ``meter``: in flight until its answer's headers arrive (or it
    fails), a 429 answer as a refusal."""

    def __init__(self, inner: httpx.AsyncBaseTransport, meter: CallMeter) -> None:
        self._inner = inner
        self._meter = meter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._meter.started()
        status: int | None = None
        try:
            response = await self._inner.handle_async_request(request)
            status = response.status_code
            return response
        finally:
            self._meter.finished(status)

    async def aclose(self) -> None:
        await self._inner.aclose()
