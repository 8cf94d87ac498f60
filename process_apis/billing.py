"""Billing runs: a legal entity's approved work for a month becomes one invoice per project, exactly once.

A billing run (``billing_run``, run id ``br-...``) resolves its scope (the projects given, or every active
PSA project of the legal entity whose deal has a billing model), then starts **one child workflow per project
and period** whose DBOS workflow id is ``bill-{project}-{YYYY-MM}`` (``project_billing``). The id is the
exactly-once: DBOS inserts a workflow's row once, so a second billing run covering the same project and
period (started at the same instant, or a month later) attaches to the existing child instead of making
another, and the child bills that project-period once whatever the billing runs around it do.

The child, each step under the saga rules of ``process_apis.saga`` (vendor writes keyed by
``saga.key(step)``, the billing key ``bill:{project}:{YYYY-MM}`` as the vendors' business key):

1. ``billing.price``: read the PSA project, the deal (the project's external key is the opportunity id:
   ``deal_project_key``), its account and ERP customer (the CRM account's ERP customer, by the customer
   upsert keyed on the CRM id), look for a PSA invoice already under the billing key (one already issued
   ends the run: the project-period is billed), list the unbilled items through the period's last day (every
   page), and price them (``billing_pricing.price_period``). One step on purpose: a replay after a person
   fixed the rate card re-reads the deal, so the fix is priced. ``ParkedBilling`` parks the run for its
   owner with the remediation and the items; ``NothingToBill`` completes it with nothing raised.
2. ``psa.create_invoice``: the PSA draft invoice against exactly the priced items, **first**: it claims the
   items in the PSA, which refuses an item another invoice got first. A refusal re-reads and re-prices once
   (``billing.price.again``), then parks.
3. ``erp.create_invoice``: the ERP invoice (external key the billing key; a draft when the legal entity
   requires finance review).
4. Finance review: the run waits, durably, for ``POST /process/v1/billing-runs/{id}/approve``.
5. ``erp.post_invoice``, ``psa.finalize_invoice`` (with the ERP id and number), ``crm.invoice_status``, then
   ``invoice.issued``.
6. ``fpa.publish_actuals``: the project's invoiced revenue by month, as actuals, to the FP&A system, under
   the ERP project id (the key activation published the baseline under). Last, so the money part is
   complete first, and only in runs started with ``FPA_PUBLISHING`` (a run started before the step existed
   keeps the steps it began with). An FP&A import replaces the project's actuals, so the step sends the
   full set, read from the vendors each time: every issued PSA invoice of the project under a billing key,
   at its ERP invoice's net amount, in its billing month (a month whose invoices were all cancelled: 0).
   A retry or a replay sends the same figures under the same key; a refusal or an FP&A outage longer than
   the retry window completes the run with the issue in ``fpa`` (``process_apis.planning``).

Money: the lines are priced net, and the guard rails (the project's remaining budget, the legal entity's
invoice threshold) compare the net total, what the work is worth, whatever tax the ERP then adds. The ERP
computes the tax (Business Central's VAT, NetSuite's tax where the account has it), so once the ERP invoice
exists the run reports what it says: ``net`` (the lines), ``tax`` and ``total`` (gross, what the customer
owes: the ERP invoice's total). The CRM status (``total``, ``balance``) and ``invoice.issued`` carry the
ERP's gross figures too, the same ones the invoice-status sync reads later, so it sees no change to write.

An item approved after its period's run is unbilled and dated in the past: the next period's run bills it
(pricing takes every unbilled item dated up to the period's end), never reopening a posted invoice.

Cancelling undoes, last first: the CRM status (void), the ERP invoice (void or credit), the PSA invoice
(cancelled: its items are billable again); a child already completed is undone by a ``billing_void`` run
with the fixed id ``void-{child}``, so cancelling twice is the same as once. ``invoice.voided`` is published.

Billing again after a cancel: a billing run bills each project-period's *revision* (``billing_revision``,
a checkpointed step reading the run database): the first one not undone, or one past the highest that is
(cancelled, or completed and its void completed). Revision ``n >= 2`` is the child ``bill-{project}-
{YYYY-MM}-r{n}`` with the billing key ``bill:{project}:{YYYY-MM}:r{n}``, never the voided invoice's key
(every vendor looks the invoice up by it before writing, and would return the voided one). Runs started at
once read the same revision, and its fixed id runs it once; a child whose cancel or void is still under
way is attached to, as any other.

Where a billing run stands (``BillingRun.progress``, ``waiting_on``) is read from its children each time:
the billing run itself stays ``running`` until every child is final, and is never parked itself, so the
exception queue lists the parked child (which has the owner and the remediation), once.

Milestones billed on completion (``milestone_billing_run``, run id ``bm-...``, fired per legal entity by
``billing.milestone_schedules``): for the entity's fixed-fee and milestone deals with a completed milestone
the PSA has not invoiced, one child per project and day ``bill-{project}-{YYYY-MM-DD}`` (billing key
``bill:{project}:{YYYY-MM}:d{DD}``) bills only those milestones, dated that day. The PSA's claim of an item
for one invoice keeps the month's run from billing a milestone again, and the other way round.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from dbos import DBOS, SetWorkflowAttributes, SetWorkflowID
from litestar import Request, Response
from litestar.params import JSONBody, PathParameter, QueryParameter

from apis.config import BillingSettings
from apis.context import current_access, current_correlation_id
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models.billing import (
    BillableItem,
    BillableItemKind,
    CrmInvoiceStatus,
    CrmInvoiceStatusUpdate,
    PsaInvoice,
    PsaInvoiceStatus,
)
from contracts.models.common import Money
from contracts.models.crm import BillingModel, Customer, OpportunityStage
from contracts.models.finance import Invoice, InvoiceStatus
from contracts.models.planning import MonthlyAmount, RevenueActuals
from contracts.models.process import (
    BillingProgress,
    BillingRun,
    BillingRunRequest,
    BillingRunWait,
    Owner,
    Run,
    RunPage,
    RunState,
    WaitReason,
    Workflow,
)
from process_apis.billing_pricing import (
    NothingToBill,
    ParkedBilling,
    PeriodError,
    PricedInvoice,
    billing_key,
    milestone_billing_key,
    milestone_run_id,
    parse_billing_key,
    parse_period,
    project_run_id,
    source_id,
)
from process_apis.customers import plan_erp_customer
from process_apis.engine import QUEUE_NAME
from process_apis.metrics import APPROVAL_TO_INVOICE_SECONDS
from process_apis.planning import publish_to_fpa
from process_apis.saga import CONTROL_TOPIC, FPA_PUBLISHING, RunCancelled, Saga, classify, services
from system_apis.params import Cursor

__all__ = [
    "BILLING_ROUTES",
    "BILLING_RUN_WORKFLOW",
    "BILLING_SCHEDULE_WORKFLOW",
    "BILLING_VOID_WORKFLOW",
    "BILLING_WORKFLOWS",
    "MILESTONE_BILLING_WORKFLOW",
    "PROJECT_BILLING_WORKFLOW",
    "apply_billing_schedules",
    "billing_progress",
    "billing_revision",
    "billing_run",
    "billing_void",
    "install_billing_settings",
    "is_undone",
    "milestone_billing_run",
    "milestone_run_id",
    "project_billing",
    "project_run_id",
    "scheduled_billing",
    "scheduled_milestone_billing",
    "scheduled_milestone_run_id",
    "scheduled_run_id",
    "start_billing_run",
]

log = get_logger("stratum.process.billing")

BILLING_RUN_WORKFLOW = "billing_run"
PROJECT_BILLING_WORKFLOW = "project_billing"
BILLING_VOID_WORKFLOW = "billing_void"
BILLING_SCHEDULE_WORKFLOW = "billing_schedule"
MILESTONE_BILLING_WORKFLOW = "milestone_billing_run"
MILESTONE_SCHEDULE_WORKFLOW = "milestone_billing_schedule"
# Every billing workflow is a ``billing_run`` run to operations (runs listing, replay, cancel).
BILLING_WORKFLOWS = {
    BILLING_RUN_WORKFLOW: Workflow.BILLING_RUN,
    PROJECT_BILLING_WORKFLOW: Workflow.BILLING_RUN,
    BILLING_VOID_WORKFLOW: Workflow.BILLING_RUN,
    MILESTONE_BILLING_WORKFLOW: Workflow.BILLING_RUN,
}
_PAGE = 200
_RunId = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="The run's id.")]
_Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size (at most 200).")]

_billing_settings = BillingSettings()


def install_billing_settings(value: BillingSettings) -> None:
    """Set when the process tier is built: the legal entities' billing settings the children price with."""
    global _billing_settings
    _billing_settings = value


