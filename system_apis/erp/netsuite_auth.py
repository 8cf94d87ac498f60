"""NetSuite's OAuth 2.0 machine-to-machine flow, as an ``httpx.Auth``: client credentials with a signed JWT.

NetSuite has no client secret for integrations that run unattended: the integration uploads a certificate,
and every token request carries a short-lived JWT signed with the certificate's private key
(RFC 7523 ``private_key_jwt`` client authentication)::

    POST {token_url}
    grant_type=client_credentials
    &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    &client_assertion=<JWT: header {alg, kid=certificate id, typ}; claims {iss=client id,
                        scope=[rest_webservices], aud=token_url, iat, exp, jti}>

and gets ``{"access_token", "expires_in", "token_type"}`` back (NetSuite sends ``expires_in`` as a string;
both forms are read). The bearer token is cached until shortly before it expires, and refetched once when a
data call answers 401 (revoked, or our clock and NetSuite's disagree).

The assertion is signed with joserfc (the JOSE library authlib itself builds on); authlib's own RFC 7523
helper would only add deprecation noise for key objects. The private key is parsed once and kept as a key
object: it is never logged, never put in an exception message and not shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Literal

import httpx
import msgspec
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from apis.oauth_client import TokenFetchError

__all__ = [
    "ASSERTION_TYPE",
    "NETSUITE_SCOPE",
    "SIGNING_ALGORITHMS",
    "NetSuiteClientAssertionAuth",
    "SigningAlgorithm",
    "load_signing_key",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NETSUITE_SCOPE = "rest_webservices"

#: The assertion algorithms NetSuite accepts (RSA-PSS and ECDSA). It no longer accepts RS256 (RSA PKCS#1
#: v1.5) for the client credentials flow, so an RSA certificate signs with PS256/PS384/PS512.
SigningAlgorithm = Literal["PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# The curve each ECDSA algorithm signs with (RFC 7518 section 3.4).
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

# NetSuite refuses an assertion whose exp is more than 60 minutes after iat. It is used once, seconds after
# signing, so a few minutes leave room for clock skew without keeping a replayable credential alive long.
_ASSERTION_LIFETIME_SECONDS = 300
# Refresh this long before the token expires (capped at a tenth of its lifetime for short-lived tokens),
# so a token never runs out between our check and NetSuite's.
_REFRESH_MARGIN_SECONDS = 60.0
_MAX_TOKEN_BODY = 64 * 1024


def _log() -> Any:
    # A fresh lazy proxy per use, so structlog.testing.capture_logs sees the lines (see vendor_http).
    return structlog.get_logger(__name__)


class _TokenResponse(msgspec.Struct, kw_only=True, frozen=True):
    access_token: str
    # NetSuite documents ``"expires_in": "3600"`` (a string); other servers send a number.
    expires_in: int | str | None = None
    token_type: str | None = None


class _TokenError(msgspec.Struct, kw_only=True, frozen=True):
    error: str | None = None


_token_decoder = msgspec.json.Decoder(_TokenResponse)
_token_error_decoder = msgspec.json.Decoder(_TokenError)


def load_signing_key(private_key_pem: str | bytes, algorithm: SigningAlgorithm) -> ECKey | RSAKey:
    """The private key for ``algorithm`` from PEM text; raises ``ValueError`` (never quoting the key) when
    the text is not a private key of the algorithm's family (EC P-256/P-384/P-521 for ES256/ES384/ES512,
    RSA for PS256/PS384/PS512), or the algorithm is one NetSuite does not accept (RS256)."""
    if algorithm not in SIGNING_ALGORITHMS:
        raise ValueError(f"NetSuite does not accept {str(algorithm)[:10]!r} client assertions")
    try:
        key: ECKey | RSAKey
        curve = _EC_CURVES.get(algorithm)
        if curve is not None:
            key = ECKey.import_key(private_key_pem)
            if key.curve_name != curve:
                raise ValueError(f"{algorithm} needs a {curve} key")
        else:
            key = RSAKey.import_key(private_key_pem)
    except (ValueError, TypeError, JoseError):
        # The parser's message may quote the input: never let it reach a log or a traceback.
        raise ValueError(f"the NetSuite private key is not a usable {algorithm} private key") from None
    if not key.is_private:
        raise ValueError("the NetSuite key is a public key; the private key is needed to sign assertions")
    return key


class NetSuiteClientAssertionAuth(httpx.Auth):
    """Bearer tokens from NetSuite's client-credentials flow with a JWT client assertion.

    ``transport`` carries the token requests (the test seam, like the data calls'). ``clock`` is the
    monotonic clock the token cache runs on; ``wall_clock`` dates the assertions (``iat``/``exp``).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        certificate_id: str,
        private_key_pem: str | bytes,
        algorithm: SigningAlgorithm = "ES256",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._certificate_id = certificate_id
        self._algorithm: SigningAlgorithm = algorithm
        self._key = load_signing_key(private_key_pem, algorithm)
        self._clock = clock
        self._wall_clock = wall_clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            verify=True,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        #: How many tokens this auth has fetched (observable for health checks and tests).
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return (
            f"NetSuiteClientAssertionAuth(client_id={self._client_id!r}, "
            f"certificate_id={self._certificate_id!r}, algorithm={self._algorithm!r})"
        )

    def client_assertion(self) -> str:
        """A freshly signed client assertion (a JWT good for a few minutes, with a unique ``jti``)."""
        issued_at = int(self._wall_clock())
        header = {"alg": self._algorithm, "kid": self._certificate_id, "typ": "JWT"}
        claims = {
            "iss": self._client_id,
            "scope": [NETSUITE_SCOPE],
            "aud": self._token_url,
            "iat": issued_at,
            "exp": issued_at + _ASSERTION_LIFETIME_SECONDS,
            # A unique id per assertion, so an intercepted one cannot be replayed (RFC 7523 section 3).
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(header, claims, self._key, algorithms=[self._algorithm])

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def access_token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid bearer token. ``force`` refetches, unless another task already replaced ``stale``."""
        if not force and self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            # Forced with the token that failed: refetch, unless another task already replaced it.
            if self._fresh() and (not force or (stale is not None and self._token != stale)):
                assert self._token is not None
                return self._token
            return await self._fetch()

    async def _fetch(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        response = await self._http.post(self._token_url, data=form)
        body = await response.aread()
        if response.status_code != 200:
            raise TokenFetchError(
                f"NetSuite token endpoint answered HTTP {response.status_code}"
                + _error_code_suffix(body, response.status_code),
                status_code=response.status_code,
            )
        if len(body) > _MAX_TOKEN_BODY:
            raise TokenFetchError("NetSuite token endpoint answered with an oversized body")
        try:
            token = _token_decoder.decode(body)
            lifetime = float(token.expires_in) if token.expires_in is not None else None
        except (msgspec.DecodeError, ValueError):
            raise TokenFetchError("NetSuite token endpoint answered with an unusable body") from None
        if not token.access_token:
            raise TokenFetchError("NetSuite token endpoint gave no access_token")
        if token.token_type is not None and token.token_type.lower() != "bearer":
            raise TokenFetchError(f"NetSuite token endpoint gave a {token.token_type[:20]!r} token")
        now = self._clock()
        if lifetime is None or lifetime <= 0:
            # No lifetime: keep it until NetSuite answers 401, which refetches once.
            self._refresh_at = float("inf")
        else:
            self._refresh_at = now + lifetime - min(_REFRESH_MARGIN_SECONDS, lifetime / 10)
        self._token = token.access_token
        self.tokens_fetched += 1
        _log().info("netsuite_token_fetched", expires_in=lifetime)
        return token.access_token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Once: the token may have been revoked or have expired early; a second 401 is the caller's.
            await response.aread()
            token = await self.access_token(force=True, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def aclose(self) -> None:
        await self._http.aclose()


def _error_code_suffix(body: bytes, status: int) -> str:
    """`` (invalid_client)`` from an RFC 6749 error body; empty when there is none."""
    if status >= 500:
        return ""
    try:
        code = _token_error_decoder.decode(body).error
    except msgspec.DecodeError:
        return ""
    return f" ({code[:40]})" if code else ""
