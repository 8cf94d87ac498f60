"""The delivery role view: one project as its delivery manager sees it, and the manager's portfolio with the
projects at risk first.

Both are composed (``experience_apis.compose``) from the system tier only: the PSA (the project, its time,
expenses, billable items, invoices and staffing demand), the CRM (the deal, for the legal entity) and the
FP&A system (the revenue forecast). The figures are worked out here from what those sources hold, by pure
functions (``budget_figures``, ``unbilled_figures``, ``milestone_lines``, ``project_risk``), so the project
and the portfolio can never disagree on a project's risk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, TypeVar

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter, SkipValidation

from apis.problems import ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    BillableItem,
    BillableItemKind,
    Expense,
    Forecast,
    MilestoneStatus,
    Opportunity,
    OpportunityStage,
    Project,
    ProjectStatus,
    PsaInvoice,
    PsaInvoiceStatus,
    StaffingDemand,
    TimeEntry,
)
from contracts.models.common import Money
from contracts.models.experience import SectionError, SectionStatus, money_totals
from contracts.models.experience_delivery import (
    BilledSection,
    BudgetFigures,
    BudgetSection,
    DeliveryPortfolio,
    DeliveryProjectView,
    ForecastSection,
    MilestoneBillingState,
    MilestoneLine,
    MilestonesSection,
    PortfolioProject,
    PortfolioTotals,
    ProjectInvoiceLine,
    ProjectRisk,
    StaffingSection,
    UnbilledSection,
)
from experience_apis.client import ExperienceClients
from experience_apis.compose import Composed, Section, SectionFailure, View
from experience_apis.finance import billable_items_of
from experience_apis.paging import CurrencyFilter, Cursor, LegalEntityFilter, Paging, ViewLimit
from system_apis.psa.port import MAX_LISTING_PAGE, MAX_PROJECTS_AT_ONCE

__all__ = [
    "DELIVERY_PORTFOLIO_VIEW",
    "DELIVERY_PROJECT_VIEW",
    "PORTFOLIO_MAX_PROJECTS",
    "UNBILLED_AGEING_DAYS",
    "budget_figures",
    "delivery_routes",
    "milestone_lines",
    "order_portfolio",
    "portfolio_item",
    "project_risk",
    "unbilled_figures",
]

T = TypeVar("T")

# An unbilled approved item older than this (from the day the work was done) makes a project "ageing":
# a month is one billing period, so older work missed at least one run.
UNBILLED_AGEING_DAYS = 30
# A portfolio reads its projects' time, expenses, billable items and staffing demand in listings of many
# projects: bounded in number, so one portfolio cannot flood the PSA (Kantata has no rate-limit headers and
# answers 429 without Retry-After).
PORTFOLIO_MAX_PROJECTS = 100
# Listings read whole: pages of the system tier's largest size, and a ceiling on how many. Time and
# expenses page up to 1,000 (the PSA reads Kantata's pages of 200 behind one of ours at once, after the
# first): a portfolio's time is a few pages read in two rounds each, not five pages one after another.
_PAGE = 200
_LARGE_PAGE = MAX_LISTING_PAGE
_MAX_PAGES = 50
_TENTH = Decimal("0.1")
# A portfolio with no status filter shows the projects still being delivered.
_OPEN_STATUSES = (ProjectStatus.PLANNED, ProjectStatus.ACTIVE, ProjectStatus.ON_HOLD)

_PROJECT_SOURCE = "system:psa.projects"
_TIME_SOURCE = "system:psa.time-entries"
_EXPENSE_SOURCE = "system:psa.expenses"
_BILLABLE_SOURCE = "system:psa.billable-items"
_INVOICE_SOURCE = "system:psa.invoices"
_STAFFING_SOURCE = "system:psa.staffing-demands"
_DEAL_SOURCE = "system:crm.opportunities"
_FORECAST_SOURCE = "system:fpa.forecast"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _absent(exc: ProblemError) -> bool:
    """The source has no such record (or cannot even name it): for an optional lookup, "none"."""
    return exc.kind.status in (404, 422)


async def _read_all(
    read: Callable[[str | None], Awaitable[tuple[list[T], str | None]]], what: str, *, page_size: int = _PAGE
) -> list[T]:
    items: list[T] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page, cursor = await read(cursor)
        items.extend(page)
        if not cursor:
            return items
    raise SectionFailure("listing-too-long", f"{what} has more than {_MAX_PAGES * page_size} records")


# --- reads ----------------------------------------------------------------------------------------------


async def _time_entries(clients: ExperienceClients, project_id: str) -> list[TimeEntry]:
    async def read(cursor: str | None) -> tuple[list[TimeEntry], str | None]:
        page = await clients.system.list_time_entries(project_id=project_id, limit=_LARGE_PAGE, cursor=cursor)
        return page.items, page.next_cursor

    return await _read_all(read, f"project {project_id}'s time", page_size=_LARGE_PAGE)


async def _expenses(clients: ExperienceClients, project_id: str) -> list[Expense]:
    async def read(cursor: str | None) -> tuple[list[Expense], str | None]:
        page = await clients.system.list_expenses(project_id=project_id, limit=_LARGE_PAGE, cursor=cursor)
        return page.items, page.next_cursor

    return await _read_all(read, f"project {project_id}'s expenses", page_size=_LARGE_PAGE)


# --- figures (pure) -------------------------------------------------------------------------------------


def _percent(used: Decimal, budget: Decimal) -> Decimal | None:
    if budget <= 0:
        return None
    return (used * 100 / budget).quantize(_TENTH, rounding=ROUND_HALF_UP)


def budget_figures(
    project: Project,
    entries: Sequence[TimeEntry],
    expenses: Sequence[Expense],
    demands: Sequence[StaffingDemand] | None,
) -> BudgetFigures:
    """Budget against actuals (see ``BudgetFigures``). ``demands`` None: the hours budget is unknown."""
    approved = sum((e.hours for e in entries if e.approved), Decimal(0))
    not_approved = sum((e.hours for e in entries if not e.approved), Decimal(0))
    hours = approved + not_approved
    time_amounts = [(e.rate.currency, e.hours * e.rate.amount) for e in entries if e.rate is not None]
    expense_amounts = [(x.amount.currency, x.amount.amount) for x in expenses]
    amount_time = money_totals(time_amounts)
    amount_expenses = money_totals(expense_amounts)
    amount_actual = money_totals([*time_amounts, *expense_amounts])
    planned = sum((d.hours for d in demands), Decimal(0)) if demands is not None else None
    hours_budget = planned if planned else None
    budget = project.budget
    used = next((m.amount for m in amount_actual if budget and m.currency == budget.currency), Decimal(0))
    over_hours = hours_budget is not None and hours > hours_budget
    over_amount = budget is not None and used > budget.amount
    return BudgetFigures(
        hours_budget=hours_budget,
        hours_approved=approved,
        hours_not_approved=not_approved,
        hours_actual=hours,
        hours_remaining=None if hours_budget is None else hours_budget - hours,
        hours_percent_used=None if hours_budget is None else _percent(hours, hours_budget),
        amount_budget=budget,
        amount_time=amount_time,
        amount_expenses=amount_expenses,
        amount_actual=amount_actual,
        amount_remaining=(
            None if budget is None else Money(amount=budget.amount - used, currency=budget.currency)
        ),
        amount_percent_used=None if budget is None else _percent(used, budget.amount),
        over_budget_hours=over_hours,
        over_budget_amount=over_amount,
        over_budget=over_hours or over_amount,
    )


def unbilled_figures(items: Sequence[BillableItem], today: dt.date) -> dict[str, Any]:
    """The fields of ``UnbilledSection`` for the project's unbilled approved items."""
    values = [i.psa_value() for i in items]
    oldest = min((i.date for i in items), default=None)
    return {
        "amount": money_totals([(v.currency, v.amount) for v in values if v is not None]),
        "items": len(items),
        "hours": sum((i.quantity for i in items if i.kind is BillableItemKind.TIME), Decimal(0)),
        "oldest_date": oldest,
        "oldest_age_days": None if oldest is None else (today - oldest).days,
        "unpriced_items": sum(1 for v in values if v is None),
    }


