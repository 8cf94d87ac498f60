"""One ERP port over several ERPs, each serving some legal entities: a firm mid-migration runs both.

Configuration names a default ERP and overrides per legal entity (``STRATUM_ERP_BY_LEGAL_ENTITY``, e.g.
``{"DE01": "business_central"}``). Writes go to the ERP of the legal entity they are for (a customer's, a
project's); anything addressed by id goes to the ERP that issued the id. Ids issued by the default ERP are
passed through unchanged, so a single-ERP deployment sees no difference; ids from another ERP carry its name
(``business_central:7f3c...``), which keeps them opaque and unambiguous. Listings walk the ERPs one after the
other behind one cursor, so "all invoices" means all of them, whichever ERP holds them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import msgspec

from apis.at_once import all_at_once
from contracts.models import (
    BillingSchedule,
    BillingScheduleCreate,
    ChangeSubscription,
    Customer,
    CustomerMatch,
    CustomerMatchQuery,
    CustomerPage,
    CustomerUpsert,
    Invoice,
    InvoiceCreate,
    InvoicePage,
    Payment,
    PaymentPage,
    Project,
    ProjectCreate,
    SkippedRecord,
)
from system_apis.cursors import merged_next, merged_page, merged_position
from system_apis.erp.port import ErpPort, InvoiceFilter
from system_apis.errors import VendorRejected

__all__ = ["ErpByLegalEntity"]

_SEPARATOR = ":"


class ErpByLegalEntity:
    """An ``ErpPort`` that routes to the ERP serving each legal entity."""

    vendor = "erp-by-legal-entity"

    def __init__(
        self, erps: Mapping[str, ErpPort], *, default: str, by_legal_entity: Mapping[str, str]
    ) -> None:
        unknown = {default, *by_legal_entity.values()} - set(erps)
        if unknown:
            raise ValueError(f"no ERP adapter named {sorted(unknown)}")
        self.erps = dict(erps)
        self.default = default
        self.by_legal_entity = {entity.upper(): name for entity, name in by_legal_entity.items()}
        # The default first, so its records lead every merged listing.
        self.order = [default, *sorted(name for name in self.erps if name != default)]

    # -- ids ---------------------------------------------------------------------------------------------

    def _out(self, name: str, record_id: str | None) -> str | None:
        if record_id is None or name == self.default:
            return record_id
        return f"{name}{_SEPARATOR}{record_id}"

    def _in(self, record_id: str) -> tuple[str, str]:
        """(ERP name, its own id) for an id this port handed out."""
        name, separator, own = record_id.partition(_SEPARATOR)
        if separator and name in self.erps and name != self.default:
            return name, own
        return self.default, record_id

    def _for_entity(self, legal_entity: str | None) -> str:
        return self.by_legal_entity.get((legal_entity or "").upper(), self.default)

    def _skipped(self, name: str, skipped: list[SkippedRecord]) -> list[SkippedRecord]:
        if name == self.default:
            return skipped
        return [msgspec.structs.replace(record, id=self._out(name, record.id)) for record in skipped]

    def _customer(self, name: str, customer: Customer) -> Customer:
        if name == self.default:
            return customer
        return msgspec.structs.replace(customer, id=self._out(name, customer.id))

    def _project(self, name: str, project: Project) -> Project:
        if name == self.default:
            return project
        return msgspec.structs.replace(
            project, id=self._out(name, project.id), customer_id=self._out(name, project.customer_id)
        )

    def _schedule(self, name: str, schedule: BillingSchedule) -> BillingSchedule:
        if name == self.default:
            return schedule
        return msgspec.structs.replace(
            schedule, id=self._out(name, schedule.id), project_id=self._out(name, schedule.project_id)
        )

    def _invoice(self, name: str, invoice: Invoice) -> Invoice:
        if name == self.default:
            return invoice
        return msgspec.structs.replace(
            invoice,
            id=self._out(name, invoice.id),
            customer_id=self._out(name, invoice.customer_id),
            project_id=self._out(name, invoice.project_id),
            credit_memo_id=self._out(name, invoice.credit_memo_id),
        )

    def _payment(self, name: str, payment: Payment) -> Payment:
        if name == self.default:
            return payment
        return msgspec.structs.replace(
            payment,
            id=self._out(name, payment.id),
            customer_id=self._out(name, payment.customer_id),
            invoice_ids=[self._out(name, i) or i for i in payment.invoice_ids],
            applications=[
                msgspec.structs.replace(a, invoice_id=self._out(name, a.invoice_id) or a.invoice_id)
                for a in payment.applications
            ],
        )

    # -- customers ---------------------------------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer:
        name, own = self._in(customer_id)
        return self._customer(name, await self.erps[name].get_customer(own))

    async def find_customer(self, crm_customer_id: str) -> Customer | None:
        for name in self.order:
            found = await self.erps[name].find_customer(crm_customer_id)
            if found is not None:
                return self._customer(name, found)
        return None

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        index, inner = self._position(cursor)
        name = self.order[index]
        page = await self.erps[name].list_customers(limit=limit, cursor=inner, modified_since=modified_since)
        return CustomerPage(
            items=[self._customer(name, c) for c in page.items],
            next_cursor=self._next(index, page.next_cursor),
            skipped=self._skipped(name, page.skipped),
        )

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        # An id names its ERP (as for `get_customer`): each ERP is asked for its own ids, the ERPs at once,
        # and the answers come in the order of the merged listing (the default's first). An ERP that fails
        # fails the read, as `get_customer` of one of its ids would.
        wanted: dict[str, list[str]] = {}
        for customer_id in customer_ids:
            name, own = self._in(customer_id)
            wanted.setdefault(name, []).append(own)
        names = [name for name in self.order if name in wanted]
        pages = await all_at_once(self.erps[name].list_customers_by_id(wanted[name]) for name in names)
        return CustomerPage(
            items=[
                self._customer(name, c) for name, page in zip(names, pages, strict=True) for c in page.items
            ],
            skipped=[
                s for name, page in zip(names, pages, strict=True) for s in self._skipped(name, page.skipped)
            ],
        )

    async def upsert_customer(self, command: CustomerUpsert) -> tuple[Customer, bool]:
        name = self._for_entity(command.legal_entity)
        customer, created = await self.erps[name].upsert_customer(command)
        return self._customer(name, customer), created

    async def find_probable_duplicates(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        # A company already kept in any of the ERPs is a duplicate to look at, whichever one would hold it.
        matches: list[CustomerMatch] = []
        for name in self.order:
            for match in await self.erps[name].find_probable_duplicates(query):
                matches.append(msgspec.structs.replace(match, customer=self._customer(name, match.customer)))
        return matches

    # -- projects and billing schedules ------------------------------------------------------------------

    async def get_project(self, project_id: str) -> Project:
        name, own = self._in(project_id)
        return self._project(name, await self.erps[name].get_project(own))

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        name = self._for_entity(command.legal_entity)
        customer_erp, customer_id = self._in(command.customer_id)
        if customer_erp != name:
            raise VendorRejected(
                name,
                f"legal entity {command.legal_entity} is billed from {name}, but customer "
                f"{command.customer_id} is kept in {customer_erp}: master the customer for that entity first",
            )
        project, created = await self.erps[name].create_project(
            msgspec.structs.replace(command, customer_id=customer_id)
        )
        return self._project(name, project), created

    async def create_billing_schedule(
        self, project_id: str, command: BillingScheduleCreate
    ) -> tuple[BillingSchedule, bool]:
        name, own = self._in(project_id)
        if command.customer_id is not None:
            command = msgspec.structs.replace(command, customer_id=self._in(command.customer_id)[1])
        schedule, created = await self.erps[name].create_billing_schedule(own, command)
        return self._schedule(name, schedule), created

    async def get_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        name, own = self._in(schedule_id)
        return self._schedule(name, await self.erps[name].get_billing_schedule(own))

    async def void_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        name, own = self._in(schedule_id)
        return self._schedule(name, await self.erps[name].void_billing_schedule(own))

    # -- invoices and payments ---------------------------------------------------------------------------

    async def get_invoice(self, invoice_id: str) -> Invoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.erps[name].get_invoice(own))

    async def list_invoices(
        self, query: InvoiceFilter, *, limit: int, cursor: str | None = None
    ) -> InvoicePage:
        if query.customer_id is not None:
            # One customer lives in one ERP: ask only that one.
            name, own = self._in(query.customer_id)
            page = await self.erps[name].list_invoices(
                msgspec.structs.replace(query, customer_id=own), limit=limit, cursor=cursor
            )
            return InvoicePage(
                items=[self._invoice(name, i) for i in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )
        items, skipped, next_cursor = await merged_page(
            len(self.order),
            cursor,
            limit,
            lambda index, inner: self._invoice_page(index, query, limit, inner),
        )
        return InvoicePage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def _invoice_page(
        self, index: int, query: InvoiceFilter, limit: int, inner: str | None
    ) -> InvoicePage:
        name = self.order[index]
        page = await self.erps[name].list_invoices(query, limit=limit, cursor=inner)
        return InvoicePage(
            items=[self._invoice(name, i) for i in page.items],
            next_cursor=page.next_cursor,
            skipped=self._skipped(name, page.skipped),
        )

    async def create_invoice(self, command: InvoiceCreate) -> tuple[Invoice, bool]:
        name, customer_id = self._in(command.customer_id)
        project_id: str | None = None
        if command.project_id is not None:
            project_erp, project_id = self._in(command.project_id)
            if project_erp != name:
                raise VendorRejected(name, "the invoice's customer and project are kept in different ERPs")
        invoice, created = await self.erps[name].create_invoice(
            msgspec.structs.replace(command, customer_id=customer_id, project_id=project_id)
        )
        return self._invoice(name, invoice), created

    async def post_invoice(self, invoice_id: str) -> Invoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.erps[name].post_invoice(own))

    async def void_invoice(self, invoice_id: str) -> Invoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.erps[name].void_invoice(own))

    async def list_payments(
        self,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        modified_since: dt.datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> PaymentPage:
        scoped = invoice_id or customer_id
        if scoped is not None:
            name, _ = self._in(scoped)
            page = await self.erps[name].list_payments(
                customer_id=self._in(customer_id)[1] if customer_id else None,
                invoice_id=self._in(invoice_id)[1] if invoice_id else None,
                modified_since=modified_since,
                limit=limit,
                cursor=cursor,
            )
            return PaymentPage(
                items=[self._payment(name, p) for p in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )
        index, inner = self._position(cursor)
        name = self.order[index]
        page = await self.erps[name].list_payments(modified_since=modified_since, limit=limit, cursor=inner)
        return PaymentPage(
            items=[self._payment(name, p) for p in page.items],
            next_cursor=self._next(index, page.next_cursor),
            skipped=self._skipped(name, page.skipped),
        )

    async def ensure_change_subscriptions(
        self, notification_url: str, client_state: str
    ) -> list[ChangeSubscription]:
        """Every ERP's, in turn (each ERP that pushes subscribes its own collections)."""
        found: list[ChangeSubscription] = []
        for name in self.order:
            found.extend(await self.erps[name].ensure_change_subscriptions(notification_url, client_state))
        return found

    async def close(self) -> None:
        for erp in self.erps.values():
            await erp.close()

    # -- one cursor over several ERPs --------------------------------------------------------------------

    def _position(self, cursor: str | None) -> tuple[int, str | None]:
        """(which ERP, that ERP's own cursor) from a merged listing's cursor."""
        return merged_position(cursor, len(self.order))

    def _next(self, index: int, inner: str | None) -> str | None:
        return merged_next(index, inner, len(self.order))
