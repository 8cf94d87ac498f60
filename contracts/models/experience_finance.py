"""Experience tier contract types: the finance view (unbilled work, receivables aging and DSO, invoice
lineage, invoices and billing runs waiting for finance).

Every amount is a decimal string in the currency named beside it, rounded to the cent; totals are per
currency (with the legal entity or customer they are for), never summed across currencies. A section that
feeds rows from another source (customer names, a project's deal) reports its own ``status`` so a reader
sees what a missing value means."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

import msgspec

from contracts.models.billing import PsaInvoice
from contracts.models.common import Money, MoneyAmount
from contracts.models.crm import Opportunity
from contracts.models.delivery import Expense, Milestone, Project, TimeEntry
from contracts.models.experience import SectionError, SectionStatus
from contracts.models.finance import Invoice, InvoiceLine, Payment
from contracts.models.process import Run

__all__ = [
    "AwaitingApproval",
    "AwaitingApprovalSection",
    "FinanceApprovalsView",
    "InvoiceLineage",
    "LineageBillingRun",
    "LineageBillingRunSection",
    "LineageDealSection",
    "LineageItemsSection",
    "LineageLine",
    "LineagePaymentsSection",
    "LineageProjectSection",
    "LineagePsaInvoiceSection",
    "LineageSourceItem",
    "ParkedBillingRun",
    "ParkedBillingRunsSection",
    "ReceivableAging",
    "ReceivableRow",
    "ReceivableRowsSection",
    "ReceivablesTotal",
    "ReceivablesView",
    "SectionNote",
    "UnbilledAging",
    "UnbilledCustomerTotal",
    "UnbilledEntityTotal",
    "UnbilledRow",
    "UnbilledRowsSection",
    "UnbilledView",
]

Count = Annotated[int, msgspec.Meta(ge=0)]


class SectionNote(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The state of a section whose data is merged into the rows (e.g. customer names): ``unavailable``
    says why the rows lack it."""

    status: SectionStatus
    error: SectionError | None = None


# --- unbilled work -----------------------------------------------------------------------------------------


class UnbilledAging(msgspec.Struct, kw_only=True, frozen=True):
    """Unbilled value by the age of the work: days from the item's work date to the view's date."""

    days_0_30: MoneyAmount
    days_31_60: MoneyAmount
    days_61_90: MoneyAmount
    days_over_90: MoneyAmount


class UnbilledRow(msgspec.Struct, kw_only=True, frozen=True):
    """One project's approved, billable, not yet invoiced work in one currency.

    ``amount`` is the PSA's own value of the priced items (hours x the PSA's rate, an expense's amount, a
    milestone's amount), the conventional WIP figure; the invoice prices time from the deal's rate card,
    so it can differ. ``unpriced_items`` (and ``unpriced_hours``) are items the PSA gives no value for: they
    are counted, never valued at 0."""

    legal_entity: Annotated[
        str | None,
        msgspec.Meta(
            description="The legal entity billing the project (null: neither the PSA nor the deal says)."
        ),
    ]
    customer_id: Annotated[str | None, msgspec.Meta(description="The CRM account the project is for.")]
    customer_name: str | None = None
    project_id: str
    project_name: str
    opportunity_id: str | None = None
    currency: str
    amount: MoneyAmount
    aging: UnbilledAging
    items: Count
    time_entries: Count = 0
    expenses: Count = 0
    milestones: Count = 0
    other_items: Count = 0
    hours: Decimal = Decimal(0)
    unpriced_items: Count = 0
    unpriced_hours: Decimal = Decimal(0)
    oldest_work_date: dt.date | None = None


class UnbilledRowsSection(msgspec.Struct, kw_only=True, frozen=True):
    status: SectionStatus
    items: list[UnbilledRow] = []
    next_cursor: str | None = None
    error: SectionError | None = None


class UnbilledEntityTotal(msgspec.Struct, kw_only=True, frozen=True):
    legal_entity: str | None
    currency: str
    amount: MoneyAmount
    aging: UnbilledAging
    items: Count
    unpriced_items: Count


class UnbilledCustomerTotal(msgspec.Struct, kw_only=True, frozen=True):
    customer_id: str | None
    customer_name: str | None = None
    currency: str
    amount: MoneyAmount
    aging: UnbilledAging
    items: Count
    unpriced_items: Count


class UnbilledView(msgspec.Struct, kw_only=True, frozen=True):
    """Approved, billable, not yet invoiced work through ``as_of`` (today, UTC): a page of project rows and
    totals over every row the filters select, by legal entity and currency and by customer and currency."""

    as_of: dt.date
    rows: UnbilledRowsSection
    by_legal_entity: list[UnbilledEntityTotal]
    by_customer: list[UnbilledCustomerTotal]
    deals: Annotated[
        SectionNote,
        msgspec.Meta(description="The CRM deals the projects deliver: their legal entity and customer."),
    ]
    customer_names: SectionNote


# --- receivables -------------------------------------------------------------------------------------------


class ReceivableAging(msgspec.Struct, kw_only=True, frozen=True):
    """Open balances by days past the due date on the view's date (``current``: not yet due, or no due
    date)."""

    current: MoneyAmount
    days_1_30: MoneyAmount
    days_31_60: MoneyAmount
    days_61_90: MoneyAmount
    days_over_90: MoneyAmount


class ReceivableRow(msgspec.Struct, kw_only=True, frozen=True):
    """One customer's open invoices in one legal entity and currency."""

    legal_entity: Annotated[
        str | None, msgspec.Meta(description="As the ERP says (null: the ERP's setup does not say).")
    ]
    customer_id: Annotated[str, msgspec.Meta(description="The ERP customer (the id the system tier gives).")]
    customer_name: str | None = None
    currency: str
    open: MoneyAmount
    aging: ReceivableAging
    invoices: Count
    overdue_invoices: Count
    oldest_due_date: dt.date | None = None


