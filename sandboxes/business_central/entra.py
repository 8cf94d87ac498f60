"""Microsoft Entra ID's token endpoint, ``POST /{tenant}/oauth2/v2.0/token``: client credentials only
(``client_id`` + ``client_secret`` in the form, or HTTP Basic) for the Business Central scope, with Entra's
error shape (``error``, ``error_description`` with an ``AADSTS`` code, ``error_codes``, ``trace_id``...)."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from litestar import Request, Response, post
from litestar.params import FromPath

from sandboxes.business_central.sandbox import BusinessCentralSandbox, SandboxDependency, Token
from sandboxes.business_central.wire import ENCODER

__all__ = ["BC_RESOURCE", "BC_SCOPE", "EntraError", "grant", "issue_token"]

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
_ENTRA_JSON = "application/json; charset=utf-8"


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


def grant(
    sandbox: BusinessCentralSandbox, tenant: str, form: Mapping[str, str], basic: tuple[str, str] | None
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    if grant_type != "client_credentials":
        raise EntraError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    if tenant.lower() != sandbox.settings.tenant_id.lower():
        raise EntraError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud.",
        )
    client_id, client_secret = (
        basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
    )
    if not client_id:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    scope = form.get("scope")
    if not scope:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    if scope.rstrip("/") != BC_SCOPE:
        if not scope.endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {scope.removesuffix('/.default')} was not found in the "
            f"tenant named {tenant}.",
        )
    secret = sandbox.clients.get(client_id)
    if secret is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    if not client_secret:
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if not secrets.compare_digest(client_secret.encode(), secret.encode()):
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    access_token = secrets.token_urlsafe(48)
    ttl = sandbox.settings.token_ttl_seconds
    sandbox.tokens[access_token] = Token(client_id, sandbox.settings.tenant_id, sandbox.clock() + ttl)
    return {
        "token_type": "Bearer",
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access_token,
    }


def _entra_error(exc: EntraError, tenant: str) -> Response[bytes]:
    trace = str(uuid.uuid4())
    correlation = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": exc.error,
        "error_description": f"AADSTS{exc.code}: {exc.description} Trace ID: {trace} Correlation ID: "
        f"{correlation} Timestamp: {stamp}",
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }
    return Response(
        ENCODER.encode(body),
        status_code=exc.status,
        media_type=_ENTRA_JSON,
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


# ---------------------------------------------------------------------------------------------------------
# Entra ID token endpoint
# ---------------------------------------------------------------------------------------------------------


@post("/{tenant:str}/oauth2/v2.0/token", status_code=200)
async def issue_token(
    request: Request[Any, Any, Any], tenant: FromPath[str], sandbox: SandboxDependency
) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    basic: tuple[str, str] | None = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        basic = (unquote(user), unquote(password))
    try:
        payload = grant(sandbox, tenant, form, basic)
    except EntraError as exc:
        return _entra_error(exc, tenant)
    return Response(
        ENCODER.encode(payload),
        media_type=_ENTRA_JSON,
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )
