"""OAuth 2.0 resource server: RFC 9068 JWT access tokens, verified against the issuer's JWKS.

Verification uses authlib's RFC 9068 claims rules (``iss``, ``aud``, ``exp``, ``iat``, ``sub``,
``client_id``, ``jti``) on joserfc, with two checks authlib leaves out: an algorithm allow-list (so
``alg: none`` and an HS256 token "signed" with our public key never verify) and a required
``typ: at+jwt`` header (RFC 9068 section 4: an ID token or other JWT is not an access token).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from apis.json_limits import json_too_deep
from apis.logging import get_logger
from apis.problems import ProblemError

if TYPE_CHECKING:
    from apis.config import Settings

__all__ = ["AccessContext", "JwksSource", "TokenVerifier", "insufficient_scope", "unauthenticated"]

log = get_logger("stratum.security")
REALM = "stratum"


class AccessContext(msgspec.Struct, kw_only=True, frozen=True):
    """Who is calling: set on ``scope["auth"]`` by the auth middleware for every protected route."""

    client_id: str
    subject: str
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    on_behalf_of: str | None = None  # the original caller, when a tier calls another tier


def unauthenticated() -> ProblemError:
    # RFC 6750 section 3.1: a request with no credentials gets a challenge without an error code.
    return ProblemError("unauthenticated", headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})


def invalid_token(description: str) -> ProblemError:
    challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
    return ProblemError("invalid-token", description, headers={"WWW-Authenticate": challenge})


def insufficient_scope(required: Iterable[str]) -> ProblemError:
    scopes = " ".join(sorted(required))
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scopes}"'
    return ProblemError(
        "insufficient-scope",
        f"This operation requires the scopes: {scopes}.",
        headers={"WWW-Authenticate": challenge},
        extra={"required_scopes": sorted(required)},
    )


class JwksSource:
    """The issuer's public keys: given (the embedded issuer) or fetched from ``jwks_url`` and cached.

    An unknown ``kid`` triggers at most one refetch per ``min_refresh_seconds``, so key rotation at the
    issuer works and a flood of forged kids cannot turn into a flood of JWKS fetches.
    """

    def __init__(
        self,
        *,
        key_set: KeySet | None = None,
        jwks_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        min_refresh_seconds: float = 60.0,
    ) -> None:
        if key_set is None and jwks_url is None:
            raise ValueError("a JwksSource needs keys or a jwks_url")
        self.key_set = key_set or KeySet([])
        self._jwks_url = jwks_url
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def remote(self) -> bool:
        return self._jwks_url is not None

    def has_kid(self, kid: str | None) -> bool:
        if kid is None:
            return len(self.key_set.keys) > 0
        return any(key.kid == kid for key in self.key_set.keys)

    async def refresh(self, *, force: bool = False) -> None:
        if self._jwks_url is None or self._http is None:
            return
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self._min_refresh:
                return
            self._fetched_at = time.monotonic()
            try:
                response = await self._http.get(self._jwks_url)
                response.raise_for_status()
                self.key_set = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                log.warning("jwks_refresh_failed", jwks_url=self._jwks_url, error=type(exc).__name__)


class _Rfc9068Validator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__(issuer=verifier.issuer, resource_server=verifier.audience, realm=REALM)
        self._verifier = verifier

    def get_jwks(self) -> KeySet:
        return self._verifier.jwks.key_set

    def authenticate_token(self, token_string: str) -> JWTAccessTokenClaims:
        token = jwt.decode(token_string, self.get_jwks(), algorithms=list(self._verifier.algorithms))
        typ = str(token.header.get("typ", "")).lower()
        if typ not in ("at+jwt", "application/at+jwt"):
            raise JoseError("not an RFC 9068 access token (typ must be at+jwt)")
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "exp": {"essential": True},
            "aud": {"essential": True, "value": self.resource_server},
            "sub": {"essential": True},
            "client_id": {"essential": True},
            "iat": {"essential": True},
            "jti": {"essential": True},
        }
        return JWTAccessTokenClaims(token.claims, token.header, options)


def _token_header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".", 1)[0]
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if json_too_deep(raw):  # the caller wrote it: parsing it could raise RecursionError
            raise ValueError("nested too deep")
        header = msgspec.json.decode(raw)
    except (ValueError, msgspec.DecodeError):
        raise invalid_token("malformed token") from None
    if not isinstance(header, dict):
        raise invalid_token("malformed token")
    return header


class TokenVerifier:
    """Turns a bearer token into an :class:`AccessContext` or raises a 401 problem.

    A client sends the same token for up to an hour, so verified tokens are cached (keyed by the exact
    token string) until the earlier of their ``exp`` and ``cache_seconds``: the signature check and claim
    validation then run once per token instead of once per request. The cache is bounded in size; a failed
    verification is never cached.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str],
        jwks: JwksSource,
        leeway: int = 30,
        cache_seconds: float = 300.0,
        cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.jwks = jwks
        self.leeway = leeway
        self._validator = _Rfc9068Validator(self)
        self._cache: OrderedDict[str, tuple[float, AccessContext]] = OrderedDict()
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size

    @classmethod
    def for_settings(cls, settings: Settings, jwks: JwksSource) -> TokenVerifier:
        return cls(
            issuer=settings.issuer,
            audience=settings.oauth_audience,
            algorithms=settings.oauth_algorithms,
            jwks=jwks,
            leeway=settings.oauth_leeway_seconds,
        )

    async def verify(self, token: str) -> AccessContext:
        cached = self._cache.get(token)
        if cached is not None:
            if time.time() < cached[0]:
                return cached[1]
            del self._cache[token]
        access = await self._verify(token)
        self._cache[token] = (min(access.expires_at, time.time() + self._cache_seconds), access)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return access

    async def _verify(self, token: str) -> AccessContext:
        header = _token_header(token)
        if header.get("alg") not in self.algorithms:
            raise invalid_token("algorithm not allowed")
        kid = header.get("kid")
        if self.jwks.remote and not self.jwks.has_kid(kid if isinstance(kid, str) else None):
            await self.jwks.refresh()
        try:
            claims = self._validator.authenticate_token(token)
            claims.validate(now=int(time.time()), leeway=self.leeway)
        except (JoseError, ValueError) as exc:
            raise invalid_token(_describe(exc)) from None
        scope = claims.get("scope") or ""
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
        return AccessContext(
            client_id=str(claims["client_id"]),
            subject=str(claims["sub"]),
            scopes=scopes,
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )


def _describe(exc: Exception) -> str:
    # The description goes into a header: keep it short, ASCII and free of quotes.
    text = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
    return str(text).replace('"', "'").encode("ascii", "replace").decode()[:120]
