"""One PSA port over several PSAs, each delivering for some legal entities: a firm mid-migration runs both (an
acquired business unit still on Kantata while the parent delivers in Certinia, or new work going to the new
PSA while running projects finish in the old one). The ERP's ``ErpByLegalEntity`` does the same for billing.

Configuration names a default PSA and overrides per legal entity (``STRATUM_PSA_BY_LEGAL_ENTITY``, e.g.
``{"DE01": "certinia"}``). A project is created in the PSA of its legal entity (activation takes it from the
deal); anything addressed by a project, invoice or staffing id goes to the PSA that issued the id; a
business key (``find_project``, ``find_invoice``) is asked of every PSA at once. Ids issued by the default
PSA pass through unchanged, so a single-PSA deployment sees no difference; ids from another PSA carry a
one-letter code and a colon (``c:a0X...`` for Certinia, ``k:4711`` for Kantata), every id of its records and
every reference to one (a project's, a milestone's, an item's, an invoice's). Listings walk the PSAs one after
the other behind one cursor; a listing of some projects asks each PSA for its own projects only.

The code is short because a PSA project id is part of the billing key ``bill:{project}:{YYYY-MM}``, which
Business Central keeps in a Code[35] ``externalDocumentNumber``: a routed Certinia project's month key is
``bill:c:`` + 18 + ``:YYYY-MM``, 33 characters. Its revision and milestone keys (``:r2``, ``:d31``) are 36 and
37: an 18-character Salesforce id leaves no room for any prefix there (``bill:`` + 18 + ``:2026-11:r99`` is
already 35), and the 15-character form would not do (Business Central upper-cases the key, and 15-character
ids differ by case). Such a key is kept whole by the Business Central adapter, which stores a key over 35
characters as a 35-character hash and reads it back whole; a deployment that wants every key readable in
Business Central makes Certinia the default and routes the Kantata entities (``k:`` + a numeric id: the
longest key is 29 characters).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import msgspec

from apis.at_once import all_at_once
from contracts.models import (
    BillableItem,
    BillableItemKind,
    BillableItemPage,
    Expense,
    ExpensePage,
    Milestone,
    Project,
    ProjectCreate,
    ProjectPage,
    PsaInvoice,
    PsaInvoiceCreate,
    PsaPaymentRecord,
    SkippedRecord,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntry,
    TimeEntryPage,
)
from system_apis.cursors import merged_page
from system_apis.errors import NotFound, VendorError, VendorRejected
from system_apis.psa.port import PeriodFilter, PsaPort

__all__ = ["PSA_ID_CODES", "PsaByLegalEntity"]

_SEPARATOR = ":"
# The code a routed PSA's ids carry: one letter, to keep billing keys within Business Central's 35
# characters (see the module's docstring). A PSA not listed here carries its name.
PSA_ID_CODES = {"kantata": "k", "certinia": "c"}

_T = TypeVar("_T")


class PsaByLegalEntity:
    """A ``PsaPort`` that routes to the PSA delivering for each legal entity."""

    vendor = "psa-by-legal-entity"

    def __init__(
        self, psas: Mapping[str, PsaPort], *, default: str, by_legal_entity: Mapping[str, str]
    ) -> None:
        unknown = {default, *by_legal_entity.values()} - set(psas)
        if unknown:
            raise ValueError(f"no PSA adapter named {sorted(unknown)}")
        self.psas = dict(psas)
        self.default = default
        self.by_legal_entity = {entity.upper(): name for entity, name in by_legal_entity.items()}
        # The default first, so its records lead every merged listing.
        self.order = [default, *sorted(name for name in self.psas if name != default)]
        self.codes = {name: PSA_ID_CODES.get(name, name) for name in self.psas if name != default}
        self.by_code = {code: name for name, code in self.codes.items()}

    # -- ids ---------------------------------------------------------------------------------------------

    def _out(self, name: str, record_id: str) -> str:
        if name == self.default:
            return record_id
        return f"{self.codes[name]}{_SEPARATOR}{record_id}"

    def _out_optional(self, name: str, record_id: str | None) -> str | None:
        return None if record_id is None else self._out(name, record_id)

    def _in(self, record_id: str) -> tuple[str, str]:
        """(PSA name, its own id) of an id this port handed out. Neither PSA's own ids hold a colon, so an
        id with one names a routed PSA by its code, or no PSA at all: ``NotFound`` (a 404, as any id no
        PSA has)."""
        code, separator, own = record_id.partition(_SEPARATOR)
        if not separator:
            return self.default, record_id
        name = self.by_code.get(code)
        if name is None or not own:
            raise NotFound(self.vendor, f"no PSA issued the id {record_id!r}")
        return name, own

    def _for_entity(self, legal_entity: str | None) -> str:
        return self.by_legal_entity.get((legal_entity or "").upper(), self.default)

    def _split(self, record_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each PSA's own ids among ``record_ids``; an id no PSA issued is no PSA's (it has nothing)."""
        wanted: dict[str, list[str]] = {}
        for record_id in record_ids:
            try:
                name, own = self._in(record_id)
            except NotFound:
                continue
            wanted.setdefault(name, []).append(own)
        return wanted

    def _skipped(self, name: str, skipped: Sequence[SkippedRecord]) -> list[SkippedRecord]:
        if name == self.default:
            return list(skipped)
        return [msgspec.structs.replace(record, id=self._out(name, record.id)) for record in skipped]

    def _project(self, name: str, project: Project) -> Project:
        if name == self.default:
            return project
        return msgspec.structs.replace(
            project,
            id=self._out(name, project.id),
            milestones=[self._milestone(name, m) for m in project.milestones],
        )

    def _milestone(self, name: str, milestone: Milestone) -> Milestone:
        return msgspec.structs.replace(
            milestone, id=self._out(name, milestone.id), project_id=self._out(name, milestone.project_id)
        )

    def _demand(self, name: str, demand: StaffingDemand) -> StaffingDemand:
        if name == self.default:
            return demand
        return msgspec.structs.replace(
            demand, id=self._out(name, demand.id), project_id=self._out(name, demand.project_id)
        )

    def _time(self, name: str, entry: TimeEntry) -> TimeEntry:
        if name == self.default:
            return entry
        return msgspec.structs.replace(
            entry, id=self._out(name, entry.id), project_id=self._out(name, entry.project_id)
        )

    def _expense(self, name: str, expense: Expense) -> Expense:
        if name == self.default:
            return expense
        return msgspec.structs.replace(
            expense, id=self._out(name, expense.id), project_id=self._out(name, expense.project_id)
        )

    def _item(self, name: str, item: BillableItem) -> BillableItem:
        if name == self.default:
            return item
        return msgspec.structs.replace(
            item,
            id=self._out(name, item.id),
            project_id=self._out(name, item.project_id),
            psa_invoice_id=self._out_optional(name, item.psa_invoice_id),
        )

    def _invoice(self, name: str, invoice: PsaInvoice) -> PsaInvoice:
        if name == self.default:
            return invoice
        return msgspec.structs.replace(
            invoice,
            id=self._out(name, invoice.id),
            project_id=self._out(name, invoice.project_id),
            time_entry_ids=[self._out(name, i) for i in invoice.time_entry_ids],
            expense_ids=[self._out(name, i) for i in invoice.expense_ids],
            milestone_ids=[self._out(name, i) for i in invoice.milestone_ids],
        )

    async def _first_found(self, find: Callable[[PsaPort], Awaitable[_T | None]]) -> tuple[str, _T] | None:
        """The first PSA's answer (in ``order``) that is not None, every PSA asked at once."""
        answers = await all_at_once(find(self.psas[name]) for name in self.order)
        for name, answer in zip(self.order, answers, strict=True):
            if answer is not None:
                return name, answer
        return None

    def _scoped(self, name: str, query: PeriodFilter) -> PeriodFilter | None:
        """``query`` as PSA ``name`` is asked it (its own project ids); None when it names projects and none
        of them is that PSA's (it has nothing to answer)."""
        project_id = project_ids = None
        if query.project_id is not None:
            owner = self._split([query.project_id])
            if name not in owner:
                return None
            project_id = owner[name][0]
        if query.project_ids is not None:
            own = self._split(query.project_ids).get(name)
            if not own:
                return None
            project_ids = tuple(own)
        return msgspec.structs.replace(query, project_id=project_id, project_ids=project_ids)

    # -- projects ----------------------------------------------------------------------------------------

    async def get_project(self, project_id: str) -> Project:
        name, own = self._in(project_id)
        return self._project(name, await self.psas[name].get_project(own))

    async def find_project(self, external_key: str) -> Project | None:
        found = await self._first_found(lambda psa: psa.find_project(external_key))
        return None if found is None else self._project(*found)

    async def list_projects(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage:
        async def read(index: int, inner: str | None) -> ProjectPage:
            name = self.order[index]
            psa = self.psas[name]
            page = await psa.list_projects(limit=limit, cursor=inner, modified_since=modified_since)
            return ProjectPage(
                items=[self._project(name, p) for p in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )

        items, skipped, next_cursor = await merged_page(len(self.order), cursor, limit, read)
        return ProjectPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        # The customer is the CRM's account (as activation names it) in either PSA: passed on as it is.
        name = self._for_entity(command.legal_entity)
        project, created = await self.psas[name].create_project(command)
        return self._project(name, project), created

    async def close_project(self, project_id: str) -> Project:
        name, own = self._in(project_id)
        return self._project(name, await self.psas[name].close_project(own))

    # -- staffing ----------------------------------------------------------------------------------------

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]:
        name, own = self._in(project_id)
        return [self._demand(name, d) for d in await self.psas[name].list_staffing_demands(own)]

    async def list_staffing_demands_of(self, project_ids: Sequence[str]) -> list[StaffingDemand]:
        wanted = self._split(project_ids)
        names = [name for name in self.order if name in wanted]
        answers = await all_at_once(self.psas[name].list_staffing_demands_of(wanted[name]) for name in names)
        return [self._demand(name, d) for name, demands in zip(names, answers, strict=True) for d in demands]

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        name, own = self._in(project_id)
        demand, created = await self.psas[name].create_staffing_demand(own, command)
        return self._demand(name, demand), created

    # -- time and expenses -------------------------------------------------------------------------------

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage:
        async def read(index: int, inner: str | None) -> TimeEntryPage:
            name = self.order[index]
            scoped = self._scoped(name, query)
            if scoped is None:
                return TimeEntryPage(items=[])
            page = await self.psas[name].list_time_entries(scoped, limit=limit, cursor=inner)
            return TimeEntryPage(
                items=[self._time(name, e) for e in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )

        items, skipped, next_cursor = await merged_page(len(self.order), cursor, limit, read)
        return TimeEntryPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def list_expenses(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> ExpensePage:
        async def read(index: int, inner: str | None) -> ExpensePage:
            name = self.order[index]
            scoped = self._scoped(name, query)
            if scoped is None:
                return ExpensePage(items=[])
            page = await self.psas[name].list_expenses(scoped, limit=limit, cursor=inner)
            return ExpensePage(
                items=[self._expense(name, e) for e in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )

        items, skipped, next_cursor = await merged_page(len(self.order), cursor, limit, read)
        return ExpensePage(items=items, next_cursor=next_cursor, skipped=skipped)

    # -- billing -----------------------------------------------------------------------------------------

    async def list_billable_items(
        self, project_id: str, *, through: dt.date, limit: int, cursor: str | None = None
    ) -> BillableItemPage:
        name, own = self._in(project_id)
        page = await self.psas[name].list_billable_items(own, through=through, limit=limit, cursor=cursor)
        return BillableItemPage(
            items=[self._item(name, i) for i in page.items],
            next_cursor=page.next_cursor,
            skipped=self._skipped(name, page.skipped),
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
        # Every project's, or each PSA's own projects' (a PSA with none of them is not asked), one PSA's
        # listing after the other behind one cursor.
        wanted = self._split(project_ids) if project_ids is not None else None

        async def read(index: int, inner: str | None) -> BillableItemPage:
            name = self.order[index]
            own = None if wanted is None else wanted.get(name)
            if wanted is not None and not own:
                return BillableItemPage(items=[])
            page = await self.psas[name].list_billable_items_of(
                own, through=through, limit=limit, cursor=inner, kind=kind
            )
            return BillableItemPage(
                items=[self._item(name, i) for i in page.items],
                next_cursor=page.next_cursor,
                skipped=self._skipped(name, page.skipped),
            )

        items, skipped, next_cursor = await merged_page(len(self.order), cursor, limit, read)
        return BillableItemPage(items=items, next_cursor=next_cursor, skipped=skipped)

    async def find_invoice(self, external_key: str) -> PsaInvoice | None:
        found = await self._first_found(lambda psa: psa.find_invoice(external_key))
        return None if found is None else self._invoice(*found)

    async def get_invoice(self, invoice_id: str) -> PsaInvoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.psas[name].get_invoice(own))

    async def list_invoices(self, project_id: str) -> list[PsaInvoice]:
        name, own = self._in(project_id)
        return [self._invoice(name, i) for i in await self.psas[name].list_invoices(own)]

    async def create_invoice(self, command: PsaInvoiceCreate) -> tuple[PsaInvoice, bool]:
        # The invoice goes to its project's PSA; its items must be that PSA's too.
        name, project_id = self._in(command.project_id)

        def own(item_ids: Sequence[str]) -> list[str]:
            mine: list[str] = []
            for item_id in item_ids:
                try:
                    item_psa, item_own = self._in(item_id)
                except NotFound:
                    item_psa, item_own = "", item_id
                if item_psa != name:
                    raise VendorRejected(
                        self.vendor, f"item {item_id} is not kept in the PSA of project {command.project_id}"
                    )
                mine.append(item_own)
            return mine

        routed = msgspec.structs.replace(
            command,
            project_id=project_id,
            time_entry_ids=own(command.time_entry_ids),
            expense_ids=own(command.expense_ids),
            milestone_ids=own(command.milestone_ids),
        )
        try:
            invoice, created = await self.psas[name].create_invoice(routed)
        except VendorRejected as exc:
            if name == self.default:
                raise
            # The refusal names an item already on another invoice by the PSA's own ids: it is said again
            # with the ids as the caller knows them (the project's invoices read for theirs, if they can be).
            named = [*routed.time_entry_ids, *routed.expense_ids, *routed.milestone_ids, project_id]
            with contextlib.suppress(VendorError):
                named += [i.id for i in await self.psas[name].list_invoices(project_id)]
            raise VendorRejected(
                exc.vendor, self._say_ids(name, exc.message, named), vendor_code=exc.vendor_code
            ) from exc
        return self._invoice(name, invoice), created

    def _say_ids(self, name: str, message: str, own_ids: Sequence[str]) -> str:
        """``message`` with each of PSA ``name``'s own ids in it (whole words) as this port hands them out."""
        if not own_ids:
            return message
        pattern = "|".join(re.escape(i) for i in sorted(set(own_ids), key=len, reverse=True))
        return re.sub(rf"(?<![\w:])(?:{pattern})(?!\w)", lambda m: self._out(name, m.group(0)), message)

    async def finalize_invoice(
        self, invoice_id: str, *, erp_invoice_id: str, erp_invoice_number: str | None
    ) -> PsaInvoice:
        name, own = self._in(invoice_id)
        invoice = await self.psas[name].finalize_invoice(
            own, erp_invoice_id=erp_invoice_id, erp_invoice_number=erp_invoice_number
        )
        return self._invoice(name, invoice)

    async def cancel_invoice(self, invoice_id: str) -> PsaInvoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.psas[name].cancel_invoice(own))

    async def record_payment(self, invoice_id: str, payment: PsaPaymentRecord) -> PsaInvoice:
        name, own = self._in(invoice_id)
        return self._invoice(name, await self.psas[name].record_payment(own, payment))

    async def close(self) -> None:
        for psa in self.psas.values():
            await psa.close()
