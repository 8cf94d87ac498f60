"""The finance role view: unbilled work, receivables aging and DSO, one invoice's lineage, and what waits
for finance (draft invoices to approve, billing runs parked for finance).

Each endpoint is a declared composition (``experience_apis.compose``): its sections name their sources,
whether the view needs them, their timeouts and what an outage does, and are read concurrently. The view
orders and pages its own rows (``experience_apis.paging``); every total is per currency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, TypeVar

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter, SkipValidation

from apis.problems import ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import (
    BillableItem,
    BillableItemKind,
    Customer,
    Expense,
    Invoice,
    InvoiceStatus,
    Opportunity,
    OpportunityStage,
    Payment,
    Project,
    PsaInvoice,
    TimeEntry,
)
from contracts.models.billing import UNBILLED_AGE_BUCKETS, unbilled_age_bucket
from contracts.models.common import money_as_kept
from contracts.models.experience import SectionError, SectionStatus, money_totals
from contracts.models.experience_finance import (
    AwaitingApproval,
    AwaitingApprovalSection,
    FinanceApprovalsView,
    InvoiceLineage,
    LineageBillingRun,
    LineageBillingRunSection,
    LineageDealSection,
    LineageItemsSection,
    LineageLine,
    LineagePaymentsSection,
    LineageProjectSection,
    LineagePsaInvoiceSection,
    LineageSourceItem,
    ParkedBillingRun,
    ParkedBillingRunsSection,
    ReceivableAging,
    ReceivableRow,
    ReceivableRowsSection,
    ReceivablesTotal,
    ReceivablesView,
    SectionNote,
    UnbilledAging,
    UnbilledCustomerTotal,
    UnbilledEntityTotal,
    UnbilledRow,
    UnbilledRowsSection,
    UnbilledView,
)
from contracts.models.process import Owner, Run, RunState, Workflow
from experience_apis.client import ExperienceClients
from experience_apis.compose import Composed, Section, SectionFailure, View
from experience_apis.paging import CurrencyFilter, Cursor, LegalEntityFilter, Paging, ViewLimit
from process_apis.billing_pricing import billing_key_as_written, parse_billing_key, run_id_of_billing_key
from system_apis.erp.port import MAX_INVOICE_PAGE
from system_apis.psa.port import MAX_BILLABLE_PAGE, MAX_PROJECTS_AT_ONCE

__all__ = [
    "FINANCE_APPROVALS_VIEW",
    "FINANCE_INVOICE_LINEAGE_VIEW",
    "FINANCE_RECEIVABLES_VIEW",
    "FINANCE_UNBILLED_VIEW",
    "finance_routes",
]

T = TypeVar("T")

SCOPE = "experience:finance"
ZERO = Decimal("0.00")
# Tier calls a section makes at once (per-project billable items, customer names): bounded so one view
# cannot flood the tier below, and wide enough that a page of 25 rows' names is one wave of calls, not
# six (at 4, the unbilled items of a few dozen projects were read in a dozen waves, one after another).
FAN_OUT = 16
PAGE = 200
# A listing the view reads whole (every open invoice, every project) stops here: past it the section says
# so (``listing-too-long``) rather than answer with a part of the truth.
MAX_RECORDS = 20_000
DSO_DAYS = 90
# Customer names read in one tier call (the system tier's ``id`` filter takes at most 100 ids).
NAMES_AT_ONCE = 100

CustomerIdFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9_:.-]{1,64}$",
        description="Only this customer (as the rows name it).",
        required=False,
    ),
]


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _same(value: str | None, wanted: str | None) -> bool:
    """True when ``wanted`` is not asked, or ``value`` is it (legal entities compared in any case)."""
    return wanted is None or (value or "").upper() == wanted.upper()


async def _read_all(read: Callable[[str | None], Awaitable[Any]], what: str) -> list[Any]:
    """Every item of a paged tier listing, following ``next_cursor`` to the end."""
    found: list[Any] = []
    cursor: str | None = None
    while True:
        page = await read(cursor)
        found.extend(page.items)
        if len(found) > MAX_RECORDS:
            raise SectionFailure("listing-too-long", f"more than {MAX_RECORDS} {what}: narrow the filters")
        cursor = page.next_cursor
        if not cursor:
            return found


def _gone(exc: ProblemError) -> bool:
    return exc.kind.code == "not-found"


async def _gathered(calls: Iterable[Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(FAN_OUT)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _hours(delta: dt.timedelta) -> Decimal:
    return (Decimal(delta.total_seconds()) / 3600).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --- unbilled work ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _UnbilledAsk:
    clients: ExperienceClients
    today: dt.date
    legal_entity: str | None
    currency: str | None
    customer_id: str | None
    limit: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class _Deals:
    by_project: dict[str, Opportunity]
    by_id: dict[str, Opportunity]

    def of(self, project: Project) -> Opportunity | None:
        found = self.by_project.get(project.id)
        if found is None and project.external_key:
            found = self.by_id.get(project.external_key)
        return found


async def _unbilled_projects(ask: _UnbilledAsk, done: Composed) -> list[Project]:
    return await _read_all(
        lambda cursor: ask.clients.system.list_psa_projects(limit=PAGE, cursor=cursor), "PSA projects"
    )


async def _unbilled_deals(ask: _UnbilledAsk, done: Composed) -> _Deals:
    deals: list[Opportunity] = await _read_all(
        lambda cursor: ask.clients.system.list_opportunities(
            limit=PAGE, cursor=cursor, stage=OpportunityStage.CLOSED_WON
        ),
        "won deals",
    )
    by_project: dict[str, Opportunity] = {}
    for deal in deals:
        psa_id = deal.project_id or deal.system_ids.psa
        if psa_id:
            by_project[psa_id] = deal
    return _Deals(by_project=by_project, by_id={deal.id: deal for deal in deals})


async def _unbilled_items(ask: _UnbilledAsk, done: Composed) -> dict[str, list[BillableItem]]:
    """Every project's items, by project: the PSA's account-wide listing (no project named, so it does not
    wait for the projects), a kind a listing, the kinds read at once, in pages of ``MAX_BILLABLE_PAGE``.
    The rows are the projects': an item of a project the projects' listing does not show is not one."""

    async def of(kind: BillableItemKind) -> list[BillableItem]:
        return await _read_all(
            lambda cursor: ask.clients.system.list_billable_items_of(
                None, through=ask.today, kind=kind, limit=MAX_BILLABLE_PAGE, cursor=cursor
            ),
            "billable items",
        )

    by_project: dict[str, list[BillableItem]] = defaultdict(list)
    for items in await asyncio.gather(*(of(kind) for kind in _LISTED_KINDS)):
        for item in items:
            by_project[item.project_id].append(item)
    return dict(by_project)


# The kinds a PSA listing holds, each read as its own listing at once (the listing itself reads them one
# after another: time, then expenses, then milestones).
_LISTED_KINDS = (BillableItemKind.TIME, BillableItemKind.EXPENSE, BillableItemKind.MILESTONE)


async def billable_items_of(
    clients: ExperienceClients, project_ids: Sequence[str], through: dt.date
) -> dict[str, list[BillableItem]]:
    """The unbilled items of these projects, by project (time, then expenses, then milestones, as one
    project's listing orders them): one listing a kind for ``MAX_PROJECTS_AT_ONCE`` projects, the kinds
    and the projects' listings read at once (at most ``FAN_OUT`` listings)."""
    chunks = [
        list(project_ids[i : i + MAX_PROJECTS_AT_ONCE])
        for i in range(0, len(project_ids), MAX_PROJECTS_AT_ONCE)
    ]

    async def of(chunk: list[str], kind: BillableItemKind) -> list[BillableItem]:
        return await _read_all(
            lambda cursor: clients.system.list_billable_items_of(
                chunk, through=through, kind=kind, limit=PAGE, cursor=cursor
            ),
            "billable items",
        )

    by_project: dict[str, list[BillableItem]] = {project_id: [] for project_id in project_ids}
    for items in await _gathered(of(c, k) for k in _LISTED_KINDS for c in chunks):
        for item in items:
            if item.project_id in by_project:
                by_project[item.project_id].append(item)
    return by_project


@dataclass(slots=True)
class _Aged:
    """A running total of unbilled value by work age."""

    amount: Decimal = ZERO
    buckets: list[Decimal] = field(default_factory=lambda: [ZERO, ZERO, ZERO, ZERO])
    items: int = 0
    unpriced: int = 0

    def add(self, age_days: int, value: Decimal | None) -> None:
        self.items += 1
        if value is None:
            self.unpriced += 1
            return
        self.amount += value
        self.buckets[UNBILLED_AGE_BUCKETS.index(unbilled_age_bucket(age_days))] += value

    def merge(self, other: _Aged) -> None:
        self.amount += other.amount
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.items += other.items
        self.unpriced += other.unpriced

    def aging(self, currency: str) -> UnbilledAging:
        b = [money_as_kept(x, currency) for x in self.buckets]
        return UnbilledAging(days_0_30=b[0], days_31_60=b[1], days_61_90=b[2], days_over_90=b[3])


@dataclass(slots=True)
class _RowBuild:
    legal_entity: str | None
    customer_id: str | None
    project: Project
    opportunity_id: str | None
    currency: str
    aged: _Aged = field(default_factory=_Aged)
    kinds: dict[BillableItemKind, int] = field(default_factory=lambda: defaultdict(int))
    hours: Decimal = Decimal(0)
    unpriced_hours: Decimal = Decimal(0)
    oldest: dt.date | None = None


def unbilled_rows(
    projects: Sequence[Project],
    items: dict[str, list[BillableItem]],
    deals: _Deals | None,
    *,
    today: dt.date,
    legal_entity: str | None = None,
    currency: str | None = None,
    customer_id: str | None = None,
) -> list[_RowBuild]:
    """One row per project and currency of its unbilled items, filtered, in the view's order (legal
    entity, customer, project, currency)."""
    rows: list[_RowBuild] = []
    for project in projects:
        deal = deals.of(project) if deals is not None else None
        entity = project.legal_entity or (deal.legal_entity if deal is not None else None)
        entity = entity.upper() if entity else None
        customer = project.customer_id or (deal.customer_id if deal is not None else None)
        if not _same(entity, legal_entity) or (customer_id is not None and customer != customer_id):
            continue
        by_currency: dict[str, _RowBuild] = {}
        for item in items.get(project.id, []):
            if item.invoiced or item.psa_invoice_id is not None:
                continue  # held by an invoice (a draft's items too): not unbilled
            worth = item.psa_value()
            value = worth.amount if worth is not None else None
            row_currency = (worth.currency if worth is not None else None) or project.currency or "XXX"
            if not _same(row_currency, currency):
                continue
            row = by_currency.get(row_currency)
            if row is None:
                row = by_currency[row_currency] = _RowBuild(
                    legal_entity=entity,
                    customer_id=customer,
                    project=project,
                    opportunity_id=deal.id if deal is not None else project.external_key,
                    currency=row_currency,
                )
            row.aged.add((today - item.date).days, value)
            row.kinds[item.kind] += 1
            if item.kind is BillableItemKind.TIME:
                row.hours += item.quantity
                if value is None:
                    row.unpriced_hours += item.quantity
            row.oldest = item.date if row.oldest is None else min(row.oldest, item.date)
        rows.extend(by_currency.values())
    rows.sort(key=lambda r: (r.legal_entity or "~", r.customer_id or "~", r.project.id, r.currency))
    return rows


async def _unbilled_names(ask: _UnbilledAsk, done: Composed) -> dict[str, str | None]:
    rows = unbilled_rows(
        done.value("projects"),
        done.value("items"),
        done.value("deals"),
        today=ask.today,
        legal_entity=ask.legal_entity,
        currency=ask.currency,
        customer_id=ask.customer_id,
    )
    ids = sorted({r.customer_id for r in rows if r.customer_id})
    return await _names_at_once(ids, ask.clients.system.list_customers_by_id)


async def _names_at_once(
    ids: list[str], read: Callable[[list[str]], Awaitable[list[Customer]]]
) -> dict[str, str | None]:
    """The names of these customers, read in one call per ``NAMES_AT_ONCE`` ids (the calls at once): a
    customer absent from the answer is no longer there, and its row keeps its id (None)."""
    chunks = [ids[n : n + NAMES_AT_ONCE] for n in range(0, len(ids), NAMES_AT_ONCE)]
    found = {
        c.id: c.name for customers in await _gathered(read(chunk) for chunk in chunks) for c in customers
    }
    return {i: found.get(i) for i in ids}


FINANCE_UNBILLED_VIEW: View[_UnbilledAsk] = View(
    "finance.unbilled",
    summary="Unbilled approved work by legal entity, customer, project and currency",
    sections=[
        Section(
            "projects",
            ("system:psa.projects",),
            _unbilled_projects,
            required=True,
            timeout=10.0,
            description="Every PSA project (the rows).",
        ),
        Section(
            "deals",
            ("system:crm.opportunities",),
            _unbilled_deals,
            timeout=10.0,
            description="The won deals the projects deliver: a project's legal entity (where the PSA keeps "
            "none) and customer. Down: rows keep the PSA's own (often none); a `legal_entity` filter "
            "cannot be applied then, and the view answers 503 `source-unavailable`.",
        ),
        Section(
            "items",
            ("system:psa.billable-items",),
            _unbilled_items,
            required=True,
            timeout=25.0,
            description="Every project's approved, billable, uninvoiced items through today, in the PSA's "
            f"one listing of every project (pages of {MAX_BILLABLE_PAGE}), read beside the projects.",
        ),
        Section(
            "customer_names",
            ("system:crm.accounts",),
            _unbilled_names,
            timeout=8.0,
            after=("projects", "deals", "items"),
            description="The customers' names, read in one call (the CRM's accounts by id). Down: rows and "
            "totals keep the customer id only.",
        ),
    ],
)


def _note(done: Composed, name: str) -> SectionNote:
    return SectionNote(status=done.status(name), error=done.error(name))


@operation(
    "GET",
    "/experience/v1/finance/unbilled",
    operation_id="getFinanceUnbilledView",
    summary="Unbilled approved work (WIP) by legal entity, customer, project and currency",
    description=(
        "Approved, billable work not yet invoiced (PSA billable items through today, UTC): one row per "
        "project and currency with the amount by the age of the work (its work date: 0-30, 31-60, 61-90, "
        "over 90 days) and item counts, and totals over every selected row by legal entity and currency "
        "and by customer and currency (never across currencies). The amount is the PSA's own value of "
        "each item (hours x the PSA's rate, the expense's amount, the milestone's amount), the "
        "conventional WIP figure; an item the PSA gives no price is counted in `unpriced_items`, never "
        "valued at 0. A project's legal entity is the PSA project's, else its won deal's (as billing "
        "scopes it); its customer is the CRM account. Rows page in that order (`limit`, `cursor`)."
        + FINANCE_UNBILLED_VIEW.describe()
    ),
    scopes=[SCOPE],
    errors=[422, *VENDOR_ERRORS],
    tags=["finance"],
)
async def get_finance_unbilled(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    legal_entity: LegalEntityFilter = None,
    currency: CurrencyFilter = None,
    customer_id: CustomerIdFilter = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
) -> UnbilledView:
    listing = ("finance.unbilled", legal_entity or "", currency or "", customer_id or "")
    paging = Paging.of(listing, limit=limit, cursor=cursor)
    ask = _UnbilledAsk(
        clients=clients,
        today=_today(),
        legal_entity=legal_entity,
        currency=currency,
        customer_id=customer_id,
        limit=limit,
        cursor=cursor,
    )
    done = await FINANCE_UNBILLED_VIEW.compose(ask)
    if legal_entity is not None and not done.ok("deals"):
        error = done.error("deals")
        raise ProblemError(
            "source-unavailable",
            "The legal entity of most projects is their deal's, and the CRM's deals are unavailable "
            f"({error.code if error else 'unknown'}): the view cannot select legal entity {legal_entity}.",
            headers={"Retry-After": "5"},
            extra={"retry_after": 5, "section": "deals"},
        )
    rows = unbilled_rows(
        done.value("projects"),
        done.value("items"),
        done.value_or("deals", None),
        today=ask.today,
        legal_entity=legal_entity,
        currency=currency,
        customer_id=customer_id,
    )
    names: dict[str, str | None] = done.value_or("customer_names", {})
    page, next_cursor = paging.cut(rows)

    def row_out(row: _RowBuild) -> UnbilledRow:
        kinds = row.kinds
        other = sum(n for k, n in kinds.items() if k not in _NAMED_KINDS)
        return UnbilledRow(
            legal_entity=row.legal_entity,
            customer_id=row.customer_id,
            customer_name=names.get(row.customer_id) if row.customer_id else None,
            project_id=row.project.id,
            project_name=row.project.name,
            opportunity_id=row.opportunity_id,
            currency=row.currency,
            amount=money_as_kept(row.aged.amount, row.currency),
            aging=row.aged.aging(row.currency),
            items=row.aged.items,
            time_entries=kinds.get(BillableItemKind.TIME, 0),
            expenses=kinds.get(BillableItemKind.EXPENSE, 0),
            milestones=kinds.get(BillableItemKind.MILESTONE, 0),
            other_items=other,
            hours=row.hours,
            unpriced_items=row.aged.unpriced,
            unpriced_hours=row.unpriced_hours,
            oldest_work_date=row.oldest,
        )

    by_entity: dict[tuple[str | None, str], _Aged] = defaultdict(_Aged)
    by_customer: dict[tuple[str | None, str], _Aged] = defaultdict(_Aged)
    for row in rows:
        by_entity[(row.legal_entity, row.currency)].merge(row.aged)
        by_customer[(row.customer_id, row.currency)].merge(row.aged)
    return UnbilledView(
        as_of=ask.today,
        rows=UnbilledRowsSection(
            status=SectionStatus.OK, items=[row_out(r) for r in page], next_cursor=next_cursor
        ),
        by_legal_entity=[
            UnbilledEntityTotal(
                legal_entity=entity,
                currency=cur,
                amount=money_as_kept(aged.amount, cur),
                aging=aged.aging(cur),
                items=aged.items,
                unpriced_items=aged.unpriced,
            )
            for (entity, cur), aged in sorted(by_entity.items(), key=lambda kv: (kv[0][0] or "~", kv[0][1]))
        ],
        by_customer=[
            UnbilledCustomerTotal(
                customer_id=customer,
                customer_name=names.get(customer) if customer else None,
                currency=cur,
                amount=money_as_kept(aged.amount, cur),
                aging=aged.aging(cur),
                items=aged.items,
                unpriced_items=aged.unpriced,
            )
            for (customer, cur), aged in sorted(
                by_customer.items(), key=lambda kv: (kv[0][0] or "~", kv[0][1])
            )
        ],
        deals=_note(done, "deals"),
        customer_names=_note(done, "customer_names"),
    )


_NAMED_KINDS = (BillableItemKind.TIME, BillableItemKind.EXPENSE, BillableItemKind.MILESTONE)


# --- receivables -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ReceivablesAsk:
    clients: ExperienceClients
    as_of: dt.date
    legal_entity: str | None
    currency: str | None
    customer_id: str | None
    # The page of customer rows asked for (its names are read for that page only).
    paging: Paging


@dataclass(frozen=True, slots=True)
class _Invoices:
    items: list[Invoice]
    skipped: int


async def _receivable_invoices(ask: _ReceivablesAsk, done: Composed) -> _Invoices:
    found: list[Invoice] = []
    skipped = 0
    cursor: str | None = None
    while True:
        try:
            # The ERPs' largest page: every open invoice in a fifth of the calls pages of 200 took.
            page = await ask.clients.system.list_invoices(
                customer_id=ask.customer_id, limit=MAX_INVOICE_PAGE, cursor=cursor
            )
        except ProblemError as exc:
            if ask.customer_id is not None and _gone(exc):  # an ERP without that customer: nothing owed
                return _Invoices(items=[], skipped=0)
            raise
        found.extend(page.items)
        skipped += len(page.skipped)
        if len(found) > MAX_RECORDS:
            raise SectionFailure(
                "listing-too-long", f"more than {MAX_RECORDS} ERP invoices: narrow the filters"
            )
        cursor = page.next_cursor
        if not cursor:
            return _Invoices(items=found, skipped=skipped)


_OPEN = (InvoiceStatus.POSTED, InvoiceStatus.PARTIALLY_PAID)
_ISSUED = (InvoiceStatus.POSTED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID)


def is_open_receivable(invoice: Invoice, as_of: dt.date) -> bool:
    """Posted or partially paid with a balance, issued by ``as_of`` (not a draft, not void, not paid)."""
    return (
        invoice.status in _OPEN
        and invoice.balance.amount > 0
        and (invoice.issue_date is None or invoice.issue_date <= as_of)
    )


def days_past_due(invoice: Invoice, as_of: dt.date) -> int:
    return 0 if invoice.due_date is None else (as_of - invoice.due_date).days


def _receivable_bucket(days: int) -> int:
    if days <= 0:
        return 0
    if days <= 30:
        return 1
    if days <= 60:
        return 2
    if days <= 90:
        return 3
    return 4


@dataclass(slots=True)
class _Open:
    amount: Decimal = ZERO
    buckets: list[Decimal] = field(default_factory=lambda: [ZERO] * 5)
    invoices: int = 0
    overdue: int = 0
    oldest_due: dt.date | None = None

    def add(self, invoice: Invoice, as_of: dt.date) -> None:
        days = days_past_due(invoice, as_of)
        self.amount += invoice.balance.amount
        self.buckets[_receivable_bucket(days)] += invoice.balance.amount
        self.invoices += 1
        self.overdue += days > 0
        if invoice.due_date is not None:
            self.oldest_due = (
                invoice.due_date if self.oldest_due is None else min(self.oldest_due, invoice.due_date)
            )

    def aging(self, currency: str) -> ReceivableAging:
        b = [money_as_kept(x, currency) for x in self.buckets]
        return ReceivableAging(
            current=b[0], days_1_30=b[1], days_31_60=b[2], days_61_90=b[3], days_over_90=b[4]
        )


def _selected(ask: _ReceivablesAsk, invoice: Invoice) -> bool:
    return (
        _same(invoice.legal_entity, ask.legal_entity)
        and _same(invoice.currency, ask.currency)
        and (ask.customer_id is None or invoice.customer_id == ask.customer_id)
    )


def receivable_rows(
    ask: _ReceivablesAsk, invoices: Iterable[Invoice]
) -> list[tuple[tuple[str | None, str, str], _Open]]:
    """(legal entity, customer, currency) -> its open receivables, in the view's order (legal entity,
    customer, currency)."""
    rows: dict[tuple[str | None, str, str], _Open] = defaultdict(_Open)
    for invoice in invoices:
        if _selected(ask, invoice) and is_open_receivable(invoice, ask.as_of):
            rows[(invoice.legal_entity, invoice.customer_id, invoice.currency)].add(invoice, ask.as_of)
    return sorted(rows.items(), key=lambda kv: (kv[0][0] or "~", kv[0][1], kv[0][2]))


async def _receivable_names(ask: _ReceivablesAsk, done: Composed) -> dict[str, str | None]:
    """The page's customers' names: as their invoices give them (both ERPs' invoice listings name the
    customer), and read from the ERPs' customers only for a customer no invoice named."""
    invoices: _Invoices = done.value("invoices")
    page, _ = ask.paging.cut(receivable_rows(ask, invoices.items))
    ids = sorted({key[1] for key, _ in page})
    named = {i.customer_id: i.customer_name for i in invoices.items if i.customer_name is not None}
    unnamed = [customer for customer in ids if customer not in named]
    read = await _names_at_once(unnamed, ask.clients.system.list_erp_customers_by_id) if unnamed else {}
    return {customer: named.get(customer) or read.get(customer) for customer in ids}


FINANCE_RECEIVABLES_VIEW: View[_ReceivablesAsk] = View(
    "finance.receivables",
    summary="Receivables aging and DSO by legal entity, customer and currency",
    sections=[
        Section(
            "invoices",
            ("system:erp.invoices",),
            _receivable_invoices,
            required=True,
            timeout=20.0,
            description="Every ERP invoice, from every ERP (one per legal entity's books).",
        ),
        Section(
            "customer_names",
            ("system:erp.customers",),
            _receivable_names,
            timeout=8.0,
            after=("invoices",),
            description="The ERP customers' names for the page's rows, as their invoices name them; a "
            "customer no invoice names is read from the ERPs' customers by id, in one call. Down: rows "
            "keep the customer id.",
        ),
    ],
)


@operation(
    "GET",
    "/experience/v1/finance/receivables",
    operation_id="getFinanceReceivablesView",
    summary="Receivables aging (current, 1-30, 31-60, 61-90, over 90 days past due) and DSO",
    description=(
        "Open ERP invoices (posted or partially paid with a balance; drafts, void and paid invoices are "
        "not receivables) across every ERP the legal entities bill from, aged by days past their due date "
        "on `as_of` (default today, UTC; an invoice with no due date is current): one row per legal "
        "entity, customer and currency (paged), and per legal entity and currency the aged total and "
        "DSO = open receivables / gross invoiced (posted, partially paid or paid) in the 90 days to "
        "`as_of` x 90. The legal entity is the ERP's (NetSuite: the invoice's subsidiary by the account's "
        "setup; Business Central: the company's legal entity). Balances are the ERP's current ones: "
        "`as_of` moves the aging date and leaves out invoices issued after it; it does not rebuild past "
        "balances. Customer ids are the ERP's." + FINANCE_RECEIVABLES_VIEW.describe()
    ),
    scopes=[SCOPE],
    errors=[422, *VENDOR_ERRORS],
    tags=["finance"],
)
async def get_finance_receivables(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    legal_entity: LegalEntityFilter = None,
    currency: CurrencyFilter = None,
    customer_id: CustomerIdFilter = None,
    as_of: Annotated[
        dt.date | None, QueryParameter(description="Age on this date (default today, UTC).", required=False)
    ] = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
) -> ReceivablesView:
    day = as_of or _today()
    listing = ("finance.receivables", legal_entity or "", currency or "", customer_id or "", day.isoformat())
    ask = _ReceivablesAsk(
        clients=clients,
        as_of=day,
        legal_entity=legal_entity,
        currency=currency,
        customer_id=customer_id,
        paging=Paging.of(listing, limit=limit, cursor=cursor),
    )
    done = await FINANCE_RECEIVABLES_VIEW.compose(ask)
    invoices: _Invoices = done.value("invoices")
    rows = receivable_rows(ask, invoices.items)
    page, next_cursor = ask.paging.cut(rows)
    names: dict[str, str | None] = done.value_or("customer_names", {})

    totals: dict[tuple[str | None, str], _Open] = defaultdict(_Open)
    invoiced: dict[tuple[str | None, str], Decimal] = defaultdict(lambda: ZERO)
    window_start = ask.as_of - dt.timedelta(days=DSO_DAYS - 1)
    for invoice in invoices.items:
        if not _selected(ask, invoice):
            continue
        key = (invoice.legal_entity, invoice.currency)
        if is_open_receivable(invoice, ask.as_of):
            totals[key].add(invoice, ask.as_of)
        issued = invoice.issue_date
        if invoice.status in _ISSUED and issued is not None and window_start <= issued <= ask.as_of:
            invoiced[key] += invoice.total.amount
    by_entity: list[ReceivablesTotal] = []
    for key in sorted({*totals, *invoiced}, key=lambda k: (k[0] or "~", k[1])):
        total = totals.get(key, _Open())
        sales = invoiced.get(key, ZERO)
        dso = (
            (total.amount / sales * DSO_DAYS).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            if sales
            else None
        )
        by_entity.append(
            ReceivablesTotal(
                legal_entity=key[0],
                currency=key[1],
                open=money_as_kept(total.amount, key[1]),
                aging=total.aging(key[1]),
                invoices=total.invoices,
                invoiced_last_90_days=money_as_kept(sales, key[1]),
                dso=dso,
            )
        )
    return ReceivablesView(
        as_of=ask.as_of,
        rows=ReceivableRowsSection(
            status=SectionStatus.OK,
            items=[
                ReceivableRow(
                    legal_entity=entity,
                    customer_id=customer,
                    customer_name=names.get(customer),
                    currency=cur,
                    open=money_as_kept(row.amount, cur),
                    aging=row.aging(cur),
                    invoices=row.invoices,
                    overdue_invoices=row.overdue,
                    oldest_due_date=row.oldest_due,
                )
                for (entity, customer, cur), row in page
            ],
            next_cursor=next_cursor,
        ),
        by_legal_entity=by_entity,
        customer_names=_note(done, "customer_names"),
        skipped_invoices=invoices.skipped,
    )


# --- invoice lineage -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LineageAsk:
    clients: ExperienceClients
    invoice_id: str


def billing_key_of(invoice: Invoice) -> str | None:
    """The billing key as the run wrote it, or None for an invoice no billing run made."""
    if parse_billing_key(invoice.external_key) is None:
        return None
    assert invoice.external_key is not None
    return billing_key_as_written(invoice.external_key)


def _period_end(period: str) -> dt.date | None:
    """The last day of a ``YYYY-MM`` period (None for anything else)."""
    try:
        first = dt.date.fromisoformat(f"{period}-01")
    except ValueError:
        return None
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def _invoice_key(done: Composed) -> str | None:
    return billing_key_of(done.value("invoice"))


def _project_of_key(key: str | None) -> str | None:
    parsed = parse_billing_key(key)
    return parsed[0] if parsed is not None else None


async def _missing(call: Awaitable[T], what: str) -> T:
    """The record; a record the key names that is gone is the section's failure, not the caller's 404."""
    try:
        return await call
    except ProblemError as exc:
        if _gone(exc):
            raise SectionFailure("not-found", f"{what} is not there (any more)") from None
        raise


async def _lineage_invoice(ask: _LineageAsk, done: Composed) -> Invoice:
    return await ask.clients.system.get_invoice(ask.invoice_id)


async def _lineage_payments(ask: _LineageAsk, done: Composed) -> list[Payment]:
    return await _read_all(
        lambda cursor: ask.clients.system.list_payments(invoice_id=ask.invoice_id, limit=PAGE, cursor=cursor),
        "payments",
    )


async def _lineage_psa_invoice(ask: _LineageAsk, done: Composed) -> PsaInvoice | None:
    key = _invoice_key(done)
    if key is None:
        return None
    found = await ask.clients.system.find_psa_invoice(key)
    if found is None:
        raise SectionFailure("not-found", f"the PSA has no invoice under {key}")
    return found


async def _lineage_project(ask: _LineageAsk, done: Composed) -> Project | None:
    project_id = _project_of_key(_invoice_key(done))
    if project_id is None:
        return None
    return await _missing(ask.clients.system.get_psa_project(project_id), f"PSA project {project_id}")


async def _lineage_deal(ask: _LineageAsk, done: Composed) -> Opportunity | None:
    """The deal that carries the project's id (its activation wrote it back), read as soon as the billing
    key names the project, alongside the project, not after it; only for a project no deal carries (made
    by hand) the deal under the project's external key. The project unavailable leaves the deal so too."""
    project_id = _project_of_key(_invoice_key(done))
    if project_id is None:
        return None
    found: Opportunity | ProblemError
    try:
        found = await ask.clients.system.get_opportunity_by_project(project_id)
    except ProblemError as exc:
        found = exc
    # The project section reads meanwhile (its own task); waited for even when the deal is found.
    project: Project | None = await done.wait("project")
    if isinstance(found, Opportunity):
        return found
    if not _gone(found):
        raise found
    if project is None or not project.external_key:
        return None
    key = project.external_key
    return await _missing(ask.clients.system.get_opportunity(key), f"CRM opportunity {key}")


@dataclass(frozen=True, slots=True)
class _Sourced:
    time: dict[str, TimeEntry]
    expenses: dict[str, Expense]


async def _lineage_items(ask: _LineageAsk, done: Composed) -> _Sourced | None:
    """The lines' time entries and expenses, read under the project the billing key names as soon as the
    invoice is in (not after the project: the key names it). A line's milestone is the project's."""
    invoice: Invoice = done.value("invoice")
    project_id = _project_of_key(_invoice_key(done))
    if project_id is None:
        return None
    kinds = {sid.split(":", 1)[0] for line in invoice.lines for sid in line.source_ids}
    system = ask.clients.system
    # What a period's invoice bills was worked by the period's end (late approvals included): no later
    # entry can be on it, so a long project's later months are not read.
    parsed = parse_billing_key(_invoice_key(done))
    through = _period_end(parsed[1]) if parsed is not None else None

    async def time() -> list[TimeEntry]:
        if "time" not in kinds:
            return []
        return await _read_all(
            lambda cursor: system.list_time_entries(
                project_id=project_id, date_to=through, limit=PAGE, cursor=cursor
            ),
            "time entries",
        )

    async def expenses() -> list[Expense]:
        if "expense" not in kinds:
            return []
        return await _read_all(
            lambda cursor: system.list_expenses(
                project_id=project_id, date_to=through, limit=PAGE, cursor=cursor
            ),
            "expenses",
        )

    entries, spent = await asyncio.gather(time(), expenses())
    return _Sourced(time={e.id: e for e in entries}, expenses={e.id: e for e in spent})


async def _lineage_run(ask: _LineageAsk, done: Composed) -> LineageBillingRun | None:
    key = _invoice_key(done)
    run_id = run_id_of_billing_key(key)
    if run_id is None:
        return None
    process = ask.clients.process
    child = await _missing(process.get_billing_run(run_id), f"project run {run_id}")
    trigger = child.run.trigger or ""
    parent: Run | None = None
    if trigger.startswith("billing-run:"):
        parent_id = trigger.removeprefix("billing-run:")
        parent = (await _missing(process.get_billing_run(parent_id), f"billing run {parent_id}")).run
    return LineageBillingRun(project_run=child.run, billing_run=parent)


FINANCE_INVOICE_LINEAGE_VIEW: View[_LineageAsk] = View(
    "finance.invoice-lineage",
    summary="One invoice with its lines, their PSA items, project, deal, billing run and payments",
    sections=[
        Section(
            "invoice",
            ("system:erp.invoices",),
            _lineage_invoice,
            required=True,
            timeout=8.0,
            description="The ERP invoice with its lines (unknown id: 404).",
        ),
        Section("payments", ("system:erp.payments",), _lineage_payments, timeout=8.0),
        Section(
            "psa_invoice",
            ("system:psa.invoices",),
            _lineage_psa_invoice,
            timeout=8.0,
            after=("invoice",),
            description="The PSA invoice under the invoice's billing key.",
        ),
        Section(
            "project",
            ("system:psa.projects",),
            _lineage_project,
            timeout=8.0,
            after=("invoice",),
            description="The PSA project the billing key names.",
        ),
        Section(
            "deal",
            ("system:crm.opportunities",),
            _lineage_deal,
            timeout=8.0,
            after=("invoice",),
            waits=("project",),
            description="The CRM opportunity the project delivers: the one that carries the project's id, "
            "read alongside the project; else the one under the project's external key.",
        ),
        Section(
            "items",
            ("system:psa.time-entries", "system:psa.expenses"),
            _lineage_items,
            timeout=12.0,
            after=("invoice",),
            description="Each line's time entries, expenses and milestones, by its source ids.",
        ),
        Section(
            "billing_run",
            ("process:billing-runs",),
            _lineage_run,
            timeout=8.0,
            after=("invoice",),
            description="The project run that billed the invoice and the billing run that started it.",
        ),
    ],
)


def _not_applicable(cls: type[T]) -> T:
    return cls(status=SectionStatus.NOT_APPLICABLE)  # type: ignore[call-arg]


def _lineage_section(done: Composed, name: str, cls: type[Any], fill: Callable[[Any], dict[str, Any]]) -> Any:
    """``ok`` with data, ``not_applicable`` when the section found nothing to look for (no billing key, no
    project), else ``unavailable`` with the reason."""
    if done.ok(name) and done.value(name) is None:
        return _not_applicable(cls)
    return done.section(name, cls, fill)


def _source_item(source_id: str, sourced: _Sourced, project: Project) -> LineageSourceItem:
    kind, _, own = source_id.partition(":")
    if kind == "time":
        entry = sourced.time.get(own)
        return LineageSourceItem(source_id=source_id, kind=kind, found=entry is not None, time_entry=entry)
    if kind == "expense":
        expense = sourced.expenses.get(own)
        return LineageSourceItem(source_id=source_id, kind=kind, found=expense is not None, expense=expense)
    if kind == "milestone":
        milestone = next((m for m in project.milestones if m.id == own), None)
        return LineageSourceItem(
            source_id=source_id, kind=kind, found=milestone is not None, milestone=milestone
        )
    # A retainer's fee (``retainer:{project}:{period}``) has no PSA record behind it.
    return LineageSourceItem(source_id=source_id, kind=kind, found=False)


@operation(
    "GET",
    "/experience/v1/finance/invoices/{invoice_id:str}",
    operation_id="getFinanceInvoiceLineage",
    summary="An invoice's lineage across CRM, PSA, ERP and the billing runs",
    description=(
        "The ERP invoice (the id the system tier gives it) with its lines, each line's PSA time entries, "
        "expenses or milestone (by the line's source ids), the PSA invoice recorded under its billing key, "
        "the project the key names, the deal the project delivers, the project run that billed it and the "
        "billing run that started that run, and the invoice's payments. An invoice no billing run made "
        "(no billing key) still answers: its PSA invoice, project, deal, line items and billing run are "
        "`not_applicable`. A record the key names that is gone is that section `unavailable` with "
        "`not-found`." + FINANCE_INVOICE_LINEAGE_VIEW.describe()
    ),
    scopes=[SCOPE],
    errors=[404, *VENDOR_ERRORS],
    tags=["finance"],
)
async def get_finance_invoice_lineage(
    invoice_id: Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_:.-]{1,64}$")],
    clients: NamedDependency[SkipValidation[ExperienceClients]],
) -> InvoiceLineage:
    done = await FINANCE_INVOICE_LINEAGE_VIEW.compose(_LineageAsk(clients=clients, invoice_id=invoice_id))
    invoice: Invoice = done.value("invoice")
    project: Project | None = done.value_or("project", None)

    def lines(sourced: _Sourced) -> dict[str, Any]:
        assert project is not None
        return {
            "lines": [
                LineageLine(line=line, items=[_source_item(s, sourced, project) for s in line.source_ids])
                for line in invoice.lines
            ]
        }

    if done.ok("items") and done.value("items") is not None and project is None:
        # The lines were read, but a line's milestone is the project's, and the project is unavailable.
        project_error = done.error("project")
        lines_section = LineageItemsSection(
            status=SectionStatus.UNAVAILABLE,
            error=SectionError(
                code="source-unavailable",
                detail="needs section project, which is unavailable"
                + (f" ({project_error.code})" if project_error else ""),
                source="system:psa.projects",
            ),
        )
    else:
        lines_section = _lineage_section(done, "items", LineageItemsSection, lines)
    return InvoiceLineage(
        invoice=invoice,
        billing_key=billing_key_of(invoice),
        lines=lines_section,
        psa_invoice=_lineage_section(done, "psa_invoice", LineagePsaInvoiceSection, lambda v: {"data": v}),
        project=_lineage_section(done, "project", LineageProjectSection, lambda v: {"data": v}),
        deal=_lineage_section(done, "deal", LineageDealSection, lambda v: {"data": v}),
        billing_run=_lineage_section(done, "billing_run", LineageBillingRunSection, lambda v: {"data": v}),
        payments=done.section("payments", LineagePaymentsSection, lambda v: {"items": v}),
    )


