"""Invoice status back: what finance changed in the ERP reaches sales (the CRM) and delivery (the PSA).

``invoice_status_sync`` is one DBOS workflow run:

1. read the watermark (the start time of the last sync that applied its changes), and take this run's own
   start time (a step, so a recovered run uses the same one);
2. read every invoice and every payment the ERP changed since ``watermark - overlap`` through the system
   tier (the ERP router spans every legal entity's ERP, its cursor pages across them), to the last page;
   the invoices a changed payment applies to are read too;
3. for each invoice Stratum billed (``external_key`` ``bill:{psa project}:{YYYY-MM}``), compared with what
   the last sync applied to it (status, balance, payments; kept per invoice): nothing changed -> nothing
   happens (an echo of Stratum's own writes, e.g. the billing run creating the invoice, or a re-read of an
   unchanged invoice in the overlap); else the CRM invoice status is upserted (one record per ERP invoice,
   deal = the PSA project's external key), each new payment is told to the PSA once (keyed by the ERP
   payment id; the PSA invoice found by the billing key) with the amount it paid on THAT invoice
   (``Payment.applied_to``: a NetSuite payment's apply line, a Business Central journal line's one invoice;
   a payment over several invoices with no split from the ERP is logged ``payment_split_unknown`` and not
   told, never told its whole amount), the new state is recorded, and one of
   ``invoice.paid`` / ``invoice.partially_paid`` / ``invoice.overdue`` is published with an id derived from
   the invoice and its new state, so two syncs that saw the same change publish one event;
4. the watermark moves to this run's start time, only after every change was applied: a change landing
   while the sync runs is after that time and is read next time.

Where the state lives: the watermark and the per-invoice applied state are in the gateway's state store
(Redis in production), with a long time to live. A Redis outage fails the read or write step: the saga
retries it for its window and then dead-letters the run; nothing is skipped, because the watermark moves
only after the writes, and a later sync reads everything again from the old watermark. A lost applied state
(a flushed Redis) costs one repeat of each write (the CRM ignores an update no newer than what it has, the
PSA records a payment once) and, at worst, an event repeated with the same id (kept once by the stream's
dedupe window). A run-database outage stops the workflow itself (DBOS retries its checkpoints); the
scheduler's next tick starts a new run once it is back.

Invoices become overdue without the ERP changing them (time passes): once per UTC day a sync also reads the
open invoices and applies those now past due.

Triggers: a DBOS scheduled workflow (every minute, ``invoice_status.schedule_cron``, off with
``invoice_status.schedule_enabled``), ``POST /process/v1/invoice-status-syncs``, and Business Central's
webhooks (``POST /process/v1/erp-notifications/business-central``: the validation handshake, then a
notification on salesInvoices or customerPayments starts a sync, coalesced to one at a time).

Business Central subscriptions: where any legal entity's ERP is Business Central (and
``invoice_status.business_central_subscriptions`` is on), Stratum subscribes its own notification URL
(``{public_url}/process/v1/erp-notifications/business-central``) through the system tier
(``PUT /system/v1/erp/change-subscriptions``; the adapter looks before it creates, BC documents no refusal
of duplicates, and renews what expires within 2 days: subscriptions live 3 days). It subscribes
salesInvoices and salesCreditMemos: the webhook-supported collections ("Working with webhooks in Dynamics
365 Business Central", list of supported entities) that carry what invoice status needs; customerPayments
is not supported, a posted payment shows as its invoice's change. When: one check queued at each start-up
(a DBOS workflow, not run inline: BC's handshake calls back into the gateway, which serves only once
start-up is over) and a DBOS schedule (``business_central_renewal_cron``, every 6 hours by default). Never
fatal: a BC outage, a refused subscription or a failed handshake logs ``bc_subscription_failed`` with the
reason (never the client state) and the polling schedule keeps status coming. A real BC (a base URL) or
the production profile with a plain-http public URL is not subscribed (BC cannot call it back): logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import time
import uuid
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from dbos import DBOS, SetWorkflowAttributes, SetWorkflowID
from dbos import error as dbos_error
from litestar import Request, Response
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from apis.config import InvoiceStatusSettings, Settings
from apis.context import current_correlation_id
from apis.json_limits import MAX_JSON_DEPTH, json_too_deep
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.routing import operation
from apis.state import StateStore, StateStoreUnavailable, needed_by
from contracts.models.billing import (
    UNBILLED_AGE_BUCKETS,
    CrmInvoiceStatus,
    CrmInvoiceStatusUpdate,
    PsaPaymentRecord,
    unbilled_age_bucket,
)
from contracts.models.delivery import ProjectStatus
from contracts.models.events import InvoiceStatusChanged
from contracts.models.finance import (
    ChangeSubscription,
    ChangeSubscriptionRequest,
    Invoice,
    InvoiceStatus,
    Payment,
)
from contracts.models.process import Owner, Run, RunState, Workflow
from process_apis.billing_pricing import billing_key_as_written, parse_billing_key
from process_apis.engine import QUEUE_NAME
from process_apis.metrics import INVOICE_STATUS_SYNC_LAG_SECONDS, UNBILLED_APPROVED_WORK
from process_apis.saga import Saga, StepFailure, services

__all__ = [
    "BC_NOTIFICATION_KEY",
    "BC_NOTIFICATION_PATH",
    "BC_NOTIFICATION_ROUTES",
    "INVOICE_STATUS_ROUTES",
    "INVOICE_STATUS_SYNC_WORKFLOW",
    "BcSubscriptionPlan",
    "business_central_subscription_plan",
    "configure_invoice_status",
    "crm_status",
    "ensure_business_central_subscriptions",
    "invoice_status_sync",
    "parse_billing_key",
    "start_invoice_status_sync",
]

log = get_logger("stratum.process.invoice_status")

INVOICE_STATUS_SYNC_WORKFLOW = "invoice_status_sync"
WATERMARK_KEY = "invoice-status:watermark"
# When Business Central's last notification arrived (GET /process/v1/sync-status reads it).
BC_NOTIFICATION_KEY = "invoice-status:bc-notification-at"
OVERDUE_SCAN_KEY = "invoice-status:overdue-scan"
_APPLIED = "invoice-status:applied:"
# Kept well past any invoice's life in the ERP's open items (a year of payments, then some).
STATE_TTL_SECONDS = 400 * 24 * 3600
_PAGE = 100
_encoder = msgspec.json.Encoder()


BC_NOTIFICATION_PATH = "/process/v1/erp-notifications/business-central"


class BcSubscriptionPlan(msgspec.Struct, kw_only=True, frozen=True):
    """What start-up and the renewal schedule do about Business Central's webhooks, worked out once from
    the settings: nothing (``enabled`` False: no ERP is Business Central, or the setting is off), log why
    it cannot work (``refused``), or subscribe ``notification_url``."""

    enabled: bool = False
    notification_url: str = ""
    refused: str | None = None
    renewal_cron: str = "17 */6 * * *"


def business_central_subscription_plan(settings: Settings) -> BcSubscriptionPlan:
    """The plan for these settings: on where any legal entity's ERP is Business Central (``erp_vendor`` or
    ``erp_by_legal_entity``) and ``invoice_status.business_central_subscriptions`` is on; refused when a
    real Business Central (a base URL set) or the production profile would be handed a plain-http URL:
    Business Central is a cloud service and its notification URLs are https (every example in "Working
    with webhooks in Dynamics 365 Business Central", learn.microsoft.com), so it would never reach it."""
    uses_bc = "business_central" in {settings.erp_vendor, *settings.erp_by_legal_entity.values()}
    wanted = uses_bc and settings.invoice_status.business_central_subscriptions
    url = settings.public_url.rstrip("/") + BC_NOTIFICATION_PATH
    refused = None
    real = settings.business_central.base_url is not None
    if urlsplit(url).scheme != "https" and (real or settings.profile == "production"):
        refused = (
            "STRATUM_PUBLIC_URL is not https: Business Central cannot deliver webhooks to it, so invoice "
            "status comes by the polling schedule only; set it to the gateway's public https address"
        )
    return BcSubscriptionPlan(
        enabled=wanted,
        notification_url=url,
        refused=refused,
        renewal_cron=settings.invoice_status.business_central_renewal_cron,
    )


class _Config:
    store: StateStore | None = None
    settings: InvoiceStatusSettings = InvoiceStatusSettings()
    client_state: str = ""
    bc_plan: BcSubscriptionPlan = BcSubscriptionPlan()


_config = _Config()


def configure_invoice_status(
    store: StateStore,
    settings: InvoiceStatusSettings,
    client_state: str,
    bc_plan: BcSubscriptionPlan | None = None,
) -> None:
    """Set by the process app: DBOS workflows are process-wide functions, the store is the runtime's."""
    _config.store = store
    _config.settings = settings
    _config.client_state = client_state
    _config.bc_plan = bc_plan if bc_plan is not None else BcSubscriptionPlan()


def _store() -> StateStore:
    if _config.store is None:
        raise RuntimeError("invoice status is not configured: the process app has not started")
    return _config.store


# --- the pure part ----------------------------------------------------------------------------------------


def crm_status(invoice: Invoice) -> CrmInvoiceStatus | None:
    """The CRM's status for a canonical invoice; None for a draft (not issued: sales do not see it)."""
    if invoice.status is InvoiceStatus.DRAFT:
        return None
    if invoice.status is InvoiceStatus.VOID:
        return CrmInvoiceStatus.VOID
    if invoice.status is InvoiceStatus.PAID or invoice.balance.amount <= 0:
        return CrmInvoiceStatus.PAID
    if invoice.overdue:
        return CrmInvoiceStatus.OVERDUE
    if invoice.status is InvoiceStatus.PARTIALLY_PAID:
        return CrmInvoiceStatus.PARTIALLY_PAID
    return CrmInvoiceStatus.OPEN


class _Applied(msgspec.Struct, kw_only=True):
    """What the last sync applied to one ERP invoice: compared with the ERP's now to see a real change."""

    status: str
    balance: Decimal
    payments: list[str] = []
    overdue: bool = False


def _event_for(before: _Applied | None, status: CrmInvoiceStatus, invoice: Invoice) -> str | None:
    """The business event a change from ``before`` to the invoice's state is (None: none to publish)."""
    from contracts.models.events import INVOICE_OVERDUE, INVOICE_PAID, INVOICE_PARTIALLY_PAID

    if status is CrmInvoiceStatus.PAID:
        return INVOICE_PAID if before is None or before.status != status.value else None
    if status is CrmInvoiceStatus.VOID:
        return None
    if invoice.overdue and (before is None or not before.overdue):
        return INVOICE_OVERDUE
    paid_something = invoice.balance.amount < invoice.total.amount
    if paid_something and (before is None or invoice.balance.amount < before.balance):
        return INVOICE_PARTIALLY_PAID
    return None


# --- unbilled approved work (a metric) --------------------------------------------------------------------

UNBILLED_PASS_KEY = "invoice-status:unbilled-pass"


async def unbilled_work(today: dt.date) -> dict[str, dict[str, str]]:
    """Approved billable work not yet invoiced, of every active PSA project, by currency and age bucket
    (amounts as decimal strings). Reads every active project's unbilled items: an hourly pass, not every
    sync's."""
    system = services().system
    totals: dict[str, dict[str, Decimal]] = {}
    cursor: str | None = None
    while True:
        page = await system.list_psa_projects(limit=100, cursor=cursor)
        for project in page.items:
            if project.status is not ProjectStatus.ACTIVE:
                continue
            item_cursor: str | None = None
            while True:
                items = await system.list_billable_items(
                    project.id, through=today, limit=_PAGE, cursor=item_cursor
                )
                for item in items.items:
                    if item.invoiced:
                        continue
                    amount = item.psa_value()
                    if amount is None:
                        continue  # not priced in the PSA: the billing run prices it from the rate card
                    bucket = unbilled_age_bucket((today - item.date).days)
                    per = totals.setdefault(amount.currency, {b: Decimal(0) for b in UNBILLED_AGE_BUCKETS})
                    per[bucket] += amount.amount
                item_cursor = items.next_cursor
                if not item_cursor:
                    break
        cursor = page.next_cursor
        if not cursor:
            break
    return {c: {b: str(v) for b, v in per.items()} for c, per in totals.items()}


def _set_unbilled_gauge(totals: dict[str, dict[str, str]]) -> None:
    for currency, per in totals.items():
        for bucket, amount in per.items():
            UNBILLED_APPROVED_WORK.labels(currency, bucket).set(float(Decimal(amount)))


# --- the workflow -----------------------------------------------------------------------------------------


class _Changes(msgspec.Struct, kw_only=True):
    invoices: list[Invoice]
    payments: list[Payment]


class _Outcome(msgspec.Struct, kw_only=True):
    invoice_id: str
    applied: bool
    event: str | None = None
    subject: str | None = None
    data: dict[str, Any] = {}


def _hour(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


async def _read_changes(since: dt.datetime | None, overdue_scan: bool) -> _Changes:
    system = services().system
    invoices: dict[str, Invoice] = {}
    payments: dict[str, Payment] = {}
    cursor: str | None = None
    while True:
        page = await system.list_invoices(modified_since=since, limit=_PAGE, cursor=cursor)
        invoices.update((i.id, i) for i in page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    while True:
        pays = await system.list_payments(modified_since=since, limit=_PAGE, cursor=cursor)
        payments.update((p.id, p) for p in pays.items)
        cursor = pays.next_cursor
        if not cursor:
            break
    if overdue_scan:
        for status in (InvoiceStatus.POSTED, InvoiceStatus.PARTIALLY_PAID):
            while True:
                page = await system.list_invoices(status=status, limit=_PAGE, cursor=cursor)
                invoices.update((i.id, i) for i in page.items if i.overdue and i.id not in invoices)
                cursor = page.next_cursor
                if not cursor:
                    break
    # A payment changes its invoices' balance even where the ERP did not stamp the invoice as changed.
    for payment in payments.values():
        for invoice_id in dict.fromkeys(
            [*payment.invoice_ids, *(a.invoice_id for a in payment.applications)]
        ):
            if invoice_id not in invoices:
                invoices[invoice_id] = await system.get_invoice(invoice_id)
    # Payments of one invoice in the order they were made: the balance after each is told to the PSA.
    ordered = sorted(
        payments.values(), key=lambda p: (p.date, p.updated_at.timestamp() if p.updated_at else 0.0, p.id)
    )
    return _Changes(invoices=list(invoices.values()), payments=ordered)


async def _apply(saga: Saga, invoice: Invoice, payments: list[Payment]) -> _Outcome:
    """Bring one billed invoice's change to the CRM and the PSA (unless it is no change)."""
    system = services().system
    store = _store()
    key = parse_billing_key(invoice.external_key)
    status = crm_status(invoice)
    if key is None or status is None:
        return _Outcome(invoice_id=invoice.id, applied=False)
    with needed_by("invoice_status_sync"):
        raw = await store.get(_APPLIED + invoice.id)
    before = msgspec.json.decode(raw, type=_Applied) if raw else None
    new_payments = [p for p in payments if before is None or p.id not in before.payments]
    if (
        before is not None
        and before.status == status.value
        and before.balance == invoice.balance.amount
        and before.overdue == invoice.overdue
        and not new_payments
    ):
        return _Outcome(invoice_id=invoice.id, applied=False)  # an echo, or a re-read in the overlap
    project_id, period = key
    billing_key = billing_key_as_written(invoice.external_key or "")
    project = await system.get_psa_project(project_id)
    # A deal's project is keyed ``deal_project_key(opportunity id)`` (contracts.models.delivery), which is
    # the opportunity id itself: the project's external key names the deal.
    opportunity_id = project.external_key or None
    if opportunity_id:
        await system.put_invoice_status(
            CrmInvoiceStatusUpdate(
                erp_invoice_id=invoice.id,
                opportunity_id=opportunity_id,
                number=invoice.number,
                status=status,
                currency=invoice.currency,
                total=invoice.total.amount,
                balance=max(invoice.balance.amount, Decimal(0)),
                issue_date=invoice.issue_date,
                due_date=invoice.due_date,
                erp_updated_at=invoice.updated_at,
            ),
            idempotency_key=saga.key(f"crm.invoice_status.{invoice.id}"),
        )
        now = dt.datetime.now(dt.UTC)
        changed_at = [t for t in [invoice.updated_at, *(p.updated_at for p in new_payments)] if t is not None]
        for moment in changed_at:
            INVOICE_STATUS_SYNC_LAG_SECONDS.observe(max((now - moment).total_seconds(), 0.0))
    else:
        # A project made by hand, not from a deal: no opportunity to show the invoice on.
        log.warning("invoice_without_deal", erp_invoice_id=invoice.id, psa_project_id=project_id)
    if new_payments:
        psa_invoice = await system.find_psa_invoice(billing_key)
        if psa_invoice is not None:
            # What each payment paid on THIS invoice (a payment may pay several: only its share here),
            # and the balance after it: today's, plus what the payments after it paid on this invoice.
            shares = [(payment, payment.applied_to(invoice.id)) for payment in new_payments]
            later = Decimal(0)
            balances: list[Decimal] = []
            for _payment, share in reversed(shares):
                balances.append(max(invoice.balance.amount, Decimal(0)) + later)
                later += share.amount if share is not None else Decimal(0)
            for (payment, share), balance in zip(shares, reversed(balances), strict=True):
                if share is None:
                    # The ERP applied it to several invoices without saying how much to each: telling
                    # the PSA its whole amount would overstate this invoice's payments.
                    log.warning("payment_split_unknown", erp_invoice_id=invoice.id, erp_payment_id=payment.id)
                    continue
                await system.record_psa_payment(
                    psa_invoice.id,
                    PsaPaymentRecord(
                        erp_payment_id=payment.id,
                        date=payment.date,
                        amount=share.amount,
                        currency=invoice.currency,
                        balance=balance,
                    ),
                    idempotency_key=saga.key(f"psa.payment.{invoice.id}.{payment.id}"),
                )
        else:
            log.warning("psa_invoice_missing", erp_invoice_id=invoice.id, billing_key=billing_key)
    applied = _Applied(
        status=status.value,
        balance=invoice.balance.amount,
        payments=sorted({*(before.payments if before else []), *(p.id for p in new_payments)}),
        overdue=invoice.overdue,
    )
    with needed_by("invoice_status_sync"):
        await store.set(_APPLIED + invoice.id, _encoder.encode(applied), STATE_TTL_SECONDS)
    event = _event_for(before, status, invoice)
    data = msgspec.to_builtins(
        InvoiceStatusChanged(
            erp_invoice_id=invoice.id,
            invoice_number=invoice.number,
            billing_key=billing_key,
            psa_project_id=project_id,
            period=period,
            opportunity_id=opportunity_id or "",
            status=status.value,
            currency=invoice.currency,
            total=str(invoice.total.amount),
            balance=str(max(invoice.balance.amount, Decimal(0))),
            due_date=invoice.due_date,
            erp_payment_ids=[p.id for p in new_payments],
            erp_updated_at=invoice.updated_at,
        )
    )
    return _Outcome(invoice_id=invoice.id, applied=True, event=event, subject=invoice.id, data=data)


@DBOS.workflow(name=INVOICE_STATUS_SYNC_WORKFLOW)
async def invoice_status_sync(
    trigger: str | None = None, correlation_id: str | None = None, since: str | None = None
) -> dict[str, Any]:
    saga = Saga(Workflow.INVOICE_STATUS_SYNC, subject="erp", correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    store_owner = Owner.INTEGRATION_OPERATIONS
    store_fix = "Check the state store (Redis) and the ERP connection, then replay the run."

    async def begin() -> dict[str, Any]:
        with needed_by("invoice_status_sync"):
            watermark = await _store().get(WATERMARK_KEY)
            scanned = await _store().get(OVERDUE_SCAN_KEY)
            unbilled = await _store().get(UNBILLED_PASS_KEY)
        started = dt.datetime.now(dt.UTC)
        return {
            "started": _iso(started),
            "watermark": watermark.decode() if watermark else None,
            "overdue_scan": (scanned or b"").decode() != started.date().isoformat(),
            "unbilled_pass": (unbilled or b"").decode() != _hour(started),
        }

    begun = await saga.step(
        "state.read_watermark", begin, result_type=dict, owner=store_owner, remediation=store_fix
    )
    started = dt.datetime.fromisoformat(begun["started"])
    base = since or begun["watermark"]
    read_from = (
        dt.datetime.fromisoformat(base) - dt.timedelta(seconds=_config.settings.overlap_seconds)
        if base
        else None
    )
    changes = await saga.step(
        "erp.read_changes",
        lambda: _read_changes(read_from, bool(begun["overdue_scan"])),
        result_type=_Changes,
        owner=store_owner,
        remediation=store_fix,
    )
    by_invoice: dict[str, list[Payment]] = {}
    for payment in changes.payments:
        # Each invoice the payment paid gets it once, however the ERP lists it (ids and/or split).
        for invoice_id in dict.fromkeys(
            [*payment.invoice_ids, *(a.invoice_id for a in payment.applications)]
        ):
            by_invoice.setdefault(invoice_id, []).append(payment)
    applied: list[str] = []
    published: list[str] = []
    for invoice in changes.invoices:
        if parse_billing_key(invoice.external_key) is None:
            continue  # not billed by Stratum: not a deal's invoice

        def apply(invoice: Invoice = invoice) -> Any:
            return _apply(saga, invoice, by_invoice.get(invoice.id, []))

        outcome = await saga.step(
            f"apply.{invoice.id}",
            apply,
            result_type=_Outcome,
            owner=store_owner,
            remediation="Check the CRM, the PSA and the state store, then replay the run.",
        )
        if not outcome.applied:
            continue
        applied.append(invoice.id)
        if outcome.event is not None:
            await _publish(saga, outcome)
            published.append(f"{outcome.event}:{invoice.id}")

    unbilled_done = False
    if begun.get("unbilled_pass"):
        # A metric must not hold status back: a PSA that fails this pass is logged, and the next sync
        # tries the pass again (its hour is recorded only when it succeeded).
        totals = await saga.try_step(
            "psa.unbilled_work", lambda: unbilled_work(started.date()), result_type=dict
        )
        if isinstance(totals, StepFailure):
            log.warning("unbilled_work_pass_failed", code=totals.code, error=totals.message)
        else:
            _set_unbilled_gauge(totals)
            unbilled_done = True

    async def advance() -> dict[str, str]:
        store = _store()
        with needed_by("invoice_status_sync"):
            current = await store.get(WATERMARK_KEY)
            # Only forward: a slower concurrent sync that started earlier must not move it back.
            if current is None or dt.datetime.fromisoformat(current.decode()) < started:
                await store.set(WATERMARK_KEY, _iso(started).encode(), STATE_TTL_SECONDS)
            if begun["overdue_scan"]:
                await store.set(OVERDUE_SCAN_KEY, started.date().isoformat().encode(), STATE_TTL_SECONDS)
            if unbilled_done:
                await store.set(UNBILLED_PASS_KEY, _hour(started).encode(), STATE_TTL_SECONDS)
        return {"watermark": _iso(started)}

    await saga.step(
        "state.advance_watermark", advance, result_type=dict, owner=store_owner, remediation=store_fix
    )
    return await saga.finish(
        RunState.COMPLETED,
        {
            "read_from": _iso(read_from) if read_from else None,
            "watermark": _iso(started),
            "invoices_read": len(changes.invoices),
            "payments_read": len(changes.payments),
            "applied": applied,
            "events": published,
        },
    )


async def _publish(saga: Saga, outcome: _Outcome) -> None:
    from contracts.models.events import event_id

    assert outcome.event is not None
    data = outcome.data
    # One id per invoice and state reached: two syncs that applied the same change publish it once.
    eid = event_id(
        "invoice-status", outcome.invoice_id, outcome.event, str(data["status"]), str(data["balance"])
    )

    async def publish() -> dict[str, bool]:
        await services().events.publish(
            event_id=eid, type=outcome.event or "", subject=outcome.subject or outcome.invoice_id, data=data
        )
        return {"published": True}

    await saga.step(
        f"events.publish.{outcome.invoice_id}",
        publish,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Check the event stream (Redis), then replay the run.",
    )


# --- starting syncs -----------------------------------------------------------------------------------------


async def start_invoice_status_sync(
    *, run_id: str, trigger: str, since: dt.datetime | None = None
) -> tuple[Run, bool]:
    """The sync run ``run_id``, started unless it exists; (run, started now)."""
    from process_apis.runs import _enqueue_once, _start_attributes, load_run

    existing = await load_run(run_id)
    if existing is not None:
        return existing, False
    started = await _enqueue_once(
        run_id,
        _start_attributes("erp", trigger),
        lambda: DBOS.enqueue_workflow_async(
            QUEUE_NAME,
            invoice_status_sync,
            trigger,
            current_correlation_id(),
            _iso(since) if since else None,
        ),
    )
    run = await load_run(run_id)
    assert run is not None
    return run, started


async def _active_sync() -> str | None:
    from process_apis.runs import run_database

    statuses = await run_database(
        DBOS.list_workflows_async(
            name=INVOICE_STATUS_SYNC_WORKFLOW,
            status=["ENQUEUED", "PENDING"],
            load_input=False,
            load_output=False,
            limit=1,
        )
    )
    return statuses[0].workflow_id if statuses else None


async def start_coalesced_sync(trigger: str) -> tuple[str, bool]:
    """A sync for a push notification: the one queued or running if any, else a new one. Notifications in
    one 10-second window share a run id, so a burst of concurrent ones starts one run."""
    active = await _active_sync()
    if active is not None:
        return active, False
    run_id = f"iss-push-{int(time.time()) // 10}"
    run, started = await start_invoice_status_sync(run_id=run_id, trigger=trigger)
    return run.id, started


SCHEDULE_NAME = "invoice-status-sync"


@DBOS.workflow(name="invoice_status_sync_tick")
async def invoice_status_sync_tick(scheduled: dt.datetime, context: Any) -> None:
    """The schedule's tick (DBOS's scheduler runs it once per cron time, whichever worker): enqueue this
    time's sync run, its id the scheduled time's."""
    del context
    stamp = scheduled.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
    with (
        SetWorkflowID(f"iss-{stamp}", workflow_id_reuse_policy="reject"),
        SetWorkflowAttributes({"state": RunState.QUEUED.value, "subject": "erp", "trigger": "schedule"}),
        contextlib.suppress(dbos_error.DBOSWorkflowIDInUseError),
    ):
        await DBOS.enqueue_workflow_async(QUEUE_NAME, invoice_status_sync, "schedule", None, None)


async def sync_schedule(settings: InvoiceStatusSettings) -> None:
    """Make the run database's schedules what the settings say (DBOS keeps schedules there, so every
    worker's scheduler sees one): created, replaced when its cron changed, deleted when turned off. Also
    queues this start's Business Central subscription check (see ``start_business_central_subscriptions``)."""
    await _reconcile_schedule(
        SCHEDULE_NAME, settings.schedule_cron if settings.schedule_enabled else None, invoice_status_sync_tick
    )
    await start_business_central_subscriptions()


async def _reconcile_schedule(name: str, wanted: str | None, workflow_fn: Any) -> None:
    existing = await DBOS.get_schedule_async(name)
    if existing is not None and existing["schedule"] != wanted:
        await DBOS.delete_schedule_async(name)
        existing = None
    if wanted is not None and existing is None:
        with contextlib.suppress(dbos_error.DBOSException):  # another worker created it first
            await DBOS.create_schedule_async(
                schedule_name=name, workflow_fn=workflow_fn, schedule=wanted, queue_name=QUEUE_NAME
            )


# --- Business Central subscriptions (so its webhooks reach the notification route below) -------------------

BC_SUBSCRIPTIONS_SCHEDULE = "business-central-subscriptions"
BC_SUBSCRIPTIONS_WORKFLOW = "business_central_subscriptions"


async def ensure_business_central_subscriptions(trigger: str) -> dict[str, Any]:
    """Ask the system tier to make Business Central push invoice changes to Stratum's notification URL
    (``PUT /system/v1/erp/change-subscriptions``: looked up before created, renewed near expiry; Business
    Central handshakes with the URL first). Never raises: a Business Central that is down, refuses the
    subscription or fails the handshake is logged (``bc_subscription_failed`` with the reason; the client
    state never) and status keeps coming by the polling schedule. The outcome per collection, or why none."""
    plan = _config.bc_plan
    if not plan.enabled:
        return {"outcome": "off"}
    if plan.refused is not None:
        log.warning("bc_subscription_failed", trigger=trigger, reason=plan.refused)
        return {"outcome": "refused", "reason": plan.refused}
    request = ChangeSubscriptionRequest(
        notification_url=plan.notification_url, client_state=_config.client_state
    )
    try:
        items: list[ChangeSubscription] = await services().system.ensure_erp_change_subscriptions(request)
    except ProblemError as exc:
        reason = f"{exc.kind.code}: {exc.detail}"
        log.warning("bc_subscription_failed", trigger=trigger, reason=reason, url=plan.notification_url)
        return {"outcome": "failed", "reason": reason}
    outcomes = {item.resource: item.outcome for item in items}
    log.info("bc_subscriptions_ensured", trigger=trigger, url=plan.notification_url, outcomes=outcomes)
    return {"outcome": "ensured", "subscriptions": outcomes}


@DBOS.workflow(name=BC_SUBSCRIPTIONS_WORKFLOW)
async def business_central_subscriptions(trigger: str) -> dict[str, Any]:
    """One check of the subscriptions (safe to repeat: a recovered run just checks again)."""
    return await ensure_business_central_subscriptions(trigger)


@DBOS.workflow(name="business_central_subscriptions_tick")
async def business_central_subscriptions_tick(scheduled: dt.datetime, context: Any) -> None:
    """The renewal schedule's tick (one worker per cron time): renew what nears its 3-day expiry."""
    del scheduled, context
    await ensure_business_central_subscriptions("schedule")


async def start_business_central_subscriptions() -> None:
    """At start-up: the renewal schedule made what the plan says, and one check queued. Queued, not run
    here: Business Central's handshake calls back into the gateway, which is not serving until start-up
    is over; a worker runs it a moment later. Never fatal (a run database that refuses is logged)."""
    plan = _config.bc_plan
    if plan.enabled and plan.refused is not None:
        log.warning("bc_subscription_failed", trigger="start", reason=plan.refused)
    live = plan.enabled and plan.refused is None
    try:
        await _reconcile_schedule(
            BC_SUBSCRIPTIONS_SCHEDULE,
            plan.renewal_cron if live else None,
            business_central_subscriptions_tick,
        )
        if live:
            with SetWorkflowID(f"bcsub-start-{uuid.uuid4().hex[:20]}"):
                await DBOS.enqueue_workflow_async(QUEUE_NAME, business_central_subscriptions, "start")
    except Exception as exc:  # a start-up nicety: whatever the run database says, the gateway serves on
        log.warning(
            "bc_subscription_failed",
            trigger="start",
            reason=f"the check could not be queued: {type(exc).__name__}",
        )


# --- routes -----------------------------------------------------------------------------------------------


class InvoiceStatusSyncRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/invoice-status-syncs``: nothing to say yet (``{}``); the sync reads from
    the watermark."""


_RUN_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
RunIdPath = PathParameter(pattern=_RUN_ID, description="The run's id.")


@operation(
    "POST",
    "/process/v1/invoice-status-syncs",
    operation_id="startInvoiceStatusSync",
    summary="Bring ERP invoice and payment changes to the CRM and the PSA now",
    description=(
        "Starts one invoice status sync (the scheduled one runs every minute): invoices and payments the "
        "ERP changed since the watermark reach the CRM (invoice status, deal totals) and the PSA (each "
        "payment once), and `invoice.paid`, `invoice.partially_paid`, `invoice.overdue` are published once "
        "per change. The same Idempotency-Key returns the same run."
    ),
    scopes=["process:run"],
    idempotency="required",
    status_code=202,
    success={
        200: (Run, "The run for this Idempotency-Key already existed."),
        202: (Run, "Accepted: the run is queued or running; follow `Location`."),
    },
    tags=["billing"],
)
async def start_invoice_status_sync_route(
    data: JSONBody[InvoiceStatusSyncRequest], request: Request[Any, Any, Any]
) -> Response[Run]:
    from process_apis.runs import _prefer_wait, _run_response, _wait_for

    client = request.scope["auth"].client_id
    key = request.headers.get("idempotency-key", "")
    run_id = "iss-" + uuid.uuid5(uuid.NAMESPACE_URL, f"stratum:invoice-status-sync:{client}:{key}").hex[:20]
    del data
    run, started = await start_invoice_status_sync(run_id=run_id, trigger="api")
    wait = _prefer_wait(request)
    if wait:
        run = await _wait_for(run, wait)
    return _run_response(run, 202 if started else 200, wait, location=True)


@operation(
    "GET",
    "/process/v1/invoice-status-syncs/{run_id:str}",
    operation_id="getInvoiceStatusSync",
    summary="An invoice status sync run: state and timeline",
    scopes=["process:read"],
    errors=[404, 503],
    tags=["billing"],
)
async def get_invoice_status_sync(
    run_id: Annotated[str, RunIdPath], request: Request[Any, Any, Any]
) -> Response[Run]:
    from process_apis.runs import _get_run

    return await _get_run(run_id, Workflow.INVOICE_STATUS_SYNC, request)


INVOICE_STATUS_ROUTES = [start_invoice_status_sync_route, get_invoice_status_sync]


# --- Business Central webhooks ----------------------------------------------------------------------------


class BcNotification(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """One entry of a Business Central notification (learn.microsoft.com/dynamics365/business-central/
    dev-itpro/api-reference/v2.0/dynamics-subscriptions, "Notification")."""

    subscription_id: str | None = None
    client_state: str | None = None
    expiration_date_time: str | None = None
    resource: str | None = None
    change_type: str | None = None
    last_modified_date_time: str | None = None


class BcNotificationDelivery(msgspec.Struct, kw_only=True, frozen=True):
    value: Annotated[list[BcNotification], msgspec.Meta(max_length=5000)] = []


class BcNotificationReceipt(msgspec.Struct, kw_only=True, frozen=True):
    """What the gateway did with a delivery: the sync it started or joined (None: nothing to sync)."""

    outcome: str
    run_id: str | None = None


def business_central_client_state(settings: InvoiceStatusSettings, crm_events_secret: str) -> str:
    """The clientState Stratum's Business Central subscriptions carry: the configured one, else derived
    from the gateway's event secret (HMAC for this purpose, so the CRM relay's secret is not sent to BC)."""
    if settings.business_central_client_state:
        return settings.business_central_client_state
    return hmac.new(crm_events_secret.encode(), b"business-central-client-state", hashlib.sha256).hexdigest()


_WATCHED = ("salesinvoices", "customerpayments", "salescreditmemos")


@operation(
    "POST",
    "/process/v1/erp-notifications/business-central",
    operation_id="receiveBusinessCentralNotification",
    summary="Receive a Business Central webhook notification",
    description=(
        "Business Central's subscription handshake (`?validationToken=`: the token is echoed, 200 "
        "text/plain) and its notifications. The route is public to OAuth: every entry must carry the "
        "subscription's `clientState`, Stratum's shared secret for BC (compared in constant time); a "
        "delivery with any other is refused (401). The body is Business Central's "
        '`{"value": [{subscriptionId, clientState, expirationDateTime, resource, changeType, '
        "lastModifiedDateTime}]}`. A notification on salesInvoices, customerPayments or "
        "salesCreditMemos starts an invoice status sync, or joins the one queued or running (202)."
    ),
    public=True,
    errors=[400, 401, 503],
    status_code=202,
    success={202: (BcNotificationReceipt, "The sync started, joined, or nothing to sync (`ignored`).")},
    tags=["events"],
)
async def receive_business_central_notification(
    request: Request[Any, Any, Any],
    validation_token: Annotated[
        str | None, QueryParameter(name="validationToken", max_length=1024, required=False)
    ] = None,
) -> Response[Any]:
    # No ``data`` parameter: Business Central's handshake POST carries no body and no Content-Type, which
    # the gateway's JSON-only check (``MediaTypeMiddleware``) would refuse with a 415 before this runs.
    if validation_token is not None:
        return Response(validation_token, status_code=200, media_type="text/plain")
    body = await request.body()
    if not body.strip():
        # Nothing to authenticate: no clientState, so refused as an unauthenticated delivery.
        raise ProblemError("invalid-signature", "No notification with this gateway's clientState.")
    if json_too_deep(body):
        raise ProblemError("malformed-request", f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        delivery = msgspec.json.decode(body, type=BcNotificationDelivery)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProblemError("malformed-request", "The body is not a Business Central notification.") from exc
    expected = _config.client_state.encode()
    if not expected or not delivery.value:
        raise ProblemError("invalid-signature", "No notification with this gateway's clientState.")
    for entry in delivery.value:
        if not hmac.compare_digest((entry.client_state or "").encode(), expected):
            log.warning("bc_notification_rejected", subscription_id=entry.subscription_id)
            raise ProblemError(
                "invalid-signature", "A notification does not carry this gateway's clientState."
            )
    relevant = [e for e in delivery.value if any(w in (e.resource or "").lower() for w in _WATCHED)]
    if not relevant:
        return Response(BcNotificationReceipt(outcome="ignored"), status_code=202)
    with contextlib.suppress(StateStoreUnavailable, RuntimeError):
        # Only a figure for operations: a store that does not answer must not cost the notification.
        await _store().set(BC_NOTIFICATION_KEY, _iso(dt.datetime.now(dt.UTC)).encode(), STATE_TTL_SECONDS)
    run_id, started = await start_coalesced_sync("business-central-webhook")
    log.info("bc_notification", entries=len(relevant), run_id=run_id, started=started)
    return Response(
        BcNotificationReceipt(outcome="started" if started else "joined", run_id=run_id), status_code=202
    )


# The handshake's answer is the token itself, as text (what Business Central checks).
receive_business_central_notification.responses = {
    **(receive_business_central_notification.responses or {}),
    200: ResponseSpec(
        data_container=str,
        media_type="text/plain",
        description="The subscription handshake: the `validationToken`, echoed.",
        generate_examples=False,
    ),
}

BC_NOTIFICATION_ROUTES = [receive_business_central_notification]
