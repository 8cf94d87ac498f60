"""System API routes for the ERP domain: customer master (and its probable duplicates), projects as billed,
billing schedules, invoices and payments. Every write is idempotent twice over: the gateway's
Idempotency-Key replays an answer, and the adapter's vendor mechanism (external ids, NetSuite idempotency
keys) never creates a second record."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation

from apis.problems import FieldError, ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    BillingSchedule,
    BillingScheduleCreate,
    ChangeSubscriptionList,
    ChangeSubscriptionRequest,
    Customer,
    CustomerMatchList,
    CustomerMatchQuery,
    CustomerPage,
    CustomerUpsert,
    Invoice,
    InvoiceCreate,
    InvoicePage,
    InvoiceStatus,
    PaymentPage,
    Project,
    ProjectCreate,
)
from system_apis.erp.port import MAX_CUSTOMERS_BY_ID, MAX_INVOICE_PAGE, ErpPort, InvoiceFilter
from system_apis.errors import VendorBadResponse, VendorRejected
from system_apis.params import (
    Cursor,
    Limit,
    ModifiedSince,
    RecordIdPath,
    created_or_found,
    cursor_errors,
    customers_by_id,
    since,
)

__all__ = ["erp_routes"]

Erp = NamedDependency[SkipValidation[ErpPort]]
Id = Annotated[str, RecordIdPath]
IdFilter = Annotated[str | None, QueryParameter(pattern=r"^[A-Za-z0-9_:.-]{1,64}$")]
InvoiceLimit = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=MAX_INVOICE_PAGE,
        description=f"Page size (at most {MAX_INVOICE_PAGE}: both ERPs page that many invoices at once).",
    ),
]
CustomerIds = Annotated[
    str | None,
    QueryParameter(
        name="id",
        pattern=rf"^[A-Za-z0-9_:.-]{{1,64}}(,[A-Za-z0-9_:.-]{{1,64}}){{0,{MAX_CUSTOMERS_BY_ID - 1}}}$",
        description=f"Only these customers (comma-separated ids, at most {MAX_CUSTOMERS_BY_ID}), all in one "
        "answer with no `next_cursor`: an id the ERPs do not have is simply absent. With `modified_since`, "
        "only those changed since then; not with `cursor`; `limit` does not apply.",
        required=False,
    ),
]
_TAGS = ["erp"]


@operation(
    "GET",
    "/system/v1/erp/customers",
    operation_id="listErpCustomers",
    summary="List ERP customers, or read several by id",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_customers(
    erp: Erp,
    limit: Limit = 50,
    cursor: Cursor = None,
    modified_since: ModifiedSince = None,
    ids: CustomerIds = None,
) -> CustomerPage:
    if ids is not None:
        return await customers_by_id(
            ids, erp.list_customers_by_id, cursor=cursor, modified_since=modified_since, what="customers"
        )
    with cursor_errors():
        return await erp.list_customers(limit=limit, cursor=cursor, modified_since=since(modified_since))


@operation(
    "GET",
    "/system/v1/erp/customers/{customer_id:str}",
    operation_id="getErpCustomer",
    summary="Read an ERP customer",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_customer(customer_id: Id, erp: Erp) -> Customer:
    return await erp.get_customer(customer_id)


@operation(
    "POST",
    "/system/v1/erp/customers",
    operation_id="upsertErpCustomer",
    summary="Create or update the ERP customer for a CRM account",
    description="Matched on `crm_customer_id`. The CRM owns name and hierarchy; the ERP owns billing and tax "
    "fields, which are only filled in when the ERP has none.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={201: (Customer, "Created."), 200: (Customer, "Updated the existing customer.")},
    tags=_TAGS,
)
async def upsert_customer(data: JSONBody[CustomerUpsert], erp: Erp) -> Response[Any]:
    customer, created = await erp.upsert_customer(data)
    return created_or_found(customer, created, f"/system/v1/erp/customers/{customer.id}")


@operation(
    "POST",
    "/system/v1/erp/customer-matches",
    operation_id="findProbableDuplicateCustomers",
    summary="Find ERP customers that are probably the same company as a CRM account",
    description="A search, not a write (no Idempotency-Key): the ERP customers whose normalized name "
    "(case, accents, punctuation and trailing legal forms ignored) equals `name` and that share the tax id "
    "or the web domain, each with its `reason`. The customer already linked to `crm_customer_id` is not "
    "reported. An empty `items` means no probable duplicate.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    status_code=200,
    tags=_TAGS,
)
async def find_probable_duplicate_customers(
    data: JSONBody[CustomerMatchQuery], erp: Erp
) -> CustomerMatchList:
    try:
        matches = await erp.find_probable_duplicates(data)
    except VendorRejected as exc:
        # Only a read: the vendor refusing it means our query is wrong, which the caller cannot fix (502).
        # The tier's handler would take a refused POST for refused data (422).
        raise VendorBadResponse(exc.vendor, exc.message) from exc
    return CustomerMatchList(items=matches)


@operation(
    "GET",
    "/system/v1/erp/projects/{project_id:str}",
    operation_id="getErpProject",
    summary="Read a project as billed",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_project(project_id: Id, erp: Erp) -> Project:
    return await erp.get_project(project_id)


@operation(
    "POST",
    "/system/v1/erp/projects",
    operation_id="createErpProject",
    summary="Create the billing project",
    description="One project per `external_key`; `customer_id` is the ERP customer's id.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={201: (Project, "Created."), 200: (Project, "A project already existed for this external_key.")},
    tags=_TAGS,
)
async def create_project(data: JSONBody[ProjectCreate], erp: Erp) -> Response[Any]:
    project, created = await erp.create_project(data)
    return created_or_found(project, created, f"/system/v1/erp/projects/{project.id}")


@operation(
    "POST",
    "/system/v1/erp/projects/{project_id:str}/billing-schedules",
    operation_id="createErpBillingSchedule",
    summary="Create a project's billing schedule",
    description="One schedule per `external_key`.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={201: (BillingSchedule, "Created."), 200: (BillingSchedule, "Already created for this key.")},
    tags=_TAGS,
)
async def create_billing_schedule(
    project_id: Id, data: JSONBody[BillingScheduleCreate], erp: Erp
) -> Response[Any]:
    schedule, created = await erp.create_billing_schedule(project_id, data)
    return created_or_found(schedule, created, f"/system/v1/erp/billing-schedules/{schedule.id}")


@operation(
    "GET",
    "/system/v1/erp/billing-schedules/{schedule_id:str}",
    operation_id="getErpBillingSchedule",
    summary="Read a billing schedule",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_billing_schedule(schedule_id: Id, erp: Erp) -> BillingSchedule:
    return await erp.get_billing_schedule(schedule_id)


@operation(
    "POST",
    "/system/v1/erp/billing-schedules/{schedule_id:str}/void",
    operation_id="voidErpBillingSchedule",
    summary="Void a billing schedule (nothing more is billed from it)",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def void_billing_schedule(schedule_id: Id, erp: Erp) -> BillingSchedule:
    return await erp.void_billing_schedule(schedule_id)


@operation(
    "GET",
    "/system/v1/erp/invoices",
    operation_id="listErpInvoices",
    summary="List invoices by customer and status",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_invoices(
    erp: Erp,
    customer_id: IdFilter = None,
    status: Annotated[
        InvoiceStatus | None, QueryParameter(description="Only invoices in this status.")
    ] = None,
    modified_since: ModifiedSince = None,
    limit: InvoiceLimit = 50,
    cursor: Cursor = None,
) -> InvoicePage:
    query = InvoiceFilter(customer_id=customer_id, status=status, modified_since=since(modified_since))
    with cursor_errors():
        return await erp.list_invoices(query, limit=limit, cursor=cursor)


@operation(
    "GET",
    "/system/v1/erp/invoices/{invoice_id:str}",
    operation_id="getErpInvoice",
    summary="Read an invoice with its lines, status and balance",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_invoice(invoice_id: Id, erp: Erp) -> Invoice:
    return await erp.get_invoice(invoice_id)


@operation(
    "POST",
    "/system/v1/erp/invoices",
    operation_id="createErpInvoice",
    summary="Raise an invoice",
    description="One invoice per `external_key`, so a retried or replayed billing run never bills twice.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    success={201: (Invoice, "Created."), 200: (Invoice, "Already raised for this external_key.")},
    tags=_TAGS,
)
async def create_invoice(data: JSONBody[InvoiceCreate], erp: Erp) -> Response[Any]:
    invoice, created = await erp.create_invoice(data)
    return created_or_found(invoice, created, f"/system/v1/erp/invoices/{invoice.id}")


@operation(
    "POST",
    "/system/v1/erp/invoices/{invoice_id:str}/post",
    operation_id="postErpInvoice",
    summary="Post (issue) a draft invoice",
    description="A draft raised for finance's review becomes an issued invoice. Posting one already posted "
    "answers it unchanged.",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def post_invoice(invoice_id: Id, erp: Erp) -> Invoice:
    return await erp.post_invoice(invoice_id)


@operation(
    "POST",
    "/system/v1/erp/invoices/{invoice_id:str}/void",
    operation_id="voidErpInvoice",
    summary="Void or credit an invoice",
    description="A draft is cancelled, a posted invoice voided, or credited in full where the ERP credits "
    "rather than voids (`credit_memo_id`). Voiding twice answers the voided invoice; an invoice with "
    "payments applied is refused (422 `vendor-rejected`).",
    scopes=["system:write"],
    errors=[404, *VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def void_invoice(invoice_id: Id, erp: Erp) -> Invoice:
    return await erp.void_invoice(invoice_id)


@operation(
    "GET",
    "/system/v1/erp/payments",
    operation_id="listErpPayments",
    summary="List payments by customer or invoice",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def list_payments(
    erp: Erp,
    customer_id: IdFilter = None,
    invoice_id: IdFilter = None,
    modified_since: ModifiedSince = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PaymentPage:
    with cursor_errors():
        return await erp.list_payments(
            customer_id=customer_id,
            invoice_id=invoice_id,
            modified_since=since(modified_since),
            limit=limit,
            cursor=cursor,
        )


@operation(
    "PUT",
    "/system/v1/erp/change-subscriptions",
    operation_id="ensureErpChangeSubscriptions",
    summary="Make the ERPs push their invoice changes to a notification URL",
    description="Idempotent by nature (no Idempotency-Key needed): every ERP that can push changes "
    "(Business Central webhooks on salesInvoices and salesCreditMemos) gets one subscription per collection "
    "to `notification_url` carrying `client_state`, looked up before it is created and renewed when it "
    "nears its expiry or carries another client state. The URL must be on this gateway's public URL "
    "(422 `validation-failed` otherwise). The ERP handshakes with the URL first; a failed handshake is 422 "
    "`vendor-rejected`. An ERP that cannot push (NetSuite) adds nothing: `items` may be "
    "empty. The client state is never answered.",
    scopes=["system:write"],
    errors=[*VENDOR_ERRORS],
    idempotency="optional",
    status_code=200,
    tags=_TAGS,
)
async def ensure_change_subscriptions(
    data: JSONBody[ChangeSubscriptionRequest], erp: Erp, public_url: NamedDependency[str]
) -> ChangeSubscriptionList:
    # The ERP's notifications go to this gateway only: a client with system:write cannot point them (and
    # the handshake Business Central makes) at another host.
    own = public_url.rstrip("/") + "/"
    if not data.notification_url.startswith(own):
        raise ProblemError(
            "validation-failed",
            "ERP change notifications can only go to this gateway's own public URL.",
            errors=[FieldError(location="body", field="notification_url", message=f"must start with {own}")],
        )
    items = await erp.ensure_change_subscriptions(data.notification_url, data.client_state)
    return ChangeSubscriptionList(items=items)


erp_routes = [
    list_customers,
    get_customer,
    upsert_customer,
    find_probable_duplicate_customers,
    get_project,
    create_project,
    create_billing_schedule,
    get_billing_schedule,
    void_billing_schedule,
    list_invoices,
    get_invoice,
    create_invoice,
    post_invoice,
    void_invoice,
    list_payments,
    ensure_change_subscriptions,
]
