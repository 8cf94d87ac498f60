"""The API v1 routes: one list, show, create, update and delete route for every collection (and the bulk
delete), resolved to its resource description (`sandboxes.kantata.resources`) by `KantataSandbox.resource`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post, route
from litestar.params import FromPath

from sandboxes.kantata.account import _Sandbox
from sandboxes.kantata.resources.invoices import cancel_invoice
from sandboxes.kantata.schema import _id_list
from sandboxes.kantata.wire import (
    API_PREFIX,
    DEFAULT_PER_PAGE,
    KantataError,
    _json,
    _json_body,
    _method_not_allowed,
    _no_route,
    _query,
)

__all__ = [
    "cancel_invoice_route",
    "create_records",
    "delete_record",
    "delete_records",
    "list_records",
    "show_record",
    "update_record",
]


_COLLECTION_PATH = f"{API_PREFIX}/{{collection:str}}"
_RECORD_PATH = f"{API_PREFIX}/{{collection:str}}/{{record_id:str}}"


@get(_COLLECTION_PATH)
async def list_records(
    request: Request[Any, Any, Any], collection: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return _json(sandbox.index(sandbox.resource(collection), _query(request)))


@get(_RECORD_PATH)
async def show_record(
    request: Request[Any, Any, Any], collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return _json(sandbox.show(sandbox.resource(collection), record_id, _query(request)))


@post(_COLLECTION_PATH, status_code=200)
async def create_records(
    request: Request[Any, Any, Any], collection: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    resource = sandbox.resource(collection)
    if not resource.creatable:
        raise _no_route()
    return _json(sandbox.create(resource, await _json_body(request)))


@route(_RECORD_PATH, http_method=["PUT", "PATCH"], status_code=200)
async def update_record(
    request: Request[Any, Any, Any], collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    resource = sandbox.resource(collection)
    if not resource.creatable or not resource.updatable:
        raise _no_route()
    sandbox.find(resource, record_id)  # 404 beats body errors
    return _json(sandbox.update(resource, record_id, await _json_body(request)))


# Kantata's API docs (developer.kantata.com/kantata/specification): "Deleting an existing Time Entry",
# "... Story", "... Participation" answer 204 with no content; a workspace has no delete (405).
@delete(_RECORD_PATH, status_code=204)
async def delete_record(collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox) -> None:
    sandbox.delete(sandbox.resource(collection), [record_id])


# Kantata's "Cancel an existing invoice": PUT /invoices/{id}/cancel, 200 with the invoice; its items are
# billable again. The path names the collection as a parameter: a static "invoices" segment would take
# every /api/v1/invoices path away from the generic routes (Litestar's router does not backtrack).
@route(f"{_RECORD_PATH}/cancel", http_method=["PUT"], status_code=200)
async def cancel_invoice_route(
    collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    if collection != "invoices":
        raise _no_route()
    resource = sandbox.resource(collection)
    invoice = cancel_invoice(sandbox, record_id)
    return _json(sandbox._envelope(resource, [invoice], 1, 1, DEFAULT_PER_PAGE, []))


_MAX_BULK_IDS = 100


# "Delete multiple time entries" / "Delete multiple expenses": `ids` in the query or the body, up to 100,
# all or none; 200 with the ids deleted.
@delete(_COLLECTION_PATH, status_code=200)
async def delete_records(
    request: Request[Any, Any, Any], collection: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    resource = sandbox.resource(collection)
    if resource.deletion is None or not resource.deletion.bulk:
        raise _method_not_allowed(resource.allowed_methods(on_record=False))
    value = request.query_params.get("ids")
    if value is None:
        body = await _json_body(request)
        value = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise KantataError.invalid("ids", "ids must be a comma-separated list of ids")
    ids = sorted(_id_list("ids", value), key=int)
    if len(ids) > _MAX_BULK_IDS:
        raise KantataError.invalid("ids", f"ids may name at most {_MAX_BULK_IDS} records")
    return _json({"deleted": sandbox.delete(resource, ids, bulk=True)})
