"""The Anaplan adapter against the Anaplan sandbox in process (``httpx.ASGITransport``): publishing a
project's baseline and actuals through chunked uploads and polled import tasks, reading the forecast
through the export, and what Anaplan's auth, limits and refusals become at the port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from apis.config import AnaplanSettings
from contracts.models import ForecastSource, MonthlyAmount, RevenueActuals, RevenueBaseline
from sandboxes.anaplan import AnaplanSandbox, AnaplanSandboxSettings, create_anaplan_sandbox
from sandboxes.anaplan.data import (
    ACTUALS_FILE_ID,
    BASELINE_FILE_ID,
    DEMO_PROJECT_ID,
    REVENUE_MODEL_ID,
    WORKSPACE_ID,
)
from sandboxes.faults import FaultRule
from system_apis.errors import NotFound, VendorBadResponse, VendorRejected, VendorTimeout, VendorUnavailable
from system_apis.fpa.anaplan import AnaplanFpa
from system_apis.fpa.port import FpaPort
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

ROOT = "http://anaplan.test"
# Ten seconds into a minute, after the wall clock (2_000_000_000 is 20 s into its minute).
T0 = 2_000_000_000.0 - 10


def _months(first: int, last: int, amount: str = "1000.00", year: int = 2026) -> list[MonthlyAmount]:
    return [
        MonthlyAmount(month=f"{year}-{m:02d}", amount=Decimal(amount) * m) for m in range(first, last + 1)
    ]


def baseline(*, months: list[MonthlyAmount] | None = None, currency: str = "USD") -> RevenueBaseline:
    return RevenueBaseline(external_key="opp-7:v1", currency=currency, months=months or _months(1, 12))


def actuals(*, months: list[MonthlyAmount] | None = None, currency: str = "USD") -> RevenueActuals:
    return RevenueActuals(
        external_key="close-2026-03", currency=currency, months=months or _months(1, 3, "990.00")
    )


class Harness:
    def __init__(self, app: Any, fpa: AnaplanFpa, sleeps: list[float]) -> None:
        self.app = app
        self.fpa = fpa
        self.sleeps = sleeps

    @property
    def sandbox(self) -> AnaplanSandbox:
        sandbox: AnaplanSandbox = self.app.state.sandbox
        return sandbox

    def cells(self, project: str, version: str) -> dict[str, tuple[str, str, str | None]]:
        return {
            month: (cell.currency, cell.amount, cell.reference)
            for (p, v, month), cell in self.sandbox.cells.items()
            if p == project and v == version
        }

    def requests(self, fragment: str) -> list[tuple[str, str, int]]:
        return [(e.method, e.path, e.status) for e in self.sandbox.request_log if fragment in e.path]


def make(
    sandbox: AnaplanSandboxSettings | None = None, *, clock_at: float | None = None, **options: Any
) -> Harness:
    app = create_anaplan_sandbox(sandbox or AnaplanSandboxSettings())
    sleeps: list[float] = []
    if clock_at is not None:
        now = [clock_at]
        app.state.sandbox.clock = lambda: now[0]

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds
    else:

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

    settings = AnaplanSettings(base_url=ROOT, **options.pop("settings", {}))
    fpa = AnaplanFpa(
        settings,
        transport=httpx.ASGITransport(app=app),
        sleep=sleep,
        retry=options.pop("retry", RetryPolicy(max_attempts=3)),
        breaker=BreakerPolicy(failure_threshold=0),
        **options,
    )
    return Harness(app, fpa, sleeps)


@pytest.fixture
async def anaplan() -> AsyncIterator[Harness]:
    harness = make()
    yield harness
    await harness.fpa.close()


def test_the_adapter_is_an_fpa_port(anaplan: Harness) -> None:
    assert isinstance(anaplan.fpa, FpaPort)
    assert anaplan.fpa.vendor == "anaplan"


async def test_a_published_baseline_lands_in_the_model(anaplan: Harness) -> None:
    result = await anaplan.fpa.publish_baseline("OPP-7", baseline())
    assert (result.rows_loaded, result.rows_failed, result.failures) == (12, 0, [])
    assert result.task_id
    landed = anaplan.cells("OPP-7", "baseline")
    assert len(landed) == 12
    assert landed["2026-03"] == ("USD", "3000.00", "opp-7:v1")
    # Uploaded gzip-compressed, run as a task and polled until COMPLETE (the sandbox's second read).
    chunk = f"/2/0/workspaces/{WORKSPACE_ID}/models/{REVENUE_MODEL_ID}/files/{BASELINE_FILE_ID}/chunks/0"
    assert [r for r in anaplan.requests("/chunks/") if r[0] == "PUT"] == [("PUT", chunk, 204)]
    polls = [r for r in anaplan.requests("/imports/") if r[0] == "GET"]
    assert len(polls) == 2
    # One poll wait for the forecast export that reads the project's current figures, one for the import.
    assert anaplan.sleeps == [0.5, 0.5]


async def test_actuals_and_baseline_combine_into_the_forecast(anaplan: Harness) -> None:
    await anaplan.fpa.publish_baseline("OPP-7", baseline())
    await anaplan.fpa.publish_actuals("OPP-7", actuals())
    forecast = await anaplan.fpa.get_forecast("OPP-7")
    assert forecast.project_id == "OPP-7"
    assert forecast.currency == "USD"
    assert forecast.as_of == "2026-03"
    assert [(m.month, m.amount, m.source) for m in forecast.months[2:4]] == [
        ("2026-03", Decimal("2970.00"), ForecastSource.ACTUAL),
        ("2026-04", Decimal("4000.00"), ForecastSource.BASELINE),
    ]
    assert len(forecast.months) == 12


async def test_the_seeded_project_has_a_forecast_and_an_unknown_one_has_none(anaplan: Harness) -> None:
    forecast = await anaplan.fpa.get_forecast(DEMO_PROJECT_ID)
    assert forecast.as_of == "2026-03"
    assert forecast.months[0].amount == Decimal("38250.50")
    with pytest.raises(NotFound):
        await anaplan.fpa.get_forecast("NO-SUCH-PROJECT")


async def test_a_refused_month_is_reported_and_the_others_load(anaplan: Harness) -> None:
    months = [*_months(1, 3), MonthlyAmount(month="2041-01", amount=Decimal("5.00"))]
    result = await anaplan.fpa.publish_baseline("OPP-8", baseline(months=months))
    assert (result.rows_loaded, result.rows_failed) == (3, 1)
    assert [(f.month, f.message) for f in result.failures] == [
        ("2041-01", "Time period 2041-01 is outside the model's timescale")
    ]
    assert sorted(anaplan.cells("OPP-8", "baseline")) == ["2026-01", "2026-02", "2026-03"]


async def test_a_failure_dump_already_gone_still_reports_the_count(anaplan: Harness) -> None:
    anaplan.app.state.faults.add(FaultRule(kind="error", status=404, path_pattern="/dump$", body="{}"))
    months = [*_months(1, 2), MonthlyAmount(month="1999-12", amount=Decimal("5.00"))]
    result = await anaplan.fpa.publish_baseline("OPP-8", baseline(months=months))
    assert (result.rows_loaded, result.rows_failed, result.failures) == (2, 1, [])


async def test_a_publish_refused_as_a_whole_is_rejected_and_changes_nothing(anaplan: Harness) -> None:
    before = anaplan.cells(DEMO_PROJECT_ID, "actual")
    with pytest.raises(VendorRejected, match="does not match the project's currency USD"):
        await anaplan.fpa.publish_actuals(DEMO_PROJECT_ID, actuals(currency="EUR"))
    assert anaplan.cells(DEMO_PROJECT_ID, "actual") == before


async def test_publishing_again_replaces_the_projects_figures(anaplan: Harness) -> None:
    await anaplan.fpa.publish_baseline("OPP-9", baseline())
    await anaplan.fpa.publish_baseline("OPP-9", baseline())
    assert len(anaplan.cells("OPP-9", "baseline")) == 12
    shorter = await anaplan.fpa.publish_baseline("OPP-9", baseline(months=_months(1, 6, "10.00")))
    assert shorter.rows_loaded == 6
    forecast = await anaplan.fpa.get_forecast("OPP-9")
    assert [m.month for m in forecast.months] == [f"2026-{m:02d}" for m in range(1, 7)]
    assert forecast.months[5].amount == Decimal("60.00")


async def test_a_shorter_baseline_writes_zeros_for_the_months_it_no_longer_has(anaplan: Harness) -> None:
    # An Anaplan import writes only the cells in its file: the third month would keep its old figure on a
    # real model unless the file itself zeroes it.
    await anaplan.fpa.publish_baseline("OPP-20", baseline(months=_months(1, 3)))
    shorter = await anaplan.fpa.publish_baseline("OPP-20", baseline(months=_months(1, 2, "7.00")))
    uploaded = anaplan.sandbox.models[REVENUE_MODEL_ID].files[BASELINE_FILE_ID].content().decode()
    assert uploaded.splitlines()[1:] == [
        "OPP-20,2026-01,USD,baseline,7.00,opp-7:v1",
        "OPP-20,2026-02,USD,baseline,14.00,opp-7:v1",
        "OPP-20,2026-03,USD,baseline,0,opp-7:v1",
    ]
    assert (shorter.rows_loaded, shorter.rows_failed) == (2, 0)  # the plan's months, not the zero rows
    assert sorted(anaplan.cells("OPP-20", "baseline")) == ["2026-01", "2026-02"]
    forecast = await anaplan.fpa.get_forecast("OPP-20")
    assert [(m.month, m.amount) for m in forecast.months] == [
        ("2026-01", Decimal("7.00")),
        ("2026-02", Decimal("14.00")),
    ]


async def test_shorter_actuals_give_a_dropped_month_back_to_the_baseline(anaplan: Harness) -> None:
    await anaplan.fpa.publish_baseline("OPP-21", baseline())
    await anaplan.fpa.publish_actuals("OPP-21", actuals())  # January to March
    await anaplan.fpa.publish_actuals("OPP-21", actuals(months=_months(1, 2, "990.00")))
    uploaded = anaplan.sandbox.models[REVENUE_MODEL_ID].files[ACTUALS_FILE_ID].content().decode()
    # Only the actual month the plan dropped is zeroed, not the baseline's other months.
    assert uploaded.splitlines()[1:] == [
        "OPP-21,2026-01,USD,actual,990.00,close-2026-03",
        "OPP-21,2026-02,USD,actual,1980.00,close-2026-03",
        "OPP-21,2026-03,USD,actual,0,close-2026-03",
    ]
    forecast = await anaplan.fpa.get_forecast("OPP-21")
    assert forecast.as_of == "2026-02"
    march = forecast.months[2]
    assert (march.amount, march.source) == (Decimal("3000.00"), ForecastSource.BASELINE)
    assert len(forecast.months) == 12


async def test_a_first_publish_writes_only_the_plans_months(anaplan: Harness) -> None:
    await anaplan.fpa.publish_baseline("OPP-22", baseline(months=_months(1, 2)))
    uploaded = anaplan.sandbox.models[REVENUE_MODEL_ID].files[BASELINE_FILE_ID].content().decode()
    assert len(uploaded.splitlines()) == 3


async def test_a_large_plan_uploads_in_several_chunks() -> None:
    harness = make(chunk_bytes=64)
    try:
        result = await harness.fpa.publish_baseline("OPP-10", baseline(months=_months(1, 12, "123456.78")))
        assert result.rows_loaded == 12
        uploaded = harness.sandbox.models[REVENUE_MODEL_ID].files[BASELINE_FILE_ID]
        assert uploaded.chunk_count == len(uploaded.chunks) > 3
        assert uploaded.content().decode().count("\n") == 13
    finally:
        await harness.fpa.close()


async def test_a_429_is_waited_out_for_as_long_as_retry_after_says() -> None:
    # 50 s into the minute with a budget of 10 calls: the first poll of the import task is refused (after the
    # lookups, the forecast export that reads the current figures, and the upload), 10 s before the next
    # minute.
    harness = make(AnaplanSandboxSettings(requests_per_minute=10), clock_at=T0 + 40)
    try:
        result = await harness.fpa.publish_baseline("OPP-11", baseline())
        assert result.rows_loaded == 12
        assert harness.sandbox.throttled == 1
        assert 10.0 in harness.sleeps  # the Retry-After, not a guess
    finally:
        await harness.fpa.close()


async def test_a_429_longer_than_we_wait_is_unavailable_with_its_retry_after() -> None:
    harness = make(AnaplanSandboxSettings(requests_per_minute=2), clock_at=T0)
    try:
        with pytest.raises(VendorUnavailable) as raised:
            await harness.fpa.publish_baseline("OPP-12", baseline())
        assert raised.value.retry_after == 50.0
    finally:
        await harness.fpa.close()


async def test_an_expired_token_is_replaced_once_and_the_call_goes_on(anaplan: Harness) -> None:
    await anaplan.fpa.get_forecast(DEMO_PROJECT_ID)
    assert anaplan.fpa.auth.tokens_fetched == 1
    anaplan.sandbox.expire_tokens()
    await anaplan.fpa.get_forecast(DEMO_PROJECT_ID)
    assert anaplan.fpa.auth.tokens_fetched == 2
    assert anaplan.requests("/token/authenticate") == [("POST", "/token/authenticate", 201)] * 2


async def test_a_token_near_its_expiry_is_refreshed_rather_than_logged_in_again() -> None:
    now = [T0]
    harness = make(clock=lambda: now[0])
    harness.sandbox.clock = lambda: now[0]
    try:
        await harness.fpa.get_forecast(DEMO_PROJECT_ID)
        now[0] += 34 * 60  # within five minutes of the 35-minute expiry
        await harness.fpa.get_forecast(DEMO_PROJECT_ID)
        assert harness.requests("/token/") == [
            ("POST", "/token/authenticate", 201),
            ("POST", "/token/refresh", 201),
        ]
    finally:
        await harness.fpa.close()


async def test_wrong_credentials_are_unavailable_without_tripping_the_breaker() -> None:
    harness = make(settings={"password": "wrong"})
    try:
        with pytest.raises(VendorUnavailable, match="credentials rejected"):
            await harness.fpa.get_forecast(DEMO_PROJECT_ID)
        assert harness.requests("/2/0/") == []
    finally:
        await harness.fpa.close()


async def test_a_task_that_never_completes_times_out() -> None:
    harness = make(
        AnaplanSandboxSettings(task_polls_to_complete=1000), settings={"task_timeout_seconds": 12.0}
    )
    try:
        with pytest.raises(VendorTimeout):
            await harness.fpa.publish_baseline("OPP-13", baseline())
        # Backoff between polls: half a second, doubling to at most 5 seconds, until the 12 s are spent.
        assert harness.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0]
    finally:
        await harness.fpa.close()


async def test_a_transient_failure_of_an_idempotent_step_is_retried(anaplan: Harness) -> None:
    anaplan.app.state.faults.add(
        FaultRule(kind="error", status=503, method="POST", path_pattern="/imports/.*/tasks$", times=1)
    )
    result = await anaplan.fpa.publish_baseline("OPP-14", baseline())
    assert result.rows_loaded == 12
    starts = [r for r in anaplan.requests("/imports/") if r[0] == "POST"]
    assert [status for *_, status in starts] == [503, 200]


async def test_an_import_not_in_the_model_is_a_configuration_error() -> None:
    harness = make(settings={"baseline_import": "Import Something Else"})
    try:
        with pytest.raises(VendorBadResponse, match="no import named 'Import Something Else'"):
            await harness.fpa.publish_baseline("OPP-15", baseline())
    finally:
        await harness.fpa.close()


async def test_a_model_not_in_the_workspace_is_a_configuration_error() -> None:
    harness = make(settings={"model_id": "00000000000000000000000000000000"})
    try:
        with pytest.raises(VendorBadResponse, match="check the Anaplan settings"):
            await harness.fpa.get_forecast(DEMO_PROJECT_ID)
    finally:
        await harness.fpa.close()


class _HostRecorder(httpx.AsyncBaseTransport):
    """Records each request's host, then hands it to the sandbox (which serves every host at its root)."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.calls: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.url.host, request.url.path))
        return await self._inner.handle_async_request(request)


