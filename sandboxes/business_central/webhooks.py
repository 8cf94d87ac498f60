"""Business Central's webhooks, as the sandbox serves them ("Working with webhooks in Dynamics 365
Business Central", learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/
dynamics-subscriptions):

- ``POST {api root}/subscriptions {notificationUrl, resource, clientState}`` first POSTs to
  ``notificationUrl?validationToken=...`` and expects the token echoed as the body (200) within a few
  seconds; a failed handshake refuses the subscription. A subscription expires after 3 days unless renewed
  (``PATCH`` with If-Match, which handshakes again and moves ``expirationDateTime`` to now + 3 days).
- Changes are collected for 30 s and then POSTed, every subscription to one URL together, as
  ``{"value": [{subscriptionId, clientState, expirationDateTime, resource, changeType,
  lastModifiedDateTime}]}``: one entry per changed entity, or one ``collection`` entry (with a
  ``$filter``) past 1,000 changes. A 408, 429, 5xx or no answer is retried (Business Central: for 36 hours;
  here: the next window), any other failure deletes the subscription.

Subscriptions are part of the sandbox's durable state (`SavedSubscription`, `sandboxes.persistence`): a
restarted sandbox still notifies its subscribers, as Business Central keeps a subscription for its 3 days
whatever happens to the server. Changes collected but not yet sent (at most one window's) are not kept.

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

__all__ = ["SavedSubscription", "Subscription", "Webhooks"]

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


class SavedSubscription(msgspec.Struct, kw_only=True):
    """A subscription as a restart keeps it: everything but the changes waiting for the next window."""

    id: str
    notification_url: str
    resource: str
    client_state: str
    expires: datetime
    modified: datetime
    version: int


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
        collection_threshold: int = 1000,
    ) -> None:
        self.now = now
        self.window_seconds = window_seconds
        self.lifetime = lifetime
        self.handshake_timeout_seconds = handshake_timeout_seconds
        self.transport = transport
        self.collection_threshold = collection_threshold
        self.retry = True  # off while flushing for a test, so a failing URL cannot keep idle() waiting
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

    def saved(self) -> list[SavedSubscription]:
        """The subscriptions as the sandbox's durable state holds them."""
        return [
            SavedSubscription(
                id=found.id,
                notification_url=found.notification_url,
                resource=found.resource,
                client_state=found.client_state,
                expires=found.expires,
                modified=found.modified,
                version=found.version,
            )
            for found in self.subscriptions.values()
        ]

    def restore(self, saved: list[SavedSubscription]) -> None:
        """Replace the subscriptions with saved ones (nothing pending: a restart starts a new window)."""
        self.clear()
        for entry in saved:
            self.subscriptions[entry.id] = Subscription(
                id=entry.id,
                notification_url=entry.notification_url,
                resource=entry.resource,
                client_state=entry.client_state,
                expires=entry.expires,
                modified=entry.modified,
                version=entry.version,
            )

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

    def changed(self, collection: str, entity_id: str, change_type: str) -> None:
        """Queue a notification for every live subscription to ``collection`` (``companies(id)/set``)."""
        now = self.now()
        for subscription in list(self.subscriptions.values()):
            if subscription.resource.lower() != collection.lower() or subscription.expires <= now:
                continue
            resource = f"api/v2.0/{collection}({entity_id})"
            # An entity changed several times within the window is notified once: a create stays a create,
            # a delete wins.
            earlier = next((entry for entry in subscription.pending if entry["resource"] == resource), None)
            if earlier is not None:
                if change_type == "deleted" or earlier["changeType"] != "created":
                    earlier["changeType"] = change_type
                earlier["lastModifiedDateTime"] = _stamp(now)
            else:
                subscription.pending.append(
                    {
                        "subscriptionId": subscription.id,
                        "clientState": subscription.client_state,
                        "expirationDateTime": _stamp(subscription.expires),
                        "resource": resource,
                        "changeType": change_type,
                        "lastModifiedDateTime": _stamp(now),
                    }
                )
            self._schedule(subscription.notification_url)

    def _schedule(self, url: str) -> None:
        if url not in self._flushes:
            self._flushes[url] = asyncio.get_running_loop().create_task(self._flush_later(url))

    def _collect(self, url: str) -> list[dict[str, Any]]:
        """The pending notifications of every subscription to ``url``; over the threshold, one
        ``collection`` notification per subscription with a filter from its first change on."""
        batch: list[dict[str, Any]] = []
        for subscription in self.subscriptions.values():
            if subscription.notification_url != url or not subscription.pending:
                continue
            pending, subscription.pending = subscription.pending, []
            if len(pending) > self.collection_threshold:
                since = min(entry["lastModifiedDateTime"] for entry in pending)
                pending = [
                    {
                        **pending[0],
                        "resource": f"/api/v2.0/{subscription.resource}"
                        f"?$filter=lastModifiedDateTime%20gt%20{since}",
                        "changeType": "collection",
                        "lastModifiedDateTime": max(entry["lastModifiedDateTime"] for entry in pending),
                    }
                ]
            batch.extend(pending)
        return batch

    async def _flush_later(self, url: str) -> None:
        # Business Central waits 30 s after the first change, then sends everything for the URL as one POST.
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now_please.wait(), self.window_seconds)
        finally:
            self._flushes.pop(url, None)
        batch = self._collect(url)
        if not batch:
            return
        try:
            async with self._client() as client:
                response = await client.post(
                    url,
                    content=_ENCODER.encode({"value": batch}),
                    headers={"Content-Type": "application/json"},
                )
            status: int | None = response.status_code
        except httpx.HTTPError:
            status = None  # unreachable: retried, as a 5xx
        if status is not None and 200 <= status < 300:
            self.deliveries += 1
            return
        self.failed_deliveries += 1
        if status is None or status in (408, 429) or status >= 500:
            # Retried (Business Central keeps trying for 36 hours): back in the queue for the next window.
            logger.warning("business central sandbox: notification delivery failed (%s), retrying", status)
            for entry in batch:
                subscription = self.subscriptions.get(entry["subscriptionId"])
                if subscription is not None:
                    subscription.pending.insert(0, entry)
            if self.retry:
                self._schedule(url)
            return
        # Any other answer deletes the subscriptions, as Business Central does.
        logger.warning("business central sandbox: notification refused (%s), subscription deleted", status)
        for subscription_id in {entry["subscriptionId"] for entry in batch}:
            subscription = self.subscriptions.get(subscription_id)
            if subscription is not None:
                self.remove(subscription)

    async def idle(self) -> None:
        """Wait until every collected change has been delivered (or failed): for tests and shutdown."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes.values()), return_exceptions=True)

    async def flush(self) -> None:
        """Deliver what has been collected now, without waiting out the window (tests, shutdown)."""
        for subscription in self.subscriptions.values():
            if subscription.pending:  # e.g. a batch waiting to be retried
                self._schedule(subscription.notification_url)
        self._now_please.set()
        self.retry = False
        try:
            await self.idle()
        finally:
            self._now_please.clear()
            self.retry = True
