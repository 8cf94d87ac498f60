"""The API v1 routes: one list, show, create and update route for every collection, resolved to its
resource description (`sandboxes.kantata.resources`) by `KantataSandbox.resource`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, route
from litestar.params import FromPath

from sandboxes.kantata.account import _Sandbox
from sandboxes.kantata.wire import API_PREFIX, _json, _json_body, _no_route, _query

__all__ = ["create_records", "list_records", "show_record", "update_record"]


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
