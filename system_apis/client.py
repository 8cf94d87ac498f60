"""The typed client of the system tier's contract (``/system/v1``), for the tiers above it.

Writes take the ``idempotency_key`` the caller derives (the process tier: from its run and step), so a
retried or replayed step is answered from the gateway's record instead of writing again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from apis.tier_client import TierClient
from contracts.models import (
    BillableItemKind,
    BillableItemPage,
    BillingSchedule,
    BillingScheduleCreate,
    ChangeSubscription,
    ChangeSubscriptionList,
    ChangeSubscriptionRequest,
    ContactPage,
    CrmInvoiceStatusUpdate,
    Customer,
    CustomerMatch,
    CustomerMatchList,
    CustomerMatchQuery,
    CustomerPage,
    CustomerUpsert,
    ExpensePage,
    Forecast,
    Invoice,
    InvoiceCreate,
    InvoicePage,
    InvoiceStatus,
    InvoiceTotals,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityPage,
    OpportunityStage,
    PaymentPage,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaInvoiceFinalize,
    PsaPaymentRecord,
    PublishResult,
    RevenueActuals,
    RevenueBaseline,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntryPage,
)
from contracts.models.operations import ApiBudgetList

__all__ = ["SystemApiClient"]


def _seg(value: str) -> str:
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dt.date | dt.datetime):
            out[key] = value.isoformat()
        else:
            out[key] = getattr(value, "value", value)
    return out


class SystemApiClient(TierClient):
    tier = "system"

    # CRM
    async def get_customer(self, account_id: str) -> Customer:
        return await self._get(f"/system/v1/crm/accounts/{_seg(account_id)}", Customer)

    async def list_customers(
        self, *, limit: int = 50, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        params = _params(limit=limit, cursor=cursor, modified_since=modified_since)
        return await self._get("/system/v1/crm/accounts", CustomerPage, params)

    async def list_customers_by_id(self, account_ids: Sequence[str]) -> list[Customer]:
        """The CRM accounts of these ids (at most 100), in one call; an id the CRM does not have is absent."""
        if not account_ids:
            return []
        page = await self._get("/system/v1/crm/accounts", CustomerPage, _params(id=",".join(account_ids)))
        return page.items

    async def list_contacts(
        self, account_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> ContactPage:
        params = _params(limit=limit, cursor=cursor)
        return await self._get(f"/system/v1/crm/accounts/{_seg(account_id)}/contacts", ContactPage, params)

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return await self._get(f"/system/v1/crm/opportunities/{_seg(opportunity_id)}", Opportunity)

    async def get_opportunity_by_project(self, project_id: str) -> Opportunity:
        """The deal whose activation wrote ``project_id`` (a PSA project) back to it; 404 when none."""
        path = f"/system/v1/crm/opportunities/by-project/{_seg(project_id)}"
        return await self._get(path, Opportunity)

    async def list_opportunities(
        self,
        account_id: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
        modified_since: dt.datetime | None = None,
        with_terms: bool = False,
    ) -> OpportunityPage:
        """A page of opportunities (of one account, or all); ``with_terms`` (an account's only) gives each
        its milestones and rate card, read with the page."""
        if with_terms and not account_id:
            raise ValueError("with_terms is an account's listing's parameter: give account_id")
        params = _params(
            limit=limit,
            cursor=cursor,
            stage=stage,
            modified_since=modified_since,
            with_terms=True if with_terms else None,
        )
        path = (
            f"/system/v1/crm/accounts/{_seg(account_id)}/opportunities"
            if account_id
            else "/system/v1/crm/opportunities"
        )
        return await self._get(path, OpportunityPage, params)

    async def update_opportunity_activation(
        self, opportunity_id: str, update: OpportunityActivationUpdate, *, idempotency_key: str
    ) -> Opportunity:
        path = f"/system/v1/crm/opportunities/{_seg(opportunity_id)}/activation"
        return await self._write("PATCH", path, Opportunity, update, idempotency_key=idempotency_key)

    async def put_invoice_status(
        self, update: CrmInvoiceStatusUpdate, *, idempotency_key: str
    ) -> InvoiceTotals:
        """Write one ERP invoice's status to the CRM (keyed by its ERP id); the deal's invoice totals."""
        path = (
            f"/system/v1/crm/opportunities/{_seg(update.opportunity_id)}"
            f"/invoices/{_seg(update.erp_invoice_id)}"
        )
        return await self._write("PUT", path, InvoiceTotals, update.state, idempotency_key=idempotency_key)

    # PSA
    async def get_psa_project(self, project_id: str) -> Project:
        return await self._get(f"/system/v1/psa/projects/{_seg(project_id)}", Project)

    async def create_psa_project(self, command: ProjectCreate, *, idempotency_key: str) -> Project:
        return await self._post("/system/v1/psa/projects", Project, command, idempotency_key=idempotency_key)

    async def close_psa_project(self, project_id: str, *, idempotency_key: str) -> Project:
        path = f"/system/v1/psa/projects/{_seg(project_id)}/close"
        return await self._write("POST", path, Project, idempotency_key=idempotency_key)

    async def list_psa_projects(
        self, *, limit: int = 50, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage:
        params = _params(limit=limit, cursor=cursor, modified_since=modified_since)
        return await self._get("/system/v1/psa/projects", ProjectPage, params)

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]:
        path = f"/system/v1/psa/projects/{_seg(project_id)}/staffing-demands"
        return await self._get(path, list[StaffingDemand])

    async def list_staffing_demands_of(self, project_ids: list[str]) -> list[StaffingDemand]:
        """The staffing demand of several projects (at most ``MAX_PROJECTS_AT_ONCE``) in one listing."""
        params = {"project_id": ",".join(project_ids)}
        return await self._get("/system/v1/psa/staffing-demands", list[StaffingDemand], params)

    async def list_expenses(
        self,
        *,
        project_id: str | None = None,
        project_ids: list[str] | None = None,
        approved: bool | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ExpensePage:
        params = _params(
            project_id=project_id,
            project_ids=",".join(project_ids) if project_ids else None,
            approved=approved,
            date_from=date_from,
            date_to=date_to,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/system/v1/psa/expenses", ExpensePage, params)

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate, *, idempotency_key: str
    ) -> StaffingDemand:
        path = f"/system/v1/psa/projects/{_seg(project_id)}/staffing-demands"
        return await self._post(path, StaffingDemand, command, idempotency_key=idempotency_key)

    async def list_time_entries(
        self,
        *,
        project_id: str | None = None,
        project_ids: list[str] | None = None,
        approved: bool | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TimeEntryPage:
        params = _params(
            project_id=project_id,
            project_ids=",".join(project_ids) if project_ids else None,
            approved=approved,
            date_from=date_from,
            date_to=date_to,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/system/v1/psa/time-entries", TimeEntryPage, params)

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int = 100, cursor: str | None = None
    ) -> BillableItemPage:
        params = _params(through=through, limit=limit, cursor=cursor)
        path = f"/system/v1/psa/projects/{_seg(project_id)}/billable-items"
        return await self._get(path, BillableItemPage, params)

    async def list_billable_items_of(
        self,
        project_ids: list[str] | None,
        *,
        through: dt.date,
        kind: BillableItemKind | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> BillableItemPage:
        """The unbilled billable items of several projects (at most 50) in one listing, or of every project
        (``project_ids`` None; pages of up to 1,000), or of one ``kind``; each names its project."""
        params = _params(
            project_id=",".join(project_ids) if project_ids is not None else None,
            through=through,
            kind=kind,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/system/v1/psa/billable-items", BillableItemPage, params)

    async def find_psa_invoice(self, external_key: str) -> PsaInvoice | None:
        """The PSA invoice recorded under the billing key, if any."""
        found = await self._get(
            "/system/v1/psa/invoices", list[PsaInvoice], _params(external_key=external_key)
        )
        return found[0] if found else None

    async def list_psa_project_invoices(self, project_id: str) -> list[PsaInvoice]:
        """Every PSA invoice of the project, oldest first (drafts and cancelled ones included)."""
        return await self._get(f"/system/v1/psa/projects/{_seg(project_id)}/invoices", list[PsaInvoice])

    async def get_psa_invoice(self, invoice_id: str) -> PsaInvoice:
        return await self._get(f"/system/v1/psa/invoices/{_seg(invoice_id)}", PsaInvoice)

    async def create_psa_invoice(self, command: PsaInvoiceCreate, *, idempotency_key: str) -> PsaInvoice:
        return await self._post(
            "/system/v1/psa/invoices", PsaInvoice, command, idempotency_key=idempotency_key
        )

    async def finalize_psa_invoice(
        self,
        invoice_id: str,
        *,
        erp_invoice_id: str,
        erp_invoice_number: str | None = None,
        idempotency_key: str,
    ) -> PsaInvoice:
        path = f"/system/v1/psa/invoices/{_seg(invoice_id)}/finalize"
        body = PsaInvoiceFinalize(erp_invoice_id=erp_invoice_id, erp_invoice_number=erp_invoice_number)
        return await self._post(path, PsaInvoice, body, idempotency_key=idempotency_key)

    async def cancel_psa_invoice(self, invoice_id: str, *, idempotency_key: str) -> PsaInvoice:
        path = f"/system/v1/psa/invoices/{_seg(invoice_id)}/cancel"
        return await self._write("POST", path, PsaInvoice, idempotency_key=idempotency_key)

    async def record_psa_payment(
        self, invoice_id: str, payment: PsaPaymentRecord, *, idempotency_key: str
    ) -> PsaInvoice:
        path = f"/system/v1/psa/invoices/{_seg(invoice_id)}/payments"
        return await self._post(path, PsaInvoice, payment, idempotency_key=idempotency_key)

    # ERP
    async def ensure_erp_change_subscriptions(
        self, request: ChangeSubscriptionRequest
    ) -> list[ChangeSubscription]:
        """The ERPs' push subscriptions to the URL, made or renewed as needed (safe to repeat: no key)."""
        found = await self._write(
            "PUT", "/system/v1/erp/change-subscriptions", ChangeSubscriptionList, request
        )
        return found.items

    async def get_erp_customer(self, customer_id: str) -> Customer:
        """The ERP's customer (its billing name), by the id an ERP invoice names."""
        return await self._get(f"/system/v1/erp/customers/{_seg(customer_id)}", Customer)

    async def list_erp_customers_by_id(self, customer_ids: Sequence[str]) -> list[Customer]:
        """The ERP customers of these ids (at most 100), in one call; an id the ERPs do not have is absent."""
        if not customer_ids:
            return []
        page = await self._get("/system/v1/erp/customers", CustomerPage, _params(id=",".join(customer_ids)))
        return page.items

    async def upsert_erp_customer(self, command: CustomerUpsert, *, idempotency_key: str) -> Customer:
        return await self._post(
            "/system/v1/erp/customers", Customer, command, idempotency_key=idempotency_key
        )

    async def find_probable_duplicate_customers(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        """The ERP customers that are probably the same company as the account (a search: no key)."""
        found = await self._post("/system/v1/erp/customer-matches", CustomerMatchList, query)
        return found.items

    async def create_erp_project(self, command: ProjectCreate, *, idempotency_key: str) -> Project:
        return await self._post("/system/v1/erp/projects", Project, command, idempotency_key=idempotency_key)

    async def create_billing_schedule(
        self, project_id: str, command: BillingScheduleCreate, *, idempotency_key: str
    ) -> BillingSchedule:
        path = f"/system/v1/erp/projects/{_seg(project_id)}/billing-schedules"
        return await self._post(path, BillingSchedule, command, idempotency_key=idempotency_key)

    async def void_billing_schedule(self, schedule_id: str, *, idempotency_key: str) -> BillingSchedule:
        path = f"/system/v1/erp/billing-schedules/{_seg(schedule_id)}/void"
        return await self._write("POST", path, BillingSchedule, idempotency_key=idempotency_key)

    async def create_invoice(self, command: InvoiceCreate, *, idempotency_key: str) -> Invoice:
        return await self._post("/system/v1/erp/invoices", Invoice, command, idempotency_key=idempotency_key)

    async def get_invoice(self, invoice_id: str) -> Invoice:
        return await self._get(f"/system/v1/erp/invoices/{_seg(invoice_id)}", Invoice)

    async def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        modified_since: dt.datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> InvoicePage:
        params = _params(
            customer_id=customer_id, status=status, modified_since=modified_since, limit=limit, cursor=cursor
        )
        return await self._get("/system/v1/erp/invoices", InvoicePage, params)

    async def post_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        path = f"/system/v1/erp/invoices/{_seg(invoice_id)}/post"
        return await self._write("POST", path, Invoice, idempotency_key=idempotency_key)

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        path = f"/system/v1/erp/invoices/{_seg(invoice_id)}/void"
        return await self._write("POST", path, Invoice, idempotency_key=idempotency_key)

    async def list_payments(
        self,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        modified_since: dt.datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PaymentPage:
        params = _params(
            customer_id=customer_id,
            invoice_id=invoice_id,
            modified_since=modified_since,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/system/v1/erp/payments", PaymentPage, params)

    # FP&A
    async def publish_revenue_baseline(
        self, project_id: str, baseline: RevenueBaseline, *, idempotency_key: str
    ) -> PublishResult:
        path = f"/system/v1/fpa/projects/{_seg(project_id)}/revenue-baseline"
        return await self._write("PUT", path, PublishResult, baseline, idempotency_key=idempotency_key)

    async def publish_revenue_actuals(
        self, project_id: str, actuals: RevenueActuals, *, idempotency_key: str
    ) -> PublishResult:
        path = f"/system/v1/fpa/projects/{_seg(project_id)}/actuals"
        return await self._write("PUT", path, PublishResult, actuals, idempotency_key=idempotency_key)

    async def get_revenue_forecast(self, project_id: str) -> Forecast:
        return await self._get(f"/system/v1/fpa/projects/{_seg(project_id)}/forecast", Forecast)

    # Operations
    async def vendor_api_budgets(self) -> ApiBudgetList:
        """How much of each vendor's API limits is spent (Salesforce's daily requests, NetSuite's
        concurrency, Business Central's 5-minute window, ...)."""
        return await self._get("/system/v1/vendor-api-budgets", ApiBudgetList)
