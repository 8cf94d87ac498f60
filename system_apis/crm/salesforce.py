"""The Salesforce adapter for the CRM port: REST reads, SOQL paging, OAuth, error mapping, API limits.

Salesforce's wire format ends here: callers get canonical ``Customer``/``Contact``/``Opportunity`` objects
and the errors of ``system_apis.errors``. Outbound behaviour (pool, timeouts, retries, breaker) is the shared
``VendorHttpClient``'s; this module adds what is Salesforce's own:

- client-credentials OAuth whose token response names the ``instance_url`` data calls must go to;
- SOQL built only from escaped literals (``soql_quote``), validated ids and datetimes formatted from
  aware ``datetime`` objects (``soql_datetime``), never from caller text;
- keyset pagination (``ORDER BY Id``, ``Id > last``) behind an opaque cursor, following
  ``nextRecordsUrl`` because Salesforce may split one page into several batches;
- an opportunity read together with its deal milestones and rate card (custom child objects, read in
  parallel; an org without them has none); a page of opportunities with them (``with_terms``) in one SOQL
  query, each deal's children as parent-to-child subqueries;
- activation written back with a ``PATCH`` of absolute values, which is idempotent and so retried;
- the JSON error arrays (``[{"errorCode", "message"}]``) mapped to the port's errors;
- ``Sforce-Limit-Info`` tracked so the daily API quota is visible before it runs out;
- the org's schema checked at start-up (``start``) by describing the objects the gateway uses, as
  `stratum vendors check` does: a custom field the org lacks is logged by name and every CRM call answers
  ``VendorUnavailable`` naming it (with the fix) instead of failing at Salesforce with ``INVALID_FIELD``.
  Salesforce unreachable at start-up blocks nothing; the describe is tried again on use, again while
  something is missing (at most every ``_SCHEMA_RECHECK_SECONDS``), and when a query meets
  ``INVALID_FIELD`` (a field removed since).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.utils import format_datetime as format_http_date
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import structlog

from apis.at_once import all_at_once, at_once
from apis.config import SalesforceSettings
from contracts.models import (
    ContactPage,
    CrmInvoiceStatusUpdate,
    Customer,
    CustomerPage,
    InvoiceTotals,
    Money,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityPage,
    OpportunityStage,
)
from system_apis.crm.port import InvalidCursor
from system_apis.crm.salesforce_mapping import (
    ACCOUNT_FIELDS,
    ACTIVATION_STATUS_PICKLIST,
    CONTACT_FIELDS,
    CUSTOM_FIELDS,
    INVOICE_FIELDS,
    INVOICE_OBJECT,
    MILESTONE_FIELDS,
    MILESTONE_OBJECT,
    MILESTONE_RELATIONSHIP,
    OPPORTUNITY_FIELDS,
    RATE_CARD_LINE_FIELDS,
    RATE_CARD_LINE_OBJECT,
    RATE_CARD_LINE_RELATIONSHIP,
    SELECT_LISTS,
    STRATUM_CALL_OPTIONS,
    CustomField,
    SalesforceAccount,
    SalesforceContact,
    SalesforceInvoice,
    SalesforceMilestone,
    SalesforceOpportunity,
    SalesforceOpportunityWithTerms,
    SalesforceQueryPage,
    SalesforceRateCardLine,
    account_to_customer,
    activation_update_body,
    contact_from_record,
    decode_account,
    decode_opportunity,
    decode_query_page,
    invoice_body,
    invoice_matches,
    invoice_totals,
    known_stage_picklist_values,
    opportunity_from_record,
    parse_salesforce_datetime,
    stage_picklist_values,
    totals_body,
)
from system_apis.cursors import unwrap_cursor, wrap_cursor
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorUnavailable,
)
from system_apis.records import map_page, map_record
from system_apis.salesforce_org import (
    PRECONDITION_FAILED,
    SALESFORCE_ID_PATTERN,
    ApiUsage,
    SalesforceOrg,
    bad_body,
    can_name_a_record,
    is_salesforce_id,
    quoted_list,
    soql_datetime,
    soql_quote,
)
from system_apis.vendor_checks import Check
from system_apis.vendor_http import (
    BreakerPolicy,
    RetryPolicy,
    VendorHttpClient,
)

__all__ = [
    "PROJECT_ID_FIELD",
    "SALESFORCE_ID_PATTERN",
    "ApiUsage",
    "InvalidCursor",
    "SalesforceCrm",
    "child_records_by_project_query",
    "child_records_query",
    "contact_query",
    "customer_query",
    "decode_cursor",
    "encode_cursor",
    "is_salesforce_id",
    "opportunity_by_project_query",
    "opportunity_query",
    "soql_datetime",
    "soql_quote",
    "terms_subquery",
]

R = TypeVar("R")

VENDOR = "salesforce"
_quoted_list = quoted_list

# An org without one of the gateway's custom child objects answers INVALID_TYPE; it is not asked again for
# this long (the package may be deployed meanwhile), which saves two API calls per opportunity read.
_MISSING_OBJECT_RECHECK_SECONDS = 900.0
# While the org lacks something the gateway needs, its schema is described again on use at most this often
# (five describe calls), so a field deployed meanwhile is noticed within a minute.
_SCHEMA_RECHECK_SECONDS = 60.0
# After a describe that could not reach Salesforce (or log in), how long before a call tries again.
_SCHEMA_RETRY_SECONDS = 30.0
# How long start-up waits for the first describe; a slower one goes on in the background.
_SCHEMA_START_WAIT_SECONDS = 10.0
# The objects each port call depends on (an opportunity's deal milestones and rate card are optional).
_ACCOUNT = ("Account",)
_CONTACT = ("Contact",)
_OPPORTUNITY = ("Opportunity", MILESTONE_OBJECT, RATE_CARD_LINE_OBJECT)
_INVOICE_STATUS = ("Opportunity", INVOICE_OBJECT)
# Reads and conditional writes of one invoice record before giving up on a record other writers keep changing.
_INVOICE_WRITE_ATTEMPTS = 3
_PRECONDITION_FAILED = PRECONDITION_FAILED
# Amounts go out as JSON numbers written from the Decimal's digits (msgspec's default is a JSON string),
# so money never passes through a float on its way to a currency field.
_money_encoder = msgspec.json.Encoder(decimal_format="number")


def _log() -> Any:
    # A fresh lazy proxy per use: once logging is configured with caching on, a module-level proxy would
    # pin the processors it first saw, and structlog.testing.capture_logs could no longer see its lines.
    return structlog.get_logger(__name__)


def encode_cursor(last_id: str) -> str:
    """The opaque cursor for the page after the record ``last_id`` (keyset paging)."""
    return wrap_cursor(last_id)


def decode_cursor(cursor: str) -> str:
    """The last id a cursor stands for; raises ``InvalidCursor`` for anything we did not produce."""
    last_id = unwrap_cursor(cursor, max_length=64)
    if not is_salesforce_id(last_id):
        raise InvalidCursor("cursor is not one this API produced")
    return last_id


def _page_query(sobject: str, fields: Sequence[str], conditions: Sequence[str], *, limit: int) -> str:
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # S608: the query is built from constants, ``soql_quote``d values, ``soql_datetime``s and an int
    # (the callers' conditions included), never raw input.
    return (
        f"SELECT {', '.join(fields)} FROM {sobject}{where}"  # noqa: S608
        f" ORDER BY Id LIMIT {int(limit) + 1}"
    )


def customer_query(
    *, limit: int, after_id: str | None = None, modified_since: dt.datetime | None = None
) -> str:
    """The SOQL for one page of accounts in ``Id`` order, optionally only those changed since a moment.

    Like every page query it asks for one record beyond ``limit``: that one tells whether another page
    exists without a ``COUNT()``.
    """
    conditions: list[str] = []
    if modified_since is not None:
        conditions.append(f"LastModifiedDate >= {soql_datetime(modified_since)}")
    if after_id is not None:
        conditions.append(f"Id > {soql_quote(after_id)}")
    return _page_query("Account", ACCOUNT_FIELDS, conditions, limit=limit)


def accounts_by_id_query(ids: Sequence[str]) -> str:
    """The SOQL for these accounts, one query: ``WHERE Id IN (...)`` in ``Id`` order. Each id must be a
    15- or 18-character Salesforce id (checked here), and enters the query as a ``soql_quote``d literal;
    SOQL's ``IN`` takes a list of literals and matches an id given in either length (SOQL and SOSL
    Reference, "Comparison Operators", IN; "Working with SOQL Id fields")."""
    if not ids or not all(is_salesforce_id(i) for i in ids):
        raise ValueError("account ids must be 15- or 18-character Salesforce ids, at least one")
    # S608: constants and soql_quote'd ids only.
    return (
        f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM Account"  # noqa: S608
        f" WHERE Id IN ({_quoted_list(ids)}) ORDER BY Id"
    )


def contact_query(account_id: str, *, limit: int, after_id: str | None = None) -> str:
    """The SOQL for one page of an account's contacts in ``Id`` order."""
    conditions = [f"AccountId = {soql_quote(account_id)}"]
    if after_id is not None:
        conditions.append(f"Id > {soql_quote(after_id)}")
    return _page_query("Contact", CONTACT_FIELDS, conditions, limit=limit)