def _invoice_key(project_id: str, period: str, revision: int, on_day: str | None) -> str:
    if on_day:
        return milestone_billing_key(project_id, dt.date.fromisoformat(on_day))
    return billing_key(project_id, period, revision)


def _void_run_id(child_id: str) -> str:
    return f"void-{child_id}"


_PROJECT_OPS_FIX = (
    "Correct the project or its items in the PSA (or the deal in the CRM), then replay the run."
)
_FINANCE_FIX = "Correct the invoice or the customer in the ERP, then replay the run."
_SALES_OPS_FIX = "Correct the deal or its account in the CRM, then replay the run."
_PLANNING_FIX = (
    "The invoice is issued; only the project's actuals are missing from the FP&A system. Enter the "
    "project's invoiced revenue for the month in the FP&A tool (or fix what it refused, such as the "
    "project's currency, and let the project's next billing run publish its actuals again)."
)


# --- the per-project child -------------------------------------------------------------------------------


class _Priced(msgspec.Struct, kw_only=True, frozen=True):
    """What ``billing.price`` read and decided (checkpointed, so a recovered run decides the same)."""

    outcome: PricedInvoice | NothingToBill
    opportunity_id: str
    crm_customer_id: str
    erp_customer_id: str
    # An invoice already issued under the billing key (by an earlier run of this project-period).
    issued_psa_invoice_id: str | None = None
    # When each billed item was approved (approval-to-invoice time).
    approved_at: list[dt.datetime] = []


class _Claim(msgspec.Struct, kw_only=True, frozen=True):
    invoice: PsaInvoice | None = None
    refused: str | None = None


