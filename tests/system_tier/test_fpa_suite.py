"""The FP&A suite: what the system tier promises about any FP&A system, run against each FP&A adapter and its
sandbox, through the system tier's routes only.

Every test makes the figures it reads, for a project of its own, mostly in USD (the currency every FP&A sandbox
plans the project in), so no test knows which vendor answers: that is the proof that the FP&A system behind
the port can be swapped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings

# Each FP&A adapter the system tier can be configured with; a new one joins here and must pass as it is.
FPAS: dict[str, dict[str, Any]] = {
    "anaplan": {"fpa_vendor": "anaplan"},
    "adaptive": {"fpa_vendor": "adaptive"},
}


@pytest.fixture(params=sorted(FPAS))
async def gw(
    request: Any, make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> Any:
    return await make_gateway(make_settings(**FPAS[request.param]))


def _project() -> str:
    return f"SUITE-{uuid.uuid4().hex[:10]}"


def _plan(key: str, months: dict[str, str], currency: str = "USD") -> dict[str, Any]:
    return {
        "external_key": key,
        "currency": currency,
        "months": [{"month": month, "amount": amount} for month, amount in months.items()],
    }


async def _put(gw: Any, project: str, kind: str, body: dict[str, Any]) -> Any:
    headers = {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}
    return await gw.client.put(f"/system/v1/fpa/projects/{project}/{kind}", json=body, headers=headers)


async def _forecast(gw: Any, project: str) -> Any:
    return await gw.client.get(f"/system/v1/fpa/projects/{project}/forecast", headers=gw.auth("system:read"))


def _months(forecast: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(month["month"], month["amount"], month["source"]) for month in forecast["months"]]


async def test_a_published_baseline_is_the_forecast(gw: Any) -> None:
    project = _project()
    published = await _put(
        gw, project, "revenue-baseline", _plan("opp-1:v1", {"2026-01": "1000.00", "2026-02": "2000.50"})
    )
    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["rows_loaded"], body["rows_failed"], body["failures"]) == (2, 0, [])
    assert body["task_id"]
    forecast = await _forecast(gw, project)
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["project_id"] == project
    assert forecast.json()["currency"] == "USD"
    assert forecast.json()["as_of"] is None
    assert _months(forecast.json()) == [
        ("2026-01", "1000.00", "baseline"),
        ("2026-02", "2000.50", "baseline"),
    ]


async def test_the_forecast_takes_the_actual_where_a_month_has_one(gw: Any) -> None:
    project = _project()
    baseline = _plan("opp-2:v1", {"2026-01": "1000.00", "2026-02": "2000.00", "2026-03": "3000.00"})
    assert (await _put(gw, project, "revenue-baseline", baseline)).status_code == 200
    # Two entries of one month add up (e.g. two milestones recognised in January).
    actuals = _plan("close-2026-02", {"2026-01": "950.25", "2026-02": "1999.75"})
    actuals["months"].append({"month": "2026-01", "amount": "50.00"})
    loaded = await _put(gw, project, "actuals", actuals)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["rows_failed"] == 0
    forecast = (await _forecast(gw, project)).json()
    assert _months(forecast) == [
        ("2026-01", "1000.25", "actual"),
        ("2026-02", "1999.75", "actual"),
        ("2026-03", "3000.00", "baseline"),
    ]
    assert forecast["as_of"] == "2026-02"


async def test_publishing_again_is_harmless_and_replaces_the_whole_baseline(gw: Any) -> None:
    project = _project()
    baseline = _plan("opp-3:v1", {"2026-04": "400.00", "2026-05": "500.00", "2026-06": "600.00"})
    first = await _put(gw, project, "revenue-baseline", baseline)
    again = await _put(gw, project, "revenue-baseline", baseline)  # a new key: the vendor sees it twice
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["rows_loaded"] == first.json()["rows_loaded"] == 3
    once = _months((await _forecast(gw, project)).json())
    assert once == [
        ("2026-04", "400.00", "baseline"),
        ("2026-05", "500.00", "baseline"),
        ("2026-06", "600.00", "baseline"),
    ]
    revised = _plan("opp-3:v2", {"2026-05": "550.00"})
    assert (await _put(gw, project, "revenue-baseline", revised)).status_code == 200
    # Months the revised baseline leaves out are no longer planned.
    assert _months((await _forecast(gw, project)).json()) == [("2026-05", "550.00", "baseline")]


async def test_refused_months_are_reported_and_a_refusal_of_all_is_422(gw: Any) -> None:
    project = _project()
    # 2041 is beyond every FP&A sandbox's calendar.
    partial = await _put(gw, project, "revenue-baseline", _plan("k", {"2026-01": "1.00", "2041-01": "2.00"}))
    assert partial.status_code == 200, partial.text
    assert (partial.json()["rows_loaded"], partial.json()["rows_failed"]) == (1, 1)
    assert [failure["month"] for failure in partial.json()["failures"]] == ["2041-01"]
    assert _months((await _forecast(gw, project)).json()) == [("2026-01", "1.00", "baseline")]
    refused = await _put(gw, _project(), "revenue-baseline", _plan("k", {"2041-01": "2.00"}))
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "vendor-rejected"


async def test_the_forecast_of_a_project_without_figures_is_404(gw: Any) -> None:
    missing = await _forecast(gw, _project())
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"] == "application/problem+json"


async def test_a_project_keeps_one_currency(gw: Any) -> None:
    project = _project()
    assert (await _put(gw, project, "revenue-baseline", _plan("k", {"2026-01": "100.00"}))).status_code == 200
    refused = await _put(gw, project, "actuals", _plan("k", {"2026-01": "90.00"}, currency="EUR"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "vendor-rejected"
    assert "currency" in refused.json()["detail"]
    forecast = (await _forecast(gw, project)).json()
    assert forecast["currency"] == "USD"
    assert _months(forecast) == [("2026-01", "100.00", "baseline")]


@pytest.mark.parametrize("currency", ["GBP", "EUR"])
async def test_a_project_is_planned_in_its_own_currency(gw: Any, currency: str) -> None:
    # The firm's projects are sold in several currencies; each is planned in its own, whatever the tool
    # keeps per project (Anaplan: a currency per project; Adaptive: the level kept in that currency).
    project = _project()
    published = await _put(gw, project, "revenue-baseline", _plan("k", {"2026-05": "250.00"}, currency))
    assert published.status_code == 200, published.text
    forecast = (await _forecast(gw, project)).json()
    assert forecast["currency"] == currency
    assert _months(forecast) == [("2026-05", "250.00", "baseline")]
