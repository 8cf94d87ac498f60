"""One sandbox account's state and behaviour: its records and event feed, the rate window, and the
generic list, show, create and update every resource in `sandboxes.kantata.resources` goes through.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

import msgspec
from litestar.di import NamedDependency

from sandboxes.faults import FaultInjector
from sandboxes.kantata.data import (
    COLLECTIONS,
    CURRENCY_SYMBOLS,
    ID_START,
    WORKSPACE_STATUSES,
    Record,
    build_seed,
    format_timestamp,
)
from sandboxes.kantata.resources import RESOURCES as _RESOURCES
from sandboxes.kantata.resources.external_references import (
    _NESTED_REFERENCE_FIELDS,
    _prepare_external_reference,
)
from sandboxes.kantata.schema import (
    _COMMON_FILTERS,
    _MAX_PRICE_EXPONENT,
    _Errors,
    _Field,
    _humanize,
    _Predicate,
    _Resource,
)
from sandboxes.kantata.wire import (
    _DATE,
    DEFAULT_PER_PAGE,
    KantataError,
    _attribute_sets,
    _copy,
    _includes,
    _method_not_allowed,
    _missing_wrapper,
    _no_route,
    _not_found,
    _ordered,
    _paging,
    _validation,
)
from sandboxes.request_log import RequestLogEntry

__all__ = ["KantataSandbox", "KantataSandboxSettings"]


class KantataSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults suit the gateway's tests and demos."""

    tokens: tuple[str, ...] = ("stratum-kantata-sandbox-token",)
    """Accepted bearer tokens (an account administrator's personal token, in Kantata terms)."""
    requests_per_second: int = 50
    """Authenticated API requests allowed per calendar second; more answer 429 without Retry-After."""
    seed: int = 42
    """Seed of the generated data; use the Salesforce sandbox's seed to keep the two aligned."""