async def _all_items(project_id: str, through: dt.date) -> list[BillableItem]:
    system = services().system
    items: list[BillableItem] = []
    cursor: str | None = None
    while True:
        page = await system.list_billable_items(project_id, through=through, limit=_PAGE, cursor=cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return items


async def _read_and_price(
    saga: Saga, project_id: str, period_key: str, step: str, revision: int, on_day: str | None
) -> _Priced:
    from process_apis.billing_pricing import price_period

    system = services().system
    # The period was checked when the run was asked for; the child prices a past month whenever it runs.
    period = parse_period(period_key, today=dt.date.max)
    day = dt.date.fromisoformat(on_day) if on_day else None
    key = _invoice_key(project_id, period.key, revision, on_day)
    project = await system.get_psa_project(project_id)
    opportunity_id = project.external_key or ""
    deal = await system.get_opportunity(opportunity_id)
    if not deal.customer_id:
        from process_apis.saga import BusinessRuleViolation

        raise BusinessRuleViolation(
            f"Deal {deal.id} of project {project_id} has no account to bill.",
            owner=Owner.SALES_OPERATIONS,
            remediation=_SALES_OPS_FIX,
            code="deal-without-account",
        )
    account = await system.get_customer(deal.customer_id)
    # The CRM account's ERP customer: the upsert keyed by the CRM id finds the one activation made (and
    # returns it as the ERP has it now: credit hold included).
    customer: Customer = await system.upsert_erp_customer(
        plan_erp_customer(account, deal), idempotency_key=saga.key(f"{step}.erp.customer")
    )
    existing = await system.find_psa_invoice(key)
    common = {
        "opportunity_id": deal.id,
        "crm_customer_id": account.id,
        "erp_customer_id": customer.id,
    }
    if existing is not None and existing.status in (PsaInvoiceStatus.OPEN, PsaInvoiceStatus.PAID):
        return _Priced(
            outcome=NothingToBill(
                billing_key=key,
                project_id=project_id,
                period=period.key,
                message=f"{key} was invoiced already (PSA invoice {existing.id}).",
            ),
            issued_psa_invoice_id=existing.id,
            **common,
        )
    items = await _all_items(project_id, period.last_day)
    settings = _billing_settings
    outcome = price_period(
        deal=deal,
        project=project,
        items=items,
        period=period,
        customer=customer,
        entity=settings.for_entity(project.legal_entity or deal.legal_entity),
        erp_project_id=deal.system_ids.erp,
        hours_per_day=settings.hours_per_day,
        revision=revision,
        on_day=day,
    )
    if isinstance(outcome, ParkedBilling):
        raise outcome.violation()
    approved: list[dt.datetime] = []
    if isinstance(outcome, PricedInvoice):
        billed = {
            *(f"time:{i}" for i in outcome.time_entry_ids),
            *(f"expense:{i}" for i in outcome.expense_ids),
            *(f"milestone:{i}" for i in outcome.milestone_ids),
        }
        # When the PSA does not say when an item was approved, its last change stands in (approving an
        # item is the last change an unbilled, approved item had).
        stamps = ((i.approved_at or i.updated_at, source_id(i)) for i in items)
        approved = [at for at, sid in stamps if at is not None and sid in billed]
    return _Priced(outcome=outcome, approved_at=approved, **common)


async def _price(
    saga: Saga, project_id: str, period: str, step: str, revision: int, on_day: str | None
) -> _Priced:
    return await saga.step(
        step,
        lambda: _read_and_price(saga, project_id, period, step, revision, on_day),
        result_type=_Priced,
        owner=Owner.PROJECT_OPERATIONS,
        remediation=_PROJECT_OPS_FIX,
    )


async def _claim(saga: Saga, priced: PricedInvoice, step: str, *, tolerate_refusal: bool) -> _Claim:
    system = services().system

    async def create() -> _Claim:
        try:
            invoice = await system.create_psa_invoice(
                priced.psa_invoice(draft=True), idempotency_key=saga.key(step)
            )
        except Exception as exc:
            failure = classify(exc)
            if tolerate_refusal and failure.kind == "business":
                # An item another invoice got first: the caller re-reads and re-prices once.
                return _Claim(refused=failure.message)
            raise
        return _Claim(invoice=invoice)

    return await saga.step(
        step, create, result_type=_Claim, owner=Owner.PROJECT_OPERATIONS, remediation=_PROJECT_OPS_FIX
    )


def _nothing(priced: _Priced, outcome: NothingToBill) -> dict[str, Any]:
    return {
        "billing_key": outcome.billing_key,
        "project_id": outcome.project_id,
        "period": outcome.period,
        "opportunity_id": priced.opportunity_id,
        "nothing_to_bill": outcome.message,
        "psa_invoice_id": priced.issued_psa_invoice_id,
    }


class _Undo:
    """What a cancel undoes, as the run got to it (filled as the steps complete)."""

    def __init__(self) -> None:
        self.erp_invoice_id: str | None = None
        self.psa_invoice_id: str | None = None


@DBOS.workflow(name=PROJECT_BILLING_WORKFLOW)
async def project_billing(
    project_id: str,
    period: str,
    billing_run_id: str | None = None,
    correlation_id: str | None = None,
    revision: int = 1,
    on_day: str | None = None,
) -> dict[str, Any]:
    """Bill ``project_id`` for ``period`` (its ``revision``), or, with ``on_day`` (ISO date), only its
    milestones completed by that day (``milestone_billing_run``)."""
    key = _invoice_key(project_id, period, revision, on_day)
    saga = Saga(Workflow.BILLING_RUN, subject=key, correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    undo = _Undo()
    try:
        result = await _bill(saga, project_id, period, undo, revision, on_day)
    except RunCancelled:
        compensated = await saga.compensate()
        await _publish_voided(saga, project_id, period, key, undo.erp_invoice_id, undo.psa_invoice_id)
        return await saga.finish(
            RunState.CANCELLED,
            {
                "billing_key": key,
                "project_id": project_id,
                "period": period,
                "revision": revision,
                "cancelled": True,
                "compensated": compensated,
                "erp_invoice_id": undo.erp_invoice_id,
                "psa_invoice_id": undo.psa_invoice_id,
            },
        )
    return await saga.finish(RunState.COMPLETED, result)


async def _bill(
    saga: Saga, project_id: str, period: str, undo: _Undo, revision: int, on_day: str | None
) -> dict[str, Any]:
    system = services().system
    priced_run = await _price(saga, project_id, period, "billing.price", revision, on_day)
    if isinstance(priced_run.outcome, NothingToBill):
        return _nothing(priced_run, priced_run.outcome)
    priced = priced_run.outcome

    claim = await _claim(saga, priced, "psa.create_invoice", tolerate_refusal=True)
    if claim.invoice is None:
        log.info("billing_items_claimed_elsewhere", billing_key=priced.billing_key, refusal=claim.refused)
        priced_run = await _price(saga, project_id, period, "billing.price.again", revision, on_day)
        if isinstance(priced_run.outcome, NothingToBill):
            return _nothing(priced_run, priced_run.outcome)
        priced = priced_run.outcome
        claim = await _claim(saga, priced, "psa.create_invoice.again", tolerate_refusal=False)
    psa_invoice = claim.invoice
    assert psa_invoice is not None
    undo.psa_invoice_id = psa_invoice.id
    saga.compensate_with(
        "psa.cancel_invoice",
        lambda: system.cancel_psa_invoice(psa_invoice.id, idempotency_key=saga.key("psa.invoice.cancel")),
    )

    erp_invoice = await saga.step(
        "erp.create_invoice",
        lambda: system.create_invoice(priced.invoice, idempotency_key=saga.key("erp.invoice")),
        result_type=Invoice,
        owner=Owner.FINANCE,
        remediation=_FINANCE_FIX,
    )
    undo.erp_invoice_id = erp_invoice.id
    saga.compensate_with(
        "erp.void_invoice",
        lambda: system.void_invoice(erp_invoice.id, idempotency_key=saga.key("erp.invoice.void")),
    )

    summary: dict[str, Any] = {
        "billing_key": priced.billing_key,
        "project_id": project_id,
        "period": period,
        "opportunity_id": priced_run.opportunity_id,
        "psa_invoice_id": psa_invoice.id,
        "erp_invoice_id": erp_invoice.id,
        "erp_invoice_number": erp_invoice.number,
        "currency": priced.currency,
        **_amounts(erp_invoice, priced.total),
        "time_entries": len(priced.time_entry_ids),
        "expenses": len(priced.expense_ids),
        "milestones": len(priced.milestone_ids),
        "fees": len(priced.fee_items),
        "revision": revision,
        **({"on_day": on_day} if on_day else {}),
        # The PSA's own figure for its invoice: Kantata prices the items it holds at its own rates (a time
        # entry's rate_in_cents from the project's Kantata rate card), which Stratum does not set; where the
        # two rate cards disagree, it is said here and logged, and the ERP invoice stays the customer's.
        "psa_total": str(psa_invoice.total.amount),
    }
    if psa_invoice.total.amount != priced.total:
        log.warning(
            "psa_invoice_total_differs",
            billing_key=priced.billing_key,
            psa_invoice_id=psa_invoice.id,
            psa_total=str(psa_invoice.total.amount),
            net=str(priced.total),
            currency=priced.currency,
            cause="the PSA prices the items at its own rates, the invoice at the deal's rate card",
        )
    if priced.invoice.draft:
        # Finance reviews this legal entity's invoices: the draft waits (durably) for approve or cancel.
        await saga.set_state(RunState.RUNNING, result={**summary, "awaiting": "finance_approval"})
        while True:
            message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=24 * 3600)
            if isinstance(message, dict) and message.get("action") == "approve":
                await saga.set_state(RunState.RUNNING, result=None, approved_by=message.get("by"))
                break
            if isinstance(message, dict) and message.get("action") == "cancel":
                raise RunCancelled
        erp_invoice = await saga.step(
            "erp.post_invoice",
            lambda: system.post_invoice(erp_invoice.id, idempotency_key=saga.key("erp.invoice.post")),
            result_type=Invoice,
            owner=Owner.FINANCE,
            remediation=_FINANCE_FIX,
        )
        summary["erp_invoice_number"] = erp_invoice.number
        summary.update(_amounts(erp_invoice, priced.total))
    gross = erp_invoice.total.amount

    await saga.step(
        "psa.finalize_invoice",
        lambda: system.finalize_psa_invoice(
            psa_invoice.id,
            erp_invoice_id=erp_invoice.id,
            erp_invoice_number=erp_invoice.number,
            idempotency_key=saga.key("psa.invoice.finalize"),
        ),
        result_type=PsaInvoice,
        owner=Owner.PROJECT_OPERATIONS,
        remediation=_PROJECT_OPS_FIX,
    )

    def status(state: CrmInvoiceStatus, balance: Decimal) -> CrmInvoiceStatusUpdate:
        return CrmInvoiceStatusUpdate(
            erp_invoice_id=erp_invoice.id,
            opportunity_id=priced_run.opportunity_id,
            customer_id=priced_run.crm_customer_id,
            number=erp_invoice.number,
            status=state,
            currency=priced.currency,
            total=gross,
            balance=balance,
            issue_date=priced.invoice.issue_date,
            due_date=priced.invoice.due_date,
            erp_updated_at=erp_invoice.updated_at,
        )

    await saga.step(
        "crm.invoice_status",
        lambda: system.put_invoice_status(
            status(CrmInvoiceStatus.OPEN, erp_invoice.balance.amount), idempotency_key=saga.key("crm.invoice")
        ),
        result_type=dict,
        owner=Owner.SALES_OPERATIONS,
        remediation=_SALES_OPS_FIX,
    )
    saga.compensate_with(
        "crm.void_status",
        lambda: system.put_invoice_status(
            msgspec.structs.replace(
                status(CrmInvoiceStatus.VOID, Decimal(0)), erp_updated_at=dt.datetime.now(dt.UTC)
            ),
            idempotency_key=saga.key("crm.invoice.void"),
        ),
    )

    async def publish() -> dict[str, Any]:
        from contracts.models.events import INVOICE_ISSUED, InvoiceIssued, event_id

        issued_at = dt.datetime.now(dt.UTC)
        data = InvoiceIssued(
            run_id=saga.run_id,
            project_id=project_id,
            period=period,
            billing_key=priced.billing_key,
            erp_invoice_id=erp_invoice.id,
            erp_invoice_number=erp_invoice.number,
            psa_invoice_id=psa_invoice.id,
            opportunity_id=priced_run.opportunity_id,
            total=summary["total"],
            net=summary["net"],
            tax=summary["tax"],
            currency=priced.currency,
            time_entries=len(priced.time_entry_ids),
            expenses=len(priced.expense_ids),
            milestones=len(priced.milestone_ids),
            fees=len(priced.fee_items),
        )
        await services().events.publish(
            event_id=event_id(saga.run_id, "invoice.issued"),
            type=INVOICE_ISSUED,
            subject=priced.billing_key,
            data=data,
            time=issued_at,
        )
        for approved in priced_run.approved_at:
            APPROVAL_TO_INVOICE_SECONDS.observe(max(0.0, (issued_at - approved).total_seconds()))
        return {"published": True}

    await saga.step(
        "events.publish_invoice_issued",
        publish,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Check the event stream (Redis), then replay the run.",
        cancellable=False,
    )

    # The actuals, last: the invoice is issued and announced first, and a run started before this step
    # existed (no FPA_PUBLISHING attribute) never takes it, so the steps DBOS recorded for it keep their
    # places. Planning never holds up billing: a refusal or an FP&A outage longer than the retry window
    # completes the run with the issue in ``fpa`` (process_apis.planning says why).
    if await saga.started_with(FPA_PUBLISHING):
        fpa_project = priced.invoice.project_id or project_id
        current = (priced.billing_key, Decimal(summary["net"]))
        outcome = await publish_to_fpa(
            saga,
            "fpa.publish_actuals",
            kind="actuals",
            project_id=fpa_project,
            make=lambda: invoiced_actuals(project_id, priced.currency, current),
            send=lambda plan, key: system.publish_revenue_actuals(fpa_project, plan, idempotency_key=key),
            remediation=_PLANNING_FIX,
        )
        summary["fpa"] = msgspec.to_builtins(outcome)
    return summary


def _net(invoice: Invoice) -> Decimal:
    """An ERP invoice's revenue: its net amount (tax is not revenue)."""
    if invoice.subtotal is not None:
        return invoice.subtotal.amount
    if invoice.tax is not None:
        return invoice.total.amount - invoice.tax.amount
    return invoice.total.amount


async def invoiced_actuals(
    project_id: str, currency: str, current: tuple[str, Decimal] | None
) -> RevenueActuals | None:
    """The project's invoiced revenue by billing month, as the vendors hold it now: what an FP&A import,
    which replaces the project's actuals, must carry so no month is lost.

    Every PSA invoice of the project under one of its billing keys counts in the key's month (a milestone
    invoice ``...:dDD`` and a later revision ``...:rN`` in theirs): an issued one (open or paid) at its ERP
    invoice's net amount unless the ERP voided it; a cancelled one makes its month 0 unless another invoice
    bills it (the month's revenue was taken back); a draft (awaiting finance review) is not revenue yet.
    ``current`` (the run's own billing key and ERP net) counts whatever the PSA listing says.

    Two runs of one project (two months) publishing at the same moment may each read before the other's
    invoice is in the PSA; the last import then lacks the other's month until the project's next publish.
    ``external_key`` names what the figures were read for."""
    system = services().system
    current_key, current_net = current if current is not None else (None, Decimal(0))
    months: dict[str, Decimal] = {}
    seen_current = False
    for invoice in await system.list_psa_project_invoices(project_id):
        key = invoice.external_key
        parsed = parse_billing_key(key)
        if key is None or parsed is None or parsed[0] != project_id:
            continue  # not an invoice Stratum billed for this project
        month = parsed[1]
        if key == current_key:
            seen_current = True
            months[month] = months.get(month, Decimal(0)) + current_net
            continue
        if invoice.status == PsaInvoiceStatus.CANCELLED:
            months.setdefault(month, Decimal(0))
            continue
        if invoice.status not in (PsaInvoiceStatus.OPEN, PsaInvoiceStatus.PAID) or not invoice.erp_invoice_id:
            continue
        erp = await system.get_invoice(invoice.erp_invoice_id)
        if erp.status == InvoiceStatus.VOID:
            months.setdefault(month, Decimal(0))
            continue
        if erp.currency != currency:
            log.warning(
                "fpa_actuals_currency_skipped", erp_invoice_id=erp.id, currency=erp.currency, project=currency
            )
            continue
        months[month] = months.get(month, Decimal(0)) + _net(erp)
    if current_key is not None and not seen_current:
        split = parse_billing_key(current_key)
        if split is not None:
            months[split[1]] = months.get(split[1], Decimal(0)) + current_net
    if not months:
        return None
    return RevenueActuals(
        external_key=f"{current_key or f'bill:{project_id}'}.actuals"[:80],
        currency=currency,
        months=[MonthlyAmount(month=m, amount=a) for m, a in sorted(months.items())],
    )


def _amounts(invoice: Invoice, priced_net: Decimal) -> dict[str, str]:
    """What a run reports of the ERP invoice it raised: ``net`` (its lines; as priced when the ERP does not
    say), ``tax`` (as the ERP computed it; else gross minus net) and ``total``, gross: what the customer
    owes."""
    gross = invoice.total.amount
    net = invoice.subtotal.amount if invoice.subtotal is not None else priced_net
    tax = invoice.tax.amount if invoice.tax is not None else gross - net
    return {"net": str(net), "tax": str(tax), "total": str(gross)}


async def _publish_voided(
    saga: Saga,
    project_id: str,
    period: str,
    key: str,
    erp_invoice_id: str | None,
    psa_invoice_id: str | None,
) -> None:
    if erp_invoice_id is None and psa_invoice_id is None:
        return

    async def publish() -> dict[str, Any]:
        from contracts.models.events import INVOICE_VOIDED, InvoiceVoided, event_id

        await services().events.publish(
            event_id=event_id(saga.run_id, "invoice.voided"),
            type=INVOICE_VOIDED,
            subject=key,
            data=InvoiceVoided(
                run_id=saga.run_id,
                project_id=project_id,
                period=period,
                billing_key=key,
                erp_invoice_id=erp_invoice_id,
                psa_invoice_id=psa_invoice_id,
            ),
        )
        return {"published": True}

    await saga.step(
        "events.publish_invoice_voided",
        publish,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Check the event stream (Redis), then replay the run.",
        cancellable=False,
    )


# --- undoing a completed child ---------------------------------------------------------------------------


@DBOS.workflow(name=BILLING_VOID_WORKFLOW)
async def billing_void(child_id: str, correlation_id: str | None = None) -> dict[str, Any]:
    """Undo a completed project-period invoice: CRM status void, ERP invoice voided or credited, PSA invoice
    cancelled (its items billable again), in that order (the reverse of how they were made)."""
    saga = Saga(Workflow.BILLING_RUN, subject=child_id, correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    system = services().system

    async def read() -> dict[str, Any]:
        status = await DBOS.get_workflow_status_async(child_id)
        result = (status.attributes or {}).get("result") if status is not None else None
        return dict(result) if isinstance(result, dict) else {}

    done = await saga.step(
        "billing.read_invoice",
        read,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Replay the run.",
        cancellable=False,
    )
    erp_id: str | None = done.get("erp_invoice_id")
    psa_id: str | None = done.get("psa_invoice_id")
    opportunity_id: str | None = done.get("opportunity_id")
    undone: list[str] = []
    if erp_id and opportunity_id and done.get("total") is not None:
        await saga.step(
            "crm.void_status",
            lambda: system.put_invoice_status(
                CrmInvoiceStatusUpdate(
                    erp_invoice_id=erp_id,
                    opportunity_id=opportunity_id,
                    number=done.get("erp_invoice_number"),
                    status=CrmInvoiceStatus.VOID,
                    currency=done["currency"],
                    total=Decimal(done["total"]),
                    balance=Decimal(0),
                    erp_updated_at=dt.datetime.now(dt.UTC),
                ),
                idempotency_key=saga.key("crm.invoice.void"),
            ),
            result_type=dict,
            owner=Owner.SALES_OPERATIONS,
            remediation=_SALES_OPS_FIX,
            cancellable=False,
        )
        undone.append("crm.void_status")
    if erp_id:
        await saga.step(
            "erp.void_invoice",
            lambda: system.void_invoice(erp_id, idempotency_key=saga.key("erp.invoice.void")),
            result_type=Invoice,
            owner=Owner.FINANCE,
            remediation=_FINANCE_FIX,
            cancellable=False,
        )
        undone.append("erp.void_invoice")
    if psa_id:
        await saga.step(
            "psa.cancel_invoice",
            lambda: system.cancel_psa_invoice(psa_id, idempotency_key=saga.key("psa.invoice.cancel")),
            result_type=PsaInvoice,
            owner=Owner.PROJECT_OPERATIONS,
            remediation=_PROJECT_OPS_FIX,
            cancellable=False,
        )
        undone.append("psa.cancel_invoice")
    project_id = str(done.get("project_id", ""))
    period = str(done.get("period", ""))
    if project_id and period:
        key = str(done.get("billing_key") or billing_key(project_id, period))
        await _publish_voided(saga, project_id, period, key, erp_id, psa_id)
    result: dict[str, Any] = {
        "voided": child_id,
        "erp_invoice_id": erp_id,
        "psa_invoice_id": psa_id,
        "compensated": undone,
    }
    # The voided month's revenue out of the FP&A actuals: the project's invoiced months sent again (the
    # cancelled invoice's month 0 unless another invoice bills it), last, only where the child published
    # actuals, and only in runs started with FPA_PUBLISHING (runs started before keep their steps).
    published = done.get("fpa")
    currency = done.get("currency")
    if (
        isinstance(published, dict)
        and published.get("published")
        and isinstance(currency, str)
        and project_id
        and await saga.started_with(FPA_PUBLISHING)
    ):
        fpa_project = str(published.get("project_id") or project_id)
        outcome = await publish_to_fpa(
            saga,
            "fpa.publish_actuals",
            kind="actuals",
            project_id=fpa_project,
            make=lambda: invoiced_actuals(project_id, currency, None),
            send=lambda plan, key: system.publish_revenue_actuals(fpa_project, plan, idempotency_key=key),
            remediation=_PLANNING_FIX,
        )
        result["fpa"] = msgspec.to_builtins(outcome)
    return await saga.finish(RunState.COMPLETED, result)


# --- the billing run -------------------------------------------------------------------------------------


async def _scope(
    legal_entity: str, project_ids: list[str] | None, *, models: tuple[BillingModel, ...] | None = None
) -> list[str]:
    """The projects billed: those given, or every active PSA project of the legal entity whose deal has a
    billing model (of ``models``, when given) (the won deals activation wrote a PSA project id back to)."""
    if project_ids is not None:
        return list(dict.fromkeys(project_ids))
    system = services().system
    found: list[str] = []
    cursor: str | None = None
    while True:
        page = await system.list_opportunities(limit=200, cursor=cursor, stage=OpportunityStage.CLOSED_WON)
        for deal in page.items:
            psa_id = deal.project_id or deal.system_ids.psa
            if (
                psa_id
                and deal.billing_model is not None
                and (models is None or deal.billing_model in models)
                and (deal.legal_entity or "").upper() == legal_entity.upper()
                and deal.activation_status in (None, "activated")
            ):
                found.append(psa_id)
        cursor = page.next_cursor
        if not cursor:
            return list(dict.fromkeys(found))


async def _project_run(run_id: str) -> Run | None:
    """A project-period run (or its void) as the run database has it now; None when there is none."""
    from process_apis.runs import to_run

    status = await DBOS.get_workflow_status_async(run_id)
    if status is None or status.name not in (PROJECT_BILLING_WORKFLOW, BILLING_VOID_WORKFLOW):
        return None
    return to_run(status, None)


def is_undone(child: Run, void: Run | None) -> bool:
    """True when ``child``'s project-period is billable again: the child was cancelled (its compensations
    ran), or it completed and its ``void-`` run has completed. A cancel or a void still under way is not:
    a billing run attaches to that child until it is final."""
    if child.state == RunState.CANCELLED:
        return True
    return child.state == RunState.COMPLETED and void is not None and void.state == RunState.COMPLETED


async def billing_revision(project_id: str, period: str) -> int:
    """The revision of ``project_id``'s ``period`` a billing run bills (or attaches to) now: the first one
    that is not undone, or one past the highest that is.

    Read from the run database alone, so every billing run starting at the same time picks the same
    revision, and the revision's fixed workflow id makes it run once (exactly once by construction, as for
    the first revision)."""
    revision = 1
    while True:
        child = await _project_run(project_run_id(project_id, period, revision))
        if child is None:
            return revision
        void = await _project_run(_void_run_id(child.id)) if child.state == RunState.COMPLETED else None
        if not is_undone(child, void):
            return revision
        revision += 1


async def _billing_revisions(project_ids: list[str], period: str) -> list[int]:
    return [await billing_revision(p, period) for p in project_ids]


@DBOS.workflow(name=BILLING_RUN_WORKFLOW)
async def billing_run(
    legal_entity: str,
    period: str,
    project_ids: list[str] | None = None,
    trigger: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    saga = Saga(Workflow.BILLING_RUN, subject=f"{legal_entity}:{period}", correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    try:
        projects = await saga.step(
            "billing.scope",
            lambda: _scope(legal_entity, project_ids),
            result_type=list[str],
            owner=Owner.SALES_OPERATIONS,
            remediation=_SALES_OPS_FIX,
        )
        # Which revision of each project-period to bill or attach to, read once and checkpointed: a
        # recovered run attaches to the children it chose.
        revisions = await saga.step(
            "billing.revisions",
            lambda: _billing_revisions(projects, period),
            result_type=list[int],
            owner=Owner.INTEGRATION_OPERATIONS,
            remediation="Check the run database, then replay the run.",
        )
    except RunCancelled:
        return await saga.finish(RunState.CANCELLED, {"cancelled": True, "projects": []})
    outcomes = await _bill_children(
        saga, [(p, period, r, None) for p, r in zip(projects, revisions, strict=True)]
    )
    return await saga.finish(
        RunState.COMPLETED,
        {"legal_entity": legal_entity, "period": period, "projects": outcomes},
    )


async def _bill_children(
    saga: Saga, children: list[tuple[str, str, int, str | None]]
) -> list[dict[str, Any]]:
    """Start (or attach to) one ``project_billing`` run per (project, period, revision, on_day), then wait
    for each; their outcomes, in order."""
    ids = [
        milestone_run_id(p, dt.date.fromisoformat(day)) if day else project_run_id(p, period, revision)
        for p, period, revision, day in children
    ]
    await saga.set_state(RunState.RUNNING, projects=ids)
    handles = []
    for (project_id, period, revision, day), child_id in zip(children, ids, strict=True):
        # The fixed id makes the project-period's run once: a run already started by another billing run
        # is attached to, not made again.
        with (
            SetWorkflowID(child_id),
            SetWorkflowAttributes(
                {
                    "state": RunState.QUEUED.value,
                    "subject": _invoice_key(project_id, period, revision, day),
                    "trigger": f"billing-run:{saga.run_id}",
                    # Publishes its actuals to the FP&A system (its last step); fixed for the run's life.
                    FPA_PUBLISHING: True,
                }
            ),
        ):
            handles.append(
                await DBOS.enqueue_workflow_async(
                    QUEUE_NAME,
                    project_billing,
                    project_id,
                    period,
                    saga.run_id,
                    saga.correlation_id,
                    revision,
                    day,
                )
            )
    outcomes: list[dict[str, Any]] = []
    for child_id, handle in zip(ids, handles, strict=True):
        try:
            outcome = await handle.get_result()
        except Exception as exc:  # a child that failed outright: its own run says why
            outcome = {"failed": repr(exc)}
        outcomes.append({"run_id": child_id, **(outcome if isinstance(outcome, dict) else {})})
    return outcomes


# --- milestones billed on completion ---------------------------------------------------------------------

_ON_COMPLETION = (BillingModel.FIXED_FEE, BillingModel.MILESTONE)


async def _milestone_scope(legal_entity: str, day: dt.date) -> list[str]:
    """The legal entity's active projects of fixed-fee and milestone deals with a milestone completed by
    ``day`` and not invoiced yet (read from the PSA's billable items: what it has not claimed)."""
    system = services().system
    found: list[str] = []
    for project_id in await _scope(legal_entity, None, models=_ON_COMPLETION):
        cursor: str | None = None
        while True:
            page = await system.list_billable_items(project_id, through=day, limit=_PAGE, cursor=cursor)
            if any(
                i.kind == BillableItemKind.MILESTONE and not i.invoiced and i.psa_invoice_id is None
                for i in page.items
            ):
                found.append(project_id)
                break
            cursor = page.next_cursor
            if not cursor:
                break
    return found


@DBOS.workflow(name=MILESTONE_BILLING_WORKFLOW)
async def milestone_billing_run(
    legal_entity: str, day: str, trigger: str | None = None, correlation_id: str | None = None
) -> dict[str, Any]:
    """Bill at once the milestones of the legal entity's fixed-fee and milestone deals completed by ``day``
    (ISO date): one ``project_billing`` run per project and day (``bill-{project}-{YYYY-MM-DD}``, key
    ``bill:{project}:{YYYY-MM}:d{DD}``), pricing only those milestones, dated ``day``.

    Exactly once with the month's run by construction: the PSA claims a milestone for one invoice
    (Kantata's invoice takes ``billing_milestone_ids``/``story`` ids and marks them invoiced), so the month's
    run, or a milestone run of a later day, finds it invoiced and leaves it out; a claim refused because
    the other run got there first re-prices without it (``billing.price.again``)."""
    saga = Saga(Workflow.BILLING_RUN, subject=f"{legal_entity}:{day}", correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    try:
        projects = await saga.step(
            "billing.milestone_scope",
            lambda: _milestone_scope(legal_entity, dt.date.fromisoformat(day)),
            result_type=list[str],
            owner=Owner.SALES_OPERATIONS,
            remediation=_SALES_OPS_FIX,
        )
    except RunCancelled:
        return await saga.finish(RunState.CANCELLED, {"cancelled": True, "projects": []})
    outcomes = await _bill_children(saga, [(p, day[:7], 1, day) for p in projects])
    return await saga.finish(
        RunState.COMPLETED, {"legal_entity": legal_entity, "day": day, "projects": outcomes}
    )


def scheduled_milestone_run_id(legal_entity: str, day: dt.date) -> str:
    """The milestone billing run of a legal entity and day: one, however often the schedule fires."""
    return f"bm-scheduled-{legal_entity.upper()}-{day.isoformat()}"


@DBOS.workflow(name=MILESTONE_SCHEDULE_WORKFLOW)
async def scheduled_milestone_billing(scheduled_at: dt.datetime, legal_entity: Any) -> None:
    """Fired by the workflow engine's scheduler (``billing.milestone_schedules``): bill the legal entity's
    milestones completed by the day of ``scheduled_at`` (UTC), once per entity and day."""
    entity = str(legal_entity).upper()
    day = scheduled_at.astimezone(dt.UTC).date()
    with (
        SetWorkflowID(scheduled_milestone_run_id(entity, day)),
        SetWorkflowAttributes(
            {"state": RunState.QUEUED.value, "subject": f"{entity}:{day.isoformat()}", "trigger": "schedule"}
        ),
    ):
        await DBOS.enqueue_workflow_async(
            QUEUE_NAME, milestone_billing_run, entity, day.isoformat(), "schedule", None
        )


# --- the monthly schedule -------------------------------------------------------------------------------

_SCHEDULE_PREFIX = "billing-"
# Also under _SCHEDULE_PREFIX, so one sweep keeps both kinds of schedule as configured.
_MILESTONE_SCHEDULE_PREFIX = "billing-milestones-"


def _previous_month(moment: dt.datetime) -> str:
    first = moment.astimezone(dt.UTC).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def scheduled_run_id(legal_entity: str, period: str) -> str:
    """The scheduled billing run of a legal entity and month: one, however often the schedule fires."""
    return f"br-scheduled-{legal_entity.upper()}-{period}"


@DBOS.workflow(name=BILLING_SCHEDULE_WORKFLOW)
async def scheduled_billing(scheduled_at: dt.datetime, legal_entity: Any) -> None:
    """Fired by the workflow engine's scheduler: start the legal entity's billing run for the month before
    ``scheduled_at`` (every active project of the entity), once per entity and month."""
    entity = str(legal_entity).upper()
    period = _previous_month(scheduled_at)
    with (
        SetWorkflowID(scheduled_run_id(entity, period)),
        SetWorkflowAttributes(
            {"state": RunState.QUEUED.value, "subject": f"{entity}:{period}", "trigger": "schedule"}
        ),
    ):
        await DBOS.enqueue_workflow_async(QUEUE_NAME, billing_run, entity, period, None, "schedule", None)


async def apply_billing_schedules(settings: BillingSettings) -> None:
    """Make the engine's schedules the configured ones (``billing.schedules``): created or replaced, and
    those no longer configured deleted. Called once the engine has launched."""
    wanted: dict[str, tuple[str, str, Any]] = {
        f"{_SCHEDULE_PREFIX}{entity.upper()}": (entity.upper(), cron, scheduled_billing)
        for entity, cron in settings.schedules.items()
    }
    wanted.update(
        {
            f"{_MILESTONE_SCHEDULE_PREFIX}{entity.upper()}": (
                entity.upper(),
                cron,
                scheduled_milestone_billing,
            )
            for entity, cron in settings.milestone_schedules.items()
        }
    )
    for existing in await DBOS.list_schedules_async():
        name = existing["schedule_name"]
        if name.startswith(_SCHEDULE_PREFIX) and name not in wanted:
            await DBOS.delete_schedule_async(name)
    if wanted:
        await DBOS.apply_schedules_async(
            [
                {
                    "schedule_name": name,
                    "workflow_fn": workflow,
                    "schedule": cron,
                    "context": entity,
                }
                for name, (entity, cron, workflow) in wanted.items()
            ]
        )


# --- HTTP ------------------------------------------------------------------------------------------------


def _billing_run_id(client: str, key: str) -> str:
    return "br-" + uuid.uuid5(uuid.NAMESPACE_URL, f"stratum:billing-run:{client}:{key}").hex[:20]


async def start_billing_run(request: BillingRunRequest, *, run_id: str, trigger: str) -> tuple[Run, bool]:
    from process_apis.runs import _enqueue_once, _start_attributes, load_run

    existing = await load_run(run_id)
    if existing is not None:
        return existing, False
    attributes = _start_attributes(f"{request.legal_entity.upper()}:{request.period}", trigger)
    started = await _enqueue_once(
        run_id,
        attributes,
        lambda: DBOS.enqueue_workflow_async(
            QUEUE_NAME,
            billing_run,
            request.legal_entity.upper(),
            request.period,
            list(dict.fromkeys(request.project_ids)) or None,
            trigger,
            current_correlation_id(),
        ),
    )
    run = await load_run(run_id)
    assert run is not None
    return run, started


async def _children(run: Run) -> list[tuple[str, Run | None, Run | None]]:
    """The billing run's project runs (id, run if made yet, its void run if any), in scope order."""
    from process_apis.runs import load_run, run_database

    status = await run_database(DBOS.get_workflow_status_async(run.id))
    ids = (status.attributes or {}).get("projects") if status is not None else None
    children: list[tuple[str, Run | None, Run | None]] = []
    for child_id in ids if isinstance(ids, list) else []:
        child = await load_run(str(child_id))
        void = await load_run(_void_run_id(str(child_id)))
        children.append((str(child_id), child, void))
    return children


_PARKED_STATES = (RunState.EXCEPTION, RunState.DEAD_LETTER)


def _parked_reason(run: Run) -> WaitReason:
    return "exception" if run.state == RunState.EXCEPTION else "dead_letter"


def _project_of(child: Run) -> str | None:
    parsed = parse_billing_key(child.subject)  # a project run's subject is its billing key
    return parsed[0] if parsed is not None else None


def _waiting(run: Run, reason: WaitReason, project_id: str | None) -> BillingRunWait:
    issue = run.issue
    return BillingRunWait(
        run_id=run.id,
        reason=reason,
        project_id=project_id,
        owner=issue.owner if issue is not None else None,
        code=issue.code if issue is not None else None,
        step=issue.step if issue is not None else None,
        message=issue.message if issue is not None else None,
    )


def billing_progress(
    children: list[tuple[str, Run | None, Run | None]],
) -> tuple[BillingProgress, list[BillingRunWait]]:
    """Where the project runs stand and which of them the billing run waits on (and why).

    A project-period counts once, by what its run did last: a completed run whose void has completed is
    ``cancelled``, one whose void is under way ``running``, one whose void is parked ``parked``. Only
    completed, not voided runs that raised an invoice add to ``invoiced``, exactly (Decimal): their
    ``total``, what the customers owe, tax included."""
    counts = dict.fromkeys(("completed", "running", "parked", "awaiting_approval", "cancelled", "failed"), 0)
    invoiced: dict[str, Decimal] = {}
    waiting: list[BillingRunWait] = []
    for _child_id, child, void in children:
        if child is None:  # listed by the billing run, not queued yet
            counts["running"] += 1
            continue
        state = child.state
        result = child.result or {}
        if state == RunState.COMPLETED and void is not None:
            if void.state == RunState.COMPLETED:
                counts["cancelled"] += 1
            elif void.state in _PARKED_STATES:
                counts["parked"] += 1
                waiting.append(_waiting(void, _parked_reason(void), _project_of(child)))
            elif void.state == RunState.FAILED:
                counts["failed"] += 1
            else:
                counts["running"] += 1
        elif state == RunState.COMPLETED:
            counts["completed"] += 1
            if result.get("currency") and result.get("total") is not None:
                currency = str(result["currency"])
                invoiced[currency] = invoiced.get(currency, Decimal(0)) + Decimal(str(result["total"]))
        elif state == RunState.CANCELLED:
            counts["cancelled"] += 1
        elif state == RunState.FAILED:
            counts["failed"] += 1
        elif state in _PARKED_STATES:
            counts["parked"] += 1
            waiting.append(_waiting(child, _parked_reason(child), _project_of(child)))
        elif result.get("awaiting") == "finance_approval":
            counts["awaiting_approval"] += 1
            waiting.append(
                BillingRunWait(
                    run_id=child.id,
                    reason="awaiting_approval",
                    project_id=_project_of(child),
                    owner=Owner.FINANCE,
                    message=f"Draft ERP invoice {result.get('erp_invoice_id')} waits for finance's approval.",
                )
            )
        else:
            counts["running"] += 1
    progress = BillingProgress(
        projects=len(children),
        invoiced=[Money(amount=invoiced[c], currency=c) for c in sorted(invoiced)],
        **counts,
    )
    return progress, waiting


async def _billing_view(run_id: str) -> BillingRun:
    from process_apis.runs import load_run

    run = await load_run(run_id)
    if run is None or run.workflow != Workflow.BILLING_RUN:
        raise ProblemError("not-found", f"There is no billing run {run_id}.")
    children = await _children(run)
    progress, waiting = billing_progress(children)
    projects = [r for _, child, void in children for r in (child, void) if r is not None]
    return BillingRun(run=run, projects=projects, progress=progress, waiting_on=waiting)


async def _wait_view(view: BillingRun, seconds: int) -> BillingRun:
    """Wait until the run and its project runs are all final, parked or awaiting approval."""
    import asyncio
    import time

    deadline = time.monotonic() + seconds

    def settled(v: BillingRun) -> bool:
        runs = [v.run, *v.projects]
        return all(
            r.state
            in (
                RunState.COMPLETED,
                RunState.CANCELLED,
                RunState.FAILED,
                RunState.EXCEPTION,
                RunState.DEAD_LETTER,
            )
            or (r.result or {}).get("awaiting") == "finance_approval"
            for r in runs
        ) and (
            v.run.state != RunState.RUNNING
            or any(
                (r.result or {}).get("awaiting") or r.state in (RunState.EXCEPTION, RunState.DEAD_LETTER)
                for r in v.projects
            )
        )

    while not settled(view) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        view = await _billing_view(view.run.id)
    return view


def _prefer(request: Request[Any, Any, Any]) -> int | None:
    from process_apis.runs import _prefer_wait

    return _prefer_wait(request)


@operation(
    "POST",
    "/process/v1/billing-runs",
    operation_id="startBillingRun",
    summary="Bill a legal entity's approved work for a month: one invoice per project, exactly once",
    description=(
        "Starts the billing run (202, `Location` is the run) or returns the run this Idempotency-Key "
        "started (200). Each project in scope is billed by its own run `bill-{project}-{period}`, shared "
        "by every billing run that covers it: a project-period is invoiced once, however many runs ask. "
        "`project_ids` absent: every active PSA project of the legal entity whose deal has a billing model. "
        "409 for a month not over yet. `Prefer: wait=N` waits up to N seconds (at most 60)."
    ),
    scopes=["process:run"],
    errors=[409, *VENDOR_ERRORS],
    idempotency="required",
    status_code=202,
    success={
        200: (BillingRun, "The run for this Idempotency-Key already existed."),
        202: (BillingRun, "Accepted: the run is queued or running; follow `Location`."),
    },
    tags=["billing"],
)
async def start_billing_run_route(
    data: JSONBody[BillingRunRequest], request: Request[Any, Any, Any]
) -> Response[BillingRun]:
    try:
        parse_period(data.period)
    except PeriodError as exc:
        # Schema-valid, refused by the clock: the month is not over yet (409, not 422: the same body is
        # accepted once the month has passed).
        raise ProblemError("conflict", str(exc)) from None
    client = request.scope["auth"].client_id
    key = request.headers.get("idempotency-key", "")
    run, started = await start_billing_run(data, run_id=_billing_run_id(client, key), trigger="api")
    view = await _billing_view(run.id)
    wait = _prefer(request)
    if wait:
        view = await _wait_view(view, wait)
    return Response(view, status_code=202 if started else 200, headers={"Location": view.run.links.self})


@operation(
    "GET",
    "/process/v1/billing-runs/{run_id:str}",
    operation_id="getBillingRun",
    summary="A billing run and its project runs: state, invoices, issues",
    description="`Prefer: wait=N` (at most 60) waits until every project run is final, parked or waiting "
    "for finance approval.",
    scopes=["process:read"],
    errors=[404, 503],
    tags=["billing"],
)
async def get_billing_run(run_id: _RunId, request: Request[Any, Any, Any]) -> BillingRun:
    view = await _billing_view(run_id)
    wait = _prefer(request)
    if wait:
        view = await _wait_view(view, wait)
    return view


@operation(
    "GET",
    "/process/v1/billing-runs",
    operation_id="listBillingRuns",
    summary="Billing runs, newest first",
    scopes=["process:read"],
    errors=[503],
    tags=["billing"],
)
async def list_billing_runs(limit: _Limit = 50, cursor: Cursor = None) -> RunPage:
    from process_apis.runs import _list_runs

    return await _list_runs(
        listing="billing-runs",
        workflow=Workflow.BILLING_RUN,
        states=None,
        owner=None,
        older_than=None,
        newer_than=None,
        limit=limit,
        cursor=cursor,
        names=[BILLING_RUN_WORKFLOW, MILESTONE_BILLING_WORKFLOW],
    )


def _message(action: str) -> dict[str, Any]:
    access = current_access()
    return {
        "action": action,
        "correlation_id": current_correlation_id(),
        "by": (access.on_behalf_of or access.client_id) if access is not None else None,
    }


async def _project_runs(run_id: str) -> list[Run]:
    view = await _billing_view(run_id)
    if view.run.id.startswith("bill-"):
        return [view.run]
    return [r for r in view.projects if r.id.startswith("bill-")]


@operation(
    "POST",
    "/process/v1/billing-runs/{run_id:str}/approve",
    operation_id="approveBillingRun",
    summary="Finance approves a billing run's draft invoices: they are posted and issued",
    description="For a legal entity that requires finance review. Every project run of the billing run that "
    "waits for approval posts its ERP invoice, finalizes the PSA invoice, updates the CRM and publishes "
    "`invoice.issued`. 409 when none waits.",
    # process:read to see the run, and one of finance:approve (finance review) or process:admin.
    scopes=["process:read"],
    any_scopes=["finance:approve", "process:admin"],
    errors=[404, 409, 503],
    idempotency="required",
    status_code=202,
    tags=["billing"],
)
async def approve_billing_run(run_id: _RunId) -> Response[BillingRun]:
    from process_apis.runs import run_database

    waiting = [
        r for r in await _project_runs(run_id) if (r.result or {}).get("awaiting") == "finance_approval"
    ]
    if not waiting:
        raise ProblemError("conflict", "No invoice of this billing run waits for approval.")
    for child in waiting:
        await run_database(DBOS.send_async(child.id, _message("approve"), CONTROL_TOPIC))
        await run_database(DBOS.update_workflow_attributes_async(child.id, {"result": None}, merge=True))
    view = await _billing_view(run_id)
    return Response(view, status_code=202, headers={"Location": view.run.links.self})


@operation(
    "POST",
    "/process/v1/billing-runs/{run_id:str}/cancel",
    operation_id="cancelBillingRun",
    summary="Cancel a billing run: void its invoices and make their items billable again",
    description="Every project run is undone in reverse: the CRM status set to void, the ERP invoice voided "
    "or credited, the PSA invoice cancelled (its items billable again); `invoice.voided` is published. "
    "Works on completed, parked and waiting runs; cancelling twice is the same as once.",
    # process:read to see the run, and one of finance:approve (finance review) or process:admin.
    scopes=["process:read"],
    any_scopes=["finance:approve", "process:admin"],
    errors=[404, 503],
    idempotency="required",
    status_code=202,
    tags=["billing"],
)
async def cancel_billing_run(run_id: _RunId) -> Response[BillingRun]:
    from process_apis.runs import _enqueue_once, _start_attributes, run_database

    for child in await _project_runs(run_id):
        if child.state == RunState.COMPLETED:
            if (child.result or {}).get("erp_invoice_id") or (child.result or {}).get("psa_invoice_id"):
                void_id = _void_run_id(child.id)
                await _enqueue_once(
                    void_id,
                    _start_attributes(child.id, f"cancel:{run_id}"),
                    lambda child_id=child.id: DBOS.enqueue_workflow_async(  # type: ignore[misc]
                        QUEUE_NAME, billing_void, child_id, current_correlation_id()
                    ),
                )
        elif child.state not in (RunState.CANCELLED, RunState.FAILED, RunState.COMPENSATING):
            await run_database(DBOS.send_async(child.id, _message("cancel"), CONTROL_TOPIC))
            if child.state in (RunState.EXCEPTION, RunState.DEAD_LETTER):
                await run_database(
                    DBOS.update_workflow_attributes_async(
                        child.id, {"state": RunState.COMPENSATING.value}, merge=True
                    )
                )
    view = await _billing_view(run_id)
    return Response(view, status_code=202, headers={"Location": view.run.links.self})


BILLING_ROUTES = [
    start_billing_run_route,
    get_billing_run,
    list_billing_runs,
    approve_billing_run,
    cancel_billing_run,
]
