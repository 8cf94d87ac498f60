"""ERP chosen per legal entity: writes land in the entity's ERP, ids say which ERP holds a record, and one
listing walks every ERP behind one cursor. Two in-memory ERPs stand in for the vendors here; the same
routing over the real adapters and sandboxes is tested through the system tier."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.models import (
    Customer,
    CustomerMatch,
    CustomerMatchQuery,
    CustomerPage,
    CustomerUpsert,
    Invoice,
    InvoiceCreate,
    InvoiceLineInput,
    InvoicePage,
    InvoiceStatus,
    Money,
    PaymentPage,
    Project,
    ProjectCreate,
)
from contracts.models.delivery import ProjectStatus
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.erp.by_legal_entity import ErpByLegalEntity
from system_apis.erp.port import InvoiceFilter
from system_apis.errors import NotFound, VendorRejected


class MemoryErp:
    """Just enough of an ERP: customers by CRM id, projects by key, invoices by key, offset paging."""

    def __init__(self, vendor: str, first_id: int) -> None:
        self.vendor = vendor
        self.next_id = first_id
        self.customers: dict[str, Customer] = {}
        self.projects: dict[str, Project] = {}
        self.invoices: dict[str, Invoice] = {}
        self.links: dict[str, str] = {}  # CRM id -> customer id

    def _id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    async def get_customer(self, customer_id: str) -> Customer:
        if customer_id not in self.customers:
            raise NotFound(self.vendor, "no such customer")
        return self.customers[customer_id]

    async def find_customer(self, crm_customer_id: str) -> Customer | None:
        found = self.links.get(crm_customer_id)
        return self.customers[found] if found else None

    async def list_customers(self, *, limit: int, cursor: str | None = None, **_: Any) -> CustomerPage:
        items, next_cursor = _page(list(self.customers.values()), limit, cursor)
        return CustomerPage(items=items, next_cursor=next_cursor)

    async def upsert_customer(self, command: CustomerUpsert) -> tuple[Customer, bool]:
        existing = self.links.get(command.crm_customer_id)
        customer = Customer(id=existing or self._id(), name=command.name, legal_entity=command.legal_entity)
        self.customers[customer.id] = customer
        self.links[command.crm_customer_id] = customer.id
        return customer, existing is None

    async def find_probable_duplicates(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        return [
            CustomerMatch(customer=c, reason="name+tax_id")
            for c in self.customers.values()
            if c.name == query.name
        ]

    async def get_project(self, project_id: str) -> Project:
        return self.projects[project_id]

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        if command.customer_id not in self.customers:
            raise VendorRejected(self.vendor, "no such customer")
        for project in self.projects.values():
            if project.external_key == command.external_key:
                return project, False
        project = Project(
            id=self._id(),
            name=command.name,
            status=ProjectStatus.ACTIVE,
            customer_id=command.customer_id,
            currency=command.currency,
            external_key=command.external_key,
        )
        self.projects[project.id] = project
        return project, True

    async def get_invoice(self, invoice_id: str) -> Invoice:
        return self.invoices[invoice_id]

    async def list_invoices(
        self, query: InvoiceFilter, *, limit: int, cursor: str | None = None
    ) -> InvoicePage:
        matching = [i for i in self.invoices.values() if query.customer_id in (None, i.customer_id)]
        items, next_cursor = _page(matching, limit, cursor)
        return InvoicePage(items=items, next_cursor=next_cursor)

    async def create_invoice(self, command: InvoiceCreate) -> tuple[Invoice, bool]:
        total = Money(amount=Decimal("100.00"), currency=command.currency)
        invoice = Invoice(
            id=self._id(),
            number=command.external_key,
            customer_id=command.customer_id,
            project_id=command.project_id,
            status=InvoiceStatus.POSTED,
            issue_date=command.issue_date,
            due_date=command.due_date,
            currency=command.currency,
            total=total,
            balance=total,
        )
        self.invoices[invoice.id] = invoice
        return invoice, True

    async def list_payments(self, **_: Any) -> PaymentPage:
        return PaymentPage(items=[])

    async def close(self) -> None:
        return None


def _page(items: list[Any], limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    start = int(unwrap_cursor(cursor, max_length=64)) if cursor else 0
    end = start + limit
    return items[start:end], wrap_cursor(str(end)) if end < len(items) else None


@pytest.fixture
def erps() -> tuple[ErpByLegalEntity, MemoryErp, MemoryErp]:
    netsuite, business_central = MemoryErp("netsuite", 1000), MemoryErp("business_central", 5000)
    routed = ErpByLegalEntity(
        {"netsuite": netsuite, "business_central": business_central},
        default="netsuite",
        by_legal_entity={"de01": "business_central"},
    )
    return routed, netsuite, business_central


def _upsert(crm_id: str, entity: str) -> CustomerUpsert:
    return CustomerUpsert(crm_customer_id=crm_id, name=f"Customer {crm_id}", legal_entity=entity)


async def test_writes_land_in_the_erp_of_their_legal_entity(erps: Any) -> None:
    routed, netsuite, business_central = erps
    us, _ = await routed.upsert_customer(_upsert("001US", "US01"))
    de, _ = await routed.upsert_customer(_upsert("001DE", "DE01"))
    assert list(netsuite.links) == ["001US"]
    assert list(business_central.links) == ["001DE"]
    # The default ERP's ids are its own; the other's say where they live.
    assert us.id == "1001"
    assert de.id == "business_central:5001"
    assert (await routed.get_customer(de.id)).name == "Customer 001DE"
    assert (await routed.find_customer("001DE")) == de

    project, created = await routed.create_project(
        ProjectCreate(
            external_key="opp-de", name="DE project", customer_id=de.id, currency="EUR", legal_entity="DE01"
        )
    )
    assert created
    assert project.id.startswith("business_central:")
    assert project.customer_id == de.id
    assert list(business_central.projects) == [project.id.split(":", 1)[1]]
    assert netsuite.projects == {}

    invoice, _ = await routed.create_invoice(
        InvoiceCreate(
            external_key="inv-de-1",
            customer_id=de.id,
            project_id=project.id,
            currency="EUR",
            issue_date=dt.date(2026, 12, 1),
            due_date=dt.date(2026, 12, 31),
            lines=[InvoiceLineInput(description="Work", unit_price=Decimal("100.00"))],
        )
    )
    assert invoice.customer_id == de.id
    assert list(business_central.invoices) == [invoice.id.split(":", 1)[1]]


async def test_a_project_for_one_entity_with_a_customer_of_another_erp_is_refused(erps: Any) -> None:
    routed, _, _ = erps
    us, _ = await routed.upsert_customer(_upsert("001US", "US01"))
    with pytest.raises(VendorRejected, match="master the customer for that entity first"):
        await routed.create_project(
            ProjectCreate(
                external_key="opp-x", name="X", customer_id=us.id, currency="EUR", legal_entity="DE01"
            )
        )


async def test_one_listing_walks_every_erp_behind_one_cursor(erps: Any) -> None:
    routed, _, _ = erps
    for n in range(3):
        await routed.upsert_customer(_upsert(f"US{n}", "US01"))
    for n in range(2):
        await routed.upsert_customer(_upsert(f"DE{n}", "DE01"))
    seen, cursor = [], None
    while True:
        page = await routed.list_customers(limit=2, cursor=cursor)
        seen += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["1001", "1002", "1003", "business_central:5001", "business_central:5002"]
    with pytest.raises(InvalidCursor):
        await routed.list_customers(limit=2, cursor=wrap_cursor("7|"))


async def test_duplicates_are_looked_for_in_every_erp(erps: Any) -> None:
    routed, _, _ = erps
    await routed.upsert_customer(_upsert("001DE", "DE01"))
    matches = await routed.find_probable_duplicates(CustomerMatchQuery(name="Customer 001DE"))
    assert [m.customer.id for m in matches] == ["business_central:5001"]


def test_an_unknown_erp_in_the_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="no ERP adapter named"):
        ErpByLegalEntity(
            {"netsuite": MemoryErp("netsuite", 0)}, default="netsuite", by_legal_entity={"DE01": "sap"}
        )
