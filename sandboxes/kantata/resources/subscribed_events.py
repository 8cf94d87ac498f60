"""Subscribed events, the pull event feed (list only): ``GET /api/v1/subscribed_events``, delivered
duplicated and out of order as `sandboxes.kantata.app` describes.
"""

from __future__ import annotations

from sandboxes.kantata.data import ID_START, Record
from sandboxes.kantata.schema import _after, _one_of, _Resource

__all__ = ["DUPLICATE_EVERY", "RESOURCE"]


DUPLICATE_EVERY = 7


def _delivery_order(events: list[Record]) -> list[Record]:
    """The feed as delivered: by second, newest id first within one, every 7th twice (see module doc)."""
    ordered = sorted(events, key=lambda event: (event["created_at"], -int(event["id"])))
    delivered: list[Record] = []
    redelivery: Record | None = None
    for event in ordered:
        delivered.append(event)
        if redelivery is not None:
            delivered.append(redelivery)
            redelivery = None
        serial = int(event["id"]) - ID_START["subscribed_events"] + 1
        if serial % DUPLICATE_EVERY == 0:
            redelivery = event
    if redelivery is not None:
        delivered.append(redelivery)
    return delivered


RESOURCE = _Resource(
    collection="subscribed_events",
    singular="subscribed_event",
    subject_type="SubscribedEvent",
    updatable=False,
    filters={"created_after": _after("created_at"), "event_types": _one_of("event_type")},
    showable=False,
    delivery=_delivery_order,
)
