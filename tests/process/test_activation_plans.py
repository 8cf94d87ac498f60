"""The records a won deal becomes, decided by the pure ``plan_*`` functions of the activation workflow."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.models import BillingModel, Customer, Money, Opportunity, ProjectMoney
from contracts.models.crm import (
    Address,
    DealMilestone,
    OpportunityStage,
    RateCardLine,
    RateUnit,
    RetainerTerms,
)
from process_apis.activation import (
    plan_billing_schedule,
    plan_project,
    plan_revenue_baseline,
    plan_staffing,
)
from process_apis.customers import plan_erp_customer
from process_apis.readiness import evaluate_readiness

CLOSE = dt.date(2026, 2, 20)


def _opportunity(**changes: Any) -> Opportunity:
    fields: dict[str, Any] = {
        "id": "006TEST0000000001",
        "name": "Acme - Data Platform",
        "customer_id": "001TEST0000000001",
        "stage": OpportunityStage.CLOSED_WON,
        "is_won": True,
        "is_closed": True,
        "amount": Decimal("120000.00"),
        "currency": "USD",
        "close_date": CLOSE,
        "billing_model": BillingModel.TIME_AND_MATERIALS,
        "legal_entity": "US01",
    }
    fields.update(changes)
    return Opportunity(**fields)


def _usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


MILESTONES = [
    DealMilestone(name="Discovery", amount=_usd("30000.25"), due_date=dt.date(2026, 3, 31)),
    DealMilestone(name="Build", amount=_usd("60000.50"), due_date=dt.date(2026, 6, 30)),
    DealMilestone(name="Go-live", amount=_usd("29999.25"), due_date=dt.date(2026, 8, 15)),
]

ACCOUNT = Customer(
    id="001TEST0000000001",
    name="Acme Analytics Inc",
    legal_entity="GB01",
    tax_jurisdiction="US-NY",
    tax_id="13-1234567",
    website="https://acme.example",
    currency="GBP",
    parent_id="001TEST0000000000",
    billing_address=Address(street="1 Main St", city="New York", country="US"),
)


# --- the ERP customer ------------------------------------------------------------------------------------


def test_the_erp_customer_is_the_crm_account_with_the_deals_legal_entity_and_currency() -> None:
    command = plan_erp_customer(ACCOUNT, _opportunity())
    assert command.crm_customer_id == ACCOUNT.id
    assert command.name == "Acme Analytics Inc"
    assert command.parent_crm_customer_id == "001TEST0000000000"
    assert (command.tax_jurisdiction, command.tax_id, command.website) == (
        "US-NY",
        "13-1234567",
        "https://acme.example",
    )
    assert command.billing_address == ACCOUNT.billing_address
    # The deal says who contracts and in what currency; the account is the fallback.
    assert (command.legal_entity, command.currency) == ("US01", "USD")
    fallback = plan_erp_customer(ACCOUNT, _opportunity(legal_entity=None, currency=None))
    assert (fallback.legal_entity, fallback.currency) == ("GB01", "GBP")


# --- the project -----------------------------------------------------------------------------------------


def test_the_project_carries_the_deal_and_is_keyed_by_the_opportunity() -> None:
    opp = _opportunity(billing_model=BillingModel.MILESTONE, milestones=MILESTONES)
    psa = plan_project(opp, customer_id=ACCOUNT.id, with_milestones=True)
    assert psa.external_key == opp.id
    assert psa.customer_id == ACCOUNT.id
    assert psa.name == opp.name
    assert psa.budget == ProjectMoney(amount=Decimal("120000.00"), currency="USD")
    assert (psa.currency, psa.billing_model, psa.legal_entity) == ("USD", BillingModel.MILESTONE, "US01")
    # From the close to the last milestone.
    assert (psa.start_date, psa.end_date) == (CLOSE, dt.date(2026, 8, 15))
    assert [(m.name, m.due_date, m.amount) for m in psa.milestones] == [
        (m.name, m.due_date, ProjectMoney(amount=m.amount.amount, currency="USD") if m.amount else None)
        for m in MILESTONES
    ]
    erp = plan_project(opp, customer_id="3060", with_milestones=False)
    assert erp.customer_id == "3060"
    assert erp.external_key == opp.id
    assert erp.milestones == []


def test_a_project_name_is_cut_to_what_the_systems_hold() -> None:
    assert len(plan_project(_opportunity(name="x" * 400), customer_id="c", with_milestones=False).name) == 255


# --- the billing schedule --------------------------------------------------------------------------------


def test_a_milestone_deal_bills_its_milestones_summing_to_the_deal() -> None:
    opp = _opportunity(billing_model=BillingModel.MILESTONE, milestones=MILESTONES)
    schedule = plan_billing_schedule(opp)
    assert schedule.external_key == f"{opp.id}.billing"
    assert (schedule.billing_model, schedule.currency) == (BillingModel.MILESTONE, "USD")
    assert [(line.date, line.milestone_name, line.amount) for line in schedule.lines] == [
        (dt.date(2026, 3, 31), "Discovery", Decimal("30000.25")),
        (dt.date(2026, 6, 30), "Build", Decimal("60000.50")),
        (dt.date(2026, 8, 15), "Go-live", Decimal("29999.25")),
    ]
    assert sum(line.amount or Decimal(0) for line in schedule.lines) == opp.amount


def test_a_milestone_without_a_date_is_billed_at_the_close() -> None:
    milestones = [
        DealMilestone(name="Kick-off", amount=_usd("20000.00")),
        DealMilestone(name="Delivery", amount=_usd("100000.00"), due_date=dt.date(2026, 5, 1)),
    ]
    opp = _opportunity(billing_model=BillingModel.FIXED_FEE, milestones=milestones)
    schedule = plan_billing_schedule(opp)
    assert [(line.date, line.amount) for line in schedule.lines] == [
        (CLOSE, Decimal("20000.00")),
        (dt.date(2026, 5, 1), Decimal("100000.00")),
    ]


def test_a_fixed_fee_deal_without_milestones_bills_the_whole_amount_at_the_close() -> None:
    schedule = plan_billing_schedule(_opportunity(billing_model=BillingModel.FIXED_FEE))
    assert [(line.date, line.amount, line.description) for line in schedule.lines] == [
        (CLOSE, Decimal("120000.00"), "Acme - Data Platform")
    ]


@pytest.mark.parametrize("model", [BillingModel.TIME_AND_MATERIALS, BillingModel.RETAINER])
def test_time_billed_deals_have_a_schedule_without_lines(model: BillingModel) -> None:
    # Milestones on a T&M deal (change requests) do not make it bill by milestone.
    schedule = plan_billing_schedule(_opportunity(billing_model=model, milestones=MILESTONES))
    assert schedule.billing_model == model
    assert schedule.lines == []


# --- staffing --------------------------------------------------------------------------------------------


def test_staffing_asks_for_the_hours_the_amount_buys_per_role() -> None:
    rate_card = [
        RateCardLine(role="Solution Architect", rate=_usd("250.00")),
        RateCardLine(role="Data Engineer", rate=_usd("1400.00"), unit=RateUnit.DAY),  # 175.00 an hour
        RateCardLine(role="Project Manager", rate=_usd("190.00"), unit=RateUnit.HOUR),
    ]
    opp = _opportunity(rate_card=rate_card, milestones=MILESTONES)
    demands = plan_staffing(opp)
    # 40000.00 each: 160 h at 250, 228.57 h at 175 (228.5 to the quarter hour), 210.53 h at 190 (210.5).
    assert [(d.role, d.hours) for d in demands] == [
        ("Solution Architect", Decimal("160")),
        ("Data Engineer", Decimal("228.5")),
        ("Project Manager", Decimal("210.5")),
    ]
    assert [d.external_key for d in demands] == [f"{opp.id}.staff.{n}" for n in (1, 2, 3)]
    assert {(d.start_date, d.end_date) for d in demands} == {(CLOSE, dt.date(2026, 8, 15))}


def test_staffing_hours_round_to_the_quarter_hour() -> None:
    rate_card = [RateCardLine(role="Analyst", rate=_usd("185.00"))]
    # 1000 / 185 = 5.41 hours: 5.5 to the nearest quarter; 1025 / 185 = 5.54: 5.5; 1050 / 185 = 5.68: 5.75.
    hours = [
        plan_staffing(_opportunity(amount=Decimal(amount), rate_card=rate_card))[0].hours
        for amount in ("1000.00", "1025.00", "1050.00")
    ]
    assert hours == [Decimal("5.5"), Decimal("5.5"), Decimal("5.75")]


def test_round_amounts_and_rates_give_hours_the_contract_accepts() -> None:
    # 100000 / 2 at 200.00 is exactly 250 hours: the hours must still be a plain decimal, not 2.5E+2.
    rate_card = [
        RateCardLine(role="Consultant", rate=_usd("200.00")),
        RateCardLine(role="Senior Consultant", rate=_usd("1600.00"), unit=RateUnit.DAY),
    ]
    demands = plan_staffing(_opportunity(amount=Decimal("100000"), rate_card=rate_card))
    assert [d.hours for d in demands] == [Decimal("250"), Decimal("250")]
    assert ["E" in str(d.hours) for d in demands] == [False, False]


def test_a_deal_without_a_rate_card_asks_for_its_project_manager() -> None:
    opp = _opportunity(milestones=MILESTONES)
    demands = plan_staffing(opp)
    assert len(demands) == 1
    (demand,) = demands
    assert demand.role == "Project Manager"  # a role the PSA has; hours are planned there
    assert demand.hours == 0
    assert demand.external_key == f"{opp.id}.staff.1"
    assert (demand.start_date, demand.end_date) == (CLOSE, dt.date(2026, 8, 15))


# --- readiness -------------------------------------------------------------------------------------------


def test_a_deal_larger_than_the_psa_holds_is_not_ready_and_says_why() -> None:
    fits = evaluate_readiness(_opportunity(amount=Decimal("21474836.47")), ACCOUNT)
    assert [r.passed for r in fits.checks if r.rule == "amount_fits"] == [True]
    report = evaluate_readiness(_opportunity(amount=Decimal("21474836.48")), ACCOUNT)
    [rule] = [r for r in report.checks if r.rule == "amount_fits"]
    assert not rule.passed
    assert "21,474,836.47" in rule.message
    assert not report.ready


# --- the revenue baseline for the FP&A system ------------------------------------------------------------


def _baseline(opp: Opportunity) -> list[tuple[str, Decimal]]:
    plan = plan_revenue_baseline(opp)
    assert plan is not None
    assert plan.currency == opp.currency
    assert plan.external_key == f"{opp.id}.baseline"
    return [(m.month, m.amount) for m in plan.months]


def test_a_milestone_deals_baseline_is_each_milestone_in_its_due_month() -> None:
    opp = _opportunity(billing_model=BillingModel.MILESTONE, milestones=MILESTONES)
    assert _baseline(opp) == [
        ("2026-03", Decimal("30000.25")),
        ("2026-06", Decimal("60000.50")),
        ("2026-08", Decimal("29999.25")),
    ]


def test_milestones_due_in_one_month_add_up_and_a_fixed_fee_without_any_is_planned_at_the_close() -> None:
    same_month = [
        DealMilestone(name="A", amount=_usd("100.10"), due_date=dt.date(2026, 3, 2)),
        DealMilestone(name="B", amount=_usd("200.20"), due_date=dt.date(2026, 3, 30)),
    ]
    assert _baseline(_opportunity(billing_model=BillingModel.FIXED_FEE, milestones=same_month)) == [
        ("2026-03", Decimal("300.30"))
    ]
    assert _baseline(_opportunity(billing_model=BillingModel.FIXED_FEE)) == [
        ("2026-02", Decimal("120000.00"))
    ]


def test_time_and_materials_is_spread_evenly_over_the_project_months_to_the_cent() -> None:
    # The project runs from the close (20 Feb) to its last milestone (15 Aug): seven months.
    opp = _opportunity(amount=Decimal("100000.00"), milestones=MILESTONES)
    months = _baseline(opp)
    assert [m for m, _ in months] == [f"2026-{n:02d}" for n in range(2, 9)]
    assert [a for _, a in months[:-1]] == [Decimal("14285.71")] * 6
    assert sum(a for _, a in months) == Decimal("100000.00")  # the last month takes the rounding


def test_time_and_materials_without_an_end_date_is_planned_in_the_close_month() -> None:
    assert _baseline(_opportunity(amount=Decimal("125000.50"))) == [("2026-02", Decimal("125000.50"))]


def test_a_retainer_plans_its_monthly_fee_for_the_months_its_amount_buys() -> None:
    opp = _opportunity(
        billing_model=BillingModel.RETAINER,
        amount=Decimal("10000.00"),
        retainer=RetainerTerms(monthly_fee=_usd("4000.00"), included_hours=Decimal(20)),
    )
    assert _baseline(opp) == [
        ("2026-02", Decimal("4000.00")),
        ("2026-03", Decimal("4000.00")),
        ("2026-04", Decimal("2000.00")),
    ]


def test_a_retainer_with_a_project_end_plans_its_fee_each_month_to_the_end() -> None:
    opp = _opportunity(
        billing_model=BillingModel.RETAINER,
        milestones=[DealMilestone(name="Renewal", amount=None, due_date=dt.date(2026, 4, 30))],
        retainer=RetainerTerms(monthly_fee=_usd("4000.00")),
    )
    assert _baseline(opp) == [(f"2026-{n:02d}", Decimal("4000.00")) for n in (2, 3, 4)]


def test_a_year_end_crossing_and_nothing_to_plan() -> None:
    opp = _opportunity(
        close_date=dt.date(2026, 11, 5),
        amount=Decimal("300.00"),
        milestones=[DealMilestone(name="End", amount=None, due_date=dt.date(2027, 1, 10))],
    )
    assert _baseline(opp) == [
        ("2026-11", Decimal("100.00")),
        ("2026-12", Decimal("100.00")),
        ("2027-01", Decimal("100.00")),
    ]
    assert plan_revenue_baseline(_opportunity(amount=None)) is None
    assert plan_revenue_baseline(_opportunity(amount=Decimal(0))) is None