def milestone_lines(
    project: Project,
    invoices: Sequence[PsaInvoice] | None,
    today: dt.date,
    unbilled: Sequence[BillableItem] | None = None,
) -> list[MilestoneLine]:
    """Each milestone with its billing state and whether it is overdue. ``invoices`` and ``unbilled`` (the
    project's PSA invoices and billable items) None: unknown, so a completed milestone's state is too."""
    billable = {i.id for i in unbilled or () if i.kind is BillableItemKind.MILESTONE}
    billed_on: dict[str, PsaInvoice] = {}
    for billing in invoices or ():
        if billing.status is not PsaInvoiceStatus.CANCELLED:
            for milestone_id in billing.milestone_ids:
                billed_on.setdefault(milestone_id, billing)
    lines = []
    for milestone in project.milestones:
        completed = milestone.status is MilestoneStatus.COMPLETED
        invoice: PsaInvoice | None = billed_on.get(milestone.id)
        if invoice is not None:
            state = MilestoneBillingState.INVOICED
        elif not completed:
            state = MilestoneBillingState.NOT_BILLABLE_YET
        elif invoices is None or unbilled is None:
            state = MilestoneBillingState.UNKNOWN
        elif milestone.id in billable:
            state = MilestoneBillingState.BILLABLE_UNBILLED
        else:
            state = MilestoneBillingState.NOT_BILLABLE
        lines.append(
            MilestoneLine(
                id=milestone.id,
                name=milestone.name,
                status=milestone.status,
                due_date=milestone.due_date,
                amount=milestone.amount,
                billing_state=state,
                psa_invoice_id=None if invoice is None else invoice.id,
                erp_invoice_id=None if invoice is None else invoice.erp_invoice_id,
                overdue=not completed and milestone.due_date is not None and milestone.due_date < today,
            )
        )
    return lines


