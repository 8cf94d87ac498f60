"""Kantata OX records <-> canonical delivery objects: Kantata's field names live here and nowhere else.

Kantata answers every call with one envelope::

    {"count": 2, "meta": {"count", "page_count", "page_number", "page_size"},
     "results": [{"key": "workspaces", "id": "10"}, ...],
     "workspaces": {"10": {...}}, "external_references": {"7": {...}}}

Records are keyed by id, their order is the ``results`` order, and related records asked for with
``include=`` are side-loaded under their own keys. The Structs below decode it tolerantly (Kantata sends
far more fields than we read, and new ones appear) and read every amount as the integer number of minor
units Kantata sends (``price_in_cents``, ``rate_in_cents``, ...), so money never passes through a float.
The functions are pure: no I/O, no clock.

Status mapping (Kantata -> canonical)
-------------------------------------

A workspace's ``status`` is account-configurable (``{"key", "message", "color"}``); the message is what a
person picked, the colour is the status group Kantata puts it in. The message decides when it is one we
know, the colour otherwise:

=====================================================  ====================  ===========================
Kantata status message                                 colour                canonical ``ProjectStatus``
=====================================================  ====================  ===========================
Not Started, In Planning, Estimate, Prospect,          ``grey``,             ``planned``
Proposed                                               ``light_blue``
Okay to Start, In Progress, Active, On Track, At Risk  ``light_green``,      ``active``
                                                       ``green``
On Hold, Paused, Suspended                             ``yellow``            ``on_hold``
Completed, Delivered, Done, Closed                     ``blue``              ``completed``
Cancelled, Canceled, Terminated                        ``red``               ``closed``
(any status) with ``archived: true``                                         ``closed`` unless completed
(no status at all)                                                           ``active`` (``closed`` if
                                                                             archived)
=====================================================  ====================  ===========================

A story (task, deliverable, milestone) has a ``state``:

=====================================================  ===========================
Kantata story ``state``                                canonical ``MilestoneStatus``
=====================================================  ===========================
``not started`` (or none)                              ``not_started``
``started``, ``needs feedback``, ``blocked``, others   ``in_progress``
``completed``                                          ``completed``
=====================================================  ===========================

Only an explicit ``completed`` reads as completed: a milestone's completion can trigger billing, so a
state we do not know must never be mistaken for it.

Business keys
-------------

What Stratum creates carries the key it was created under, so it is found again instead of created
twice: a workspace and a milestone story carry an external reference (``service_name`` "Stratum",
``service_model_ref`` the key; a project's ``n``th milestone is ``{key}:milestone:{n}``); a workspace
resource (staffing demand), which takes no external reference, carries it at the end of its title:
``"Senior Consultant [Stratum opp-1:staff:1]"``.

An invoice Stratum records carries its billing key (``service_model`` "Invoice",
``bill:{project}:{YYYY-MM}``), the ERP invoice it stands for (``service_model`` "ErpInvoice", the number as
``external_message``) and one reference per ERP payment told to Kantata (``service_model`` "Payment", the
ERP payment id): see the adapter's "Billing" section for why a partial payment is a reference and not a
Kantata payment.

Links to the CRM
----------------

Kantata links its records to another system's through external references (``service_name`` the
system, ``service_model`` the kind of record there, ``service_model_ref`` its id; Kantata OX API,
"External References"; VENDORS.md). A workspace has no customer field: Kantata groups a client's
workspaces in workspace groups, which are Kantata's own and which Stratum does not manage (the sandbox
has none). So a workspace Stratum creates carries, besides its key (``service_model`` "Project"), its
customer: ``service_model`` "Account", ``service_model_ref`` the CRM account id, written in the same POST
and filterable like any reference. A workspace read back names that account as its ``customer_id``
(Stratum's reference first, else one another integration wrote).

Kantata's own Salesforce integration links the workspace it makes for a won deal with ``service_name``
"Salesforce", ``service_model`` "Opportunity", ``service_model_ref`` the opportunity id. A deal's project
key is the opportunity id (``contracts.models.deal_project_key``), so that reference names the same deal:
the adapter's look-before-create accepts it (`OPPORTUNITY_MODEL`) and adopts the workspace.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec

from contracts.models.billing import (
    BillableItem,
    BillableItemKind,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaInvoiceStatus,
    PsaPaymentRecord,
)
from contracts.models.common import Money, SystemIds, is_iso_4217
from contracts.models.delivery import (
    Expense,
    Milestone,
    MilestoneInput,
    MilestoneStatus,
    Project,
    ProjectCreate,
    ProjectStatus,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntry,
)

__all__ = [
    "ACCOUNT_MODEL",
    "BILLING_MILESTONE_MODEL",
    "ERP_INVOICE_MODEL",
    "INVOICE_MODEL",
    "OPPORTUNITY_MODEL",
    "PAYMENT_MODEL",
    "PROJECT_MODEL",
    "SERVICE_NAME",
    "KantataBillingMilestone",
    "KantataEnvelope",
    "KantataError",
    "KantataErrorBody",
    "KantataExpense",
    "KantataExternalPayment",
    "KantataExternalReference",
    "KantataInvoice",
    "KantataMeta",
    "KantataResultRef",
    "KantataRole",
    "KantataStatus",
    "KantataStory",
    "KantataTimeEntry",
    "KantataWorkspace",
    "KantataWorkspaceResource",
    "billable_expense",
    "billable_milestone",
    "billable_time",
    "billing_milestone_body",
    "billing_milestone_key",
    "cents_from_money",
    "customer_of",
    "decode_envelope",
    "decode_errors",
    "erp_invoice_reference",
    "expense_from_record",
    "external_key_of",
    "hours_from_minutes",
    "invoice_create_body",
    "invoice_from_record",
    "invoice_status",
    "milestone_date",
    "milestone_from_story",
    "milestone_key",
    "milestone_of_billing_milestone",
    "milestone_status_from_state",
    "milestone_story_body",
    "minutes_from_hours",
    "money_from_cents",
    "ordered",
    "parse_kantata_date",
    "parse_kantata_datetime",
    "payment_keys",
    "payment_reference",
    "project_from_workspace",
    "project_status_from_workspace",
    "resource_title",
    "split_resource_title",
    "staffing_demand_body",
    "staffing_demand_from_resource",
    "time_entry_from_record",
    "workspace_create_body",
    "workspace_references",
]

#: The ``service_name`` of every external reference Stratum writes: what makes a record ours.
SERVICE_NAME = "Stratum"
#: ``service_model`` of the reference holding a workspace's business key (Stratum's).
PROJECT_MODEL = "Project"
#: ``service_model`` of the reference naming a workspace's CRM account (its customer).
ACCOUNT_MODEL = "Account"
#: ``service_model`` of the reference a CRM integration (Kantata's Salesforce one) links a deal's workspace
#: with; its ``service_model_ref`` is the opportunity id, which is the deal's project key.
OPPORTUNITY_MODEL = "Opportunity"

# Kantata ids are strings in its JSON ("10"), but some fields carry them as numbers; read both.
KantataId = str | int


def _id(value: KantataId) -> str:
    return str(value)


class KantataResultRef(msgspec.Struct, kw_only=True, frozen=True):
    """One entry of ``results``: which top-level key and id holds the next record in order."""

    key: str
    id: KantataId


class KantataMeta(msgspec.Struct, kw_only=True, frozen=True):
    count: int = 0
    page_count: int = 0
    page_number: int = 0
    page_size: int = 0


class KantataStatus(msgspec.Struct, kw_only=True, frozen=True):
    """A workspace's status: ``key`` (a number), ``message`` (its name) and ``color`` (its group)."""

    key: int | str | None = None
    message: str | None = None
    color: str | None = None


