"""Workflow runs over HTTP: start an activation or a customer sync, follow a run, and operate the parked ones.

A run *is* its DBOS workflow: the state, subject and parked issue live in the workflow's attributes, the
timeline is its checkpointed steps. Nothing is copied into a second store, so what operations see is what
the workers will resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import re
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
import sqlalchemy as sa
from dbos import DBOS, SetWorkflowAttributes, SetWorkflowID
from dbos import error as dbos_error
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter, SkipValidation

from apis.context import current_access, current_correlation_id
from apis.logging import get_logger
from apis.problems import FieldError, ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models.process import (
    CustomerSyncRequest,
    Owner,
    ProjectActivationRequest,
    Run,
    RunIssue,
    RunLinks,
    RunPage,
    RunState,
    RunStep,
    Workflow,
)
from process_apis.activation import ACTIVATION_WORKFLOW, project_activation
from process_apis.billing import BILLING_WORKFLOWS
from process_apis.customer_sync import CUSTOMER_SYNC_WORKFLOW, customer_sync
from process_apis.engine import QUEUE_NAME
from process_apis.invoice_status import INVOICE_STATUS_SYNC_WORKFLOW
from process_apis.metrics import OPEN_RUNS
from process_apis.saga import (
    CONTROL_CHECK,
    CONTROL_IN_STEP,
    CONTROL_TOPIC,
    FPA_PUBLISHING,
    run_signals,
    services,
)
from system_apis.client import SystemApiClient
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import fingerprint, unwrap_cursor, wrap_cursor
from system_apis.params import Cursor, cursor_errors

__all__ = [
    "RUN_ROUTES",
    "RunService",
    "load_run",
    "refresh_open_runs_gauge",
    "run_database",
    "start_activation",
]

log = get_logger("stratum.process.runs")

_WORKFLOW_BY_NAME = {
    ACTIVATION_WORKFLOW: Workflow.PROJECT_ACTIVATION,
    CUSTOMER_SYNC_WORKFLOW: Workflow.CUSTOMER_SYNC,
    **BILLING_WORKFLOWS,
    INVOICE_STATUS_SYNC_WORKFLOW: Workflow.INVOICE_STATUS_SYNC,
}
# Where a workflow's runs are read, beyond the two above (one line per workflow).
_RUN_BASES = {
    Workflow.INVOICE_STATUS_SYNC: "/process/v1/invoice-status-syncs",
    Workflow.BILLING_RUN: "/process/v1/billing-runs",
}
_ACTIVE = {RunState.QUEUED, RunState.RUNNING, RunState.RETRYING, RunState.COMPENSATING}
_PARKED = {RunState.EXCEPTION, RunState.DEAD_LETTER}
_FINAL = {RunState.COMPLETED, RunState.CANCELLED, RunState.FAILED}
_RUN_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_MAX_WAIT_SECONDS = 60
_INTERNAL_STEPS = re.compile(r"^(DBOS\.|clock$)")
# Which DBOS statuses a run state can have, so a filtered listing asks the database for few rows.
_STATUSES_FOR = {
    RunState.QUEUED: ["ENQUEUED", "DELAYED"],
    RunState.RUNNING: ["PENDING"],
    RunState.RETRYING: ["PENDING"],
    RunState.EXCEPTION: ["PENDING"],
    RunState.DEAD_LETTER: ["PENDING", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"],
    RunState.COMPENSATING: ["PENDING"],
    RunState.COMPLETED: ["SUCCESS"],
    RunState.CANCELLED: ["SUCCESS", "CANCELLED"],
    RunState.FAILED: ["ERROR"],
}

_ONE_STATE = "|".join(state.value for state in RunState)
_STATE_LIST = rf"^({_ONE_STATE})(,({_ONE_STATE}))*$"

RunIdPath = PathParameter(pattern=_RUN_ID, description="The run's id.")


# --- the run database, bounded ---------------------------------------------------------------------------

# A request never waits longer than this on the run database: DBOS itself retries a lost connection until
# it comes back (right for a workflow, which must not lose a step), but a caller is better served by a 503
# it can retry than by a request hanging for the length of the outage.
RUN_DATABASE_TIMEOUT_SECONDS = 3.0
RUN_DATABASE_RETRY_AFTER_SECONDS = 5
# Connection refused or lost, a pool with no free connection, SQLite locked past DBOS's own retries.
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, sqlite3.OperationalError)

_T = TypeVar("_T")


async def run_database(call: Awaitable[_T]) -> _T:
    """``call`` (a DBOS call made for a request), or a 503 ``run-database-unavailable`` problem with
    Retry-After when the run database fails or does not answer in time. A write that timed out may still
    land when the database returns: every write here is keyed by its run id, so the retry finds it."""
    try:
        return await asyncio.wait_for(call, RUN_DATABASE_TIMEOUT_SECONDS)
    except (TimeoutError, *_UNAVAILABLE) as exc:
        log.warning("run_database_unavailable", error=repr(exc))
        raise ProblemError(
            "run-database-unavailable",
            "The run database did not answer in time.",
            headers={"Retry-After": str(RUN_DATABASE_RETRY_AFTER_SECONDS)},
            extra={"retry_after": RUN_DATABASE_RETRY_AFTER_SECONDS},
        ) from exc


# --- the read model ---------------------------------------------------------------------------------------


def _ms(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC) if value else None


def _state(status: Any) -> RunState:
    attributes = status.attributes or {}
    if status.status in ("ENQUEUED", "DELAYED"):
        return RunState.QUEUED
    if status.status == "ERROR":
        return RunState.FAILED
    if status.status == "CANCELLED":
        return RunState.CANCELLED
    if status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
        return RunState.DEAD_LETTER
    try:
        state = RunState(attributes.get("state", "running"))
    except ValueError:
        return RunState.RUNNING
    if state in _FINAL and status.status == "PENDING":
        # The workflow recorded its outcome but DBOS has not closed it yet: not finished until it has.
        return RunState.COMPENSATING if state == RunState.CANCELLED else RunState.RUNNING
    return state


def _links(run_id: str, workflow: Workflow, state: RunState) -> RunLinks:
    base = (
        "/process/v1/project-activations"
        if workflow == Workflow.PROJECT_ACTIVATION
        else "/process/v1/billing-runs"
        if workflow == Workflow.BILLING_RUN
        else "/process/v1/customer-syncs"
    )
    base = _RUN_BASES.get(workflow, base)
    return RunLinks(
        self=f"{base}/{run_id}",
        replay=f"/process/v1/runs/{run_id}/replay" if state in _PARKED else None,
        cancel=f"/process/v1/runs/{run_id}/cancel" if state not in _FINAL else None,
    )


def _timeline(steps: list[Any]) -> list[RunStep]:
    attempts: dict[str, int] = {}
    timeline: list[RunStep] = []
    for step in steps:
        name = step["function_name"]
        output = step.get("output")
        if _INTERNAL_STEPS.match(name) or (isinstance(output, dict) and "control" in output):
            # DBOS's own operations, and a step's check that found a control message (it did not run).
            continue
        attempts[name] = attempts.get(name, 0) + 1
        error: str | None = None
        outcome = "completed"
        if isinstance(output, dict) and "failure" in output:
            failure = output["failure"]
            outcome = "retried" if failure.get("kind") == "transient" else "failed"
            error = f"{failure.get('code')}: {failure.get('message')}"
        elif step.get("error") is not None:
            outcome, error = "failed", str(step["error"])
        elif step.get("completed_at_epoch_ms") is None:
            outcome = "running"
        if name.startswith("compensate.") and outcome == "completed":
            outcome = "compensated"
        if name == "publish.run_parked" and timeline and timeline[-1].outcome == "retried":
            # The last attempt before the run parked was not retried: it is where the run stopped.
            timeline[-1] = msgspec.structs.replace(timeline[-1], outcome="failed")
        timeline.append(
            RunStep(
                name=name,
                attempt=attempts[name],
                outcome=outcome,
                started_at=_ms(step.get("started_at_epoch_ms")),
                completed_at=_ms(step.get("completed_at_epoch_ms")),
                error=error,
            )
        )
    return timeline


def _issue(attributes: dict[str, Any]) -> RunIssue | None:
    raw = attributes.get("issue")
    if not raw:
        return None
    try:
        return msgspec.convert(raw, RunIssue, strict=False)
    except msgspec.ValidationError:
        return None


def to_run(status: Any, steps: list[Any] | None) -> Run:
    attributes = status.attributes or {}
    workflow = _WORKFLOW_BY_NAME[status.name]
    state = _state(status)
    result = attributes.get("result")
    created = _ms(status.created_at) or dt.datetime.now(dt.UTC)
    issue = _issue(attributes) if state in _PARKED else None
    timeline = _timeline(steps) if steps is not None else []
    if issue is not None:
        # The attempt the run parked on (its park may not be checkpointed yet) is where it stopped.
        for index in range(len(timeline) - 1, -1, -1):
            if timeline[index].name == issue.step:
                if timeline[index].outcome == "retried":
                    timeline[index] = msgspec.structs.replace(timeline[index], outcome="failed")
                break
    return Run(
        id=status.workflow_id,
        workflow=workflow,
        state=state,
        subject=str(attributes.get("subject", "")),
        trigger=attributes.get("trigger"),
        started_by=attributes.get("started_by"),
        created_at=created,
        updated_at=_ms(status.updated_at) or created,
        completed_at=_ms(status.completed_at) if state in _FINAL else None,
        issue=issue,
        result=result if isinstance(result, dict) else None,
        steps=timeline,
        links=_links(status.workflow_id, workflow, state),
    )


async def load_run(run_id: str, *, with_steps: bool = True) -> Run | None:
    status = await _read_status(run_id)
    if status is None:
        return None
    return to_run(status, await _read_steps(run_id) if with_steps else None)


async def _read_status(run_id: str) -> Any:
    """DBOS's status of the run (None: no run of ours has that id)."""
    status = await run_database(DBOS.get_workflow_status_async(run_id))
    return status if status is not None and status.name in _WORKFLOW_BY_NAME else None


