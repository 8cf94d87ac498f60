"""The PSA port: projects as delivered, their milestones and staffing, and the time and expenses booked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

from contracts.models import (
    BillableItemKind,
    BillableItemPage,
    ExpensePage,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaPaymentRecord,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntryPage,
)

__all__ = [
    "MAX_BILLABLE_PAGE",
    "MAX_LISTING_PAGE",
    "MAX_PROJECTS_AT_ONCE",
    "PeriodFilter",
    "PsaPort",
    "TimeEntryFilter",
]


# ``list_billable_items_of`` takes at most this many projects: a query string a PSA and the proxies before
# it take whole.
MAX_PROJECTS_AT_ONCE = 50
# The large listings (``list_time_entries``, ``list_expenses``, ``list_billable_items_of``) page up to this
# many records: a view that reads every project's time or unbilled work reads it in a few large pages
# (Kantata's pages of 200 are read at once behind one of ours, after the first says how many there are).
MAX_LISTING_PAGE = 1000
# ``list_billable_items_of``'s page: the same large page.
MAX_BILLABLE_PAGE = MAX_LISTING_PAGE


class PeriodFilter(msgspec.Struct, kw_only=True, frozen=True):
    project_id: str | None = None
    # Several projects (at most ``MAX_PROJECTS_AT_ONCE``); with ``project_id``, both apply.
    project_ids: tuple[str, ...] | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    approved: bool | None = None
    modified_since: dt.datetime | None = None


TimeEntryFilter = PeriodFilter


@runtime_checkable
class PsaPort(Protocol):
    vendor: str

    async def get_project(self, project_id: str) -> Project:
        """The project with its milestones; ``NotFound`` when there is none."""
        ...

    async def find_project(self, external_key: str) -> Project | None:
        """The project created under this business key, if any."""
        ...

    async def list_projects(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage: ...

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        """Create the project and its milestones; ``(project, created)``. A project already made under
        ``command.external_key`` is returned instead (``created`` False): never a second one."""
        ...

    async def close_project(self, project_id: str) -> Project:
        """Close (archive) a project, e.g. when an activation is cancelled. Closing twice is harmless."""
        ...

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]: ...

    async def list_staffing_demands_of(self, project_ids: Sequence[str]) -> list[StaffingDemand]:
        """The staffing demand of several projects (at most ``MAX_PROJECTS_AT_ONCE``) in one listing, each
        naming its ``project_id``; a project the PSA does not have has none (no ``NotFound``)."""
        ...

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        """Raise staffing demand; one per ``external_key`` per project, like ``create_project``."""
        ...

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage:
        """Time entries in a stable order, pages of at most ``MAX_LISTING_PAGE``; a cursor continues its
        own query only."""
        ...

    async def list_expenses(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> ExpensePage:
        """Expenses, paged as ``list_time_entries``."""
        ...

    # --- billing -------------------------------------------------------------------------------------

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int, cursor: str | None = None
    ) -> BillableItemPage:
        """The project's approved, billable items not yet on an invoice, dated on or before ``through``
        (time entries, expenses, completed billing milestones), in a stable order. An item approved after
        its period was billed is still here, so it lands on the next invoice. Reads only."""
        ...

    async def list_billable_items_of(
        self,
        project_ids: Sequence[str] | None,
        *,
        through: dt.date,
        limit: int,
        cursor: str | None = None,
        kind: BillableItemKind | None = None,
    ) -> BillableItemPage:
        """``list_billable_items`` of several projects in one listing (each item names its project), or of
        every project the PSA has (``project_ids`` None), or of one ``kind`` only; a project the PSA does
        not have has no items. Pages of at most ``MAX_BILLABLE_PAGE``. For a view that asks every project
        the same question."""
        ...

    async def find_invoice(self, external_key: str) -> PsaInvoice | None:
        """The invoice recorded under this billing key, if any (drafts and cancelled ones included)."""
        ...

    async def get_invoice(self, invoice_id: str) -> PsaInvoice: ...

    async def list_invoices(self, project_id: str) -> list[PsaInvoice]:
        """Every invoice of the project (drafts and cancelled ones included), oldest first: what delivery
        sees billed. Reads only."""
        ...

    async def create_invoice(self, command: PsaInvoiceCreate) -> tuple[PsaInvoice, bool]:
        """Record an invoice against exactly ``command``'s items, which the PSA then marks invoiced;
        ``(invoice, created)``. One per ``external_key``: an invoice already recorded under it is returned
        (``created`` False). An item already on another invoice: ``VendorRejected`` naming it, nothing
        recorded."""
        ...

    async def finalize_invoice(
        self, invoice_id: str, *, erp_invoice_id: str, erp_invoice_number: str | None
    ) -> PsaInvoice:
        """A draft becomes the issued invoice, referring to the ERP invoice. Idempotent."""
        ...

    async def cancel_invoice(self, invoice_id: str) -> PsaInvoice:
        """Cancel the invoice: its items are billable again. Cancelling twice is harmless."""
        ...

    async def record_payment(self, invoice_id: str, payment: PsaPaymentRecord) -> PsaInvoice:
        """Tell the PSA about a payment the ERP recorded; the same ``erp_payment_id`` twice records once.
        How a partial payment shows depends on what the PSA can hold (the adapter documents it)."""
        ...

    async def close(self) -> None: ...
