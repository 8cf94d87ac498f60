"""Kantata's wire conventions, shared by every resource: the error body, JSON and Rails-form request
bodies, paging, ``include=`` and ``order=`` parameters, and the answer's content type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response

from apis.json_limits import json_too_deep
from sandboxes.kantata.data import Record

if TYPE_CHECKING:
    from sandboxes.kantata.schema import _Resource

__all__ = ["ADMIN_PREFIX", "API_PREFIX", "DEFAULT_PER_PAGE", "MAX_PER_PAGE", "KantataError"]


ADMIN_PREFIX = "/__sandbox"
API_PREFIX = "/api/v1"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
_JSON = "application/json; charset=utf-8"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class KantataError(Exception):
    """An error answered as Kantata's ``{"errors": [{"type", "message", "field"?}]}``."""

    def __init__(self, status: int, errors: list[dict[str, str]], headers: Mapping[str, str] | None = None):
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors
        self.headers = dict(headers or {})

    @classmethod
    def system(cls, status: int, message: str) -> KantataError:
        return cls(status, [{"type": "system", "message": message}])

    @classmethod
    def invalid(cls, field_name: str, message: str) -> KantataError:
        return cls(422, [_validation(field_name, message)])

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def _validation(field_name: str, message: str) -> dict[str, str]:
    return {"type": "validation", "message": message, "field": field_name}


def _not_found(kind: str) -> KantataError:
    return KantataError.system(404, f"{kind} not found")


def _no_route() -> KantataError:
    return KantataError.system(404, "The requested route does not exist")


def _method_not_allowed(allowed: list[str]) -> KantataError:
    if not allowed:
        return _no_route()
    error = KantataError.system(405, "Method not allowed")
    error.headers["Allow"] = ", ".join(allowed)
    return error


def _missing_wrapper(resource: _Resource) -> KantataError:
    message = f"param is missing or the value is empty: {resource.singular}"
    return KantataError.invalid(resource.singular, message)


def _attribute_sets(resource: _Resource, body: Any) -> list[Any]:
    """The records a create body asks for: ``{"<singular>": {...}}`` or ``{"<collection>": [...]}``."""
    if isinstance(body, dict):
        single = body.get(resource.singular)
        if isinstance(single, dict):
            return [single]
        many = body.get(resource.collection)
        if isinstance(many, list) and many:
            return many
    raise _missing_wrapper(resource)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise KantataError.invalid(name, f"{name} must be an integer") from None


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    page = max(1, _int_param(params, "page", 1))
    # Kantata quietly serves at most 200 records a page, whatever was asked for.
    per_page = min(MAX_PER_PAGE, max(1, _int_param(params, "per_page", DEFAULT_PER_PAGE)))
    return page, per_page


def _includes(resource: _Resource, params: Mapping[str, str]) -> list[str]:
    names = [name.strip() for name in params.get("include", "").split(",") if name.strip()]
    for name in names:
        if name not in resource.associations:
            message = f"'{name}' is not a valid include for {resource.subject_type}"
            raise KantataError.invalid("include", message)
    return list(dict.fromkeys(names))


def _ordered(resource: _Resource, rows: list[Record], order: str | None) -> list[Record]:
    rows = sorted(rows, key=lambda record: int(record["id"]))
    if not order:
        return rows
    name, _, direction = order.partition(":")
    direction = direction.lower() or "asc"
    if name not in resource.orders or direction not in ("asc", "desc"):
        raise KantataError.invalid("order", f"'{order}' is not a valid order for {resource.subject_type}")
    descending = direction == "desc"
    # Nulls last either way; the id sort above keeps ties stable and deterministic.
    present = [record for record in rows if record.get(name) is not None]
    absent = [record for record in rows if record.get(name) is None]
    key = (lambda record: int(record["id"])) if name == "id" else (lambda record: record[name])
    return sorted(present, key=key, reverse=descending) + absent


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _form_body(raw: bytes) -> dict[str, Any]:
    """A Rails-style form body (``workspace[title]=x&workspace[tags][]=a``) as the JSON body it stands for.

    Kantata (Rails) accepts form-encoded writes beside JSON; values stay text, as a form has no types."""
    body: dict[str, Any] = {}
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise KantataError.system(400, "The request body is not a valid form") from None
    for key, value in pairs:
        head, _, rest = key.partition("[")
        names = [head, *[part.rstrip("]") for part in rest.split("[")]] if rest else [head]
        node: Any = body
        for position, name in enumerate(names):
            last = position == len(names) - 1
            if name == "" and isinstance(node, list):
                if last:
                    node.append(value)
                    break
                # Rails: `a[][x]=1&a[][y]=2` fills one hash; a key the last hash already has starts the next.
                child = names[position + 1]
                if not node or not isinstance(node[-1], dict) or child in node[-1]:
                    node.append({})
                node = node[-1]
                continue
            if not isinstance(node, dict):
                raise KantataError.system(400, f"The form field {key!r} is not valid")
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, [] if names[position + 1] == "" else {})
    return body


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
        return _form_body(raw)
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise KantataError.system(400, "The request body is not valid JSON") from None


def _query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in request.query_params.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