async def _read_steps(run_id: str) -> list[Any]:
    steps: list[Any] = await run_database(DBOS.list_workflow_steps_async(run_id))
    return steps


async def _require_run(run_id: str, *, with_steps: bool = True) -> Run:
    run = await load_run(run_id, with_steps=with_steps)
    if run is None:
        raise ProblemError("not-found", f"There is no run {run_id}.")
    return run


async def refresh_open_runs_gauge() -> None:
    """Count the unfinished runs by workflow and state (the scrape hook behind stratum_workflow_runs)."""
    counts = {(w.value, state.value): 0 for w in Workflow for state in (_ACTIVE | _PARKED)}
    statuses = await DBOS.list_workflows_async(
        name=list(_WORKFLOW_BY_NAME),
        status=["ENQUEUED", "DELAYED", "PENDING"],
        load_input=False,
        load_output=False,
        limit=100_000,
    )
    for status in statuses:
        key = (_WORKFLOW_BY_NAME[status.name].value, _state(status).value)
        counts[key] = counts.get(key, 0) + 1
    for (workflow, state), count in counts.items():
        OPEN_RUNS.labels(workflow, state).set(count)


# --- starting runs ----------------------------------------------------------------------------------------


def _start_attributes(subject: str, trigger: str) -> dict[str, Any]:
    access = current_access()
    return {
        "state": RunState.QUEUED.value,
        "subject": subject,
        "trigger": trigger,
        # Who asked, for the audit trail (the client behind a tier call, not the tier).
        "started_by": (access.on_behalf_of or access.client_id) if access is not None else None,
        # Checks for a cancel inside each step (process_apis.saga); fixed for the life of the run.
        CONTROL_CHECK: CONTROL_IN_STEP,
        # Publishes to the FP&A system (activation's baseline step); fixed for the life of the run.
        FPA_PUBLISHING: True,
    }


