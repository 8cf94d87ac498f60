"""Experience tier contract types of the delivery view: one project as its delivery manager sees it (budget
against actuals, milestones and their billing, billed against unbilled, the revenue forecast, open staffing
demand), and the manager's portfolio with the projects at risk first.

Money is per currency, never summed across currencies (``list[Money]``: one entry per currency, sorted);
hours and percentages are decimals travelling as strings. Every section reports its own ``status`` and,
when it has no data, the ``error`` that says why (see ``contracts.models.experience``).
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated

import msgspec

from contracts.models.common import Money
from contracts.models.delivery import MilestoneStatus, Project, ProjectStatus, StaffingDemand
from contracts.models.experience import SectionError, SectionStatus
from contracts.models.planning import Forecast

__all__ = [
    "BilledSection",
    "BudgetFigures",
    "BudgetSection",
    "DeliveryPortfolio",
    "DeliveryProjectView",
    "ForecastSection",
    "MilestoneBillingState",
    "MilestoneLine",
    "MilestonesSection",
    "PortfolioProject",
    "PortfolioTotals",
    "ProjectInvoiceLine",
    "ProjectRisk",
    "StaffingSection",
    "UnbilledSection",
]

Hours = Annotated[Decimal, msgspec.Meta(description='Hours as a decimal string, e.g. "22.50".')]
Percent = Annotated[
    Decimal, msgspec.Meta(description='A percentage as a decimal string with one decimal, e.g. "87.5".')
]


class BudgetFigures(msgspec.Struct, kw_only=True, frozen=True):
    """Budget against actuals.

    Hours: the budget is the staffing demand's planned hours (what activation planned: the deal's amount
    at the rate card's rates; null when the project has no demand with hours). Actual hours are every time
    entry booked on the project, split into approved and not yet approved.

    Amount: the budget is the PSA project's budget. The actual is the time booked valued at the PSA's rate
    on each entry (approved or not) plus the expenses booked, per currency; ``remaining``, ``percent_used``
    and ``over_budget`` compare the budget with the actual in the budget's currency only (amounts in another
    currency are listed in ``actual`` and left out of the comparison)."""

    hours_budget: Hours | None = None
    hours_approved: Hours
    hours_not_approved: Hours
    hours_actual: Hours
    hours_remaining: Hours | None = None
    hours_percent_used: Percent | None = None
    amount_budget: Money | None = None
    amount_time: list[Money] = []
    amount_expenses: list[Money] = []
    amount_actual: list[Money] = []
    amount_remaining: Money | None = None
    amount_percent_used: Percent | None = None
    over_budget_hours: bool = False
    over_budget_amount: bool = False
    over_budget: Annotated[
        bool, msgspec.Meta(description="More amount or more hours used than budgeted.")
    ] = False


class BudgetSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    status: SectionStatus
    data: BudgetFigures | None = None
    # The staffing demand (the hours budget) could not be read: the hours budget is null, the rest is filled.
    hours_budget_error: SectionError | None = None
    error: SectionError | None = None


class MilestoneBillingState(enum.StrEnum):
    NOT_BILLABLE_YET = "not_billable_yet"  # not completed
    BILLABLE_UNBILLED = "billable_unbilled"  # completed, among the PSA's billable items, on no invoice yet
    INVOICED = "invoiced"  # on a PSA invoice that is not cancelled
    NOT_BILLABLE = "not_billable"  # completed, on no invoice, and not billable work (no billing milestone)
    UNKNOWN = "unknown"  # completed, but the project's invoices or billable items could not be read


class MilestoneLine(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str
    status: MilestoneStatus
    due_date: dt.date | None = None
    amount: Money | None = None
    billing_state: MilestoneBillingState
    psa_invoice_id: str | None = None
    erp_invoice_id: str | None = None
    overdue: Annotated[bool, msgspec.Meta(description="Its due date is past and it is not completed.")] = (
        False
    )


class MilestonesSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The project's milestones (from the project itself, so always there); their billing state needs the
    project's PSA invoices and billable items: when those cannot be read, a completed milestone's state is
    ``unknown`` and ``billing_error`` says why."""

    status: SectionStatus
    items: list[MilestoneLine] = []
    overdue: int = 0
    billing_error: SectionError | None = None