def _billed(invoices: Sequence[PsaInvoice]) -> dict[str, Any]:
    issued = (PsaInvoiceStatus.OPEN, PsaInvoiceStatus.PAID)
    return {
        "billed": money_totals([(i.total.currency, i.total.amount) for i in invoices if i.status in issued]),
        "in_draft": money_totals(
            [(i.total.currency, i.total.amount) for i in invoices if i.status is PsaInvoiceStatus.DRAFT]
        ),
        "invoices": [
            ProjectInvoiceLine(
                psa_invoice_id=i.id,
                status=i.status.value,
                total=i.total,
                erp_invoice_id=i.erp_invoice_id,
                erp_invoice_number=i.erp_invoice_number,
                invoice_date=i.invoice_date,
                milestone_ids=i.milestone_ids,
            )
            for i in invoices
        ],
    }


def project_risk(
    project: Project,
    budget: BudgetFigures | None,
    unbilled_age_days: int | None,
    today: dt.date,
    error: SectionError | None = None,
) -> ProjectRisk:
    """The project's risk flags; ``budget`` None: its work could not be read, so those flags are unknown."""
    overdue = any(line.overdue for line in milestone_lines(project, [], today))
    if budget is None:
        return ProjectRisk(
            status=SectionStatus.UNAVAILABLE, milestone_overdue=overdue, count=int(overdue), error=error
        )
    ageing = unbilled_age_days is not None and unbilled_age_days > UNBILLED_AGEING_DAYS
    return ProjectRisk(
        status=SectionStatus.OK,
        over_budget=budget.over_budget,
        milestone_overdue=overdue,
        unbilled_ageing=ageing,
        count=sum((budget.over_budget, overdue, ageing)),
    )


# --- the project ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProjectAsk:
    clients: ExperienceClients
    project_id: str
    today: dt.date


async def _project(ask: _ProjectAsk, done: Composed) -> Project:
    return await ask.clients.system.get_psa_project(ask.project_id)


async def _deal_of_project(
    clients: ExperienceClients, project_id: str, project: Callable[[], Awaitable[Project | None]]
) -> Opportunity | None:
    """The deal a PSA project delivers: the one whose activation wrote the project's id back, read by that
    id alone, at once; only for a project no deal carries (made by hand) is the project needed (``project()``
    gives it, None for none) and the deal read under its external key. None when there is none."""
    try:
        return await clients.system.get_opportunity_by_project(project_id)
    except ProblemError as exc:
        if not _absent(exc):
            raise
    found = await project()
    if found is None or not found.external_key:
        return None
    try:
        return await clients.system.get_opportunity(found.external_key)
    except ProblemError as exc:
        if _absent(exc):
            return None  # a project made by hand, under a key that is no deal
        raise


async def _deal(ask: _ProjectAsk, done: Composed) -> Opportunity | None:
    return await _deal_of_project(ask.clients, ask.project_id, lambda: done.wait("project"))


async def _time(ask: _ProjectAsk, done: Composed) -> list[TimeEntry]:
    return await _time_entries(ask.clients, ask.project_id)


async def _project_expenses(ask: _ProjectAsk, done: Composed) -> list[Expense]:
    return await _expenses(ask.clients, ask.project_id)


async def _unbilled(ask: _ProjectAsk, done: Composed) -> list[BillableItem]:
    # Time, expenses and milestones read at once, not as one listing's pages one after another (the
    # project section says 404 for a project the PSA does not have).
    return (await billable_items_of(ask.clients, [ask.project_id], ask.today))[ask.project_id]


async def _invoices(ask: _ProjectAsk, done: Composed) -> list[PsaInvoice]:
    return await ask.clients.system.list_psa_project_invoices(ask.project_id)


async def _staffing(ask: _ProjectAsk, done: Composed) -> list[StaffingDemand]:
    return await ask.clients.system.list_staffing_demands(ask.project_id)


async def _forecast(ask: _ProjectAsk, done: Composed) -> Forecast | None:
    """The FP&A plan follows the project finance bills (the Anaplan sandbox's seed keys it by the ERP
    project, as revenue is recognised there): looked up under the deal's ERP project first, then under the
    PSA project (a plan published for the delivered project). The PSA project's is asked at once, the ERP
    project's as soon as the deal names it: an FP&A read is an export run (several vendor calls), and the
    system tier's adapter lets a read join the export already running, so the two cost one run, started
    before the deal is in."""
    system = ask.clients.system

    async def read(key: str) -> Forecast | BaseException:
        try:
            return await system.get_revenue_forecast(key)
        except (ProblemError, SectionFailure) as exc:
            return exc

    by_project = asyncio.ensure_future(read(ask.project_id))
    try:
        deal: Opportunity | None = await done.wait("deal")
        erp = deal.system_ids.erp if deal else None
        found = [await read(erp) if erp and erp != ask.project_id else None, await by_project]
    finally:
        if not by_project.done():
            by_project.cancel()
            await asyncio.gather(by_project, return_exceptions=True)
    for answer in found:  # in the order of preference
        if answer is None:
            continue
        if isinstance(answer, ProblemError) and _absent(answer):
            continue
        if isinstance(answer, BaseException):
            raise answer
        return answer
    return None  # the FP&A system has no figures for this project: said, not an error


DELIVERY_PROJECT_VIEW: View[_ProjectAsk] = View(
    "delivery.project",
    summary="One project for its delivery manager",
    sections=[
        Section(
            "project",
            (_PROJECT_SOURCE,),
            _project,
            required=True,
            timeout=5.0,
            description="The project with its budget and milestones: the view means nothing without it.",
        ),
        Section(
            "deal",
            (_DEAL_SOURCE,),
            _deal,
            timeout=5.0,
            waits=("project",),
            description="The deal the project delivers, for its legal entity (null when unavailable): the "
            "deal that carries the project's id, read at once; only for a project no deal carries (made by "
            "hand) the deal under the project's external key, once the project is in.",
        ),
        Section(
            "time", (_TIME_SOURCE,), _time, timeout=8.0, description="Time booked: actual hours and amount."
        ),
        Section(
            "expenses", (_EXPENSE_SOURCE,), _project_expenses, timeout=8.0, description="Expenses booked."
        ),
        Section(
            "unbilled",
            (_BILLABLE_SOURCE,),
            _unbilled,
            timeout=8.0,
            description="Approved billable work on no invoice yet, through today.",
        ),
        Section(
            "invoices",
            (_INVOICE_SOURCE,),
            _invoices,
            timeout=5.0,
            description="The project's PSA invoices: billed, and each milestone's billing state.",
        ),
        Section(
            "staffing",
            (_STAFFING_SOURCE,),
            _staffing,
            timeout=5.0,
            description="Staffing demand: the hours budget, and the demand nobody is assigned to.",
        ),
        Section(
            "forecast",
            (_FORECAST_SOURCE,),
            _forecast,
            timeout=5.0,
            waits=("deal",),
            description="The FP&A revenue forecast, under the deal's ERP project (else the PSA project); "
            "none for the project is `not_applicable`, not an error. The PSA project's is asked at once, "
            "the ERP project's when the deal is in.",
        ),
    ],
)

_ProjectId = Annotated[
    str, PathParameter(pattern=r"^[A-Za-z0-9_:.-]{1,64}$", description="The PSA project id.")
]


def _budget_section(done: Composed, project: Project) -> BudgetSection:
    for name in ("time", "expenses"):
        if not done.ok(name):
            return BudgetSection(status=SectionStatus.UNAVAILABLE, error=done.error(name))
    demands = done.value_or("staffing", None)
    return BudgetSection(
        status=SectionStatus.OK,
        data=budget_figures(project, done.value("time"), done.value("expenses"), demands),
        hours_budget_error=done.error("staffing"),
    )


def _forecast_section(done: Composed) -> ForecastSection:
    if not done.ok("forecast"):
        return ForecastSection(status=SectionStatus.UNAVAILABLE, error=done.error("forecast"))
    forecast: Forecast | None = done.value("forecast")
    if forecast is None:
        return ForecastSection(
            status=SectionStatus.NOT_APPLICABLE, detail="The FP&A system has no forecast for this project."
        )
    total = Money(amount=sum((m.amount for m in forecast.months), Decimal(0)), currency=forecast.currency)
    return ForecastSection(status=SectionStatus.OK, data=forecast, total=total)


def _staffing_section(done: Composed) -> StaffingSection:
    def fill(demands: list[StaffingDemand]) -> dict[str, Any]:
        open_demands = [d for d in demands if not d.assignee_id]
        return {
            "open_demands": open_demands,
            "open_hours": sum((d.hours for d in open_demands), Decimal(0)),
            "planned_hours": sum((d.hours for d in demands), Decimal(0)),
        }

    return done.section("staffing", StaffingSection, fill)


@operation(
    "GET",
    "/experience/v1/delivery/projects/{project_id:str}",
    operation_id="getDeliveryProjectView",
    summary="One project for its delivery manager",
    description=(
        "Budget against actuals (hours and amount), milestones with due dates and billing state, billed "
        "against unbilled approved work, the FP&A revenue forecast and the staffing demand still open. Money "
        "is per currency, never summed across currencies. Hours budget: the staffing demand's planned hours; "
        "actual hours: every time entry booked, split approved / not yet approved; actual amount: time at "
        "the PSA's rate plus expenses. 404 for a project the PSA does not have; 503 `source-unavailable` "
        "when the PSA cannot give the project. An optional section that is down comes back `unavailable` "
        "with the reason: the budget needs the time and the expenses; the hours budget the staffing demand "
        "(else null, with `hours_budget_error`); a completed milestone's billing state the invoices and the "
        "billable items (else `unknown`, with `billing_error`). A project with no FP&A figures has a "
        "`not_applicable` forecast." + DELIVERY_PROJECT_VIEW.describe()
    ),
    scopes=["experience:delivery"],
    errors=[404, *VENDOR_ERRORS],
    tags=["delivery"],
)
async def get_delivery_project_view(
    project_id: _ProjectId, clients: NamedDependency[SkipValidation[ExperienceClients]]
) -> DeliveryProjectView:
    today = _today()
    done = await DELIVERY_PROJECT_VIEW.compose(
        _ProjectAsk(clients=clients, project_id=project_id, today=today)
    )
    project: Project = done.value("project")
    deal: Opportunity | None = done.value_or("deal", None)
    invoices: list[PsaInvoice] | None = done.value_or("invoices", None)
    unbilled: list[BillableItem] | None = done.value_or("unbilled", None)
    lines = milestone_lines(project, invoices, today, unbilled)
    return DeliveryProjectView(
        project_id=project.id,
        as_of=today,
        project=project,
        legal_entity=project.legal_entity or (deal.legal_entity if deal else None),
        budget=_budget_section(done, project),
        milestones=MilestonesSection(
            status=SectionStatus.OK,
            items=lines,
            overdue=sum(1 for line in lines if line.overdue),
            billing_error=done.error("invoices") or done.error("unbilled"),
        ),
        billed=done.section("invoices", BilledSection, _billed),
        unbilled=done.section("unbilled", UnbilledSection, lambda items: unbilled_figures(items, today)),
        forecast=_forecast_section(done),
        staffing=_staffing_section(done),
    )


# --- the portfolio --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PortfolioAsk:
    clients: ExperienceClients
    manager_id: str | None
    currency: str | None
    status: ProjectStatus | None
    today: dt.date


@dataclass(frozen=True, slots=True)
class _Listed:
    projects: list[Project]
    truncated: bool


@dataclass(frozen=True, slots=True)
class _Work:
    """What a project's risk is worked out from, or why it could not be read."""

    budget: BudgetFigures | None = None
    unbilled: dict[str, Any] | None = None
    error: SectionError | None = None


def _wanted(project: Project, ask: _PortfolioAsk) -> bool:
    if ask.manager_id is not None and project.manager_id != ask.manager_id:
        return False
    if ask.currency is not None and project.currency != ask.currency:
        return False
    if ask.status is not None:
        return project.status is ask.status
    return project.status in _OPEN_STATUSES


async def _portfolio_projects(ask: _PortfolioAsk, done: Composed) -> _Listed:
    # Kantata's workspace list has no filter by primary maven (the manager): filtered here.
    async def read(cursor: str | None) -> tuple[list[Project], str | None]:
        page = await ask.clients.system.list_psa_projects(limit=_PAGE, cursor=cursor)
        return page.items, page.next_cursor

    wanted = sorted(
        (p for p in await _read_all(read, "the PSA's projects") if _wanted(p, ask)),
        key=lambda p: (p.name.casefold(), p.id),
    )
    return _Listed(projects=wanted[:PORTFOLIO_MAX_PROJECTS], truncated=len(wanted) > PORTFOLIO_MAX_PROJECTS)


