"""What a Business Central sandbox tenant is set up with: its app registrations and limits."""

from __future__ import annotations

import httpx
import msgspec

from sandboxes.business_central.data import ENVIRONMENT, TENANT_ID

__all__ = ["BusinessCentralClient", "BusinessCentralSandboxSettings"]


class BusinessCentralClient(msgspec.Struct, kw_only=True, frozen=True):
    """An Entra app registration with a client secret, granted the Business Central API permission."""

    client_id: str
    client_secret: str


class BusinessCentralSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a production environment's documented limits."""

    tenant_id: str = TENANT_ID
    environment: str = ENVIRONMENT
    clients: tuple[BusinessCentralClient, ...] = ()
    """Extra app registrations; the development client (`DEV_CLIENT_ID`) is always registered too."""
    token_ttl_seconds: int = 3599
    rate_limit_requests: int = 6000
    """Requests one principal may make per sliding window (Business Central: 6,000 per 5 minutes)."""
    rate_limit_window_seconds: float = 300.0
    concurrency_limit: int = 100
    """Requests allowed in flight at once per environment; one more answers 429."""
    page_size: int = 100
    """Entities per page when the client sends no ``Prefer: odata.maxpagesize`` (Business Central's own
    server page is 20,000; a smaller one here makes every client exercise ``@odata.nextLink``)."""
    max_page_size: int = 20_000
    batch_max_requests: int = 100
    """Inner requests one ``$batch`` may carry (Business Central's operational limit: 100)."""
    notification_window_seconds: float = 30.0
    """How long changes are collected before one notification POST (Business Central: 30 s)."""
    subscription_lifetime_seconds: float = 3 * 24 * 3600.0
    """A webhook subscription's life unless renewed (Business Central: 3 days)."""
    handshake_timeout_seconds: float = 5.0
    """How long the validation handshake may take before the subscription is refused."""
    notification_collection_threshold: int = 1000
    """Changes in one window past which a subscription gets one ``collection`` notification instead."""
    notification_transport: httpx.AsyncBaseTransport | None = None
    """Where handshakes and notifications go (an ``httpx.MockTransport``, an ASGI app's transport). None:
    subscriptions are refused, since the sandbox never calls the network (any URL a caller names)."""
    seed: int = 42
