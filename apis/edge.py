"""The edge of every deployment: correlation id, body size cap, access log and metrics, around the whole
ASGI app.

It sits outside Litestar's routing (Litestar middleware runs only once a route matched), so 404s, 405s and
anything else still get a correlation id, one access line and a metric, and every route (tiers, public
routes, the token endpoint, webhooks, sandboxes) has its body capped before anything parses it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from apis.context import access_var, correlation_id_var, run_var
from apis.logging import get_logger
from apis.metrics import REQUEST_SECONDS, REQUESTS
from apis.problems import PROBLEM_KINDS, PROBLEM_MEDIA_TYPE, Problem, ProblemError

if TYPE_CHECKING:
    from apis.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORRELATION_HEADER", "DEFAULT_MAX_BODY_BYTES", "Edge", "tier_of"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # as ``Settings.max_body_bytes``

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_TIERS = {"system": "system", "process": "process", "experience": "experience", "sandboxes": "sandbox"}
access_log = get_logger("stratum.access")
# Browsers must not guess a type (a JSON body sniffed as HTML is an XSS vector), and no page of ours is
# meant to be framed (clickjacking): set here, once, so 404s, errors and sandboxes carry them too.
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_HTML_FRAME_GUARD = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))


def tier_of(path: str) -> str:
    first = path.lstrip("/").split("/", 1)[0]
    return _TIERS.get(first, "gateway")


def _is_html(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.lower().startswith(b"text/html") for name, value in headers
    )


def _correlation_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    traceparent = None
    for name, value in headers:
        if name == b"x-correlation-id":
            text = value.decode("latin-1").strip()
            if _CORRELATION_RE.match(text):
                return text
        elif name == b"traceparent":
            traceparent = value.decode("latin-1").strip()
    if traceparent and (match := _TRACEPARENT_RE.match(traceparent)):
        return match.group(1)
    return uuid.uuid4().hex


def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large_message(scope: Scope, limit: int) -> tuple[Message, Message]:
    """The 413 problem Edge answers itself (it runs outside every app's exception handlers)."""
    kind = PROBLEM_KINDS["payload-too-large"]
    body = msgspec.json.encode(
        Problem(
            type=kind.type_uri,
            title=kind.title,
            status=kind.status,
            code=kind.code,
            detail=f"The body is larger than {limit} bytes.",
            instance=scope["path"],
            correlation_id=scope["state"]["correlation_id"],
        )
    )
    start: Message = {
        "type": "http.response.start",
        "status": kind.status,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class Edge:
    """Wraps an ASGI app. Holds no per-request state on ``self``.

    ``max_body_bytes`` caps every request body: a ``Content-Length`` over it is answered 413 without
    calling the app; a body without one (chunked) is counted as the app reads it, and the read that passes
    the cap answers 413 and fails inside the app, so nothing parses a partial body."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared_length = _declared_length(scope["headers"])
        received_bytes = 0
        response_started = False
        answered_too_large = False  # Edge sent the 413 itself: the app's own answer is dropped
        correlation_id = _correlation_id(scope["headers"])
        state = scope.setdefault("state", {})
        state["correlation_id"] = correlation_id
        # An in-process call (a tier client's, the tiers' token fetch) runs in its caller's task: the
        # caller's log context and run are put back once this request is done.
        caller_log_context = structlog.contextvars.get_contextvars()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        cid_token = correlation_id_var.set(correlation_id)
        access_token = access_var.set(None)
        run_token = run_var.set(None)
        started = time.perf_counter()
        status = 500
        sent_bytes = 0
        cid_header = (CORRELATION_HEADER.lower().encode(), correlation_id.encode())

        async def send_with_correlation(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), cid_header, _NOSNIFF]
                if _is_html(headers):
                    headers += _HTML_FRAME_GUARD
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        async def answer_too_large() -> None:
            nonlocal answered_too_large
            answered_too_large = True
            for message in _too_large_message(scope, limit):
                await send_with_correlation(message)

        async def receive_capped() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit:
                    if not response_started and not answered_too_large:
                        await answer_too_large()
                    raise ProblemError("payload-too-large", f"The body is larger than {limit} bytes.")
            return message

        async def send_from_app(message: Message) -> None:
            nonlocal response_started
            if answered_too_large:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send_with_correlation(message)

        try:
            if declared_length is not None and declared_length > limit:
                await answer_too_large()
            else:
                try:
                    await self.app(scope, receive_capped, send_from_app)
                except ProblemError:
                    if not answered_too_large:
                        raise
        finally:
            elapsed = time.perf_counter() - started
            tier = tier_of(scope["path"])
            route = str(scope.get("path_template") or "unmatched")
            method = scope["method"]
            REQUESTS.labels(tier, route, method, str(status)).inc()
            REQUEST_SECONDS.labels(tier, route, method).observe(elapsed)
            auth: Any = scope.get("auth")
            access_log.info(
                "request",
                tier=tier,
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                bytes=sent_bytes,
                # The token endpoint has no token to read a client from: it notes the client named.
                client_id=getattr(auth, "client_id", None) or state.get("token_client_id"),
                on_behalf_of=getattr(auth, "on_behalf_of", None),
            )
            correlation_id_var.reset(cid_token)
            access_var.reset(access_token)
            run_var.reset(run_token)
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**caller_log_context)
