"""System API routes for the PSA domain: projects as delivered, staffing demand, time and expenses, and
billing (the unbilled billable items of a project, and the PSA's record of the invoices that bill them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Response
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation

from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    BillableItemKind,
    BillableItemPage,
    ExpensePage,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaInvoiceFinalize,
    PsaPaymentRecord,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntryPage,
)
from system_apis.params import (
    Cursor,
    Limit,
    ModifiedSince,
    RecordIdPath,
    created_or_found,
    cursor_errors,
    since,
)
from system_apis.psa.port import (
    MAX_BILLABLE_PAGE,
    MAX_LISTING_PAGE,
    MAX_PROJECTS_AT_ONCE,
    PeriodFilter,
    PsaPort,
)

__all__ = ["psa_routes"]

Psa = NamedDependency[SkipValidation[PsaPort]]
ProjectId = Annotated[str, RecordIdPath]
ProjectFilter = Annotated[
    str | None, QueryParameter(pattern=r"^[A-Za-z0-9_:.-]{1,64}$", description="Only this project's records.")
]
ProjectIds = Annotated[
    str | None,
    QueryParameter(
        pattern=rf"^[A-Za-z0-9_:.-]{{1,64}}(,[A-Za-z0-9_:.-]{{1,64}}){{0,{MAX_PROJECTS_AT_ONCE - 1}}}$",
        description=f"The projects, comma-separated (at most {MAX_PROJECTS_AT_ONCE}). Absent: every project "
        "the PSA has, in one listing.",
        required=False,
    ),
]
ProjectIdList = Annotated[
    str,
    QueryParameter(
        pattern=rf"^[A-Za-z0-9_:.-]{{1,64}}(,[A-Za-z0-9_:.-]{{1,64}}){{0,{MAX_PROJECTS_AT_ONCE - 1}}}$",
        description=f"The projects, comma-separated (at most {MAX_PROJECTS_AT_ONCE}).",
    ),
]
BillableLimit = Annotated[
    int, QueryParameter(ge=1, le=MAX_BILLABLE_PAGE, description=f"Page size (at most {MAX_BILLABLE_PAGE}).")
]
# Time and expenses: a view reading many projects' records reads them in a few large pages.
ListingLimit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LISTING_PAGE, description=f"Page size (at most {MAX_LISTING_PAGE}).")
]
ProjectsFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=rf"^[A-Za-z0-9_:.-]{{1,64}}(,[A-Za-z0-9_:.-]{{1,64}}){{0,{MAX_PROJECTS_AT_ONCE - 1}}}$",
        description=f"Only these projects' records (comma-separated, at most {MAX_PROJECTS_AT_ONCE}): one "
        "listing for a view that asks every project. With `project_id`, both apply.",
    ),
]
DateFrom = Annotated[dt.date | None, QueryParameter(description="On or after this date.")]
DateTo = Annotated[dt.date | None, QueryParameter(description="On or before this date.")]
Approved = Annotated[bool | None, QueryParameter(description="Only approved (true) or unapproved (false).")]
InvoiceId = Annotated[str, RecordIdPath]
Through = Annotated[dt.date, QueryParameter(description="Only items dated on or before this date.")]
BillingKey = Annotated[
    str,
    QueryParameter(
        pattern=r"^[A-Za-z0-9_:.-]{1,80}$",
        description="The billing key the invoice was recorded under (`bill:{project}:{YYYY-MM}`).",
    ),
]
_TAGS = ["psa"]
_CREATED = {201: (Project, "Created."), 200: (Project, "A project already existed for this external_key.")}


@operation(
    "GET",
    "/system/v1/psa/projects",
    operation_id="listPsaProjects",
    summary="List projects as delivered",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_projects(
    psa: Psa, limit: Limit = 50, cursor: Cursor = None, modified_since: ModifiedSince = None
) -> ProjectPage:
    with cursor_errors():
        return await psa.list_projects(limit=limit, cursor=cursor, modified_since=since(modified_since))


@operation(
    "GET",
    "/system/v1/psa/projects/{project_id:str}",
    operation_id="getPsaProject",
    summary="Read a project with its milestones",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_project(project_id: ProjectId, psa: Psa) -> Project:
    return await psa.get_project(project_id)


@operation(
    "POST",
    "/system/v1/psa/projects",
    operation_id="createPsaProject",
    summary="Create a project with its milestones",
    description="One project per `external_key`: creating again with the same key returns the first (200), "
    "even when the first call's answer was lost.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success=_CREATED,
    tags=_TAGS,
)
async def create_project(data: JSONBody[ProjectCreate], psa: Psa) -> Response[Any]:
    project, created = await psa.create_project(data)
    return created_or_found(project, created, f"/system/v1/psa/projects/{project.id}")


@operation(
    "POST",
    "/system/v1/psa/projects/{project_id:str}/close",
    operation_id="closePsaProject",
    summary="Close a project (e.g. when its activation is cancelled)",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def close_project(project_id: ProjectId, psa: Psa) -> Project:
    return await psa.close_project(project_id)


@operation(
    "GET",
    "/system/v1/psa/staffing-demands",
    operation_id="listPsaStaffingDemandsOfProjects",
    summary="List the staffing demand of several projects",
    description="What `GET /system/v1/psa/projects/{project_id}/staffing-demands` lists, for up to "
    f"{MAX_PROJECTS_AT_ONCE} projects in one listing (the PSA filters by many projects at once); each "
    "demand names its `project_id`. A project the PSA does not have has none (no 404). Read whole: a "
    "project's staffing demand is a handful of roles.",
    scopes=["system:read"],
    errors=[*VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_staffing_demands_of_projects(psa: Psa, project_id: ProjectIdList) -> list[StaffingDemand]:
    return await psa.list_staffing_demands_of(project_id.split(","))


@operation(
    "GET",
    "/system/v1/psa/projects/{project_id:str}/staffing-demands",
    operation_id="listPsaStaffingDemands",
    summary="List a project's staffing demand",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_staffing_demands(project_id: ProjectId, psa: Psa) -> list[StaffingDemand]:
    return await psa.list_staffing_demands(project_id)


@operation(
    "POST",
    "/system/v1/psa/projects/{project_id:str}/staffing-demands",
    operation_id="createPsaStaffingDemand",
    summary="Raise staffing demand on a project",
    description="One demand per `external_key` per project.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={
        201: (StaffingDemand, "Created."),
        200: (StaffingDemand, "Already raised for this external_key."),
    },
    tags=_TAGS,
)
async def create_staffing_demand(
    project_id: ProjectId, data: JSONBody[StaffingDemandCreate], psa: Psa
) -> Response[Any]:
    demand, created = await psa.create_staffing_demand(project_id, data)
    return created_or_found(demand, created, f"/system/v1/psa/projects/{project_id}/staffing-demands")


@operation(
    "GET",
    "/system/v1/psa/time-entries",
    operation_id="listPsaTimeEntries",
    summary="List time entries by project, approval and period",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_time_entries(
    psa: Psa,
    project_id: ProjectFilter = None,
    project_ids: ProjectsFilter = None,
    approved: Approved = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    modified_since: ModifiedSince = None,
    limit: ListingLimit = 100,
    cursor: Cursor = None,
) -> TimeEntryPage:
    query = PeriodFilter(
        project_id=project_id,
        project_ids=tuple(project_ids.split(",")) if project_ids else None,
        approved=approved,
        date_from=date_from,
        date_to=date_to,
        modified_since=since(modified_since),
    )
    with cursor_errors():
        return await psa.list_time_entries(query, limit=limit, cursor=cursor)


@operation(
    "GET",
    "/system/v1/psa/expenses",
    operation_id="listPsaExpenses",
    summary="List expenses by project, approval and period",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_expenses(
    psa: Psa,
    project_id: ProjectFilter = None,
    project_ids: ProjectsFilter = None,
    approved: Approved = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: ListingLimit = 100,
    cursor: Cursor = None,
) -> ExpensePage:
    query = PeriodFilter(
        project_id=project_id,
        project_ids=tuple(project_ids.split(",")) if project_ids else None,
        approved=approved,
        date_from=date_from,
        date_to=date_to,
    )
    with cursor_errors():
        return await psa.list_expenses(query, limit=limit, cursor=cursor)


@operation(
    "GET",
    "/system/v1/psa/projects/{project_id:str}/billable-items",
    operation_id="listPsaBillableItems",
    summary="List a project's unbilled billable items",
    description="Approved, billable time entries, expenses and completed billing milestones not yet on an "
    "invoice, dated on or before `through`, in a stable order. A page may hold fewer than `limit` items; "
    "follow `next_cursor` until it is null.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_billable_items(
    project_id: ProjectId, psa: Psa, through: Through, limit: Limit = 100, cursor: Cursor = None
) -> BillableItemPage:
    with cursor_errors():
        return await psa.list_billable_items(project_id, through=through, limit=limit, cursor=cursor)


@operation(
    "GET",
    "/system/v1/psa/billable-items",
    operation_id="listPsaBillableItemsOfProjects",
    summary="List the unbilled billable items of several projects, or of every project",
    description="What `GET /system/v1/psa/projects/{project_id}/billable-items` lists, for up to "
    f"{MAX_PROJECTS_AT_ONCE} projects in one listing (the PSA filters by many projects at once), or without "
    "`project_id` for every project the PSA has (archived ones too), in pages of up to "
    f"{MAX_BILLABLE_PAGE}: time "
    "entries, then expenses, then completed billing milestones, each kind in a stable order across the "
    "projects; each item names its `project_id`. A project the PSA does not have has no items (no 404). A "
    "page may hold fewer than `limit` items; follow `next_cursor` until it is null.",
    scopes=["system:read"],
    errors=[*VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_billable_items_of_projects(
    psa: Psa,
    through: Through,
    project_id: ProjectIds = None,
    kind: Annotated[
        BillableItemKind | None,
        QueryParameter(description="Only this kind (read the kinds at once rather than one after another)."),
    ] = None,
    limit: BillableLimit = 100,
    cursor: Cursor = None,
) -> BillableItemPage:
    with cursor_errors():
        return await psa.list_billable_items_of(
            project_id.split(",") if project_id is not None else None,
            through=through,
            limit=limit,
            cursor=cursor,
            kind=kind,
        )


@operation(
    "GET",
    "/system/v1/psa/invoices",
    operation_id="findPsaInvoices",
    summary="Find the PSA invoice recorded under a billing key",
    description="At most one invoice (drafts and cancelled ones included); an empty list when none.",
    scopes=["system:read"],
    errors=[*VENDOR_ERRORS],
    tags=_TAGS,
)
async def find_invoices(psa: Psa, external_key: BillingKey) -> list[PsaInvoice]:
    found = await psa.find_invoice(external_key)
    return [] if found is None else [found]


@operation(
    "GET",
    "/system/v1/psa/projects/{project_id:str}/invoices",
    operation_id="listPsaProjectInvoices",
    summary="List a project's PSA invoices",
    description="Every invoice the PSA recorded for the project, oldest first, drafts and cancelled ones "
    "included (a project has one a billing period, so the list is not paged).",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_project_invoices(project_id: ProjectId, psa: Psa) -> list[PsaInvoice]:
    return await psa.list_invoices(project_id)


@operation(
    "GET",
    "/system/v1/psa/invoices/{invoice_id:str}",
    operation_id="getPsaInvoice",
    summary="Read a PSA invoice",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_invoice(invoice_id: InvoiceId, psa: Psa) -> PsaInvoice:
    return await psa.get_invoice(invoice_id)


@operation(
    "POST",
    "/system/v1/psa/invoices",
    operation_id="createPsaInvoice",
    summary="Record an invoice in the PSA against the exact items it bills",
    description="The items are marked invoiced in the PSA. One invoice per `external_key`: recording again "
    "returns the first (200), even when the first call's answer was lost. An item already on another "
    "invoice is refused (422 `vendor-rejected`, naming it) and nothing is recorded.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={
        201: (PsaInvoice, "Recorded."),
        200: (PsaInvoice, "An invoice was already recorded under this external_key."),
    },
    tags=_TAGS,
)
async def create_invoice(data: JSONBody[PsaInvoiceCreate], psa: Psa) -> Response[Any]:
    invoice, created = await psa.create_invoice(data)
    return created_or_found(invoice, created, f"/system/v1/psa/invoices/{invoice.id}")


@operation(
    "POST",
    "/system/v1/psa/invoices/{invoice_id:str}/finalize",
    operation_id="finalizePsaInvoice",
    summary="Issue a PSA draft invoice as the ERP invoice it stands for",
    description="Finalizing again answers the issued invoice; naming another ERP invoice is refused.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def finalize_invoice(invoice_id: InvoiceId, data: JSONBody[PsaInvoiceFinalize], psa: Psa) -> PsaInvoice:
    return await psa.finalize_invoice(
        invoice_id, erp_invoice_id=data.erp_invoice_id, erp_invoice_number=data.erp_invoice_number
    )


@operation(
    "POST",
    "/system/v1/psa/invoices/{invoice_id:str}/cancel",
    operation_id="cancelPsaInvoice",
    summary="Cancel a PSA invoice: its items are billable again",
    description="Cancelling twice answers the cancelled invoice; a paid one is refused.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def cancel_invoice(invoice_id: InvoiceId, psa: Psa) -> PsaInvoice:
    return await psa.cancel_invoice(invoice_id)


@operation(
    "POST",
    "/system/v1/psa/invoices/{invoice_id:str}/payments",
    operation_id="recordPsaInvoicePayment",
    summary="Tell the PSA about a payment the ERP recorded",
    description="Once per `erp_payment_id`. How a partial payment shows depends on the PSA (Kantata: a note "
    "on the invoice; the payment that clears the balance marks the whole invoice paid).",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def record_payment(invoice_id: InvoiceId, data: JSONBody[PsaPaymentRecord], psa: Psa) -> PsaInvoice:
    return await psa.record_payment(invoice_id, data)


psa_routes = [
    list_projects,
    get_project,
    create_project,
    close_project,
    list_staffing_demands,
    list_staffing_demands_of_projects,
    create_staffing_demand,
    list_time_entries,
    list_expenses,
    list_billable_items,
    list_billable_items_of_projects,
    find_invoices,
    list_project_invoices,
    get_invoice,
    create_invoice,
    finalize_invoice,
    cancel_invoice,
    record_payment,
]
