"""The delivery view's figures, worked out from canonical records (no sandbox): money stays per currency,
a budget is compared only in its own currency, and an unknown risk is never ordered as "no risk"."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from contracts.models import (
    BillableItem,
    BillableItemKind,
    Expense,
    Milestone,
    MilestoneStatus,
    Project,
    ProjectStatus,
    StaffingDemand,
    TimeEntry,
)
from contracts.models.common import Money
from experience_apis.delivery import (
    UNBILLED_AGEING_DAYS,
    budget_figures,
    order_portfolio,
    portfolio_item,
    project_risk,
    unbilled_figures,
)

TODAY = dt.date(2026, 6, 15)


def _usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


def _project(
    pid: str = "1", name: str = "Alpha", budget: str = "1000.00", milestones: list[Milestone] | None = None
) -> Project:
    return Project(
        id=pid,
        name=name,
        status=ProjectStatus.ACTIVE,
        currency="USD",
        budget=_usd(budget),
        milestones=milestones or [],
    )


def _entry(hours: str, rate: str, *, approved: bool = True, currency: str = "USD") -> TimeEntry:
    return TimeEntry(
        id=f"t{hours}{rate}{approved}",
        project_id="1",
        person_id="p",
        date=TODAY,
        hours=Decimal(hours),
        billable=True,
        approved=approved,
        rate=Money(amount=Decimal(rate), currency=currency),
    )


def _expense(amount: str, currency: str) -> Expense:
    return Expense(
        id=f"x{amount}{currency}",
        project_id="1",
        person_id="p",
        date=TODAY,
        category="Travel",
        amount=Money(amount=Decimal(amount), currency=currency),
        billable=True,
        approved=True,
    )


def _demand(hours: str, assignee: str | None = None) -> StaffingDemand:
    return StaffingDemand(
        id=f"d{hours}", project_id="1", role="Consultant", hours=Decimal(hours), assignee_id=assignee
    )


def test_actuals_stay_per_currency_and_the_budget_compares_only_its_own() -> None:
    figures = budget_figures(
        _project(budget="1000.00"),
        [_entry("2.5", "150.00"), _entry("1", "100.00", approved=False)],
        [_expense("99.99", "USD"), _expense("5000.00", "EUR")],
        [_demand("3"), _demand("1", assignee="p")],
    )
    assert (figures.hours_approved, figures.hours_not_approved, figures.hours_actual) == (
        Decimal("2.5"),
        Decimal(1),
        Decimal("3.5"),
    )
    assert figures.amount_time == [_usd("475.00")]
    assert figures.amount_expenses == [Money(amount=Decimal("5000.00"), currency="EUR"), _usd("99.99")]
    assert figures.amount_actual == [Money(amount=Decimal("5000.00"), currency="EUR"), _usd("574.99")]
    # 5000 EUR is not "over" a 1000 USD budget: only the USD actual is compared.
    assert figures.amount_remaining == _usd("425.01")
    assert figures.amount_percent_used == Decimal("57.5")
    assert figures.over_budget_amount is False
    # Hours: 3.5 booked against 4 planned.
    assert figures.hours_budget == Decimal(4)
    assert figures.hours_remaining == Decimal("0.5")
    assert figures.over_budget is False


def test_more_hours_than_planned_is_over_budget_even_within_the_amount() -> None:
    figures = budget_figures(_project(budget="1000.00"), [_entry("5", "10.00")], [], [_demand("4")])
    assert figures.over_budget_hours is True
    assert figures.over_budget_amount is False
    assert figures.over_budget is True
    assert figures.hours_percent_used == Decimal("125.0")


def test_without_staffing_the_hours_budget_is_unknown_not_zero() -> None:
    figures = budget_figures(_project(), [_entry("5", "10.00")], [], None)
    assert figures.hours_budget is None
    assert figures.hours_percent_used is None
    assert figures.over_budget_hours is False


def test_unbilled_work_is_valued_per_currency_and_aged_from_the_oldest_item() -> None:
    items = [
        BillableItem(
            id="t1",
            kind=BillableItemKind.TIME,
            project_id="1",
            date=TODAY - dt.timedelta(days=31),
            description="time",
            quantity=Decimal("2"),
            rate=_usd("100.00"),
        ),
        BillableItem(
            id="t2",
            kind=BillableItemKind.TIME,
            project_id="1",
            date=TODAY,
            description="time without a rate",
            quantity=Decimal("1"),
        ),
        BillableItem(
            id="m1",
            kind=BillableItemKind.MILESTONE,
            project_id="1",
            date=TODAY - dt.timedelta(days=2),
            description="milestone",
            amount=Money(amount=Decimal("700"), currency="EUR"),
        ),
    ]
    figures = unbilled_figures(items, TODAY)
    assert figures["amount"] == [Money(amount=Decimal("700.00"), currency="EUR"), _usd("200.00")]
    assert figures["hours"] == Decimal(3)
    assert figures["unpriced_items"] == 1
    assert figures["oldest_age_days"] == 31 > UNBILLED_AGEING_DAYS


def test_the_portfolio_orders_by_risks_then_severity_unknown_before_none_then_name() -> None:
    overdue = [
        Milestone(
            id="m",
            project_id="x",
            name="Late",
            status=MilestoneStatus.IN_PROGRESS,
            due_date=TODAY - dt.timedelta(days=1),
        )
    ]
    over = budget_figures(_project(budget="10.00"), [_entry("1", "100.00")], [], None)
    fine = budget_figures(_project(budget="10000.00"), [_entry("1", "100.00")], [], None)
    unbilled_old: dict[str, Any] = {"amount": [], "oldest_age_days": UNBILLED_AGEING_DAYS + 1}
    calm: dict[str, Any] = {"amount": [], "oldest_age_days": None}
    rows = [
        portfolio_item(_project("a", "A calm"), None, fine, calm, None, TODAY),
        portfolio_item(_project("b", "B unknown"), None, None, None, None, TODAY),
        portfolio_item(_project("c", "C ageing"), None, fine, unbilled_old, None, TODAY),
        portfolio_item(_project("d", "D over"), None, over, calm, None, TODAY),
        portfolio_item(_project("e", "E late", milestones=overdue), None, fine, calm, None, TODAY),
        portfolio_item(_project("f", "F over and late", milestones=overdue), None, over, calm, None, TODAY),
    ]
    assert [r.project_id for r in order_portfolio(rows)] == ["f", "d", "e", "c", "b", "a"]
    unknown = rows[1].risk
    assert (unknown.status, unknown.over_budget, unknown.unbilled_ageing) == ("unavailable", None, None)
    assert project_risk(_project(), fine, 0, TODAY).count == 0
