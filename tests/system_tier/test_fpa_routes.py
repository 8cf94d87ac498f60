"""The FP&A routes of the system tier, through the whole gateway in process (governance, the Anaplan adapter,
the mounted Anaplan sandbox): publish a project's baseline and actuals, read its forecast."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.anaplan.data import DEMO_PROJECT_ID


def _headers(gw: Any, scope: str = "system:read system:write") -> dict[str, str]:
    return {**gw.auth(scope), "Idempotency-Key": uuid.uuid4().hex}


def _plan(key: str, months: dict[str, str], currency: str = "USD") -> dict[str, Any]:
    return {
        "external_key": key,
        "currency": currency,
        "months": [{"month": month, "amount": amount} for month, amount in months.items()],
    }


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(make_settings(anaplan={"timeout_seconds": 5}))


async def test_a_baseline_and_actuals_make_the_forecast(gw: Any, unique: Callable[[str], str]) -> None:
    project = unique("PRJ")
    baseline = _plan("opp-1:v1", {"2026-01": "1000.00", "2026-02": "2000.00", "2026-03": "3000.00"})
    published = await gw.client.put(
        f"/system/v1/fpa/projects/{project}/revenue-baseline", json=baseline, headers=_headers(gw)
    )
    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["rows_loaded"], body["rows_failed"], body["failures"]) == (3, 0, [])
    assert body["task_id"]
    actuals = _plan("close-2026-01", {"2026-01": "950.25"})
    loaded = await gw.client.put(
        f"/system/v1/fpa/projects/{project}/actuals", json=actuals, headers=_headers(gw)
    )
    assert loaded.status_code == 200, loaded.text
    forecast = await gw.client.get(
        f"/system/v1/fpa/projects/{project}/forecast", headers=gw.auth("system:read")
    )
    assert forecast.status_code == 200, forecast.text
    assert forecast.json() == {
        "project_id": project,
        "currency": "USD",
        "months": [
            {"month": "2026-01", "amount": "950.25", "source": "actual"},
            {"month": "2026-02", "amount": "2000.00", "source": "baseline"},
            {"month": "2026-03", "amount": "3000.00", "source": "baseline"},
        ],
        "as_of": "2026-01",
    }
    stored = gw.sandbox_state("anaplan").cells[(project, "baseline", "2026-02")]
    assert (stored.amount, stored.reference) == ("2000.00", "opp-1:v1")


async def test_the_seeded_project_has_a_forecast_and_an_unknown_one_is_404(gw: Any) -> None:
    seeded = await gw.client.get(
        f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/forecast", headers=gw.auth("system:read")
    )
    assert seeded.status_code == 200
    assert seeded.json()["as_of"] == "2026-03"
    missing = await gw.client.get("/system/v1/fpa/projects/NO-SUCH/forecast", headers=gw.auth("system:read"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_a_replayed_publish_is_answered_from_the_gateway(gw: Any, unique: Callable[[str], str]) -> None:
    project = unique("PRJ")
    headers = _headers(gw)
    path = f"/system/v1/fpa/projects/{project}/revenue-baseline"
    first = await gw.client.put(path, json=_plan("k", {"2026-05": "10"}), headers=headers)
    tasks_before = sum(len(model.tasks) for model in gw.sandbox_state("anaplan").models.values())
    replay = await gw.client.put(path, json=_plan("k", {"2026-05": "10"}), headers=headers)
    assert replay.status_code == first.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert sum(len(model.tasks) for model in gw.sandbox_state("anaplan").models.values()) == tasks_before
    reused = await gw.client.put(path, json=_plan("k", {"2026-05": "11"}), headers=headers)
    assert reused.status_code == 422


async def test_publishing_needs_an_idempotency_key_and_the_write_scope(gw: Any) -> None:
    path = f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/revenue-baseline"
    plan = _plan("k", {"2026-01": "1"})
    no_key = await gw.client.put(path, json=plan, headers=gw.auth("system:read system:write"))
    assert no_key.status_code == 428
    read_only = await gw.client.put(path, json=plan, headers=_headers(gw, "system:read"))
    assert read_only.status_code == 403
    assert 'error="insufficient_scope"' in read_only.headers["www-authenticate"]
    no_token = await gw.client.put(path, json=plan, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert no_token.status_code == 401
    write_only = await gw.client.get(
        f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/forecast", headers=gw.auth("system:write")
    )
    assert write_only.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        _plan("k", {"2026-13": "1"}),
        _plan("k", {"2026-01": "1e3"}),
        _plan("k", {"2026-01": "1"}, currency="usd"),
        _plan("k", {}),
        {**_plan("k", {"2026-01": "1"}), "version": "baseline"},
        {"currency": "USD", "months": [{"month": "2026-01", "amount": "1"}]},
        {"external_key": "k", "currency": "USD", "months": [{"month": "2026-01", "amount": 1.5}]},
    ],
)
async def test_a_plan_that_breaks_the_contract_is_422(gw: Any, body: dict[str, Any]) -> None:
    response = await gw.client.put(
        f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/revenue-baseline", json=body, headers=_headers(gw)
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation-failed"


async def test_refused_months_are_reported_and_a_refusal_of_all_is_422(
    gw: Any, unique: Callable[[str], str]
) -> None:
    project = unique("PRJ")
    partial = await gw.client.put(
        f"/system/v1/fpa/projects/{project}/revenue-baseline",
        json=_plan("k", {"2026-01": "1.00", "2041-01": "2.00"}),
        headers=_headers(gw),
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["rows_failed"] == 1
    assert partial.json()["failures"][0]["month"] == "2041-01"
    refused = await gw.client.put(
        f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/actuals",
        json=_plan("k", {"2026-01": "1.00"}, currency="EUR"),
        headers=_headers(gw),
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "vendor-rejected"
    assert "currency" in refused.json()["detail"]


async def test_anaplan_down_is_503_with_retry_after(gw: Any) -> None:
    async with gw.sandbox("anaplan") as sandbox:
        rule = {"kind": "error", "status": 503, "path_pattern": "^/2/0/"}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
    response = await gw.client.get(
        f"/system/v1/fpa/projects/{DEMO_PROJECT_ID}/forecast", headers=gw.auth("system:read")
    )
    assert response.status_code == 503
    assert response.json()["code"] == "vendor-unavailable"
    assert int(response.headers["retry-after"]) >= 1
