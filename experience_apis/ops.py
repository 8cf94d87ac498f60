"""The operations role view: workflow health, exceptions by owner with their business SLA, dead letters,
sync lag and vendor API budgets.

Three views, each a declared composition (``experience_apis.compose``):

- ``ops.overview`` (``GET /experience/v1/ops/overview``): five sections, none required, because an
  operations view must still show what it can while something is down (that is when it is read): with the
  run database down, health, exceptions and dead letters come back ``unavailable`` and sync lag and API
  budgets are still there;
- ``ops.exceptions`` (``GET /experience/v1/ops/exceptions``): every parked run with its owner, remedy, age,
  business age and SLA, breached first, then oldest first. Its one section is required: the list is the
  answer, so its source down is a 503;
- ``ops.dead_letters`` (``GET /experience/v1/ops/dead-letters``): the dead-letter list, newest first as the
  process tier pages it; one required section.

Business age is working time in ``OperationsSettings`` (``experience_apis.business_hours``), measured to
``as_of`` (default now): the clock seam, so an age and a breach can be asked of any moment.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter, SkipValidation

from apis.config import OperationsSettings
from apis.problems import FieldError, ProblemError
from apis.routing import operation
from contracts.models.experience_ops import (
    ApiBudgetsSection,
    BusinessClock,
    DeadLetterSummarySection,
    ExceptionSummarySection,
    OpsDeadLetter,
    OpsDeadLetterPage,
    OpsException,
    OpsExceptionPage,
    OpsOverview,
    OwnerExceptions,
    SyncSection,
    WorkflowCount,
    WorkflowHealthSection,
)
from contracts.models.operations import ApiBudgetList
from contracts.models.process import Owner, Run, RunPage, Workflow
from contracts.models.process_operations import RunStats, SyncStatus
from experience_apis.business_hours import business_seconds, sla_breached
from experience_apis.client import ExperienceClients
from experience_apis.compose import Composed, Section, SectionFailure, View
from experience_apis.paging import Cursor, Paging, ViewLimit

__all__ = ["OPS_DEAD_LETTERS_VIEW", "OPS_EXCEPTIONS_VIEW", "OPS_OVERVIEW_VIEW", "ops_routes"]

# Parked runs read whole (to order them and count them): far above what a firm parks, and a bounded read.
MAX_PARKED_RUNS = 2000
_PAGE = 200
DEFAULT_WINDOW_SECONDS = 24 * 3600

_EXCEPTIONS_SOURCE = "process:exceptions"
_DEAD_LETTERS_SOURCE = "process:dead-letters"


@dataclass(frozen=True, slots=True)
class _Ask:
    clients: ExperienceClients
    settings: OperationsSettings
    as_of: dt.datetime
    window: int = DEFAULT_WINDOW_SECONDS
    owner: Owner | None = None
    workflow: Workflow | None = None
    limit: int = 50
    cursor: str | None = None


async def _all_parked(read: Callable[[str | None], Awaitable[RunPage]], source: str) -> list[Run]:
    """Every run of a parked listing, page by page, up to ``MAX_PARKED_RUNS``."""
    runs: list[Run] = []
    cursor: str | None = None
    while True:
        page = await read(cursor)
        runs.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return runs
        if len(runs) >= MAX_PARKED_RUNS:
            raise SectionFailure(
                "listing-too-long",
                f"{source} holds more than {MAX_PARKED_RUNS} runs; narrow it (owner, workflow) or use the "
                "process tier's paged listing.",
            )


def _age(raised_at: dt.datetime, as_of: dt.datetime) -> int:
    return max(0, int((as_of - raised_at).total_seconds()))


def _exception(run: Run, ask: _Ask) -> OpsException | None:
    issue = run.issue
    if issue is None:
        return None
    business_age = business_seconds(issue.raised_at, ask.as_of, ask.settings)
    sla = ask.settings.sla_hours(run.workflow.value)
    return OpsException(
        run_id=run.id,
        workflow=run.workflow,
        subject=run.subject,
        owner=issue.owner,
        step=issue.step,
        code=issue.code,
        message=issue.message,
        remediation=issue.remediation,
        raised_at=issue.raised_at,
        age_seconds=_age(issue.raised_at, ask.as_of),
        business_age_seconds=business_age,
        sla_business_hours=sla,
        breached=sla_breached(business_age, sla),
        links=run.links,
    )


def _dead_letter(run: Run, as_of: dt.datetime) -> OpsDeadLetter:
    issue = run.issue
    raised_at = issue.raised_at if issue is not None else run.updated_at
    return OpsDeadLetter(
        run_id=run.id,
        workflow=run.workflow,
        subject=run.subject,
        owner=issue.owner if issue is not None else Owner.INTEGRATION_OPERATIONS,
        step=issue.step if issue is not None else "",
        code=issue.code if issue is not None else None,
        message=issue.message if issue is not None else "The run ran out of recovery attempts.",
        remediation=issue.remediation if issue is not None else "Check the run's steps, then replay it.",
        raised_at=raised_at,
        age_seconds=_age(raised_at, as_of),
        links=run.links,
    )


def _in_order(exceptions: list[OpsException]) -> list[OpsException]:
    """Breached first, then the oldest first (they have waited longest), then by run id."""
    return sorted(exceptions, key=lambda e: (not e.breached, e.raised_at, e.run_id))


def business_clock(settings: OperationsSettings) -> BusinessClock:
    return BusinessClock(
        timezone=settings.timezone,
        working_days=[d.strip().lower() for d in settings.working_days.split(",") if d.strip()],
        start_hour=settings.start_hour,
        end_hour=settings.end_hour,
        sla_business_hours={w.value: settings.sla_hours(w.value) for w in Workflow},
    )


# --- section fetches --------------------------------------------------------------------------------------


async def _exceptions(ask: _Ask, done: Composed) -> list[OpsException]:
    process = ask.clients.process
    runs = await _all_parked(
        lambda cursor: process.list_exceptions(
            owner=ask.owner, workflow=ask.workflow, limit=_PAGE, cursor=cursor
        ),
        _EXCEPTIONS_SOURCE,
    )
    return _in_order([e for e in (_exception(run, ask) for run in runs) if e is not None])


async def _dead_letters_all(ask: _Ask, done: Composed) -> list[OpsDeadLetter]:
    process = ask.clients.process
    runs = await _all_parked(
        lambda cursor: process.list_dead_letters(workflow=ask.workflow, limit=_PAGE, cursor=cursor),
        _DEAD_LETTERS_SOURCE,
    )
    return [_dead_letter(run, ask.as_of) for run in runs]


async def _dead_letters_page(ask: _Ask, done: Composed) -> RunPage:
    return await ask.clients.process.list_dead_letters(
        workflow=ask.workflow, limit=ask.limit, cursor=ask.cursor
    )


async def _health(ask: _Ask, done: Composed) -> RunStats:
    return await ask.clients.process.run_stats(window=ask.window)


async def _sync(ask: _Ask, done: Composed) -> SyncStatus:
    return await ask.clients.process.sync_status()


async def _api_budgets(ask: _Ask, done: Composed) -> ApiBudgetList:
    try:
        return await ask.clients.system.vendor_api_budgets()
    except ProblemError as exc:
        if exc.kind.code == "not-found":
            # A system tier without the budgets route (an older release): nothing to show, not the
            # caller's mistake.
            raise SectionFailure(
                "source-unavailable", "The system tier does not publish vendor API budgets."
            ) from exc
        raise


OPS_OVERVIEW_VIEW: View[_Ask] = View(
    "ops.overview",
    summary="Operations at a glance",
    sections=[
        Section(
            "health",
            ("process:run-stats",),
            _health,
            timeout=6.0,
            description="Runs by workflow and state, throughput and failure rate in the window.",
        ),
        Section(
            "exceptions",
            (_EXCEPTIONS_SOURCE,),
            _exceptions,
            timeout=8.0,
            description="Runs parked on a business rule, summarised by owner: count, oldest, SLA breaches.",
        ),
        Section(
            "dead_letters",
            (_DEAD_LETTERS_SOURCE,),
            _dead_letters_all,
            timeout=8.0,
            description="Runs parked because a system kept failing: count, oldest, by workflow.",
        ),
        Section(
            "sync",
            ("process:sync-status",),
            _sync,
            timeout=5.0,
            description="Sync lag per vendor and flow (a flow whose store is down says so itself).",
        ),
        Section(
            "api_budgets",
            ("system:vendor-api-budgets",),
            _api_budgets,
            timeout=5.0,
            description="How much of each vendor's API limits is spent.",
        ),
    ],
)

OPS_EXCEPTIONS_VIEW: View[_Ask] = View(
    "ops.exceptions",
    summary="Exceptions with their business age and SLA",
    sections=[
        Section(
            "exceptions",
            (_EXCEPTIONS_SOURCE,),
            _exceptions,
            required=True,
            timeout=8.0,
            description="Every run parked on a business rule (read whole, to order them).",
        )
    ],
)

OPS_DEAD_LETTERS_VIEW: View[_Ask] = View(
    "ops.dead_letters",
    summary="Dead letters",
    sections=[
        Section(
            "dead_letters",
            (_DEAD_LETTERS_SOURCE,),
            _dead_letters_page,
            required=True,
            timeout=5.0,
            description="A page of the dead-letter list, newest first.",
        )
    ],
)


# --- shaping ----------------------------------------------------------------------------------------------


def _exception_summary(exceptions: list[OpsException]) -> dict[str, Any]:
    by_owner: list[OwnerExceptions] = []
    for owner in Owner:
        mine = [e for e in exceptions if e.owner == owner]
        if not mine:
            continue
        oldest = min(mine, key=lambda e: e.raised_at)
        by_owner.append(
            OwnerExceptions(
                owner=owner,
                count=len(mine),
                breached=sum(1 for e in mine if e.breached),
                oldest_raised_at=oldest.raised_at,
                oldest_age_seconds=oldest.age_seconds,
                oldest_business_age_seconds=oldest.business_age_seconds,
            )
        )
    return {
        "total": len(exceptions),
        "breached": sum(1 for e in exceptions if e.breached),
        "by_owner": by_owner,
    }


def _dead_letter_summary(dead: list[OpsDeadLetter]) -> dict[str, Any]:
    oldest = min(dead, key=lambda d: d.raised_at) if dead else None
    counts = Counter(d.workflow for d in dead)
    return {
        "count": len(dead),
        "oldest_raised_at": oldest.raised_at if oldest else None,
        "oldest_age_seconds": oldest.age_seconds if oldest else None,
        "by_workflow": [WorkflowCount(workflow=w, count=counts[w]) for w in Workflow if counts[w]],
    }


# --- routes -----------------------------------------------------------------------------------------------

# A string, not a datetime parameter: Litestar would also take "0.5" (a Unix time) or a time with no
# offset, which names no moment (as ``system_apis.params.ModifiedSince``).
AsOf = Annotated[
    str | None,
    QueryParameter(
        format="date-time",
        max_length=64,
        description="The moment ages and SLA breaches are measured at: an RFC 3339 time with its offset "
        "(e.g. 2026-11-30T10:00:00Z); default now. Read within 1970 to 9000.",
        required=False,
    ),
]
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
WindowSeconds = Annotated[
    int,
    QueryParameter(
        ge=60,
        le=30 * 24 * 3600,
        description="How far back, in seconds, ended runs count in `health` (60 s to 30 days; default 24 h).",
    ),
]


def _moment(as_of: str | None) -> dt.datetime:
    """The ``as_of`` parameter as an aware UTC datetime (now when absent); 422 unless RFC 3339."""
    if as_of is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = msgspec.json.decode(msgspec.json.encode(as_of), type=dt.datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ProblemError(
            "validation-failed",
            "as_of is not a date and time with its offset.",
            errors=[FieldError(location="query", field="as_of", message="not an RFC 3339 date-time")],
        )
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
        utc = _EARLIEST if moment.year < 5000 else _LATEST
    return min(max(utc, _EARLIEST), _LATEST)


@operation(
    "GET",
    "/experience/v1/ops/overview",
    operation_id="getOpsOverview",
    summary="Operations at a glance: health, exceptions, dead letters, sync lag, API budgets",
    description=(
        "`health`: runs by workflow and state, throughput and failure rate over `window` seconds (see "
        "the process tier's `GET /process/v1/run-stats`). `exceptions`: runs parked on a business rule by "
        "owner, with the oldest one's age and business age and how many breach their workflow's SLA at "
        "`as_of`. `dead_letters`: count, oldest, by workflow. `sync`: lag per vendor and flow. "
        "`api_budgets`: each vendor's API budget use. No section is required: operations read this view "
        "when something is down, so it always answers 200 with what it can; a section whose source is "
        "down comes back `status: unavailable` with the reason (e.g. the run database down: `health`, "
        "`exceptions` and `dead_letters` unavailable, `sync` and `api_budgets` filled)."
        + OPS_OVERVIEW_VIEW.describe()
    ),
    scopes=["experience:ops"],
    tags=["operations"],
)
async def get_ops_overview(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    operations_settings: NamedDependency[SkipValidation[OperationsSettings]],
    window: WindowSeconds = DEFAULT_WINDOW_SECONDS,
    as_of: AsOf = None,
) -> OpsOverview:
    ask = _Ask(clients=clients, settings=operations_settings, as_of=_moment(as_of), window=window)
    done = await OPS_OVERVIEW_VIEW.compose(ask)
    return OpsOverview(
        as_of=ask.as_of,
        business_clock=business_clock(operations_settings),
        health=done.section(
            "health",
            WorkflowHealthSection,
            lambda stats: {"window_seconds": stats.window_seconds, "workflows": stats.workflows},
        ),
        exceptions=done.section("exceptions", ExceptionSummarySection, _exception_summary),
        dead_letters=done.section("dead_letters", DeadLetterSummarySection, _dead_letter_summary),
        sync=done.section("sync", SyncSection, lambda status: {"flows": status.flows}),
        api_budgets=done.section("api_budgets", ApiBudgetsSection, lambda budgets: {"items": budgets.items}),
    )


@operation(
    "GET",
    "/experience/v1/ops/exceptions",
    operation_id="listOpsExceptions",
    summary="Exceptions with owner, remedy, age, business age and SLA",
    description=(
        "Every run parked on a business rule: its owner, the failed step, code, message and remediation, "
        "its age (wall clock) and business age (working hours of `business_clock`) at `as_of`, its "
        "workflow's SLA in business hours and whether it is breached (business age above the SLA). "
        "Breached first, then the oldest first. Filters: `owner`, `workflow`, `breached`. Pages: `limit` "
        "and the `next_cursor` of the previous page (each page is measured at its own `as_of`: pass the "
        "same `as_of` to page a fixed picture). A cursor from another listing is 422. The run database "
        "down is a 503 `source-unavailable`." + OPS_EXCEPTIONS_VIEW.describe()
    ),
    scopes=["experience:ops"],
    errors=[503],
    tags=["operations"],
)
async def list_ops_exceptions(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    operations_settings: NamedDependency[SkipValidation[OperationsSettings]],
    owner: FromQuery[Owner | None] = None,
    workflow: FromQuery[Workflow | None] = None,
    breached: Annotated[
        bool | None, QueryParameter(description="Only breached (true) or not breached (false).")
    ] = None,
    as_of: AsOf = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
) -> OpsExceptionPage:
    # A cursor this tier did not issue is refused before anything is read.
    paging = Paging.of(
        ("ops.exceptions", str(owner), str(workflow), str(breached)), limit=limit, cursor=cursor
    )
    ask = _Ask(
        clients=clients, settings=operations_settings, as_of=_moment(as_of), owner=owner, workflow=workflow
    )
    done = await OPS_EXCEPTIONS_VIEW.compose(ask)
    exceptions: list[OpsException] = done.value("exceptions")
    if breached is not None:
        exceptions = [e for e in exceptions if e.breached == breached]
    page, next_cursor = paging.cut(exceptions)
    return OpsExceptionPage(
        as_of=ask.as_of,
        business_clock=business_clock(operations_settings),
        items=page,
        next_cursor=next_cursor,
    )


@operation(
    "GET",
    "/experience/v1/ops/dead-letters",
    operation_id="listOpsDeadLetters",
    summary="Dead letters: runs parked because a system kept failing",
    description=(
        "Newest first, with the failed step, the error, the remediation and the age at `as_of`. Fix the "
        "connection, then replay the run (`links.replay`). Filter: `workflow`. Pages: `limit` and the "
        "`next_cursor` of the previous page (a cursor from elsewhere is 422). The run database down is a "
        "503 `source-unavailable`." + OPS_DEAD_LETTERS_VIEW.describe()
    ),
    scopes=["experience:ops"],
    errors=[503],
    tags=["operations"],
)
async def list_ops_dead_letters(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    operations_settings: NamedDependency[SkipValidation[OperationsSettings]],
    workflow: FromQuery[Workflow | None] = None,
    as_of: AsOf = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
) -> OpsDeadLetterPage:
    ask = _Ask(
        clients=clients,
        settings=operations_settings,
        as_of=_moment(as_of),
        workflow=workflow,
        limit=limit,
        cursor=cursor,
    )
    done = await OPS_DEAD_LETTERS_VIEW.compose(ask)
    page: RunPage = done.value("dead_letters")
    return OpsDeadLetterPage(
        as_of=ask.as_of,
        items=[_dead_letter(run, ask.as_of) for run in page.items],
        next_cursor=page.next_cursor,
    )


ops_routes = [get_ops_overview, list_ops_exceptions, list_ops_dead_letters]
