"""Describe answers derived from the sandbox's own schemas (`sandboxes.salesforce.data.SCHEMAS`).

One mechanism for every object, so a field added to a schema shows up in the describe answers and a
client that builds its queries or forms from describe (simple-salesforce's ``sf.Account.describe()``,
ETL tools, the adapter) sees exactly the fields the sandbox enforces. Resource names as in the Salesforce
REST API Developer Guide: "Describe Global" (``GET .../sobjects/``), "sObject Basic Information"
(``GET .../sobjects/{Obj}/``) and "sObject Describe" (``GET .../sobjects/{Obj}/describe/``).

Keys follow Salesforce's DescribeSObjectResult and Field shapes; values the sandbox does not model (layouts,
record types, search) are answered as an org without them would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sandboxes.salesforce.data import FieldKind, FieldSpec, ObjectSchema

__all__ = [
    "aggregatable",
    "child_relationship_name",
    "describe_global",
    "describe_object",
    "groupable",
    "object_basics",
    "relationship_name",
    "sobject_urls",
]

# How each field type travels in SOAP and therefore in describe's ``soapType``.
_SOAP_TYPES: Mapping[FieldKind, str] = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "url": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "picklist": "xsd:string",
    "currency": "xsd:double",
    "double": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
# (precision, scale) of the numeric types: currency(18,2) as Salesforce's standard Amount, percent(3,0) as
# Probability, double(18,0).
_NUMBER_SHAPES: Mapping[FieldKind, tuple[int, int]] = {
    "currency": (18, 2),
    "percent": (3, 0),
    "double": (18, 0),
}
_TEXT_KINDS = frozenset({"string", "textarea", "url", "email", "phone", "picklist"})
# Salesforce sets these itself on every write, so they are never null.
_SYSTEM_SET = frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted", "OwnerId"})
# Long text areas (more than 255 characters) cannot be filtered, sorted or grouped in SOQL.
_SHORT_TEXT = 255
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _label(api_name: str) -> str:
    """A readable label from an API name: ``Billing_Model__c`` -> "Billing Model", ``AccountId`` ->
    "Account ID" (orgs label their fields by hand; this is what a fresh org's labels look like)."""
    # A managed package's namespace (``pse__`` in ``pse__Total_Hours__c``) is not part of the label.
    bare = api_name.removesuffix("__c")
    if "__" in bare:
        bare = bare.split("__", 1)[1]
    words = _CAMEL.sub(" ", bare.replace("_", " ")).split()
    return " ".join("ID" if word == "Id" else word for word in words) or api_name


def _plural(label: str) -> str:
    # "Opportunity" -> "Opportunities" (the child relationship every org has on Account), "Day" -> "Days".
    if label.endswith("y") and label[-2:-1].lower() not in ("a", "e", "i", "o", "u"):
        return label[:-1] + "ies"
    return label + ("es" if label.endswith(("s", "x", "ch", "sh")) else "s")


def _long_text(spec: FieldSpec) -> bool:
    return spec.kind == "textarea" and (spec.length or 255) > _SHORT_TEXT


def aggregatable(spec: FieldSpec) -> bool:
    """Describe's ``aggregatable``: whether SOQL's aggregate functions take the field."""
    return spec.kind not in ("textarea", "boolean") and not _long_text(spec)


def groupable(spec: FieldSpec) -> bool:
    """Describe's ``groupable``: whether the field may stand in a SOQL GROUP BY."""
    return spec.kind not in ("currency", "double", "percent", "datetime") and not _long_text(spec)


def relationship_name(spec: FieldSpec) -> str | None:
    """The name SOQL and describe give the lookup `spec` (``Account`` for ``AccountId``), None if none."""
    if spec.kind != "reference":
        return None
    if spec.name.endswith("__c"):
        return spec.name.removesuffix("__c") + "__r"
    return spec.name.removesuffix("Id") or spec.name


def child_relationship_name(child: ObjectSchema, spec: FieldSpec) -> str:
    """The name of the child relationship `child`'s lookup `spec` makes (``Contacts`` on Account): the
    name a parent-to-child SOQL subquery selects FROM."""
    # Custom lookups get "__r" names; standard ones the plural (orgs may rename either), and a standard
    # hierarchy lookup such as Account.ParentId the plural with "Child" in front: ChildAccounts.
    if spec.name == "ParentId" and spec.reference_to == child.name:
        return "Child" + _plural(child.name)
    return _plural(child.name.removesuffix("__c")) + ("__r" if spec.name.endswith("__c") else "")


def _field(spec: FieldSpec) -> dict[str, Any]:
    kind = spec.kind
    if kind == "id":
        length = 18
    elif kind in _TEXT_KINDS:
        length = spec.length or 255
    else:
        length = 0
    precision, scale = _NUMBER_SHAPES.get(kind, (0, 0))
    if spec.precision is not None:
        precision, scale = spec.precision, spec.scale or 0
    long_text = kind == "textarea" and length > _SHORT_TEXT
    nillable = not spec.required and kind not in ("id", "boolean") and spec.name not in _SYSTEM_SET
    values = spec.restricted_values or spec.picklist_values or ()
    return {
        "aggregatable": aggregatable(spec),
        "autoNumber": spec.auto_number,
        "byteLength": length * 3,
        "calculated": spec.formula,
        "cascadeDelete": spec.cascade_delete,
        "caseSensitive": False,
        "createable": spec.createable,
        "custom": spec.name.endswith("__c"),
        "defaultValue": None,
        "defaultedOnCreate": spec.name in _SYSTEM_SET or kind == "boolean" or spec.name == "CurrencyIsoCode",
        "deprecatedAndHidden": False,
        "digits": 9 if kind == "int" else 0,
        "externalId": spec.external_id,
        "filterable": not long_text,
        "groupable": groupable(spec),
        "idLookup": kind == "id" or spec.external_id,
        "label": "Record ID" if kind == "id" else _label(spec.name),
        "length": length,
        "name": spec.name,
        "nameField": spec.name == "Name",
        "nillable": nillable,
        "permissionable": nillable and spec.updateable,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
            for value in values
        ],
        "precision": precision,
        "referenceTo": [spec.reference_to] if spec.reference_to else [],
        "relationshipName": relationship_name(spec),
        "relationshipOrder": None,
        "restrictedPicklist": spec.restricted_values is not None,
        "scale": scale,
        "soapType": _SOAP_TYPES[kind],
        "sortable": not long_text,
        "type": kind,
        "unique": spec.unique,
        "updateable": spec.updateable,
    }


