"""``companies`` (API v2.0 "company" resource): the environment's companies, read-only, and what a company
is set up with (its currencies)."""

from __future__ import annotations

from sandboxes.business_central.data import CompanySetup
from sandboxes.business_central.entities import EntitySet
from sandboxes.business_central.errors import FIELD_VALIDATION, BusinessCentralError

__all__ = ["COMPANIES", "currency"]

COMPANIES = EntitySet(
    name="companies",
    entity_type="company",
    fields={
        "id": "guid",
        "systemVersion": "text",
        "timestamp": "integer",
        "name": "text",
        "displayName": "text",
        "businessProfileId": "text",
        "systemCreatedAt": "datetime",
        "systemCreatedBy": "guid",
        "systemModifiedAt": "datetime",
        "systemModifiedBy": "guid",
    },
    writable=frozenset(),
    max_lengths={},
    enums={},
    order=("name",),
    table="Company",
)


def currency(code: str, setup: CompanySetup, table: str) -> str:
    """A currency code as stored: blank for the local currency; unknown codes refused."""
    code = code.upper()
    if code in ("", setup.local_currency):
        return ""
    if code not in setup.currencies:
        raise BusinessCentralError(
            400,
            FIELD_VALIDATION,
            f"The field Currency Code of table {table} contains a value ({code}) that cannot be found in "
            "the related table (Currency).",
        )
    return code
