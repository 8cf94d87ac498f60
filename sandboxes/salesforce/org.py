"""The sandbox org: the state every Salesforce resource shares, and the rules they share.

`Org` holds the records, the recycle bin, sessions, the daily API usage and query cursors, and answers
what every resource asks first: is this API version served, which sObject is meant, which record, and
what URL names it. The resources live in modules named as the REST API Developer Guide's reference names
them, each with its routes and, where it has operations of its own, a mixin adding them to the org:
`sobjects` (Describe Global, sObject Basic Information, sObject Describe, sObject Rows, Rows by External
ID, Get Updated / Get Deleted), `query` (Query, QueryAll), `composite` (Composite, sObject Collections);
`oauth`, `versions`, `limits` and `admin` need only the org. `sandboxes.salesforce.app` assembles them.

Messages the public documentation does not spell out are decided in one place, `MESSAGES` (unverified).
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from sandboxes.faults import FaultInjector
from sandboxes.request_log import RequestLogEntry
from sandboxes.salesforce.data import (
    INTEGRATION_USER_ID,
    ORG_ID,
    PSE_AUTO_NUMBER_PREFIXES,
    SCHEMAS,
    USERNAMES,
    USERS,
    FieldSpec,
    ObjectSchema,
    Record,
    build_seed,
    compute_formulas,
    normalize_salesforce_id,
)
from sandboxes.salesforce.keys import DEV_JWT_CONSUMER_KEY, dev_jwt_key, load_public_key

__all__ = [
    "MESSAGES",
    "REQUEST_VERSION",
    "Cursor",
    "Deleted",
    "MultipleMatches",
    "Org",
    "Result",
    "SalesforceError",
    "SalesforceSandboxSettings",
    "not_found",
]

_NOT_FOUND_MESSAGE = "The requested resource does not exist"
# Salesforce retired v21.0-v30.0 in Summer '25; every later release is still served.
_OLDEST_API_VERSION = 31
_VERSION_SEGMENT = re.compile(r"v(\d{2,3})\.0")
# The version the current request named (``vXX.X`` in its path): the URLs Salesforce hands back
# (``attributes.url``, ``nextRecordsUrl``, ``Location``) repeat it. Set per request by `_ApiGate` and per
# composite subrequest, so no handler has to pass it down to where records are rendered.
REQUEST_VERSION: ContextVar[str | None] = ContextVar("salesforce_request_version", default=None)
# Ids minted by the API start far above every seed number, so a created record never takes a seed id.
_FIRST_MINTED_NUMBER = 500_000

# Messages the public documentation does not spell out (unverified): kept here so they are easy to fix.
MESSAGES = {
    "precondition_failed": "The record was modified since the time given in If-Unmodified-Since",
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


class MultipleMatches(Exception):
    """An external id matched several records: 300 with the records' URLs, as Salesforce answers."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(f"{len(urls)} records match")
        self.urls = urls


@dataclass(slots=True)
class Cursor:
    rows: list[Record]
    batch_size: int
    last_used: float


@dataclass(frozen=True, slots=True)
class _Session:
    expires_at: float
    user_id: str


@dataclass(slots=True)
class Deleted:
    """A record in the recycle bin: what queryAll and the deleted feed still see."""

    record: Record
    deleted_at: datetime


@dataclass(slots=True)
class _DataState:
    """Everything a composite ``allOrNone`` transaction may have to roll back."""

    records: dict[str, dict[str, Record]]
    recycle_bin: dict[str, dict[str, Deleted]]
    serials: dict[str, int]
    auto_numbers: dict[str, int]


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the data a transaction rolls back, and when the
    org's history (the change feeds) begins."""

    data: _DataState
    reset_at: datetime


@dataclass(frozen=True, slots=True)
class Result:
    """One REST operation's answer, shared by the HTTP handlers and composite subrequests."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", _NOT_FOUND_MESSAGE)


def _version_number(version: str) -> int | None:
    """62 for ``v62.0``; None for anything that is not a release's version path segment."""
    match = _VERSION_SEGMENT.fullmatch(version)
    return int(match.group(1)) if match else None


def _highest_number(records: Mapping[str, Record], field_name: str, prefix: str) -> int:
    """The highest auto-number (``prefix`` + digits) in `records`, 0 for none."""
    return max((int(str(r[field_name]).removeprefix(prefix)) for r in records.values()), default=0)


