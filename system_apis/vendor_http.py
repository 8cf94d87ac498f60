"""Outbound HTTP to vendors: one pool, timeout, retry budget and circuit breaker per vendor.

Every vendor adapter (Salesforce now; Kantata, NetSuite, Business Central, Anaplan later) builds one
``VendorHttpClient`` and sends through it, so they all share the same behaviour:

- its own ``httpx.AsyncClient``: own connection pool, connect and per-attempt timeouts, TLS verified,
  redirects never followed, relative URLs only resolved against the configured base URL;
- ``X-Correlation-ID`` on every call, from a provider the gateway wires to its contextvar;
- retries only for safe calls (GET/HEAD, or a call the adapter marks ``idempotent``) on transport errors,
  timeouts and 429/502/503/504, with exponential backoff and full jitter, honouring ``Retry-After``, and
  drawing on a retry budget so a failing vendor sees at most ~20% extra traffic, not 3x;
- a circuit breaker that, after N consecutive failed attempts, answers ``VendorUnavailable`` at once
  without calling the vendor, then lets one probe through after a cooldown;
- transport errors mapped to the port's errors here and only here; vendor status codes mapped by the
  adapter's ``error_for_response`` hook, since each vendor's error body differs;
- every request it sends counted on its ``meter`` (``system_apis.call_meter``: requests, 429s, requests in
  flight), which the vendor API budgets (``system_apis.budgets``) read.

Retry and breaker are small local code rather than tenacity or stamina: neither library has a retry budget
or a breaker, honouring ``Retry-After`` would need a custom wait anyway, and the breaker has to see every
attempt (including retries) to count consecutive failures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import enum
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import httpx
import msgspec
import structlog

from apis.config import VendorConnection
from apis.json_limits import MAX_JSON_DEPTH, json_too_deep
from apis.oauth_client import TokenFetchError
from system_apis.call_meter import CallMeter, MeteredTransport
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "RetryBudget",
    "RetryPolicy",
    "VendorHttpClient",
    "VendorHttpConfig",
    "default_error_for_response",
    "map_transport_error",
    "parse_retry_after",
    "vendor_http_config",
]


def _log() -> Any:
    # A fresh lazy proxy per use: once logging is configured with caching on, a module-level proxy would
    # pin the processors it first saw, and structlog.testing.capture_logs could no longer see its lines.
    return structlog.get_logger(__name__)


# RFC 9110 safe methods: repeating them cannot change anything at the vendor.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RetryPolicy(msgspec.Struct, kw_only=True, frozen=True):
    """When and how a safe call is tried again."""

    #: Tries per call, the first included; 1 turns retries off.
    max_attempts: int = 3
    #: Upper bound of the first backoff; it doubles per attempt and the actual delay is uniform in
    #: [0, bound] ("full jitter"), so clients that failed together do not retry together.
    backoff_base_seconds: float = 0.25
    #: No computed backoff exceeds this.
    backoff_max_seconds: float = 8.0
    #: A ``Retry-After`` longer than this is not waited for: the call fails at once and the error carries
    #: the ``Retry-After`` so our caller can come back later instead of holding a request open.
    max_retry_after_seconds: float = 30.0
    #: Response statuses worth another try: rate limited, or a gateway in front of the vendor failed.
    retry_statuses: tuple[int, ...] = (429, 502, 503, 504)
    #: Retry after a timeout too. A read that timed out is safe to repeat, but each retry costs a full
    #: timeout, so turn this off for slow endpoints.
    retry_timeouts: bool = True
    #: Over time, retries may be at most this fraction of calls (each call earns this many retry tokens).
    budget_ratio: float = 0.2
    #: Retry tokens banked at most, and held at start, so a quiet client can still ride out a blip.
    budget_capacity: float = 10.0


class BreakerPolicy(msgspec.Struct, kw_only=True, frozen=True):
    """When the circuit to a vendor opens and how it closes again."""

    #: Consecutive failed attempts (transport errors, timeouts, 5xx) that open the circuit; 0 disables it.
    failure_threshold: int = 5
    #: How long the circuit stays open before one probe call is let through (half-open).
    cooldown_seconds: float = 30.0


class VendorHttpConfig(msgspec.Struct, kw_only=True, frozen=True):
    """One vendor's connection settings."""

    #: The only origin calls go to; relative request URLs are resolved against it.
    base_url: str
    #: Deadline for one attempt as a whole (connect, send, wait, read), and httpx's read/write/pool timeout.
    timeout_seconds: float = 10.0
    #: Deadline for opening a connection.
    connect_timeout_seconds: float = 3.0
    #: Connection pool size for this vendor alone, so a slow vendor cannot starve the others.
    max_connections: int = 50
    #: Idle connections kept open for reuse.
    max_keepalive_connections: int = 20
    user_agent: str = "stratum/0.1"
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()


