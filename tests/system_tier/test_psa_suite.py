"""The PSA suite: what the system tier promises about any PSA, run against each PSA adapter and its sandbox.

Every test makes the records it reads through the system tier (``/system/v1/psa/...``), so no test knows
which vendor answers: that is the proof that the PSA behind the port can be swapped. The port cannot book
time, expenses or a milestone's completion (people do that in the PSA), so each vendor has a small
*booker* that does it through that vendor's own API, as a person's client would: the only vendor-specific
code, kept in the ``PSAS`` table below as the ERP suite keeps its ``ERPS``.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import httpx
import msgspec
import pytest

from apis.config import Settings
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, DEMO_CONTACT_ID

THROUGH = "2026-03-01"
ROLE = "Senior Consultant"  # a role every PSA's sandbox knows, time booked as it
_numbers = msgspec.json.Encoder(decimal_format="number")


class Booker(Protocol):
    """Books what people book in the PSA, through the vendor's own API."""

    async def time(
        self, project_id: str, *, day: str, hours: str, approved: bool, role: str | None = None
    ) -> str: ...

    async def expense(self, project_id: str, *, day: str, amount: str, approved: bool) -> str: ...

    async def complete_milestone(self, milestone_id: str, *, day: str) -> None: ...


@dataclass
class KantataBooker:
    """Kantata OX API v1 on its sandbox mount: a time entry or expense is POSTed, then approved as its
    timesheet's / expense report's approver would (``POST /__sandbox/.../approve``: Kantata approves
    through submissions, which the sandbox does not model); a milestone story is completed with ``PUT
    /stories/{id}.json`` ``state`` "completed" (developer.kantata.com, Stories)."""

    gw: Any

    def _client(self) -> httpx.AsyncClient:
        client: httpx.AsyncClient = self.gw.sandbox("kantata")
        client.headers["Authorization"] = "Bearer stratum-kantata-sandbox-token"
        return client

    async def _create(self, collection: str, singular: str, body: dict[str, Any]) -> str:
        async with self._client() as client:
            response = await client.post(f"/api/v1/{collection}.json", json={singular: body})
            assert response.status_code in (200, 201), response.text
            return str(response.json()["results"][0]["id"])

    async def _approve(self, collection: str, ids_field: str, record_id: str) -> None:
        async with self._client() as client:
            response = await client.post(f"/__sandbox/{collection}/approve", json={ids_field: [record_id]})
            assert response.status_code == 200, response.text

    async def _role_id(self, role: str) -> str:
        # GET /roles (developer.kantata.com, Roles): the account's roles by name; the entry names one by id.
        async with self._client() as client:
            response = await client.get("/api/v1/roles.json", params={"per_page": 200})
            assert response.status_code == 200, response.text
            roles = response.json()["roles"].values()
        return next(str(r["id"]) for r in roles if r["name"] == role)

    async def time(
        self, project_id: str, *, day: str, hours: str, approved: bool, role: str | None = None
    ) -> str:
        minutes = int(Decimal(hours) * 60)
        body: dict[str, Any] = {
            "workspace_id": project_id,
            "date_performed": day,
            "time_in_minutes": minutes,
            "billable": True,
        }
        if role is not None:
            # The role the time is booked as (mavenlink_gem specification: a time entry's role_id).
            body["role_id"] = await self._role_id(role)
        entry = await self._create("time_entries", "time_entry", body)
        if approved:
            await self._approve("time_entries", "time_entry_ids", entry)
        return entry

    async def expense(self, project_id: str, *, day: str, amount: str, approved: bool) -> str:
        body = {
            "workspace_id": project_id,
            "date": day,
            "category": "Hotel",
            "amount_in_cents": int(Decimal(amount) * 100),
            "billable": True,
        }
        expense = await self._create("expenses", "expense", body)
        if approved:
            await self._approve("expenses", "expense_ids", expense)
        return expense

    async def complete_milestone(self, milestone_id: str, *, day: str) -> None:
        async with self._client() as client:
            response = await client.put(
                f"/api/v1/stories/{milestone_id}.json", json={"story": {"state": "completed"}}
            )
            assert response.status_code == 200, response.text


