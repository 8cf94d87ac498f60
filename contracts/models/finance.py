"""Canonical finance objects (the ERP's world): customer master (and its probable duplicates), billing
schedules, invoices, payments."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated

import msgspec

from contracts.models.common import (
    MONEY_BOUND,
    POSITIVE_ERP_MONEY,
    CurrencyCode,
    DecimalBound,
    ExternalKey,
    Money,
    MoneyAmount,
    NonEmptyText,
    PositiveMoneyAmount,
    RecordId,
    SkippedRecord,
    SystemIds,
    require_decimal,
)
from contracts.models.crm import Address, BillingModel, Customer

# A quantity and a unit price may be finer than a cent (e.g. 0.125 per unit): Business Central's unit
# amounts default to 5 decimals and NetSuite rates take several; the line amount (quantity x unit price) is
# what is rounded to cents. Their integer digits are bounded so that any invoice the contract allows (up to
# 500 lines of at most 99,999.99999 units at most 9,999,999.99999 each) totals less than an ERP holds
# (ERP_MONEY_MAX): a bound on the product alone could not be stated in the contract.
QUANTITY = DecimalBound(minimum="0", exclusive=True, integer_digits=5, places=5)
UNIT_PRICE = DecimalBound(minimum="0", integer_digits=7, places=5)
Quantity = Annotated[
    Decimal,
    msgspec.Meta(description=f"Quantity (e.g. hours), {QUANTITY.describe()}.", extra=QUANTITY.as_extra()),
]
UnitPrice = Annotated[
    Decimal,
    msgspec.Meta(
        description=f"The price of one unit, {UNIT_PRICE.describe()}.",
        examples=["185.00"],
        extra=UNIT_PRICE.as_extra(),
    ),
]

__all__ = [
    "BillingSchedule",
    "BillingScheduleCreate",
    "BillingScheduleLine",
    "ChangeSubscription",
    "ChangeSubscriptionList",
    "ChangeSubscriptionRequest",
    "CustomerMatch",
    "CustomerMatchList",
    "CustomerMatchQuery",
    "CustomerUpsert",
    "Invoice",
    "InvoiceCreate",
    "InvoiceLine",
    "InvoiceLineInput",
    "InvoicePage",
    "InvoiceStatus",
    "Payment",
    "PaymentApplication",
    "PaymentPage",
    "UpsertResult",
]


class CustomerUpsert(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Create or update the ERP customer for a CRM account; ``crm_customer_id`` is the match key.

    Survivorship: the CRM owns name and hierarchy (always written); the ERP owns billing and tax fields
    (written only when the ERP has none yet)."""

    crm_customer_id: RecordId
    name: NonEmptyText
    legal_entity: str | None = None
    currency: CurrencyCode | None = None
    parent_crm_customer_id: RecordId | None = None
    tax_jurisdiction: str | None = None
    tax_id: str | None = None
    website: str | None = None
    billing_address: Address | None = None


class UpsertResult(msgspec.Struct, kw_only=True, frozen=True):
    created: bool
    id: str


