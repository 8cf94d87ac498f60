"""Time entries: ``/api/v1/time_entries``, deleted one by one or in bulk unless invoiced. Approval is the
admin route ``POST /__sandbox/time_entries/approve`` (`sandboxes.kantata.admin`), as Kantata approves time
through timesheet submissions (``PUT /timesheet_submissions/{id}/approve``, ``POST /timesheet_approvals``).

Fields as Kantata's Ruby client (mavenlink_gem, ``lib/config/specification.yml``, ``time_entries``) lists
them: ``role_id`` (written and answered; its ``role`` association reaches ``/roles``), ``billable``,
``rate_in_cents`` (and ``cost_rate_in_cents``), ``approved`` and ``is_invoiced`` and ``invoice_id``
(answered only), ``active_submission_id``/``recent_submission_id`` (its timesheet submissions).

Filters, per "Fetching a list of Time Entries" (developer.kantata.com/kantata/specification/time-entries/
get-time-entries): ``approved`` is "always processed as true; the actual value you provide is ignored"
(``approved=false`` still lists only approved time), ``billable`` (true or false), ``date_performed_between``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import ADMIN_USER_ID, Record, default_rate_in_cents
from sandboxes.kantata.resources.workspaces import _in_unarchived_workspace
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _between,
    _currency_fields,
    _Deletion,
    _Errors,
    _Field,
    _flag,
    _ids_in,
    _invoiced_refusal,
    _present,
    _Resource,
    _workspace_of,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_time_entry(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is not None and existing["approved"]:
        errors.append(_validation("approved", "Approved time entries cannot be edited"))
        return
    if "workspace_id" not in record:
        return  # already reported as missing
    workspace = _workspace_of(sandbox, record)
    if existing is None:
        record.setdefault("user_id", ADMIN_USER_ID)
        record.setdefault("story_id", None)
        record.setdefault("role_id", None)
        record.setdefault("billable", True)
        record.setdefault("notes", None)
        record.setdefault("rate_in_cents", default_rate_in_cents(record["user_id"], workspace["currency"]))
        record["currency"] = workspace["currency"]
        record["approved"] = False
        record["is_invoiced"] = False
        _currency_fields(record)
    story_id = record.get("story_id")
    story = None if story_id is None else sandbox.records["stories"][story_id]
    if story is not None and story["workspace_id"] != record["workspace_id"]:
        errors.append(_validation("story_id", "Story must belong to the workspace"))


RESOURCE = _Resource(
    collection="time_entries",
    singular="time_entry",
    subject_type="TimeEntry",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "date_performed": _Field(kind="date", required=True),
        "time_in_minutes": _Field(kind="int", required=True, minimum=1, maximum=24 * 60),
        "user_id": _Field(kind="ref", target="users"),
        "story_id": _Field(kind="ref", target="stories"),
        # The role the time is booked as (mavenlink_gem specification: a create and update attribute).
        "role_id": _Field(kind="ref", target="roles"),
        "billable": _Field(kind="bool"),
        "rate_in_cents": _Field(kind="int", minimum=0),
        "notes": _Field(kind="text"),
    },
    prepare=_prepare_time_entry,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "story_id": _ids_in("story_id"),
        "with_user_ids": _ids_in("user_id"),
        "date_performed_between": _between("date_performed"),
        "approved": _present("approved"),
        "billable": _flag("billable"),
        # Unverified filter: Kantata's records carry `is_invoiced`, but its documented list filters show none
        # (searched: developer.kantata.com get-time-entries); the adapter re-checks the field on every record.
        "is_invoiced": _flag("is_invoiced"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS | {"date_performed"},
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "user": _Association("users", None, _belongs_to("user_id")),
        "story": _Association("stories", None, _belongs_to("story_id")),
    },
    scope=_in_unarchived_workspace,
    # Kantata's "Deleting an existing Time Entry": not once invoiced (nor locked, nor adjusted: not modelled);
    # "Delete multiple time entries": the same, in bulk.
    deletion=_Deletion(refusal=_invoiced_refusal("Invoiced time entries cannot be deleted"), bulk=True),
)
