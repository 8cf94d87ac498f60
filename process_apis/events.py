"""Business events: published by workflow steps onto a stream in the gateway state store, read with a cursor.

``EventPublisher`` writes each event as a CloudEvents 1.0 JSON document under its id, once: a step re-run
after a crash publishes the same deterministic id (``contracts.models.events.event_id``) and the stream keeps
the first. ``GET /process/v1/events`` reads the stream forward from an opaque cursor (a wrapped stream
position), so a poller sees every event once and in order, for as long as the stream keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar.di import NamedDependency
from litestar.params import QueryParameter, SkipValidation

from apis.context import current_correlation_id
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.routing import operation
from apis.state import StateStore, StreamPositionExpired, needed_by
from contracts.models.events import CloudEvent, EventPage
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.params import Cursor, cursor_errors

__all__ = ["EVENT_ROUTES", "EventPublisher", "list_business_events"]

log = get_logger("stratum.process.events")

# The longest stream position ("<20 digits>-<20 digits>") wrapped is 56 characters.
_MAX_CURSOR = 64
# With a type filter, read this many entries at a time rather than only what the page still lacks.
_FILTERED_BATCH = 500


class _EventType(msgspec.Struct):
    """Just enough of a stored event to filter on, without decoding the rest."""

    type: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CloudEvent)
_type_decoder = msgspec.json.Decoder(_EventType)


class EventPublisher:
    """Publishes business events to one stream and reads them back, a page at a time.

    The stream lives in the gateway state store: Redis when configured (shared by every worker, and with
    persistence it survives a restart), else the in-process store. It keeps events ``retention_seconds``
    (by age: a consumer that polls at least that often never misses one; one further behind is told, 410,
    rather than skipped past what was trimmed); an event id is remembered for ``dedupe_ttl_seconds``, longer
    than any workflow waits to re-run a step.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        stream: str = "business-events",
        source: str = "/process/v1",
        retention_seconds: float = 7 * 24 * 3600,
        dedupe_ttl_seconds: float = 7 * 24 * 3600,
    ) -> None:
        self._store = store
        self._stream = stream
        self._source = source
        self._retention_seconds = retention_seconds
        self._dedupe_ttl_seconds = dedupe_ttl_seconds

    async def publish(
        self,
        *,
        event_id: str,
        type: str,
        subject: str,
        data: msgspec.Struct | Mapping[str, Any],
        time: datetime | None = None,
    ) -> CloudEvent:
        """Append the event unless ``event_id`` was already published; either way, the event as built here.

        On a duplicate the stream keeps the first event, so a step that wants the re-run's event to equal
        the first one exactly passes a ``time`` (and data) derived from its inputs, not from the clock."""
        if time is not None and time.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        body = msgspec.to_builtins(data)
        if not isinstance(body, dict):
            raise TypeError("event data must be a struct or a mapping")
        event = CloudEvent(
            id=event_id,
            source=self._source,
            type=type,
            subject=subject,
            time=(time or datetime.now(UTC)).astimezone(UTC),
            correlationid=current_correlation_id(),
            data=body,
        )
        # Unavailable: the publishing step fails and the saga tries it again (the same id, so once).
        with needed_by("events_publish"):
            position = await self._store.append_to_stream(
                self._stream,
                event_id,
                _encoder.encode(event),
                retention_seconds=self._retention_seconds,
                dedupe_ttl_seconds=self._dedupe_ttl_seconds,
            )
        if position is None:
            log.info("event_duplicate", event_id=event_id, event_type=type, subject=subject)
        else:
            log.info(
                "event_published", event_id=event_id, event_type=type, subject=subject, position=position
            )
        return event

    async def read(self, *, cursor: str | None, limit: int, types: set[str] | None = None) -> EventPage:
        """Up to ``limit`` events after ``cursor`` (None: from the oldest kept), oldest first, only of
        ``types`` when given. Reads on past events of other types until the page is full or the stream
        ends, and the cursor moves past them too, so paging always ends. ``InvalidCursor`` for a cursor
        this API did not issue.

        ``next_cursor`` is where to continue: the position of the last entry read, or the given cursor when
        there was nothing new, so polling with it never misses an event. It is None only when no cursor was
        given and the stream is empty: then poll again without one."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        position = unwrap_cursor(cursor, max_length=_MAX_CURSOR) if cursor is not None else None
        items: list[CloudEvent] = []
        while len(items) < limit:
            batch_size = limit - len(items) if types is None else max(limit - len(items), _FILTERED_BATCH)
            try:
                # Unavailable: a 503 problem; the caller polls again with the same cursor.
                with needed_by("events_read"):
                    batch = await self._store.read_stream(self._stream, after=position, limit=batch_size)
            except ValueError:
                raise InvalidCursor("cursor is not one this API produced") from None
            except StreamPositionExpired:
                raise ProblemError(
                    "cursor-expired",
                    "Events after this cursor are older than the stream keeps and were removed. Read "
                    "again without a cursor (from the oldest event kept) and reconcile what happened in "
                    "between from the runs (`/process/v1/runs`).",
                ) from None
            for entry_position, payload in batch:
                position = entry_position
                if types is None or _type_decoder.decode(payload).type in types:
                    items.append(_decoder.decode(payload))
                    if len(items) == limit:
                        break
            if len(batch) < batch_size:
                break  # the end of the stream
        if position is None:
            return EventPage(items=items, next_cursor=None)
        return EventPage(items=items, next_cursor=wrap_cursor(position))


EventLimit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (at most 500).")]
EventTypes = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64})*$",
        max_length=512,
        description="Only events of these types, comma-separated (e.g. `project.activated,run.parked`).",
    ),
]


@operation(
    "GET",
    "/process/v1/events",
    operation_id="listBusinessEvents",
    summary="Read business events after a cursor",
    description=(
        "Business events (CloudEvents 1.0, JSON format) oldest first: `project.activated`, "
        "`customer.synced`, `run.parked`. Without `cursor`, reading starts at the oldest event kept. "
        "Pass `next_cursor` back as `cursor` to read on; newest events appear at the end. A page with no "
        "events returns the cursor it was given, which stays valid to poll for new events; `next_cursor` "
        "is null only when the stream is empty and no cursor was given. An event may be delivered again "
        "only if a consumer re-reads from an older cursor: deduplicate on `id`. Events are kept 7 days: a "
        "cursor whose next events were already removed answers 410, never a page that silently skips them."
    ),
    scopes=["process:read"],
    errors=[410, 503],
    tags=["events"],
)
async def list_business_events(
    events: NamedDependency[SkipValidation[EventPublisher]],
    cursor: Cursor = None,
    limit: EventLimit = 100,
    type: EventTypes = None,
) -> EventPage:
    types = set(type.split(",")) if type else None
    with cursor_errors():
        return await events.read(cursor=cursor, limit=limit, types=types)


EVENT_ROUTES = [list_business_events]
