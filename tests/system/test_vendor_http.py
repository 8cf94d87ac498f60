"""The shared outbound HTTP plumbing: retries, backoff, Retry-After, budget, breaker, error mapping.

Every vendor is an ``httpx.MockTransport``; backoff sleeps and the breaker's clock are injected, so
nothing here waits for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from apis.oauth_client import ClientCredentialsAuth
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.vendor_http import (
    BreakerPolicy,
    BreakerState,
    RetryPolicy,
    VendorHttpClient,
    VendorHttpConfig,
    parse_retry_after,
)

Handler = Callable[[httpx.Request], Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Vendor:
    """A scripted vendor: answers from ``script`` in order (the last one repeats) and records requests."""

    def __init__(self, *script: httpx.Response | Exception | Handler) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        result = step(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, httpx.Response)
        return result


class Harness:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.clock = FakeClock()
        self.clients: list[VendorHttpClient] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(
        self,
        vendor: Vendor,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        timeout_seconds: float = 5.0,
        jitter: float = 1.0,
        **kwargs: Any,
    ) -> VendorHttpClient:
        config = VendorHttpConfig(
            base_url="https://vendor.example",
            timeout_seconds=timeout_seconds,
            retry=retry or RetryPolicy(),
            breaker=breaker or BreakerPolicy(failure_threshold=0),
        )
        client = VendorHttpClient(
            "acme",
            config,
            transport=httpx.MockTransport(vendor),
            sleep=self.sleep,
            jitter=lambda: jitter,
            clock=self.clock,
            **kwargs,
        )
        self.clients.append(client)
        return client


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    for client in h.clients:
        await client.aclose()


def ok(body: bytes = b"{}") -> httpx.Response:
    return httpx.Response(200, content=body)


def status(code: int, **headers: str) -> httpx.Response:
    return httpx.Response(code, headers=headers)


# --- retries -------------------------------------------------------------------------------------------


async def test_get_is_retried_on_503_and_the_second_answer_is_returned(harness: Harness) -> None:
    vendor = Vendor(status(503), ok(b'{"ok": true}'))
    response = await harness.client(vendor).send("GET", "/things/1")
    assert response.json() == {"ok": True}
    assert len(vendor.requests) == 2


@pytest.mark.parametrize("code", [429, 502, 503, 504])
async def test_retryable_statuses_are_retried(harness: Harness, code: int) -> None:
    vendor = Vendor(status(code), ok())
    await harness.client(vendor).send("GET", "/x")
    assert len(vendor.requests) == 2


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 500, 501])
async def test_other_statuses_are_not_retried(harness: Harness, code: int) -> None:
    vendor = Vendor(status(code), ok())
    with pytest.raises(VendorError):
        await harness.client(vendor).send("GET", "/x")
    assert len(vendor.requests) == 1


async def test_gives_up_after_max_attempts_with_the_vendors_answer(harness: Harness) -> None:
    vendor = Vendor(status(503, **{"Retry-After": "2"}))
    client = harness.client(vendor, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(VendorUnavailable) as caught:
        await client.send("GET", "/x")
    assert len(vendor.requests) == 4
    assert caught.value.retry_after == 2.0


async def test_post_is_not_retried(harness: Harness) -> None:
    vendor = Vendor(status(503), ok())
    with pytest.raises(VendorUnavailable):
        await harness.client(vendor).send("POST", "/orders", content=b"{}")
    assert len(vendor.requests) == 1


async def test_post_on_a_transport_error_is_not_retried(harness: Harness) -> None:
    vendor = Vendor(httpx.ConnectError("refused"), ok())
    with pytest.raises(VendorUnavailable):
        await harness.client(vendor).send("POST", "/orders", content=b"{}")
    assert len(vendor.requests) == 1


async def test_a_write_marked_idempotent_is_retried(harness: Harness) -> None:
    vendor = Vendor(status(503), httpx.Response(201, json={"id": "1"}))
    response = await harness.client(vendor).send("PATCH", "/orders/ext/1", content=b"{}", idempotent=True)
    assert response.status_code == 201
    assert len(vendor.requests) == 2
    assert [r.content for r in vendor.requests] == [b"{}", b"{}"]


async def test_transport_errors_are_retried_for_reads(harness: Harness) -> None:
    vendor = Vendor(httpx.ConnectError("refused"), httpx.RemoteProtocolError("reset"), ok())
    response = await harness.client(vendor).send("GET", "/x")
    assert response.status_code == 200
    assert len(vendor.requests) == 3


async def test_timeouts_are_retried_unless_turned_off(harness: Harness) -> None:
    vendor = Vendor(httpx.ReadTimeout("slow"), ok())
    await harness.client(vendor).send("GET", "/x")
    assert len(vendor.requests) == 2

    vendor = Vendor(httpx.ReadTimeout("slow"), ok())
    with pytest.raises(VendorTimeout):
        await harness.client(vendor, retry=RetryPolicy(retry_timeouts=False)).send("GET", "/x")
    assert len(vendor.requests) == 1


# --- backoff and Retry-After ---------------------------------------------------------------------------


async def test_backoff_is_exponential_with_full_jitter(harness: Harness) -> None:
    retry = RetryPolicy(max_attempts=5, backoff_base_seconds=0.5, backoff_max_seconds=1.5)
    with pytest.raises(VendorUnavailable):
        await harness.client(Vendor(status(503)), retry=retry, jitter=1.0).send("GET", "/x")
    # Bounds double from the base and stop at the cap.
    assert harness.sleeps == [0.5, 1.0, 1.5, 1.5]

    harness.sleeps.clear()
    with pytest.raises(VendorUnavailable):
        await harness.client(Vendor(status(503)), retry=retry, jitter=0.25).send("GET", "/x")
    # The delay is uniform in [0, bound]: the jitter source scales it.
    assert harness.sleeps == [0.125, 0.25, 0.375, 0.375]


async def test_retry_after_seconds_is_honoured(harness: Harness) -> None:
    vendor = Vendor(status(429, **{"Retry-After": "7"}), ok())
    await harness.client(vendor).send("GET", "/x")
    assert harness.sleeps == [7.0]


async def test_retry_after_http_date_is_honoured(harness: Harness) -> None:
    import time

    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    vendor = Vendor(status(503, **{"Retry-After": when}), ok())
    await harness.client(vendor).send("GET", "/x")
    assert len(harness.sleeps) == 1
    assert 15 <= harness.sleeps[0] <= 21


async def test_a_retry_after_beyond_the_limit_fails_at_once_and_carries_it(harness: Harness) -> None:
    vendor = Vendor(status(429, **{"Retry-After": "3600"}), ok())
    client = harness.client(vendor, retry=RetryPolicy(max_retry_after_seconds=30))
    with pytest.raises(VendorUnavailable) as caught:
        await client.send("GET", "/x")
    assert len(vendor.requests) == 1
    assert harness.sleeps == []
    assert caught.value.retry_after == 3600


def test_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == pytest.approx(
        90, abs=1
    )
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
    assert parse_retry_after("-5", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None, now=now) is None


# --- retry budget --------------------------------------------------------------------------------------


async def test_retry_budget_caps_extra_traffic_to_a_down_vendor(harness: Harness) -> None:
    vendor = Vendor(status(503))
    retry = RetryPolicy(max_attempts=3, budget_ratio=0.2, budget_capacity=2.0)
    client = harness.client(vendor, retry=retry)
    calls = 50
    for _ in range(calls):
        with pytest.raises(VendorUnavailable):
            await client.send("GET", "/x")
    retries = len(vendor.requests) - calls
    # Without a budget this would be 100 retries (3x the traffic); with it, the banked tokens plus 20%.
    assert retries > 0
    assert retries <= 2 + 0.2 * calls


async def test_retry_budget_refills_from_successful_calls(harness: Harness) -> None:
    script: list[httpx.Response] = [status(503), status(503), status(503)] + [ok()] * 10 + [status(503), ok()]
    vendor = Vendor(*script)
    client = harness.client(vendor, retry=RetryPolicy(max_attempts=3, budget_ratio=0.2, budget_capacity=2.0))
    with pytest.raises(VendorUnavailable):
        await client.send("GET", "/x")  # spends both banked tokens
    for _ in range(10):
        await client.send("GET", "/x")  # ten calls earn two tokens back
    response = await client.send("GET", "/x")  # so this 503 may be retried again
    assert response.status_code == 200


# --- circuit breaker -----------------------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures_and_answers_without_calling(harness: Harness) -> None:
    vendor = Vendor(status(500))
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=3, cooldown_seconds=30))
    for _ in range(3):
        with pytest.raises(VendorBadResponse):
            await client.send("GET", "/x")
    assert client.breaker.state is BreakerState.OPEN

    harness.clock.now += 10
    with pytest.raises(VendorUnavailable) as caught:
        await client.send("GET", "/x")
    assert len(vendor.requests) == 3
    assert caught.value.retry_after == pytest.approx(20)


async def test_breaker_counts_retried_attempts_and_stops_retrying_when_open(harness: Harness) -> None:
    vendor = Vendor(httpx.ConnectError("refused"))
    client = harness.client(
        vendor,
        retry=RetryPolicy(max_attempts=10),
        breaker=BreakerPolicy(failure_threshold=4, cooldown_seconds=30),
    )
    with pytest.raises(VendorUnavailable):
        await client.send("GET", "/x")
    assert len(vendor.requests) == 4
    assert client.breaker.state is BreakerState.OPEN


async def test_half_open_probe_success_closes_the_breaker(harness: Harness) -> None:
    vendor = Vendor(status(500), status(500), ok())
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=2, cooldown_seconds=30))
    for _ in range(2):
        with pytest.raises(VendorBadResponse):
            await client.send("GET", "/x")
    harness.clock.now += 31
    assert client.breaker.state is BreakerState.HALF_OPEN
    assert (await client.send("GET", "/x")).status_code == 200
    assert client.breaker.state is BreakerState.CLOSED
    assert (await client.send("GET", "/x")).status_code == 200
    assert len(vendor.requests) == 4


async def test_half_open_probe_failure_reopens_for_another_cooldown(harness: Harness) -> None:
    vendor = Vendor(status(500))
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=2, cooldown_seconds=30))
    for _ in range(2):
        with pytest.raises(VendorBadResponse):
            await client.send("GET", "/x")
    harness.clock.now += 31
    with pytest.raises(VendorBadResponse):
        await client.send("GET", "/x")  # the probe reaches the vendor and fails
    with pytest.raises(VendorUnavailable):
        await client.send("GET", "/x")  # so the circuit is open again
    assert len(vendor.requests) == 3
    assert client.breaker.state is BreakerState.OPEN


async def test_half_open_lets_exactly_one_probe_through(harness: Harness) -> None:
    release = asyncio.Event()

    async def slow_ok(_: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok()

    vendor = Vendor(status(500), slow_ok)
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=1, cooldown_seconds=30))
    with pytest.raises(VendorBadResponse):
        await client.send("GET", "/x")
    harness.clock.now += 31
    probe = asyncio.create_task(client.send("GET", "/x"))
    while len(vendor.requests) < 2:
        await asyncio.sleep(0)
    with pytest.raises(VendorUnavailable):
        await client.send("GET", "/x")
    release.set()
    assert (await probe).status_code == 200
    assert len(vendor.requests) == 2


async def test_a_cancelled_probe_frees_the_half_open_slot(harness: Harness) -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    vendor = Vendor(status(500), hang, ok())
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=1, cooldown_seconds=30))
    with pytest.raises(VendorBadResponse):
        await client.send("GET", "/x")
    harness.clock.now += 31
    probe = asyncio.create_task(client.send("GET", "/x"))
    while len(vendor.requests) < 2:
        await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert (await client.send("GET", "/x")).status_code == 200


async def test_client_errors_do_not_trip_the_breaker(harness: Harness) -> None:
    vendor = Vendor(status(404))
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=2))
    for _ in range(5):
        with pytest.raises(NotFound):
            await client.send("GET", "/x")
    assert client.breaker.state is BreakerState.CLOSED
    assert len(vendor.requests) == 5


async def test_a_success_resets_the_consecutive_failure_count(harness: Harness) -> None:
    vendor = Vendor(status(500), ok(), status(500), ok(), status(500))
    client = harness.client(vendor, breaker=BreakerPolicy(failure_threshold=2))
    for _ in range(5):
        with contextlib.suppress(VendorBadResponse):
            await client.send("GET", "/x")
    assert client.breaker.state is BreakerState.CLOSED


# --- mapping of failures without a response ------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("slow"), VendorTimeout),
        (httpx.ReadTimeout("slow"), VendorTimeout),
        (httpx.PoolTimeout("busy"), VendorTimeout),
        (httpx.ConnectError("refused"), VendorUnavailable),
        (httpx.RemoteProtocolError("reset"), VendorUnavailable),
        (httpx.ReadError("eof"), VendorUnavailable),
    ],
)
async def test_transport_errors_map_to_port_errors(
    harness: Harness, exc: Exception, expected: type[VendorError]
) -> None:
    client = harness.client(Vendor(exc), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(expected) as caught:
        await client.send("GET", "/x")
    assert caught.value.vendor == "acme"


async def test_a_hanging_vendor_times_out_even_without_a_network_transport(harness: Harness) -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    vendor = Vendor(hang)
    client = harness.client(vendor, timeout_seconds=0.01, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(VendorTimeout):
        await client.send("GET", "/x")
    assert len(vendor.requests) == 2


# --- status mapping hook, headers, origin --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (404, NotFound),
        (400, VendorRejected),
        (401, VendorUnavailable),
        (500, VendorBadResponse),
        (302, VendorBadResponse),
    ],
)
async def test_default_status_mapping(harness: Harness, code: int, expected: type[VendorError]) -> None:
    vendor = Vendor(httpx.Response(code, headers={"Location": "https://elsewhere.example/"}))
    with pytest.raises(expected):
        await harness.client(vendor).send("GET", "/x")
    assert len(vendor.requests) == 1  # a redirect is not followed


async def test_the_adapters_hook_maps_final_error_responses(harness: Harness) -> None:
    seen: list[int] = []

    def to_error(response: httpx.Response) -> VendorError:
        seen.append(response.status_code)
        return VendorRejected("acme", response.json()["why"], vendor_code="E42")

    vendor = Vendor(httpx.Response(422, json={"why": "no"}))
    with pytest.raises(VendorRejected) as caught:
        await harness.client(vendor, error_for_response=to_error).send("GET", "/x")
    assert caught.value.vendor_code == "E42"
    assert seen == [422]


async def test_accepted_statuses_are_returned_not_raised(harness: Harness) -> None:
    vendor = Vendor(httpx.Response(300, json=["a", "b"]))
    response = await harness.client(vendor).send("PATCH", "/x", content=b"{}", accept={300})
    assert response.status_code == 300


async def test_on_response_sees_every_attempt(harness: Harness) -> None:
    seen: list[int] = []
    vendor = Vendor(status(503), ok())
    await harness.client(vendor, on_response=lambda r: seen.append(r.status_code)).send("GET", "/x")
    assert seen == [503, 200]


async def test_correlation_id_is_sent_on_every_attempt(harness: Harness) -> None:
    vendor = Vendor(status(503), ok())
    await harness.client(vendor, correlation_id=lambda: "corr-123").send("GET", "/x")
    assert [r.headers.get("X-Correlation-ID") for r in vendor.requests] == ["corr-123", "corr-123"]


async def test_no_correlation_id_header_when_there_is_none(harness: Harness) -> None:
    vendor = Vendor(ok())
    await harness.client(vendor).send("GET", "/x")
    assert "X-Correlation-ID" not in vendor.requests[0].headers


async def test_relative_urls_resolve_against_the_base_and_other_origins_are_refused(harness: Harness) -> None:
    vendor = Vendor(ok())
    client = harness.client(vendor)
    await client.send("GET", "/a/b", params={"q": "x y"})
    assert str(vendor.requests[0].url) == "https://vendor.example/a/b?q=x+y"
    await client.send("GET", "https://vendor.example/c")
    with pytest.raises(ValueError, match="base URL"):
        await client.send("GET", "https://evil.example/steal")
    assert len(vendor.requests) == 2


@pytest.mark.parametrize(
    "base", ["https://vendor.example", "https://vendor.example/api/v1", "https://vendor.example/api/"]
)
@pytest.mark.parametrize(
    "url",
    [
        "/a/b",
        "a/b",  # Salesforce's adapter spells its data paths so: services/data/v61.0/...
        "a/b?x=1",
        "a%20b/c d",
        "https://vendor.example/c",
        "//evil.example/steal",  # httpx reads it as a path on the base URL: it stays with the vendor
    ],
)
async def test_a_call_goes_where_httpx_itself_would_send_it(base: str, url: str) -> None:
    """The client joins paths to its base URL as text (no URL parsing on the hot path): the URL it sends is
    the one httpx's own base-URL merge makes, whether the path starts with "/" or not."""
    vendor = Vendor(ok())
    config = VendorHttpConfig(base_url=base, retry=RetryPolicy(), breaker=BreakerPolicy(failure_threshold=0))
    client = VendorHttpClient("acme", config, transport=httpx.MockTransport(vendor))
    async with httpx.AsyncClient(base_url=base) as reference:
        expected = reference.build_request("GET", url, params={"q": "x y"}).url
    try:
        await client.send("GET", url, params={"q": "x y"})
    finally:
        await client.aclose()
    assert vendor.requests[0].url == expected


