"""``taxAreas`` (API v2.0 "taxArea" resource): read-only here, as finance sets them up in the client."""

from __future__ import annotations

from sandboxes.business_central.entities import EntitySet

__all__ = ["TAX_AREAS"]

# API v2.0 taxAreas (learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/
# dynamics_taxarea): a customer's taxAreaId points at one; served read-only here (set up by finance).
TAX_AREAS = EntitySet(
    name="taxAreas",
    entity_type="taxArea",
    fields={
        "id": "guid",
        "code": "code",
        "displayName": "text",
        "taxType": "enum",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(),
    max_lengths={"code": 20, "displayName": 100},
    enums={"taxType": ("Sales_x0020_Tax", "VAT")},
    order=("code",),
    table="Tax Area",
)