class Org:
    """All mutable state of one sandbox org: records, sessions, API usage, query cursors, faults.

    `schemas` are the org's objects (default `data.SCHEMAS`): lookups, describe and SOQL all read them
    here, so an org built with other schemas (a field not deployed) answers as that org would.
    """

    durable_type = _DurableState

    def __init__(
        self,
        settings: SalesforceSandboxSettings,
        *,
        clock: Callable[[], float] = time.time,
        schemas: Mapping[str, ObjectSchema] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.schemas: Mapping[str, ObjectSchema] = SCHEMAS if schemas is None else schemas
        self.faults = FaultInjector(seed=settings.seed)
        self.records: dict[str, dict[str, Record]] = {}
        self.recycle_bin: dict[str, dict[str, Deleted]] = {}
        self.sessions: dict[str, _Session] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._cursor_serial = 0
        self._serials: dict[str, int] = {}
        self._auto_numbers: dict[str, int] = {}
        self._reset_at = self.now()
        # Parse registered keys up front: a bad PEM is a configuration error, not a failed login later.
        self._jwt_keys = {
            consumer_key: load_public_key(pem) for consumer_key, pem in (settings.jwt_clients or {}).items()
        }
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget sessions, usage, cursors, deletions, the request log and faults."""
        self.records = build_seed(self.settings.seed)
        self.recycle_bin = {name: {} for name in self.schemas}
        self.sessions.clear()
        self.request_log.clear()
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors.clear()
        self._cursor_serial = 0
        self._serials = {schema.key_prefix: _FIRST_MINTED_NUMBER for schema in self.schemas.values()}
        # Auto-numbers carry on from the seed's highest, as they would in an org that has history.
        self._auto_numbers = {
            "Contract": 1 + _highest_number(self.records["Contract"], "ContractNumber", ""),
            "Rate_Card_Line__c": 1 + _highest_number(self.records["Rate_Card_Line__c"], "Name", "RCL-"),
            "Stratum_Invoice__c": 1 + _highest_number(self.records["Stratum_Invoice__c"], "Name", "SI-"),
            **{
                sobject: 1 + _highest_number(self.records.get(sobject, {}), "Name", prefix)
                for sobject, prefix in PSE_AUTO_NUMBER_PREFIXES.items()
            },
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
            return dev_jwt_key().public_key() if consumer_key == DEV_JWT_CONSUMER_KEY else None
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
            raise not_found()

    def version_base(self) -> str:
        """``/services/data/vXX.X`` for the version the current request named (the latest outside one)."""
        return f"/services/data/{REQUEST_VERSION.get() or self.settings.latest_api_version}"

    def schema(self, sobject: str) -> ObjectSchema:
        wanted = sobject.lower()
        for name, schema in self.schemas.items():
            if name.lower() == wanted:
                return schema
        raise not_found()

    def record(self, schema: ObjectSchema, record_id: str) -> Record:
        normalized = normalize_salesforce_id(record_id)
        if normalized is not None:
            record = self.records[schema.name].get(normalized)
            if record is not None:
                return record
            if normalized in self.recycle_bin[schema.name]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
        raise not_found()

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

    @property
    def open_cursors(self) -> int:
        return len(self._cursors)

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
        missing = [name for name in self.schemas if name not in self.records]
        if missing:
            seed = build_seed(self.settings.seed)
            for name in missing:
                self.records[name] = seed[name]
        self._serials = state.serials
        self._auto_numbers = state.auto_numbers
        # State saved before Stratum_Invoice__c existed numbers its invoices from the first.
        self._auto_numbers.setdefault("Stratum_Invoice__c", 1)
        # State saved before the Certinia objects existed numbers theirs on from the seed's.
        for sobject, prefix in PSE_AUTO_NUMBER_PREFIXES.items():
            self._auto_numbers.setdefault(
                sobject, 1 + _highest_number(self.records.get(sobject, {}), "Name", prefix)
            )
        for name, schema in self.schemas.items():
            self.recycle_bin.setdefault(name, {})
            self._serials.setdefault(schema.key_prefix, _FIRST_MINTED_NUMBER)
        self.refresh_formulas()

    def refresh_formulas(self) -> None:
        """Recompute the formula fields (`data.compute_formulas`): after every write, so that reads and
        SOQL see the value the org computes on read."""
        compute_formulas(self.records)
