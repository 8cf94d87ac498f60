"""GET /system/v1/vendor-api-budgets: each vendor's API limits and how much of them Stratum spends.

Figures are checked against what the vendor sandboxes themselves saw (Salesforce's ``Sforce-Limit-Info``
count, NetSuite's and Business Central's own request counters), not against the meter's own arithmetic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apis.config import Settings, load_settings
from sandboxes.netsuite.data import DEMO_CUSTOMER_ID
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID
from system_apis.budgets import MemoryCounters, VendorBudgets
from system_apis.vendor_http import VendorHttpClient, VendorHttpConfig
from tests.private_redis import PrivateRedis

PATH = "/system/v1/vendor-api-budgets"


async def _budgets(gw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    response = await gw.client.get(PATH, headers=gw.auth("system:read"))
    assert response.status_code == 200, response.text
    # The contract leaves defaults out: no `scope` is "process", no `used` or `limit` is null.
    return {
        (item["vendor"], item["name"]): {"scope": "process", "used": None, "limit": None, **item}
        for item in response.json()["items"]
    }


async def _sandbox_stats(gw: Any, vendor: str) -> dict[str, Any]:
    async with gw.sandbox(vendor) as sandbox:
        stats: dict[str, Any] = (await sandbox.get("/__sandbox/stats")).json()
    return stats


async def test_without_system_read_the_budgets_are_refused(gw: Any) -> None:
    response = await gw.client.get(PATH, headers=gw.auth("system:write"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_every_vendor_has_a_figure_and_the_embedded_gateway_counts_as_one_process(gw: Any) -> None:
    budgets = await _budgets(gw)
    assert {vendor for vendor, _ in budgets} == {"salesforce", "kantata", "netsuite", "anaplan"}
    assert budgets["netsuite", "concurrent_requests"]["limit"] == 5  # standard tier, no SuiteCloud Plus
    assert budgets["anaplan", "requests_per_minute"]["limit"] == 600
    assert budgets["kantata", "requests_per_minute"]["limit"] is None  # Kantata documents none
    counted = [item for item in budgets.values() if item["vendor"] != "salesforce"]
    assert {item["scope"] for item in counted} == {"process"}


async def test_the_system_client_reads_the_budgets(gw: Any) -> None:
    from system_apis.client import SystemApiClient

    class _Bearer(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Any:
            request.headers.update(gw.auth("system:read"))
            yield request

    client = SystemApiClient(
        base_url="http://testserver", auth=_Bearer(), transport=httpx.ASGITransport(app=gw.app)
    )
    budgets = await client.vendor_api_budgets()
    await client.aclose()
    netsuite = {b.name: b for b in budgets.items if b.vendor == "netsuite"}
    assert netsuite["concurrent_requests"].limit == 5
    assert netsuite["concurrent_requests"].scope == "process"


async def test_salesforce_daily_requests_are_what_salesforce_said(gw: Any) -> None:
    for _ in range(3):
        response = await gw.client.get(
            f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}", headers=gw.auth("system:read")
        )
        assert response.status_code == 200, response.text
    stats = await _sandbox_stats(gw, "salesforce")
    daily = (await _budgets(gw))["salesforce", "daily_api_requests"]
    assert (daily["used"], daily["limit"]) == (stats["api_usage"], stats["api_limit"])
    assert daily["used"] >= 3
    assert daily["scope"] == "vendor"
    assert "observed_at" in daily
    # Its count goes on growing with every call, as the org's does.
    await gw.client.get(f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}", headers=gw.auth("system:read"))
    assert (await _budgets(gw))["salesforce", "daily_api_requests"]["used"] > daily["used"]


async def test_salesforce_daily_requests_are_unknown_before_any_salesforce_response() -> None:
    from apis.config import SalesforceSettings
    from system_apis.crm.salesforce import SalesforceCrm

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "instance_url": "https://org.example"})
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []},
                              headers={"Sforce-Limit-Info": "api-usage=42/15000"})  # fmt: skip

    crm = SalesforceCrm(
        SalesforceSettings(base_url="https://org.example"), transport=httpx.MockTransport(answer)
    )
    budgets = VendorBudgets(load_settings({}), [crm])
    (daily,) = [b for b in (await budgets.budgets()).items if b.vendor == "salesforce"]
    assert (daily.used, daily.limit) == (None, None)
    assert "no Salesforce response seen yet" in (daily.source or "")
    await crm.http.send("GET", "services/data/v61.0/query/", params={"q": "SELECT Id FROM Account"})
    (daily,) = [b for b in (await budgets.budgets()).items if b.vendor == "salesforce"]
    assert (daily.used, daily.limit) == (42, 15000)
    await crm.close()


async def test_a_process_that_has_not_called_salesforce_reports_what_another_saw() -> None:
    from apis.config import SalesforceSettings
    from system_apis.crm.salesforce import SalesforceCrm

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "instance_url": "https://org.example"})
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []},
                              headers={"Sforce-Limit-Info": "api-usage=7/15000"})  # fmt: skip

    counters = MemoryCounters()
    settings = SalesforceSettings(base_url="https://org.example")
    busy, idle = (SalesforceCrm(settings, transport=httpx.MockTransport(answer)) for _ in range(2))
    busy_budgets = VendorBudgets(load_settings({}), [busy], counters=counters)
    idle_budgets = VendorBudgets(load_settings({}), [idle], counters=counters)
    await busy.http.send("GET", "services/data/v61.0/query/", params={"q": "SELECT Id FROM Account"})
    await busy_budgets.flush()
    (daily,) = (await idle_budgets.budgets()).items
    assert (daily.used, daily.limit, daily.scope) == (7, 15000, "vendor")
    assert busy.api_usage is not None
    assert daily.observed_at == busy.api_usage.observed_at
    await busy.close()
    await idle.close()


async def test_netsuite_in_flight_and_peak_follow_concurrent_calls(gw: Any) -> None:
    async with gw.sandbox("netsuite") as netsuite:
        rule = {"kind": "latency", "latency_ms": 1500, "path_pattern": "/record/v1/customer/"}
        assert (await netsuite.post("/__sandbox/faults", json=rule)).status_code == 201
        calls = [
            asyncio.create_task(
                gw.client.get(f"/system/v1/erp/customers/{DEMO_CUSTOMER_ID}", headers=gw.auth("system:read"))
            )
            for _ in range(3)
        ]
        for _ in range(500):  # a bound, so a broken meter fails instead of hanging (no time is asserted)
            budgets = await _budgets(gw)
            if budgets["netsuite", "concurrent_requests"]["used"] == 3:
                break
            await asyncio.sleep(0.005)
        assert budgets["netsuite", "concurrent_requests"]["used"] == 3
        assert (await netsuite.get("/__sandbox/stats")).json()["in_flight"] == 3  # what NetSuite sees
        assert budgets["netsuite", "peak_concurrent_requests"]["used"] == 3
        assert budgets["netsuite", "peak_concurrent_requests"]["limit"] == 5
        assert all(r.status_code == 200 for r in await asyncio.gather(*calls))
    after = await _budgets(gw)
    assert after["netsuite", "concurrent_requests"]["used"] == 0
    assert after["netsuite", "peak_concurrent_requests"]["used"] == 3  # the peak of the last minute


async def test_netsuite_concurrency_refusals_are_counted(gw: Any) -> None:
    async with gw.sandbox("netsuite") as netsuite:
        rule = {"kind": "error", "status": 429, "path_pattern": "/record/v1/customer/", "times": 2}
        assert (await netsuite.post("/__sandbox/faults", json=rule)).status_code == 201
    response = await gw.client.get(
        f"/system/v1/erp/customers/{DEMO_CUSTOMER_ID}", headers=gw.auth("system:read")
    )
    assert response.status_code == 200  # retried past both refusals
    assert (await _budgets(gw))["netsuite", "concurrency_refusals"]["used"] == 2


@pytest.fixture
def bc_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return lambda **extra: make_settings(erp_vendor="business_central", **extra)


def _bc_window_count(stats: dict[str, Any]) -> int:
    return sum(stats["requests_in_window"].values())


async def test_business_central_window_count_grows_with_each_call(
    make_gateway: Callable[[Settings], Any], bc_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(bc_settings())
    headers = gw.auth("system:read")
    assert (await gw.client.get("/system/v1/erp/customers", headers=headers)).status_code == 200
    before = (await _budgets(gw))["business_central", "requests_per_5_minutes"]
    assert before["used"] == _bc_window_count(await _sandbox_stats(gw, "business-central"))
    assert (before["limit"], before["window_seconds"]) == (6000, 300)
    for _ in range(3):
        assert (await gw.client.get("/system/v1/erp/customers", headers=headers)).status_code == 200
    after = (await _budgets(gw))["business_central", "requests_per_5_minutes"]
    assert after["used"] == _bc_window_count(await _sandbox_stats(gw, "business-central"))
    assert after["used"] >= before["used"] + 3


async def test_business_central_past_its_window_limit_is_unavailable_with_retry_after(
    make_gateway: Callable[[Settings], Any], bc_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(bc_settings(sandbox_business_central_requests_per_window=4))
    headers = gw.auth("system:read")
    answers = [await gw.client.get("/system/v1/erp/customers", headers=headers) for _ in range(5)]
    refused = [a for a in answers if a.status_code != 200]
    assert refused, [a.status_code for a in answers]
    problem = refused[0]
    assert problem.status_code == 503
    assert problem.json()["type"].endswith("vendor-unavailable")
    assert problem.json()["vendor"] == "business_central"
    # Business Central said when the window has room again (minutes away): the caller is told the same.
    assert int(problem.headers["Retry-After"]) > 30
    budgets = await _budgets(gw)
    assert budgets["business_central", "rate_limit_refusals"]["used"] >= 1
    assert (await _sandbox_stats(gw, "business-central"))["throttled"] >= 1


# --- shared across processes, and a state store outage ----------------------------------------------


class _HeldVendor:
    """A vendor whose answers wait until released, so calls stay in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await self.release.wait()
        return httpx.Response(200, json={})