class KantataExternalReference(msgspec.Struct, kw_only=True, frozen=True):
    """Links a Kantata record to a record of another system (ours: ``service_name`` "Stratum")."""

    id: KantataId
    service_name: str | None = None
    service_model: str | None = None
    service_model_ref: KantataId | None = None
    subject_type: str | None = None
    subject_id: KantataId | None = None
    status: str | None = None
    external_status: str | None = None
    external_message: str | None = None


class KantataWorkspace(msgspec.Struct, kw_only=True, frozen=True):
    """A Kantata workspace (a project)."""

    id: KantataId
    title: str
    archived: bool = False
    status: KantataStatus | None = None
    description: str | None = None
    start_date: str | None = None
    due_date: str | None = None
    currency: str | None = None
    currency_base_unit: int | None = None
    budgeted: bool | None = None
    price_in_cents: int | None = None
    primary_maven_id: KantataId | None = None
    creator_id: KantataId | None = None
    updated_at: str | None = None
    created_at: str | None = None
    external_reference_ids: list[KantataId] = []


class KantataStory(msgspec.Struct, kw_only=True, frozen=True):
    """A Kantata story: a task, deliverable or (``story_type`` "milestone") a milestone."""

    id: KantataId
    title: str
    workspace_id: KantataId
    story_type: str | None = None
    state: str | None = None
    archived: bool = False
    start_date: str | None = None
    due_date: str | None = None
    budget_estimate_in_cents: int | None = None
    position: int | None = None
    billable: bool | None = None
    fixed_fee: bool | None = None
    is_invoiced: bool | None = None
    invoice_id: KantataId | None = None
    updated_at: str | None = None
    external_reference_ids: list[KantataId] = []


class KantataTimeEntry(msgspec.Struct, kw_only=True, frozen=True):
    id: KantataId
    workspace_id: KantataId
    date_performed: str
    time_in_minutes: int
    billable: bool = False
    approved: bool = False
    user_id: KantataId | None = None
    story_id: KantataId | None = None
    role_id: KantataId | None = None
    rate_in_cents: int | None = None
    currency: str | None = None
    currency_base_unit: int | None = None
    notes: str | None = None
    is_invoiced: bool | None = None
    invoice_id: KantataId | None = None
    updated_at: str | None = None


class KantataExpense(msgspec.Struct, kw_only=True, frozen=True):
    """An expense. Kantata documents ``is_billable``; older payloads say ``billable``: both are read."""

    id: KantataId
    workspace_id: KantataId
    date: str
    amount_in_cents: int
    currency: str | None = None
    currency_base_unit: int | None = None
    category: str | None = None
    is_billable: bool | None = None
    billable: bool | None = None
    approved: bool | None = None
    user_id: KantataId | None = None
    notes: str | None = None
    is_invoiced: bool | None = None
    invoice_id: KantataId | None = None
    updated_at: str | None = None


class KantataWorkspaceResource(msgspec.Struct, kw_only=True, frozen=True):
    """A resource a workspace needs: a role for some time, ``user_id`` once someone is staffed on it."""

    id: KantataId
    workspace_id: KantataId
    role_id: KantataId | None = None
    role_name: str | None = None
    title: str | None = None
    user_id: KantataId | None = None
    allocated_minutes: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    updated_at: str | None = None


