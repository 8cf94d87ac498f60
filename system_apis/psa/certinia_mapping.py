"""Certinia PSA records (the ``pse__`` managed package's objects in a Salesforce org) <-> canonical objects.

Pure functions and the Structs the adapter decodes SOQL rows into (unknown fields tolerated; currency
fields are ``Decimal`` read straight from the JSON text, so money never passes through a float). Names are
the package's (VENDORS.md "Certinia PSA"; Certinia's data dictionary at help.certinia.com, TechnicalReference,
ProfessionalServicesAutomation/Schema) and the org's own fields of the shared field contract
(``Stratum_Key__c`` on every object Stratum creates, ``Stratum_*`` on the billing event).

Canonical mapping:

- project = ``pse__Proj__c``; status from ``pse__Stage__c`` (Draft/Planned: planned, In Progress: active,
  Completed: completed, Canceled: closed) and ``pse__Is_Active__c`` (inactive and not completed: closed);
- milestone = ``pse__Milestone__c``; status Approved (or ``pse__Approved__c``) is completed, Open in
  progress, anything else not started; due date ``pse__Target_Date__c``;
- staffing demand = ``pse__Resource_Request__c`` (role, ``pse__SOW_Hours__c``, dates);
- time entry = a timecard split (``pse__Timecard__c``), approved by its header's ``pse__Approved__c``; its
  role the one its header's assignment (``pse__Assignment__c``) names, else its resource's own
  ``Contact.pse__Resource_Role__c``, else none;
- expense = ``pse__Expense__c``;
- invoice = ``pse__Billing_Event__c`` (``Stratum_Key__c`` the billing key), its lines
  ``pse__Billing_Event_Item__c`` (category Timecard / Expense / Milestone / Miscellaneous Adjustment);
  status from ``Stratum_Status__c`` (Draft: draft, Issued: open, Cancelled: cancelled) and paid once
  ``Stratum_Paid_Amount__c`` covers ``pse__Summary_Amount__c``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

import msgspec

from contracts.models import (
    BillableItem,
    BillableItemKind,
    Expense,
    Milestone,
    MilestoneStatus,
    Project,
    ProjectCreate,
    ProjectStatus,
    PsaInvoice,
    PsaInvoiceStatus,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntry,
)
from contracts.models.common import Money, SystemIds, is_iso_4217
from system_apis.crm.salesforce_mapping import parse_salesforce_datetime

__all__ = [
    "BILLING_EVENT",
    "BILLING_EVENT_FIELDS",
    "BILLING_EVENT_ITEM",
    "BILLING_EVENT_ITEM_FIELDS",
    "EXPENSE",
    "EXPENSE_FIELDS",
    "KEY_FIELD",
    "MILESTONE",
    "MILESTONE_FIELDS",
    "PROJECT",
    "PROJECT_FIELDS",
    "RESOURCE_REQUEST",
    "RESOURCE_REQUEST_FIELDS",
    "TIMECARD_SPLIT",
    "TIMECARD_SPLIT_FIELDS",
    "CertiniaBillingEvent",
    "CertiniaBillingEventItem",
    "CertiniaExpense",
    "CertiniaMilestone",
    "CertiniaProject",
    "CertiniaResourceRequest",
    "CertiniaTimecardSplit",
    "RecordRef",
    "billable_expense",
    "billable_milestone",
    "billable_time",
    "billing_event_body",
    "child_key",
    "decode_batch",
    "expense_from_record",
    "invoice_from_records",
    "invoice_status",
    "invoice_total",
    "milestone_body",
    "milestone_from_record",
    "payment_ids",
    "project_body",
    "project_from_record",
    "resource_request_body",
    "split_role",
    "staffing_demand_from_record",
    "time_entry_from_record",
]

R = TypeVar("R")

PROJECT = "pse__Proj__c"
MILESTONE = "pse__Milestone__c"
RESOURCE_REQUEST = "pse__Resource_Request__c"
TIMECARD_SPLIT = "pse__Timecard__c"
EXPENSE = "pse__Expense__c"
BILLING_EVENT = "pse__Billing_Event__c"
BILLING_EVENT_ITEM = "pse__Billing_Event_Item__c"
# The org's external-id field (Text(80), External ID, Unique) on every object Stratum creates: the package
# has none of its own ("orgs add their own": VENDORS.md).
KEY_FIELD = "Stratum_Key__c"
_KEY_MAX = 80

# Billing event item categories (the package's picklist) by canonical kind.
CATEGORY_TIME = "Timecard"
CATEGORY_EXPENSE = "Expense"
CATEGORY_MILESTONE = "Milestone"
CATEGORY_FEE = "Miscellaneous Adjustment"

STATUS_DRAFT = "Draft"
STATUS_ISSUED = "Issued"
STATUS_CANCELLED = "Cancelled"

_AUDIT = ("CurrencyIsoCode", "CreatedDate", "LastModifiedDate")
PROJECT_FIELDS = (
    "Id",
    "Name",
    "pse__Account__c",
    "pse__Billing_Type__c",
    "pse__Start_Date__c",
    "pse__End_Date__c",
    "pse__Is_Active__c",
    "pse__Stage__c",
    "pse__Closed_for_Time_Entry__c",
    "pse__Closed_for_Expense_Entry__c",
    "pse__Project_Manager__c",
    KEY_FIELD,
    *_AUDIT,
)
MILESTONE_FIELDS = (
    "Id",
    "Name",
    "pse__Project__c",
    "pse__Milestone_Amount__c",
    "pse__Target_Date__c",
    "pse__Actual_Date__c",
    "pse__Status__c",
    "pse__Approved__c",
    "pse__Billing_Event_Item__c",
    KEY_FIELD,
    *_AUDIT,
)
RESOURCE_REQUEST_FIELDS = (
    "Id",
    "Name",
    "pse__Project__c",
    "pse__Resource_Role__c",
    "pse__Start_Date__c",
    "pse__End_Date__c",
    "pse__SOW_Hours__c",
    "pse__Status__c",
    "pse__Notes__c",
    KEY_FIELD,
    *_AUDIT,
)
TIMECARD_SPLIT_FIELDS = (
    "Id",
    "Name",
    "pse__Timecard_Header__c",
    "pse__Project__c",
    "pse__Resource__c",
    "pse__Start_Date__c",
    "pse__End_Date__c",
    "pse__Total_Hours__c",
    "pse__Billable__c",
    "pse__Bill_Rate__c",
    "pse__Total_Billable_Amount__c",
    "pse__Billing_Event_Item__c",
    # The split carries billing; approval is its header's (what a person submits and a manager approves).
    "pse__Timecard_Header__r.pse__Approved__c",
    "pse__Timecard_Header__r.pse__Billable__c",
    "pse__Timecard_Header__r.pse__Notes__c",
    # The role the time is billed as, read in the same query: the assignment the header books against
    # names it; a resource booking without one bills as its own role (Contact.pse__Resource_Role__c).
    "pse__Timecard_Header__r.pse__Assignment__r.pse__Role__c",
    "pse__Resource__r.pse__Resource_Role__c",
    *_AUDIT,
)
EXPENSE_FIELDS = (
    "Id",
    "Name",
    "pse__Project__c",
    "pse__Resource__c",
    "pse__Expense_Date__c",
    "pse__Type__c",
    "pse__Amount__c",
    "pse__Billable__c",
    "pse__Billable_Amount__c",
    "pse__Approved__c",
    "pse__Billing_Event_Item__c",
    "pse__Description__c",
    *_AUDIT,
)
BILLING_EVENT_FIELDS = (
    "Id",
    "Name",
    "pse__Project__c",
    "pse__Date__c",
    "pse__Summary_Amount__c",
    "pse__Is_Released__c",
    "pse__Invoiced__c",
    "pse__Invoice_Number__c",
    "pse__Invoice_Date__c",
    KEY_FIELD,
    "Stratum_Status__c",
    "Stratum_ERP_Invoice_Id__c",
    "Stratum_Paid_Amount__c",
    "Stratum_Payment_Ids__c",
    *_AUDIT,
)
BILLING_EVENT_ITEM_FIELDS = (
    "Id",
    "pse__Billing_Event__c",
    "pse__Category__c",
    "pse__Object_Id__c",
    "pse__Timecard_Split__c",
    "pse__Expense__c",
    "pse__Milestone__c",
    "pse__Amount__c",
    KEY_FIELD,
    "pse__Billing_Event__r.Stratum_Status__c",
)


class _Attributes(msgspec.Struct, frozen=True):
    type: str = ""


class CertiniaProject(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    name: str = msgspec.field(name="Name")
    account_id: str | None = msgspec.field(default=None, name="pse__Account__c")
    billing_type: str | None = msgspec.field(default=None, name="pse__Billing_Type__c")
    start_date: str | None = msgspec.field(default=None, name="pse__Start_Date__c")
    end_date: str | None = msgspec.field(default=None, name="pse__End_Date__c")
    is_active: bool | None = msgspec.field(default=None, name="pse__Is_Active__c")
    stage: str | None = msgspec.field(default=None, name="pse__Stage__c")
    closed_for_time: bool | None = msgspec.field(default=None, name="pse__Closed_for_Time_Entry__c")
    closed_for_expense: bool | None = msgspec.field(default=None, name="pse__Closed_for_Expense_Entry__c")
    manager_id: str | None = msgspec.field(default=None, name="pse__Project_Manager__c")
    key: str | None = msgspec.field(default=None, name=KEY_FIELD)
    currency: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class CertiniaMilestone(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    name: str = msgspec.field(name="Name")
    project_id: str = msgspec.field(name="pse__Project__c")
    amount: Decimal | None = msgspec.field(default=None, name="pse__Milestone_Amount__c")
    target_date: str | None = msgspec.field(default=None, name="pse__Target_Date__c")
    actual_date: str | None = msgspec.field(default=None, name="pse__Actual_Date__c")
    status: str | None = msgspec.field(default=None, name="pse__Status__c")
    approved: bool | None = msgspec.field(default=None, name="pse__Approved__c")
    billing_event_item_id: str | None = msgspec.field(default=None, name="pse__Billing_Event_Item__c")
    key: str | None = msgspec.field(default=None, name=KEY_FIELD)
    currency: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class CertiniaResourceRequest(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    project_id: str = msgspec.field(name="pse__Project__c")
    role: str | None = msgspec.field(default=None, name="pse__Resource_Role__c")
    start_date: str | None = msgspec.field(default=None, name="pse__Start_Date__c")
    end_date: str | None = msgspec.field(default=None, name="pse__End_Date__c")
    hours: Decimal | None = msgspec.field(default=None, name="pse__SOW_Hours__c")
    status: str | None = msgspec.field(default=None, name="pse__Status__c")
    notes: str | None = msgspec.field(default=None, name="pse__Notes__c")
    key: str | None = msgspec.field(default=None, name=KEY_FIELD)


class _AssignmentRef(msgspec.Struct, kw_only=True, frozen=True):
    role: str | None = msgspec.field(default=None, name="pse__Role__c")


class _ResourceRef(msgspec.Struct, kw_only=True, frozen=True):
    role: str | None = msgspec.field(default=None, name="pse__Resource_Role__c")


class _HeaderRef(msgspec.Struct, kw_only=True, frozen=True):
    approved: bool | None = msgspec.field(default=None, name="pse__Approved__c")
    billable: bool | None = msgspec.field(default=None, name="pse__Billable__c")
    notes: str | None = msgspec.field(default=None, name="pse__Notes__c")
    assignment: _AssignmentRef | None = msgspec.field(default=None, name="pse__Assignment__r")


class CertiniaTimecardSplit(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    name: str | None = msgspec.field(default=None, name="Name")
    project_id: str | None = msgspec.field(default=None, name="pse__Project__c")
    resource_id: str | None = msgspec.field(default=None, name="pse__Resource__c")
    start_date: str | None = msgspec.field(default=None, name="pse__Start_Date__c")
    end_date: str | None = msgspec.field(default=None, name="pse__End_Date__c")
    hours: Decimal | None = msgspec.field(default=None, name="pse__Total_Hours__c")
    billable: bool | None = msgspec.field(default=None, name="pse__Billable__c")
    bill_rate: Decimal | None = msgspec.field(default=None, name="pse__Bill_Rate__c")
    billable_amount: Decimal | None = msgspec.field(default=None, name="pse__Total_Billable_Amount__c")
    billing_event_item_id: str | None = msgspec.field(default=None, name="pse__Billing_Event_Item__c")
    header: _HeaderRef | None = msgspec.field(default=None, name="pse__Timecard_Header__r")
    resource: _ResourceRef | None = msgspec.field(default=None, name="pse__Resource__r")
    currency: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class CertiniaExpense(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    name: str | None = msgspec.field(default=None, name="Name")
    project_id: str = msgspec.field(name="pse__Project__c")
    resource_id: str | None = msgspec.field(default=None, name="pse__Resource__c")
    date: str | None = msgspec.field(default=None, name="pse__Expense_Date__c")
    type: str | None = msgspec.field(default=None, name="pse__Type__c")
    amount: Decimal | None = msgspec.field(default=None, name="pse__Amount__c")
    billable: bool | None = msgspec.field(default=None, name="pse__Billable__c")
    billable_amount: Decimal | None = msgspec.field(default=None, name="pse__Billable_Amount__c")
    approved: bool | None = msgspec.field(default=None, name="pse__Approved__c")
    billing_event_item_id: str | None = msgspec.field(default=None, name="pse__Billing_Event_Item__c")
    description: str | None = msgspec.field(default=None, name="pse__Description__c")
    currency: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class CertiniaBillingEvent(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    name: str | None = msgspec.field(default=None, name="Name")
    project_id: str = msgspec.field(name="pse__Project__c")
    date: str | None = msgspec.field(default=None, name="pse__Date__c")
    summary_amount: Decimal | None = msgspec.field(default=None, name="pse__Summary_Amount__c")
    is_released: bool | None = msgspec.field(default=None, name="pse__Is_Released__c")
    invoiced: bool | None = msgspec.field(default=None, name="pse__Invoiced__c")
    invoice_number: str | None = msgspec.field(default=None, name="pse__Invoice_Number__c")
    invoice_date: str | None = msgspec.field(default=None, name="pse__Invoice_Date__c")
    key: str | None = msgspec.field(default=None, name=KEY_FIELD)
    status: str | None = msgspec.field(default=None, name="Stratum_Status__c")
    erp_invoice_id: str | None = msgspec.field(default=None, name="Stratum_ERP_Invoice_Id__c")
    paid_amount: Decimal | None = msgspec.field(default=None, name="Stratum_Paid_Amount__c")
    payment_ids: str | None = msgspec.field(default=None, name="Stratum_Payment_Ids__c")
    currency: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    created_date: str | None = msgspec.field(default=None, name="CreatedDate")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class _EventRef(msgspec.Struct, kw_only=True, frozen=True):
    status: str | None = msgspec.field(default=None, name="Stratum_Status__c")


class CertiniaBillingEventItem(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")
    billing_event_id: str = msgspec.field(name="pse__Billing_Event__c")
    category: str | None = msgspec.field(default=None, name="pse__Category__c")
    object_id: str | None = msgspec.field(default=None, name="pse__Object_Id__c")
    timecard_split_id: str | None = msgspec.field(default=None, name="pse__Timecard_Split__c")
    expense_id: str | None = msgspec.field(default=None, name="pse__Expense__c")
    milestone_id: str | None = msgspec.field(default=None, name="pse__Milestone__c")
    amount: Decimal | None = msgspec.field(default=None, name="pse__Amount__c")
    key: str | None = msgspec.field(default=None, name=KEY_FIELD)
    event: _EventRef | None = msgspec.field(default=None, name="pse__Billing_Event__r")


class RecordRef(msgspec.Struct, kw_only=True, frozen=True):
    id: str = msgspec.field(name="Id")


class QueryPage(msgspec.Struct, Generic[R], kw_only=True, frozen=True):
    """One batch of a SOQL result."""

    done: bool
    records: list[R]
    next_records_url: str | None = msgspec.field(default=None, name="nextRecordsUrl")


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    record_type: msgspec.json.Decoder(QueryPage[record_type])  # type: ignore[valid-type]
    for record_type in (
        RecordRef,
        CertiniaProject,
        CertiniaMilestone,
        CertiniaResourceRequest,
        CertiniaTimecardSplit,
        CertiniaExpense,
        CertiniaBillingEvent,
        CertiniaBillingEventItem,
    )
}


def decode_batch(record_type: type[R], body: bytes) -> QueryPage[R]:
    """A SOQL result batch of ``record_type`` rows; raises ``msgspec.DecodeError`` when unusable."""
    page: QueryPage[R] = _decoders[record_type].decode(body)
    return page


# --- Certinia -> canonical ----------------------------------------------------------------------------

_CENTS = Decimal("0.01")


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _currency(code: str | None) -> str | None:
    if not code:
        return None
    upper = code.strip().upper()
    return upper if is_iso_4217(upper) else None


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    if amount is None or currency is None:
        return None
    try:
        return Money(amount=amount.quantize(_CENTS), currency=currency)
    except InvalidOperation:
        raise ValueError(f"amount {amount} is too large") from None


def _hours(value: Decimal | None) -> Decimal:
    """Hours at the package's two decimal places (Number(18,2)), never in exponent form ("40.00")."""
    try:
        return (value or Decimal(0)).quantize(_CENTS)
    except InvalidOperation:
        raise ValueError(f"hours {value} are too many") from None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _key(value: str) -> str:
    return value.casefold()