def opportunity_query(
    account_id: str | None,
    *,
    limit: int,
    stage: OpportunityStage | None = None,
    after_id: str | None = None,
    modified_since: dt.datetime | None = None,
    terms: Sequence[str] = (),
) -> str:
    """The SOQL for one page of opportunities (of one account, or of all when ``account_id`` is ``None``)
    in ``Id`` order (keyset pagination); each of the child objects in ``terms`` (``MILESTONE_OBJECT``,
    ``RATE_CARD_LINE_OBJECT``) comes along as a parent-to-child subquery (``terms_subquery``)."""
    conditions: list[str] = []
    if account_id is not None:
        conditions.append(f"AccountId = {soql_quote(account_id)}")
    if stage is OpportunityStage.OTHER:
        conditions.append(f"StageName NOT IN ({_quoted_list(known_stage_picklist_values())})")
    elif stage is not None:
        values = stage_picklist_values(stage)
        if len(values) == 1:
            conditions.append(f"StageName = {soql_quote(values[0])}")
        else:
            conditions.append(f"StageName IN ({_quoted_list(values)})")
    if modified_since is not None:
        conditions.append(f"LastModifiedDate >= {soql_datetime(modified_since)}")
    if after_id is not None:
        conditions.append(f"Id > {soql_quote(after_id)}")
    fields = (*OPPORTUNITY_FIELDS, *(terms_subquery(sobject) for sobject in terms))
    return _page_query("Opportunity", fields, conditions, limit=limit)


# Child objects of a deal, in the order a person reads them: milestones by due date, rates by role.
_CHILD_ORDER = {
    MILESTONE_OBJECT: "Due_Date__c ASC NULLS LAST, Name, Id",
    RATE_CARD_LINE_OBJECT: "Role__c, Id",
    INVOICE_OBJECT: "Issue_Date__c ASC NULLS LAST, Id",
}


# The deal's field the activation writes the PSA project id to (``psa_project_id`` of the update).
PROJECT_ID_FIELD = "Project_Id__c"


def child_records_query(sobject: str, fields: Sequence[str], opportunity_id: str) -> str:
    """The SOQL for every ``sobject`` record of one opportunity (its ``Opportunity__c`` master): a deal
    has a handful, and ``nextRecordsUrl`` is followed should one have more than a batch."""
    return (
        f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - constants and a soql_quote()d id
        f" WHERE Opportunity__c = {soql_quote(opportunity_id)} ORDER BY {_CHILD_ORDER[sobject]}"
    )


# A deal's child objects read as subqueries of its opportunity: the child relationship each is reached by.
_TERMS: Mapping[str, tuple[str, Sequence[str]]] = {
    MILESTONE_OBJECT: (MILESTONE_RELATIONSHIP, MILESTONE_FIELDS),
    RATE_CARD_LINE_OBJECT: (RATE_CARD_LINE_RELATIONSHIP, RATE_CARD_LINE_FIELDS),
}


def terms_subquery(sobject: str) -> str:
    """The parent-to-child subquery (SOQL and SOSL Reference, "Relationship Queries": ``SELECT Name,
    (SELECT LastName FROM Contacts) FROM Account``) that selects one of a deal's child objects in the order
    ``child_records_query`` reads them, so a listed deal's terms equal a deal read alone."""
    relationship, fields = _TERMS[sobject]
    order = _CHILD_ORDER[sobject]
    return f"(SELECT {', '.join(fields)} FROM {relationship} ORDER BY {order})"  # noqa: S608 - constants


def opportunity_by_project_query(project_id: str) -> str:
    """The SOQL for the deal whose activation wrote ``project_id`` (the PSA project) back to it
    (``Project_Id__c``); the first by ``Id`` should a project id have been written to two deals."""
    return (
        f"SELECT {', '.join(OPPORTUNITY_FIELDS)} FROM Opportunity"  # noqa: S608 - constants, quoted id
        f" WHERE {PROJECT_ID_FIELD} = {soql_quote(project_id)} ORDER BY Id LIMIT 1"
    )


def child_records_by_project_query(sobject: str, fields: Sequence[str], project_id: str) -> str:
    """The SOQL for every ``sobject`` record of the deal(s) that delivered ``project_id``: a filter on the
    master's field through the child-to-parent relationship (``Opportunity__r.Project_Id__c``; SOQL and
    SOSL Reference, "Relationship Queries": child-to-parent relationship fields may be filtered on), so a
    deal's children are read in the same round as the deal instead of after it. A custom lookup's
    child-to-parent name is its field name with ``__r``, fixed by the field (the name an admin picks is
    the parent-to-child one a subquery would need), so this holds in any org that has the field."""
    return (
        f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - constants and a soql_quote()d id
        f" WHERE Opportunity__r.{PROJECT_ID_FIELD} = {soql_quote(project_id)}"
        f" ORDER BY {_CHILD_ORDER[sobject]}"
    )


def invoice_by_erp_id_query(erp_invoice_id: str) -> str:
    """The SOQL for the ``Stratum_Invoice__c`` record of one ERP invoice (the external id is unique)."""
    return (
        f"SELECT {', '.join(INVOICE_FIELDS)} FROM {INVOICE_OBJECT}"  # noqa: S608 - constants, quoted id
        f" WHERE ERP_Invoice_Id__c = {soql_quote(erp_invoice_id)}"
    )