class KantataRole(msgspec.Struct, kw_only=True, frozen=True):
    id: KantataId
    name: str


class KantataInvoice(msgspec.Struct, kw_only=True, frozen=True):
    """A Kantata invoice: the items it bills by id, ``status`` ("new", "accepted payment", "cancelled")
    beside ``draft``, and its total and balance in minor units."""

    id: KantataId
    workspace_ids: list[KantataId] = []
    status: str | None = None
    draft: bool = False
    currency: str | None = None
    currency_base_unit: int | None = None
    price_in_cents: int | None = None
    balance_in_cents: int | None = None
    invoice_date: str | None = None
    due_date: str | None = None
    time_entry_ids: list[KantataId] = []
    expense_ids: list[KantataId] = []
    billing_milestone_ids: list[KantataId] = []
    updated_at: str | None = None
    external_reference_ids: list[KantataId] = []


class KantataBillingMilestone(msgspec.Struct, kw_only=True, frozen=True):
    """A billing milestone (``/billing_milestones``): what an invoice's ``billing_milestone_ids`` name. It
    may belong to a task (``story_id``); ``invoice_id`` is the invoice it is on, if any
    (developer.kantata.com/tag/Billing-Milestones)."""

    id: KantataId
    workspace_id: KantataId
    title: str | None = None
    amount_in_cents: int | None = None
    currency: str | None = None
    date_to_invoice: str | None = None
    story_id: KantataId | None = None
    invoice_id: KantataId | None = None
    invoice_ids: list[KantataId] = []
    updated_at: str | None = None


class KantataExternalPayment(msgspec.Struct, kw_only=True, frozen=True):
    id: KantataId
    workspace_id: KantataId | None = None
    invoice_id: KantataId | None = None
    amount_in_cents: int | None = None


class KantataEnvelope(msgspec.Struct, kw_only=True, frozen=True):
    """Any Kantata answer: ``results`` in order plus every id-keyed table we read."""

    results: list[KantataResultRef]
    count: int = 0
    meta: KantataMeta | None = None
    workspaces: dict[str, KantataWorkspace] = {}
    stories: dict[str, KantataStory] = {}
    time_entries: dict[str, KantataTimeEntry] = {}
    expenses: dict[str, KantataExpense] = {}
    workspace_resources: dict[str, KantataWorkspaceResource] = {}
    roles: dict[str, KantataRole] = {}
    invoices: dict[str, KantataInvoice] = {}
    billing_milestones: dict[str, KantataBillingMilestone] = {}
    external_payments: dict[str, KantataExternalPayment] = {}
    external_references: dict[str, KantataExternalReference] = {}


class KantataError(msgspec.Struct, kw_only=True, frozen=True):
    type: str | None = None
    message: str | None = None
    field: str | None = None


class KantataErrorBody(msgspec.Struct, kw_only=True, frozen=True):
    errors: list[KantataError] = []


# Decoders are built once: building one compiles the type's decoding plan.
_envelope_decoder = msgspec.json.Decoder(KantataEnvelope)
_errors_decoder = msgspec.json.Decoder(KantataErrorBody)


def decode_envelope(body: bytes) -> KantataEnvelope:
    """The envelope in a Kantata answer; raises ``msgspec.DecodeError`` when unusable."""
    return _envelope_decoder.decode(body)


def decode_errors(body: bytes) -> list[KantataError]:
    """The ``errors`` of a Kantata error body; empty when the body is not one (e.g. an HTML error page)."""
    try:
        return _errors_decoder.decode(body).errors
    except msgspec.DecodeError:
        return []


_T = TypeVar("_T")


def ordered(envelope: KantataEnvelope, key: str, table: Mapping[str, _T]) -> list[_T]:
    """The records ``results`` lists under ``key``, in ``results`` order.

    Raises ``ValueError`` when ``results`` names a record the envelope does not hold: a truncated or
    inconsistent answer must not pass for a shorter list.
    """
    records: list[_T] = []
    for ref in envelope.results:
        if ref.key != key:
            continue
        record = table.get(_id(ref.id))
        if record is None:
            raise ValueError(f"results names {key} {ref.id}, which the answer does not hold")
        records.append(record)
    return records


def external_key_of(
    reference_ids: Sequence[KantataId],
    references: Mapping[str, KantataExternalReference],
    *,
    service_name: str = SERVICE_NAME,
    service_model: str | None = None,
) -> str | None:
    """The ``service_model_ref`` of the record's external reference written by ``service_name`` (of
    ``service_model``, when given), if any."""
    for reference_id in reference_ids:
        reference = references.get(_id(reference_id))
        if reference is None or reference.service_name != service_name:
            continue
        if service_model is not None and reference.service_model != service_model:
            continue
        if reference.service_model_ref is not None:
            return _id(reference.service_model_ref)
    return None


def customer_of(
    reference_ids: Sequence[KantataId], references: Mapping[str, KantataExternalReference]
) -> str | None:
    """The CRM account a workspace serves: its ``Account`` reference, Stratum's before any other's."""
    accounts = [
        reference
        for reference in (references.get(_id(reference_id)) for reference_id in reference_ids)
        if reference is not None
        and reference.service_model == ACCOUNT_MODEL
        and reference.service_model_ref is not None
    ]
    accounts.sort(key=lambda reference: reference.service_name != SERVICE_NAME)
    return _id(accounts[0].service_model_ref) if accounts and accounts[0].service_model_ref else None


# --- values ---------------------------------------------------------------------------------------------

