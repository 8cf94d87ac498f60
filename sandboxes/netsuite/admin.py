"""The sandbox's own endpoints under ``/__sandbox`` (no auth, never on vendor paths): reset, token expiry,
stats and the stored records (fault injection is `sandboxes.faults`)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.netsuite.account import (
    _OAUTH_JSON,
    ADMIN_PREFIX,
)
from sandboxes.netsuite.responses import (
    _json,
    _Sandbox,
)

__all__ = ["expire_tokens", "reset", "stats", "stored_records"]

# ---------------------------------------------------------------------------------------------------------
# Sandbox administration
# ---------------------------------------------------------------------------------------------------------


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/tokens/expire", status_code=204)
async def expire_tokens(sandbox: _Sandbox) -> None:
    sandbox.tokens.clear()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "account": sandbox.settings.account,
            "active_tokens": len(sandbox.tokens),
            "concurrency_limit": sandbox.settings.concurrency_limit,
            "in_flight": sandbox.in_flight,
            "peak_in_flight": sandbox.peak_in_flight,
            "throttled": sandbox.throttled,
            "async_jobs": len(sandbox.jobs),
            "records": {name: len(records) for name, records in sandbox.records.items()},
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        },
        media=_OAUTH_JSON,
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())
