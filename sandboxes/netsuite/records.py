"""The record service: ``/services/rest/record/v1/{type}[/{id}|/eid:{externalId}[/{sublist}]]``, and
``.../{type}/{id}/!transform/{targetType}``.

List (``limit``, ``offset``, ``q``), create (204 + ``Location``), read, update (PATCH), upsert (PUT by
external id) and delete, each synchronous or, with ``Prefer: respond-async``, an asynchronous job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery

from sandboxes.netsuite.account import (
    _ASYNC_APPLIED,
    _COLLECTION,
    _DEFAULT_PROPERTY_VALIDATION,
    _JOBS,
    _PROPERTY_VALIDATION_HEADER,
    _PROPERTY_VALIDATION_LEVELS,
    _RECORDS,
    NetSuiteError,
    NetSuiteSandbox,
    Outcome,
)
from sandboxes.netsuite.responses import (
    _base,
    _decode,
    _json,
    _outcome_response,
    _page_params,
    _preferences,
    _Sandbox,
)

__all__ = [
    "create_record",
    "delete_record",
    "list_records",
    "read_record",
    "read_sublist",
    "transform_record",
    "update_record",
    "upsert_record",
]

# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------

_TYPE_PATH = f"{_RECORDS}/{{record_type:str}}"
_RECORD_PATH = f"{_TYPE_PATH}/{{reference:str}}"


async def _write(
    request: Request[Any, Any, Any], sandbox: NetSuiteSandbox, operation: Callable[[Any], Outcome]
) -> Response[bytes]:
    """Run a write now, or as an asynchronous job when the client asked for ``Prefer: respond-async``."""
    raw = await request.body()
    key = request.headers.get("x-netsuite-idempotency-key")
    base = _base(request)
    level = (request.headers.get(_PROPERTY_VALIDATION_HEADER) or _DEFAULT_PROPERTY_VALIDATION).strip().lower()
    if level not in _PROPERTY_VALIDATION_LEVELS:
        raise NetSuiteError(
            400,
            "INVALID_HEADER",
            "The X-NetSuite-PropertyNameValidation header value must be Error, Warning or Ignore.",
        )
    if "respond-async" in _preferences(request):
        with sandbox.property_validation(level):
            job = sandbox.submit(base, key, lambda: operation(_decode(raw)))
        headers = {"Location": f"{base}{_JOBS}/{job.id}", **_ASYNC_APPLIED}
        return Response(b"", status_code=202, headers=headers)
    # NetSuite honours the idempotency key only on asynchronous requests; on a synchronous one the header
    # is ignored, so a repeated synchronous POST creates a second record.
    with sandbox.property_validation(level) as warnings:
        outcome = operation(_decode(raw))
    response = _outcome_response(outcome)
    if warnings:
        text = "; ".join(warnings)[:500].replace('"', "'")
        response.headers["Warning"] = f'299 - "{text}"'
    return response


@get(_TYPE_PATH)
async def list_records(
    request: Request[Any, Any, Any],
    record_type: FromPath[str],
    sandbox: _Sandbox,
    limit: FromQuery[str | None] = None,
    offset: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    page_limit, page_offset = _page_params(limit, offset)
    return _json(sandbox.list_page(_base(request), rtype, page_limit, page_offset, q), media=_COLLECTION)


@post(_TYPE_PATH, status_code=200)
async def create_record(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    base = _base(request)
    return await _write(request, sandbox, lambda body: sandbox.create(base, rtype, body))


@get(_RECORD_PATH)
async def read_record(
    request: Request[Any, Any, Any],
    record_type: FromPath[str],
    reference: FromPath[str],
    sandbox: _Sandbox,
    fields: FromQuery[str | None] = None,
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    record = sandbox.find(rtype, reference)
    selected = None
    if fields is not None:
        selected = {name.strip().lower() for name in fields.split(",") if name.strip()}
    expand = (request.query_params.get("expandSubResources") or "").lower() == "true"
    return _json(sandbox.render(_base(request), rtype, record, selected, expand))


@get(f"{_RECORD_PATH}/{{sublist:str}}")
async def read_sublist(
    request: Request[Any, Any, Any],
    record_type: FromPath[str],
    reference: FromPath[str],
    sublist: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    record = sandbox.find(rtype, reference)
    spec = rtype.field(sublist)
    if spec is None or spec.kind != "sublist":
        raise NetSuiteError(404, "INVALID_URL", f"The record type {rtype.name} has no sublist '{sublist}'.")
    base = _base(request)
    url = sandbox.record_url(base, rtype.name, record["id"])
    return _json(sandbox.render_sublist(base, url, spec, record[spec.name]), media=_COLLECTION)


@patch(_RECORD_PATH, status_code=200)
async def update_record(
    request: Request[Any, Any, Any], record_type: FromPath[str], reference: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    return await _write(request, sandbox, lambda body: sandbox.update(rtype, reference, body))


@put(_RECORD_PATH, status_code=200)
async def upsert_record(
    request: Request[Any, Any, Any], record_type: FromPath[str], reference: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    base = _base(request)
    return await _write(request, sandbox, lambda body: sandbox.upsert(base, rtype, reference, body))


@post(f"{_RECORD_PATH}/!transform/{{target:str}}", status_code=200)
async def transform_record(
    request: Request[Any, Any, Any],
    record_type: FromPath[str],
    reference: FromPath[str],
    target: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    """``POST {type}/{id}/!transform/{targetType}`` (NetSuite help: "Transforming Records",
    https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_157901123882.html): 204 and the
    new record's ``Location``; the body may set fields of the new record."""
    rtype = sandbox.record_type(record_type)
    base = _base(request)
    return await _write(
        request, sandbox, lambda body: sandbox.transform(base, rtype, reference, target, body)
    )


@delete(_RECORD_PATH, status_code=200)
async def delete_record(
    request: Request[Any, Any, Any], record_type: FromPath[str], reference: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    rtype = sandbox.record_type(record_type)
    if "respond-async" in _preferences(request):
        return await _write(request, sandbox, lambda _body: sandbox.delete(rtype, reference))
    return _outcome_response(sandbox.delete(rtype, reference))