async def test_a_real_tenant_logs_in_at_anaplans_auth_host_not_at_its_api_host() -> None:
    # Anaplan's authentication service (auth.anaplan.com) is another host than its API (api.anaplan.com):
    # with only the API host configured, the token must still come from the authentication host.
    transport = _HostRecorder(create_anaplan_sandbox(AnaplanSandboxSettings()))
    fpa = AnaplanFpa(AnaplanSettings(base_url="https://api.anaplan.com"), transport=transport)
    try:
        await fpa.get_forecast(DEMO_PROJECT_ID)
    finally:
        await fpa.close()
    assert ("auth.anaplan.com", "/token/authenticate") in transport.calls
    assert {host for host, path in transport.calls if path.startswith("/2/0/")} == {"api.anaplan.com"}
    assert not [path for host, path in transport.calls if host == "api.anaplan.com" and "/token/" in path]


def test_the_auth_url_defaults_to_anaplans_auth_host_and_stays_its_own_setting() -> None:
    assert AnaplanSettings().auth_url == "https://auth.anaplan.com"
    settings = AnaplanSettings(base_url="https://api.eu1.anaplan.net", auth_url="https://auth.eu1.anaplan.net")
    assert (settings.base_url, settings.auth_url) == ("https://api.eu1.anaplan.net", "https://auth.eu1.anaplan.net")


