"""How the workflows are doing and how far behind each sync is, for operations.

``GET /process/v1/run-stats``: per workflow, the runs open now by state and those that ended in a window by
final state, with throughput and failure rate. Read from DBOS's workflow table (two bounded queries, no
inputs or outputs loaded), the same rows the workers resume from.

``GET /process/v1/sync-status``: per data flow and vendor, the newest point in time known to be in and how
far behind now it is. Where each figure lives:

- invoice status (ERP -> CRM, PSA): the watermark in the state store (``invoice_status.WATERMARK_KEY``: the
  start of the last sync that applied its changes), the last completed run in the run database, and for
  Business Central, which pushes notifications, when the last one arrived (``BC_NOTIFICATION_KEY``);
- CRM change events: the newest event's commit time and when it arrived (``crm_events.LAST_EVENT_KEY``);
- customer sync (CRM -> ERP): the start of its last completed run.

Each figure is read on its own: a state store (Redis) or run database outage makes the figures it holds
unknown (``status: unavailable`` with the reason in ``problems``), never the whole answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from dbos import DBOS
from litestar.di import NamedDependency
from litestar.params import QueryParameter, SkipValidation

from apis.config import Settings
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.routing import operation
from apis.state import StateStore, StateStoreUnavailable
from contracts.models.process import RunState, Workflow
from contracts.models.process_operations import (
    EndedRunCounts,
    OpenRunCounts,
    RunStats,
    SyncFlow,
    SyncProblem,
    SyncStatus,
    WorkflowHealth,
)
from process_apis.crm_events import LAST_EVENT_KEY, LastCrmEvent
from process_apis.customer_sync import CUSTOMER_SYNC_WORKFLOW
from process_apis.invoice_status import BC_NOTIFICATION_KEY, INVOICE_STATUS_SYNC_WORKFLOW, WATERMARK_KEY
from process_apis.runs import _WORKFLOW_BY_NAME, _issue, _ms, _state, run_database

__all__ = ["OPERATIONS_ROUTES", "SyncSources", "run_stats", "sync_status"]

log = get_logger("stratum.process.operations")

_T = TypeVar("_T")
FlowMode = Literal["poll", "push", "push_and_poll", "on_demand"]
FlowState = Literal["ok", "never", "unavailable"]

# Rows read per query: a month of runs of a busy firm fits many times over; past it the counts are of the
# newest rows (logged), never a request that scans without end.
MAX_ROWS = 100_000
DEFAULT_WINDOW_SECONDS = 24 * 3600
MAX_WINDOW_SECONDS = 30 * 24 * 3600
# A state store read gives up after this (Redis answers in well under a millisecond).
STATE_STORE_TIMEOUT_SECONDS = 2.0

_OPEN_STATUSES = ["ENQUEUED", "DELAYED", "PENDING", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]
_ENDED_STATUSES = ["SUCCESS", "ERROR", "CANCELLED"]
_OPEN_STATES = ("queued", "running", "retrying", "exception", "dead_letter", "compensating")
_ENDED_STATES = ("completed", "cancelled", "failed")


# --- workflow health --------------------------------------------------------------------------------------


def _ended_state(status: Any) -> RunState:
    state = _state(status)
    if state.value in _ENDED_STATES:
        return state
    # A closed run whose attributes still say otherwise (its last write raced its end): DBOS decides.
    return {"ERROR": RunState.FAILED, "CANCELLED": RunState.CANCELLED}.get(status.status, RunState.COMPLETED)


async def run_stats(window_seconds: int, *, now: dt.datetime | None = None) -> RunStats:
    """Counts per workflow (see ``WorkflowHealth``) for runs open now and runs ended in the window."""
    now = now or dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(seconds=window_seconds)
    names = list(_WORKFLOW_BY_NAME)
    open_rows, ended_rows = await asyncio.gather(
        run_database(
            DBOS.list_workflows_async(
                name=names, status=_OPEN_STATUSES, load_input=False, load_output=False, limit=MAX_ROWS
            )
        ),
        run_database(
            DBOS.list_workflows_async(
                name=names,
                status=_ENDED_STATUSES,
                completed_after=since.isoformat(),
                load_input=False,
                load_output=False,
                sort_desc=True,
                limit=MAX_ROWS,
            )
        ),
    )
    if len(open_rows) >= MAX_ROWS or len(ended_rows) >= MAX_ROWS:
        log.warning("run_stats_truncated", open=len(open_rows), ended=len(ended_rows), limit=MAX_ROWS)
    open_counts: dict[Workflow, dict[str, int]] = {w: dict.fromkeys(_OPEN_STATES, 0) for w in Workflow}
    ended_counts: dict[Workflow, dict[str, int]] = {w: dict.fromkeys(_ENDED_STATES, 0) for w in Workflow}
    dead_lettered: dict[Workflow, int] = dict.fromkeys(Workflow, 0)
    for status in open_rows:
        workflow = _WORKFLOW_BY_NAME[status.name]
        state = _state(status)
        if state.value not in _OPEN_STATES:
            state = RunState.RUNNING  # closed in its attributes, not yet in DBOS: still running
        open_counts[workflow][state.value] += 1
        if state == RunState.DEAD_LETTER:
            issue = _issue(status.attributes or {})
            parked_at = issue.raised_at if issue is not None else _ms(status.updated_at)
            if parked_at is not None and parked_at >= since:
                dead_lettered[workflow] += 1
    for status in ended_rows:
        ended_counts[_WORKFLOW_BY_NAME[status.name]][_ended_state(status).value] += 1
    hours = window_seconds / 3600
    workflows: list[WorkflowHealth] = []
    for workflow in Workflow:
        ended = EndedRunCounts(**ended_counts[workflow])
        outcomes = ended.completed + ended.cancelled + ended.failed + dead_lettered[workflow]
        failures = ended.failed + dead_lettered[workflow]
        workflows.append(
            WorkflowHealth(
                workflow=workflow,
                open=OpenRunCounts(**open_counts[workflow]),
                ended=ended,
                dead_lettered=dead_lettered[workflow],
                throughput=ended.completed,
                throughput_per_hour=round(ended.completed / hours, 2),
                failure_rate=round(failures / outcomes, 4) if outcomes else None,
            )
        )
    return RunStats(as_of=now, window_seconds=window_seconds, workflows=workflows)


# --- sync status ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncSources:
    """Where the sync figures are read: the gateway state store, and which ERPs and how they deliver."""

    store: StateStore
    settings: Settings

    @property
    def erp_vendors(self) -> list[str]:
        return sorted({self.settings.erp_vendor, *self.settings.erp_by_legal_entity.values()})


class _Unknown(Exception):
    def __init__(self, problem: SyncProblem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


async def _from_store(read: Awaitable[_T]) -> _T:
    try:
        return await asyncio.wait_for(read, STATE_STORE_TIMEOUT_SECONDS)
    except (TimeoutError, StateStoreUnavailable) as exc:
        log.warning("sync_status_state_store_unavailable", error=repr(exc))
        raise _Unknown(
            SyncProblem(
                source="state-store",
                code="state-store-unavailable",
                detail="The gateway state store (Redis) did not answer; the figures it holds are unknown.",
            )
        ) from exc


async def _from_runs(read: Awaitable[_T]) -> _T:
    try:
        return await run_database(read)
    except ProblemError as exc:
        raise _Unknown(
            SyncProblem(source="run-database", code=exc.kind.code, detail=exc.problem_detail)
        ) from exc


async def _settle(read: Callable[[], Awaitable[_T]]) -> _T | SyncProblem:
    try:
        return await read()
    except _Unknown as exc:
        return exc.problem


async def _last_completed(workflow_name: str) -> tuple[str, dt.datetime, dt.datetime | None] | None:
    """(run id, start, end) of the newest run of ``workflow_name`` that completed (not cancelled)."""
    rows = await _from_runs(
        DBOS.list_workflows_async(
            name=workflow_name,
            status="SUCCESS",
            sort_desc=True,
            limit=20,
            load_input=False,
            load_output=False,
        )
    )
    for status in rows:
        if _ended_state(status) == RunState.COMPLETED:
            started = _ms(status.created_at) or dt.datetime.now(dt.UTC)
            return status.workflow_id, started, _ms(status.completed_at)
    return None


def _instant(raw: bytes | None) -> dt.datetime | None:
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.decode())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _lag(now: dt.datetime, last: dt.datetime | None) -> int | None:
    return max(0, int((now - last).total_seconds())) if last is not None else None


async def sync_status(sources: SyncSources, *, now: dt.datetime | None = None) -> SyncStatus:
    now = now or dt.datetime.now(dt.UTC)
    store = sources.store
    watermark, bc_push, crm_last, invoice_run, customer_run = await asyncio.gather(
        _settle(lambda: _from_store(store.get(WATERMARK_KEY))),
        _settle(lambda: _from_store(store.get(BC_NOTIFICATION_KEY))),
        _settle(lambda: _from_store(store.get(LAST_EVENT_KEY))),
        _settle(lambda: _last_completed(INVOICE_STATUS_SYNC_WORKFLOW)),
        _settle(lambda: _last_completed(CUSTOMER_SYNC_WORKFLOW)),
    )
    invoice_status = sources.settings.invoice_status
    flows: list[SyncFlow] = []
    for vendor in sources.erp_vendors:
        problems = [p for p in (watermark, invoice_run) if isinstance(p, SyncProblem)]
        pushes = vendor == "business_central" and invoice_status.business_central_subscriptions
        notified: dt.datetime | None = None
        if vendor == "business_central":
            # Shown whenever one arrived, even with Stratum's own subscriptions off (one made by hand).
            if isinstance(bc_push, SyncProblem):
                problems.append(bc_push)
            else:
                notified = _instant(bc_push)
        mode = _mode(pushes=pushes, polled=invoice_status.schedule_enabled)
        run = invoice_run if isinstance(invoice_run, tuple) else None
        last = None if isinstance(watermark, SyncProblem) else _instant(watermark)
        status: FlowState
        if isinstance(watermark, SyncProblem):
            status, reason = "unavailable", "The watermark is in the state store, which did not answer."
        elif last is None:
            status = "never"
            reason = (
                "No invoice status sync has completed."
                if run is None and not isinstance(invoice_run, SyncProblem)
                else "No watermark in the state store (it was flushed, or no sync has applied changes yet)."
            )
        else:
            status, reason = "ok", None
        flows.append(
            SyncFlow(
                flow="invoice_status_sync",
                vendor=vendor,
                direction="erp -> crm, psa",
                mode=mode,
                status=status,
                last_data_at=last,
                lag_seconds=_lag(now, last),
                reason=reason,
                last_run_id=run[0] if run else None,
                last_run_completed_at=run[2] if run else None,
                last_notification_at=notified,
                problems=problems,
            )
        )
    flows.append(_crm_flow(now, crm_last))
    flows.append(_customer_flow(now, customer_run))
    return SyncStatus(as_of=now, flows=flows)


def _mode(*, pushes: bool, polled: bool) -> FlowMode:
    if pushes:
        return "push_and_poll" if polled else "push"
    return "poll" if polled else "on_demand"


def _crm_flow(now: dt.datetime, crm_last: bytes | SyncProblem | None) -> SyncFlow:
    def flow(status: FlowState, **figures: Any) -> SyncFlow:
        return SyncFlow(
            flow="crm_change_events",
            vendor="salesforce",
            direction="crm -> process",
            mode="push",
            status=status,
            **figures,
        )

    if isinstance(crm_last, SyncProblem):
        return flow(
            "unavailable",
            reason="The last event's time is in the state store, which did not answer.",
            problems=[crm_last],
        )
    event = None
    if crm_last:
        try:
            event = msgspec.json.decode(crm_last, type=LastCrmEvent)
        except (msgspec.ValidationError, msgspec.DecodeError):
            event = None
    if event is None:
        return flow("never", reason="No CRM change event has arrived (or it was not kept).")
    committed = dt.datetime.fromtimestamp(event.commit_timestamp / 1000, dt.UTC)
    return flow(
        "ok",
        last_data_at=committed,
        lag_seconds=_lag(now, committed),
        last_notification_at=event.received_at,
    )


def _customer_flow(
    now: dt.datetime, run: tuple[str, dt.datetime, dt.datetime | None] | SyncProblem | None
) -> SyncFlow:
    def flow(status: FlowState, **figures: Any) -> SyncFlow:
        return SyncFlow(
            flow="customer_sync",
            vendor="salesforce",
            direction="crm -> erp",
            mode="on_demand",
            status=status,
            **figures,
        )

    if isinstance(run, SyncProblem):
        return flow("unavailable", reason="The run database did not answer.", problems=[run])
    if run is None:
        return flow("never", reason="No customer sync has completed.")
    run_id, started, completed = run
    return flow(
        "ok",
        last_data_at=started,
        lag_seconds=_lag(now, started),
        last_run_id=run_id,
        last_run_completed_at=completed,
    )


# --- routes -----------------------------------------------------------------------------------------------

WindowSeconds = Annotated[
    int,
    QueryParameter(
        ge=60,
        le=MAX_WINDOW_SECONDS,
        description="How far back, in seconds, ended runs count (60 s to 30 days; default 24 h).",
    ),
]


@operation(
    "GET",
    "/process/v1/run-stats",
    operation_id="getRunStats",
    summary="Workflow health: runs by workflow and state, throughput and failure rate",
    description=(
        "Per workflow: `open`, the runs not finished now by state (queued, running, retrying, exception, "
        "dead_letter, compensating), whenever they started; `ended`, the runs that ended within the last "
        "`window` seconds by final state (completed, cancelled, failed); `dead_lettered`, runs that went "
        "to the dead-letter list within the window and are still there; `throughput`, runs completed in "
        "the window, and `throughput_per_hour`. `failure_rate` = (failed + dead_lettered) / (completed + "
        "cancelled + failed + dead_lettered), null when none. `billing_run` counts a billing run and the "
        "per-project runs it starts. 503 `run-database-unavailable` when the run database does not answer."
    ),
    scopes=["process:read"],
    errors=[503],
    tags=["operations"],
)
async def get_run_stats(window: WindowSeconds = DEFAULT_WINDOW_SECONDS) -> RunStats:
    return await run_stats(window)


@operation(
    "GET",
    "/process/v1/sync-status",
    operation_id="getSyncStatus",
    summary="Sync lag per vendor and flow: when data last arrived and how far behind it is",
    description=(
        "One entry per data flow and vendor: the invoice status sync per ERP in use (its watermark: the "
        "start of the last sync that applied its changes; its last completed run; for Business Central, "
        "which pushes notifications, when the last one arrived; NetSuite is polled), CRM change events "
        "(the newest event's commit time and when it arrived) and the customer sync (the start of its last "
        "completed run). `lag_seconds` = `as_of` - `last_data_at`, the newest point known to be in; it "
        "measures quiet as well as backlog (no change, no newer point). Null with a `reason` when the flow "
        "never ran. A state store (Redis) or run database outage makes only the figures it holds unknown: "
        "that flow comes back `status: unavailable` with `problems` naming the store, never a 500 or a 503 "
        "of the whole answer."
    ),
    scopes=["process:read"],
    tags=["operations"],
)
async def get_sync_status(sync_sources: NamedDependency[SkipValidation[SyncSources]]) -> SyncStatus:
    return await sync_status(sync_sources)


OPERATIONS_ROUTES = [get_run_stats, get_sync_status]