# --- waiting for finance ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ApprovalsAsk:
    clients: ExperienceClients
    now: dt.datetime


async def _running_billing_runs(ask: _ApprovalsAsk, done: Composed) -> list[Run]:
    return await _read_all(
        lambda cursor: ask.clients.process.list_runs(
            workflow=Workflow.BILLING_RUN, states=[RunState.RUNNING], limit=PAGE, cursor=cursor
        ),
        "running billing runs",
    )


async def _parked_for_finance(ask: _ApprovalsAsk, done: Composed) -> list[Run]:
    return await _read_all(
        lambda cursor: ask.clients.process.list_exceptions(
            owner=Owner.FINANCE, workflow=Workflow.BILLING_RUN, limit=PAGE, cursor=cursor
        ),
        "parked billing runs",
    )


FINANCE_APPROVALS_VIEW: View[_ApprovalsAsk] = View(
    "finance.approvals",
    summary="Invoices waiting for finance approval and billing runs parked for finance",
    sections=[
        Section(
            "awaiting_approval",
            ("process:runs",),
            _running_billing_runs,
            required=True,
            timeout=8.0,
            description="Running billing runs: the project runs holding a draft invoice for approval, and "
            "the billing runs they belong to (whose subject names the legal entity).",
        ),
        Section(
            "parked",
            ("process:exceptions",),
            _parked_for_finance,
            timeout=8.0,
            description="Billing runs in the exception queue with owner `finance`.",
        ),
    ],
)

