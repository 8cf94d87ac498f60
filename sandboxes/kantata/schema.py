"""The vocabulary a Kantata resource is described in (`sandboxes.kantata.resources`): its writable fields,
list filters, ``include=`` associations, default scope and write preparation, and the factories the
descriptions are built from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal

from sandboxes.kantata.data import CURRENCY_SYMBOLS, Record, format_timestamp
from sandboxes.kantata.wire import _DATE, KantataError, _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox


_Predicate = Callable[[Record], bool]
_FilterFactory = Callable[["KantataSandbox", str, str], _Predicate]
_FieldKind = Literal[
    "string",
    "text",
    "date",
    "bool",
    "int",
    "money",
    "currency",
    "id",
    "ref",
    "choice",
    "status",
    "nested",
    "ids",
    "objects",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    """One writable attribute: its type and the rules Kantata enforces on it."""

    kind: _FieldKind
    required: bool = False
    create_only: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 255
    choices: tuple[str, ...] = ()
    target: str | None = None  # collection a "ref" points into


@dataclass(frozen=True, slots=True)
class _Association:
    """An ``include=`` name: where its records are side-loaded and which ones they are."""

    target: str
    ids_field: str | None  # added to the including record; None when a ``*_id`` field already names it
    related: Callable[[KantataSandbox, Record], list[str]]


_Prepare = Callable[["KantataSandbox", Record, "Record | None", list[dict[str, str]]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Deletion:
    """How ``DELETE /api/v1/{collection}/{id}`` removes a record, for a resource Kantata documents it for."""

    refusal: Callable[[Record], str | None] | None = None  # why a record may not go (a 422), or None
    soft: bool = False  # the record stays, with ``deleted_at`` set, hidden by the resource's scope
    single: bool = True  # False: Kantata documents only the bulk form for the collection
    bulk: bool = False  # also ``DELETE /api/v1/{collection}?ids=1,2`` (or a body ``{"ids": "1,2"}``)
    released: Callable[[KantataSandbox, Record], None] | None = None  # what deleting undoes elsewhere


_DefaultScope = Callable[["KantataSandbox", Mapping[str, str]], "_Predicate | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resource:
    collection: str
    singular: str
    subject_type: str
    fields: Mapping[str, _Field] = field(default_factory=dict)
    prepare: _Prepare | None = None  # defaults, derived fields and cross-field rules; None: read only
    updatable: bool = True
    filters: Mapping[str, _FilterFactory] = field(default_factory=dict)
    orders: frozenset[str] = frozenset()
    associations: Mapping[str, _Association] = field(default_factory=dict)
    scope: _DefaultScope | None = None  # the default scope (e.g. archived hidden) a parameter can lift
    show_scoped: bool = False  # whether the default scope also hides a record from its own show
    showable: bool = True  # False: the collection has no show route (404 as for an unknown route)
    aliases: Mapping[str, str] = field(default_factory=dict)  # show's other names for an id (users' "me")
    # The list's own order, in place of `order=` (the event feed's delivery order); None: by `order=`.
    delivery: Callable[[list[Record]], list[Record]] | None = None
    deletion: _Deletion | None = None  # None: no DELETE, as for workspaces (405)
    # What a create or update does to other records once the record is stored (an invoice marking the
    # items it bills invoiced); None: nothing.
    applied: Callable[[KantataSandbox, Record, Record | None], None] | None = None

    @property
    def event_subject(self) -> str:
        return self.singular

    @property
    def creatable(self) -> bool:
        return self.prepare is not None

    def allowed_methods(self, *, on_record: bool) -> list[str]:
        """What a 405's ``Allow`` lists for the collection's path, or for one of its records' paths."""
        deletion = self.deletion
        if on_record:
            methods = ["GET"] if self.showable else []
            methods += ["PUT", "PATCH"] if self.creatable and self.updatable else []
            return methods + (["DELETE"] if deletion is not None and deletion.single else [])
        methods = ["GET", "POST"] if self.creatable else ["GET"]
        return methods + (["DELETE"] if deletion is not None and deletion.bulk else [])


def _humanize(name: str) -> str:
    text = name.removesuffix("_id").removesuffix("_in_cents").replace("_", " ")
    return text[:1].upper() + text[1:]


# -- filters ----------------------------------------------------------------------------------------------


def _id_list(param: str, value: str) -> set[str]:
    ids = {part.strip() for part in value.split(",") if part.strip()}
    if not ids or not all(part.isdigit() for part in ids):
        raise KantataError.invalid(param, f"{param} must be a comma-separated list of ids")
    return ids


