"""Invoices: ``/api/v1/invoices``, written as Kantata documents them (developer.kantata.com/kantata/
specification/invoices: "Creating a new Invoice", "Cancel an existing invoice", "Updating an existing
Invoice", "Deleting an existing Invoice") and as Kantata's Ruby client lists their attributes (mavenlink_gem,
``lib/config/specification.yml``, ``invoices``).

- ``POST /api/v1/invoices`` ``{"invoice": {...}}``: ``workspace_id`` (or ``workspace_ids``), the items it
  bills by id (``time_entry_ids``, ``expense_ids``, ``billing_milestone_ids``: records of
  ``/billing_milestones``, `sandboxes.kantata.resources.billing_milestones`, not milestone stories), fees as
  nested ``fixed_fee_items`` and ``additional_items`` (``[{"notes", "amount_in_cents", "taxable"}]``, the
  attributes the gem lists for FixedFeeItem and AdditionalItem), ``payment_schedule`` (required; days until
  due), ``invoice_date``, ``draft``, ``message``, ``suppress_emails`` and nested
  ``external_references_attributes`` (the "external_reference" the invoice carries to another system's
  invoice). Every billed time entry and expense becomes ``is_invoiced`` with ``invoice_id``; a billing
  milestone gets ``invoice_id`` (and the invoice in ``invoice_ids``); an item already on an invoice is
  refused with a 422 naming it, and nothing is written. The fees become records of their own, answered as
  ``additional_item_ids`` and ``fixed_fee_item_ids`` (side-loaded with ``include=additional_items`` or
  ``fixed_fee_items``).
- ``PUT /api/v1/invoices/{id}`` ``{"invoice": {"draft": false}}`` issues a draft (an issued invoice cannot
  become a draft again); dates and the title may change while it is not cancelled.
- ``PUT /api/v1/invoices/{id}/cancel``: ``status`` "cancelled", ``balance_in_cents`` 0, its items billable
  again. Cancelling a paid ("accepted payment") or an already cancelled invoice is a 422.
- ``DELETE /api/v1/invoices/{id}``: drafts only (204); their items are billable again.
- ``status`` is "new" (pending), "accepted payment" (an external payment paid it: see
  `sandboxes.kantata.resources.external_payments`) or "cancelled"; ``draft`` beside it.
- Includes (as documented on every invoice endpoint): ``time_entries``, ``expenses``,
  ``billing_milestones``, ``additional_items``, ``fixed_fee_items``, ``workspaces``, ``user``,
  ``external_references``.

Filters: ``workspace_id``, ``status``, ``draft``, ``paid``, ``pending``, ``without_drafts``,
``updated_after``. Invoices are found by another system's id through ``GET /api/v1/external_references``
(``subject_type=Invoice``).

Unverified: ``price_in_cents`` as the invoice's total (the gem lists only ``balance_in_cents``; the invoice
object's full field list could not be read); the ``status`` values besides "new"; that a draft already holds
its items (``is_invoiced``) until it is deleted or cancelled; refusing unapproved or non-billable items; the
error wording; nested ``external_references_attributes`` (the gem names the create attribute
``external_reference``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sandboxes.kantata.data import ADMIN_USER_ID, Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _contains,
    _currency_fields,
    _Deletion,
    _Errors,
    _Field,
    _FilterFactory,
    _flag,
    _one_of,
    _parse_bool,
    _Predicate,
    _references_of,
    _Resource,
)
from sandboxes.kantata.wire import KantataError, _not_found, _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["PAID", "PENDING", "RESOURCE", "cancel_invoice", "release_items"]

PENDING = "new"
PAID = "accepted payment"
CANCELLED = "cancelled"

# (request field, collection, subject type, event subject, human name) of each kind of billed item.
_ITEM_KINDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("time_entry_ids", "time_entries", "TimeEntry", "time_entry", "Time entry"),
    ("expense_ids", "expenses", "Expense", "expense", "Expense"),
    (
        "billing_milestone_ids",
        "billing_milestones",
        "BillingMilestone",
        "billing_milestone",
        "Billing milestone",
    ),
)
# (request field, collection, the invoice's ids field) of each kind of fee.
_FEE_KINDS: tuple[tuple[str, str, str], ...] = (
    ("fixed_fee_items", "fixed_fee_items", "fixed_fee_item_ids"),
    ("additional_items", "additional_items", "additional_item_ids"),
)


def _minutes_amount(entry: Record) -> int:
    # Kantata bills time at its rate per hour, to the cent, rounding a part cent up (as the seed does).
    minutes, rate = int(entry["time_in_minutes"]), int(entry.get("rate_in_cents") or 0)
    return -(-minutes * rate // 60)


def _item_amount(collection: str, record: Record) -> int:
    if collection == "time_entries":
        return _minutes_amount(record)
    return int(record.get("amount_in_cents") or 0)  # expenses and billing milestones


def _billable(collection: str, record: Record) -> str | None:
    """Why ``record`` cannot go on an invoice, or None."""
    if record.get("is_invoiced") or record.get("invoice_id") is not None:
        return "has already been invoiced"
    if collection == "time_entries":
        if not record.get("billable"):
            return "is not billable"
        if not record.get("approved"):
            return "is not approved"
    elif collection == "expenses" and not record.get("is_billable"):
        return "is not billable"
    return None


def _fees(name: str, fees: Any, errors: _Errors) -> list[Record]:
    """The nested fee items, each ``{"notes", "amount_in_cents", "taxable"}``; a bad one is reported."""
    valid: list[Record] = []
    for fee in fees or []:
        amount, notes = fee.get("amount_in_cents"), fee.get("notes")
        unknown = sorted(set(fee) - {"notes", "amount_in_cents", "taxable", "story_id"})
        if unknown:
            errors.append(_validation(name, f"unknown attribute '{unknown[0]}' for {name}"))
        elif isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            errors.append(_validation(name, "Amount in cents must be a non-negative integer"))
        elif notes is not None and not isinstance(notes, str):
            errors.append(_validation(name, "Notes is invalid"))
        elif not isinstance(fee.get("taxable", False), bool):
            errors.append(_validation(name, "Taxable must be true or false"))
        else:
            valid.append(
                {
                    "notes": notes,
                    "amount_in_cents": amount,
                    "taxable": fee.get("taxable", False),
                    "story_id": fee.get("story_id"),
                }
            )
    return valid


def _prepare_create(sandbox: KantataSandbox, record: Record, errors: _Errors) -> None:
    single = record.pop("workspace_id", None)
    workspace_ids = list(record.get("workspace_ids") or ([single] if single is not None else []))
    missing = [key for key in workspace_ids if key not in sandbox.records["workspaces"]]
    if not workspace_ids or missing:
        errors.append(
            _validation("workspace_id", "Workspace can't be blank" if not missing else "is invalid")
        )
        return
    record["workspace_ids"] = workspace_ids
    currencies = {sandbox.records["workspaces"][key]["currency"] for key in workspace_ids}
    if len(currencies) != 1:
        errors.append(_validation("workspace_ids", "Workspaces must share one currency"))
        return
    total = 0
    for name, collection, _, _, human in _ITEM_KINDS:
        ids = record.setdefault(name, [])
        for item_id in ids:
            item = sandbox.records[collection].get(item_id)
            if item is None:
                errors.append(_validation(name, f"{human} {item_id} does not exist"))
                continue
            if item["workspace_id"] not in workspace_ids:
                errors.append(
                    _validation(name, f"{human} {item_id} does not belong to the invoice's project")
                )
                continue
            why = _billable(collection, item)
            if why is not None:
                errors.append(_validation(name, f"{human} {item_id} {why}"))
                continue
            total += _item_amount(collection, item)
    fees = {name: _fees(name, record.pop(name, None), errors) for name, _, _ in _FEE_KINDS}
    total += sum(fee["amount_in_cents"] for kind in fees.values() for fee in kind)
    if not any(record[name] for name, *_ in _ITEM_KINDS) and not any(fees.values()):
        errors.append(_validation("invoice", "An invoice must bill at least one item"))
    record.pop("suppress_emails", None)
    numbers = [
        int(invoice.get("user_invoice_number") or 0) for invoice in sandbox.records["invoices"].values()
    ]
    number = max(numbers, default=1040) + 1
    invoice_date = record.get("invoice_date") or sandbox._now()[:10]
    record["invoice_date"] = invoice_date
    _due(record)
    record.setdefault("draft", False)
    record["user_id"] = ADMIN_USER_ID
    record["user_invoice_number"] = number
    record.setdefault("title", f"Invoice #{number}")
    record["status"] = PENDING
    record["currency"] = currencies.pop()
    _currency_fields(record)
    record["price_in_cents"] = total
    record["balance_in_cents"] = total
    record.setdefault("message", None)
    if not errors:
        # The fees become records of their own (FixedFeeItem, AdditionalItem), named by id on the invoice.
        for name, collection, ids_field in _FEE_KINDS:
            record[ids_field] = []
            for fee in fees[name]:
                fee_id = sandbox._take_id(collection)
                sandbox.records[collection][fee_id] = {
                    "id": fee_id,
                    **fee,
                    "currency": record["currency"],
                    "workspace_id": workspace_ids[0],
                    "created_at": sandbox._now(),
                }
                record[ids_field].append(fee_id)


def _prepare_invoice(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None:
        _prepare_create(sandbox, record, errors)
        return
    if existing["status"] == CANCELLED:
        errors.append(_validation("status", "A cancelled invoice cannot be changed"))
    if existing["draft"] is False and record.get("draft") is True:
        errors.append(_validation("draft", "An issued invoice cannot be made a draft again"))
    record.pop("suppress_emails", None)
    _due(record)


def _due(record: Record) -> None:
    # `due_date` is answered, never written: Kantata derives it from `payment_schedule`, "the payment
    # schedule (i.e. 30) in days" (mavenlink_gem specification: due_date is not a create or update attribute).
    invoice_date = date.fromisoformat(record["invoice_date"])
    record["due_date"] = (invoice_date + timedelta(days=record["payment_schedule"])).isoformat()


def release_items(sandbox: KantataSandbox, invoice: Record) -> None:
    """The invoice's items are billable again (it was cancelled or its draft deleted)."""
    for name, collection, subject_type, event_subject, _ in _ITEM_KINDS:
        for item_id in invoice.get(name) or []:
            item = sandbox.records[collection].get(item_id)
            if item is not None and item.get("invoice_id") == invoice["id"]:
                if collection != "billing_milestones":  # a billing milestone has no `is_invoiced`
                    item["is_invoiced"] = False
                item["invoice_id"] = None
                sandbox.touch(subject_type, event_subject, item)