_STATUS_BY_STAGE = {
    "draft": ProjectStatus.PLANNED,
    "planned": ProjectStatus.PLANNED,
    "in progress": ProjectStatus.ACTIVE,
    "on hold": ProjectStatus.ON_HOLD,
    "completed": ProjectStatus.COMPLETED,
    "canceled": ProjectStatus.CLOSED,
    "cancelled": ProjectStatus.CLOSED,
}


def project_status(record: CertiniaProject) -> ProjectStatus:
    """The canonical status from the stage (org-configurable: an unknown stage reads as active); an
    inactive project that did not complete is closed."""
    status = _STATUS_BY_STAGE.get(_key(record.stage or ""), ProjectStatus.ACTIVE)
    if record.is_active is False and status is not ProjectStatus.COMPLETED:
        return ProjectStatus.CLOSED
    return status


def milestone_status(record: CertiniaMilestone) -> MilestoneStatus:
    status = _key(record.status or "")
    if record.approved or status in ("approved", "complete", "completed"):
        return MilestoneStatus.COMPLETED
    if status in ("open", "in progress"):
        return MilestoneStatus.IN_PROGRESS
    return MilestoneStatus.NOT_STARTED


def milestone_from_record(record: CertiniaMilestone, *, currency: str | None = None) -> Milestone:
    own = _currency(record.currency) or currency
    return Milestone(
        id=record.id,
        project_id=record.project_id,
        name=record.name,
        status=milestone_status(record),
        due_date=_date(record.target_date),
        amount=_money(record.amount, own),
        system_ids=SystemIds(psa=record.id),
    )


