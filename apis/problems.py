"""RFC 9457 problem details: one catalogue of error kinds, one exception, one set of handlers.

Every error the gateway or a tier answers is ``application/problem+json`` with a stable ``type`` URI
(``/problems/{code}``, documented by the page the gateway serves there), a machine-readable ``code`` and
the request's ``correlation_id``. Nothing here ever renders a stack trace or an upstream body.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from apis.logging import get_logger
from apis.state import StateStoreUnavailable

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import Scope

__all__ = [
    "PROBLEM_KINDS",
    "FieldError",
    "Problem",
    "ProblemError",
    "ProblemKind",
    "exception_handlers",
    "handle_http_exception",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = get_logger("stratum.problems")


class ProblemKind(msgspec.Struct, frozen=True):
    code: str
    status: int
    title: str
    doc: str

    @property
    def type_uri(self) -> str:
        return f"/problems/{self.code}"


_KINDS = [
    ProblemKind(
        "malformed-request",
        400,
        "Malformed request",
        "The body is not valid JSON, or a header or parameter could not be parsed. Fix the request; "
        "retrying it unchanged will fail the same way.",
    ),
    ProblemKind(
        "unauthenticated",
        401,
        "Authentication required",
        "No bearer token was sent. Get an access token (client credentials grant) and send it as "
        "`Authorization: Bearer <token>`.",
    ),
    ProblemKind(
        "invalid-token",
        401,
        "Invalid access token",
        "The token is expired, not yet valid, not signed by the configured issuer, meant for another "
        "audience, not an RFC 9068 access token (`typ: at+jwt`), or uses an algorithm not allowed. "
        "Get a new token.",
    ),
    ProblemKind(
        "invalid-signature",
        401,
        "Invalid signature",
        "A signed webhook (such as the CRM event relay's) must carry `X-Stratum-Signature: t=<unix seconds>,"
        "v1=<hex HMAC-SHA256>`, the HMAC of `<t>.` followed by the raw body bytes under the shared secret, "
        "with `t` within 300 seconds of the gateway's clock (several `v1=` are allowed while a secret is "
        "rotated). The header was missing or malformed, `t` was too old or in the future, or no `v1` "
        "matched. Check the secret and the sender's clock, and sign again before resending.",
    ),
    ProblemKind(
        "insufficient-scope",
        403,
        "Insufficient scope",
        "The token is valid but lacks a scope the operation requires; `required_scopes` lists them. "
        "Ask for a token with those scopes (your client must be allowed them).",
    ),
    ProblemKind("not-found", 404, "Not found", "No resource exists at this path, or the id is unknown."),
    ProblemKind(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The path exists but not for this method; the `Allow` header lists those that do.",
    ),
    ProblemKind(
        "idempotency-in-flight",
        409,
        "Request with this Idempotency-Key is in progress",
        "A request with the same Idempotency-Key is still being processed. Retry after the "
        "`Retry-After` seconds; you will get its stored result.",
    ),
    ProblemKind("conflict", 409, "Conflict", "The request conflicts with the current state of the resource."),
    ProblemKind(
        "cursor-expired",
        410,
        "Cursor expired",
        "The cursor points before events the stream no longer keeps (older than its retention), so reading "
        "on from it would skip them without saying. Read again without a cursor, from the oldest event kept, "
        "and reconcile the gap from the systems of record or the runs.",
    ),
    ProblemKind(
        "payload-too-large",
        413,
        "Payload too large",
        "The request body is larger than the gateway accepts (`max_bytes`).",
    ),
    ProblemKind(
        "unsupported-media-type", 415, "Unsupported media type", "Send the body as `application/json`."
    ),
    ProblemKind(
        "validation-failed",
        422,
        "Validation failed",
        "The request is well-formed but some values break the contract; `errors` names each field "
        "(`location` and `field`) and what is wrong with it.",
    ),
    ProblemKind(
        "opportunity-not-won",
        422,
        "Opportunity not closed-won",
        "Only a won deal becomes a project. The opportunity is in another stage (`detail` names it): close "
        "it as won in the CRM, then start the activation again. No run was created.",
    ),
    ProblemKind(
        "vendor-rejected",
        422,
        "The system of record refused the data",
        "A vendor system (CRM, PSA, ERP) refused a write as invalid: a value breaks its rules (a field too "
        "long, an unknown reference, a closed period). `detail` carries the vendor's reason and `vendor` "
        "names the system. Fix the data; retrying it unchanged fails the same way.",
    ),
    ProblemKind(
        "idempotency-key-reused",
        422,
        "Idempotency-Key reused with a different request",
        "This Idempotency-Key was already used by your client for a request with another method, path "
        "or body. Use a new key for a new request.",
    ),
    ProblemKind(
        "idempotency-key-required",
        428,
        "Idempotency-Key required",
        "This operation changes money or projects and must carry an `Idempotency-Key` header "
        "(a UUID is a good choice), so a retry never does the work twice.",
    ),
    ProblemKind(
        "rate-limited",
        429,
        "Too many requests",
        "Your client used its request budget for this tier. Wait `Retry-After` seconds; the "
        "`RateLimit` and `RateLimit-Policy` headers show the budget.",
    ),
    ProblemKind(
        "internal-error",
        500,
        "Internal error",
        "An unexpected error. It is logged under the `correlation_id`; quote it when you report it.",
    ),
    ProblemKind(
        "vendor-bad-response",
        502,
        "Upstream system answered badly",
        "A vendor system (CRM, PSA, ERP, FP&A) answered with something the gateway cannot use: an "
        "error it did not expect or a body that does not parse. `vendor` names the system; `record_id` "
        "names the record when one record cannot be mapped to the contract (correct it in the vendor).",
    ),
    ProblemKind(
        "vendor-unavailable",
        503,
        "Upstream system unavailable",
        "A vendor system is down, overloaded, rate-limiting the gateway, or its circuit breaker is "
        "open. Retry after `Retry-After` seconds.",
    ),
    ProblemKind(
        "tier-unavailable",
        503,
        "Dependent API unavailable",
        "An API tier this operation depends on did not answer. Retry after `Retry-After` seconds.",
    ),
    ProblemKind(
        "source-unavailable",
        503,
        "A source the view needs is unavailable",
        "An experience view declares which of its sections it cannot answer without (see "
        "`GET /experience/v1/views`); one of those sources was down or too slow. `section` names the "
        "section and `source_code` the cause (e.g. `vendor-unavailable`, `source-timeout`). Optional "
        "sections never cause this: they come back with `status: unavailable`. Retry after `Retry-After` "
        "seconds.",
    ),
    ProblemKind(
        "state-store-unavailable",
        503,
        "Gateway state store unavailable",
        "The gateway's shared state (Redis: idempotency records, business events, CRM event receipts) did "
        "not answer. A write with an Idempotency-Key is never run unguarded: it was refused before it ran. "
        "Retry after `Retry-After` seconds (with the same Idempotency-Key); a retry is safe.",
    ),
    ProblemKind(
        "run-database-unavailable",
        503,
        "Run database unavailable",
        "The workflow run database (PostgreSQL or SQLite) did not answer in time, so the run could not be "
        "started or read. A start may or may not have been recorded: retry after `Retry-After` seconds "
        "with the same Idempotency-Key, and you get the one run either way.",
    ),
    ProblemKind(
        "vendor-timeout",
        504,
        "Upstream system timed out",
        "A vendor system did not answer within the gateway's timeout. Safe reads may be retried.",
    ),
]
PROBLEM_KINDS: Mapping[str, ProblemKind] = {k.code: k for k in _KINDS}
# The first kind listed for a status is the one a bare HTTPException of that status becomes.
_DEFAULT_FOR_STATUS: Mapping[int, ProblemKind] = {k.status: k for k in reversed(_KINDS)}


class FieldError(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    location: str  # body | query | path | header
    field: str | None = None
    message: str


class Problem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """RFC 9457 problem details, with Stratum's extension members."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[FieldError] | None = None
    required_scopes: list[str] | None = None
    vendor: str | None = None
    retry_after: int | None = None
    # vendor-bad-response about one vendor record the contract cannot carry: its id in that vendor.
    record_id: str | None = None
    # source-unavailable: the view's section that failed, and the code of its cause.
    section: str | None = None
    source_code: str | None = None