async def _portfolio_deals(ask: _PortfolioAsk, done: Composed) -> dict[str, Opportunity]:
    """The won deals by the PSA project that delivers them (and by their id, a project's external key)."""

    async def read(cursor: str | None) -> tuple[list[Opportunity], str | None]:
        page = await ask.clients.system.list_opportunities(
            limit=_PAGE, cursor=cursor, stage=OpportunityStage.CLOSED_WON
        )
        return page.items, page.next_cursor

    deals: dict[str, Opportunity] = {}
    for deal in await _read_all(read, "the CRM's won deals"):
        deals[f"deal:{deal.id}"] = deal
        for project_id in {deal.project_id, deal.system_ids.psa} - {None}:
            deals[f"project:{project_id}"] = deal
    return deals


def _failure(read: BaseException, source: str) -> SectionError:
    """A read's failure as one project's (or every project's) reason its risk is unknown."""
    if isinstance(read, ProblemError):
        return SectionError(code=read.kind.code, detail=read.problem_detail, source=source)
    if isinstance(read, SectionFailure):
        return SectionError(code=read.code, detail=read.detail, source=source)
    raise read  # a bug, not a source being down


async def _by_project(
    project_ids: Sequence[str],
    read: Callable[[str, str | None], Awaitable[tuple[list[Any], str | None]]],
    what: str,
    *,
    page_size: int,
) -> dict[str, list[Any]]:
    """A listing filtered by project, read for ``MAX_PROJECTS_AT_ONCE`` projects a listing (the listings at
    once), by project: one question asked once, not once a project."""
    chunks = [
        ",".join(project_ids[i : i + MAX_PROJECTS_AT_ONCE])
        for i in range(0, len(project_ids), MAX_PROJECTS_AT_ONCE)
    ]
    by_project: dict[str, list[Any]] = {project_id: [] for project_id in project_ids}

    def listing(chunk: str) -> Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]:
        return lambda cursor: read(chunk, cursor)

    found = await asyncio.gather(*(_read_all(listing(chunk), what, page_size=page_size) for chunk in chunks))
    for records in found:
        for record in records:
            if record.project_id in by_project:
                by_project[record.project_id].append(record)
    return by_project


async def _projects_time(clients: ExperienceClients, project_ids: Sequence[str]) -> dict[str, list[Any]]:
    async def read(chunk: str, cursor: str | None) -> tuple[list[TimeEntry], str | None]:
        page = await clients.system.list_time_entries(
            project_ids=chunk.split(","), limit=_LARGE_PAGE, cursor=cursor
        )
        return page.items, page.next_cursor

    return await _by_project(project_ids, read, "the projects' time", page_size=_LARGE_PAGE)


async def _projects_expenses(clients: ExperienceClients, project_ids: Sequence[str]) -> dict[str, list[Any]]:
    async def read(chunk: str, cursor: str | None) -> tuple[list[Expense], str | None]:
        page = await clients.system.list_expenses(
            project_ids=chunk.split(","), limit=_LARGE_PAGE, cursor=cursor
        )
        return page.items, page.next_cursor

    return await _by_project(project_ids, read, "the projects' expenses", page_size=_LARGE_PAGE)


async def _projects_staffing(clients: ExperienceClients, project_ids: Sequence[str]) -> dict[str, list[Any]]:
    async def read(chunk: str, cursor: str | None) -> tuple[list[StaffingDemand], str | None]:
        # Read whole: a project's staffing demand is a handful of roles (one answer, no next page).
        return await clients.system.list_staffing_demands_of(chunk.split(",")), None

    return await _by_project(project_ids, read, "the projects' staffing demand", page_size=_PAGE)


async def _work_of(
    project: Project, today: dt.date, shared: dict[str, asyncio.Task[dict[str, list[Any]]]]
) -> _Work:
    read: dict[str, list[Any]] = {}
    for source, task in shared.items():
        try:
            read[source] = (await task)[project.id]
        except (ProblemError, SectionFailure) as exc:  # every project's figures from it are unknown
            return _Work(error=_failure(exc, source))
    return _Work(
        budget=budget_figures(project, read[_TIME_SOURCE], read[_EXPENSE_SOURCE], read[_STAFFING_SOURCE]),
        unbilled=unbilled_figures(read[_BILLABLE_SOURCE], today),
    )