_CENT = Decimal("0.01")
_HOUR_SCALE = Decimal("0.01")
_MINUTES_PER_HOUR = Decimal(60)


def _minor_unit_divisor(base_unit: int | None) -> int:
    # Kantata's "cents" are minor units of the currency: ``currency_base_unit`` of them make one unit
    # (100 for USD, 1 for JPY). Absent, it is 100, as for every currency the firm bills in today.
    divisor = 100 if base_unit is None else base_unit
    if divisor < 1 or 10 ** (len(str(divisor)) - 1) != divisor:
        raise ValueError(f"currency_base_unit {base_unit} is not a power of ten")
    return divisor


def money_from_cents(
    cents: int | None, currency: str | None, *, base_unit: int | None = None
) -> Money | None:
    """``Money`` for an integer number of minor units; ``None`` when either the amount or a valid ISO 4217
    currency is missing (an amount without its currency is not money).

    The amount is exact: integer division in ``Decimal``, quantized to cents (or finer, for a currency
    whose base unit is 1000).
    """
    if cents is None:
        return None
    code = _currency(currency)
    if code is None:
        return None
    divisor = _minor_unit_divisor(base_unit)
    places = max(2, len(str(divisor)) - 1)
    try:
        amount = (Decimal(cents) / divisor).quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # more digits than Decimal's context holds: no currency amount is that large
        raise ValueError(f"{cents} minor units of {code} is too large an amount") from None
    return Money(amount=amount, currency=code)


def cents_from_money(money: Money) -> int:
    """The integer number of cents Kantata stores for ``money``.

    Raises ``ValueError`` for an amount with fractions of a cent: Kantata cannot hold it, and rounding
    someone's money silently is not ours to do.
    """
    cents = money.amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{money.amount} {money.currency} has fractions of a cent; Kantata stores cents")
    return int(cents)


def hours_from_minutes(minutes: int) -> Decimal:
    """Minutes as hours, quantized to 0.01 (ROUND_HALF_EVEN, Decimal's default)."""
    return (Decimal(minutes) / _MINUTES_PER_HOUR).quantize(_HOUR_SCALE)


def minutes_from_hours(hours: Decimal) -> int:
    """Hours as whole minutes, the unit Kantata plans and books time in (7.5 h -> 450)."""
    return int((hours * _MINUTES_PER_HOUR).to_integral_value())


def parse_kantata_date(value: str | None) -> dt.date | None:
    """A business date from Kantata's ``YYYY-MM-DD`` (a datetime's date part is accepted too)."""
    if not value:
        return None
    return dt.date.fromisoformat(value[:10])


def parse_kantata_datetime(value: str | None) -> dt.datetime | None:
    """An aware UTC datetime from Kantata's ISO 8601 timestamps (``2026-03-04T10:15:00-08:00``).

    A timestamp without an offset is taken as UTC. Raises ``ValueError`` on text that is no timestamp.
    """
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _currency(code: str | None) -> str | None:
    if not code:
        return None
    upper = code.strip().upper()
    return upper if is_iso_4217(upper) else None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _optional_id(value: KantataId | None) -> str | None:
    return None if value is None else _id(value)


# --- statuses -------------------------------------------------------------------------------------------


def _status_key(value: str) -> str:
    # Statuses are matched ignoring case, spacing and punctuation ("On-Hold", "on hold").
    return re.sub(r"[^a-z]", "", value.casefold())


_PROJECT_STATUS_BY_MESSAGE: dict[str, ProjectStatus] = {
    _status_key(message): status
    for status, messages in {
        ProjectStatus.PLANNED: ("Not Started", "Estimate", "Prospect", "Proposed", "Planning", "In Planning"),
        ProjectStatus.ACTIVE: ("Okay to Start", "In Progress", "Active", "On Track", "At Risk", "Started"),
        ProjectStatus.ON_HOLD: ("On Hold", "Paused", "Suspended"),
        ProjectStatus.COMPLETED: ("Completed", "Complete", "Delivered", "Done", "Closed"),
        ProjectStatus.CLOSED: ("Cancelled", "Canceled", "Terminated"),
    }.items()
    for message in messages
}
_PROJECT_STATUS_BY_COLOR: dict[str, ProjectStatus] = {
    "grey": ProjectStatus.PLANNED,
    "gray": ProjectStatus.PLANNED,
    "lightblue": ProjectStatus.PLANNED,
    "lightgreen": ProjectStatus.ACTIVE,
    "green": ProjectStatus.ACTIVE,
    "yellow": ProjectStatus.ON_HOLD,
    "blue": ProjectStatus.COMPLETED,
    "red": ProjectStatus.CLOSED,
}


def project_status_from_workspace(workspace: KantataWorkspace) -> ProjectStatus:
    """The canonical status of a workspace (see the table in the module docstring)."""
    status = ProjectStatus.ACTIVE
    if workspace.status is not None:
        by_message = _PROJECT_STATUS_BY_MESSAGE.get(_status_key(workspace.status.message or ""))
        by_color = _PROJECT_STATUS_BY_COLOR.get(_status_key(workspace.status.color or ""))
        status = by_message or by_color or ProjectStatus.ACTIVE
    if workspace.archived and status is not ProjectStatus.COMPLETED:
        # Archiving is how a project is closed in Kantata: whatever it said before, it is over now.
        return ProjectStatus.CLOSED
    return status


