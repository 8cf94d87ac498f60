"""Expenses: ``/api/v1/expenses``, deleted in bulk (``DELETE /api/v1/expenses?ids=``) unless invoiced.

Fields as Kantata's Ruby client (mavenlink_gem, ``lib/config/specification.yml``, ``expenses``) lists them: an
expense answers ``is_billable`` and ``is_invoiced`` ("has this expense been included on an invoice?"), but is
*written* with ``billable`` (its ``create_attributes``); the sandbox also takes ``is_billable`` on a write,
which Rails would drop. Its amount is ``amount_in_cents`` in ``currency``.

Filters, per "Fetching a list of Expenses" (developer.kantata.com/kantata/specification/expenses/
get-expenses): ``approved`` ("on approved expense reports, or on a workspace that does not require
approvals"), ``date_expensed_between`` (``YYYY-MM-DD:YYYY-MM-DD``, either side may be left empty).
Approval itself happens through expense report submissions (``/expense_report_submissions``); the sandbox
approves through ``POST /__sandbox/expenses/approve``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import ADMIN_USER_ID, Record
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
    _Resource,
    _workspace_of,
)

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_expense(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if "billable" in record:
        # Kantata's write name for what it answers as `is_billable` (mavenlink_gem create_attributes).
        record["is_billable"] = record.pop("billable")
    if existing is None and "workspace_id" in record:
        workspace = _workspace_of(sandbox, record)
        record.setdefault("user_id", ADMIN_USER_ID)
        record.setdefault("currency", workspace["currency"])
        record.setdefault("is_billable", True)
        record.setdefault("reimbursable", True)
        record.setdefault("notes", None)
        record["approved"] = False
        record["is_invoiced"] = False
    if "currency" in record:
        _currency_fields(record)


RESOURCE = _Resource(
    collection="expenses",
    singular="expense",
    subject_type="Expense",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "date": _Field(kind="date", required=True),
        "category": _Field(kind="string", required=True),
        "amount_in_cents": _Field(kind="int", required=True, minimum=1),
        "currency": _Field(kind="currency"),
        "user_id": _Field(kind="ref", target="users"),
        "billable": _Field(kind="bool"),
        "is_billable": _Field(kind="bool"),
        "reimbursable": _Field(kind="bool"),
        "notes": _Field(kind="text"),
    },
    prepare=_prepare_expense,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "with_user_ids": _ids_in("user_id"),
        "date_expensed_between": _between("date", open_ended=True),
        "approved": _flag("approved"),
        "is_billable": _flag("is_billable"),
        # Unverified filter: Kantata's records carry `is_invoiced`, but its list documents no such filter
        # (searched: developer.kantata.com get-expenses); the adapter re-checks the field on every record.
        "is_invoiced": _flag("is_invoiced"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS | {"date"},
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "user": _Association("users", None, _belongs_to("user_id")),
    },
    scope=_in_unarchived_workspace,
    # Kantata's "Delete multiple expenses" (developer.kantata.com/kantata/specification/expenses/
    # delete-expenses); its docs show no single-expense delete. Refusing invoiced ones is unverified,
    # by analogy with time entries.
    deletion=_Deletion(
        refusal=_invoiced_refusal("Invoiced expenses cannot be deleted"), single=False, bulk=True
    ),
)
