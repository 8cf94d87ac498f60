"""``customerPayments`` (API v2.0 "customerPayment" resource): payment-journal lines, posted here as soon as
they are inserted (a simplification), applied to an open invoice by ``appliesToInvoiceId`` or
``appliesToInvoiceNumber``; deleting one gives its amount back to the invoice."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandboxes.business_central.customers import CUSTOMERS
from sandboxes.business_central.data import ZERO_GUID, CompanySetup, Record
from sandboxes.business_central.entities import EntitySet, Writes, apply_body, copy_record
from sandboxes.business_central.errors import DIALOG, BusinessCentralError
from sandboxes.business_central.sales_invoices import SALES_INVOICES, settle

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = ["CUSTOMER_PAYMENTS", "WRITES"]

_PAYMENT_TOLERANCE = Decimal("0.005")

CUSTOMER_PAYMENTS = EntitySet(
    name="customerPayments",
    entity_type="customerPayment",
    fields={
        "id": "guid",
        "journalDisplayName": "code",
        "lineNumber": "integer",
        "customerId": "guid",
        "customerNumber": "code",
        "postingDate": "date",
        "documentNumber": "code",
        "externalDocumentNumber": "code",
        "amount": "decimal",
        "appliesToInvoiceId": "guid",
        "appliesToInvoiceNumber": "code",
        "description": "text",
        "comment": "text",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(
        {
            "lineNumber",
            "customerId",
            "customerNumber",
            "postingDate",
            "documentNumber",
            "externalDocumentNumber",
            "amount",
            "appliesToInvoiceId",
            "appliesToInvoiceNumber",
            "description",
            "comment",
        }
    ),
    max_lengths={
        "customerNumber": 20,
        "documentNumber": 20,
        "externalDocumentNumber": 35,
        "appliesToInvoiceNumber": 20,
        "description": 100,
        "comment": 250,
    },
    enums={},
    order=("lineNumber",),
    table="Gen. Journal Line",
)


def complete(sandbox: BusinessCentralSandbox, payment: Record, company_id: str) -> None:
    customer: Record | None = None
    if payment.get("customerId"):
        customer = sandbox.records["customers"].get(payment["customerId"])
    elif payment.get("customerNumber"):
        customer = sandbox.by_number(CUSTOMERS, company_id, payment["customerNumber"])
    if customer is None or customer["companyId"] != company_id:
        raise BusinessCentralError(
            400,
            "Internal_RecordNotFound",
            "The Customer does not exist. Identification fields and values: "
            f"No.='{payment.get('customerNumber') or payment.get('customerId')}'",
        )
    payment["customerId"], payment["customerNumber"] = customer["id"], customer["number"]
    payment["postingDate"] = payment.get("postingDate") or sandbox.today().isoformat()
    payments = sandbox.entities(CUSTOMER_PAYMENTS, company_id)
    payment["lineNumber"] = (
        payment["lineNumber"] or max((p["lineNumber"] for p in payments), default=0) + 10000
    )
    if not payment["documentNumber"]:
        numbers = [int(p["documentNumber"][2:]) for p in payments if p["documentNumber"][2:].isdigit()]
        payment["documentNumber"] = f"ZE{max(numbers, default=200000) + 1}"
    payment["description"] = payment["description"] or customer["displayName"][:100]
    amount = Decimal(payment["amount"])
    # Unverified for the API page: payment-journal amounts credit the customer, so they are negative.
    if amount >= 0:
        raise BusinessCentralError(400, DIALOG, "Amount must be negative in Gen. Journal Line.")
    invoice: Record | None = None
    # A GUID property is never null in Business Central: "not applied" is the zero GUID.
    applies_to = payment.get("appliesToInvoiceId") or ZERO_GUID
    if applies_to != ZERO_GUID:
        invoice = sandbox.records["salesInvoices"].get(applies_to)
    elif payment.get("appliesToInvoiceNumber"):
        invoice = sandbox.by_number(SALES_INVOICES, company_id, payment["appliesToInvoiceNumber"])
    if (applies_to != ZERO_GUID or payment.get("appliesToInvoiceNumber")) and (
        invoice is None or invoice["companyId"] != company_id
    ):
        raise BusinessCentralError(
            400,
            "Internal_RecordNotFound",
            "The Sales Invoice Header does not exist. Identification fields and values: "
            f"No.='{payment.get('appliesToInvoiceNumber') or payment.get('appliesToInvoiceId')}'",
        )
    if invoice is None:
        payment["appliesToInvoiceId"], payment["appliesToInvoiceNumber"] = ZERO_GUID, ""
        return
    if invoice["customerId"] != customer["id"]:
        raise BusinessCentralError(400, DIALOG, "The invoice to apply to belongs to another customer.")
    if invoice["status"] not in ("Open",):
        raise BusinessCentralError(
            400,
            DIALOG,
            f"Sales invoice {invoice['number']} is not open: nothing to apply the payment to.",
        )
    remaining = Decimal(invoice["remainingAmount"])
    if -amount > remaining + _PAYMENT_TOLERANCE:
        raise BusinessCentralError(
            400,
            DIALOG,
            f"The amount to apply ({-amount}) is greater than the remaining amount ({remaining}) of "
            f"sales invoice {invoice['number']}.",
        )
    payment["appliesToInvoiceId"], payment["appliesToInvoiceNumber"] = invoice["id"], invoice["number"]
    _resettle(sandbox, invoice, remaining + amount)


def _resettle(sandbox: BusinessCentralSandbox, invoice: Record, remaining: Decimal) -> None:
    """The invoice with ``remaining`` left: a change to it like any other (a new lastModifiedDateTime and
    etag, and a notification to the invoices' subscribers, as the customer ledger entry's application
    changes the invoice's remaining amount and status)."""
    changed = copy_record(invoice)
    settle(changed, remaining)
    sandbox.stamp(changed)
    sandbox.records["salesInvoices"][changed["id"]] = changed
    sandbox.webhooks.changed(f"companies({changed['companyId']})/salesInvoices", changed["id"], "updated")


def create(sandbox: BusinessCentralSandbox, entity: Record, setup: CompanySetup, body: Any) -> None:
    entity.update(
        {
            "journalDisplayName": "ZAHLUNG" if setup.country == "DE" else "PAYMENT",
            "lineNumber": 0,
            "customerId": None,
            "customerNumber": "",
            "postingDate": None,
            "documentNumber": "",
            "externalDocumentNumber": "",
            "amount": Decimal(0),
            "appliesToInvoiceId": None,
            "appliesToInvoiceNumber": "",
            "description": "",
            "comment": "",
        }
    )
    apply_body(CUSTOMER_PAYMENTS, entity, body)
    complete(sandbox, entity, entity["companyId"])


_MONEY = frozenset({"customerId", "customerNumber", "amount", "appliesToInvoiceId", "appliesToInvoiceNumber"})


def update(
    sandbox: BusinessCentralSandbox, entity: Record, changed: Record, written: set[str], setup: CompanySetup
) -> None:
    if written & _MONEY:
        # Simplification: the sandbox posts payments on insert, so their money cannot move.
        raise BusinessCentralError(
            400, DIALOG, "The payment has been posted. Delete it and enter a new one instead."
        )


def delete(sandbox: BusinessCentralSandbox, entity: Record) -> None:
    if entity.get("appliesToInvoiceId") in (None, ZERO_GUID):
        return
    invoice = sandbox.records["salesInvoices"].get(entity["appliesToInvoiceId"])
    if invoice is not None:
        _resettle(sandbox, invoice, Decimal(invoice["remainingAmount"]) - Decimal(entity["amount"]))


WRITES = Writes(create=create, update=update, delete=delete)
