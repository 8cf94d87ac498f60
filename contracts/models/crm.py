"""Canonical CRM objects: customers (accounts) and opportunities."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import msgspec

from contracts.models.common import CurrencyCode, SystemIds

__all__ = ["Address", "BillingModel", "Customer", "Opportunity", "OpportunityPage", "OpportunityStage"]


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


class Opportunity(msgspec.Struct, kw_only=True, frozen=True):
    """A deal. ``amount`` is a decimal string; ``currency`` is kept apart because a deal may lack one."""

    id: str
    name: str
    customer_id: str | None
    stage: OpportunityStage
    is_won: bool
    is_closed: bool
    amount: Decimal | None = None
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


class OpportunityPage(msgspec.Struct, kw_only=True, frozen=True):
    """One page of opportunities; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Opportunity]
    next_cursor: str | None = None