_ENTITY_SUBJECT = re.compile(r"^([A-Za-z0-9_-]{1,32}):[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")


def _entity_of(run: Run, subjects: dict[str, str]) -> str | None:
    """A project run's legal entity: the subject (``{legal entity}:{period}``) of the billing run that
    started it."""
    parent = _parent(run)
    subject = subjects.get(parent) if parent else None
    match = _ENTITY_SUBJECT.match(subject or "")
    return match.group(1).upper() if match else None


def _parent(run: Run) -> str | None:
    trigger = run.trigger or ""
    return trigger.removeprefix("billing-run:") if trigger.startswith("billing-run:") else None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


@operation(
    "GET",
    "/experience/v1/finance/approvals",
    operation_id="getFinanceApprovalsView",
    summary="Invoices waiting for finance approval and billing runs parked for finance",
    description=(
        "Draft ERP invoices that project billing runs hold for finance's approval (a legal entity with "
        "finance review; approve with `POST /process/v1/billing-runs/{billing_run_id}/approve`), with "
        "their amounts (net, tax, total as the ERP computed them), invoice ids, billing run and how long "
        "they have waited, oldest first, totals per currency; and billing runs parked in the exception "
        "queue for finance, oldest first. The legal entity is the billing run's (its subject). Parked runs "
        "carry no amount: the `currency` filter applies to invoices waiting only. Each list pages on its "
        "own cursor (`cursor`, `parked_cursor`) with the same `limit`." + FINANCE_APPROVALS_VIEW.describe()
    ),
    scopes=[SCOPE],
    errors=[422, *VENDOR_ERRORS],
    tags=["finance"],
)
async def get_finance_approvals(
    clients: NamedDependency[SkipValidation[ExperienceClients]],
    legal_entity: LegalEntityFilter = None,
    currency: CurrencyFilter = None,
    limit: ViewLimit = 50,
    cursor: Cursor = None,
    parked_cursor: Annotated[
        str | None,
        QueryParameter(max_length=512, description="`next_cursor` of the parked list.", required=False),
    ] = None,
) -> FinanceApprovalsView:
    awaiting_listing = ("finance.approvals.awaiting", legal_entity or "", currency or "")
    parked_listing = ("finance.approvals.parked", legal_entity or "")
    awaiting_paging = Paging.of(awaiting_listing, limit=limit, cursor=cursor)
    parked_paging = Paging.of(parked_listing, limit=limit, cursor=parked_cursor)
    ask = _ApprovalsAsk(clients=clients, now=dt.datetime.now(dt.UTC))
    done = await FINANCE_APPROVALS_VIEW.compose(ask)
    running: list[Run] = done.value("awaiting_approval")
    subjects = {run.id: run.subject for run in running}

    waiting: list[AwaitingApproval] = []
    for run in running:
        result = run.result or {}
        if result.get("awaiting") != "finance_approval":
            continue
        entity = _entity_of(run, subjects)
        run_currency = result.get("currency")
        if not _same(entity, legal_entity) or not _same(run_currency, currency):
            continue
        waiting.append(
            AwaitingApproval(
                run_id=run.id,
                billing_run_id=_parent(run),
                legal_entity=entity,
                project_id=result.get("project_id"),
                period=result.get("period"),
                billing_key=result.get("billing_key"),
                erp_invoice_id=result.get("erp_invoice_id"),
                erp_invoice_number=result.get("erp_invoice_number"),
                psa_invoice_id=result.get("psa_invoice_id"),
                currency=run_currency,
                net=_decimal(result.get("net")),
                tax=_decimal(result.get("tax")),
                total=_decimal(result.get("total")),
                waiting_since=run.updated_at,
                age_hours=_hours(ask.now - run.updated_at),
            )
        )
    waiting.sort(key=lambda w: (w.waiting_since, w.run_id))
    page, next_cursor = awaiting_paging.cut(waiting)
    awaiting = AwaitingApprovalSection(
        status=SectionStatus.OK,
        items=page,
        next_cursor=next_cursor,
        totals=money_totals([(w.currency, w.total) for w in waiting if w.currency and w.total is not None]),
        count=len(waiting),
    )

    if done.ok("parked"):
        parked_runs: list[ParkedBillingRun] = []
        for run in done.value("parked"):
            issue = run.issue
            if issue is None:
                continue
            entity = _entity_of(run, subjects) or _subject_entity(run.subject)
            if not _same(entity, legal_entity):
                continue
            parked_runs.append(
                ParkedBillingRun(
                    run_id=run.id,
                    billing_run_id=_parent(run),
                    legal_entity=entity,
                    subject=run.subject,
                    state=run.state.value,
                    code=issue.code,
                    step=issue.step,
                    message=issue.message,
                    remediation=issue.remediation,
                    raised_at=issue.raised_at,
                    age_hours=_hours(ask.now - issue.raised_at),
                )
            )
        parked_runs.sort(key=lambda p: (p.raised_at, p.run_id))
        parked_page, parked_next = parked_paging.cut(parked_runs)
        parked = ParkedBillingRunsSection(
            status=SectionStatus.OK, items=parked_page, next_cursor=parked_next, count=len(parked_runs)
        )
    else:
        parked = ParkedBillingRunsSection(status=SectionStatus.UNAVAILABLE, error=done.error("parked"))
    return FinanceApprovalsView(awaiting_approval=awaiting, parked=parked)


def _subject_entity(subject: str) -> str | None:
    """A billing run's own legal entity (its subject ``{legal entity}:{period}``), for a parked parent."""
    match = _ENTITY_SUBJECT.match(subject)
    return match.group(1).upper() if match else None


finance_routes = [
    get_finance_unbilled,
    get_finance_receivables,
    get_finance_invoice_lineage,
    get_finance_approvals,
]
