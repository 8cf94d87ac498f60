"""The Integration API's wire conventions, shared by every route: the error body, JSON and chunk request
bodies, the ``meta``/``status`` envelope of one object and of a page (``limit``, ``offset``, ``sort``),
and the paths every model resource hangs from.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response

from apis.json_limits import json_too_deep
from sandboxes.faults import Scope, relative_path

if TYPE_CHECKING:
    from sandboxes.anaplan.tenant import AnaplanSandbox

__all__ = ["ADMIN_PREFIX", "API_PREFIX", "AnaplanError"]


ADMIN_PREFIX = "/__sandbox"
API_PREFIX = "/2/0"
_JSON = "application/json;charset=UTF-8"
_BINARY = "application/octet-stream"
_GZIP_TYPES = frozenset({"application/x-gzip", "application/gzip"})
_MAX_BODY = 64 * 1024 * 1024  # Anaplan takes chunks of up to 50 MB
_SUCCESS = {"code": 200, "message": "Success"}


_WS = f"{API_PREFIX}/workspaces"
_MODEL = f"{_WS}/{{workspace_id:str}}/models/{{model_id:str}}"


class AnaplanError(Exception):
    """An Integration API error: ``{"status": {"code", "message"}}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"status": {"code": self.status, "message": self.message}}


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _binary(content: bytes) -> Response[bytes]:
    return Response(content, media_type=_BINARY)


def _base(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and mount prefix: what every absolute URL the sandbox hands out starts with."""
    return str(request.base_url).rstrip("/")


def _object(request: Request[Any, Any, Any], key: str, value: Any, schema: str) -> Response[bytes]:
    meta = {"schema": f"{_base(request)}{API_PREFIX}/objects/{schema}"}
    return _json({"meta": meta, "status": _SUCCESS, key: value})


def _int_param(request: Request[Any, Any, Any], name: str, default: int, minimum: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise AnaplanError(400, f"Invalid value for parameter {name}: {text}") from None
    if value < minimum:
        raise AnaplanError(400, f"Invalid value for parameter {name}: {text}")
    return value


def _sorted(request: Request[Any, Any, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sort = request.query_params.get("sort")
    if not sort:
        return items
    descending = sort.startswith("-")
    name = sort.lstrip("+- ")
    present = [item for item in items if item.get(name) is not None]
    absent = [item for item in items if item.get(name) is None]
    return sorted(present, key=lambda item: str(item[name]).lower(), reverse=descending) + absent


def _page(
    request: Request[Any, Any, Any],
    sandbox: AnaplanSandbox,
    key: str,
    items: list[dict[str, Any]],
    schema: str,
) -> Response[bytes]:
    limit = min(
        _int_param(request, "limit", sandbox.settings.max_page_size, 1), sandbox.settings.max_page_size
    )
    offset = _int_param(request, "offset", 0, 0)
    ordered = _sorted(request, items)
    page = ordered[offset : offset + limit]
    paging: dict[str, Any] = {"currentPageSize": len(page), "offset": offset, "totalSize": len(ordered)}
    url = f"{_base(request)}{relative_path(cast('Scope', request.scope))}"
    others = [
        (name, value) for name, value in request.query_params.multi_items() if name not in ("limit", "offset")
    ]
    if offset + len(page) < len(ordered):
        paging["next"] = f"{url}?{urlencode([*others, ('limit', limit), ('offset', offset + limit)])}"
    if offset > 0:
        previous = max(0, offset - limit)
        paging["previous"] = f"{url}?{urlencode([*others, ('limit', limit), ('offset', previous)])}"
    meta = {"paging": paging, "schema": f"{_base(request)}{API_PREFIX}/objects/{schema}"}
    return _json({"meta": meta, "status": _SUCCESS, key: page})


def _flag(request: Request[Any, Any, Any], name: str) -> bool:
    return (request.query_params.get(name) or "").lower() == "true"


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise AnaplanError(400, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AnaplanError(400, "The request body must be a JSON object")
    return body


async def _chunk_body(request: Request[Any, Any, Any]) -> bytes:
    media = request.headers.get("content-type", _BINARY).split(";", 1)[0].strip().lower()
    raw = await request.body()
    if media in _GZIP_TYPES:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError):
            raise AnaplanError(400, "The chunk is not valid gzip data") from None
    if media != _BINARY:
        raise AnaplanError(415, f"Unsupported content type {media}; use application/octet-stream")
    return raw
