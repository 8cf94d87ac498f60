"""Project activation: a won deal becomes a staffed, billable project, exactly once.

Steps (each under the saga rules of ``process_apis.saga``):

1. check readiness (the rules of ``process_apis.readiness``) on the opportunity and its account, as the CRM
   has them now;
2. upsert the ERP customer (survivorship: the CRM owns name and hierarchy, the ERP billing and tax fields);
   a probable duplicate already in the ERP parks the run for finance instead of creating a second customer;
3. create the PSA project with the deal's milestones;
4. create the ERP project, then its billing schedule for the billing model;
5. raise staffing demand in the PSA, one per role sold;
6. write the project and customer ids and the activation status back to the opportunity;
7. publish ``project.activated``;
8. publish the deal's revenue baseline by month to the FP&A system (``fpa.publish_baseline``), under the
   ERP project id (the key the delivery view reads a forecast by first). Last, and only in runs started
   with ``FPA_PUBLISHING``: a run started before the step existed keeps the steps it began with, so its
   checkpoints line up when it is recovered. Planning never blocks delivery: the FP&A system down is
   retried for the retry window; a refusal (or the window spent) completes the activation with the issue
   in the result's ``fpa`` for finance (``process_apis.planning``).

Cancelling undoes, last first: the CRM write-back (status ``cancelled``), the billing schedule (voided), the
PSA project (closed). The ERP customer stays: it is master data other deals may share.

The planning functions (``plan_*``) are pure, so the mapping from a deal to the records it creates is tested
without a workflow.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
from dbos import DBOS

from contracts.models import (
    ActivationStatus,
    BillingModel,
    BillingSchedule,
    BillingScheduleCreate,
    Customer,
    Money,
    MonthlyAmount,
    Opportunity,
    OpportunityActivationUpdate,
    Project,
    ProjectCreate,
    ProjectMoney,
    RevenueBaseline,
    StaffingDemand,
    StaffingDemandCreate,
    deal_project_key,
)
from contracts.models.crm import RateUnit
from contracts.models.delivery import MilestoneInput
from contracts.models.finance import BillingScheduleLine
from contracts.models.process import Owner, ReadinessReport, RunState, Workflow
from process_apis.customers import plan_erp_customer, upsert_erp_customer
from process_apis.metrics import QUOTE_TO_PROJECT_SECONDS
from process_apis.planning import PlanningOutcome, publish_to_fpa
from process_apis.readiness import evaluate_readiness
from process_apis.saga import FPA_PUBLISHING, BusinessRuleViolation, RunCancelled, Saga, services

__all__ = [
    "ACTIVATION_WORKFLOW",
    "ActivationResult",
    "plan_billing_schedule",
    "plan_project",
    "plan_revenue_baseline",
    "plan_staffing",
    "project_activation",
]

ACTIVATION_WORKFLOW = "project_activation"
_HOURS_PER_DAY = Decimal(8)
_QUARTER = Decimal("0.25")
_CENT = Decimal("0.01")
_MAX_PLAN_MONTHS = 600  # RevenueBaseline.months' limit: 50 years of months


class ActivationResult(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    opportunity_id: str
    crm_customer_id: str
    erp_customer_id: str
    psa_project_id: str
    erp_project_id: str
    billing_schedule_id: str
    staffing_demand_ids: list[str]
    activated_at: dt.datetime
    closed_won_on: dt.date | None = None
    cancelled: bool = False
    compensated: list[str] = []
    # What the FP&A step did (absent in runs started before it existed).
    fpa: PlanningOutcome | None = None


# --- planning (pure) -------------------------------------------------------------------------------------


def _project_dates(opp: Opportunity) -> tuple[dt.date | None, dt.date | None]:
    due = [m.due_date for m in opp.milestones if m.due_date is not None]
    start = opp.close_date
    end = max(due) if due else None
    if start is not None and end is not None and end < start:
        end = None
    return start, end


def _project_money(money: Money | None) -> ProjectMoney | None:
    return None if money is None else ProjectMoney(amount=money.amount, currency=money.currency)


def plan_project(opp: Opportunity, *, customer_id: str, with_milestones: bool) -> ProjectCreate:
    """The project for a won deal, in the system whose customer id is ``customer_id``."""
    # Readiness checked both.
    assert opp.currency is not None
    assert opp.amount is not None
    start, end = _project_dates(opp)
    milestones = (
        [
            MilestoneInput(name=m.name, due_date=m.due_date, amount=_project_money(m.amount))
            for m in opp.milestones
        ]
        if with_milestones
        else []
    )
    return ProjectCreate(
        external_key=deal_project_key(opp.id),
        name=opp.name[:255],
        customer_id=customer_id,
        currency=opp.currency,
        budget=ProjectMoney(amount=opp.amount, currency=opp.currency),
        billing_model=opp.billing_model,
        legal_entity=opp.legal_entity,
        start_date=start,
        end_date=end,
        milestones=milestones,
    )


def plan_billing_schedule(opp: Opportunity, *, customer_id: str | None = None) -> BillingScheduleCreate:
    """Milestone and fixed-fee deals bill their milestones (or the whole amount at close when the deal has
    none); time and materials and retainers bill monthly from time, so their schedule has no lines."""
    assert opp.billing_model is not None
    assert opp.currency is not None
    assert opp.amount is not None
    lines: list[BillingScheduleLine] = []
    if opp.billing_model in (BillingModel.MILESTONE, BillingModel.FIXED_FEE):
        dated = [m for m in opp.milestones if m.amount is not None and m.amount.amount > 0]
        if dated:
            fallback = opp.close_date or dt.date.today()
            lines = [
                BillingScheduleLine(
                    date=m.due_date or fallback,
                    description=m.name,
                    amount=m.amount.amount if m.amount else None,
                    milestone_name=m.name,
                )
                for m in dated
            ]
        else:
            lines = [
                BillingScheduleLine(
                    date=opp.close_date or dt.date.today(), description=opp.name[:255], amount=opp.amount
                )
            ]
    return BillingScheduleCreate(
        external_key=f"{deal_project_key(opp.id)}.billing",
        billing_model=opp.billing_model,
        currency=opp.currency,
        lines=lines,
        customer_id=customer_id,
    )


def _month_key(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _months_from(start: dt.date, count: int) -> list[str]:
    index = start.year * 12 + start.month - 1
    return [f"{(index + i) // 12:04d}-{(index + i) % 12 + 1:02d}" for i in range(count)]


def _month_count(start: dt.date, end: dt.date) -> int:
    return (end.year * 12 + end.month) - (start.year * 12 + start.month) + 1


def _spread(amount: Decimal, months: list[str]) -> dict[str, Decimal]:
    """``amount`` in equal monthly parts, in cents; the last month takes what rounding left, so the parts
    add up to the amount exactly."""
    part = (amount / len(months)).quantize(_CENT, rounding=ROUND_DOWN)
    spread = dict.fromkeys(months, part)
    spread[months[-1]] = amount - part * (len(months) - 1)
    return spread


def plan_revenue_baseline(opp: Opportunity, *, today: dt.date | None = None) -> RevenueBaseline | None:
    """The deal's planned revenue by month, in its currency, for the FP&A system (None: nothing to plan).

    - milestone and fixed-fee deals: the billing schedule's lines (each milestone in its due month, or the
      whole amount at close for a deal with none), as they will be invoiced;
    - retainers: the monthly fee from the close month to the project's end, or, with no end date, as many
      months as the deal's amount buys (what is left of it in the month after);
    - time and materials (and a retainer without a usable fee): the amount spread evenly over the
      project's months, close to end; with no end date, the whole amount in the close month (the plan to
      refine in the FP&A tool).

    Months are calendar months (``YYYY-MM``); amounts are Decimal, in cents for a spread."""
    if opp.billing_model is None or opp.currency is None or opp.amount is None or opp.amount <= 0:
        return None
    start, end = _project_dates(opp)
    start = start or today or dt.date.today()
    amounts: dict[str, Decimal] = {}
    fee = opp.retainer.monthly_fee if opp.retainer is not None else None
    if opp.billing_model in (BillingModel.MILESTONE, BillingModel.FIXED_FEE):
        for line in plan_billing_schedule(opp).lines:
            month = _month_key(line.date)
            amounts[month] = amounts.get(month, Decimal(0)) + (line.amount or Decimal(0))
    elif (
        opp.billing_model == BillingModel.RETAINER
        and fee is not None
        and fee.currency == opp.currency
        and fee.amount > 0
    ):
        if end is not None:
            amounts = dict.fromkeys(
                _months_from(start, min(_month_count(start, end), _MAX_PLAN_MONTHS)), fee.amount
            )
        else:
            whole = min(int(opp.amount // fee.amount), _MAX_PLAN_MONTHS - 1)
            months = _months_from(start, whole + 1)
            amounts = dict.fromkeys(months[:whole], fee.amount)
            rest = opp.amount - fee.amount * whole
            if rest > 0:
                amounts[months[whole]] = rest
    else:
        count = min(_month_count(start, end), _MAX_PLAN_MONTHS) if end is not None else 1
        amounts = _spread(opp.amount, _months_from(start, count))
    planned = [MonthlyAmount(month=m, amount=a) for m, a in sorted(amounts.items()) if a != 0]
    if not planned:
        return None
    return RevenueBaseline(
        external_key=f"{deal_project_key(opp.id)}.baseline"[:80], currency=opp.currency, months=planned
    )


def plan_staffing(opp: Opportunity) -> list[StaffingDemandCreate]:
    """One demand per role on the rate card, with the hours the deal's amount buys at that role's rate
    when split evenly across roles (a planning estimate for resource managers, rounded to a quarter hour).
    A deal with no rate card (fixed fee, milestones) asks for its project manager, hours to be planned."""
    start, end = _project_dates(opp)
    if not opp.rate_card:
        return [
            StaffingDemandCreate(
                external_key=f"{deal_project_key(opp.id)}.staff.1",
                role="Project Manager",
                hours=Decimal(0),
                start_date=start,
                end_date=end,
            )
        ]
    assert opp.amount is not None
    share = opp.amount / len(opp.rate_card)
    demands = []
    for index, line in enumerate(opp.rate_card, start=1):
        hourly = line.rate.amount / _HOURS_PER_DAY if line.unit == RateUnit.DAY else line.rate.amount
        hours = (
            (share / hourly / _QUARTER).quantize(Decimal(1), ROUND_HALF_UP) * _QUARTER if hourly > 0 else 0
        )
        demands.append(
            StaffingDemandCreate(
                external_key=f"{deal_project_key(opp.id)}.staff.{index}",
                role=line.role,
                hours=Decimal(hours),
                start_date=start,
                end_date=end,
            )
        )
    return demands


# --- the workflow ----------------------------------------------------------------------------------------

_SALES_OPS_FIX = "Correct the opportunity or its account in the CRM, then replay the run."
_FINANCE_FIX = "Correct the customer in the ERP (or the account in the CRM), then replay the run."
_PROJECT_OPS_FIX = "Correct the project setup in the PSA (or the deal in the CRM), then replay the run."
_PLANNING_FIX = (
    "The project is active and billable; only its plan is missing from the FP&A system. Enter the deal's "
    "revenue baseline in the FP&A tool (or fix what it refused, such as the project's currency or a month "
    "outside its calendar, and publish the baseline again)."
)


class _Ready(msgspec.Struct, kw_only=True):
    opportunity: Opportunity
    account: Customer


async def _ready_opportunity(opportunity_id: str) -> _Ready:
    system = services().system
    opp: Opportunity = await system.get_opportunity(opportunity_id)
    account: Customer | None = None
    if opp.customer_id:
        account = await system.get_customer(opp.customer_id)
    report: ReadinessReport = evaluate_readiness(opp, account)
    if not report.ready or account is None:
        first = report.failed[0]
        raise BusinessRuleViolation(
            "; ".join(f.message for f in report.failed),
            owner=first.owner or Owner.SALES_OPERATIONS,
            remediation=" ".join(f.remediation for f in report.failed if f.remediation)
            + " Then replay the run.",
            code="activation-not-ready",
            data={"failed_rules": [msgspec.to_builtins(f) for f in report.failed]},
        )
    return _Ready(opportunity=opp, account=account)


@DBOS.workflow(name=ACTIVATION_WORKFLOW)
async def project_activation(
    opportunity_id: str, trigger: str | None = None, correlation_id: str | None = None
) -> dict[str, Any]:
    saga = Saga(Workflow.PROJECT_ACTIVATION, subject=opportunity_id, correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    try:
        result = await _activate(saga, opportunity_id)
    except RunCancelled:
        compensated = await saga.compensate()
        return await saga.finish(
            RunState.CANCELLED,
            {"opportunity_id": opportunity_id, "cancelled": True, "compensated": compensated},
        )
    return await saga.finish(RunState.COMPLETED, msgspec.to_builtins(result))


async def _activate(saga: Saga, opportunity_id: str) -> ActivationResult:
    system = services().system

    ready = await saga.step(
        "crm.check_readiness",
        lambda: _ready_opportunity(opportunity_id),
        result_type=_Ready,
        owner=Owner.SALES_OPERATIONS,
        remediation=_SALES_OPS_FIX,
    )
    opp, account = ready.opportunity, ready.account
    # Undone last: whatever the run got to, a cancelled activation leaves the deal marked cancelled in the
    # CRM (reverting the write-back when it happened), so sales can see it.
    saga.compensate_with(
        "crm.revert_write_back",
        lambda: system.update_opportunity_activation(
            opp.id,
            OpportunityActivationUpdate(activation_status=ActivationStatus.CANCELLED),
            idempotency_key=saga.key("crm.activation.revert"),
        ),
    )

    erp_customer = await saga.step(
        "erp.upsert_customer",
        lambda: upsert_erp_customer(
            system, plan_erp_customer(account, opp), account, idempotency_key=saga.key("erp.customer")
        ),
        result_type=Customer,
        owner=Owner.FINANCE,
        remediation=_FINANCE_FIX,
    )

    psa_project = await saga.step(
        "psa.create_project",
        lambda: system.create_psa_project(
            plan_project(opp, customer_id=account.id, with_milestones=True),
            idempotency_key=saga.key("psa.project"),
        ),
        result_type=Project,
        owner=Owner.PROJECT_OPERATIONS,
        remediation=_PROJECT_OPS_FIX,
    )
    saga.compensate_with(
        "psa.close_project",
        lambda: system.close_psa_project(psa_project.id, idempotency_key=saga.key("psa.project.close")),
    )

    erp_project = await saga.step(
        "erp.create_project",
        lambda: system.create_erp_project(
            plan_project(opp, customer_id=erp_customer.id, with_milestones=False),
            idempotency_key=saga.key("erp.project"),
        ),
        result_type=Project,
        owner=Owner.FINANCE,
        remediation=_FINANCE_FIX,
    )

    schedule = await saga.step(
        "erp.create_billing_schedule",
        lambda: system.create_billing_schedule(
            erp_project.id,
            plan_billing_schedule(opp, customer_id=erp_customer.id),
            idempotency_key=saga.key("erp.billing_schedule"),
        ),
        result_type=BillingSchedule,
        owner=Owner.FINANCE,
        remediation=_FINANCE_FIX,
    )
    saga.compensate_with(
        "erp.void_billing_schedule",
        lambda: system.void_billing_schedule(
            schedule.id, idempotency_key=saga.key("erp.billing_schedule.void")
        ),
    )

    async def raise_demand() -> list[StaffingDemand]:
        created = []
        for demand in plan_staffing(opp):
            created.append(
                await system.create_staffing_demand(
                    psa_project.id, demand, idempotency_key=saga.key(f"psa.{demand.external_key}")
                )
            )
        return created

    demands = await saga.step(
        "psa.raise_staffing_demand",
        raise_demand,
        result_type=list[StaffingDemand],
        owner=Owner.PROJECT_OPERATIONS,
        remediation=_PROJECT_OPS_FIX,
    )

    await saga.step(
        "crm.write_back",
        lambda: system.update_opportunity_activation(
            opp.id,
            OpportunityActivationUpdate(
                activation_status=ActivationStatus.ACTIVATED,
                psa_project_id=psa_project.id,
                erp_project_id=erp_project.id,
                erp_customer_id=erp_customer.id,
            ),
            idempotency_key=saga.key("crm.activation"),
        ),
        result_type=Opportunity,
        owner=Owner.SALES_OPERATIONS,
        remediation=_SALES_OPS_FIX,
    )

    activated_at = dt.datetime.fromisoformat(await DBOS.run_step_async({"name": "clock"}, _now_iso))
    result = ActivationResult(
        opportunity_id=opp.id,
        crm_customer_id=account.id,
        erp_customer_id=erp_customer.id,
        psa_project_id=psa_project.id,
        erp_project_id=erp_project.id,
        billing_schedule_id=schedule.id,
        staffing_demand_ids=[d.id for d in demands],
        activated_at=activated_at,
        closed_won_on=opp.close_date,
    )

    async def publish() -> dict[str, Any]:
        from contracts.models.events import PROJECT_ACTIVATED, ProjectActivated, event_id

        data = ProjectActivated(
            run_id=saga.run_id,
            opportunity_id=opp.id,
            crm_customer_id=account.id,
            erp_customer_id=erp_customer.id,
            psa_project_id=psa_project.id,
            erp_project_id=erp_project.id,
            billing_schedule_id=schedule.id,
            closed_won_on=opp.close_date,
            activated_at=activated_at,
        )
        # The id is the run's and the step's: a publish repeated after a crash is the same event.
        await services().events.publish(
            event_id=event_id(saga.run_id, "project.activated"),
            type=PROJECT_ACTIVATED,
            subject=opp.id,
            data=data,
            time=activated_at,
        )
        if opp.close_date is not None:
            closed = dt.datetime.combine(opp.close_date, dt.time(), tzinfo=dt.UTC)
            QUOTE_TO_PROJECT_SECONDS.observe(max(0.0, (activated_at - closed).total_seconds()))
        return {"published": True}

    await saga.step(
        "events.publish_project_activated",
        publish,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Check the event stream (Redis), then replay the run.",
        cancellable=False,
    )

    # The FP&A baseline, last: the project is set up and announced first, and a run started before this
    # step existed (no FPA_PUBLISHING attribute) never takes it, so the steps DBOS recorded for it keep
    # their places. Under the ERP project id: the delivery view reads the forecast by it first. Planning
    # never blocks delivery: a refusal or an FP&A outage longer than the retry window completes the run
    # with the issue in ``fpa`` instead of parking it (process_apis.planning says why).
    if await saga.started_with(FPA_PUBLISHING):
        baseline = plan_revenue_baseline(opp, today=activated_at.date())

        async def make() -> RevenueBaseline | None:
            return baseline

        outcome = await publish_to_fpa(
            saga,
            "fpa.publish_baseline",
            kind="baseline",
            project_id=erp_project.id,
            make=make,
            send=lambda plan, key: system.publish_revenue_baseline(erp_project.id, plan, idempotency_key=key),
            remediation=_PLANNING_FIX,
        )
        result = msgspec.structs.replace(result, fpa=outcome)
    return result


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
