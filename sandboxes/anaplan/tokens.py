"""The authentication service's side of the tenant (``auth.anaplan.com``): logins, tokens and their
refresh and expiry, and each token's request budget on the Integration API. `AnaplanSandbox` is one.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandboxes.anaplan.tenant import AnaplanSandboxSettings

__all__ = ["TokenService"]


_VALIDATION_URL = "/token/validate"


class _AuthFailure(Exception):
    """An authentication service error: ``{"status": "FAILURE_...", "statusMessage"}``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Token:
    value: str
    token_id: str
    refresh_token_id: str
    user: str
    expires_at: float


class TokenService:
    """Tokens of the tenant's users: what `AnaplanSandbox` does as Anaplan's authentication service."""

    settings: AnaplanSandboxSettings
    clock: Callable[[], float]
    users: dict[str, str]
    tokens: dict[str, _Token]
    windows: dict[str, tuple[int, int]]
    tokens_issued: int
    throttled: int

    def authenticate(self, authorization: str | None) -> dict[str, Any]:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed")
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed") from None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed")
        return self._token_response(self._issue(user), "Login successful")

    def refresh(self, authorization: str | None) -> dict[str, Any]:
        token = self.token_of(authorization)
        if token is None:
            raise _AuthFailure("FAILURE_BAD_TOKEN", "Token is invalid or has expired")
        del self.tokens[token.value]
        return self._token_response(self._issue(token.user), "Token refreshed")

    def validate(self, authorization: str | None) -> dict[str, Any]:
        token = self.token_of(authorization)
        if token is None:
            raise _AuthFailure("FAILURE_BAD_TOKEN", "Token is invalid or has expired")
        return self._token_response(token, "Token validated")

    def _issue(self, user: str) -> _Token:
        token = _Token(
            value=secrets.token_urlsafe(32),
            token_id=str(uuid.uuid4()),
            refresh_token_id=str(uuid.uuid4()),
            user=user,
            expires_at=self.clock() + self.settings.token_ttl_seconds,
        )
        self.tokens[token.value] = token
        self.tokens_issued += 1
        return token

    def _token_response(self, token: _Token, message: str) -> dict[str, Any]:
        return {
            "meta": {"validationUrl": f"https://auth.anaplan.com{_VALIDATION_URL}"},
            "status": "SUCCESS",
            "statusMessage": message,
            "tokenInfo": {
                "expiresAt": int(token.expires_at * 1000),
                "tokenId": token.token_id,
                "tokenValue": token.value,
                "refreshTokenId": token.refresh_token_id,
            },
        }

    def token_of(self, authorization: str | None) -> _Token | None:
        """The live token an ``Authorization: AnaplanAuthToken {token}`` header carries, if any."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme != "AnaplanAuthToken" or not value.strip():
            return None
        token = self.tokens.get(value.strip())
        if token is None:
            return None
        if self.clock() >= token.expires_at:
            del self.tokens[token.value]
            return None
        return token

    def expire_tokens(self) -> int:
        """End every token now; how many were still live."""
        now = self.clock()
        live = sum(1 for token in self.tokens.values() if now < token.expires_at)
        self.tokens.clear()
        return live

    def admit(self, token: _Token) -> float | None:
        """Count one request of ``token``; the seconds until its next window when it is over budget."""
        now = self.clock()
        window = int(now // 60)
        current, count = self.windows.get(token.value, (window, 0))
        if current != window:
            count = 0
        if count >= self.settings.requests_per_minute:
            self.throttled += 1
            return (window + 1) * 60 - now
        self.windows[token.value] = (window, count + 1)
        return None
