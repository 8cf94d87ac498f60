"""``GET .../api/v2.0/$metadata``: the OData CSDL (EDMX) document, derived from the entity sets served.
Unverified: the container's name (``default``) and the enum type names (the property's name)."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from typing import cast

from litestar import Response

from sandboxes.business_central.companies import COMPANIES
from sandboxes.business_central.entities import EntitySet
from sandboxes.business_central.odata import edm_type
from sandboxes.business_central.sales_invoices import SALES_INVOICE_LINES, SALES_INVOICES
from sandboxes.business_central.sandbox import ENTITY_SETS
from sandboxes.business_central.urls import ACTIONS
from sandboxes.business_central.wire import ODATA_HEADERS

__all__ = ["metadata_document", "metadata_response"]

_EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
_EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"
_SCHEMA = "Microsoft.NAV"  # the namespace of the API's types, as in its bound actions (Microsoft.NAV.post)
_XML = "application/xml"  # Litestar adds "; charset=utf-8"


def _enum_member(value: str) -> str:
    # Business Central names enum members as identifiers, a space written as "_x0020_" (as "blocked" is).
    return value.replace(" ", "_x0020_")


@functools.cache
def metadata_document() -> bytes:
    """The OData CSDL (EDMX) document at ``api/v2.0/$metadata``, derived from the entity sets served.

    ``companies`` is the one entity set of the container; each company contains the per-company sets as
    navigation properties (``ContainsTarget``), which is how their URLs read: ``companies({id})/customers``.
    """
    ET.register_namespace("edmx", _EDMX_NS)
    root = ET.Element(f"{{{_EDMX_NS}}}Edmx", Version="4.0")
    schema = ET.SubElement(ET.SubElement(root, f"{{{_EDMX_NS}}}DataServices"), "Schema")
    schema.set("xmlns", _EDM_NS)
    schema.set("Namespace", _SCHEMA)
    enums: dict[str, tuple[str, ...]] = {}
    contained: dict[str, list[EntitySet]] = {
        COMPANIES.name: list(ENTITY_SETS.values()),
        SALES_INVOICES.name: [SALES_INVOICE_LINES],
    }
    for entity_set in (COMPANIES, *ENTITY_SETS.values(), SALES_INVOICE_LINES):
        entity_type = ET.SubElement(schema, "EntityType", Name=entity_set.entity_type)
        ET.SubElement(ET.SubElement(entity_type, "Key"), "PropertyRef", Name="id")
        for name, kind in entity_set.fields.items():
            attributes = {"Name": name, "Type": edm_type(kind)}
            if kind == "enum":
                members = enums.setdefault(name, entity_set.enums[name])
                if members != entity_set.enums[name]:
                    raise ValueError(f"two enums named {name!r} differ: give one another name")
                attributes["Type"] = f"{_SCHEMA}.{name}"
            if name == "id":
                attributes["Nullable"] = "false"
            if name in entity_set.max_lengths:
                attributes["MaxLength"] = str(entity_set.max_lengths[name])
            if kind == "decimal":
                attributes["Scale"] = "Variable"
            ET.SubElement(entity_type, "Property", attributes)
        for child in contained.get(entity_set.name, []):
            ET.SubElement(
                entity_type,
                "NavigationProperty",
                Name=child.name,
                Type=f"Collection({_SCHEMA}.{child.entity_type})",
                ContainsTarget="true",
            )
    for name, members in enums.items():
        enum_type = ET.SubElement(schema, "EnumType", Name=name)
        for index, member in enumerate(members):
            ET.SubElement(enum_type, "Member", Name=_enum_member(member), Value=str(index))
    for action_name in ACTIONS:
        action = ET.SubElement(schema, "Action", Name=action_name, IsBound="true")
        ET.SubElement(action, "Parameter", Name="bindingParameter", Type=f"{_SCHEMA}.salesInvoice")
    container = ET.SubElement(schema, "EntityContainer", Name="default")
    company_type = f"{_SCHEMA}.{COMPANIES.entity_type}"
    ET.SubElement(container, "EntitySet", Name=COMPANIES.name, EntityType=company_type)
    return cast("bytes", ET.tostring(root, encoding="utf-8", xml_declaration=True))


def metadata_response() -> Response[bytes]:
    return Response(metadata_document(), media_type=_XML, headers=ODATA_HEADERS)
