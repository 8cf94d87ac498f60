"""System API routes for the PSA domain: projects as delivered, staffing demand, time and expenses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Response
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation

from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    ExpensePage,
    Project,
    ProjectCreate,
    ProjectPage,
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
from system_apis.psa.port import PeriodFilter, PsaPort

__all__ = ["psa_routes"]

Psa = NamedDependency[SkipValidation[PsaPort]]
ProjectId = Annotated[str, RecordIdPath]
ProjectFilter = Annotated[
    str | None, QueryParameter(pattern=r"^[A-Za-z0-9_:.-]{1,64}$", description="Only this project's records.")
]
DateFrom = Annotated[dt.date | None, QueryParameter(description="On or after this date.")]
DateTo = Annotated[dt.date | None, QueryParameter(description="On or before this date.")]
Approved = Annotated[bool | None, QueryParameter(description="Only approved (true) or unapproved (false).")]
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
    approved: Approved = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    modified_since: ModifiedSince = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TimeEntryPage:
    query = PeriodFilter(
        project_id=project_id,
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
    approved: Approved = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ExpensePage:
    query = PeriodFilter(project_id=project_id, approved=approved, date_from=date_from, date_to=date_to)
    with cursor_errors():
        return await psa.list_expenses(query, limit=limit, cursor=cursor)


psa_routes = [
    list_projects,
    get_project,
    create_project,
    close_project,
    list_staffing_demands,
    create_staffing_demand,
    list_time_entries,
    list_expenses,
]
