"""``salesInvoices`` and their ``salesInvoiceLines`` (API v2.0 "salesInvoice" and "salesInvoiceLine"
resources), with the bound actions ``Microsoft.NAV.post``, ``Microsoft.NAV.cancel`` and
``Microsoft.NAV.makeCorrectiveCreditMemo`` (APIV2 - Sales Invoices, page 30012, microsoft/ALAppExtensions):
a draft takes lines (G/L ``Account`` or ``Comment``; deep insert too; a line's ``taxCode`` is the VAT product
posting group in a VAT company, whose ``VAT %`` the company's VAT posting setup gives: the line's
``taxPercent``; the VAT is rounded per VAT identifier for the whole document, see
`sandboxes.business_central.vat`) and numbers from the S-INV series; posting gives it its posted number
(the id stays) and makes it ``Open`` with its total including VAT remaining; payments applied to it settle
it (``Paid``); cancelling an unpaid posted invoice posts a corrective credit memo and makes it ``Canceled``
with nothing remaining. A draft is deleted, never cancelled."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandboxes.business_central.companies import currency
from sandboxes.business_central.customers import CUSTOMERS
from sandboxes.business_central.data import CompanySetup, Record, format_datetime
from sandboxes.business_central.entities import EntitySet, Writes, apply_body, cents, copy_record
from sandboxes.business_central.errors import DIALOG, FIELD_VALIDATION, BusinessCentralError, bad_request
from sandboxes.business_central.odata import FieldKind
from sandboxes.business_central.sales_credit_memos import credit_memo_for
from sandboxes.business_central.vat import document_vat

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = [
    "SALES_INVOICES",
    "SALES_INVOICE_LINES",
    "WRITES",
    "add_line",
    "cancel",
    "make_corrective_credit_memo",
    "post",
    "settle",
]

_LINE_FIELDS: dict[str, FieldKind] = {
    "id": "guid",
    "documentId": "guid",
    "sequence": "integer",
    "lineType": "enum",
    "lineObjectNumber": "code",
    "description": "text",
    "quantity": "decimal",
    "unitPrice": "decimal",
    "discountAmount": "decimal",
    "discountPercent": "decimal",
    "amountExcludingTax": "decimal",
    "taxCode": "code",
    "taxPercent": "decimal",
    "totalTaxAmount": "decimal",
    "amountIncludingTax": "decimal",
    "netAmount": "decimal",
}


SALES_INVOICES = EntitySet(
    name="salesInvoices",
    entity_type="salesInvoice",
    fields={
        "id": "guid",
        "number": "code",
        "externalDocumentNumber": "code",
        "invoiceDate": "date",
        "postingDate": "date",
        "dueDate": "date",
        "customerId": "guid",
        "customerNumber": "code",
        "customerName": "text",
        "currencyId": "guid",
        "currencyCode": "code",
        "pricesIncludeTax": "boolean",
        "discountAmount": "decimal",
        "totalAmountExcludingTax": "decimal",
        "totalTaxAmount": "decimal",
        "totalAmountIncludingTax": "decimal",
        "remainingAmount": "decimal",
        "status": "enum",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(
        {
            "externalDocumentNumber",
            "invoiceDate",
            "postingDate",
            "dueDate",
            "customerId",
            "customerNumber",
            "currencyCode",
        }
    ),
    max_lengths={"externalDocumentNumber": 35, "customerNumber": 20, "currencyCode": 10},
    enums={"status": ("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective")},
    order=("number",),
    table="Sales Header",
    navigation=("salesInvoiceLines",),
)
SALES_INVOICE_LINES = EntitySet(
    name="salesInvoiceLines",
    entity_type="salesInvoiceLine",
    fields=_LINE_FIELDS,
    writable=frozenset(
        {
            "sequence",
            "lineType",
            "lineObjectNumber",
            "description",
            "quantity",
            "unitPrice",
            "discountAmount",
            "discountPercent",
            "taxCode",
        }
    ),
    max_lengths={"lineObjectNumber": 20, "description": 100, "taxCode": 20},
    enums={"lineType": ("Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge")},
    order=("sequence",),
    table="Sales Line",
)


def complete(sandbox: BusinessCentralSandbox, invoice: Record, setup: CompanySetup, *, created: bool) -> None:
    company_id = invoice["companyId"]
    customer: Record | None = None
    if invoice.get("customerId"):
        customer = sandbox.records["customers"].get(invoice["customerId"])
        if customer is None or customer["companyId"] != company_id:
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                f"The Customer does not exist. Identification fields and "
                f"values: Id='{invoice['customerId']}'",
            )
        if invoice.get("customerNumber") and invoice["customerNumber"] != customer["number"]:
            raise bad_request("The customerId and customerNumber properties name different customers.")
    elif invoice.get("customerNumber"):
        customer = sandbox.by_number(CUSTOMERS, company_id, invoice["customerNumber"])
        if customer is None:
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                f"The Customer does not exist. Identification fields and "
                f"values: No.='{invoice['customerNumber']}'",
            )
    if customer is None:
        raise BusinessCentralError(
            400, FIELD_VALIDATION, "Sell-to Customer No. must have a value in Sales Header."
        )
    if customer["blocked"] in ("Invoice", "All"):
        raise BusinessCentralError(
            400,
            DIALOG,
            f"You cannot create this type of document when Customer {customer['number']} is blocked with "
            f"type {customer['blocked']}.",
        )
    changed_customer = invoice.get("customerId") != customer["id"]
    invoice["customerId"] = customer["id"]
    invoice["customerNumber"] = customer["number"]
    invoice["customerName"] = customer["displayName"]
    if invoice.get("currencyCode") is None or (
        created and changed_customer and invoice["currencyCode"] is None
    ):
        invoice["currencyCode"] = customer["currencyCode"]
    invoice["currencyCode"] = currency(invoice["currencyCode"] or "", setup, "Sales Header")
    today = sandbox.today().isoformat()
    invoice["invoiceDate"] = invoice.get("invoiceDate") or today
    invoice["postingDate"] = invoice.get("postingDate") or invoice["invoiceDate"]
    if not invoice.get("dueDate"):
        invoice["dueDate"] = (date.fromisoformat(invoice["invoiceDate"]) + timedelta(days=30)).isoformat()
    if invoice["dueDate"] < invoice["invoiceDate"]:
        raise BusinessCentralError(400, DIALOG, "Due Date must not be before Document Date.")
    total(invoice, setup)


def next_draft_number(sandbox: BusinessCentralSandbox, company_id: str) -> str:
    used = [
        int(invoice["number"][5:])
        for invoice in sandbox.entities(SALES_INVOICES, company_id)
        if invoice["number"].startswith("S-INV") and invoice["number"][5:].isdigit()
    ]
    return f"S-INV{max(used, default=100000) + 1}"


def add_line(
    sandbox: BusinessCentralSandbox, invoice: Record, setup: CompanySetup, body: Any, *, stamp: bool = True
) -> Record:
    if invoice["status"] != "Draft":
        raise BusinessCentralError(
            400, DIALOG, f"You cannot change posted sales invoice {invoice['number']}."
        )
    lines: list[Record] = invoice["salesInvoiceLines"]
    line: Record = {
        "id": str(uuid.uuid4()),
        "documentId": invoice["id"],
        "sequence": max((existing["sequence"] for existing in lines), default=0) + 10000,
        "lineType": "Item",
        "lineObjectNumber": "",
        "description": "",
        "quantity": Decimal(0),
        "unitPrice": Decimal(0),
        "discountAmount": Decimal(0),
        "discountPercent": Decimal(0),
        "taxCode": "",
    }
    apply_body(SALES_INVOICE_LINES, line, body)
    if line["lineType"] != "Comment":
        # The line takes its G/L account's VAT product posting group unless the body names one; a code the
        # company has not set up is refused as the field's table relation refuses it.
        line["taxCode"] = line["taxCode"] or setup.default_tax_code
        if line["taxCode"] not in setup.tax_codes:
            raise BusinessCentralError(
                400,
                FIELD_VALIDATION,
                f"The field VAT Prod. Posting Group of table Sales Line contains a value ({line['taxCode']}) "
                "that cannot be found in the related table (VAT Product Posting Group).",
            )
    else:
        line["taxCode"] = ""
    if line["lineType"] != "Comment":
        if not line["lineObjectNumber"]:
            raise BusinessCentralError(
                400, FIELD_VALIDATION, "No. must have a value in Sales Line: Document Type=Invoice."
            )
        if line["lineType"] == "Account" and line["lineObjectNumber"] not in setup.gl_accounts:
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                f"The G/L Account does not exist. Identification fields and values: "
                f"No.='{line['lineObjectNumber']}'",
            )
        if line["lineType"] != "Account":
            # Simplification: this sandbox has no items, resources, fixed assets or charges set up.
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                f"The {line['lineType']} does not exist. Identification fields and values: "
                f"No.='{line['lineObjectNumber']}'",
            )
    if line["quantity"] < 0 or line["unitPrice"] < 0:
        raise BusinessCentralError(400, DIALOG, "Quantity and Unit Price must not be negative on an invoice.")
    gross = line["quantity"] * line["unitPrice"]
    discount = line["discountAmount"] or cents(gross * line["discountPercent"] / 100)
    amount = cents(gross - discount)
    # taxPercent, totalTaxAmount and amountIncludingTax come with the document's VAT (`total`).
    line.update({"discountAmount": discount, "amountExcludingTax": amount, "netAmount": amount})
    sandbox.bump(line)
    lines.append(line)
    total(invoice, setup)
    if stamp:
        invoice["lastModifiedDateTime"] = format_datetime(sandbox.now())
        sandbox.bump(invoice)
    return line


def total(invoice: Record, setup: CompanySetup) -> None:
    """The invoice's totals and its lines' VAT: the VAT of each VAT identifier rounded once for the whole
    document and spread over its lines (`document_vat`), as Business Central totals a sales document."""
    net, tax = document_vat(invoice["salesInvoiceLines"], setup.tax_codes)
    invoice["totalAmountExcludingTax"] = net
    invoice["totalTaxAmount"] = tax
    invoice["totalAmountIncludingTax"] = net + tax
    if invoice["status"] == "Draft":
        invoice["remainingAmount"] = Decimal(0)


def post(sandbox: BusinessCentralSandbox, invoice: Record) -> None:
    if invoice["status"] != "Draft":
        # GetDraftInvoice (page 30012): the post action takes drafts only.
        raise BusinessCentralError(400, DIALOG, "The action can be applied to a draft invoice only.")
    if not any(line["lineType"] != "Comment" for line in invoice["salesInvoiceLines"]):
        raise BusinessCentralError(400, DIALOG, "There is nothing to post.")
    company_id = invoice["companyId"]
    used = [
        int(other["number"])
        for other in sandbox.entities(SALES_INVOICES, company_id)
        if str(other["number"]).isdigit()
    ]
    changed = copy_record(invoice)
    # Posting gives the invoice its number from the posted-invoice series; the id stays the same.
    changed["number"] = str(max(used, default=103000) + 1)
    changed["status"] = "Open"
    changed["remainingAmount"] = changed["totalAmountIncludingTax"]
    if changed["remainingAmount"] <= 0:
        changed["status"] = "Paid"
    sandbox.stamp(changed)
    sandbox.records["salesInvoices"][changed["id"]] = changed


def cancel(sandbox: BusinessCentralSandbox, invoice: Record) -> Record:
    """``Microsoft.NAV.cancel`` (page 30012 ``CancelInvoice``, codeunit "Correct Posted Sales Invoice"): a
    posted invoice nothing was paid on gets a posted corrective credit memo for all of it and reads
    ``Canceled`` with nothing remaining. The credit memo is returned."""
    if invoice["status"] in ("Draft", "In Review"):
        raise BusinessCentralError(400, DIALOG, "The action can be applied to a posted invoice only.")
    if invoice["status"] == "Canceled":
        raise BusinessCentralError(
            400, DIALOG, "The invoice cannot be canceled because it has already been canceled."
        )
    if invoice["status"] == "Paid" or Decimal(invoice["remainingAmount"]) != Decimal(
        invoice["totalAmountIncludingTax"]
    ):
        # TestCorrectInvoiceIsAllowed: PostedInvoiceIsPaidCancelErr (AL's "\\" is a new line).
        raise BusinessCentralError(
            400,
            DIALOG,
            "You cannot cancel this posted sales invoice because it is fully or partially paid.\n"
            "To reverse a paid sales invoice, you must manually create a sales credit memo.",
        )
    memo = credit_memo_for(sandbox, invoice, posted=True)
    changed = copy_record(invoice)
    changed["status"] = "Canceled"
    changed["remainingAmount"] = Decimal(0)
    sandbox.stamp(changed)
    sandbox.records["salesInvoices"][changed["id"]] = changed
    return memo


def make_corrective_credit_memo(sandbox: BusinessCentralSandbox, invoice: Record) -> Record:
    """``Microsoft.NAV.makeCorrectiveCreditMemo`` (page 30012): a draft credit memo copying a posted invoice
    nothing was paid on; the invoice is left as it is until the credit memo is posted."""
    if invoice["status"] in ("Draft", "In Review"):
        raise BusinessCentralError(400, DIALOG, "The action can be applied to a posted invoice only.")
    if Decimal(invoice["remainingAmount"]) != Decimal(invoice["totalAmountIncludingTax"]):
        if invoice["status"] in ("Paid", "Canceled"):
            message = "The invoice is closed. The corrective credit memo will not be applied to the invoice."
        else:
            message = (
                "The invoice is partially paid or credited. The corrective credit memo may not be fully "
                "closed by the invoice."
            )
        raise BusinessCentralError(400, DIALOG, message)
    return credit_memo_for(sandbox, invoice, posted=False)


def settle(invoice: Record, remaining: Decimal) -> None:
    invoice["remainingAmount"] = remaining
    invoice["status"] = "Paid" if remaining <= 0 else "Open"


def create(sandbox: BusinessCentralSandbox, entity: Record, setup: CompanySetup, body: Any) -> None:
    entity.update(
        {
            "number": "",
            "externalDocumentNumber": "",
            "invoiceDate": None,
            "postingDate": None,
            "dueDate": None,
            "customerId": None,
            "customerNumber": "",
            "customerName": "",
            "currencyCode": None,
            "pricesIncludeTax": False,
            "discountAmount": Decimal(0),
            "status": "Draft",
            "salesInvoiceLines": [],
        }
    )
    apply_body(SALES_INVOICES, entity, body)
    complete(sandbox, entity, setup, created=True)
    lines = body.get("salesInvoiceLines") if isinstance(body, dict) else None
    if lines is not None:
        if not isinstance(lines, list):
            raise bad_request("The property 'salesInvoiceLines' must be a collection.")
        for line_body in lines:
            add_line(sandbox, entity, setup, line_body, stamp=False)
    entity["number"] = next_draft_number(sandbox, entity["companyId"])


def update(
    sandbox: BusinessCentralSandbox, entity: Record, changed: Record, written: set[str], setup: CompanySetup
) -> None:
    if entity["status"] != "Draft" and written:
        raise BusinessCentralError(400, DIALOG, f"You cannot change posted sales invoice {entity['number']}.")
    complete(sandbox, changed, setup, created=False)


def delete(sandbox: BusinessCentralSandbox, entity: Record) -> None:
    if entity["status"] != "Draft":
        raise BusinessCentralError(400, DIALOG, f"You cannot delete posted sales invoice {entity['number']}.")


WRITES = Writes(create=create, update=update, delete=delete)
