"""The Kantata OX adapter for the PSA port: workspaces, milestones, staffing, time and expenses.

Kantata's wire format ends here: callers get canonical ``Project``/``TimeEntry``/... objects and the errors
of ``system_apis.errors``. Outbound behaviour (pool, timeouts, retries of safe calls, breaker) is the
shared ``VendorHttpClient``'s; this module adds what is Kantata's own:

- a static bearer token (an OAuth token or an account administrator's token); a 401 means it is refused;
- the id-keyed envelope, read in ``results`` order (``kantata_mapping``);
- page-number paging (``page``/``per_page``, at most 200) behind an opaque cursor that also pins the query
  it belongs to;
- the error body ``{"errors": [{"type", "message", "field"}]}`` and a 429 that carries no Retry-After;
- **no idempotency at all**: a repeated POST makes a second record. Creates are never retried by the HTTP
  client, and every create looks before it writes, by the business key we store with the record:

  * a workspace gets an external reference (``service_name`` "Stratum", ``service_model_ref`` the
    ``external_key``) *in the same POST* (``external_references_attributes``), so no workspace can exist
    without the key that finds it again; ``GET /external_references`` finds it before creating. Failing
    that, a workspace another integration linked to the deal (Kantata's Salesforce integration:
    ``service_model`` "Opportunity", ``service_model_ref`` the opportunity id, which is a deal's project
    key) is adopted: it gets Stratum's references and is returned, never duplicated;
  * its milestones are ``story_type`` "milestone" stories, each with its own reference
    ``{external_key}:milestone:{n}``; a re-run creates only those still missing;
  * a staffing demand is a workspace resource (its role named by id, or by name through ``/roles``).
    Kantata lists WorkspaceResource among the subjects of external references, but the sandbox takes
    none on one, and whether Kantata takes them nested in the create is unverified; so the demand's key
    travels in the resource's title (``"Senior Consultant [Stratum opp-1:staff:1]"``), written in the
    same POST, and the look-before-create reads the project's resources;
  * an invoice (billing) carries Stratum's reference to its billing key (``service_model`` "Invoice"),
    nested in the ``POST /invoices``; ``find_invoice`` and the look-before-create read it back through
    ``GET /external_references?subject_type=Invoice``. An item already invoiced is refused by Kantata (422
    naming it): ``VendorRejected`` with Kantata's message, nothing recorded;
  * when a create's answer is lost (timeout, dropped connection, a 5xx, a body that does not parse), the
    record may or may not exist: the adapter looks once more, and returns the record if it is there. If
    it cannot tell, it raises, and the next call with the same key finds the record instead of making a
    second one.

Billing
-------

``list_billable_items`` reads time entries, then expenses, then completed billable milestone stories of a
project (Kantata's filters ``approved``, ``billable``/``is_billable``, ``is_invoiced=false`` and the date
range, re-checked here), each in id order, behind one cursor that names the kind and Kantata's page. A page
holds one kind only, so it may be shorter than ``limit``. Page-number paging shifts when items are invoiced
between pages: read the whole list, then invoice (as the billing run does).

Kantata's ``approved`` filter only ever selects approved records (on time entries "the actual value you
provide is ignored": developer.kantata.com/kantata/specification/time-entries/get-time-entries), so
``approved=false`` is never sent: the adapter drops approved records itself. Expenses are filtered by date
with ``date_expensed_between`` (.../expenses/get-expenses).

Milestones: an invoice's ``billing_milestone_ids`` name *billing milestones* (``/billing_milestones``, a
project's billing schedule, each with ``amount_in_cents``, ``story_id``, ``invoice_id``:
developer.kantata.com/tag/Billing-Milestones), not milestone stories, and a story is never marked invoiced.
So a billable milestone stays the project's milestone story (its id is the milestone's id everywhere in
Stratum); ``create_invoice`` bills it through the story's billing milestone not yet on an invoice (one is
made, with the story's amount and Stratum's key ``{billing key}:milestone:{story}``, when the story has
none; found again by story after a lost answer), and a story whose billing milestone is on an invoice is
invoiced (refused by name on a second invoice). An invoice reads back its milestones through the
side-loaded billing milestones' ``story_id``.

Approval time: Kantata records it on the timesheet submission's approval resolution (``PUT
/timesheet_submissions/{id}/approve``, ``POST /timesheet_approvals`` answer ``resolutions`` of ``type``
"approval"); a time entry only names its submissions (``active_submission_id``, ``recent_submission_id``:
mavenlink_gem's specification), and no documented field gives the approval instant on the entry or the
submission (the gem lists ``current_resolution_created_at_date``, undocumented in format). So
``BillableItem.approved_at`` stays unset and the billing run's approval-to-invoice metric uses the item's
``updated_at`` (the sandbox moves it on approval; whether Kantata does is not documented either).

Payments: Kantata records a payment against an invoice only for the whole invoice (``POST
/external_payments`` with ``invoice_id`` sets its amount to the invoice's and marks it "accepted payment";
only single-project, non-draft, pending invoices); a payment with an amount of its own is a project-level
payment. Decision: a partial ERP payment is **not** booked as money in Kantata, because the final
invoice-level payment always carries the whole invoice amount and project-level part payments would then be
counted twice. Every ERP payment becomes a ``Payment`` reference on the invoice (``service_model_ref`` the
ERP payment id, ``external_status`` "partially paid"/"paid in full", ``external_message`` amount, date and
the balance left): delivery sees it on the invoice, and it is the ledger that tells each payment once (it is
looked for before it is written, and looked for again after a lost answer). The payment that leaves a zero
balance also records the one invoice-level external payment; Kantata refuses a second (the invoice is no
longer pending), and a lost answer is settled by the invoice's status. So each ERP payment reaches Kantata
exactly once, and the money Kantata holds for the invoice is its total, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import msgspec
import structlog

from apis.at_once import at_once
from apis.config import KantataSettings
from contracts.models import (
    BillableItemKind,
    BillableItemPage,
    ExpensePage,
    MilestoneInput,
    MilestoneStatus,
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
from system_apis.cursors import fingerprint, unwrap_cursor, wrap_cursor
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.psa.kantata_mapping import (
    ERP_INVOICE_MODEL,
    INVOICE_MODEL,
    OPPORTUNITY_MODEL,
    PAYMENT_MODEL,
    PROJECT_MODEL,
    SERVICE_NAME,
    KantataBillingMilestone,
    KantataEnvelope,
    KantataExternalReference,
    KantataInvoice,
    KantataStory,
    KantataWorkspace,
    KantataWorkspaceResource,
    billable_expense,
    billable_milestone,
    billable_time,
    billing_milestone_body,
    decode_envelope,
    decode_errors,
    erp_invoice_reference,
    expense_from_record,
    external_key_of,
    invoice_create_body,
    invoice_from_record,
    invoice_status,
    milestone_date,
    milestone_key,
    milestone_status_from_state,
    milestone_story_body,
    ordered,
    payment_keys,
    payment_reference,
    project_from_workspace,
    split_resource_title,
    staffing_demand_body,
    staffing_demand_from_resource,
    time_entry_from_record,
    workspace_create_body,
    workspace_references,
)
from system_apis.psa.port import MAX_BILLABLE_PAGE, MAX_LISTING_PAGE, MAX_PROJECTS_AT_ONCE, PeriodFilter
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
from system_apis.vendor_links import path_segment

__all__ = [
    "MAX_PER_PAGE",
    "RATE_LIMITED_RETRY_AFTER",
    "InvalidCursor",
    "KantataPsa",
    "PageCursor",
    "decode_cursor",
    "encode_cursor",
    "query_fingerprint",
]

VENDOR = "kantata"
#: Kantata serves at most this many records a page, whatever ``per_page`` asks for.
MAX_PER_PAGE = 200
#: Kantata answers 429 with no Retry-After; its limits are counted over short windows, so half a minute is
#: a fair guess at when calls are welcome again (what our caller's 503 says to wait).
RATE_LIMITED_RETRY_AFTER = 30.0
# Full listings the adapter makes for itself (a project's milestones, its resources) stop here: 10,000
# records is far beyond any real project, and a vendor that never reports the last page must not loop us.
_MAX_PAGES = 50
# Kantata ids are integers on the wire as strings; anything else cannot name a record, so it is answered
# without a call (and never reaches a URL path).
_KANTATA_ID = re.compile(r"^[0-9]{1,19}$")
_JSON_HEADERS = {"Content-Type": "application/json"}
# One-sided date ranges: Kantata only takes "from:to", so the open end is a date no business record has.
_EARLIEST = dt.date(1900, 1, 1)
_LATEST = dt.date(2999, 12, 31)

_T = TypeVar("_T")


def _log() -> Any:
    # A fresh lazy proxy per use: once logging is configured with caching on, a module-level proxy would
    # pin the processors it first saw, and structlog.testing.capture_logs could no longer see its lines.
    return structlog.get_logger(__name__)


# --- cursors -------------------------------------------------------------------------------------------


class PageCursor(msgspec.Struct, kw_only=True, frozen=True):
    """Where a listing continues: the page number at our page size, for one query (up to Kantata's 200 it
    is Kantata's page number; a larger page is read from Kantata's pages of 200: ``_listing``)."""

    page: int
    per_page: int
    fingerprint: str


_CURSOR_TEXT = re.compile(r"^k1\.([1-9][0-9]{0,6})\.([1-9][0-9]{0,3})\.([0-9a-f]{16})$")


def query_fingerprint(resource: str, filters: Mapping[str, str]) -> str:
    """A short digest of a listing's resource and filters: a cursor only continues the query it came from
    (page 3 of one project's time is not page 3 of another's)."""
    return fingerprint(resource + "?" + "&".join(f"{name}={filters[name]}" for name in sorted(filters)))


def encode_cursor(cursor: PageCursor) -> str:
    """The opaque cursor text (base64url, unpadded). Not signed: it only selects a page of a query the
    caller may run anyway."""
    return wrap_cursor(f"k1.{cursor.page}.{cursor.per_page}.{cursor.fingerprint}")


def decode_cursor(cursor: str) -> PageCursor:
    """The position a cursor stands for; raises ``InvalidCursor`` for anything we did not produce."""
    match = _CURSOR_TEXT.fullmatch(unwrap_cursor(cursor, max_length=96))
    if match is None:
        raise InvalidCursor("cursor is not one this API produced")
    page, per_page = int(match.group(1)), int(match.group(2))
    if page < 2 or per_page > MAX_LISTING_PAGE:
        raise InvalidCursor("cursor is not one this API produced")
    return PageCursor(page=page, per_page=per_page, fingerprint=match.group(3))


# The kinds of a billable-item listing, in its order (``_BillingCursor.phase``).
_KIND_PHASE = {BillableItemKind.TIME: 0, BillableItemKind.EXPENSE: 1, BillableItemKind.MILESTONE: 2}


class _BillingCursor(msgspec.Struct, kw_only=True, frozen=True):
    """Where a billable-item listing continues: the kind (0 time, 1 expenses, 2 milestones) and Kantata's
    page number at our page size, for one project and date."""

    phase: int
    page: int
    per_page: int
    fingerprint: str


_BILLING_CURSOR_TEXT = re.compile(r"^b1\.([0-2])\.([1-9][0-9]{0,6})\.([1-9][0-9]{0,3})\.([0-9a-f]{16})$")


def _encode_billing_cursor(cursor: _BillingCursor) -> str:
    return wrap_cursor(f"b1.{cursor.phase}.{cursor.page}.{cursor.per_page}.{cursor.fingerprint}")


def _decode_billing_cursor(cursor: str) -> _BillingCursor:
    match = _BILLING_CURSOR_TEXT.fullmatch(unwrap_cursor(cursor, max_length=96))
    if match is None or int(match.group(3)) > MAX_BILLABLE_PAGE:
        raise InvalidCursor("cursor is not one this API produced")
    return _BillingCursor(
        phase=int(match.group(1)),
        page=int(match.group(2)),
        per_page=int(match.group(3)),
        fingerprint=match.group(4),
    )


def _position(
    cursor: str | None, limit: int, fingerprint: str, *, most: int = MAX_PER_PAGE
) -> tuple[int, int]:
    """``(page, per_page)`` at our page size, from the caller's cursor and limit (at most ``most``)."""
    if not 1 <= limit <= most:
        raise ValueError(f"limit must be between 1 and {most}")
    if cursor is None:
        return 1, limit
    position = decode_cursor(cursor)
    if position.fingerprint != fingerprint:
        raise InvalidCursor("cursor belongs to another query")
    if position.per_page == limit:
        return position.page, limit
    # Another page size: continue where the previous page ended if that is a page boundary at the new
    # size; anything else would skip or repeat records.
    offset = (position.page - 1) * position.per_page
    if offset % limit:
        raise InvalidCursor(f"cursor continues pages of {position.per_page}; ask with that limit")
    return offset // limit + 1, limit