class _Adapter:
    def __init__(self, http: VendorHttpClient) -> None:
        self.http = http


def _process(
    vendor: str, handler: Any, counters: Any, clock: Callable[[], float]
) -> tuple[Any, VendorBudgets]:
    http = VendorHttpClient(
        vendor,
        VendorHttpConfig(base_url="https://netsuite.example/services/rest"),
        transport=httpx.MockTransport(handler),
        meter_clock=clock,
    )
    return http, VendorBudgets(load_settings({}), [_Adapter(http)], counters=counters)


async def test_shared_figures_add_up_every_process() -> None:
    now = 1_800_000_000.5

    def clock() -> float:
        return now

    # What Redis is to the gateway: one counter store every process adds to.
    counters = MemoryCounters(clock=clock)
    vendor = _HeldVendor()
    first, first_budgets = _process("netsuite", vendor, counters, clock)
    second, second_budgets = _process("netsuite", vendor, counters, clock)
    calls = [asyncio.create_task(first.send("GET", "record/v1/customer/1")) for _ in range(2)]
    calls.append(asyncio.create_task(second.send("GET", "record/v1/customer/1")))
    while first.meter.in_flight + second.meter.in_flight < 3:
        await asyncio.sleep(0)
    await first_budgets.flush()  # the first process's background flush
    figures = {b.name: b for b in (await second_budgets.budgets()).items}
    assert figures["concurrent_requests"].used == 3
    assert figures["concurrent_requests"].scope == "shared"
    assert figures["peak_concurrent_requests"].used == 3
    # Each process on its own saw only its share.
    own = {b.name: b for b in (await VendorBudgets(load_settings({}), [_Adapter(second)]).budgets()).items}
    assert (own["concurrent_requests"].used, own["peak_concurrent_requests"].used) == (1, 1)
    vendor.release.set()
    await asyncio.gather(*calls)
    await first_budgets.flush()
    figures = {b.name: b for b in (await second_budgets.budgets()).items}
    assert figures["concurrent_requests"].used == 0
    assert figures["peak_concurrent_requests"].used == 3  # the peak of the last minute
    now += 60 + 5  # a minute later (read in whole 5-second buckets)
    await first_budgets.flush()
    figures = {b.name: b for b in (await second_budgets.budgets()).items}
    assert (figures["concurrent_requests"].used, figures["peak_concurrent_requests"].used) == (0, 0)
    await first.aclose()
    await second.aclose()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")  # keeps its data across the restart, as a real one does
    server.start()
    yield server
    server.stop()