def milestone_status_from_state(state: str | None) -> MilestoneStatus:
    """The canonical status of a story's ``state`` (see the table in the module docstring)."""
    key = _status_key(state or "")
    if key == "completed":
        return MilestoneStatus.COMPLETED
    if key in ("", "notstarted"):
        return MilestoneStatus.NOT_STARTED
    return MilestoneStatus.IN_PROGRESS


# --- Kantata -> canonical -------------------------------------------------------------------------------


def milestone_from_story(story: KantataStory, *, currency: str | None) -> Milestone:
    """The canonical milestone for a ``story_type`` "milestone" story; its amount is the story's budget
    estimate in the workspace's currency."""
    return Milestone(
        id=_id(story.id),
        project_id=_id(story.workspace_id),
        name=story.title,
        status=milestone_status_from_state(story.state),
        due_date=parse_kantata_date(story.due_date),
        amount=money_from_cents(story.budget_estimate_in_cents, currency),
        system_ids=SystemIds(psa=_id(story.id)),
    )


def project_from_workspace(
    workspace: KantataWorkspace,
    *,
    references: Mapping[str, KantataExternalReference],
    milestones: Sequence[KantataStory] = (),
) -> Project:
    """The canonical project for a workspace, its milestones from ``milestones`` (already in order)."""
    currency = _currency(workspace.currency)
    budget = (
        money_from_cents(workspace.price_in_cents, currency, base_unit=workspace.currency_base_unit)
        if workspace.budgeted is not False
        else None
    )
    return Project(
        id=_id(workspace.id),
        name=workspace.title,
        status=project_status_from_workspace(workspace),
        customer_id=customer_of(workspace.external_reference_ids, references),
        external_key=external_key_of(
            workspace.external_reference_ids, references, service_model=PROJECT_MODEL
        ),
        currency=currency,
        budget=budget,
        start_date=parse_kantata_date(workspace.start_date),
        end_date=parse_kantata_date(workspace.due_date),
        manager_id=_optional_id(workspace.primary_maven_id),
        milestones=[milestone_from_story(story, currency=currency) for story in milestones],
        updated_at=parse_kantata_datetime(workspace.updated_at),
        system_ids=SystemIds(psa=_id(workspace.id)),
    )


def time_entry_from_record(entry: KantataTimeEntry) -> TimeEntry:
    """The canonical time entry: hours from minutes, the rate as money in the entry's currency."""
    return TimeEntry(
        id=_id(entry.id),
        project_id=_id(entry.workspace_id),
        person_id=_optional_id(entry.user_id),
        date=dt.date.fromisoformat(entry.date_performed[:10]),
        hours=hours_from_minutes(entry.time_in_minutes),
        billable=entry.billable,
        approved=entry.approved,
        role=_optional_id(entry.role_id),
        rate=money_from_cents(entry.rate_in_cents, entry.currency, base_unit=entry.currency_base_unit),
        notes=_text(entry.notes),
        updated_at=parse_kantata_datetime(entry.updated_at),
        system_ids=SystemIds(psa=_id(entry.id)),
    )


def expense_from_record(expense: KantataExpense) -> Expense:
    """The canonical expense. An expense without a valid currency is not money: ``ValueError``."""
    amount = money_from_cents(expense.amount_in_cents, expense.currency, base_unit=expense.currency_base_unit)
    if amount is None:
        raise ValueError(f"expense {expense.id} has no valid currency ({expense.currency!r})")
    billable = expense.is_billable if expense.is_billable is not None else expense.billable
    return Expense(
        id=_id(expense.id),
        project_id=_id(expense.workspace_id),
        person_id=_optional_id(expense.user_id),
        date=dt.date.fromisoformat(expense.date[:10]),
        category=_text(expense.category),
        amount=amount,
        billable=bool(billable),
        approved=bool(expense.approved),
        notes=_text(expense.notes),
        system_ids=SystemIds(psa=_id(expense.id)),
    )


def staffing_demand_from_resource(resource: KantataWorkspaceResource) -> StaffingDemand:
    """The canonical staffing demand for a workspace resource (its business key from its title)."""
    role_from_title, external_key = split_resource_title(resource.title)
    role = _text(resource.role_name) or role_from_title or _optional_id(resource.role_id) or ""
    return StaffingDemand(
        id=_id(resource.id),
        project_id=_id(resource.workspace_id),
        role=role,
        hours=hours_from_minutes(resource.allocated_minutes or 0),
        start_date=parse_kantata_date(resource.start_date),
        end_date=parse_kantata_date(resource.end_date),
        assignee_id=_optional_id(resource.user_id),
        external_key=external_key,
        system_ids=SystemIds(psa=_id(resource.id)),
    )


# --- canonical -> Kantata -------------------------------------------------------------------------------


def _reference(service_model: str, key: str) -> dict[str, Any]:
    return {"service_name": SERVICE_NAME, "service_model": service_model, "service_model_ref": key}


def workspace_references(command: ProjectCreate) -> list[dict[str, Any]]:
    """The external references a deal's workspace carries: its business key and its CRM account."""
    return [_reference(PROJECT_MODEL, command.external_key), _reference(ACCOUNT_MODEL, command.customer_id)]


def milestone_key(external_key: str, number: int) -> str:
    """The business key of a project's ``number``th milestone (1-based): stable across re-runs."""
    return f"{external_key}:milestone:{number}"


def _project_description(command: ProjectCreate) -> str:
    # Kantata has no native fields for these (accounts model them as custom fields, which differ per
    # account): they go into the description, so the people working in Kantata see what was sold.
    facts = [f"Customer: {command.customer_id}"]
    if command.billing_model is not None:
        facts.append(f"Billing model: {command.billing_model.value.replace('_', ' ')}")
    if command.legal_entity is not None:
        facts.append(f"Legal entity: {command.legal_entity}")
    facts.append(f"Created by {SERVICE_NAME} under {command.external_key}")
    return ". ".join(facts) + "."