class SalesforceCrm:
    """``CrmPort`` over the Salesforce REST API.

    ``transport`` is the test seam (e.g. ``httpx.ASGITransport`` to the sandbox) and carries the token
    requests too. ``retry``, ``breaker`` and ``sleep`` tune the shared outbound behaviour.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        if settings.base_url is None:
            raise ValueError("SalesforceCrm needs a base_url (the bootstrap substitutes the sandbox's)")
        self._org = SalesforceOrg(
            VENDOR,
            settings,
            transport=transport,
            correlation_id=correlation_id,
            retry=retry,
            breaker=breaker,
            sleep=sleep,
        )
        self._api = self._org.api
        self._http = self._org.http
        # Custom object -> monotonic time until which the org is taken not to have it (INVALID_TYPE).
        self._missing_objects: dict[str, float] = {}
        self._clock = clock
        self._today = today  # the UTC date an unpaid invoice past its due date counts as overdue on
        # The org's schema as last described: what it lacks, and when (None: never described completely).
        self._schema_problems: tuple[_SchemaFinding, ...] = ()
        self._schema_checked_at: float | None = None
        self._schema_attempted_at = float("-inf")
        self._schema_lock = asyncio.Lock()
        self._schema_task: asyncio.Task[bool] | None = None
        # Calls are checked against the schema only once `start` ran (the gateway's lifecycle); an adapter
        # used on its own (a script, a test) calls Salesforce directly.
        self._schema_watched = False
        self._invalid_field_checked_at = float("-inf")

    @property
    def api_usage(self) -> ApiUsage | None:
        """The latest ``Sforce-Limit-Info`` usage seen (``None`` before the first response)."""
        return self._org.api_usage

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    async def close(self) -> None:
        if self._schema_task is not None and not self._schema_task.done():
            self._schema_task.cancel()
        await self._org.aclose()

    async def check(self) -> list[Check]:
        """Log in and describe each object the gateway reads: every custom field in `CUSTOM_FIELDS` must
        exist with a type the gateway can read, and be updateable where the gateway writes it; every
        standard field its queries select must exist too (``CurrencyIsoCode`` needs a multi-currency org)."""
        return [finding.check for finding in await self._schema_findings()]

    # --- the org's schema, checked at start-up and on use --------------------------------------------

    async def start(self) -> None:
        """Describe the org at start-up; waits a bounded time and never fails: Salesforce being down now
        must not keep the gateway from starting (the describe is tried again on use)."""
        self._schema_watched = True
        self._schema_task = asyncio.create_task(self._verify_at_start())
        await asyncio.wait({self._schema_task}, timeout=_SCHEMA_START_WAIT_SECONDS)

    async def _verify_at_start(self) -> bool:
        try:
            return await self.verify_schema()
        except Exception as exc:  # a bug here must not surface as an unretrieved task exception
            _log().error("salesforce_schema_check_failed", vendor=VENDOR, error=repr(exc))
            return False

    async def verify_schema(self) -> bool:
        """Describe the org and remember what it lacks, logging each missing piece once by name. False when
        Salesforce could not be asked (unreachable, login refused): then nothing is concluded."""
        async with self._schema_lock:
            return await self._verify_schema()

    async def _verify_schema(self) -> bool:
        self._schema_attempted_at = self._clock()
        try:
            findings = await self._schema_findings()
        except (VendorError, httpx.HTTPError) as exc:
            message = exc.message if isinstance(exc, VendorError) else repr(exc)
            _log().warning(
                "salesforce_schema_unchecked",
                vendor=VENDOR,
                error=message,
                reason=f"the org's objects could not be described; tried again on use after "
                f"{_SCHEMA_RETRY_SECONDS:.0f} s",
            )
            return False
        problems = tuple(finding for finding in findings if finding.blocks is not None)
        known = {finding.check.what for finding in self._schema_problems}
        for finding in problems:
            if finding.check.what not in known:
                _log().error(
                    "salesforce_org_lacks",
                    vendor=VENDOR,
                    field=finding.check.what,
                    expected_type=finding.expected_type,
                    blocks=finding.blocks,
                    fix=finding.check.fix,
                )
        if self._schema_problems and not problems:
            _log().info("salesforce_org_ready", vendor=VENDOR, fixed=sorted(known))
        self._schema_problems = problems
        self._schema_checked_at = self._clock()
        return True

    def _schema_due(self) -> bool:
        if not self._schema_watched:
            return False
        now = self._clock()
        if self._schema_checked_at is None:
            return now - self._schema_attempted_at >= _SCHEMA_RETRY_SECONDS
        return bool(self._schema_problems) and now - self._schema_checked_at >= _SCHEMA_RECHECK_SECONDS

    async def _ready(self, objects: tuple[str, ...], *, write: bool) -> None:
        """Raise `VendorUnavailable` naming what the org lacks for a call on ``objects``; describe the org
        first when that is due (never described, or something was missing a while ago)."""
        if self._schema_due() or self._schema_lock.locked():
            async with self._schema_lock:
                if self._schema_due():
                    await self._verify_schema()
        blocking = [
            f
            for f in self._schema_problems
            if f.sobject in objects and (f.blocks == "reads" or (write and f.blocks == "writes"))
        ]
        if not blocking:
            return
        elapsed = self._clock() - (self._schema_checked_at or 0.0)
        raise VendorUnavailable(
            VENDOR,
            "the org is not set up for the gateway: "
            + "; ".join(f"{f.check.what}: {f.check.fix}" for f in blocking),
            retry_after=max(1.0, _SCHEMA_RECHECK_SECONDS - elapsed),
        )

    async def _use(
        self, objects: tuple[str, ...], call: Callable[[], Awaitable[R]], *, write: bool = False
    ) -> R:
        """Every port call, on ``objects``: refused by name while the org lacks what it needs; an
        ``INVALID_FIELD`` from Salesforce (a field removed since the last describe) describes the org again
        to say which."""
        await self._ready(objects, write=write)
        try:
            return await call()
        except VendorRejected as exc:
            if exc.vendor_code != "INVALID_FIELD" or not self._schema_watched:
                raise
            # At most once a re-check interval: an INVALID_FIELD that is our own query's fault must not
            # cost five describe calls per request.
            now = self._clock()
            if now - self._invalid_field_checked_at >= _SCHEMA_RECHECK_SECONDS:
                self._invalid_field_checked_at = now
                if await self.verify_schema():
                    await self._ready(objects, write=write)
            raise

    async def _schema_findings(self) -> list[_SchemaFinding]:
        """One finding per object, standard field list and custom field the gateway uses."""
        findings: list[_SchemaFinding] = []

        def add(
            sobject: str, what: str, fix: str | None, blocks: _Blocks = "reads", expected: str = ""
        ) -> None:
            check = Check(vendor=VENDOR, what=what, fix=fix)
            findings.append(
                _SchemaFinding(
                    check=check, sobject=sobject, blocks=blocks if fix else None, expected_type=expected
                )
            )

        for sobject, selected in SELECT_LISTS.items():
            wanted = [f for f in CUSTOM_FIELDS if f.sobject == sobject]
            try:
                response = await self._http.send("GET", f"{self._api}/sobjects/{sobject}/describe/")
            except (NotFound, VendorRejected):
                optional = bool(wanted) and all(f.optional_object for f in wanted)
                fix = None if optional else f"the org has no {sobject} object (or the user cannot read it)"
                what = f"{sobject} object" + (" (optional: deals then have none)" if optional else "")
                add(sobject, what, fix)
                continue
            try:
                described = _describe_decoder.decode(response.content)
            except msgspec.DecodeError as exc:
                raise _bad_body(f"{sobject} describe", exc) from None
            fields = {f.name.lower(): f for f in described.fields}
            standard = [name for name in selected if not name.endswith("__c")]
            absent = [name for name in standard if name.lower() not in fields]
            fix = None
            if absent:
                fix = f"the org lacks {', '.join(absent)}" + (
                    " (CurrencyIsoCode: turn on multiple currencies)" if "CurrencyIsoCode" in absent else ""
                )
            add(sobject, f"{sobject} standard fields read", fix)
            for need in wanted:
                fix, blocks = _field_fix(need, fields)
                add(sobject, f"{sobject}.{need.name}", fix, blocks, need.types[0])
        return findings

    # --- the port ------------------------------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._use(_ACCOUNT, lambda: self._get_customer(customer_id))

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        return await self._use(
            _ACCOUNT, lambda: self._list_customers(limit=limit, cursor=cursor, modified_since=modified_since)
        )

    async def list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        return await self._use(_ACCOUNT, lambda: self._list_customers_by_id(customer_ids))

    async def list_contacts(self, customer_id: str, *, limit: int, cursor: str | None = None) -> ContactPage:
        return await self._use(_CONTACT, lambda: self._list_contacts(customer_id, limit=limit, cursor=cursor))

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return await self._use(_OPPORTUNITY, lambda: self._get_opportunity(opportunity_id))

    async def find_opportunity_by_project(self, project_id: str) -> Opportunity | None:
        return await self._use(_OPPORTUNITY, lambda: self._find_opportunity_by_project(project_id))

    async def list_opportunities(
        self,
        customer_id: str | None,
        *,
        limit: int,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
        modified_since: dt.datetime | None = None,
        with_terms: bool = False,
    ) -> OpportunityPage:
        return await self._use(
            _OPPORTUNITY,
            lambda: self._list_opportunities(
                customer_id,
                limit=limit,
                cursor=cursor,
                stage=stage,
                modified_since=modified_since,
                with_terms=with_terms,
            ),
        )

    async def update_opportunity_activation(
        self, opportunity_id: str, update: OpportunityActivationUpdate
    ) -> Opportunity:
        return await self._use(
            _OPPORTUNITY, lambda: self._update_opportunity_activation(opportunity_id, update), write=True
        )

    async def upsert_invoice_status(self, update: CrmInvoiceStatusUpdate) -> InvoiceTotals:
        return await self._use(_INVOICE_STATUS, lambda: self._upsert_invoice_status(update), write=True)

    async def _get_customer(self, customer_id: str) -> Customer:
        if not is_salesforce_id(customer_id):
            raise NotFound(VENDOR, "no such account")
        response = await self._http.send("GET", f"{self._api}/sobjects/Account/{customer_id}")
        try:
            record = decode_account(response.content)
        except msgspec.DecodeError as exc:
            raise _bad_body("Account", exc) from None
        return map_record(VENDOR, "Account", record.id, lambda: account_to_customer(record))

    async def _list_customers(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> CustomerPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after_id = decode_cursor(cursor) if cursor is not None else None
        soql = customer_query(limit=limit, after_id=after_id, modified_since=modified_since)
        records = await self._query(soql, SalesforceAccount, want=limit + 1)
        items, skipped = map_page(VENDOR, "Account", records[:limit], account_to_customer, record_id=_id)
        return CustomerPage(items=items, next_cursor=_next_cursor(records, limit), skipped=skipped)

    async def _list_customers_by_id(self, customer_ids: Sequence[str]) -> CustomerPage:
        # One SOQL query of those accounts; an id that is not a Salesforce id names no account (as
        # `get_customer` answers 404 for it) and is not asked.
        ids = sorted({i for i in customer_ids if can_name_a_record(i)})
        if not ids:
            return CustomerPage(items=[])
        records = await self._query(accounts_by_id_query(ids), SalesforceAccount)
        items, skipped = map_page(VENDOR, "Account", records, account_to_customer, record_id=_id)
        return CustomerPage(items=items, skipped=skipped)

    async def _list_contacts(self, customer_id: str, *, limit: int, cursor: str | None = None) -> ContactPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after_id = decode_cursor(cursor) if cursor is not None else None
        if not is_salesforce_id(customer_id):
            raise NotFound(VENDOR, "no such account")
        soql = contact_query(customer_id, limit=limit, after_id=after_id)
        records = await self._query(soql, SalesforceContact, want=limit + 1)
        items, skipped = map_page(VENDOR, "Contact", records[:limit], contact_from_record, record_id=_id)
        return ContactPage(items=items, next_cursor=_next_cursor(records, limit), skipped=skipped)

    async def _get_opportunity(self, opportunity_id: str) -> Opportunity:
        if not is_salesforce_id(opportunity_id):
            raise NotFound(VENDOR, "no such opportunity")
        # Three independent reads at once, each as cheap as one query with subqueries would be (they
        # overlap), and the record read by Id answers NotFound as a query could not. Waiting for all three
        # (rather than failing fast) leaves no call running unobserved; the opportunity's own error (e.g.
        # NotFound) wins over the others'. A page of deals reads its terms as subqueries instead
        # (``with_terms``): one query rather than two per deal.
        record, milestones, rate_card = await at_once(
            self._read_opportunity(opportunity_id),
            self._child_records(MILESTONE_OBJECT, MILESTONE_FIELDS, SalesforceMilestone, opportunity_id),
            self._child_records(
                RATE_CARD_LINE_OBJECT, RATE_CARD_LINE_FIELDS, SalesforceRateCardLine, opportunity_id
            ),
        )
        return map_record(
            VENDOR,
            "Opportunity",
            record.id,
            lambda: opportunity_from_record(record, milestones=milestones, rate_card=rate_card),
        )

    async def _find_opportunity_by_project(self, project_id: str) -> Opportunity | None:
        # The deal and its children in one round (the children filtered through their master's field),
        # not the deal first and its children once its id is known: one vendor round trip, not two.
        records, milestones, rate_card = await at_once(
            self._query(opportunity_by_project_query(project_id), SalesforceOpportunity, want=1),
            self._child_records(
                MILESTONE_OBJECT,
                MILESTONE_FIELDS,
                SalesforceMilestone,
                project_id,
                query=child_records_by_project_query,
            ),
            self._child_records(
                RATE_CARD_LINE_OBJECT,
                RATE_CARD_LINE_FIELDS,
                SalesforceRateCardLine,
                project_id,
                query=child_records_by_project_query,
            ),
        )
        if not records:
            return None
        record = records[0]
        # Two deals with the project's id (written twice by hand): only the answered deal's children.
        own_milestones = [m for m in milestones if m.opportunity_id == record.id]
        own_rates = [r for r in rate_card if r.opportunity_id == record.id]
        return map_record(
            VENDOR,
            "Opportunity",
            record.id,
            lambda: opportunity_from_record(record, milestones=own_milestones, rate_card=own_rates),
        )

    async def _list_opportunities(
        self,
        customer_id: str | None,
        *,
        limit: int,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
        modified_since: dt.datetime | None = None,
        with_terms: bool = False,
    ) -> OpportunityPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after_id = decode_cursor(cursor) if cursor is not None else None
        if customer_id is not None and not is_salesforce_id(customer_id):
            raise NotFound(VENDOR, "no such account")
        if with_terms:
            return await self._list_opportunities_with_terms(
                customer_id, limit=limit, stage=stage, after_id=after_id, modified_since=modified_since
            )
        soql = opportunity_query(
            customer_id, limit=limit, stage=stage, after_id=after_id, modified_since=modified_since
        )
        records = await self._query(soql, SalesforceOpportunity, want=limit + 1)
        # Without ``with_terms`` listed deals come without milestones and rate card (a bigger answer).
        items, skipped = map_page(
            VENDOR, "Opportunity", records[:limit], opportunity_from_record, record_id=_id
        )
        return OpportunityPage(items=items, next_cursor=_next_cursor(records, limit), skipped=skipped)

    async def _list_opportunities_with_terms(
        self,
        customer_id: str | None,
        *,
        limit: int,
        stage: OpportunityStage | None,
        after_id: str | None,
        modified_since: dt.datetime | None,
    ) -> OpportunityPage:
        """A page of deals, each with its milestones and rate card as ``get_opportunity`` gives them, in one
        query: the child objects as parent-to-child subqueries. An object the org is known to lack is left
        out of the query (its deals have none); a relationship the org does not know (``INVALID_TYPE``: the
        objects are missing, or the org named the relationship otherwise) falls back to the page alone
        and each deal's children read by their lookup, as ``get_opportunity`` reads them."""
        asked = tuple(
            sobject for sobject in _TERMS if self._missing_objects.get(sobject, 0.0) <= time.monotonic()
        )
        records: Sequence[SalesforceOpportunity] | None = None
        if asked:
            soql = opportunity_query(
                customer_id,
                limit=limit,
                stage=stage,
                after_id=after_id,
                modified_since=modified_since,
                terms=asked,
            )
            try:
                records = await self._query(soql, SalesforceOpportunityWithTerms, want=limit + 1)
            except VendorRejected as exc:
                if exc.vendor_code != "INVALID_TYPE":
                    raise
                _log().warning("salesforce_terms_subquery_refused", vendor=VENDOR, objects=list(asked))
                asked = ()
        if records is None:
            soql = opportunity_query(
                customer_id, limit=limit, stage=stage, after_id=after_id, modified_since=modified_since
            )
            records = await self._query(soql, SalesforceOpportunity, want=limit + 1)
        page = records[:limit]

        async def terms_of(
            record: SalesforceOpportunity,
        ) -> tuple[list[SalesforceMilestone], list[SalesforceRateCardLine]]:
            nested = record if isinstance(record, SalesforceOpportunityWithTerms) else None
            return await at_once(
                self._nested_or_read(
                    MILESTONE_OBJECT in asked,
                    nested.milestones if nested else None,
                    MILESTONE_OBJECT,
                    SalesforceMilestone,
                    record.id,
                ),
                self._nested_or_read(
                    RATE_CARD_LINE_OBJECT in asked,
                    nested.rate_card if nested else None,
                    RATE_CARD_LINE_OBJECT,
                    SalesforceRateCardLine,
                    record.id,
                ),
            )

        read = await all_at_once(terms_of(record) for record in page)
        terms = {record.id: deal_terms for record, deal_terms in zip(page, read, strict=True)}

        def with_terms(record: SalesforceOpportunity) -> Opportunity:
            deal_milestones, deal_rates = terms[record.id]
            return opportunity_from_record(record, milestones=deal_milestones, rate_card=deal_rates)

        items, skipped = map_page(VENDOR, "Opportunity", page, with_terms, record_id=_id)
        return OpportunityPage(items=items, next_cursor=_next_cursor(records, limit), skipped=skipped)

    async def _nested_or_read(
        self,
        asked: bool,
        nested: SalesforceQueryPage[R] | None,
        sobject: str,
        record_type: type[R],
        opportunity_id: str,
    ) -> list[R]:
        """A deal's ``sobject`` children: those its subquery nested (``null``: none), or, when they were not
        asked for or are more than one nested batch (``done: false``), read by their lookup."""
        if asked and nested is None:
            return []
        if asked and nested is not None and nested.done:
            return list(nested.records)
        return await self._child_records(sobject, _TERMS[sobject][1], record_type, opportunity_id)

    async def _update_opportunity_activation(
        self, opportunity_id: str, update: OpportunityActivationUpdate
    ) -> Opportunity:
        if not is_salesforce_id(opportunity_id):
            raise NotFound(VENDOR, "no such opportunity")
        body = msgspec.json.encode(activation_update_body(update))
        # A PATCH of absolute values: repeating it leaves the record as one PATCH would, so it is retried.
        await self._http.send(
            "PATCH",
            f"{self._api}/sobjects/Opportunity/{opportunity_id}",
            headers={"Content-Type": "application/json", **STRATUM_CALL_OPTIONS},
            content=body,
            idempotent=True,
        )
        return await self._get_opportunity(opportunity_id)

    async def _upsert_invoice_status(self, update: CrmInvoiceStatusUpdate) -> InvoiceTotals:
        """Read the stored record, write it only when the update is not older and says something new, then
        write the opportunity's totals over all its invoices.

        Ordering: ``ERP_Updated_At__c`` holds the ERP's change time of the stored state; an update stamped
        earlier is stale and changes nothing (an unstamped update always applies). Race: between the read
        and the write another writer may store a newer state. For an existing record the write is
        conditional (``If-Unmodified-Since``, 412 -> read and decide again), which closes that window down
        to Salesforce's one-second ``LastModifiedDate`` resolution. The first write of a record cannot be
        conditional (Salesforce has no conditional upsert by external id, and If-Match works only on
        Account), so two first writes racing can still land in either order; the status-back workflow is
        the only periodic writer and any later ERP change re-sends the newest state. The totals are
        recomputed from the records on every call, so they always match what the records say.

        Exactly once: the upsert by external id (unique ``ERP_Invoice_Id__c``) is retried on a lost
        answer; a second attempt updates the record the first created, never a second record."""
        if not is_salesforce_id(update.opportunity_id):
            raise NotFound(VENDOR, "no such opportunity")
        opportunity = await self._read_opportunity(update.opportunity_id)
        currency = (opportunity.currency_iso_code or update.currency).upper()
        await self._write_invoice(update, opportunity.account_id)
        # Every invoice of the deal, summed here in Decimal: SOQL's SUM() of a currency field answers in
        # the org's corporate currency when the query groups (SOQL and SOSL Reference, "convertCurrency()",
        # considerations: "If a query includes a GROUP BY or HAVING clause, any currency data returned by
        # using an aggregate function ... is in the org's default currency"), which would turn a GBP
        # deal's totals into converted USD. Reading the records keeps each amount in its own currency.
        invoices = await self._query(
            child_records_query(INVOICE_OBJECT, INVOICE_FIELDS, update.opportunity_id), SalesforceInvoice
        )
        invoiced, paid, overdue, count = invoice_totals(currency, invoices, today=self._today())
        # Absolute values: a repeated PATCH leaves the opportunity as one would, so it is retried.
        await self._http.send(
            "PATCH",
            f"{self._api}/sobjects/Opportunity/{update.opportunity_id}",
            headers={"Content-Type": "application/json", **STRATUM_CALL_OPTIONS},
            content=_money_encoder.encode(totals_body(invoiced, paid, overdue)),
            idempotent=True,
        )
        return InvoiceTotals(
            opportunity_id=opportunity.id,
            currency=currency,
            invoiced=Money(amount=invoiced, currency=currency),
            paid=Money(amount=paid, currency=currency),
            overdue=Money(amount=overdue, currency=currency),
            invoice_count=count,
        )

    async def _write_invoice(self, update: CrmInvoiceStatusUpdate, account_id: str | None) -> None:
        """Read the stored record and write the update unless it is stale or says nothing new. An existing
        record is updated by Id under ``If-Unmodified-Since`` its read ``LastModifiedDate`` (REST API
        Developer Guide, "Conditional Request Headers"): a 412 means another writer came in between, so
        the record is read and the decision taken again. A new one is made by the upsert."""
        body = _money_encoder.encode(invoice_body(update, account_id))
        for _ in range(_INVOICE_WRITE_ATTEMPTS):
            stored = await self._query(invoice_by_erp_id_query(update.erp_invoice_id), SalesforceInvoice)
            if not stored:
                # A lost answer is retried: the second attempt updates the record the first created.
                await self._http.send(
                    "PATCH",
                    f"{self._api}/sobjects/{INVOICE_OBJECT}/ERP_Invoice_Id__c/"
                    + quote(update.erp_invoice_id, safe=""),
                    headers={"Content-Type": "application/json", **STRATUM_CALL_OPTIONS},
                    content=body,
                    idempotent=True,
                )
                return
            record = stored[0]
            if not self._invoice_update_applies(record, update, account_id):
                return
            headers = {"Content-Type": "application/json", **STRATUM_CALL_OPTIONS}
            read_at = parse_salesforce_datetime(record.last_modified_date)
            if read_at is not None:
                headers["If-Unmodified-Since"] = format_http_date(read_at, usegmt=True)
            try:
                # Retried on a lost answer: the retry then meets a 412 (its first attempt changed the
                # record), reads it again and finds nothing left to write.
                await self._http.send(
                    "PATCH",
                    f"{self._api}/sobjects/{INVOICE_OBJECT}/{record.id}",
                    headers=headers,
                    content=body,
                    idempotent=True,
                )
                return
            except VendorRejected as exc:
                if exc.vendor_code != _PRECONDITION_FAILED:
                    raise
                _log().info("salesforce_invoice_changed_meanwhile", vendor=VENDOR, record_id=record.id)
        raise VendorUnavailable(
            VENDOR, "the invoice record kept changing while it was written; try again", retry_after=1.0
        )

    @staticmethod
    def _invoice_update_applies(
        record: SalesforceInvoice, update: CrmInvoiceStatusUpdate, account_id: str | None
    ) -> bool:
        """False when the stored record is newer than the update, or already says all it says."""
        try:
            stored_at = parse_salesforce_datetime(record.erp_updated_at)
        except ValueError:
            stored_at = None  # an unreadable stamp orders nothing: the update applies
        if stored_at is not None and update.erp_updated_at is not None and update.erp_updated_at < stored_at:
            _log().info(
                "salesforce_invoice_update_stale",
                vendor=VENDOR,
                erp_invoice_id=update.erp_invoice_id,
                stored_at=stored_at.isoformat(),
                update_at=update.erp_updated_at.isoformat(),
            )
            return False
        return not invoice_matches(record, update, account_id)

    # --- Salesforce specifics ------------------------------------------------------------------------

    async def _read_opportunity(self, opportunity_id: str) -> SalesforceOpportunity:
        response = await self._http.send("GET", f"{self._api}/sobjects/Opportunity/{opportunity_id}")
        try:
            return decode_opportunity(response.content)
        except msgspec.DecodeError as exc:
            raise _bad_body("Opportunity", exc) from None

    async def _child_records(
        self,
        sobject: str,
        fields: Sequence[str],
        record_type: type[R],
        opportunity_id: str,
        *,
        query: Callable[[str, Sequence[str], str], str] = child_records_query,
    ) -> list[R]:
        """Every ``sobject`` record of the opportunity (``query``: of the deal of a PSA project); none when
        the org does not have the object."""
        if self._missing_objects.get(sobject, 0.0) > time.monotonic():
            return []
        try:
            return await self._query(query(sobject, fields, opportunity_id), record_type)
        except VendorRejected as exc:
            if exc.vendor_code != "INVALID_TYPE":
                raise
        # A customer org may not have deployed the gateway's custom objects: then the deal has none.
        self._missing_objects[sobject] = time.monotonic() + _MISSING_OBJECT_RECHECK_SECONDS
        _log().warning("salesforce_object_missing", vendor=VENDOR, sobject=sobject)
        return []

    async def _query(self, soql: str, record_type: type[R], *, want: int | None = None) -> list[R]:
        """Run SOQL, following ``nextRecordsUrl`` until ``want`` records (``None``: all) or the end."""
        return await self._org.query(soql, lambda body: decode_query_page(body, record_type), want=want)

    def _next_batch_path(self, next_records_url: str) -> str:
        return self._org.next_batch_path(next_records_url)


