"""The development authorization server: client credentials grant, RFC 8414 metadata and JWKS.

It runs only when no external issuer is configured. Clients and their allowed scopes live in
``{data_dir}/clients.json`` (created on first start with random secrets; edit it to add clients), the RS256
signing key in ``{data_dir}/signing-key.json``; both files are written once, with mode 0600, and kept.
Tokens are RFC 9068 JWT access tokens made by authlib's ``JWTBearerTokenGenerator``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import msgspec
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.authenticate_client import ClientAuthentication
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet, RSAKey

from apis.data_dir import write_private_file

__all__ = [
    "ALL_SCOPES",
    "DevAuthorizationServer",
    "DevClient",
    "InvalidScopeError",
    "OAuthResponse",
    "SigningKeys",
    "granted_scope",
    "load_dev_clients",
]

ALL_SCOPES: tuple[str, ...] = (
    "system:read",
    "system:write",
    "process:run",
    "process:read",
    "process:admin",
    "finance:approve",
    "experience:sales",
    "experience:finance",
    "experience:delivery",
    "experience:ops",
)

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# The clients a fresh data directory starts with: a demo client for people and CI, and one per tier for
# the calls one tier makes to another.
_DEFAULT_CLIENTS: Mapping[str, tuple[str, ...]] = {
    "stratum-demo": ALL_SCOPES,
    "stratum-process-tier": ("system:read", "system:write"),
    "stratum-experience-tier": ("system:read", "process:run", "process:read"),
}


class DevClient(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    description: str = ""


def granted_scope(client: DevClient, requested: str | None) -> str:
    """The scope a token for ``client`` carries when ``requested`` is asked for; the one rule of the token
    endpoint and of ``stratum token``.

    Nothing requested: every scope the client may have. A scope Stratum does not know, or a request of which
    the client may have none, is refused (``InvalidScopeError``, RFC 6749 ``invalid_scope``) rather than
    answered with a token that carries something else. Known scopes the client may not have are left out
    (RFC 6749 section 3.3), and the token's ``scope`` says what was granted.
    """
    if not requested or not requested.strip():
        return " ".join(client.scopes)
    asked = requested.split()
    # error_description must stay within RFC 6749's characters: echo only well-formed scope tokens.
    if any(not _SCOPE_TOKEN.fullmatch(s) for s in asked):
        raise InvalidScopeError("malformed scope")
    unknown = [s for s in asked if s not in ALL_SCOPES]
    if unknown:
        raise InvalidScopeError(f"unknown scope: {' '.join(unknown)}")
    granted = [s for s in dict.fromkeys(asked) if s in client.scopes]
    if not granted:
        raise InvalidScopeError(f"client {client.client_id} may not have: {' '.join(asked)}")
    return " ".join(granted)


class _AuthlibClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client: DevClient) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # authlib's token generator asks here; the grant asks first (validate_requested_scope), so a refused
        # scope is an invalid_scope answer before any token is made.
        return granted_scope(self.client, scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _UnknownClient(_AuthlibClient):
    """Stands in for a client id the registry does not have, during client authentication only.

    The caller gets the same answer as for a wrong secret, after the same work (one constant-time compare
    with a secret as long as a generated one), so the token endpoint does not tell which client ids exist."""

    def __init__(self) -> None:
        super().__init__(DevClient(client_id="", client_secret=secrets.token_urlsafe(24), scopes=()))

    def check_client_secret(self, client_secret: str) -> bool:
        super().check_client_secret(client_secret)
        return False


_UNKNOWN_CLIENT = _UnknownClient()


def load_dev_clients(data_dir: str) -> dict[str, DevClient]:
    """The registry from ``clients.json``; made with random secrets on first use."""
    path = Path(data_dir) / "clients.json"
    if not path.exists():
        clients = [
            DevClient(client_id=cid, client_secret=secrets.token_urlsafe(24), scopes=scopes)
            for cid, scopes in _DEFAULT_CLIENTS.items()
        ]
        # Another worker may have written it first: then read theirs.
        with contextlib.suppress(FileExistsError):
            write_private_file(path, json.dumps([msgspec.to_builtins(c) for c in clients], indent=2).encode())
    loaded = msgspec.json.decode(path.read_bytes(), type=list[DevClient])
    return {c.client_id: c for c in loaded}


class SigningKeys:
    """The dev issuer's RS256 key, generated once and kept in ``signing-key.json``."""

    def __init__(self, data_dir: str) -> None:
        path = Path(data_dir) / "signing-key.json"
        if not path.exists():
            key = RSAKey.generate_key(
                2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
            )
            with contextlib.suppress(FileExistsError):
                write_private_file(path, json.dumps(key.as_dict(private=True)).encode())
        self.private = KeySet([RSAKey.import_key(json.loads(path.read_text()))])
        public_jwks = self.private.as_dict(private=False)
        self.public = KeySet.import_key_set(public_jwks)
        self.public_jwks: dict[str, Any] = dict(public_jwks)


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, issuer: str, audience: str, keys: SigningKeys, ttl: int) -> None:
        super().__init__(issuer=issuer, alg="RS256", expires_generator=lambda client, grant_type: ttl)
        self._audience = audience
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return self._keys.private

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return self._audience


