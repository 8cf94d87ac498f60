"""The CRM port: what the system tier needs from any CRM, in canonical objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from contracts.models import (
    ContactPage,
    CrmInvoiceStatusUpdate,
    Customer,
    CustomerPage,
    InvoiceTotals,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityPage,
    OpportunityStage,
)

__all__ = ["MAX_ACCOUNTS_BY_ID", "CrmPort", "InvalidCursor"]

# ``list_customers_by_id`` reads at most this many accounts in one call (one SOQL ``WHERE Id IN (...)``).
MAX_ACCOUNTS_BY_ID = 100


class InvalidCursor(ValueError):
    """A cursor this port did not issue (or one that was tampered with): the caller's mistake, a 422."""


@runtime_checkable
class CrmPort(Protocol):
    vendor: str

    async def get_customer(self, customer_id: str) -> Customer:
        """The account; raises ``NotFound`` when the CRM has no such account."""
        ...

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        """Accounts in a stable order, optionally only those changed since a moment."""
        ...

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        """These accounts (at most 100 ids), as ``list_customers`` gives them, in one answer with no
        ``next_cursor``; an id the CRM does not have is simply absent."""
        ...

    async def list_contacts(
        self, customer_id: str, *, limit: int, cursor: str | None = None
    ) -> ContactPage: ...

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        """The opportunity with its deal milestones and rate card; ``NotFound`` when there is none."""
        ...

    async def find_opportunity_by_project(self, project_id: str) -> Opportunity | None:
        """The deal (with its milestones and rate card) whose activation wrote ``project_id``, the PSA
        project that delivers it, back to it; None when no deal has that project."""
        ...

    async def list_opportunities(
        self,
        customer_id: str | None,
        *,
        limit: int,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
        modified_since: dt.datetime | None = None,
        with_terms: bool = False,
    ) -> OpportunityPage:
        """A page of opportunities (of one account, or all) in a stable order; ``cursor`` is the previous
        page's ``next_cursor`` (opaque to callers). With ``with_terms`` each deal carries its milestones and
        rate card as ``get_opportunity`` gives them (without, they are empty)."""
        ...

    async def update_opportunity_activation(
        self, opportunity_id: str, update: OpportunityActivationUpdate
    ) -> Opportunity:
        """Write the activation outcome back to the deal. Idempotent: the same update twice changes
        nothing the second time. ``NotFound`` when there is no such opportunity."""
        ...

    async def upsert_invoice_status(self, update: CrmInvoiceStatusUpdate) -> InvoiceTotals:
        """Write one ERP invoice where sales see it (one record per ERP invoice under the account and the
        opportunity, upserted by ``erp_invoice_id``), then the opportunity's invoiced, paid and overdue
        totals over all its invoices; answers those totals. An update older than the one stored
        (``erp_updated_at``) changes nothing. ``NotFound`` when there is no such opportunity."""
        ...

    async def close(self) -> None: ...