class BillingScheduleLine(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One planned billing event: a date and an amount (fixed fee, milestone, retainer), or a period of
    billable time (time and materials, ``amount`` omitted)."""

    date: dt.date
    description: NonEmptyText
    amount: PositiveMoneyAmount | None = None
    milestone_name: str | None = None

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=POSITIVE_ERP_MONEY)


class BillingScheduleCreate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    external_key: ExternalKey
    billing_model: BillingModel
    currency: CurrencyCode
    lines: list[BillingScheduleLine] = []
    # The ERP customer billed. An ERP whose projects name their customer (NetSuite) reads it from the
    # project; one whose projects do not (Business Central) needs it here.
    customer_id: RecordId | None = None


class BillingSchedule(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    billing_model: BillingModel
    currency: str
    lines: list[BillingScheduleLine]
    external_key: str | None = None
    voided: bool = False
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    POSTED = "posted"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"


# The PSA items one invoice line bills (e.g. a month of one role's time entries): the line's trail.
# (No description in this Meta: the contract generator then drops the items' own RecordId constraints.)
SourceIds = Annotated[list[RecordId], msgspec.Meta(max_length=5000)]


class InvoiceLine(msgspec.Struct, kw_only=True, frozen=True):
    description: str
    quantity: Decimal
    unit_price: MoneyAmount
    amount: MoneyAmount
    # The billable items behind the line, where the ERP keeps them (empty for a line no run made).
    source_ids: list[str] = []

    def __post_init__(self) -> None:
        require_decimal("unit_price", self.unit_price, bound=MONEY_BOUND)
        require_decimal("amount", self.amount, bound=MONEY_BOUND)


class InvoiceLineInput(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    description: NonEmptyText
    quantity: Quantity = Decimal(1)
    unit_price: UnitPrice
    source_ids: SourceIds = []

    def __post_init__(self) -> None:
        require_decimal("quantity", self.quantity, bound=QUANTITY)
        require_decimal("unit_price", self.unit_price, bound=UNIT_PRICE)


class Invoice(msgspec.Struct, kw_only=True, frozen=True):
    """An ERP invoice. ``total`` is what the customer owes, tax included (gross), and ``balance`` what of it
    is still open; ``subtotal`` is the net amount (the sum of the lines, which are net) and ``tax`` the tax
    the ERP computed on it, so ``total`` = ``subtotal`` + ``tax``. Both are None where the ERP did not say
    (e.g. a list the ERP answers without them)."""

    id: str
    number: str | None
    customer_id: str
    status: InvoiceStatus
    currency: str
    total: Money
    balance: Money
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    project_id: str | None = None
    external_key: str | None = None
    lines: list[InvoiceLine] = []
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)
    # Past its due date with a balance left (computed from the ERP's due date and balance).
    overdue: bool = False
    # The credit memo that reversed a posted invoice (``status`` void) where the ERP credits, not voids.
    credit_memo_id: str | None = None
    subtotal: Annotated[
        Money | None,
        msgspec.Meta(
            description="The net amount: the sum of the lines, before tax (null: the ERP did not say)."
        ),
    ] = None
    tax: Annotated[
        Money | None,
        msgspec.Meta(
            description="The tax the ERP computed on the net amount (VAT, sales tax): `total` is `subtotal` "
            "plus `tax`, what the customer owes (null: the ERP did not say)."
        ),
    ] = None
    legal_entity: Annotated[
        str | None,
        msgspec.Meta(
            description="The legal entity whose books hold the invoice, as the ERP says (NetSuite: the "
            "invoice's subsidiary, by the account's setup; Business Central: the company's legal entity). "
            "Null: the ERP's setup does not say."
        ),
    ] = None
    customer_name: Annotated[
        str | None,
        msgspec.Meta(
            description="The customer's name as the ERP gives it with the invoice (Business Central: the "
            "invoice's `customerName`, the sell-to customer's name on it; NetSuite: the customer record's "
            "name, in invoice listings). Null where the ERP's answer does not carry it (NetSuite's read of "
            "one invoice): the customer's id is always there."
        ),
    ] = None


class InvoicePage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Invoice]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class InvoiceCreate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An invoice to raise. ``external_key`` (e.g. the billing run and period) makes it idempotent in the
    ERP: raising it twice returns the first invoice."""

    external_key: ExternalKey
    customer_id: RecordId
    currency: CurrencyCode
    issue_date: dt.date
    due_date: dt.date
    project_id: RecordId | None = None
    lines: Annotated[list[InvoiceLineInput], msgspec.Meta(min_length=1, max_length=500)]
    # A draft waits for finance's review and is posted by ``post_invoice``; otherwise the invoice is posted.
    draft: bool = False
    # The legal entity's tax code for every line; None: the ERP's default for the customer.
    tax_code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    memo: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class PaymentApplication(msgspec.Struct, kw_only=True, frozen=True):
    """The part of a payment the ERP applied to one invoice."""

    invoice_id: str
    amount: Money


class Payment(msgspec.Struct, kw_only=True, frozen=True):
    """A customer payment. ``amount`` is the whole payment; ``applications`` says how much of it went to
    each invoice (NetSuite: each ``apply`` line's amount; Business Central: a payment journal line applies
    to one invoice). ``invoice_ids`` lists the same invoices (kept for existing callers); an ERP that gives
    no split leaves ``applications`` empty."""

    id: str
    customer_id: str
    date: dt.date
    amount: Money
    invoice_ids: list[str] = []
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)
    updated_at: dt.datetime | None = None
    applications: list[PaymentApplication] = []

    def applied_to(self, invoice_id: str) -> Money | None:
        """What this payment paid on ``invoice_id``: the ERP's split, else the whole amount when the
        payment applies to that invoice alone; None when the ERP gives no split over several invoices."""
        found = [a.amount for a in self.applications if a.invoice_id == invoice_id]
        if found:
            total = sum((m.amount for m in found), Decimal(0))
            return Money(amount=total, currency=found[0].currency)
        if not self.applications and self.invoice_ids == [invoice_id]:
            return self.amount
        return None


class PaymentPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Payment]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class CustomerMatchQuery(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A CRM account to look for in the ERP's customer master before creating it there.

    An ERP customer is a probable duplicate when its normalized name (case, accents, punctuation and
    trailing legal forms such as "L.L.C." ignored) equals ``name`` and it has the same tax id (letters and
    digits compared) or the same web domain (scheme, path, port and "www." ignored). The customer already
    linked to ``crm_customer_id`` is that account's own record, never its duplicate."""

    name: NonEmptyText
    tax_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    website: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    crm_customer_id: RecordId | None = None


class CustomerMatch(msgspec.Struct, kw_only=True, frozen=True):
    """An ERP customer that is probably the same company as the account asked about, and why."""

    customer: Customer
    reason: Annotated[
        str,
        msgspec.Meta(
            description="`name+tax_id` (same normalized name and tax id) or `name+domain` (same normalized "
            "name and web domain).",
            examples=["name+tax_id"],
        ),
    ]


class CustomerMatchList(msgspec.Struct, kw_only=True, frozen=True):
    items: list[CustomerMatch]


# --- change subscriptions (an ERP pushing its changes to Stratum) -----------------------------------------


class ChangeSubscriptionRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Make every ERP that can push changes (Business Central's webhooks; NetSuite has none) notify
    ``notification_url`` when an invoice changes, each notification carrying ``client_state``."""

    notification_url: Annotated[
        str,
        msgspec.Meta(
            min_length=10,
            max_length=2048,
            pattern=r"^https?://[!-~]+$",  # printable ASCII: a URL, percent-encoded
            description="The absolute URL the ERP posts its notifications (and its handshake) to.",
        ),
    ]
    client_state: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=2048,
            description="The shared secret every notification carries back (never answered or logged).",
        ),
    ]


class ChangeSubscription(msgspec.Struct, kw_only=True, frozen=True):
    """One ERP subscription that pushes a collection's changes to the notification URL."""

    vendor: str
    resource: Annotated[str, msgspec.Meta(description="The ERP collection watched, e.g. salesInvoices.")]
    subscription_id: str
    expires_at: dt.datetime | None = None
    outcome: Annotated[
        str,
        msgspec.Meta(
            description="`created` (none existed), `renewed` (it was near its expiry, or carried another "
            "client state) or `kept` (it was there and fresh).",
            examples=["created"],
        ),
    ]


class ChangeSubscriptionList(msgspec.Struct, kw_only=True, frozen=True):
    items: list[ChangeSubscription]
