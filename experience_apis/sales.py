"""The sales role view: account 360 with opportunities and their activation readiness.

Composed (``experience_apis.compose``) from three sections: the account, the page of its opportunities and
the readiness of the account's won deals (one by-account check), all three asked for at once; the readiness
section waits for the page only to put each report on its deal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter, SkipValidation

from apis.routing import VENDOR_ERRORS, operation
from contracts.models import Customer, Opportunity, OpportunityPage
from contracts.models.experience import (
    AccountSection,
    OpportunitiesSection,
    OpportunityWithReadiness,
    ReadinessSummary,
    SalesAccountView,
    SalesSummary,
    SectionError,
    SectionStatus,
    money_totals,
)
from contracts.models.process import ACCOUNT_READINESS_MAX_DEALS, AccountReadiness
from experience_apis.client import ExperienceClients
from experience_apis.compose import Composed, Section, View

__all__ = ["SALES_ACCOUNT_VIEW", "sales_routes"]


@dataclass(frozen=True, slots=True)
class _Ask:
    clients: ExperienceClients
    account_id: str
    limit: int
    cursor: str | None


async def _account(ask: _Ask, done: Composed) -> Customer:
    return await ask.clients.system.get_customer(ask.account_id)


async def _opportunities(ask: _Ask, done: Composed) -> OpportunityPage:
    return await ask.clients.system.list_opportunities(ask.account_id, limit=ask.limit, cursor=ask.cursor)


async def _readiness(ask: _Ask, done: Composed) -> AccountReadiness:
    # The check needs only the account id, so it runs beside the account and the page; the handler puts
    # each report on its deal of the page.
    return await ask.clients.process.activation_readiness_by_account(ask.account_id)


def _readiness_on(opportunity: Opportunity, answer: AccountReadiness) -> ReadinessSummary:
    """The deal's report from the by-account answer. A won deal it has none for (beyond the deals the check
    reads, or one that changed between the two reads) is unavailable, never taken as ready."""
    report = answer.reports.get(opportunity.id)
    if report is not None:
        return ReadinessSummary(status=SectionStatus.OK, ready=report.ready, failed=report.failed)
    if answer.truncated:
        detail = (
            f"the account has more than {ACCOUNT_READINESS_MAX_DEALS} deals and the readiness check read "
            "only the first of them, not this one"
        )
    else:
        detail = (
            "the readiness check did not find this deal won and not yet activated (it changed while the "
            "view was read); ask again"
        )
    return ReadinessSummary(
        status=SectionStatus.UNAVAILABLE,
        error=SectionError(code=_NOT_CHECKED, detail=detail, source=_READINESS_SOURCE),
    )


_READINESS_SOURCE = "process:activation-readiness.by-account"
# A won deal on the page without a report in the by-account answer.
_NOT_CHECKED = "not-checked"

SALES_ACCOUNT_VIEW: View[_Ask] = View(
    "sales.account",
    summary="Account 360 for sales",
    sections=[
        Section("account", ("system:crm.accounts",), _account, timeout=5.0),
        Section("opportunities", ("system:crm.opportunities",), _opportunities, timeout=5.0),
        Section(
            "readiness",
            (_READINESS_SOURCE,),
            _readiness,
            timeout=8.0,
            description=(
                "Activation readiness of each won deal not yet activated, on its opportunity: one check of "
                "the account's deals, read beside the account and the page, each report then put on its "
                "deal of the page. A won deal the check did not cover is `unavailable` with "
                f"code `{_NOT_CHECKED}` (e.g. beyond the {ACCOUNT_READINESS_MAX_DEALS} deals it reads)."
            ),
        ),
    ],
)


@operation(
    "GET",
    "/experience/v1/sales/accounts/{account_id:str}",
    operation_id="getSalesAccountView",
    summary="Account 360 for sales",
    description=(
        "The account, a page of its opportunities with activation readiness for won deals, and pipeline "
        "totals by currency for that page. A section whose source is down comes back with "
        "`status: unavailable` while the others are filled." + SALES_ACCOUNT_VIEW.describe()
    ),
    scopes=["experience:sales"],
    errors=[404, *VENDOR_ERRORS],
    tags=["sales"],
)
async def get_sales_account_view(
    account_id: Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    limit: Annotated[int, QueryParameter(ge=1, le=100, description="Opportunities per page.")] = 25,
    cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
) -> SalesAccountView:
    done = await SALES_ACCOUNT_VIEW.compose(
        _Ask(clients=clients, account_id=account_id, limit=limit, cursor=cursor)
    )
    account = done.section("account", AccountSection, lambda customer: {"data": customer})
    readiness: AccountReadiness | None = done.value_or("readiness", None)
    readiness_down = ReadinessSummary(status=SectionStatus.UNAVAILABLE, error=done.error("readiness"))

    def with_readiness(opportunity: Opportunity) -> OpportunityWithReadiness:
        # Only a won deal not yet activated can become a project; the rest need no check.
        if not opportunity.is_won or opportunity.project_id:
            summary = ReadinessSummary(status=SectionStatus.NOT_APPLICABLE)
        elif readiness is None:
            summary = readiness_down
        else:
            summary = _readiness_on(opportunity, readiness)
        return OpportunityWithReadiness(opportunity=opportunity, readiness=summary)

    opportunities = done.section(
        "opportunities",
        OpportunitiesSection,
        lambda page: {"items": [with_readiness(o) for o in page.items], "next_cursor": page.next_cursor},
    )
    items = opportunities.items

    def priced(opps: list[Opportunity]) -> list[tuple[str, Decimal]]:
        return [(o.currency, o.amount) for o in opps if o.amount is not None and o.currency is not None]

    opps = [i.opportunity for i in items]
    summary = SalesSummary(
        open_pipeline=money_totals(priced([o for o in opps if not o.is_closed])),
        won=money_totals(priced([o for o in opps if o.is_won])),
        ready_to_activate=sum(1 for i in items if i.readiness.ready is True),
        blocked=sum(1 for i in items if i.readiness.ready is False),
    )
    return SalesAccountView(
        account_id=account_id, account=account, opportunities=opportunities, summary=summary
    )


sales_routes = [get_sales_account_view]