class OAuthResponse(msgspec.Struct, frozen=True):
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]]
    # Why a refused request was refused, for the log only: the body must not tell an unknown client
    # from a wrong secret, the operator's log should.
    reason: str | None = None


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(client_id, client_secret)`` from ``Authorization: Basic`` (RFC 6749 2.3.1: each form-encoded);
    ``(None, None)`` when there is no usable Basic header. authlib's own reader lets a non-UTF-8 value
    escape as ``UnicodeDecodeError``."""
    header = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None, None
    client_id, colon, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret) if colon else None


def _authenticate_basic(query_client: Any, request: _FormRequest) -> _AuthlibClient | None:
    client_id, secret = _basic_credentials(request.headers)
    if not client_id or not secret:
        return None
    client: _AuthlibClient = query_client(client_id)
    return client if client.check_client_secret(secret) else None


def _authenticate_post(query_client: Any, request: _FormRequest) -> _AuthlibClient | None:
    client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    if not client_id or not secret:
        return None
    client: _AuthlibClient = query_client(client_id)
    return client if client.check_client_secret(secret) else None


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, form: Mapping[str, str], headers: Mapping[str, str]) -> None:
        # authlib reads headers as "Authorization": keep the caller's case-insensitive mapping.
        super().__init__(method="POST", uri=uri, headers=headers)
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        granted_scope(self.request.client.client, self.request.payload.scope)


class DevAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server, bound to Stratum's client registry and key."""

    def __init__(self, *, issuer: str, audience: str, data_dir: str, token_ttl_seconds: int = 3600) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.issuer = issuer
        self.audience = audience
        self.keys = SigningKeys(data_dir)
        self.clients = load_dev_clients(data_dir)
        self.register_grant(_ClientCredentialsGrant)
        # Client authentication looks clients up through ``_client_to_authenticate``, which never says a
        # client is unknown; authlib's own methods answer an unknown client differently from a wrong secret.
        self._client_auth = ClientAuthentication(self._client_to_authenticate)
        self._client_auth.register("client_secret_basic", _authenticate_basic)
        self._client_auth.register("client_secret_post", _authenticate_post)
        self.register_token_generator(
            "default", _TokenGenerator(issuer, audience, self.keys, token_ttl_seconds)
        )

    # authlib's framework hooks
    def query_client(self, client_id: str) -> _AuthlibClient | None:
        client = self.clients.get(client_id)
        return _AuthlibClient(client) if client else None

    def _client_to_authenticate(self, client_id: str) -> _AuthlibClient:
        client = self.clients.get(client_id)
        return _AuthlibClient(client) if client else _UNKNOWN_CLIENT

    def save_token(self, token: Any, request: Any) -> None:
        # JWT access tokens are self-contained: nothing to store.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: _FormRequest) -> _FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        return OAuthResponse(status=status, body=dict(body), headers=list(headers))

    # Stratum's API
    def token_response(self, form: Mapping[str, str], headers: Mapping[str, str]) -> OAuthResponse:
        request = _FormRequest(f"{self.issuer}/oauth/token", form, headers)
        response: OAuthResponse = self.create_token_response(request)
        if response.status == 200:
            return response
        return msgspec.structs.replace(response, reason=self._refusal_reason(response, form, headers))

    def _refusal_reason(
        self, response: OAuthResponse, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> str:
        if response.body.get("error") != "invalid_client":
            return str(response.body.get("error_description") or response.body.get("error") or "refused")
        basic_id, basic_secret = _basic_credentials(headers)
        client_id, secret = (
            (basic_id, basic_secret) if basic_id else (form.get("client_id"), form.get("client_secret"))
        )
        if not client_id or not secret:
            return "no client credentials"
        if client_id not in self.clients:
            return "unknown client"
        return "wrong client secret"

    def issue_token(self, client_id: str, scope: str | None = None) -> str:
        """Mint a token for a registered client without the HTTP round trip (the CLI uses it).

        The token endpoint's scope rule applies (``granted_scope``): ``InvalidScopeError`` if it refuses."""
        client = self.query_client(client_id)
        if client is None:
            raise KeyError(f"unknown client {client_id!r}")
        token = self.generate_token(
            grant_type="client_credentials", client=client, scope=scope, include_refresh_token=False
        )
        return str(token["access_token"])

    def metadata(self, base_url: str | None = None) -> dict[str, Any]:
        """RFC 8414 authorization server metadata; endpoints under ``base_url`` (where it was asked)."""
        base = (base_url or self.issuer).rstrip("/")
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/oauth/jwks",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(ALL_SCOPES),
            "response_types_supported": ["token"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        }
