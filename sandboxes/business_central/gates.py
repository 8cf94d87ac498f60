"""ASGI layers around the Litestar router: the bearer-token gate every API call passes, and Business
Central's limits (a sliding window of requests per principal, requests in flight)."""

from __future__ import annotations

import math

from sandboxes.asgi_headers import bearer_token
from sandboxes.business_central.entra import BC_RESOURCE
from sandboxes.business_central.errors import error_body
from sandboxes.business_central.sandbox import BusinessCentralSandbox
from sandboxes.business_central.wire import ENCODER, ODATA_JSON
from sandboxes.faults import ASGIApp, Receive, Scope, Send, relative_path

__all__ = ["AuthGate", "Governor"]


def _governed(path: str) -> bool:
    """The API paths that need a token and count against the limits (not Entra's token endpoint)."""
    return path.startswith("/v2.0/")


async def _send_error(
    send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    payload = ENCODER.encode(error_body(code, message))
    headers = [
        (b"content-type", ODATA_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"odata-version", b"4.0"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class AuthGate:
    """Rejects API calls without a valid bearer token, routed or not, before Litestar sees them."""

    def __init__(self, app: ASGIApp, sandbox: BusinessCentralSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and _governed(relative_path(scope))
            and self.sandbox.principal(bearer_token(scope)) is None
        ):
            tenant = self.sandbox.settings.tenant_id
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{tenant}/oauth2/authorize", '
                f'resource_id="{BC_RESOURCE}"'
            ).encode()
            await _send_error(
                send,
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
                [(b"www-authenticate", challenge)],
            )
            return
        await self.app(scope, receive, send)


class Governor:
    """Business Central's limits: a sliding window of requests per principal and requests in flight.

    It sits outside fault injection, so a latency fault keeps its request in flight, as against a slow
    environment, and a request the faults answer still counted against the principal's window.
    """

    def __init__(self, app: ASGIApp, sandbox: BusinessCentralSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox = self.sandbox
        principal = (
            sandbox.principal(bearer_token(scope))
            if scope["type"] == "http" and _governed(relative_path(scope))
            else None
        )
        if principal is None:
            await self.app(scope, receive, send)
            return
        retry_after = sandbox.admit(principal)
        if retry_after is None and sandbox.in_flight >= sandbox.settings.concurrency_limit:
            retry_after = 1.0
        if retry_after is not None:
            sandbox.throttled += 1
            # Unverified: the code and wording; the status and Retry-After are documented.
            await _send_error(
                send,
                429,
                "TooManyRequests",
                "Too many requests reached. Reduce the rate of requests and retry after the time given in "
                "the Retry-After header.",
                [(b"retry-after", str(math.ceil(retry_after)).encode())],
            )
            return
        sandbox.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            sandbox.in_flight -= 1