def _next_cursor(
    records: Sequence[SalesforceAccount | SalesforceContact | SalesforceOpportunity], limit: int
) -> str | None:
    """The cursor after a page of ``limit`` items when the look-ahead record says there is more."""
    return encode_cursor(records[limit - 1].id) if len(records) > limit else None


def _id(record: SalesforceAccount | SalesforceContact | SalesforceOpportunity) -> str:
    return record.id


def _bad_body(what: str, exc: Exception) -> VendorBadResponse:
    return bad_body(VENDOR, what, exc)


class _DescribedField(msgspec.Struct, frozen=True):
    name: str
    type: str
    updateable: bool = False
    restrictedPicklist: bool = False
    picklistValues: list[_PicklistValue] = msgspec.field(default_factory=list)


class _PicklistValue(msgspec.Struct, frozen=True):
    value: str
    active: bool = True


class _Described(msgspec.Struct, frozen=True):
    fields: list[_DescribedField]


_describe_decoder = msgspec.json.Decoder(_Described)


_Blocks = Literal["reads", "writes"]


class _SchemaFinding(msgspec.Struct, kw_only=True, frozen=True):
    """A `Check` line of the org's schema, and which calls on ``sobject`` its problem breaks: "reads"
    (every call: a query or a mapping would fail), "writes" (the activation write-back), None (none)."""

    check: Check
    sobject: str
    blocks: _Blocks | None
    expected_type: str = ""  # a custom field's type to create, for the log line


def _field_fix(need: CustomField, fields: Mapping[str, _DescribedField]) -> tuple[str | None, _Blocks]:
    """What the org must change for the gateway to use ``need`` (None when it can as it is), and which
    calls the lack breaks."""
    create = f"create {need.sobject}.{need.name} as {need.types[0]}"
    found = fields.get(need.name.lower())
    if found is None:
        return f"no such field: {create} (or grant the integration user field-level access)", "reads"
    if found.type not in need.types:
        return f"it is a {found.type} field: {create}", "reads"
    if need.written and not found.updateable:
        return "the integration user cannot update it: grant edit field-level access", "writes"
    if need.name == "Activation_Status__c" and found.type == "picklist" and found.restrictedPicklist:
        values = {v.value for v in found.picklistValues if v.active}
        absent = [v for v in ACTIVATION_STATUS_PICKLIST.values() if v not in values]
        if absent:
            return f"the restricted picklist lacks {', '.join(absent)}: add these values", "writes"
    return None, "reads"