@dataclass
class CertiniaBooker:
    """Certinia in the Salesforce org, through the org's REST API on the Salesforce sandbox mount: a
    timecard header (what a person submits and a manager approves) and its split (what carries billing),
    an expense, and a milestone's approval (``pse__Approved__c``, ``pse__Status__c`` Approved,
    ``pse__Actual_Date__c``), as Certinia's own screens write them."""

    gw: Any
    _bearer: str | None = None

    async def _rest(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        async with self.gw.sandbox("salesforce") as client:
            if self._bearer is None:
                basic = base64.b64encode(b"stratum-sandbox:stratum-sandbox-secret").decode()
                token = await client.post(
                    "/services/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {basic}"},
                )
                self._bearer = token.json()["access_token"]
            response: httpx.Response = await client.request(
                method,
                f"/services/data/v61.0/{path}",
                content=_numbers.encode(body),
                headers={"Authorization": f"Bearer {self._bearer}", "Content-Type": "application/json"},
            )
            return response

    async def _create(self, sobject: str, body: dict[str, Any]) -> str:
        response = await self._rest("POST", f"sobjects/{sobject}", body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def time(
        self, project_id: str, *, day: str, hours: str, approved: bool, role: str | None = None
    ) -> str:
        # A role is the resource's assignment to the project (pse__Assignment__c, its pse__Role__c), which
        # the timecard header books against (elastic/dbt-sources stg_salesforce__pse_timecard_header_c.sql,
        # pse_assignment_c).
        assignment = None
        if role is not None:
            assignment = await self._create(
                "pse__Assignment__c",
                {
                    "pse__Project__c": project_id,
                    "pse__Resource__c": DEMO_CONTACT_ID,
                    "pse__Role__c": role,
                    "pse__Bill_Rate__c": Decimal(150),
                    "pse__Start_Date__c": day,
                    "pse__Status__c": "Scheduled",
                },
            )
        header = await self._create(
            "pse__Timecard_Header__c",
            {
                "pse__Project__c": project_id,
                "pse__Resource__c": DEMO_CONTACT_ID,
                "pse__Assignment__c": assignment,
                "pse__Start_Date__c": day,
                "pse__Monday_Hours__c": Decimal(hours),
                "pse__Status__c": "Approved" if approved else "Submitted",
                "pse__Approved__c": approved,
                "pse__Billable__c": True,
                "pse__Bill_Rate__c": Decimal(150),
            },
        )
        return await self._create(
            "pse__Timecard__c",
            {
                "pse__Timecard_Header__c": header,
                "pse__Project__c": project_id,
                "pse__Resource__c": DEMO_CONTACT_ID,
                "pse__Assignment__c": assignment,
                "pse__Start_Date__c": day,
                "pse__End_Date__c": day,
                "pse__Total_Hours__c": Decimal(hours),
                "pse__Billable__c": True,
                "pse__Bill_Rate__c": Decimal(150),
                "pse__Total_Billable_Amount__c": Decimal(hours) * 150,
            },
        )

    async def expense(self, project_id: str, *, day: str, amount: str, approved: bool) -> str:
        return await self._create(
            "pse__Expense__c",
            {
                "pse__Project__c": project_id,
                "pse__Resource__c": DEMO_CONTACT_ID,
                "pse__Expense_Date__c": day,
                "pse__Type__c": "Hotel",
                "pse__Amount__c": Decimal(amount),
                "pse__Billable__c": True,
                "pse__Billable_Amount__c": Decimal(amount),
                "pse__Approved__c": approved,
                "pse__Status__c": "Approved" if approved else "Submitted",
            },
        )

    async def complete_milestone(self, milestone_id: str, *, day: str) -> None:
        response = await self._rest(
            "PATCH",
            f"sobjects/pse__Milestone__c/{milestone_id}",
            {"pse__Status__c": "Approved", "pse__Approved__c": True, "pse__Actual_Date__c": day},
        )
        assert response.status_code == 204, response.text


@dataclass
class RoutedBooker:
    """The booker of a PSA behind ``PsaByLegalEntity`` as a routed (not the default) PSA: a person books in
    that PSA with its own ids, which the system tier hands out with the PSA's code (``c:a0X...``)."""

    inner: Booker
    code: str

    def _own(self, record_id: str) -> str:
        code, _, own = record_id.partition(":")
        assert code == self.code, f"{record_id} is not an id of the routed PSA"
        return own

    async def time(
        self, project_id: str, *, day: str, hours: str, approved: bool, role: str | None = None
    ) -> str:
        booked = await self.inner.time(
            self._own(project_id), day=day, hours=hours, approved=approved, role=role
        )
        return f"{self.code}:{booked}"

    async def expense(self, project_id: str, *, day: str, amount: str, approved: bool) -> str:
        booked = await self.inner.expense(self._own(project_id), day=day, amount=amount, approved=approved)
        return f"{self.code}:{booked}"

    async def complete_milestone(self, milestone_id: str, *, day: str) -> None:
        await self.inner.complete_milestone(self._own(milestone_id), day=day)


# The legal entity every project of the suite is made for (activation takes a project's from its deal).
SUITE_ENTITY = "DE01"

# Each PSA adapter the system tier can be configured with, and its booker; a new one joins here and must
# pass as it is. "kantata+certinia" is a firm mid-migration (``STRATUM_PSA_BY_LEGAL_ENTITY``): Kantata is the
# default PSA and the suite's legal entity is delivered in Certinia, so every project, item and invoice of
# the suite goes through the router to the routed PSA, with its ids carrying Certinia's code.
PSAS: dict[str, tuple[dict[str, Any], Callable[[Any], Booker]]] = {
    "kantata": ({"psa_vendor": "kantata"}, KantataBooker),
    "certinia": ({"psa_vendor": "certinia"}, CertiniaBooker),
    "kantata+certinia": (
        {"psa_vendor": "kantata", "psa_by_legal_entity": {SUITE_ENTITY: "certinia"}},
        lambda gw: RoutedBooker(CertiniaBooker(gw), "c"),
    ),
}


@dataclass
class Psa:
    gw: Any
    book: Booker


@pytest.fixture(params=sorted(PSAS))
async def psa(
    request: Any, make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> Psa:
    settings, booker = PSAS[request.param]
    # Paging makes many vendor calls a second; the sandboxes' own request rates are not under test here.
    gw = await make_gateway(make_settings(**settings, sandbox_kantata_requests_per_second=10_000))
    return Psa(gw=gw, book=booker(gw))


def _read(gw: Any) -> dict[str, str]:
    headers: dict[str, str] = gw.auth("system:read")
    return headers


def _write(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _project_body(key: str, *, milestones: int = 2) -> dict[str, Any]:
    return {
        "external_key": key,
        "name": "Suite rollout",
        "customer_id": DEMO_ACCOUNT_ID,  # the CRM's account, as activation names the customer
        "currency": "USD",
        "billing_model": "milestone",
        "legal_entity": SUITE_ENTITY,
        "start_date": "2026-01-05",
        "end_date": "2026-06-30",
        "milestones": [
            {
                "name": f"Phase {n}",
                "due_date": f"2026-02-1{n}",
                "amount": {"amount": "5000.50", "currency": "USD"},
            }
            for n in range(1, milestones + 1)
        ],
    }


async def _project(psa: Psa, *, milestones: int = 2) -> dict[str, Any]:
    response = await psa.gw.client.post(
        "/system/v1/psa/projects",
        json=_project_body(_key("opp"), milestones=milestones),
        headers=_write(psa.gw),
    )
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


async def _all(psa: Psa, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await psa.gw.client.get(path, params=query, headers=_read(psa.gw))
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return items
    raise AssertionError("the listing did not end")


async def _billable(psa: Psa, project_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    return await _all(
        psa, f"/system/v1/psa/projects/{project_id}/billable-items", {"through": THROUGH, "limit": limit}
    )


async def _billing_project(psa: Psa) -> tuple[dict[str, Any], dict[str, str]]:
    """A project with approved time and expense before THROUGH, time after it, unapproved time and
    expense, and its first milestone completed."""
    project = await _project(psa)
    pid = project["id"]
    booked = {
        "time": await psa.book.time(pid, day="2026-02-02", hours="8", approved=True, role=ROLE),
        "late_time": await psa.book.time(pid, day="2026-03-02", hours="4", approved=True),
        "unapproved_time": await psa.book.time(pid, day="2026-02-03", hours="2", approved=False),
        "expense": await psa.book.expense(pid, day="2026-02-04", amount="310.25", approved=True),
        "unapproved_expense": await psa.book.expense(pid, day="2026-02-05", amount="20.00", approved=False),
        "milestone": project["milestones"][0]["id"],
    }
    await psa.book.complete_milestone(booked["milestone"], day="2026-02-11")
    return project, booked


def _invoice(project_id: str, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "external_key": key,
        "project_id": project_id,
        "currency": "USD",
        "invoice_date": "2026-03-01",
        "due_date": "2026-03-31",
        "time_entry_ids": [i["id"] for i in items if i["kind"] == "time"],
        "expense_ids": [i["id"] for i in items if i["kind"] == "expense"],
        "milestone_ids": [i["id"] for i in items if i["kind"] == "milestone"],
    }


# --- projects --------------------------------------------------------------------------------------------


async def test_a_project_is_created_once_per_business_key_with_its_milestones(psa: Psa) -> None:
    gw = psa.gw
    key = _key("opp")
    first = await gw.client.post("/system/v1/psa/projects", json=_project_body(key), headers=_write(gw))
    assert first.status_code == 201, first.text
    project = first.json()
    assert project["external_key"] == key
    assert [m["name"] for m in project["milestones"]] == ["Phase 1", "Phase 2"]
    assert project["milestones"][0]["amount"] == {"amount": "5000.50", "currency": "USD"}
    again = await gw.client.post("/system/v1/psa/projects", json=_project_body(key), headers=_write(gw))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == project["id"]
    assert len(again.json()["milestones"]) == 2
    read = await gw.client.get(f"/system/v1/psa/projects/{project['id']}", headers=_read(gw))
    assert read.status_code == 200
    assert read.json()["name"] == "Suite rollout"
    assert read.json()["external_key"] == key


async def test_projects_list_with_their_changes(psa: Psa) -> None:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    made = {(await _project(psa, milestones=0))["id"] for _ in range(3)}
    listed = await _all(psa, "/system/v1/psa/projects", {"modified_since": since, "limit": 2})
    ids = [p["id"] for p in listed]
    assert made <= set(ids)
    assert len(ids) == len(set(ids))


async def test_an_unknown_project_is_not_found(psa: Psa) -> None:
    missing = await psa.gw.client.get("/system/v1/psa/projects/a0P000000000000AAA", headers=_read(psa.gw))
    assert missing.status_code == 404


async def test_closing_a_project_twice_is_harmless(psa: Psa) -> None:
    gw = psa.gw
    project = await _project(psa, milestones=0)
    path = f"/system/v1/psa/projects/{project['id']}/close"
    first = await gw.client.post(path, headers=_write(gw))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "closed"
    second = await gw.client.post(path, headers=_write(gw))
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "closed"


# --- staffing --------------------------------------------------------------------------------------------


async def test_staffing_demand_is_raised_once_per_key_and_read_for_several_projects(psa: Psa) -> None:
    gw = psa.gw
    first, second = await _project(psa, milestones=0), await _project(psa, milestones=0)
    demand = {"external_key": "staff-1", "role": "Senior Consultant", "hours": "120"}
    made = await gw.client.post(
        f"/system/v1/psa/projects/{first['id']}/staffing-demands", json=demand, headers=_write(gw)
    )
    assert made.status_code == 201, made.text
    assert made.json()["role"] == "Senior Consultant"
    assert Decimal(made.json()["hours"]) == Decimal(120)
    again = await gw.client.post(
        f"/system/v1/psa/projects/{first['id']}/staffing-demands", json=demand, headers=_write(gw)
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == made.json()["id"]
    other = await gw.client.post(
        f"/system/v1/psa/projects/{second['id']}/staffing-demands", json=demand, headers=_write(gw)
    )
    assert other.status_code == 201, other.text
    listed = await gw.client.get(
        "/system/v1/psa/staffing-demands",
        params={"project_id": f"{first['id']},{second['id']}"},
        headers=_read(gw),
    )
    assert listed.status_code == 200, listed.text
    assert sorted((d["project_id"], d["id"]) for d in listed.json()) == sorted(
        [(first["id"], made.json()["id"]), (second["id"], other.json()["id"])]
    )
    one = await gw.client.get(f"/system/v1/psa/projects/{first['id']}/staffing-demands", headers=_read(gw))
    assert [d["id"] for d in one.json()] == [made.json()["id"]]


# --- time and expenses -----------------------------------------------------------------------------------


async def test_time_entries_and_expenses_list_by_project_approval_and_date(psa: Psa) -> None:
    project = await _project(psa, milestones=0)
    pid = project["id"]
    approved = await psa.book.time(pid, day="2026-02-02", hours="7.5", approved=True)
    pending = await psa.book.time(pid, day="2026-02-10", hours="3", approved=False)
    expense = await psa.book.expense(pid, day="2026-02-04", amount="310.25", approved=True)

    entries = await _all(psa, "/system/v1/psa/time-entries", {"project_id": pid, "limit": 1})
    assert {(e["id"], e["approved"]) for e in entries} == {(approved, True), (pending, False)}
    (entry,) = [e for e in entries if e["id"] == approved]
    assert Decimal(entry["hours"]) == Decimal("7.5")
    assert entry["date"] == "2026-02-02"
    only = await _all(psa, "/system/v1/psa/time-entries", {"project_id": pid, "approved": "true"})
    assert [e["id"] for e in only] == [approved]
    later = await _all(psa, "/system/v1/psa/time-entries", {"project_ids": pid, "date_from": "2026-02-05"})
    assert [e["id"] for e in later] == [pending]

    expenses = await _all(psa, "/system/v1/psa/expenses", {"project_id": pid})
    assert [(x["id"], x["amount"], x["approved"]) for x in expenses] == [
        (expense, {"amount": "310.25", "currency": "USD"}, True)
    ]


# --- billing ---------------------------------------------------------------------------------------------


async def test_billable_items_are_approved_unbilled_work_through_the_date(psa: Psa) -> None:
    project, booked = await _billing_project(psa)
    items = await _billable(psa, project["id"])
    assert [(i["kind"], i["id"]) for i in items] == [
        ("time", booked["time"]),
        ("expense", booked["expense"]),
        ("milestone", booked["milestone"]),
    ]
    assert all(i["date"] <= THROUGH and i["invoiced"] is False for i in items)
    assert Decimal(items[0]["quantity"]) == Decimal(8)
    # The role the time was booked as, by name (the deal's rate card prices time by role name).
    assert items[0]["role"] == ROLE
    assert items[1]["amount"] == {"amount": "310.25", "currency": "USD"}
    assert items[2]["amount"] == {"amount": "5000.50", "currency": "USD"}
    paged = await _billable(psa, project["id"], limit=1)
    assert [(i["kind"], i["id"]) for i in paged] == [(i["kind"], i["id"]) for i in items]


async def test_billable_items_of_several_projects_are_one_listing(psa: Psa) -> None:
    first, booked_first = await _billing_project(psa)
    second, booked_second = await _billing_project(psa)
    together = await _all(
        psa,
        "/system/v1/psa/billable-items",
        {"project_id": f"{first['id']},{second['id']}", "through": THROUGH, "limit": 2},
    )
    expected = {
        booked[k] for booked in (booked_first, booked_second) for k in ("time", "expense", "milestone")
    }
    assert {i["id"] for i in together} == expected
    assert {i["project_id"] for i in together} == {first["id"], second["id"]}
    assert len(together) == len(expected)


async def test_an_invoice_is_recorded_once_per_key_against_exactly_its_items(psa: Psa) -> None:
    gw = psa.gw
    project, booked = await _billing_project(psa)
    items = await _billable(psa, project["id"])
    key = _key("bill")
    first = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], key, items), headers=_write(gw)
    )
    assert first.status_code == 201, first.text
    invoice = first.json()
    assert invoice["status"] == "draft"
    assert invoice["external_key"] == key
    assert invoice["time_entry_ids"] == [booked["time"]]
    assert invoice["expense_ids"] == [booked["expense"]]
    assert invoice["milestone_ids"] == [booked["milestone"]]
    again = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], key, items), headers=_write(gw)
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == invoice["id"]
    # Its items are billed now; what was never billable stays out.
    assert await _billable(psa, project["id"]) == []
    found = await gw.client.get("/system/v1/psa/invoices", params={"external_key": key}, headers=_read(gw))
    assert [i["id"] for i in found.json()] == [invoice["id"]]
    listed = await gw.client.get(f"/system/v1/psa/projects/{project['id']}/invoices", headers=_read(gw))
    assert [i["id"] for i in listed.json()] == [invoice["id"]]


async def test_an_item_on_another_invoice_is_refused_by_name_and_nothing_is_recorded(psa: Psa) -> None:
    gw = psa.gw
    project, _booked = await _billing_project(psa)
    items = await _billable(psa, project["id"])
    first = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], _key("bill"), items[:1]), headers=_write(gw)
    )
    assert first.status_code == 201, first.text
    other_key = _key("bill")
    refused = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], other_key, items[:2]), headers=_write(gw)
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "vendor-rejected"
    assert items[0]["id"] in refused.json()["detail"]
    found = await gw.client.get(
        "/system/v1/psa/invoices", params={"external_key": other_key}, headers=_read(gw)
    )
    assert found.json() == []
    assert [i["id"] for i in await _billable(psa, project["id"])] == [i["id"] for i in items[1:]]