def workspace_create_body(command: ProjectCreate) -> dict[str, Any]:
    """The ``POST /workspaces`` body, its external reference nested so the two cannot be parted.

    Raises ``ValueError`` for a budget Kantata cannot hold (fractions of a cent, another currency).
    """
    workspace: dict[str, Any] = {
        "title": command.name,
        # Required on create (mavenlink_gem, lib/config/specification.yml: inclusion in maven, buyer): the
        # API user's side of the project. Stratum works for the provider, whose people are Kantata's mavens.
        "creator_role": "maven",
        "description": _project_description(command),
        "currency": command.currency,
        "external_references_attributes": workspace_references(command),
    }
    if command.budget is not None:
        if command.budget.currency != command.currency:
            raise ValueError("the budget must be in the project's currency")
        workspace["budgeted"] = True
        cents_from_money(command.budget)  # refuses fractions of a cent before Kantata would round them
        # Kantata writes the budget as `price` in the currency's units (`price_in_cents` is read only); a
        # decimal string keeps the amount exact where a JSON number would pass through a float.
        workspace["price"] = format(command.budget.amount, "f")
    if command.start_date is not None:
        workspace["start_date"] = command.start_date.isoformat()
    if command.end_date is not None:
        workspace["due_date"] = command.end_date.isoformat()
    if command.manager_id is not None:
        workspace["primary_maven_id"] = command.manager_id
    return {"workspace": workspace}


def milestone_story_body(
    workspace_id: str, external_key: str, number: int, milestone: MilestoneInput, *, currency: str
) -> dict[str, Any]:
    """One milestone as a ``story_type`` "milestone" story, without the top-level key (milestones are
    created in bulk, under ``stories``). Its amount must be in the project's ``currency``."""
    story: dict[str, Any] = {
        "workspace_id": workspace_id,
        "title": milestone.name,
        "story_type": "milestone",
        "external_references_attributes": [_reference("Milestone", milestone_key(external_key, number))],
    }
    if milestone.due_date is not None:
        story["due_date"] = milestone.due_date.isoformat()
    if milestone.amount is not None:
        if milestone.amount.currency != currency:
            raise ValueError(f"milestone {number} must be in the project's currency ({currency})")
        story["budget_estimate_in_cents"] = cents_from_money(milestone.amount)
        # A milestone with an amount is what the deal bills on completion: a billable, fixed-fee story,
        # which the billing run reads once it is completed.
        story["billable"] = True
        story["fixed_fee"] = True
    return story


# A workspace resource carries no external reference (see the adapter's docstring), so the demand's
# business key travels in its title: "Senior Consultant [Stratum opp-1:staff:1]". ExternalKey's alphabet
# has no spaces or brackets, so the marker always parses back unambiguously.
_TITLE_MAX = 255
_TITLE_MARKER = re.compile(r"^(?P<role>.*?)\s*\[" + SERVICE_NAME + r" (?P<key>[A-Za-z0-9_:.-]{1,80})\]$")


def resource_title(role: str, external_key: str) -> str:
    """The title of a workspace resource raised for ``role`` under ``external_key``."""
    marker = f" [{SERVICE_NAME} {external_key}]"
    return role.strip()[: _TITLE_MAX - len(marker)] + marker


def split_resource_title(title: str | None) -> tuple[str | None, str | None]:
    """``(role, external_key)`` from a resource title; the key is ``None`` for one we did not raise."""
    if not title:
        return None, None
    match = _TITLE_MARKER.match(title.strip())
    if match is None:
        return _text(title), None
    return _text(match.group("role")), match.group("key")


def staffing_demand_body(workspace_id: str, role_id: str, command: StaffingDemandCreate) -> dict[str, Any]:
    """The ``POST /workspace_resources`` body: an unnamed resource for the demand's role and hours."""
    resource: dict[str, Any] = {
        "workspace_id": workspace_id,
        "role_id": role_id,
        "title": resource_title(command.role, command.external_key),
        "allocated_minutes": minutes_from_hours(command.hours),
    }
    if command.start_date is not None:
        resource["start_date"] = command.start_date.isoformat()
    if command.end_date is not None:
        resource["end_date"] = command.end_date.isoformat()
    return {"workspace_resource": resource}


# --- billing --------------------------------------------------------------------------------------------

#: ``service_model`` of the reference holding an invoice's billing key (``bill:{project}:{YYYY-MM}``).
INVOICE_MODEL = "Invoice"
#: ``service_model`` of the reference naming the ERP invoice a PSA invoice stands for (its id as the ref,
#: its number as ``external_message``).
ERP_INVOICE_MODEL = "ErpInvoice"
#: ``service_model`` of the reference on a billing milestone Stratum made for a milestone story.
BILLING_MILESTONE_MODEL = "BillingMilestone"
#: ``service_model`` of the reference recording one ERP payment told to Kantata (its id as the ref): the
#: ledger that keeps each payment once.
PAYMENT_MODEL = "Payment"

_PAID_STATUSES = frozenset({"acceptedpayment", "paid"})
_CANCELLED_STATUSES = frozenset({"cancelled", "canceled", "void", "voided"})


