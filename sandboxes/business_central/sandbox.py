"""One Business Central sandbox tenant's state (`BusinessCentralSandbox`): the entities of every company,
tokens, rate windows, counters, webhooks; what every resource shares (lookups, rendering with etags,
filtering and ordering a list); a write is handed to its resource's rules (`entities.Writes`)."""

from __future__ import annotations

import base64
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import msgspec
from litestar.di import NamedDependency

from sandboxes.business_central import (
    customer_payments,
    customers,
    projects,
    sales_credit_memos,
    sales_invoices,
)
from sandboxes.business_central.companies import COMPANIES
from sandboxes.business_central.customer_payments import CUSTOMER_PAYMENTS
from sandboxes.business_central.customers import CUSTOMERS
from sandboxes.business_central.data import (
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    SEED_NOW,
    ZERO_GUID,
    CompanySetup,
    Record,
    build_seed,
    company_setup,
    format_datetime,
)
from sandboxes.business_central.entities import EntitySet, Writes, apply_body, copy_record, decimals_back
from sandboxes.business_central.errors import BusinessCentralError, not_found
from sandboxes.business_central.odata import compile_filter, compile_orderby
from sandboxes.business_central.projects import PROJECTS
from sandboxes.business_central.sales_credit_memos import SALES_CREDIT_MEMOS
from sandboxes.business_central.sales_invoices import SALES_INVOICE_LINES, SALES_INVOICES
from sandboxes.business_central.settings import BusinessCentralSandboxSettings
from sandboxes.business_central.tax_areas import TAX_AREAS
from sandboxes.business_central.webhooks import SavedSubscription, Webhooks
from sandboxes.business_central.wire import Query
from sandboxes.faults import FaultInjector
from sandboxes.request_log import RequestLogEntry

__all__ = [
    "ENTITY_SETS",
    "BusinessCentralSandbox",
    "DurableState",
    "SandboxDependency",
    "Token",
]


@dataclass(frozen=True, slots=True)
class Token:
    client_id: str
    tenant_id: str
    expires_at: float


class DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the entities, the row version their etags
    continue from, and the webhook subscriptions (absent from states saved before they were kept)."""

    records: dict[str, dict[str, Record]]
    row_version: int
    subscriptions: list[SavedSubscription] = msgspec.field(default_factory=list)


class BusinessCentralSandbox:
    """All mutable state of one sandbox tenant: entities, tokens, rate-limit windows, counters, faults."""

    durable_type = DurableState

    def __init__(
        self, settings: BusinessCentralSandboxSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.clients: dict[str, str] = {DEV_CLIENT_ID: DEV_CLIENT_SECRET}
        self.clients.update({client.client_id: client.client_secret for client in settings.clients})
        self.records: dict[str, dict[str, Record]] = {}
        self.tokens: dict[str, Token] = {}
        self.windows: dict[str, deque[float]] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self.in_flight = 0
        self.throttled = 0
        self.row_version = 0
        self.webhooks = Webhooks(
            self.now,
            window_seconds=settings.notification_window_seconds,
            lifetime=timedelta(seconds=settings.subscription_lifetime_seconds),
            handshake_timeout_seconds=settings.handshake_timeout_seconds,
            transport=settings.notification_transport,
            collection_threshold=settings.notification_collection_threshold,
        )
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget tokens, rate windows, counters, the log and faults."""
        self.records = build_seed(self.settings.seed)
        self.row_version = 0
        for entities in self.records.values():
            for entity in entities.values():
                self.bump(entity)
                for line in entity.get("salesInvoiceLines") or []:
                    self.bump(line)
        self.tokens.clear()
        self.windows.clear()
        self.request_log.clear()
        self.throttled = 0
        self.faults.clear()
        self.webhooks.clear()

    def durable_state(self) -> DurableState:
        return DurableState(
            records=self.records, row_version=self.row_version, subscriptions=self.webhooks.saved()
        )

    def restore_durable_state(self, state: DurableState) -> None:
        # Money is saved as text (msgspec's form of a Decimal); the entity sets say which fields are money.
        sets = {**ENTITY_SETS, COMPANIES.name: COMPANIES}
        for set_name, entities in state.records.items():
            entity_set = sets.get(set_name)
            for entity in entities.values():
                if entity_set is not None:
                    decimals_back(entity_set, entity)
                for line in entity.get("salesInvoiceLines") or []:
                    decimals_back(SALES_INVOICE_LINES, line)
        self.records = state.records
        self.records.setdefault(SALES_CREDIT_MEMOS.name, {})  # states saved before credit memos were kept
        self.row_version = state.row_version
        self.webhooks.restore(state.subscriptions)

    # -- time

    def now(self) -> datetime:
        # Never before the seed's "now": a filter on lastModifiedDateTime must see every write as newer.
        return max(datetime.fromtimestamp(self.clock(), UTC), SEED_NOW + timedelta(seconds=1))

    def today(self) -> date:
        return self.now().date()

    def bump(self, entity: Record) -> None:
        """A new row version, hence a new etag (Business Central's etag is the row's SQL timestamp)."""
        self.row_version += 1
        entity["rowVersion"] = self.row_version

    def principal(self, token: str | None) -> str | None:
        """The client id a valid token was issued to, or None."""
        if token is None:
            return None
        found = self.tokens.get(token)
        if found is None:
            return None
        if self.clock() >= found.expires_at:
            del self.tokens[token]
            return None
        return found.client_id

    def admit(self, principal: str) -> float | None:
        """Count one request against the principal's sliding window; the Retry-After if it is over."""
        now = self.clock()
        window = self.windows.setdefault(principal, deque())
        horizon = now - self.settings.rate_limit_window_seconds
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.settings.rate_limit_requests:
            return max(1.0, window[0] - horizon)
        window.append(now)
        return None

    # -- companies and lookups

    def company(self, company_id: str) -> tuple[Record, CompanySetup]:
        record = self.records["companies"].get(company_id.lower())
        setup = company_setup(company_id.lower())
        if record is None or setup is None:
            raise not_found("company")
        return record, setup

    def entities(self, entity_set: EntitySet, company_id: str) -> list[Record]:
        return [e for e in self.records[entity_set.name].values() if e.get("companyId") == company_id]

    def find(self, entity_set: EntitySet, company_id: str, entity_id: str) -> Record:
        entity = self.records[entity_set.name].get(entity_id.lower())
        if entity is None or entity.get("companyId") != company_id:
            raise not_found(entity_set.entity_type)
        return entity

    def by_number(self, entity_set: EntitySet, company_id: str, number: str) -> Record | None:
        wanted = number.upper()
        return next((e for e in self.entities(entity_set, company_id) if e["number"] == wanted), None)

    # -- rendering

    @staticmethod
    def etag(entity: Record) -> str:
        # Business Central's etags are W/"<base64 of a quoted row-version string>": W/"JzE5OzEy...Jyc=".
        version = int(entity.get("rowVersion") or 0)
        inner = f"'{len(str(version)) + 18};{version:020d}1;00;'"
        return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'

    def render(
        self,
        entity_set: EntitySet,
        entity: Record,
        setup: CompanySetup | None,
        select: list[str] | None = None,
        expand: bool = False,
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {"@odata.etag": self.etag(entity)}
        names = select if select is not None else list(entity_set.fields)
        derived = self.derived(entity_set, entity, setup)
        for name in names:
            rendered[name] = derived[name] if name in derived else entity.get(name)
        if expand:
            rendered["salesInvoiceLines"] = [
                self.render(SALES_INVOICE_LINES, line, setup)
                for line in entity.get("salesInvoiceLines") or []
            ]
        return rendered

    def derived(self, entity_set: EntitySet, entity: Record, setup: CompanySetup | None) -> dict[str, Any]:
        """Properties the API page computes: the local currency shown for blank, the balance due."""
        if setup is None or "currencyCode" not in entity_set.fields:
            return {}
        code = entity.get("currencyCode") or ""
        derived: dict[str, Any] = {
            "currencyCode": code or setup.local_currency,
            "currencyId": ZERO_GUID if not code else str(uuid.uuid5(uuid.NAMESPACE_OID, f"currency:{code}")),
        }
        if entity_set is CUSTOMERS:
            derived.update(customers.derived(self, entity))
        if entity_set is SALES_CREDIT_MEMOS:
            derived.update(sales_credit_memos.derived(self, entity))
        return derived

    # -- lists

    def select(
        self, entity_set: EntitySet, entities: list[Record], setup: CompanySetup | None, query: Query
    ) -> list[Record]:
        """Filter and order `entities` as the query asks (before $skip/$top and paging)."""
        rows = entities
        if query.filter is not None:
            matches = compile_filter(
                query.filter,
                entity_set.fields,
                entity_set.entity_type,
            )
            rows = [row for row in rows if matches({**row, **self.derived(entity_set, row, setup)})]
        keys = (
            compile_orderby(query.orderby, entity_set.fields, entity_set.entity_type)
            if query.orderby is not None
            else [(name, False) for name in entity_set.order]
        )
        rows = list(rows)
        for name, descending in reversed(keys):
            rows.sort(key=lambda row, name=name: _sort_key(row.get(name)), reverse=descending)  # type: ignore[misc]
        return rows

    # -- writes

    def stamp(self, entity: Record) -> None:
        if "lastModifiedDateTime" in entity or entity.get("companyId") is not None:
            entity["lastModifiedDateTime"] = format_datetime(self.now())
        self.bump(entity)

    def next_number(
        self, entity_set: EntitySet, company_id: str, prefix: str, width: int, step: int = 10
    ) -> str:
        """The next number of a number series (``C00010``, ``PR00010``...), past every number in use."""
        used = [
            int(entity["number"][len(prefix) :])
            for entity in self.entities(entity_set, company_id)
            if str(entity.get("number", "")).startswith(prefix) and entity["number"][len(prefix) :].isdigit()
        ]
        return f"{prefix}{max(used, default=0) + step:0{width}d}"

    def check_unique_number(self, entity_set: EntitySet, company_id: str, entity: Record) -> None:
        clash = self.by_number(entity_set, company_id, entity["number"])
        if clash is not None and clash["id"] != entity["id"]:
            raise BusinessCentralError(
                400,
                "Internal_EntityWithSameKeyExists",
                f"The record in table {entity_set.table} already exists. Identification fields and values: "
                f"No.='{entity['number']}'",
            )

    def create(self, entity_set: EntitySet, company_id: str, setup: CompanySetup, body: Any) -> Record:
        writes = _writes(entity_set, "POST")
        entity: Record = {"id": str(uuid.uuid4()), "companyId": company_id}
        writes.create(self, entity, setup, body)
        if writes.stamped:
            entity["lastModifiedDateTime"] = format_datetime(self.now())
        self.bump(entity)
        self.records[entity_set.name][entity["id"]] = entity
        return entity

    def update(
        self, entity_set: EntitySet, company_id: str, setup: CompanySetup, entity: Record, body: Any
    ) -> Record:
        writes = _writes(entity_set, "PATCH")
        changed = copy_record(entity)
        written = apply_body(entity_set, changed, body)
        writes.update(self, entity, changed, written, setup)
        if writes.stamped:
            changed["lastModifiedDateTime"] = format_datetime(self.now())
        self.bump(changed)
        self.records[entity_set.name][changed["id"]] = changed
        return changed

    def delete(self, entity_set: EntitySet, company_id: str, entity: Record) -> None:
        _writes(entity_set, "DELETE").delete(self, entity)
        del self.records[entity_set.name][entity["id"]]


def _writes(entity_set: EntitySet, method: str) -> Writes:
    writes = _WRITES.get(entity_set.name)
    if writes is None:
        # Read-only sets (taxAreas: finance sets them up in the client; salesCreditMemos: made by the
        # invoice's actions here). Unverified: the code and wording,
        # those the API answers for a method a resource does not take.
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", f"'{method}' requests for this resource are not allowed."
        )
    return writes


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | Decimal):
        return (1, Decimal(value))
    return (2, str(value))


_WRITES: Mapping[str, Writes] = {
    CUSTOMERS.name: customers.WRITES,
    PROJECTS.name: projects.WRITES,
    SALES_INVOICES.name: sales_invoices.WRITES,
    CUSTOMER_PAYMENTS.name: customer_payments.WRITES,
}

# How a route handler asks Litestar for the sandbox (provided as "sandbox" by `app`).
SandboxDependency: TypeAlias = NamedDependency[BusinessCentralSandbox]

# The per-company entity sets, by name (``companies({id})/{name}``).
ENTITY_SETS: Mapping[str, EntitySet] = {
    entity_set.name: entity_set
    for entity_set in (CUSTOMERS, PROJECTS, SALES_INVOICES, CUSTOMER_PAYMENTS, SALES_CREDIT_MEMOS, TAX_AREAS)
}
