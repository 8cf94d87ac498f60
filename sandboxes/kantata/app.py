"""The Kantata OX (formerly Mavenlink) sandbox: a Litestar app that answers like Kantata's API v1 on the wire.

Served at the app's own root; every API path also answers with a ``.json`` suffix, as Kantata's does:

- ``GET /api/v1/{collection}``: list, with Kantata's envelope ``{"count", "meta", "results",
  "<collection>": {id: record}, <side-loaded collections>}``, ``page``/``per_page`` (default 20, clamped
  to 200), ``only=``, ``order=field:asc|desc``, ``include=`` and the per-collection filters below
- ``GET /api/v1/{collection}/{id}``: one record in the same envelope; an archived workspace is 404 unless
  ``include_archived=true`` (or ``archived=include|only``); ``GET /api/v1/users/me`` is the token's user
- ``POST /api/v1/{collection}``: create from ``{"<singular>": {...}}`` or, in bulk,
  ``{"<collection>": [{...}, ...]}``; 200 with the envelope. There is NO idempotency: a repeated POST
  creates another record. Look before creating, through ``external_references``. Bodies may also be
  form-encoded the Rails way (``workspace[title]=...``, ``workspace[list][][name]=...``).
- A workspace create needs ``creator_role`` (``maven`` or ``buyer``) and takes the budget as ``price`` in
  the currency's units (stored and answered as ``price_in_cents``), per the specification shipped with
  Kantata's Ruby client (mavenlink_gem, ``lib/config/specification.yml``). Workspaces have no DELETE
  (``Mavenlink::Workspace`` is ``Indestructible``): 405; a project is archived instead.
- ``PUT`` (or ``PATCH``) ``/api/v1/{collection}/{id}``: update from ``{"<singular>": {...}}``; 200
- ``GET /api/v1/subscribed_events``: the pull event feed, see "Events" below
- ``/__sandbox/...``: reset, stats, time approval and fault injection (no auth; never on vendor paths)
- ``GET /__sandbox/records/{collection}``: the stored records of a collection as held (archived
  workspaces included), ``?field=value`` filters by equality on top-level fields
  (`sandboxes.admin_records`), e.g. ``external_references?service_model_ref=...``

Collections: ``workspaces``, ``stories``, ``participations``, ``workspace_resources``, ``time_entries``,
``expenses``, ``external_references`` (list, show, create, update); ``invoices``, ``users``, ``roles``
(read only);
``subscribed_events`` (list only).

Every ``/api/...`` call needs ``Authorization: Bearer <token>`` with one of the configured tokens (401
``{"errors":[{"type":"oauth",...}]}`` otherwise) and counts against ``requests_per_second``; over it the
answer is 429 with a JSON errors body and, like Kantata, no Retry-After and no rate-limit headers. Every
response of the vendor API is ``application/json; charset=utf-8``; errors are
``{"errors": [{"type": "oauth"|"system"|"validation", "message", "field"?}]}`` (422 for validation, 404
for an unknown id or route).

Events: every create and update the sandbox performs records a subscribed event
(``<subject>:created|updated``, e.g. ``time_entry:updated``, ``workspace:created``,
``external_reference:created``), and the seed holds the events of its last two weeks. Like the real feed
they arrive duplicated and out of order, deterministically:

- Events are delivered by ``created_at`` (second resolution), oldest first; events of the same second
  come newest id first, so within a second the order is the reverse of the id order.
- An event whose serial number (``int(id) - 150000000``) is a multiple of `DUPLICATE_EVERY` (7) is
  delivered twice: in its place, and again right after the event delivered next (at the end if it is
  the last one). Both copies are in ``results``; the id-keyed ``subscribed_events`` map holds it once.
- ``created_after`` is exclusive, so a client that resumes from the last ``created_at`` it saw must
  overlap by a second and deduplicate by id. ``order`` does not apply to the feed.

Filters (besides ``only``): workspaces ``search``, ``updated_after``, ``archived=only|exclude|include``,
``include_archived`` (archived workspaces are hidden by default; ``archived`` wins over it); stories
``workspace_id``, ``story_type``, ``parent_id``,
``search``, ``updated_after``; participations ``workspace_id``, ``user_id``; workspace_resources
``workspace_id``, ``user_id``, ``role_id``; time_entries ``workspace_id``, ``story_id``,
``with_user_ids``, ``date_performed_between=YYYY-MM-DD:YYYY-MM-DD``, ``approved``, ``billable``,
``updated_after``, ``from_archived_workspaces``; expenses ``workspace_id``, ``with_user_ids``,
``date_between``, ``approved``, ``is_billable``, ``updated_after``, ``from_archived_workspaces``;
invoices ``workspace_id``, ``status``, ``draft``, ``updated_after``; users ``participant_in``, ``search``;
roles ``search``; external_references ``subject_type``, ``subject_id``, ``service_name``,
``service_model``, ``service_model_ref``; subscribed_events ``created_after``, ``event_types``. Unknown
parameters are ignored, as Rails does. Comma-separated lists are accepted wherever ids or type names are.

Includes: workspaces ``participants`` (-> ``users``, adds ``participant_ids``), ``participations``,
``stories``, ``workspace_resources``, ``external_references``, ``creator``, ``primary_maven``; stories
``workspace``, ``parent``, ``sub_stories``, ``external_references``; participations and
workspace_resources ``workspace``, ``user``; time_entries ``workspace``, ``user``, ``story``; expenses
``workspace``, ``user``; invoices ``workspaces``, ``user``; external_references ``workspace``
(when the subject is one).

Unverified
----------
Guesses about Kantata's wire format, to check against the real API (everything else follows Kantata's
public documentation and public clients):

- ``workspace_resources`` as the name and shape of staffing demand (``role_id``, ``role_name``,
  ``title``, ``user_id`` null when unstaffed, ``allocated_minutes``, ``start_date``, ``end_date``);
  ``roles`` records as ``{"id", "name"}``
- external references: the filter names ``subject_type``, ``subject_id``, ``service_name``,
  ``service_model``, ``service_model_ref``; nested ``external_references_attributes`` on workspace and
  story creates; ``status`` values (seed uses ``"synced"``); no uniqueness (the same
  ``service_model_ref`` may be attached to several subjects)
- workspace status keys and colours (200 Not Started grey, 210 In Planning lightblue, 310 Active green,
  320 On Hold yellow, 400 Completed blue, 410 Cancelled red), written as ``status_key``; new workspaces
  start at 200
- workspace filters ``search`` (title, case-insensitive substring), ``updated_after`` (exclusive),
  ``include_archived``; ``only`` does not bypass the archived scope
- the workspace budget's rounding: a ``price`` with fractions of a cent is refused (422), not rounded;
  ``creator_role`` is checked but not stored or answered
- ``from_archived_workspaces`` also hiding expenses of archived workspaces by default
- ``with_user_ids`` on expenses; ``date_between`` on expenses; ``approved`` on expenses (Kantata tracks
  expense approval through expense-report submissions); ``parent_id`` on stories;
  ``participant_in`` on users; ``status`` and ``draft`` on invoices
- invoice ``price_in_cents`` (total) and ``status`` values (``new``, ``accepted payment``,
  ``cancelled``)
- ``time_entries.approved`` is read-only (approval happens through timesheet submissions; here
  ``POST /__sandbox/time_entries/approve``), and an approved entry cannot be updated (422)
- validation strictness: unknown or read-only attributes in a body are rejected with 422 naming the
  field (Rails may silently drop them); booleans must be JSON booleans; unknown ``include`` names and
  bad ``order``/filter values are 422 with ``field`` = the parameter
- error messages' wording, and 400 ``system`` for a body that is not JSON; the missing-wrapper error
  (422, ``field`` = the singular key)
- a second participation of the same user in a workspace is rejected (422 on ``user_id``)
- the 429 body (``type`` ``"system"``) and that only authenticated requests are counted, in one window
  per calendar second shared by every token
- the default order (id ascending) and ``order`` fields; ``page_count`` is 0 for an empty list;
  ``page``/``per_page`` below 1 are treated as 1 and non-numbers are 422
- POST to a read-only collection answering 404 (no such route); PATCH accepted like PUT (Rails routes)
- ``include=stories``, ``workspace_resources``, ``creator``, ``primary_maven`` on workspaces and
  ``sub_stories`` on stories; the ``<association>_ids`` field names added by an include
- ``time_in_minutes`` between 1 and 1440; a time entry's default ``rate_in_cents`` (the user's role
  rate in the workspace currency, 0 for the API user) and default ``user_id`` (the token's user)
- timestamps in UTC (``+00:00``); the real API answers in the account's time zone
- ``subject_type`` values accepted by ``external_references`` (``Workspace``, ``Story``,
  ``TimeEntry``, ``Expense``, ``Invoice``, ``Participation``, ``User``)
- the subscribed event shape (``id``, ``event_type``, ``subject_type``, ``subject_id``, ``created_at``,
  ``payload`` = the subject as it was after the change), event type names
  (``<snake_subject>:created|updated``), the ``event_types`` and ``created_after`` semantics
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import parse_qsl

import msgspec
from litestar import Litestar, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath
from litestar.types import ASGIApp as LitestarASGIApp

from apis.json_limits import json_too_deep
from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import ASGIApp, FaultInjector, Receive, Scope, Send, relative_path, with_faults
from sandboxes.kantata.data import (
    ADMIN_USER_ID,
    CURRENCY_SYMBOLS,
    ID_START,
    ROLES,
    WORKSPACE_STATUSES,
    Record,
    build_seed,
    default_rate_in_cents,
    format_timestamp,
    status_of,
)
from sandboxes.request_log import RequestLog, RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_PER_PAGE",
    "DUPLICATE_EVERY",
    "MAX_PER_PAGE",
    "KantataError",
    "KantataSandbox",
    "KantataSandboxSettings",
    "RequestLogEntry",
    "TimeApproval",
    "create_kantata_sandbox",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__sandbox"
API_PREFIX = "/api/v1"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
DUPLICATE_EVERY = 7
_JSON = "application/json; charset=utf-8"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NEW_WORKSPACE_STATUS = 200


class KantataSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults suit the gateway's tests and demos."""

    tokens: tuple[str, ...] = ("stratum-kantata-sandbox-token",)
    """Accepted bearer tokens (an account administrator's personal token, in Kantata terms)."""
    requests_per_second: int = 50
    """Authenticated API requests allowed per calendar second; more answer 429 without Retry-After."""
    seed: int = 42
    """Seed of the generated data; use the Salesforce sandbox's seed to keep the two aligned."""


