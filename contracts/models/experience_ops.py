"""Experience tier contract types of the operations view: workflow health, exceptions by owner with their
business age and SLA, dead letters, sync lag and vendor API budgets (``/experience/v1/ops/...``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.models.experience import SectionError, SectionStatus
from contracts.models.operations import ApiBudget
from contracts.models.process import Owner, RunLinks, Workflow
from contracts.models.process_operations import SyncFlow, WorkflowHealth

__all__ = [
    "ApiBudgetsSection",
    "BusinessClock",
    "DeadLetterSummarySection",
    "ExceptionSummarySection",
    "OpsDeadLetter",
    "OpsDeadLetterPage",
    "OpsException",
    "OpsExceptionPage",
    "OpsOverview",
    "OwnerExceptions",
    "SyncSection",
    "WorkflowCount",
    "WorkflowHealthSection",
]

AgeSeconds = Annotated[int, msgspec.Meta(ge=0, description="Wall-clock seconds since the run parked.")]
BusinessAgeSeconds = Annotated[
    int, msgspec.Meta(ge=0, description="Working seconds since the run parked (see `business_clock`).")
]


class BusinessClock(msgspec.Struct, kw_only=True, frozen=True):
    """The working time business ages are counted in (``STRATUM_OPERATIONS__...``)."""

    timezone: str
    working_days: list[str]
    start_hour: int
    end_hour: int
    sla_business_hours: Annotated[
        dict[str, float], msgspec.Meta(description="Workflow -> business hours an exception may wait.")
    ]


class OpsException(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A run parked on a business rule: who fixes it, how, how long it has waited and whether that
    breaches its workflow's SLA (``business_age_seconds`` > ``sla_business_hours`` hours)."""

    run_id: str
    workflow: Workflow
    subject: str
    owner: Owner
    step: str
    message: str
    remediation: str
    raised_at: dt.datetime
    age_seconds: AgeSeconds
    business_age_seconds: BusinessAgeSeconds
    sla_business_hours: float
    breached: bool
    links: RunLinks
    code: str | None = None


class OpsExceptionPage(msgspec.Struct, kw_only=True, frozen=True):
    as_of: dt.datetime
    business_clock: BusinessClock
    items: list[OpsException]
    next_cursor: str | None = None


class OpsDeadLetter(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A run parked because a system kept failing: replay it once the connection is fixed."""

    run_id: str
    workflow: Workflow
    subject: str
    owner: Owner
    step: str
    message: str
    remediation: str
    raised_at: dt.datetime
    age_seconds: AgeSeconds
    links: RunLinks
    code: str | None = None


class OpsDeadLetterPage(msgspec.Struct, kw_only=True, frozen=True):
    as_of: dt.datetime
    items: list[OpsDeadLetter]
    next_cursor: str | None = None


class WorkflowHealthSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    window_seconds: int | None = None
    workflows: list[WorkflowHealth] = []
    error: SectionError | None = None


class OwnerExceptions(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    owner: Owner
    count: int
    breached: Annotated[int, msgspec.Meta(description="How many are past their workflow's SLA.")]
    oldest_raised_at: dt.datetime
    oldest_age_seconds: AgeSeconds
    oldest_business_age_seconds: BusinessAgeSeconds


class ExceptionSummarySection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    total: int | None = None
    breached: int | None = None
    by_owner: list[OwnerExceptions] = []
    error: SectionError | None = None


class WorkflowCount(msgspec.Struct, kw_only=True, frozen=True):
    workflow: Workflow
    count: int


class DeadLetterSummarySection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    count: int | None = None
    oldest_raised_at: dt.datetime | None = None
    oldest_age_seconds: int | None = None
    by_workflow: list[WorkflowCount] = []
    error: SectionError | None = None


class SyncSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    flows: list[SyncFlow] = []
    error: SectionError | None = None


class ApiBudgetsSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    items: list[ApiBudget] = []
    error: SectionError | None = None


class OpsOverview(msgspec.Struct, kw_only=True, frozen=True):
    """Operations at a glance; each section degrades on its own (see the operation's description)."""

    as_of: dt.datetime
    business_clock: BusinessClock
    health: WorkflowHealthSection
    exceptions: ExceptionSummarySection
    dead_letters: DeadLetterSummarySection
    sync: SyncSection
    api_budgets: ApiBudgetsSection
