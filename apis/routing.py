"""``operation``: the one way a tier declares a route, so policy and contract can't drift apart.

It writes the route's policy into the handler's ``opt`` (required scopes, idempotency, quota, whether it
takes a body), which the governance middleware reads, and documents in the OpenAPI contract every
problem response that policy can produce. A route must either name its scopes or say ``public=True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from litestar import HttpMethod, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from apis.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["VENDOR_ERRORS", "operation", "problem_responses"]

# The answers of an operation that calls a vendor (directly or through another tier).
VENDOR_ERRORS: tuple[int, ...] = (502, 503, 504)

_DESCRIPTIONS = {
    400: "Malformed request (body is not JSON, unparsable header).",
    401: "No token, or an invalid one (`WWW-Authenticate` says which).",
    403: "The token lacks a required scope.",
    404: "Not found.",
    409: "A request with the same Idempotency-Key is still in progress (`Retry-After`).",
    410: "The cursor points before data no longer kept; start again without one.",
    413: "Request body too large.",
    415: "Body is not `application/json`.",
    422: "A value breaks the contract (`errors` names each field), the system of record refused the data, "
    "or an Idempotency-Key was reused.",
    428: "This operation requires an Idempotency-Key header.",
    429: "Rate limit exceeded (`Retry-After`, `RateLimit`).",
    500: "Unexpected error (quote the `correlation_id`).",
    502: "A vendor or dependent API answered with something unusable.",
    503: "A vendor, a dependent API, the gateway state store or the run database is unavailable "
    "(`Retry-After`).",
    504: "A vendor did not answer in time.",
}


def problem_responses(statuses: Iterable[int]) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_DESCRIPTIONS.get(status, "Error."),
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


def operation(
    method: HttpMethod | Literal["GET", "POST", "PUT", "PATCH", "DELETE"],
    path: str,
    *,
    operation_id: str,
    summary: str,
    scopes: Iterable[str] | None = None,
    public: bool = False,
    description: str | None = None,
    errors: Iterable[int] = (),
    idempotency: Literal["required", "optional"] | None = None,
    quota: str | None = None,
    status_code: int | None = None,
    tags: list[str] | None = None,
    include_in_schema: bool = True,
    success: Mapping[int, tuple[type[Any], str]] | None = None,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
    """``success`` documents success answers a handler returns as ``Response`` (e.g. 201 created or 200
    found), as ``{status: (body type, description)}``."""
    if public == (scopes is not None):
        raise ValueError(f"{operation_id}: declare scopes=... or public=True (exactly one)")
    method_name = HttpMethod(str(getattr(method, "value", method)).upper())

    def decorate(fn: Callable[..., Any]) -> HTTPRouteHandler:
        takes_body = "data" in inspect.signature(fn).parameters
        statuses = set(errors) | {500}
        if not public:
            statuses |= {400, 401, 403, 429}
        if takes_body:
            statuses |= {400, 413, 415, 422}
        if inspect.signature(fn).parameters.keys() - {"data", "request", "state", "scope"}:
            statuses.add(422)  # path/query parameters are validated too
        if idempotency is not None:
            # 503: the state store holding Idempotency-Key claims is down, so the request was not run.
            statuses |= {400, 409, 422, 503}
        if idempotency == "required":
            statuses.add(428)
        unknown = statuses - set(_DESCRIPTIONS)
        if unknown:
            raise ValueError(f"{operation_id}: no problem kind for statuses {sorted(unknown)}")
        opt: dict[str, Any] = {"public": True} if public else {"scopes": frozenset(scopes or ())}
        if idempotency:
            opt["idempotency"] = idempotency
        if quota:
            opt["quota"] = quota
        if takes_body:
            opt["body"] = True
        handler: HTTPRouteHandler = route(
            path,
            http_method=[method_name],
            operation_id=operation_id,
            summary=summary,
            description=description,
            status_code=status_code,
            responses={
                **problem_responses(statuses),
                **{
                    status: ResponseSpec(data_container=body, description=text, generate_examples=False)
                    for status, (body, text) in (success or {}).items()
                },
            },
            opt=opt,
            tags=tags,
            include_in_schema=include_in_schema,
            security=None if public else [{"oauth2": sorted(scopes or ())}],
            **kwargs,
        )(fn)
        return handler

    return decorate
