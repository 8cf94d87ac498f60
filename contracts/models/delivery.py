"""Canonical delivery objects (the PSA's world): projects, milestones, staffing demand, time and expenses.

Each carries the ids it has in every system it lives in (``system_ids``); the same project exists in the
PSA (delivery) and the ERP (billing), and ``external_key`` is the business key both were created under.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import msgspec

from contracts.models.common import (
    CurrencyCode,
    ExternalKey,
    Hours,
    Money,
    NonEmptyText,
    ProjectMoney,
    RecordId,
    SkippedRecord,
    SystemIds,
    require_decimal,
)
from contracts.models.crm import BillingModel

__all__ = [
    "Expense",
    "ExpensePage",
    "Milestone",
    "MilestoneInput",
    "MilestoneStatus",
    "Project",
    "ProjectCreate",
    "ProjectPage",
    "ProjectStatus",
    "StaffingDemand",
    "StaffingDemandCreate",
    "TimeEntry",
    "TimeEntryPage",
    "deal_project_key",
]


class ProjectStatus(enum.StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    CLOSED = "closed"  # closed before completion (e.g. an activation that was cancelled)


class MilestoneStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Milestone(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    name: str
    status: MilestoneStatus
    due_date: dt.date | None = None
    amount: Money | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class Project(msgspec.Struct, kw_only=True, frozen=True):
    """A project as delivered (PSA) or billed (ERP); which one answers is in ``system_ids``."""

    id: str
    name: str
    status: ProjectStatus
    customer_id: str | None = None
    external_key: str | None = None
    currency: str | None = None
    budget: Money | None = None
    billing_model: BillingModel | None = None
    legal_entity: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    manager_id: str | None = None
    milestones: list[Milestone] = []
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class ProjectPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Project]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class MilestoneInput(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: NonEmptyText
    due_date: dt.date | None = None
    amount: ProjectMoney | None = None


def deal_project_key(opportunity_id: str) -> str:
    """The business key (``ProjectCreate.external_key``) of the projects delivering and billing a won deal:
    the opportunity id itself, as activation uses it. Whoever creates a deal's project by hand through the
    system tier must use the same key, or the deal gets a second project when it is activated."""
    return opportunity_id


class ProjectCreate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Create a project (with its milestones). ``external_key`` makes it idempotent in the vendor:
    creating twice with one key returns the first project. A won deal's project takes the opportunity id
    (``deal_project_key``), the key activation uses, so the two never make two projects for one deal."""

    external_key: ExternalKey
    name: NonEmptyText
    customer_id: RecordId  # the customer's id in the system the project is created in
    currency: CurrencyCode
    budget: ProjectMoney | None = None
    billing_model: BillingModel | None = None
    legal_entity: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    manager_id: RecordId | None = None
    milestones: list[MilestoneInput] = []


class StaffingDemand(msgspec.Struct, kw_only=True, frozen=True):
    """People a project needs: a role, hours and dates; ``assignee_id`` once someone is staffed."""

    id: str
    project_id: str
    role: str
    hours: Hours
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    assignee_id: str | None = None
    external_key: str | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class StaffingDemandCreate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    external_key: ExternalKey
    role: NonEmptyText
    hours: Hours
    start_date: dt.date | None = None
    end_date: dt.date | None = None

    def __post_init__(self) -> None:
        require_decimal("hours", self.hours, minimum=Decimal(0))


class TimeEntry(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    person_id: str | None
    date: dt.date
    hours: Decimal
    billable: bool
    approved: bool
    role: str | None = None
    rate: Money | None = None
    notes: str | None = None
    updated_at: dt.datetime | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class TimeEntryPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[TimeEntry]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []


class Expense(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    person_id: str | None
    date: dt.date
    category: str | None
    amount: Money
    billable: bool
    approved: bool
    notes: str | None = None
    system_ids: SystemIds = msgspec.field(default_factory=SystemIds)


class ExpensePage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Expense]
    next_cursor: str | None = None
    # Vendor records of this page left out because they cannot be mapped (see SkippedRecord).
    skipped: list[SkippedRecord] = []