def project_from_record(record: CertiniaProject, milestones: Sequence[CertiniaMilestone] = ()) -> Project:
    currency = _currency(record.currency)
    return Project(
        id=record.id,
        name=record.name,
        status=project_status(record),
        customer_id=_text(record.account_id),
        external_key=_text(record.key),
        currency=currency,
        start_date=_date(record.start_date),
        end_date=_date(record.end_date),
        manager_id=_text(record.manager_id),
        milestones=[milestone_from_record(m, currency=currency) for m in milestones],
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(psa=record.id),
    )


def staffing_demand_from_record(record: CertiniaResourceRequest) -> StaffingDemand:
    return StaffingDemand(
        id=record.id,
        project_id=record.project_id,
        role=_text(record.role) or "",
        hours=_hours(record.hours),
        start_date=_date(record.start_date),
        end_date=_date(record.end_date),
        external_key=demand_key_of(record),
        system_ids=SystemIds(psa=record.id),
    )


def _split_project(record: CertiniaTimecardSplit) -> str:
    if not record.project_id:
        raise ValueError(f"timecard split {record.id} names no project")
    return record.project_id


def _split_date(record: CertiniaTimecardSplit) -> dt.date:
    date = _date(record.start_date)
    if date is None:
        raise ValueError(f"timecard split {record.id} has no start date")
    return date


