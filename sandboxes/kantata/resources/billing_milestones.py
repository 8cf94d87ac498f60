"""Billing milestones (a project's billing schedule): ``/api/v1/billing_milestones``.

Kantata: "Billing milestones allow you to set up billable items in a project that are separate from the Task
Tracker work and have invoicing rules. A set of billing milestones in a project is known as the Billing
Schedule" (developer.kantata.com/tag/Billing-Milestones). They are what an invoice's
``billing_milestone_ids`` name ("When included, the billing_milestone_ids array will reference all billing
milestones included in the invoice": developer.kantata.com/kantata/specification/invoices/create-invoice),
not milestone stories.

- ``POST /api/v1/billing_milestones`` ``{"billing_milestone": {...}}`` (or up to 100 under
  ``billing_milestones``): ``title`` (required), ``workspace_id`` (required), ``amount_in_cents``,
  ``date_to_invoice``, ``story_id`` (the task it belongs to), and nested ``external_references_attributes``;
  the answer adds ``currency`` (the project's), ``billing_type``, ``invoice_id`` and ``invoice_ids``
  (developer.kantata.com/kantata/specification/billing-milestones/create-billing-milestone and the record
  shape on the tag page; mavenlink_gem ``lib/config/specification.yml``, ``billing_milestones``).
- Billing one sets ``invoice_id`` (and adds to ``invoice_ids``); cancelling the invoice or deleting its draft
  clears ``invoice_id`` (`sandboxes.kantata.resources.invoices.release_items`).
- Includes ``workspace``, ``story``, ``invoices``, ``external_references``, as documented.

Unverified: the list filters besides the documented ``date_between`` (on ``date_to_invoice``) and the
``external_reference_*`` family; ``workspace_id``, ``story_id`` and ``updated_after`` are served, as for
other collections. ``billing_type`` values (``"fixed"`` here), that an invoiced milestone's amount and
story can no longer change, and a 422 for an amount below 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _between,
    _currency_fields,
    _Errors,
    _Field,
    _ids_in,
    _references_of,
    _Resource,
    _workspace_of,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_billing_milestone(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is not None and existing.get("invoice_id") is not None:
        changed = [name for name in ("amount_in_cents", "story_id") if record.get(name) != existing.get(name)]
        if changed:
            errors.append(_validation(changed[0], "An invoiced billing milestone cannot be changed"))
            return
    if "workspace_id" not in record:
        return  # already reported as missing
    if existing is None:
        record.setdefault("amount_in_cents", 0)
        record.setdefault("date_to_invoice", None)
        record.setdefault("story_id", None)
        record["billing_type"] = "fixed"
        record["currency"] = _workspace_of(sandbox, record)["currency"]
        record["invoice_id"] = None
        record["invoice_ids"] = []
        _currency_fields(record)
    story_id = record.get("story_id")
    story = None if story_id is None else sandbox.records["stories"][story_id]
    if story is not None and story["workspace_id"] != record["workspace_id"]:
        errors.append(_validation("story_id", "Story must belong to the workspace"))


def _invoices_of(_: KantataSandbox, record: Record) -> list[str]:
    return list(record.get("invoice_ids") or [])


RESOURCE = _Resource(
    collection="billing_milestones",
    singular="billing_milestone",
    subject_type="BillingMilestone",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "title": _Field(kind="string", required=True),
        "amount_in_cents": _Field(kind="int", minimum=0),
        "date_to_invoice": _Field(kind="date"),
        "story_id": _Field(kind="ref", target="stories"),
        "external_references_attributes": _Field(kind="nested"),
    },
    prepare=_prepare_billing_milestone,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "story_id": _ids_in("story_id"),
        "date_between": _between("date_to_invoice"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS | {"date_to_invoice"},
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "story": _Association("stories", None, _belongs_to("story_id")),
        "invoices": _Association("invoices", None, _invoices_of),
        "external_references": _Association(
            "external_references", "external_reference_ids", _references_of("BillingMilestone")
        ),
    },
)