async def _portfolio_work(ask: _PortfolioAsk, done: Composed) -> dict[str, _Work]:
    """Every project's staffing demand, time, expenses and unbilled work in listings of
    ``MAX_PROJECTS_AT_ONCE`` projects, all at once: the same question asked once, not once a project."""
    listed: _Listed = done.value("projects")
    ids = [p.id for p in listed.projects]
    shared: dict[str, asyncio.Task[dict[str, list[Any]]]] = {
        _STAFFING_SOURCE: asyncio.ensure_future(_projects_staffing(ask.clients, ids)),
        _TIME_SOURCE: asyncio.ensure_future(_projects_time(ask.clients, ids)),
        _EXPENSE_SOURCE: asyncio.ensure_future(_projects_expenses(ask.clients, ids)),
        _BILLABLE_SOURCE: asyncio.ensure_future(billable_items_of(ask.clients, ids, ask.today)),
    }
    try:
        work = await asyncio.gather(*(_work_of(p, ask.today, shared) for p in listed.projects))
    finally:
        for task in shared.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved: each project said it, or none needed it
    return {p.id: w for p, w in zip(listed.projects, work, strict=True)}


DELIVERY_PORTFOLIO_VIEW: View[_PortfolioAsk] = View(
    "delivery.portfolio",
    summary="A delivery manager's projects, at risk first",
    sections=[
        Section(
            "projects",
            (_PROJECT_SOURCE,),
            _portfolio_projects,
            required=True,
            timeout=8.0,
            description=f"The PSA's projects matching the filters (at most {PORTFOLIO_MAX_PROJECTS}).",
        ),
        Section(
            "deals",
            (_DEAL_SOURCE,),
            _portfolio_deals,
            timeout=8.0,
            description="The won deals, for each project's legal entity. Down: legal entities are null, and "
            "a `legal_entity` filter cannot be applied (503 `source-unavailable`).",
        ),
        Section(
            "work",
            (_TIME_SOURCE, _EXPENSE_SOURCE, _BILLABLE_SOURCE, _STAFFING_SOURCE),
            _portfolio_work,
            timeout=25.0,
            after=("projects",),
            description=f"Every project's staffing demand, time, expenses and unbilled work, in listings of "
            f"{MAX_PROJECTS_AT_ONCE} projects: over budget and unbilled ageing. A project whose "
            "sources fail shows its risk as unknown (`risk.status: unavailable`), not as no risk.",
        ),
    ],
)

# Heavier risks first: over budget is money already lost, an overdue milestone delays billing, ageing
# unbilled work is billing already late.
_WEIGHTS = {"over_budget": 4, "milestone_overdue": 2, "unbilled_ageing": 1}


def _order(item: PortfolioProject) -> tuple[int, int, int, str, str]:
    risk = item.risk
    severity = sum(w for flag, w in _WEIGHTS.items() if getattr(risk, flag) is True)
    # Unknown risk sorts before "no risk" among projects with as many known flags.
    unknown = 0 if risk.status is SectionStatus.UNAVAILABLE else 1
    return (-risk.count, -severity, unknown, item.name.casefold(), item.project_id)


def portfolio_item(
    project: Project,
    deal: Opportunity | None,
    budget: BudgetFigures | None,
    unbilled: dict[str, Any] | None,
    error: SectionError | None,
    today: dt.date,
) -> PortfolioProject:
    """A project's portfolio line. ``budget`` and ``unbilled`` None: its work could not be read (``error``
    says why), so its budget and ageing risks are unknown."""
    known = budget is not None and unbilled is not None
    if not known and error is None:
        error = SectionError(code="source-unavailable", detail="the project's work could not be read")
    age = unbilled["oldest_age_days"] if unbilled is not None else None
    lines = milestone_lines(project, [], today)
    return PortfolioProject(
        project_id=project.id,
        name=project.name,
        status=project.status,
        manager_id=project.manager_id,
        legal_entity=project.legal_entity or (deal.legal_entity if deal else None),
        currency=project.currency,
        end_date=project.end_date,
        risk=project_risk(project, budget if known else None, age, today, error=None if known else error),
        budget=project.budget,
        actual=budget.amount_actual if budget else [],
        budget_percent_used=budget.amount_percent_used if budget else None,
        unbilled=unbilled["amount"] if unbilled is not None else [],
        oldest_unbilled_days=age,
        overdue_milestones=sum(1 for line in lines if line.overdue),
    )


def order_portfolio(items: Sequence[PortfolioProject]) -> list[PortfolioProject]:
    """At risk first: more risks, then heavier ones, then unknown risk before none, then by name."""
    return sorted(items, key=_order)