def split_approved(record: CertiniaTimecardSplit) -> bool:
    return bool(record.header is not None and record.header.approved)


def split_billable(record: CertiniaTimecardSplit) -> bool:
    header_billable = record.header is None or record.header.billable is not False
    return bool(record.billable) and header_billable


def split_role(record: CertiniaTimecardSplit) -> str | None:
    """The role a split's time is billed as: its header's assignment's ``pse__Role__c`` (Certinia bills a
    timecard as the role of the assignment it is booked against), else its resource's own
    ``pse__Resource_Role__c`` (an org may allow timecards without an assignment), else none."""
    header = record.header
    if header is not None and header.assignment is not None and (role := _text(header.assignment.role)):
        return role
    if record.resource is not None:
        return _text(record.resource.role)
    return None


def time_entry_from_record(record: CertiniaTimecardSplit) -> TimeEntry:
    return TimeEntry(
        id=record.id,
        project_id=_split_project(record),
        person_id=_text(record.resource_id),
        date=_split_date(record),
        hours=_hours(record.hours),
        billable=split_billable(record),
        approved=split_approved(record),
        role=split_role(record),
        rate=_money(record.bill_rate, _currency(record.currency)),
        notes=_text(record.header.notes) if record.header is not None else None,
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(psa=record.id),
    )


