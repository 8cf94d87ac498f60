"""The shared resources of one gateway process, built once from settings and closed on shutdown.

Every tier app of the process gets the same runtime: state store, rate limiter, token verifier and (with
no external issuer) the development authorization server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from apis.config import Settings
from apis.logging import get_logger
from apis.oauth_server import DevAuthorizationServer
from apis.ratelimit import RateLimiter
from apis.security import JwksSource, TokenVerifier
from apis.state import RedisStateStore, StateStore, StateStoreUnavailable, create_state_store

__all__ = ["Runtime"]

log = get_logger("stratum.runtime")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: StateStore = create_state_store(
            settings.redis_url, memory_max_bytes=settings.state_memory_max_mib * 1024 * 1024
        )
        self.limiter = RateLimiter(settings.redis_url)
        self.dev_server: DevAuthorizationServer | None = None
        self._closers: list[Callable[[], Awaitable[object]]] = []
        self._starters: list[Callable[[], Awaitable[object]]] = [self._check_state_persistence]
        # What /health/ready checks besides the state store and the signing keys (the process tier adds the
        # run database): name -> a check that answers True, False, or raises.
        self.readiness_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        if settings.dev_issuer_enabled:
            self.dev_server = DevAuthorizationServer(
                issuer=settings.issuer,
                audience=settings.oauth_audience,
                data_dir=settings.data_dir,
                token_ttl_seconds=settings.dev_token_ttl_seconds,
            )
            jwks = JwksSource(key_set=self.dev_server.keys.public)
        else:
            http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
            self.on_close(http.aclose)
            jwks = (
                JwksSource(jwks_url=settings.oauth_jwks_url, http=http)
                if settings.oauth_jwks_url
                else (JwksSource(jwks_url=_discovered_jwks_url(settings), http=http))
            )
        self.verifier = TokenVerifier.for_settings(settings, jwks)

    def on_start(self, starter: Callable[[], Awaitable[object]]) -> None:
        """Run ``starter`` when the process starts serving (after the token verifier is ready)."""
        self._starters.append(starter)

    async def _check_state_persistence(self) -> None:
        """Idempotency records, the event stream and CRM event receipts must survive a Redis restart, or
        writes answered before it run again when retried. Warn (the gateway still serves) when they would
        not; a Redis that is down now is for the readiness check to report."""
        if not isinstance(self.store, RedisStateStore):
            return
        try:
            modes = await self.store.persistence()
        except StateStoreUnavailable as exc:
            log.warning("state_store_unavailable_at_start", error=repr(exc))
            return
        if modes is None:
            log.warning(
                "state_store_persistence_unknown",
                reason="Redis refused CONFIG GET; make sure it keeps data across restarts (AOF)",
            )
        elif not modes:
            log.warning(
                "state_store_not_persistent",
                reason="Redis has neither AOF nor RDB persistence: a restart loses idempotency records and "
                "business events; start it with --appendonly yes",
            )

    def on_close(self, closer: Callable[[], Awaitable[object]]) -> None:
        self._closers.append(closer)

    async def start(self) -> None:
        if self.verifier.jwks.remote:
            await self.verifier.jwks.refresh(force=True)
        for starter in self._starters:
            await starter()

    async def stop(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception as exc:  # one bad closer must not keep the others open
                log.warning("close_failed", closer=getattr(closer, "__qualname__", "?"), error=repr(exc))
        self._closers.clear()
        await self.limiter.close()
        await self.store.close()


def _discovered_jwks_url(settings: Settings) -> str:
    """RFC 8414 discovery, done synchronously once at start (the issuer must answer before we serve)."""
    issuer = settings.issuer.rstrip("/")
    for url in (
        f"{issuer}/.well-known/oauth-authorization-server",
        f"{issuer}/.well-known/openid-configuration",
    ):
        try:
            response = httpx.get(url, timeout=5.0)
            if response.status_code == 200:
                jwks_uri = response.json().get("jwks_uri")
                if isinstance(jwks_uri, str):
                    return jwks_uri
        except (httpx.HTTPError, ValueError):
            continue
    raise SystemExit(f"stratum: cannot discover the JWKS of issuer {issuer}; set STRATUM_OAUTH_JWKS_URL")
