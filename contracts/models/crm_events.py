"""CRM change events as a webhook relay delivers them, and the gateway's receipt for one.

A relay subscribes to Salesforce Change Data Capture (e.g. ``/data/OpportunityChangeEvent``) over the Pub/Sub
API and posts each ``ConsumerEvent`` to ``POST /process/v1/crm-events`` with its Avro payload decoded to JSON.
The envelope is the relay's and is closed (``forbid_unknown_fields``); the payload and its
``ChangeEventHeader`` are Salesforce's and tolerate fields Salesforce adds. Only the record fields the gateway
reads (``StageName``, ``IsWon``) are declared; every other field of the record passes through unread.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

__all__ = [
    "ChangeEventHeader",
    "ChangeEventPayload",
    "ChangeType",
    "CrmChangeEvent",
    "CrmEventDelivery",
    "CrmEventOutcome",
    "CrmEventReceipt",
    "RunLink",
]

EventId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="The event's UUID from the Pub/Sub API; the same event redelivered carries the same id.",
        examples=["8b1a9953-c461-4e2b-9d1c-5b2d3f0e7a41"],
    ),
]


class ChangeType(enum.StrEnum):
    """What happened: ``GAP_*`` events carry no field values, ``GAP_OVERFLOW`` no record ids."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    UNDELETE = "UNDELETE"
    GAP_CREATE = "GAP_CREATE"
    GAP_UPDATE = "GAP_UPDATE"
    GAP_DELETE = "GAP_DELETE"
    GAP_UNDELETE = "GAP_UNDELETE"
    GAP_OVERFLOW = "GAP_OVERFLOW"


class ChangeEventHeader(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """Salesforce's ``ChangeEventHeader``. Fields Salesforce leaves out of some events are optional."""

    entity_name: str  # the object: "Opportunity", "Account", ...
    record_ids: list[str] = []  # several when one transaction made the same change to several records
    change_type: ChangeType
    changed_fields: list[str] = []  # UPDATE only
    nulled_fields: list[str] = []
    diff_fields: list[str] = []
    commit_timestamp: int  # epoch milliseconds of the transaction's commit
    transaction_key: str  # the transaction's id; with sequence_number, the change's place in it
    sequence_number: int
    commit_number: int | None = None
    commit_user: str | None = None
    change_origin: str | None = None


class ChangeEventPayload(msgspec.Struct, kw_only=True, frozen=True, rename="pascal"):
    """A change event's record fields: on UPDATE only changed fields have values, GAP events have none."""

    change_event_header: ChangeEventHeader
    stage_name: str | None = None
    is_won: bool | None = None


class CrmChangeEvent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The Pub/Sub API's ``ProducerEvent``: its id, the Avro schema it was written in, its decoded payload."""

    id: EventId
    schema_id: str | None = None
    payload: ChangeEventPayload


class CrmEventDelivery(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/crm-events``: one ``ConsumerEvent`` as the relay received it."""

    replay_id: str | None = None  # opaque to the gateway; the relay's resume position
    event: CrmChangeEvent


CrmEventOutcome = Literal["started", "duplicate", "ignored"]


class RunLink(msgspec.Struct, kw_only=True, frozen=True):
    """An activation run the event started (or found already started) for one opportunity."""

    opportunity_id: str
    run_id: str
    href: str  # the run's URL: /process/v1/project-activations/{run_id}


class CrmEventReceipt(msgspec.Struct, kw_only=True, frozen=True):
    """What the gateway did with one change event.

    ``started``: activation runs were started (or an earlier start was found) for the won opportunities.
    ``ignored``: nothing to do; ``reason`` says why (``not-an-opportunity``, ``not-closed-won``, ``stale``
    when the record is no longer won, ``no-record-ids`` for an overflow event). ``duplicate``: this event id
    was processed before; ``runs`` and ``reason`` repeat what the first delivery did."""

    event_id: str
    outcome: CrmEventOutcome
    reason: str | None = None
    runs: list[RunLink] = []
