"""The Business Central adapter for the ERP port: Dynamics 365 Business Central API v2.0 over OData v4.

Business Central's wire format ends here (with ``business_central_mapping``): callers get canonical
customers, projects, invoices and payments, and the errors of ``system_apis.errors``. Outbound behaviour
(pool, timeouts, retries of safe calls honouring ``Retry-After``, breaker) is the shared
``VendorHttpClient``'s; this module adds what is Business Central's own:

- Microsoft Entra ID client credentials (``apis.oauth_client.ClientCredentialsAuth``, refetched on 401);
- one company per adapter: ``settings.company`` (name or id) keeps the books of ``settings.legal_entity``;
  every call is under ``companies({id})``, the id looked up once;
- idempotent writes without an idempotency key, by looking before creating on a business key
  (``business_central_mapping.business_key``):

  ======================== ==========================================================================
  write                    how a repeat is made harmless
  ======================== ==========================================================================
  ``upsert_customer``      find the customer by ``number`` = key(CRM id); ``PATCH`` it (``If-Match``
                           its etag; a 412 rereads it and tries once more) or ``POST`` it; a create
                           refused because the number exists (a lost answer) becomes the update
  ``create_project``       find the project by ``number`` = key(external key), else ``POST``; a number
                           that exists by then is the project
  ``create_invoice``       find the invoice by ``externalDocumentNumber`` = key(external key); else
                           ``POST`` header and lines in one deep insert; then post it
                           (``Microsoft.NAV.post``) unless ``draft``. A draft found by its key (an
                           attempt whose post never happened) is posted, never created again
  ``post_invoice``         read it: a draft is posted (``Microsoft.NAV.post``; a lost answer is
                           settled by reading it again), anything posted is answered as it is
  ``void_invoice``         read it: a draft is deleted (``DELETE`` with ``If-Match``); an unpaid posted
                           invoice is cancelled (``Microsoft.NAV.cancel``: Business Central posts a
                           corrective credit memo, found by its ``invoiceNumber``, and the invoice reads
                           ``Canceled``); a cancelled one is answered as it is; one with payments applied
                           is refused, as Business Central refuses it (credit it by hand)
  ======================== ==========================================================================

- billing: an invoice line's source ids travel as ``Comment`` lines after it, the memo as leading comment
  lines, ``tax_code`` as each line's ``taxCode`` (``business_central_mapping.invoice_body``); ``overdue``
  is computed against today's UTC date; payments changed since a watermark are read by
  ``lastModifiedDateTime`` (``SystemModifiedAt`` on ``customerPayments``, page 30055); a customer's
  ``blocked`` Invoice/All is ``credit_hold``;

- billing schedules in Business Central's own terms: each dated line of a schedule (a milestone or fixed
  fee with an amount) is a **Draft** sales invoice for the project's customer, dated at the line's date,
  with one G/L line (``settings.revenue_account``) for the amount and the line's description, and
  ``externalDocumentNumber`` = ``{schedule_key}#{n}`` (`business_central_mapping.schedule_key`: a
  10-character hash of the schedule's external key). The drafts are what a Business Central user reviews
  and posts as each milestone is reached; Stratum never posts them. A schedule without lines (time and
  materials, retainers: billed monthly from time) makes nothing in Business Central. The schedule id
  (`business_central_mapping.encode_schedule_id`: model, currency, line count, key, project) is all a read
  needs, so no other store is kept:

  * ``create_billing_schedule`` looks before it creates (the drafts whose number starts with
    ``{key}#``) and makes only the missing lines, so a repeat is harmless; ``created`` is False when
    every draft was there (a schedule without lines has nothing to find: each create says True).
    Business Central's ``projects`` name no customer, so the customer a first create bills is the one
    this adapter was last given for the project (``create_project``, which the activation calls first
    and which is idempotent); for a project it was not given one for (e.g. after a restart between the
    two calls) the drafts still missing are refused (``VendorRejected``, ``ProjectCustomerUnknown``):
    repeat the project's create, then the schedule's. A line without an amount is refused
    (``NotSupported``): there is nothing to draft;
  * ``get_billing_schedule`` rebuilds the schedule from the invoices with its key, in line order (drafts
    and any a user has posted since; milestone names and the external key are not kept, so they read
    None); it reads ``voided`` when the schedule had lines and some are gone;
  * ``void_billing_schedule`` deletes the schedule's remaining drafts (``DELETE`` with ``If-Match``);
    posted invoices are real invoices and are left alone (credit them in Business Central). Voiding twice
    is harmless. A schedule without lines has nothing to void: voiding it changes nothing and it still
    reads ``voided=False``;
- lists paged with ``$top``/``$skip`` behind an opaque cursor (the offset in the vendor's list, the page
  size and a fingerprint of the filter), following ``@odata.nextLink`` wherever the server pages shorter;
- probable duplicate customers: ``$filter`` narrows the candidates (tax id, web domain, or a name that
  starts like the account's), ``system_apis.erp.matching`` decides;
- Business Central's error document (``{"error": {"code", "message"}}``) mapped to the port's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import msgspec
import structlog

from apis.at_once import all_at_once
from apis.config import BusinessCentralSettings
from apis.oauth_client import ClientCredentialsAuth
from contracts.models import (
    BillingSchedule,
    BillingScheduleCreate,
    ChangeSubscription,
    Customer,
    CustomerMatch,
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
    SystemIds,
)
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import fingerprint as listing_fingerprint
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.erp.business_central_mapping import (
    EXTERNAL_DOCUMENT_NUMBER_LENGTH,
    MAX_SCHEDULE_LINES,
    BcCompany,
    BcCreditMemo,
    BcCustomer,
    BcInvoice,
    BcPayment,
    BcProject,
    BcSubscription,
    BcTaxArea,
    ODataPage,
    ScheduleRef,
    business_key,
    customer_create_body,
    customer_from_bc,
    customer_update_body,
    decode_error,
    decode_page,
    decode_schedule_id,
    encode_body,
    encode_schedule_id,
    invoice_body,
    invoice_from_bc,
    invoice_query,
    is_guid,
    odata_datetime,
    odata_quote,
    parse_bc_datetime,
    payment_from_bc,
    project_body,
    project_from_bc,
    same_subscription_resource,
    schedule_document_number,
    schedule_invoice_body,
    schedule_key,
    schedule_line_from_bc,
    schedule_line_number,
)
from system_apis.erp.matching import (
    is_probable_duplicate,
    normalize_company_name,
    normalize_tax_id,
    web_domain,
)
from system_apis.erp.port import InvoiceFilter
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.records import map_page, map_record
from system_apis.vendor_checks import Check
from system_apis.vendor_http import (
    BreakerPolicy,
    RetryPolicy,
    VendorHttpClient,
    default_error_for_response,
    parse_retry_after,
    vendor_http_config,
)
from system_apis.vendor_links import followable_link, path_segment

__all__ = ["BusinessCentralErp", "InvalidCursor", "decode_cursor", "encode_cursor"]

VENDOR = "business_central"

_MAX_PAGE = 1000
_IDS_PER_FILTER = 25  # customer ids in one ``$filter`` (``id eq {guid}`` joined by ``or``: ~1.3 KB)
_MAX_OFFSET = 10_000_000
# Candidates read for one duplicate check, and payments read to find one customer's currency.
_MAX_SCANNED_CANDIDATES = 5000
_JSON = {"Content-Type": "application/json"}
_CONFLICT = "Request_EntityChanged"
_KEY_EXISTS = "Internal_EntityWithSameKeyExists"
# The collections whose changes Stratum's invoice status needs, among those Business Central sends webhooks
# for ("Working with webhooks in Dynamics 365 Business Central", "List of supported entities": salesInvoices
# and salesCreditMemos are there; customerPayments is not, only customerPaymentJournals, whose lines are
# the payments. A posted payment changes its invoice's remainingAmount, which notifies salesInvoices).
WEBHOOK_ENTITY_SETS = ("salesInvoices", "salesCreditMemos")
# A subscription lives 3 days unless renewed (same page, "Renewing the subscription"): renewed when less
# than this is left, so a daily renewal always finds it alive with a day to spare.
RENEW_WHEN_LEFT = dt.timedelta(days=2)
# Projects whose customer this adapter was told (Business Central's projects name none), newest last.
_MAX_REMEMBERED_PROJECTS = 10_000

_T = TypeVar("_T")
_Etagged = BcCustomer | BcProject


def _log() -> Any:
    # A fresh lazy proxy per use, so structlog.testing.capture_logs sees the lines (see vendor_http).
    return structlog.get_logger(__name__)


def encode_cursor(offset: int, limit: int, fingerprint: str) -> str:
    """The opaque cursor for the list position ``offset``: base64url of ``offset.limit.fingerprint``."""
    return wrap_cursor(f"{offset}.{limit}.{fingerprint}")


def decode_cursor(cursor: str, *, limit: int, fingerprint: str) -> int:
    """The list position a cursor stands for; ``InvalidCursor`` for anything this adapter did not issue for
    the same list, filter and page size."""
    raw = unwrap_cursor(cursor, max_length=200)
    match = re.fullmatch(r"(\d{1,8})\.(\d{1,4})\.([0-9a-f]{16})", raw)
    if match is None:
        raise InvalidCursor("cursor is not one this API produced")
    offset, cursor_limit, cursor_fingerprint = int(match.group(1)), int(match.group(2)), match.group(3)
    if cursor_fingerprint != fingerprint:
        raise InvalidCursor("cursor belongs to another list or filter")
    if cursor_limit != limit:
        raise InvalidCursor("cursor was made for another page size")
    if offset > _MAX_OFFSET:
        raise InvalidCursor("cursor is not one this API produced")
    return offset


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= _MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {_MAX_PAGE}")


def _iso(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).isoformat()


def _record_id(record: Any) -> str:
    return str(record.id)


def _expires(subscription: BcSubscription) -> dt.datetime | None:
    try:
        return parse_bc_datetime(subscription.expiration_date_time)
    except ValueError:
        return None  # unreadable: treated as expiring, so it is renewed


def _bad_body(what: str, exc: Exception) -> VendorBadResponse:
    message = f"Business Central sent an unusable {what}: {type(exc).__name__}: {exc}"
    return VendorBadResponse(VENDOR, message[:400])


def _decoded(what: str, item_type: type[_T], body: bytes) -> _T:
    try:
        return msgspec.json.decode(body, type=item_type)
    except (msgspec.DecodeError, ValueError) as exc:
        raise _bad_body(what, exc) from None


class BusinessCentralErp:
    """``ErpPort`` over Dynamics 365 Business Central API v2.0, for one company.

    ``transport`` is the test seam (an ``httpx.ASGITransport`` to the sandbox) and carries the token
    requests too. ``retry``, ``breaker`` and ``sleep`` tune the shared outbound behaviour.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: BusinessCentralSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        if settings.base_url is None:
            raise ValueError("BusinessCentralErp needs a base_url (the bootstrap substitutes the sandbox's)")
        if not settings.client_id or not settings.client_secret:
            raise ValueError("BusinessCentralErp needs settings.client_id and settings.client_secret")
        if not settings.tenant_id or not settings.company:
            raise ValueError("BusinessCentralErp needs settings.tenant_id and settings.company")
        self._settings = settings
        self._today = today
        root = settings.base_url.rstrip("/")
        api = f"{root}/v2.0/{settings.tenant_id}/{settings.environment}/api/v2.0"
        self._auth = ClientCredentialsAuth(
            token_url=settings.token_url
            or f"https://login.microsoftonline.com/{settings.tenant_id}/oauth2/v2.0/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scope=settings.scope,
            transport=transport,
            auth_method="client_secret_post",
            timeout=settings.timeout_seconds,
        )
        config = vendor_http_config(settings, api, retry=retry, breaker=breaker)
        self._http = VendorHttpClient(
            VENDOR,
            config,
            auth=self._auth,
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self._error_for_response,
            sleep=sleep,
            clock=clock,
            # Business Central's limits are per principal (the app registration), not per environment.
            principal=f"{settings.tenant_id}|{settings.client_id}",
        )
        self._company: str = settings.company
        self._company_id: str | None = settings.company.lower() if is_guid(settings.company) else None
        self._company_lock = asyncio.Lock()
        self._legal_entity = settings.legal_entity
        self._project_customers: dict[str, str] = {}
        # Tax area id -> code (the tax jurisdiction): a customer names its area by id only.
        self._tax_area_codes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"BusinessCentralErp({str(self._http.base_url)!r}, company={self._settings.company!r})"

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    async def close(self) -> None:
        await self._http.aclose()
        await self._auth.aclose()

    # --- customers -----------------------------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer:
        if not is_guid(customer_id):
            raise NotFound(VENDOR, "no such customer")
        record = _decoded("customer", BcCustomer, await self._get(f"customers({customer_id})"))
        await self._learn_tax_areas([record])
        return self._customer(record)

    async def find_customer(self, crm_customer_id: str) -> Customer | None:
        record = await self._customer_by_number(business_key(crm_customer_id))
        if record is None:
            return None
        await self._learn_tax_areas([record])
        return self._customer(record, crm_customer_id)

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        _check_limit(limit)
        fingerprint = listing_fingerprint("customers", _iso(modified_since))
        offset = decode_cursor(cursor, limit=limit, fingerprint=fingerprint) if cursor is not None else 0
        where = f"lastModifiedDateTime gt {odata_datetime(modified_since)}" if modified_since else None
        rows, next_offset = await self._scan("customers", BcCustomer, where, "number", limit, offset)
        await self._learn_tax_areas(rows)
        items, skipped = map_page(VENDOR, "customer", rows, self._map_customer, record_id=_record_id)
        next_cursor = encode_cursor(next_offset, limit, fingerprint) if next_offset is not None else None
        return CustomerPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        # ``$filter=id eq X or id eq Y ...``: ``or`` over one property is what every Business Central
        # version takes ("Using filter expressions in OData URIs", learn.microsoft.com/dynamics365/
        # business-central/dev-itpro/webservices/use-filter-expressions-in-odata-uris); the OData 4.01 ``in``
        # operator is not in all of them. GUID literals unquoted, each checked to be a GUID first; ids that
        # are not GUIDs name no customer (`get_customer` answers 404) and are not asked. At most
        # _IDS_PER_FILTER ids a request (the URL stays short), the requests made at once.
        ids = sorted({i.lower() for i in customer_ids if is_guid(i)})
        if len(ids) > _MAX_PAGE:
            raise ValueError(f"at most {_MAX_PAGE} customer ids")
        chunks = [ids[n : n + _IDS_PER_FILTER] for n in range(0, len(ids), _IDS_PER_FILTER)]
        scans = await all_at_once(
            self._scan(
                "customers", BcCustomer, " or ".join(f"id eq {i}" for i in chunk), "number", len(chunk), 0
            )
            for chunk in chunks
        )
        rows = sorted((row for found, _ in scans for row in found), key=lambda row: row.number)
        await self._learn_tax_areas(rows)
        items, skipped = map_page(VENDOR, "customer", rows, self._map_customer, record_id=_record_id)
        return CustomerPage(items=items, skipped=skipped)

    async def find_probable_duplicates(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        filters = duplicate_candidates_filters(query)
        if not filters:
            return []  # nothing to match on: the rule needs a name and a tax id or a domain
        found: dict[str, BcCustomer] = {}
        for where in filters:
            page, _ = await self._scan("customers", BcCustomer, where, "number", _MAX_SCANNED_CANDIDATES, 0)
            found.update((row.id, row) for row in page)
        rows = sorted(found.values(), key=lambda row: row.number)
        own = business_key(query.crm_customer_id) if query.crm_customer_id is not None else None
        others = [row for row in rows if own is None or row.number != own]  # not the account's own
        # A candidate that cannot be mapped cannot be compared either: it is logged and left out.
        candidates, _ = map_page(VENDOR, "customer", others, self._map_customer, record_id=_record_id)
        matches: list[CustomerMatch] = []
        for customer in candidates:
            reason = is_probable_duplicate(query, customer)
            if reason is not None:
                matches.append(CustomerMatch(customer=customer, reason=reason))
        return matches

    async def upsert_customer(self, command: CustomerUpsert) -> tuple[Customer, bool]:
        self._check_legal_entity(command.legal_entity)
        number = business_key(command.crm_customer_id)
        existing = await self._customer_by_number(number)
        # The tax area is looked up only when it will be written: on create, or when BC has none yet.
        tax_area_id = (
            await self._tax_area_id(command.tax_jurisdiction)
            if command.tax_jurisdiction and (existing is None or not existing.has_tax_area)
            else None
        )
        if existing is None:
            body = customer_create_body(
                command, number=number, local_currency=self._settings.local_currency, tax_area_id=tax_area_id
            )
            record, created = await self._create(
                "customers", body, BcCustomer, lambda: self._customer_by_number(number)
            )
            if created:
                await self._learn_tax_areas([record])
                return self._customer(record, command.crm_customer_id), True
            # A concurrent upsert made it between our look and our create: update that one.
            existing = record
        updated = await self._patch_with_retry(
            "customers",
            existing,
            lambda current: customer_update_body(command, current, tax_area_id=tax_area_id),
        )
        await self._learn_tax_areas([updated])
        return self._customer(updated, command.crm_customer_id), False

    async def _tax_area_id(self, jurisdiction: str) -> str:
        """The id of the company's tax area coded as ``jurisdiction``; a company without one cannot tax
        the customer's invoices, which finance must set up (``VendorRejected``)."""
        code = jurisdiction.strip().upper()
        page = await self._list_page(
            "taxAreas", BcTaxArea, {"$filter": f"code eq {odata_quote(code)}", "$top": "2"}
        )
        if not page.value:
            raise VendorRejected(
                VENDOR, f"Business Central has no tax area {code} for the customer's tax jurisdiction"
            )
        self._tax_area_codes[page.value[0].id.lower()] = page.value[0].code
        return page.value[0].id

    async def _learn_tax_areas(self, records: Sequence[BcCustomer]) -> None:
        """Know the code of every tax area these customers name, reading the company's areas (few, set up
        by finance) once when one is new to us."""
        if all(not r.has_tax_area or r.tax_area_id.lower() in self._tax_area_codes for r in records):
            return
        page = await self._list_page("taxAreas", BcTaxArea, {"$top": "1000"})
        self._tax_area_codes.update({area.id.lower(): area.code for area in page.value})

    async def _customer_by_number(self, number: str) -> BcCustomer | None:
        page = await self._list_page(
            "customers", BcCustomer, {"$filter": f"number eq {odata_quote(number)}", "$top": "2"}
        )
        return page.value[0] if page.value else None

    def _customer(self, record: BcCustomer, crm_id: str | None = None) -> Customer:
        return map_record(VENDOR, "customer", record.id, lambda: self._map_customer(record, crm_id))

    def _map_customer(self, record: BcCustomer, crm_id: str | None = None) -> Customer:
        jurisdiction = self._tax_area_codes.get(record.tax_area_id.lower()) if record.has_tax_area else None
        return customer_from_bc(
            record, legal_entity=self._legal_entity, crm_id=crm_id, tax_jurisdiction=jurisdiction
        )

    # --- projects ------------------------------------------------------------------------------------

    async def get_project(self, project_id: str) -> Project:
        if not is_guid(project_id):
            raise NotFound(VENDOR, "no such project")
        record = _decoded("project", BcProject, await self._get(f"projects({project_id})"))
        return self._project(record)

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        self._check_legal_entity(command.legal_entity)
        number = business_key(command.external_key)
        found = await self._project_by_number(number)
        if found is not None:
            self._remember_customer(found.id, command.customer_id)
            return self._project(found, command.external_key), False
        record, created = await self._create(
            "projects",
            project_body(command, number=number),
            BcProject,
            lambda: self._project_by_number(number),
        )
        self._remember_customer(record.id, command.customer_id)
        return self._project(record, command.external_key), created

    def _remember_customer(self, project_id: str, customer_id: str) -> None:
        """Business Central's projects name no customer: keep the one given for the project, for the
        drafts of its billing schedule (bounded, the oldest forgotten first)."""
        self._project_customers.pop(project_id.lower(), None)
        self._project_customers[project_id.lower()] = customer_id
        while len(self._project_customers) > _MAX_REMEMBERED_PROJECTS:
            del self._project_customers[next(iter(self._project_customers))]

    async def _project_by_number(self, number: str) -> BcProject | None:
        page = await self._list_page(
            "projects", BcProject, {"$filter": f"number eq {odata_quote(number)}", "$top": "2"}
        )
        return page.value[0] if page.value else None

    def _project(self, record: BcProject, external_key: str | None = None) -> Project:
        return map_record(
            VENDOR,
            "project",
            record.id,
            lambda: project_from_bc(record, legal_entity=self._legal_entity, external_key=external_key),
        )

    # --- billing schedules ---------------------------------------------------------------------------

    async def create_billing_schedule(
        self, project_id: str, command: BillingScheduleCreate
    ) -> tuple[BillingSchedule, bool]:
        if not is_guid(project_id):
            raise NotFound(VENDOR, "no such project")
        if len(command.lines) > MAX_SCHEDULE_LINES:
            raise VendorRejected(
                VENDOR, f"a schedule has at most {MAX_SCHEDULE_LINES} lines", vendor_code="NotSupported"
            )
        if any(line.amount is None for line in command.lines):
            raise VendorRejected(
                VENDOR,
                "Business Central plans billing as draft invoices, and a schedule line without an amount "
                "has nothing to draft: bill time from the PSA instead",
                vendor_code="NotSupported",
            )
        project = _decoded("project", BcProject, await self._get(f"projects({project_id})"))
        key = schedule_key(command.external_key)
        ref = ScheduleRef(
            billing_model=command.billing_model,
            currency=command.currency.upper(),
            line_count=len(command.lines),
            key=key,
            project_id=project.id.lower(),
        )
        drafts = await self._schedule_invoices(key)
        missing = [number for number in range(1, len(command.lines) + 1) if number not in drafts]
        created = False
        if missing:
            customer_id = command.customer_id or self._project_customers.get(project.id.lower())
            if customer_id is None:
                raise VendorRejected(
                    VENDOR,
                    f"Business Central project {project.number} names no customer and this adapter was not "
                    "given one: name the customer in the schedule (customer_id), or create the project first",
                    vendor_code="ProjectCustomerUnknown",
                )
            for number in missing:
                body = schedule_invoice_body(
                    command,
                    number,
                    key=key,
                    customer_id=customer_id,
                    revenue_account=self._settings.revenue_account,
                    local_currency=self._settings.local_currency,
                )
                document = schedule_document_number(key, number)
                _, made = await self._create(
                    "salesInvoices",
                    body,
                    BcInvoice,
                    functools.partial(self._invoice_by_document, document),
                )
                created = created or made
            drafts = await self._schedule_invoices(key)
        elif not command.lines:
            created = True  # nothing to make: every create of a line-less schedule is the first
        schedule = self._build_schedule(ref, drafts, external_key=command.external_key)
        return schedule, created

    async def get_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        ref = decode_schedule_id(schedule_id)
        if ref is None:
            raise NotFound(VENDOR, "no such billing schedule")
        await self._get(f"projects({ref.project_id})", {"$select": "id"})  # NotFound with its project
        return self._build_schedule(ref, await self._schedule_invoices(ref.key))

    async def void_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        ref = decode_schedule_id(schedule_id)
        if ref is None:
            raise NotFound(VENDOR, "no such billing schedule")
        await self._get(f"projects({ref.project_id})", {"$select": "id"})
        for invoice in (await self._schedule_invoices(ref.key)).values():
            if invoice.status != "Draft":
                continue  # posted: a real invoice now, left to be credited in Business Central
            try:
                await self._send(
                    "DELETE",
                    f"salesInvoices({invoice.id})",
                    headers={"If-Match": invoice.etag or "*"},
                    idempotent=True,
                )
            except NotFound:
                continue  # gone already (a repeat, or a retry of a delete whose answer was lost)
        return self._build_schedule(ref, await self._schedule_invoices(ref.key))

    async def _schedule_invoices(self, key: str) -> dict[int, BcInvoice]:
        """The schedule's invoices (drafts and any posted since) by line number."""
        where = f"startswith(externalDocumentNumber,{odata_quote(key + '#')})"
        rows, _ = await self._scan(
            "salesInvoices", BcInvoice, where, "number", MAX_SCHEDULE_LINES, 0, expand=True
        )
        found: dict[int, BcInvoice] = {}
        for row in rows:
            number = schedule_line_number(row, key)
            if number is not None and number not in found:
                found[number] = row
        return dict(sorted(found.items()))

    async def _invoice_by_document(self, document: str) -> BcInvoice | None:
        page = await self._list_page(
            "salesInvoices",
            BcInvoice,
            {"$filter": f"externalDocumentNumber eq {odata_quote(document)}", "$top": "2"},
        )
        return page.value[0] if page.value else None

    def _build_schedule(
        self, ref: ScheduleRef, invoices: Mapping[int, BcInvoice], *, external_key: str | None = None
    ) -> BillingSchedule:
        lines = [
            map_record(VENDOR, "sales invoice", invoice.id, functools.partial(schedule_line_from_bc, invoice))
            for _, invoice in sorted(invoices.items())
        ]
        schedule_id = encode_schedule_id(
            billing_model=ref.billing_model,
            currency=ref.currency,
            line_count=ref.line_count,
            key=ref.key,
            project_id=ref.project_id,
        )
        return BillingSchedule(
            id=schedule_id,
            project_id=ref.project_id,
            billing_model=ref.billing_model,
            currency=ref.currency,
            lines=lines,
            external_key=external_key,
            voided=ref.line_count > 0 and len(invoices) < ref.line_count,
            system_ids=SystemIds(erp=schedule_id),
        )

    # --- invoices ------------------------------------------------------------------------------------

    async def get_invoice(self, invoice_id: str) -> Invoice:
        record = await self._read_invoice(invoice_id)
        if record.status == "Canceled":
            return await self._voided(record)
        return self._invoice(record)

    async def list_invoices(
        self, query: InvoiceFilter, *, limit: int, cursor: str | None = None
    ) -> InvoicePage:
        _check_limit(limit)
        # Only the port's statuses reach the filter; a string posing as one is refused before any call.
        status = InvoiceStatus(query.status) if query.status is not None else None
        fingerprint = listing_fingerprint(
            "invoices", query.customer_id or "", status or "", _iso(query.modified_since)
        )
        offset = decode_cursor(cursor, limit=limit, fingerprint=fingerprint) if cursor is not None else 0
        if query.customer_id is not None and not is_guid(query.customer_id):
            return InvoicePage(items=[])  # no Business Central customer has such an id
        where, refine = invoice_query(
            customer_id=query.customer_id, status=status, modified_since=query.modified_since
        )
        rows, next_offset = await self._scan(
            "salesInvoices", BcInvoice, where, "id", limit, offset, refine=refine, expand=True
        )
        next_cursor = encode_cursor(next_offset, limit, fingerprint) if next_offset is not None else None
        items, skipped = map_page(VENDOR, "sales invoice", rows, self._map_invoice, record_id=_record_id)
        return InvoicePage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def create_invoice(self, command: InvoiceCreate) -> tuple[Invoice, bool]:
        if not is_guid(command.customer_id):
            raise NotFound(VENDOR, "no such customer")
        key = business_key(command.external_key, EXTERNAL_DOCUMENT_NUMBER_LENGTH)
        existing = await self._invoice_by_key(key, command.customer_id)
        if existing is None:
            body = invoice_body(
                command,
                key=key,
                revenue_account=self._settings.revenue_account,
                local_currency=self._settings.local_currency,
            )
            customer_id = command.customer_id
            found, created = await self._create(
                "salesInvoices", body, BcInvoice, lambda: self._invoice_by_key(key, customer_id)
            )
        else:
            found, created = existing, False
        if found.status == "Draft" and not command.draft:
            # Made by this call or by an attempt that never got to posting it: raising it means posting it.
            found = await self._post(found)
        return self._invoice(found, command.external_key), created

    async def post_invoice(self, invoice_id: str) -> Invoice:
        record = await self._read_invoice(invoice_id)
        if record.status in ("Canceled", "Corrective"):
            raise VendorRejected(
                VENDOR,
                f"Business Central sales invoice {record.number} is {record.status.lower()}: "
                "there is nothing to post",
                vendor_code="InvoiceCanceled",
            )
        if record.status == "In Review":
            # Waiting in Business Central's own approval workflow: posting is that workflow's to do.
            raise VendorRejected(
                VENDOR,
                f"Business Central sales invoice {record.number} is waiting for approval in Business Central",
                vendor_code="InvoiceInReview",
            )
        if record.status == "Draft":
            record = await self._post(record)
        return self._invoice(record)

    async def _post(self, record: BcInvoice) -> BcInvoice:
        """Post a draft (``Microsoft.NAV.post``) and read it back, under the same id. The action has no
        idempotency key: a lost answer, or a refusal because it is no draft any more, is settled by reading
        the invoice again (posted by then: done; still a draft: the error stands)."""
        try:
            await self._send("POST", f"salesInvoices({record.id})/Microsoft.NAV.post")
        except (VendorTimeout, VendorRejected) as exc:
            current = await self._read_invoice(record.id)
            if current.status in ("Draft", "In Review"):
                raise exc from None
            _log().info("business_central_post_settled_by_read", id=record.id, status=current.status)
            return current
        return await self._read_invoice(record.id)

    async def void_invoice(self, invoice_id: str) -> Invoice:
        record = await self._read_invoice(invoice_id)
        if record.status in ("Draft", "In Review"):
            return await self._delete_draft(record)
        if record.status in ("Canceled", "Corrective"):
            return await self._voided(record)
        if record.status == "Paid" or record.remaining_amount != record.total_amount_including_tax:
            raise VendorRejected(
                VENDOR,
                f"Business Central sales invoice {record.number} has payments applied: Business Central "
                "cancels only an invoice nothing was paid on (credit it by hand)",
                vendor_code="InvoicePaid",
            )
        try:
            await self._send("POST", f"salesInvoices({record.id})/Microsoft.NAV.cancel")
        except (VendorTimeout, VendorRejected) as exc:
            # A lost answer, or cancelled meanwhile ("already been canceled"): what it reads now decides.
            current = await self._read_invoice(record.id)
            if current.status != "Canceled":
                raise exc from None
            return await self._voided(current)
        return await self._voided(await self._read_invoice(record.id))

    async def _delete_draft(self, record: BcInvoice) -> Invoice:
        """Delete a draft; the answer is the invoice as it was, void. A repeat finds nothing to void
        (``NotFound``: a deleted draft leaves nothing behind in Business Central)."""
        # NotFound: a retry of a delete whose answer was lost found it gone, as asked.
        with contextlib.suppress(NotFound):
            await self._send(
                "DELETE",
                f"salesInvoices({record.id})",
                headers={"If-Match": record.etag or "*"},
                idempotent=True,
            )
        voided = msgspec.structs.replace(record, status="Canceled", remaining_amount=Decimal(0))
        return self._invoice(voided)

    async def _voided(self, record: BcInvoice) -> Invoice:
        """A cancelled invoice with the corrective credit memo Business Central posted for it."""
        page = await self._list_page(
            "salesCreditMemos",
            BcCreditMemo,
            {"$filter": f"invoiceNumber eq {odata_quote(record.number)}", "$top": "10"},
        )
        memos = sorted(page.value, key=lambda memo: (memo.status != "Corrective", memo.number))
        return self._invoice(record, credit_memo_id=memos[0].id if memos else None)

    async def _read_invoice(self, invoice_id: str) -> BcInvoice:
        if not is_guid(invoice_id):
            raise NotFound(VENDOR, "no such invoice")
        body = await self._get(f"salesInvoices({invoice_id})", {"$expand": "salesInvoiceLines"})
        return _decoded("sales invoice", BcInvoice, body)

    async def _invoice_by_key(self, key: str, customer_id: str) -> BcInvoice | None:
        page = await self._list_page(
            "salesInvoices",
            BcInvoice,
            {
                "$filter": f"externalDocumentNumber eq {odata_quote(key)}",
                "$expand": "salesInvoiceLines",
                "$top": "10",
            },
        )
        mine = [invoice for invoice in page.value if invoice.customer_id.lower() == customer_id.lower()]
        if not mine and page.value:
            raise VendorRejected(
                VENDOR,
                f"Business Central already has an invoice with external document number {key} for another "
                "customer",
                vendor_code="DUPLICATE_KEY",
            )
        return mine[0] if mine else None

    def _invoice(
        self, record: BcInvoice, external_key: str | None = None, *, credit_memo_id: str | None = None
    ) -> Invoice:
        return map_record(
            VENDOR,
            "sales invoice",
            record.id,
            lambda: self._map_invoice(record, external_key, credit_memo_id=credit_memo_id),
        )

    def _map_invoice(
        self, record: BcInvoice, external_key: str | None = None, *, credit_memo_id: str | None = None
    ) -> Invoice:
        return invoice_from_bc(
            record,
            local_currency=self._settings.local_currency,
            external_key=external_key,
            today=self._today(),
            credit_memo_id=credit_memo_id,
            legal_entity=self._legal_entity,
        )

    # --- payments ------------------------------------------------------------------------------------

    async def list_payments(
        self,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        modified_since: dt.datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> PaymentPage:
        _check_limit(limit)
        fingerprint = listing_fingerprint(
            "payments", customer_id or "", invoice_id or "", _iso(modified_since)
        )
        offset = decode_cursor(cursor, limit=limit, fingerprint=fingerprint) if cursor is not None else 0
        if (customer_id is not None and not is_guid(customer_id)) or (
            invoice_id is not None and not is_guid(invoice_id)
        ):
            return PaymentPage(items=[])
        conditions = []
        if customer_id is not None:
            conditions.append(f"customerId eq {customer_id}")
        if invoice_id is not None:
            conditions.append(f"appliesToInvoiceId eq {invoice_id}")
        if modified_since is not None:
            # customerPayments' lastModifiedDateTime is the journal line's SystemModifiedAt (page 30055).
            conditions.append(f"lastModifiedDateTime gt {odata_datetime(modified_since)}")
        where = " and ".join(conditions) or None
        rows, next_offset = await self._scan("customerPayments", BcPayment, where, "id", limit, offset)
        currencies = await self._currencies({row.customer_id for row in rows})
        payments, skipped = map_page(
            VENDOR,
            "customer payment",
            rows,
            lambda row: payment_from_bc(row, currency=currencies.get(row.customer_id.lower(), "")),
            record_id=_record_id,
        )
        next_cursor = encode_cursor(next_offset, limit, fingerprint) if next_offset is not None else None
        return PaymentPage(items=payments, next_cursor=next_cursor, skipped=skipped)

    async def _currencies(self, customer_ids: set[str]) -> dict[str, str]:
        """Each customer's currency (a payment line has none of its own), read concurrently."""
        ids = sorted(customer_id for customer_id in customer_ids if is_guid(customer_id))
        bodies = await asyncio.gather(
            *(self._get(f"customers({customer_id})", {"$select": "id,currencyCode"}) for customer_id in ids)
        )
        currencies: dict[str, str] = {}
        for body in bodies:
            record = _decoded("customer", BcCustomer, body)
            currencies[record.id.lower()] = (record.currency_code or self._settings.local_currency).upper()
        return currencies

    # --- Business Central specifics ------------------------------------------------------------------

    def _check_legal_entity(self, legal_entity: str | None) -> None:
        if legal_entity is not None and legal_entity.upper() != self._legal_entity.upper():
            raise VendorRejected(
                VENDOR,
                f"Business Central company {self._settings.company} keeps the books of "
                f"{self._legal_entity}, not {legal_entity}",
                vendor_code="WrongCompany",
            )

    async def check(self) -> list[Check]:
        """Log in and find the configured company as every call does (by name, or read by its id)."""
        try:
            path = await self._company_path()
            if is_guid(self._settings.company or ""):
                await self._http.send("GET", path)  # an id is not looked up, so read it
            fix = None
        except (NotFound, VendorRejected) as exc:
            fix = (
                f"{exc.message}: set STRATUM_BUSINESS_CENTRAL__COMPANY to the name or id of a company in "
                f"environment {self._settings.environment!r}"
            )
        return [Check(vendor=VENDOR, what=f"company {self._settings.company!r}", fix=fix)]

    # --- change subscriptions (webhooks) ------------------------------------------------------------

    async def ensure_change_subscriptions(
        self, notification_url: str, client_state: str
    ) -> list[ChangeSubscription]:
        """One live subscription per watched collection of the company (``WEBHOOK_ENTITY_SETS``) that
        notifies ``notification_url`` with ``client_state``: looked up first (Business Central documents no
        refusal of a duplicate, so a blind ``POST`` could make a second one), created when missing,
        renewed (``PATCH`` with ``If-Match``, which is safe to repeat) when it carries another client state
        or expires within ``RENEW_WHEN_LEFT``, else kept. Duplicates (two workers that looked at the same
        moment) are deleted, the one that lives longest kept. Business Central handshakes with the URL on
        every create and renewal and refuses the write when it fails (``VendorRejected``)."""
        company = await self._company_path()
        existing = await self._subscriptions()
        now = dt.datetime.now(dt.UTC)
        results: list[ChangeSubscription] = []
        for entity_set in WEBHOOK_ENTITY_SETS:
            resource = f"/api/v2.0/{company}/{entity_set}"
            mine = sorted(
                (
                    found
                    for found in existing
                    if found.notification_url == notification_url
                    and same_subscription_resource(found.resource, resource)
                ),
                key=lambda found: _expires(found) or dt.datetime.min.replace(tzinfo=dt.UTC),
                reverse=True,
            )
            for duplicate in mine[1:]:
                await self._unsubscribe(duplicate)
            body = {"notificationUrl": notification_url, "resource": resource, "clientState": client_state}
            if not mine:
                subscription, outcome = await self._subscribe(body), "created"
            else:
                kept = mine[0]
                expires = _expires(kept)
                if (
                    kept.client_state == client_state
                    and expires is not None
                    and expires - now > RENEW_WHEN_LEFT
                ):
                    subscription, outcome = kept, "kept"
                else:
                    response = await self._http.send(
                        "PATCH",
                        f"subscriptions('{path_segment(kept.subscription_id)}')",
                        headers={**_JSON, "If-Match": kept.etag or "*"},
                        content=encode_body(body),
                        idempotent=True,
                    )
                    subscription, outcome = (
                        _decoded("subscription", BcSubscription, response.content),
                        "renewed",
                    )
            _log().info(
                "business_central_subscription",
                vendor=VENDOR,
                entity_set=entity_set,
                subscription_id=subscription.subscription_id,
                outcome=outcome,
            )
            results.append(
                ChangeSubscription(
                    vendor=VENDOR,
                    resource=entity_set,
                    subscription_id=subscription.subscription_id,
                    expires_at=_expires(subscription),
                    outcome=outcome,
                )
            )
        return results

    async def _subscriptions(self) -> list[BcSubscription]:
        """Every subscription of the environment (``GET subscriptions``, at the API root, not a company's)."""
        page = self._page((await self._http.send("GET", "subscriptions")).content, BcSubscription)
        found = list(page.value)
        base = self._http.base_url
        while page.next_link:
            try:
                url = followable_link(base, page.next_link, f"{base.path.rstrip('/')}/")
            except ValueError:
                raise VendorBadResponse(
                    VENDOR, "Business Central sent a next link outside the configured base URL"
                ) from None
            page = self._page((await self._http.send("GET", str(url))).content, BcSubscription)
            found.extend(page.value)
        return found

    async def _subscribe(self, body: Mapping[str, str]) -> BcSubscription:
        """``POST subscriptions``: no idempotency key, so never retried; a lost answer is settled by
        looking for the subscription it would have made."""
        try:
            response = await self._http.send(
                "POST", "subscriptions", headers=_JSON, content=encode_body(body)
            )
        except VendorTimeout as timeout:
            try:
                again = await self._subscriptions()
            except VendorError:
                raise timeout from None
            made = [
                found
                for found in again
                if found.notification_url == body["notificationUrl"]
                and same_subscription_resource(found.resource, body["resource"])
            ]
            if not made:
                raise
            return made[0]
        return _decoded("subscription", BcSubscription, response.content)

    async def _unsubscribe(self, subscription: BcSubscription) -> None:
        with contextlib.suppress(NotFound):  # gone already: what was wanted
            await self._http.send(
                "DELETE",
                f"subscriptions('{path_segment(subscription.subscription_id)}')",
                headers={"If-Match": subscription.etag or "*"},
                idempotent=True,
            )
        _log().info(
            "business_central_subscription_duplicate_deleted",
            vendor=VENDOR,
            subscription_id=subscription.subscription_id,
        )

    async def _company_path(self) -> str:
        """``companies({id})``, the id looked up once by the configured company name."""
        if self._company_id is None:
            async with self._company_lock:
                if self._company_id is None:
                    name = self._company
                    response = await self._http.send(
                        "GET", "companies", params={"$filter": f"name eq {odata_quote(name)}"}
                    )
                    page = self._page(response.content, BcCompany)
                    if len(page.value) != 1:
                        raise VendorRejected(
                            VENDOR,
                            f"Business Central has {len(page.value) or 'no'} company named {name!r}",
                            vendor_code="BadRequest_NotFound",
                        )
                    try:
                        # It goes into every path from here on: ``..`` or ``/`` in it would leave them.
                        self._company_id = path_segment(page.value[0].id)
                    except ValueError:
                        unusable = "Business Central sent an unusable company id"
                        raise VendorBadResponse(VENDOR, unusable) from None
        return f"companies({self._company_id})"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """Every call under the company goes through here."""
        if content is not None:
            headers = {**_JSON, **(headers or {})}
        url = f"{await self._company_path()}/{path}"
        return await self._http.send(
            method, url, params=params, headers=headers, content=content, idempotent=idempotent
        )

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        return (await self._send("GET", path, params=params)).content

    def _page(self, content: bytes, item_type: type[_T]) -> ODataPage[_T]:
        try:
            return decode_page(content, item_type)
        except (msgspec.DecodeError, ValueError) as exc:
            raise _bad_body("OData page", exc) from None

    async def _list_page(
        self, entity_set: str, item_type: type[_T], params: Mapping[str, str]
    ) -> ODataPage[_T]:
        return self._page(await self._get(entity_set, params), item_type)

    async def _follow(self, link: str, item_type: type[_T]) -> ODataPage[_T]:
        """The page at an ``@odata.nextLink``, which must be under our base URL and company (our token goes
        there): no other origin, no ``..``, no encoded separator."""
        base = self._http.base_url
        try:
            url = followable_link(base, link, f"{base.path.rstrip('/')}/{await self._company_path()}/")
        except ValueError:
            raise VendorBadResponse(
                VENDOR, "Business Central sent a next link outside the configured base URL"
            ) from None
        response = await self._http.send("GET", str(url))
        return self._page(response.content, item_type)

    async def _scan(
        self,
        entity_set: str,
        item_type: type[_T],
        where: str | None,
        orderby: str,
        limit: int,
        offset: int,
        *,
        refine: Callable[[_T], bool] | None = None,
        expand: bool = False,
    ) -> tuple[list[_T], int | None]:
        """Up to ``limit`` entities from position ``offset`` of the filtered, ordered list (``refine``
        dropping some on our side), and the position the next page starts at (None: nothing after)."""
        batch = limit + 1
        params: dict[str, str] = {"$orderby": orderby}
        if where is not None:
            params["$filter"] = where
        if expand:
            params["$expand"] = "salesInvoiceLines"
        items: list[_T] = []
        position = offset
        while True:
            fetched: list[_T] = []
            page = await self._list_page(
                entity_set, item_type, {**params, "$top": str(batch), "$skip": str(position)}
            )
            fetched.extend(page.value)
            while page.next_link and len(fetched) < batch:
                page = await self._follow(page.next_link, item_type)
                fetched.extend(page.value)
            for index, row in enumerate(fetched):
                if refine is not None and not refine(row):
                    continue
                if len(items) == limit:
                    return items, position + index
                items.append(row)
            position += len(fetched)
            if len(fetched) < batch:
                return items, None

    async def _create(
        self,
        entity_set: str,
        body: Mapping[str, Any],
        item_type: type[_T],
        lookup: Callable[[], Awaitable[_T | None]],
    ) -> tuple[_T, bool]:
        """``POST`` a new entity after its business key was looked up and not found: ``(entity, True)``.

        A ``POST`` carries no idempotency key, so it is never retried blindly. When its answer is lost (a
        timeout), the key is looked up again: Business Central may have made it all the same, and then it
        is ours (``True``). When Business Central says the key exists (someone made it since we looked),
        that entity is the answer (``False``). Otherwise the error stands; a later try looks first again.
        """
        try:
            response = await self._send("POST", entity_set, content=encode_body(body))
        except VendorTimeout as timeout:
            try:
                found = await lookup()
            except VendorError:
                raise timeout from None  # still not knowing whether it was made is the answer
            if found is None:
                raise
            _log().info("business_central_lost_create_found", entity_set=entity_set)
            return found, True
        except VendorRejected as exc:
            if exc.vendor_code != _KEY_EXISTS:
                raise
            found = await lookup()
            if found is None:
                raise
            return found, False
        return _decoded(entity_set, item_type, response.content), True

    async def _patch_with_retry(
        self, entity_set: str, current: _Etagged, changes: Callable[[Any], Mapping[str, Any]]
    ) -> Any:
        """``PATCH`` what ``changes`` asks of the entity as it is, with its etag in ``If-Match``. Setting
        fields to values is safe to repeat, so a 412 (someone changed it meanwhile) rereads the entity and
        tries once more, the changes worked out again against what is there now."""
        for attempt in range(2):
            body = changes(current)
            if not body:
                return current  # nothing to change: no write, no new etag
            try:
                response = await self._send(
                    "PATCH",
                    f"{entity_set}({current.id})",
                    headers={"If-Match": current.etag or "*"},
                    content=encode_body(body),
                    idempotent=True,
                )
            except VendorRejected as exc:
                if exc.vendor_code != _CONFLICT or attempt == 1:
                    raise
                _log().info("business_central_etag_conflict", entity_set=entity_set, id=current.id)
                current = _decoded(entity_set, type(current), await self._get(f"{entity_set}({current.id})"))
                continue
            return _decoded(entity_set, type(current), response.content)
        raise AssertionError("unreachable")  # pragma: no cover

    def _error_for_response(self, response: httpx.Response) -> VendorError:
        """Business Central's error document and status -> the port's errors."""
        status = response.status_code
        error = decode_error(response.content)
        code = error.code if error is not None else None
        detail = error.message[:300] if error is not None else ""
        message = (
            f"Business Central {code or 'HTTP ' + str(status)}: {detail}"
            if detail
            else f"Business Central HTTP {status}"
        )
        if status in (404, 410):
            return NotFound(VENDOR, message)
        if status == 429:
            return VendorUnavailable(
                VENDOR,
                f"Business Central is rate limiting us: {code or 'too many requests'}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 412:
            return VendorRejected(VENDOR, message, vendor_code=code or _CONFLICT)
        if 400 <= status < 500 and status != 401:
            return VendorRejected(VENDOR, message, vendor_code=code)
        mapped = default_error_for_response(VENDOR, response)
        if isinstance(mapped, VendorBadResponse) and code:
            mapped = VendorBadResponse(VENDOR, f"{mapped.message} ({code})")
        return mapped


def duplicate_candidates_filters(query: CustomerMatchQuery) -> list[str]:
    """The ``$filter``s that together read every customer that could be a probable duplicate of ``query``'s
    account, a superset the matching rule then confirms; none when the rule cannot match anything (no
    normalized name, or neither a tax id nor a web domain).

    A candidate has the tax id as sent or normalized, or the web domain in its website, or a display name
    starting with the name's first word as sent, capitalized or in capitals (text filters may be
    case-sensitive, and the rule itself ignores case, accents and punctuation). One filter per property:
    Business Central refuses ``or`` between conditions on different properties ("The 'OR' operator is not
    supported on distinct fields on an OData filter", Microsoft Learn, "Known limitations with Business
    Central OData"), so the adapter reads each and joins the answers.
    """
    name = normalize_company_name(query.name)
    tax_id = normalize_tax_id(query.tax_id)
    domain = web_domain(query.website)
    if not name or (tax_id is None and domain is None):
        return []
    sent = query.name.split()[0]
    words = sorted({sent, sent.capitalize(), sent.upper(), sent.lower()})
    filters = [" or ".join(f"startswith(displayName,{odata_quote(word)})" for word in words)]
    if tax_id is not None:
        values = sorted({tax_id, (query.tax_id or "").strip()} - {""})
        filters.append(" or ".join(f"taxRegistrationNumber eq {odata_quote(value[:20])}" for value in values))
    if domain is not None:
        filters.append(f"contains(website,{odata_quote(domain)})")
    return filters