def expense_from_record(record: CertiniaExpense) -> Expense:
    amount = _money(record.amount if record.amount is not None else Decimal(0), _currency(record.currency))
    date = _date(record.date)
    if amount is None or date is None:
        raise ValueError(f"expense {record.id} has no valid currency or date")
    return Expense(
        id=record.id,
        project_id=record.project_id,
        person_id=_text(record.resource_id),
        date=date,
        category=_text(record.type),
        amount=amount,
        billable=bool(record.billable),
        approved=bool(record.approved),
        notes=_text(record.description),
        system_ids=SystemIds(psa=record.id),
    )


def billable_time(record: CertiniaTimecardSplit) -> BillableItem:
    """A split as a billable item: its hours, and Certinia's bill rate for comparison (the billing run
    prices time from the deal's rate card, by the role `split_role` names)."""
    currency = _currency(record.currency)
    return BillableItem(
        id=record.id,
        kind=BillableItemKind.TIME,
        project_id=_split_project(record),
        date=_split_date(record),
        description=f"Time {record.name or record.id}",
        quantity=_hours(record.hours),
        role=split_role(record),
        person_id=_text(record.resource_id),
        rate=_money(record.bill_rate, currency),
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(psa=record.id),
    )


def expense_billable_amount(record: CertiniaExpense) -> Decimal:
    return record.billable_amount if record.billable_amount is not None else (record.amount or Decimal(0))