class KantataError(Exception):
    """An error answered as Kantata's ``{"errors": [{"type", "message", "field"?}]}``."""

    def __init__(self, status: int, errors: list[dict[str, str]], headers: Mapping[str, str] | None = None):
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors
        self.headers = dict(headers or {})

    @classmethod
    def system(cls, status: int, message: str) -> KantataError:
        return cls(status, [{"type": "system", "message": message}])

    @classmethod
    def invalid(cls, field_name: str, message: str) -> KantataError:
        return cls(422, [_validation(field_name, message)])

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def _validation(field_name: str, message: str) -> dict[str, str]:
    return {"type": "validation", "message": message, "field": field_name}


def _not_found(kind: str) -> KantataError:
    return KantataError.system(404, f"{kind} not found")


def _no_route() -> KantataError:
    return KantataError.system(404, "The requested route does not exist")


# ---------------------------------------------------------------------------------------------------------
# Resource definitions
# ---------------------------------------------------------------------------------------------------------

_Predicate = Callable[[Record], bool]
_FilterFactory = Callable[["KantataSandbox", str, str], _Predicate]
_FieldKind = Literal[
    "string", "text", "date", "bool", "int", "money", "currency", "id", "ref", "choice", "status", "nested"
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

    @property
    def event_subject(self) -> str:
        return self.singular

    @property
    def creatable(self) -> bool:
        return self.prepare is not None


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


def _parse_date(param: str, value: str) -> date:
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise KantataError.invalid(param, f"{param} must be a date (YYYY-MM-DD)") from None


def _between(record_field: str) -> _FilterFactory:
    def factory(_: KantataSandbox, param: str, value: str) -> _Predicate:
        first, separator, last = value.partition(":")
        if not separator:
            raise KantataError.invalid(param, f"{param} must be YYYY-MM-DD:YYYY-MM-DD")
        low, high = _parse_date(param, first).isoformat(), _parse_date(param, last).isoformat()
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


def _participant_in(sandbox: KantataSandbox, param: str, value: str) -> _Predicate:
    workspaces = _id_list(param, value)
    users = {
        participation["user_id"]
        for participation in sandbox.records["participations"].values()
        if participation["workspace_id"] in workspaces
    }
    return lambda record: record["id"] in users


def _archived_workspaces(sandbox: KantataSandbox) -> set[str]:
    return {key for key, workspace in sandbox.records["workspaces"].items() if workspace["archived"]}


_ARCHIVED_CHOICES = {
    "only": lambda record: record["archived"],
    "exclude": lambda record: not record["archived"],
    "include": None,
}


def _unarchived_scope(sandbox: KantataSandbox, params: Mapping[str, str]) -> _Predicate | None:
    # Kantata's workspace docs: `archived=only|exclude|include` picks archived workspaces, and
    # `include_archived=true` is the older way to say include; neither given hides archived workspaces.
    if "archived" in params:
        if params["archived"] not in _ARCHIVED_CHOICES:
            raise KantataError.invalid("archived", "archived must be one of only, exclude, include")
        return _ARCHIVED_CHOICES[params["archived"]]
    if "include_archived" in params and _parse_bool("include_archived", params["include_archived"]):
        return None
    return lambda record: not record["archived"]


def _in_unarchived_workspace(sandbox: KantataSandbox, params: Mapping[str, str]) -> _Predicate | None:
    param = "from_archived_workspaces"
    if param in params and _parse_bool(param, params[param]):
        return None
    archived = _archived_workspaces(sandbox)
    return lambda record: record["workspace_id"] not in archived


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


def _workspace_subject(_: KantataSandbox, record: Record) -> list[str]:
    return [record["subject_id"]] if record["subject_type"] == "Workspace" else []


def _invoice_workspaces(_: KantataSandbox, record: Record) -> list[str]:
    return list(record["workspace_ids"])


# -- preparing writes -------------------------------------------------------------------------------------

_Errors = list[dict[str, str]]


def _check_dates(record: Record, first: str, last: str, errors: _Errors) -> None:
    if record.get(first) and record.get(last) and record[last] < record[first]:
        message = f"{_humanize(last)} must be on or after the {_humanize(first).lower()}"
        errors.append(_validation(last, message))


def _currency_fields(record: Record) -> None:
    record["currency_symbol"] = CURRENCY_SYMBOLS.get(record["currency"], record["currency"])
    record["currency_base_unit"] = 100


def _workspace_of(sandbox: KantataSandbox, record: Record) -> Record:
    return sandbox.records["workspaces"][record["workspace_id"]]


def _prepare_workspace(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None:
        defaults: Record = {
            "description": None,
            "budgeted": False,
            "price_in_cents": None,
            "currency": "USD",
            "start_date": None,
            "due_date": None,
            "status": status_of(_NEW_WORKSPACE_STATUS),
            "creator_id": ADMIN_USER_ID,
            "primary_maven_id": None,
            "archived": False,
            "consultant_role_name": "Consultants",
            "client_role_name": "Clients",
        }
        for key, value in defaults.items():
            record.setdefault(key, value)
        _currency_fields(record)
    # The API user's side in the project decides its participation in Kantata; the sandbox keeps only the
    # API user as creator, so the role is checked and not stored (Kantata does not echo it either).
    record.pop("creator_role", None)
    if "price" in record:
        price: Decimal | None = record.pop("price")
        if price is None:
            record["price_in_cents"] = None
        else:
            # Exact: the default context's 28 digits would round a large budget's cents silently.
            exact = Context(prec=len(price.as_tuple().digits) + 10, Emax=_MAX_PRICE_EXPONENT + 10)
            cents = exact.multiply(price, record["currency_base_unit"])
            if cents != cents.to_integral_value():
                errors.append(_validation("price", "Price must not have fractions of a cent"))
            else:
                record["price_in_cents"] = int(cents)
    if "status_key" in record:
        record["status"] = status_of(record.pop("status_key"))
    _check_dates(record, "start_date", "due_date", errors)


def _prepare_story(sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors) -> None:
    if existing is None:
        defaults: Record = {
            "description": None,
            "story_type": "task",
            "state": "not started",
            "start_date": None,
            "due_date": None,
            "budget_estimate_in_cents": None,
            "percentage_complete": 0,
            "parent_id": None,
            "archived": False,
        }
        for key, value in defaults.items():
            record.setdefault(key, value)
    parent_id = record.get("parent_id")
    if parent_id is not None:
        parent = sandbox.records["stories"].get(parent_id)
        misplaced = parent is None or parent["workspace_id"] != record.get("workspace_id")
        if misplaced or parent_id == record.get("id"):
            errors.append(_validation("parent_id", "Parent must be a story in the same workspace"))
    _check_dates(record, "start_date", "due_date", errors)


def _prepare_participation(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    record.setdefault("role", "maven")
    if existing is None and any(
        other["workspace_id"] == record.get("workspace_id") and other["user_id"] == record.get("user_id")
        for other in sandbox.records["participations"].values()
    ):
        errors.append(_validation("user_id", "User has already been added to this workspace"))


def _prepare_workspace_resource(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None and "workspace_id" in record:
        workspace = _workspace_of(sandbox, record)
        record.setdefault("user_id", None)
        record.setdefault("allocated_minutes", 0)
        record.setdefault("start_date", workspace["start_date"])
        record.setdefault("end_date", workspace["due_date"])
    if "role_id" in record:
        record["role_name"] = ROLES[record["role_id"]]
        record.setdefault("title", record["role_name"])
    _check_dates(record, "start_date", "end_date", errors)


def _prepare_time_entry(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is not None and existing["approved"]:
        errors.append(_validation("approved", "Approved time entries cannot be edited"))
        return
    if "workspace_id" not in record:
        return  # already reported as missing
    workspace = _workspace_of(sandbox, record)
    if existing is None:
        record.setdefault("user_id", ADMIN_USER_ID)
        record.setdefault("story_id", None)
        record.setdefault("billable", True)
        record.setdefault("notes", None)
        record.setdefault("rate_in_cents", default_rate_in_cents(record["user_id"], workspace["currency"]))
        record["currency"] = workspace["currency"]
        record["approved"] = False
        record["is_invoiced"] = False
        _currency_fields(record)
    story_id = record.get("story_id")
    story = None if story_id is None else sandbox.records["stories"][story_id]
    if story is not None and story["workspace_id"] != record["workspace_id"]:
        errors.append(_validation("story_id", "Story must belong to the workspace"))


def _prepare_expense(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None and "workspace_id" in record:
        workspace = _workspace_of(sandbox, record)
        record.setdefault("user_id", ADMIN_USER_ID)
        record.setdefault("currency", workspace["currency"])
        record.setdefault("is_billable", True)
        record.setdefault("reimbursable", True)
        record.setdefault("notes", None)
        record["approved"] = False
        record["is_invoiced"] = False
    if "currency" in record:
        _currency_fields(record)


_SUBJECT_COLLECTIONS: Mapping[str, str] = {
    "Workspace": "workspaces",
    "Story": "stories",
    "TimeEntry": "time_entries",
    "Expense": "expenses",
    "Invoice": "invoices",
    "Participation": "participations",
    "User": "users",
}


def _prepare_external_reference(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None:
        for key in ("status", "external_status", "external_link", "external_message"):
            record.setdefault(key, None)
        record.setdefault("locked", False)
    subject_type, subject_id = record.get("subject_type"), record.get("subject_id")
    if subject_type is not None and subject_id is not None:
        collection = _SUBJECT_COLLECTIONS[subject_type]
        if subject_id not in sandbox.records[collection]:
            errors.append(_validation("subject_id", f"{subject_type} {subject_id} does not exist"))


_EXTERNAL_REFERENCE_FIELDS: Mapping[str, _Field] = {
    "subject_type": _Field(
        kind="choice", required=True, create_only=True, choices=tuple(_SUBJECT_COLLECTIONS)
    ),
    "subject_id": _Field(kind="id", required=True, create_only=True),
    "service_name": _Field(kind="string", required=True),
    "service_model": _Field(kind="string", required=True),
    "service_model_ref": _Field(kind="string", required=True),
    "status": _Field(kind="string"),
    "external_status": _Field(kind="string"),
    "external_link": _Field(kind="string", max_length=2048),
    "external_message": _Field(kind="text"),
    "locked": _Field(kind="bool"),
}
# The nested form names its subject implicitly: the record being created.
_NESTED_REFERENCE_FIELDS = {
    name: spec
    for name, spec in _EXTERNAL_REFERENCE_FIELDS.items()
    if name not in ("subject_type", "subject_id")
}

_COMMON_FILTERS: Mapping[str, _FilterFactory] = {"only": _ids_in("id")}
_TIMESTAMP_ORDERS = frozenset({"id", "created_at", "updated_at"})

_RESOURCE_LIST: tuple[_Resource, ...] = (
    _Resource(
        collection="workspaces",
        singular="workspace",
        subject_type="Workspace",
        fields={
            "title": _Field(kind="string", required=True),
            "description": _Field(kind="text"),
            # mavenlink_gem's lib/config/specification.yml (workspaces): `creator_role` must be one of
            # maven, buyer on create, and the budget is written as `price` (`price_in_cents` is read only).
            "creator_role": _Field(
                kind="choice", choices=("maven", "buyer"), required=True, create_only=True
            ),
            "budgeted": _Field(kind="bool"),
            "price": _Field(kind="money", minimum=0),
            "currency": _Field(kind="currency", create_only=True),
            "start_date": _Field(kind="date"),
            "due_date": _Field(kind="date"),
            "status_key": _Field(kind="status"),
            "primary_maven_id": _Field(kind="ref", target="users"),
            "archived": _Field(kind="bool"),
            "external_references_attributes": _Field(kind="nested"),
        },
        prepare=_prepare_workspace,
        filters={
            "search": _search("title"),
            "updated_after": _after("updated_at"),
        },
        orders=_TIMESTAMP_ORDERS | {"title", "start_date", "due_date"},
        associations={
            "participants": _Association(
                "users", "participant_ids", _has_many("participations", "workspace_id", "user_id")
            ),
            "participations": _Association(
                "participations", "participation_ids", _has_many("participations", "workspace_id")
            ),
            "stories": _Association("stories", "story_ids", _has_many("stories", "workspace_id")),
            "workspace_resources": _Association(
                "workspace_resources",
                "workspace_resource_ids",
                _has_many("workspace_resources", "workspace_id"),
            ),
            "external_references": _Association(
                "external_references", "external_reference_ids", _references_of("Workspace")
            ),
            "creator": _Association("users", None, _belongs_to("creator_id")),
            "primary_maven": _Association("users", None, _belongs_to("primary_maven_id")),
        },
        scope=_unarchived_scope,
        show_scoped=True,
    ),
    _Resource(
        collection="stories",
        singular="story",
        subject_type="Story",
        fields={
            "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
            "title": _Field(kind="string", required=True),
            "description": _Field(kind="text"),
            "story_type": _Field(kind="choice", choices=("task", "milestone", "deliverable", "issue")),
            "state": _Field(kind="choice", choices=("not started", "started", "completed")),
            "start_date": _Field(kind="date"),
            "due_date": _Field(kind="date"),
            "budget_estimate_in_cents": _Field(kind="int", minimum=0),
            "percentage_complete": _Field(kind="int", minimum=0, maximum=100),
            "parent_id": _Field(kind="ref", target="stories"),
            "archived": _Field(kind="bool"),
            "external_references_attributes": _Field(kind="nested"),
        },
        prepare=_prepare_story,
        filters={
            "workspace_id": _ids_in("workspace_id"),
            "story_type": _one_of("story_type"),
            "parent_id": _ids_in("parent_id"),
            "search": _search("title"),
            "updated_after": _after("updated_at"),
        },
        orders=_TIMESTAMP_ORDERS | {"title", "start_date", "due_date"},
        associations={
            "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
            "parent": _Association("stories", None, _belongs_to("parent_id")),
            "sub_stories": _Association("stories", "sub_story_ids", _has_many("stories", "parent_id")),
            "external_references": _Association(
                "external_references", "external_reference_ids", _references_of("Story")
            ),
        },
    ),
    _Resource(
        collection="participations",
        singular="participation",
        subject_type="Participation",
        fields={
            "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
            "user_id": _Field(kind="ref", target="users", required=True, create_only=True),
            "role": _Field(kind="choice", choices=("maven", "buyer")),
        },
        prepare=_prepare_participation,
        filters={"workspace_id": _ids_in("workspace_id"), "user_id": _ids_in("user_id")},
        orders=_TIMESTAMP_ORDERS,
        associations={
            "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
            "user": _Association("users", None, _belongs_to("user_id")),
        },
    ),
    _Resource(
        collection="workspace_resources",
        singular="workspace_resource",
        subject_type="WorkspaceResource",
        fields={
            "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
            "role_id": _Field(kind="choice", required=True, choices=tuple(ROLES)),
            "title": _Field(kind="string"),
            "user_id": _Field(kind="ref", target="users"),
            "allocated_minutes": _Field(kind="int", minimum=0),
            "start_date": _Field(kind="date"),
            "end_date": _Field(kind="date"),
        },
        prepare=_prepare_workspace_resource,
        filters={
            "workspace_id": _ids_in("workspace_id"),
            "user_id": _ids_in("user_id"),
            "role_id": _ids_in("role_id"),
        },
        orders=_TIMESTAMP_ORDERS | {"start_date"},
        associations={
            "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
            "user": _Association("users", None, _belongs_to("user_id")),
        },
    ),
    _Resource(
        collection="time_entries",
        singular="time_entry",
        subject_type="TimeEntry",
        fields={
            "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
            "date_performed": _Field(kind="date", required=True),
            "time_in_minutes": _Field(kind="int", required=True, minimum=1, maximum=24 * 60),
            "user_id": _Field(kind="ref", target="users"),
            "story_id": _Field(kind="ref", target="stories"),
            "billable": _Field(kind="bool"),
            "rate_in_cents": _Field(kind="int", minimum=0),
            "notes": _Field(kind="text"),
        },
        prepare=_prepare_time_entry,
        filters={
            "workspace_id": _ids_in("workspace_id"),
            "story_id": _ids_in("story_id"),
            "with_user_ids": _ids_in("user_id"),
            "date_performed_between": _between("date_performed"),
            "approved": _flag("approved"),
            "billable": _flag("billable"),
            "updated_after": _after("updated_at"),
        },
        orders=_TIMESTAMP_ORDERS | {"date_performed"},
        associations={
            "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
            "user": _Association("users", None, _belongs_to("user_id")),
            "story": _Association("stories", None, _belongs_to("story_id")),
        },
        scope=_in_unarchived_workspace,
    ),
    _Resource(
        collection="expenses",
        singular="expense",
        subject_type="Expense",
        fields={
            "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
            "date": _Field(kind="date", required=True),
            "category": _Field(kind="string", required=True),
            "amount_in_cents": _Field(kind="int", required=True, minimum=1),
            "currency": _Field(kind="currency"),
            "user_id": _Field(kind="ref", target="users"),
            "is_billable": _Field(kind="bool"),
            "reimbursable": _Field(kind="bool"),
            "notes": _Field(kind="text"),
        },
        prepare=_prepare_expense,
        filters={
            "workspace_id": _ids_in("workspace_id"),
            "with_user_ids": _ids_in("user_id"),
            "date_between": _between("date"),
            "approved": _flag("approved"),
            "is_billable": _flag("is_billable"),
            "updated_after": _after("updated_at"),
        },
        orders=_TIMESTAMP_ORDERS | {"date"},
        associations={
            "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
            "user": _Association("users", None, _belongs_to("user_id")),
        },
        scope=_in_unarchived_workspace,
    ),
    _Resource(
        collection="invoices",
        singular="invoice",
        subject_type="Invoice",
        filters={
            "workspace_id": _contains("workspace_ids"),
            "status": _one_of("status"),
            "draft": _flag("draft"),
            "updated_after": _after("updated_at"),
        },
        orders=_TIMESTAMP_ORDERS | {"invoice_date", "due_date"},
        associations={
            "workspaces": _Association("workspaces", None, _invoice_workspaces),
            "user": _Association("users", None, _belongs_to("user_id")),
        },
    ),
    _Resource(
        collection="roles",
        singular="role",
        subject_type="Role",
        filters={"search": _search("name")},
        orders=frozenset({"id", "name"}),
    ),
    _Resource(
        collection="users",
        singular="user",
        subject_type="User",
        filters={"participant_in": _participant_in, "search": _search("full_name", "email_address")},
        orders=frozenset({"id", "full_name"}),
    ),
    _Resource(
        collection="external_references",
        singular="external_reference",
        subject_type="ExternalReference",
        fields=_EXTERNAL_REFERENCE_FIELDS,
        prepare=_prepare_external_reference,
        filters={
            "subject_type": _one_of("subject_type"),
            "subject_id": _ids_in("subject_id"),
            "service_name": _equals("service_name"),
            "service_model": _equals("service_model"),
            "service_model_ref": _one_of("service_model_ref"),
        },
        orders=_TIMESTAMP_ORDERS,
        associations={"workspace": _Association("workspaces", None, _workspace_subject)},
    ),
    _Resource(
        collection="subscribed_events",
        singular="subscribed_event",
        subject_type="SubscribedEvent",
        updatable=False,
        filters={"created_after": _after("created_at"), "event_types": _one_of("event_type")},
    ),
)
_RESOURCES: Mapping[str, _Resource] = {resource.collection: resource for resource in _RESOURCE_LIST}


# ---------------------------------------------------------------------------------------------------------
# The sandbox account
# ---------------------------------------------------------------------------------------------------------


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
        if resource.collection == "subscribed_events":
            rows = _delivery_order(rows)
        else:
            rows = _ordered(resource, rows, params.get("order"))
        window = rows[(page - 1) * per_page : page * per_page]
        return self._envelope(resource, window, len(rows), page, per_page, includes)

    def show(self, resource: _Resource, record_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        if resource.collection == "subscribed_events":
            raise _no_route()
        includes = _includes(resource, params)
        if resource.collection == "users" and record_id == "me":
            record_id = ADMIN_USER_ID  # every sandbox token is the account administrator's
        record = self.find(resource, record_id)
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
        entries = self.records["time_entries"]
        wanted = list(dict.fromkeys(time_entry_ids))
        missing = [entry_id for entry_id in wanted if entry_id not in entries]
        if missing:
            raise _not_found(f"TimeEntry {', '.join(missing)}")
        stamp = self._now()
        for entry_id in wanted:
            entry = entries[entry_id]
            if not entry["approved"]:
                entry["approved"] = True
                entry["updated_at"] = stamp
                self._record_event("time_entry:updated", "TimeEntry", entry, stamp)
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
_MAX_PRICE_EXPONENT = 100  # a bound on a budget's size, so a tiny body cannot ask for a huge integer


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _missing_wrapper(resource: _Resource) -> KantataError:
    message = f"param is missing or the value is empty: {resource.singular}"
    return KantataError.invalid(resource.singular, message)


def _attribute_sets(resource: _Resource, body: Any) -> list[Any]:
    """The records a create body asks for: ``{"<singular>": {...}}`` or ``{"<collection>": [...]}``."""
    if isinstance(body, dict):
        single = body.get(resource.singular)
        if isinstance(single, dict):
            return [single]
        many = body.get(resource.collection)
        if isinstance(many, list) and many:
            return many
    raise _missing_wrapper(resource)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise KantataError.invalid(name, f"{name} must be an integer") from None


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    page = max(1, _int_param(params, "page", 1))
    # Kantata quietly serves at most 200 records a page, whatever was asked for.
    per_page = min(MAX_PER_PAGE, max(1, _int_param(params, "per_page", DEFAULT_PER_PAGE)))
    return page, per_page


def _includes(resource: _Resource, params: Mapping[str, str]) -> list[str]:
    names = [name.strip() for name in params.get("include", "").split(",") if name.strip()]
    for name in names:
        if name not in resource.associations:
            message = f"'{name}' is not a valid include for {resource.subject_type}"
            raise KantataError.invalid("include", message)
    return list(dict.fromkeys(names))


def _ordered(resource: _Resource, rows: list[Record], order: str | None) -> list[Record]:
    rows = sorted(rows, key=lambda record: int(record["id"]))
    if not order:
        return rows
    name, _, direction = order.partition(":")
    direction = direction.lower() or "asc"
    if name not in resource.orders or direction not in ("asc", "desc"):
        raise KantataError.invalid("order", f"'{order}' is not a valid order for {resource.subject_type}")
    descending = direction == "desc"
    # Nulls last either way; the id sort above keeps ties stable and deterministic.
    present = [record for record in rows if record.get(name) is not None]
    absent = [record for record in rows if record.get(name) is None]
    key = (lambda record: int(record["id"])) if name == "id" else (lambda record: record[name])
    return sorted(present, key=key, reverse=descending) + absent


def _delivery_order(events: list[Record]) -> list[Record]:
    """The feed as delivered: by second, newest id first within one, every 7th twice (see module doc)."""
    ordered = sorted(events, key=lambda event: (event["created_at"], -int(event["id"])))
    delivered: list[Record] = []
    redelivery: Record | None = None
    for event in ordered:
        delivered.append(event)
        if redelivery is not None:
            delivered.append(redelivery)
            redelivery = None
        serial = int(event["id"]) - ID_START["subscribed_events"] + 1
        if serial % DUPLICATE_EVERY == 0:
            redelivery = event
    if redelivery is not None:
        delivered.append(redelivery)
    return delivered


# Handlers receive the account through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[KantataSandbox]


# ---------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _on_kantata_error(_: Request[Any, Any, Any], exc: KantataError) -> Response[bytes]:
    return _json(exc.body(), exc.status, exc.headers)


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return relative_path(request.scope).startswith(API_PREFIX + "/")  # type: ignore[arg-type]


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if not _is_api(request):
        return _json({"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers)
    if exc.status_code == 404:
        return _json(_no_route().body(), 404)
    message = "Method not allowed" if exc.status_code == 405 else exc.detail
    return _json(KantataError.system(exc.status_code, message).body(), exc.status_code, exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("kantata sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_api(request):
        return _json(KantataError.system(500, "An unexpected error occurred").body(), 500)
    return _json({"status_code": 500, "detail": "Internal Server Error"}, 500)


def _form_body(raw: bytes) -> dict[str, Any]:
    """A Rails-style form body (``workspace[title]=x&workspace[tags][]=a``) as the JSON body it stands for.

    Kantata (Rails) accepts form-encoded writes beside JSON; values stay text, as a form has no types."""
    body: dict[str, Any] = {}
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise KantataError.system(400, "The request body is not a valid form") from None
    for key, value in pairs:
        head, _, rest = key.partition("[")
        names = [head, *[part.rstrip("]") for part in rest.split("[")]] if rest else [head]
        node: Any = body
        for position, name in enumerate(names):
            last = position == len(names) - 1
            if name == "" and isinstance(node, list):
                if last:
                    node.append(value)
                    break
                # Rails: `a[][x]=1&a[][y]=2` fills one hash; a key the last hash already has starts the next.
                child = names[position + 1]
                if not node or not isinstance(node[-1], dict) or child in node[-1]:
                    node.append({})
                node = node[-1]
                continue
            if not isinstance(node, dict):
                raise KantataError.system(400, f"The form field {key!r} is not valid")
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, [] if names[position + 1] == "" else {})
    return body


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
        return _form_body(raw)
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise KantataError.system(400, "The request body is not valid JSON") from None


def _query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in request.query_params.items()}


# ---------------------------------------------------------------------------------------------------------
# API v1
# ---------------------------------------------------------------------------------------------------------

_COLLECTION_PATH = f"{API_PREFIX}/{{collection:str}}"
_RECORD_PATH = f"{API_PREFIX}/{{collection:str}}/{{record_id:str}}"


@get(_COLLECTION_PATH)
async def list_records(
    request: Request[Any, Any, Any], collection: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return _json(sandbox.index(sandbox.resource(collection), _query(request)))


@get(_RECORD_PATH)
async def show_record(
    request: Request[Any, Any, Any], collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return _json(sandbox.show(sandbox.resource(collection), record_id, _query(request)))


@post(_COLLECTION_PATH, status_code=200)
async def create_records(
    request: Request[Any, Any, Any], collection: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    resource = sandbox.resource(collection)
    if not resource.creatable:
        raise _no_route()
    return _json(sandbox.create(resource, await _json_body(request)))


@route(_RECORD_PATH, http_method=["PUT", "PATCH"], status_code=200)
async def update_record(
    request: Request[Any, Any, Any], collection: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    resource = sandbox.resource(collection)
    if not resource.creatable or not resource.updatable:
        raise _no_route()
    sandbox.find(resource, record_id)  # 404 beats body errors
    return _json(sandbox.update(resource, record_id, await _json_body(request)))


# ---------------------------------------------------------------------------------------------------------
# Sandbox administration
# ---------------------------------------------------------------------------------------------------------


class TimeApproval(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /__sandbox/time_entries/approve``."""

    time_entry_ids: list[str]


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/time_entries/approve", status_code=200)
async def approve_time(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    # Parsed by _json_body like every other body here, so a body nested too deep is a 400 too.
    try:
        data = msgspec.convert(await _json_body(request), TimeApproval)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=str(exc)) from None
    return _json({"approved": sandbox.approve_time(data.time_entry_ids)})


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "requests_per_second": sandbox.settings.requests_per_second,
            "requests_this_second": sandbox.requests_this_second,
            "records": {collection: len(records) for collection, records in sandbox.records.items()},
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


async def _send_errors(send: Send, error: KantataError) -> None:
    body = msgspec.json.encode(error.body())
    headers = [(b"content-type", _JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_UNAUTHORIZED = KantataError(401, [{"type": "oauth", "message": "Invalid OAuth 2 Access Token"}])
_RATE_LIMITED = KantataError.system(429, "Rate limit exceeded. Please slow down and try again later.")


class _ApiGate:
    """Authenticates and rate-limits ``/api/...`` before Litestar routes it, and drops a ``.json`` suffix.

    Living outside the router means unroutable paths and wrong methods are authenticated and counted
    too, exactly like every other API request.
    """

    def __init__(self, app: ASGIApp, sandbox: KantataSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        if not self.sandbox.authenticate(bearer_token(scope)):
            await _send_errors(send, _UNAUTHORIZED)
            return
        if not self.sandbox.admit_request():
            await _send_errors(send, _RATE_LIMITED)
            return
        if path.endswith(".json"):
            # "/api/v1/workspaces/7.json" is "/api/v1/workspaces/7" to Kantata; the router knows the latter.
            scope = {**scope, "path": scope["path"][: -len(".json")]}
            raw_path = scope.get("raw_path")
            if isinstance(raw_path, bytes) and raw_path.endswith(b".json"):
                scope["raw_path"] = raw_path[: -len(b".json")]
        await self.app(scope, receive, send)


def create_kantata_sandbox(settings: KantataSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox account as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``; every
    path it matches and hands out is relative to its own root. In-process handles for tests:
    ``app.state.sandbox`` (`KantataSandbox`, whose ``clock`` may be replaced) and ``app.state.faults``
    (`FaultInjector`).
    """
    settings = settings or KantataSandboxSettings()
    sandbox = KantataSandbox(settings)

    def provide_sandbox() -> KantataSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            list_records,
            show_record,
            create_records,
            update_record,
            reset,
            approve_time,
            stats,
            stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            KantataError: _on_kantata_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    # Faults, auth and rate limiting must see every request, routed or not, so they wrap Litestar's own
    # handler (inside Litestar.__call__, which still owns lifespan and scope setup) rather than being route
    # middleware, which Litestar only runs for matched routes.
    router = cast("ASGIApp", app.asgi_handler)
    wrapped = RequestLog(
        with_faults(_ApiGate(router, sandbox), sandbox.faults, ADMIN_PREFIX),
        lambda entry: sandbox.request_log.append(entry),
        ADMIN_PREFIX,
    )
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app
