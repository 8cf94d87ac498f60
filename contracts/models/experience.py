"""Experience tier contract types: role views. Each section reports its own status, so a view degrades
section by section when one source is down instead of failing whole."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from contracts.models.common import Money, money_as_kept
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
    "SectionRule",
    "SectionStatus",
    "ViewRules",
    "ViewRulesList",
    "money_totals",
]


class SectionStatus(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    NOT_APPLICABLE = "not_applicable"


class SectionError(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Why a section has no data: ``code`` is the cause's problem code (``vendor-unavailable``,
    ``tier-unavailable``, ``rate-limited``, ``source-timeout``, ``source-unavailable`` for a section that
    needed another one that is unavailable), ``source`` the call that failed."""

    code: str
    detail: str | None = None
    source: str | None = None
    retry_after: int | None = None


class SectionRule(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """How a view treats one of its sections (declared with the view, in ``experience_apis``)."""

    name: str
    sources: Annotated[
        list[str],
        msgspec.Meta(description="The tier calls the section reads, e.g. `system:erp.invoices`."),
    ]
    required: bool
    timeout_ms: int
    on_down: Annotated[
        Literal["fail", "unavailable"],
        msgspec.Meta(
            description="`fail`: the view answers 503 `source-unavailable`; `unavailable`: the section comes "
            "back with `status: unavailable` and the reason, the rest of the view is filled."
        ),
    ]
    after: Annotated[
        list[str], msgspec.Meta(description="Sections whose data this one needs; it starts when they end.")
    ] = []
    description: str | None = None
    waits: Annotated[
        list[str],
        msgspec.Meta(
            description="Sections whose data this one needs for part of its work: it starts with the others "
            "and waits for them only where it needs their data; unavailable when one of them is."
        ),
    ] = []


class ViewRules(msgspec.Struct, kw_only=True, frozen=True):
    """A view's declared composition: its sections and what each one's outage does."""

    name: str
    summary: str
    sections: list[SectionRule]


class ViewRulesList(msgspec.Struct, kw_only=True, frozen=True):
    items: list[ViewRules]


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
    """One total per currency (never summed across currencies), sorted by currency, each as its currency
    writes it (``money_as_kept``)."""
    totals: dict[str, Decimal] = {}
    for currency, amount in amounts:
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    return [Money(amount=money_as_kept(totals[c], c), currency=c) for c in sorted(totals)]