# --- auth ----------------------------------------------------------------------------------------------


class _BearerAuth(httpx.Auth):
    """Kantata's static bearer token. No refresh: a refused token stays refused, which ``_error_for_response``
    reports as credentials rejected."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


# --- the adapter ---------------------------------------------------------------------------------------


class _Refused(VendorUnavailable):
    """Kantata turned the call away before acting on it (401, 429): a create it refused did not happen,
    so there is nothing to look for afterwards. Callers see a plain ``VendorUnavailable``."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Milestones:
    """Milestone stories by workspace id (each list in Kantata's order) and their side-loaded references."""

    by_workspace: dict[str, list[KantataStory]]
    references: dict[str, KantataExternalReference]

    def of(self, workspace_id: str) -> list[KantataStory]:
        return self.by_workspace.get(workspace_id, [])


class KantataPsa:
    """``PsaPort`` over the Kantata OX API v1.

    ``transport`` is the test seam (e.g. ``httpx.ASGITransport`` to the sandbox). ``retry``, ``breaker``
    and ``sleep`` tune the shared outbound behaviour.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: KantataSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.base_url is None:
            raise ValueError("KantataPsa needs a base_url (the bootstrap substitutes the sandbox's)")
        config = vendor_http_config(settings, settings.base_url.rstrip("/"), retry=retry, breaker=breaker)
        self._http = VendorHttpClient(
            VENDOR,
            config,
            auth=_BearerAuth(settings.token),
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self._error_for_response,
            sleep=sleep,
        )
        # Role name (casefolded) -> Kantata role id; roles change rarely, and a miss refreshes it.
        self._role_ids: dict[str, str] = {}
        self._role_names_by_id: dict[str, str] = {}  # and back, for time entries that name a role by id

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    async def close(self) -> None:
        await self._http.aclose()

    # --- projects --------------------------------------------------------------------------------------

    async def check(self) -> list[Check]:
        """The token works: Kantata answers ``GET users/me`` with the token's user."""
        response = await self._http.send("GET", "users/me", accept=(401, 403))
        fix = None
        if response.status_code in (401, 403):
            fix = f"Kantata refused the token (HTTP {response.status_code}): set STRATUM_KANTATA__TOKEN"
        return [Check(vendor=VENDOR, what="token (GET users/me)", fix=fix)]

    async def get_project(self, project_id: str) -> Project:
        envelope = await self._show_workspace(project_id)
        workspace = _only_workspace(envelope)
        milestones = await self._milestones([_str(workspace.id)])
        return _project(workspace, envelope.external_references, milestones.of(_str(workspace.id)))

    async def find_project(self, external_key: str) -> Project | None:
        envelope = await self._find_workspace(external_key)
        if envelope is None:
            return None
        workspace = _only_workspace(envelope)
        milestones = await self._milestones([_str(workspace.id)])
        return _project(workspace, envelope.external_references, milestones.of(_str(workspace.id)))

    async def list_projects(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage:
        # Archived workspaces are closed projects: a change feed must see a project close.
        filters = {"include_archived": "true"}
        if modified_since is not None:
            filters["updated_after"] = _updated_after(modified_since)
        fingerprint = query_fingerprint("workspaces", filters)
        page, per_page = _position(cursor, limit, fingerprint)
        params = {**filters, "include": "external_references", "order": "id:asc"}
        envelope = await self._page("workspaces.json", params, page, per_page)
        with _unusable("workspace list"):
            workspaces = ordered(envelope, "workspaces", envelope.workspaces)
        milestones = await self._milestones([_str(workspace.id) for workspace in workspaces])
        items, skipped = map_page(
            VENDOR,
            "workspace",
            workspaces,
            lambda workspace: project_from_workspace(
                workspace,
                references=envelope.external_references,
                milestones=milestones.of(_str(workspace.id)),
            ),
            record_id=_record_id,
        )
        return ProjectPage(
            items=items,
            next_cursor=_next_cursor(_has_more(envelope, page, per_page), page, per_page, fingerprint),
            skipped=skipped,
        )

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        existing = await self._find_workspace(command.external_key)
        if existing is not None:
            workspace = _only_workspace(existing)
            references = dict(existing.external_references)
            key = external_key_of(workspace.external_reference_ids, references, service_model=PROJECT_MODEL)
            if key is None:
                # Another integration's workspace for this deal: adopt it under our key, so it is found
                # (and names its customer) like one Stratum made.
                adopted = await self._adopt_workspace(workspace, command)
                references.update(adopted)
                workspace = msgspec.structs.replace(
                    workspace, external_reference_ids=[*workspace.external_reference_ids, *adopted]
                )
                _log().info("kantata_project_adopted", vendor=VENDOR, project_id=_str(workspace.id))
            stories = await self._ensure_milestones(workspace, command)
            _log().info("kantata_project_found", vendor=VENDOR, project_id=_str(workspace.id))
            return _project(workspace, references, stories), False
        try:
            body = msgspec.json.encode(workspace_create_body(command))
        except ValueError as exc:
            raise VendorRejected(VENDOR, f"the project cannot be held in Kantata: {exc}") from None
        try:
            response = await self._http.send("POST", "workspaces.json", content=body, headers=_JSON_HEADERS)
            workspace = _only_workspace(_decode(response.content, "created workspace"))
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:
            found = await self._after_lost_answer(
                error, "workspace", lambda: self._find_workspace(command.external_key)
            )
            workspace = _only_workspace(found)
        _log().info("kantata_project_created", vendor=VENDOR, project_id=_str(workspace.id))
        stories = await self._ensure_milestones(workspace, command)
        # Kantata answers a create without side-loads; the references are ours, written in the same call.
        project = _project(workspace, {}, stories)
        return (
            msgspec.structs.replace(
                project, external_key=command.external_key, customer_id=command.customer_id
            ),
            True,
        )

    async def close_project(self, project_id: str) -> Project:
        envelope = await self._show_workspace(project_id)
        workspace = _only_workspace(envelope)
        if not workspace.archived:
            # Setting a flag to a value is naturally idempotent, so this write may be retried.
            response = await self._http.send(
                "PUT",
                f"workspaces/{_segment(workspace.id)}.json",
                content=msgspec.json.encode({"workspace": {"archived": True}}),
                headers=_JSON_HEADERS,
                idempotent=True,
            )
            archived = _only_workspace(_decode(response.content, "updated workspace"))
            # The update's answer has no side-loads: keep the references we read a moment ago.
            workspace = msgspec.structs.replace(
                archived, external_reference_ids=workspace.external_reference_ids
            )
            _log().info("kantata_project_closed", vendor=VENDOR, project_id=_str(workspace.id))
        milestones = await self._milestones([_str(workspace.id)])
        return _project(workspace, envelope.external_references, milestones.of(_str(workspace.id)))

    # --- staffing --------------------------------------------------------------------------------------

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]:
        resources = await self._workspace_resources(project_id)
        if not resources:
            # Kantata lists nothing for a workspace that does not exist; the port says NotFound.
            await self._show_workspace(project_id)
        # The port's answer is a bare list (no page envelope to name them in): skipped ones are logged.
        demands, _ = map_page(
            VENDOR, "workspace resource", resources, staffing_demand_from_resource, record_id=_record_id
        )
        return demands

    async def list_staffing_demands_of(self, project_ids: Sequence[str]) -> list[StaffingDemand]:
        # One listing for every project: Kantata's list filters take a comma-separated list of ids
        # (``workspace_id=1,2,3``), as this adapter's stories, time entries and expenses listings use
        # (developer.kantata.com, "Fetching a list of Workspace Resources"); what comes back is checked below.
        wanted = [p for p in dict.fromkeys(project_ids) if _KANTATA_ID.fullmatch(p)]
        if not wanted:
            return []
        resources: list[KantataWorkspaceResource] = []
        params = {"workspace_id": ",".join(wanted), "order": "id:asc"}
        for envelope in await self._all_pages("workspace_resources.json", params):
            with _unusable("workspace resource list"):
                resources.extend(ordered(envelope, "workspace_resources", envelope.workspace_resources))
        # Checked again here: a filter Kantata ignored would cost pages, never other projects' demand.
        mine = [r for r in resources if _str(r.workspace_id) in set(wanted)]
        demands, _ = map_page(
            VENDOR, "workspace resource", mine, staffing_demand_from_resource, record_id=_record_id
        )
        return demands

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        resources = await self._workspace_resources(project_id)
        existing = _resource_with_key(resources, command.external_key)
        if existing is not None:
            with _unusable("workspace resource"):
                return staffing_demand_from_resource(existing), False
        if not resources:
            await self._show_workspace(project_id)  # NotFound before anything is written
        role_id = await self._role_id(command.role)
        body = msgspec.json.encode(staffing_demand_body(project_id, role_id, command))
        try:
            response = await self._http.send(
                "POST", "workspace_resources.json", content=body, headers=_JSON_HEADERS
            )
            created = _decode(response.content, "created workspace resource")
            resource = _only(created, "workspace_resources", created.workspace_resources)
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:

            async def look() -> KantataWorkspaceResource | None:
                return _resource_with_key(await self._workspace_resources(project_id), command.external_key)

            resource = await self._after_lost_answer(error, "workspace resource", look)
        _log().info("kantata_staffing_demand_created", vendor=VENDOR, project_id=project_id)
        with _unusable("workspace resource"):
            return staffing_demand_from_resource(resource), True

    # --- time and expenses -----------------------------------------------------------------------------

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage:
        filters = _period_filters(query, "date_performed_between")
        fingerprint = query_fingerprint("time_entries", filters or _NOTHING)
        page, per_page = _position(cursor, limit, fingerprint, most=MAX_LISTING_PAGE)
        if filters is None:
            return TimeEntryPage(items=[])
        # Time of archived (closed) workspaces is still time, though Kantata hides it unless asked. Id
        # order keeps page-number paging stable while time is booked: new entries land on the last page.
        params = {**_vendor_filters(filters), "from_archived_workspaces": "true", "order": "id:asc"}
        records, more = await self._listing(
            "time_entries", params, page, per_page, lambda env: env.time_entries, "time entry list"
        )
        if filters.get("approved") == "false":
            records = [record for record in records if record.approved is not True]
        items, skipped = map_page(VENDOR, "time entry", records, time_entry_from_record, record_id=_record_id)
        return TimeEntryPage(
            items=items, next_cursor=_next_cursor(more, page, per_page, fingerprint), skipped=skipped
        )

    async def list_expenses(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> ExpensePage:
        filters = _period_filters(query, "date_expensed_between")
        fingerprint = query_fingerprint("expenses", filters or _NOTHING)
        page, per_page = _position(cursor, limit, fingerprint, most=MAX_LISTING_PAGE)
        if filters is None:
            return ExpensePage(items=[])
        params = {**_vendor_filters(filters), "from_archived_workspaces": "true", "order": "id:asc"}
        records, more = await self._listing(
            "expenses", params, page, per_page, lambda env: env.expenses, "expense list"
        )
        if filters.get("approved") == "false":
            records = [record for record in records if record.approved is not True]
        items, skipped = map_page(VENDOR, "expense", records, expense_from_record, record_id=_record_id)
        if filters.get("approved") == "true":
            # Kantata's filter selected approved ones; its expense may not carry `approved` at all (the
            # approval lives on the expense report submission: mavenlink_gem lists no such attribute).
            items = [msgspec.structs.replace(item, approved=True) for item in items]
        return ExpensePage(
            items=items, next_cursor=_next_cursor(more, page, per_page, fingerprint), skipped=skipped
        )

    # --- billing ---------------------------------------------------------------------------------------

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int, cursor: str | None = None
    ) -> BillableItemPage:
        """Approved, billable, uninvoiced time entries, then expenses, then completed billable milestones,
        each in id order, behind one cursor (``_BillingCursor``): a page holds items of one kind only, so
        it may be shorter than ``limit``; ``next_cursor`` None is the end. Kantata's own filters select
        (``approved``, ``billable``/``is_billable``, ``is_invoiced=false``, the date range); the records
        are checked again here, since a filter Kantata ignored must not put an invoiced item on a second
        invoice."""
        fingerprint = query_fingerprint("billable-items", {"project": project_id, "through": str(through)})
        if cursor is None:
            await self._show_workspace(project_id)  # NotFound for a project Kantata does not have
        return await self._billable_page(
            [project_id], through=through, limit=limit, cursor=cursor, kind=None, fingerprint=fingerprint
        )

    async def list_billable_items_of(
        self,
        project_ids: Sequence[str] | None,
        *,
        through: dt.date,
        limit: int,
        cursor: str | None = None,
        kind: BillableItemKind | None = None,
    ) -> BillableItemPage:
        """``list_billable_items`` for several projects in one listing: Kantata filters its collections by
        many workspaces at once (``workspace_id=1,2,3``, as ``_milestones`` reads a page of projects'
        stories), so a view that asks every project's unbilled work makes one listing's calls, not one
        listing's per project. ``project_ids`` None: every project of the account, the collections read
        with no ``workspace_id`` filter at all (as singer-io/tap-mavenlink reads ``/time_entries.json``
        account-wide, with ``from_archived_workspaces=true``: tap_mavenlink/streams/time_entries.py), with
        the same approved/billable/uninvoiced filters. Time entries, then expenses, then completed billable
        milestones, each kind in id order across the projects; each item names its project. A project
        Kantata does not have has no items (no 404: the listing reads what is there). The same checks as
        for one project."""
        ids = (
            None
            if project_ids is None
            else sorted({p for p in project_ids if _KANTATA_ID.fullmatch(p)}, key=lambda p: (len(p), p))
        )
        key = {
            "projects": "*" if ids is None else ",".join(ids),
            "through": str(through),
            "kind": kind.value if kind else "",
        }
        return await self._billable_page(
            ids,
            through=through,
            limit=limit,
            cursor=cursor,
            kind=kind,
            fingerprint=query_fingerprint("billable-items-of", key),
        )

    async def _billable_page(
        self,
        project_ids: Sequence[str] | None,
        *,
        through: dt.date,
        limit: int,
        cursor: str | None,
        kind: BillableItemKind | None,
        fingerprint: str,
    ) -> BillableItemPage:
        """One page of the billable items of these workspaces (``None``: of the whole account), of one
        ``kind`` or of all three one after another. A page of more than Kantata's 200 records is read from
        the Kantata pages of 200 that hold it, the first, then the others at once (``_listing``): never more
        than ``limit`` records."""
        if not 1 <= limit <= MAX_BILLABLE_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_BILLABLE_PAGE}")
        if cursor is None:
            phase, page = _KIND_PHASE.get(kind, 0) if kind is not None else 0, 1
        else:
            position = _decode_billing_cursor(cursor)
            if position.fingerprint != fingerprint or position.per_page != limit:
                raise InvalidCursor("cursor belongs to another query or page size")
            phase, page = position.phase, position.page
        if project_ids is not None and not project_ids:
            return BillableItemPage(items=[])
        if kind is not None and kind not in _KIND_PHASE:  # a retainer fee is no PSA record
            return BillableItemPage(items=[])
        wanted = None if project_ids is None else set(project_ids)

        def mine(workspace_id: Any) -> bool:
            return wanted is None or _str(workspace_id) in wanted

        scope = {} if project_ids is None else {"workspace_id": ",".join(project_ids)}
        window = f"{_EARLIEST.isoformat()}:{through.isoformat()}"
        common = {**scope, "order": "id:asc", "from_archived_workspaces": "true"}
        if phase == 0:
            params = {**common, "approved": "true", "billable": "true", "is_invoiced": "false"}
            entries, more = await self._listing(
                "time_entries",
                {**params, "date_performed_between": window},
                page,
                limit,
                lambda env: env.time_entries,
                "time entry list",
            )
            wanted_entries = [
                e
                for e in entries
                if mine(e.workspace_id)
                and e.approved
                and e.billable
                and not e.is_invoiced
                and e.date_performed[:10] <= str(through)
            ]
            # The deal's rate card names roles; Kantata's time entry names its role by id.
            names = await self._role_names({_str(e.role_id) for e in wanted_entries if e.role_id is not None})
            items, skipped = map_page(
                VENDOR,
                "time entry",
                wanted_entries,
                lambda entry: billable_time(entry, role_names=names),
                record_id=_record_id,
            )
        elif phase == 1:
            params = {**common, "approved": "true", "is_billable": "true", "is_invoiced": "false"}
            expenses, more = await self._listing(
                "expenses",
                {**params, "date_expensed_between": window},
                page,
                limit,
                lambda env: env.expenses,
                "expense list",
            )
            wanted_expenses = [
                x
                for x in expenses
                if mine(x.workspace_id)
                # Kantata's `approved=true` selected these; an answer without `approved` is not a refusal.
                and x.approved is not False
                and (x.is_billable if x.is_billable is not None else x.billable)
                and not x.is_invoiced
                and x.date[:10] <= str(through)
            ]
            items, skipped = map_page(
                VENDOR, "expense", wanted_expenses, billable_expense, record_id=_record_id
            )
        else:
            params = {
                **scope,
                "story_type": "milestone",
                "billable": "true",
                "state": "completed",
                "order": "id:asc",
            }
            stories_read = self._listing(
                "stories", params, page, limit, lambda env: env.stories, "story list"
            )
            if project_ids is None:
                # The stories say which workspaces' currencies and billing schedules are needed.
                stories, more = await stories_read
                currency, invoiced = await self._milestone_context({_str(s.workspace_id) for s in stories})
            else:
                # The stories, their workspaces' currencies and the billing schedules, read at once.
                (stories, more), (currency, invoiced) = await asyncio.gather(
                    stories_read, self._milestone_context(set(project_ids))
                )
            wanted_stories = [
                s
                for s in stories
                if _str(s.workspace_id) in currency
                and s.story_type == "milestone"
                and s.billable
                and milestone_status_from_state(s.state) is MilestoneStatus.COMPLETED
                and _str(s.id) not in invoiced
                and (milestone_date(s) or through) <= through
            ]
            items, skipped = map_page(
                VENDOR,
                "milestone",
                wanted_stories,
                lambda story: billable_milestone(story, currency=currency[_str(story.workspace_id)]),
                record_id=_record_id,
            )
        next_position: _BillingCursor | None = None
        if more:
            next_position = _BillingCursor(
                phase=phase, page=page + 1, per_page=limit, fingerprint=fingerprint
            )
        elif phase < 2 and kind is None:
            next_position = _BillingCursor(phase=phase + 1, page=1, per_page=limit, fingerprint=fingerprint)
        return BillableItemPage(
            items=items,
            next_cursor=None if next_position is None else _encode_billing_cursor(next_position),
            skipped=skipped,
        )

    async def _pages(
        self, path: str, params: Mapping[str, str], page: int, per_page: int, span: int
    ) -> list[KantataEnvelope]:
        """Kantata's pages ``page`` to ``page + span - 1`` of a listing (fewer where it ends): the first, then
        the others it says are there, at once."""
        first = await self._page(path, params, page, per_page)
        last = page
        while last < page + span - 1 and _has_more(first, last, per_page):
            last += 1
        rest = await asyncio.gather(
            *(self._page(path, params, p, per_page) for p in range(page + 1, last + 1))
        )
        return [first, *rest]

    async def _listing(
        self,
        key: str,
        params: Mapping[str, str],
        page: int,
        limit: int,
        table: Callable[[KantataEnvelope], Mapping[str, _T]],
        what: str,
    ) -> tuple[list[_T], bool]:
        """Our page ``page`` of ``limit`` records of the ``key`` listing (``/{key}.json``, its records in
        ``table`` of each answer) in a stable order, and whether more follow. Up to Kantata's 200 it is
        Kantata's page ``page`` at that size (one call). A larger page is records ``(page - 1) * limit``
        onwards, read from the Kantata pages of 200 that hold them as ``_pages`` reads them: the first,
        then the others its ``meta.count`` says are there, at once (Kantata API v1 ``page``/``per_page``,
        at most 200, and the envelope's ``meta.count``: VENDORS.md; singer-io/tap-mavenlink reads the same
        ``meta``). A page of 1,000 is two rounds of calls, not five one after another."""
        path = f"{key}.json"
        if limit <= MAX_PER_PAGE:
            envelopes, ours = [await self._page(path, params, page, limit)], slice(None)
        else:
            start = (page - 1) * limit
            first = start // MAX_PER_PAGE + 1
            last = -(-(start + limit) // MAX_PER_PAGE)
            envelopes = await self._pages(path, params, first, MAX_PER_PAGE, last - first + 1)
            skip = start - (first - 1) * MAX_PER_PAGE
            ours = slice(skip, skip + limit)
        with _unusable(what):
            records = [record for envelope in envelopes for record in ordered(envelope, key, table(envelope))]
        return records[ours], _has_more(envelopes[-1], page, limit)

    async def _milestone_context(self, workspace_ids: set[str]) -> tuple[dict[str, str | None], set[str]]:
        """The currency of each of these workspaces Kantata has (archived ones too), and the milestone
        stories their billing schedules have put on an invoice: read ``MAX_PROJECTS_AT_ONCE`` workspaces a
        call, all at once."""
        ids = sorted((w for w in workspace_ids if _KANTATA_ID.fullmatch(w)), key=lambda w: (len(w), w))
        chunks = [
            ",".join(ids[i : i + MAX_PROJECTS_AT_ONCE]) for i in range(0, len(ids), MAX_PROJECTS_AT_ONCE)
        ]
        listed, schedules = await asyncio.gather(
            asyncio.gather(
                *(
                    self._page(
                        "workspaces.json", {"only": chunk, "include_archived": "true"}, 1, MAX_PER_PAGE
                    )
                    for chunk in chunks
                )
            ),
            asyncio.gather(*(self._billing_milestones(chunk) for chunk in chunks)),
        )
        currency: dict[str, str | None] = {}
        with _unusable("workspace list"):
            for envelope in listed:
                currency.update(
                    {_str(w.id): w.currency for w in ordered(envelope, "workspaces", envelope.workspaces)}
                )
        wanted = set(ids)
        invoiced = _invoiced_stories([r for s in schedules for r in s if _str(r.workspace_id) in wanted])
        return currency, invoiced

    async def find_invoice(self, external_key: str) -> PsaInvoice | None:
        """The invoice carrying Stratum's reference to the billing key (the oldest, should there be two),
        whatever its state."""
        references = await self._references_to("Invoice", external_key, service_name=SERVICE_NAME)
        ours = [r for r in references if r.service_model == INVOICE_MODEL]
        for subject_id in _subject_ids(ours):
            try:
                return await self.get_invoice(subject_id)
            except NotFound:
                continue  # a reference left behind by a deleted draft
        return None

    async def get_invoice(self, invoice_id: str) -> PsaInvoice:
        invoice, envelope = await self._show_invoice(invoice_id)
        return _psa_invoice(invoice, envelope)

    async def list_invoices(self, project_id: str) -> list[PsaInvoice]:
        """Every invoice of the project, drafts and cancelled ones included, in id order, read whole (a
        project has one a billing period). Kantata's invoice list is filtered by ``workspace_id`` (as its
        other project-scoped lists are; the sandbox serves it, but the excerpts of Kantata's invoice
        reference we could check do not show it), so the records are checked again here: an ignored
        filter costs pages, never another project's invoices."""
        if not _KANTATA_ID.fullmatch(project_id):
            raise NotFound(VENDOR, "no such workspace")
        params = {
            "workspace_id": project_id,
            "include": "external_references,billing_milestones",
            "order": "id:asc",
        }
        # The workspace (NotFound for a project Kantata does not have, which wins) and the invoices at
        # once: one round, not the invoices after the workspace.
        _, envelopes = await at_once(
            self._show_workspace(project_id), self._all_pages("invoices.json", params)
        )
        found: list[PsaInvoice] = []
        for envelope in envelopes:
            with _unusable("invoice list"):
                invoices = ordered(envelope, "invoices", envelope.invoices)
            mine = [i for i in invoices if project_id in {_str(w) for w in i.workspace_ids}]
            items, _skipped = map_page(
                VENDOR, "invoice", mine, _invoice_mapper(envelope), record_id=_record_id
            )
            found.extend(items)
        return found

    async def create_invoice(self, command: PsaInvoiceCreate) -> tuple[PsaInvoice, bool]:
        existing = await self.find_invoice(command.external_key)
        if existing is not None:
            _log().info("kantata_invoice_found", vendor=VENDOR, invoice_id=existing.id)
            return existing, False
        workspace = _only_workspace(await self._show_workspace(command.project_id))
        if (workspace.currency or "").upper() != command.currency:
            raise VendorRejected(
                VENDOR, f"project {command.project_id} bills in {workspace.currency}, not {command.currency}"
            )
        billing_milestone_ids = await self._billing_milestones_for(command)
        try:
            body = msgspec.json.encode(
                invoice_create_body(command, billing_milestone_ids=billing_milestone_ids)
            )
        except ValueError as exc:
            raise VendorRejected(VENDOR, f"the invoice cannot be held in Kantata: {exc}") from None
        try:
            # Never retried (Kantata has no idempotency): a lost answer is settled by looking again.
            response = await self._http.send("POST", "invoices.json", content=body, headers=_JSON_HEADERS)
            envelope = _decode(response.content, "created invoice")
            created = _only(envelope, "invoices", envelope.invoices)
            invoice_id = _str(created.id)
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:
            found = await self._after_lost_answer(
                error, "invoice", lambda: self.find_invoice(command.external_key)
            )
            _log().info("kantata_invoice_created", vendor=VENDOR, invoice_id=found.id)
            return found, True
        _log().info("kantata_invoice_created", vendor=VENDOR, invoice_id=invoice_id)
        # The create's answer carries no side-loads: read it back with its references.
        return await self.get_invoice(invoice_id), True

    async def finalize_invoice(
        self, invoice_id: str, *, erp_invoice_id: str, erp_invoice_number: str | None
    ) -> PsaInvoice:
        invoice, envelope = await self._show_invoice(invoice_id)
        status = invoice_status(invoice)
        if status is PsaInvoiceStatus.CANCELLED:
            raise VendorRejected(VENDOR, f"invoice {invoice_id} is cancelled and cannot be issued")
        current = _psa_invoice(invoice, envelope)
        if current.erp_invoice_id is None:
            reference = erp_invoice_reference(erp_invoice_id, erp_invoice_number)
            await self._add_invoice_reference(invoice_id, reference, ERP_INVOICE_MODEL)
        elif current.erp_invoice_id != erp_invoice_id:
            raise VendorRejected(
                VENDOR, f"invoice {invoice_id} already stands for ERP invoice {current.erp_invoice_id}"
            )
        if invoice.draft:
            # Kantata's "Updating an existing Invoice": `draft: false` issues it. Setting a flag to a value
            # is naturally idempotent, so this write may be retried.
            await self._http.send(
                "PUT",
                f"invoices/{_segment(invoice.id)}.json",
                content=msgspec.json.encode({"invoice": {"draft": False}}),
                headers=_JSON_HEADERS,
                idempotent=True,
            )
            _log().info("kantata_invoice_issued", vendor=VENDOR, invoice_id=invoice_id)
        return await self.get_invoice(invoice_id)

    async def cancel_invoice(self, invoice_id: str) -> PsaInvoice:
        invoice, envelope = await self._show_invoice(invoice_id)
        status = invoice_status(invoice)
        if status is PsaInvoiceStatus.CANCELLED:
            return _psa_invoice(invoice, envelope)
        if status is PsaInvoiceStatus.PAID:
            raise VendorRejected(VENDOR, f"invoice {invoice_id} is paid; Kantata cannot cancel it")
        try:
            await self._http.send("PUT", f"invoices/{_segment(invoice.id)}/cancel.json")
        except (VendorTimeout, VendorUnavailable, VendorBadResponse, VendorRejected) as error:
            # A lost answer, or Kantata refusing a second cancel: either way, what counts is its state now.
            async def look() -> PsaInvoice | None:
                again = await self.get_invoice(invoice_id)
                return again if again.status is PsaInvoiceStatus.CANCELLED else None

            return await self._after_lost_answer(error, "invoice cancel", look)
        _log().info("kantata_invoice_cancelled", vendor=VENDOR, invoice_id=invoice_id)
        return await self.get_invoice(invoice_id)

    async def record_payment(self, invoice_id: str, payment: PsaPaymentRecord) -> PsaInvoice:
        """Kantata records only whole-invoice payments against an invoice, so (see the module docstring,
        "Payments"): every ERP payment becomes a ``Payment`` reference on the invoice (found by its
        ``erp_payment_id``: told once), and the payment that leaves a zero balance also records one
        invoice-level external payment, which marks the whole invoice paid. No partial amount is ever
        booked as a project payment, so nothing is counted twice once the invoice is paid in full."""
        invoice, envelope = await self._show_invoice(invoice_id)
        references = envelope.external_references
        if invoice.currency is not None and invoice.currency.upper() != payment.currency:
            raise VendorRejected(
                VENDOR, f"invoice {invoice_id} is in {invoice.currency}, not {payment.currency}"
            )
        status = invoice_status(invoice)
        if status is PsaInvoiceStatus.CANCELLED:
            raise VendorRejected(VENDOR, f"invoice {invoice_id} is cancelled; it takes no payment")
        if payment.erp_payment_id not in payment_keys(invoice.external_reference_ids, references):
            await self._add_invoice_reference(
                invoice_id, payment_reference(payment), PAYMENT_MODEL, ref=payment.erp_payment_id
            )
            _log().info("kantata_payment_noted", vendor=VENDOR, invoice_id=invoice_id)
        if payment.balance == 0 and status is not PsaInvoiceStatus.PAID:
            if status is PsaInvoiceStatus.DRAFT:
                raise VendorRejected(VENDOR, f"invoice {invoice_id} is a draft; issue it before it is paid")
            await self._pay_in_full(invoice)
        return await self.get_invoice(invoice_id)

    async def _pay_in_full(self, invoice: KantataInvoice) -> None:
        """One invoice-level external payment: Kantata sets its amount to the invoice's and marks the
        invoice "accepted payment". Kantata refuses a second one (the invoice is no longer pending), and a
        lost answer is settled by reading the invoice's status."""
        body = {
            "external_payment": {
                "workspace_id": _str(invoice.workspace_ids[0]),
                "invoice_id": _str(invoice.id),
                # `message` is the payment's text (mavenlink_gem specification, external_payments).
                "message": f"Paid in full in the ERP; recorded by {SERVICE_NAME}",
            }
        }
        try:
            await self._http.send(
                "POST", "external_payments.json", content=msgspec.json.encode(body), headers=_JSON_HEADERS
            )
        except (VendorTimeout, VendorUnavailable, VendorBadResponse, VendorRejected) as error:

            async def look() -> bool | None:
                again, _ = await self._show_invoice(_str(invoice.id))
                return True if invoice_status(again) is PsaInvoiceStatus.PAID else None

            await self._after_lost_answer(error, "external payment", look)
        _log().info("kantata_invoice_paid", vendor=VENDOR, invoice_id=_str(invoice.id))

    async def _add_invoice_reference(
        self, invoice_id: str, reference: Mapping[str, Any], service_model: str, *, ref: str | None = None
    ) -> None:
        """Write one of Stratum's references on an invoice; a lost answer is settled by looking for it."""
        key = ref if ref is not None else str(reference["service_model_ref"])
        body = {"external_reference": {"subject_type": "Invoice", "subject_id": invoice_id, **reference}}
        try:
            await self._http.send(
                "POST", "external_references.json", content=msgspec.json.encode(body), headers=_JSON_HEADERS
            )
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:

            async def look() -> bool | None:
                found = await self._references_to("Invoice", key, service_name=SERVICE_NAME)
                mine = [
                    r
                    for r in found
                    if r.service_model == service_model and _str(r.subject_id or "") == invoice_id
                ]
                return True if mine else None

            await self._after_lost_answer(error, f"{service_model} reference", look)

    async def _billing_milestones(self, workspace_id: str) -> list[KantataBillingMilestone]:
        """Every billing milestone of a project (its billing schedule), or of several (``1,2,3``). Kantata's
        documented filters for the list are ``date_between`` and ``external_reference_*``; ``workspace_id``
        is sent as for every other collection, and every page is read and re-checked: an ignored filter
        costs pages, not correctness."""
        params = {"workspace_id": workspace_id, "order": "id:asc"}
        found: list[KantataBillingMilestone] = []
        for envelope in await self._all_pages("billing_milestones.json", params):
            with _unusable("billing milestone list"):
                found.extend(ordered(envelope, "billing_milestones", envelope.billing_milestones))
        mine = set(workspace_id.split(","))
        return [record for record in found if _str(record.workspace_id) in mine]

    async def _billing_milestones_for(self, command: PsaInvoiceCreate) -> list[str]:
        """The billing milestones an invoice bills for ``command.milestone_ids`` (milestone stories), one per
        story: the story's billing milestone not yet on an invoice, else one made now (looked for before it
        is made, and again after a lost answer). A story whose billing milestone is already invoiced is
        refused, as Kantata refuses an invoiced item."""
        if not command.milestone_ids:
            return []
        project_id = command.project_id
        stories = {_str(story.id): story for story in (await self._milestones([project_id])).of(project_id)}
        schedule = await self._billing_milestones(project_id)
        chosen: list[str] = []
        for story_id in command.milestone_ids:
            story = stories.get(story_id)
            if story is None:
                raise VendorRejected(
                    VENDOR, f"milestone {story_id} is not a milestone of project {project_id}"
                )
            on_story = [record for record in schedule if _str(record.story_id or "") == story_id]
            billed = [record for record in on_story if record.invoice_id is not None]
            if billed:
                invoice_id = _str(billed[0].invoice_id or "")
                raise VendorRejected(
                    VENDOR, f"milestone {story_id} has already been invoiced (invoice {invoice_id})"
                )
            if on_story:
                record = on_story[0]
                if record.amount_in_cents != story.budget_estimate_in_cents:
                    raise VendorRejected(
                        VENDOR,
                        f"billing milestone {_str(record.id)} of milestone {story_id} bills "
                        f"{record.amount_in_cents} cents, the milestone {story.budget_estimate_in_cents}",
                    )
                chosen.append(_str(record.id))
            else:
                await self._create_billing_milestone(story, command)
                chosen.append(await self._first_billing_milestone(project_id, story_id))
        return chosen

    async def _first_billing_milestone(self, project_id: str, story_id: str) -> str:
        """The story's billing milestone every invoice uses, read again after one was made: the first made
        (lowest id). Two invoices asking for one milestone at the same moment each find none and make one;
        both then bill the first, so Kantata refuses the second invoice as it refuses any invoiced item,
        where each billing its own would bill the milestone twice. (The spare stays on the schedule,
        unbilled: a story counts as invoiced once any of its billing milestones is.)"""
        on_story = [
            record
            for record in await self._billing_milestones(project_id)
            if _str(record.story_id or "") == story_id
        ]
        billed = [record for record in on_story if record.invoice_id is not None]
        if billed:
            invoice_id = _str(billed[0].invoice_id or "")
            raise VendorRejected(
                VENDOR, f"milestone {story_id} has already been invoiced (invoice {invoice_id})"
            )
        if not on_story:
            raise VendorBadResponse(
                VENDOR, f"the billing milestone made for milestone {story_id} is not listed"
            )
        return min(
            (_str(record.id) for record in on_story), key=lambda record_id: (len(record_id), record_id)
        )

    async def _create_billing_milestone(self, story: KantataStory, command: PsaInvoiceCreate) -> str:
        try:
            body = billing_milestone_body(
                story, external_key=command.external_key, date_to_invoice=command.invoice_date
            )
        except ValueError as exc:
            raise VendorRejected(VENDOR, f"the milestone cannot be invoiced in Kantata: {exc}") from None
        story_id = _str(story.id)
        try:
            response = await self._http.send(
                "POST", "billing_milestones.json", content=msgspec.json.encode(body), headers=_JSON_HEADERS
            )
            envelope = _decode(response.content, "created billing milestone")
            return _str(_only(envelope, "billing_milestones", envelope.billing_milestones).id)
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:

            async def look() -> str | None:
                schedule = await self._billing_milestones(command.project_id)
                free = [
                    record
                    for record in schedule
                    if _str(record.story_id or "") == story_id and record.invoice_id is None
                ]
                return _str(free[0].id) if free else None

            return await self._after_lost_answer(error, "billing milestone", look)

    async def _show_invoice(self, invoice_id: str) -> tuple[KantataInvoice, KantataEnvelope]:
        """The invoice, with its external references and billing milestones side-loaded."""
        if not _KANTATA_ID.fullmatch(invoice_id):
            raise NotFound(VENDOR, "no such invoice")
        params = {"include": "external_references,billing_milestones"}
        envelope = await self._get(f"invoices/{invoice_id}.json", params, "invoice")
        return _only(envelope, "invoices", envelope.invoices), envelope

    # --- Kantata specifics -----------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str], what: str) -> KantataEnvelope:
        response = await self._http.send("GET", path, params=params)
        return _decode(response.content, what)

    async def _page(self, path: str, params: Mapping[str, str], page: int, per_page: int) -> KantataEnvelope:
        return await self._get(path, {**params, "page": str(page), "per_page": str(per_page)}, path)

    async def _all_pages(self, path: str, params: Mapping[str, str]) -> list[KantataEnvelope]:
        """Every page of a listing the adapter needs whole (milestones, a project's resources)."""
        envelopes: list[KantataEnvelope] = []
        for page in range(1, _MAX_PAGES + 1):
            envelope = await self._page(path, params, page, MAX_PER_PAGE)
            envelopes.append(envelope)
            if not _has_more(envelope, page, MAX_PER_PAGE):
                return envelopes
        raise VendorBadResponse(VENDOR, f"Kantata's {path} listing did not end after {_MAX_PAGES} pages")

    async def _show_workspace(self, workspace_id: str) -> KantataEnvelope:
        if not _KANTATA_ID.fullmatch(workspace_id):
            raise NotFound(VENDOR, "no such workspace")
        envelope = await self._get(
            f"workspaces/{workspace_id}.json",
            # Kantata's show hides archived workspaces unless asked, but a closed project still exists.
            {"include": "external_references", "include_archived": "true"},
            "workspace",
        )
        _only_workspace(envelope)
        return envelope

    async def _find_workspace(self, external_key: str) -> KantataEnvelope | None:
        """The workspace created under ``external_key`` (the oldest, should Kantata ever hold two), else
        the one a CRM integration linked to the opportunity ``external_key`` names (a deal's key). One look
        finds both: every workspace reference to the key, ours tried first."""
        references = await self._references_to("Workspace", external_key)
        ours = [r for r in references if r.service_name == SERVICE_NAME]
        linked = [
            r for r in references if r.service_name != SERVICE_NAME and r.service_model == OPPORTUNITY_MODEL
        ]
        for subject_id in [*_subject_ids(ours), *_subject_ids(linked)]:
            try:
                return await self._show_workspace(subject_id)
            except NotFound:
                continue  # a reference left behind by a deleted workspace
        return None

    async def _adopt_workspace(
        self, workspace: KantataWorkspace, command: ProjectCreate
    ) -> dict[str, KantataExternalReference]:
        """Give another integration's workspace Stratum's references (key and customer); the new ones.

        Look-before-create made this safe to repeat: once the key reference exists, the workspace is found
        by it and never adopted again. A lost answer is not retried here; the next call adopts again, at
        worst leaving a second identical reference, which finds the same workspace."""
        created: dict[str, KantataExternalReference] = {}
        for reference in workspace_references(command):
            subject = {"subject_type": "Workspace", "subject_id": _str(workspace.id)}
            body = {"external_reference": {**subject, **reference}}
            response = await self._http.send(
                "POST", "external_references.json", content=msgspec.json.encode(body), headers=_JSON_HEADERS
            )
            envelope = _decode(response.content, "created external reference")
            record = _only(envelope, "external_references", envelope.external_references)
            created[_str(record.id)] = record
        return created

    async def _references_to(
        self, subject_type: str, key: str, *, service_name: str | None = None
    ) -> list[KantataExternalReference]:
        """The external references (of ``service_name``, when given) from ``subject_type`` records to
        ``key``, as Kantata lists them."""
        params = {"subject_type": subject_type, "service_model_ref": key, "per_page": str(MAX_PER_PAGE)}
        if service_name is not None:
            params["service_name"] = service_name
        envelope = await self._get("external_references.json", params, "external references")
        with _unusable("external reference list"):
            references = ordered(envelope, "external_references", envelope.external_references)
        matching = [
            reference
            for reference in references
            if _is_reference(reference, subject_type, key, service_name=service_name)
        ]
        if len(matching) != len(references) or _has_more(envelope, 1, MAX_PER_PAGE):
            # Kantata ignored a filter: the answer cannot be trusted to hold our record, and creating
            # because it seems absent would make a duplicate. Refuse instead.
            raise VendorBadResponse(VENDOR, "Kantata ignored the external reference filter")
        return matching

    async def _milestones(self, workspace_ids: Sequence[str]) -> _Milestones:
        """The milestone stories of these workspaces, with their external references."""
        milestones = _Milestones(by_workspace={}, references={})
        if not workspace_ids:
            return milestones
        params = {
            "workspace_id": ",".join(workspace_ids),
            "story_type": "milestone",
            "include": "external_references",
            "order": "id:asc",
        }
        for envelope in await self._all_pages("stories.json", params):
            with _unusable("story list"):
                stories = ordered(envelope, "stories", envelope.stories)
            for story in stories:
                milestones.by_workspace.setdefault(_str(story.workspace_id), []).append(story)
            milestones.references.update(envelope.external_references)
        return milestones

    async def _ensure_milestones(
        self, workspace: KantataWorkspace, command: ProjectCreate
    ) -> list[KantataStory]:
        """The workspace's milestone stories, after creating those of ``command`` not there yet.

        Each milestone is found by its own key, so a re-run after a partial failure adds only what is
        missing, and never a milestone twice.
        """
        workspace_id = _str(workspace.id)
        missing = _missing_milestones(await self._milestones([workspace_id]), workspace_id, command)
        if missing:
            try:
                bodies = [
                    milestone_story_body(
                        workspace_id, command.external_key, number, milestone, currency=command.currency
                    )
                    for number, milestone in missing
                ]
            except ValueError as exc:
                raise VendorRejected(VENDOR, f"a milestone cannot be held in Kantata: {exc}") from None
            for start in range(0, len(bodies), MAX_PER_PAGE):
                await self._create_stories(workspace_id, command, bodies[start : start + MAX_PER_PAGE])
            _log().info(
                "kantata_milestones_created", vendor=VENDOR, project_id=workspace_id, count=len(missing)
            )
        return (await self._milestones([workspace_id])).of(workspace_id)

    async def _create_stories(
        self, workspace_id: str, command: ProjectCreate, bodies: list[dict[str, Any]]
    ) -> None:
        try:
            # Kantata's bulk create: one call for up to 200 stories, all or none validated.
            await self._http.send(
                "POST",
                "stories.json",
                content=msgspec.json.encode({"stories": bodies}),
                headers=_JSON_HEADERS,
            )
        except (VendorTimeout, VendorUnavailable, VendorBadResponse) as error:
            wanted = {body["external_references_attributes"][0]["service_model_ref"] for body in bodies}

            async def look() -> bool | None:
                present = _milestone_keys(await self._milestones([workspace_id]), workspace_id)
                return True if wanted <= present else None

            await self._after_lost_answer(error, "milestones", look)

    async def _workspace_resources(self, workspace_id: str) -> list[KantataWorkspaceResource]:
        if not _KANTATA_ID.fullmatch(workspace_id):
            raise NotFound(VENDOR, "no such workspace")
        resources: list[KantataWorkspaceResource] = []
        params = {"workspace_id": workspace_id, "order": "id:asc"}
        for envelope in await self._all_pages("workspace_resources.json", params):
            with _unusable("workspace resource list"):
                resources.extend(ordered(envelope, "workspace_resources", envelope.workspace_resources))
        return resources

    async def _load_roles(self) -> None:
        try:
            envelopes = await self._all_pages("roles.json", {})
        except NotFound:
            raise VendorRejected(
                VENDOR, "cannot look up roles: Kantata serves no roles; give the role's id"
            ) from None
        with _unusable("role list"):
            roles = [r for envelope in envelopes for r in ordered(envelope, "roles", envelope.roles)]
        self._role_ids = {r.name.strip().casefold(): _str(r.id) for r in roles}
        self._role_names_by_id = {_str(r.id): r.name.strip() for r in roles}

    async def _role_names(self, role_ids: set[str]) -> dict[str, str]:
        """Kantata role id -> the role's name, for the ids given (read once; an unknown id reads again)."""
        if role_ids - self._role_names_by_id.keys():
            await self._load_roles()
        return {
            role_id: self._role_names_by_id[role_id]
            for role_id in role_ids
            if role_id in self._role_names_by_id
        }

    async def _role_id(self, role: str) -> str:
        """Kantata's id for a role: given as the id itself, or by name (looked up in ``/roles``)."""
        if _KANTATA_ID.fullmatch(role):
            return role
        wanted = role.strip().casefold()
        if wanted not in self._role_ids:
            await self._load_roles()
        role_id = self._role_ids.get(wanted)
        if role_id is None:
            raise VendorRejected(VENDOR, f"Kantata has no role named {role!r}")
        return role_id

    async def _after_lost_answer(
        self, error: VendorError, what: str, look: Callable[[], Awaitable[_T | None]]
    ) -> _T:
        """A create whose answer was lost may or may not have happened: look once more. The record if it
        is there; otherwise the original error (and the next call with the same key will look again)."""
        if isinstance(error, _Refused):
            raise error
        _log().warning("kantata_create_outcome_unknown", vendor=VENDOR, what=what, error=type(error).__name__)
        try:
            found = await look()
        except VendorError:
            raise error from None
        if found is None:
            raise error
        _log().info("kantata_create_confirmed", vendor=VENDOR, what=what)
        return found

    def _error_for_response(self, response: httpx.Response) -> VendorError:
        """Kantata's error body (``{"errors": [{"type", "message", "field"}]}``) and status -> port errors."""
        status = response.status_code
        errors = decode_errors(response.content)
        first = errors[0] if errors else None
        # Kantata's messages name fields and values, never credentials; keep them short all the same.
        message = "; ".join(
            f"{error.field}: {error.message}" if error.field else (error.message or "") for error in errors
        )[:300]
        if status == 401:
            return _Refused(VENDOR, "Kantata credentials rejected (HTTP 401)")
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _Refused(
                VENDOR,
                "Kantata rate limit reached (HTTP 429)",
                retry_after=RATE_LIMITED_RETRY_AFTER if retry_after is None else retry_after,
            )
        if status in (404, 410):
            return NotFound(VENDOR, f"Kantata: {message}" if message else "Kantata has no such record")
        if 400 <= status < 500:
            # Our request is wrong (a validation error names the field): a bug on our side, which the
            # gateway reports as a bad gateway, not as the caller's fault. Keep Kantata's error type.
            detail = f"Kantata HTTP {status}: {message}" if message else f"Kantata HTTP {status}"
            return VendorRejected(VENDOR, detail, vendor_code=first.type if first else None)
        return default_error_for_response(VENDOR, response)


# --- helpers -------------------------------------------------------------------------------------------

# The fingerprint of a query that cannot match anything (answered without calling Kantata).
_NOTHING: Mapping[str, str] = {"": "nothing"}


def _str(value: str | int) -> str:
    return str(value)


def _segment(value: str | int) -> str:
    """An id Kantata gave us, checked before it goes into a path: ``../`` in one would leave the API."""
    try:
        return path_segment(value)
    except ValueError:
        raise VendorBadResponse(VENDOR, "Kantata sent an unusable record id") from None


@contextlib.contextmanager
def _unusable(what: str) -> Iterator[None]:
    """Turns a record that cannot be read (a missing field, a date that is none) into a bad response."""
    try:
        yield
    except (ValueError, msgspec.DecodeError) as exc:
        raise _bad_body(what, exc) from None


def _bad_body(what: str, exc: Exception) -> VendorBadResponse:
    return VendorBadResponse(VENDOR, f"Kantata sent an unusable {what}: {type(exc).__name__}: {exc}"[:400])


def _decode(body: bytes, what: str) -> KantataEnvelope:
    try:
        return decode_envelope(body)
    except msgspec.DecodeError as exc:
        raise _bad_body(what, exc) from None


def _only(envelope: KantataEnvelope, key: str, table: Mapping[str, _T]) -> _T:
    """The one record an answer about one record holds."""
    with _unusable(key):
        records = ordered(envelope, key, table)
    if len(records) != 1:
        raise VendorBadResponse(VENDOR, f"Kantata answered {len(records)} {key} where one was expected")
    return records[0]


def _only_workspace(envelope: KantataEnvelope) -> KantataWorkspace:
    return _only(envelope, "workspaces", envelope.workspaces)


def _project(
    workspace: KantataWorkspace,
    references: Mapping[str, KantataExternalReference],
    milestones: Sequence[KantataStory],
) -> Project:
    return map_record(
        VENDOR,
        "workspace",
        workspace.id,
        lambda: project_from_workspace(workspace, references=references, milestones=milestones),
    )


def _psa_invoice(invoice: KantataInvoice, envelope: KantataEnvelope) -> PsaInvoice:
    return map_record(
        VENDOR,
        "invoice",
        invoice.id,
        lambda: invoice_from_record(
            invoice, envelope.external_references, billing_milestones=envelope.billing_milestones
        ),
    )


def _invoice_mapper(envelope: KantataEnvelope) -> Callable[[KantataInvoice], PsaInvoice]:
    """The mapping of a listed invoice, with what its page side-loaded."""
    references, schedule = envelope.external_references, envelope.billing_milestones
    return lambda invoice: invoice_from_record(invoice, references, billing_milestones=schedule)


def _invoiced_stories(schedule: Sequence[KantataBillingMilestone]) -> set[str]:
    """The milestone stories whose billing milestone is on an invoice."""
    return {
        _str(record.story_id)
        for record in schedule
        if record.story_id is not None and record.invoice_id is not None
    }


def _record_id(record: Any) -> str:
    return _str(record.id)


def _is_reference(
    reference: KantataExternalReference, subject_type: str, key: str, *, service_name: str | None
) -> bool:
    return (
        service_name in (None, reference.service_name)
        and reference.subject_type == subject_type
        and reference.service_model_ref is not None
        and _str(reference.service_model_ref) == key
    )


def _subject_ids(references: Sequence[KantataExternalReference]) -> list[str]:
    """The records these references are on, oldest first."""
    return sorted({_str(r.subject_id) for r in references if r.subject_id is not None}, key=int)


def _milestone_keys(milestones: _Milestones, workspace_id: str) -> set[str]:
    keys = (
        external_key_of(story.external_reference_ids, milestones.references)
        for story in milestones.of(workspace_id)
    )
    return {key for key in keys if key is not None}


def _missing_milestones(
    milestones: _Milestones, workspace_id: str, command: ProjectCreate
) -> list[tuple[int, MilestoneInput]]:
    present = _milestone_keys(milestones, workspace_id)
    return [
        (number, milestone)
        for number, milestone in enumerate(command.milestones, start=1)
        if milestone_key(command.external_key, number) not in present
    ]


def _resource_with_key(
    resources: Sequence[KantataWorkspaceResource], external_key: str
) -> KantataWorkspaceResource | None:
    """The oldest resource raised under ``external_key`` (``resources`` are in id order)."""
    for resource in resources:
        if split_resource_title(resource.title)[1] == external_key:
            return resource
    return None


def _has_more(envelope: KantataEnvelope, page: int, per_page: int) -> bool:
    # Kantata's meta.count is the total across pages; the top-level count says the same.
    total = envelope.meta.count if envelope.meta is not None else envelope.count
    return page * per_page < total


def _next_cursor(more: bool, page: int, per_page: int, fingerprint: str) -> str | None:
    if not more:
        return None
    return encode_cursor(PageCursor(page=page + 1, per_page=per_page, fingerprint=fingerprint))


def _updated_after(moment: dt.datetime) -> str:
    """``updated_after`` for "changed at or after ``moment``": Kantata's filter is exclusive and compares
    whole seconds, so ask from the second before. A change seen twice is harmless; a missed one is not."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    second = aware.astimezone(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    return second.isoformat()


def _period_filters(query: PeriodFilter, date_param: str) -> dict[str, str] | None:
    """Kantata's filters for a ``PeriodFilter``; ``None`` when nothing can match (no call is needed)."""
    filters: dict[str, str] = {}
    if query.project_id is not None or query.project_ids is not None:
        # One project, or several (Kantata filters by many workspaces at once: ``workspace_id=1,2,3``).
        wanted = [query.project_id] if query.project_id is not None else list(query.project_ids or ())
        if query.project_ids is not None:
            wanted = [p for p in wanted if p in query.project_ids]
        ids = list(dict.fromkeys(p for p in wanted if _KANTATA_ID.fullmatch(p)))
        if not ids:
            return None
        filters["workspace_id"] = ",".join(ids)
    if query.date_from is not None or query.date_to is not None:
        first, last = query.date_from or _EARLIEST, query.date_to or _LATEST
        if first > last:
            return None
        filters[date_param] = f"{first.isoformat()}:{last.isoformat()}"
    if query.approved is not None:
        filters["approved"] = "true" if query.approved else "false"
    if query.modified_since is not None:
        filters["updated_after"] = _updated_after(query.modified_since)
    return filters


def _vendor_filters(filters: Mapping[str, str]) -> dict[str, str]:
    """The filters Kantata is sent. Its ``approved`` filter can only say "approved": on time entries it "is
    always processed as true; the actual value you provide is ignored" (developer.kantata.com/kantata/
    specification/time-entries/get-time-entries), and expenses document only the approved side
    (.../expenses/get-expenses). So ``approved=false`` is never sent: the caller drops approved records."""
    return {key: value for key, value in filters.items() if (key, value) != ("approved", "false")}
