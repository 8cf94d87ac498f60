"""Canonical billing objects: the work that can be billed (the PSA's world), the invoice the PSA records
against the exact items it billed, the invoice status sales see in the CRM, and what a payment does to an
invoice. The ERP's invoice and payment themselves are in `contracts.models.finance`.

The trail from an invoice to the hours behind it is kept by ids on both sides: an ERP invoice line names
the billable items it bills (``InvoiceLineInput.source_ids``), and the PSA invoice names the same items
(``PsaInvoice.time_entry_ids`` ...), so an item is on at most one invoice and finance can walk from either
end to the other.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated

import msgspec

from contracts.models.common import (
    MONEY_BOUND,
    NON_NEGATIVE_ERP_MONEY,
    CurrencyCode,
    ExternalKey,
    Money,
    MoneyAmount,
    NonEmptyText,
    NonNegativeMoneyAmount,
    RecordId,
    SkippedRecord,
    SystemIds,
    money_as_kept,
    require_decimal,
)

__all__ = [
    "UNBILLED_AGE_BUCKETS",
    "BillableItem",
    "BillableItemKind",
    "BillableItemPage",
    "CrmInvoiceState",
    "CrmInvoiceStatus",
    "CrmInvoiceStatusUpdate",
    "InvoiceTotals",
    "PsaFeeItem",
    "PsaInvoice",
    "PsaInvoiceCreate",
    "PsaInvoiceFinalize",
    "PsaInvoiceStatus",
    "PsaPaymentRecord",
    "unbilled_age_bucket",
]

# One PSA invoice can bill a month of a large project's time: Kantata takes the item ids as lists.
_ITEM_IDS_MAX = 5000
ItemIds = Annotated[list[RecordId], msgspec.Meta(max_length=_ITEM_IDS_MAX)]


class BillableItemKind(enum.StrEnum):
    """What a billable item is: approved time, an approved billable expense, a completed billing milestone,
    or a retainer's fee for a period."""

    TIME = "time"
    EXPENSE = "expense"
    MILESTONE = "milestone"
    RETAINER = "retainer"


class BillableItem(msgspec.Struct, kw_only=True, frozen=True):
    """One piece of approved, billable work in the PSA, with its source id.

    Time is priced by the billing run from the deal's rate card (``quantity`` hours x the role's rate);
    ``rate`` is what the PSA itself holds, for comparison only. An expense and a milestone carry their own
    ``amount``."""

    id: str
    kind: BillableItemKind
    project_id: str
    date: dt.date
    description: str
    quantity: Decimal = Decimal(1)
    role: str | None = None
    person_id: str | None = None
    rate: Money | None = None
    amount: Money | None = None
    invoiced: bool = False
    psa_invoice_id: str | None = None
    approved_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)

    def psa_value(self) -> Money | None:
        """What the PSA says the item is worth, rounded to the currency's minor unit as the PSA keeps it: an
        expense's or a milestone's amount, time's hours x the PSA's rate; None where the PSA gives no price
        (unpriced work is counted as such, never as 0). This is work-in-progress value; the invoice prices
        time from the deal's rate card, which may differ."""
        if self.amount is not None:
            return Money(
                amount=money_as_kept(self.amount.amount, self.amount.currency), currency=self.amount.currency
            )
        if self.rate is not None:
            value = money_as_kept(self.quantity * self.rate.amount, self.rate.currency)
            return Money(amount=value, currency=self.rate.currency)
        return None


# How old unbilled work is, by the days since it was done: finance's aging of work in progress.
UNBILLED_AGE_BUCKETS = ("0-30", "31-60", "61-90", "90+")


def unbilled_age_bucket(age_days: int) -> str:
    """The age bucket (``UNBILLED_AGE_BUCKETS``) of work done ``age_days`` ago."""
    if age_days <= 30:
        return "0-30"
    if age_days <= 60:
        return "31-60"
    if age_days <= 90:
        return "61-90"
    return "90+"


class BillableItemPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[BillableItem]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class PsaFeeItem(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A fee billed without a PSA item behind it (a retainer's monthly fee, a retainer's overage)."""

    description: NonEmptyText
    amount: NonNegativeMoneyAmount

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=NON_NEGATIVE_ERP_MONEY)


class PsaInvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    CANCELLED = "cancelled"


class PsaInvoiceCreate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Record an invoice in the PSA against the exact items it bills, so the PSA marks them invoiced and
    will not bill them again. ``external_key`` (the billing key: project and period) finds an invoice
    already recorded instead of making a second one. An item already on another invoice is refused
    (``vendor-rejected`` naming it); nothing is recorded then."""

    external_key: ExternalKey
    project_id: RecordId
    currency: CurrencyCode
    invoice_date: dt.date
    due_date: dt.date
    time_entry_ids: ItemIds = []
    expense_ids: ItemIds = []
    milestone_ids: ItemIds = []
    fee_items: Annotated[list[PsaFeeItem], msgspec.Meta(max_length=50)] = []
    erp_invoice_id: RecordId | None = None
    erp_invoice_number: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    # A draft holds its items (they are invoiced) until it is finalized or cancelled.
    draft: bool = True


class PsaInvoice(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    status: PsaInvoiceStatus
    currency: str
    total: Money
    external_key: str | None = None
    erp_invoice_id: str | None = None
    erp_invoice_number: str | None = None
    invoice_date: dt.date | None = None
    due_date: dt.date | None = None
    time_entry_ids: list[str] = []
    expense_ids: list[str] = []
    milestone_ids: list[str] = []
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class PsaInvoiceFinalize(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Issue a PSA draft invoice as the ERP invoice it stands for (the system route's body for
    ``PsaPort.finalize_invoice``)."""

    erp_invoice_id: RecordId
    erp_invoice_number: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class PsaPaymentRecord(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A payment the ERP recorded against an invoice, told to the PSA. ``erp_payment_id`` keeps it once."""

    erp_payment_id: RecordId
    date: dt.date
    amount: MoneyAmount
    currency: CurrencyCode
    # The ERP's balance after this payment: zero means the invoice is paid in full.
    balance: NonNegativeMoneyAmount

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=MONEY_BOUND)
        require_decimal("balance", self.balance, bound=NON_NEGATIVE_ERP_MONEY)


class CrmInvoiceStatus(enum.StrEnum):
    """An invoice's state as sales see it."""

    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    VOID = "void"


class CrmInvoiceState(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One ERP invoice's current state as the CRM shows it (the body of the CRM's invoice-status PUT, whose
    path names the opportunity and the ERP invoice)."""

    customer_id: RecordId | None = None
    number: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    status: CrmInvoiceStatus
    currency: CurrencyCode
    total: NonNegativeMoneyAmount
    balance: NonNegativeMoneyAmount
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    # When the ERP last changed the invoice: an older update never overwrites a newer one.
    erp_updated_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        require_decimal("total", self.total, bound=NON_NEGATIVE_ERP_MONEY)
        require_decimal("balance", self.balance, bound=NON_NEGATIVE_ERP_MONEY)


class CrmInvoiceStatusUpdate(CrmInvoiceState, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One ERP invoice as the CRM keeps it: a record per ERP invoice under the account and the opportunity,
    upserted by ``erp_invoice_id`` (writing the same update twice changes nothing)."""

    erp_invoice_id: RecordId
    opportunity_id: RecordId

    @property
    def state(self) -> CrmInvoiceState:
        fields = msgspec.structs.asdict(self)
        del fields["erp_invoice_id"], fields["opportunity_id"]
        return CrmInvoiceState(**fields)


class InvoiceTotals(msgspec.Struct, kw_only=True, frozen=True):
    """An opportunity's invoiced, paid and overdue totals, as the CRM shows them after an update."""

    opportunity_id: str
    currency: str
    invoiced: Money
    paid: Money
    overdue: Money
    invoice_count: int
