"""System API routes for the CRM domain: canonical customers and opportunities."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter, SkipValidation

from apis.problems import FieldError, ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import Customer, Opportunity, OpportunityPage, OpportunityStage
from system_apis.crm.port import CrmPort, InvalidCursor

__all__ = ["crm_routes"]

_ID = PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The record's id in the CRM.")
_TAGS = ["crm"]


@operation(
    "GET",
    "/system/v1/crm/accounts/{account_id:str}",
    operation_id="getCrmAccount",
    summary="Read a CRM account as a canonical customer",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_account(
    account_id: Annotated[str, _ID], crm: NamedDependency[SkipValidation[CrmPort]]
) -> Customer:
    return await crm.get_customer(account_id)


@operation(
    "GET",
    "/system/v1/crm/accounts/{account_id:str}/opportunities",
    operation_id="listCrmAccountOpportunities",
    summary="List an account's opportunities, a page at a time",
    description="Stable order; pass `next_cursor` back as `cursor` for the next page.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_account_opportunities(
    account_id: Annotated[str, _ID],
    crm: NamedDependency[SkipValidation[CrmPort]],
    limit: Annotated[int, QueryParameter(ge=1, le=200, description="Page size (at most 200).")] = 50,
    cursor: Annotated[
        str | None, QueryParameter(max_length=512, description="Opaque cursor from a page.")
    ] = None,
    stage: Annotated[
        OpportunityStage | None, QueryParameter(description="Only opportunities in this stage.")
    ] = None,
) -> OpportunityPage:
    await crm.get_customer(account_id)  # an unknown account is a 404, not an empty page
    try:
        return await crm.list_opportunities(account_id, limit=limit, cursor=cursor, stage=stage)
    except InvalidCursor:
        raise ProblemError(
            "validation-failed",
            "The cursor is not one this API issued.",
            errors=[FieldError(location="query", field="cursor", message="unknown or corrupted cursor")],
        ) from None


@operation(
    "GET",
    "/system/v1/crm/opportunities/{opportunity_id:str}",
    operation_id="getCrmOpportunity",
    summary="Read an opportunity in canonical shape",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_opportunity(
    opportunity_id: Annotated[str, _ID], crm: NamedDependency[SkipValidation[CrmPort]]
) -> Opportunity:
    return await crm.get_opportunity(opportunity_id)


crm_routes = [get_account, list_account_opportunities, get_opportunity]
