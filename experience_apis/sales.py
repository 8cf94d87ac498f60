"""The sales role view: account 360 with opportunities and their activation readiness."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter, SkipValidation

from apis.problems import ProblemError
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
from experience_apis.client import ExperienceClients

__all__ = ["sales_routes"]

# Readiness checks fan out to the process tier; bound them so one big page can't flood it.
READINESS_CONCURRENCY = 8


def _section_error(exc: ProblemError) -> SectionError:
    return SectionError(code=exc.kind.code, detail=exc.problem_detail)


async def _readiness(
    clients: ExperienceClients, opportunity: Opportunity, gate: asyncio.Semaphore
) -> OpportunityWithReadiness:
    # Only a won deal not yet activated can become a project; the rest need no check.
    if not opportunity.is_won or opportunity.project_id:
        return OpportunityWithReadiness(
            opportunity=opportunity, readiness=ReadinessSummary(status=SectionStatus.NOT_APPLICABLE)
        )
    async with gate:
        try:
            report = await clients.process.activation_readiness(opportunity.id)
        except ProblemError as exc:
            summary = ReadinessSummary(status=SectionStatus.UNAVAILABLE, error=_section_error(exc))
        else:
            summary = ReadinessSummary(status=SectionStatus.OK, ready=report.ready, failed=report.failed)
    return OpportunityWithReadiness(opportunity=opportunity, readiness=summary)


@operation(
    "GET",
    "/experience/v1/sales/accounts/{account_id:str}",
    operation_id="getSalesAccountView",
    summary="Account 360 for sales",
    description=(
        "The account, a page of its opportunities with activation readiness for won deals, and pipeline "
        "totals by currency for that page. A section whose source is down comes back with "
        "`status: unavailable` while the others are filled."
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
    account_result, page_result = await asyncio.gather(
        clients.system.get_customer(account_id),
        clients.system.list_opportunities(account_id, limit=limit, cursor=cursor),
        return_exceptions=True,
    )
    for result in (account_result, page_result):
        # A section stands in for a source that failed; the caller's own mistake (an unknown account, a
        # cursor we did not issue) is answered as such, not as a degraded view.
        if isinstance(result, ProblemError) and result.kind.status < 500:
            raise result
        if isinstance(result, BaseException) and not isinstance(result, ProblemError):
            raise result
    if isinstance(account_result, Customer):
        account = AccountSection(status=SectionStatus.OK, data=account_result)
    else:
        assert isinstance(account_result, ProblemError)
        account = AccountSection(status=SectionStatus.UNAVAILABLE, error=_section_error(account_result))

    items: list[OpportunityWithReadiness] = []
    if isinstance(page_result, OpportunityPage):
        gate = asyncio.Semaphore(READINESS_CONCURRENCY)
        items = list(await asyncio.gather(*(_readiness(clients, o, gate) for o in page_result.items)))
        opportunities = OpportunitiesSection(
            status=SectionStatus.OK, items=items, next_cursor=page_result.next_cursor
        )
    else:
        assert isinstance(page_result, ProblemError)
        opportunities = OpportunitiesSection(
            status=SectionStatus.UNAVAILABLE, error=_section_error(page_result)
        )

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
