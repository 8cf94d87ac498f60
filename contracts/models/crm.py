"""Canonical CRM objects: customers (accounts), contacts, opportunities with their deal milestones and
rate cards, and contracts; plus the write the activation workflow makes back to the opportunity."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import msgspec

from contracts.models.common import (
    MONEY_BOUND,
    CurrencyCode,
    Money,
    MoneyAmount,
    RecordId,
    SkippedRecord,
    SystemIds,
    require_decimal,
)

__all__ = [
    "ActivationStatus",
    "Address",
    "BillingModel",
    "Contact",
    "ContactPage",
    "Contract",
    "ContractStatus",
    "Customer",
    "CustomerPage",
    "DealMilestone",
    "Opportunity",
    "OpportunityActivationUpdate",
    "OpportunityPage",
    "OpportunityStage",
    "RateCardLine",
    "RateUnit",
    "RetainerTerms",
]


class OpportunityStage(enum.StrEnum):
    """Where a deal stands, in the firm's words rather than any CRM's picklist."""

    PROSPECTING = "prospecting"
    QUALIFICATION = "qualification"
    NEEDS_ANALYSIS = "needs_analysis"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"
    OTHER = "other"


class BillingModel(enum.StrEnum):
    """How the work sold will be billed."""

    TIME_AND_MATERIALS = "time_and_materials"
    FIXED_FEE = "fixed_fee"
    MILESTONE = "milestone"
    RETAINER = "retainer"


class Address(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None


class Customer(msgspec.Struct, kw_only=True, frozen=True):
    """A customer (CRM account) as every tier sees it."""

    id: str
    name: str
    legal_entity: str | None = None
    tax_jurisdiction: str | None = None
    tax_id: str | None = None
    website: str | None = None
    industry: str | None = None
    currency: CurrencyCode | None = None
    parent_id: str | None = None
    billing_address: Address | None = None
    owner_id: str | None = None
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)
    # The ERP will not invoice this customer (NetSuite credit hold, Business Central "blocked"); None: the
    # system does not say.
    credit_hold: bool | None = None


class DealMilestone(msgspec.Struct, kw_only=True, frozen=True):
    """A billable milestone agreed in the deal (milestone and fixed-fee billing)."""

    name: str
    amount: Money | None = None
    due_date: dt.date | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class RateUnit(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"


class RateCardLine(msgspec.Struct, kw_only=True, frozen=True):
    """The rate sold for a role (time-and-materials billing), per hour or per day as the deal says."""

    role: str
    rate: Money
    unit: RateUnit = RateUnit.HOUR


class RetainerTerms(msgspec.Struct, kw_only=True, frozen=True):
    """What a retainer deal bills each month: a fixed fee covering ``included_hours``; hours beyond them
    are overage, billed at the rate card's rate for the role."""

    monthly_fee: Money
    included_hours: Decimal = Decimal(0)


class ActivationStatus(enum.StrEnum):
    """How far a won deal got towards a staffed, billable project."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    ACTIVATED = "activated"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class Opportunity(msgspec.Struct, kw_only=True, frozen=True):
    """A deal. ``amount`` is a decimal string; ``currency`` is kept apart because a deal may lack one."""

    id: str
    name: str
    customer_id: str | None
    stage: OpportunityStage
    is_won: bool
    is_closed: bool
    amount: MoneyAmount | None = None
    currency: str | None = None
    close_date: dt.date | None = None
    probability: int | None = None
    billing_model: BillingModel | None = None
    legal_entity: str | None = None
    project_id: str | None = None
    activation_status: str | None = None
    owner_id: str | None = None
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)
    contract_terms: str | None = None
    milestones: list[DealMilestone] = []
    rate_card: list[RateCardLine] = []
    # A retainer deal's monthly fee and included hours (None for other billing models, or not yet set).
    retainer: RetainerTerms | None = None
    # Days from invoice date to due date the contract allows (Net 30: 30); None: the legal entity's default.
    payment_terms_days: int | None = None

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=MONEY_BOUND)


class OpportunityActivationUpdate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What activation writes back to the opportunity: where the deal now lives, and how far it got.

    Fields left out are not changed."""

    activation_status: ActivationStatus
    psa_project_id: RecordId | None = None
    erp_project_id: RecordId | None = None
    erp_customer_id: RecordId | None = None


class OpportunityPage(msgspec.Struct, kw_only=True, frozen=True):
    """One page of opportunities; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Opportunity]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class CustomerPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Customer]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class Contact(msgspec.Struct, kw_only=True, frozen=True):
    """A person at a customer (billing contact, sponsor, ...)."""

    id: str
    customer_id: str | None
    first_name: str | None = None
    last_name: str
    email: str | None = None
    phone: str | None = None
    title: str | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class ContactPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Contact]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class ContractStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_APPROVAL = "in_approval"
    ACTIVATED = "activated"
    TERMINATED = "terminated"
    EXPIRED = "expired"


class Contract(msgspec.Struct, kw_only=True, frozen=True):
    """The signed agreement a deal's work is done under."""

    id: str
    customer_id: str
    status: ContractStatus
    number: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    term_months: int | None = None
    opportunity_id: str | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)
