"""The finance view against the sandboxes, with billing data made the way the billing tests make it: won
deals activated, a month of approved time and an expense in Kantata for a US01 (NetSuite) project, a
completed milestone on a DE01 (Business Central) fixed-fee project, then billing runs.

What a finance user would notice is checked: the work shows as unbilled until a run bills it; the
receivables totals are the ERPs' own open balances to the cent (read from the sandboxes' stores); an
invoice leads back to its hours, project, deal and billing run; a draft waits for approval; a source down
gives the documented partial answer, a required one a 503 problem."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from apis.config import Settings
from experience_apis.finance import FINANCE_UNBILLED_VIEW
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
from tests.process.test_billing_runs import (
    VENDOR,
    WORKFLOWS,
    Delivery,
    _activate,
    _child_id,
    _done,
    _project,
    _seed_time_and_materials,
    _settled,
    _start,
    _until,
)

FINANCE = "/experience/v1/finance"
CENT = Decimal("0.01")
# The NetSuite sandbox's subsidiaries and currencies (sandboxes.netsuite.data), as the adapter's default
# setup maps them; Business Central keeps DE01's books in EUR (its local currency, stored blank).
NETSUITE_ENTITIES = {"1": "US01", "2": "GB01", "3": "DE01"}


def _settings(make_settings: Callable[..., Settings], **extra: Any) -> Settings:
    # As the billing tests, but Kantata reads are retried and its sandbox takes more requests a second: the
    # unbilled view reads every project's billable items (about four Kantata calls a project, thirty seeded
    # projects), a burst over the sandbox's default per-second limit that these tests are not about.
    return make_settings(
        sandbox_kantata_requests_per_second=2000,
        workflows=WORKFLOWS,
        netsuite=VENDOR,
        kantata={**VENDOR, "retry_max_attempts": 4},
        salesforce=VENDOR,
        business_central=VENDOR,
        erp_vendor="netsuite",
        erp_by_legal_entity={"DE01": "business_central"},
        **extra,
    )


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(_settings(make_settings))


async def _view(gw: Any, path: str, status: int = 200, **params: Any) -> Any:
    response = await gw.client.get(FINANCE + path, params=params, headers=gw.auth("experience:finance"))
    assert response.status_code == status, response.text
    return response.json()


async def _every_row(gw: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {**params, **({"cursor": cursor} if cursor else {})}
        body = await _view(gw, path, **query)
        rows.extend(body["rows"]["items"])
        cursor = body["rows"].get("next_cursor")
        if not cursor:
            return rows


async def _fault(gw: Any, vendor: str, **rule: Any) -> None:
    async with gw.sandbox(vendor) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
    assert response.status_code == 201, response.text


async def _clear_faults(gw: Any, vendor: str) -> None:
    async with gw.sandbox(vendor) as sandbox:
        assert (await sandbox.delete("/__sandbox/faults")).status_code == 204


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _psa_value(gw: Any, time_ids: list[str], expense_ids: list[str]) -> Decimal:
    """What the Kantata sandbox itself holds the items worth: minutes / 60 x rate, the expense amount."""
    records = gw.sandbox_state("kantata").records
    total = Decimal(0)
    for entry_id in time_ids:
        entry = records["time_entries"][entry_id]
        hours = Decimal(entry["time_in_minutes"]) / 60
        total += _money(hours * Decimal(entry["rate_in_cents"]) / 100)
    for expense_id in expense_ids:
        total += _money(Decimal(records["expenses"][expense_id]["amount_in_cents"]) / 100)
    return total


async def _seed_both_entities(gw: Any) -> tuple[str, list[str], str, list[str]]:
    """A US01 time-and-materials project with three approved days and an expense, and a DE01 fixed-fee
    project (billed from Business Central) with its first milestone completed."""
    tm, ids = await _seed_time_and_materials(gw)
    fixed = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    milestones = await Delivery(gw).complete_milestones(fixed, 1)
    return tm, ids, fixed, milestones


# --- unbilled ------------------------------------------------------------------------------------------


async def test_approved_work_is_unbilled_by_entity_customer_and_currency_until_a_run_bills_it(
    gw: Any,
) -> None:
    tm, ids, fixed, _milestones = await _seed_both_entities(gw)

    us = await _view(gw, "/unbilled", legal_entity="US01")
    assert us["rows"]["status"] == "ok"
    assert us["deals"]["status"] == "ok"
    (row,) = us["rows"]["items"]
    assert (row["legal_entity"], row["project_id"], row["currency"]) == ("US01", tm, "USD")
    assert row["opportunity_id"] == READY_OPPORTUNITY_ID
    assert row["customer_id"]
    assert row["customer_name"]
    assert (row["items"], row["time_entries"], row["expenses"], row["unpriced_items"]) == (4, 3, 1, 0)
    assert Decimal(row["hours"]) == Decimal("22.5")
    # Valued as the PSA values them, to the cent; all of it worked last month, so 0-30 or 31-60 days old.
    expected = _psa_value(gw, ids[:3], ids[3:])
    assert Decimal(row["amount"]) == expected
    assert sum(Decimal(v) for v in row["aging"].values()) == expected
    assert [(t["legal_entity"], t["currency"], Decimal(t["amount"])) for t in us["by_legal_entity"]] == [
        ("US01", "USD", expected)
    ]
    assert [(t["customer_id"], t["currency"]) for t in us["by_customer"]] == [(row["customer_id"], "USD")]

    # The DE01 project bills from Business Central: its completed milestone is its unbilled work.
    de = await _view(gw, "/unbilled", legal_entity="DE01")
    (de_row,) = de["rows"]["items"]
    assert (de_row["project_id"], de_row["milestones"], de_row["items"]) == (fixed, 1, 1)
    workspace = gw.sandbox_state("kantata").records["workspaces"][fixed]
    assert Decimal(de_row["amount"]) > 0
    assert de_row["currency"] == workspace["currency"]
    assert not [t for t in de["by_legal_entity"] if t["legal_entity"] != "DE01"]

    # Every row of a currency, page after page, adds up to that currency's totals; never across currencies.
    eur = await _view(gw, "/unbilled", currency="EUR", limit=200)
    paged = await _every_row(gw, "/unbilled", currency="EUR", limit=2)
    assert paged == eur["rows"]["items"]
    assert len(paged) > 2
    sums: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for r in paged:
        assert r["currency"] == "EUR"
        sums[(r["legal_entity"], r["currency"])] += Decimal(r["amount"])
    assert {(t["legal_entity"], t["currency"]): Decimal(t["amount"]) for t in eur["by_legal_entity"]} == sums

    # Billed: the work is no longer unbilled.
    started = await _start(gw, legal_entity="US01", project_ids=[tm])
    assert _project(await _until(gw, started["run"]["id"], _done), tm)["state"] == "completed"
    after = await _view(gw, "/unbilled", legal_entity="US01")
    assert after["rows"]["items"] == []
    assert after["by_legal_entity"] == []


async def test_unbilled_items_are_read_beside_the_projects_and_each_row_is_its_projects_listing(
    gw: Any,
) -> None:
    # The items section asks every project's items without waiting for the projects' listing.
    (items,) = [s for s in FINANCE_UNBILLED_VIEW.sections if s.name == "items"]
    assert items.after == ()
    tm, _ids, fixed, _milestones = await _seed_both_entities(gw)
    body = await _view(gw, "/unbilled", limit=200)
    rows = {r["project_id"]: r for r in body["rows"]["items"]}
    assert {tm, fixed} <= rows.keys()
    # Each row counts what that project's own listing holds (one currency a project here).
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for project in (tm, fixed):
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"through": today, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await gw.client.get(
                f"/system/v1/psa/projects/{project}/billable-items",
                params=params,
                headers=gw.auth("system:read"),
            )
            assert page.status_code == 200, page.text
            found += page.json()["items"]
            if (cursor := page.json()["next_cursor"]) is None:
                break
        row = rows[project]
        assert row["items"] == len(found)
        assert (row["time_entries"], row["expenses"], row["milestones"]) == tuple(
            sum(1 for i in found if i["kind"] == kind) for kind in ("time", "expense", "milestone")
        )


# --- sources down --------------------------------------------------------------------------------------


async def test_unbilled_asks_the_psa_for_every_projects_items_once_not_once_a_project(gw: Any) -> None:
    projects = await gw.client.get(
        "/system/v1/psa/projects", params={"limit": 200}, headers=gw.auth("system:read")
    )
    assert len(projects.json()["items"]) >= 20  # the seed: enough projects that one call each would show
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    body = await _view(gw, "/unbilled", limit=25)
    assert body["rows"]["status"] == "ok"
    assert body["rows"]["items"]
    items = [entry for entry in log if "/time_entries" in entry.path or "/expenses" in entry.path]
    # One listing for every project (a page of time entries, one of expenses, and on): not one a project.
    assert len(items) < 10, [entry.path for entry in items]


async def test_unbilled_degrades_per_section_when_the_crm_is_down_and_fails_without_the_psa(gw: Any) -> None:
    tm, _ = await _seed_time_and_materials(gw)
    # Account reads failing: names unavailable, the rows keep the customer id and their legal entity.
    await _fault(gw, "salesforce", kind="error", status=503, path_pattern="/sobjects/Account/")
    # The names are read in one SOQL query of the rows' accounts: that query fails too (the deals' does not).
    await _fault(
        gw,
        "salesforce",
        kind="error",
        status=503,
        method="GET",
        path_pattern="/query/",
        query_pattern=r"FROM Account WHERE Id IN \(",
    )
    body = await _view(gw, "/unbilled", legal_entity="US01")
    assert body["customer_names"]["status"] == "unavailable"
    assert body["customer_names"]["error"]["source"] == "system:crm.accounts"
    (row,) = body["rows"]["items"]
    assert row["project_id"] == tm
    assert row["customer_id"]
    assert row.get("customer_name") is None
    await _clear_faults(gw, "salesforce")

    # The whole CRM down: no deals, so no legal entity for the projects; rows still answer without one...
    await _fault(gw, "salesforce", kind="outage")
    body = await _view(gw, "/unbilled", currency="USD", limit=200)
    assert body["deals"]["status"] == "unavailable"
    assert body["deals"]["error"]["code"] == "vendor-unavailable"
    assert [r["legal_entity"] for r in body["rows"]["items"] if r["project_id"] == tm] == [None]
    # ...but a legal entity cannot be selected without them: 503, naming the section.
    problem = await _view(gw, "/unbilled", status=503, legal_entity="US01")
    assert (problem["code"], problem["section"]) == ("source-unavailable", "deals")
    await _clear_faults(gw, "salesforce")

    await _fault(gw, "kantata", kind="outage")
    problem = await _view(gw, "/unbilled", status=503)
    assert problem["code"] == "source-unavailable"
    assert problem["section"] in ("projects", "items")
    await _clear_faults(gw, "kantata")


# --- waiting for finance -------------------------------------------------------------------------------


async def test_a_draft_waits_for_finance_approval_until_finance_approves_it(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    reviewed = {"US01": {"currency": "USD", "finance_review": True}}
    gw = await make_gateway(_settings(make_settings, billing={"legal_entities": reviewed}))
    tm, _ = await _seed_time_and_materials(gw)
    started = await _start(gw, legal_entity="US01", project_ids=[tm])
    child = _project(await _until(gw, started["run"]["id"], _settled(_child_id(tm))), tm)
    assert child["result"]["awaiting"] == "finance_approval", child

    body = await _view(gw, "/approvals", legal_entity="US01")
    (waiting,) = body["awaiting_approval"]["items"]
    assert waiting["run_id"] == _child_id(tm)
    assert waiting["billing_run_id"] == started["run"]["id"]
    assert waiting["legal_entity"] == "US01"
    assert waiting["project_id"] == tm
    assert waiting["erp_invoice_id"] == child["result"]["erp_invoice_id"]
    assert (waiting["currency"], waiting["total"]) == ("USD", child["result"]["total"])
    assert Decimal(waiting["age_hours"]) >= 0
    assert body["awaiting_approval"]["totals"] == [{"amount": child["result"]["total"], "currency": "USD"}]
    assert body["parked"]["status"] == "ok"
    assert (await _view(gw, "/approvals", legal_entity="DE01"))["awaiting_approval"]["items"] == []
    assert (await _view(gw, "/approvals", currency="EUR"))["awaiting_approval"]["items"] == []

    # Approved: nothing waits any more.
    approve = await gw.client.post(
        f"/process/v1/billing-runs/{started['run']['id']}/approve",
        headers={**gw.auth("process:read finance:approve"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert approve.status_code == 202, approve.text
    await _until(gw, started["run"]["id"], _done)
    assert (await _view(gw, "/approvals"))["awaiting_approval"]["items"] == []


REFUSED = (
    '{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1","title":"Bad Request",'
    '"status":400,"o:errorDetails":[{"detail":"The customer is on credit hold.","o:errorCode":"USER_ERROR"}]}'
)


async def test_an_invoice_the_erp_refuses_parks_its_billing_run_for_finance(gw: Any) -> None:
    tm, _ = await _seed_time_and_materials(gw)
    # NetSuite refuses the invoice (a business rule: finance's to fix), as its error document says.
    await _fault(
        gw,
        "netsuite",
        kind="error",
        status=400,
        method="POST",
        path_pattern="/record/v1/invoice$",
        body=REFUSED,
    )
    started = await _start(gw, legal_entity="US01", project_ids=[tm])
    child = _project(await _until(gw, started["run"]["id"], _settled(_child_id(tm))), tm)
    await _clear_faults(gw, "netsuite")
    assert (child["state"], child["issue"]["owner"]) == ("exception", "finance"), child

    body = await _view(gw, "/approvals", legal_entity="US01")
    assert body["awaiting_approval"]["items"] == []
    (parked,) = body["parked"]["items"]
    assert (parked["run_id"], parked["billing_run_id"]) == (_child_id(tm), started["run"]["id"])
    assert parked["legal_entity"] == "US01"
    assert parked["step"] == child["issue"]["step"]
    assert "credit hold" in parked["message"]
    assert parked["remediation"]
    assert (await _view(gw, "/approvals", legal_entity="GB01"))["parked"]["items"] == []


# --- the caller's mistakes -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/unbilled", "/receivables", "/approvals"])
async def test_a_cursor_the_view_did_not_issue_is_422_and_no_scope_is_403(gw: Any, path: str) -> None:
    problem = await _view(gw, path, status=422, cursor="Z2FyYmFnZQ")
    assert problem["code"] == "validation-failed"
    assert problem["errors"][0]["field"] == "cursor"
    response = await gw.client.get(FINANCE + path, headers=gw.auth("experience:sales"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_receivables_cursor_only_continues_its_own_listing(gw: Any) -> None:
    first = await _view(gw, "/receivables", limit=1, as_of=dt.date.today().isoformat())
    cursor = first["rows"]["next_cursor"]
    assert cursor
    problem = await _view(gw, "/receivables", status=422, limit=1, currency="EUR", cursor=cursor)
    assert problem["errors"][0]["field"] == "cursor"