def _activation_run_id(opportunity_id: str, attempt: int) -> str:
    return f"pa-{opportunity_id}" if attempt == 1 else f"pa-{opportunity_id}-{attempt}"


async def _enqueue_once(
    run_id: str, attributes: dict[str, Any], enqueue: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``enqueue`` (one ``DBOS.enqueue_workflow_async``) as ``run_id`` unless a run with that id
    exists; True when this call made it.

    The decision is DBOS's own insert of the workflow's row (``reuse_policy="reject"``: an insert that
    finds a row made by another start raises), one statement in the run database, so of any number of
    concurrent starts exactly one is told it started the run. A look-up before the enqueue could not be:
    every caller would see no run, and each would answer "started"."""
    try:
        with (
            SetWorkflowID(run_id, workflow_id_reuse_policy="reject"),
            SetWorkflowAttributes(attributes),
        ):
            await run_database(enqueue())
    except dbos_error.DBOSWorkflowIDInUseError:
        return False
    return True


async def _start_once(run_id: str, attributes: dict[str, Any], workflow: Any, *args: Any) -> bool:
    """Start ``workflow(*args)`` as ``run_id`` unless a run with that id exists; True when this call made it.

    Queued (`_enqueue_once`) for whichever worker takes it; or, when this process is the only worker (the
    embedded run database) and has room under ``worker_concurrency``, started here at once: the same row,
    inserted by the same statement refusing an id in use, then executed on this loop instead of after the
    queue's next poll. A crash leaves it PENDING under this worker's id, and the restart resumes it from its
    checkpoints as it does a dequeued run. It starts in a fresh context, as a dequeued run does: it is not
    part of the request that started it (it is given the request's correlation id)."""
    workers = services()
    if not workers.starts_here or run_signals.executing >= workers.settings.worker_concurrency:
        return await _enqueue_once(
            run_id, attributes, lambda: DBOS.enqueue_workflow_async(QUEUE_NAME, workflow, *args)
        )

    async def start() -> None:
        with (
            SetWorkflowID(run_id, workflow_id_reuse_policy="reject"),
            SetWorkflowAttributes(attributes),
        ):
            await DBOS.start_workflow_async(workflow, *args)

    try:
        await run_database(asyncio.create_task(start(), context=contextvars.Context()))
    except dbos_error.DBOSWorkflowIDInUseError:
        return False
    return True


async def find_activation(opportunity_id: str) -> tuple[Run | None, int]:
    """The opportunity's activation run that counts (the last one not cancelled), or None; and the attempt
    that was looked at last (with None, the first that has no run: the one a start takes)."""
    attempt = 1
    while True:
        existing = await load_run(_activation_run_id(opportunity_id, attempt))
        if existing is None or existing.state != RunState.CANCELLED:
            return existing, attempt
        attempt += 1


async def start_activation(
    opportunity_id: str, *, trigger: str, free_attempt: int | None = None
) -> tuple[Run, bool]:
    """The opportunity's activation run, started unless it has one; (run, started now).

    One run per opportunity: starting again returns the existing run, whatever its state, so a deal can
    never become two projects. Only after a run was cancelled does a new start make a new run. Concurrent
    starts race on the run's id in the run database (`_enqueue_once`): one starts it, the rest get it.
    ``free_attempt``: the attempt `find_activation` just found without a run (not read again; a start that
    raced to it in between gets the run that won)."""
    attempt = free_attempt or 1
    attributes = _start_attributes(opportunity_id, trigger)
    while True:
        run_id = _activation_run_id(opportunity_id, attempt)
        existing = None if attempt == free_attempt else await load_run(run_id)
        if existing is None:
            started = await _start_once(
                run_id, attributes, project_activation, opportunity_id, trigger, current_correlation_id()
            )
            # A run this call has just started has no steps worth reading yet.
            existing = await load_run(run_id, with_steps=not started)
            assert existing is not None
            if started:
                return existing, True
        if existing.state != RunState.CANCELLED:
            return existing, False
        attempt += 1


async def start_customer_sync(account_ids: list[str], *, run_id: str, trigger: str) -> tuple[Run, bool]:
    existing = await load_run(run_id)
    if existing is not None:
        return existing, False
    attributes = _start_attributes(",".join(account_ids), trigger)
    started = await _start_once(
        run_id, attributes, customer_sync, account_ids, trigger, current_correlation_id()
    )
    run = await load_run(run_id)
    assert run is not None
    return run, started


async def refuse_unless_won(system: SystemApiClient, opportunity_id: str) -> None:
    """Refuse, before any run exists, an activation that no person can make ready: an opportunity the CRM
    does not know (404, passed through from the system tier) or one not closed-won (422 naming its stage).
    Rules a person fixes on a won deal (legal entity, billing model, ...) are the run's: it parks with an
    owner."""
    opportunity = await system.get_opportunity(opportunity_id)
    if not opportunity.is_won:
        raise ProblemError(
            "opportunity-not-won",
            f"Opportunity {opportunity_id} is in stage {opportunity.stage.value}, not closed-won: only a won "
            "deal is activated. Close it as won in the CRM, then start the activation.",
            errors=[
                FieldError(
                    location="body",
                    field="opportunity_id",
                    message=f"stage is {opportunity.stage.value}, not closed_won",
                )
            ],
        )


class RunService:
    """What other process-tier modules (the CRM event intake) use to start activations."""

    async def start_activation(self, opportunity_id: str, *, trigger: str) -> str:
        run, _ = await start_activation(opportunity_id, trigger=trigger)
        return run.id


# --- waiting (Prefer: wait=N) -----------------------------------------------------------------------------

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def _prefer_wait(request: Request[Any, Any, Any]) -> int | None:
    match = _PREFER_WAIT.search(request.headers.get("prefer", ""))
    return min(int(match.group(1)), _MAX_WAIT_SECONDS) if match else None


# How often a waiter reads a run that is not executing in this process (queued, or on another worker), and
# a run that is, in case a signal was missed (a run executing here wakes its waiters when it changes).
_POLL_SECONDS = 0.05
_POLL_LOCAL_SECONDS = 1.0


async def _wait_for(run: Run, seconds: int) -> Run:
    """Wait until the run leaves the active states (done, or parked for a person) or time is up.

    While waiting only the run's status is read (one query); its steps once, at the end."""
    if run.state not in _ACTIVE:
        return run
    deadline = time.monotonic() + seconds
    with run_signals.watch(run.id) as changed:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poll = _POLL_LOCAL_SECONDS if run_signals.executing_here(run.id) else _POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, poll))
            # Cleared before the read: a change signalled during it wakes the next wait at once.
            changed.clear()
            status = await _read_status(run.id)
            if status is None:
                raise ProblemError("not-found", f"There is no run {run.id}.")
            if _state(status) not in _ACTIVE:
                # Done or parked: its steps, after the status that said so (as a fresh read would have).
                return to_run(status, await _read_steps(run.id))
    return await _require_run(run.id)


