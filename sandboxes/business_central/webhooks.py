"""Business Central's webhooks, as the sandbox serves them ("Working with webhooks in Dynamics 365
Business Central", learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/
dynamics-subscriptions):

- ``POST {api root}/subscriptions {notificationUrl, resource, clientState}`` first POSTs to
  ``notificationUrl?validationToken=...`` and expects the token echoed as the body (200) within a few
  seconds; a failed handshake refuses the subscription. A subscription expires after 3 days unless renewed
  (``PATCH`` with If-Match, which handshakes again and moves ``expirationDateTime`` to now + 3 days).
- Changes are collected for 30 s and then POSTed as ``{"value": [{subscriptionId, clientState,
  expirationDateTime, resource, changeType, lastModifiedDateTime}]}``.

Deliveries go through an httpx client whose transport the sandbox settings inject (tests pass an
``httpx.MockTransport`` or an ASGI app); without one, subscriptions are refused: never the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec

__all__ = ["Subscription", "Webhooks"]

logger = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Subscription:
    id: str
    notification_url: str
    resource: str
    """Normalised: ``companies({id})/{entitySet}``."""
    client_state: str
    expires: datetime
    modified: datetime
    version: int
    pending: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        return {
            "@odata.etag": f'W/"JzE5OzE7MDA7{self.version}Jw=="',
            "subscriptionId": self.id,
            "notificationUrl": self.notification_url,
            "resource": f"/api/v2.0/{self.resource}",
            "userId": "00000000-0000-0000-0000-000000000001",
            "lastModifiedDateTime": _stamp(self.modified),
            "clientState": self.client_state,
            "expirationDateTime": _stamp(self.expires),
            "systemCreatedAt": _stamp(self.modified),
        }


class Webhooks:
    """Subscriptions and their batched notifications."""

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        window_seconds: float,
        lifetime: timedelta,
        handshake_timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.now = now
        self.window_seconds = window_seconds
        self.lifetime = lifetime
        self.handshake_timeout_seconds = handshake_timeout_seconds
        self.transport = transport
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries = 0
        self.failed_deliveries = 0
        self._flushes: dict[str, asyncio.Task[None]] = {}
        self._now_please = asyncio.Event()

    def clear(self) -> None:
        for task in self._flushes.values():
            task.cancel()
        self._flushes.clear()
        self.subscriptions.clear()
        self._now_please = asyncio.Event()

    def _client(self) -> httpx.AsyncClient:
        # Never httpx's network transport: the URLs are whatever a caller named.
        if self.transport is None:
            raise httpx.TransportError("the sandbox has no notification transport")
        return httpx.AsyncClient(transport=self.transport, timeout=self.handshake_timeout_seconds)

    async def handshake(self, notification_url: str) -> bool:
        """POST ``?validationToken=`` to the URL; True when it echoes the token with a 200 in time."""
        token = secrets.token_urlsafe(24)
        try:
            async with self._client() as client:
                response = await asyncio.wait_for(
                    client.post(notification_url, params={"validationToken": token}),
                    self.handshake_timeout_seconds,
                )
        except (httpx.HTTPError, TimeoutError):
            return False
        return response.status_code == 200 and response.text.strip().strip('"') == token

    def add(self, notification_url: str, resource: str, client_state: str) -> Subscription:
        now = self.now()
        subscription = Subscription(
            id=uuid.uuid4().hex,
            notification_url=notification_url,
            resource=resource,
            client_state=client_state,
            expires=now + self.lifetime,
            modified=now,
            version=1,
        )
        self.subscriptions[subscription.id] = subscription
        return subscription

    def renew(self, subscription: Subscription) -> None:
        now = self.now()
        subscription.expires = now + self.lifetime
        subscription.modified = now
        subscription.version += 1

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions.pop(subscription.id, None)
        task = self._flushes.pop(subscription.id, None)
        if task is not None:
            task.cancel()

    def changed(self, collection: str, entity_id: str, change_type: str) -> None:
        """Queue a notification for every live subscription to ``collection`` (``companies(id)/set``)."""
        now = self.now()
        for subscription in list(self.subscriptions.values()):
            if subscription.resource.lower() != collection.lower() or subscription.expires <= now:
                continue
            subscription.pending.append(
                {
                    "subscriptionId": subscription.id,
                    "clientState": subscription.client_state,
                    "expirationDateTime": _stamp(subscription.expires),
                    "resource": f"api/v2.0/{collection}({entity_id})",
                    "changeType": change_type,
                    "lastModifiedDateTime": _stamp(now),
                }
            )
            if subscription.id not in self._flushes:
                self._flushes[subscription.id] = asyncio.get_running_loop().create_task(
                    self._flush_later(subscription)
                )

    async def _flush_later(self, subscription: Subscription) -> None:
        # Business Central collects a subscription's changes for a window and sends them as one POST.
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now_please.wait(), self.window_seconds)
        finally:
            self._flushes.pop(subscription.id, None)
        batch, subscription.pending = subscription.pending, []
        if not batch:
            return
        try:
            async with self._client() as client:
                response = await client.post(
                    subscription.notification_url,
                    content=_ENCODER.encode({"value": batch}),
                    headers={"Content-Type": "application/json"},
                )
            delivered = response.is_success
        except httpx.HTTPError:
            delivered = False
        if delivered:
            self.deliveries += 1
        else:
            # Business Central retries for 36 hours; the sandbox counts the failure and drops the batch.
            self.failed_deliveries += 1
            logger.warning("business central sandbox: notification delivery failed")

    async def idle(self) -> None:
        """Wait until every collected change has been delivered (or failed): for tests and shutdown."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes.values()), return_exceptions=True)

    async def flush(self) -> None:
        """Deliver what has been collected now, without waiting out the window (tests, shutdown)."""
        self._now_please.set()
        try:
            await self.idle()
        finally:
            self._now_please.clear()