def billable_expense(record: CertiniaExpense) -> BillableItem:
    date = _date(record.date)
    amount = _money(expense_billable_amount(record), _currency(record.currency))
    if amount is None or date is None:
        raise ValueError(f"expense {record.id} has no valid currency or date")
    return BillableItem(
        id=record.id,
        kind=BillableItemKind.EXPENSE,
        project_id=record.project_id,
        date=date,
        description=_text(record.description) or _text(record.type) or f"Expense {record.name or record.id}",
        person_id=_text(record.resource_id),
        amount=amount,
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(psa=record.id),
    )


def milestone_date(record: CertiniaMilestone) -> dt.date | None:
    """When a completed milestone counts as earned: its actual date, else its target date."""
    return _date(record.actual_date) or _date(record.target_date)


def billable_milestone(record: CertiniaMilestone) -> BillableItem:
    date = milestone_date(record)
    amount = _money(record.amount, _currency(record.currency))
    if date is None or amount is None:
        raise ValueError(f"milestone {record.id} has no date or amount")
    return BillableItem(
        id=record.id,
        kind=BillableItemKind.MILESTONE,
        project_id=record.project_id,
        date=date,
        description=record.name,
        amount=amount,
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(psa=record.id),
    )


def payment_ids(event: CertiniaBillingEvent) -> list[str]:
    """The ERP payment ids recorded on the event, one per line of ``Stratum_Payment_Ids__c``."""
    return [line.strip() for line in (event.payment_ids or "").splitlines() if line.strip()]