def _run_response(run: Run, status_code: int, wait: int | None, *, location: bool = False) -> Response[Run]:
    headers = {"Location": run.links.self} if location else {}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait}"
    return Response(run, status_code=status_code, headers=headers)


# --- routes -----------------------------------------------------------------------------------------------

_RUN_ANSWERS = {
    200: (Run, "The run already existed (the same opportunity was activated before)."),
    202: (Run, "Accepted: the run is queued or running; follow `Location`."),
}


@operation(
    "POST",
    "/process/v1/project-activations",
    operation_id="startProjectActivation",
    summary="Turn a won opportunity into a staffed, billable project",
    description=(
        "Starts the activation run for the opportunity (202, `Location` is the run), or returns the run it "
        "already has (200): an opportunity is activated once, however often this is called. Steps: check "
        "readiness, upsert the ERP customer, create the PSA project with milestones, create the ERP project "
        "and billing schedule, raise staffing demand, write back to the CRM, publish `project.activated`. "
        "`Prefer: wait=N` (at most 60) waits up to N seconds for the run to complete or park. Refused "
        "before any run exists: 404 for an opportunity the CRM does not know, 422 (`opportunity-not-won`, "
        "naming the stage) for one not closed-won. A won deal that breaks another readiness rule still gets "
        "a run, parked for the owner who can fix it."
    ),
    scopes=["process:run"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=202,
    success=_RUN_ANSWERS,
    tags=["activation"],
)
async def start_project_activation(
    data: JSONBody[ProjectActivationRequest],
    request: Request[Any, Any, Any],
    system: NamedDependency[SkipValidation[SystemApiClient]],
) -> Response[Run]:
    run, attempt = await find_activation(data.opportunity_id)
    started = False
    if run is None:
        await refuse_unless_won(system, data.opportunity_id)
        run, started = await start_activation(data.opportunity_id, trigger="api", free_attempt=attempt)
    wait = _prefer_wait(request)
    if wait:
        run = await _wait_for(run, wait)
    return _run_response(run, 202 if started else 200, wait, location=True)


@operation(
    "GET",
    "/process/v1/project-activations/{run_id:str}",
    operation_id="getProjectActivation",
    summary="A project activation run: state and timeline",
    description="`Prefer: wait=N` (at most 60) waits up to N seconds for the run to complete or park.",
    scopes=["process:read"],
    errors=[404, 503],
    tags=["activation"],
)
async def get_project_activation(
    run_id: Annotated[str, RunIdPath], request: Request[Any, Any, Any]
) -> Response[Run]:
    return await _get_run(run_id, Workflow.PROJECT_ACTIVATION, request)


async def _get_run(run_id: str, workflow: Workflow, request: Request[Any, Any, Any]) -> Response[Run]:
    run = await _require_run(run_id)
    if run.workflow != workflow:
        raise ProblemError("not-found", f"There is no {workflow.value} run {run_id}.")
    wait = _prefer_wait(request)
    if wait:
        run = await _wait_for(run, wait)
    return _run_response(run, 200, wait)


@operation(
    "POST",
    "/process/v1/customer-syncs",
    operation_id="startCustomerSync",
    summary="Sync CRM accounts to ERP customers",
    description=(
        "One run for the accounts given: each becomes (or updates) its ERP customer under the "
        "survivorship rules (the CRM owns name and hierarchy, the ERP billing and tax fields). A probable "
        "duplicate in the "
        "ERP (same normalised name and tax id or web domain) is an exception for finance, never a second "
        "customer. The same Idempotency-Key returns the same run."
    ),
    scopes=["process:run"],
    idempotency="required",
    status_code=202,
    success={
        200: (Run, "The run for this Idempotency-Key already existed."),
        202: (Run, "Accepted: the run is queued or running; follow `Location`."),
    },
    tags=["customers"],
)
async def start_customer_sync_route(
    data: JSONBody[CustomerSyncRequest], request: Request[Any, Any, Any]
) -> Response[Run]:
    client = request.scope["auth"].client_id
    key = request.headers.get("idempotency-key", "")
    run_id = "cs-" + uuid.uuid5(uuid.NAMESPACE_URL, f"stratum:customer-sync:{client}:{key}").hex[:20]
    run, started = await start_customer_sync(
        list(dict.fromkeys(data.account_ids)), run_id=run_id, trigger="api"
    )
    wait = _prefer_wait(request)
    if wait:
        run = await _wait_for(run, wait)
    return _run_response(run, 202 if started else 200, wait, location=True)


@operation(
    "GET",
    "/process/v1/customer-syncs/{run_id:str}",
    operation_id="getCustomerSync",
    summary="A customer sync run: state and timeline",
    scopes=["process:read"],
    errors=[404, 503],
    tags=["customers"],
)
async def get_customer_sync(
    run_id: Annotated[str, RunIdPath], request: Request[Any, Any, Any]
) -> Response[Run]:
    return await _get_run(run_id, Workflow.CUSTOMER_SYNC, request)


# --- operations -------------------------------------------------------------------------------------------

_Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size (at most 200).")]
# ``ge=0`` alone does not reach the contract (Litestar drops a bound of 0), so it is stated again.
_Seconds = Annotated[
    int | None,
    QueryParameter(ge=0, le=10 * 365 * 24 * 3600, schema_extra={"minimum": 0}, description="Age in seconds."),
]


async def _list_runs(
    *,
    listing: str,
    workflow: Workflow | None,
    states: set[RunState] | None,
    owner: Owner | None,
    older_than: int | None,
    newer_than: int | None,
    limit: int,
    cursor: str | None,
    names: list[str] | None = None,
) -> RunPage:
    """Newest first. The database narrows by workflow, status and age; state and owner (kept in the run's
    attributes) are checked here, scanning forward in batches so a page is full whenever runs remain."""
    names = names or [n for n, w in _WORKFLOW_BY_NAME.items() if workflow in (None, w)]
    statuses = sorted({s for state in states for s in _STATUSES_FOR[state]}) if states else None
    query = fingerprint(
        listing, str(workflow), str(sorted(states or ())), str(owner), str(older_than), str(newer_than)
    )
    offset = 0
    now = dt.datetime.now(dt.UTC)
    if cursor:
        with cursor_errors():
            parts = unwrap_cursor(cursor, max_length=256).split("|")
            try:
                if len(parts) != 3 or parts[0] != query:
                    raise ValueError
                offset, now = int(parts[1]), dt.datetime.fromisoformat(parts[2])
            except ValueError:
                raise InvalidCursor("cursor is for another listing") from None
    # Every page of one listing measures ages from the time of its first page, and leaves out runs
    # created after it, so new runs do not shift the offsets under a caller paging through.
    end_time = (now - dt.timedelta(seconds=older_than or 0)).isoformat()
    start_time = (now - dt.timedelta(seconds=newer_than)).isoformat() if newer_than is not None else None
    items: list[Run] = []
    batch = max(limit, 50)
    exhausted = False
    while len(items) < limit:
        statuses_found = await run_database(
            DBOS.list_workflows_async(
                name=names,
                status=statuses,
                start_time=start_time,
                end_time=end_time,
                sort_desc=True,
                limit=batch,
                offset=offset,
                load_input=False,
                load_output=False,
            )
        )
        for status in statuses_found:
            offset += 1
            run = to_run(status, None)
            if states and run.state not in states:
                continue
            if owner is not None and (run.issue is None or run.issue.owner != owner):
                continue
            items.append(run)
            if len(items) == limit:
                break
        if len(statuses_found) < batch:
            exhausted = True
            break
    more = not exhausted or len(items) == limit
    next_cursor = wrap_cursor(f"{query}|{offset}|{now.isoformat()}") if more else None
    return RunPage(items=items, next_cursor=next_cursor)


def _states(value: str | None) -> set[RunState] | None:
    if not value:
        return None
    try:
        return {RunState(v.strip()) for v in value.split(",") if v.strip()}
    except ValueError:
        raise ProblemError(
            "validation-failed",
            "state must be a comma-separated list of run states.",
            errors=[
                FieldError(
                    location="query", field="state", message=f"one of {', '.join(s.value for s in RunState)}"
                )
            ],
        ) from None


@operation(
    "GET",
    "/process/v1/runs",
    operation_id="listRuns",
    summary="Workflow runs, newest first, by workflow, state and age",
    description=(
        "`state` takes a comma-separated list (queued, running, retrying, exception, dead_letter, "
        "compensating, completed, cancelled, failed); `older_than` and `newer_than` are ages in seconds "
        "(e.g. runs still running after an hour: `state=running,retrying&older_than=3600`)."
    ),
    scopes=["process:read"],
    errors=[503],
    tags=["operations"],
)
async def list_runs(
    workflow: FromQuery[Workflow | None] = None,
    run_state: Annotated[
        str | None,
        QueryParameter(
            name="state",
            max_length=200,
            pattern=_STATE_LIST,
            description="Comma-separated run states, e.g. `exception,dead_letter`.",
        ),
    ] = None,
    older_than: _Seconds = None,
    newer_than: _Seconds = None,
    limit: _Limit = 50,
    cursor: Cursor = None,
) -> RunPage:
    return await _list_runs(
        listing="runs",
        workflow=workflow,
        states=_states(run_state),
        owner=None,
        older_than=older_than,
        newer_than=newer_than,
        limit=limit,
        cursor=cursor,
    )


@operation(
    "GET",
    "/process/v1/exceptions",
    operation_id="listExceptions",
    summary="Runs parked on a business rule, by owner: what to fix and how",
    description="Each run's `issue` names the owner, the failed step, the remediation and the data involved. "
    "Fix the data, then replay the run.",
    scopes=["process:read"],
    errors=[503],
    tags=["operations"],
)
async def list_exceptions(
    owner: FromQuery[Owner | None] = None,
    workflow: FromQuery[Workflow | None] = None,
    limit: _Limit = 50,
    cursor: Cursor = None,
) -> RunPage:
    return await _list_runs(
        listing="exceptions",
        workflow=workflow,
        states={RunState.EXCEPTION},
        owner=owner,
        older_than=None,
        newer_than=None,
        limit=limit,
        cursor=cursor,
    )


@operation(
    "GET",
    "/process/v1/dead-letters",
    operation_id="listDeadLetters",
    summary="Runs parked because a system kept failing",
    description="A step kept failing for `workflows.step_retry_window_seconds` (15 minutes by default). Fix "
    "the connection, then replay.",
    scopes=["process:read"],
    errors=[503],
    tags=["operations"],
)
async def list_dead_letters(
    workflow: FromQuery[Workflow | None] = None, limit: _Limit = 50, cursor: Cursor = None
) -> RunPage:
    return await _list_runs(
        listing="dead-letters",
        workflow=workflow,
        states={RunState.DEAD_LETTER},
        owner=None,
        older_than=None,
        newer_than=None,
        limit=limit,
        cursor=cursor,
    )


async def _control(run_id: str, action: str, allowed: Callable[[Run], bool], refusal: str) -> Response[Run]:
    run = await _require_run(run_id)
    if not allowed(run):
        raise ProblemError("conflict", refusal.format(state=run.state.value))
    # The run logs the request that resumed it (and who sent it) beside the correlation id it started under.
    access = current_access()
    message = {
        "action": action,
        "correlation_id": current_correlation_id(),
        "by": (access.on_behalf_of or access.client_id) if access is not None else None,
    }
    await run_database(DBOS.send_async(run_id, message, CONTROL_TOPIC))
    if run.state in _PARKED:
        # Say at once what the parked run is about to do, so a caller waiting on it (Prefer: wait) waits
        # for the outcome instead of reading the old parked state; the run's next step confirms it.
        moving = RunState.RUNNING if action == "replay" else RunState.COMPENSATING
        await run_database(DBOS.update_workflow_attributes_async(run_id, {"state": moving.value}, merge=True))
        run = await _require_run(run_id)
    return Response(run, status_code=202, headers={"Location": run.links.self})


@operation(
    "POST",
    "/process/v1/runs/{run_id:str}/replay",
    operation_id="replayRun",
    summary="Resume a parked run from its failed step",
    description="For a run in `exception` or `dead_letter`, after the data or the system is fixed. The "
    "failed step runs again with new idempotency keys; completed steps are not repeated. 409 for any "
    "other state.",
    scopes=["process:admin"],
    errors=[404, 409],
    idempotency="required",
    status_code=202,
    tags=["operations"],
)
async def replay_run(run_id: Annotated[str, RunIdPath]) -> Response[Run]:
    return await _control(
        run_id,
        "replay",
        lambda run: run.state in _PARKED,
        "Only a parked run can be replayed; this one is {state}.",
    )


@operation(
    "POST",
    "/process/v1/runs/{run_id:str}/cancel",
    operation_id="cancelRun",
    summary="Cancel a run and undo its completed steps",
    description="Completed steps are compensated in reverse (the CRM write-back reverted, the ERP billing "
    "schedule voided, the PSA project closed), then the run ends `cancelled`. A run that is running stops at "
    "its next step. 409 for a run already completed or cancelled.",
    scopes=["process:admin"],
    errors=[404, 409],
    idempotency="required",
    status_code=202,
    tags=["operations"],
)
async def cancel_run(run_id: Annotated[str, RunIdPath]) -> Response[Run]:
    return await _control(
        run_id,
        "cancel",
        lambda run: run.state not in _FINAL and run.state != RunState.COMPENSATING,
        "This run is {state}: there is nothing to cancel.",
    )


RUN_ROUTES = [
    start_project_activation,
    get_project_activation,
    start_customer_sync_route,
    get_customer_sync,
    list_runs,
    list_exceptions,
    list_dead_letters,
    replay_run,
    cancel_run,
]