async def test_finalize_is_idempotent_and_payments_are_told_once_each(psa: Psa) -> None:
    gw = psa.gw
    project, _ = await _billing_project(psa)
    items = await _billable(psa, project["id"])
    created = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], _key("bill"), items), headers=_write(gw)
    )
    invoice = created.json()
    path = f"/system/v1/psa/invoices/{invoice['id']}"
    body = {"erp_invoice_id": "INV-4711", "erp_invoice_number": "SO-4711"}
    issued = await gw.client.post(f"{path}/finalize", json=body, headers=_write(gw))
    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "open"
    assert issued.json()["erp_invoice_id"] == "INV-4711"
    again = await gw.client.post(f"{path}/finalize", json=body, headers=_write(gw))
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["status"]) == (invoice["id"], "open")
    other = await gw.client.post(f"{path}/finalize", json={"erp_invoice_id": "INV-9"}, headers=_write(gw))
    assert other.status_code == 422, other.text

    total = issued.json()["total"]["amount"]
    payment = {
        "erp_payment_id": "PAY-1",
        "date": "2026-03-15",
        "amount": total,
        "currency": "USD",
        "balance": "0",
    }
    paid = await gw.client.post(f"{path}/payments", json=payment, headers=_write(gw))
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    twice = await gw.client.post(f"{path}/payments", json=payment, headers=_write(gw))
    assert twice.status_code == 200, twice.text
    assert twice.json()["status"] == "paid"
    assert twice.json()["total"] == paid.json()["total"]


