"""Billing runs over HTTP on the whole gateway in process, checked in the sandboxes' own state: won deals
activated by the activation workflow, a month of approved time and expenses entered in the Kantata sandbox
as a delivery team would, then one invoice per project and period in the ERP of the project's legal entity
(US01 on NetSuite, DE01 on Business Central), the items invoiced in the PSA, the status on the opportunity.

Exactly once is checked where it matters, in the vendors' records: ERP faults during a run, two billing runs
of overlapping scope started at once, an item approved after its period's run, a replay after the rate card
is fixed, finance review, cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from apis.config import Settings
from sandboxes.kantata.data import DEMO_USER_ID
from sandboxes.salesforce.data import (
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
)

BILLING = "/process/v1/billing-runs"
ROLE = "4204"  # Kantata's role id of DEMO_USER_ID (Senior Consultant)
KANTATA_API = "/api/v1"
KANTATA_AUTH = {"Authorization": "Bearer stratum-kantata-sandbox-token"}
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
WORKFLOWS = {
    "step_backoff_base_seconds": 0.05,
    "step_backoff_max_seconds": 0.2,
    "step_max_attempts": 6,
    "poll_interval_seconds": 0.1,
}
FINAL = {"completed", "cancelled", "failed"}


def _last_month(today: dt.date | None = None) -> str:
    today = today or dt.datetime.now(dt.UTC).date()
    first = today.replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def _month_before(period: str) -> str:
    first = dt.date.fromisoformat(period + "-01")
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


PERIOD = _last_month()
EARLIER = _month_before(PERIOD)


def _settings(make_settings: Callable[..., Settings], **billing: Any) -> Settings:
    return make_settings(
        workflows=WORKFLOWS,
        netsuite=VENDOR,
        kantata=VENDOR,
        salesforce=VENDOR,
        business_central=VENDOR,
        erp_vendor="netsuite",
        erp_by_legal_entity={"DE01": "business_central"},
        **({"billing": billing} if billing else {}),
    )


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(_settings(make_settings))


# --- seed: activated deals and a month of approved work -------------------------------------------------


async def _activate(gw: Any, opportunity_id: str) -> dict[str, Any]:
    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": opportunity_id},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"},
    )
    run: dict[str, Any] = response.json()
    assert run["state"] == "completed", run
    result: dict[str, Any] = run["result"]
    return result


async def add_rate(gw: Any, opportunity_id: str, role: str, rate: str, currency: str) -> None:
    """Fix the deal's rate card as sales operations would: a ``Rate_Card_Line__c`` through the Salesforce
    sandbox's REST API."""
    async with gw.sandbox("salesforce") as sf:
        token = (
            await sf.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "stratum-sandbox",
                    "client_secret": "stratum-sandbox-secret",
                },
            )
        ).json()["access_token"]
        response = await sf.post(
            "/services/data/v61.0/sobjects/Rate_Card_Line__c",
            json={
                "Opportunity__c": opportunity_id,
                "Role__c": role,
                "Rate__c": float(rate),
                "Unit__c": "Hour",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text


class Delivery:
    """A delivery team entering and approving work in the Kantata sandbox, through its API."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw

    async def _api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.gw.sandbox("kantata") as kantata:
            response = await kantata.request(method, KANTATA_API + path, json=body, headers=KANTATA_AUTH)
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    @staticmethod
    def _records(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [body[ref["key"]][ref["id"]] for ref in body["results"]]

    async def time(
        self, project_id: str, day: str, minutes: int, *, approve: bool = True, user_id: str = DEMO_USER_ID
    ) -> str:
        body = {
            "time_entry": {
                "workspace_id": project_id,
                "date_performed": day,
                "time_in_minutes": minutes,
                "user_id": user_id,
                "billable": True,
            }
        }
        entry = self._records(await self._api("POST", "/time_entries.json", body))[0]
        # The role the entry is booked as. Kantata's API here takes no role on a time entry, so the
        # sandbox record gets the user's role id as Kantata's would carry it; the PSA adapter reports a
        # time entry's role as that id (see the report: the rate card must name the same role).
        self.gw.sandbox_state("kantata").records["time_entries"][entry["id"]]["role_id"] = ROLE
        if approve:
            await self.approve([entry["id"]])
        return str(entry["id"])

    async def approve(self, entry_ids: list[str]) -> None:
        async with self.gw.sandbox("kantata") as kantata:
            response = await kantata.post(
                "/__sandbox/time_entries/approve", json={"time_entry_ids": entry_ids}
            )
        assert response.status_code == 200, response.text

    async def expense(self, project_id: str, day: str, cents: int, currency: str) -> str:
        body = {
            "expense": {
                "workspace_id": project_id,
                "date": day,
                "category": "Travel",
                "amount_in_cents": cents,
                "currency": currency,
                "user_id": DEMO_USER_ID,
                "is_billable": True,
            }
        }
        expense = self._records(await self._api("POST", "/expenses.json", body))[0]
        # Approved as an expense report approval would (the sandbox has no route for it).
        self.gw.sandbox_state("kantata").records["expenses"][expense["id"]]["approved"] = True
        return str(expense["id"])

    async def complete_milestones(self, project_id: str, count: int) -> list[str]:
        found = await self._api("GET", f"/stories.json?workspace_id={project_id}&story_type=milestone")
        stories = sorted(self._records(found), key=lambda s: int(s["id"]))[:count]
        for story in stories:
            await self._api("PUT", f"/stories/{story['id']}.json", {"story": {"state": "completed"}})
        return [str(s["id"]) for s in stories]


def _day(period: str, day: int) -> str:
    return f"{period}-{day:02d}"


async def _seed_time_and_materials(gw: Any, *, rate: bool = True) -> tuple[str, list[str]]:
    project = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    if rate:
        await add_rate(gw, READY_OPPORTUNITY_ID, ROLE, "210", "USD")
    team = Delivery(gw)
    ids = [await team.time(project, _day(PERIOD, day), 450) for day in (3, 4, 5)]
    ids.append(await team.expense(project, _day(PERIOD, 6), 12_345, "USD"))
    return project, ids


# --- HTTP -----------------------------------------------------------------------------------------------


async def _start(gw: Any, *, legal_entity: str, project_ids: list[str] | None, period: str = PERIOD) -> Any:
    body: dict[str, Any] = {"legal_entity": legal_entity, "period": period}
    if project_ids is not None:
        body["project_ids"] = project_ids
    response = await gw.client.post(
        BILLING,
        json=body,
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"{BILLING}/{response.json()['run']['id']}"
    return response.json()


async def _view(gw: Any, run_id: str) -> dict[str, Any]:
    response = await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def _until(gw: Any, run_id: str, check: Callable[[dict[str, Any]], bool], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        view = await _view(gw, run_id)
        if check(view):
            return view
        assert time.monotonic() < deadline, f"billing run {run_id} did not get there: {view}"
        await asyncio.sleep(0.1)


def _done(view: dict[str, Any]) -> bool:
    return bool(view["run"]["state"] == "completed")


def _project(view: dict[str, Any], project_id: str) -> dict[str, Any]:
    runs = [r for r in view["projects"] if r["id"] == f"bill-{project_id}-{PERIOD}"]
    assert runs, view
    run: dict[str, Any] = runs[0]
    return run


# --- vendor state ---------------------------------------------------------------------------------------


def _psa_invoices(gw: Any, project_id: str) -> list[dict[str, Any]]:
    return [
        i
        for i in gw.sandbox_state("kantata").records["invoices"].values()
        if str(project_id) in [str(w) for w in i.get("workspace_ids", [i.get("workspace_id")])]
    ]


def _invoiced_entries(gw: Any, entry_ids: list[str]) -> dict[str, bool]:
    entries = gw.sandbox_state("kantata").records["time_entries"]
    return {e: bool(entries[e]["is_invoiced"]) for e in entry_ids if e in entries}


async def _erp_invoice(gw: Any, invoice_id: str) -> dict[str, Any]:
    response = await gw.client.get(f"/system/v1/erp/invoices/{invoice_id}", headers=gw.auth("system:read"))
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


async def _erp_invoices_with_key(gw: Any, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await gw.client.get(
            "/system/v1/erp/invoices", params=params, headers=gw.auth("system:read")
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(i for i in page["items"] if i.get("external_key") == key and i["status"] != "voided")
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def _billable(gw: Any, project_id: str, through: str) -> list[dict[str, Any]]:
    response = await gw.client.get(
        f"/system/v1/psa/projects/{project_id}/billable-items",
        params={"through": through, "limit": 200},
        headers=gw.auth("system:read"),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- tests ----------------------------------------------------------------------------------------------


async def test_a_time_and_materials_month_becomes_one_traceable_invoice(gw: Any) -> None:
    project, ids = await _seed_time_and_materials(gw)
    entries, expense = ids[:3], ids[3]
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    result = child["result"]
    assert result["billing_key"] == f"bill:{project}:{PERIOD}"
    invoice = await _erp_invoice(gw, result["erp_invoice_id"])
    assert invoice["external_key"] == result["billing_key"]
    # Exact money: the total is the sum of the lines, and what the run reported.
    assert Decimal(invoice["total"]["amount"]) == sum(Decimal(line["amount"]) for line in invoice["lines"])
    assert Decimal(invoice["total"]["amount"]) == Decimal(result["total"])
    # Every line traces to its PSA items, every item is on one line.
    traced = Counter(s for line in invoice["lines"] for s in line.get("source_ids", []))
    assert traced == Counter([*(f"time:{e}" for e in entries), f"expense:{expense}"])
    # The items are invoiced in the PSA, on the invoice the run recorded there.
    assert _invoiced_entries(gw, entries) == dict.fromkeys(entries, True)
    assert not [i for i in await _billable(gw, project, _day(PERIOD, 28)) if i["id"] in ids]
    # The status is on the opportunity in the CRM.
    records = gw.sandbox_state("salesforce").records.get("Stratum_Invoice__c", {})
    statuses = [r for r in records.values() if r.get("ERP_Invoice_Id__c") == result["erp_invoice_id"]]
    assert len(statuses) == 1, statuses
    # One invoice.issued event.
    events = await gw.client.get(
        "/process/v1/events", params={"type": "invoice.issued"}, headers=gw.auth("process:read")
    )
    assert events.status_code == 200, events.text
