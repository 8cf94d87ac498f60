"""Experience tier contract types: role views. Each section reports its own status, so a view degrades
section by section when one source is down instead of failing whole."""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

from contracts.models.common import Money
from contracts.models.crm import Customer, Opportunity
from contracts.models.process import RuleResult

__all__ = [
    "AccountSection",
    "OpportunitiesSection",
    "OpportunityWithReadiness",
    "ReadinessSummary",
    "SalesAccountView",
    "SalesSummary",
    "SectionError",
    "SectionStatus",
    "money_totals",
]


class SectionStatus(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    NOT_APPLICABLE = "not_applicable"


class SectionError(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    detail: str | None = None


class ReadinessSummary(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    ready: bool | None = None
    failed: list[RuleResult] = []
    error: SectionError | None = None


class OpportunityWithReadiness(msgspec.Struct, kw_only=True, frozen=True):
    opportunity: Opportunity
    readiness: ReadinessSummary


class SalesSummary(msgspec.Struct, kw_only=True, frozen=True):
    open_pipeline: list[Money]
    won: list[Money]
    ready_to_activate: int
    blocked: int


class AccountSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: Customer | None = None
    error: SectionError | None = None


class OpportunitiesSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    items: list[OpportunityWithReadiness] = []
    next_cursor: str | None = None
    error: SectionError | None = None


class SalesAccountView(msgspec.Struct, kw_only=True, frozen=True):
    """Account 360 for sales: the account, a page of its opportunities with activation readiness, and
    totals for that page by currency."""

    account_id: str
    account: AccountSection
    opportunities: OpportunitiesSection
    summary: SalesSummary


def money_totals(amounts: list[tuple[str, Decimal]]) -> list[Money]:
    totals: dict[str, Decimal] = {}
    for currency, amount in amounts:
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    return [Money(amount=totals[c], currency=c) for c in sorted(totals)]
