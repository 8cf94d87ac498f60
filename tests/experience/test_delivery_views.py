"""The delivery view over HTTP on the whole gateway in process, against the sandboxes, with the data the
billing tests make: won deals activated by the activation workflow, time and expenses booked and approved
in the Kantata sandbox, a billing run for last month; every figure the view shows is checked against what
the sandboxes themselves hold (time at Kantata's own rate, the invoice Kantata recorded)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.kantata.data import DEMO_USER_ID
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
from tests.process.test_billing_runs import (
    KANTATA_API,
    KANTATA_AUTH,
    PERIOD,
    VENDOR,
    WORKFLOWS,
    Delivery,
    _activate,
    _done,
    _psa_invoices,
    _seed_time_and_materials,
    _start,
    _until,
)

VIEW = "/experience/v1/delivery/projects"
SCOPE = "experience:delivery"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # The billing tests' settings, and Anaplan failing fast too (one attempt, no breaker) for the fault.
    settings = make_settings(
        workflows=WORKFLOWS,
        netsuite=VENDOR,
        kantata=VENDOR,
        salesforce=VENDOR,
        business_central=VENDOR,
        anaplan=VENDOR,
        erp_vendor="netsuite",
        erp_by_legal_entity={"DE01": "business_central"},
    )
    return await make_gateway(settings)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _money(entries: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {m["currency"]: Decimal(m["amount"]) for m in entries}


async def _kantata(gw: Any, method: str, path: str, body: dict[str, Any]) -> None:
    async with gw.sandbox("kantata") as kantata:
        response = await kantata.request(method, KANTATA_API + path, json=body, headers=KANTATA_AUTH)
    assert response.status_code == 200, response.text


async def _manage(gw: Any, project_id: str, **workspace: Any) -> None:
    """A delivery lead re-baselines or hands over a project in Kantata (budget, primary maven)."""
    await _kantata(gw, "PUT", f"/workspaces/{project_id}.json", {"workspace": workspace})


async def _publish_baseline(gw: Any, project_id: str, months: dict[str, str], currency: str) -> None:
    response = await gw.client.put(
        f"/system/v1/fpa/projects/{project_id}/revenue-baseline",
        json={
            "external_key": f"plan-{project_id}",
            "currency": currency,
            "months": [{"month": m, "amount": a} for m, a in months.items()],
        },
        headers={**gw.auth("system:write"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text


async def _fault(gw: Any, vendor: str, **rule: Any) -> None:
    async with gw.sandbox(vendor) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
    assert response.status_code == 201, response.text


async def _view(gw: Any, project_id: str) -> dict[str, Any]:
    response = await gw.client.get(f"{VIEW}/{project_id}", headers=gw.auth(SCOPE))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def _booked(gw: Any, project_id: str) -> list[dict[str, Any]]:
    entries = gw.sandbox_state("kantata").records["time_entries"].values()
    return [e for e in entries if str(e["workspace_id"]) == str(project_id)]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_a_billed_time_and_materials_project_shows_budget_billing_unbilled_and_forecast(
    gw: Any,
) -> None:
    project, _ = await _seed_time_and_materials(gw)
    team = Delivery(gw)
    await team.time(project, f"{PERIOD}-07", 60, approve=False)  # booked, not yet approved
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    await _until(gw, started["run"]["id"], _done)
    # Approved after the run, dated 40 days ago: unbilled and ageing.
    late_day = (_today() - dt.timedelta(days=40)).isoformat()
    late = await team.time(project, late_day, 120)
    # The plan is finance's: kept under the ERP project the deal was activated into.
    deal = await gw.client.get(
        f"/system/v1/crm/opportunities/{READY_OPPORTUNITY_ID}", headers=gw.auth("system:read")
    )
    erp_project = deal.json()["system_ids"]["erp"]
    assert erp_project
    await _publish_baseline(
        gw, erp_project, {PERIOD: "10000.00", _today().strftime("%Y-%m"): "2500.50"}, "USD"
    )

    view = await _view(gw, project)

    assert view["project_id"] == project
    assert view["legal_entity"] == "US01"  # the deal's: Kantata's workspace has none
    # Hours: every entry Kantata holds for the project, approved or not.
    booked = _booked(gw, project)
    assert len(booked) == 5
    budget = view["budget"]
    assert budget["status"] == "ok"
    figures = budget["data"]
    approved = sum(Decimal(e["time_in_minutes"]) / 60 for e in booked if e["approved"])
    assert Decimal(figures["hours_approved"]) == approved == Decimal("24.5")
    assert Decimal(figures["hours_not_approved"]) == Decimal(1)
    assert Decimal(figures["hours_actual"]) == Decimal("25.5")
    # Amount: time at Kantata's rate on each entry, plus the 123.45 USD expense.
    time_usd = sum(
        (Decimal(e["time_in_minutes"]) / 60 * Decimal(e["rate_in_cents"]) / 100 for e in booked), Decimal(0)
    )
    assert time_usd > 0
    assert _money(figures["amount_time"]) == {"USD": _cents(time_usd)}
    assert _money(figures["amount_expenses"]) == {"USD": Decimal("123.45")}
    assert _money(figures["amount_actual"]) == {"USD": _cents(time_usd + Decimal("123.45"))}
    assert figures["amount_budget"] == {"amount": "125000.50", "currency": "USD"}
    assert Decimal(figures["amount_remaining"]["amount"]) == Decimal("125000.50") - _cents(
        time_usd + Decimal("123.45")
    )
    assert figures["over_budget"] is False
    # The hours budget is the staffing demand activation raised (the deal's amount at the card's rates).
    staffing = view["staffing"]
    assert staffing["status"] == "ok"
    assert Decimal(figures["hours_budget"]) == Decimal(staffing["planned_hours"]) > 0
    assert staffing["open_demands"], staffing  # nobody is staffed on a new project yet
    assert Decimal(staffing["open_hours"]) == Decimal(staffing["planned_hours"])
    # Billed: the invoice Kantata recorded for the run, issued, net.
    (recorded,) = _psa_invoices(gw, project)
    billed = view["billed"]
    assert billed["status"] == "ok"
    assert [i["psa_invoice_id"] for i in billed["invoices"]] == [str(recorded["id"])]
    assert billed["invoices"][0]["status"] == "open"
    assert billed["invoices"][0]["erp_invoice_id"]
    assert _money(billed["billed"]) == {"USD": Decimal(recorded["price_in_cents"]) / 100}
    assert "in_draft" not in billed
    # Unbilled: only the entry approved after the run, 40 days old.
    unbilled = view["unbilled"]
    assert unbilled["status"] == "ok"
    assert unbilled["items"] == 1
    assert Decimal(unbilled["hours"]) == 2
    assert unbilled["oldest_age_days"] == 40
    late_entry = next(e for e in booked if str(e["id"]) == late)
    assert _money(unbilled["amount"]) == {"USD": Decimal(late_entry["rate_in_cents"]) * 2 / 100}
    # The FP&A forecast, with its total: the billed month is the actual the billing run published (what
    # it invoiced), the month after is still the plan.
    forecast = view["forecast"]
    assert forecast["status"] == "ok"
    assert forecast["data"]["project_id"] == erp_project
    months = {m["month"]: m for m in forecast["data"]["months"]}
    assert sorted(months) == sorted([PERIOD, _today().strftime("%Y-%m")])
    assert months[PERIOD]["source"] == "actual"
    erp_invoice = await gw.client.get(
        f"/system/v1/erp/invoices/{billed['invoices'][0]['erp_invoice_id']}", headers=gw.auth("system:read")
    )
    # Revenue is the ERP invoice's net amount (Kantata prices its own copy of the invoice at its own rates).
    assert Decimal(months[PERIOD]["amount"]) == Decimal(erp_invoice.json()["subtotal"]["amount"])
    assert (months[_today().strftime("%Y-%m")]["source"], months[_today().strftime("%Y-%m")]["amount"]) == (
        "baseline",
        "2500.50",
    )
    total = Decimal(months[PERIOD]["amount"]) + Decimal("2500.50")
    assert forecast["total"] == {"amount": str(total), "currency": "USD"}


async def test_milestones_show_due_dates_billing_state_and_overdue(gw: Any) -> None:
    project = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    stories = await Delivery(gw).complete_milestones(project, 1)
    overdue_day = (_today() - dt.timedelta(days=3)).isoformat()
    view = await _view(gw, project)
    others = [m for m in view["milestones"]["items"] if m["id"] not in stories]
    assert others
    await _kantata(gw, "PUT", f"/stories/{others[0]['id']}.json", {"story": {"due_date": overdue_day}})

    view = await _view(gw, project)

    milestones = {m["id"]: m for m in view["milestones"]["items"]}
    done, late = milestones[stories[0]], milestones[others[0]["id"]]
    assert done["status"] == "completed"
    assert done["billing_state"] == "billable_unbilled"
    assert done["overdue"] is False
    assert late["due_date"] == overdue_day
    assert late["billing_state"] == "not_billable_yet"
    assert late["overdue"] is True
    assert view["milestones"]["overdue"] == 1
    # The completed milestone is approved billable work not yet invoiced, at its amount.
    assert view["unbilled"]["items"] == 1
    assert view["unbilled"]["amount"] == [done["amount"]]
    # Billed: the milestone is invoiced, and the view names the PSA and the ERP invoice.
    started = await _start(gw, legal_entity=view["legal_entity"], project_ids=[project])
    await _until(gw, started["run"]["id"], _done)
    view = await _view(gw, project)
    billed = {m["id"]: m for m in view["milestones"]["items"]}[stories[0]]
    (recorded,) = _psa_invoices(gw, project)
    assert billed["billing_state"] == "invoiced"
    assert billed["psa_invoice_id"] == str(recorded["id"])
    assert billed["erp_invoice_id"]
    assert view["billed"]["invoices"][0]["milestone_ids"] == [stories[0]]
    assert view["billed"]["billed"] == [done["amount"]]
    assert view["unbilled"].get("items", 0) == 0
    # The deal's plan, published to the FP&A tool by the activation, is the project's forecast.
    assert view["forecast"]["status"] == "ok"
    assert view["forecast"]["data"]["months"]
    # The hours budget of a fixed-fee deal (no rate card) is not planned yet.
    assert view["budget"]["data"]["hours_budget"] is None


async def test_the_portfolio_puts_the_projects_at_risk_first_with_totals_per_currency(gw: Any) -> None:
    over, _ = await _seed_time_and_materials(gw)
    late = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    # Both handed to one manager who leads no seeded project; the T&M one re-baselined below its cost.
    await _manage(gw, over, primary_maven_id=DEMO_USER_ID, price="1000.00")
    await _manage(gw, late, primary_maven_id=DEMO_USER_ID)
    view = await _view(gw, late)
    first = view["milestones"]["items"][0]
    past = (_today() - dt.timedelta(days=2)).isoformat()
    await _kantata(gw, "PUT", f"/stories/{first['id']}.json", {"story": {"due_date": past}})

    response = await gw.client.get(VIEW, params={"manager_id": DEMO_USER_ID}, headers=gw.auth(SCOPE))

    assert response.status_code == 200, response.text
    portfolio = response.json()
    items = portfolio["items"]
    assert [i["project_id"] for i in items] == [over, late]
    # The month's work (from the 3rd of last month) is unbilled: ageing once it is over 30 days old.
    ageing = (_today() - dt.date.fromisoformat(f"{PERIOD}-03")).days > 30
    assert items[0]["risk"] == {
        "status": "ok",
        "over_budget": True,
        "milestone_overdue": False,
        "unbilled_ageing": ageing,
        "count": 1 + ageing,
        "error": None,
    }
    assert items[0]["oldest_unbilled_days"] == (_today() - dt.date.fromisoformat(f"{PERIOD}-03")).days
    assert items[1]["risk"]["milestone_overdue"] is True
    assert items[1]["risk"]["over_budget"] is False
    # The portfolio and the project agree on the project's milestones.
    assert items[1]["overdue_milestones"] == (await _view(gw, late))["milestones"]["overdue"] >= 1
    assert Decimal(items[0]["budget_percent_used"]) > 100
    # Totals per currency, never across: the T&M project is USD, the fixed-fee one EUR.
    totals = portfolio["totals"]
    assert (totals["projects"], totals["at_risk"], totals["risk_unknown"]) == (2, 2, 0)
    assert _money(totals["budget"]) == {"USD": Decimal("1000.00"), "EUR": Decimal("84000.00")}
    assert _money(totals["unbilled"])["USD"] == _money(items[0]["unbilled"])["USD"] > 0
    assert portfolio["unbilled_ageing_days"] == 30
    # Filters: currency and legal entity (the deal's).
    eur = await gw.client.get(
        VIEW, params={"manager_id": DEMO_USER_ID, "currency": "EUR"}, headers=gw.auth(SCOPE)
    )
    assert [i["project_id"] for i in eur.json()["items"]] == [late]
    us = await gw.client.get(
        VIEW, params={"manager_id": DEMO_USER_ID, "legal_entity": "US01"}, headers=gw.auth(SCOPE)
    )
    assert [i["project_id"] for i in us.json()["items"]] == [over]
    # Pages: one at a time, in the same order, the cursor bound to the listing.
    page1 = await gw.client.get(VIEW, params={"manager_id": DEMO_USER_ID, "limit": 1}, headers=gw.auth(SCOPE))
    assert [i["project_id"] for i in page1.json()["items"]] == [over]
    page2 = await gw.client.get(
        VIEW,
        params={"manager_id": DEMO_USER_ID, "limit": 1, "cursor": page1.json()["next_cursor"]},
        headers=gw.auth(SCOPE),
    )
    assert [i["project_id"] for i in page2.json()["items"]] == [late]
    assert "next_cursor" not in page2.json()
    other = await gw.client.get(
        VIEW,
        params={"manager_id": DEMO_USER_ID, "currency": "USD", "cursor": page1.json()["next_cursor"]},
        headers=gw.auth(SCOPE),
    )
    assert other.status_code == 422, other.text


async def test_the_crm_down_leaves_the_legal_entity_null_and_the_forecast_unavailable(gw: Any) -> None:
    project = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    await _fault(gw, "salesforce", kind="outage")

    view = await _view(gw, project)

    assert view["project"]["external_key"] == READY_FIXED_FEE_OPPORTUNITY_ID
    assert view["legal_entity"] is None
    # The forecast is kept under the deal's ERP project: without the deal it is unknown, not "none".
    forecast = view["forecast"]
    assert forecast["status"] == "unavailable"
    assert forecast["error"]["code"] == "source-unavailable"
    assert "deal" in forecast["error"]["detail"]
    for section in ("budget", "billed", "unbilled", "staffing", "milestones"):
        assert view[section]["status"] == "ok", (section, view[section])


async def test_the_portfolio_asks_for_every_projects_time_expenses_and_unbilled_work_once(gw: Any) -> None:
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    response = await gw.client.get(VIEW, params={"limit": 25}, headers=gw.auth("experience:delivery"))
    assert response.status_code == 200, response.text
    portfolio = response.json()
    assert portfolio["totals"]["projects"] >= 10  # enough projects that one call each would show
    assert portfolio["totals"]["risk_unknown"] == 0
    listings = [e.path for e in log if "/time_entries" in e.path or "/expenses" in e.path]
    # One listing of each for every project (and the billable items' two), not one a project.
    assert len(listings) < 10, listings


async def test_the_deal_is_read_by_the_project_id_not_after_the_project(gw: Any) -> None:
    project = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    log = gw.sandbox_state("salesforce").request_log
    log.clear()
    view = await _view(gw, project)
    assert view["legal_entity"] == "US01"
    # The deal that carries the project's id, with its children, in one round of queries: not the deal's
    # own record read under the project's external key once the project is in.
    assert not [e.path for e in log if "/sobjects/Opportunity/" in e.path]
    assert len([e for e in log if e.path.endswith("/query/")]) == 3


async def test_a_project_made_by_hand_finds_its_deal_under_its_external_key(gw: Any) -> None:
    response = await gw.client.post(
        "/system/v1/psa/projects",
        json={
            "external_key": READY_FIXED_FEE_OPPORTUNITY_ID,  # a deal whose activation wrote nothing back
            "name": "Hand-made project",
            "customer_id": "cust-by-hand",
            "currency": "USD",
        },
        headers={**gw.auth("system:write"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code in (200, 201), response.text
    log = gw.sandbox_state("salesforce").request_log
    log.clear()
    view = await _view(gw, response.json()["id"])
    # No deal carries the project's id: its deal was read under the project's external key.
    assert [e.path for e in log if "/sobjects/Opportunity/" in e.path]
    assert view["project"]["legal_entity"] is None
    deal = await gw.client.get(
        f"/system/v1/crm/opportunities/{READY_FIXED_FEE_OPPORTUNITY_ID}", headers=gw.auth("system:read")
    )
    assert deal.json()["legal_entity"]
    assert view["legal_entity"] == deal.json()["legal_entity"]
    assert view["forecast"]["status"] in ("ok", "not_applicable")


async def test_the_portfolio_asks_for_every_projects_staffing_demand_once(gw: Any) -> None:
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    response = await gw.client.get(VIEW, params={"limit": 25}, headers=gw.auth("experience:delivery"))
    assert response.status_code == 200, response.text
    portfolio = response.json()
    assert portfolio["totals"]["projects"] >= 10
    assert portfolio["totals"]["risk_unknown"] == 0
    # One listing for every project (they are fewer than a listing takes), not one a project.
    assert len([e for e in log if "workspace_resources" in e.path]) == 1


async def test_staffing_unreadable_leaves_every_projects_risk_unknown_with_the_reason(gw: Any) -> None:
    await _fault(gw, "kantata", kind="error", status=500, path_pattern=r"/workspace_resources")
    response = await gw.client.get(VIEW, params={"limit": 25}, headers=gw.auth("experience:delivery"))
    assert response.status_code == 200, response.text
    portfolio = response.json()
    assert portfolio["items"]
    for item in portfolio["items"]:
        assert item["risk"]["status"] == "unavailable"
        assert item["risk"]["error"]["source"] == "system:psa.staffing-demands"
        assert item["risk"]["over_budget"] is None