async def test_a_redis_outage_leaves_vendor_calls_alone_and_budgets_fall_back_to_this_process(
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    redis_server: PrivateRedis,
) -> None:
    gw = await make_gateway(make_settings(redis_url=redis_server.url))
    headers = gw.auth("system:read")
    projects = "/system/v1/psa/projects"
    assert (await gw.client.get(projects, headers=headers)).status_code == 200
    shared = (await _budgets(gw))["kantata", "requests_per_minute"]
    assert shared["scope"] == "shared"
    assert shared["used"] == len((await _sandbox_stats(gw, "kantata"))["requests"]) > 0

    redis_server.stop()
    calls = [await gw.client.get(projects, headers=headers) for _ in range(3)]
    assert [c.status_code for c in calls] == [200, 200, 200]  # counting never waits for the store
    kantata_saw = len((await _sandbox_stats(gw, "kantata"))["requests"])
    budgets = await _budgets(gw)
    figure = budgets["kantata", "requests_per_minute"]
    assert figure["scope"] == "process"
    assert "did not answer" in figure["source"]
    assert figure["used"] == kantata_saw
    assert budgets["salesforce", "daily_api_requests"]["scope"] == "vendor"  # Salesforce's own, unaffected

    # Back again: what was counted during the outage is added to the shared count.
    redis_server.start()
    for _ in range(100):  # a bound, not a timing assertion: the flush runs once a second
        figure = (await _budgets(gw))["kantata", "requests_per_minute"]
        if figure["scope"] == "shared":
            break
        await asyncio.sleep(0.1)
    assert figure["scope"] == "shared"
    assert figure["used"] == kantata_saw


