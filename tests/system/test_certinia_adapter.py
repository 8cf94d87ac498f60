"""The Certinia PSA adapter against the Salesforce sandbox with the package's objects: projects and
milestones upserted by ``Stratum_Key__c``, staffing demand, time (timecard splits) and expenses, billable
items, invoices as billing events, payments. Time, expenses and approved milestones are booked straight
through the org's REST API, as people booking in Certinia would."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from apis.config import CertiniaSettings, SalesforceSettings, load_settings
from contracts.models import (
    BillableItemKind,
    BillingModel,
    MilestoneInput,
    ProjectCreate,
    ProjectStatus,
    PsaInvoiceCreate,
    PsaInvoiceStatus,
    PsaPaymentRecord,
    StaffingDemandCreate,
)
from contracts.models.common import ProjectMoney
from sandboxes.salesforce import SalesforceSandboxSettings, create_salesforce_sandbox
from sandboxes.salesforce.data import (
    CLOSED_LOST_OPPORTUNITY_ID,
    DEMO_ACCOUNT_ID,
    DEMO_CONTACT_ID,
    PSE_PROJECT_IDS,
    READY_OPPORTUNITY_ID,
)
from system_apis.errors import NotFound, VendorRejected
from system_apis.psa.certinia import CertiniaPsa
from system_apis.psa.port import PeriodFilter, PsaPort
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

BASE_URL = "http://salesforce.test"
DATA = "/services/data/v61.0"
THROUGH = dt.date(2026, 3, 1)
_numbers = msgspec.json.Encoder(decimal_format="number")


class Org:
    """The Salesforce sandbox, an adapter factory, and a booker that books time, expenses and milestone
    approvals through the org's REST API."""

    def __init__(self) -> None:
        self.app = create_salesforce_sandbox(SalesforceSandboxSettings())
        self.transport = httpx.ASGITransport(app=self.app)
        self.admin = httpx.AsyncClient(transport=self.transport, base_url=BASE_URL)
        self.adapters: list[CertiniaPsa] = []
        self._bearer: str | None = None

    async def no_sleep(self, seconds: float) -> None:
        return None

    def psa(self, *, retry: RetryPolicy | None = None, **settings: Any) -> CertiniaPsa:
        org = CertiniaSettings(**settings).org_settings(SalesforceSettings(base_url=BASE_URL))
        psa = CertiniaPsa(
            org,
            transport=self.transport,
            retry=retry or RetryPolicy(max_attempts=3),
            breaker=BreakerPolicy(failure_threshold=0),
            sleep=self.no_sleep,
        )
        self.adapters.append(psa)
        return psa

    async def fault(self, **rule: Any) -> None:
        rule.setdefault("path_pattern", "^/services/data/")
        response = await self.admin.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    async def data_requests(self) -> list[dict[str, Any]]:
        response = await self.admin.get("/__sandbox/stats")
        return [r for r in response.json()["requests"] if r["path"].startswith("/services/data/")]

    def records(self, sobject: str) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = self.app.state.sandbox.records.get(sobject, {})
        return records

    async def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        if self._bearer is None:
            basic = base64.b64encode(b"stratum-sandbox:stratum-sandbox-secret").decode()
            token = await self.admin.post(
                "/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
            self._bearer = token.json()["access_token"]
        return await self.admin.request(
            method,
            f"{DATA}/{path}",
            content=None if body is None else _numbers.encode(body),
            headers={"Authorization": f"Bearer {self._bearer}", "Content-Type": "application/json"},
        )

    async def book_time(
        self, project_id: str, *, hours: str = "8", day: str = "2026-02-02", approved: bool = True
    ) -> str:
        header = await self.rest(
            "POST",
            "sobjects/pse__Timecard_Header__c",
            {
                "pse__Project__c": project_id,
                "pse__Resource__c": DEMO_CONTACT_ID,
                "pse__Start_Date__c": day,
                "pse__Monday_Hours__c": float(hours),
                "pse__Status__c": "Approved" if approved else "Submitted",
                "pse__Approved__c": approved,
                "pse__Billable__c": True,
                "pse__Bill_Rate__c": 150,
            },
        )
        assert header.status_code == 201, header.text
        split = await self.rest(
            "POST",
            "sobjects/pse__Timecard__c",
            {
                "pse__Timecard_Header__c": header.json()["id"],
                "pse__Project__c": project_id,
                "pse__Resource__c": DEMO_CONTACT_ID,
                "pse__Start_Date__c": day,
                "pse__End_Date__c": day,
                "pse__Total_Hours__c": float(hours),
                "pse__Billable__c": True,
                "pse__Bill_Rate__c": 150,
                "pse__Total_Billable_Amount__c": float(hours) * 150,
            },
        )
        assert split.status_code == 201, split.text
        return str(split.json()["id"])

    async def book_expense(
        self, project_id: str, *, amount: str = "310.25", day: str = "2026-02-03", approved: bool = True
    ) -> str:
        expense = await self.rest(
            "POST",
            "sobjects/pse__Expense__c",
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
        assert expense.status_code == 201, expense.text
        return str(expense.json()["id"])

    async def approve_milestone(self, milestone_id: str, day: str = "2026-02-20") -> None:
        response = await self.rest(
            "PATCH",
            f"sobjects/pse__Milestone__c/{milestone_id}",
            {"pse__Status__c": "Approved", "pse__Approved__c": True, "pse__Actual_Date__c": day},
        )
        assert response.status_code == 204, response.text

    async def close(self) -> None:
        for psa in self.adapters:
            await psa.close()
        await self.admin.aclose()


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    box = Org()
    yield box
    await box.close()


@pytest.fixture
def psa(org: Org) -> CertiniaPsa:
    return org.psa()


def _command(key: str | None = None, *, milestones: int = 2) -> ProjectCreate:
    return ProjectCreate(
        external_key=key or f"opp-{uuid.uuid4().hex[:10]}",
        name="Northwind rollout",
        customer_id=DEMO_ACCOUNT_ID,
        currency="USD",
        billing_model=BillingModel.MILESTONE,
        start_date=dt.date(2026, 1, 5),
        end_date=dt.date(2026, 6, 30),
        milestones=[
            MilestoneInput(
                name=f"Phase {n}",
                due_date=dt.date(2026, 2, n),
                amount=ProjectMoney(amount=Decimal("5000.50"), currency="USD"),
            )
            for n in range(1, milestones + 1)
        ],
    )


def _with_key(org: Org, sobject: str, key: str) -> list[dict[str, Any]]:
    return [
        r for r in org.records(sobject).values() if (r.get("Stratum_Key__c") or "").lower() == key.lower()
    ]


async def test_the_adapter_is_a_psa_port(psa: CertiniaPsa) -> None:
    assert isinstance(psa, PsaPort)
    assert psa.vendor == "certinia"


async def test_a_project_is_upserted_once_per_key_with_its_milestones(org: Org, psa: CertiniaPsa) -> None:
    command = _command()
    project, created = await psa.create_project(command)
    assert created
    assert project.external_key == command.external_key
    assert project.customer_id == DEMO_ACCOUNT_ID
    assert project.status is ProjectStatus.ACTIVE
    assert [m.name for m in project.milestones] == ["Phase 1", "Phase 2"]
    assert project.milestones[0].amount is not None
    assert project.milestones[0].amount.amount == Decimal("5000.50")
    again, created_again = await org.psa().create_project(command)
    assert (again.id, created_again) == (project.id, False)
    assert len(_with_key(org, "pse__Proj__c", command.external_key)) == 1
    milestones = [m for m in org.records("pse__Milestone__c").values() if m["pse__Project__c"] == project.id]
    assert len(milestones) == 2
    assert await psa.find_project(command.external_key) == again
    assert await psa.find_project("opp-nobody") is None


async def test_a_lost_answer_to_the_project_upsert_makes_one_record(org: Org) -> None:
    # Salesforce's external-id upsert: the retry of a PATCH whose answer was lost updates the record the
    # first attempt made (REST API Developer Guide, "Insert or Update (Upsert) a Record Using an
    # External ID").
    psa = org.psa(timeout_seconds=0.3)
    assert await psa.find_project("opp-warmup") is None  # the token first, so only the upsert is lost
    command = _command(milestones=0)
    await org.fault(
        kind="lost", method="PATCH", path_pattern="/pse__Proj__c/Stratum_Key__c/", latency_ms=1500, times=1
    )
    project, _created = await psa.create_project(command)
    assert len(_with_key(org, "pse__Proj__c", command.external_key)) == 1
    upserts = [r for r in await org.data_requests() if "/pse__Proj__c/Stratum_Key__c/" in r["path"]]
    assert len(upserts) == 2
    assert (await psa.get_project(project.id)).external_key == command.external_key


async def test_closing_twice_is_harmless(psa: CertiniaPsa, org: Org) -> None:
    project, _ = await psa.create_project(_command(milestones=0))
    closed = await psa.close_project(project.id)
    assert closed.status is ProjectStatus.CLOSED
    record = org.records("pse__Proj__c")[project.id]
    assert record["pse__Is_Active__c"] is False
    assert record["pse__Stage__c"] == "Canceled"
    assert record["pse__Closed_for_Time_Entry__c"]
    assert record["pse__Closed_for_Expense_Entry__c"]
    assert (await psa.close_project(project.id)).status is ProjectStatus.CLOSED
    with pytest.raises(NotFound):
        await psa.close_project("a0P000000000000AAA")


async def test_staffing_demand_once_per_key_and_of_several_projects(psa: CertiniaPsa, org: Org) -> None:
    first, _ = await psa.create_project(_command(milestones=0))
    second, _ = await psa.create_project(_command(milestones=0))
    demand = StaffingDemandCreate(external_key="staff:1", role="Senior Consultant", hours=Decimal("120.5"))
    made, created = await psa.create_staffing_demand(first.id, demand)
    assert created
    assert made.role == "Senior Consultant"
    assert made.hours == Decimal("120.5")
    assert made.external_key == "staff:1"
    again, created_again = await psa.create_staffing_demand(first.id, demand)
    assert (again.id, created_again) == (made.id, False)
    other, _ = await psa.create_staffing_demand(second.id, demand)
    assert other.id != made.id
    listed = await psa.list_staffing_demands_of([first.id, second.id, "a0P000000000000AAA", "not-an-id"])
    assert sorted((d.project_id, d.id) for d in listed) == sorted(
        [(first.id, made.id), (second.id, other.id)]
    )
    assert [d.id for d in await psa.list_staffing_demands(first.id)] == [made.id]


async def test_a_long_staffing_key_is_kept_whole(psa: CertiniaPsa) -> None:
    project, _ = await psa.create_project(_command(milestones=0))
    key = "k" * 80
    made, _ = await psa.create_staffing_demand(
        project.id, StaffingDemandCreate(external_key=key, role="Architect", hours=Decimal(8))
    )
    assert made.external_key == key
    assert (await psa.create_staffing_demand(
        project.id, StaffingDemandCreate(external_key=key, role="Architect", hours=Decimal(8))
    ))[0].id == made.id  # fmt: skip


async def test_time_and_expenses_list_with_their_approval(psa: CertiniaPsa, org: Org) -> None:
    project, _ = await psa.create_project(_command(milestones=0))
    approved = await org.book_time(project.id, hours="7.5")
    pending = await org.book_time(project.id, approved=False, day="2026-02-09")
    expense = await org.book_expense(project.id)
    entries = (await psa.list_time_entries(PeriodFilter(project_id=project.id), limit=50)).items
    assert {(e.id, e.approved) for e in entries} == {(approved, True), (pending, False)}
    (entry,) = [e for e in entries if e.id == approved]
    assert entry.hours == Decimal("7.5")
    assert entry.rate is not None
    assert entry.rate.amount == Decimal("150.00")
    only_approved = await psa.list_time_entries(PeriodFilter(project_id=project.id, approved=True), limit=50)
    assert [e.id for e in only_approved.items] == [approved]
    dated = await psa.list_time_entries(
        PeriodFilter(project_id=project.id, date_from=dt.date(2026, 2, 5)), limit=50
    )
    assert [e.id for e in dated.items] == [pending]
    paged = await psa.list_time_entries(PeriodFilter(project_id=project.id), limit=1)
    assert len(paged.items) == 1
    assert paged.next_cursor is not None
    rest = await psa.list_time_entries(PeriodFilter(project_id=project.id), limit=1, cursor=paged.next_cursor)
    assert {paged.items[0].id, rest.items[0].id} == {approved, pending}
    expenses = (await psa.list_expenses(PeriodFilter(project_ids=(project.id,)), limit=50)).items
    assert [(x.id, x.amount.amount, x.category) for x in expenses] == [(expense, Decimal("310.25"), "Hotel")]


async def test_time_is_billed_as_its_assignments_role_else_its_resources(psa: CertiniaPsa, org: Org) -> None:
    # Certinia bills a timecard as the role of the assignment (pse__Assignment__c) its header books against;
    # a timecard without one (orgs may allow it: Contact.pse__Allow_Timecards_Without_Assignment__c) as its
    # resource's own Contact.pse__Resource_Role__c. Names: elastic/dbt-sources stg_salesforce__pse_*.
    northwind = PSE_PROJECT_IDS[0]
    seeded = [i for i in await _billable(psa, northwind) if i.kind is BillableItemKind.TIME]
    assert {i.role for i in seeded} == {"Engagement Manager", "Business Analyst"}
    booked_before = await org.book_time(northwind)
    roled = await org.rest(
        "PATCH", f"sobjects/Contact/{DEMO_CONTACT_ID}", {"pse__Resource_Role__c": "Consultant"}
    )
    assert roled.status_code == 204, roled.text
    by_resource = await org.book_time(northwind, day="2026-02-09")
    entries = (await psa.list_time_entries(PeriodFilter(project_id=northwind, approved=True), limit=50)).items
    roles = {e.id: e.role for e in entries}
    # The resource's role is read with the time, so both bookings now bill as it.
    assert (roles[booked_before], roles[by_resource]) == ("Consultant", "Consultant")
    assert {roles[i.id] for i in seeded} == {"Engagement Manager", "Business Analyst"}


async def _billable(psa: CertiniaPsa, project_id: str, *, limit: int = 200) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = await psa.list_billable_items(project_id, through=THROUGH, limit=limit, cursor=cursor)
        items += page.items
        if (cursor := page.next_cursor) is None:
            return items


async def _billing_project(org: Org, psa: CertiniaPsa) -> tuple[Any, dict[str, str]]:
    project, _ = await psa.create_project(_command())
    booked = {
        "time": await org.book_time(project.id),
        "late_time": await org.book_time(project.id, day="2026-03-02"),
        "unapproved_time": await org.book_time(project.id, approved=False),
        "expense": await org.book_expense(project.id),
        "unapproved_expense": await org.book_expense(project.id, approved=False),
        "milestone": project.milestones[0].id,
    }
    await org.approve_milestone(project.milestones[0].id)
    return project, booked


async def test_billable_items_are_approved_unbilled_and_through_the_date(psa: CertiniaPsa, org: Org) -> None:
    project, booked = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    assert [(i.kind.value, i.id) for i in items] == [
        ("time", booked["time"]),
        ("expense", booked["expense"]),
        ("milestone", booked["milestone"]),
    ]
    assert items[1].amount is not None
    assert items[1].amount.amount == Decimal("310.25")
    assert items[2].amount is not None
    assert items[2].amount.amount == Decimal("5000.50")
    assert [(i.kind, i.id) for i in await _billable(psa, project.id, limit=1)] == [
        (i.kind, i.id) for i in items
    ]
    other, other_booked = await _billing_project(org, psa)
    projects = [project.id, other.id, "a0P000000000000AAA"]  # one Certinia does not have: no items
    both = await psa.list_billable_items_of(projects, through=THROUGH, limit=200)
    ids = set()
    cursor: str | None = None
    page = both
    while True:
        ids |= {i.id for i in page.items}
        if (cursor := page.next_cursor) is None:
            break
        page = await psa.list_billable_items_of(projects, through=THROUGH, limit=200, cursor=cursor)
    assert ids == {booked["time"], booked["expense"], booked["milestone"], other_booked["time"],
                   other_booked["expense"], other_booked["milestone"]}  # fmt: skip
    with pytest.raises(NotFound):
        await psa.list_billable_items("a0P000000000000AAA", through=THROUGH, limit=10)


def _invoice(project_id: str, key: str, items: list[Any]) -> PsaInvoiceCreate:
    return PsaInvoiceCreate(
        external_key=key,
        project_id=project_id,
        currency="USD",
        invoice_date=dt.date(2026, 3, 1),
        due_date=dt.date(2026, 3, 31),
        time_entry_ids=[i.id for i in items if i.kind.value == "time"],
        expense_ids=[i.id for i in items if i.kind.value == "expense"],
        milestone_ids=[i.id for i in items if i.kind.value == "milestone"],
    )


async def test_an_invoice_is_a_billing_event_recorded_once_against_exactly_its_items(
    psa: CertiniaPsa, org: Org
) -> None:
    project, booked = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    key = f"bill-{uuid.uuid4().hex[:8]}"
    invoice, created = await psa.create_invoice(_invoice(project.id, key, items))
    assert created
    assert invoice.status is PsaInvoiceStatus.DRAFT
    assert invoice.external_key == key
    assert invoice.time_entry_ids == [booked["time"]]
    assert invoice.expense_ids == [booked["expense"]]
    assert invoice.milestone_ids == [booked["milestone"]]
    assert invoice.total.amount == Decimal("1200.00") + Decimal("310.25") + Decimal("5000.50")
    assert await _billable(psa, project.id) == []
    split = org.records("pse__Timecard__c")[booked["time"]]
    assert split["pse__Billing_Event_Item__c"] is not None
    again, created_again = await psa.create_invoice(_invoice(project.id, key, items))
    assert (again.id, created_again) == (invoice.id, False)
    assert len(_with_key(org, "pse__Billing_Event__c", key)) == 1
    assert len([i for i in org.records("pse__Billing_Event_Item__c").values()
                if i["pse__Billing_Event__c"] == invoice.id]) == 3  # fmt: skip
    # An item already on a live invoice is refused by name, and nothing is recorded.
    with pytest.raises(VendorRejected, match=booked["expense"]):
        await psa.create_invoice(_invoice(project.id, "bill-other", [items[1]]))
    assert _with_key(org, "pse__Billing_Event__c", "bill-other") == []
    assert [i.id for i in await psa.list_invoices(project.id)] == [invoice.id]
    assert await psa.find_invoice(key) == await psa.get_invoice(invoice.id)


async def test_finalize_is_idempotent_cancel_frees_the_items_and_payments_count_once(
    psa: CertiniaPsa, org: Org
) -> None:
    project, _ = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    invoice, _ = await psa.create_invoice(_invoice(project.id, f"bill-{uuid.uuid4().hex[:8]}", items))
    issued = await psa.finalize_invoice(invoice.id, erp_invoice_id="INV-77", erp_invoice_number="SO-77")
    assert issued.status is PsaInvoiceStatus.OPEN
    assert (issued.erp_invoice_id, issued.erp_invoice_number) == ("INV-77", "SO-77")
    event = org.records("pse__Billing_Event__c")[invoice.id]
    assert event["pse__Is_Released__c"]
    assert event["pse__Invoiced__c"]
    assert event["pse__Invoice_Number__c"] == "SO-77"
    assert (
        await psa.finalize_invoice(invoice.id, erp_invoice_id="INV-77", erp_invoice_number="SO-77") == issued
    )
    with pytest.raises(VendorRejected):
        await psa.finalize_invoice(invoice.id, erp_invoice_id="INV-99", erp_invoice_number=None)

    half = PsaPaymentRecord(
        erp_payment_id="PAY-1", date=dt.date(2026, 3, 10), amount=Decimal("1000.00"), currency="USD",
        balance=issued.total.amount - Decimal("1000.00"),
    )  # fmt: skip
    partly = await psa.record_payment(invoice.id, half)
    assert partly.status is PsaInvoiceStatus.OPEN
    assert (await psa.record_payment(invoice.id, half)).status is PsaInvoiceStatus.OPEN
    assert Decimal(
        str(org.records("pse__Billing_Event__c")[invoice.id]["Stratum_Paid_Amount__c"])
    ) == Decimal("1000.00")
    rest = PsaPaymentRecord(
        erp_payment_id="PAY-2", date=dt.date(2026, 3, 11), amount=issued.total.amount - Decimal("1000.00"),
        currency="USD", balance=Decimal(0),
    )  # fmt: skip
    assert (await psa.record_payment(invoice.id, rest)).status is PsaInvoiceStatus.PAID
    assert (await psa.record_payment(invoice.id, rest)).status is PsaInvoiceStatus.PAID
    assert org.records("pse__Billing_Event__c")[invoice.id]["Stratum_Payment_Ids__c"].split("\n") == [
        "PAY-1",
        "PAY-2",
    ]
    with pytest.raises(VendorRejected):
        await psa.cancel_invoice(invoice.id)


async def test_cancel_makes_the_items_billable_again(psa: CertiniaPsa, org: Org) -> None:
    project, _ = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    invoice, _ = await psa.create_invoice(_invoice(project.id, f"bill-{uuid.uuid4().hex[:8]}", items))
    cancelled = await psa.cancel_invoice(invoice.id)
    assert cancelled.status is PsaInvoiceStatus.CANCELLED
    assert (await psa.cancel_invoice(invoice.id)).status is PsaInvoiceStatus.CANCELLED
    again = await _billable(psa, project.id)
    assert [i.id for i in again] == [i.id for i in items]
    second, created = await psa.create_invoice(_invoice(project.id, f"bill-{uuid.uuid4().hex[:8]}", again))
    assert created
    assert second.id != invoice.id
    with pytest.raises(VendorRejected):
        await psa.finalize_invoice(invoice.id, erp_invoice_id="INV-1", erp_invoice_number=None)


async def test_an_invoice_of_many_items_is_written_in_few_calls(psa: CertiniaPsa, org: Org) -> None:
    project, _ = await psa.create_project(_command(milestones=0))
    for week in range(15):
        await org.book_time(project.id, day=(dt.date(2026, 1, 5) + dt.timedelta(days=7 * week)).isoformat())
    items = await _billable(psa, project.id)
    assert len(items) == 8  # the weeks through 1 March
    before = len(await org.data_requests())
    invoice, _ = await psa.create_invoice(_invoice(project.id, f"bill-{uuid.uuid4().hex[:8]}", items))
    assert len(invoice.time_entry_ids) == 8
    composites = [r for r in (await org.data_requests())[before:] if r["path"].endswith("/composite")]
    assert len(composites) == 1  # 8 items and their 8 links, all or none


async def test_the_deals_project_certinia_already_has_is_adopted_not_duplicated(
    org: Org, psa: CertiniaPsa
) -> None:
    # The seed's project for the ready T&M deal was made by Certinia's own opportunity-to-project
    # automation: it names the opportunity (pse__Opportunity__c) and has no Stratum key.
    seeded = PSE_PROJECT_IDS[0]
    command = _command(READY_OPPORTUNITY_ID, milestones=0)
    project, created = await psa.create_project(command)
    assert (project.id, created) == (seeded, False)
    assert project.external_key == READY_OPPORTUNITY_ID
    again, created_again = await psa.create_project(command)
    assert (again.id, created_again) == (seeded, False)
    deal_projects = [
        p for p in org.records("pse__Proj__c").values() if p["pse__Opportunity__c"] == READY_OPPORTUNITY_ID
    ]
    assert len(deal_projects) == 1


async def test_a_new_deal_project_links_the_account_and_the_opportunity(org: Org, psa: CertiniaPsa) -> None:
    project, created = await psa.create_project(_command(CLOSED_LOST_OPPORTUNITY_ID, milestones=0))
    assert created
    record = org.records("pse__Proj__c")[project.id]
    assert record["pse__Account__c"] == DEMO_ACCOUNT_ID
    assert record["pse__Opportunity__c"] == CLOSED_LOST_OPPORTUNITY_ID


async def test_in_another_org_no_crm_record_is_linked(org: Org) -> None:
    psa = org.psa()
    psa._link_crm_records = False  # as the bootstrap builds it for an org of its own (base_url set)
    project, _ = await psa.create_project(_command(CLOSED_LOST_OPPORTUNITY_ID, milestones=0))
    record = org.records("pse__Proj__c")[project.id]
    assert record.get("pse__Account__c") is None
    assert record.get("pse__Opportunity__c") is None


async def test_a_lost_answer_to_an_invoices_items_is_retried_into_one_item_each(org: Org) -> None:
    psa = org.psa(timeout_seconds=0.3)
    project, _ = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    # The composite call (items and their sources' links) is all upserts by key and PATCHes of absolute
    # values, so the retry after its lost answer writes nothing twice.
    await org.fault(kind="lost", method="POST", path_pattern="/composite$", latency_ms=1500, times=1)
    invoice, created = await psa.create_invoice(_invoice(project.id, f"bill-{uuid.uuid4().hex[:8]}", items))
    assert created
    event_items = [
        i
        for i in org.records("pse__Billing_Event_Item__c").values()
        if i["pse__Billing_Event__c"] == invoice.id
    ]
    assert len(event_items) == 3
    assert invoice.total.amount == Decimal("6510.75")


async def test_two_invoices_racing_for_one_item_never_both_hold_it(org: Org, psa: CertiniaPsa) -> None:
    project, booked = await _billing_project(org, psa)
    items = await _billable(psa, project.id)
    expense = [i for i in items if i.id == booked["expense"]]
    commands = [_invoice(project.id, f"bill-race-{n}-{uuid.uuid4().hex[:6]}", expense) for n in range(2)]
    outcomes = await asyncio.gather(
        *(org.psa().create_invoice(command) for command in commands), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, VendorRejected) for o in lost), lost
    assert len(won) <= 1
    live = [
        e
        for e in org.records("pse__Billing_Event__c").values()
        if e["pse__Project__c"] == project.id and e["Stratum_Status__c"] != "Cancelled"
    ]
    assert len(live) == len(won)
    linked = org.records("pse__Expense__c")[booked["expense"]]["pse__Billing_Event_Item__c"]
    if won:
        (invoice, _created) = won[0]
        assert invoice.expense_ids == [booked["expense"]]
        owner = org.records("pse__Billing_Event_Item__c")[linked]["pse__Billing_Event__c"]
        assert owner == invoice.id
    else:
        assert linked is None  # both stood down: the expense is billable again


async def test_billable_items_of_every_project_or_of_one_kind(org: Org, psa: CertiniaPsa) -> None:
    project, booked = await _billing_project(org, psa)
    seen: list[Any] = []
    cursor: str | None = None
    while True:
        page = await psa.list_billable_items_of(None, through=THROUGH, limit=5, cursor=cursor)
        seen += page.items
        if (cursor := page.next_cursor) is None:
            break
    mine = {i.id for i in seen if i.project_id == project.id}
    assert mine == {booked["time"], booked["expense"], booked["milestone"]}
    assert len({(i.kind, i.id) for i in seen}) == len(seen)
    # The seed's approved work of Certinia's own projects is there too; its unapproved timecard is not.
    assert {i.project_id for i in seen} >= set(PSE_PROJECT_IDS[:1])
    expenses = await psa.list_billable_items_of(
        [project.id], through=THROUGH, limit=50, kind=BillableItemKind.EXPENSE
    )
    assert [i.id for i in expenses.items] == [booked["expense"]]
    assert expenses.next_cursor is None


def test_certinia_settings_default_to_the_crms_org() -> None:
    crm = SalesforceSettings(
        base_url="https://acme.my.salesforce.com",
        token_url="https://login.example/token",
        client_id="crm-app",
        client_secret="crm-secret",
        api_version="v62.0",
    )
    same = CertiniaSettings().org_settings(crm)
    assert (same.base_url, same.token_url, same.client_id, same.client_secret, same.api_version) == (
        "https://acme.my.salesforce.com",
        "https://login.example/token",
        "crm-app",
        "crm-secret",
        "v62.0",
    )
    env = {
        "STRATUM_PSA_VENDOR": "certinia",
        "STRATUM_CERTINIA__BASE_URL": "https://psa.my.salesforce.com",
        "STRATUM_CERTINIA__CLIENT_ID": "psa-app",
    }
    settings = load_settings(env)
    other = settings.certinia.org_settings(crm)
    # A second org: its own URL and token endpoint ({base_url}/services/oauth2/token), its own app; what it
    # leaves unset is the CRM's.
    assert (other.base_url, other.token_url, other.client_id, other.client_secret) == (
        "https://psa.my.salesforce.com",
        None,
        "psa-app",
        "crm-secret",
    )
