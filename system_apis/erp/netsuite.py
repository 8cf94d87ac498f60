"""The NetSuite adapter for the ERP port: SuiteTalk REST records, SuiteQL, async jobs, OAuth 2.0 M2M.

NetSuite's wire format ends here: callers get canonical customers, projects, billing schedules, invoices
and payments, and the errors of ``system_apis.errors``. Outbound behaviour (pool, timeouts, retries of
safe calls, breaker) is the shared ``VendorHttpClient``'s; this module adds what is NetSuite's own:

- client credentials with a signed JWT client assertion (``netsuite_auth``), refetched on 401;
- a per-account concurrency cap on our side (an ``asyncio.Semaphore`` around every request), because
  NetSuite allows only a few requests in flight per account (by service tier and SuiteCloud Plus
  licences: ``NetSuiteSettings.concurrency_cap``) and answers 429 beyond that; the bootstrap builds one
  adapter per account, so one semaphore paces every use of the account in the process;
- idempotent writes, since this is money and a workflow step may run twice:

  ======================== ==========================================================================
  write                    how a repeat is made harmless
  ======================== ==========================================================================
  ``upsert_customer``      ``PUT customer/eid:{crm id}`` (an upsert), read first for survivorship
  ``create_project``       look up ``job/eid:{key}``; else ``PUT job/eid:{key}``
  ``create_billing_...``   look up ``billingSchedule/eid:{key}``; else ``PUT .../eid:{key}``; then
                           attach it to the job (``PATCH`` to the same value again is harmless)
  ``void_billing_...``     ``isInactive`` true and detached from its project, each only if not yet so
  ``post_invoice``         ``PATCH approvalStatus`` Approved, only while it is Pending Approval
  ``void_invoice``         a draft: ``approvalStatus`` Rejected (kept, so its key is never reused); a
                           posted one: find its credit memo (SuiteQL ``createdfrom``); else ``POST
                           invoice/{id}/!transform/creditMemo`` with ``externalId`` = ``void:{id}``
                           (unique: a repeat after a lost answer is refused and the memo found)
  ``create_invoice``       look up ``invoice/eid:{key}``; else ``POST`` with ``Prefer: respond-async``
                           and ``X-NetSuite-Idempotency-Key`` = uuid5 of the key, ``externalId`` = key;
                           a reused key (``IDEMPOTENCY_ERROR``, whose ``Location`` names the first
                           job) means an earlier attempt owns the job: wait for that job and return
                           its invoice (``created`` False); if that job failed and made nothing, go
                           on with the key derived from key + that job
  ======================== ==========================================================================

- SuiteQL for lists (one quoting function, ``suiteql_quote``), paged with ``limit``/``offset`` behind an
  opaque cursor that also pins the page size and the filter;
- probable duplicate customers: SuiteQL narrows the candidates (same tax id, the web domain in the URL,
  or a company name starting with the same word), ``system_apis.erp.matching`` decides;
- NetSuite's error document (``o:errorDetails``) mapped to the port's errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msgspec
import structlog

from apis.at_once import all_at_once
from apis.config import NetSuiteSettings
from apis.oauth_client import TokenFetchError
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
    Payment,
    PaymentPage,
    Project,
    ProjectCreate,
)
from system_apis.crm.port import InvalidCursor
from system_apis.cursors import fingerprint as listing_fingerprint
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.erp.matching import (
    is_probable_duplicate,
    normalize_company_name,
    normalize_tax_id,
    web_domain,
)
from system_apis.erp.netsuite_auth import NetSuiteClientAssertionAuth
from system_apis.erp.netsuite_mapping import (
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    SOURCES_FIELD,
    AsyncJob,
    CreditMemoRow,
    CustomerRow,
    InvoiceRow,
    NetSuiteBillingSchedule,
    NetSuiteCustomer,
    NetSuiteJob,
    PaymentRow,
    SetupLookup,
    SetupRow,
    SuiteQlPage,
    billing_schedule_body,
    billing_schedule_from_record,
    credit_memo_query,
    currency_query,
    customer_from_record,
    customer_from_row,
    customer_query,
    customer_upsert_body,
    decode_async_job,
    decode_billing_schedule,
    decode_customer,
    decode_error,
    decode_invoice,
    decode_job,
    decode_payment,
    decode_record_list,
    decode_suiteql_page,
    encode_body,
    invoice_body,
    invoice_from_record,
    invoice_from_row,
    invoice_query,
    job_body,
    payment_from_record,
    payment_query,
    project_from_record,
    q_quote,
    record_id_from_url,
    suiteql_quote,
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
from system_apis.vendor_links import followable_link

__all__ = [
    "IDEMPOTENCY_NAMESPACE",
    "InvalidCursor",
    "NetSuiteErp",
    "decode_cursor",
    "duplicate_candidates_query",
    "encode_cursor",
    "invoice_idempotency_key",
    "is_external_id",
    "is_internal_id",
]

VENDOR = "netsuite"

#: Namespace of the uuid5 idempotency keys: fixed forever, so a key derived today is the one derived by a
#: replay next week, in any process.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5f0c2d6e-8a61-5b8e-9d4e-3a1f7c0b9e21")

_INTERNAL_ID = re.compile(r"^[0-9]{1,18}$")
# NetSuite documents letters, digits, "_" and "-" for external ids; the canonical ExternalKey also allows
# ":" and ".", which NetSuite stores and matches too.
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_:.-]{1,255}$")
_MAX_PAGE = 1000  # NetSuite's page size ceiling for record lists and SuiteQL
_MAX_OFFSET = 1_000_000
# Polling an async job: first wait, growth and ceiling, and how many polls before giving up.
_JOB_POLL_FIRST_SECONDS = 0.25
_JOB_POLL_MAX_SECONDS = 5.0
_JOB_POLLS = 12
# Keys tried per create_invoice call: the first, then one per earlier failed job it finds in the way.
_KEY_GENERATIONS = 4
# Reading a whole customer's payments to find those applied to one invoice is bounded.
_MAX_SCANNED_PAYMENTS = 2000
# Candidates read for one duplicate check; only a one-letter first word comes near it.
_MAX_SCANNED_CANDIDATES = 5000
# Setup data (currencies, subsidiaries) changes rarely; an unknown id refetches it at most this often.
_SETUP_REFRESH_SECONDS = 60.0
# How long start-up waits for its look-up of the invoice item; a slower one goes on in the background.
_START_WAIT_SECONDS = 10.0

_JSON = {"Content-Type": "application/json"}
_SUITEQL_HEADERS = {"Prefer": "transient", "Content-Type": "application/json"}

_T = TypeVar("_T")


def _log() -> Any:
    # A fresh lazy proxy per use, so structlog.testing.capture_logs sees the lines (see vendor_http).
    return structlog.get_logger(__name__)


def is_internal_id(value: str) -> bool:
    """True for a NetSuite internal id (digits); anything else cannot name a record."""
    return _INTERNAL_ID.fullmatch(value) is not None


def is_external_id(value: str) -> bool:
    """True for a value usable as ``eid:{externalId}`` in a URL path."""
    return _EXTERNAL_ID.fullmatch(value) is not None


def invoice_idempotency_key(external_key: str, after_job: str | None = None) -> str:
    """The ``X-NetSuite-Idempotency-Key`` for an invoice's business key: the same UUID on every attempt.

    ``after_job`` names a job that used the previous key and failed without creating anything: the key that
    follows it is derived from both, so every attempt that finds that failed job moves on to the same key.
    """
    name = f"invoice:{external_key}" if after_job is None else f"invoice:{external_key}:after-job:{after_job}"
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


def encode_cursor(offset: int, limit: int, fingerprint: str) -> str:
    """The opaque cursor for the page at ``offset``: base64url of ``offset.limit.fingerprint``."""
    return wrap_cursor(f"{offset}.{limit}.{fingerprint}")


def decode_cursor(cursor: str, *, limit: int, fingerprint: str) -> int:
    """The offset a cursor stands for. Raises ``InvalidCursor`` for anything this adapter did not issue for
    the same list, filter and page size (offsets only line up with the page size they were made with)."""
    raw = unwrap_cursor(cursor, max_length=200)
    match = re.fullmatch(r"(\d{1,7})\.(\d{1,4})\.([0-9a-f]{16})", raw)
    if match is None:
        raise InvalidCursor("cursor is not one this API produced")
    offset, cursor_limit, cursor_fingerprint = int(match.group(1)), int(match.group(2)), match.group(3)
    if cursor_fingerprint != fingerprint:
        raise InvalidCursor("cursor belongs to another list or filter")
    if cursor_limit != limit:
        raise InvalidCursor("cursor was made for another page size")
    if offset > _MAX_OFFSET or offset % limit:
        raise InvalidCursor("cursor is not one this API produced")
    return offset


def _iso(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).isoformat()


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= _MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {_MAX_PAGE}")


def _bad_body(what: str, exc: Exception) -> VendorBadResponse:
    return VendorBadResponse(VENDOR, f"NetSuite sent an unusable {what}: {type(exc).__name__}: {exc}"[:400])


def _decoded(what: str, decode: Callable[[bytes], _T], body: bytes) -> _T:
    try:
        return decode(body)
    except (msgspec.DecodeError, ValueError) as exc:
        raise _bad_body(what, exc) from None


def _record_id(record: Any) -> str:
    return str(record.id)


def _rejected(exc: ValueError) -> VendorRejected:
    # What NetSuite itself answers for a reference it cannot resolve; we know before asking.
    return VendorRejected(VENDOR, f"NetSuite cannot take this: {exc}", vendor_code="INVALID_KEY_OR_REF")


class NetSuiteErp:
    """``ErpPort`` over NetSuite SuiteTalk REST web services.

    ``transport`` is the test seam (an ``httpx.ASGITransport`` to the sandbox) and carries the token
    requests too. The private key comes from ``private_key_pem`` or else ``settings.private_key_file``.
    ``max_concurrent_requests`` caps requests in flight to the account (None: ``settings.concurrency_cap``,
    from the account's service tier and SuiteCloud Plus licences). The account's own setup comes
    from ``settings``: ``invoice_item`` is the service item (its "Item Name/Number") that invoice lines
    bill, ``subsidiaries`` the subsidiary that keeps each legal entity's books. ``retry``, ``breaker``
    and ``sleep`` tune the shared outbound behaviour; ``sleep`` also paces async-job polling.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: NetSuiteSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        private_key_pem: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_concurrent_requests: int | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.rest_url is None:
            raise ValueError(
                "NetSuiteErp needs a base_url or an account (the bootstrap substitutes the sandbox's)"
            )
        if max_concurrent_requests is None:
            max_concurrent_requests = settings.concurrency_cap
        if not settings.client_id or not settings.certificate_id:
            raise ValueError("NetSuiteErp needs settings.client_id and settings.certificate_id")
        if max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        if not settings.time_zone:
            raise ValueError(
                "NetSuiteErp needs settings.time_zone, the account's time zone (the bootstrap substitutes "
                "the sandbox's): SuiteQL shows and reads times in it"
            )
        try:
            # SuiteQL's dates and times are the account's wall-clock time (its time zone preference).
            self._zone: dt.tzinfo = ZoneInfo(settings.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"settings.time_zone {settings.time_zone!r} is not an IANA time zone") from None
        if private_key_pem is None:
            if not settings.private_key_file:
                raise ValueError(
                    "NetSuiteErp needs a private key: private_key_pem or settings.private_key_file"
                )
            private_key_pem = Path(settings.private_key_file).read_text(encoding="ascii")
        invoice_item = settings.invoice_item
        q_quote(invoice_item)  # refuse an unusable item name now, not at the first invoice
        for entity, subsidiary_id in settings.subsidiaries.items():
            if not is_internal_id(subsidiary_id):
                raise ValueError(f"settings.subsidiaries[{entity!r}] is not a NetSuite internal id")
        # Subsidiary internal id -> legal entity: which subsidiary keeps whose books is the account's setup.
        self._legal_entities = {
            subsidiary_id: entity for entity, subsidiary_id in settings.subsidiaries.items()
        }
        base_url = settings.rest_url.rstrip("/")
        self._auth = NetSuiteClientAssertionAuth(
            token_url=settings.token_url or f"{base_url}/auth/oauth2/v1/token",
            client_id=settings.client_id,
            certificate_id=settings.certificate_id,
            private_key_pem=private_key_pem,
            algorithm=settings.algorithm,
            transport=transport,
            timeout=settings.timeout_seconds,
        )
        del private_key_pem  # the auth holds the parsed key; keep no copy of the text around
        config = vendor_http_config(settings, base_url, retry=retry, breaker=breaker)
        self._http = VendorHttpClient(
            VENDOR,
            config,
            auth=self._auth,
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self._error_for_response,
            sleep=sleep,
        )
        self._sleep = sleep
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent_requests)
        self._max_concurrent_requests = max_concurrent_requests
        self._account = settings.account
        self._account_limit = settings.account_concurrency_limit
        licences = settings.suitecloud_plus_licenses
        self._account_limit_basis = (
            f"{settings.service_tier} tier + {licences} SuiteCloud Plus licence{'' if licences == 1 else 's'}"
        )
        self._invoice_item = invoice_item
        self._invoice_item_id: str | None = None
        self._setup: SetupLookup | None = None
        self._setup_loaded_at = float("-inf")
        self._setup_lock = asyncio.Lock()
        self._start_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"NetSuiteErp({str(self._http.base_url)!r}, auth={self._auth!r})"

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    @property
    def auth(self) -> NetSuiteClientAssertionAuth:
        return self._auth

    @property
    def max_concurrent_requests(self) -> int:
        return self._max_concurrent_requests

    async def ensure_change_subscriptions(
        self, notification_url: str, client_state: str
    ) -> list[ChangeSubscription]:
        """None: NetSuite sends no webhooks to a REST client (its changes are found by SuiteQL on
        ``lastmodifieddate``, the invoice status sync's polling)."""
        del notification_url, client_state
        return []

    async def close(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        await self._http.aclose()
        await self._auth.aclose()

    async def start(self) -> None:
        """Look up the invoice item at start-up, so an account without it is named in the log before the
        first invoice is refused. Waits a bounded time and never fails: NetSuite may be down at start-up
        (invoicing looks the item up again then)."""
        self._start_task = asyncio.create_task(self._check_at_start())
        await asyncio.wait({self._start_task}, timeout=_START_WAIT_SECONDS)

    async def _check_at_start(self) -> None:
        try:
            await self._service_item_id()
        except VendorRejected as exc:
            _log().error(
                "netsuite_invoice_item_missing",
                vendor=VENDOR,
                item=self._invoice_item,
                error=exc.message,
                fix="create that service item, or set STRATUM_NETSUITE__INVOICE_ITEM to the Item Name/Number "
                "of the one invoices should bill",
            )
        except (VendorError, httpx.HTTPError) as exc:
            message = exc.message if isinstance(exc, VendorError) else repr(exc)
            _log().warning("netsuite_setup_unchecked", vendor=VENDOR, error=message)
        except Exception as exc:  # a bug here must not surface as an unretrieved task exception
            _log().error("netsuite_setup_check_failed", vendor=VENDOR, error=repr(exc))

    # --- customers -----------------------------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer:
        if not is_internal_id(customer_id):
            raise NotFound(VENDOR, "no such customer")
        # Expanded: the address book is a sublist, shown only as a link otherwise.
        record = _decoded("customer", decode_customer, await self._read("customer", customer_id, expand=True))
        return await self._customer(record)

    async def find_customer(self, crm_customer_id: str) -> Customer | None:
        if not is_external_id(crm_customer_id):
            return None
        body = await self._read_optional("customer", f"eid:{crm_customer_id}", expand=True)
        if body is None:
            return None
        return await self._customer(_decoded("customer", decode_customer, body))

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        _check_limit(limit)
        fingerprint = listing_fingerprint("customers", _iso(modified_since))
        offset = decode_cursor(cursor, limit=limit, fingerprint=fingerprint) if cursor is not None else 0
        page = await self._suiteql(
            customer_query(modified_since=modified_since, zone=self._zone),
            CustomerRow,
            limit=limit,
            offset=offset,
        )
        next_cursor = encode_cursor(offset + limit, limit, fingerprint) if page.has_more else None
        return await self._customer_page(page.items, next_cursor)

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        # One SuiteQL query, ``WHERE id IN (...)``, the listing's own columns and mapping: the ids that are
        # not internal ids name no customer (as `get_customer` answers 404 for them) and are not asked.
        ids = sorted({i for i in customer_ids if is_internal_id(i)}, key=int)
        if not ids:
            return CustomerPage(items=[])
        _check_limit(len(ids))
        page = await self._suiteql(
            customer_query(ids=ids, zone=self._zone), CustomerRow, limit=len(ids), offset=0
        )
        return await self._customer_page(page.items, None)

    async def _customer_page(self, rows: list[CustomerRow], next_cursor: str | None) -> CustomerPage:
        """Customer rows of a listing mapped, with the currencies and subsidiaries they name read once."""
        setup = await self._setup_for(
            currency_ids=[row.currency for row in rows], subsidiary_ids=[row.subsidiary for row in rows]
        )
        items, skipped = map_page(
            VENDOR,
            "customer",
            rows,
            lambda row: customer_from_row(row, setup, self._zone),
            record_id=_record_id,
        )
        return CustomerPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def find_probable_duplicates(self, query: CustomerMatchQuery) -> list[CustomerMatch]:
        statement = duplicate_candidates_query(query)
        if statement is None:
            return []  # nothing to match on: the rule needs a name and a tax id or a domain
        rows: list[CustomerRow] = []
        while True:
            page = await self._suiteql(statement, CustomerRow, limit=_MAX_PAGE, offset=len(rows))
            rows.extend(page.items)
            if not page.has_more or not page.items:
                break
            if len(rows) >= _MAX_SCANNED_CANDIDATES:
                _log().warning("netsuite_duplicate_candidates_truncated", scanned=len(rows))
                break
        setup = await self._setup_for(
            currency_ids=[row.currency for row in rows], subsidiary_ids=[row.subsidiary for row in rows]
        )
        # A candidate that cannot be mapped cannot be compared either: it is logged and left out.
        candidates, _ = map_page(
            VENDOR,
            "customer",
            rows,
            lambda row: customer_from_row(row, setup, self._zone),
            record_id=_record_id,
        )
        matches: list[CustomerMatch] = []
        for customer in candidates:
            if query.crm_customer_id is not None and customer.system_ids.crm == query.crm_customer_id:
                continue  # the account's own customer: the same record, not a second one
            reason = is_probable_duplicate(query, customer)
            if reason is not None:
                matches.append(CustomerMatch(customer=customer, reason=reason))
        return matches

    async def upsert_customer(self, command: CustomerUpsert) -> tuple[Customer, bool]:
        crm_id = command.crm_customer_id
        if not is_external_id(crm_id):
            raise VendorRejected(VENDOR, "the CRM customer id cannot be a NetSuite external id")
        reference = f"eid:{crm_id}"
        # Read first: survivorship needs the ERP's current billing and tax fields, and it tells created.
        before = await self._read_optional("customer", reference, expand=True)
        existing = _decoded("customer", decode_customer, before) if before is not None else None
        parent_id = await self._parent_id(command.parent_crm_customer_id)
        setup = await self._setup_for(
            currency_codes=[command.currency], legal_entities=[command.legal_entity]
        )
        try:
            body = customer_upsert_body(command, existing, parent_id=parent_id, setup=setup)
        except ValueError as exc:
            raise _rejected(exc) from None
        # An upsert by external id: a retry, or a concurrent upsert of the same account, updates the one
        # record instead of creating another, so it is safe to retry.
        await self._send(
            "PUT", _record_path("customer", reference), content=encode_body(body), idempotent=True
        )
        record = _decoded("customer", decode_customer, await self._read("customer", reference, expand=True))
        return await self._customer(record), existing is None

    async def _parent_id(self, parent_crm_id: str | None) -> str | None:
        if parent_crm_id is None:
            return None
        body = (
            await self._read_optional("customer", f"eid:{parent_crm_id}")
            if is_external_id(parent_crm_id)
            else None
        )
        if body is None:
            raise NotFound(
                VENDOR, f"the parent customer (CRM {parent_crm_id}) is not in NetSuite yet; upsert it first"
            )
        return _decoded("customer", decode_customer, body).id

    async def _customer(self, record: NetSuiteCustomer) -> Customer:
        setup = await self._setup_for(
            currency_ids=[record.currency.id if record.currency else None],
            subsidiary_ids=[record.subsidiary.id if record.subsidiary else None],
        )
        return map_record(VENDOR, "customer", record.id, lambda: customer_from_record(record, setup))

    # --- projects ------------------------------------------------------------------------------------

    async def get_project(self, project_id: str) -> Project:
        if not is_internal_id(project_id):
            raise NotFound(VENDOR, "no such project")
        return await self._project(_decoded("job", decode_job, await self._read("job", project_id)))

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        reference = _eid(command.external_key)
        found = await self._read_optional("job", reference)
        if found is not None:
            return await self._project(_decoded("job", decode_job, found)), False
        setup = await self._setup_for(
            currency_codes=[command.currency], legal_entities=[command.legal_entity]
        )
        try:
            body = job_body(command, setup)
        except ValueError as exc:
            raise _rejected(exc) from None
        # Upsert by the key, not a plain create: a retry after a lost answer finds and updates the one job.
        await self._send("PUT", _record_path("job", reference), content=encode_body(body), idempotent=True)
        return await self._project(_decoded("job", decode_job, await self._read("job", reference))), True

    async def _project(self, record: NetSuiteJob) -> Project:
        setup = await self._setup_for(
            currency_ids=[record.currency.id if record.currency else None],
            subsidiary_ids=[record.subsidiary.id if record.subsidiary else None],
        )
        return map_record(VENDOR, "job", record.id, lambda: project_from_record(record, setup))

    # --- billing schedules ---------------------------------------------------------------------------

    async def create_billing_schedule(
        self, project_id: str, command: BillingScheduleCreate
    ) -> tuple[BillingSchedule, bool]:
        if not is_internal_id(project_id):
            raise NotFound(VENDOR, "no such project")
        reference = _eid(command.external_key)
        job = _decoded("job", decode_job, await self._read("job", project_id))
        found = await self._read_optional("billingSchedule", reference, expand=True)
        created = found is None
        if found is None:
            try:
                body = billing_schedule_body(project_id, command)
            except ValueError as exc:
                raise VendorRejected(VENDOR, f"NetSuite cannot take this schedule: {exc}") from None
            await self._send(
                "PUT", _record_path("billingSchedule", reference), content=encode_body(body), idempotent=True
            )
            found = await self._read("billingSchedule", reference, expand=True)
        record = _decoded("billing schedule", decode_billing_schedule, found)
        owner = record.project.id if record.project else None
        if owner not in (None, project_id):
            raise VendorRejected(
                VENDOR,
                f"billing schedule key {command.external_key} already belongs to project {owner}",
                vendor_code="DUPLICATE_KEY",
            )
        if (job.billing_schedule.id if job.billing_schedule else None) != record.id:
            # Attach it to the job; a retry after this step sets the same value again.
            await self._patch("job", project_id, {"billingSchedule": {"id": record.id}})
        return await self._schedule(record, job), created

    async def get_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        if not is_internal_id(schedule_id):
            raise NotFound(VENDOR, "no such billing schedule")
        body = await self._read("billingSchedule", schedule_id, expand=True)
        return await self._schedule(_decoded("billing schedule", decode_billing_schedule, body))

    async def void_billing_schedule(self, schedule_id: str) -> BillingSchedule:
        if not is_internal_id(schedule_id):
            raise NotFound(VENDOR, "no such billing schedule")
        record = _decoded(
            "billing schedule", decode_billing_schedule, await self._read("billingSchedule", schedule_id)
        )
        if not record.is_inactive:
            await self._patch("billingSchedule", schedule_id, {"isInactive": True})
        job: NetSuiteJob | None = None
        if record.project is not None and record.project.id:
            found = await self._read_optional("job", record.project.id)
            job = _decoded("job", decode_job, found) if found is not None else None
        if job is not None and job.billing_schedule is not None and job.billing_schedule.id == schedule_id:
            # An inactive schedule still bills the projects it is on; detaching it is what stops billing.
            await self._patch("job", job.id, {"billingSchedule": None})
        body = await self._read("billingSchedule", schedule_id, expand=True)
        return await self._schedule(_decoded("billing schedule", decode_billing_schedule, body), job)

    async def _schedule(
        self, record: NetSuiteBillingSchedule, job: NetSuiteJob | None = None
    ) -> BillingSchedule:
        project_id = record.project.id if record.project else None
        if job is None and project_id:
            found = await self._read_optional("job", project_id)
            job = _decoded("job", decode_job, found) if found is not None else None
        currency: str | None = None
        if job is not None and job.currency is not None:
            setup = await self._setup_for(currency_ids=[job.currency.id])
            currency = setup.currency_code(job.currency.id)
        return map_record(
            VENDOR,
            "billingSchedule",
            record.id,
            lambda: billing_schedule_from_record(record, currency=currency),
        )

    # --- invoices ------------------------------------------------------------------------------------

    async def get_invoice(self, invoice_id: str) -> Invoice:
        if not is_internal_id(invoice_id):
            raise NotFound(VENDOR, "no such invoice")
        return await self._invoice(await self._read("invoice", invoice_id, expand=True))

    async def post_invoice(self, invoice_id: str) -> Invoice:
        """Approve a Pending Approval invoice (invoice approval: ``approvalStatus`` Pending Approval ->
        Approved, which posts it). NetSuite's REST record actions offer no ``approve`` for invoices
        ("Supported Record Actions"), so the approval status is set as a finance user with the approve
        permission sets it. Posting a posted invoice is harmless; a rejected or voided one is refused."""
        invoice = await self.get_invoice(invoice_id)
        if invoice.status is InvoiceStatus.VOID:
            raise VendorRejected(
                VENDOR, f"NetSuite invoice {invoice_id} is rejected or voided: it cannot be posted"
            )
        if invoice.status is not InvoiceStatus.DRAFT:
            return invoice
        await self._patch("invoice", invoice_id, {"approvalStatus": {"id": APPROVAL_APPROVED}})
        return await self.get_invoice(invoice_id)

    async def void_invoice(self, invoice_id: str) -> Invoice:
        """Reverse an invoice the way REST web services can.

        REST has no void (``N/transaction.void`` is SuiteScript only; the record actions REST supports for
        invoices are grouping ones): a posted invoice is credited in full by ``POST invoice/{id}/!transform/
        creditMemo``, which applies the credit memo to it (NetSuite help "Transforming Records"); a draft
        (Pending Approval) is rejected, which keeps it, and its external id, so a replayed billing run
        cannot raise it again. An invoice with payments applied is refused. Twice gives the same answer."""
        invoice = await self.get_invoice(invoice_id)
        if invoice.status is InvoiceStatus.VOID:
            return invoice  # rejected, voided in the UI, or credited already
        if invoice.status is InvoiceStatus.DRAFT:
            await self._patch("invoice", invoice_id, {"approvalStatus": {"id": APPROVAL_REJECTED}})
            return await self.get_invoice(invoice_id)
        if invoice.balance.amount < invoice.total.amount:
            raise VendorRejected(
                VENDOR,
                f"NetSuite invoice {invoice_id} has payments applied: unapply them (or refund) before it "
                "can be credited",
                vendor_code="PAYMENTS_APPLIED",
            )
        body = encode_body({"externalId": _credit_memo_key(invoice_id)})
        try:
            # Not retried blindly: the credit memo's unique external id refuses a second one, and after any
            # failure the memo is looked for before the error is believed.
            await self._send("POST", f"record/v1/invoice/{invoice_id}/!transform/creditMemo", content=body)
        except (VendorError, httpx.HTTPError):
            if await self._credit_memo_of(invoice_id) is None:
                raise
        return await self.get_invoice(invoice_id)

    async def _credit_memo_of(self, invoice_id: str) -> str | None:
        """The credit memo made from the invoice, if any (the first when finance made more)."""
        page = await self._suiteql(credit_memo_query(invoice_id), CreditMemoRow, limit=1, offset=0)
        return page.items[0].id if page.items else None

    async def list_invoices(
        self, query: InvoiceFilter, *, limit: int, cursor: str | None = None
    ) -> InvoicePage:
        _check_limit(limit)
        # Only the port's statuses reach the query; a string posing as one is refused before any call.
        status = InvoiceStatus(query.status) if query.status is not None else None
        fingerprint = listing_fingerprint(
            "invoices", query.customer_id or "", status or "", _iso(query.modified_since)
        )
        offset = decode_cursor(cursor, limit=limit, fingerprint=fingerprint) if cursor is not None else 0
        if query.customer_id is not None and not is_internal_id(query.customer_id):
            return InvoicePage(items=[])  # no NetSuite customer has such an id
        statement = invoice_query(
            customer_id=query.customer_id,
            status=status,
            modified_since=query.modified_since,
            zone=self._zone,
        )
        page = await self._suiteql(statement, InvoiceRow, limit=limit, offset=offset)
        setup = await self._setup_for(currency_ids=[row.currency for row in page.items])
        items, skipped = map_page(
            VENDOR,
            "invoice",
            page.items,
            lambda row: invoice_from_row(row, setup, self._zone, today=_today()),
            record_id=_record_id,
        )
        next_cursor = encode_cursor(offset + limit, limit, fingerprint) if page.has_more else None
        return InvoicePage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def create_invoice(self, command: InvoiceCreate) -> tuple[Invoice, bool]:
        reference = _eid(command.external_key)
        # A replay of a billing run that already got its answer: no job, no key spent.
        found = await self._read_optional("invoice", reference, expand=True)
        if found is not None:
            return await self._invoice(found), False
        setup = await self._setup_for(currency_codes=[command.currency])
        item_id = await self._service_item_id()
        try:
            body = invoice_body(command, item_id=item_id, setup=setup)
        except ValueError as exc:
            raise _rejected(exc) from None
        content = encode_body(body)
        after_job: str | None = None
        for generation in range(_KEY_GENERATIONS):
            key = invoice_idempotency_key(command.external_key, after_job)
            job_id, ours = await self._submit_invoice(content, key)
            if job_id is None:
                break
            job = await self._await_job(job_id)
            if not job.failed:
                break
            # The job may have failed only because the invoice exists already (its externalId is taken).
            found = await self._read_optional("invoice", reference, expand=True)
            if found is not None:
                return await self._invoice(found), False
            if ours or generation == _KEY_GENERATIONS - 1:
                # Our own job failed: NetSuite's reason is the answer (a replay will try a new job).
                await self._raise_task_error(job, job_id)
            # An earlier attempt's job failed and created nothing, but its key stays spent: go on with the
            # key that follows that job. Every replay derives the same one, so lost answers still make one.
            _log().info("netsuite_failed_job_superseded", external_key=command.external_key, job_id=job_id)
            after_job = job_id
        found = await self._read_optional("invoice", reference, expand=True)
        if found is None:
            if job_id is None:
                raise VendorRejected(
                    VENDOR,
                    f"NetSuite refused the idempotency key of {command.external_key} as used, and no "
                    "invoice has that key",
                    vendor_code="IDEMPOTENCY_ERROR",
                )
            raise VendorBadResponse(VENDOR, f"NetSuite job {job_id} succeeded but its invoice cannot be read")
        # ``created`` is False when an earlier attempt's job made it (ours whose answer was lost, included).
        return await self._invoice(found), ours

    async def _submit_invoice(self, content: bytes, idempotency_key: str) -> tuple[str | None, bool]:
        """POST the invoice as an asynchronous job; ``(job id, True)`` for a job this call started, or
        ``(job id of the first use, False)`` when NetSuite says the key was used already."""
        headers = {**_JSON, "Prefer": "respond-async", "X-NetSuite-Idempotency-Key": idempotency_key}
        try:
            # The key makes the POST safe to retry: a retried POST whose first answer was lost is refused
            # with IDEMPOTENCY_ERROR instead of creating a second invoice.
            response = await self._send(
                "POST", "record/v1/invoice", content=content, headers=headers, idempotent=True
            )
        except _IdempotencyKeyUsed as exc:
            job_id = exc.first_job_id
            _log().info("netsuite_idempotency_key_reused", idempotency_key=idempotency_key, job_id=job_id)
            return job_id, False
        job_id = record_id_from_url(response.headers.get("Location", ""), "job")
        if job_id is None:
            raise VendorBadResponse(VENDOR, "NetSuite accepted the invoice without a job Location")
        return job_id, True

    async def _invoice(self, body: bytes) -> Invoice:
        record = _decoded("invoice", decode_invoice, body)
        setup = await self._setup_for(currency_ids=[record.currency.id if record.currency else None])
        credit_memo_id = None
        if record.amount_remaining is not None and record.amount_remaining <= 0 and record.total:
            # Nothing due: paid, or credited (a credit memo settles it as a payment would).
            credit_memo_id = await self._credit_memo_of(record.id)
        return map_record(
            VENDOR,
            "invoice",
            record.id,
            lambda: invoice_from_record(record, setup, today=_today(), credit_memo_id=credit_memo_id),
        )

    async def _await_job(self, job_id: str) -> AsyncJob:
        """Poll ``async/v1/job/{id}`` until it completes: bounded, with backoff, no slot held meanwhile."""
        delay = _JOB_POLL_FIRST_SECONDS
        for _ in range(_JOB_POLLS):
            job = _decoded(
                "async job", decode_async_job, (await self._send("GET", f"async/v1/job/{job_id}")).content
            )
            if job.completed:
                return job
            await self._sleep(delay)
            delay = min(delay * 2, _JOB_POLL_MAX_SECONDS)
        raise VendorTimeout(
            VENDOR, f"NetSuite job {job_id} is still running; retrying with the same key is safe"
        )

    async def _raise_task_error(self, job: AsyncJob, job_id: str) -> None:
        """Raise what the failed job's task answered (NetSuite keeps the original error document there)."""
        href = job.task_href()
        if href is None:
            raise VendorBadResponse(VENDOR, f"NetSuite job {job_id} failed and names no task")
        # The job links its task collection (``.../job/{id}/task``); the one task there holds the result.
        tasks_path = self._relative(href).rstrip("/")
        tasks = _decoded("task list", decode_record_list, (await self._send("GET", tasks_path)).content)
        task_id = next((task.id for task in tasks.items if task.id and is_internal_id(task.id)), None)
        if task_id is None:
            raise VendorBadResponse(VENDOR, f"NetSuite job {job_id} failed and lists no task")
        await self._send("GET", f"{tasks_path}/{task_id}/result")
        raise VendorBadResponse(VENDOR, f"NetSuite job {job_id} failed but its task result is not an error")

    async def check(self) -> list[Check]:
        """Log in at the account's REST host, say how many requests the adapter lets run at once, then look
        up the invoice item as invoices do, find the invoice line's source-ids column and read each
        configured subsidiary."""
        where = f"account {self._account or '(unnamed)'} at {self._http.base_url.host}"
        try:
            await self._auth.access_token()
        except (TokenFetchError, httpx.HTTPError) as exc:
            refused = (
                f"{exc}: check STRATUM_NETSUITE__ACCOUNT (or __BASE_URL), __CLIENT_ID, __CERTIFICATE_ID and "
                "__PRIVATE_KEY_FILE"
            )
            return [Check(vendor=VENDOR, what=f"login to {where}", fix=refused)]
        checks = [Check(vendor=VENDOR, what=f"login to {where}")]
        cap, limit = self._max_concurrent_requests, self._account_limit
        over = (
            f"the account allows only {limit} ({self._account_limit_basis}): lower "
            "STRATUM_NETSUITE__MAX_CONCURRENT_REQUESTS, or correct __SERVICE_TIER and "
            "__SUITECLOUD_PLUS_LICENSES"
        )
        what = f"concurrency cap {cap} (account limit {limit}: {self._account_limit_basis})"
        checks.append(Check(vendor=VENDOR, what=what, fix=over if cap > limit else None))
        fix: str | None = None
        try:
            await self._service_item_id()
        except VendorRejected as exc:
            fix = (
                f"{exc.message}: create that service item, or set STRATUM_NETSUITE__INVOICE_ITEM to the "
                "Item Name/Number of the one invoices should bill"
            )
        checks.append(Check(vendor=VENDOR, what=f"invoice item {self._invoice_item!r}", fix=fix))
        checks.append(await self._check_sources_field())
        for subsidiary_id, entity in sorted(self._legal_entities.items(), key=lambda item: item[1]):
            found = await self._read_optional("subsidiary", subsidiary_id)
            fix = None
            if found is None:
                fix = f"no subsidiary {subsidiary_id}: correct {entity} in STRATUM_NETSUITE__SUBSIDIARIES"
            checks.append(Check(vendor=VENDOR, what=f"subsidiary {subsidiary_id} ({entity})", fix=fix))
        return checks

    async def _check_sources_field(self) -> Check:
        """The invoice's item sublist has the custom column where lines keep their source ids: the
        record's metadata (``metadata-catalog/invoice``, JSON Schema) names every field, custom ones too."""
        what = f"invoice line field {SOURCES_FIELD}"
        response = await self._send(
            "GET", "record/v1/metadata-catalog/invoice", headers={"Accept": "application/schema+json"}
        )
        if SOURCES_FIELD.encode() in response.content:
            return Check(vendor=VENDOR, what=what)
        fix = (
            f"no such field: create a Transaction Line Field {SOURCES_FIELD} (type Long Text, applied "
            "to Sale Item) and give the integration role access to it"
        )
        return Check(vendor=VENDOR, what=what, fix=fix)

    async def _service_item_id(self) -> str:
        """The internal id of the service item invoice lines bill, looked up once by its name."""
        if self._invoice_item_id is None:
            params = {"q": f"itemId IS {q_quote(self._invoice_item)}", "limit": "2"}
            response = await self._send("GET", "record/v1/serviceItem", params=params)
            listing = _decoded("service item list", decode_record_list, response.content)
            ids = [item.id for item in listing.items if item.id]
            if len(ids) != 1:
                raise VendorRejected(
                    VENDOR,
                    f"NetSuite has {len(ids) or 'no'} service item(s) named {self._invoice_item!r}",
                    vendor_code="INVALID_KEY_OR_REF",
                )
            self._invoice_item_id = ids[0]
        return self._invoice_item_id

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
        if customer_id is not None and not is_internal_id(customer_id):
            return PaymentPage(items=[])
        if invoice_id is not None:
            payments, has_more = await self._payments_of_invoice(
                invoice_id, customer_id, modified_since, limit=limit, offset=offset
            )
        else:
            statement = payment_query(customer_id=customer_id, modified_since=modified_since, zone=self._zone)
            page = await self._suiteql(statement, PaymentRow, limit=limit, offset=offset)
            payments = await self._payments([row.id for row in page.items])
            has_more = page.has_more
        next_cursor = encode_cursor(offset + limit, limit, fingerprint) if has_more else None
        return PaymentPage(items=payments, next_cursor=next_cursor)

    async def _payments_of_invoice(
        self,
        invoice_id: str,
        customer_id: str | None,
        modified_since: dt.datetime | None,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[Payment], bool]:
        """The payments applied to one invoice. NetSuite records the link on the payment's ``apply``
        sublist, so this reads the invoice's customer's payments and keeps those that apply to it."""
        if not is_internal_id(invoice_id):
            raise NotFound(VENDOR, "no such invoice")
        invoice = _decoded("invoice", decode_invoice, await self._read("invoice", invoice_id))
        owner = invoice.entity.id if invoice.entity else None
        if owner is None or (customer_id is not None and customer_id != owner):
            return [], False
        if invoice.amount_paid is not None and invoice.amount_paid <= 0:
            return [], False  # nothing has been applied to it: no payment to look for
        ids: list[str] = []
        statement = payment_query(customer_id=owner, modified_since=modified_since, zone=self._zone)
        while len(ids) < _MAX_SCANNED_PAYMENTS:
            page = await self._suiteql(statement, PaymentRow, limit=_MAX_PAGE, offset=len(ids))
            ids.extend(row.id for row in page.items)
            if not page.has_more or not page.items:
                break
        matching = [payment for payment in await self._payments(ids) if invoice_id in payment.invoice_ids]
        return matching[offset : offset + limit], len(matching) > offset + limit

    async def _payments(self, payment_ids: Sequence[str]) -> list[Payment]:
        """Read payments with their ``apply`` lines, concurrently (the semaphore paces them)."""
        bodies = await all_at_once(
            self._read("customerPayment", payment_id, expand=True) for payment_id in payment_ids
        )
        records = [
            _decoded("customer payment", decode_payment, body) for body in bodies if isinstance(body, bytes)
        ]
        setup = await self._setup_for(currency_ids=[r.currency.id if r.currency else None for r in records])
        payments, _ = map_page(
            VENDOR,
            "customerPayment",
            records,
            lambda record: payment_from_record(record, setup),
            record_id=_record_id,
        )
        return payments

    # --- NetSuite specifics --------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """Every call to NetSuite goes through here: at most ``max_concurrent_requests`` in flight."""
        if content is not None and headers is None:
            headers = _JSON
        # A call keeps its slot through its own retries: after a 429 the account is busy, and letting
        # another call take the slot while this one backs off would only bring the next 429 sooner.
        async with self._slots:
            response = await self._http.send(
                method, url, params=params, headers=headers, content=content, idempotent=idempotent
            )
        warning = response.headers.get("Warning")
        if warning:
            # NetSuite accepts a body property the record lacks and only warns (its default property-name
            # validation): the value was dropped, which is a mapping mistake someone must see.
            _log().warning("netsuite_warning", method=method, path=url, warning=warning[:300])
        return response

    async def _read(self, record_type: str, reference: str, *, expand: bool = False) -> bytes:
        params = {"expandSubResources": "true"} if expand else None
        response = await self._send("GET", _record_path(record_type, reference), params=params)
        return response.content

    async def _read_optional(self, record_type: str, reference: str, *, expand: bool = False) -> bytes | None:
        try:
            return await self._read(record_type, reference, expand=expand)
        except NotFound:
            return None

    async def _patch(self, record_type: str, record_id: str, body: Mapping[str, Any]) -> None:
        # Setting fields to given values: repeating it changes nothing more, so it is safe to retry.
        await self._send(
            "PATCH", _record_path(record_type, record_id), content=encode_body(body), idempotent=True
        )

    async def _suiteql(
        self, statement: str, row_type: type[_T], *, limit: int, offset: int
    ) -> SuiteQlPage[_T]:
        # A query changes nothing; it is a POST only because the statement travels in the body.
        response = await self._send(
            "POST",
            "query/v1/suiteql",
            params={"limit": str(limit), "offset": str(offset)},
            headers=_SUITEQL_HEADERS,
            content=encode_body({"q": statement}),
            idempotent=True,
        )
        try:
            return decode_suiteql_page(response.content, row_type)
        except (msgspec.DecodeError, ValueError) as exc:
            raise _bad_body("SuiteQL result", exc) from None

    async def _setup_for(
        self,
        *,
        currency_ids: Sequence[str | None] = (),
        subsidiary_ids: Sequence[str | None] = (),
        currency_codes: Sequence[str | None] = (),
        legal_entities: Sequence[str | None] = (),
    ) -> SetupLookup:
        """The currency and subsidiary lookup, loaded once and reloaded (at most once a minute) when it
        lacks something asked for: a currency or subsidiary added to the account since we loaded it."""
        setup = self._setup
        if setup is not None and _covers(setup, currency_ids, subsidiary_ids, currency_codes, legal_entities):
            return setup
        async with self._setup_lock:
            setup = self._setup
            if setup is not None and (
                self._clock() - self._setup_loaded_at < _SETUP_REFRESH_SECONDS
                or _covers(setup, currency_ids, subsidiary_ids, currency_codes, legal_entities)
            ):
                return setup
            currencies = await self._suiteql(currency_query(), SetupRow, limit=_MAX_PAGE, offset=0)
            self._setup = SetupLookup.from_rows(currencies.items, self._legal_entities)
            self._setup_loaded_at = self._clock()
            return self._setup

    def _relative(self, href: str) -> str:
        """A URL NetSuite handed us (a link, a Location) as a path under our base URL; anything else is
        refused (as are ``..`` and encoded separators) so a response cannot send our token elsewhere."""
        base = self._http.base_url
        prefix = base.path.rstrip("/") + "/"
        try:
            url = followable_link(base, href, prefix)
        except ValueError:
            raise VendorBadResponse(VENDOR, "NetSuite sent a link outside the configured base URL") from None
        return url.path[len(prefix) :]

    def _error_for_response(self, response: httpx.Response) -> VendorError:
        """NetSuite's error document and status -> the port's errors."""
        status = response.status_code
        error = decode_error(response.content)
        code = error.code if error is not None else None
        detail = error.detail[:300] if error is not None else ""
        message = (
            f"NetSuite {code or 'HTTP ' + str(status)}: {detail}" if detail else f"NetSuite HTTP {status}"
        )
        if status in (404, 410) or code == "NONEXISTENT_ID":
            return NotFound(VENDOR, message)
        if status == 429:
            # The account's concurrent-request limit (or its request rate): back off and come back.
            return VendorUnavailable(
                VENDOR,
                f"NetSuite is busy: {code or 'too many requests'}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if code == "IDEMPOTENCY_ERROR":
            # The key was used already: NetSuite names the first job in the Location header.
            first_job = record_id_from_url(response.headers.get("Location", ""), "job")
            return _IdempotencyKeyUsed(message, first_job_id=first_job)
        if 400 <= status < 500 and status != 401:
            # USER_ERROR, INVALID_KEY_OR_REF, INVALID_CONTENT, IDEMPOTENCY_ERROR, ...: our request or our
            # caller's data is wrong. Keep NetSuite's code; the caller decides (IDEMPOTENCY_ERROR is ours).
            return VendorRejected(VENDOR, message, vendor_code=code)
        # A 401 here comes after the auth flow already refetched the token once: credentials refused.
        mapped = default_error_for_response(VENDOR, response)
        if isinstance(mapped, VendorBadResponse) and code:
            mapped = VendorBadResponse(VENDOR, f"{mapped.message} ({code})")
        return mapped


def _covers(
    setup: SetupLookup,
    currency_ids: Sequence[str | None],
    subsidiary_ids: Sequence[str | None],
    currency_codes: Sequence[str | None],
    legal_entities: Sequence[str | None],
) -> bool:
    return (
        all(value is None or value in setup.currency_codes for value in currency_ids)
        and all(value is None or value in setup.legal_entities for value in subsidiary_ids)
        and all(value is None or setup.currency_id(value) is not None for value in currency_codes)
        and all(value is None or setup.subsidiary_id(value) is not None for value in legal_entities)
    )


_CANDIDATE_COLUMNS = (
    "id, companyname, entityid, externalid, subsidiary, currency, parent, url, vatregnumber, "
    "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS lastmodified"
)


def duplicate_candidates_query(query: CustomerMatchQuery) -> str | None:
    """The SuiteQL that reads every customer that could be a probable duplicate of ``query``'s account, a
    superset the matching rule then confirms; None when the rule cannot match anything (no normalized
    name, or neither a tax id nor a web domain).

    A candidate has the tax id as sent or normalized, or the web domain in its URL, or a company name that
    starts with the first word of the normalized name or of the name as sent. Both words, since NetSuite
    cannot normalize: "Muller" finds "Muller & Sohne", "Müller" finds "Müller & Söhne", "O'Neill" finds
    "O'Neill & Partners". Text comparisons go through ``UPPER`` on both sides (SuiteQL is case-sensitive).
    """
    name = normalize_company_name(query.name)
    tax_id = normalize_tax_id(query.tax_id)
    domain = web_domain(query.website)
    if not name or (tax_id is None and domain is None):
        return None
    first_words = {word.upper(): word for word in (name.split()[0], query.name.split()[0])}
    conditions = [
        f"UPPER(companyname) LIKE UPPER({_literal(_like_escaped(word) + '%')}) ESCAPE '\\'"
        for _, word in sorted(first_words.items())
    ]
    if tax_id is not None:
        as_sent = (query.tax_id or "").strip()
        tax_ids = ", ".join(_literal(value) for value in sorted({tax_id, as_sent} - {""}))
        conditions.append(f"vatregnumber IN ({tax_ids})")
    if domain is not None:
        conditions.append(f"UPPER(url) LIKE UPPER({_literal('%' + _like_escaped(domain) + '%')}) ESCAPE '\\'")
    # S608: constants and suiteql_quote'd literals only.
    return f"SELECT {_CANDIDATE_COLUMNS} FROM customer WHERE {' OR '.join(conditions)} ORDER BY id"  # noqa: S608


def _like_escaped(text: str) -> str:
    """``text`` matched literally in a LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _literal(text: str) -> str:
    # No NetSuite value holds a NUL, so dropping it changes no match; suiteql_quote would refuse it.
    return suiteql_quote(text.replace("\x00", ""))


def _today() -> dt.date:
    """Today's UTC date: the canonical ``overdue`` compares due dates with it."""
    return dt.datetime.now(dt.UTC).date()


def _credit_memo_key(invoice_id: str) -> str:
    """The external id of the credit memo that reverses an invoice: one per invoice, so NetSuite refuses a
    second."""
    return f"void:{invoice_id}"


def _record_path(record_type: str, reference: str) -> str:
    # ``reference`` is an internal id or ``eid:`` + a validated external id: both are path-safe as they are.
    return f"record/v1/{record_type}/{reference}"


def _eid(external_key: str) -> str:
    if not is_external_id(external_key):
        raise VendorRejected(
            VENDOR, "the key cannot be a NetSuite external id", vendor_code="INVALID_KEY_OR_REF"
        )
    return f"eid:{external_key}"


class _IdempotencyKeyUsed(VendorRejected):
    """``IDEMPOTENCY_ERROR``: the key was used by an earlier request; ``first_job_id`` is the job that
    request started, from the answer's ``Location`` (None when NetSuite named none)."""

    def __init__(self, message: str, *, first_job_id: str | None) -> None:
        super().__init__(VENDOR, message, vendor_code="IDEMPOTENCY_ERROR")
        self.first_job_id = first_job_id
