"""Operations contract types of the process tier: how the workflows are doing (runs by state, throughput,
failure rate; ``GET /process/v1/run-stats``) and how far behind each sync is (``GET
/process/v1/sync-status``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.models.process import Workflow

__all__ = [
    "EndedRunCounts",
    "OpenRunCounts",
    "RunStats",
    "SyncFlow",
    "SyncProblem",
    "SyncStatus",
    "WorkflowHealth",
]


class OpenRunCounts(msgspec.Struct, kw_only=True, frozen=True):
    """Runs not finished now, by state (whenever they started)."""

    queued: int = 0
    running: int = 0
    retrying: int = 0
    exception: int = 0
    dead_letter: int = 0
    compensating: int = 0


class EndedRunCounts(msgspec.Struct, kw_only=True, frozen=True):
    """Runs that ended within the window, by final state."""

    completed: int = 0
    cancelled: int = 0
    failed: int = 0


class WorkflowHealth(msgspec.Struct, kw_only=True, frozen=True):
    """One workflow's runs: what is open now, what ended in the window, and how well it went."""

    workflow: Workflow
    open: OpenRunCounts
    ended: EndedRunCounts
    dead_lettered: Annotated[
        int,
        msgspec.Meta(description="Runs dead-lettered within the window that are still dead letters now."),
    ] = 0
    throughput: Annotated[int, msgspec.Meta(description="Runs completed within the window.")] = 0
    throughput_per_hour: Annotated[
        float, msgspec.Meta(description="`throughput` divided by the window's hours (2 decimals).")
    ] = 0.0
    failure_rate: Annotated[
        float | None,
        msgspec.Meta(
            description="(failed + dead_lettered) / (ended.completed + ended.cancelled + ended.failed + "
            "dead_lettered), 4 decimals; null when no run ended or dead-lettered in the window."
        ),
    ] = None


class RunStats(msgspec.Struct, kw_only=True, frozen=True):
    as_of: dt.datetime
    window_seconds: int
    workflows: list[WorkflowHealth]


class SyncProblem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Why a figure of a sync flow is unknown: ``source`` is the store that did not answer
    (``state-store``, ``run-database``), ``code`` its problem code."""

    source: str
    code: str
    detail: str | None = None


class SyncFlow(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One vendor's part in one data flow, and how far behind it is.

    ``last_data_at`` is the newest point in time known to be in (an invoice status sync's watermark, the
    newest CRM change event's commit time, a customer sync's start); ``lag_seconds`` is ``as_of`` minus it.
    Both are null with a ``reason`` when the flow never ran or a store did not answer (``problems``)."""

    flow: Annotated[
        Literal["invoice_status_sync", "crm_change_events", "customer_sync"],
        msgspec.Meta(description="The data flow."),
    ]
    vendor: str
    direction: Annotated[str, msgspec.Meta(description="Where the data goes, e.g. `erp -> crm, psa`.")]
    mode: Annotated[
        Literal["poll", "push", "push_and_poll", "on_demand"],
        msgspec.Meta(
            description="How the data arrives: polled on a schedule, pushed by the vendor, both, or only "
            "when someone starts it."
        ),
    ]
    status: Literal["ok", "never", "unavailable"]
    last_data_at: dt.datetime | None = None
    lag_seconds: int | None = None
    reason: str | None = None
    last_run_id: str | None = None
    last_run_completed_at: dt.datetime | None = None
    last_notification_at: Annotated[
        dt.datetime | None,
        msgspec.Meta(description="When the vendor's last push (webhook or change event) reached Stratum."),
    ] = None
    problems: list[SyncProblem] = []


class SyncStatus(msgspec.Struct, kw_only=True, frozen=True):
    as_of: dt.datetime
    flows: list[SyncFlow]
