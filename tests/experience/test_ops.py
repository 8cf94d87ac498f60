"""The operations view on the whole gateway in process, with runs it parked itself: exceptions with their
business age and SLA (read at a chosen ``as_of``), dead letters, the overview filled, filters, pages, a bad
cursor and the scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from dbos import DBOS

from apis.config import Settings
from sandboxes.salesforce.data import (
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    NO_TAX_JURISDICTION_OPPORTUNITY_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
)
from tests.process.test_activation_runs import _activate, _clear_faults, _fault, _settings, _until

OVERVIEW = "/experience/v1/ops/overview"
EXCEPTIONS = "/experience/v1/ops/exceptions"
DEAD_LETTERS = "/experience/v1/ops/dead-letters"
UTC = dt.UTC
# A Friday, and the Monday after it.
FRIDAY = dt.date(2026, 11, 27)
MONDAY = dt.date(2026, 11, 30)


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # Two attempts per step, so a lasting outage dead-letters a run at once; business hours 9-17 UTC.
    return await make_gateway(_settings(make_settings, step_max_attempts=2))


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


async def _park(gw: Any, opportunity_id: str, raised_at: dt.datetime) -> str:
    """A real activation run parked on a business rule, its exception dated ``raised_at``."""
    response = await _activate(gw, opportunity_id)
    run = response.json()
    assert run["state"] == "exception", run
    status = await DBOS.get_workflow_status_async(run["id"])
    assert status is not None
    assert status.attributes is not None
    issue = dict(status.attributes["issue"])
    issue["raised_at"] = raised_at.isoformat()
    await DBOS.update_workflow_attributes_async(run["id"], {"issue": issue}, merge=True)
    run_id: str = run["id"]
    return run_id


async def _view(gw: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await gw.client.get(path, params=params, headers=gw.auth("experience:ops"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_exception_raised_friday_evening_is_one_business_hour_old_monday_at_ten(gw: Any) -> None:
    run_id = await _park(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, _at(FRIDAY, 17, 30))

    monday_ten = await _view(gw, EXCEPTIONS, as_of=_at(MONDAY, 10).isoformat())
    [item] = monday_ten["items"]
    assert item["run_id"] == run_id
    assert (item["workflow"], item["owner"], item["step"]) == (
        "project_activation",
        "sales_operations",
        "crm.check_readiness",
    )
    assert "legal entity" in item["remediation"].lower()
    assert item["links"]["replay"] == f"/process/v1/runs/{run_id}/replay"
    assert item["age_seconds"] == int(dt.timedelta(hours=64, minutes=30).total_seconds())
    assert item["business_age_seconds"] == 3600
    assert item["sla_business_hours"] == 4.0
    assert item["breached"] is False
    assert monday_ten["business_clock"]["sla_business_hours"]["project_activation"] == 4.0

    # Four business hours and a minute later (Monday 9:00 to 13:01, plus Friday's none): breached.
    later = await _view(gw, EXCEPTIONS, as_of=_at(MONDAY, 13, 1).isoformat())
    assert later["items"][0]["business_age_seconds"] == 4 * 3600 + 60
    assert later["items"][0]["breached"] is True


async def test_exceptions_come_breached_first_then_oldest_filtered_and_paged(gw: Any) -> None:
    # Sales operations' one was raised Friday at 10:00 (7 business hours that day): breached by Monday.
    breached = await _park(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, _at(FRIDAY, 10))
    # Finance's one was raised Monday at 11:00: 3 business hours at 14:00, within the 4.
    fresh = await _park(gw, NO_TAX_JURISDICTION_OPPORTUNITY_ID, _at(MONDAY, 11))
    as_of = _at(MONDAY, 14).isoformat()

    everything = await _view(gw, EXCEPTIONS, as_of=as_of)
    assert [(i["run_id"], i["owner"], i["breached"]) for i in everything["items"]] == [
        (breached, "sales_operations", True),
        (fresh, "finance", False),
    ]
    assert [i["business_age_seconds"] for i in everything["items"]] == [12 * 3600, 3 * 3600]
    assert everything["next_cursor"] is None

    finance = await _view(gw, EXCEPTIONS, as_of=as_of, owner="finance")
    assert [i["run_id"] for i in finance["items"]] == [fresh]
    only_breached = await _view(gw, EXCEPTIONS, as_of=as_of, breached="true")
    assert [i["run_id"] for i in only_breached["items"]] == [breached]
    within = await _view(gw, EXCEPTIONS, as_of=as_of, breached="false")
    assert [i["run_id"] for i in within["items"]] == [fresh]

    first = await _view(gw, EXCEPTIONS, as_of=as_of, limit=1)
    assert [i["run_id"] for i in first["items"]] == [breached]
    assert first["next_cursor"]
    second = await _view(gw, EXCEPTIONS, as_of=as_of, limit=1, cursor=first["next_cursor"])
    assert [i["run_id"] for i in second["items"]] == [fresh]
    assert second["next_cursor"] is None

    # A cursor of this listing is refused by another (here: a filtered one).
    other = await gw.client.get(
        EXCEPTIONS,
        params={"as_of": as_of, "owner": "finance", "cursor": first["next_cursor"]},
        headers=gw.auth("experience:ops"),
    )
    assert other.status_code == 422, other.text


@pytest.mark.parametrize("path", [EXCEPTIONS, DEAD_LETTERS])
@pytest.mark.parametrize("cursor", ["garbage!", "Z2FyYmFnZQ"])
async def test_a_cursor_the_view_did_not_issue_is_422_naming_cursor(gw: Any, path: str, cursor: str) -> None:
    response = await gw.client.get(path, params={"cursor": cursor}, headers=gw.auth("experience:ops"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


@pytest.mark.parametrize("path", [OVERVIEW, EXCEPTIONS, DEAD_LETTERS])
@pytest.mark.parametrize("as_of", ["0.5", "2026-11-30T10:00:00", "2026-11-31T10:00:00Z", "monday"])
async def test_as_of_must_be_a_real_time_with_its_offset(gw: Any, path: str, as_of: str) -> None:
    response = await gw.client.get(path, params={"as_of": as_of}, headers=gw.auth("experience:ops"))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["as_of"]


async def test_as_of_far_from_now_is_read_within_1970_to_9000(gw: Any) -> None:
    await _park(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, _at(FRIDAY, 10))
    future = await _view(gw, EXCEPTIONS, as_of="9999-12-31T23:59:59-01:00")
    assert future["as_of"] == "9000-01-01T00:00:00Z"
    assert future["items"][0]["breached"] is True
    past = await _view(gw, EXCEPTIONS, as_of="0001-01-01T00:00:00+01:00")
    assert past["as_of"] == "1970-01-01T00:00:00Z"
    assert (past["items"][0]["age_seconds"], past["items"][0]["business_age_seconds"]) == (0, 0)


@pytest.mark.parametrize("path", [OVERVIEW, EXCEPTIONS, DEAD_LETTERS])
async def test_the_operations_view_needs_experience_ops(gw: Any, path: str) -> None:
    response = await gw.client.get(path, headers=gw.auth("experience:sales experience:finance"))
    assert response.status_code == 403, response.text
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert (await gw.client.get(path)).status_code == 401


async def test_the_overview_is_filled_from_runs_made_here(gw: Any) -> None:
    done = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    await _until(gw, done.json()["id"], "completed")
    await _park(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, _at(FRIDAY, 10))
    await _park(gw, NO_TAX_JURISDICTION_OPPORTUNITY_ID, _at(MONDAY, 11))
    await _fault(gw, "netsuite", {"kind": "outage", "path_pattern": "^/services/rest/(record|query)/"})
    dead = (await _activate(gw, READY_OPPORTUNITY_ID)).json()
    assert dead["state"] == "dead_letter", dead
    await _clear_faults(gw, "netsuite")

    view = await _view(gw, OVERVIEW, as_of=_at(MONDAY, 14).isoformat(), window=3600)
    health = view["health"]
    assert (health["status"], health["window_seconds"]) == ("ok", 3600)
    activation = next(w for w in health["workflows"] if w["workflow"] == "project_activation")
    assert (activation["open"]["exception"], activation["open"]["dead_letter"]) == (2, 1)
    assert activation["ended"]["completed"] == 1
    assert activation["failure_rate"] == 0.5

    exceptions = view["exceptions"]
    assert (exceptions["status"], exceptions["total"], exceptions["breached"]) == ("ok", 2, 1)
    by_owner = {o["owner"]: o for o in exceptions["by_owner"]}
    assert set(by_owner) == {"sales_operations", "finance"}
    assert (by_owner["sales_operations"]["count"], by_owner["sales_operations"]["breached"]) == (1, 1)
    assert by_owner["sales_operations"]["oldest_business_age_seconds"] == 12 * 3600
    assert (by_owner["finance"]["count"], by_owner["finance"]["breached"]) == (1, 0)

    dead_letters = view["dead_letters"]
    assert (dead_letters["status"], dead_letters["count"]) == ("ok", 1)
    assert dead_letters["by_workflow"] == [{"workflow": "project_activation", "count": 1}]

    assert view["sync"]["status"] == "ok"
    assert {(f["flow"], f["vendor"]) for f in view["sync"]["flows"]} >= {
        ("invoice_status_sync", "netsuite"),
        ("crm_change_events", "salesforce"),
        ("customer_sync", "salesforce"),
    }

    page = await _view(gw, DEAD_LETTERS)
    [item] = page["items"]
    assert item["run_id"] == dead["id"]
    assert (item["owner"], item["step"], item["code"]) == (
        "integration_operations",
        "erp.upsert_customer",
        "vendor-unavailable",
    )
    assert item["links"]["replay"] == f"/process/v1/runs/{dead['id']}/replay"
    assert (await _view(gw, DEAD_LETTERS, workflow="billing_run"))["items"] == []


async def test_the_overview_shows_each_vendors_api_budget_as_the_system_tier_reports_it(gw: Any) -> None:
    # A call to each vendor first, so the budgets have something to count.
    await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    view = await _view(gw, OVERVIEW)
    budgets = view["api_budgets"]
    assert budgets["status"] == "ok", budgets
    direct = await gw.client.get("/system/v1/vendor-api-budgets", headers=gw.auth("system:read"))
    assert direct.status_code == 200, direct.text
    assert {(b["vendor"], b["name"]) for b in budgets["items"]} == {
        (b["vendor"], b["name"]) for b in direct.json()["items"]
    }
    assert budgets["items"]
    # Reading the view calls no vendor: Salesforce's own count is the same in both answers.
    salesforce = [
        [b.get("used") for b in items if (b["vendor"], b["name"]) == ("salesforce", "daily_api_requests")]
        for items in (budgets["items"], direct.json()["items"])
    ]
    assert salesforce[0] == salesforce[1]
    assert salesforce[0][0] is not None


def test_the_business_clock_is_published_with_the_view() -> None:
    # Not over HTTP: the view's answer carries the settings it measured with (checked above); here, that a
    # configured clock reaches it unchanged.
    from apis.config import OperationsSettings
    from experience_apis.ops import business_clock

    clock = business_clock(
        OperationsSettings(
            timezone="Europe/Berlin", working_days="mon,tue,wed,thu", sla_business_hours={"billing_run": 2}
        )
    )
    assert msgspec.to_builtins(clock) == {
        "timezone": "Europe/Berlin",
        "working_days": ["mon", "tue", "wed", "thu"],
        "start_hour": 9,
        "end_hour": 17,
        "sla_business_hours": {
            "project_activation": 4.0,
            "customer_sync": 8.0,
            "invoice_status_sync": 4.0,
            "billing_run": 2.0,
        },
    }


async def test_the_ops_views_publish_their_composition_rules(gw: Any) -> None:
    response = await gw.client.get("/experience/v1/views", headers=gw.auth("experience:ops"))
    assert response.status_code == 200, response.text
    views = {v["name"]: v for v in response.json()["items"]}
    overview = {s["name"]: s for s in views["ops.overview"]["sections"]}
    assert list(overview) == ["health", "exceptions", "dead_letters", "sync", "api_budgets"]
    # Nothing required: the view answers with what it has while a source is down.
    assert {s["on_down"] for s in overview.values()} == {"unavailable"}
    assert overview["api_budgets"]["sources"] == ["system:vendor-api-budgets"]
    assert all(s["timeout_ms"] > 0 for s in overview.values())
    for name in ("ops.exceptions", "ops.dead_letters"):
        [section] = views[name]["sections"]
        assert (section["required"], section["on_down"]) == (True, "fail")
