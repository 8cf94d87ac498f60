"""Client side of OAuth 2.0 client credentials, as an ``httpx.Auth`` flow.

Used by the tiers for their own tokens (inter-tier calls) and by vendor adapters (Salesforce, later
Business Central). The token is fetched with authlib's ``AsyncOAuth2Client``, cached, refreshed shortly
before ``expires_in`` runs out, and refreshed once when the server answers 401 (Salesforce gives no
``expires_in`` and signals an expired session only with a 401 ``INVALID_SESSION_ID``).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncGenerator
from typing import Any

# authlib 1.9 nudges httpx users towards its httpx2 fork on import; Stratum stays on httpx (README). Its
# module installs an "always show" filter when first imported, so import it first, then silence that one
# notice.
import authlib.deprecate  # noqa: F401
import httpx
from authlib.common.errors import AuthlibBaseError

from apis.json_limits import json_too_deep

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["ClientCredentialsAuth", "TokenFetchError"]


class TokenFetchError(httpx.HTTPError):
    """The token endpoint refused us or did not answer usefully (never carries the secret)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ClientCredentialsAuth(httpx.Auth):
    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        auth_method: str = "client_secret_basic",
        timeout: float = 10.0,
        refresh_margin_seconds: float = 30.0,
        extra_params: dict[str, str] | None = None,
    ) -> None:
        self._token_url = token_url
        self._scope = scope
        self._margin = refresh_margin_seconds
        self._extra = extra_params or {}
        self._oauth = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=auth_method,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )
        # authlib reports an error body ({"error": ...}) as an exception without the HTTP status; the hook
        # keeps the status so a refused client (400/401) can be told from a failing token endpoint.
        self._last_status: int | None = None
        self._oauth.register_compliance_hook("access_token_response", self._remember_status)
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        #: the last token response, minus the token itself (Salesforce puts ``instance_url`` there)
        self.token_info: dict[str, Any] = {}

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or time.monotonic() < self._expires_at - self._margin

    async def access_token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid token. ``force`` refetches unless another task already replaced ``stale``."""
        if not force and self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._token is not None and (stale is None or self._token != stale) and self._fresh():
                return self._token
            self._last_status = None
            try:
                token = await self._oauth.fetch_token(
                    self._token_url, grant_type="client_credentials", scope=self._scope, **self._extra
                )
            except AuthlibBaseError as exc:
                # Both authlib error trees (``OAuthError`` from the httpx integration, ``OAuth2Error`` from
                # the protocol layer) share this base; ``error`` is the RFC 6749 code, never the secret.
                raise TokenFetchError(
                    f"token endpoint refused the client: {exc.error}", status_code=self._last_status
                ) from None
            except httpx.HTTPStatusError as exc:
                raise TokenFetchError(
                    "token endpoint answered HTTP " + str(exc.response.status_code),
                    status_code=exc.response.status_code,
                ) from None
            except (ValueError, KeyError) as exc:
                raise TokenFetchError(f"token endpoint answered badly: {type(exc).__name__}") from None
            access = token.get("access_token")
            if not isinstance(access, str) or not access:
                raise TokenFetchError("token endpoint gave no access_token")
            self._token = access
            expires_in = token.get("expires_in")
            self._expires_at = time.monotonic() + float(expires_in) if expires_in else None
            self.token_info = {k: v for k, v in token.items() if k not in ("access_token", "refresh_token")}
            return access

    def _remember_status(self, response: httpx.Response) -> httpx.Response:
        self._last_status = response.status_code
        # authlib parses the body next, by recursion: a body nested too deep must not get that far.
        if json_too_deep(response.content):
            raise TokenFetchError("token endpoint answered JSON nested too deep")
        return response

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # One refetch: the token may have expired or been revoked since we cached it.
            await response.aread()
            token = await self.access_token(force=True, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def aclose(self) -> None:
        await self._oauth.aclose()
