"""``customers`` (API v2.0 "customer" resource): numbers from the C series, a tax area and currency that must
exist in the company, the balance due computed from open invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandboxes.business_central.companies import currency
from sandboxes.business_central.data import ZERO_GUID, CompanySetup, Record
from sandboxes.business_central.entities import EntitySet, Writes, apply_body
from sandboxes.business_central.errors import DIALOG, FIELD_VALIDATION, BusinessCentralError
from sandboxes.business_central.odata import FieldKind

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = ["CUSTOMERS", "WRITES", "complete", "derived"]

_CUSTOMER_FIELDS: dict[str, FieldKind] = {
    "id": "guid",
    "number": "code",
    "displayName": "text",
    "type": "enum",
    "addressLine1": "text",
    "addressLine2": "text",
    "city": "text",
    "state": "text",
    "country": "code",
    "postalCode": "code",
    "phoneNumber": "text",
    "email": "text",
    "website": "text",
    "taxLiable": "boolean",
    "taxAreaId": "guid",
    "taxAreaDisplayName": "text",
    "taxRegistrationNumber": "text",
    "currencyId": "guid",
    "currencyCode": "code",
    "blocked": "enum",
    "balanceDue": "decimal",
    "lastModifiedDateTime": "datetime",
}

CUSTOMERS = EntitySet(
    name="customers",
    entity_type="customer",
    fields=_CUSTOMER_FIELDS,
    writable=frozenset(_CUSTOMER_FIELDS)
    - {"id", "currencyId", "balanceDue", "lastModifiedDateTime", "taxAreaDisplayName"},
    max_lengths={
        "number": 20,
        "displayName": 100,
        "addressLine1": 100,
        "addressLine2": 50,
        "city": 30,
        "state": 30,
        "country": 10,
        "postalCode": 20,
        "phoneNumber": 30,
        "email": 80,
        "website": 80,
        "taxRegistrationNumber": 20,
        "currencyCode": 10,
    },
    enums={"type": ("Company", "Person"), "blocked": ("_x0020_", "Ship", "Invoice", "All")},
    order=("number",),
    table="Customer",
)


def complete(sandbox: BusinessCentralSandbox, entity: Record, setup: CompanySetup) -> None:
    sandbox.check_unique_number(CUSTOMERS, entity["companyId"], entity)
    area_id = entity.get("taxAreaId") or ZERO_GUID
    area = sandbox.records["taxAreas"].get(area_id)
    if area_id != ZERO_GUID and (area is None or area["companyId"] != entity["companyId"]):
        raise BusinessCentralError(
            400,
            FIELD_VALIDATION,
            f"The field Tax Area Code of table Customer contains a value ({area_id}) that cannot be "
            "found in the related table (Tax Area).",
        )
    entity["currencyCode"] = currency(entity.get("currencyCode") or "", setup, "Customer")


def create(sandbox: BusinessCentralSandbox, entity: Record, setup: CompanySetup, body: Any) -> None:
    entity.update(
        {
            "number": "",
            "displayName": "",
            "type": "Company",
            "addressLine1": "",
            "addressLine2": "",
            "city": "",
            "state": "",
            "country": "",
            "postalCode": "",
            "phoneNumber": "",
            "email": "",
            "website": "",
            "taxLiable": False,
            "taxAreaId": ZERO_GUID,
            "taxRegistrationNumber": "",
            "currencyCode": "",
            "blocked": "_x0020_",
        }
    )
    apply_body(CUSTOMERS, entity, body)
    entity["number"] = entity["number"] or sandbox.next_number(CUSTOMERS, entity["companyId"], "C", 5)
    complete(sandbox, entity, setup)


def update(
    sandbox: BusinessCentralSandbox, entity: Record, changed: Record, written: set[str], setup: CompanySetup
) -> None:
    complete(sandbox, changed, setup)


def delete(sandbox: BusinessCentralSandbox, entity: Record) -> None:
    if any(invoice["customerId"] == entity["id"] for invoice in sandbox.records["salesInvoices"].values()):
        raise BusinessCentralError(
            400,
            DIALOG,
            f"You cannot delete Customer {entity['number']} because there is at least one outstanding "
            "Sales Invoice for this customer.",
        )


def derived(sandbox: BusinessCentralSandbox, entity: Record) -> dict[str, Any]:
    """What the customer page computes: the tax area's name, the balance due of its open invoices."""
    area = sandbox.records["taxAreas"].get(entity.get("taxAreaId") or "")
    return {
        "taxAreaDisplayName": area["displayName"] if area is not None else "",
        "balanceDue": sum(
            (
                Decimal(invoice["remainingAmount"])
                for invoice in sandbox.records["salesInvoices"].values()
                if invoice["customerId"] == entity["id"] and invoice["status"] == "Open"
            ),
            Decimal(0),
        ),
    }


WRITES = Writes(create=create, update=update, delete=delete)
