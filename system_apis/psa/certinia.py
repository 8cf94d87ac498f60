"""The Certinia PSA adapter for the PSA port: the ``pse__`` package's objects in a Salesforce org.

Certinia (formerly FinancialForce PSA) is a managed package inside the customer's Salesforce org, so its
wire is Salesforce's: the adapter sends through a ``SalesforceOrg`` (``system_apis.salesforce_org``: OAuth
client credentials and the token's ``instance_url``, SOQL paging with ``nextRecordsUrl``, the JSON error
arrays, ``Sforce-Limit-Info``), by default to the same org as the CRM adapter, so the two share the org's
daily API allowance. What is Certinia's own lives here and in ``certinia_mapping``:

- **Idempotency by external-id upsert.** The package has no external id of its own; the org adds
  ``Stratum_Key__c`` (Text(80), External ID, Unique) to the objects Stratum creates, and every create is
  ``PATCH sobjects/{Object}/Stratum_Key__c/{key}`` (REST API Developer Guide, "Insert or Update (Upsert) a
  Record Using an External ID": 201 ``created: true`` when it made the record, 200 (or 204 on old API
  versions) when it updated one). A lost answer is retried by the HTTP client and the retry updates the
  record the first attempt made, never a second one. A project is looked for by its key first, so a
  project that exists (closed, edited in Certinia) is returned as it is, never overwritten; the upsert's
  201/200 is the ``created`` flag. A project's milestones and staffing demand (resource requests) and an
  invoice's items are keyed under their parent's id (``certinia_mapping.child_key``).
- **Several writes in one call.** A project's milestones, and an invoice's items with the links from their
  source records, go as ``POST composite`` (up to 25 subrequests, ``allOrNone``: REST API Developer Guide,
  "Composite"), a source's link referring to its new item as ``@{ref.id}``. Every subrequest is an upsert
  by key or a PATCH of absolute values, so a whole composite call may be retried after a lost answer.
- **Keyset paging.** Listings are SOQL ``ORDER BY Id`` with ``Id > last`` behind an opaque cursor that
  also pins the query it belongs to (its filters' fingerprint), one record beyond the page telling
  whether more follow.

Billing
-------

Time is the timecard split (``pse__Timecard__c``, what carries billing), approved by its header
(``pse__Timecard_Header__c.pse__Approved__c``, read through ``pse__Timecard_Header__r``); expenses and
milestones carry their own ``pse__Approved__c``. An item is billed while its ``pse__Billing_Event_Item__c``
is set (the contract's "billed = linked to a billing event item"). ``list_billable_items`` reads time,
then expenses, then approved milestones with an amount, each in ``Id`` order, behind one cursor naming the
kind; a page holds one kind only.

An invoice is a billing event (``pse__Billing_Event__c``, ``Stratum_Key__c`` = the billing key) whose
items are ``pse__Billing_Event_Item__c`` (category Timecard / Expense / Milestone, a fee a Miscellaneous
Adjustment), keyed ``{event id}:{source id}``. ``create_invoice`` looks before it writes: every source
must exist on the project and not be linked to an item of another live (not cancelled) event, else
``VendorRejected`` names it and nothing is written. Then the event is upserted (Stratum_Status__c Draft),
then its items and the sources' links in composite calls. **A concurrent race** (two invoices taking the
same item between one's look and its write) is settled after the write: the sources are read again, and
an invoice that finds one of its sources linked to another's item removes itself (its event is deleted,
which cascades to its items; the sources still linked to its items are unlinked) and raises
``VendorRejected`` naming the item; the other keeps it. A retry after a crash half way (the event made, not
all its items) completes the same invoice: an event whose items are a subset of the command's is finished.

``finalize_invoice`` releases the event as the ERP integration does ("invoicing always occurs at the
billing event level": ``pse__Is_Released__c``, ``pse__Invoiced__c`` true, ``pse__Invoice_Number__c`` and
``pse__Invoice_Date__c``), plus ``Stratum_Status__c`` Issued and ``Stratum_ERP_Invoice_Id__c``; writing the
same values twice is harmless. ``cancel_invoice`` marks it Cancelled first, then unlinks the sources still
linked to its items (so a retry finishes an interrupted cancel, and a source another invoice took since is
left alone); its items stay as the record of what it billed.

Payments: the event's ``Stratum_Paid_Amount__c`` is the sum of the ERP payments told, and
``Stratum_Payment_Ids__c`` lists their ids one per line, so the same payment twice records once. The
write is conditional (``If-Unmodified-Since`` the read's ``LastModifiedDate``: REST API Developer Guide,
"Conditional Requests"), so two payments told at once cannot lose one another: a 412 reads again and
decides again, and a retried write after a lost answer meets the 412 and then finds its id recorded. A
partial payment shows as a paid amount below the event's ``pse__Summary_Amount__c`` with the invoice still
open; it reads paid once the amount covers the total.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from email.utils import format_datetime as format_http_date
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import structlog

from apis.config import SalesforceSettings
from contracts.models import (
    BillableItemKind,
    BillableItemPage,
    ExpensePage,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaInvoiceStatus,
    PsaPaymentRecord,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntryPage,
)
from system_apis.crm.port import InvalidCursor
from system_apis.crm.salesforce_mapping import parse_salesforce_datetime
from system_apis.cursors import fingerprint, unwrap_cursor, wrap_cursor
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.psa.certinia_mapping import (
    BILLING_EVENT,
    BILLING_EVENT_FIELDS,
    BILLING_EVENT_ITEM,
    BILLING_EVENT_ITEM_FIELDS,
    CATEGORY_EXPENSE,
    CATEGORY_FEE,
    CATEGORY_MILESTONE,
    CATEGORY_TIME,
    EXPENSE,
    EXPENSE_FIELDS,
    KEY_FIELD,
    MILESTONE,
    MILESTONE_FIELDS,
    PROJECT,
    PROJECT_FIELDS,
    RESOURCE_REQUEST,
    RESOURCE_REQUEST_FIELDS,
    STATUS_CANCELLED,
    STATUS_DRAFT,
    STATUS_ISSUED,
    TIMECARD_SPLIT,
    TIMECARD_SPLIT_FIELDS,
    CertiniaBillingEvent,
    CertiniaBillingEventItem,
    CertiniaExpense,
    CertiniaMilestone,
    CertiniaProject,
    CertiniaResourceRequest,
    CertiniaTimecardSplit,
    RecordRef,
    billable_expense,
    billable_milestone,
    billable_time,
    billing_event_body,
    child_key,
    decode_batch,
    expense_billable_amount,
    expense_from_record,
    invoice_from_records,
    invoice_status,
    milestone_body,
    milestone_date,
    payment_ids,
    project_body,
    project_from_record,
    resource_request_body,
    split_approved,
    split_billable,
    staffing_demand_from_record,
    time_entry_from_record,
)
from system_apis.psa.port import MAX_PROJECTS_AT_ONCE, PeriodFilter
from system_apis.records import map_page, map_record
from system_apis.salesforce_org import (
    PRECONDITION_FAILED,
    SalesforceOrg,
    can_name_a_record,
    quoted_list,
    soql_datetime,
    soql_quote,
)
from system_apis.vendor_checks import Check
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

__all__ = ["VENDOR", "CertiniaPsa", "InvalidCursor"]

VENDOR = "certinia"
R = TypeVar("R")

# Salesforce's composite call takes at most 25 subrequests (REST API Developer Guide, "Composite").
_COMPOSITE_MAX = 25
# Rounds of writing an invoice's items, each after reading what the previous one made.
_ITEM_WRITE_ROUNDS = 3
_NOT_UPDATEABLE = "INVALID_FIELD_FOR_INSERT_UPDATE"
# Conditional writes of one billing event before giving up on a record other writers keep changing.
_PAYMENT_WRITE_ATTEMPTS = 3
# Amounts go out as JSON numbers written from the Decimal's digits, never through a float.
_encoder = msgspec.json.Encoder(decimal_format="number")
_JSON = {"Content-Type": "application/json"}
_PHASES = (BillableItemKind.TIME, BillableItemKind.EXPENSE, BillableItemKind.MILESTONE)


def _log() -> Any:
    return structlog.get_logger(__name__)


class _Upserted(msgspec.Struct, frozen=True):
    id: str
    created: bool = False


class _SubResponse(msgspec.Struct, frozen=True):
    body: Any = None
    httpStatusCode: int = 0
    referenceId: str = ""


class _CompositeAnswer(msgspec.Struct, frozen=True):
    compositeResponse: list[_SubResponse]


@dataclasses.dataclass(frozen=True)
class _Sub:
    """One composite subrequest."""

    method: str
    path: str  # under services/data/vXX.X/
    body: Mapping[str, Any] | None
    ref: str


def _cursor(fp: str, phase: int, last_id: str) -> str:
    return wrap_cursor(f"{fp}|{phase}|{last_id}")


def _decode_cursor(cursor: str, fp: str) -> tuple[int, str | None]:
    text = unwrap_cursor(cursor, max_length=200)
    parts = text.split("|")
    if len(parts) != 3 or parts[0] != fp or not parts[1].isdigit():
        raise InvalidCursor("cursor is not one this API produced for this listing")
    last = parts[2] or None
    if last is not None and not can_name_a_record(last):
        raise InvalidCursor("cursor is not one this API produced")
    return int(parts[1]), last


def _ids(values: Iterable[str]) -> list[str]:
    """Only values that can name a record enter a query (SOQL refuses a whole query over one that cannot)."""
    return sorted({value for value in values if can_name_a_record(value)})


def _select(sobject: str, fields: Sequence[str], conditions: Sequence[str], order: str = "Id") -> str:
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # S608: constants, soql_quote()d values, soql_datetime()s and ISO dates only.
    return f"SELECT {', '.join(fields)} FROM {sobject}{where} ORDER BY {order}"  # noqa: S608


class CertiniaPsa:
    """``PsaPort`` over a Salesforce org with Certinia PSA installed.

    ``settings`` is the org's connection (the bootstrap derives it from ``CertiniaSettings``, by default
    the CRM's org); ``transport`` is the test seam."""

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
        link_crm_records: bool = True,
    ) -> None:
        # In the CRM's own org a project links its customer's Account and its deal's Opportunity (the
        # business key of a deal's project is the opportunity id); in another org those ids name nothing.
        self._link_crm_records = link_crm_records
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

    @property
    def http(self) -> Any:
        return self._http

    @property
    def api_usage(self) -> Any:
        """The org's daily API usage as last seen (shared with the CRM adapter when it is the same org)."""
        return self._org.api_usage

    async def close(self) -> None:
        await self._org.aclose()

    async def check(self) -> list[Check]:
        """The org has the package's objects with the fields the org adds for Stratum: each object is
        queried for them (SOQL refuses a field the org lacks, or the user cannot read, with INVALID_FIELD;
        an object it lacks with INVALID_TYPE), one line per object, at once."""

        async def one(sobject: str, fields: tuple[str, ...]) -> Check:
            what = f"{sobject}.{'/'.join(fields)}"
            try:
                await self._query(f"SELECT Id, {', '.join(fields)} FROM {sobject} LIMIT 1", RecordRef)  # noqa: S608
            except VendorError as exc:
                fix = f"the org refused {what} ({exc.message}): install Certinia PSA and create the fields"
                return Check(vendor=VENDOR, what=what, fix=fix)
            return Check(vendor=VENDOR, what=what, fix=None)

        return list(await asyncio.gather(*(one(sobject, fields) for sobject, fields in _ORG_FIELDS)))

    # --- plumbing ------------------------------------------------------------------------------------

    async def _query(self, soql: str, record_type: type[R], *, want: int | None = None) -> list[R]:
        return await self._org.query(soql, partial(decode_batch, record_type), want=want)

    async def _upsert(self, sobject: str, key: str, body: Mapping[str, Any]) -> tuple[str, bool]:
        """``PATCH sobjects/{sobject}/Stratum_Key__c/{key}``: (record id, created). Retried on a lost
        answer: the retry updates what the first attempt made."""
        response = await self._http.send(
            "PATCH",
            f"{self._api}/sobjects/{sobject}/{KEY_FIELD}/{quote(key, safe='')}",
            headers=_JSON,
            content=_encoder.encode(body),
            idempotent=True,
        )
        if response.status_code == 204 or not response.content:
            # API versions before 46.0 answer an update with 204 and no body: the record is found by key.
            found = await self._query(
                f"SELECT Id FROM {sobject} WHERE {KEY_FIELD} = {soql_quote(key)}",  # noqa: S608
                RecordRef,
            )
            if not found:
                raise VendorBadResponse(VENDOR, f"Salesforce upserted {sobject} {key} but it cannot be read")
            return found[0].id, False
        try:
            answer = msgspec.json.decode(response.content, type=_Upserted)
        except msgspec.DecodeError as exc:
            raise VendorBadResponse(VENDOR, f"Salesforce sent an unusable upsert answer: {exc}") from None
        return answer.id, response.status_code == 201 or answer.created

    async def _update(self, sobject: str, record_id: str, body: Mapping[str, Any]) -> None:
        """A PATCH of absolute values by id: naturally idempotent, so retried."""
        await self._http.send(
            "PATCH",
            f"{self._api}/sobjects/{sobject}/{record_id}",
            headers=_JSON,
            content=_encoder.encode(body),
            idempotent=True,
        )

    async def _composite(self, subrequests: Sequence[_Sub], *, idempotent: bool = True) -> dict[str, Any]:
        """The subrequests in composite calls of at most 25, each ``allOrNone``; the bodies of the
        answers by reference id. A failed subrequest is ``VendorRejected`` with Salesforce's error."""
        bodies: dict[str, Any] = {}
        for start in range(0, len(subrequests), _COMPOSITE_MAX):
            chunk = subrequests[start : start + _COMPOSITE_MAX]
            payload = {
                "allOrNone": True,
                "compositeRequest": [
                    {
                        "method": sub.method,
                        "url": f"/{self._api}/{sub.path}",
                        "referenceId": sub.ref,
                        **({"body": sub.body} if sub.body is not None else {}),
                    }
                    for sub in chunk
                ],
            }
            response = await self._http.send(
                "POST",
                f"{self._api}/composite",
                headers=_JSON,
                content=_encoder.encode(payload),
                # Upserts by key and PATCHes of absolute values only; the caller says when an upsert's
                # update would be refused (a master-detail field), so that a lost answer is its to settle.
                idempotent=idempotent,
            )
            try:
                answer = msgspec.json.decode(response.content, type=_CompositeAnswer)
            except msgspec.DecodeError as exc:
                raise VendorBadResponse(
                    VENDOR, f"Salesforce sent an unusable composite answer: {exc}"
                ) from None
            for sub in answer.compositeResponse:
                if sub.httpStatusCode >= 300:
                    code, message = _composite_error(sub.body)
                    if code == "PROCESSING_HALTED":
                        continue
                    raise VendorRejected(VENDOR, f"Salesforce {code}: {message}", vendor_code=code or None)
                bodies[sub.referenceId] = sub.body
            for sub in answer.compositeResponse:
                if sub.httpStatusCode >= 300:
                    code, message = _composite_error(sub.body)
                    raise VendorRejected(VENDOR, f"Salesforce {code}: {message}", vendor_code=code or None)
        return bodies

    # --- projects ------------------------------------------------------------------------------------

    async def _projects_where(
        self, conditions: Sequence[str], *, want: int | None = None
    ) -> list[CertiniaProject]:
        return await self._query(_select(PROJECT, PROJECT_FIELDS, conditions), CertiniaProject, want=want)

    async def _milestones_of(self, project_ids: Sequence[str]) -> dict[str, list[CertiniaMilestone]]:
        ids = _ids(project_ids)
        found: dict[str, list[CertiniaMilestone]] = {pid: [] for pid in project_ids}
        if not ids:
            return found
        for start in range(0, len(ids), MAX_PROJECTS_AT_ONCE * 4):
            chunk = ids[start : start + MAX_PROJECTS_AT_ONCE * 4]
            rows = await self._query(
                _select(
                    MILESTONE,
                    MILESTONE_FIELDS,
                    [f"pse__Project__c IN ({quoted_list(chunk)})"],
                    "pse__Target_Date__c ASC NULLS LAST, Name, Id",
                ),
                CertiniaMilestone,
            )
            for row in rows:
                found.setdefault(row.project_id, []).append(row)
        return found

    async def _project(self, record: CertiniaProject) -> Project:
        milestones = await self._milestones_of([record.id])
        return map_record(
            VENDOR, "project", record.id, lambda: project_from_record(record, milestones[record.id])
        )

    async def _project_record(self, project_id: str) -> CertiniaProject:
        if not can_name_a_record(project_id):
            raise NotFound(VENDOR, "no such project")
        found = await self._projects_where([f"Id = {soql_quote(project_id)}"])
        if not found:
            raise NotFound(VENDOR, "no such project")
        return found[0]

    async def get_project(self, project_id: str) -> Project:
        if not can_name_a_record(project_id):
            raise NotFound(VENDOR, "no such project")
        records, milestones = await asyncio.gather(
            self._projects_where([f"Id = {soql_quote(project_id)}"]), self._milestones_of([project_id])
        )
        if not records:
            raise NotFound(VENDOR, "no such project")
        record = records[0]
        return map_record(
            VENDOR, "project", record.id, lambda: project_from_record(record, milestones.get(record.id, []))
        )

    async def _find_project_record(self, external_key: str) -> CertiniaProject | None:
        found = await self._projects_where([f"{KEY_FIELD} = {soql_quote(external_key)}"])
        return found[0] if found else None

    async def find_project(self, external_key: str) -> Project | None:
        record = await self._find_project_record(external_key)
        return None if record is None else await self._project(record)

    async def list_projects(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage:
        conditions: list[str] = []
        if modified_since is not None:
            conditions.append(f"LastModifiedDate >= {soql_datetime(modified_since)}")
        fp = fingerprint("projects", *conditions)
        after = _decode_cursor(cursor, fp)[1] if cursor else None
        if after is not None:
            conditions.append(f"Id > {soql_quote(after)}")
        soql = _select(PROJECT, PROJECT_FIELDS, conditions) + f" LIMIT {int(limit) + 1}"
        records = await self._query(soql, CertiniaProject, want=limit + 1)
        page = records[:limit]
        milestones = await self._milestones_of([r.id for r in page])
        items, skipped = map_page(
            VENDOR,
            "project",
            page,
            lambda r: project_from_record(r, milestones.get(r.id, [])),
            record_id=_rid,
        )
        more = len(records) > limit
        return ProjectPage(
            items=items, next_cursor=_cursor(fp, 0, page[-1].id) if more else None, skipped=skipped
        )

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        existing = await self._find_project_record(command.external_key)
        if existing is not None:
            # Returned as it is (a closed or edited project is never overwritten); milestones a lost
            # answer left unmade are made.
            await self._ensure_milestones(existing.id, command)
            _log().info("certinia_project_found", vendor=VENDOR, project_id=existing.id)
            return await self.get_project(existing.id), False
        adopted = await self._adoptable_project(command.external_key)
        if adopted is not None:
            # A project Certinia's own opportunity-to-project automation made for the deal: it becomes the
            # deal's project under Stratum's key (never a second one), as the Kantata adapter adopts a
            # workspace another integration linked to the deal.
            await self._update(PROJECT, adopted.id, {KEY_FIELD: command.external_key})
            await self._ensure_milestones(adopted.id, command)
            _log().info("certinia_project_adopted", vendor=VENDOR, project_id=adopted.id)
            return await self.get_project(adopted.id), False
        link = self._link_crm_records
        account_id = command.customer_id if link and _names(command.customer_id, "001") else None
        body = project_body(command, account_id=account_id)
        if link and _names(command.external_key, "006"):
            body["pse__Opportunity__c"] = command.external_key
        project_id, created = await self._upsert(PROJECT, command.external_key, body)
        await self._ensure_milestones(project_id, command)
        _log().info("certinia_project_upserted", vendor=VENDOR, project_id=project_id, created=created)
        return await self.get_project(project_id), created

    async def _adoptable_project(self, external_key: str) -> CertiniaProject | None:
        """The oldest project of the deal ``external_key`` names (an opportunity id) that carries no
        Stratum key yet, when projects link the CRM's records."""
        if not (self._link_crm_records and _names(external_key, "006")):
            return None
        found = await self._projects_where(
            [f"pse__Opportunity__c = {soql_quote(external_key)}", f"{KEY_FIELD} = null"]
        )
        return found[0] if found else None

    async def _ensure_milestones(self, project_id: str, command: ProjectCreate) -> None:
        if not command.milestones:
            return
        have = {m.key for m in (await self._milestones_of([project_id]))[project_id] if m.key}
        subs = []
        for number, milestone in enumerate(command.milestones, start=1):
            key = child_key(project_id, f"milestone:{number}")
            if key in have:
                continue
            amount = milestone.amount.amount if milestone.amount is not None else None
            body = milestone_body(project_id, milestone.name, milestone.due_date, amount, command.currency)
            subs.append(_Sub("PATCH", _upsert_path(MILESTONE, key), body, f"m{number}"))
        if subs:
            await self._composite(subs)

    async def close_project(self, project_id: str) -> Project:
        record = await self._project_record(project_id)
        completed = (record.stage or "").casefold() == "completed"
        body = {
            "pse__Is_Active__c": False,
            "pse__Stage__c": "Completed" if completed else "Canceled",
            "pse__Closed_for_Time_Entry__c": True,
            "pse__Closed_for_Expense_Entry__c": True,
        }
        if not (
            record.is_active is False
            and record.closed_for_time
            and record.closed_for_expense
            and (record.stage or "").casefold() in ("completed", "canceled")
        ):
            await self._update(PROJECT, record.id, body)
            _log().info("certinia_project_closed", vendor=VENDOR, project_id=record.id)
        return await self.get_project(record.id)

    # --- staffing ------------------------------------------------------------------------------------

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]:
        await self._project_record(project_id)
        return await self.list_staffing_demands_of([project_id])

    async def list_staffing_demands_of(self, project_ids: Sequence[str]) -> list[StaffingDemand]:
        ids = _ids(project_ids)
        if not ids:
            return []
        rows = await self._query(
            _select(
                RESOURCE_REQUEST,
                RESOURCE_REQUEST_FIELDS,
                [f"pse__Project__c IN ({quoted_list(ids)})"],
                "pse__Project__c, Id",
            ),
            CertiniaResourceRequest,
        )
        items, _skipped = map_page(
            VENDOR, "resource request", rows, staffing_demand_from_record, record_id=_rid
        )
        return items

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        project = await self._project_record(project_id)
        key = child_key(project.id, command.external_key)
        found = await self._query(
            _select(RESOURCE_REQUEST, RESOURCE_REQUEST_FIELDS, [f"{KEY_FIELD} = {soql_quote(key)}"]),
            CertiniaResourceRequest,
        )
        if found:
            return staffing_demand_from_record(found[0]), False
        record_id, created = await self._upsert(
            RESOURCE_REQUEST, key, resource_request_body(project.id, command, key)
        )
        rows = await self._query(
            _select(RESOURCE_REQUEST, RESOURCE_REQUEST_FIELDS, [f"Id = {soql_quote(record_id)}"]),
            CertiniaResourceRequest,
        )
        if not rows:
            raise VendorBadResponse(VENDOR, "the resource request just written cannot be read")
        return map_record(
            VENDOR, "resource request", record_id, lambda: staffing_demand_from_record(rows[0])
        ), created

    # --- time and expenses ---------------------------------------------------------------------------

    @staticmethod
    def _period_conditions(query: PeriodFilter, date_field: str) -> list[str] | None:
        """SOQL conditions for the filter; None when it can match nothing (no project id can name one)."""
        conditions: list[str] = []
        if query.project_id is not None:
            if not can_name_a_record(query.project_id):
                return None
            conditions.append(f"pse__Project__c = {soql_quote(query.project_id)}")
        if query.project_ids is not None:
            ids = _ids(query.project_ids)
            if not ids:
                return None
            conditions.append(f"pse__Project__c IN ({quoted_list(ids)})")
        if query.date_from is not None:
            conditions.append(f"{date_field} >= {query.date_from.isoformat()}")
        if query.date_to is not None:
            conditions.append(f"{date_field} <= {query.date_to.isoformat()}")
        if query.modified_since is not None:
            conditions.append(f"LastModifiedDate >= {soql_datetime(query.modified_since)}")
        return conditions

    async def _keyset_page(
        self,
        sobject: str,
        fields: Sequence[str],
        conditions: Sequence[str],
        record_type: type[R],
        *,
        limit: int,
        cursor: str | None,
        fp: str,
    ) -> tuple[list[R], str | None]:
        after = _decode_cursor(cursor, fp)[1] if cursor else None
        where = [*conditions, *([f"Id > {soql_quote(after)}"] if after else [])]
        soql = _select(sobject, fields, where) + f" LIMIT {int(limit) + 1}"
        rows = await self._query(soql, record_type, want=limit + 1)
        page = rows[:limit]
        more = len(rows) > limit
        return page, (_cursor(fp, 0, _rid(page[-1])) if more else None)

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage:
        conditions = self._period_conditions(query, "pse__Start_Date__c")
        if conditions is None:
            return TimeEntryPage(items=[])
        if query.approved is not None:
            conditions.append(
                f"pse__Timecard_Header__r.pse__Approved__c = {'TRUE' if query.approved else 'FALSE'}"
            )
        fp = fingerprint("time", *conditions)
        rows, next_cursor = await self._keyset_page(
            TIMECARD_SPLIT, TIMECARD_SPLIT_FIELDS, conditions, CertiniaTimecardSplit,
            limit=limit, cursor=cursor, fp=fp,
        )  # fmt: skip
        # Re-checked here: a header with no approval is not approved, whatever a filter on null did.
        if query.approved is not None:
            rows = [r for r in rows if split_approved(r) is query.approved]
        items, skipped = map_page(VENDOR, "timecard split", rows, time_entry_from_record, record_id=_rid)
        return TimeEntryPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def list_expenses(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> ExpensePage:
        conditions = self._period_conditions(query, "pse__Expense_Date__c")
        if conditions is None:
            return ExpensePage(items=[])
        if query.approved is not None:
            conditions.append(f"pse__Approved__c = {'TRUE' if query.approved else 'FALSE'}")
        fp = fingerprint("expenses", *conditions)
        rows, next_cursor = await self._keyset_page(
            EXPENSE, EXPENSE_FIELDS, conditions, CertiniaExpense, limit=limit, cursor=cursor, fp=fp
        )
        items, skipped = map_page(VENDOR, "expense", rows, expense_from_record, record_id=_rid)
        return ExpensePage(items=items, next_cursor=next_cursor, skipped=skipped)

    # --- billable items ------------------------------------------------------------------------------

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int, cursor: str | None = None
    ) -> BillableItemPage:
        await self._project_record(project_id)
        return await self.list_billable_items_of([project_id], through=through, limit=limit, cursor=cursor)

    async def list_billable_items_of(
        self,
        project_ids: Sequence[str] | None,
        *,
        through: dt.date,
        limit: int,
        cursor: str | None = None,
        kind: BillableItemKind | None = None,
    ) -> BillableItemPage:
        scope: list[str] = []
        if project_ids is not None:
            ids = _ids(project_ids)
            if not ids:
                return BillableItemPage(items=[])
            scope.append(f"pse__Project__c IN ({quoted_list(ids)})")
        fp = fingerprint("billable", through.isoformat(), kind.value if kind else "", *scope)
        phases = [kind] if kind is not None else list(_PHASES)
        phase, after = _decode_cursor(cursor, fp) if cursor else (0, None)
        if phase >= len(phases):
            raise InvalidCursor("cursor is not one this API produced")
        current = phases[phase]
        conditions = [*scope, *([f"Id > {soql_quote(after)}"] if after else [])]
        items: list[Any]
        if current is BillableItemKind.TIME:
            conditions += [
                "pse__Billable__c = TRUE",
                "pse__Billing_Event_Item__c = null",
                "pse__Timecard_Header__r.pse__Approved__c = TRUE",
                f"pse__Start_Date__c <= {through.isoformat()}",
            ]
            rows: list[Any] = await self._query(
                _select(TIMECARD_SPLIT, TIMECARD_SPLIT_FIELDS, conditions) + f" LIMIT {int(limit) + 1}",
                CertiniaTimecardSplit,
                want=limit + 1,
            )
            wanted = [r for r in rows[:limit] if split_approved(r) and split_billable(r)]
            items, skipped = map_page(VENDOR, "timecard split", wanted, billable_time, record_id=_rid)
        elif current is BillableItemKind.EXPENSE:
            conditions += [
                "pse__Billable__c = TRUE",
                "pse__Approved__c = TRUE",
                "pse__Billing_Event_Item__c = null",
                f"pse__Expense_Date__c <= {through.isoformat()}",
            ]
            rows = await self._query(
                _select(EXPENSE, EXPENSE_FIELDS, conditions) + f" LIMIT {int(limit) + 1}",
                CertiniaExpense,
                want=limit + 1,
            )
            items, skipped = map_page(VENDOR, "expense", rows[:limit], billable_expense, record_id=_rid)
        else:
            conditions += ["pse__Approved__c = TRUE", "pse__Billing_Event_Item__c = null"]
            rows = await self._query(
                _select(MILESTONE, MILESTONE_FIELDS, conditions) + f" LIMIT {int(limit) + 1}",
                CertiniaMilestone,
                want=limit + 1,
            )
            wanted = [
                m
                for m in rows[:limit]
                if m.amount is not None and m.amount > 0 and (milestone_date(m) or through) <= through
            ]
            items, skipped = map_page(VENDOR, "milestone", wanted, billable_milestone, record_id=_rid)
        next_cursor: str | None = None
        if len(rows) > limit:
            next_cursor = _cursor(fp, phase, rows[limit - 1].id)
        elif phase + 1 < len(phases):
            next_cursor = _cursor(fp, phase + 1, "")
        return BillableItemPage(items=items, next_cursor=next_cursor, skipped=skipped)

    # --- invoices ------------------------------------------------------------------------------------

    async def _events_where(self, conditions: Sequence[str]) -> list[CertiniaBillingEvent]:
        return await self._query(
            _select(BILLING_EVENT, BILLING_EVENT_FIELDS, conditions, "CreatedDate, Id"), CertiniaBillingEvent
        )

    async def _items_of(self, event_ids: Sequence[str]) -> dict[str, list[CertiniaBillingEventItem]]:
        found: dict[str, list[CertiniaBillingEventItem]] = {eid: [] for eid in event_ids}
        ids = _ids(event_ids)
        if not ids:
            return found
        rows = await self._query(
            _select(
                BILLING_EVENT_ITEM,
                BILLING_EVENT_ITEM_FIELDS,
                [f"pse__Billing_Event__c IN ({quoted_list(ids)})"],
            ),
            CertiniaBillingEventItem,
        )
        for row in rows:
            found.setdefault(row.billing_event_id, []).append(row)
        return found

    async def _invoice(self, event: CertiniaBillingEvent) -> PsaInvoice:
        items = (await self._items_of([event.id]))[event.id]
        return map_record(VENDOR, "billing event", event.id, lambda: invoice_from_records(event, items))

    async def _event(self, invoice_id: str) -> CertiniaBillingEvent:
        if not can_name_a_record(invoice_id):
            raise NotFound(VENDOR, "no such invoice")
        found = await self._events_where([f"Id = {soql_quote(invoice_id)}"])
        if not found:
            raise NotFound(VENDOR, "no such invoice")
        return found[0]

    async def find_invoice(self, external_key: str) -> PsaInvoice | None:
        found = await self._events_where([f"{KEY_FIELD} = {soql_quote(external_key)}"])
        return None if not found else await self._invoice(found[0])

    async def get_invoice(self, invoice_id: str) -> PsaInvoice:
        return await self._invoice(await self._event(invoice_id))

    async def list_invoices(self, project_id: str) -> list[PsaInvoice]:
        project = await self._project_record(project_id)
        events = await self._events_where([f"pse__Project__c = {soql_quote(project.id)}"])
        items = await self._items_of([e.id for e in events])
        invoices, _skipped = map_page(
            VENDOR, "billing event", events, lambda e: invoice_from_records(e, items[e.id]), record_id=_rid
        )
        return invoices

    async def _sources(
        self, time_ids: Sequence[str], expense_ids: Sequence[str], milestone_ids: Sequence[str]
    ) -> tuple[list[CertiniaTimecardSplit], list[CertiniaExpense], list[CertiniaMilestone]]:
        async def read(
            sobject: str, fields: Sequence[str], ids: Sequence[str], record_type: type[R]
        ) -> list[R]:
            valid = _ids(ids)
            if not valid:
                return []
            return await self._query(_select(sobject, fields, [f"Id IN ({quoted_list(valid)})"]), record_type)

        splits, expenses, milestones = await asyncio.gather(
            read(TIMECARD_SPLIT, TIMECARD_SPLIT_FIELDS, time_ids, CertiniaTimecardSplit),
            read(EXPENSE, EXPENSE_FIELDS, expense_ids, CertiniaExpense),
            read(MILESTONE, MILESTONE_FIELDS, milestone_ids, CertiniaMilestone),
        )
        return splits, expenses, milestones

    async def _links(self, item_ids: Iterable[str]) -> dict[str, CertiniaBillingEventItem]:
        ids = _ids(item_ids)
        if not ids:
            return {}
        rows = await self._query(
            _select(BILLING_EVENT_ITEM, BILLING_EVENT_ITEM_FIELDS, [f"Id IN ({quoted_list(ids)})"]),
            CertiniaBillingEventItem,
        )
        return {row.id: row for row in rows}

    async def create_invoice(self, command: PsaInvoiceCreate) -> tuple[PsaInvoice, bool]:
        existing = await self._events_where([f"{KEY_FIELD} = {soql_quote(command.external_key)}"])
        if existing:
            event = existing[0]
            items = (await self._items_of([event.id]))[event.id]
            wanted = _wanted_sources(command)
            have = {i.object_id for i in items if i.object_id}
            if event.status in (None, STATUS_DRAFT) and have < wanted:
                # A create interrupted half way (its answer lost between calls): finish the same invoice.
                _log().info("certinia_invoice_completed", vendor=VENDOR, invoice_id=event.id)
                await self._write_invoice(event.id, command, *await self._checked_sources(command, event.id))
                return await self.get_invoice(event.id), False
            _log().info("certinia_invoice_found", vendor=VENDOR, invoice_id=event.id)
            return map_record(
                VENDOR, "billing event", event.id, lambda: invoice_from_records(event, items)
            ), False
        project = await self._project_record(command.project_id)
        if (project.currency or "").upper() != command.currency:
            raise VendorRejected(
                VENDOR, f"project {command.project_id} bills in {project.currency}, not {command.currency}"
            )
        sources = await self._checked_sources(command, None)
        event_id, created = await self._upsert(
            BILLING_EVENT,
            command.external_key,
            billing_event_body(project.id, command.currency, command.invoice_date),
        )
        await self._write_invoice(event_id, command, *sources)
        await self._settle_race(event_id, command)
        if not command.draft:
            await self.finalize_invoice(
                event_id,
                erp_invoice_id=command.erp_invoice_id or "",
                erp_invoice_number=command.erp_invoice_number,
            )
        _log().info("certinia_invoice_created", vendor=VENDOR, invoice_id=event_id)
        return await self.get_invoice(event_id), created

    async def _checked_sources(
        self, command: PsaInvoiceCreate, own_event: str | None
    ) -> tuple[list[CertiniaTimecardSplit], list[CertiniaExpense], list[CertiniaMilestone]]:
        """The command's sources, looked at before anything is written: each must exist on the project
        and be free (unlinked, or linked to a cancelled event or to ``own_event``); else ``VendorRejected``
        naming it."""
        splits, expenses, milestones = await self._sources(
            command.time_entry_ids, command.expense_ids, command.milestone_ids
        )
        found = {r.id for r in _all(splits, expenses, milestones)}
        for kind, ids in (
            ("time entry", command.time_entry_ids),
            ("expense", command.expense_ids),
            ("milestone", command.milestone_ids),
        ):
            for source_id in ids:
                if source_id not in found:
                    raise VendorRejected(VENDOR, f"{kind} {source_id} is not in Certinia")
        for record in _all(splits, expenses, milestones):
            if record.project_id != command.project_id:
                raise VendorRejected(
                    VENDOR, f"{record.id} belongs to project {record.project_id}, not {command.project_id}"
                )
        links = await self._links(
            r.billing_event_item_id for r in _all(splits, expenses, milestones) if r.billing_event_item_id
        )
        for record in _all(splits, expenses, milestones):
            item = links.get(record.billing_event_item_id or "")
            if item is None or item.billing_event_id == own_event:
                continue
            if item.event is not None and item.event.status == STATUS_CANCELLED:
                continue
            raise VendorRejected(
                VENDOR,
                f"{record.id} is already on invoice {item.billing_event_id}",
                vendor_code="ALREADY_INVOICED",
            )
        return splits, expenses, milestones

    async def _write_invoice(
        self,
        event_id: str,
        command: PsaInvoiceCreate,
        splits: Sequence[CertiniaTimecardSplit],
        expenses: Sequence[CertiniaExpense],
        milestones: Sequence[CertiniaMilestone],
    ) -> None:
        """The event's items and each source's link to its item, made until all are there: an answer lost
        (or a call refused because its first attempt already made an item, see ``_write_items``) is settled
        by reading the event's items again and writing only what is missing."""
        for _ in range(_ITEM_WRITE_ROUNDS):
            existing = {
                (item.key or "").casefold(): item.id for item in (await self._items_of([event_id]))[event_id]
            }
            try:
                await self._write_items(event_id, command, splits, expenses, milestones, existing)
                return
            except (VendorTimeout, VendorUnavailable, VendorBadResponse) as exc:
                _log().info(
                    "certinia_invoice_items_unconfirmed",
                    vendor=VENDOR,
                    invoice_id=event_id,
                    error=exc.message,
                )
            except VendorRejected as exc:
                if exc.vendor_code != _NOT_UPDATEABLE:
                    raise
        raise VendorUnavailable(
            VENDOR, "the invoice's items could not be confirmed; try again", retry_after=1.0
        )

    async def _write_items(
        self,
        event_id: str,
        command: PsaInvoiceCreate,
        splits: Sequence[CertiniaTimecardSplit],
        expenses: Sequence[CertiniaExpense],
        milestones: Sequence[CertiniaMilestone],
        existing: Mapping[str, str],
    ) -> None:
        """Per source without an item: the item's upsert and the source's link (``@{ref.id}``) in the same
        composite call, so a source is never linked to a missing item; per source whose item exists, the
        link alone. An item is only ever created here: its master-detail ``pse__Billing_Event__c`` cannot
        be written on an update (not reparentable: Salesforce answers INVALID_FIELD_FOR_INSERT_UPDATE), so
        a composite repeated after a lost answer is refused whole (allOrNone) and the caller looks again."""
        groups: list[list[_Sub]] = []
        by_id = {r.id: r for r in _all(splits, expenses, milestones)}
        date = command.invoice_date.isoformat()

        def add(source_id: str, sobject: str, item: dict[str, Any]) -> None:
            n = len(groups)
            key = child_key(event_id, source_id)
            made = existing.get(key.casefold())
            if made is not None:
                link_only = {"pse__Billing_Event_Item__c": made, "pse__Billed__c": True}
                groups.append([_Sub("PATCH", f"sobjects/{sobject}/{source_id}", link_only, f"l{n}")])
                return
            body = {
                "pse__Billing_Event__c": event_id,
                "pse__Project__c": command.project_id,
                "pse__Object_Id__c": source_id,
                **item,
            }
            link = {"pse__Billing_Event_Item__c": f"@{{i{n}.id}}", "pse__Billed__c": True}
            groups.append(
                [
                    _Sub("PATCH", _upsert_path(BILLING_EVENT_ITEM, key), body, f"i{n}"),
                    _Sub("PATCH", f"sobjects/{sobject}/{source_id}", link, f"l{n}"),
                ]
            )

        for source_id in dict.fromkeys(command.time_entry_ids):
            split = by_id[source_id]
            assert isinstance(split, CertiniaTimecardSplit)
            amount = split.billable_amount
            if amount is None and split.bill_rate is not None and split.hours is not None:
                amount = (split.hours * split.bill_rate).quantize(Decimal("0.01"))
            add(source_id, TIMECARD_SPLIT, {
                "pse__Category__c": CATEGORY_TIME,
                "pse__Timecard_Split__c": source_id,
                "pse__Quantity__c": split.hours or Decimal(0),
                "pse__Unit_Price__c": split.bill_rate,
                "pse__Amount__c": amount or Decimal(0),
                "pse__Date__c": split.start_date or date,
            })  # fmt: skip
        for source_id in dict.fromkeys(command.expense_ids):
            expense = by_id[source_id]
            assert isinstance(expense, CertiniaExpense)
            add(source_id, EXPENSE, {
                "pse__Category__c": CATEGORY_EXPENSE,
                "pse__Expense__c": source_id,
                "pse__Quantity__c": Decimal(1),
                "pse__Amount__c": expense_billable_amount(expense),
                "pse__Date__c": expense.date or date,
            })  # fmt: skip
        for source_id in dict.fromkeys(command.milestone_ids):
            milestone = by_id[source_id]
            assert isinstance(milestone, CertiniaMilestone)
            add(source_id, MILESTONE, {
                "pse__Category__c": CATEGORY_MILESTONE,
                "pse__Milestone__c": source_id,
                "pse__Quantity__c": Decimal(1),
                "pse__Amount__c": milestone.amount or Decimal(0),
                "pse__Date__c": milestone.actual_date or milestone.target_date or date,
            })  # fmt: skip
        for number, fee in enumerate(command.fee_items, start=1):
            fee_body = {
                "pse__Billing_Event__c": event_id,
                "pse__Project__c": command.project_id,
                "pse__Category__c": CATEGORY_FEE,
                "pse__Quantity__c": Decimal(1),
                "pse__Amount__c": fee.amount,
                "pse__Date__c": date,
                "pse__Description__c": fee.description[:255],
            }
            key = child_key(event_id, f"fee:{number}")
            if key.casefold() in existing:
                continue
            groups.append([_Sub("PATCH", _upsert_path(BILLING_EVENT_ITEM, key), fee_body, f"f{number}")])
        # An item and its source's link travel in one call: calls are split between groups only.
        chunk: list[_Sub] = []
        for group in groups:
            if len(chunk) + len(group) > _COMPOSITE_MAX:
                await self._composite(chunk, idempotent=False)
                chunk = []
            chunk += group
        if chunk:
            await self._composite(chunk, idempotent=False)

    async def _settle_race(self, event_id: str, command: PsaInvoiceCreate) -> None:
        """After the write: a source linked to another invoice's item meanwhile means another invoice took
        it between our look and our write. This invoice then removes itself and is refused."""
        command_ids = _wanted_sources(command)
        if not command_ids:
            return
        splits, expenses, milestones = await self._sources(
            command.time_entry_ids, command.expense_ids, command.milestone_ids
        )
        own = {i.id for i in (await self._items_of([event_id]))[event_id]}
        lost = [r.id for r in _all(splits, expenses, milestones) if r.billing_event_item_id not in own]
        if not lost:
            return
        _log().warning("certinia_invoice_race_lost", vendor=VENDOR, invoice_id=event_id, item=lost[0])
        await self._unlink(event_id, _all(splits, expenses, milestones), own)
        await self._http.send("DELETE", f"{self._api}/sobjects/{BILLING_EVENT}/{event_id}", accept=(404,))
        raise VendorRejected(
            VENDOR, f"{lost[0]} is already on another invoice", vendor_code="ALREADY_INVOICED"
        )

    async def _unlink(self, event_id: str, sources: Iterable[Any], own_items: set[str]) -> None:
        subs = [
            _Sub(
                "PATCH",
                f"sobjects/{_SOURCE_OBJECT[type(record)]}/{record.id}",
                {"pse__Billing_Event_Item__c": None, "pse__Billed__c": False},
                f"u{n}",
            )
            for n, record in enumerate(sources)
            if record.billing_event_item_id in own_items
        ]
        if subs:
            await self._composite(subs)

    async def finalize_invoice(
        self, invoice_id: str, *, erp_invoice_id: str, erp_invoice_number: str | None
    ) -> PsaInvoice:
        event = await self._event(invoice_id)
        status = invoice_status(event)
        if status is PsaInvoiceStatus.CANCELLED:
            raise VendorRejected(VENDOR, f"invoice {invoice_id} is cancelled and cannot be issued")
        if event.erp_invoice_id and erp_invoice_id and event.erp_invoice_id != erp_invoice_id:
            raise VendorRejected(
                VENDOR, f"invoice {invoice_id} already stands for ERP invoice {event.erp_invoice_id}"
            )
        if event.status != STATUS_ISSUED or (erp_invoice_id and not event.erp_invoice_id):
            # Certinia's ERP integrations mark the event invoiced with a plain record update of these
            # fields (VENDORS.md "Certinia PSA"); absolute values, so a repeat changes nothing.
            body: dict[str, Any] = {
                "pse__Is_Released__c": True,
                "pse__Invoiced__c": True,
                "pse__Invoice_Date__c": event.date or dt.datetime.now(dt.UTC).date().isoformat(),
                "Stratum_Status__c": STATUS_ISSUED,
            }
            if erp_invoice_id:
                body["Stratum_ERP_Invoice_Id__c"] = erp_invoice_id
                body["pse__Invoice_Number__c"] = erp_invoice_number or erp_invoice_id
            await self._update(BILLING_EVENT, event.id, body)
            _log().info("certinia_invoice_issued", vendor=VENDOR, invoice_id=event.id)
        return await self.get_invoice(event.id)

    async def cancel_invoice(self, invoice_id: str) -> PsaInvoice:
        event = await self._event(invoice_id)
        items = (await self._items_of([event.id]))[event.id]
        status = invoice_status(event, items)
        if status is PsaInvoiceStatus.PAID:
            raise VendorRejected(VENDOR, f"invoice {invoice_id} is paid; it cannot be cancelled")
        if status is not PsaInvoiceStatus.CANCELLED:
            await self._update(
                BILLING_EVENT,
                event.id,
                {
                    "Stratum_Status__c": STATUS_CANCELLED,
                    "pse__Is_Released__c": False,
                    "pse__Invoiced__c": False,
                },
            )
            _log().info("certinia_invoice_cancelled", vendor=VENDOR, invoice_id=event.id)
        # Then the sources still linked to its items are billable again (a retry finishes this).
        own = {i.id for i in items}
        splits, expenses, milestones = await self._sources(
            [i.timecard_split_id for i in items if i.timecard_split_id],
            [i.expense_id for i in items if i.expense_id],
            [i.milestone_id for i in items if i.milestone_id],
        )
        await self._unlink(event.id, _all(splits, expenses, milestones), own)
        return await self.get_invoice(event.id)

    async def record_payment(self, invoice_id: str, payment: PsaPaymentRecord) -> PsaInvoice:
        """Adds the payment to ``Stratum_Paid_Amount__c`` once per ``erp_payment_id`` (see the module
        docstring: a conditional write, read and decided again on a 412)."""
        for _ in range(_PAYMENT_WRITE_ATTEMPTS):
            event = await self._event(invoice_id)
            if invoice_status(event) is PsaInvoiceStatus.CANCELLED:
                raise VendorRejected(VENDOR, f"invoice {invoice_id} is cancelled")
            if (event.currency or "").upper() != payment.currency:
                raise VendorRejected(
                    VENDOR, f"invoice {invoice_id} is in {event.currency}, not {payment.currency}"
                )
            recorded = payment_ids(event)
            if payment.erp_payment_id in recorded:
                return await self._invoice(event)
            body = {
                "Stratum_Paid_Amount__c": (event.paid_amount or Decimal(0)) + payment.amount,
                "Stratum_Payment_Ids__c": "\n".join([*recorded, payment.erp_payment_id]),
            }
            headers = dict(_JSON)
            read_at = parse_salesforce_datetime(event.last_modified_date)
            if read_at is not None:
                headers["If-Unmodified-Since"] = format_http_date(read_at, usegmt=True)
            try:
                await self._http.send(
                    "PATCH",
                    f"{self._api}/sobjects/{BILLING_EVENT}/{event.id}",
                    headers=headers,
                    content=_encoder.encode(body),
                    idempotent=True,
                )
            except VendorRejected as exc:
                if exc.vendor_code != PRECONDITION_FAILED:
                    raise
                continue
            _log().info("certinia_payment_recorded", vendor=VENDOR, invoice_id=event.id)
            return await self.get_invoice(event.id)
        raise VendorUnavailable(
            VENDOR, "the billing event kept changing while it was written; try again", retry_after=1.0
        )