class ProblemError(HTTPException):
    """Raise anywhere to answer with a problem of a catalogued kind."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        kind = PROBLEM_KINDS[code]
        super().__init__(detail=detail or kind.title, status_code=kind.status, headers=dict(headers or {}))
        self.kind = kind
        self.problem_detail = detail
        self.errors = list(errors) if errors else None
        self.extra_members = dict(extra or {})


def _correlation_id(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    value = state.get("correlation_id")
    return value if isinstance(value, str) else None


def problem_response(
    scope: Scope,
    kind: ProblemKind,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response[bytes]:
    problem = Problem(
        type=kind.type_uri,
        title=kind.title,
        status=kind.status,
        code=kind.code,
        detail=detail,
        instance=scope.get("path"),
        correlation_id=_correlation_id(scope),
        errors=list(errors) if errors else None,
        **dict(extra or {}),
    )
    out_headers = dict(headers or {})
    if "retry-after" not in {h.lower() for h in out_headers} and problem.retry_after is not None:
        out_headers["Retry-After"] = str(problem.retry_after)
    return Response(
        content=msgspec.json.encode(problem),
        status_code=kind.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=out_headers,
    )


def _validation_errors(exc: ValidationException) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        source = str(getattr(item.get("source"), "value", item.get("source") or "body"))
        key = item.get("key")
        message = str(item.get("message", "invalid value"))
        field = None if key in (None, "data") else str(key)
        # msgspec says "... at `$.opportunity_id`": surface the JSON path as the field name.
        if field is None and "at `$." in message:
            field = message.rsplit("at `$.", 1)[1].rstrip("`")
        elif field is None and "field `" in message:
            field = message.split("field `", 1)[1].split("`", 1)[0]
        errors.append(FieldError(location=source, field=field, message=message))
    return errors


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    scope = request.scope
    headers = dict(exc.headers or {})
    if isinstance(exc, ProblemError):
        return problem_response(
            scope, exc.kind, exc.problem_detail, headers=headers, errors=exc.errors, extra=exc.extra_members
        )
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        if not errors and isinstance(exc.__cause__, SerializationException):
            return problem_response(scope, PROBLEM_KINDS["malformed-request"], exc.detail, headers=headers)
        return problem_response(
            scope,
            PROBLEM_KINDS["validation-failed"],
            "The request does not match the contract.",
            headers=headers,
            errors=errors,
        )
    if isinstance(exc.__cause__, SerializationException):
        return problem_response(scope, PROBLEM_KINDS["malformed-request"], exc.detail, headers=headers)
    if isinstance(exc, MethodNotAllowedException):
        allow = headers.pop("allow", None) or headers.pop("Allow", "")
        return problem_response(
            scope,
            PROBLEM_KINDS["method-not-allowed"],
            f"{scope.get('method')} is not allowed here.",
            headers={**headers, "Allow": allow},
        )
    if isinstance(exc, NotFoundException):
        return problem_response(scope, PROBLEM_KINDS["not-found"], headers=headers)
    if isinstance(exc, RequestEntityTooLarge):
        return problem_response(scope, PROBLEM_KINDS["payload-too-large"], headers=headers)
    if isinstance(exc, NotAuthorizedException):
        return problem_response(scope, PROBLEM_KINDS["unauthenticated"], headers=headers)
    if isinstance(exc, PermissionDeniedException):
        return problem_response(scope, PROBLEM_KINDS["insufficient-scope"], headers=headers)
    kind = _DEFAULT_FOR_STATUS.get(exc.status_code)
    if kind is None:
        kind = (
            PROBLEM_KINDS["malformed-request"] if exc.status_code < 500 else PROBLEM_KINDS["internal-error"]
        )
    detail = exc.detail if exc.status_code < 500 else None
    return problem_response(scope, kind, detail, headers=headers)


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled_exception", path=request.scope.get("path"), exc_info=exc)
    return problem_response(request.scope, PROBLEM_KINDS["internal-error"])


def _handle_state_store_unavailable(
    request: Request[Any, Any, Any], exc: StateStoreUnavailable
) -> Response[bytes]:
    # A warning, not an error: the outage is the store's, and the caller is told to come back.
    log.warning("state_store_unavailable", path=request.scope.get("path"), operation=exc.operation)
    seconds = exc.retry_after_seconds
    return problem_response(
        request.scope,
        PROBLEM_KINDS["state-store-unavailable"],
        "The gateway state store did not answer; retrying with the same Idempotency-Key is safe.",
        headers={"Retry-After": str(seconds)},
        extra={"retry_after": seconds},
    )


exception_handlers: Mapping[Any, Any] = {
    HTTPException: handle_http_exception,
    StateStoreUnavailable: _handle_state_store_unavailable,
    Exception: _handle_unexpected,
}


def problem_doc_html(kind: ProblemKind) -> str:
    """The page a problem's ``type`` URI resolves to."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(kind.title)}</title></head><body><h1>{html.escape(kind.title)}</h1>"
        f"<p><code>type: {html.escape(kind.type_uri)}</code> &middot; <code>code: {kind.code}</code> "
        f"&middot; HTTP {kind.status}</p><p>{html.escape(kind.doc)}</p></body></html>"
    )
