"""External payments (a payment recorded outside Kantata): ``/api/v1/external_payments``, as Kantata's
"Creating a new External Payment" documents it (developer.kantata.com/kantata/specification/
external-payments/create-external-payment):

- ``workspace_id`` is required: the project the payment is recorded in;
- ``invoice_id`` (optional) pays that invoice: "This automatically sets the amount attribute of the payment to
  the amount of the specified invoice, and will override any ``amount_in_cents`` parameter sent", and "a
  payment is only created for that invoice when it's a single project invoice and in a non-draft pending
  state". The invoice is then paid in full (``status`` "accepted payment", ``balance_in_cents`` 0);
- without ``invoice_id`` the payment is the project's, for ``amount_in_cents``, and no invoice changes.

So Kantata holds no partial payment of an invoice: a part payment can only be a project-level payment.

The other attribute is ``message`` (free text); a payment has no date of its own (its ``created_at`` stands
for it): Kantata's Ruby client lists ``amount_in_cents, message, invoice_id, workspace_id`` as the create
attributes and ``id, created_at, updated_at, user_id`` besides (mavenlink_gem, ``lib/config/
specification.yml``, ``external_payments``). Any other attribute is refused (422), as everywhere here.

Unverified: the refusals' wording and field; the payment's ``currency`` being the project's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import ADMIN_USER_ID, Record
from sandboxes.kantata.resources.invoices import PAID, PENDING
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _currency_fields,
    _Errors,
    _Field,
    _ids_in,
    _Resource,
    _workspace_of,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_payment(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is not None or "workspace_id" not in record:
        return
    workspace = _workspace_of(sandbox, record)
    invoice_id = record.get("invoice_id")
    if invoice_id is not None:
        invoice = sandbox.records["invoices"][invoice_id]
        if invoice["workspace_ids"] != [record["workspace_id"]]:
            errors.append(
                _validation("invoice_id", "Invoice must be a single project invoice of this project")
            )
        elif invoice["draft"] or invoice["status"] != PENDING:
            errors.append(_validation("invoice_id", "Invoice must be a non-draft, pending invoice"))
        else:
            record["amount_in_cents"] = invoice["balance_in_cents"]
    elif record.get("amount_in_cents") is None:
        errors.append(_validation("amount_in_cents", "Amount in cents can't be blank"))
    record.setdefault("invoice_id", None)
    record.setdefault("message", None)
    record["user_id"] = ADMIN_USER_ID
    record["currency"] = workspace["currency"]
    _currency_fields(record)


def _applied(sandbox: KantataSandbox, payment: Record, previous: Record | None) -> None:
    invoice_id = payment.get("invoice_id")
    if previous is None and invoice_id is not None:
        invoice = sandbox.records["invoices"][invoice_id]
        invoice["status"] = PAID
        invoice["balance_in_cents"] = 0
        sandbox.touch("Invoice", "invoice", invoice)


RESOURCE = _Resource(
    collection="external_payments",
    singular="external_payment",
    subject_type="ExternalPayment",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "invoice_id": _Field(kind="ref", target="invoices", create_only=True),
        "amount_in_cents": _Field(kind="int", minimum=1, create_only=True),
        "message": _Field(kind="text"),
    },
    prepare=_prepare_payment,
    applied=_applied,
    updatable=False,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "invoice_id": _ids_in("invoice_id"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS,
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "invoice": _Association("invoices", None, _belongs_to("invoice_id")),
        "user": _Association("users", None, _belongs_to("user_id")),
    },
)
