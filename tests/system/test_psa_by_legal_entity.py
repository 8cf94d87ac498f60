"""PSA chosen per legal entity: a project lands in the PSA of its entity, ids say which PSA holds a record, a
business key is asked of every PSA, and one listing walks every PSA behind one cursor. Two in-memory PSAs
stand in for the vendors here; the same routing over the real adapters and sandboxes is the shared PSA suite's
"kantata+certinia" run (tests/system_tier/test_psa_suite.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from apis.config import load_settings
from contracts.models import (
    BillableItem,
    BillableItemKind,
    BillableItemPage,
    Milestone,
    MilestoneInput,
    Money,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaInvoiceStatus,
    PsaPaymentRecord,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntry,
    TimeEntryPage,
)
from contracts.models.delivery import MilestoneStatus, ProjectStatus
from process_apis.billing_pricing import billing_key, milestone_billing_key
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.erp.business_central_mapping import EXTERNAL_DOCUMENT_NUMBER_LENGTH, business_key
from system_apis.errors import NotFound, VendorRejected
from system_apis.psa.by_legal_entity import PsaByLegalEntity
from system_apis.psa.port import PeriodFilter, PsaPort

DAY = dt.date(2026, 2, 2)


class MemoryPsa:
    """Just enough of a PSA: projects by key with milestones, staffing, time, invoices by key, offset paging.
    ``calls`` records what it was asked, to show which PSA a call went to."""

    def __init__(self, vendor: str, first_id: int, *, id_prefix: str = "") -> None:
        self.vendor = vendor
        self.next_id = first_id
        self.id_prefix = id_prefix
        self.projects: dict[str, Project] = {}
        self.demands: dict[str, StaffingDemand] = {}
        self.time: dict[str, TimeEntry] = {}
        self.invoices: dict[str, PsaInvoice] = {}
        self.calls: list[tuple[str, Any]] = []
        self.started = asyncio.Event()

    def _id(self) -> str:
        self.next_id += 1
        return f"{self.id_prefix}{self.next_id}"

    def book_time(self, project_id: str) -> TimeEntry:
        entry = TimeEntry(
            id=self._id(), project_id=project_id, person_id="p1", date=DAY, hours=Decimal(8), billable=True,
            approved=True,
        )  # fmt: skip
        self.time[entry.id] = entry
        return entry

    async def get_project(self, project_id: str) -> Project:
        self.calls.append(("get_project", project_id))
        if project_id not in self.projects:
            raise NotFound(self.vendor, "no such project")
        return self.projects[project_id]

    async def find_project(self, external_key: str) -> Project | None:
        self.calls.append(("find_project", external_key))
        self.started.set()
        await asyncio.sleep(0)
        return next((p for p in self.projects.values() if p.external_key == external_key), None)

    async def list_projects(self, *, limit: int, cursor: str | None = None, **_: Any) -> ProjectPage:
        items, next_cursor = _page(list(self.projects.values()), limit, cursor)
        return ProjectPage(items=items, next_cursor=next_cursor)

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        self.calls.append(("create_project", command.customer_id))
        for project in self.projects.values():
            if project.external_key == command.external_key:
                return project, False
        project_id = self._id()
        project = Project(
            id=project_id,
            name=command.name,
            status=ProjectStatus.ACTIVE,
            customer_id=command.customer_id,
            external_key=command.external_key,
            milestones=[
                Milestone(
                    id=self._id(), project_id=project_id, name=m.name, status=MilestoneStatus.NOT_STARTED
                )
                for m in command.milestones
            ],
        )
        self.projects[project.id] = project
        return project, True

    async def close_project(self, project_id: str) -> Project:
        project = await self.get_project(project_id)
        self.projects[project_id] = closed = msgspec.structs.replace(project, status=ProjectStatus.CLOSED)
        return closed

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]:
        return [d for d in self.demands.values() if d.project_id == project_id]

    async def list_staffing_demands_of(self, project_ids: Sequence[str]) -> list[StaffingDemand]:
        self.calls.append(("list_staffing_demands_of", list(project_ids)))
        return [d for d in self.demands.values() if d.project_id in project_ids]

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        await self.get_project(project_id)
        demand = StaffingDemand(id=self._id(), project_id=project_id, role=command.role, hours=command.hours)
        self.demands[demand.id] = demand
        return demand, True

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage:
        self.calls.append(("list_time_entries", query.project_ids))
        wanted = set(query.project_ids or ()) | ({query.project_id} if query.project_id else set())
        matching = [e for e in self.time.values() if not wanted or e.project_id in wanted]
        items, next_cursor = _page(matching, limit, cursor)
        return TimeEntryPage(items=items, next_cursor=next_cursor)

    async def list_expenses(self, query: PeriodFilter, **_: Any) -> Any:
        raise NotImplementedError

    def _items(self, project_ids: Sequence[str] | None) -> list[BillableItem]:
        return [
            BillableItem(
                id=e.id,
                kind=BillableItemKind.TIME,
                project_id=e.project_id,
                date=e.date,
                description="Work",
                quantity=e.hours,
            )
            for e in self.time.values()
            if project_ids is None or e.project_id in project_ids
        ]

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int, cursor: str | None = None
    ) -> BillableItemPage:
        items, next_cursor = _page(self._items([project_id]), limit, cursor)
        return BillableItemPage(items=items, next_cursor=next_cursor)

    async def list_billable_items_of(
        self, project_ids: Sequence[str] | None, *, through: dt.date, limit: int, cursor: str | None = None,
        kind: BillableItemKind | None = None,
    ) -> BillableItemPage:  # fmt: skip
        self.calls.append(("list_billable_items_of", None if project_ids is None else list(project_ids)))
        items, next_cursor = _page(self._items(project_ids), limit, cursor)
        return BillableItemPage(items=items, next_cursor=next_cursor)

    async def find_invoice(self, external_key: str) -> PsaInvoice | None:
        return next((i for i in self.invoices.values() if i.external_key == external_key), None)

    async def get_invoice(self, invoice_id: str) -> PsaInvoice:
        if invoice_id not in self.invoices:
            raise NotFound(self.vendor, "no such invoice")
        return self.invoices[invoice_id]

    async def list_invoices(self, project_id: str) -> list[PsaInvoice]:
        return [i for i in self.invoices.values() if i.project_id == project_id]

    async def create_invoice(self, command: PsaInvoiceCreate) -> tuple[PsaInvoice, bool]:
        self.calls.append(("create_invoice", command))
        await self.get_project(command.project_id)
        for invoice in self.invoices.values():
            if invoice.external_key == command.external_key:
                return invoice, False
            taken = set(invoice.time_entry_ids) & set(command.time_entry_ids)
            if taken:
                raise VendorRejected(self.vendor, f"{min(taken)} is already on invoice {invoice.id}")
        invoice = PsaInvoice(
            id=self._id(),
            project_id=command.project_id,
            status=PsaInvoiceStatus.DRAFT,
            currency=command.currency,
            total=Money(amount=Decimal("1200.00"), currency=command.currency),
            external_key=command.external_key,
            time_entry_ids=list(command.time_entry_ids),
        )
        self.invoices[invoice.id] = invoice
        return invoice, True

    async def finalize_invoice(
        self, invoice_id: str, *, erp_invoice_id: str, erp_invoice_number: str | None
    ) -> PsaInvoice:
        invoice = await self.get_invoice(invoice_id)
        self.invoices[invoice_id] = done = _replace(
            invoice, status=PsaInvoiceStatus.OPEN, erp_invoice_id=erp_invoice_id
        )
        return done

    async def cancel_invoice(self, invoice_id: str) -> PsaInvoice:
        invoice = await self.get_invoice(invoice_id)
        self.invoices[invoice_id] = done = _replace(invoice, status=PsaInvoiceStatus.CANCELLED)
        return done

    async def record_payment(self, invoice_id: str, payment: PsaPaymentRecord) -> PsaInvoice:
        invoice = await self.get_invoice(invoice_id)
        self.invoices[invoice_id] = done = _replace(invoice, status=PsaInvoiceStatus.PAID)
        return done

    async def close(self) -> None:
        return None


def _replace(invoice: PsaInvoice, **changes: Any) -> PsaInvoice:
    return msgspec.structs.replace(invoice, **changes)


def _page(items: list[Any], limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    start = int(unwrap_cursor(cursor, max_length=64)) if cursor else 0
    end = start + limit
    return items[start:end], wrap_cursor(str(end)) if end < len(items) else None


# A Certinia id is an 18-character Salesforce id (sandboxes/salesforce/data.py: "all 18-character").
CERTINIA_ID_PREFIX = "a0PDn00000Uf"  # + 6 digits: 18 characters


@pytest.fixture
def psas() -> tuple[PsaByLegalEntity, MemoryPsa, MemoryPsa]:
    kantata, certinia = (
        MemoryPsa("kantata", 1000),
        MemoryPsa("certinia", 100000, id_prefix=CERTINIA_ID_PREFIX),
    )
    routed = PsaByLegalEntity(
        {"kantata": kantata, "certinia": certinia}, default="kantata", by_legal_entity={"de01": "certinia"}
    )
    assert isinstance(routed, PsaPort)
    return routed, kantata, certinia


def _create(key: str, entity: str | None, *, milestones: int = 0) -> ProjectCreate:
    return ProjectCreate(
        external_key=key,
        name=f"Project {key}",
        customer_id="001Dn00000CRMACCT",  # the CRM's account, in either PSA
        currency="EUR",
        legal_entity=entity,
        milestones=[MilestoneInput(name=f"Phase {n}") for n in range(milestones)],
    )


async def test_a_project_lands_in_the_psa_of_its_legal_entity_and_its_ids_say_which(psas: Any) -> None:
    routed, kantata, certinia = psas
    us, created = await routed.create_project(_create("opp-us", "US01"))
    de, _ = await routed.create_project(_create("opp-de", "DE01", milestones=1))
    assert created
    assert us.id == "1001"  # the default PSA's ids are its own
    own = de.id.removeprefix("c:")
    assert de.id == f"c:{own}"
    assert own in certinia.projects
    assert kantata.projects.keys() == {"1001"}
    # Every id of the record and every reference to one carries the code; the CRM's customer does not.
    assert de.milestones[0].id.startswith("c:")
    assert de.milestones[0].project_id == de.id
    assert de.customer_id == "001Dn00000CRMACCT"
    assert ("create_project", "001Dn00000CRMACCT") in certinia.calls
    # Read, closed and staffed by id: the PSA that issued it.
    assert (await routed.get_project(de.id)).id == de.id
    assert (await routed.close_project(de.id)).status is ProjectStatus.CLOSED
    demand, _ = await routed.create_staffing_demand(
        de.id, StaffingDemandCreate(external_key="d1", role="Consultant", hours=Decimal(40))
    )
    assert demand.id.startswith("c:")
    assert demand.project_id == de.id
    assert [d.id for d in await routed.list_staffing_demands(de.id)] == [demand.id]
    # The same key again is the same project, in the same PSA.
    again, created = await routed.create_project(_create("opp-de", "DE01"))
    assert (again.id, created) == (de.id, False)


async def test_a_business_key_is_asked_of_every_psa_at_once(psas: Any) -> None:
    routed, kantata, certinia = psas
    de, _ = await routed.create_project(_create("opp-de", "DE01"))

    async def waits_for_certinia(external_key: str) -> Project | None:
        # Answers only once Certinia has been asked too: asked one after the other, this would hang.
        kantata.calls.append(("find_project", external_key))
        await asyncio.wait_for(certinia.started.wait(), timeout=2)
        return None

    kantata.find_project = waits_for_certinia  # type: ignore[method-assign]
    assert await routed.find_project("opp-de") == de
    assert await routed.find_project("opp-nowhere") is None


@pytest.mark.parametrize("unknown", ["x:1001", "k:1001", "c:", ":1001", "certinia:a0PDn00000Uf100001"])
async def test_an_id_no_psa_issued_is_not_found(psas: Any, unknown: str) -> None:
    routed, kantata, certinia = psas
    await routed.create_project(_create("opp-us", "US01"))
    await routed.create_project(_create("opp-de", "DE01"))
    for call in (routed.get_project, routed.close_project, routed.list_staffing_demands, routed.get_invoice):
        with pytest.raises(NotFound):
            await call(unknown)
    assert not [c for c in kantata.calls + certinia.calls if c[0] == "get_project"]
    # In a listing of several projects, such an id is a project without records, as any unknown one.
    assert await routed.list_staffing_demands_of([unknown]) == []


async def test_listings_walk_every_psa_behind_one_cursor(psas: Any) -> None:
    routed, _, _ = psas
    made = [(await routed.create_project(_create(f"us{n}", "US01")))[0].id for n in range(3)]
    made += [(await routed.create_project(_create(f"de{n}", "DE01")))[0].id for n in range(2)]
    seen, cursor = [], None
    while True:
        page = await routed.list_projects(limit=2, cursor=cursor)
        seen += [p.id for p in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == made
    assert made[-1].startswith("c:")
    with pytest.raises(InvalidCursor):
        await routed.list_projects(limit=2, cursor=wrap_cursor("7|"))
    # A page with room for the next PSA's whole first page takes it along: one page, one round of calls.
    whole = await routed.list_projects(limit=10)
    assert ([p.id for p in whole.items], whole.next_cursor) == (made, None)


async def test_several_projects_are_split_by_psa_and_merged(psas: Any) -> None:
    routed, kantata, certinia = psas
    us, _ = await routed.create_project(_create("opp-us", "US01"))
    de, _ = await routed.create_project(_create("opp-de", "DE01"))
    us_time = kantata.book_time(us.id)
    de_time = certinia.book_time(de.id.removeprefix("c:"))
    both = [us.id, de.id]

    entries = await routed.list_time_entries(PeriodFilter(project_ids=tuple(both)), limit=100)
    assert [(e.id, e.project_id) for e in entries.items] == [
        (us_time.id, us.id), (f"c:{de_time.id}", de.id)
    ]  # fmt: skip
    assert ("list_time_entries", (us.id,)) in kantata.calls
    assert ("list_time_entries", (de.id.removeprefix("c:"),)) in certinia.calls
    # A PSA none of whose projects is asked about is not asked at all.
    kantata.calls.clear()
    only_de = await routed.list_time_entries(PeriodFilter(project_id=de.id), limit=100)
    assert [e.id for e in only_de.items] == [f"c:{de_time.id}"]
    assert not kantata.calls

    items = await routed.list_billable_items_of(both, through=DAY, limit=100)
    assert [i.id for i in items.items] == [us_time.id, f"c:{de_time.id}"]
    assert all(i.project_id in both for i in items.items)
    every = await routed.list_billable_items_of(None, through=DAY, limit=100)
    assert [i.id for i in every.items] == [us_time.id, f"c:{de_time.id}"]

    await routed.create_staffing_demand(
        us.id, StaffingDemandCreate(external_key="a", role="PM", hours=Decimal(1))
    )
    await routed.create_staffing_demand(
        de.id, StaffingDemandCreate(external_key="b", role="PM", hours=Decimal(2))
    )
    demands = await routed.list_staffing_demands_of(both)
    assert [d.project_id for d in demands] == both
    assert ("list_staffing_demands_of", [de.id.removeprefix("c:")]) in certinia.calls


async def test_an_invoice_goes_to_the_psa_of_its_project(psas: Any) -> None:
    routed, kantata, certinia = psas
    us, _ = await routed.create_project(_create("opp-us", "US01"))
    de, _ = await routed.create_project(_create("opp-de", "DE01"))
    de_time = certinia.book_time(de.id.removeprefix("c:"))
    us_time = kantata.book_time(us.id)
    routed_item = f"c:{de_time.id}"
    key = billing_key(de.id, "2026-02")

    def command(*item_ids: str, external_key: str = key) -> PsaInvoiceCreate:
        return PsaInvoiceCreate(
            external_key=external_key, project_id=de.id, currency="EUR", invoice_date=DAY, due_date=DAY,
            time_entry_ids=list(item_ids),
        )  # fmt: skip

    invoice, created = await routed.create_invoice(command(routed_item))
    assert created
    assert invoice.id.startswith("c:")
    assert (invoice.project_id, invoice.time_entry_ids) == (de.id, [routed_item])
    sent = next(c[1] for c in certinia.calls if c[0] == "create_invoice")
    assert (sent.project_id, sent.time_entry_ids) == (de.id.removeprefix("c:"), [de_time.id])
    assert await routed.find_invoice(key) == invoice
    assert [i.id for i in await routed.list_invoices(de.id)] == [invoice.id]
    assert (
        await routed.finalize_invoice(invoice.id, erp_invoice_id="INV9", erp_invoice_number=None)
    ).id == invoice.id
    payment = PsaPaymentRecord(
        erp_payment_id="PAY1", date=DAY, amount=Decimal("1200.00"), currency="EUR", balance=Decimal(0)
    )
    assert (await routed.record_payment(invoice.id, payment)).status is PsaInvoiceStatus.PAID
    # An item already on an invoice is refused by the id the caller knows it by.
    with pytest.raises(VendorRejected) as refused:
        await routed.create_invoice(command(routed_item, external_key=f"{key}:r2"))
    assert f"{routed_item} is already on invoice {invoice.id}" in refused.value.message
    # An item of another PSA is never sent to this one.
    with pytest.raises(VendorRejected, match="is not kept in the PSA of project"):
        await routed.create_invoice(command(us_time.id, external_key=f"{key}:r3"))
    assert (await routed.cancel_invoice(invoice.id)).status is PsaInvoiceStatus.CANCELLED
    assert not [c for c in kantata.calls if c[0] == "create_invoice"]


def test_a_routed_certinia_projects_billing_key_fits_business_central() -> None:
    """``bill:{project}:{YYYY-MM}`` is the ERP invoice's key, kept in Business Central's Code[35]
    ``externalDocumentNumber`` ("salesInvoice resource type", API v2.0). A routed Certinia project (``c:`` +
    an 18-character Salesforce id) keeps its month key within 35 characters. Its revision and milestone keys
    cannot fit with any prefix (the 18-character id alone makes ``:r99`` 35): Business Central's adapter
    keeps those as a 35-character hash, still one invoice per key. Certinia as the default PSA, with the
    Kantata entities routed (``k:`` + a numeric id), fits every key."""
    certinia_project = "c:" + "a0PDn00000Uf5PvMAJ"
    month = billing_key(certinia_project, "2026-11")
    assert len(month) == 33 <= EXTERNAL_DOCUMENT_NUMBER_LENGTH
    assert business_key(month, EXTERNAL_DOCUMENT_NUMBER_LENGTH) == month.upper()  # stored as written
    revision = billing_key(certinia_project, "2026-11", 99)
    milestones = milestone_billing_key(certinia_project, dt.date(2026, 11, 30))
    assert len(billing_key("a0PDn00000Uf5PvMAJ", "2026-11", 99)) == EXTERNAL_DOCUMENT_NUMBER_LENGTH  # no room
    assert len(revision) == len(milestones) == 37
    stored = {business_key(k, EXTERNAL_DOCUMENT_NUMBER_LENGTH) for k in (month, revision, milestones)}
    assert len(stored) == 3
    assert all(len(k) <= EXTERNAL_DOCUMENT_NUMBER_LENGTH for k in stored)
    kantata_project = "k:" + "9" * 10
    longest = max(
        billing_key(kantata_project, "2026-11", 99),
        milestone_billing_key(kantata_project, dt.date(2026, 11, 30)),
    )
    assert len(longest) == 29


def test_the_psa_per_legal_entity_is_configured_like_the_erps() -> None:
    settings = load_settings({"STRATUM_PSA_BY_LEGAL_ENTITY": '{"DE01": "certinia"}'})
    assert dict(settings.psa_by_legal_entity) == {"DE01": "certinia"}
    with pytest.raises(ValueError, match="no PSA adapter named"):
        PsaByLegalEntity(
            {"kantata": MemoryPsa("kantata", 0)}, default="kantata", by_legal_entity={"DE01": "sap"}
        )


def test_the_adapters_behind_the_router_are_checked_started_and_budgeted(psas: Any) -> None:
    from system_apis.vendor_checks import inner_adapters

    routed, kantata, certinia = psas
    assert list(inner_adapters(routed)) == [kantata, certinia]