def _applied(sandbox: KantataSandbox, invoice: Record, previous: Record | None) -> None:
    if previous is not None:
        return
    for name, collection, subject_type, event_subject, _ in _ITEM_KINDS:
        for item_id in invoice[name]:
            item = sandbox.records[collection][item_id]
            if collection == "billing_milestones":
                item["invoice_ids"] = [*item.get("invoice_ids", []), invoice["id"]]
            else:
                item["is_invoiced"] = True
            item["invoice_id"] = invoice["id"]
            sandbox.touch(subject_type, event_subject, item)


def cancel_invoice(sandbox: KantataSandbox, invoice_id: str) -> Record:
    """``PUT /invoices/{id}/cancel``: the invoice is cancelled and its items billable again."""
    invoice = sandbox.records["invoices"].get(invoice_id)
    if invoice is None:
        raise _not_found("Invoice")
    if invoice["status"] == CANCELLED:
        raise KantataError.invalid("status", "Invoice has already been cancelled")
    if invoice["status"] == PAID:
        raise KantataError.invalid("status", "A paid invoice cannot be cancelled")
    invoice["status"] = CANCELLED
    invoice["balance_in_cents"] = 0
    sandbox.touch("Invoice", "invoice", invoice)
    release_items(sandbox, invoice)
    return invoice


