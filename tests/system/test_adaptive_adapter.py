"""The Adaptive Planning adapter: against the Adaptive sandbox in process (``httpx.ASGITransport``) for
publishing and reading, and against ``httpx.MockTransport`` for what a failed answer becomes at the port
(``success="false"``, HTTP 5xx, malformed or hostile XML, refused credentials: never the password)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog

from apis.config import AdaptiveSettings
from contracts.models import ForecastSource, MonthlyAmount, RevenueActuals, RevenueBaseline
from sandboxes.adaptive import AdaptiveSandbox, create_adaptive_sandbox
from sandboxes.adaptive.data import DEMO_PROJECT_ID
from sandboxes.faults import FaultRule
from system_apis.errors import NotFound, VendorBadResponse, VendorRejected, VendorUnavailable
from system_apis.fpa.adaptive import AdaptiveFpa
from system_apis.fpa.adaptive_mapping import (
    figures_from_export,
    import_body,
    parse_answer,
    parse_xml,
    refusals,
)
from system_apis.fpa.port import FpaPort
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

ENDPOINT = "http://adaptive.test/api/v40"
SECRET = "pa55-w0rd-never-logged"


def _plan(months: dict[str, str], currency: str = "USD") -> RevenueBaseline:
    entries = [MonthlyAmount(month=m, amount=Decimal(a)) for m, a in months.items()]
    return RevenueBaseline(external_key="opp-9:v1", currency=currency, months=entries)


def _actuals(months: dict[str, str], currency: str = "USD") -> RevenueActuals:
    entries = [MonthlyAmount(month=m, amount=Decimal(a)) for m, a in months.items()]
    return RevenueActuals(external_key="close", currency=currency, months=entries)


async def _no_sleep(_: float) -> None:
    return None


def _adapter(transport: httpx.AsyncBaseTransport, **settings: Any) -> AdaptiveFpa:
    return AdaptiveFpa(
        AdaptiveSettings(base_url=ENDPOINT, **settings),
        transport=transport,
        retry=RetryPolicy(max_attempts=2),
        breaker=BreakerPolicy(failure_threshold=0),
        sleep=_no_sleep,
    )


@pytest.fixture
async def sandboxed() -> AsyncIterator[tuple[AdaptiveFpa, AdaptiveSandbox]]:
    app = create_adaptive_sandbox()
    fpa = _adapter(httpx.ASGITransport(app=app))
    yield fpa, app.state.sandbox
    await fpa.close()


def _cells(
    sandbox: AdaptiveSandbox, project: str, version: str, *, level: str | None = None
) -> dict[str, str]:
    return {
        key[4]: amount
        for key, amount in sandbox.cells.items()
        if key[3] == project and key[0] == version and level in (None, key[2])
    }


# --- against the sandbox --------------------------------------------------------------------------------


async def test_it_is_an_fpa_port(sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox]) -> None:
    assert isinstance(sandboxed[0], FpaPort)


async def test_a_baseline_goes_into_the_plan_version_as_decimal_strings(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    fpa, sandbox = sandboxed
    result = await fpa.publish_baseline("P-10", _plan({"2027-01": "1000.10", "2027-02": "0.05"}))
    assert (result.rows_loaded, result.rows_failed, result.failures) == (2, 0, [])
    assert _cells(sandbox, "P-10", "Working Budget") == {"2027-01": "1000.10", "2027-02": "0.05"}
    assert _cells(sandbox, "P-10", "Actuals") == {}


async def test_the_forecast_merges_actuals_over_the_plan_in_the_levels_currency(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    fpa, _ = sandboxed
    forecast = await fpa.get_forecast(DEMO_PROJECT_ID)
    assert forecast.currency == "USD"
    assert forecast.as_of == "2026-03"
    assert [(m.month, m.amount, m.source) for m in forecast.months[2:4]] == [
        ("2026-03", Decimal("49875.25"), ForecastSource.ACTUAL),
        ("2026-04", Decimal("55000.00"), ForecastSource.BASELINE),
    ]
    assert all(isinstance(m.amount, Decimal) for m in forecast.months)


async def test_a_republish_zeroes_the_months_it_leaves_out(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    fpa, sandbox = sandboxed
    await fpa.publish_actuals("P-11", _actuals({"2027-01": "5.00", "2027-02": "6.00"}))
    result = await fpa.publish_actuals("P-11", _actuals({"2027-02": "7.00"}))
    assert (result.rows_loaded, result.rows_failed) == (1, 0)  # the zero written for January is not counted
    assert _cells(sandbox, "P-11", "Actuals") == {"2027-02": "7.00"}


async def test_an_unknown_project_is_not_found(sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox]) -> None:
    with pytest.raises(NotFound):
        await sandboxed[0].get_forecast("NO-SUCH-PROJECT")


async def test_a_plan_goes_to_the_level_kept_in_its_currency(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    # A level has one currency and Adaptive files an import under it unconverted (Knowledge Center,
    # "importStandardData": values are in the level's currency), so a GBP plan goes to the GBP level.
    fpa, sandbox = sandboxed
    await fpa.publish_baseline("P-12", _plan({"2027-01": "1.00"}, currency="GBP"))
    assert _cells(sandbox, "P-12", "Working Budget", level="Services UK") == {"2027-01": "1.00"}
    assert _cells(sandbox, "P-12", "Working Budget", level="Professional Services") == {}
    forecast = await fpa.get_forecast("P-12")
    assert (forecast.currency, [m.amount for m in forecast.months]) == ("GBP", [Decimal("1.00")])


async def test_a_plan_in_a_currency_no_level_keeps_is_refused_before_any_import(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    fpa, sandbox = sandboxed
    with pytest.raises(VendorRejected, match="LEVELS_BY_CURRENCY"):
        await fpa.publish_baseline("P-14", _plan({"2027-01": "1.00"}, currency="JPY"))
    assert _cells(sandbox, "P-14", "Working Budget") == {}


async def test_a_project_keeps_the_currency_of_its_figures(
    sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox],
) -> None:
    fpa, sandbox = sandboxed
    await fpa.publish_baseline("P-15", _plan({"2027-01": "1.00"}))
    with pytest.raises(VendorRejected, match="keeps one currency"):
        await fpa.publish_actuals("P-15", _actuals({"2027-01": "2.00"}, currency="EUR"))
    assert _cells(sandbox, "P-15", "Actuals") == {}
    assert (await fpa.get_forecast("P-15")).currency == "USD"


async def test_settings_the_instance_lacks_are_named(sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox]) -> None:
    _, sandbox = sandboxed
    app = create_adaptive_sandbox()
    wrong_level = _adapter(httpx.ASGITransport(app=app), level="Nowhere")
    with pytest.raises(VendorBadResponse, match="Adaptive Planning settings"):
        await wrong_level.get_forecast(DEMO_PROJECT_ID)
    locked = _adapter(httpx.ASGITransport(app=app), plan_version="Budget 2026")
    with pytest.raises(VendorBadResponse, match="locked"):
        await locked.publish_baseline("P-13", _plan({"2027-01": "1.00"}))
    checks = await _adapter(httpx.ASGITransport(app=app), revenue_account="Nope").check()
    assert [check.what for check in checks if check.fix] == ["account 'Nope'"]
    assert sandbox is not None


async def test_an_outage_is_unavailable(sandboxed: tuple[AdaptiveFpa, AdaptiveSandbox]) -> None:
    fpa, sandbox = sandboxed
    sandbox.faults.add(FaultRule(kind="error", status=503, path_pattern="^/api/"))
    with pytest.raises(VendorUnavailable):
        await fpa.get_forecast(DEMO_PROJECT_ID)


# --- failures on the wire (MockTransport) ---------------------------------------------------------------


def _answering(body: bytes, status: int = 200, seen: list[bytes] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.content)
        return httpx.Response(status, content=body, headers={"Content-Type": "text/xml"})

    return httpx.MockTransport(handler)


_REFUSED_LOGIN = (
    b"<?xml version='1.0' encoding='UTF-8'?><response success=\"false\"><messages>"
    b'<message key="error-authentication-failure">Invalid login or password</message></messages></response>'
)


async def test_refused_credentials_never_leak_the_password() -> None:
    seen: list[bytes] = []
    fpa = _adapter(_answering(_REFUSED_LOGIN, seen=seen), password=SECRET)
    with structlog.testing.capture_logs() as logs, pytest.raises(VendorUnavailable) as raised:
        await fpa.get_forecast("P-1")
    assert SECRET.encode() in seen[0]  # it went to Adaptive, in the credentials element...
    assert SECRET not in str(raised.value)  # ...and nowhere else
    assert SECRET not in repr(logs)
    assert SECRET not in repr(fpa)
    assert "credentials" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            b'<response success="false"><messages><message key="x">No.</message></messages></response>',
            200,
            VendorRejected,
        ),
        (b"<response success='true'><output>", 200, VendorBadResponse),
        (b"<html>Service Unavailable</html>", 503, VendorUnavailable),
        (b"oops", 500, VendorBadResponse),
        (b"<response><output/></response>", 200, VendorBadResponse),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<response success="true"><output>&b;</output></response>',
            200,
            VendorBadResponse,
        ),
    ],
    ids=[
        "success-false",
        "malformed-xml",
        "http-503",
        "http-500",
        "no-success-attribute",
        "entity-expansion",
    ],
)
async def test_what_a_failed_answer_becomes(body: bytes, status: int, error: type[Exception]) -> None:
    fpa = _adapter(_answering(body, status))
    with pytest.raises(error):
        await fpa.get_forecast("P-1")


# --- mapping --------------------------------------------------------------------------------------------


def test_an_import_row_is_pipe_separated_with_plain_decimals_in_month_order() -> None:
    body = import_body(
        plan_or_actuals="Plan",
        version="Working & Budget",
        account="ServicesRevenue",
        level="Professional Services",
        dimension="Project",
        project="P<1>",
        amounts={"2027-02": Decimal("1E+3"), "2027-01": Decimal("-0.50")},
    )
    root = parse_xml(f"<call>{body}</call>".encode())
    assert root.find("version").get("name") == "Working & Budget"  # type: ignore[union-attr]
    assert root.findtext("rowData/header") == "Account|Level|Project|01/2027|02/2027"
    assert root.findtext("rowData/rows/row") == "ServicesRevenue|Professional Services|P<1>|-0.50|1000"
    with pytest.raises(ValueError, match=r"'\|'"):
        import_body(
            plan_or_actuals="Plan",
            version="v",
            account="a",
            level="l",
            dimension="d",
            project="a|b",
            amounts={},
        )


def test_the_export_csv_becomes_the_projects_non_zero_months_by_level() -> None:
    answer = parse_answer(
        b'<response success="true"><output><![CDATA[Account Name,Account Code,Level Name,Project,'
        b"01/2027,02/2027,03/2027\nServices Revenue,ServicesRevenue,PS,P-1,10.50,0.00,\n"
        b"Services Revenue,ServicesRevenue,PS,P-2,99,99,99\n"
        b"Services Revenue,ServicesRevenue,UK,P-1,0,,\n"
        b"Services Revenue,ServicesRevenue,PS,P-1,1.25,,3\n]]>"
        b"</output></response>"
    )
    # A level whose cells are all zero holds no figure, so it is left out.
    assert figures_from_export(answer.output, "Project", "P-1") == {
        "PS": {"2027-01": Decimal("11.75"), "2027-03": Decimal("3")}
    }
    with pytest.raises(ValueError, match="Region"):
        figures_from_export(answer.output, "Region", "P-1")


def test_refused_cells_and_rows_become_failures_by_month() -> None:
    messages = [
        ("import-success", "Data import successful. Rows imported: 1"),
        ("import-cell-error", "Row 1, 01/2041: time period not found"),
    ]
    failures = refusals(messages, ["2027-01", "2041-01"])
    assert [(f.month, f.message) for f in failures] == [("2041-01", "time period not found")]
    whole_row = refusals([("import-row-error", "Row 1: Account not found")], ["2027-01", "2027-02"])
    assert [f.month for f in whole_row] == ["2027-01", "2027-02"]
