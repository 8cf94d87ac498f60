"""System API routes for the CRM domain: customers, contacts, opportunities, the activation write-back and
the invoice status sales see on the deal."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation

from apis.at_once import at_once
from apis.problems import ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    ContactPage,
    CrmInvoiceState,
    CrmInvoiceStatusUpdate,
    Customer,
    CustomerPage,
    InvoiceTotals,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityPage,
    OpportunityStage,
)
from system_apis.crm.port import MAX_ACCOUNTS_BY_ID, CrmPort
from system_apis.params import (
    Cursor,
    Limit,
    ModifiedSince,
    RecordIdPath,
    cursor_errors,
    customers_by_id,
    since,
)

__all__ = ["crm_routes"]

Crm = NamedDependency[SkipValidation[CrmPort]]
AccountId = Annotated[str, RecordIdPath]
Stage = Annotated[OpportunityStage | None, QueryParameter(description="Only opportunities in this stage.")]
WithTerms = Annotated[
    bool,
    QueryParameter(
        description="Each opportunity with its deal milestones and rate card, as the single read gives them "
        "(without it they are empty lists)."
    ),
]
AccountIds = Annotated[
    str | None,
    QueryParameter(
        name="id",
        pattern=rf"^[A-Za-z0-9_:.-]{{1,64}}(,[A-Za-z0-9_:.-]{{1,64}}){{0,{MAX_ACCOUNTS_BY_ID - 1}}}$",
        description=f"Only these accounts (comma-separated ids, at most {MAX_ACCOUNTS_BY_ID}), all in one "
        "answer with no `next_cursor`: an id the CRM does not have is simply absent. With `modified_since`, "
        "only those changed since then; not with `cursor`; `limit` does not apply.",
        required=False,
    ),
]
_TAGS = ["crm"]


@operation(
    "GET",
    "/system/v1/crm/accounts",
    operation_id="listCrmAccounts",
    summary="List CRM accounts as canonical customers, or read several by id",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_accounts(
    crm: Crm,
    limit: Limit = 50,
    cursor: Cursor = None,
    modified_since: ModifiedSince = None,
    ids: AccountIds = None,
) -> CustomerPage:
    if ids is not None:
        return await customers_by_id(
            ids, crm.list_customers_by_id, cursor=cursor, modified_since=modified_since, what="accounts"
        )
    with cursor_errors():
        return await crm.list_customers(limit=limit, cursor=cursor, modified_since=since(modified_since))


@operation(
    "GET",
    "/system/v1/crm/accounts/{account_id:str}",
    operation_id="getCrmAccount",
    summary="Read a CRM account as a canonical customer",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_account(account_id: AccountId, crm: Crm) -> Customer:
    return await crm.get_customer(account_id)


@operation(
    "GET",
    "/system/v1/crm/accounts/{account_id:str}/contacts",
    operation_id="listCrmAccountContacts",
    summary="List an account's contacts",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_account_contacts(
    account_id: AccountId, crm: Crm, limit: Limit = 50, cursor: Cursor = None
) -> ContactPage:
    await crm.get_customer(account_id)  # an unknown account is a 404, not an empty page
    with cursor_errors():
        return await crm.list_contacts(account_id, limit=limit, cursor=cursor)


@operation(
    "GET",
    "/system/v1/crm/accounts/{account_id:str}/opportunities",
    operation_id="listCrmAccountOpportunities",
    summary="List an account's opportunities, a page at a time",
    description="Stable order; pass `next_cursor` back as `cursor` for the next page. With `with_terms=true` "
    "each opportunity carries its deal milestones and rate card, read with the page.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_account_opportunities(
    account_id: AccountId,
    crm: Crm,
    limit: Limit = 50,
    cursor: Cursor = None,
    stage: Stage = None,
    modified_since: ModifiedSince = None,
    with_terms: WithTerms = False,
) -> OpportunityPage:
    async def page() -> OpportunityPage:
        with cursor_errors():
            return await crm.list_opportunities(
                account_id,
                limit=limit,
                cursor=cursor,
                stage=stage,
                modified_since=since(modified_since),
                with_terms=with_terms,
            )

    # The account is read (an unknown one is a 404, not an empty page) alongside the page rather than
    # before it: one vendor round trip instead of two. Both are awaited, and the account's error wins, so
    # the answers are the ones the reads in turn gave.
    _, listed = await at_once(crm.get_customer(account_id), page())
    return listed


@operation(
    "GET",
    "/system/v1/crm/opportunities",
    operation_id="listCrmOpportunities",
    summary="List opportunities across accounts, by stage or change time",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_opportunities(
    crm: Crm,
    limit: Limit = 50,
    cursor: Cursor = None,
    stage: Stage = None,
    modified_since: ModifiedSince = None,
) -> OpportunityPage:
    with cursor_errors():
        return await crm.list_opportunities(
            None, limit=limit, cursor=cursor, stage=stage, modified_since=since(modified_since)
        )


@operation(
    "GET",
    "/system/v1/crm/opportunities/by-project/{project_id:str}",
    operation_id="getCrmOpportunityByProject",
    summary="Read the deal a PSA project delivers, with its deal milestones and rate card",
    description="The opportunity whose activation wrote this PSA project id back to it (the project id "
    "the deal carries, `project_id`), read in one round with its milestones and rate card: a caller that "
    "has only the project id need not read the project first. 404 when no deal carries that project id.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_opportunity_by_project(project_id: Annotated[str, RecordIdPath], crm: Crm) -> Opportunity:
    found = await crm.find_opportunity_by_project(project_id)
    if found is None:
        raise ProblemError("not-found", f"No CRM opportunity carries PSA project {project_id}.")
    return found


@operation(
    "GET",
    "/system/v1/crm/opportunities/{opportunity_id:str}",
    operation_id="getCrmOpportunity",
    summary="Read an opportunity with its deal milestones and rate card",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_opportunity(opportunity_id: Annotated[str, RecordIdPath], crm: Crm) -> Opportunity:
    return await crm.get_opportunity(opportunity_id)


@operation(
    "PATCH",
    "/system/v1/crm/opportunities/{opportunity_id:str}/activation",
    operation_id="updateCrmOpportunityActivation",
    summary="Write the activation outcome back to the opportunity",
    description="Sets the activation status and the ids the deal now has in the PSA and ERP. Fields left out "
    "are not changed; the same update twice changes nothing.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    tags=_TAGS,
)
async def update_opportunity_activation(
    opportunity_id: Annotated[str, RecordIdPath],
    data: JSONBody[OpportunityActivationUpdate],
    crm: Crm,
) -> Opportunity:
    return await crm.update_opportunity_activation(opportunity_id, data)


@operation(
    "PUT",
    "/system/v1/crm/opportunities/{opportunity_id:str}/invoices/{erp_invoice_id:str}",
    operation_id="putCrmOpportunityInvoiceStatus",
    summary="Write one ERP invoice's status where sales see it, and answer the deal's invoice totals",
    description="One record per ERP invoice under the opportunity (and its account), keyed by the ERP "
    "invoice id: PUT the invoice's whole current state. An update older than the stored one "
    "(`erp_updated_at`) changes nothing; the same update twice changes nothing the second time. Answers "
    "the opportunity's "
    "invoiced, paid and overdue totals over all its invoices, in the deal's currency.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    tags=_TAGS,
)
async def put_invoice_status(
    opportunity_id: Annotated[str, RecordIdPath],
    erp_invoice_id: Annotated[str, RecordIdPath],
    data: JSONBody[CrmInvoiceState],
    crm: Crm,
) -> InvoiceTotals:
    update = CrmInvoiceStatusUpdate(
        opportunity_id=opportunity_id, erp_invoice_id=erp_invoice_id, **msgspec.structs.asdict(data)
    )
    return await crm.upsert_invoice_status(update)


crm_routes = [
    list_accounts,
    get_account,
    list_account_contacts,
    list_account_opportunities,
    list_opportunities,
    get_opportunity_by_project,
    get_opportunity,
    update_opportunity_activation,
    put_invoice_status,
]
