"""Process tier contract types: activation readiness, workflow runs and their operations."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Literal

import msgspec

from contracts.models.common import CustomerId, Money, OpportunityId, RecordId

__all__ = [
    "ACCOUNT_READINESS_MAX_DEALS",
    "AccountReadiness",
    "AccountReadinessCheck",
    "BillingProgress",
    "BillingRun",
    "BillingRunRequest",
    "BillingRunWait",
    "CustomerSyncRequest",
    "Owner",
    "ProjectActivationRequest",
    "ReadinessCheck",
    "ReadinessReport",
    "RuleResult",
    "Run",
    "RunIssue",
    "RunLinks",
    "RunPage",
    "RunState",
    "RunStep",
    "WaitReason",
    "Workflow",
]


class Owner(enum.StrEnum):
    """Who fixes a failed rule or a parked run."""

    OPPORTUNITY_OWNER = "opportunity_owner"
    SALES_OPERATIONS = "sales_operations"
    FINANCE = "finance"
    PROJECT_OPERATIONS = "project_operations"
    INTEGRATION_OPERATIONS = "integration_operations"  # dead letters: a system kept failing


class RuleResult(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    rule: str
    passed: bool
    message: str
    owner: Owner | None = None
    remediation: str | None = None
    field: str | None = None


class ReadinessReport(msgspec.Struct, kw_only=True, frozen=True):
    opportunity_id: str
    customer_id: str | None
    ready: bool
    checks: list[RuleResult]
    failed: list[RuleResult]


class ReadinessCheck(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/activation-readiness``."""

    opportunity_id: OpportunityId


# How many of an account's deals one by-account readiness check reads (one CRM page): beyond it the answer
# says ``truncated`` and the rest are not checked.
ACCOUNT_READINESS_MAX_DEALS = 200


class AccountReadinessCheck(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/activation-readiness/by-account``."""

    account_id: CustomerId


class AccountReadiness(msgspec.Struct, kw_only=True, frozen=True):
    """The activation readiness of every won deal of an account not yet activated (no project), by
    opportunity id; the same report ``POST /process/v1/activation-readiness`` gives for each."""

    account_id: str
    reports: Annotated[
        dict[str, ReadinessReport],
        msgspec.Meta(description="By opportunity id: each won deal of the account with no project yet."),
    ]
    deals_read: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="How many of the account's deals were read (won or not), at most 200."
        ),
    ]
    truncated: Annotated[
        bool,
        msgspec.Meta(
            description="The account has more than 200 deals: only the first 200 in the CRM's order were "
            "read, so a won deal beyond them has no report here."
        ),
    ] = False


class ProjectActivationRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/project-activations``: the won deal to turn into a project."""

    opportunity_id: OpportunityId


class CustomerSyncRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/customer-syncs``: the CRM accounts to make (or update) ERP customers."""

    account_ids: Annotated[list[RecordId], msgspec.Meta(min_length=1, max_length=100)]


class BillingRunRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/billing-runs``: bill a legal entity's projects for one month.

    ``project_ids`` absent (or empty): every active PSA project of the legal entity whose deal has a billing
    model."""

    legal_entity: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$", examples=["US01"])]
    period: Annotated[str, msgspec.Meta(pattern=r"^2[0-9]{3}-(0[1-9]|1[0-2])$", examples=["2026-11"])]
    project_ids: Annotated[list[RecordId], msgspec.Meta(max_length=500)] = []


class Workflow(enum.StrEnum):
    PROJECT_ACTIVATION = "project_activation"
    CUSTOMER_SYNC = "customer_sync"
    INVOICE_STATUS_SYNC = "invoice_status_sync"
    BILLING_RUN = "billing_run"


class RunState(enum.StrEnum):
    """Where a run stands.

    ``exception`` and ``dead_letter`` are parked: the run waits for a person to fix the data and replay it,
    or to cancel it. ``exception`` is a business rule (see ``issue.owner``); ``dead_letter`` a system that
    kept failing. ``completed``, ``cancelled`` and ``failed`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    EXCEPTION = "exception"
    DEAD_LETTER = "dead_letter"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class RunStep(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One attempt of one step, from the run's checkpoints."""

    name: str
    attempt: int
    outcome: str  # "completed", "failed" (kept failing or a business rule), "retried", "compensated"
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    error: str | None = None


class RunIssue(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Why a run is parked, who fixes it and how."""

    kind: str  # "exception" (a business rule) or "dead_letter" (a system kept failing)
    owner: Owner
    step: str
    message: str
    remediation: str
    raised_at: dt.datetime
    code: str | None = None
    data: dict[str, Any] = {}


class RunLinks(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    self: str
    replay: str | None = None
    cancel: str | None = None


class Run(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A workflow run: its state, what it is about, the timeline of its steps and, if parked, why."""

    id: str
    workflow: Workflow
    state: RunState
    subject: str
    created_at: dt.datetime
    updated_at: dt.datetime
    links: RunLinks
    trigger: str | None = None  # "api", or "crm-event:{event id}"
    started_by: str | None = None  # the client that asked for the run
    completed_at: dt.datetime | None = None
    issue: RunIssue | None = None
    result: dict[str, Any] | None = None
    steps: list[RunStep] = []


class RunPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[Run]
    next_cursor: str | None = None


class BillingProgress(msgspec.Struct, kw_only=True, frozen=True):
    """Where a billing run's project runs stand, each project-period counted once by its run's state."""

    projects: int = 0
    completed: int = 0
    # Queued, running, retrying, or compensating (a cancel or a void under way).
    running: int = 0
    # In ``exception`` or ``dead_letter``: waiting for a person (see ``waiting_on``).
    parked: int = 0
    # A draft ERP invoice waiting for finance's approval (``POST .../approve``).
    awaiting_approval: int = 0
    # Cancelled, or completed and then voided by a cancel.
    cancelled: int = 0
    failed: int = 0
    # What the completed (and not voided) project runs invoiced, one total per currency.
    invoiced: list[Money] = []


# Why a billing run waits on a project run: parked (``exception``: a business rule for the owner named;
# ``dead_letter``: a system kept failing), or a draft invoice awaiting finance's approval.
WaitReason = Literal["exception", "dead_letter", "awaiting_approval"]


class BillingRunWait(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A project run a billing run waits on, and why: parked for its owner (replay or cancel that run),
    or awaiting approval (``POST .../approve``)."""

    run_id: str
    reason: WaitReason
    project_id: str | None = None
    owner: Owner | None = None
    code: str | None = None
    step: str | None = None
    message: str | None = None


class BillingRun(msgspec.Struct, kw_only=True, frozen=True):
    """A billing run and its per-project runs (one per project and period, ``bill-{project}-{period}``,
    shared by every billing run covering that project and period: a project-period is billed once; after
    a cancel, the next revision ``bill-{project}-{period}-r{n}`` bills it again).

    ``progress`` and ``waiting_on`` are read from the project runs each time (they are the truth: a parked
    project run is listed in the exception queue once, as itself); the billing run stays ``running`` while
    any of them is not final."""

    run: Run
    projects: list[Run] = []
    progress: BillingProgress = msgspec.field(default_factory=BillingProgress)
    waiting_on: list[BillingRunWait] = []