def invoice_status(invoice: KantataInvoice) -> PsaInvoiceStatus:
    """Kantata's ``status``/``draft`` as the canonical status: a draft is a draft whatever its status;
    "accepted payment" is paid; "cancelled" is cancelled; "new" (pending) and anything else is open."""
    key = _status_key(invoice.status or "")
    if key in _CANCELLED_STATUSES:
        return PsaInvoiceStatus.CANCELLED
    if invoice.draft:
        return PsaInvoiceStatus.DRAFT
    if key in _PAID_STATUSES:
        return PsaInvoiceStatus.PAID
    return PsaInvoiceStatus.OPEN


def _reference_of(
    reference_ids: Sequence[KantataId],
    references: Mapping[str, KantataExternalReference],
    service_model: str,
) -> KantataExternalReference | None:
    for reference_id in reference_ids:
        reference = references.get(_id(reference_id))
        if (
            reference is not None
            and reference.service_name == SERVICE_NAME
            and reference.service_model == service_model
            and reference.service_model_ref is not None
        ):
            return reference
    return None


def invoice_from_record(
    invoice: KantataInvoice,
    references: Mapping[str, KantataExternalReference],
    *,
    billing_milestones: Mapping[str, KantataBillingMilestone] | None = None,
) -> PsaInvoice:
    """The canonical PSA invoice; its billing key and ERP invoice from Stratum's references on it. Its
    milestones are the milestone stories its billing milestones belong to (``billing_milestones``, side-loaded
    with the invoice), so they are the project's milestones; a billing milestone without a story (or not
    side-loaded) is named by its own id."""
    currency = _currency(invoice.currency)
    if currency is None or not invoice.workspace_ids:
        raise ValueError(f"invoice {invoice.id} has no valid currency or project")
    total = money_from_cents(invoice.price_in_cents or 0, currency, base_unit=invoice.currency_base_unit)
    assert total is not None  # a valid currency and an amount always make money
    erp = _reference_of(invoice.external_reference_ids, references, ERP_INVOICE_MODEL)
    return PsaInvoice(
        id=_id(invoice.id),
        project_id=_id(invoice.workspace_ids[0]),
        status=invoice_status(invoice),
        currency=currency,
        total=total,
        external_key=external_key_of(invoice.external_reference_ids, references, service_model=INVOICE_MODEL),
        erp_invoice_id=None if erp is None or erp.service_model_ref is None else _id(erp.service_model_ref),
        erp_invoice_number=None if erp is None else _text(erp.external_message),
        invoice_date=parse_kantata_date(invoice.invoice_date),
        due_date=parse_kantata_date(invoice.due_date),
        time_entry_ids=[_id(item) for item in invoice.time_entry_ids],
        expense_ids=[_id(item) for item in invoice.expense_ids],
        milestone_ids=[
            milestone_of_billing_milestone(_id(item), billing_milestones or {})
            for item in invoice.billing_milestone_ids
        ],
        updated_at=parse_kantata_datetime(invoice.updated_at),
        system_ids=SystemIds(psa=_id(invoice.id)),
    )


def payment_keys(
    reference_ids: Sequence[KantataId], references: Mapping[str, KantataExternalReference]
) -> set[str]:
    """The ERP payment ids already told to Kantata on an invoice (its ``Payment`` references)."""
    keys: set[str] = set()
    for reference_id in reference_ids:
        reference = references.get(_id(reference_id))
        if (
            reference is not None
            and reference.service_name == SERVICE_NAME
            and reference.service_model == PAYMENT_MODEL
            and reference.service_model_ref is not None
        ):
            keys.add(_id(reference.service_model_ref))
    return keys


def erp_invoice_reference(erp_invoice_id: str, erp_invoice_number: str | None) -> dict[str, Any]:
    """The reference naming the ERP invoice (nested in the invoice's create, or on its own)."""
    reference = _reference(ERP_INVOICE_MODEL, erp_invoice_id)
    if erp_invoice_number is not None:
        reference["external_message"] = erp_invoice_number
    return reference


def payment_reference(payment: PsaPaymentRecord) -> dict[str, Any]:
    """One ERP payment as a reference on the invoice: found again by the payment's id, and readable by the
    people in Kantata (amount, date and the balance left after it)."""
    reference = _reference(PAYMENT_MODEL, payment.erp_payment_id)
    status = "paid in full" if payment.balance == 0 else "partially paid"
    reference["external_status"] = status
    reference["external_message"] = (
        f"{payment.amount} {payment.currency} paid on {payment.date.isoformat()}; "
        f"balance {payment.balance} {payment.currency}"
    )
    return reference


def milestone_of_billing_milestone(
    billing_milestone_id: str, billing_milestones: Mapping[str, KantataBillingMilestone]
) -> str:
    """The milestone story a billing milestone bills (its ``story_id``), else the billing milestone's id."""
    record = billing_milestones.get(billing_milestone_id)
    return (
        _id(record.story_id) if record is not None and record.story_id is not None else billing_milestone_id
    )


def billing_milestone_key(external_key: str, story_id: str) -> str:
    """The key of the billing milestone Stratum makes for a milestone story when an invoice bills it."""
    return f"{external_key}:milestone:{story_id}"