async def test_another_origin_is_refused_even_one_that_differs_only_by_scheme(harness: Harness) -> None:
    vendor = Vendor(ok())
    client = harness.client(vendor)
    for url in ("https://evil.example/steal", "http://vendor.example/c", "https://vendor.example:8443/c"):
        with pytest.raises(ValueError, match="base URL"):
            await client.send("GET", url)
    assert vendor.requests == []


# --- auth ----------------------------------------------------------------------------------------------


async def test_auth_refreshes_the_token_once_on_401(harness: Harness) -> None:
    tokens = iter(["t1", "t2"])
    token_calls: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        token_calls.append(request)
        return httpx.Response(200, json={"access_token": next(tokens), "token_type": "Bearer"})

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer t2":
            return ok()
        return httpx.Response(401, json=[{"errorCode": "INVALID_SESSION_ID", "message": "expired"}])

    auth = ClientCredentialsAuth(
        token_url="https://vendor.example/token",
        client_id="id",
        client_secret="secret",
        transport=httpx.MockTransport(token_endpoint),
    )
    vendor = Vendor(api)
    response = await harness.client(vendor, auth=auth).send("GET", "/x")
    assert response.status_code == 200
    assert len(token_calls) == 2
    await auth.aclose()


async def test_refused_client_credentials_are_unavailable_and_not_retried(harness: Harness) -> None:
    token_calls: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        token_calls.append(request)
        return httpx.Response(400, json={"error": "invalid_client", "error_description": "bad secret"})

    auth = ClientCredentialsAuth(
        token_url="https://vendor.example/token",
        client_id="id",
        client_secret="s3cr3t-value",
        transport=httpx.MockTransport(token_endpoint),
    )
    vendor = Vendor(ok())
    client = harness.client(vendor, auth=auth, breaker=BreakerPolicy(failure_threshold=1))
    with pytest.raises(VendorUnavailable) as caught:
        await client.send("GET", "/x")
    assert "credentials rejected" in caught.value.message
    assert "s3cr3t" not in caught.value.message
    assert len(token_calls) == 1
    assert vendor.requests == []
    assert client.breaker.state is BreakerState.CLOSED
    await auth.aclose()
