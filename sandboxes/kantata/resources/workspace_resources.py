"""Workspace resources (staffing demand by role, staffed or not): ``/api/v1/workspace_resources``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import ROLES, Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _Association,
    _belongs_to,
    _check_dates,
    _Errors,
    _Field,
    _ids_in,
    _Resource,
    _workspace_of,
)

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_workspace_resource(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None and "workspace_id" in record:
        workspace = _workspace_of(sandbox, record)
        record.setdefault("user_id", None)
        record.setdefault("allocated_minutes", 0)
        record.setdefault("start_date", workspace["start_date"])
        record.setdefault("end_date", workspace["due_date"])
    if "role_id" in record:
        record["role_name"] = ROLES[record["role_id"]]
        record.setdefault("title", record["role_name"])
    _check_dates(record, "start_date", "end_date", errors)


RESOURCE = _Resource(
    collection="workspace_resources",
    singular="workspace_resource",
    subject_type="WorkspaceResource",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "role_id": _Field(kind="choice", required=True, choices=tuple(ROLES)),
        "title": _Field(kind="string"),
        "user_id": _Field(kind="ref", target="users"),
        "allocated_minutes": _Field(kind="int", minimum=0),
        "start_date": _Field(kind="date"),
        "end_date": _Field(kind="date"),
    },
    prepare=_prepare_workspace_resource,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "user_id": _ids_in("user_id"),
        "role_id": _ids_in("role_id"),
    },
    orders=_TIMESTAMP_ORDERS | {"start_date"},
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "user": _Association("users", None, _belongs_to("user_id")),
    },
)