class ReceivableRowsSection(msgspec.Struct, kw_only=True, frozen=True):
    status: SectionStatus
    items: list[ReceivableRow] = []
    next_cursor: str | None = None
    error: SectionError | None = None


class ReceivablesTotal(msgspec.Struct, kw_only=True, frozen=True):
    """A legal entity's open receivables in one currency, aged, with its DSO."""

    legal_entity: str | None
    currency: str
    open: MoneyAmount
    aging: ReceivableAging
    invoices: Count
    invoiced_last_90_days: Annotated[
        MoneyAmount,
        msgspec.Meta(
            description="Gross invoiced (posted, partially paid or paid) in the 90 days to `as_of`."
        ),
    ]
    dso: Annotated[
        Decimal | None,
        msgspec.Meta(
            description="Days sales outstanding: `open` / `invoiced_last_90_days` x 90, to one decimal "
            "(null when nothing was invoiced in those 90 days)."
        ),
    ] = None


class ReceivablesView(msgspec.Struct, kw_only=True, frozen=True):
    """Open ERP invoices (posted or partially paid with a balance) across every ERP, aged on ``as_of``."""

    as_of: dt.date
    rows: ReceivableRowsSection
    by_legal_entity: list[ReceivablesTotal]
    customer_names: SectionNote
    skipped_invoices: Annotated[
        Count,
        msgspec.Meta(
            description="ERP invoice records the system tier could not map (left out, not guessed)."
        ),
    ] = 0


# --- invoice lineage ---------------------------------------------------------------------------------------


class LineageSourceItem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One PSA item an invoice line bills, by its source id (``time:123``, ``expense:45``, ``milestone:67``,
    ``retainer:{project}:{period}``). ``found`` false: the PSA no longer has it (or a fee has no record)."""

    source_id: str
    kind: str
    found: bool
    time_entry: TimeEntry | None = None
    expense: Expense | None = None
    milestone: Milestone | None = None


class LineageLine(msgspec.Struct, kw_only=True, frozen=True):
    line: InvoiceLine
    items: list[LineageSourceItem] = []


class LineageItemsSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    lines: list[LineageLine] = []
    error: SectionError | None = None


class LineagePsaInvoiceSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: PsaInvoice | None = None
    error: SectionError | None = None


class LineageProjectSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: Project | None = None
    error: SectionError | None = None


class LineageDealSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: Opportunity | None = None
    error: SectionError | None = None


class LineageBillingRun(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The project run that billed the invoice (``bill-{project}-{period}``) and the billing run that
    started it (its ``trigger``, ``billing-run:{id}``; absent for a run started otherwise)."""

    project_run: Run
    billing_run: Run | None = None


class LineageBillingRunSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: LineageBillingRun | None = None
    error: SectionError | None = None


class LineagePaymentsSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    items: list[Payment] = []
    error: SectionError | None = None


class InvoiceLineage(msgspec.Struct, kw_only=True, frozen=True):
    """One ERP invoice and where it came from, across ERP, PSA, CRM and the billing runs.

    ``billing_key`` is the key the billing run wrote (``bill:{project}:{period}``); an invoice no run made
    has none, and its PSA invoice, project, deal, billing run and line items are ``not_applicable``."""

    invoice: Invoice
    billing_key: str | None = None
    lines: LineageItemsSection
    psa_invoice: LineagePsaInvoiceSection
    project: LineageProjectSection
    deal: LineageDealSection
    billing_run: LineageBillingRunSection
    payments: LineagePaymentsSection


# --- waiting for finance -----------------------------------------------------------------------------------


class AwaitingApproval(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A draft ERP invoice a project run holds until finance approves it (``POST
    /process/v1/billing-runs/{billing_run_id}/approve``)."""

    run_id: str
    billing_run_id: str | None = None
    legal_entity: str | None = None
    project_id: str | None = None
    period: str | None = None
    billing_key: str | None = None
    erp_invoice_id: str | None = None
    erp_invoice_number: str | None = None
    psa_invoice_id: str | None = None
    currency: str | None = None
    net: MoneyAmount | None = None
    tax: MoneyAmount | None = None
    total: MoneyAmount | None = None
    waiting_since: dt.datetime
    age_hours: Annotated[Decimal, msgspec.Meta(description="Hours waited so far, to one decimal.")]


class AwaitingApprovalSection(msgspec.Struct, kw_only=True, frozen=True):
    status: SectionStatus
    items: list[AwaitingApproval] = []
    next_cursor: str | None = None
    totals: Annotated[
        list[Money], msgspec.Meta(description="What waits, one total per currency (every page).")
    ] = []
    count: Count = 0
    error: SectionError | None = None


class ParkedBillingRun(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A billing (project) run parked for finance: a business rule finance fixes before a replay."""

    run_id: str
    billing_run_id: str | None = None
    legal_entity: str | None = None
    subject: str
    state: str
    code: str | None = None
    step: str
    message: str
    remediation: str
    raised_at: dt.datetime
    age_hours: Decimal


class ParkedBillingRunsSection(msgspec.Struct, kw_only=True, frozen=True):
    status: SectionStatus
    items: list[ParkedBillingRun] = []
    next_cursor: str | None = None
    count: Count = 0
    error: SectionError | None = None


class FinanceApprovalsView(msgspec.Struct, kw_only=True, frozen=True):
    """What waits for finance: draft invoices to approve (oldest first) and billing runs parked for finance
    (oldest first); each list pages on its own cursor."""

    awaiting_approval: AwaitingApprovalSection
    parked: ParkedBillingRunsSection
