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

import pytest

from apis.config import Settings
from sandboxes.kantata.data import DEMO_USER_ID
from sandboxes.salesforce.data import (
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
)

BILLING = "/process/v1/billing-runs"
# The role the team books time as: Kantata names it by id on a time entry, the deals' rate cards by name
# (and none of the ready deals' cards has it, so a run parks until a rate is added).
ROLE = "4202"
ROLE_NAME = "Project Manager"
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
                "role_id": ROLE,
                "billable": True,
            }
        }
        entry = self._records(await self._api("POST", "/time_entries.json", body))[0]
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
        # Approved as its expense report's approver would (a person's act in Kantata's web app).
        async with self.gw.sandbox("kantata") as kantata:
            response = await kantata.post(
                "/__sandbox/expenses/approve", json={"expense_ids": [expense["id"]]}
            )
        assert response.status_code == 200, response.text
        return str(expense["id"])

    async def complete_milestones(self, project_id: str, count: int) -> list[str]:
        found = await self._api("GET", f"/stories.json?workspace_id={project_id}&story_type=milestone")
        stories = sorted(self._records(found), key=lambda s: int(s["id"]))[:count]
        for story in stories:
            # Completed in the period (its due date is the day it bills on); activation made it billable.
            assert story["billable"], story
            done = {"state": "completed", "due_date": _day(PERIOD, 20)}
            await self._api("PUT", f"/stories/{story['id']}.json", {"story": done})
        return [str(s["id"]) for s in stories]


def _day(period: str, day: int) -> str:
    return f"{period}-{day:02d}"