def invoice_total(event: CertiniaBillingEvent, items: Iterable[CertiniaBillingEventItem] | None) -> Decimal:
    """What the event bills: the sum of its items' ``pse__Amount__c`` (what ``pse__Summary_Amount__c``
    sums, read from the items themselves so it holds in an org whose roll-up is recalculated later), or
    the summary when the items are not at hand."""
    if items is None:
        return event.summary_amount or Decimal(0)
    return sum((item.amount or Decimal(0) for item in items), Decimal(0))


def invoice_status(
    event: CertiniaBillingEvent, items: Iterable[CertiniaBillingEventItem] | None = None
) -> PsaInvoiceStatus:
    status = _key(event.status or STATUS_DRAFT)
    if status == "cancelled":
        return PsaInvoiceStatus.CANCELLED
    if status == "issued" or event.is_released or event.invoiced:
        total = invoice_total(event, items)
        if event.paid_amount is not None and event.paid_amount > 0 and event.paid_amount >= total:
            return PsaInvoiceStatus.PAID
        return PsaInvoiceStatus.OPEN
    return PsaInvoiceStatus.DRAFT


def invoice_from_records(
    event: CertiniaBillingEvent, items: Iterable[CertiniaBillingEventItem]
) -> PsaInvoice:
    """The canonical invoice for a billing event and its items (in the order given)."""
    currency = _currency(event.currency)
    if currency is None:
        raise ValueError(f"billing event {event.id} has no valid currency")
    items = list(items)
    total = _money(invoice_total(event, items), currency)
    assert total is not None
    time_ids: list[str] = []
    expense_ids: list[str] = []
    milestone_ids: list[str] = []
    for item in items:
        if item.timecard_split_id:
            time_ids.append(item.timecard_split_id)
        elif item.expense_id:
            expense_ids.append(item.expense_id)
        elif item.milestone_id:
            milestone_ids.append(item.milestone_id)
    return PsaInvoice(
        id=event.id,
        project_id=event.project_id,
        status=invoice_status(event, items),
        currency=currency,
        total=total,
        external_key=_text(event.key),
        erp_invoice_id=_text(event.erp_invoice_id),
        erp_invoice_number=_text(event.invoice_number) if _text(event.erp_invoice_id) else None,
        invoice_date=_date(event.date),
        time_entry_ids=time_ids,
        expense_ids=expense_ids,
        milestone_ids=milestone_ids,
        updated_at=parse_salesforce_datetime(event.last_modified_date),
        system_ids=SystemIds(psa=event.id),
    )


# --- canonical -> Certinia ----------------------------------------------------------------------------


def child_key(parent_id: str, suffix: str) -> str:
    """The ``Stratum_Key__c`` of a record Stratum makes under a parent record (a project's milestone or
    staffing demand, a billing event's item): ``{parent id}:{suffix}``, unique in the org because the
    parent's id is, and stable across retries because the parent is upserted by its own key. A suffix too
    long for the field's 80 characters is replaced by its digest (``#`` and 40 hex digits)."""
    key = f"{parent_id}:{suffix}"
    if len(key) <= _KEY_MAX:
        return key
    return f"{parent_id}:#{hashlib.sha256(suffix.encode()).hexdigest()[:40]}"