class ProjectInvoiceLine(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    psa_invoice_id: str
    status: str
    total: Money
    erp_invoice_id: str | None = None
    erp_invoice_number: str | None = None
    invoice_date: dt.date | None = None
    milestone_ids: list[str] = []


class BilledSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What the PSA invoiced for the project: ``billed`` the issued invoices (open or paid), net (the PSA
    invoice holds the items' amounts; tax is the ERP's), per currency; ``in_draft`` invoices recorded but
    not yet issued (e.g. awaiting finance approval); cancelled invoices are listed, never counted."""

    status: SectionStatus
    billed: list[Money] = []
    in_draft: list[Money] = []
    invoices: list[ProjectInvoiceLine] = []
    error: SectionError | None = None


class UnbilledSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Approved billable work not yet on an invoice (the PSA's billable items through today): time valued
    at the PSA's rate (the invoice prices it from the deal's rate card), expenses and completed milestones
    at their amounts. The age is counted from the date the work was done (or the milestone completed)."""

    status: SectionStatus
    amount: list[Money] = []
    items: int = 0
    hours: Hours = Decimal(0)
    oldest_date: dt.date | None = None
    oldest_age_days: int | None = None
    # Time items with no PSA rate: counted in ``items`` and ``hours``, not in ``amount``.
    unpriced_items: int = 0
    error: SectionError | None = None


class ForecastSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The FP&A revenue forecast (``data.project_id`` is the id the FP&A system keeps it under: the deal's
    ERP project, else the PSA project). ``status: not_applicable`` with ``detail`` when the FP&A system has
    no figures for the project (not an error); ``unavailable`` when it could not be read, or when the deal
    that names the ERP project could not be."""

    status: SectionStatus
    data: Forecast | None = None
    total: Money | None = None
    detail: str | None = None
    error: SectionError | None = None


class StaffingSection(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Staffing demand nobody is assigned to yet, with its hours; ``planned_hours`` is every demand's."""

    status: SectionStatus
    open_demands: list[StaffingDemand] = []
    open_hours: Hours = Decimal(0)
    planned_hours: Hours = Decimal(0)
    error: SectionError | None = None


class DeliveryProjectView(msgspec.Struct, kw_only=True, frozen=True):
    """One project for its delivery manager, as of ``as_of`` (UTC date)."""

    project_id: str
    as_of: dt.date
    project: Project
    legal_entity: str | None = None
    budget: BudgetSection
    milestones: MilestonesSection
    billed: BilledSection
    unbilled: UnbilledSection
    forecast: ForecastSection
    staffing: StaffingSection


class ProjectRisk(msgspec.Struct, kw_only=True, frozen=True):
    """A project's risk flags. ``milestone_overdue`` comes with the project; ``over_budget`` and
    ``unbilled_ageing`` need its time, expenses and billable items: when those cannot be read they are null
    and ``status`` is ``unavailable`` (the risk is unknown, not absent)."""

    status: SectionStatus
    over_budget: bool | None = None
    milestone_overdue: bool
    unbilled_ageing: bool | None = None
    count: Annotated[int, msgspec.Meta(description="How many of the flags are known to be raised.")]
    error: SectionError | None = None


class PortfolioProject(msgspec.Struct, kw_only=True, frozen=True):
    project_id: str
    name: str
    status: ProjectStatus
    manager_id: str | None = None
    legal_entity: str | None = None
    currency: str | None = None
    end_date: dt.date | None = None
    risk: ProjectRisk
    budget: Money | None = None
    actual: list[Money] = []
    budget_percent_used: Percent | None = None
    unbilled: list[Money] = []
    oldest_unbilled_days: int | None = None
    overdue_milestones: int = 0


class PortfolioTotals(msgspec.Struct, kw_only=True, frozen=True):
    """Over every project of the listing (not only the page), per currency."""

    projects: int
    at_risk: int
    risk_unknown: int
    budget: list[Money]
    actual: list[Money]
    unbilled: list[Money]


class DeliveryPortfolio(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A delivery manager's projects, at risk first, a page at a time."""

    items: list[PortfolioProject]
    next_cursor: str | None = None
    totals: PortfolioTotals
    unbilled_ageing_days: Annotated[
        int, msgspec.Meta(description="An unbilled approved item older than this many days is ageing.")
    ]
    truncated: Annotated[
        bool,
        msgspec.Meta(
            description="More projects matched than a portfolio reads: narrow the filters (e.g. manager_id)."
        ),
    ] = False
    legal_entities_error: Annotated[
        SectionError | None,
        msgspec.Meta(description="The deals (each project's legal entity) could not be read: it is null."),
    ] = None
