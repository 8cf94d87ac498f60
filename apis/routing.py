"""``operation``: the one way a tier declares a route, so policy and contract can't drift apart.

It writes the route's policy into the handler's ``opt`` (required scopes, idempotency, quota, whether it
takes a body), which the governance middleware reads, and documents in the OpenAPI contract every
problem response that policy can produce. A route must either name its scopes or say ``public=True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from litestar import HttpMethod, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType

from apis.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "VENDOR_ERRORS",
    "idempotency_key_parameter",
    "operation",
    "problem_responses",
]

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


# What the Idempotency step accepts (``_KEY_RE``): 1 to 255 visible ASCII characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


def idempotency_key_parameter(*, required: bool) -> Parameter:
    """The ``Idempotency-Key`` header as the contract states it, so generated clients send it.

    The middleware reads the header, not the handler, so Litestar cannot see it: ``operation`` adds it."""
    advice = "" if required else "Optional: send one so that a retry cannot make the change twice. "
    return Parameter(
        name="Idempotency-Key",
        param_in="header",
        required=required,
        description=(
            f"{advice}A key you choose per change (a UUID will do). Sent again with the same body, the first "
            "answer is replayed and the change is made once; with another body: 422; while the first is "
            "still running: 409 with Retry-After. Kept 24 hours, per client."
        ),
        schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN),
    )


@dataclass
class _IdempotentOperation(Operation):
    """An operation whose ``Idempotency-Key`` header is documented (Litestar's hook: ``operation_class``)."""

    key_required: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), idempotency_key_parameter(required=self.key_required)]


@dataclass
class _KeyRequiredOperation(_IdempotentOperation):
    key_required: ClassVar[bool] = True


_OPERATION_CLASSES: dict[str, type[Operation]] = {
    "required": _KeyRequiredOperation,
    "optional": _IdempotentOperation,
}


def operation(
    method: HttpMethod | Literal["GET", "POST", "PUT", "PATCH", "DELETE"],
    path: str,
    *,
    operation_id: str,
    summary: str,
    scopes: Iterable[str] | None = None,
    any_scopes: Iterable[str] = (),
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
        if any_scopes:
            # One of these besides ``scopes`` (e.g. finance:approve, or process:admin).
            opt["any_scopes"] = frozenset(any_scopes)
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
            security=None
            if public
            else [{"oauth2": sorted({*(scopes or ()), extra})} for extra in sorted(any_scopes)]
            or [{"oauth2": sorted(scopes or ())}],
            operation_class=_OPERATION_CLASSES[idempotency] if idempotency else Operation,
            **kwargs,
        )(fn)
        return handler

    return decorate