async def test_a_cancelled_invoice_makes_its_items_billable_again(psa: Psa) -> None:
    gw = psa.gw
    project, _ = await _billing_project(psa)
    items = await _billable(psa, project["id"])
    created = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], _key("bill"), items), headers=_write(gw)
    )
    invoice = created.json()
    cancelled = await gw.client.post(f"/system/v1/psa/invoices/{invoice['id']}/cancel", headers=_write(gw))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    twice = await gw.client.post(f"/system/v1/psa/invoices/{invoice['id']}/cancel", headers=_write(gw))
    assert twice.status_code == 200, twice.text
    assert twice.json()["status"] == "cancelled"
    again = await _billable(psa, project["id"])
    assert [(i["kind"], i["id"]) for i in again] == [(i["kind"], i["id"]) for i in items]
    rebilled = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(project["id"], _key("bill"), again), headers=_write(gw)
    )
    assert rebilled.status_code == 201, rebilled.text
    assert rebilled.json()["id"] != invoice["id"]


# --- a PSA per legal entity ------------------------------------------------------------------------------


async def test_a_routed_certinia_projects_billing_key_fits_business_central(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    """A project of a legal entity delivered in Certinia while Kantata is the default carries Certinia's code
    (``c:`` + its 18-character id): its month's billing key (``process_apis.billing_pricing.billing_key``)
    stays within the 35 characters of Business Central's Code[35] ``externalDocumentNumber`` ("salesInvoice
    resource type", API v2.0), and the id reads the project back from Certinia."""
    from process_apis.billing_pricing import billing_key
    from system_apis.erp.business_central_mapping import EXTERNAL_DOCUMENT_NUMBER_LENGTH

    settings, booker = PSAS["kantata+certinia"]
    psa = Psa(gw=(gw := await make_gateway(make_settings(**settings))), book=booker(gw))
    project = await _project(psa, milestones=0)
    code, _, own = project["id"].partition(":")
    assert (code, len(own)) == ("c", 18)
    assert len(billing_key(project["id"], "2026-11")) <= EXTERNAL_DOCUMENT_NUMBER_LENGTH
    read = await gw.client.get(f"/system/v1/psa/projects/{project['id']}", headers=_read(gw))
    assert read.status_code == 200
    assert read.json()["id"] == project["id"]
    unknown = await gw.client.get(f"/system/v1/psa/projects/x:{own}", headers=_read(gw))
    assert unknown.status_code == 404