# --- one export for the reads that come while it runs ----------------------------------------------------


def _export_starts(anaplan: Harness) -> list[int]:
    return [status for method, _, status in anaplan.requests("/exports/") if method == "POST"]


async def test_reads_at_once_share_one_running_export(anaplan: Harness) -> None:
    await anaplan.fpa.publish_baseline("OPP-21", baseline())
    before = len(_export_starts(anaplan))
    demo, published, unknown = await asyncio.gather(
        anaplan.fpa.get_forecast(DEMO_PROJECT_ID),
        anaplan.fpa.get_forecast("OPP-21"),
        anaplan.fpa.get_forecast("NO-SUCH-PROJECT"),
        return_exceptions=True,
    )
    assert not isinstance(demo, BaseException)
    assert demo.months[0].amount == Decimal("38250.50")
    assert not isinstance(published, BaseException)
    assert published.months[2].amount == Decimal("3000.00")
    assert isinstance(unknown, NotFound)
    # Three projects' figures, one export run (the export covers the whole model).
    assert len(_export_starts(anaplan)) - before == 1
    # Once it is done, the next read runs the export again: figures are never kept beyond one run.
    await anaplan.fpa.get_forecast(DEMO_PROJECT_ID)
    assert len(_export_starts(anaplan)) - before == 2


