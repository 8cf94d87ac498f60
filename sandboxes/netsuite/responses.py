"""What every NetSuite route shares: the account as a dependency, Oracle's media types and error
documents, paging parameters, JSON bodies and the exception handlers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, TypeAlias

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException

from apis.json_limits import json_too_deep
from sandboxes.faults import Send, relative_path
from sandboxes.netsuite.account import (
    _BAD_CONTENT,
    _ERROR,
    _MAX_PAGE,
    _OAUTH_JSON,
    _REST,
    _SINGULAR,
    _TOKEN_PATH,
    NetSuiteError,
    NetSuiteSandbox,
    Outcome,
    _problem,
)

__all__ = []

logger = logging.getLogger(__name__)

# Handlers receive the account through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[NetSuiteSandbox]


# ---------------------------------------------------------------------------------------------------------
# Responses and request helpers
# ---------------------------------------------------------------------------------------------------------


def _json(
    payload: Any, status: int = 200, media: str = _SINGULAR, headers: Mapping[str, str] | None = None
) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=media, headers=headers)


def _outcome_response(outcome: Outcome) -> Response[bytes]:
    if outcome.body is not None:
        media = _ERROR if outcome.status >= 400 else _SINGULAR
        return _json(outcome.body, outcome.status, media)
    headers = {"Location": outcome.location} if outcome.location is not None else None
    return Response(b"", status_code=outcome.status, headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> Response[bytes]:
    body = {"error": error, "error_description": description}
    return _json(body, status, _OAUTH_JSON, {"Cache-Control": "no-store"})


def _base(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and mount prefix: what every absolute URL the sandbox hands out starts with."""
    return str(request.base_url).rstrip("/")


def _preferences(request: Request[Any, Any, Any]) -> set[str]:
    tokens = set()
    for prefer in request.headers.getall("prefer", []):
        for part in prefer.split(","):
            token = part.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token:
                tokens.add(token)
    return tokens


def _page_params(limit: str | None, offset: str | None) -> tuple[int, int]:
    def number(name: str, raw: str | None, default: int) -> int:
        if raw is None:
            return default
        if not raw.strip().isdigit():
            raise NetSuiteError(400, "INVALID_PARAMETER", f"Invalid '{name}' parameter value: {raw}.", name)
        return int(raw)

    page_limit = number("limit", limit, _MAX_PAGE)
    if not 1 <= page_limit <= _MAX_PAGE:
        raise NetSuiteError(
            400, "INVALID_PARAMETER", f"The 'limit' parameter must be between 1 and {_MAX_PAGE}.", "limit"
        )
    return page_limit, number("offset", offset, 0)


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None  # a DELETE, or a write without a body (which the write then rejects)
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise NetSuiteError(400, _BAD_CONTENT, "Invalid JSON in the request body.") from None


def _on_netsuite_error(_: Request[Any, Any, Any], exc: NetSuiteError) -> Response[bytes]:
    return _json(exc.body(), exc.status, _ERROR, exc.headers or None)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = relative_path(request.scope)  # type: ignore[arg-type]
    if path == _TOKEN_PATH:
        return _oauth_error("invalid_request", exc.detail, exc.status_code)
    if not path.startswith(f"{_REST}/"):
        return _json({"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, _OAUTH_JSON)
    if exc.status_code == 404:
        # Unverified: NetSuite's code for a URL that names no resource.
        return _json(_problem(404, "INVALID_URL", "The requested URL does not exist."), 404, _ERROR)
    if exc.status_code == 405:
        detail = f"The HTTP method {request.method} is not allowed for this resource."
        return _json(_problem(405, "INVALID_METHOD", detail), 405, _ERROR, exc.headers)
    return _json(_problem(exc.status_code, "USER_ERROR", exc.detail), exc.status_code, _ERROR)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("netsuite sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    error_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}"
    detail = f"An unexpected error occurred. Error ID: {error_id}"
    return _json(_problem(500, "UNEXPECTED_ERROR", detail), 500, _ERROR)


def _governed(path: str) -> bool:
    """The API paths that need a token and count against the concurrency limit (not the token endpoint)."""
    return path.startswith(f"{_REST}/") and not path.startswith(f"{_REST}/auth/")


async def _send_problem(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]]
) -> None:
    payload = msgspec.json.encode(body)
    headers = [(b"content-type", _ERROR.encode()), (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