@dataclass(slots=True)
class _Write:
    """A validated create or update, applied only once every record in the request is valid."""

    resource: _Resource
    record: Record
    existing: Record | None
    references: list[Record]


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the records, the event feed among them, and the next
    id of each collection."""

    records: dict[str, dict[str, Record]]
    next_ids: dict[str, int]


class KantataSandbox:
    """All mutable state of one sandbox account: records, the event feed, the rate window, faults."""

    durable_type = _DurableState

    def __init__(self, settings: KantataSandboxSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.records: dict[str, dict[str, Record]] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self._next_ids: dict[str, int] = {}
        self._window = (0, 0)  # (epoch second, requests admitted or refused in it)
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget the request log, the rate window and faults."""
        self.records = build_seed(self.settings.seed)
        self._next_ids = {
            collection: max((int(key) for key in records), default=ID_START[collection] - 1) + 1
            for collection, records in self.records.items()
        }
        self.request_log.clear()
        self._window = (0, 0)
        self.faults.clear()

    def durable_state(self) -> _DurableState:
        return _DurableState(records=self.records, next_ids=self._next_ids)

    def restore_durable_state(self, state: _DurableState) -> None:
        self.records = state.records
        self._next_ids = state.next_ids
        # A state saved before a collection existed (billing milestones, invoice fee items) gets it empty.
        for collection in COLLECTIONS:
            self.records.setdefault(collection, {})
            self._next_ids.setdefault(collection, ID_START[collection])

    # -- gatekeeping --------------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> bool:
        if token is None:
            return False
        # Compare against every token, so timing says nothing about which one nearly matched.
        matches = [hmac.compare_digest(token.encode(), known.encode()) for known in self.settings.tokens]
        return any(matches)

    def admit_request(self) -> bool:
        """Count one request in the current second; False once the second's allowance is used up."""
        second = int(self.clock())
        start, count = self._window
        count = count + 1 if start == second else 1
        self._window = (second, count)
        return count <= self.settings.requests_per_second

    @property
    def requests_this_second(self) -> int:
        start, count = self._window
        return count if start == int(self.clock()) else 0

    # -- reading ------------------------------------------------------------------------------------------

    def resource(self, collection: str) -> _Resource:
        resource = _RESOURCES.get(collection)
        if resource is None:
            raise _no_route()
        return resource

    def find(self, resource: _Resource, record_id: str) -> Record:
        record = self.records[resource.collection].get(record_id)
        if record is None:
            raise _not_found(resource.subject_type)
        return record

    def index(self, resource: _Resource, params: Mapping[str, str]) -> dict[str, Any]:
        page, per_page = _paging(params)
        includes = _includes(resource, params)
        predicates = self._predicates(resource, params)
        rows = [
            record
            for record in self.records[resource.collection].values()
            if all(predicate(record) for predicate in predicates)
        ]
        if resource.delivery is not None:
            rows = resource.delivery(rows)
        else:
            rows = _ordered(resource, rows, params.get("order"))
        window = rows[(page - 1) * per_page : page * per_page]
        return self._envelope(resource, window, len(rows), page, per_page, includes)

    def show(self, resource: _Resource, record_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        if not resource.showable:
            raise _no_route()
        includes = _includes(resource, params)
        record = self.find(resource, resource.aliases.get(record_id, record_id))
        if resource.show_scoped and resource.scope is not None:
            # Kantata answers 404 for an archived workspace unless the request includes archived ones.
            visible = resource.scope(self, params)
            if visible is not None and not visible(record):
                raise _not_found(resource.subject_type)
        return self._envelope(resource, [record], 1, 1, DEFAULT_PER_PAGE, includes)

    def _predicates(self, resource: _Resource, params: Mapping[str, str]) -> list[_Predicate]:
        predicates: list[_Predicate] = []
        if resource.scope is not None:
            default_scope = resource.scope(self, params)
            if default_scope is not None:
                predicates.append(default_scope)
        for param, factory in {**_COMMON_FILTERS, **resource.filters}.items():
            value = params.get(param)
            if value is not None:
                predicates.append(factory(self, param, value))
        return predicates

    def _envelope(
        self,
        resource: _Resource,
        rows: list[Record],
        total: int,
        page: int,
        per_page: int,
        includes: list[str],
    ) -> dict[str, Any]:
        primary: dict[str, Record] = {}
        side_loaded: dict[str, dict[str, Record]] = {}
        for record in rows:
            rendered = _copy(record)
            for name in includes:
                association = resource.associations[name]
                related = association.related(self, record)
                if association.ids_field is not None:
                    rendered[association.ids_field] = related
                target = self.records[association.target]
                bucket = side_loaded.setdefault(association.target, {})
                for related_id in related:
                    if related_id in target:
                        bucket[related_id] = _copy(target[related_id])
            primary[record["id"]] = rendered
        payload: dict[str, Any] = {
            "count": total,
            "meta": {
                "count": total,
                "page_count": math.ceil(total / per_page),
                "page_number": page,
                "page_size": per_page,
            },
            "results": [{"key": resource.collection, "id": record["id"]} for record in rows],
            # A JSON object has no order: clients must follow `results`, so the map is keyed in id order.
            resource.collection: dict(sorted(primary.items(), key=lambda item: int(item[0]))),
        }
        for collection, bucket in side_loaded.items():
            merged = payload.setdefault(collection, {})
            for record_id, record in bucket.items():
                merged.setdefault(record_id, record)
        return payload

    # -- writing ------------------------------------------------------------------------------------------

    def create(self, resource: _Resource, body: Any) -> dict[str, Any]:
        if not resource.creatable:
            raise _no_route()
        attribute_sets = _attribute_sets(resource, body)
        writes = [self._validated(resource, attributes, None) for attributes in attribute_sets]
        errors = [error for write in writes for error in write[1]]
        if errors:
            raise KantataError(422, errors)
        created = [self._apply(write) for write, _ in writes]
        return self._envelope(resource, created, len(created), 1, max(len(created), 1), [])

    def update(self, resource: _Resource, record_id: str, body: Any) -> dict[str, Any]:
        if not resource.creatable or not resource.updatable:
            raise _no_route()
        existing = self.find(resource, record_id)
        if not isinstance(body, dict) or not isinstance(body.get(resource.singular), dict):
            raise _missing_wrapper(resource)
        write, errors = self._validated(resource, body[resource.singular], existing)
        if errors:
            raise KantataError(422, errors)
        return self._envelope(resource, [self._apply(write)], 1, 1, DEFAULT_PER_PAGE, [])

    def approve_time(self, time_entry_ids: Iterable[str]) -> list[str]:
        """Approve time entries as a timesheet approval would: one batch, one instant."""
        return self._approve("time_entries", "TimeEntry", "time_entry", time_entry_ids)

    def approve_expenses(self, expense_ids: Iterable[str]) -> list[str]:
        """Approve expenses as an expense report approval would: one batch, one instant."""
        return self._approve("expenses", "Expense", "expense", expense_ids)

    def _approve(self, collection: str, subject_type: str, event: str, ids: Iterable[str]) -> list[str]:
        table = self.records[collection]
        wanted = list(dict.fromkeys(ids))
        missing = [record_id for record_id in wanted if record_id not in table]
        if missing:
            raise _not_found(f"{subject_type} {', '.join(missing)}")
        stamp = self._now()
        for record_id in wanted:
            record = table[record_id]
            if not record["approved"]:
                record["approved"] = True
                record["updated_at"] = stamp
                self._record_event(f"{event}:updated", subject_type, record, stamp)
        return wanted

    def delete(self, resource: _Resource, record_ids: Iterable[str], *, bulk: bool = False) -> list[str]:
        """Delete records all or none, as Kantata's documented deletes do; the ids deleted, in order.

        Deleting publishes no subscribed event (unverified: Kantata's event types for deletes)."""
        deletion = resource.deletion
        if deletion is None or not (deletion.bulk if bulk else deletion.single):
            raise _method_not_allowed(resource.allowed_methods(on_record=not bulk))
        table = self.records[resource.collection]
        wanted = list(dict.fromkeys(record_ids))
        # A soft-deleted record is gone as far as a DELETE is concerned.
        missing = [key for key in wanted if key not in table or table[key].get("deleted_at") is not None]
        if missing:
            raise _not_found(f"{resource.subject_type} {', '.join(missing)}")
        refusal = deletion.refusal or (lambda _: None)
        errors = [
            _validation("id", f"{resource.subject_type} {key}: {why}")
            for key in wanted
            if (why := refusal(table[key])) is not None
        ]
        if errors:
            raise KantataError(422, errors)
        stamp = self._now()
        for key in wanted:
            if deletion.released is not None:
                deletion.released(self, table[key])
            if deletion.soft:
                table[key]["deleted_at"] = stamp
            else:
                del table[key]
        return wanted

    def _validated(
        self, resource: _Resource, attributes: Any, existing: Record | None
    ) -> tuple[_Write, _Errors]:
        errors: _Errors = []
        if not isinstance(attributes, dict):
            raise _missing_wrapper(resource)
        changes: Record = {}
        references: list[Record] = []
        for name, value in attributes.items():
            spec = resource.fields.get(name)
            if spec is None:
                errors.append(_validation(name, f"unknown attribute '{name}' for {resource.subject_type}."))
            elif spec.create_only and existing is not None:
                # Echoing the current value back is harmless; ids may come as numbers.
                if str(value) != str(existing.get(name)):
                    errors.append(_validation(name, f"{_humanize(name)} cannot be changed"))
            elif spec.kind == "nested":
                references = self._nested_references(value, errors)
            else:
                coerced = self._coerce(name, spec, value, errors)
                if coerced is not _INVALID:
                    changes[name] = coerced
        if existing is None:
            for name, spec in resource.fields.items():
                reported = any(error["field"] == name for error in errors)
                if spec.required and changes.get(name) is None and not reported:
                    errors.append(_validation(name, f"{_humanize(name)} can't be blank"))
        record: Record = {**(existing or {}), **changes}
        if not errors and resource.prepare is not None:
            resource.prepare(self, record, existing, errors)
        return _Write(resource, record, existing, references), errors

    def _nested_references(self, value: Any, errors: _Errors) -> list[Record]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            errors.append(_validation("external_references_attributes", "must be a list of objects"))
            return []
        references: list[Record] = []
        for attributes in value:
            reference: Record = {}
            for name, item in attributes.items():
                spec = _NESTED_REFERENCE_FIELDS.get(name)
                qualified = f"external_references.{name}"
                if spec is None:
                    message = f"unknown attribute '{name}' for ExternalReference."
                    errors.append(_validation(qualified, message))
                    continue
                coerced = self._coerce(qualified, spec, item, errors)
                if coerced is not _INVALID:
                    reference[name] = coerced
            for name, spec in _NESTED_REFERENCE_FIELDS.items():
                if spec.required and reference.get(name) is None:
                    qualified = f"external_references.{name}"
                    if not any(error["field"] == qualified for error in errors):
                        errors.append(_validation(qualified, f"{_humanize(name)} can't be blank"))
            references.append(reference)
        return references

    def _coerce(self, name: str, spec: _Field, value: Any, errors: _Errors) -> Any:
        human = _humanize(name.rpartition(".")[2])

        def invalid(message: str = "is invalid") -> object:
            errors.append(_validation(name, f"{human} {message}"))
            return _INVALID

        if value is None:
            if spec.required or spec.kind in ("bool", "status", "choice", "currency"):
                return invalid("can't be blank")
            return None
        kind = spec.kind
        if kind == "ids":
            # A list of ids (numbers or digit strings), or the comma-separated text a form sends.
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list):
                return invalid("must be a list of ids")
            ids = [
                str(item).strip() if isinstance(item, (int, str)) and not isinstance(item, bool) else ""
                for item in items
            ]
            if not all(item.isdigit() for item in ids):
                return invalid("must be a list of ids")
            return [item for item in dict.fromkeys(ids)]
        if kind == "objects":
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                return invalid("must be a list of objects")
            return value
        if kind in ("string", "text"):
            if not isinstance(value, str):
                return invalid()
            if spec.required and not value.strip():
                return invalid("can't be blank")
            if kind == "string" and len(value) > spec.max_length:
                return invalid(f"is too long (maximum is {spec.max_length} characters)")
            return value
        if kind == "date":
            if not isinstance(value, str) or not _DATE.match(value):
                return invalid("must be a date (YYYY-MM-DD)")
            try:
                date.fromisoformat(value)
            except ValueError:
                return invalid("must be a date (YYYY-MM-DD)")
            return value
        if kind == "bool":
            # Rails casts form text: a form-encoded body can only say "true" or "false".
            value = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
            return value if isinstance(value, bool) else invalid("must be true or false")
        if kind == "int":
            if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
                value = int(value)  # form text, cast as Rails does
            if isinstance(value, bool) or not isinstance(value, int):
                return invalid("must be an integer")
            if spec.minimum is not None and value < spec.minimum:
                return invalid(f"must be greater than or equal to {spec.minimum}")
            if spec.maximum is not None and value > spec.maximum:
                return invalid(f"must be less than or equal to {spec.maximum}")
            return value
        if kind == "money":
            # A budget in the currency's units: a JSON number or a decimal string (form bodies send text).
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                return invalid("is not a number")
            try:
                amount = Decimal(str(value).strip())
            except InvalidOperation:
                return invalid("is not a number")
            if not amount.is_finite():
                return invalid("is not a number")
            if amount.adjusted() > _MAX_PRICE_EXPONENT:
                return invalid("is too large")
            if spec.minimum is not None and amount < spec.minimum:
                return invalid(f"must be greater than or equal to {spec.minimum}")
            return amount
        if kind == "currency":
            if not isinstance(value, str) or value not in CURRENCY_SYMBOLS:
                return invalid("is not a supported currency")
            return value
        if kind == "choice":
            text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(text, str) or text not in spec.choices:
                return invalid("is not included in the list")
            return text
        if kind == "status":
            key = int(value) if isinstance(value, str) and value.isdigit() else value
            if isinstance(key, bool) or not isinstance(key, int) or key not in WORKSPACE_STATUSES:
                return invalid("is not included in the list")
            return key
        # "id" and "ref": Kantata ids are strings of digits; clients also send them as numbers.
        reference = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(reference, str) or not reference.isdigit():
            return invalid()
        if kind == "ref" and reference not in self.records[spec.target or ""]:
            return invalid()
        return reference

    def _apply(self, write: _Write) -> Record:
        resource, record = write.resource, write.record
        stamp = self._now()
        action = "updated"
        previous = None if write.existing is None else dict(write.existing)
        if write.existing is None:
            action = "created"
            record = {"id": self._take_id(resource.collection), **record, "created_at": stamp}
            record["updated_at"] = stamp
            self.records[resource.collection][record["id"]] = record
        else:
            record["updated_at"] = stamp
            write.existing.clear()
            write.existing.update(record)
            record = write.existing
        self._record_event(f"{resource.event_subject}:{action}", resource.subject_type, record, stamp)
        if resource.applied is not None:
            resource.applied(self, record, previous)
        for attributes in write.references:
            reference = {
                "id": self._take_id("external_references"),
                "subject_type": resource.subject_type,
                "subject_id": record["id"],
                **attributes,
            }
            _prepare_external_reference(self, reference, None, [])
            reference["created_at"] = reference["updated_at"] = stamp
            self.records["external_references"][reference["id"]] = reference
            self._record_event("external_reference:created", "ExternalReference", reference, stamp)
        return record

    def _take_id(self, collection: str) -> str:
        value = self._next_ids[collection]
        self._next_ids[collection] = value + 1
        return str(value)

    def touch(self, subject_type: str, event_subject: str, record: Record) -> None:
        """Mark ``record`` changed now, as a side effect of another write (an invoice billing it)."""
        stamp = self._now()
        record["updated_at"] = stamp
        self._record_event(f"{event_subject}:updated", subject_type, record, stamp)

    def _now(self) -> str:
        return format_timestamp(datetime.fromtimestamp(self.clock(), UTC))

    def _record_event(self, event_type: str, subject_type: str, subject: Record, stamp: str) -> None:
        event_id = self._take_id("subscribed_events")
        self.records["subscribed_events"][event_id] = {
            "id": event_id,
            "event_type": event_type,
            "subject_type": subject_type,
            "subject_id": subject["id"],
            "created_at": stamp,
            "payload": _copy(subject),
        }


_INVALID = object()


# Handlers receive the account through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[KantataSandbox]