async def test_a_failed_shared_export_fails_every_read_waiting_on_it_and_the_next_starts_afresh() -> None:
    harness = make(retry=RetryPolicy(max_attempts=1))
    try:
        harness.app.state.faults.add(
            FaultRule(kind="error", status=500, method="POST", path_pattern="/exports/.*/tasks$", times=1)
        )
        first, second = await asyncio.gather(
            harness.fpa.get_forecast(DEMO_PROJECT_ID),
            harness.fpa.get_forecast(DEMO_PROJECT_ID),
            return_exceptions=True,
        )
        assert isinstance(first, VendorUnavailable | VendorBadResponse)
        assert isinstance(second, type(first))
        assert _export_starts(harness) == [500]
        forecast = await harness.fpa.get_forecast(DEMO_PROJECT_ID)
        assert forecast.months[0].amount == Decimal("38250.50")
        assert _export_starts(harness) == [500, 200]
    finally:
        await harness.fpa.close()


async def test_a_read_cancelled_leaves_the_shared_export_to_the_others(anaplan: Harness) -> None:
    leaving = asyncio.ensure_future(anaplan.fpa.get_forecast(DEMO_PROJECT_ID))
    staying = asyncio.ensure_future(anaplan.fpa.get_forecast(DEMO_PROJECT_ID))
    await asyncio.sleep(0)
    leaving.cancel()
    forecast = await staying
    assert forecast.months[0].amount == Decimal("38250.50")
    assert len(_export_starts(anaplan)) == 1


async def test_a_publish_never_reads_through_an_export_started_before_it(anaplan: Harness) -> None:
    # A read's export is running when the publish starts: the publish's own read of the model's figures
    # runs its own export, and a read after the publish sees what it wrote.
    reading = asyncio.ensure_future(anaplan.fpa.get_forecast(DEMO_PROJECT_ID))
    while not _export_starts(anaplan):
        await asyncio.sleep(0)
    assert not reading.done()
    await anaplan.fpa.publish_baseline("OPP-22", baseline())
    await reading
    assert len(_export_starts(anaplan)) == 2
    after = await anaplan.fpa.get_forecast("OPP-22")
    assert after.months[2].amount == Decimal("3000.00")
