"""OAuth 2.0 token endpoint, ``POST /services/oauth2/token`` (Salesforce Help, "OAuth 2.0 Client
Credentials Flow for Server-to-Server Integration" and "OAuth 2.0 JWT Bearer Flow for Server-to-Server
Integration"): the client-credentials grant (HTTP Basic or form fields) and the JWT bearer grant.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from hashlib import sha256
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from litestar import Request, Response, post
from litestar.di import NamedDependency

from apis.json_limits import json_too_deep
from sandboxes.salesforce.data import (
    INTEGRATION_USER_ID,
    ORG_ID,
)
from sandboxes.salesforce.org import Org
from sandboxes.salesforce.wire import json_response, oauth_error

__all__ = ["issue_token"]

# The JWT bearer flow (see `_jwt_bearer_grant`).
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LOGIN_AUDIENCES = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
# Salesforce asks for an expiry within three minutes; two more allow for clock skew (unverified).
_JWT_MAX_LIFETIME_SECONDS = 5 * 60

# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[Org]


def _client_credentials(
    request: Request[Any, Any, Any], form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    authorization = request.headers.get("authorization", "")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, separator, client_secret = decoded.partition(":")
        if not separator:
            return None, None
        # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
        return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))
    return form.get("client_id"), form.get("client_secret")


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64url_json(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None


def _jwt_bearer_grant(sandbox: Org, assertion: str | None, own_audience: str) -> str:
    """Check a JWT bearer assertion the way Salesforce does; the user id it is for.

    ``iss`` is a registered consumer key, the RS256 signature verifies with that client's key, ``aud`` is
    a login URL (login.salesforce.com, test.salesforce.com or this org's own URL), ``exp`` lies in the
    next few minutes (a number, or a string of digits as Salesforce's own example and simple-salesforce
    send it) and ``sub`` is a user for whom the app is approved.
    """
    invalid = _GrantError("invalid_grant", "invalid assertion")
    segments = (assertion or "").split(".")
    if len(segments) != 3:
        raise invalid
    header, claims = _b64url_json(segments[0]), _b64url_json(segments[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid
    issuer = claims.get("iss")
    key = sandbox.jwt_public_key(issuer) if isinstance(issuer, str) else None
    if key is None:
        raise _GrantError("invalid_client_id", "client identifier invalid")
    # Only RS256: "none", HS256 keyed with the public key and friends are all just invalid assertions.
    if header.get("alg") != "RS256":
        raise invalid
    try:
        signature = base64.urlsafe_b64decode(segments[2] + "=" * (-len(segments[2]) % 4))
        key.verify(signature, f"{segments[0]}.{segments[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise invalid from None
    audiences = claims.get("aud")
    audience_list = audiences if isinstance(audiences, list) else [audiences]
    accepted = _LOGIN_AUDIENCES | {own_audience.rstrip("/")}
    if not any(isinstance(aud, str) and aud.rstrip("/") in accepted for aud in audience_list):
        raise _GrantError("invalid_grant", "audience is invalid")
    expiry = claims.get("exp")
    if isinstance(expiry, str) and expiry.isdigit():
        expiry = int(expiry)
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        raise invalid
    now = sandbox.clock()
    if expiry <= now:
        raise _GrantError("invalid_grant", "expired access/refresh token")
    if expiry > now + _JWT_MAX_LIFETIME_SECONDS:
        raise invalid
    subject = claims.get("sub")
    user_id = sandbox.settings.usernames.get(subject) if isinstance(subject, str) else None
    if user_id is None:
        raise _GrantError("invalid_grant", "user hasn't approved this consumer")
    return user_id


_TOKEN_HEADERS = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}


@post("/services/oauth2/token", status_code=200)
async def issue_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    own_url = str(request.base_url).rstrip("/")
    instance_url = (sandbox.settings.instance_url or own_url).rstrip("/")
    grant_type = form.get("grant_type")
    if grant_type == _JWT_BEARER:
        try:
            user_id = _jwt_bearer_grant(sandbox, form.get("assertion"), own_url)
        except _GrantError as exc:
            return oauth_error(exc.error, exc.description)
        token, _ = sandbox.open_session(user_id)
        # The JWT response has no signature (there is no secret to sign with) and no issued_at.
        payload = {
            "access_token": token,
            "scope": "api",
            "instance_url": instance_url,
            "id": f"{own_url}/id/{ORG_ID}/{user_id}",
            "token_type": "Bearer",
        }
        return json_response(payload, headers=_TOKEN_HEADERS)
    if grant_type != "client_credentials":
        return oauth_error("unsupported_grant_type", "grant type not supported")
    client_id, client_secret = _client_credentials(request, form)
    expected = None if client_id is None else sandbox.settings.clients.get(client_id)
    if expected is None or client_secret is None or not hmac.compare_digest(expected, client_secret):
        return oauth_error("invalid_client", "invalid client credentials")
    token, issued_at = sandbox.open_session(INTEGRATION_USER_ID)
    identity_url = f"{instance_url}/id/{ORG_ID}/{INTEGRATION_USER_ID}"
    # Salesforce signs id + issued_at with the consumer secret so clients can verify the response.
    digest = hmac.new(expected.encode(), f"{identity_url}{issued_at}".encode(), sha256).digest()
    payload = {
        "access_token": token,
        "signature": base64.b64encode(digest).decode(),
        "scope": "api",
        "instance_url": instance_url,
        "id": identity_url,
        "token_type": "Bearer",
        "issued_at": str(issued_at),
    }
    return json_response(payload, headers=_TOKEN_HEADERS)