def vendor_http_config(
    connection: VendorConnection,
    base_url: str,
    *,
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
) -> VendorHttpConfig:
    """The client config for a vendor from its settings (one mapping, shared by every adapter); tests may
    pass their own retry and breaker policies."""
    return VendorHttpConfig(
        base_url=base_url,
        timeout_seconds=connection.timeout_seconds,
        connect_timeout_seconds=connection.connect_timeout_seconds,
        max_connections=connection.max_connections,
        retry=retry or RetryPolicy(max_attempts=connection.retry_max_attempts),
        breaker=breaker
        or BreakerPolicy(
            failure_threshold=connection.breaker_failure_threshold,
            cooldown_seconds=connection.breaker_cooldown_seconds,
        ),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    ``now`` is the current Unix time (default: the system clock). Unparseable values give ``None``; a date in
    the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def map_transport_error(vendor: str, exc: Exception) -> VendorError:
    """The port error for a failure that produced no vendor response. The one place this mapping lives."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return VendorTimeout(vendor, f"{vendor} did not answer in time")
    if isinstance(exc, TokenFetchError):
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            return VendorUnavailable(vendor, f"{vendor} credentials rejected: {exc}")
        return VendorUnavailable(vendor, f"{vendor} token endpoint failed: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return VendorBadResponse(vendor, f"{vendor} sent a body that could not be decoded")
    if isinstance(exc, httpx.TransportError):
        return VendorUnavailable(vendor, f"{vendor} unreachable ({type(exc).__name__})")
    return VendorUnavailable(vendor, f"{vendor} call failed ({type(exc).__name__})")


def default_error_for_response(vendor: str, response: httpx.Response) -> VendorError:
    """A status-only mapping for vendors whose error body adds nothing; adapters usually refine it."""
    status = response.status_code
    if status in (404, 410):
        return NotFound(vendor, f"{vendor} has no such record")
    if status in (429, 502, 503):
        return VendorUnavailable(
            vendor,
            f"{vendor} unavailable (HTTP {status})",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 504:
        return VendorTimeout(vendor, f"{vendor} gateway timed out (HTTP 504)")
    if status == 401:
        return VendorUnavailable(vendor, f"{vendor} credentials rejected (HTTP 401)")
    if 400 <= status < 500:
        return VendorRejected(vendor, f"{vendor} rejected the request (HTTP {status})")
    return VendorBadResponse(vendor, f"{vendor} answered HTTP {status}")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe. Not thread-safe; one event loop."""

    def __init__(self, vendor: str, policy: BreakerPolicy, *, clock: Callable[[], float] = time.monotonic):
        self._vendor = vendor
        self._policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._cooldown_left() <= 0:
            return BreakerState.HALF_OPEN
        return self._state

    def _cooldown_left(self) -> float:
        return self._opened_at + self._policy.cooldown_seconds - self._clock()

    def retry_after(self) -> float:
        """Seconds until the circuit lets a probe through (0 when it would now)."""
        return max(0.0, self._cooldown_left()) if self._state is BreakerState.OPEN else 0.0

    def allow(self) -> bool:
        """Whether an attempt may go to the vendor now; a ``True`` in half-open makes it the probe, whose
        outcome must then be recorded (``record_success``/``record_failure``) or ``release``d."""
        if self._policy.failure_threshold <= 0 or self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._cooldown_left() > 0:
                return False
            self._state = BreakerState.HALF_OPEN
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            _log().info("vendor_circuit_closed", vendor=self._vendor)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._probe_in_flight = False
        if self._policy.failure_threshold <= 0:
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._policy.failure_threshold
        ):
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            _log().warning(
                "vendor_circuit_opened",
                vendor=self._vendor,
                consecutive_failures=self._failures,
                cooldown_seconds=self._policy.cooldown_seconds,
            )

    def release(self) -> None:
        """An attempt ended with no verdict on the vendor's health (e.g. cancelled): free the probe slot."""
        self._probe_in_flight = False


class RetryBudget:
    """Token bucket limiting retries to a fraction of calls: each call adds ``ratio`` tokens (up to
    ``capacity``), each retry takes one. When a vendor is down, every call fails and soon no retry is
    left, so the vendor sees little more than the calls themselves."""

    def __init__(self, *, ratio: float, capacity: float) -> None:
        self._ratio = ratio
        self._capacity = capacity
        self._tokens = capacity

    @property
    def tokens(self) -> float:
        return self._tokens

    def record_call(self) -> None:
        self._tokens = min(self._capacity, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _no_correlation_id() -> str | None:
    return None


class VendorHttpClient:
    """The HTTP client one vendor adapter sends through. Create one per vendor and ``aclose`` it.

    ``transport`` is the test seam (``httpx.ASGITransport`` to a sandbox, ``httpx.MockTransport``);
    ``sleep``, ``jitter`` (uniform in [0, 1)) and ``clock`` let tests run backoff and cooldowns without
    waiting.
    ``error_for_response`` turns a final non-2xx response into the error to raise (default: by status only);
    ``on_response`` sees every response, retried ones included (e.g. to read rate-limit headers).
    ``principal`` names whose limits the calls spend (e.g. Business Central's client id: its limits are per
    principal); it is kept only as a hash, ``principal_key``, which is what shared counters are keyed by.
    ``meter_clock`` is the wall clock the meter buckets requests by.
    """

    def __init__(
        self,
        vendor: str,
        config: VendorHttpConfig,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = _no_correlation_id,
        error_for_response: Callable[[httpx.Response], VendorError] | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        principal: str | None = None,
        meter_clock: Callable[[], float] = time.time,
    ) -> None:
        self.vendor = vendor
        self.config = config
        self._auth = auth
        self._correlation_id = correlation_id
        self._error_for_response = error_for_response or (
            lambda response: default_error_for_response(vendor, response)
        )
        self._on_response = on_response
        self._sleep = sleep
        self._jitter = jitter
        self._base_url = httpx.URL(config.base_url)
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=min(config.max_keepalive_connections, config.max_connections),
        )
        # Hashed: a principal may be a token, and the key ends up in a shared store's key names.
        identity = f"{vendor}|{config.base_url}|{principal or ''}"
        self.principal_key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.meter = CallMeter(vendor, clock=meter_clock)
        # The transport httpx would build itself (an environment proxy included), when none is given;
        # wrapped so every request is counted.
        inner = transport or httpx.AsyncHTTPTransport(
            verify=True, limits=limits, proxy=_environment_proxy(self._base_url)
        )
        self._transport = MeteredTransport(inner, self.meter)
        # Builds requests (base URL, default headers, params, timeouts) and owns the pool; sending is ours
        # (``_send``): httpx's send adds cookie handling and redirect bookkeeping that vendor calls never use.
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            transport=self._transport,
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            limits=limits,
            follow_redirects=False,
            verify=True,
            headers={"User-Agent": config.user_agent, "Accept": "application/json"},
        )
        # The base URL as httpx keeps it, without its final "/", and its origin, for joining and checking URLs
        # as strings before anything parses them.
        self._base_text = str(self._client.base_url).rstrip("/")
        self._origin_text = f"{self._base_url.scheme}://{self._base_url.netloc.decode('ascii')}/"
        self.breaker = CircuitBreaker(vendor, config.breaker, clock=clock)
        self.retry_budget = RetryBudget(
            ratio=config.retry.budget_ratio, capacity=config.retry.budget_capacity
        )

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool = False,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """Send one logical call, retrying where safe; return the 2xx (or ``accept``ed) response.

        ``url`` is relative to the base URL (an absolute URL must be on the base URL's origin). Mark a
        write ``idempotent=True`` only when it carries the vendor's idempotency mechanism. Raises a
        ``VendorError``: ``VendorUnavailable`` when the circuit is open or the vendor is unreachable,
        ``VendorTimeout``, or whatever ``error_for_response`` makes of a non-2xx answer.
        """
        method = method.upper()
        self._check_origin(url)
        policy = self.config.retry
        retryable = idempotent or method in _SAFE_METHODS
        if not self.breaker.allow():
            # Whole seconds, rounded up: a caller that waits this long (a workflow step does) finds the
            # circuit ready for its probe instead of spending another attempt on a refusal.
            raise VendorUnavailable(
                self.vendor,
                f"{self.vendor} circuit open after repeated failures",
                retry_after=max(1, math.ceil(self.breaker.retry_after())),
            )
        # Only calls that reach the vendor earn retries: the budget bounds the vendor's extra traffic.
        self.retry_budget.record_call()
        attempt = 1
        while True:
            outcome = await self._attempt(method, url, params, headers, content)
            reason, retry_after = self._retry_reason(outcome)
            if reason is None or not retryable or attempt >= policy.max_attempts:
                break
            if retry_after is not None and retry_after > policy.max_retry_after_seconds:
                break
            if not self.retry_budget.try_spend():
                _log().warning("vendor_retry_budget_exhausted", vendor=self.vendor, method=method)
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            _log().info(
                "vendor_retry",
                vendor=self.vendor,
                method=method,
                path=self._client.build_request(method, url).url.path,
                attempt=attempt,
                reason=reason,
                delay_seconds=round(delay, 3),
            )
            await self._sleep(delay)
            if not self.breaker.allow():
                # Opened while we waited (other calls failed too): report what we last saw rather than
                # adding to the load.
                break
            attempt += 1
        if isinstance(outcome, _Failure):
            raise outcome.error
        if _may_be_json(outcome) and json_too_deep(outcome.content):
            # Adapters decode answers (error bodies too) with msgspec, which would raise RecursionError.
            raise VendorBadResponse(
                self.vendor, f"{self.vendor} answered JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )
        if outcome.is_success or outcome.status_code in accept:
            return outcome
        raise self._error_for_response(outcome)

    def _check_origin(self, url: str) -> None:
        if _is_path(url):
            return  # a path: resolved against the base URL, it cannot leave the origin
        if url.startswith(self._origin_text):
            return  # the base URL's scheme://host:port/ itself, spelled as httpx spells it
        target = httpx.URL(url)
        if target.is_absolute_url and (target.scheme, target.host, target.port) != (
            self._base_url.scheme,
            self._base_url.host,
            self._base_url.port,
        ):
            # Only configured base URLs are called: a URL a vendor handed us must not take us elsewhere.
            raise ValueError(f"refusing to call {target.host}: not the configured {self.vendor} base URL")

    def _backoff(self, attempt: int) -> float:
        policy = self.config.retry
        bound = min(policy.backoff_max_seconds, policy.backoff_base_seconds * 2.0 ** (attempt - 1))
        return bound * self._jitter()

    def _retry_reason(self, outcome: httpx.Response | _Failure) -> tuple[str | None, float | None]:
        """Why this outcome deserves another try (``None``: it does not), and the vendor's Retry-After."""
        if isinstance(outcome, _Failure):
            return outcome.retry_reason, None
        if outcome.status_code in self.config.retry.retry_statuses:
            return f"http_{outcome.status_code}", parse_retry_after(outcome.headers.get("Retry-After"))
        return None, None

    def _failure(self, exc: Exception) -> _Failure:
        """Classify a call that got no usable response: the error, whether to retry, whether the vendor
        is to blame (which is what the breaker counts)."""
        error = map_transport_error(self.vendor, exc)
        if isinstance(exc, TokenFetchError) and exc.status_code is not None and 400 <= exc.status_code < 500:
            # The vendor is up and refuses our credentials: retrying or opening the circuit won't help.
            self.breaker.record_success()
            return _Failure(error, None)
        self.breaker.record_failure()
        if isinstance(error, VendorTimeout):
            return _Failure(error, "timeout" if self.config.retry.retry_timeouts else None)
        if isinstance(error, VendorUnavailable):
            return _Failure(error, "transport")
        return _Failure(error, None)

    def _build_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Request:
        if _is_path(url):
            # Joined here as httpx joins a path to the base URL (appended to its path, with or without a
            # leading "/"): httpx would parse the path and then the joined URL, and URL parsing is most of
            # what building a request costs.
            url = f"{self._base_text}/{url.lstrip('/')}"
        request = self._client.build_request(method, url, params=params, headers=headers, content=content)
        correlation_id = self._correlation_id()
        if correlation_id and "X-Correlation-ID" not in request.headers:
            request.headers["X-Correlation-ID"] = correlation_id
        return request

    async def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Response | _Failure:
        # A fresh request per attempt: the auth flow may have rewritten the previous one's headers or URL.
        request = self._build_request(method, url, params, headers, content)
        try:
            # httpx's own timeouts live in the network transport, so an in-process (ASGI) vendor or a
            # trickling response could otherwise hold the call forever: this bounds the attempt as a whole.
            async with asyncio.timeout(self.config.timeout_seconds):
                response = await self._send(request)
        except (httpx.HTTPError, TimeoutError) as exc:
            _log().info("vendor_call_failed", vendor=self.vendor, method=method, error=type(exc).__name__)
            return self._failure(exc)
        except BaseException:
            # Cancelled, or a bug: says nothing about the vendor's health, but must not hold the probe slot.
            self.breaker.release()
            raise
        if response.status_code >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        if self._on_response is not None:
            self._on_response(response)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """One attempt through the auth flow: what ``httpx.AsyncClient.send`` does for a call that follows no
        redirect, without its cookie jar. Vendors' cookies are never kept: one client serves every caller of
        a vendor, and no vendor API here authenticates by cookie, so a jar could only carry one call's state
        into another's (and parsing every answer's ``Set-Cookie`` into it cost a tenth of a governed read)."""
        if self._auth is None:
            return await self._send_once(request)
        flow = self._auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                response = await self._send_once(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def __repr__(self) -> str:
        return f"VendorHttpClient({self.vendor!r}, {str(self._base_url)!r}, breaker={self.breaker.state})"


def _is_path(url: str) -> bool:
    """A path (``/services/data/...`` or ``services/data/...``, as adapters spell them) httpx would append
    to the base URL's path: no scheme before its first ``/`` and no ``//`` authority of its own."""
    if url.startswith("//"):
        return False
    if url.startswith("/"):
        return True
    head = url.split("/", 1)[0]
    return ":" not in head and not head.startswith(("?", "#")) and head != ""


def _environment_proxy(base_url: httpx.URL) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for the vendor's origin, unless ``NO_PROXY`` exempts it:
    what httpx applies to a client built without a transport, kept for one built with the metered one."""
    import urllib.request

    if urllib.request.proxy_bypass(base_url.host):
        return None
    return urllib.request.getproxies().get(base_url.scheme)


def _may_be_json(response: httpx.Response) -> bool:
    """Whether an adapter may hand this body to a JSON decoder: JSON, plain text or no media type (binary
    downloads, such as Anaplan's file chunks, are never decoded and could hold any byte)."""
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    return not media_type or "json" in media_type or media_type == "text/plain"


@dataclasses.dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt that got no usable response."""

    error: VendorError
    retry_reason: str | None  # None: another try would not help