def _ids_in(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        wanted = _id_list(param, value)
        return lambda record: record.get(record_field) in wanted

    return factory


def _one_of(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        wanted = {part.strip() for part in value.split(",") if part.strip()}
        return lambda record: record.get(record_field) in wanted

    return factory


def _equals(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        return lambda record: record.get(record_field) == value

    return factory


def _parse_bool(param: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise KantataError.invalid(param, f"{param} must be true or false")


def _flag(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        wanted = _parse_bool(param, value)
        return lambda record: bool(record.get(record_field)) is wanted

    return factory


def _present(record_field: str) -> _FilterFactory:
    """A filter that is on whatever its value: Kantata's time entry ``approved`` "is always processed as
    true; the actual value you provide is ignored" (developer.kantata.com/kantata/specification/
    time-entries/get-time-entries). Rails casts nothing first, so a value that is not a boolean is no
    error either."""

    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        return lambda record: bool(record.get(record_field))

    return factory


def _parse_date(param: str, value: str) -> date:
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise KantataError.invalid(param, f"{param} must be a date (YYYY-MM-DD)") from None


def _between(record_field: str, *, open_ended: bool = False) -> _FilterFactory:
    """``first:last`` (both inclusive); with ``open_ended`` a side left empty is no bound, as Kantata's
    ``date_expensed_between`` documents ("If a date is not specified, it is interpreted as no start/end
    date")."""

    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        first, separator, last = value.partition(":")
        if not separator:
            raise KantataError.invalid(param, f"{param} must be YYYY-MM-DD:YYYY-MM-DD")
        low = "" if open_ended and not first else _parse_date(param, first).isoformat()
        high = "9999-12-31" if open_ended and not last else _parse_date(param, last).isoformat()
        return lambda record: record.get(record_field) is not None and low <= record[record_field] <= high

    return factory


def _parse_timestamp(param: str, value: str) -> str:
    """A client's ISO 8601 moment in the sandbox's own format, so timestamps compare as strings."""
    text = value.strip().replace(" ", "+")  # an unencoded "+" in a query string arrives as a space
    try:
        if _DATE.match(text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise KantataError.invalid(param, f"{param} must be an ISO 8601 date or time") from None
    return format_timestamp(moment)


def _after(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        bound = _parse_timestamp(param, value)
        return lambda record: record.get(record_field, "") > bound

    return factory


def _search(*record_fields: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        needle = value.strip().casefold()
        return lambda record: any(needle in str(record.get(name) or "").casefold() for name in record_fields)

    return factory


def _contains(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        wanted = _id_list(param, value)
        return lambda record: not wanted.isdisjoint(record.get(record_field) or ())

    return factory


# -- associations -----------------------------------------------------------------------------------------


def _belongs_to(record_field: str) -> Callable[[KantataSandbox, Record], list[str]]:
    def related(_: KantataSandbox, record: Record) -> list[str]:
        value = record.get(record_field)
        return [] if value is None else [value]

    return related


def _has_many(
    collection: str, foreign_key: str, pick: str = "id"
) -> Callable[[KantataSandbox, Record], list[str]]:
    def related(sandbox: KantataSandbox, record: Record) -> list[str]:
        return [
            other[pick]
            for other in sandbox.records[collection].values()
            if other.get(foreign_key) == record["id"] and other.get(pick) is not None
        ]

    return related


def _references_of(subject_type: str) -> Callable[[KantataSandbox, Record], list[str]]:
    def related(sandbox: KantataSandbox, record: Record) -> list[str]:
        return [
            reference["id"]
            for reference in sandbox.records["external_references"].values()
            if reference["subject_type"] == subject_type and reference["subject_id"] == record["id"]
        ]

    return related


# -- preparing writes -------------------------------------------------------------------------------------


_Errors = list[dict[str, str]]


def _invoiced_refusal(message: str) -> Callable[[Record], str | None]:
    return lambda record: message if record.get("is_invoiced") else None


def _check_dates(record: Record, first: str, last: str, errors: _Errors) -> None:
    if record.get(first) and record.get(last) and record[last] < record[first]:
        message = f"{_humanize(last)} must be on or after the {_humanize(first).lower()}"
        errors.append(_validation(last, message))


def _currency_fields(record: Record) -> None:
    record["currency_symbol"] = CURRENCY_SYMBOLS.get(record["currency"], record["currency"])
    record["currency_base_unit"] = 100


def _workspace_of(sandbox: KantataSandbox, record: Record) -> Record:
    return sandbox.records["workspaces"][record["workspace_id"]]


_COMMON_FILTERS: Mapping[str, _FilterFactory] = {"only": _ids_in("id")}
_TIMESTAMP_ORDERS = frozenset({"id", "created_at", "updated_at"})


_MAX_PRICE_EXPONENT = 100  # a bound on a budget's size, so a tiny body cannot ask for a huge integer