def sobject_urls(version_base: str, schema: ObjectSchema) -> dict[str, str]:
    """The ``urls`` block of an object: where its resources live under ``/services/data/vXX.X``."""
    base = f"{version_base}/sobjects/{schema.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def object_basics(version_base: str, schema: ObjectSchema) -> dict[str, Any]:
    """An object's entry in describeGlobal, and the ``objectDescribe`` of its basic information."""
    label = schema.label or _label(schema.name)
    replicateable = schema.createable  # setup objects have no replication feed
    return {
        "activateable": False,
        "createable": schema.createable,
        "custom": schema.name.endswith("__c"),
        "customSetting": False,
        "deletable": schema.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "keyPrefix": schema.key_prefix,
        "label": label,
        "labelPlural": _plural(label),
        "layoutable": schema.createable,
        "mergeable": False,
        "mruEnabled": schema.createable,
        "name": schema.name,
        "queryable": True,
        "replicateable": replicateable,
        "retrieveable": True,
        "searchable": schema.createable,
        "triggerable": schema.createable,
        "undeletable": schema.deletable,
        "updateable": schema.updateable,
        "urls": sobject_urls(version_base, schema),
    }


def describe_global(version_base: str, schemas: Mapping[str, ObjectSchema]) -> dict[str, Any]:
    """``GET .../sobjects/`` (Describe Global)."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [object_basics(version_base, schema) for schema in schemas.values()],
    }


def describe_object(
    version_base: str, schema: ObjectSchema, schemas: Mapping[str, ObjectSchema]
) -> dict[str, Any]:
    """``GET .../sobjects/{Obj}/describe/`` (sObject Describe): the object, its fields in schema order and
    the child relationships other objects' reference fields make to it."""
    children = [
        {
            "cascadeDelete": spec.cascade_delete,
            "childSObject": child.name,
            "deprecatedAndHidden": False,
            "field": spec.name,
            "relationshipName": child_relationship_name(child, spec),
        }
        for child in schemas.values()
        for spec in child.fields
        if spec.kind == "reference" and spec.reference_to == schema.name
    ]
    return {
        **object_basics(version_base, schema),
        "childRelationships": children,
        "fields": [_field(spec) for spec in schema.fields],
        "recordTypeInfos": [],
        "supportedScopes": [
            {"label": "All " + _plural(schema.label or _label(schema.name)), "name": "everything"}
        ],
    }