def test_a_window_counts_only_its_own_seconds() -> None:
    from system_apis.call_meter import RING_SECONDS, CallMeter

    now = 1_800_000_000.0
    meter = CallMeter("business_central", clock=lambda: now)
    for _ in range(4):
        meter.started()
        meter.finished(200)
    meter.started()
    meter.finished(429)
    now += 299
    meter.started()
    meter.finished(200)
    assert (meter.requests_since(300), meter.throttled_since(300)) == (6, 1)
    now += 1  # the first second leaves the 5-minute window
    assert (meter.requests_since(300), meter.throttled_since(300)) == (1, 0)
    now += RING_SECONDS  # the ring comes round to the same slots: stale seconds are not counted again
    assert (meter.requests_since(300), meter.peak_since(60), meter.in_flight) == (0, 0, 0)


async def test_certinia_reports_its_orgs_daily_requests(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    # Certinia PSA is a managed package in the CRM's org by default: its calls spend that org's daily
    # allowance, which it reads from the same Sforce-Limit-Info header.
    gw = await make_gateway(make_settings(psa_vendor="certinia"))
    listed = await gw.client.get(
        "/system/v1/psa/projects", params={"limit": 1}, headers=gw.auth("system:read")
    )
    assert listed.status_code == 200, listed.text
    budgets = await _budgets(gw)
    daily = budgets["certinia", "daily_api_requests"]
    assert daily["used"] is not None
    assert daily["limit"] == 100_000


async def test_a_psa_mid_migration_reports_both_psas(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    # Kantata the default, DE01 delivered in Certinia: the router's two PSAs each report their own figures.
    gw = await make_gateway(make_settings(psa_vendor="kantata", psa_by_legal_entity={"DE01": "certinia"}))
    for entity in ("US01", "DE01"):  # a project in each PSA
        body = {
            "external_key": f"budgets-{entity}",
            "name": "Budgets",
            "customer_id": DEMO_ACCOUNT_ID,
            "currency": "EUR",
            "legal_entity": entity,
        }
        headers = {**gw.auth("system:read system:write"), "Idempotency-Key": f"budgets-{entity}"}
        made = await gw.client.post("/system/v1/psa/projects", json=body, headers=headers)
        assert made.status_code == 201, made.text
    budgets = await _budgets(gw)
    assert {"kantata", "certinia"} <= {vendor for vendor, _ in budgets}
    assert budgets["certinia", "daily_api_requests"]["used"] is not None