def billing_milestone_body(
    story: KantataStory, *, external_key: str, date_to_invoice: dt.date
) -> dict[str, Any]:
    """The ``POST /billing_milestones`` body for a completed milestone story: its title, its amount (the
    story's budget estimate, as ``billable_milestone`` reported it), the story it bills and Stratum's key
    (developer.kantata.com/kantata/specification/billing-milestones/create-billing-milestone)."""
    if story.budget_estimate_in_cents is None:
        raise ValueError(f"milestone {story.id} has no amount")
    return {
        "billing_milestone": {
            "workspace_id": _id(story.workspace_id),
            "title": story.title,
            "amount_in_cents": story.budget_estimate_in_cents,
            "date_to_invoice": (parse_kantata_date(story.due_date) or date_to_invoice).isoformat(),
            "story_id": _id(story.id),
            "external_references_attributes": [
                _reference(BILLING_MILESTONE_MODEL, billing_milestone_key(external_key, _id(story.id)))
            ],
        }
    }


def invoice_create_body(
    command: PsaInvoiceCreate, *, billing_milestone_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``POST /invoices`` body: the exact items, fees as additional items, the billing key (and the
    ERP invoice, when known) as references nested in the same POST, so no invoice exists without the key
    that finds it again. ``billing_milestone_ids`` are Kantata billing milestones (``/billing_milestones``),
    the records an invoice's ``billing_milestone_ids`` name, not the milestone stories of
    ``command.milestone_ids``. Raises ``ValueError`` for a fee Kantata cannot hold."""
    references = [_reference(INVOICE_MODEL, command.external_key)]
    if command.erp_invoice_id is not None:
        references.append(erp_invoice_reference(command.erp_invoice_id, command.erp_invoice_number))
    # An AdditionalItem's text is `notes` (mavenlink_gem specification: notes, amount_in_cents, taxable).
    fees = [
        {
            "notes": fee.description,
            "amount_in_cents": cents_from_money(Money(amount=fee.amount, currency=command.currency)),
        }
        for fee in command.fee_items
    ]
    invoice: dict[str, Any] = {
        "workspace_id": command.project_id,
        "time_entry_ids": list(command.time_entry_ids),
        "expense_ids": list(command.expense_ids),
        "billing_milestone_ids": list(billing_milestone_ids),
        "additional_items": fees,
        # Kantata requires a payment schedule, the days from the invoice date to its due date, and derives
        # the due date from it (mavenlink_gem specification: due_date is answered, not written).
        "payment_schedule": max(0, (command.due_date - command.invoice_date).days),
        "invoice_date": command.invoice_date.isoformat(),
        "draft": command.draft,
        # The ERP sends the customer's invoice; Kantata must not email one of its own.
        "suppress_emails": True,
        "external_references_attributes": references,
    }
    return {"invoice": invoice}


def billable_time(entry: KantataTimeEntry, *, role_names: Mapping[str, str] | None = None) -> BillableItem:
    """An approved, billable time entry as a billable item: hours and Kantata's rate (for comparison;
    the billing run prices time from the deal's rate card). Its role is the role's name where
    ``role_names`` (Kantata role id -> name) has it, as the rate card names roles; else the id."""
    role_id = _optional_id(entry.role_id)
    return BillableItem(
        id=_id(entry.id),
        kind=BillableItemKind.TIME,
        project_id=_id(entry.workspace_id),
        date=dt.date.fromisoformat(entry.date_performed[:10]),
        description=_text(entry.notes) or "Time",
        quantity=hours_from_minutes(entry.time_in_minutes),
        role=(role_names or {}).get(role_id, role_id) if role_id is not None else None,
        person_id=_optional_id(entry.user_id),
        rate=money_from_cents(entry.rate_in_cents, entry.currency, base_unit=entry.currency_base_unit),
        invoiced=bool(entry.is_invoiced),
        psa_invoice_id=_optional_id(entry.invoice_id),
        updated_at=parse_kantata_datetime(entry.updated_at),
        system_ids=SystemIds(psa=_id(entry.id)),
    )


def billable_expense(expense: KantataExpense) -> BillableItem:
    amount = money_from_cents(expense.amount_in_cents, expense.currency, base_unit=expense.currency_base_unit)
    if amount is None:
        raise ValueError(f"expense {expense.id} has no valid currency ({expense.currency!r})")
    return BillableItem(
        id=_id(expense.id),
        kind=BillableItemKind.EXPENSE,
        project_id=_id(expense.workspace_id),
        date=dt.date.fromisoformat(expense.date[:10]),
        description=_text(expense.notes) or _text(expense.category) or "Expense",
        person_id=_optional_id(expense.user_id),
        amount=amount,
        invoiced=bool(expense.is_invoiced),
        psa_invoice_id=_optional_id(expense.invoice_id),
        updated_at=parse_kantata_datetime(expense.updated_at),
        system_ids=SystemIds(psa=_id(expense.id)),
    )


def milestone_date(story: KantataStory) -> dt.date | None:
    """The date a billing milestone bills on: its due date, else the day it last changed."""
    return parse_kantata_date(story.due_date) or parse_kantata_date(story.updated_at)


def billable_milestone(story: KantataStory, *, currency: str | None) -> BillableItem:
    """A completed billable milestone: its amount is its budget estimate in the project's currency."""
    day = milestone_date(story)
    amount = money_from_cents(story.budget_estimate_in_cents, currency)
    if day is None or amount is None:
        raise ValueError(f"milestone {story.id} has no date or no amount in a valid currency")
    return BillableItem(
        id=_id(story.id),
        kind=BillableItemKind.MILESTONE,
        project_id=_id(story.workspace_id),
        date=day,
        description=story.title,
        amount=amount,
        invoiced=bool(story.is_invoiced),
        psa_invoice_id=_optional_id(story.invoice_id),
        updated_at=parse_kantata_datetime(story.updated_at),
        system_ids=SystemIds(psa=_id(story.id)),
    )