async def _seed_time_and_materials(gw: Any, *, rate: bool = True) -> tuple[str, list[str]]:
    project = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    if rate:
        await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
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
        found.extend(
            i
            for i in page["items"]
            # Business Central reads its Code field externalDocumentNumber back in upper case.
            if (i.get("external_key") or "").casefold() == key.casefold()
            and i["status"] not in ("void", "voided")
        )
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def _billable(gw: Any, project_id: str, through: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"through": through, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await gw.client.get(
            f"/system/v1/psa/projects/{project_id}/billable-items",
            params=params,
            headers=gw.auth("system:read"),
        )
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items


async def _issued_events(gw: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"type": "invoice.issued", "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/process/v1/events", params=params, headers=gw.auth("process:read"))
        assert page.status_code == 200, page.text
        events.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if not cursor or not page.json()["items"]:
            return events


def _assert_reported_as_the_erp_says(invoice: dict[str, Any], result: dict[str, Any]) -> None:
    """The ERP invoice's lines (net) add up to its subtotal, its total is subtotal and tax, and the run
    reported those: ``net``, ``tax``, ``total`` (gross, what the customer owes)."""
    net, tax = Decimal(invoice["subtotal"]["amount"]), Decimal(invoice["tax"]["amount"])
    assert net == sum(Decimal(line["amount"]) for line in invoice["lines"])
    assert Decimal(invoice["total"]["amount"]) == net + tax == Decimal(invoice["balance"]["amount"])
    assert (Decimal(result["net"]), Decimal(result["tax"]), Decimal(result["total"])) == (net, tax, net + tax)


# --- tests ----------------------------------------------------------------------------------------------


async def test_a_time_and_materials_month_becomes_one_traceable_invoice(gw: Any) -> None:
    from prometheus_client import REGISTRY

    def observed() -> float:
        return REGISTRY.get_sample_value("stratum_billing_approval_to_invoice_seconds_count") or 0.0

    project, ids = await _seed_time_and_materials(gw)
    entries, expense = ids[:3], ids[3]
    before = observed()
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    result = child["result"]
    assert result["billing_key"] == f"bill:{project}:{PERIOD}"
    invoice = await _erp_invoice(gw, result["erp_invoice_id"])
    assert invoice["external_key"] == result["billing_key"]
    # Exact money: the lines are net and add up to the subtotal, the total adds the tax (none computed by
    # the NetSuite sandbox), and the run reports the ERP's figures.
    _assert_reported_as_the_erp_says(invoice, result)
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
    # Approval to invoice: one observation per approved time entry billed.
    assert observed() - before >= len(entries)
    # One invoice.issued event.
    events = await gw.client.get(
        "/process/v1/events", params={"type": "invoice.issued"}, headers=gw.auth("process:read")
    )
    assert events.status_code == 200, events.text


def _settled(*run_ids: str) -> Callable[[dict[str, Any]], bool]:
    def check(view: dict[str, Any]) -> bool:
        runs = {r["id"]: r for r in view["projects"]}
        return all(
            run_id in runs
            and (runs[run_id]["state"] in (*FINAL, "exception", "dead_letter") or _awaiting(runs[run_id]))
            for run_id in run_ids
        )

    return check


def _awaiting(run: dict[str, Any]) -> bool:
    return bool((run.get("result") or {}).get("awaiting") == "finance_approval")


def _child_id(project: str, period: str = PERIOD) -> str:
    return f"bill-{project}-{period}"


async def _psa_invoices_with_key(gw: Any, key: str) -> list[dict[str, Any]]:
    response = await gw.client.get(
        "/system/v1/psa/invoices", params={"external_key": key}, headers=gw.auth("system:read")
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def _traced(invoice: dict[str, Any]) -> Counter[str]:
    return Counter(s for line in invoice["lines"] for s in line.get("source_ids", []))


async def _control(gw: Any, path: str, scopes: str) -> Any:
    return await gw.client.post(path, headers={**gw.auth(scopes), "Idempotency-Key": uuid.uuid4().hex})


async def test_three_billing_models_in_two_legal_entities_one_invoice_each(gw: Any) -> None:
    team = Delivery(gw)
    tm, tm_ids = await _seed_time_and_materials(gw)
    retainer = (await _activate(gw, READY_RETAINER_OPPORTUNITY_ID))["psa_project_id"]
    await add_rate(gw, READY_RETAINER_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    retainer_ids = [await team.time(retainer, _day(PERIOD, 10), 120)]
    fixed = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    assert fixed["erp_customer_id"].startswith("business_central:")
    fixed_project = fixed["psa_project_id"]
    milestones = await team.complete_milestones(fixed_project, 1)

    us = await _start(gw, legal_entity="US01", project_ids=[tm, retainer])
    de = await _start(gw, legal_entity="DE01", project_ids=None)  # every DE01 project: the scope listing
    us_view = await _until(gw, us["run"]["id"], _settled(_child_id(tm), _child_id(retainer)))
    de_view = await _until(gw, de["run"]["id"], _settled(_child_id(fixed_project)))
    children = {r["id"]: r for r in [*us_view["projects"], *de_view["projects"]]}
    for project in (tm, retainer, fixed_project):
        child = children[_child_id(project)]
        assert child["state"] == "completed", child
        result = child["result"]
        assert "erp_invoice_id" in result, str(result)
        invoice = await _erp_invoice(gw, result["erp_invoice_id"])
        _assert_reported_as_the_erp_says(invoice, result)
        key = f"bill:{project}:{PERIOD}"
        assert [i["id"] for i in await _psa_invoices_with_key(gw, key)] == [result["psa_invoice_id"]]
        assert invoice["external_key"].casefold() == key  # Business Central upper-cases a Code field
        records = gw.sandbox_state("salesforce").records.get("Stratum_Invoice__c", {})
        assert [r for r in records.values() if r.get("ERP_Invoice_Id__c") == result["erp_invoice_id"]]
    tm_invoice = await _erp_invoice(gw, children[_child_id(tm)]["result"]["erp_invoice_id"])
    assert _traced(tm_invoice) == Counter([*(f"time:{e}" for e in tm_ids[:3]), f"expense:{tm_ids[3]}"])
    retainer_invoice = await _erp_invoice(gw, children[_child_id(retainer)]["result"]["erp_invoice_id"])
    assert f"retainer:{retainer}:{PERIOD}" in _traced(retainer_invoice)
    assert _invoiced_entries(gw, retainer_ids) == dict.fromkeys(retainer_ids, True)
    fixed_result = children[_child_id(fixed_project)]["result"]
    assert fixed_result["erp_invoice_id"].startswith("business_central:")
    fixed_invoice = await _erp_invoice(gw, fixed_result["erp_invoice_id"])
    # DE01 bills in Business Central, which adds 19 % VAT (VAT19): the customer owes the gross, and the CRM
    # status says so, as the status sync will read it from the ERP.
    net = Decimal(fixed_result["net"])
    assert Decimal(fixed_result["tax"]) == (net * Decimal("0.19")).quantize(Decimal("0.01")) > 0
    gross = Decimal(fixed_result["total"])
    records = gw.sandbox_state("salesforce").records.get("Stratum_Invoice__c", {})
    (status,) = [r for r in records.values() if r.get("ERP_Invoice_Id__c") == fixed_result["erp_invoice_id"]]
    assert (Decimal(str(status["Total__c"])), Decimal(str(status["Balance__c"]))) == (gross, gross)
    # invoice.issued says the same: total the gross, with its net and tax.
    (issued,) = [
        e for e in await _issued_events(gw) if e["data"]["erp_invoice_id"] == fixed_result["erp_invoice_id"]
    ]
    assert {k: issued["data"][k] for k in ("net", "tax", "total")} == {
        k: fixed_result[k] for k in ("net", "tax", "total")
    }
    assert _traced(fixed_invoice) == Counter(f"milestone:{m}" for m in milestones)


async def test_two_overlapping_runs_started_at_once_bill_each_item_once(gw: Any) -> None:
    project, ids = await _seed_time_and_materials(gw)
    first, second = await asyncio.gather(
        _start(gw, legal_entity="US01", project_ids=[project]),
        _start(gw, legal_entity="US01", project_ids=[project]),
    )
    assert first["run"]["id"] != second["run"]["id"]
    for started in (first, second):
        await _until(gw, started["run"]["id"], _done)
    key = f"bill:{project}:{PERIOD}"
    erp = await _erp_invoices_with_key(gw, key)
    assert len(erp) == 1
    assert len(await _psa_invoices_with_key(gw, key)) == 1
    traced = _traced(await _erp_invoice(gw, erp[0]["id"]))
    assert all(count == 1 for count in traced.values())
    assert set(traced) == {*(f"time:{e}" for e in ids[:3]), f"expense:{ids[3]}"}


async def test_a_missing_rate_parks_for_project_operations_and_a_replay_after_the_fix_completes(
    gw: Any,
) -> None:
    project, ids = await _seed_time_and_materials(gw, rate=False)
    # The entries' role (ROLE_NAME) is not on the deal's rate card.
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _settled(_child_id(project)))
    child = _project(view, project)
    assert child["state"] == "exception", child
    assert child["issue"]["owner"] == "project_operations"
    assert child["issue"]["code"] == "rate-missing"
    assert sorted(child["issue"]["data"]["reasons"][0]["item_ids"]) == sorted(f"time:{e}" for e in ids[:3])
    assert not await _psa_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    replay = await _control(gw, f"/process/v1/runs/{child['id']}/replay", "process:admin")
    assert replay.status_code == 202, replay.text
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    assert _invoiced_entries(gw, ids[:3]) == dict.fromkeys(ids[:3], True)


async def test_an_item_approved_after_its_periods_run_lands_on_the_next_invoice(gw: Any) -> None:
    team = Delivery(gw)
    project = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    on_time = await team.time(project, _day(EARLIER, 12), 240)
    late = await team.time(project, _day(EARLIER, 13), 180, approve=False)
    first = await _start(gw, legal_entity="US01", project_ids=[project], period=EARLIER)
    view = await _until(gw, first["run"]["id"], _done)
    earlier = next(r for r in view["projects"] if r["id"] == _child_id(project, EARLIER))
    assert _traced(await _erp_invoice(gw, earlier["result"]["erp_invoice_id"])) == Counter(
        [f"time:{on_time}"]
    )
    await team.approve([late])  # approved after the run: the posted invoice is not reopened
    second = await _start(gw, legal_entity="US01", project_ids=[project], period=PERIOD)
    view = await _until(gw, second["run"]["id"], _done)
    child = _project(view, project)
    assert _traced(await _erp_invoice(gw, child["result"]["erp_invoice_id"])) == Counter([f"time:{late}"])
    assert _traced(await _erp_invoice(gw, earlier["result"]["erp_invoice_id"])) == Counter(
        [f"time:{on_time}"]
    )


async def test_a_cancelled_run_leaves_no_open_invoice_and_its_items_billable_again(gw: Any) -> None:
    project, ids = await _seed_time_and_materials(gw)
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _done)
    result = _project(view, project)["result"]
    path = f"{BILLING}/{started['run']['id']}/cancel"
    assert (await _control(gw, path, "process:read")).status_code == 403
    for _ in range(2):  # twice is the same as once
        response = await _control(gw, path, "process:read process:admin")
        assert response.status_code == 202, response.text
    void_id = f"void-{_child_id(project)}"

    def voided(view: dict[str, Any]) -> bool:
        runs = {r["id"]: r for r in view["projects"]}
        return void_id in runs and runs[void_id]["state"] == "completed"

    view = await _until(gw, started["run"]["id"], voided)
    assert [r["id"] for r in view["projects"]].count(void_id) == 1
    assert (await _erp_invoice(gw, result["erp_invoice_id"]))["status"] in ("void", "voided", "credited")
    assert not await _erp_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    psa = await _psa_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    assert [i["status"] for i in psa] == ["cancelled"]
    billable = {i["id"] for i in await _billable(gw, project, _day(PERIOD, 28))}
    assert set(ids) <= billable
    records = gw.sandbox_state("salesforce").records.get("Stratum_Invoice__c", {})
    status = [r for r in records.values() if r.get("ERP_Invoice_Id__c") == result["erp_invoice_id"]]
    assert [r.get("Status__c") for r in status] == ["Void"] or status[0].get("Balance__c") == 0, status


async def test_erp_outages_and_a_lost_answer_still_make_one_invoice(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        workflows=WORKFLOWS,
        netsuite={**VENDOR, "timeout_seconds": 0.5},
        kantata=VENDOR,
        salesforce=VENDOR,
        erp_vendor="netsuite",
    )
    gw = await make_gateway(settings)
    project, ids = await _seed_time_and_materials(gw)
    async with gw.sandbox("netsuite") as netsuite:
        for rule in (
            {"kind": "outage", "path_pattern": "invoice", "times": 2},
            {"kind": "lost", "path_pattern": "invoice", "latency_ms": 800, "times": 1},
        ):
            assert (await netsuite.post("/__sandbox/faults", json=rule)).status_code == 201
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    assert any(s["outcome"] == "retried" for s in child["steps"]), child["steps"]
    async with gw.sandbox("netsuite") as netsuite:
        assert (await netsuite.get("/__sandbox/faults")).json()["faults"] == []  # every fault was hit
    key = f"bill:{project}:{PERIOD}"
    erp = await _erp_invoices_with_key(gw, key)
    assert len(erp) == 1
    traced = _traced(await _erp_invoice(gw, erp[0]["id"]))
    assert all(count == 1 for count in traced.values())
    assert set(traced) == {*(f"time:{e}" for e in ids[:3]), f"expense:{ids[3]}"}


async def test_finance_review_keeps_the_invoice_a_draft_until_approved(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    reviewed = {"US01": {"currency": "USD", "finance_review": True}}
    gw = await make_gateway(_settings(make_settings, legal_entities=reviewed))
    project, _ = await _seed_time_and_materials(gw)
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _settled(_child_id(project)))
    child = _project(view, project)
    assert _awaiting(child), child
    draft = await _erp_invoice(gw, child["result"]["erp_invoice_id"])
    assert draft["status"] == "draft"
    path = f"{BILLING}/{started['run']['id']}/approve"
    assert (await _control(gw, path, "process:run")).status_code == 403
    approved = await _control(gw, path, "process:read finance:approve")
    assert approved.status_code == 202, approved.text
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    posted = await _erp_invoice(gw, child["result"]["erp_invoice_id"])
    assert posted["status"] != "draft"
    assert (await _control(gw, path, "process:read process:admin")).status_code == 409


async def test_billing_runs_are_listed_and_a_period_not_over_is_refused(gw: Any) -> None:
    project, _ = await _seed_time_and_materials(gw)
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    listing = await gw.client.get(BILLING, params={"limit": 5}, headers=gw.auth("process:read"))
    assert listing.status_code == 200, listing.text
    assert started["run"]["id"] in [r["id"] for r in listing.json()["items"]]
    assert all(r["id"].startswith("br-") for r in listing.json()["items"])
    this_month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    refused = await gw.client.post(
        BILLING,
        json={"legal_entity": "US01", "period": this_month},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused.status_code == 409, refused.text
    assert "not over yet" in refused.json()["detail"]


async def test_the_monthly_schedule_starts_one_billing_run_per_legal_entity_and_month(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    from dbos import DBOS

    from process_apis.billing import scheduled_run_id

    gw = await make_gateway(_settings(make_settings, schedules={"US01": "0 0 6 1 * *"}))
    project, _ = await _seed_time_and_materials(gw)
    schedule = await DBOS.get_schedule_async("billing-US01")
    assert schedule is not None
    assert schedule["schedule"] == "0 0 6 1 * *"
    assert schedule["context"] == "US01"
    # Fired twice (a redelivery, a backfill): one billing run for last month.
    for _ in range(2):
        await asyncio.to_thread(DBOS.trigger_schedule, "billing-US01")
    run_id = scheduled_run_id("US01", PERIOD)
    deadline = time.monotonic() + 30
    while (await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))).status_code == 404:
        assert time.monotonic() < deadline, "the schedule started no billing run"
        await asyncio.sleep(0.1)

    def billed(view: dict[str, Any]) -> bool:
        return any(r["id"] == _child_id(project) and r["state"] in FINAL for r in view["projects"])

    view = await _until(gw, run_id, billed)
    assert view["run"]["trigger"] == "schedule"
    assert _project(view, project)["state"] == "completed"
    listing = await gw.client.get(BILLING, params={"limit": 200}, headers=gw.auth("process:read"))
    assert [r["id"] for r in listing.json()["items"]].count(run_id) == 1


async def test_no_schedule_unless_configured(gw: Any) -> None:
    from dbos import DBOS

    assert not [s for s in await DBOS.list_schedules_async() if s["schedule_name"].startswith("billing-")]


async def test_a_lost_psa_answer_still_records_one_psa_invoice(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(
        make_settings(
            workflows=WORKFLOWS,
            netsuite=VENDOR,
            kantata={**VENDOR, "timeout_seconds": 0.5},
            salesforce=VENDOR,
            erp_vendor="netsuite",
        )
    )
    project, ids = await _seed_time_and_materials(gw)
    async with gw.sandbox("kantata") as kantata:
        rule = {"kind": "lost", "method": "POST", "path_pattern": "/invoices", "latency_ms": 800, "times": 1}
        assert (await kantata.post("/__sandbox/faults", json=rule)).status_code == 201
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    key = f"bill:{project}:{PERIOD}"
    psa = await _psa_invoices_with_key(gw, key)
    assert [i["id"] for i in psa] == [child["result"]["psa_invoice_id"]]
    made = [
        i for i in gw.sandbox_state("kantata").records["invoices"].values() if project in i["workspace_ids"]
    ]
    assert len(made) == 1, made
    assert _invoiced_entries(gw, ids[:3]) == dict.fromkeys(ids[:3], True)


async def test_an_item_another_invoice_claims_first_is_re_priced_out_not_billed_twice(gw: Any) -> None:
    project, ids = await _seed_time_and_materials(gw)
    async with gw.sandbox("kantata") as kantata:
        # The run's PSA invoice reaches Kantata late; meanwhile someone invoices one of its entries by hand.
        rule = {
            "kind": "latency",
            "method": "POST",
            "path_pattern": "/invoices",
            "latency_ms": 1500,
            "times": 1,
        }
        assert (await kantata.post("/__sandbox/faults", json=rule)).status_code == 201
        started = await _start(gw, legal_entity="US01", project_ids=[project])
        deadline = time.monotonic() + 30
        while (await kantata.get("/__sandbox/faults")).json()["faults"]:
            assert time.monotonic() < deadline, "the run never wrote its PSA invoice"
            await asyncio.sleep(0.02)
    manual = await gw.client.post(
        "/system/v1/psa/invoices",
        json={
            "external_key": f"manual:{project}",
            "project_id": project,
            "currency": "USD",
            "invoice_date": _day(PERIOD, 28),
            "due_date": _day(PERIOD, 28),
            "time_entry_ids": [ids[0]],
            "draft": True,
        },
        headers={**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert manual.status_code == 201, manual.text
    view = await _until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    assert "billing.price.again" in [s["name"] for s in child["steps"]]
    traced = _traced(await _erp_invoice(gw, child["result"]["erp_invoice_id"]))
    assert set(traced) == {*(f"time:{e}" for e in ids[1:3]), f"expense:{ids[3]}"}


# --- progress: where a billing run stands ----------------------------------------------------------------


async def test_a_billing_run_shows_its_progress_and_the_parked_project_it_waits_on(gw: Any) -> None:
    team = Delivery(gw)
    tm, tm_ids = await _seed_time_and_materials(gw, rate=False)  # its role has no rate: it parks
    retainer = (await _activate(gw, READY_RETAINER_OPPORTUNITY_ID))["psa_project_id"]
    await add_rate(gw, READY_RETAINER_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    await team.time(retainer, _day(PERIOD, 10), 120)
    started = await _start(gw, legal_entity="US01", project_ids=[tm, retainer])
    # The POST answer says where the run stands too.
    assert started["progress"]["projects"] in (0, 2)
    assert "waiting_on" in started
    run_id = started["run"]["id"]
    view = await _until(gw, run_id, _settled(_child_id(tm), _child_id(retainer)))
    progress = view["progress"]
    assert {
        k: progress[k] for k in ("projects", "completed", "parked", "running", "cancelled", "failed")
    } == {
        "projects": 2,
        "completed": 1,
        "parked": 1,
        "running": 0,
        "cancelled": 0,
        "failed": 0,
    }, progress
    # The billing run is not parked itself: nothing to replay on it, its project run is what waits.
    assert view["run"]["state"] == "running", view["run"]
    [waiting] = view["waiting_on"]
    assert waiting["run_id"] == _child_id(tm)
    assert waiting["reason"] == "exception"
    assert waiting["owner"] == "project_operations"
    assert waiting["code"] == "rate-missing"
    assert waiting["project_id"] == tm
    # What the completed project invoiced, exactly as the ERP holds it.
    retainer_run = _project(view, retainer)
    retainer_invoice = await _erp_invoice(gw, retainer_run["result"]["erp_invoice_id"])
    assert progress["invoiced"] == [{"amount": retainer_invoice["total"]["amount"], "currency": "USD"}]
    # The exception queue lists the parked project run, with its owner, and not the billing run again.
    queue = await gw.client.get(
        "/process/v1/exceptions",
        params={"workflow": "billing_run", "limit": 200},
        headers=gw.auth("process:read"),
    )
    assert queue.status_code == 200, queue.text
    listed = [r["id"] for r in queue.json()["items"]]
    assert _child_id(tm) in listed
    assert run_id not in listed

    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    replay = await _control(gw, f"/process/v1/runs/{_child_id(tm)}/replay", "process:admin")
    assert replay.status_code == 202, replay.text
    view = await _until(gw, run_id, _done)
    assert view["progress"]["completed"] == 2, view["progress"]
    assert view["progress"]["parked"] == 0
    assert view["waiting_on"] == []
    tm_invoice = await _erp_invoice(gw, _project(view, tm)["result"]["erp_invoice_id"])
    total = Decimal(tm_invoice["total"]["amount"]) + Decimal(retainer_invoice["total"]["amount"])
    [invoiced] = view["progress"]["invoiced"]
    assert (Decimal(invoiced["amount"]), invoiced["currency"]) == (total, "USD")
    assert _invoiced_entries(gw, tm_ids[:3]) == dict.fromkeys(tm_ids[:3], True)


# --- billing a cancelled project-period again -----------------------------------------------------------


def _crm_statuses(gw: Any, erp_invoice_id: str) -> list[Any]:
    records = gw.sandbox_state("salesforce").records.get("Stratum_Invoice__c", {})
    return [r.get("Status__c") for r in records.values() if r.get("ERP_Invoice_Id__c") == erp_invoice_id]


async def test_a_cancelled_project_period_is_billed_again_once_under_its_next_revision(gw: Any) -> None:
    project, ids = await _seed_time_and_materials(gw)
    first = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, first["run"]["id"], _done)
    old = _project(view, project)["result"]
    cancel = await _control(gw, f"{BILLING}/{first['run']['id']}/cancel", "process:read process:admin")
    assert cancel.status_code == 202, cancel.text
    view = await _until(gw, first["run"]["id"], lambda v: v["progress"]["cancelled"] == 1)
    assert view["progress"]["invoiced"] == []

    # Billed again by two runs started at once: both pick revision 2, which bills once.
    again = await asyncio.gather(
        _start(gw, legal_entity="US01", project_ids=[project]),
        _start(gw, legal_entity="US01", project_ids=[project]),
    )
    revision = f"{_child_id(project)}-r2"
    views = [await _until(gw, started["run"]["id"], _done) for started in again]
    for v in views:
        assert [r["id"] for r in v["projects"]] == [revision], v["projects"]
        assert v["progress"]["completed"] == 1, v["progress"]
    new = views[0]["projects"][0]["result"]
    new_key = f"bill:{project}:{PERIOD}:r2"
    assert new["billing_key"] == new_key
    assert len(new_key) <= 35  # Business Central's externalDocumentNumber
    assert new["erp_invoice_id"] != old["erp_invoice_id"]

    # ERP: the old invoice voided, one open invoice (the new one) with every item once.
    assert (await _erp_invoice(gw, old["erp_invoice_id"]))["status"] in ("void", "voided", "credited")
    assert not await _erp_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    assert [i["id"] for i in await _erp_invoices_with_key(gw, new_key)] == [new["erp_invoice_id"]]
    traced = _traced(await _erp_invoice(gw, new["erp_invoice_id"]))
    assert traced == Counter([*(f"time:{e}" for e in ids[:3]), f"expense:{ids[3]}"])
    # PSA: the old invoice cancelled, the items on the new one.
    assert [i["status"] for i in await _psa_invoices_with_key(gw, f"bill:{project}:{PERIOD}")] == [
        "cancelled"
    ]
    [psa] = await _psa_invoices_with_key(gw, new_key)
    assert psa["id"] == new["psa_invoice_id"] != old["psa_invoice_id"]
    assert psa["status"] != "cancelled"
    entries = gw.sandbox_state("kantata").records["time_entries"]
    assert {str(entries[e].get("invoice_id")) for e in ids[:3]} == {str(psa["id"])}
    assert _invoiced_entries(gw, ids[:3]) == dict.fromkeys(ids[:3], True)
    # CRM: the old status Void, the new one Open.
    assert _crm_statuses(gw, old["erp_invoice_id"]) == ["Void"]
    assert _crm_statuses(gw, new["erp_invoice_id"]) == ["Open"]

    # The revision's payment reaches the revision's PSA invoice (found by its own key), not the cancelled one.
    from tests.process.test_invoice_status import _netsuite_payment, _psa_paid_in_full, _sync

    invoice = await _erp_invoice(gw, new["erp_invoice_id"])
    await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], invoice["total"]["amount"])
    await _sync(gw)
    assert (_psa_paid_in_full(gw, psa["id"]), _psa_paid_in_full(gw, old["psa_invoice_id"])) == (1, 0)
    assert _crm_statuses(gw, new["erp_invoice_id"]) == ["Paid"]


async def test_a_parked_project_period_cancelled_before_it_billed_is_billed_by_its_next_revision(
    gw: Any,
) -> None:
    project, ids = await _seed_time_and_materials(gw, rate=False)
    first = await _start(gw, legal_entity="US01", project_ids=[project])
    await _until(gw, first["run"]["id"], _settled(_child_id(project)))
    cancel = await _control(gw, f"{BILLING}/{first['run']['id']}/cancel", "process:read process:admin")
    assert cancel.status_code == 202, cancel.text
    view = await _until(gw, first["run"]["id"], _done)
    assert _project(view, project)["state"] == "cancelled"
    assert view["progress"]["cancelled"] == 1, view["progress"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    again = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _until(gw, again["run"]["id"], _done)
    [child] = view["projects"]
    assert child["id"] == f"{_child_id(project)}-r2"
    assert child["state"] == "completed", child
    key = f"bill:{project}:{PERIOD}:r2"
    assert [i["id"] for i in await _erp_invoices_with_key(gw, key)] == [child["result"]["erp_invoice_id"]]
    assert [i["id"] for i in await _psa_invoices_with_key(gw, key)] == [child["result"]["psa_invoice_id"]]
    assert _invoiced_entries(gw, ids[:3]) == dict.fromkeys(ids[:3], True)


def _run(run_id: str, state: str, result: dict[str, Any] | None = None) -> Any:
    from contracts.models.process import Run, RunLinks

    now = dt.datetime.now(dt.UTC)
    return Run(
        id=run_id,
        workflow="billing_run",  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        subject="s",
        created_at=now,
        updated_at=now,
        links=RunLinks(self=f"{BILLING}/{run_id}"),
        result=result,
    )


def test_a_revision_waits_until_the_previous_one_is_final_and_undone() -> None:
    from process_apis.billing import billing_progress, is_undone

    done = _run("bill-1-2026-11", "completed", {"currency": "USD", "total": "10.10"})
    assert not is_undone(done, None)
    assert not is_undone(done, _run("void-bill-1-2026-11", "running"))  # its void is under way: attach
    assert not is_undone(done, _run("void-bill-1-2026-11", "exception"))
    assert is_undone(done, _run("void-bill-1-2026-11", "completed"))
    assert is_undone(_run("bill-1-2026-11", "cancelled"), None)
    assert not is_undone(_run("bill-1-2026-11", "compensating"), None)  # a cancel under way
    progress, waiting = billing_progress(
        [
            ("a", done, None),
            ("b", _run("b", "completed", {"currency": "USD", "total": "0.20"}), None),
            ("c", done, _run("void-c", "running")),
            ("d", _run("d", "running", {"awaiting": "finance_approval", "project_id": "4"}), None),
            ("e", None, None),
        ]
    )
    assert (progress.completed, progress.running, progress.awaiting_approval, progress.projects) == (
        2,
        2,
        1,
        5,
    )
    assert [(m.amount, m.currency) for m in progress.invoiced] == [(Decimal("10.30"), "USD")]
    assert [(w.run_id, w.reason, w.owner) for w in waiting] == [("d", "awaiting_approval", "finance")]


# --- milestones billed on completion --------------------------------------------------------------------


async def test_completed_milestones_are_billed_by_the_daily_milestone_schedule_and_not_again_by_the_month(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    from dbos import DBOS

    from process_apis.billing import scheduled_milestone_run_id

    gw = await make_gateway(_settings(make_settings, milestone_schedules={"DE01": "0 0 7 * * *"}))
    schedule = await DBOS.get_schedule_async("billing-milestones-DE01")
    assert schedule is not None
    assert schedule["schedule"] == "0 0 7 * * *"
    fixed = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    project = fixed["psa_project_id"]
    [milestone] = await Delivery(gw).complete_milestones(project, 1)
    # Fired twice (a redelivery): one milestone run for the day, one invoice.
    for _ in range(2):
        await asyncio.to_thread(DBOS.trigger_schedule, "billing-milestones-DE01")
    today = dt.datetime.now(dt.UTC).date()
    run_id = scheduled_milestone_run_id("DE01", today)
    deadline = time.monotonic() + 30
    while (await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))).status_code == 404:
        assert time.monotonic() < deadline, "the milestone schedule started no run"
        await asyncio.sleep(0.1)
    view = await _until(gw, run_id, _done)
    [child] = view["projects"]
    assert child["id"] == f"bill-{project}-{today.isoformat()}"
    assert child["state"] == "completed", child
    key = f"bill:{project}:{today:%Y-%m}:d{today.day:02d}"
    assert child["result"]["billing_key"] == key
    assert len(key) <= 35
    invoice = await _erp_invoice(gw, child["result"]["erp_invoice_id"])
    assert _traced(invoice) == Counter([f"milestone:{milestone}"])
    assert invoice["external_key"].casefold() == key  # Business Central upper-cases a Code field
    assert view["progress"]["completed"] == 1
    [psa] = await _psa_invoices_with_key(gw, key)
    assert psa["id"] == child["result"]["psa_invoice_id"]

    # The month's run finds the milestone invoiced in the PSA: nothing more to bill for it.
    month = await _start(gw, legal_entity="DE01", project_ids=[project])
    view = await _until(gw, month["run"]["id"], _done)
    monthly = _project(view, project)
    assert monthly["state"] == "completed", monthly
    assert "erp_invoice_id" not in monthly["result"], monthly["result"]
    assert not await _psa_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    assert not await _erp_invoices_with_key(gw, f"bill:{project}:{PERIOD}")
    assert [i["id"] for i in await _erp_invoices_with_key(gw, key)] == [invoice["id"]]
