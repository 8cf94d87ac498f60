"""The ERP port: customer master, projects as billed, billing schedules, invoices and payments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

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
    InvoiceStatus,
    PaymentPage,
    Project,
    ProjectCreate,
)

__all__ = ["MAX_CUSTOMERS_BY_ID", "MAX_INVOICE_PAGE", "ErpPort", "InvoiceFilter"]

# ``list_invoices`` takes pages of up to this many invoices: NetSuite's SuiteQL pages up to 1,000 rows
# (``POST query/v1/suiteql?limit=``, "page <= 1000": VENDORS.md; Oracle's SuiteTalk REST guide, "Paging",
# limit 1-1000) and Business Central takes any ``$top`` (OData v4 system query option), paging its answer
# by ``@odata.nextLink`` (server page 20,000). A view that reads every open invoice makes a fifth of the
# calls it made at 200.
MAX_INVOICE_PAGE = 1000

# ``list_customers_by_id`` reads at most this many customers in one call: one SuiteQL query
# (``WHERE id IN (...)``) in NetSuite, a few ``$filter`` reads in Business Central.
MAX_CUSTOMERS_BY_ID = 100


class InvoiceFilter(msgspec.Struct, kw_only=True, frozen=True):
    customer_id: str | None = None
    status: InvoiceStatus | None = None
    modified_since: dt.datetime | None = None


@runtime_checkable
class ErpPort(Protocol):
    vendor: str

    async def get_customer(self, customer_id: str) -> Customer: ...

    async def find_customer(self, crm_customer_id: str) -> Customer | None:
        """The ERP customer mastered from this CRM account, if any."""
        ...

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage: ...

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        """These customers (at most ``MAX_CUSTOMERS_BY_ID`` ids), as ``list_customers`` gives them, in the
        ERP's order, with no ``next_cursor``; an id the ERP does not have is simply absent."""
        ...

    async def upsert_customer(self, command: CustomerUpsert) -> tuple[Customer, bool]:
        """Create or update the customer keyed by ``crm_customer_id``; ``(customer, created)``.
        Idempotent through the vendor's external-id mechanism."""
        ...

    async def find_probable_duplicates(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        """The ERP customers that are probably the same company as the CRM account described by ``query``,
        each with its reason (``system_apis.erp.matching.is_probable_duplicate``: same normalized name and
        the same tax id or web domain), inactive customers included; none when nothing matches.

        The customer linked to ``query.crm_customer_id`` is that account's own record and is left out.
        Adapters narrow the candidates in the vendor's query language and confirm each with the shared
        rule, so every ERP answers the same. Reads only: safe to retry."""
        ...

    async def get_project(self, project_id: str) -> Project: ...

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        """Like ``PsaPort.create_project``: one project per ``external_key``."""
        ...

    async def create_billing_schedule(
        self, project_id: str, command: BillingScheduleCreate
    ) -> tuple[BillingSchedule, bool]:
        """One schedule per ``external_key``; ``(schedule, created)``."""
        ...

    async def get_billing_schedule(self, schedule_id: str) -> BillingSchedule: ...

    async def void_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        """Stop a schedule from billing (compensating a cancelled activation); voiding twice is harmless."""
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice: ...

    async def list_invoices(
        self, query: InvoiceFilter, *, limit: int, cursor: str | None = None
    ) -> InvoicePage:
        """A page of at most ``limit`` (1 to ``MAX_INVOICE_PAGE``) invoices, in a stable order."""
        ...

    async def create_invoice(self, command: InvoiceCreate) -> tuple[Invoice, bool]:
        """Raise an invoice; one per ``external_key``: a retried or replayed billing run never bills twice."""
        ...

    async def list_payments(
        self,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        modified_since: dt.datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> PaymentPage:
        """Payments in a stable order; ``modified_since`` reads only those the ERP changed since then (the
        status-back watermark)."""
        ...

    async def post_invoice(self, invoice_id: str) -> Invoice:
        """Post (issue) a draft invoice once finance approved it. Posting a posted invoice is harmless."""
        ...

    async def void_invoice(self, invoice_id: str) -> Invoice:
        """Reverse an invoice: a draft is deleted or cancelled, a posted one voided, or credited in full
        where the ERP credits rather than voids (``Invoice.credit_memo_id``). Twice is harmless; an invoice
        with payments applied is refused (``VendorRejected``)."""
        ...

    async def ensure_change_subscriptions(
        self, notification_url: str, client_state: str
    ) -> list[ChangeSubscription]:
        """Make the ERP push invoice changes to ``notification_url`` (each notification carrying
        ``client_state``), where it can: look for the subscriptions first, create the missing ones, renew
        those near their expiry. An ERP without push (NetSuite: changes are polled) answers none. Safe to
        repeat."""
        ...

    async def close(self) -> None: ...