def _totals(items: Sequence[PortfolioProject]) -> PortfolioTotals:
    return PortfolioTotals(
        projects=len(items),
        at_risk=sum(1 for i in items if i.risk.count > 0),
        risk_unknown=sum(1 for i in items if i.risk.status is SectionStatus.UNAVAILABLE),
        budget=money_totals([(i.budget.currency, i.budget.amount) for i in items if i.budget]),
        actual=money_totals([(m.currency, m.amount) for i in items for m in i.actual]),
        unbilled=money_totals([(m.currency, m.amount) for i in items for m in i.unbilled]),
    )


ManagerFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Only this delivery manager's projects.", required=False
    ),
]
StatusFilter = Annotated[
    ProjectStatus | None,
    QueryParameter(
        description="Only projects in this status (default: planned, active and on hold).", required=False
    ),
]


@operation(
    "GET",
    "/experience/v1/delivery/projects",
    operation_id="listDeliveryPortfolio",
    summary="A delivery manager's projects, at risk first",
    description=(
        "The projects matching the filters, each with its risk flags (`over_budget`: more amount or hours "
        "used than budgeted; `milestone_overdue`: a milestone past its due date and not completed; "
        f"`unbilled_ageing`: approved billable work unbilled for more than {UNBILLED_AGEING_DAYS} days) "
        "and a short summary (budget used, unbilled amount). Ordered by the number of risks, then their "
        "severity (over budget, then milestone overdue, then unbilled ageing), projects whose risk is "
        "unknown before those without risk, then by name. Totals are per currency over every project of "
        f"the listing, not only the page. A portfolio reads at most {PORTFOLIO_MAX_PROJECTS} projects "
        f"(first by name; `truncated` says when more matched), their staffing demand, time, expenses and "
        f"unbilled work in listings of {MAX_PROJECTS_AT_ONCE} projects; "
        "narrow it with `manager_id`. Without `status`, only projects still being delivered (planned, "
        "active, on hold). When the CRM's deals cannot be read, `legal_entity` is null and "
        "`legal_entities_error` says why (a `legal_entity` filter then answers 503 `source-unavailable`); "
        "when a project's work cannot be read (or the `work` section as a whole), its `risk.status` is "
        "`unavailable` with the reason and `over_budget` and `unbilled_ageing` are null: unknown, not "
        "absent." + DELIVERY_PORTFOLIO_VIEW.describe()
    ),
    scopes=["experience:delivery"],
    errors=[*VENDOR_ERRORS],
    tags=["delivery"],
)
async def list_delivery_portfolio(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    manager_id: ManagerFilter = None,
    legal_entity: LegalEntityFilter = None,
    currency: CurrencyFilter = None,
    status: StatusFilter = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
) -> DeliveryPortfolio:
    listing = (
        "delivery.portfolio",
        manager_id or "",
        (legal_entity or "").upper(),
        currency or "",
        status.value if status else "",
    )
    # A cursor this tier did not issue is refused before anything is read.
    paging = Paging.of(listing, limit=limit, cursor=cursor)
    today = _today()
    done = await DELIVERY_PORTFOLIO_VIEW.compose(
        _PortfolioAsk(clients=clients, manager_id=manager_id, currency=currency, status=status, today=today)
    )
    listed: _Listed = done.value("projects")
    deals: dict[str, Opportunity] = done.value_or("deals", {})
    work: dict[str, _Work] = done.value_or("work", {})
    if legal_entity is not None and not done.ok("deals"):
        deals_error = done.error("deals")
        raise ProblemError(
            "source-unavailable",
            "The legal entity of a project is its deal's, and the CRM's deals could not be read: "
            f"{deals_error.code if deals_error else 'unavailable'}",
            headers={"Retry-After": "5"},
            extra={"retry_after": 5, "section": "deals"},
        )
    work_error = done.error("work")
    items: list[PortfolioProject] = []
    for project in listed.projects:
        deal = deals.get(f"project:{project.id}") or deals.get(f"deal:{project.external_key}")
        found = work.get(project.id) or _Work(error=work_error)
        item = portfolio_item(project, deal, found.budget, found.unbilled, found.error, today)
        if legal_entity is None or (item.legal_entity or "").upper() == legal_entity.upper():
            items.append(item)
    items = order_portfolio(items)
    page, next_cursor = paging.cut(items)
    return DeliveryPortfolio(
        items=page,
        next_cursor=next_cursor,
        totals=_totals(items),
        unbilled_ageing_days=UNBILLED_AGEING_DAYS,
        truncated=listed.truncated,
        legal_entities_error=done.error("deals"),
    )


delivery_routes = [list_delivery_portfolio, get_delivery_project_view]
