"""The process tier app (``/process/v1``): business workflows over the system tier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, SkipValidation

from apis.at_once import at_once
from apis.metrics import collect_before_scrape
from apis.plugin import GovernancePlugin, TierSpec
from apis.problems import ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import Opportunity
from contracts.models.process import (
    ACCOUNT_READINESS_MAX_DEALS,
    AccountReadiness,
    AccountReadinessCheck,
    ReadinessCheck,
    ReadinessReport,
)
from process_apis.billing import BILLING_ROUTES, apply_billing_schedules, install_billing_settings
from process_apis.crm_events import CRM_EVENT_ROUTES, CrmEventIntake, crm_events_secret
from process_apis.engine import WorkflowEngine
from process_apis.events import EVENT_ROUTES, EventPublisher
from process_apis.invoice_status import (
    BC_NOTIFICATION_ROUTES,
    INVOICE_STATUS_ROUTES,
    business_central_client_state,
    business_central_subscription_plan,
    configure_invoice_status,
    sync_schedule,
)
from process_apis.operations import OPERATIONS_ROUTES, SyncSources
from process_apis.readiness import evaluate_readiness
from process_apis.runs import RUN_ROUTES, RunService, refresh_open_runs_gauge
from process_apis.saga import WorkflowServices
from system_apis.client import SystemApiClient

if TYPE_CHECKING:
    from apis.runtime import Runtime

__all__ = ["PROCESS_V1", "create_process_app"]

PROCESS_V1 = TierSpec(
    name="process",
    version="v1",
    title="Stratum Process API",
    description=(
        "Business workflows over the system tier: opportunity-to-project activation, approved work to "
        "invoice, status back to CRM and PSA, change orders, customer master sync."
    ),
)


@operation(
    "POST",
    "/process/v1/activation-readiness",
    operation_id="checkActivationReadiness",
    summary="Can this opportunity become a project?",
    description=(
        "Checks the opportunity and its customer against the activation rules (closed-won, positive amount, "
        "ISO 4217 currency, billing model, legal entity, customer tax jurisdiction). Each failed rule names "
        "the owner who must fix it and how. Changes nothing, so Idempotency-Key is optional."
    ),
    scopes=["process:run"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="optional",
    status_code=200,
    tags=["activation"],
)
async def check_activation_readiness(
    data: JSONBody[ReadinessCheck], system: NamedDependency[SkipValidation[SystemApiClient]]
) -> ReadinessReport:
    opportunity = await system.get_opportunity(data.opportunity_id)
    customer = None
    if opportunity.customer_id:
        try:
            customer = await system.get_customer(opportunity.customer_id)
        except ProblemError as exc:
            if exc.kind.code != "not-found":
                raise
    return evaluate_readiness(opportunity, customer)


@operation(
    "POST",
    "/process/v1/activation-readiness/by-account",
    operation_id="checkAccountActivationReadiness",
    summary="Which of this account's won deals can become projects?",
    description=(
        "The readiness report (the rules of `POST /process/v1/activation-readiness`) of every won deal of "
        "the account that has no project yet, keyed by opportunity id. Reads the account and its deals with "
        f"their terms at once: at most {ACCOUNT_READINESS_MAX_DEALS} deals (the first in the CRM's order); "
        "beyond that the answer says `truncated` and the deals not read have no report. Changes nothing, "
        "so Idempotency-Key is optional."
    ),
    scopes=["process:run"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="optional",
    status_code=200,
    tags=["activation"],
)
async def check_account_activation_readiness(
    data: JSONBody[AccountReadinessCheck], system: NamedDependency[SkipValidation[SystemApiClient]]
) -> AccountReadiness:
    # Both reads at once, both awaited (no call left running unobserved); the account's own error (an
    # unknown account's 404) wins over the listing's.
    customer, (read, truncated) = await at_once(
        system.get_customer(data.account_id), _deals_with_terms(system, data.account_id)
    )
    reports = {
        deal.id: evaluate_readiness(deal, customer) for deal in read if deal.is_won and not deal.project_id
    }
    return AccountReadiness(
        account_id=data.account_id, reports=reports, deals_read=len(read), truncated=truncated
    )


async def _deals_with_terms(system: SystemApiClient, account_id: str) -> tuple[list[Opportunity], bool]:
    """The account's deals with their milestones and rate cards, page after page up to the bound; and
    whether more were left unread."""
    deals: list[Opportunity] = []
    cursor: str | None = None
    while True:
        page = await system.list_opportunities(
            account_id, limit=ACCOUNT_READINESS_MAX_DEALS - len(deals), cursor=cursor, with_terms=True
        )
        deals.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return deals, False
        if len(deals) >= ACCOUNT_READINESS_MAX_DEALS:
            return deals, True


async def _open_runs_if_current(engine: WorkflowEngine) -> None:
    # Only the engine that owns the process's DBOS counts its runs (tests start several gateways).
    if engine.current:
        await refresh_open_runs_gauge()


def create_process_app(
    runtime: Runtime, *, system: SystemApiClient, run_workers: bool | None = None
) -> Litestar:
    """The tier's app; its workflow engine starts and stops with the runtime. ``run_workers`` (default:
    ``workflows.run_in_process``) says whether this process also runs workflows."""
    settings = runtime.settings
    events = EventPublisher(runtime.store)
    engine = WorkflowEngine(
        settings,
        WorkflowServices(system=system, events=events, settings=settings.workflows),
        run_workers=settings.workflows.run_in_process if run_workers is None else run_workers,
    )
    install_billing_settings(settings.billing)
    runtime.on_start(engine.start)
    runtime.on_start(lambda: sync_schedule(settings.invoice_status))

    async def billing_schedules() -> None:
        if engine.launched:  # the scheduler lives in the engine's run database
            await apply_billing_schedules(settings.billing)

    runtime.on_start(billing_schedules)
    runtime.on_close(engine.stop)
    runtime.readiness_checks["run_database"] = engine.answers
    runtime.on_close(collect_before_scrape(lambda: _open_runs_if_current(engine)))
    intake = CrmEventIntake(
        store=runtime.store, starter=RunService(), crm=system, secret=crm_events_secret(settings)
    )
    configure_invoice_status(
        runtime.store,
        settings.invoice_status,
        business_central_client_state(settings.invoice_status, crm_events_secret(settings)),
        business_central_subscription_plan(settings),
    )
    sync_sources = SyncSources(store=runtime.store, settings=settings)
    app = Litestar(
        route_handlers=[
            check_activation_readiness,
            check_account_activation_readiness,
            *RUN_ROUTES,
            *BILLING_ROUTES,
            *EVENT_ROUTES,
            *CRM_EVENT_ROUTES,
            *INVOICE_STATUS_ROUTES,
            *BC_NOTIFICATION_ROUTES,
            *OPERATIONS_ROUTES,
        ],
        dependencies={
            "system": Provide(lambda: system, use_cache=True, sync_to_thread=False),
            "events": Provide(lambda: events, use_cache=True, sync_to_thread=False),
            "crm_events": Provide(lambda: intake, use_cache=True, sync_to_thread=False),
            "sync_sources": Provide(lambda: sync_sources, use_cache=True, sync_to_thread=False),
        },
        plugins=[GovernancePlugin(PROCESS_V1, runtime)],
    )
    app.state.workflow_engine = engine
    return app
