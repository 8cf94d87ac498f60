"""Vendor API budgets: how much of each vendor's API limits Stratum spends (`/system/v1/vendor-api-budgets`).

Per vendor, the figures its limits call for:

- Salesforce: the org's daily API requests, as Salesforce itself reports them in ``Sforce-Limit-Info`` on
  every response (scope ``vendor``): the latest any Stratum process saw, through the shared store, else
  this process's latest; unknown until a Salesforce response was seen.
- NetSuite: requests in flight now and the peak over the last minute, against the account's concurrency
  limit (by service tier and SuiteCloud Plus licences), and the 429 refusals in that minute.
- Business Central: requests in the current 5-minute sliding window against 6,000, and requests in flight
  against 100 (both per principal), and the 429 refusals in the window.
- Kantata: requests in the last minute and its 429s (Kantata documents no limit: ``limit`` is null).
- Anaplan: requests in the last minute against about 600.

Counting happens on every vendor call (``system_apis.call_meter``: integers in a ring of seconds, no I/O).
With Redis configured, a background task adds each process's new counts to shared counters once a second
(and a read adds them first), so the figures are every Stratum process's together (scope ``shared``): a
request count per 10-second bucket, each process's peak in flight per 5-second bucket and its requests in
flight per second. A shared window is therefore whole buckets, up to 10 seconds longer than the window
(erring high, as a budget should); a shared peak adds each process's own peak in a bucket, an upper bound of
the peak all had at once. Without Redis there is one process and the figures are its own (scope
``process``).

A state store outage never touches a vendor call (counting never waits for the store). The budgets still
answer: with this process's own counts, scope ``process``, and ``source`` saying the shared figure is
unavailable; the counts not yet added are added when the store is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

import msgspec
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from apis.logging import get_logger
from apis.metrics import STATE_STORE_UNAVAILABLE
from apis.routing import operation
from apis.state import StateStoreUnavailable, redis_answering, redis_client_options
from contracts.models.operations import ApiBudget, ApiBudgetList
from system_apis.call_meter import RING_SECONDS, CallMeter
from system_apis.vendor_checks import inner_adapters
from system_apis.vendor_http import VendorHttpClient

if TYPE_CHECKING:
    from apis.config import Settings

__all__ = ["Increment", "MemoryCounters", "RedisCounters", "SharedCounters", "VendorBudgets", "budget_routes"]

# Adapters that talk to a Salesforce org and so report its daily allowance from Sforce-Limit-Info: the CRM,
# and Certinia PSA (a managed package in an org; by default the CRM's own, whose allowance both then spend).
_SALESFORCE_ORGS = frozenset({"salesforce", "certinia"})

log = get_logger("stratum.budgets")

#: Window of the per-minute figures (Kantata, Anaplan) and of NetSuite's peak and refusals.
MINUTE = 60
#: Seconds of requests one shared counter holds; a shared window is read as whole buckets.
REQUEST_BUCKET_SECONDS = 10
#: Seconds one shared peak-in-flight counter covers.
PEAK_BUCKET_SECONDS = 5
#: How often each process adds its new counts to the shared counters.
FLUSH_INTERVAL_SECONDS = 1.0
#: A flush or a shared read that takes longer is given up: the state store is taken to be down.
STORE_DEADLINE_SECONDS = 1.0
#: How long shared peak and in-flight counters are kept.
PEAK_KEEP_SECONDS = MINUTE + 2 * PEAK_BUCKET_SECONDS
IN_FLIGHT_KEEP_SECONDS = 5
#: After the store failed, reads use this process's own counts for this long before asking it again, so
#: the endpoint stays fast through an outage.
STORE_RETRY_SECONDS = 5.0

Scope = Literal["shared", "process"]


@dataclasses.dataclass
class _Flushed:
    """What one meter has already added to the shared counters (so a flush adds only what is new)."""

    # Requests and 429s added, per second.
    requests: dict[int, int] = dataclasses.field(default_factory=dict)
    throttled: dict[int, int] = dataclasses.field(default_factory=dict)
    # This process's peak added, per peak bucket.
    peak: dict[int, int] = dataclasses.field(default_factory=dict)
    # The second the last flush succeeded in: the next one looks again from there.
    through: int | None = None
    # (second, requests in flight) this process added to that second's in-flight counter.
    in_flight: tuple[int, int] | None = None

    def forget_before(self, second: int) -> None:
        for counts in (self.requests, self.throttled):
            for old in [s for s in counts if s < second]:
                del counts[old]
        for old in [b for b in self.peak if b < second // PEAK_BUCKET_SECONDS]:
            del self.peak[old]


class _VendorUsage(msgspec.Struct, kw_only=True, frozen=True):
    used: int
    limit: int
    observed_at: dt.datetime


_usage_decoder = msgspec.json.Decoder(_VendorUsage)
#: The vendor's own usage figure is kept as long as its window (Salesforce's: a day).
USAGE_KEEP_SECONDS = 24 * 3600


@dataclasses.dataclass(frozen=True)
class _Window:
    requests: int
    throttled: int
    peak: int
    in_flight: int


class _Metered:
    """One vendor client's meter and what of it is in the shared counters."""

    def __init__(self, adapter: object, http: VendorHttpClient) -> None:
        self.adapter = adapter
        self.vendor = http.vendor
        self.meter: CallMeter = http.meter
        self.key = f"vendor-budget:{http.vendor}:{http.principal_key}"
        self.flushed = _Flushed()
        # The vendor's own usage figure (Salesforce's Sforce-Limit-Info) last put in the shared store, and the
        # latest any process put there, as last read.
        self.published: _VendorUsage | None = None
        self.shared_usage: _VendorUsage | None = None

    @property
    def vendor_usage(self) -> _VendorUsage | None:
        """The vendor's own count of its daily limit, as this process last saw it (Salesforce only)."""
        usage = getattr(self.adapter, "api_usage", None)
        if usage is None or usage.observed_at is None:
            return None
        return _VendorUsage(used=usage.used, limit=usage.limit, observed_at=usage.observed_at)

    def local(self, window_seconds: int) -> _Window:
        meter = self.meter
        return _Window(
            requests=meter.requests_since(window_seconds),
            throttled=meter.throttled_since(window_seconds),
            peak=meter.peak_since(min(window_seconds, MINUTE)),
            in_flight=meter.in_flight,
        )

    def flush_plan(self, *, window_seconds: int) -> tuple[list[Increment], Callable[[], None]]:
        """What the meter counted since the last flush, as increments of the shared counters, and what to
        call once they are stored (a failed flush is tried again, whole, by the next one)."""
        meter, flushed = self.meter, self.flushed
        now = meter.touch()
        start = max(now - RING_SECONDS + 1, flushed.through if flushed.through is not None else now - 1)
        requests: dict[int, int] = {}
        throttled: dict[int, int] = {}
        peaks: dict[int, int] = {}
        seen: dict[int, tuple[int, int]] = {}
        for second in range(start, now + 1):
            counts = meter.counts(second)
            if counts is None:
                continue
            seen[second] = (counts.requests, counts.throttled)
            bucket = second // REQUEST_BUCKET_SECONDS
            new_requests = counts.requests - flushed.requests.get(second, 0)
            new_throttled = counts.throttled - flushed.throttled.get(second, 0)
            if new_requests:
                requests[bucket] = requests.get(bucket, 0) + new_requests
            if new_throttled:
                throttled[bucket] = throttled.get(bucket, 0) + new_throttled
            peak_bucket = second // PEAK_BUCKET_SECONDS
            peaks[peak_bucket] = max(peaks.get(peak_bucket, 0), counts.peak)
        in_flight = meter.in_flight
        previous = flushed.in_flight
        # A process adds its requests in flight to each second's counter once (then only the change).
        in_flight_change = (
            in_flight - previous[1] if previous is not None and previous[0] == now else in_flight
        )
        # Shared buckets stay long enough for the longest window read from them, and a bucket more.
        keep = window_seconds + 2 * REQUEST_BUCKET_SECONDS
        increments = [
            Increment(f"{self.key}:requests:{bucket}", amount, keep) for bucket, amount in requests.items()
        ]
        increments += [
            Increment(f"{self.key}:throttled:{bucket}", amount, keep) for bucket, amount in throttled.items()
        ]
        increments += [
            Increment(f"{self.key}:peak:{bucket}", peak - flushed.peak.get(bucket, 0), PEAK_KEEP_SECONDS)
            for bucket, peak in peaks.items()
            if peak > flushed.peak.get(bucket, 0)
        ]
        if in_flight_change:
            increments.append(
                Increment(f"{self.key}:in-flight:{now}", in_flight_change, IN_FLIGHT_KEEP_SECONDS)
            )

        def stored() -> None:
            for second, (sent_requests, sent_throttled) in seen.items():
                flushed.requests[second] = sent_requests
                flushed.throttled[second] = sent_throttled
            for bucket, peak in peaks.items():
                flushed.peak[bucket] = max(flushed.peak.get(bucket, 0), peak)
            flushed.in_flight = (now, in_flight)
            flushed.through = now
            # The next flush starts at this second: nothing before it is looked at again.
            flushed.forget_before(now)

        return increments, stored

    def shared_keys(self, *, window_seconds: int) -> tuple[list[str], Callable[[list[int]], _Window]]:
        """The shared counters to read for this vendor's figures, and how their values make the figures."""
        now = int(self.meter.now())
        request_buckets = range(
            (now - window_seconds + 1) // REQUEST_BUCKET_SECONDS, now // REQUEST_BUCKET_SECONDS + 1
        )
        peak_buckets = range((now - MINUTE + 1) // PEAK_BUCKET_SECONDS, now // PEAK_BUCKET_SECONDS + 1)
        keys = [
            *(f"{self.key}:requests:{bucket}" for bucket in request_buckets),
            *(f"{self.key}:throttled:{bucket}" for bucket in request_buckets),
            *(f"{self.key}:peak:{bucket}" for bucket in peak_buckets),
            f"{self.key}:in-flight:{now}",
            f"{self.key}:in-flight:{now - 1}",
        ]
        n = len(request_buckets)

        def window(values: list[int]) -> _Window:
            requests, throttled, peaks = values[:n], values[n : 2 * n], values[2 * n : -2]
            # Each process adds its count to a second's counter once a second: this second's may still lack
            # some, the last one's is complete. The larger of the two, so a drop shows a second late.
            in_flight = max(values[-2:])
            return _Window(
                requests=sum(requests),
                throttled=sum(throttled),
                peak=max([in_flight, *peaks]),
                in_flight=in_flight,
            )

        return keys, window


class Increment(NamedTuple):
    key: str
    amount: int
    keep_seconds: int


class SharedCounters(Protocol):
    """Integer counters every gateway process adds to, and latest values it puts. Every method but ``close``
    raises ``StateStoreUnavailable`` when the store does not answer."""

    async def add(self, increments: list[Increment]) -> None:
        """Add each amount to its counter (created at 0, kept ``keep_seconds`` from its creation)."""
        ...

    async def values(self, keys: list[str]) -> list[int]:
        """The counters' values, 0 for one that does not exist (or expired)."""
        ...

    async def put(self, key: str, value: bytes, keep_seconds: int) -> None:
        """Keep ``value`` under ``key``: not a counter, the latest of something (a vendor's own figure)."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def close(self) -> None: ...


class RedisCounters:
    """The shared counters in Redis: one pipeline per flush, one MGET per read. Its own small client (with
    the gateway's short timeouts), so a flush never takes a connection the rate limiter or the state store
    is waiting for."""

    def __init__(self, url: str, *, prefix: str = "stratum:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, max_connections=4, **redis_client_options())
        self._prefix = prefix

    async def add(self, increments: list[Increment]) -> None:
        if not increments:
            return
        pipe = self._redis.pipeline(transaction=False)
        for increment in increments:
            key = self._prefix + increment.key
            pipe.incrby(key, increment.amount)
            # NX: only a new counter gets its expiry, so adding to a bucket never keeps it alive longer.
            pipe.expire(key, increment.keep_seconds, nx=True)
        async with redis_answering("vendor_budgets_add"):
            await pipe.execute()

    async def values(self, keys: list[str]) -> list[int]:
        if not keys:
            return []
        async with redis_answering("vendor_budgets_read"):
            values = await self._redis.mget([self._prefix + key for key in keys])
        return [int(value) if value is not None else 0 for value in values]

    async def put(self, key: str, value: bytes, keep_seconds: int) -> None:
        async with redis_answering("vendor_budgets_put"):
            await self._redis.set(self._prefix + key, value, ex=keep_seconds)

    async def get(self, key: str) -> bytes | None:
        async with redis_answering("vendor_budgets_get"):
            value = await self._redis.get(self._prefix + key)
        return value.encode() if isinstance(value, str) else value

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryCounters:
    """The shared counters in one process (tests; several ``VendorBudgets`` sharing one stand for several
    processes sharing Redis)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[float, int]] = {}
        self._values: dict[str, tuple[float, bytes]] = {}

    async def add(self, increments: list[Increment]) -> None:
        now = self._clock()
        for key, amount, keep_seconds in increments:
            expires, value = self._counters.get(key, (now + keep_seconds, 0))
            if expires <= now:
                expires, value = now + keep_seconds, 0
            self._counters[key] = (expires, value + amount)

    async def values(self, keys: list[str]) -> list[int]:
        now = self._clock()
        found = [self._counters.get(key) for key in keys]
        return [item[1] if item is not None and item[0] > now else 0 for item in found]

    async def put(self, key: str, value: bytes, keep_seconds: int) -> None:
        self._values[key] = (self._clock() + keep_seconds, value)

    async def get(self, key: str) -> bytes | None:
        item = self._values.get(key)
        return item[1] if item is not None and item[0] > self._clock() else None

    async def close(self) -> None:
        self._counters.clear()
        self._values.clear()


class VendorBudgets:
    """The vendor API budgets of one gateway process: its vendor clients' meters, and with ``counters``
    (Redis) the shared counters every process adds to."""

    def __init__(
        self,
        settings: Settings,
        adapters: Iterable[object],
        *,
        counters: SharedCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._counters = counters
        self._clock = clock
        self._adapters = [each for adapter in adapters for each in inner_adapters(adapter)]
        self._metered = [
            _Metered(adapter, http)
            for adapter in self._adapters
            if isinstance(http := getattr(adapter, "http", None), VendorHttpClient)
        ]
        self._store_down_until = float("-inf")
        self._store_down = False
        self._flusher: asyncio.Task[None] | None = None
        # One flush at a time: two at once would both add the same new counts.
        self._flush_lock = asyncio.Lock()

    @property
    def shared(self) -> bool:
        return self._counters is not None

    # --- the background flush ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._counters is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="vendor-budget-flush")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(StateStoreUnavailable, TimeoutError):
            await self.flush()  # what the last second counted, so a stopping process leaves nothing out
        if self._counters is not None:
            await self._counters.close()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            with contextlib.suppress(StateStoreUnavailable, TimeoutError):
                await self.flush()

    async def flush(self) -> None:
        """Add every meter's new counts to the shared counters (nothing without shared storage). Raises
        what the store raised, after noting the outage."""
        counters = self._counters
        if counters is None:
            return
        try:
            async with asyncio.timeout(STORE_DEADLINE_SECONDS):
                await self._flush(counters)
        except (StateStoreUnavailable, TimeoutError) as exc:
            self._store_failed(exc)
            raise
        self._store_answered()

    async def _flush(self, counters: SharedCounters) -> None:
        async with self._flush_lock:
            plans = [metered.flush_plan(window_seconds=self._longest_window) for metered in self._metered]
            await counters.add([increment for increments, _ in plans for increment in increments])
            for _, stored in plans:
                stored()
            for metered in self._metered:
                usage = metered.vendor_usage
                if usage is not None and usage != metered.published:
                    await counters.put(f"{metered.key}:usage", msgspec.json.encode(usage), USAGE_KEEP_SECONDS)
                    metered.published = usage

    @property
    def _longest_window(self) -> int:
        return max(MINUTE, self._settings.business_central.request_window_seconds)

    def _store_failed(self, exc: BaseException) -> None:
        STATE_STORE_UNAVAILABLE.labels("vendor_budgets").inc()
        self._store_down_until = self._clock() + STORE_RETRY_SECONDS
        if not self._store_down:
            self._store_down = True
            log.warning("vendor_budgets_store_unavailable", error=repr(exc))

    def _store_answered(self) -> None:
        self._store_down_until = float("-inf")
        if self._store_down:
            self._store_down = False
            log.info("vendor_budgets_store_recovered")

    # --- reading ------------------------------------------------------------------------------------

    async def budgets(self) -> ApiBudgetList:
        """Every vendor's figures, shared when the store answers, else this process's own."""
        now = dt.datetime.now(dt.UTC)
        windows: dict[int, tuple[_Window, Scope]] = {}
        reads_shared = self._counters is not None and self._clock() >= self._store_down_until
        if reads_shared:
            with contextlib.suppress(StateStoreUnavailable, TimeoutError):
                windows = await self._shared_windows()
        unavailable = self._counters is not None and not windows
        for index, metered in enumerate(self._metered):
            if index not in windows:
                windows[index] = (metered.local(self._window_of(metered.vendor)), "process")
        items: list[ApiBudget] = []
        for index, metered in enumerate(self._metered):
            window, scope = windows[index]
            items += self._vendor_budgets(metered, window, scope, now, store_unavailable=unavailable)
        return ApiBudgetList(items=items)

    async def _shared_windows(self) -> dict[int, tuple[_Window, Scope]]:
        counters = self._counters
        assert counters is not None
        reads = [
            metered.shared_keys(window_seconds=self._window_of(metered.vendor)) for metered in self._metered
        ]
        try:
            async with asyncio.timeout(STORE_DEADLINE_SECONDS):
                # This process's newest counts first, so what it just did is in what it reads.
                await self._flush(counters)
                values = await counters.values([key for keys, _ in reads for key in keys])
                usages = {
                    index: await counters.get(f"{metered.key}:usage")
                    for index, metered in enumerate(self._metered)
                    if metered.vendor in _SALESFORCE_ORGS
                }
        except (StateStoreUnavailable, TimeoutError) as exc:
            self._store_failed(exc)
            raise
        self._store_answered()
        for index, raw in usages.items():
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                self._metered[index].shared_usage = _usage_decoder.decode(raw) if raw is not None else None
        windows: dict[int, tuple[_Window, Scope]] = {}
        offset = 0
        for index, (keys, window) in enumerate(reads):
            windows[index] = (window(values[offset : offset + len(keys)]), "shared")
            offset += len(keys)
        return windows

    def _window_of(self, vendor: str) -> int:
        if vendor == "business_central":
            return self._settings.business_central.request_window_seconds
        return MINUTE

    def _vendor_budgets(
        self, metered: _Metered, window: _Window, scope: Scope, now: dt.datetime, *, store_unavailable: bool
    ) -> list[ApiBudget]:
        vendor = metered.vendor
        counted = (
            "counted by every Stratum process together (gateway state store)"
            if scope == "shared"
            else "counted by this gateway process"
            + (
                ": the shared count is unavailable, the gateway state store did not answer"
                if store_unavailable
                else ""
            )
        )

        def budget(
            name: str, used: int | None, limit: int | None, window_seconds: int | None, source: str
        ) -> ApiBudget:
            return ApiBudget(
                vendor=vendor,
                name=name,
                used=used,
                limit=limit,
                window_seconds=window_seconds,
                scope=scope,
                source=source,
                observed_at=now,
            )

        settings = self._settings
        if vendor in _SALESFORCE_ORGS:
            return [self._salesforce_daily(metered, shared=scope == "shared")]
        if vendor == "netsuite":
            netsuite = settings.netsuite
            limit = netsuite.account_concurrency_limit
            licences = netsuite.suitecloud_plus_licenses
            basis = (
                f"account limit {limit}: {netsuite.service_tier} service tier + {licences} SuiteCloud Plus "
                f"licence{'' if licences == 1 else 's'}; each gateway process lets at most "
                f"{netsuite.concurrency_cap} run at once"
            )
            return [
                budget(
                    "concurrent_requests",
                    window.in_flight,
                    limit,
                    None,
                    f"requests in flight, {counted}; {basis}",
                ),
                budget(
                    "peak_concurrent_requests",
                    window.peak,
                    limit,
                    MINUTE,
                    f"most requests in flight at once in the last minute, {counted}; {basis}",
                ),
                budget(
                    "concurrency_refusals",
                    window.throttled,
                    None,
                    MINUTE,
                    f"429 answers (over the account's concurrency limit) in the last minute, {counted}",
                ),
            ]
        if vendor == "business_central":
            bc = settings.business_central
            seconds = bc.request_window_seconds
            name = (
                f"requests_per_{seconds // 60}_minutes"
                if seconds % 60 == 0
                else f"requests_per_{seconds}_seconds"
            )
            return [
                budget(
                    name,
                    window.requests,
                    bc.requests_per_window_limit,
                    seconds,
                    f"requests of this principal in the sliding window, {counted}",
                ),
                budget(
                    "concurrent_requests",
                    window.in_flight,
                    bc.concurrent_requests_limit,
                    None,
                    f"requests in flight, {counted}",
                ),
                budget(
                    "rate_limit_refusals",
                    window.throttled,
                    None,
                    seconds,
                    f"429 answers in the window, {counted}",
                ),
            ]
        if vendor == "anaplan":
            return [
                budget(
                    "requests_per_minute",
                    window.requests,
                    settings.anaplan.requests_per_minute_limit,
                    MINUTE,
                    f"requests in the last minute, {counted}",
                ),
                budget(
                    "rate_limit_refusals",
                    window.throttled,
                    None,
                    MINUTE,
                    f"429 answers in the last minute, {counted}",
                ),
            ]
        # Kantata, and any vendor without a documented limit: what Stratum counts, against no known limit.
        return [
            budget(
                "requests_per_minute",
                window.requests,
                None,
                MINUTE,
                f"requests in the last minute, {counted}; {vendor} documents no limit (none is reported)",
            ),
            budget(
                "rate_limit_refusals",
                window.throttled,
                None,
                MINUTE,
                f"429 answers in the last minute, {counted}",
            ),
        ]

    def _salesforce_daily(self, metered: _Metered, *, shared: bool) -> ApiBudget:
        usage, seen_by = metered.vendor_usage, "this gateway process"
        other = metered.shared_usage if shared else None
        if other is not None and (usage is None or other.observed_at > usage.observed_at):
            usage, seen_by = other, "a Stratum process (shared through the gateway state store)"
        if usage is None:
            return ApiBudget(
                vendor=metered.vendor,
                name="daily_api_requests",
                window_seconds=USAGE_KEEP_SECONDS,
                scope="vendor",
                source="Sforce-Limit-Info: no Salesforce response seen yet, so not known until the next "
                "Salesforce call",
            )
        return ApiBudget(
            vendor=metered.vendor,
            name="daily_api_requests",
            used=usage.used,
            limit=usage.limit,
            window_seconds=USAGE_KEEP_SECONDS,
            scope="vendor",
            source=f"Sforce-Limit-Info of the latest Salesforce response {seen_by} saw (the org's own count "
            "of every client's calls)",
            observed_at=usage.observed_at,
        )


Budgets = NamedDependency[SkipValidation["VendorBudgets"]]


@operation(
    "GET",
    "/system/v1/vendor-api-budgets",
    operation_id="listVendorApiBudgets",
    summary="How much of each vendor's API limits Stratum is spending",
    description=(
        "Per vendor, each limit it puts on Stratum's calls and how much of it is spent: Salesforce's daily "
        "API requests as Salesforce reports them (`Sforce-Limit-Info`; null until a Salesforce response was "
        "seen), NetSuite's requests in flight and their peak in the last minute against the account's "
        "concurrency limit, Business Central's requests in its 5-minute window per principal, Kantata's and "
        "Anaplan's requests per minute. `scope` says whose count `used` is: `vendor` (the vendor's own), "
        "`shared` (every Stratum process together, through the gateway state store; windows are read in "
        "whole 10-second buckets, erring high) or `process` (this gateway process: no shared store is "
        "configured, or it did not answer, which `source` then says). Reading it calls no vendor."
    ),
    scopes=["system:read"],
    tags=["operations"],
)
async def list_vendor_api_budgets(vendor_budgets: Budgets) -> ApiBudgetList:
    return await vendor_budgets.budgets()


budget_routes = [list_vendor_api_budgets]
