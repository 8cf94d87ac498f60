"""The edge of every deployment: correlation id, access log and metrics, around the whole ASGI app.

It sits outside Litestar's routing (Litestar middleware runs only once a route matched), so 404s, 405s and
anything else still get a correlation id, one access line and a metric.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from apis.context import access_var, correlation_id_var
from apis.logging import get_logger
from apis.metrics import REQUEST_SECONDS, REQUESTS

if TYPE_CHECKING:
    from apis.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORRELATION_HEADER", "Edge", "tier_of"]

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_TIERS = {"system": "system", "process": "process", "experience": "experience", "sandboxes": "sandbox"}
access_log = get_logger("stratum.access")


def tier_of(path: str) -> str:
    first = path.lstrip("/").split("/", 1)[0]
    return _TIERS.get(first, "gateway")


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


class Edge:
    """Wraps an ASGI app. Holds no per-request state on ``self``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = _correlation_id(scope["headers"])
        state = scope.setdefault("state", {})
        state["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        cid_token = correlation_id_var.set(correlation_id)
        access_token = access_var.set(None)
        started = time.perf_counter()
        status = 500
        sent_bytes = 0
        cid_header = (CORRELATION_HEADER.lower().encode(), correlation_id.encode())

        async def send_with_correlation(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), cid_header]
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_correlation)
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
