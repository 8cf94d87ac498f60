"""``salesCreditMemos`` (API v2.0 "salesCreditMemo" resource), as far as billing needs them: the credit memos
Business Central makes from a posted sales invoice. Read-only here (a user keys credit memos in the client).

- ``Microsoft.NAV.cancel`` on an invoice posts a corrective credit memo for all of it: ``status``
  ``Corrective``, ``invoiceNumber`` the invoice's ``Applies-to Doc. No.``, ``invoiceId`` computed from it
  (APIV2 - Sales Credit Memos, page 30038, microsoft/ALAppExtensions: ``invoiceId`` is a page variable set
  from ``Applies-to Doc. No.``, so only ``invoiceNumber`` is a table field a filter can use);
- ``Microsoft.NAV.makeCorrectiveCreditMemo`` makes a **draft** credit memo copying the invoice (page 30012,
  ``CreateCreditMemoCopyDocument``), left for a user to review and post; the invoice stays as it is.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandboxes.business_central.data import ZERO_GUID, Record, format_datetime
from sandboxes.business_central.entities import EntitySet

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = ["SALES_CREDIT_MEMOS", "credit_memo_for", "derived"]

SALES_CREDIT_MEMOS = EntitySet(
    name="salesCreditMemos",
    entity_type="salesCreditMemo",
    fields={
        "id": "guid",
        "number": "code",
        "externalDocumentNumber": "code",
        "creditMemoDate": "date",
        "postingDate": "date",
        "dueDate": "date",
        "customerId": "guid",
        "customerNumber": "code",
        "customerName": "text",
        "currencyId": "guid",
        "currencyCode": "code",
        "totalAmountExcludingTax": "decimal",
        "totalTaxAmount": "decimal",
        "totalAmountIncludingTax": "decimal",
        "status": "enum",
        "lastModifiedDateTime": "datetime",
        "invoiceId": "guid",
        "invoiceNumber": "code",
    },
    writable=frozenset(),
    max_lengths={"externalDocumentNumber": 35, "customerNumber": 20, "invoiceNumber": 20},
    enums={"status": ("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective")},
    order=("number",),
    table="Sales Cr.Memo Header",
)


def credit_memo_for(sandbox: BusinessCentralSandbox, invoice: Record, *, posted: bool) -> Record:
    """A credit memo for all of ``invoice`` (posted by a cancel, a draft from makeCorrectiveCreditMemo)."""
    company_id = invoice["companyId"]
    memos = sandbox.entities(SALES_CREDIT_MEMOS, company_id)
    if posted:
        used = [int(memo["number"]) for memo in memos if str(memo["number"]).isdigit()]
        number = str(max(used, default=104000) + 1)
    else:
        used = [int(memo["number"][4:]) for memo in memos if str(memo["number"])[4:].isdigit()]
        number = f"S-CR{max(used, default=100000) + 1}"
    today = sandbox.today().isoformat()
    memo: Record = {
        "id": str(uuid.uuid4()),
        "companyId": company_id,
        "number": number,
        "externalDocumentNumber": invoice["externalDocumentNumber"],
        "creditMemoDate": today,
        "postingDate": today,
        "dueDate": today,
        "customerId": invoice["customerId"],
        "customerNumber": invoice["customerNumber"],
        "customerName": invoice["customerName"],
        "currencyCode": invoice["currencyCode"],
        "totalAmountExcludingTax": Decimal(invoice["totalAmountExcludingTax"]),
        "totalTaxAmount": Decimal(invoice["totalTaxAmount"]),
        "totalAmountIncludingTax": Decimal(invoice["totalAmountIncludingTax"]),
        # A posted corrective credit memo reads "Corrective" (Sales Cr. Memo Entity Buffer: Corrective when
        # it cancelled an invoice); a draft reads "Draft".
        "status": "Corrective" if posted else "Draft",
        "lastModifiedDateTime": format_datetime(sandbox.now()),
        "invoiceNumber": invoice["number"],
    }
    sandbox.bump(memo)
    sandbox.records.setdefault(SALES_CREDIT_MEMOS.name, {})[memo["id"]] = memo
    return memo


def derived(sandbox: BusinessCentralSandbox, memo: Record) -> dict[str, Any]:
    """``invoiceId``: the id of the posted invoice ``invoiceNumber`` names (the empty GUID for none)."""
    number = memo.get("invoiceNumber") or ""
    invoice = next(
        (
            invoice
            for invoice in sandbox.records["salesInvoices"].values()
            if number
            and invoice["companyId"] == memo["companyId"]
            and invoice["number"] == number
            and invoice["status"] != "Draft"
        ),
        None,
    )
    return {"invoiceId": invoice["id"] if invoice is not None else ZERO_GUID}
