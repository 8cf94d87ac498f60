"""``/__sandbox/...``: the sandbox's own administration (not Business Central's): reset, token expiry, stats
and the stored records (`sandboxes.admin_records`). Fault injection is `sandboxes.faults`'."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.business_central.sandbox import SandboxDependency

__all__ = ["ADMIN_PREFIX", "expire_tokens", "reset", "stats", "stored_records"]

ADMIN_PREFIX = "/__sandbox"


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: SandboxDependency) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/tokens/expire", status_code=204)
async def expire_tokens(sandbox: SandboxDependency) -> None:
    sandbox.tokens.clear()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: SandboxDependency) -> Response[bytes]:
    payload = {
        "tenant_id": sandbox.settings.tenant_id,
        "environment": sandbox.settings.environment,
        "active_tokens": len(sandbox.tokens),
        "rate_limit_requests": sandbox.settings.rate_limit_requests,
        "rate_limit_window_seconds": sandbox.settings.rate_limit_window_seconds,
        "requests_in_window": {principal: len(window) for principal, window in sandbox.windows.items()},
        "throttled": sandbox.throttled,
        "in_flight": sandbox.in_flight,
        "records": {name: len(records) for name, records in sandbox.records.items()},
        "requests": msgspec.to_builtins(list(sandbox.request_log)),
    }
    return Response(msgspec.json.encode(payload), media_type="application/json")


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: SandboxDependency
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())
