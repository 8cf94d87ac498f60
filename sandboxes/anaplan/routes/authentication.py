"""The authentication service (``auth.anaplan.com``): ``POST /token/authenticate`` (Basic), ``POST
/token/refresh`` and ``GET /token/validate``, answered in the service's own
``{"status", "statusMessage"}`` format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get, post

from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.tokens import _VALIDATION_URL, _AuthFailure
from sandboxes.anaplan.wire import _json

__all__ = ["authenticate", "refresh_token", "validate_token"]


def _auth_answer(action: Callable[[], dict[str, Any]], status: int = 200) -> Response[bytes]:
    try:
        return _json(action(), status)
    except _AuthFailure as failure:
        return _json({"status": failure.status, "statusMessage": failure.message}, 401)


# Anaplan answers a login and a refresh with 201 Created (unverified; clients only check for a 2xx).
@post("/token/authenticate", status_code=201)
async def authenticate(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.authenticate(request.headers.get("authorization")), 201)


@post("/token/refresh", status_code=201)
async def refresh_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.refresh(request.headers.get("authorization")), 201)


@get(_VALIDATION_URL)
async def validate_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.validate(request.headers.get("authorization")))