# The fields the org adds to the package's objects for Stratum (README "Configuration", STRATUM_CERTINIA__).
_ORG_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (PROJECT, (KEY_FIELD,)),
    (MILESTONE, (KEY_FIELD,)),
    (RESOURCE_REQUEST, (KEY_FIELD,)),
    (
        BILLING_EVENT,
        (
            KEY_FIELD,
            "Stratum_Status__c",
            "Stratum_ERP_Invoice_Id__c",
            "Stratum_Paid_Amount__c",
            "Stratum_Payment_Ids__c",
        ),
    ),
    (BILLING_EVENT_ITEM, (KEY_FIELD,)),
    # Where time's role comes from (the assignment's, else the resource's): the package's own fields, which
    # the integration user must be able to read, or time-and-materials billing finds no rate.
    (
        TIMECARD_SPLIT,
        (
            "pse__Timecard_Header__r.pse__Assignment__r.pse__Role__c",
            "pse__Resource__r.pse__Resource_Role__c",
        ),
    ),
)

_SOURCE_OBJECT: Mapping[type[Any], str] = {
    CertiniaTimecardSplit: TIMECARD_SPLIT,
    CertiniaExpense: EXPENSE,
    CertiniaMilestone: MILESTONE,
}


_Source = CertiniaTimecardSplit | CertiniaExpense | CertiniaMilestone


def _all(
    splits: Sequence[CertiniaTimecardSplit],
    expenses: Sequence[CertiniaExpense],
    milestones: Sequence[CertiniaMilestone],
) -> list[_Source]:
    return [*splits, *expenses, *milestones]


def _upsert_path(sobject: str, key: str) -> str:
    return f"sobjects/{sobject}/{KEY_FIELD}/{quote(key, safe='')}"


def _wanted_sources(command: PsaInvoiceCreate) -> set[str]:
    return {*command.time_entry_ids, *command.expense_ids, *command.milestone_ids}


def _names(value: str, key_prefix: str) -> bool:
    """True when ``value`` is a record id of the object whose key prefix is ``key_prefix`` (``001``
    Account, ``006`` Opportunity: VENDORS.md, Salesforce "Ids")."""
    return value.startswith(key_prefix) and can_name_a_record(value)


def _rid(record: Any) -> str:
    return str(record.id)


def _composite_error(body: Any) -> tuple[str, str]:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return str(first.get("errorCode") or first.get("statusCode") or ""), str(first.get("message", ""))[
            :300
        ]
    return "", ""
