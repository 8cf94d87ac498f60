"""The query service: ``POST /services/rest/query/v1/suiteql`` (SuiteQL; ``Prefer: transient`` required),
paged with ``limit``/``offset``, answered in the collection envelope; `sandboxes.netsuite.suiteql` runs it."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.params import FromQuery

from sandboxes.netsuite.account import (
    _COLLECTION,
    _SUITEQL_PATH,
    NetSuiteError,
)
from sandboxes.netsuite.responses import (
    _base,
    _decode,
    _json,
    _page_params,
    _preferences,
    _Sandbox,
)

__all__ = ["suiteql"]


@post(_SUITEQL_PATH, status_code=200)
async def suiteql(
    request: Request[Any, Any, Any],
    sandbox: _Sandbox,
    limit: FromQuery[str | None] = None,
    offset: FromQuery[str | None] = None,
) -> Response[bytes]:
    if "transient" not in _preferences(request):
        raise NetSuiteError(
            400,
            "INVALID_HEADER",
            "SuiteQL queries must be sent with the header 'Prefer: transient'.",
        )
    page_limit, page_offset = _page_params(limit, offset)
    body = _decode(await request.body())
    text = body.get("q") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        detail = 'The request body must be {"q": "<SuiteQL query>"}.'
        raise NetSuiteError(400, "INVALID_PARAMETER", detail, "q")
    return _json(sandbox.suiteql(_base(request), text, page_limit, page_offset), media=_COLLECTION)
