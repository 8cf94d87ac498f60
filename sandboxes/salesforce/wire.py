"""How the Salesforce sandbox reads requests and writes answers: JSON bodies, the caller's user, and
Salesforce's error shapes (a JSON array of ``{message, errorCode}`` on ``/services/``, OAuth's
``{error, error_description}`` on ``/services/oauth2/``) for every exception a handler lets through.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from apis.json_limits import json_too_deep
from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import relative_path
from sandboxes.salesforce.org import MultipleMatches, Org, Result, SalesforceError, not_found

# Named for the sandbox, not this module: the sandbox's log lines keep the name they always had.
logger = logging.getLogger("sandboxes.salesforce.app")

__all__ = [
    "AUTH_SCHEMES",
    "JSON_CONTENT_TYPE",
    "json_response",
    "oauth_error",
    "on_http_exception",
    "on_multiple_matches",
    "on_salesforce_error",
    "on_unexpected",
    "read_body",
    "request_user",
    "respond",
]

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
# "OAuth <token>" is Salesforce's legacy spelling and still accepted by the real API.
AUTH_SCHEMES = ("bearer", "oauth")


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response[bytes]:
    return Response(
        msgspec.json.encode(payload), status_code=status, media_type=JSON_CONTENT_TYPE, headers=headers
    )


def respond(result: Result) -> Response[bytes]:
    return json_response(result.body, result.status, result.headers)


def oauth_error(error: str, description: str, status: int = 400) -> Response[bytes]:
    return json_response({"error": error, "error_description": description}, status)


def on_salesforce_error(_: Request[Any, Any, Any], exc: SalesforceError) -> Response[bytes]:
    return json_response(exc.body(), exc.status)


def on_multiple_matches(_: Request[Any, Any, Any], exc: MultipleMatches) -> Response[bytes]:
    return json_response(exc.urls, 300)


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = relative_path(request.scope)  # type: ignore[arg-type]
    if path.startswith("/services/oauth2/"):
        return oauth_error("invalid_request", exc.detail, exc.status_code)
    if not path.startswith("/services/"):
        return json_response(
            {"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers
        )
    if exc.status_code == 404:
        return json_response(not_found().body(), 404)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", "").replace(" ", "")
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return json_response(SalesforceError(405, "METHOD_NOT_ALLOWED", message).body(), 405, exc.headers)
    error_code = "REQUEST_ENTITY_TOO_LARGE" if exc.status_code == 413 else "INVALID_REQUEST"
    return json_response(SalesforceError(exc.status_code, error_code, exc.detail).body(), exc.status_code)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("salesforce sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    if relative_path(request.scope).startswith("/services/"):  # type: ignore[arg-type]
        error_id = f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**6)} ({secrets.randbelow(10**9)})"
        message = (
            f"An unexpected error occurred. Please include this ErrorId if you contact support: {error_id}"
        )
        return json_response(SalesforceError(500, "UNKNOWN_EXCEPTION", message).body(), 500)
    return json_response({"status_code": 500, "detail": "Internal Server Error"}, 500)


async def read_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise SalesforceError(400, "JSON_PARSER_ERROR", "No content to map due to end-of-input")
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}"
        ) from None


def request_user(request: Request[Any, Any, Any], sandbox: Org) -> str:
    return sandbox.session_user(bearer_token(request.scope, AUTH_SCHEMES))  # type: ignore[arg-type]
