"""Sandbox administration under ``/__sandbox`` (no session; never on a vendor path): reset, session expiry,
stats, and the live records of an object as held (``GET /__sandbox/records/{Object}?Field=value``,
`sandboxes.admin_records`). Fault injection is mounted on the same prefix by the app.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.salesforce.org import Org
from sandboxes.salesforce.wire import json_response

__all__ = ["ADMIN_PREFIX", "expire_sessions", "reset", "stats", "stored_records"]

ADMIN_PREFIX = "/__sandbox"

# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[Org]


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/sessions/expire", status_code=204)
async def expire_sessions(sandbox: _Sandbox) -> None:
    sandbox.expire_sessions()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return json_response(
        {
            "api_usage": sandbox.api_usage,
            "api_limit": sandbox.settings.daily_api_limit,
            "active_sessions": len(sandbox.sessions),
            "open_query_cursors": sandbox.open_cursors,
            "records": {name: len(records) for name, records in sandbox.records.items()},
            "deleted_records": {name: len(entries) for name, entries in sandbox.recycle_bin.items()},
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())
