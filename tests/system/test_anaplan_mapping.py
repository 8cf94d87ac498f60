"""Anaplan mapping: plans to import CSV, task results to publish results, the forecast export to a Forecast,
and the canonical planning models' own rules. Pure functions, no HTTP."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from contracts.models import (
    ForecastSource,
    MonthlyAmount,
    PublishFailure,
    RevenueActuals,
    RevenueBaseline,
)
from system_apis.fpa.anaplan_mapping import (
    AnaplanTaskEnvelope,
    AnaplanTaskResult,
    decode,
    error_message,
    failures_from_dump,
    forecast_from_export,
    publish_result,
    result_summary,
    revenue_csv,
    row_counts,
)


def _baseline(*months: tuple[str, str], currency: str = "USD") -> RevenueBaseline:
    return RevenueBaseline(
        external_key="opp-1:v2",
        currency=currency,
        months=[MonthlyAmount(month=month, amount=Decimal(amount)) for month, amount in months],
    )


# --- outbound -------------------------------------------------------------------------------------------


def test_a_baseline_becomes_one_csv_row_per_month_in_month_order() -> None:
    plan = _baseline(("2026-03", "300.00"), ("2026-01", "100.50"), ("2026-02", "-20"))
    assert revenue_csv("3001", "baseline", plan).decode() == (
        "project,month,currency,version,amount,reference\n"
        "3001,2026-01,USD,baseline,100.50,opp-1:v2\n"
        "3001,2026-02,USD,baseline,-20,opp-1:v2\n"
        "3001,2026-03,USD,baseline,300.00,opp-1:v2\n"
    )


def test_amounts_go_out_as_plain_decimals_whatever_their_exponent() -> None:
    plan = RevenueActuals(
        external_key="close-1",
        currency="EUR",
        months=[MonthlyAmount(month="2026-01", amount=Decimal("1E+3").quantize(Decimal(1)))],
    )
    row = revenue_csv("P", "actual", plan).decode().splitlines()[1]
    assert row == "P,2026-01,EUR,actual,1000,close-1"


# --- the canonical models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"month": "2026-13", "amount": "1"}, "month"),
        ({"month": "2026-1", "amount": "1"}, "month"),
        ({"month": "2026-01", "amount": "1e3"}, "plain decimal"),
        ({"month": "2026-01", "amount": "NaN"}, "plain decimal"),
    ],
)
def test_a_month_must_be_yyyy_mm_and_its_amount_a_plain_decimal(body: dict[str, str], fragment: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=fragment):
        msgspec.convert(body, MonthlyAmount)


def test_several_entries_for_one_month_add_up_exactly() -> None:
    plan = _baseline(("2026-02", "0.10"), ("2026-01", "5"), ("2026-02", "0.20"))
    assert revenue_csv("P", "baseline", plan).decode().splitlines()[1:] == [
        "P,2026-01,USD,baseline,5,opp-1:v2",
        "P,2026-02,USD,baseline,0.30,opp-1:v2",
    ]


def test_a_plan_has_at_least_one_month_and_no_other_fields() -> None:
    months = [{"month": "2026-01", "amount": "1"}]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"external_key": "k", "currency": "USD", "months": []}, RevenueBaseline)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {"external_key": "k", "currency": "USD", "months": months, "extra": 1}, RevenueBaseline
        )
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"external_key": "k", "currency": "usd", "months": months}, RevenueActuals)


def test_amounts_travel_as_strings() -> None:
    encoded = msgspec.json.encode(_baseline(("2026-01", "1234.50")))
    assert b'"amount":"1234.50"' in encoded
    decoded = msgspec.json.decode(encoded, type=RevenueBaseline)
    assert decoded.months[0].amount == Decimal("1234.50")


# --- task results ---------------------------------------------------------------------------------------

_TASK = b"""{"meta": {"schema": "x"}, "status": {"code": 200, "message": "Success"},
 "task": {"type": "taskInformation", "taskId": "ABC", "taskState": "COMPLETE", "progress": 1.0,
  "currentStep": "Complete.", "creationTime": 1, "result": {"successful": false, "failureDumpAvailable": true,
  "objectId": "112000000000", "details": [
   {"localMessageText": "REV01 Revenue: 5 (3/2) rows successful, 1 ignored", "occurrences": 0,
    "type": "moduleRowsProcessed", "values": ["moduleName", "REV01 Revenue", "successRowCount", "5",
    "failedCount", "2", "ignoredCount", "1"], "somethingNew": true}]}}}"""


def test_a_completed_task_gives_its_row_counts() -> None:
    task = decode(_TASK, AnaplanTaskEnvelope).task
    assert task.task_state == "COMPLETE"
    assert task.result is not None
    assert row_counts(task.result) == (5, 2)
    failures = [PublishFailure(month="2041-01", message="outside")]
    result = publish_result(task.task_id, task.result, failures)
    assert (result.task_id, result.rows_loaded, result.rows_failed) == ("ABC", 5, 2)
    assert result.failures == failures
    assert result_summary(task.result) == "REV01 Revenue: 5 (3/2) rows successful, 1 ignored"


def test_a_task_that_failed_before_reading_rows_has_no_counts() -> None:
    result = AnaplanTaskResult(successful=False, details=[])
    assert row_counts(result) is None
    assert result_summary(result) == "unsuccessful, with no details"
    assert publish_result("T", result, []).rows_loaded == 0


def test_a_count_that_is_not_a_number_is_an_error() -> None:
    body = b'{"successful": true, "details": [{"values": ["successRowCount", "many"]}]}'
    with pytest.raises(ValueError, match="not a number"):
        row_counts(decode(body, AnaplanTaskResult))


def test_the_failure_dump_names_each_refused_month_and_why() -> None:
    dump = (
        b"_Line_,project,month,currency,version,amount,_Error_1_\n"
        b"3,P,2041-01,USD,baseline,1,Time period 2041-01 is outside the model's timescale\n"
        b"4,P,,USD,baseline,1,Invalid time period: ''\n"
    )
    assert failures_from_dump(dump) == [
        PublishFailure(month="2041-01", message="Time period 2041-01 is outside the model's timescale"),
        PublishFailure(month=None, message="Invalid time period: ''"),
    ]


def test_error_messages_of_the_api_and_of_the_auth_service() -> None:
    assert (
        error_message(b'{"status": {"code": 400, "message": "chunkCount is wrong"}}') == "chunkCount is wrong"
    )
    assert (
        error_message(b'{"status": "FAILURE_BAD_CREDENTIAL", "statusMessage": "Login failed"}')
        == "Login failed"
    )
    assert error_message(b"<html>down</html>") is None


# --- the forecast export --------------------------------------------------------------------------------

_EXPORT = (
    b"project,month,currency,amount,source\n"
    b"3001,2026-02,USD,20.00,baseline\n"
    b"3001,2026-01,USD,9.50,actual\n"
    b"3002,2026-01,GBP,1.00,baseline\n"
)


def test_the_forecast_is_the_projects_rows_in_month_order_with_as_of() -> None:
    forecast = forecast_from_export(_EXPORT, "3001")
    assert forecast is not None
    assert forecast.currency == "USD"
    assert [(m.month, m.amount, m.source) for m in forecast.months] == [
        ("2026-01", Decimal("9.50"), ForecastSource.ACTUAL),
        ("2026-02", Decimal("20.00"), ForecastSource.BASELINE),
    ]
    assert forecast.as_of == "2026-01"
    only_baseline = forecast_from_export(_EXPORT, "3002")
    assert only_baseline is not None
    assert only_baseline.as_of is None
    assert forecast_from_export(_EXPORT, "9999") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"project,month,amount\n", "no column"),
        (b"project,month,currency,amount,source\nP,2026-01,USD,ten,actual\n", "unusable row"),
        (b"project,month,currency,amount,source\nP,2026-01,USD,1,guess\n", "unusable row"),
        (b"project,month,currency,amount,source\nP,Jan 26,USD,1,actual\n", "no usable month"),
        (
            b"project,month,currency,amount,source\nP,2026-01,USD,1,actual\nP,2026-02,EUR,1,baseline\n",
            "currencies",
        ),
    ],
)
def test_an_export_of_another_shape_is_an_error(content: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        forecast_from_export(content, "P")
