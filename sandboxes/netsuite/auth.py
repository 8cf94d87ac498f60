"""Authentication: ``POST /services/rest/auth/oauth2/v1/token`` (OAuth 2.0 client credentials with a JWT
client assertion, RFC 7523) and the gate that answers 401 to any API call without a valid bearer token."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response, post

from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import ASGIApp, Receive, Scope, Send, relative_path
from sandboxes.netsuite.account import (
    _INVALID_LOGIN,
    _OAUTH_JSON,
    _TOKEN_PATH,
    NetSuiteSandbox,
    _OAuthError,
    _problem,
)
from sandboxes.netsuite.responses import (
    _base,
    _governed,
    _json,
    _oauth_error,
    _Sandbox,
    _send_problem,
)

__all__ = ["issue_token"]

# ---------------------------------------------------------------------------------------------------------
# OAuth
# ---------------------------------------------------------------------------------------------------------


@post(_TOKEN_PATH, status_code=200)
async def issue_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    try:
        payload = sandbox.issue_token(form, f"{_base(request)}{_TOKEN_PATH}")
    except _OAuthError as exc:
        return _oauth_error(exc.error, exc.description)
    return _json(payload, 200, _OAUTH_JSON, {"Cache-Control": "no-store", "Pragma": "no-cache"})


class _AuthGate:
    """Rejects API calls without a valid bearer token, routed or not, before Litestar sees them."""

    def __init__(self, app: ASGIApp, sandbox: NetSuiteSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and _governed(relative_path(scope))
            and not self.sandbox.token_valid(bearer_token(scope))
        ):
            realm = self.sandbox.settings.account
            challenge = f'Bearer realm="{realm}", error="invalid_token"'.encode()
            body = _problem(401, "INVALID_LOGIN", _INVALID_LOGIN)
            await _send_problem(send, 401, body, [(b"www-authenticate", challenge)])
            return
        await self.app(scope, receive, send)
