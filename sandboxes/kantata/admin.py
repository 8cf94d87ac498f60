"""Sandbox administration under ``/__sandbox`` (no auth, never faulted): reset, time and expense
approval, stats and the stored records.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.params import FromPath

from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.kantata.account import _Sandbox
from sandboxes.kantata.wire import ADMIN_PREFIX, _json, _json_body

__all__ = [
    "ExpenseApproval",
    "TimeApproval",
    "approve_expenses",
    "approve_time",
    "reset",
    "stats",
    "stored_records",
]


class TimeApproval(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /__sandbox/time_entries/approve``."""

    time_entry_ids: list[str]


class ExpenseApproval(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /__sandbox/expenses/approve``."""

    expense_ids: list[str]


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/time_entries/approve", status_code=200)
async def approve_time(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    # Parsed by _json_body like every other body here, so a body nested too deep is a 400 too.
    try:
        data = msgspec.convert(await _json_body(request), TimeApproval)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=str(exc)) from None
    return _json({"approved": sandbox.approve_time(data.time_entry_ids)})


@post(f"{ADMIN_PREFIX}/expenses/approve", status_code=200)
async def approve_expenses(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    """Approve expenses as their expense report's approver would in Kantata's web app (approvals are a
    person's act there; the API reads the result as ``approved``)."""
    try:
        data = msgspec.convert(await _json_body(request), ExpenseApproval)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=str(exc)) from None
    return _json({"approved": sandbox.approve_expenses(data.expense_ids)})


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "requests_per_second": sandbox.settings.requests_per_second,
            "requests_this_second": sandbox.requests_this_second,
            "records": {collection: len(records) for collection, records in sandbox.records.items()},
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())
