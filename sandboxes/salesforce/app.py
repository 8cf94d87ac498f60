"""The Salesforce sandbox: a Litestar app that answers like the Salesforce REST API on the wire.

Served at the app's own root (mount it anywhere: URLs it hands out follow Salesforce's rules, see
`create_salesforce_sandbox`):

- ``POST /services/oauth2/token``: client-credentials grant (HTTP Basic or form fields) and the JWT
  bearer grant (RS256 assertion signed with a registered client's key; `dev_jwt_private_key_pem`)
- ``GET /services/data``: API versions (no auth, like Salesforce); every version from v31.0 up to
  ``latest_api_version`` is served, any other answers 404 ``NOT_FOUND``; URLs in answers repeat the
  version the request named
- ``GET /services/data/vXX.X``, ``.../limits``
- ``GET .../sobjects/`` (describeGlobal), ``GET .../sobjects/{Obj}/`` (basic information) and
  ``GET .../sobjects/{Obj}/describe/``, all derived from the schemas (`sandboxes.salesforce.describe`)
- ``.../sobjects/{Obj}``: ``POST`` creates; ``GET/PATCH/DELETE .../{id}`` read, update, delete (a read
  with ``If-Modified-Since`` answers 304 with no body while the record is unchanged since that date);
  ``GET/PATCH .../{ExtField}/{value}`` read or upsert by external id (``?updateOnly=true``);
  ``GET .../updated/`` and ``.../deleted/`` (``?start=&end=``) are the replication change feeds
- ``.../query?q=`` and ``.../queryAll?q=`` with ``nextRecordsUrl`` paging (queryAll sees deleted rows);
  SOQL (relationship fields, subqueries, COUNT/GROUP BY, date literals) is `sandboxes.salesforce.soql`
- ``POST .../composite``: up to 25 subrequests with ``@{ref.field}`` references and ``allOrNone``
- ``POST .../composite/sobjects``: create up to 200 records of any objects (sObject Collections), with
  ``allOrNone``
- ``/__sandbox/...``: reset, session expiry, stats and fault injection (no auth; never on vendor paths)
- ``GET /__sandbox/records/{Object}``: the live (not deleted) records of an object as held,
  ``?Field=value`` filters by equality on top-level fields (`sandboxes.admin_records`)

Objects: ``Account``, ``Contact``, ``Opportunity``, ``Contract``, ``Opportunity_Milestone__c``,
``Rate_Card_Line__c`` and the read-only ``Organization`` (schemas and seed in `sandboxes.salesforce.data`).
Every ``/services/data/vXX.X/...`` call needs a bearer token, counts once against the daily API limit (a
composite call too) and carries ``Sforce-Limit-Info``; errors there are Salesforce's JSON arrays.

Behaviour the public documentation leaves open is decided in one place each, marked "(unverified)", so
it is easy to correct: the codes and messages of the change-feed, composite-shape, sObject Collections
and upsert-key errors (`_MESSAGES`), the 405 answer to writes on a read-only object
(`_read_only_object`), refusing to create a contract that is already Activated, and the maximum lifetime
of a JWT assertion (`_JWT_MAX_LIFETIME_SECONDS`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import hmac
import logging
import random
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from hashlib import sha256
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, unquote

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from litestar import Litestar, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp as LitestarASGIApp

from apis.json_limits import json_too_deep
from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import ASGIApp, FaultInjector, Message, Receive, Scope, Send, relative_path, with_faults
from sandboxes.request_log import RequestLog, RequestLogEntry
from sandboxes.salesforce.data import (
    INTEGRATION_USER_ID,
    ORG_ID,
    SCHEMAS,
    STAGES,
    USERNAMES,
    USERS,
    FieldSpec,
    ObjectSchema,
    Record,
    build_seed,
    contract_end_date,
    format_datetime,
    normalize_salesforce_id,
    parse_datetime,
    salesforce_id,
)
from sandboxes.salesforce.describe import describe_global, describe_object, object_basics
from sandboxes.salesforce.soql import BoundQuery, SoqlError, compile_query

__all__ = [
    "ADMIN_PREFIX",
    "DEV_JWT_CONSUMER_KEY",
    "RequestLogEntry",
    "SalesforceError",
    "SalesforceSandbox",
    "SalesforceSandboxSettings",
    "create_salesforce_sandbox",
    "dev_jwt_private_key_pem",
    "dev_jwt_public_key_pem",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__sandbox"
DEV_JWT_CONSUMER_KEY = "stratum-sandbox"
"""The dev connected app's consumer key: the client-credentials client and, by default, the JWT client."""

_DATA_PREFIX = "/services/data/"
_JSON = "application/json;charset=UTF-8"
# Salesforce keeps an idle query cursor for 15 minutes; the cap bounds memory if clients never finish.
_CURSOR_TTL_SECONDS = 15 * 60
_MAX_CURSORS = 100
_DEFAULT_BATCH_SIZE = 2000
_MIN_BATCH_SIZE = 200
_NOT_FOUND_MESSAGE = "The requested resource does not exist"
# Salesforce retired v21.0-v30.0 in Summer '25; every later release is still served.
_OLDEST_API_VERSION = 31
_VERSION_SEGMENT = re.compile(r"v(\d{2,3})\.0")
# The version the current request named (``vXX.X`` in its path): the URLs Salesforce hands back
# (``attributes.url``, ``nextRecordsUrl``, ``Location``) repeat it. Set per request by `_ApiGate` and per
# composite subrequest, so no handler has to pass it down to where records are rendered.
_REQUEST_VERSION: ContextVar[str | None] = ContextVar("salesforce_request_version", default=None)
# `POST .../composite/sobjects` takes at most this many records (the REST API Developer Guide's
# "sObject Collections").
_COLLECTION_MAX_RECORDS = 200
# Currency fields are currency(18,2): the first value with 17 digits before the decimal point is too large.
_CURRENCY_LIMIT = 10**16
# The running user's currency, the default for CurrencyIsoCode on create (the org's corporate currency).
_DEFAULT_CURRENCY = "USD"
# Ids minted by the API start far above every seed number, so a created record never takes a seed id.
_FIRST_MINTED_NUMBER = 500_000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REPLICATION_WINDOW = timedelta(days=30)
_COMPOSITE_MAX_SUBREQUESTS = 25
_COMPOSITE_MAX_QUERIES = 5
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_REFERENCE = re.compile(r"@\{([^{}]*)\}")
_REFERENCE_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_SIGNED_CONTRACT_STATUSES = frozenset({"Activated", "Terminated", "Expired"})

# Messages the public documentation does not spell out (unverified): kept here so they are easy to fix.
_MESSAGES = {
    "not_external_id": "Field {field} is not an External ID or the Id field",
    "unknown_external_id": "Provided external ID field does not exist or is not accessible: {field}",
    "external_id_mismatch": "The value of {field} in the request body does not match the value in the URL",
    "replication_missing": "Missing required parameter: {name}",
    "replication_format": "{name}: invalid date/time: {value}",
    "replication_order": "EndDate must chronologically follow the StartDate",
    "replication_too_old": "startDate cannot be more than 30 days ago",
    "composite_shape": "Invalid composite request: {detail}",
    "composite_too_many": "Composite requests can contain at most 25 subrequests",
    "composite_too_many_queries": "Composite requests can contain at most 5 query subrequests",
    "composite_reference_id": "Invalid referenceId: {reference_id}",
    "composite_duplicate_reference": "Duplicate referenceId provided in the request: {reference_id}",
    "unresolved_reference": "Invalid reference specified. No value for {expression} found in {reference_id}. "
    "Provided referenceId ('{reference_id}') must belong to an earlier subrequest that succeeded.",
    "collection_too_many": "Maximum number of records allowed is 200",
    "collection_type_missing": "The attributes.type property must be specified for every record",
    "collection_id_given": "Record ID: cannot specify Id in an insert call",
    "unsupported_operation": "entity type {sobject} does not support {operation}",
    "contract_status_on_create": "Status: Choose a valid contract status and save your changes. "
    "Ask your admin for details.",
}
_ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."

# The JWT bearer flow (see `_jwt_bearer_grant`).
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LOGIN_AUDIENCES = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
# Salesforce asks for an expiry within three minutes; two more allow for clock skew (unverified).
_JWT_MAX_LIFETIME_SECONDS = 5 * 60

# "OAuth <token>" is Salesforce's legacy spelling and still accepted by the real API.
_AUTH_SCHEMES = ("bearer", "oauth")


def _default_clients() -> dict[str, str]:
    return {DEV_JWT_CONSUMER_KEY: "stratum-sandbox-secret"}


def _default_usernames() -> dict[str, str]:
    return dict(USERNAMES)


class SalesforceSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a fresh developer org."""

    latest_api_version: str = "v62.0"
    """The newest API version served. Like a real org, the sandbox serves every release from v31.0 (the
    oldest Salesforce still serves) up to this one, so clients pinned to any current version work (the
    adapter's is configuration; simple-salesforce has its own default); any other answers 404
    ``NOT_FOUND``."""
    clients: Mapping[str, str] = msgspec.field(default_factory=_default_clients)
    """Consumer key -> consumer secret accepted by the client-credentials grant."""
    jwt_clients: Mapping[str, str] | None = None
    """Consumer key -> PEM public key or X.509 certificate (the connected app's "digital signature")
    accepted for the JWT bearer grant. None registers `DEV_JWT_CONSUMER_KEY` with
    `dev_jwt_public_key_pem`, derived only when the first assertion arrives."""
    usernames: Mapping[str, str] = msgspec.field(default_factory=_default_usernames)
    """Username -> user id (one of `data.USERS`) of the users for whom the connected app is approved:
    the possible ``sub`` of a JWT assertion. Client-credentials sessions run as the integration user."""
    instance_url: str | None = None
    """The ``instance_url`` token responses name, e.g. ``https://acme.my.salesforce.com``, as when a
    client logs in at login.salesforce.com; None: the URL the token request came to."""
    daily_api_limit: int = 5000
    session_ttl_seconds: int = 7200
    max_batch_size: int = 2000
    """Cap on query batch size, below Salesforce's own 200..2000 range if a test wants small pages."""
    seed: int = 42

    def __post_init__(self) -> None:
        if _version_number(self.latest_api_version) is None:
            raise ValueError(f"latest_api_version must look like v62.0, not {self.latest_api_version!r}")
        unknown = sorted(name for name, user_id in self.usernames.items() if user_id not in USERS)
        if unknown:
            # msgspec reports this as a validation error naming the settings.
            raise ValueError(f"usernames map to unknown user ids: {', '.join(unknown)}")


class SalesforceError(Exception):
    """An error answered as Salesforce's ``[{"message", "errorCode", "fields"?}]`` array."""

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        error: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


class _MultipleMatches(Exception):
    """An external id matched several records: 300 with the records' URLs, as Salesforce answers."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(f"{len(urls)} records match")
        self.urls = urls


@dataclass(slots=True)
class _Cursor:
    rows: list[Record]
    batch_size: int
    last_used: float


@dataclass(frozen=True, slots=True)
class _Session:
    expires_at: float
    user_id: str


@dataclass(slots=True)
class _Deleted:
    """A record in the recycle bin: what queryAll and the deleted feed still see."""

    record: Record
    deleted_at: datetime


@dataclass(slots=True)
class _DataState:
    """Everything a composite ``allOrNone`` transaction may have to roll back."""

    records: dict[str, dict[str, Record]]
    recycle_bin: dict[str, dict[str, _Deleted]]
    serials: dict[str, int]
    auto_numbers: dict[str, int]


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the data a transaction rolls back, and when the
    org's history (the change feeds) begins."""

    data: _DataState
    reset_at: datetime


@dataclass(frozen=True, slots=True)
class _Result:
    """One REST operation's answer, shared by the HTTP handlers and composite subrequests."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def _not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", _NOT_FOUND_MESSAGE)


def _version_number(version: str) -> int | None:
    """62 for ``v62.0``; None for anything that is not a release's version path segment."""
    match = _VERSION_SEGMENT.fullmatch(version)
    return int(match.group(1)) if match else None


def _read_only_object(schema: ObjectSchema, method: str) -> SalesforceError:
    """A write the object's describe flags refuse (``Organization``): the resource answers 405 and lists
    the methods it does allow (unverified: the exact list Salesforce names)."""
    allowed = ["HEAD", "GET"]
    if method != "POST":  # a record's resource: what may be done to an existing record
        allowed += (["PATCH"] if schema.updateable else []) + (["DELETE"] if schema.deletable else [])
    message = f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
    return SalesforceError(405, "METHOD_NOT_ALLOWED", message)


def _release_label(version: str) -> str:
    # Three releases a year; v61.0 was Summer '24. Only cosmetic, for the versions listing.
    try:
        index = int(float(version)) - 59
    except ValueError:
        return version
    season = ("Winter", "Spring", "Summer")[index % 3]
    return f"{season} '{24 + index // 3:02d}"


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _highest_number(records: Mapping[str, Record], field_name: str, prefix: str) -> int:
    """The highest auto-number (``prefix`` + digits) in `records`, 0 for none."""
    return max((int(str(r[field_name]).removeprefix(prefix)) for r in records.values()), default=0)


def _references_to(target: str) -> list[tuple[ObjectSchema, FieldSpec]]:
    return [
        (schema, spec)
        for schema in SCHEMAS.values()
        for spec in schema.fields
        if spec.kind == "reference" and spec.reference_to == target
    ]


class SalesforceSandbox:
    """All mutable state of one sandbox org: records, sessions, API usage, query cursors, faults.

    The record operations (`create`, `update`, `upsert`, `delete`, reads, queries, change feeds) are
    all or nothing and raise `SalesforceError`; the HTTP handlers and composite subrequests share them.
    """

    durable_type = _DurableState

    def __init__(
        self, settings: SalesforceSandboxSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.records: dict[str, dict[str, Record]] = {}
        self.recycle_bin: dict[str, dict[str, _Deleted]] = {}
        self.sessions: dict[str, _Session] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_serial = 0
        self._serials: dict[str, int] = {}
        self._auto_numbers: dict[str, int] = {}
        self._reset_at = self.now()
        # Parse registered keys up front: a bad PEM is a configuration error, not a failed login later.
        self._jwt_keys = {
            consumer_key: _load_public_key(pem) for consumer_key, pem in (settings.jwt_clients or {}).items()
        }
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget sessions, usage, cursors, deletions, the request log and faults."""
        self.records = build_seed(self.settings.seed)
        self.recycle_bin = {name: {} for name in SCHEMAS}
        self.sessions.clear()
        self.request_log.clear()
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors.clear()
        self._cursor_serial = 0
        self._serials = {schema.key_prefix: _FIRST_MINTED_NUMBER for schema in SCHEMAS.values()}
        # Auto-numbers carry on from the seed's highest, as they would in an org that has history.
        self._auto_numbers = {
            "Contract": 1 + _highest_number(self.records["Contract"], "ContractNumber", ""),
            "Rate_Card_Line__c": 1 + _highest_number(self.records["Rate_Card_Line__c"], "Name", "RCL-"),
        }
        self._reset_at = self.now()
        self.faults.clear()

    def durable_state(self) -> _DurableState:
        data = _DataState(self.records, self.recycle_bin, self._serials, self._auto_numbers)
        return _DurableState(data=data, reset_at=self._reset_at)

    def restore_durable_state(self, state: _DurableState) -> None:
        self._restore(state.data)
        self._reset_at = state.reset_at

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- sessions -----------------------------------------------------------------------------------------

    def open_session(self, user_id: str = INTEGRATION_USER_ID) -> tuple[str, int]:
        """Issue an access token for `user_id`; returns it with its issue time in epoch milliseconds."""
        now = self.clock()
        # Real tokens are "<org id>!<opaque>"; some clients log the org part, so keep the shape.
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(72)}"
        self.sessions[token] = _Session(now + self.settings.session_ttl_seconds, user_id)
        return token, int(now * 1000)

    def session_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        session = self.sessions.get(token)
        if session is None:
            return False
        if self.clock() >= session.expires_at:
            del self.sessions[token]
            return False
        return True

    def session_user(self, token: str | None) -> str:
        """The user a (valid) token acts as; the integration user if it is unknown."""
        session = None if token is None else self.sessions.get(token)
        return INTEGRATION_USER_ID if session is None else session.user_id

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def jwt_public_key(self, consumer_key: str) -> rsa.RSAPublicKey | None:
        """The key a JWT from `consumer_key` must be signed with, or None for an unknown client."""
        if self.settings.jwt_clients is None:
            return _dev_jwt_key().public_key() if consumer_key == DEV_JWT_CONSUMER_KEY else None
        return self._jwt_keys.get(consumer_key)

    # -- API usage ----------------------------------------------------------------------------------------

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    @property
    def api_usage(self) -> int:
        """Calls counted today (UTC): the usage rolls over at midnight like a 24-hour limit would."""
        today = self._today()
        if today != self._usage_day:
            self._usage_day = today
            self._api_usage = 0
        return self._api_usage

    def consume_api_call(self) -> bool:
        """Count one call; False (and nothing counted) once the daily limit is used up."""
        if self.api_usage >= self.settings.daily_api_limit:
            return False
        self._api_usage += 1
        return True

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.settings.daily_api_limit}"

    def limits(self) -> dict[str, Any]:
        maximum = self.settings.daily_api_limit
        return {"DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - self.api_usage)}}

    # -- records: lookup and rendering --------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Every version path the org serves, oldest first (``GET /services/data/``)."""
        latest = _version_number(self.settings.latest_api_version)
        assert latest is not None  # the settings checked it
        return [f"v{number}.0" for number in range(_OLDEST_API_VERSION, latest + 1)]

    def check_version(self, version: str) -> None:
        number = _version_number(version)
        latest = _version_number(self.settings.latest_api_version)
        if number is None or latest is None or not _OLDEST_API_VERSION <= number <= latest:
            raise _not_found()

    def version_base(self) -> str:
        """``/services/data/vXX.X`` for the version the current request named (the latest outside one)."""
        return f"/services/data/{_REQUEST_VERSION.get() or self.settings.latest_api_version}"

    def schema(self, sobject: str) -> ObjectSchema:
        wanted = sobject.lower()
        for name, schema in SCHEMAS.items():
            if name.lower() == wanted:
                return schema
        raise _not_found()

    def record(self, schema: ObjectSchema, record_id: str) -> Record:
        normalized = normalize_salesforce_id(record_id)
        if normalized is not None:
            record = self.records[schema.name].get(normalized)
            if record is not None:
                return record
            if normalized in self.recycle_bin[schema.name]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
        raise _not_found()

    def record_url(self, schema: ObjectSchema, record_id: str) -> str:
        return f"{self.version_base()}/sobjects/{schema.name}/{record_id}"

    def _url_for(self, sobject: str, record_id: str) -> str:
        return f"{self.version_base()}/sobjects/{sobject}/{record_id}"

    def render(
        self, schema: ObjectSchema, record: Record, fields: tuple[FieldSpec, ...] | None = None
    ) -> Record:
        """A record as the API shows it: ``attributes`` first, then the fields."""
        rendered: Record = {"attributes": {"type": schema.name, "url": self.record_url(schema, record["Id"])}}
        for spec in fields if fields is not None else schema.fields:
            rendered[spec.name] = record.get(spec.name)
        return rendered

    def read(self, schema: ObjectSchema, record_id: str, fields: str | None = None) -> Record:
        """``GET .../sobjects/{Obj}/{id}[?fields=a,b]``."""
        record = self.record(schema, record_id)
        return self.render(schema, record, None if fields is None else _selected_fields(schema, fields))

    def modified_since(self, schema: ObjectSchema, record_id: str, if_modified_since: str | None) -> bool:
        """False when ``If-Modified-Since`` names a moment the record has not changed after: Salesforce
        then answers 304 Not Modified with no body (REST API Developer Guide, sObject Rows, "Conditional
        Requests: If-Modified-Since")."""
        stamp = self.record(schema, record_id).get("LastModifiedDate")
        if not isinstance(stamp, str):
            return True
        return _modified_since(datetime.fromisoformat(stamp), if_modified_since)

    def metadata_modified_since(self, if_modified_since: str | None) -> bool:
        """The same for Describe Global and sObject Describe, whose metadata dates from the org's last
        (re)build: the schemas never change while it runs."""
        return _modified_since(self._reset_at, if_modified_since)

    def find_by_external_id(self, schema: ObjectSchema, field_name: str, value: str) -> list[Record]:
        """The live records whose external id `field_name` equals `value` (case-insensitively, as for
        text external ids that are not marked case-sensitive). ``Id`` is accepted as a key too."""
        spec = schema.field(field_name)
        if spec is None:
            raise SalesforceError(404, "NOT_FOUND", _MESSAGES["unknown_external_id"].format(field=field_name))
        if spec.name == "Id":
            normalized = normalize_salesforce_id(value)
            found = None if normalized is None else self.records[schema.name].get(normalized)
            return [] if found is None else [found]
        if not spec.external_id:
            raise SalesforceError(400, "INVALID_FIELD", _MESSAGES["not_external_id"].format(field=spec.name))
        wanted = value.casefold()
        return [
            record
            for record in self.records[schema.name].values()
            if isinstance(record.get(spec.name), str) and record[spec.name].casefold() == wanted
        ]

    def read_by_external_id(self, schema: ObjectSchema, field_name: str, value: str) -> Record:
        """``GET .../sobjects/{Obj}/{ExtField}/{value}``: one match, else 404, several 300."""
        matches = self.find_by_external_id(schema, field_name, value)
        if len(matches) > 1:
            raise _MultipleMatches([self.record_url(schema, record["Id"]) for record in matches])
        if not matches:
            raise _not_found()
        return self.render(schema, matches[0])

    # -- records: writes ----------------------------------------------------------------------------------

    def create(self, schema: ObjectSchema, body: Any, user_id: str) -> str:
        """``POST .../sobjects/{Obj}/``: validate `body`, apply defaults and derived fields; the new id."""
        if not schema.createable:
            raise _read_only_object(schema, "POST")
        changes = self._changes(schema, body, creating=True)
        defaults: dict[str, Any] = {}
        if schema.field("OwnerId") is not None:
            defaults["OwnerId"] = user_id
        currency = schema.field("CurrencyIsoCode")
        if currency is not None and currency.createable:
            defaults["CurrencyIsoCode"] = _DEFAULT_CURRENCY
        if schema.name == "Contract":
            defaults["Status"] = "Draft"  # the picklist's default value
            if changes.get("Status") in _SIGNED_CONTRACT_STATUSES:
                # A contract is created as a draft (or in approval) and activated by an update (unverified).
                raise SalesforceError(
                    400, "FIELD_INTEGRITY_EXCEPTION", _MESSAGES["contract_status_on_create"], ["Status"]
                )
        values = {**defaults, **changes}
        missing = [spec.name for spec in schema.fields if spec.required and values.get(spec.name) is None]
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        self._check_unique(schema, values, None)
        record: Record = {spec.name: None for spec in schema.fields}
        record.update(values)
        record["Id"] = self._mint_id(schema)
        self._derive(schema, record, set(values))
        if schema.name == "Contract":
            record["ContractNumber"] = f"{self._next_auto_number('Contract'):08d}"
        elif schema.name == "Rate_Card_Line__c":
            record["Name"] = f"RCL-{self._next_auto_number('Rate_Card_Line__c'):06d}"
        stamp = format_datetime(self.now())
        record.update(IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        self.records[schema.name][record["Id"]] = record
        return str(record["Id"])

    def update(self, schema: ObjectSchema, record_id: str, body: Any) -> None:
        """``PATCH .../sobjects/{Obj}/{id}``: apply `body`, validated the way Salesforce does."""
        record = self.record(schema, record_id)
        if not schema.updateable:
            raise _read_only_object(schema, "PATCH")
        changes = self._changes(schema, body, creating=False)
        missing = [name for name, value in changes.items() if value is None and _required(schema, name)]
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", message, missing)
        self._check_unique(schema, changes, record["Id"])
        updated = {**record, **changes}
        self._derive(schema, updated, set(changes))
        stamp = format_datetime(self.now())
        updated["LastModifiedDate"] = stamp
        updated["SystemModstamp"] = stamp
        record.update(updated)

    def upsert(
        self, schema: ObjectSchema, field_name: str, value: str, body: Any, user_id: str, *, update_only: bool
    ) -> tuple[str, bool]:
        """``PATCH .../sobjects/{Obj}/{ExtField}/{value}``: (record id, created)."""
        matches = self.find_by_external_id(schema, field_name, value)
        if len(matches) > 1:
            raise _MultipleMatches([self.record_url(schema, record["Id"]) for record in matches])
        if not isinstance(body, dict):
            raise _wrong_json_type(schema, body)
        spec = schema.field(field_name)
        assert spec is not None  # find_by_external_id checked it
        body = dict(body)
        for key in [key for key in body if key.lower() == spec.name.lower()]:
            given = body.pop(key)
            if spec.name != "Id" and (not isinstance(given, str) or given.casefold() != value.casefold()):
                message = _MESSAGES["external_id_mismatch"].format(field=spec.name)
                raise SalesforceError(400, "INVALID_FIELD", message, [spec.name])
        if matches:
            self.update(schema, matches[0]["Id"], body)
            return str(matches[0]["Id"]), False
        if update_only or spec.name == "Id":
            raise _not_found()
        # The key in the URL becomes the new record's external id.
        return self.create(schema, {**body, spec.name: value}, user_id), True

    def delete(self, schema: ObjectSchema, record_id: str) -> None:
        """``DELETE .../sobjects/{Obj}/{id}``: to the recycle bin, with its master-detail children."""
        record = self.record(schema, record_id)
        if not schema.deletable:
            raise _read_only_object(schema, "DELETE")
        self._delete(schema, record, self.now())

    def _delete(self, schema: ObjectSchema, record: Record, moment: datetime) -> None:
        record_id = record["Id"]
        del self.records[schema.name][record_id]
        stamp = format_datetime(moment)
        record.update(IsDeleted=True, SystemModstamp=stamp)
        self.recycle_bin[schema.name][record_id] = _Deleted(record, moment)
        for child_schema, spec in _references_to(schema.name):
            children = [r for r in self.records[child_schema.name].values() if r.get(spec.name) == record_id]
            for child in children:
                if spec.cascade_delete:
                    self._delete(child_schema, child, moment)
                else:
                    # A lookup to a deleted record is cleared, as "clear the value of this field" does.
                    child.update({spec.name: None, "LastModifiedDate": stamp, "SystemModstamp": stamp})

    def _mint_id(self, schema: ObjectSchema) -> str:
        while True:
            self._serials[schema.key_prefix] += 1
            record_id = salesforce_id(schema.key_prefix, self._serials[schema.key_prefix])
            if record_id not in self.records[schema.name] and record_id not in self.recycle_bin[schema.name]:
                return record_id

    def _next_auto_number(self, sobject: str) -> int:
        number = self._auto_numbers[sobject]
        self._auto_numbers[sobject] = number + 1
        return number

    def _changes(self, schema: ObjectSchema, body: Any, *, creating: bool) -> dict[str, Any]:
        """The fields a create or update body sets, each coerced and checked; nothing is applied here."""
        if not isinstance(body, dict):
            raise _wrong_json_type(schema, body)
        changes: dict[str, Any] = {}
        read_only: list[str] = []
        for name, value in body.items():
            if name == "attributes":
                continue  # Salesforce tolerates the attributes block clients echo back.
            spec = schema.field(name)
            if spec is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {schema.name}", [name]
                )
            if not (spec.createable if creating else spec.updateable):
                read_only.append(spec.name)
                continue
            changes[spec.name] = self._coerce(spec, value)
        if read_only:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        return changes

    def _check_unique(self, schema: ObjectSchema, values: Mapping[str, Any], own_id: str | None) -> None:
        for spec in schema.fields:
            value = values.get(spec.name)
            if not spec.unique or not isinstance(value, str):
                continue
            wanted = value.casefold()
            for other in self.records[schema.name].values():
                other_value = other.get(spec.name)
                if (
                    other["Id"] != own_id
                    and isinstance(other_value, str)
                    and other_value.casefold() == wanted
                ):
                    raise SalesforceError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with id: "
                        f"{other['Id']}",
                        [spec.name],
                    )

    def _derive(self, schema: ObjectSchema, record: Record, changed: set[str]) -> None:
        """Recompute the fields Salesforce derives from the ones just set (`record` is the new state)."""
        if schema.name == "Opportunity" and "StageName" in changed:
            stage = STAGES[record["StageName"]]
            record["IsWon"] = stage.is_won
            record["IsClosed"] = stage.is_closed
            # Changing the stage resets Probability to the stage default unless the caller set it too.
            if "Probability" not in changed:
                record["Probability"] = stage.probability
        elif schema.name == "Contact" and changed & {"FirstName", "LastName"}:
            record["Name"] = " ".join(part for part in (record["FirstName"], record["LastName"]) if part)
        elif schema.name == "Contract":
            if changed & {"StartDate", "ContractTerm"}:
                start = record["StartDate"]
                end = contract_end_date(
                    None if start is None else date.fromisoformat(start), record["ContractTerm"]
                )
                record["EndDate"] = None if end is None else end.isoformat()
            if (
                "Status" in changed
                and record["Status"] == "Activated"
                and record.get("ActivatedDate") is None
            ):
                record["ActivatedDate"] = format_datetime(self.now())
        elif schema.field("Opportunity__c") is not None and "Opportunity__c" in changed:
            # Master-detail children take the master's currency.
            master = self.records["Opportunity"][record["Opportunity__c"]]
            record["CurrencyIsoCode"] = master["CurrencyIsoCode"]

    def _coerce(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if spec.kind in ("currency", "double", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _deserialize_error("double", value)
            if spec.kind == "currency" and abs(value) >= _CURRENCY_LIMIT:
                # Currency fields are currency(18,2): 16 digits before the point. Salesforce refuses more
                # rather than storing it (NUMBER_OUTSIDE_VALID_RANGE, "value outside of valid range").
                raise SalesforceError(
                    400,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{spec.name}: value outside of valid range on numeric field: {value}",
                    [spec.name],
                )
            return round(float(value), 2)
        if spec.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
                raise _deserialize_error("int", value)
            return int(value)
        if spec.kind == "boolean":
            if not isinstance(value, bool):
                raise _deserialize_error("boolean", value)
            return value
        if not isinstance(value, str):
            raise _deserialize_error("date" if spec.kind == "date" else "String", value)
        if spec.kind == "date":
            # fromisoformat alone would also take "20260301"; Salesforce wants exactly YYYY-MM-DD.
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is None or len(value) != 10:
                raise _deserialize_error("date", value)
            return value
        if spec.kind == "datetime":
            try:
                return format_datetime(parse_datetime(value))
            except ValueError:
                raise _deserialize_error("datetime", value) from None
        if spec.kind == "reference":
            return self._reference(spec, value)
        if spec.restricted_values is not None and value not in spec.restricted_values:
            raise SalesforceError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.name}: bad value for restricted picklist field: {value}",
                [spec.name],
            )
        if spec.kind == "email" and not _EMAIL.fullmatch(value):
            raise SalesforceError(
                400, "INVALID_EMAIL_ADDRESS", f"{spec.name}: invalid email address: {value}", [spec.name]
            )
        if spec.length is not None and len(value) > spec.length:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{spec.name}: data value too large: {value[:40]} (max length={spec.length})",
                [spec.name],
            )
        return value

    def _reference(self, spec: FieldSpec, value: str) -> str:
        target = spec.reference_to or ""
        normalized = normalize_salesforce_id(value)
        target_prefix = "005" if target == "User" else SCHEMAS[target].key_prefix
        if normalized is None or not normalized.startswith(target_prefix):
            raise SalesforceError(
                400, "MALFORMED_ID", f"{spec.name}: id value of incorrect type: {value}", [spec.name]
            )
        exists = normalized in USERS if target == "User" else normalized in self.records[target]
        if not exists:
            raise SalesforceError(
                400, "INVALID_CROSS_REFERENCE_KEY", f"{spec.name}: invalid cross reference id", [spec.name]
            )
        return normalized

    # -- change feeds (the replication API) ---------------------------------------------------------------

    def updated(self, schema: ObjectSchema, start: str | None, end: str | None) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/updated/``: live records whose ``SystemModstamp`` is in the window."""
        begin, covered = self._replication_window(start, end)
        ids = [
            record["Id"]
            for record in self.records[schema.name].values()
            if begin <= parse_datetime(record["SystemModstamp"]) < covered
        ]
        return {"ids": ids, "latestDateCovered": format_datetime(covered)}

    def deleted(self, schema: ObjectSchema, start: str | None, end: str | None) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/deleted/``: recycle-bin entries deleted in the window."""
        begin, covered = self._replication_window(start, end)
        deleted = sorted(
            (
                entry
                for entry in self.recycle_bin[schema.name].values()
                if begin <= entry.deleted_at < covered
            ),
            key=lambda entry: entry.deleted_at,
        )
        return {
            "deletedRecords": [
                {"id": entry.record["Id"], "deletedDate": format_datetime(entry.deleted_at)}
                for entry in deleted
            ],
            # The recycle bin only knows what was deleted since this org (re)started.
            "earliestDateAvailable": format_datetime(_floor_minute(self._reset_at)),
            "latestDateCovered": format_datetime(covered),
        }

    def _replication_window(self, start: str | None, end: str | None) -> tuple[datetime, datetime]:
        """[begin, latest covered) for a feed request. Salesforce ignores seconds, and the newest minute is
        not covered yet: changes still being committed in it could carry earlier timestamps."""
        moments = []
        for name, raw in (("start", start), ("end", end)):
            if raw is None or not raw.strip():
                raise SalesforceError(
                    400, "MISSING_ARGUMENT", _MESSAGES["replication_missing"].format(name=name)
                )
            # A literal "+" in a query string arrives as a space when the client did not encode it.
            text = raw.strip().replace(" ", "+")
            try:
                moments.append(_floor_minute(parse_datetime(text)))
            except ValueError:
                message = _MESSAGES["replication_format"].format(name=name, value=raw)
                raise SalesforceError(400, "INVALID_REPLICATION_DATE", message) from None
        begin, finish = moments
        now = self.now()
        if finish < begin:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", _MESSAGES["replication_order"])
        if begin < _floor_minute(now - _REPLICATION_WINDOW):
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", _MESSAGES["replication_too_old"])
        return begin, min(finish, _floor_minute(now))

    # -- queries ------------------------------------------------------------------------------------------

    def query(self, resource: str, q: str | None, batch_size: int) -> dict[str, Any]:
        """``GET .../query?q=`` (or ``queryAll``, which also sees deleted records): the first batch."""
        if q is None or not q.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            bound: BoundQuery = compile_query(q, SCHEMAS, self._today())
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, exc.message) from None
        candidates: Iterable[Record] = self.records[bound.schema.name].values()
        if resource == "queryAll":
            deleted = [entry.record for entry in self.recycle_bin[bound.schema.name].values()]
            candidates = [*candidates, *deleted]
        rows = bound.execute(candidates, self.records)
        if bound.is_count:
            return {"totalSize": len(rows), "done": True, "records": []}
        # The result is a snapshot, like a Salesforce cursor: later updates do not leak into later pages.
        rendered = [bound.project(row, self._url_for) for row in rows]
        if bound.is_aggregate:
            # "Considerations for GROUP BY": REST hands out no query locator for aggregate results.
            return {"totalSize": len(rendered), "done": True, "records": rendered}
        return self.first_page(resource, rendered, batch_size)

    def first_page(self, resource: str, rows: list[Record], batch_size: int) -> dict[str, Any]:
        if len(rows) <= batch_size:
            return {"totalSize": len(rows), "done": True, "records": rows}
        self._drop_stale_cursors()
        self._cursor_serial += 1
        locator = salesforce_id("01g", self._cursor_serial)
        self._cursors[locator] = _Cursor(rows, batch_size, self.clock())
        while len(self._cursors) > _MAX_CURSORS:
            self._cursors.popitem(last=False)
        return self.page(resource, locator, 0)

    def page(self, resource: str, locator: str, offset: int) -> dict[str, Any]:
        cursor = self._cursors.get(locator)
        if cursor is None or not 0 <= offset < len(cursor.rows):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_used = self.clock()
        self._cursors.move_to_end(locator)
        batch = cursor.rows[offset : offset + cursor.batch_size]
        end = offset + len(batch)
        payload: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not payload["done"]:
            payload["nextRecordsUrl"] = f"{self.version_base()}/{resource}/{locator}-{end}"
        payload["records"] = batch
        return payload

    def next_page(self, resource: str, cursor_ref: str) -> dict[str, Any]:
        """``GET .../query/{locator}-{offset}``, the path a ``nextRecordsUrl`` names."""
        locator, _, offset = cursor_ref.rpartition("-")
        if not locator or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.page(resource, locator, int(offset))

    def _drop_stale_cursors(self) -> None:
        horizon = self.clock() - _CURSOR_TTL_SECONDS
        for locator in [key for key, cursor in self._cursors.items() if cursor.last_used < horizon]:
            del self._cursors[locator]

    @property
    def open_cursors(self) -> int:
        return len(self._cursors)

    def batch_size(self, query_options: str | None) -> int:
        """Batch size from ``Sforce-Query-Options``, clamped like Salesforce, capped by the settings."""
        size = _DEFAULT_BATCH_SIZE
        for option in (query_options or "").replace(";", ",").split(","):
            name, _, value = option.partition("=")
            if name.strip().lower() == "batchsize":
                # Salesforce treats the header as a hint; a bad one leaves the default.
                with contextlib.suppress(ValueError):
                    size = min(max(int(value.strip()), _MIN_BATCH_SIZE), _DEFAULT_BATCH_SIZE)
        return max(1, min(size, self.settings.max_batch_size))

    # -- composite ----------------------------------------------------------------------------------------

    def composite(self, body: Any, user_id: str) -> dict[str, Any]:
        """``POST .../composite``: run the subrequests in order; with ``allOrNone`` the first failure rolls
        every change back and every other subrequest answers ``PROCESSING_HALTED``."""
        subrequests = _composite_subrequests(body)
        all_or_none = body.get("allOrNone") is True
        before = self._save() if all_or_none else None
        results: list[dict[str, Any]] = []
        bodies: dict[str, Any] = {}
        failed_at: int | None = None
        for index, subrequest in enumerate(subrequests):
            reference_id = subrequest["referenceId"]
            if failed_at is not None and all_or_none:
                results.append(_halted(reference_id, _ROLLED_BACK))
                continue
            result = self._subrequest(subrequest, bodies, user_id)
            results.append(
                {
                    "body": result.body,
                    "httpHeaders": dict(result.headers),
                    "httpStatusCode": result.status,
                    "referenceId": reference_id,
                }
            )
            if result.status < 300:
                bodies[reference_id] = result.body
            elif failed_at is None:
                failed_at = index
        if failed_at is not None and before is not None:
            self._restore(before)
            results = [
                result if index == failed_at else _halted(result["referenceId"], _ROLLED_BACK)
                for index, result in enumerate(results)
            ]
        return {"compositeResponse": results}

    def basic_info(self, schema: ObjectSchema) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/`` (sObject Basic Information): the object's describeGlobal entry and
        its recently viewed records, of which an API-only user has none."""
        return {"objectDescribe": object_basics(self.version_base(), schema), "recentItems": []}

    def create_collection(self, body: Any, user_id: str) -> list[dict[str, Any]]:
        """``POST .../composite/sobjects`` (sObject Collections, create): up to 200 records of any objects,
        each named by ``attributes.type``, in order. One result per record, ``{id, success, errors}``;
        errors there carry ``statusCode`` rather than ``errorCode``. With ``allOrNone`` one failure rolls
        every record back and the others answer ``ALL_OR_NONE_OPERATION_ROLLED_BACK``."""
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", _MESSAGES["composite_shape"].format(detail="records")
            )
        records: list[Any] = body["records"]
        for record in records:
            if not isinstance(record, dict):
                raise _deserialize_error("SObject", record)
        if len(records) > _COLLECTION_MAX_RECORDS:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", _MESSAGES["collection_too_many"])
        all_or_none = body.get("allOrNone") is True
        before = self._save() if all_or_none else None
        results: list[dict[str, Any]] = []
        for record in records:
            try:
                results.append({"id": self._create_member(record, user_id), "success": True, "errors": []})
            except SalesforceError as exc:
                errors = [
                    {
                        "statusCode": error["errorCode"],
                        "message": error["message"],
                        "fields": error.get("fields", []),
                    }
                    for error in exc.body()
                ]
                results.append({"id": None, "success": False, "errors": errors})
        if before is not None and any(not result["success"] for result in results):
            self._restore(before)
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
            results = [
                result if not result["success"] else {"id": None, "success": False, "errors": [rolled_back]}
                for result in results
            ]
        return results

    def _create_member(self, record: dict[str, Any], user_id: str) -> str:
        attributes = record.get("attributes")
        sobject = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(sobject, str):
            raise SalesforceError(400, "INVALID_FIELD", _MESSAGES["collection_type_missing"])
        try:
            schema = self.schema(sobject)
        except SalesforceError:
            raise SalesforceError(
                400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported."
            ) from None
        if not schema.createable:
            operation = _MESSAGES["unsupported_operation"].format(sobject=schema.name, operation="insert")
            raise SalesforceError(400, "INVALID_TYPE_FOR_OPERATION", operation)
        fields = {key: value for key, value in record.items() if key != "attributes"}
        if any(key.lower() == "id" for key in fields):
            raise SalesforceError(400, "INVALID_FIELD", _MESSAGES["collection_id_given"], ["Id"])
        return self.create(schema, fields, user_id)

    def _subrequest(self, subrequest: Mapping[str, Any], bodies: Mapping[str, Any], user_id: str) -> _Result:
        try:
            url = _resolve_references(subrequest["url"], bodies, in_url=True)
            payload = _resolve_references(subrequest.get("body"), bodies, in_url=False)
        except _UnresolvedReference as exc:
            message = _MESSAGES["unresolved_reference"].format(
                expression=exc.expression, reference_id=exc.reference_id
            )
            return _Result(400, [{"errorCode": "PROCESSING_HALTED", "message": message}])
        headers = {str(k).lower(): str(v) for k, v in (subrequest.get("httpHeaders") or {}).items()}
        try:
            return self.dispatch(str(subrequest["method"]).upper(), str(url), payload, headers, user_id)
        except SalesforceError as exc:
            return _Result(exc.status, exc.body())
        except _MultipleMatches as exc:
            return _Result(300, exc.urls)

    def dispatch(self, method: str, url: str, body: Any, headers: Mapping[str, str], user_id: str) -> _Result:
        """Route one REST call the way the HTTP app does, for composite subrequests."""
        path, _, query_string = url.partition("?")
        match = re.fullmatch(r"/services/data/(v[^/]+)/?(.*)", path)
        if match is None:
            raise _not_found()
        self.check_version(match.group(1))
        token = _REQUEST_VERSION.set(match.group(1))
        try:
            return self._dispatch(method, match.group(2), query_string, body, headers, user_id)
        finally:
            _REQUEST_VERSION.reset(token)

    def _dispatch(
        self, method: str, rest: str, query_string: str, body: Any, headers: Mapping[str, str], user_id: str
    ) -> _Result:
        parts = [unquote(part) for part in rest.strip("/").split("/") if part]
        params = dict(parse_qsl(query_string, keep_blank_values=True))

        def allow(*methods: str) -> None:
            if method not in methods:
                allowed = ",".join(methods)
                message = f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
                raise SalesforceError(405, "METHOD_NOT_ALLOWED", message)

        if parts and parts[0] in ("query", "queryAll") and len(parts) <= 2:
            allow("GET")
            if len(parts) == 2:
                return _Result(200, self.next_page(parts[0], parts[1]))
            batch_size = self.batch_size(headers.get("sforce-query-options"))
            return _Result(200, self.query(parts[0], params.get("q"), batch_size))
        if parts == ["limits"]:
            allow("GET")
            return _Result(200, self.limits())
        if parts == ["sobjects"]:
            allow("GET")
            return _Result(200, describe_global(self.version_base(), SCHEMAS))
        if len(parts) < 2 or len(parts) > 4 or parts[0] != "sobjects":
            raise _not_found()
        schema = self.schema(parts[1])
        if len(parts) == 3 and parts[2] == "describe":
            allow("GET")
            return _Result(200, describe_object(self.version_base(), schema, SCHEMAS))
        if len(parts) == 2 and method == "GET":
            return _Result(200, self.basic_info(schema))
        if len(parts) == 2:
            allow("GET", "POST")
            record_id = self.create(schema, body, user_id)
            return _created(self.record_url(schema, record_id), record_id)
        if len(parts) == 3 and parts[2] in ("updated", "deleted"):
            allow("GET")
            feed = self.updated if parts[2] == "updated" else self.deleted
            return _Result(200, feed(schema, params.get("start"), params.get("end")))
        if len(parts) == 3:
            allow("GET", "PATCH", "DELETE")
            if method == "GET":
                return _Result(200, self.read(schema, parts[2], params.get("fields")))
            if method == "PATCH":
                self.update(schema, parts[2], body)
            else:
                self.delete(schema, parts[2])
            return _Result(204, None)
        allow("GET", "PATCH")
        if method == "GET":
            return _Result(200, self.read_by_external_id(schema, parts[2], parts[3]))
        update_only = params.get("updateOnly", "").lower() == "true"
        record_id, created = self.upsert(schema, parts[2], parts[3], body, user_id, update_only=update_only)
        return _upserted(self.record_url(schema, record_id), record_id, created)

    def _save(self) -> _DataState:
        return _DataState(
            records={
                name: {rid: dict(r) for rid, r in records.items()} for name, records in self.records.items()
            },
            recycle_bin=copy.deepcopy(self.recycle_bin),
            serials=dict(self._serials),
            auto_numbers=dict(self._auto_numbers),
        )

    def _restore(self, state: _DataState) -> None:
        self.records = state.records
        self.recycle_bin = state.recycle_bin
        # State saved before an object existed (e.g. Organization) lacks it: it starts from the seed.
        missing = [name for name in SCHEMAS if name not in self.records]
        if missing:
            seed = build_seed(self.settings.seed)
            for name in missing:
                self.records[name] = seed[name]
        self._serials = state.serials
        self._auto_numbers = state.auto_numbers
        for name, schema in SCHEMAS.items():
            self.recycle_bin.setdefault(name, {})
            self._serials.setdefault(schema.key_prefix, _FIRST_MINTED_NUMBER)


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[SalesforceSandbox]


def _required(schema: ObjectSchema, name: str) -> bool:
    spec = schema.field(name)
    return spec is not None and spec.required


def _selected_fields(schema: ObjectSchema, fields: str) -> tuple[FieldSpec, ...]:
    specs = []
    for name in (part.strip() for part in fields.split(",")):
        spec = schema.field(name) if name else None
        if spec is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {schema.name}"
            )
        specs.append(spec)
    return tuple(specs)


def _created(url: str, record_id: str) -> _Result:
    return _Result(201, {"id": record_id, "success": True, "errors": []}, {"Location": url})


def _upserted(url: str, record_id: str, created: bool) -> _Result:
    body = {"id": record_id, "success": True, "errors": [], "created": created}
    return _Result(201, body, {"Location": url}) if created else _Result(200, body)


def _halted(reference_id: str, message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference_id,
    }


def _composite_subrequests(body: Any) -> list[dict[str, Any]]:
    """The subrequests of a composite body, checked before any of them runs (a bad one fails the whole
    request with 400, as in Salesforce)."""

    def invalid(detail: str) -> SalesforceError:
        return SalesforceError(400, "JSON_PARSER_ERROR", _MESSAGES["composite_shape"].format(detail=detail))

    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    subrequests = body.get("compositeRequest")
    if not isinstance(subrequests, list) or not subrequests:
        raise invalid("compositeRequest must be a non-empty array")
    if not isinstance(body.get("allOrNone", False), bool):
        raise invalid("allOrNone must be a boolean")
    if len(subrequests) > _COMPOSITE_MAX_SUBREQUESTS:
        raise SalesforceError(400, "LIMIT_EXCEEDED", _MESSAGES["composite_too_many"])
    seen: set[str] = set()
    queries = 0
    for subrequest in subrequests:
        if not isinstance(subrequest, dict):
            raise invalid("each subrequest must be a JSON object")
        method, url, reference_id = (subrequest.get(key) for key in ("method", "url", "referenceId"))
        if not isinstance(method, str) or not isinstance(url, str):
            raise invalid("each subrequest needs a method and a url")
        if not isinstance(reference_id, str):
            raise invalid("each subrequest needs a referenceId")
        if not _REFERENCE_ID.fullmatch(reference_id):
            message = _MESSAGES["composite_reference_id"].format(reference_id=reference_id)
            raise SalesforceError(400, "INVALID_INPUT", message)
        if reference_id in seen:
            message = _MESSAGES["composite_duplicate_reference"].format(reference_id=reference_id)
            raise SalesforceError(400, "INVALID_INPUT", message)
        seen.add(reference_id)
        headers = subrequest.get("httpHeaders")
        if headers is not None and not isinstance(headers, dict):
            raise invalid("httpHeaders must be a JSON object")
        if re.match(r"/services/data/[^/]+/query(All)?[/?]", url + "/"):
            queries += 1
    if queries > _COMPOSITE_MAX_QUERIES:
        raise SalesforceError(400, "LIMIT_EXCEEDED", _MESSAGES["composite_too_many_queries"])
    return subrequests


class _UnresolvedReference(Exception):
    def __init__(self, reference_id: str, expression: str) -> None:
        super().__init__(expression)
        self.reference_id = reference_id
        self.expression = expression


def _reference_value(expression: str, bodies: Mapping[str, Any]) -> Any:
    """The value ``@{expression}`` stands for: ``ref.id``, ``ref.records[0].Id`` and the like."""
    match = re.match(r"[A-Za-z0-9_]+", expression)
    reference_id = match.group() if match else expression
    if reference_id not in bodies:
        raise _UnresolvedReference(reference_id, expression)
    value: Any = bodies[reference_id]
    rest = expression[len(reference_id) :]
    position = 0
    while position < len(rest):
        step = _REFERENCE_PATH.match(rest, position)
        if step is None:
            raise _UnresolvedReference(reference_id, expression)
        key, index = step.groups()
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise _UnresolvedReference(reference_id, expression)
        position = step.end()
    if position == 0 or value is None or isinstance(value, dict | list):
        raise _UnresolvedReference(reference_id, expression)
    return value


def _resolve_references(value: Any, bodies: Mapping[str, Any], *, in_url: bool) -> Any:
    """`value` with every ``@{ref.path}`` replaced by what an earlier subrequest answered."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole is not None and not in_url:
            return _reference_value(whole.group(1), bodies)  # keeps a number a number
        return _REFERENCE.sub(lambda m: _scalar_text(_reference_value(m.group(1), bodies)), value)
    if isinstance(value, dict):
        return {key: _resolve_references(item, bodies, in_url=in_url) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, bodies, in_url=in_url) for item in value]
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_token(value: Any) -> str:
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int | float):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    if value is None:
        return "VALUE_NULL"
    return "START_OBJECT"


