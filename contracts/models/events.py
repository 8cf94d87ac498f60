"""Business events: the CloudEvents 1.0 envelope (JSON format), the page they are read in, and their payloads.

Event types and the payload each carries in ``data``:

- ``project.activated`` (``ProjectActivated``): a won opportunity became a project in the PSA and the ERP.
- ``customer.synced`` (``CustomerSynced``): a CRM customer has its ERP customer (created or found).
- ``invoice.issued`` (``InvoiceIssued``): a billing run raised a project's invoice for a period in the ERP
  (posted), recorded it in the PSA against its items and in the CRM.
- ``invoice.voided`` (``InvoiceVoided``): a billing run was cancelled: its ERP invoice voided or credited,
  its PSA invoice cancelled (the items billable again), the CRM told.
- ``run.parked`` (``RunParked``): a workflow run stopped on a business-rule failure or ran out of retries,
  and waits for its owner.
- ``invoice.paid`` / ``invoice.partially_paid`` / ``invoice.overdue`` (``InvoiceStatusChanged``): the
  invoice status sync saw the ERP invoice of a billed project and period reach that state (once per change).

An event a workflow step publishes has a deterministic id (``event_id(run_id, step_name)``): a step re-run
after a crash publishes the same id again, and the stream keeps only the first.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "CUSTOMER_SYNCED",
    "EVENT_TYPES",
    "INVOICE_ISSUED",
    "INVOICE_OVERDUE",
    "INVOICE_PAID",
    "INVOICE_PARTIALLY_PAID",
    "INVOICE_STATUS_EVENT_TYPES",
    "INVOICE_VOIDED",
    "PROJECT_ACTIVATED",
    "RUN_PARKED",
    "CloudEvent",
    "CustomerSynced",
    "EventPage",
    "InvoiceIssued",
    "InvoiceStatusChanged",
    "InvoiceVoided",
    "ProjectActivated",
    "RunParked",
    "event_id",
]

PROJECT_ACTIVATED = "project.activated"
CUSTOMER_SYNCED = "customer.synced"
RUN_PARKED = "run.parked"
INVOICE_ISSUED = "invoice.issued"
INVOICE_VOIDED = "invoice.voided"
INVOICE_PAID = "invoice.paid"
INVOICE_PARTIALLY_PAID = "invoice.partially_paid"
INVOICE_OVERDUE = "invoice.overdue"
INVOICE_STATUS_EVENT_TYPES: frozenset[str] = frozenset(
    {INVOICE_PAID, INVOICE_PARTIALLY_PAID, INVOICE_OVERDUE}
)
EVENT_TYPES: frozenset[str] = (
    frozenset({PROJECT_ACTIVATED, CUSTOMER_SYNCED, RUN_PARKED, INVOICE_ISSUED, INVOICE_VOIDED})
    | INVOICE_STATUS_EVENT_TYPES
)

UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with its offset (UTC).")]

# Fixed forever: changing it would give a re-run step another id than its first run got.
_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:stratum:business-events")


def event_id(*parts: str) -> str:
    """A deterministic event id: a UUID (version 5) over ``parts``, for a workflow step the run id and the
    step name. The same parts give the same id in any process, so publishing again after a crash is
    recognised as the same event."""
    if not parts:
        raise ValueError("event_id needs at least one part (run id and step name)")
    # A separator that cannot occur in ids, so ("a:b", "c") and ("a", "b:c") differ.
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(parts)))


class CloudEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A business event as a CloudEvents 1.0 JSON-format event. Optional attributes without a value are
    ``null``, which CloudEvents reads as unset."""

    specversion: Literal["1.0"] = "1.0"
    id: Annotated[
        str, msgspec.Meta(min_length=1, description="Unique per `source`; a repeat is the same event.")
    ]
    source: Annotated[str, msgspec.Meta(min_length=1, description="URI-reference of the publisher.")]
    type: Annotated[str, msgspec.Meta(min_length=1, description="Event type, e.g. `project.activated`.")]
    subject: str | None = None
    time: UtcTime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    correlationid: str | None = None  # extension attribute: the request or run that caused the event
    data: dict[str, Any]


class EventPage(msgspec.Struct, kw_only=True, frozen=True):
    """Events oldest first. Pass ``next_cursor`` back as ``cursor`` for the events after these."""

    items: list[CloudEvent]
    next_cursor: str | None


class ProjectActivated(msgspec.Struct, kw_only=True, frozen=True):
    """``project.activated``: the opportunity's project exists in the PSA and the ERP."""

    run_id: str
    opportunity_id: str
    crm_customer_id: str
    erp_customer_id: str
    psa_project_id: str
    erp_project_id: str
    billing_schedule_id: str | None
    closed_won_on: date | None
    activated_at: UtcTime


class CustomerSynced(msgspec.Struct, kw_only=True, frozen=True):
    """``customer.synced``: the CRM customer has its ERP customer (made or updated by this run)."""

    run_id: str
    crm_customer_id: str
    erp_customer_id: str


# Money in an event: a decimal string ("1234.50").
DecimalText = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]+)?$")]


class InvoiceIssued(msgspec.Struct, kw_only=True, frozen=True):
    """``invoice.issued``: ``project_id``'s invoice for ``period`` is in the ERP, the PSA and the CRM. Money
    is a decimal string: ``total`` what the customer owes, tax included (the ERP invoice's total), ``net``
    the sum of its lines and ``tax`` the tax the ERP computed (both None in events published before they
    were added)."""

    run_id: str
    project_id: str
    period: str
    billing_key: str
    erp_invoice_id: str
    erp_invoice_number: str | None
    psa_invoice_id: str
    opportunity_id: str
    total: DecimalText
    currency: str
    time_entries: int
    expenses: int
    milestones: int
    fees: int
    net: DecimalText | None = None
    tax: DecimalText | None = None


class InvoiceVoided(msgspec.Struct, kw_only=True, frozen=True):
    """``invoice.voided``: a cancelled billing run undid ``project_id``'s invoice for ``period``."""

    run_id: str
    project_id: str
    period: str
    billing_key: str
    erp_invoice_id: str | None
    psa_invoice_id: str | None


class RunParked(msgspec.Struct, kw_only=True, frozen=True):
    """``run.parked``: a run stopped at ``step`` and waits for ``owner`` (``exception``: a business rule
    failed; ``dead_letter``: retries ran out)."""

    run_id: str
    workflow: str
    state: Literal["exception", "dead_letter"]
    owner: str | None
    step: str
    reason: str


class InvoiceStatusChanged(msgspec.Struct, kw_only=True, frozen=True):
    """``invoice.paid`` / ``invoice.partially_paid`` / ``invoice.overdue``: an ERP invoice Stratum billed
    (``billing_key`` ``bill:{psa_project_id}:{period}``) reached this state; money as decimal strings."""

    erp_invoice_id: str
    invoice_number: str | None
    billing_key: str
    psa_project_id: str
    period: str
    opportunity_id: str
    status: str
    currency: str
    total: str
    balance: str
    due_date: date | None
    erp_payment_ids: list[str]
    erp_updated_at: UtcTime | None