def _status_flag(wanted_status: str, *, drafts: bool) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        if not _parse_bool(param, value):
            return lambda record: True
        return lambda record: record.get("status") == wanted_status and (drafts or not record.get("draft"))

    return factory


def _without_drafts(_: KantataSandbox, param: str, value: str) -> _Predicate:
    if not _parse_bool(param, value):
        return lambda record: True
    return lambda record: not record.get("draft")


def _invoice_workspaces(_: KantataSandbox, record: Record) -> list[str]:
    return list(record["workspace_ids"])


_FEE_LIST = _Field(kind="objects", create_only=True)


def _listed(ids_field: str) -> Callable[[KantataSandbox, Record], list[str]]:
    return lambda _, record: list(record.get(ids_field) or [])


_FILTERS: Mapping[str, _FilterFactory] = {
    "workspace_id": _contains("workspace_ids"),
    "status": _one_of("status"),
    "draft": _flag("draft"),
    "paid": _status_flag(PAID, drafts=False),
    "pending": _status_flag(PENDING, drafts=False),
    "without_drafts": _without_drafts,
    "updated_after": _after("updated_at"),
}

RESOURCE = _Resource(
    collection="invoices",
    singular="invoice",
    subject_type="Invoice",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", create_only=True),
        "workspace_ids": _Field(kind="ids", create_only=True),
        "time_entry_ids": _Field(kind="ids", create_only=True),
        "expense_ids": _Field(kind="ids", create_only=True),
        "billing_milestone_ids": _Field(kind="ids", create_only=True),
        "fixed_fee_items": _FEE_LIST,
        "additional_items": _FEE_LIST,
        "payment_schedule": _Field(kind="int", required=True, minimum=0, maximum=3650),
        "invoice_date": _Field(kind="date"),
        "title": _Field(kind="string"),
        "draft": _Field(kind="bool"),
        "message": _Field(kind="text"),
        "suppress_emails": _Field(kind="bool"),
        "external_references_attributes": _Field(kind="nested"),
    },
    prepare=_prepare_invoice,
    applied=_applied,
    filters=_FILTERS,
    orders=_TIMESTAMP_ORDERS | {"invoice_date", "due_date"},
    associations={
        "workspaces": _Association("workspaces", None, _invoice_workspaces),
        "time_entries": _Association("time_entries", None, _listed("time_entry_ids")),
        "expenses": _Association("expenses", None, _listed("expense_ids")),
        "billing_milestones": _Association("billing_milestones", None, _listed("billing_milestone_ids")),
        "additional_items": _Association("additional_items", None, _listed("additional_item_ids")),
        "fixed_fee_items": _Association("fixed_fee_items", None, _listed("fixed_fee_item_ids")),
        "user": _Association("users", None, _belongs_to("user_id")),
        "external_references": _Association(
            "external_references", "external_reference_ids", _references_of("Invoice")
        ),
    },
    deletion=_Deletion(
        refusal=lambda record: None if record.get("draft") else "Only draft invoices can be deleted",
        released=release_items,
    ),
)
