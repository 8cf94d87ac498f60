"""Sandbox administration under ``/__sandbox`` (no auth, never faulted): reset, token expiry, stats and the
stored records.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import ADMIN_PREFIX, _json

__all__ = ["expire_tokens", "reset", "stats", "stored_records"]


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/tokens/expire", status_code=200)
async def expire_tokens(sandbox: _Sandbox) -> Response[bytes]:
    return _json({"expired": sandbox.expire_tokens()})


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "requests_per_minute": sandbox.settings.requests_per_minute,
            "tokens_issued": sandbox.tokens_issued,
            "tokens_live": len(sandbox.tokens),
            "throttled": sandbox.throttled,
            "tasks": sum(len(model.tasks) for model in sandbox.models.values()),
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.stored(), record_type, request.query_params.multi_items())