def _wrong_json_type(schema: ObjectSchema, body: Any) -> SalesforceError:
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {schema.name} from {_json_token(body)} value",
    )


def _deserialize_error(type_name: str, value: Any) -> SalesforceError:
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {type_name} from {_json_token(value)} value {value!s} "
        "or request may be missing a required field",
    )


# ---------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------


def _modified_since(stamp: datetime, if_modified_since: str | None) -> bool:
    """True unless `if_modified_since` is an HTTP-date `stamp` is not after; a missing or unparseable
    header reads as modified, as HTTP prescribes."""
    if if_modified_since is None:
        return True
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return True
    if since.tzinfo is None:
        # RFC 9110 HTTP-dates are GMT; the obsolete forms without a zone are read the same way.
        since = since.replace(tzinfo=UTC)
    # An HTTP-date has whole seconds, so the stamp's fraction must not make it look newer.
    return stamp.replace(microsecond=0) > since


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _respond(result: _Result) -> Response[bytes]:
    return _json(result.body, result.status, result.headers)


def _oauth_error(error: str, description: str, status: int = 400) -> Response[bytes]:
    return _json({"error": error, "error_description": description}, status)


def _on_salesforce_error(_: Request[Any, Any, Any], exc: SalesforceError) -> Response[bytes]:
    return _json(exc.body(), exc.status)