_DEMAND_KEY_NOTE = "Stratum key: "


def demand_key_of(record: CertiniaResourceRequest) -> str | None:
    """The staffing demand's own business key: the part of ``Stratum_Key__c`` after its project's id, or
    (when that had to be a digest) the note written with it."""
    if not record.key or ":" not in record.key:
        return None
    suffix = record.key.split(":", 1)[1]
    if not suffix.startswith("#"):
        return suffix
    for line in (record.notes or "").splitlines():
        if line.startswith(_DEMAND_KEY_NOTE):
            return line[len(_DEMAND_KEY_NOTE) :].strip() or None
    return None


_BILLING_TYPE = {
    "time_and_materials": "Time and Materials",
    "retainer": "Time and Materials",
    "fixed_fee": "Fixed Price",
    "milestone": "Fixed Price",
}


def _description(command: ProjectCreate) -> str:
    # Certinia has no native field for these: they go into the description, so the people working in
    # Certinia see what was sold (as the Kantata adapter does).
    facts = [f"Customer: {command.customer_id}"]
    if command.billing_model is not None:
        facts.append(f"Billing model: {command.billing_model.value.replace('_', ' ')}")
    if command.legal_entity is not None:
        facts.append(f"Legal entity: {command.legal_entity}")
    if command.budget is not None:
        facts.append(f"Budget: {command.budget.amount} {command.budget.currency}")
    return "\n".join(facts)


def project_body(command: ProjectCreate, *, account_id: str | None) -> dict[str, Any]:
    """The upsert body of a new project (its key is in the URL). ``account_id``: the customer's Account in
    this org, when the customer id names one."""
    body: dict[str, Any] = {
        "Name": command.name[:80],
        "CurrencyIsoCode": command.currency,
        "pse__Is_Active__c": True,
        "pse__Is_Billable__c": True,
        "pse__Stage__c": "In Progress",
        "pse__Description__c": _description(command),
    }
    if account_id is not None:
        body["pse__Account__c"] = account_id
    if command.billing_model is not None:
        body["pse__Billing_Type__c"] = _BILLING_TYPE[command.billing_model.value]
    if command.start_date is not None:
        body["pse__Start_Date__c"] = command.start_date.isoformat()
    if command.end_date is not None:
        body["pse__End_Date__c"] = command.end_date.isoformat()
    return body


def milestone_body(
    project_id: str, name: str, due_date: dt.date | None, amount: Decimal | None, currency: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": name[:80],
        "pse__Project__c": project_id,
        "pse__Status__c": "Planned",
        "CurrencyIsoCode": currency,
    }
    if due_date is not None:
        body["pse__Target_Date__c"] = due_date.isoformat()
    if amount is not None:
        body["pse__Milestone_Amount__c"] = amount
    return body


def resource_request_body(project_id: str, command: StaffingDemandCreate, key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pse__Project__c": project_id,
        "pse__Resource_Role__c": command.role,
        "pse__SOW_Hours__c": command.hours,
        "pse__Status__c": "Ready to Staff",
    }
    if key.split(":", 1)[1].startswith("#"):
        body["pse__Notes__c"] = f"{_DEMAND_KEY_NOTE}{command.external_key}"
    if command.start_date is not None:
        body["pse__Start_Date__c"] = command.start_date.isoformat()
    if command.end_date is not None:
        body["pse__End_Date__c"] = command.end_date.isoformat()
    return body


def billing_event_body(project_id: str, currency: str, invoice_date: dt.date) -> dict[str, Any]:
    return {
        "pse__Project__c": project_id,
        "pse__Date__c": invoice_date.isoformat(),
        "CurrencyIsoCode": currency,
        "pse__Is_Released__c": False,
        "pse__Invoiced__c": False,
        "Stratum_Status__c": STATUS_DRAFT,
    }


def by_id(records: Iterable[Any]) -> Mapping[str, Any]:
    return {record.id: record for record in records}
