"""The record service's metadata catalog: ``GET /services/rest/record/v1/metadata-catalog[/{type}]``.

The catalog lists the record types, each with links to its metadata and to its records
(https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1540810174.html); ``?select=a,b``
narrows it. A record type's metadata is a JSON Schema of its fields (``Accept: application/schema+json``,
the default here). The sandbox does not produce the OpenAPI 3.0 form (``application/swagger+json``) and
answers 406 for it. The schema's shape for references, select lists and sublists is the sandbox's reading
of the docs (unverified).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from sandboxes.netsuite.account import _RECORDS, NetSuiteError, _not_found
from sandboxes.netsuite.data import RECORD_TYPES, FieldSpec, RecordType, record_type
from sandboxes.netsuite.responses import _base, _json

__all__ = ["metadata_catalog", "record_metadata"]

_CATALOG = f"{_RECORDS}/metadata-catalog"
_SCHEMA_JSON = "application/schema+json"
_SWAGGER_JSON = "application/swagger+json"

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "id": {"type": "string"},
    "text": {"type": "string"},
    "email": {"type": "string", "format": "email"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "boolean": {"type": "boolean"},
    "money": {"type": "number"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
}


def _field_schema(base: str, spec: FieldSpec) -> dict[str, Any]:
    if spec.kind == "ref":
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {"id": {"type": "string"}, "refName": {"type": "string"}},
            "x-ns-referenced-types": [f"{base}{_CATALOG}/{name}" for name in spec.ref_types],
        }
    elif spec.kind == "enum":
        schema = {
            "type": "object",
            "properties": {
                "id": {"type": "string", "enum": list(spec.choices or {})},
                "refName": {"type": "string"},
            },
        }
    elif spec.kind == "sublist":
        line = {
            "type": "object",
            "properties": {inner.name: _field_schema(base, inner) for inner in spec.lines},
        }
        schema = {"type": "object", "properties": {"items": {"type": "array", "items": line}}}
    elif spec.kind == "subrecord":
        schema = {
            "type": "object",
            "properties": {inner.name: _field_schema(base, inner) for inner in spec.lines},
        }
    else:
        schema = dict(_JSON_TYPES[spec.kind])
    if spec.label:
        schema["title"] = spec.label
    if spec.read_only:
        schema["readOnly"] = True
    if spec.max_length is not None and schema.get("type") == "string":
        schema["maxLength"] = spec.max_length
    return schema


def _record_schema(base: str, rtype: RecordType) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {spec.name: _field_schema(base, spec) for spec in rtype.fields},
        "required": [spec.name for spec in rtype.fields if spec.required],
        "x-ns-filterable": [spec.name for spec in rtype.fields if spec.kind not in ("sublist", "subrecord")],
    }


def _catalog_entry(base: str, name: str) -> dict[str, Any]:
    href = f"{base}{_CATALOG}/{name}"
    return {
        "name": name,
        "links": [
            {"rel": "canonical", "href": href, "mediaType": "application/json"},
            {"rel": "alternate", "href": href, "mediaType": _SWAGGER_JSON},
            {"rel": "alternate", "href": href, "mediaType": _SCHEMA_JSON},
            {"rel": "describes", "href": f"{base}{_RECORDS}/{name}"},
        ],
    }


def _refuse_swagger(request: Request[Any, Any, Any]) -> None:
    if _SWAGGER_JSON in request.headers.get("accept", ""):
        raise NetSuiteError(
            406,
            "INVALID_HEADER",
            "The Stratum NetSuite sandbox serves metadata as application/schema+json only.",
        )


@get(_CATALOG)
async def metadata_catalog(
    request: Request[Any, Any, Any], select: FromQuery[str | None] = None
) -> Response[bytes]:
    _refuse_swagger(request)
    base = _base(request)
    names = list(RECORD_TYPES)
    if select is not None:
        wanted = {part.strip().lower() for part in select.split(",") if part.strip()}
        names = [name for name in names if name.lower() in wanted]
    return _json({"items": [_catalog_entry(base, name) for name in names]}, media="application/json")


@get(f"{_CATALOG}/{{name:str}}")
async def record_metadata(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    _refuse_swagger(request)
    rtype = record_type(name)
    if rtype is None:
        raise _not_found(None)
    return _json(_record_schema(_base(request), rtype), media=_SCHEMA_JSON)