def _on_multiple_matches(_: Request[Any, Any, Any], exc: _MultipleMatches) -> Response[bytes]:
    return _json(exc.urls, 300)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = relative_path(request.scope)  # type: ignore[arg-type]
    if path.startswith("/services/oauth2/"):
        return _oauth_error("invalid_request", exc.detail, exc.status_code)
    if not path.startswith("/services/"):
        return _json({"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers)
    if exc.status_code == 404:
        return _json(_not_found().body(), 404)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", "").replace(" ", "")
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return _json(SalesforceError(405, "METHOD_NOT_ALLOWED", message).body(), 405, exc.headers)
    error_code = "REQUEST_ENTITY_TOO_LARGE" if exc.status_code == 413 else "INVALID_REQUEST"
    return _json(SalesforceError(exc.status_code, error_code, exc.detail).body(), exc.status_code)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("salesforce sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    if relative_path(request.scope).startswith("/services/"):  # type: ignore[arg-type]
        error_id = f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**6)} ({secrets.randbelow(10**9)})"
        message = (
            f"An unexpected error occurred. Please include this ErrorId if you contact support: {error_id}"
        )
        return _json(SalesforceError(500, "UNKNOWN_EXCEPTION", message).body(), 500)
    return _json({"status_code": 500, "detail": "Internal Server Error"}, 500)


# ---------------------------------------------------------------------------------------------------------
# OAuth
# ---------------------------------------------------------------------------------------------------------


def _load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM public key or X.509 certificate (what a connected app is given)."""
    data = pem.encode()
    key = (
        x509.load_pem_x509_certificate(data).public_key()
        if b"BEGIN CERTIFICATE" in data
        else serialization.load_pem_public_key(data)
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("a JWT bearer client needs an RSA key: Salesforce verifies RS256 signatures")
    return key


def _probable_prime(candidate: int, rng: random.Random, small_primes: tuple[int, ...]) -> bool:
    for prime in small_primes:
        if candidate % prime == 0:
            return candidate == prime
    exponent, rounds = candidate - 1, 0
    while exponent % 2 == 0:
        exponent //= 2
        rounds += 1
    for _ in range(24):  # Miller-Rabin: a composite survives one round with probability <= 1/4
        witness = pow(rng.randrange(2, candidate - 1), exponent, candidate)
        if witness in (1, candidate - 1):
            continue
        for _ in range(rounds - 1):
            witness = pow(witness, 2, candidate)
            if witness == candidate - 1:
                break
        else:
            return False
    return True


@functools.cache
def _dev_jwt_key() -> rsa.RSAPrivateKey:
    # Derived from a fixed generator rather than shipped as a PEM blob: the same key on every machine and
    # run, and no private key in the repository for secret scanners to (rightly) flag. It is public by
    # construction: never register it anywhere but a sandbox.
    rng = random.Random("stratum-salesforce-sandbox/dev-jwt-key")  # noqa: S311 - a published dev key
    sieve = bytearray([1]) * 2000
    sieve[0:2] = b"\x00\x00"
    for number in range(2, 45):
        if sieve[number]:
            sieve[number * number :: number] = bytes(len(sieve[number * number :: number]))
    small_primes = tuple(number for number, flag in enumerate(sieve) if flag)
    public_exponent = 65537
    primes: list[int] = []
    while len(primes) < 2:
        candidate = rng.getrandbits(1024) | (3 << 1022) | 1  # top two bits set: the modulus has 2048 bits
        usable = (candidate - 1) % public_exponent != 0 and candidate not in primes
        if usable and _probable_prime(candidate, rng, small_primes):
            primes.append(candidate)
    p, q = primes
    d = pow(public_exponent, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(public_exponent, p * q),
    )
    return numbers.private_key()


def dev_jwt_private_key_pem() -> str:
    """The dev connected app's RSA private key (PKCS#8 PEM), for signing JWT bearer assertions in tests.

    Deterministic (the same on every machine; about half a second to derive the first time) and public:
    it only ever unlocks a sandbox.
    """
    return (
        _dev_jwt_key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def dev_jwt_public_key_pem() -> str:
    """The public half of `dev_jwt_private_key_pem` (SubjectPublicKeyInfo PEM), as a connected app has it."""
    return (
        _dev_jwt_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _client_credentials(
    request: Request[Any, Any, Any], form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    authorization = request.headers.get("authorization", "")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, separator, client_secret = decoded.partition(":")
        if not separator:
            return None, None
        # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
        return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))
    return form.get("client_id"), form.get("client_secret")


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64url_json(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None


def _jwt_bearer_grant(sandbox: SalesforceSandbox, assertion: str | None, own_audience: str) -> str:
    """Check a JWT bearer assertion the way Salesforce does; the user id it is for.

    ``iss`` is a registered consumer key, the RS256 signature verifies with that client's key, ``aud`` is
    a login URL (login.salesforce.com, test.salesforce.com or this org's own URL), ``exp`` lies in the
    next few minutes (a number, or a string of digits as Salesforce's own example and simple-salesforce
    send it) and ``sub`` is a user for whom the app is approved.
    """
    invalid = _GrantError("invalid_grant", "invalid assertion")
    segments = (assertion or "").split(".")
    if len(segments) != 3:
        raise invalid
    header, claims = _b64url_json(segments[0]), _b64url_json(segments[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid
    issuer = claims.get("iss")
    key = sandbox.jwt_public_key(issuer) if isinstance(issuer, str) else None
    if key is None:
        raise _GrantError("invalid_client_id", "client identifier invalid")
    # Only RS256: "none", HS256 keyed with the public key and friends are all just invalid assertions.
    if header.get("alg") != "RS256":
        raise invalid
    try:
        signature = base64.urlsafe_b64decode(segments[2] + "=" * (-len(segments[2]) % 4))
        key.verify(signature, f"{segments[0]}.{segments[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise invalid from None
    audiences = claims.get("aud")
    audience_list = audiences if isinstance(audiences, list) else [audiences]
    accepted = _LOGIN_AUDIENCES | {own_audience.rstrip("/")}
    if not any(isinstance(aud, str) and aud.rstrip("/") in accepted for aud in audience_list):
        raise _GrantError("invalid_grant", "audience is invalid")
    expiry = claims.get("exp")
    if isinstance(expiry, str) and expiry.isdigit():
        expiry = int(expiry)
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        raise invalid
    now = sandbox.clock()
    if expiry <= now:
        raise _GrantError("invalid_grant", "expired access/refresh token")
    if expiry > now + _JWT_MAX_LIFETIME_SECONDS:
        raise invalid
    subject = claims.get("sub")
    user_id = sandbox.settings.usernames.get(subject) if isinstance(subject, str) else None
    if user_id is None:
        raise _GrantError("invalid_grant", "user hasn't approved this consumer")
    return user_id


_TOKEN_HEADERS = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}


@post("/services/oauth2/token", status_code=200)
async def issue_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    own_url = str(request.base_url).rstrip("/")
    instance_url = (sandbox.settings.instance_url or own_url).rstrip("/")
    grant_type = form.get("grant_type")
    if grant_type == _JWT_BEARER:
        try:
            user_id = _jwt_bearer_grant(sandbox, form.get("assertion"), own_url)
        except _GrantError as exc:
            return _oauth_error(exc.error, exc.description)
        token, _ = sandbox.open_session(user_id)
        # The JWT response has no signature (there is no secret to sign with) and no issued_at.
        payload = {
            "access_token": token,
            "scope": "api",
            "instance_url": instance_url,
            "id": f"{own_url}/id/{ORG_ID}/{user_id}",
            "token_type": "Bearer",
        }
        return _json(payload, headers=_TOKEN_HEADERS)
    if grant_type != "client_credentials":
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    client_id, client_secret = _client_credentials(request, form)
    expected = None if client_id is None else sandbox.settings.clients.get(client_id)
    if expected is None or client_secret is None or not hmac.compare_digest(expected, client_secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    token, issued_at = sandbox.open_session(INTEGRATION_USER_ID)
    identity_url = f"{instance_url}/id/{ORG_ID}/{INTEGRATION_USER_ID}"
    # Salesforce signs id + issued_at with the consumer secret so clients can verify the response.
    digest = hmac.new(expected.encode(), f"{identity_url}{issued_at}".encode(), sha256).digest()
    payload = {
        "access_token": token,
        "signature": base64.b64encode(digest).decode(),
        "scope": "api",
        "instance_url": instance_url,
        "id": identity_url,
        "token_type": "Bearer",
        "issued_at": str(issued_at),
    }
    return _json(payload, headers=_TOKEN_HEADERS)


# ---------------------------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------------------------

_OBJECT_PATH = "/services/data/{version:str}/sobjects/{sobject:str}"
_RECORD_PATH = _OBJECT_PATH + "/{record_id:str}"
_EXTERNAL_ID_PATH = _OBJECT_PATH + "/{field_name:str}/{value:str}"


async def _body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise SalesforceError(400, "JSON_PARSER_ERROR", "No content to map due to end-of-input")
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}"
        ) from None


def _user(request: Request[Any, Any, Any], sandbox: SalesforceSandbox) -> str:
    return sandbox.session_user(bearer_token(request.scope, _AUTH_SCHEMES))  # type: ignore[arg-type]


@get("/services/data")
async def list_versions(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        [
            {"label": _release_label(number), "url": f"/services/data/{version}", "version": number}
            for version in sandbox.versions()
            for number in (version.removeprefix("v"),)
        ]
    )


@get("/services/data/{version:str}")
async def list_resources(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    base = f"/services/data/{version}"
    names = ("composite", "limits", "query", "queryAll", "sobjects")
    return _json({name: f"{base}/{name}" for name in names})


@get("/services/data/{version:str}/limits")
async def limits(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.limits())


@get("/services/data/{version:str}/sobjects")
async def describe_global_resource(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    if not sandbox.metadata_modified_since(request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return _json(describe_global(sandbox.version_base(), SCHEMAS))


@get(_OBJECT_PATH)
async def sobject_basic_info(
    version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.basic_info(sandbox.schema(sobject)))


@get(_OBJECT_PATH + "/describe")
async def sobject_describe(
    request: Request[Any, Any, Any], version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    if not sandbox.metadata_modified_since(request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return _json(describe_object(sandbox.version_base(), schema, SCHEMAS))


@post("/services/data/{version:str}/composite/sobjects", status_code=200)
async def create_collection(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.create_collection(await _body(request), _user(request, sandbox)))


@post(_OBJECT_PATH, status_code=201)
async def create_record(
    request: Request[Any, Any, Any], version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    record_id = sandbox.create(schema, await _body(request), _user(request, sandbox))
    return _respond(_created(sandbox.record_url(schema, record_id), record_id))


@get(_OBJECT_PATH + "/updated")
async def updated_records(
    version: FromPath[str],
    sobject: FromPath[str],
    sandbox: _Sandbox,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.updated(sandbox.schema(sobject), start, end))


@get(_OBJECT_PATH + "/deleted")
async def deleted_records(
    version: FromPath[str],
    sobject: FromPath[str],
    sandbox: _Sandbox,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.deleted(sandbox.schema(sobject), start, end))


@get(_RECORD_PATH)
async def read_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    record_id: FromPath[str],
    sandbox: _Sandbox,
    fields: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    if not sandbox.modified_since(schema, record_id, request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return _json(sandbox.read(schema, record_id, fields))


@patch(_RECORD_PATH, status_code=204)
async def update_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    record_id: FromPath[str],
    sandbox: _Sandbox,
) -> None:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    sandbox.record(schema, record_id)  # 404 beats body errors, as in Salesforce
    sandbox.update(schema, record_id, await _body(request))


@delete(_RECORD_PATH, status_code=204)
async def delete_record(
    version: FromPath[str], sobject: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> None:
    sandbox.check_version(version)
    sandbox.delete(sandbox.schema(sobject), record_id)


@get(_EXTERNAL_ID_PATH)
async def read_by_external_id(
    version: FromPath[str],
    sobject: FromPath[str],
    field_name: FromPath[str],
    value: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.read_by_external_id(sandbox.schema(sobject), field_name, value))


@patch(_EXTERNAL_ID_PATH)
async def upsert_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    field_name: FromPath[str],
    value: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    body = await _body(request)
    # Salesforce's parameter is camelCase, which Litestar's parameter names cannot spell.
    wants_update_only = (request.query_params.get("updateOnly") or "").lower() == "true"
    record_id, created = sandbox.upsert(
        schema, field_name, value, body, _user(request, sandbox), update_only=wants_update_only
    )
    return _respond(_upserted(sandbox.record_url(schema, record_id), record_id, created))


@post("/services/data/{version:str}/composite", status_code=200)
async def composite(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.composite(await _body(request), _user(request, sandbox)))


@get("/services/data/{version:str}/query")
async def query(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.query("query", q, sandbox.batch_size(request.headers.get("sforce-query-options"))))


@get("/services/data/{version:str}/queryAll")
async def query_all(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(
        sandbox.query("queryAll", q, sandbox.batch_size(request.headers.get("sforce-query-options")))
    )


@get("/services/data/{version:str}/query/{cursor_ref:str}")
async def query_more(version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.next_page("query", cursor_ref))


@get("/services/data/{version:str}/queryAll/{cursor_ref:str}")
async def query_all_more(
    version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return _json(sandbox.next_page("queryAll", cursor_ref))


# ---------------------------------------------------------------------------------------------------------
# Sandbox administration
# ---------------------------------------------------------------------------------------------------------


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/sessions/expire", status_code=204)
async def expire_sessions(sandbox: _Sandbox) -> None:
    sandbox.expire_sessions()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "api_usage": sandbox.api_usage,
            "api_limit": sandbox.settings.daily_api_limit,
            "active_sessions": len(sandbox.sessions),
            "open_query_cursors": sandbox.open_cursors,
            "records": {name: len(records) for name, records in sandbox.records.items()},
            "deleted_records": {name: len(entries) for name, entries in sandbox.recycle_bin.items()},
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


async def _send_errors(send: Send, error: SalesforceError, limit_info: str) -> None:
    body = msgspec.json.encode(error.body())
    headers = [
        (b"content-type", _JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"sforce-limit-info", limit_info.encode()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _ApiGate:
    """Authenticates and meters ``/services/data/vXX.X/...`` before Litestar routes the request.

    Living outside the router means unroutable paths and wrong methods are metered and labelled too,
    exactly like every other API response.
    """

    def __init__(self, app: ASGIApp, sandbox: SalesforceSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or not path.startswith(_DATA_PREFIX) or path == _DATA_PREFIX:
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        if not sandbox.session_valid(bearer_token(scope, _AUTH_SCHEMES)):
            error = SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            await _send_errors(send, error, sandbox.limit_info())
            return
        if not sandbox.consume_api_call():
            error = SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            await _send_errors(send, error, sandbox.limit_info())
            return
        limit_info = sandbox.limit_info().encode()
        version = path[len(_DATA_PREFIX) :].partition("/")[0]
        token = _REQUEST_VERSION.set(version)

        async def send_with_limit_info(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"sforce-limit-info", limit_info)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_limit_info)
        finally:
            _REQUEST_VERSION.reset(token)


def create_salesforce_sandbox(
    settings: SalesforceSandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> Litestar:
    """Build a fresh sandbox org as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``:
    ``instance_url`` is built from the request (scheme, host and ``root_path``), while
    ``attributes.url`` and ``nextRecordsUrl`` stay server-relative (``/services/data/...``) as in
    Salesforce, for clients to join onto ``instance_url``. In-process handles for tests:
    ``app.state.sandbox`` (`SalesforceSandbox`) and ``app.state.faults`` (`FaultInjector`). `clock`
    (epoch seconds) drives sessions, timestamps, the daily limit and the change feeds; tests can pass a
    settable one.
    """
    settings = settings or SalesforceSandboxSettings()
    sandbox = SalesforceSandbox(settings, clock=clock)

    def provide_sandbox() -> SalesforceSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            issue_token,
            list_versions,
            list_resources,
            limits,
            describe_global_resource,
            sobject_basic_info,
            sobject_describe,
            create_collection,
            create_record,
            updated_records,
            deleted_records,
            read_record,
            update_record,
            delete_record,
            read_by_external_id,
            upsert_record,
            composite,
            query,
            query_all,
            query_more,
            query_all_more,
            reset,
            expire_sessions,
            stats,
            stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            SalesforceError: _on_salesforce_error,
            _MultipleMatches: _on_multiple_matches,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    # Faults and metering must see every request, routed or not, so they wrap Litestar's own handler
    # (inside Litestar.__call__, which still owns lifespan and scope setup) rather than being route
    # middleware, which Litestar only runs for matched routes.
    router = cast("ASGIApp", app.asgi_handler)
    wrapped = RequestLog(
        with_faults(_ApiGate(router, sandbox), sandbox.faults, ADMIN_PREFIX),
        lambda entry: sandbox.request_log.append(entry),
        ADMIN_PREFIX,
    )
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app
