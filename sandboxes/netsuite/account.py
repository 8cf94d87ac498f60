"""One NetSuite sandbox account's state and rules: records, tokens, asynchronous jobs, governance.

The routes (one module per REST resource: `auth`, `records`, `query`, `jobs`, `admin`) are thin: they parse
the request and call `NetSuiteSandbox`, whose methods answer as NetSuite does or raise `NetSuiteError`.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from sandboxes.faults import FaultInjector
from sandboxes.netsuite.data import (
    ACCOUNT_ID,
    DEV_CERTIFICATE_ID,
    DEV_CLIENT_ID,
    RECORD_TYPES,
    SEED_NOW,
    SOURCES_FIELD,
    FieldSpec,
    Record,
    RecordType,
    build_seed,
    dev_public_key_pem,
    format_datetime,
    record_type,
    ref_name,
)
from sandboxes.netsuite.suiteql import (
    RecordQueryError,
    SuiteQlError,
    build_tables,
    compile_record_query,
    compile_suiteql,
)
from sandboxes.request_log import RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "ASSERTION_TYPE",
    "REQUIRED_SCOPE",
    "NetSuiteClient",
    "NetSuiteError",
    "NetSuiteSandbox",
    "NetSuiteSandboxSettings",
    "Outcome",
    "dev_client",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__sandbox"
_REST = "/services/rest"
_TOKEN_PATH = f"{_REST}/auth/oauth2/v1/token"
_RECORDS = f"{_REST}/record/v1"
_SUITEQL_PATH = f"{_REST}/query/v1/suiteql"
_JOBS = f"{_REST}/async/v1/job"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUIRED_SCOPE = "rest_webservices"
# NetSuite rejects assertions that live longer than an hour; a minute of skew is tolerated.
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 60
_MAX_PAGE = 1000

# Oracle's REST media types, which NetSuite answers with (unverified: the type= parameters).
_SINGULAR = "application/vnd.oracle.resource+json; type=singular-resource"
_COLLECTION = "application/vnd.oracle.resource+json; type=collection"
_ERROR = "application/vnd.oracle.resource+json; type=error"
_OAUTH_JSON = "application/json;charset=UTF-8"

_RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110.html#section-"
_PROBLEMS: Mapping[int, tuple[str, str]] = {
    400: (f"{_RFC9110}15.5.1", "Bad Request"),
    401: (f"{_RFC9110}15.5.2", "Unauthorized"),
    403: (f"{_RFC9110}15.5.4", "Forbidden"),
    404: (f"{_RFC9110}15.5.5", "Not Found"),
    405: (f"{_RFC9110}15.5.6", "Method Not Allowed"),
    406: (f"{_RFC9110}15.5.7", "Not Acceptable"),
    409: (f"{_RFC9110}15.5.10", "Conflict"),
    413: (f"{_RFC9110}15.5.14", "Content Too Large"),
    415: (f"{_RFC9110}15.5.16", "Unsupported Media Type"),
    429: ("https://www.rfc-editor.org/rfc/rfc6585.html#section-4", "Too Many Requests"),
    500: (f"{_RFC9110}15.6.1", "Internal Server Error"),
    503: (f"{_RFC9110}15.6.4", "Service Unavailable"),
}

_INVALID_LOGIN = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > "
    "Users/Roles > User Management > View Login Audit Trail."
)
_NONEXISTENT = "The record instance does not exist. Provide a valid record instance ID."
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Unverified: the error codes for a bad value type and for an unknown body field (under Error validation).
_BAD_CONTENT = "INVALID_CONTENT"
# ``approvalStatus`` ids (NetSuite's approval status list, as on time bills).
_PENDING_APPROVAL, _APPROVED, _REJECTED = "1", "2", "3"
# The transformations the sandbox performs (NetSuite supports many more; record.transform(options)).
_TRANSFORMS = {("invoice", "creditMemo")}
# Property name validation (unverified: the header's name and values, and how a warning is signalled):
# ``X-NetSuite-PropertyNameValidation: Error | Warning | Ignore``; under Warning, NetSuite's default, a
# property the record does not have is ignored and the answer carries an HTTP ``Warning`` header.
_PROPERTY_VALIDATION_HEADER = "x-netsuite-propertynamevalidation"
_PROPERTY_VALIDATION_LEVELS = ("error", "warning", "ignore")
_DEFAULT_PROPERTY_VALIDATION = "warning"
# Oracle's example answers to an asynchronous request, accepted or refused as a repeat, carry it.
_ASYNC_APPLIED = {"Preference-Applied": "respond-async"}


class NetSuiteClient(msgspec.Struct, kw_only=True, frozen=True):
    """An integration record with its certificate mapping, as the token endpoint knows it."""

    client_id: str
    certificate_id: str
    """The JWT header ``kid`` NetSuite assigned when the certificate was uploaded."""
    public_key_pem: str
    """Verifies the client assertion (EC P-256/P-384/P-521 or RSA, SubjectPublicKeyInfo PEM)."""


def dev_client() -> NetSuiteClient:
    """The development client every sandbox accepts, whose private key is `data.dev_private_key_pem`."""
    return NetSuiteClient(
        client_id=DEV_CLIENT_ID, certificate_id=DEV_CERTIFICATE_ID, public_key_pem=dev_public_key_pem()
    )


class NetSuiteSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a fresh developer sandbox account."""

    account: str = ACCOUNT_ID
    """Account id: the ``realm`` of ``WWW-Authenticate`` and the host label of the canonical token URL."""
    clients: tuple[NetSuiteClient, ...] = ()
    """Extra integration clients; the development client (`dev_client`) is always registered too."""
    concurrency_limit: int = 5
    """Requests allowed in flight at once; one more answers 429 (developer accounts allow 5)."""
    token_ttl_seconds: int = 3600
    seed: int = 42
    signing_algorithms: tuple[str, ...] = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
    """Accepted client-assertion ``alg`` values. NetSuite has withdrawn RS256 (PKCS#1 v1.5) for the client
    credentials flow; add it here to model an account from before that."""
    async_pending_polls: int = 0
    """How many status reads an asynchronous job answers ``pending`` before ``succeeded``/``failed``."""


class NetSuiteError(Exception):
    """An error answered as NetSuite's problem document with one ``o:errorDetails`` entry."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        path: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        titled_as: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path
        self.headers = dict(headers or {})
        # The status whose ``type`` and ``title`` the body carries, where NetSuite's differ from ``status``.
        self.titled_as = titled_as

    def body(self) -> dict[str, Any]:
        problem = _problem(self.status, self.code, self.detail, self.path)
        if self.titled_as is not None:
            problem["type"], problem["title"] = _PROBLEMS[self.titled_as]
        return problem


def _problem(status: int, code: str, detail: str, path: str | None = None) -> dict[str, Any]:
    problem_type, title = _PROBLEMS.get(status, (f"{_RFC9110}15.5.1", "Bad Request"))
    error: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path is not None:
        error["o:errorPath"] = path
    return {"type": problem_type, "title": title, "status": status, "o:errorDetails": [error]}


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a record operation answers: status, optional ``Location`` and optional JSON body."""

    status: int
    location: str | None = None
    body: Any = None


@dataclass(slots=True)
class _Job:
    id: str
    task_id: str
    base: str
    outcome: Outcome
    pending_polls: int
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class _Client:
    client: NetSuiteClient
    key: ECKey | RSAKey


def _import_public_key(pem: str) -> ECKey | RSAKey:
    for key_class in (ECKey, RSAKey):
        try:
            return key_class.import_key(pem)
        except (ValueError, TypeError, JoseError):
            continue
    raise ValueError("a NetSuite client's public_key_pem is neither an EC nor an RSA public key")


def _not_found(path: str | None = "id") -> NetSuiteError:
    return NetSuiteError(404, "NONEXISTENT_ID", _NONEXISTENT, path)


def _copy(record: Record) -> Record:
    return {
        key: [dict(line) for line in value] if isinstance(value, list) else value
        for key, value in record.items()
    }


def _money(value: float) -> float:
    return round(value + 0.0, 2)


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): records, asynchronous jobs and the idempotency keys
    already used, so a retried write is still recognised after a restart."""

    records: dict[str, dict[str, Record]]
    jobs: dict[str, _Job]
    idempotency_keys: dict[str, str]


class NetSuiteSandbox:
    """All mutable state of one sandbox account: records, tokens, async jobs, governance, faults."""

    durable_type = _DurableState

    def __init__(self, settings: NetSuiteSandboxSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.clients: dict[str, _Client] = {
            client.certificate_id: _Client(client, _import_public_key(client.public_key_pem))
            for client in (dev_client(), *settings.clients)
        }
        self.records: dict[str, dict[str, Record]] = {}
        self.tokens: dict[str, float] = {}
        self.jobs: dict[str, _Job] = {}
        self.idempotency_keys: dict[str, str] = {}
        self._property_validation = _DEFAULT_PROPERTY_VALIDATION
        self._property_warnings: list[str] = []
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.throttled = 0
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget tokens, jobs, idempotency keys, counters, the log and faults."""
        self.records = build_seed(self.settings.seed)
        self.tokens.clear()
        self.jobs.clear()
        self.idempotency_keys.clear()
        self.request_log.clear()
        self.peak_in_flight = self.in_flight
        self.throttled = 0
        self.faults.clear()

    def durable_state(self) -> _DurableState:
        return _DurableState(records=self.records, jobs=self.jobs, idempotency_keys=self.idempotency_keys)

    def restore_durable_state(self, state: _DurableState) -> None:
        self.records = state.records
        self.jobs = state.jobs
        self.idempotency_keys = state.idempotency_keys

    # -- time ---------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        # Never before the seed's "now": polling on lastModifiedDate must see every write as newer.
        return max(datetime.fromtimestamp(self.clock(), UTC), SEED_NOW + timedelta(seconds=1))

    def stamp(self) -> str:
        return format_datetime(self.now())

    def today(self) -> date:
        return self.now().date()

    # -- OAuth ----------------------------------------------------------------------------------------------

    def canonical_token_url(self) -> str:
        host = self.settings.account.lower().replace("_", "-")
        return f"https://{host}.suitetalk.api.netsuite.com{_TOKEN_PATH}"

    def issue_token(self, form: Mapping[str, str], token_url: str) -> dict[str, str]:
        """Validate a client-credentials request with a JWT client assertion; raise `_OAuthError`."""
        if form.get("grant_type") != "client_credentials":
            raise _OAuthError("unsupported_grant_type", "Use grant_type=client_credentials.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
        assertion = form.get("client_assertion", "")
        try:
            jose_header = jws.extract_compact(assertion.encode()).headers()
        except (JoseError, ValueError, TypeError, UnicodeDecodeError):
            raise _OAuthError("invalid_request", "The client assertion is not a signed JWT.") from None
        algorithm = jose_header.get("alg")
        if algorithm not in self.settings.signing_algorithms:
            raise _OAuthError("invalid_request", f"The signing algorithm {algorithm!s} is not supported.")
        registered = self.clients.get(str(jose_header.get("kid")))
        if registered is None:
            raise _OAuthError("invalid_client", "The certificate id (kid) is not known for any integration.")
        try:
            token = jwt.decode(assertion, registered.key, algorithms=[str(algorithm)])
        except (JoseError, ValueError, TypeError):
            raise _OAuthError("invalid_client", "The client assertion signature is not valid.") from None
        claims = token.claims
        if claims.get("iss") != registered.client.client_id:
            raise _OAuthError("invalid_client", "The issuer (iss) does not match the certificate's client.")
        audiences = claims.get("aud")
        audience_list = audiences if isinstance(audiences, list) else [audiences]
        if not {token_url, self.canonical_token_url()} & {str(value) for value in audience_list}:
            raise _OAuthError("invalid_grant", "The audience (aud) must be the token endpoint URL.")
        self._check_lifetime(claims)
        scope = claims.get("scope")
        scopes = scope if isinstance(scope, list) else re.split(r"[\s,]+", str(scope or ""))
        if REQUIRED_SCOPE not in scopes:
            # Unverified: the error code; RFC 6749 names a missing or wrong scope invalid_scope.
            raise _OAuthError("invalid_scope", f"The scope must include {REQUIRED_SCOPE}.")
        access_token = secrets.token_urlsafe(48)
        self.tokens[access_token] = self.clock() + self.settings.token_ttl_seconds
        # NetSuite sends expires_in as a string.
        return {
            "access_token": access_token,
            "expires_in": str(self.settings.token_ttl_seconds),
            "token_type": "bearer",
        }

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        issued_at, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued_at, int | float) or not isinstance(expires, int | float):
            raise _OAuthError("invalid_grant", "The client assertion needs numeric iat and exp claims.")
        now = self.clock()
        if expires - issued_at > _MAX_ASSERTION_LIFETIME:
            raise _OAuthError("invalid_grant", "The client assertion must expire within 60 minutes of iat.")
        if expires <= now - _CLOCK_SKEW:
            raise _OAuthError("invalid_grant", "The client assertion has expired.")
        if issued_at > now + _CLOCK_SKEW:
            raise _OAuthError("invalid_grant", "The client assertion is issued in the future.")

    def token_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        expires_at = self.tokens.get(token)
        if expires_at is None:
            return False
        if self.clock() >= expires_at:
            del self.tokens[token]
            return False
        return True

    # -- lookups --------------------------------------------------------------------------------------------

    def record_type(self, name: str) -> RecordType:
        found = record_type(name)
        if found is None:
            # Unverified: status and code for an unknown record type.
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record type '{name}' does not exist.")
        return found

    def find(self, rtype: RecordType, reference: str) -> Record:
        """The record an URL names: an internal id or ``eid:{externalId}``."""
        records = self.records[rtype.name]
        if reference.startswith("eid:"):
            found = self.by_external_id(rtype, reference[4:])
            if found is None:
                raise _not_found()
            return found
        record = records.get(reference)
        if record is None:
            raise _not_found()
        return record

    def by_external_id(self, rtype: RecordType, external_id: str) -> Record | None:
        return next(
            (
                record
                for record in self.records[rtype.name].values()
                if record.get("externalId") == external_id
            ),
            None,
        )

    def owner_type(self, spec: FieldSpec, record_id: str) -> str:
        """Which of a reference's possible types holds `record_id` (for the link's URL)."""
        return next((name for name in spec.ref_types if record_id in self.records[name]), spec.ref_types[0])

    # -- rendering ------------------------------------------------------------------------------------------

    @staticmethod
    def record_url(base: str, type_name: str, record_id: str) -> str:
        return f"{base}{_RECORDS}/{type_name}/{record_id}"

    def ref_name(self, type_name: str, record_id: str) -> str | None:
        return ref_name(self.records, type_name, record_id)

    def render_value(self, base: str, spec: FieldSpec, value: Any) -> Any:
        if spec.kind == "ref":
            target = self.owner_type(spec, str(value))
            rendered: dict[str, Any] = {
                "links": [{"rel": "self", "href": self.record_url(base, target, str(value))}],
                "id": str(value),
            }
            name = self.ref_name(target, str(value))
            if name is not None:
                rendered["refName"] = name
            return rendered
        if spec.kind == "enum":
            return {"id": value, "refName": (spec.choices or {}).get(value, value)}
        if spec.kind == "subrecord":
            return {
                inner.name: self.render_value(base, inner, value[inner.name])
                for inner in spec.lines
                if value.get(inner.name) not in (None, "")
            }
        return value

    def render(
        self,
        base: str,
        rtype: RecordType,
        record: Record,
        fields: set[str] | None = None,
        expand: bool = False,
    ) -> dict[str, Any]:
        """A record as NetSuite shows it: ``links`` first, empty fields left out, sublists as links."""
        url = self.record_url(base, rtype.name, record["id"])
        rendered: dict[str, Any] = {"links": [{"rel": "self", "href": url}]}
        if rtype.name == "customer":
            record = {**record, "balance": self.customer_balance(record["id"])}
        for spec in rtype.fields:
            if fields is not None and spec.name.lower() not in fields and spec.name != "id":
                continue
            value = record.get(spec.name)
            if spec.kind == "sublist":
                if expand:
                    rendered[spec.name] = self.render_sublist(base, url, spec, value or [])
                else:
                    rendered[spec.name] = {"links": [{"rel": "self", "href": f"{url}/{spec.name}"}]}
                continue
            if value is None or value == "":
                continue  # NetSuite leaves empty fields out of the document
            rendered[spec.name] = self.render_value(base, spec, value)
        return rendered

    def render_sublist(self, base: str, url: str, spec: FieldSpec, lines: list[Record]) -> dict[str, Any]:
        items = []
        for line in lines:
            item: dict[str, Any] = {"links": [{"rel": "self", "href": f"{url}/{spec.name}/{line['line']}"}]}
            for line_spec in spec.lines:
                value = line.get(line_spec.name)
                if value is not None and value != "":
                    item[line_spec.name] = self.render_value(base, line_spec, value)
            items.append(item)
        return {
            "links": [{"rel": "self", "href": f"{url}/{spec.name}"}],
            "count": len(items),
            "hasMore": False,
            "items": items,
            "offset": 0,
            "totalResults": len(items),
        }

    # -- reads ----------------------------------------------------------------------------------------------

    def list_page(
        self, base: str, rtype: RecordType, limit: int, offset: int, q: str | None
    ) -> dict[str, Any]:
        records = sorted(self.records[rtype.name].values(), key=lambda record: int(record["id"]))
        if q is not None and q.strip():
            try:
                matches = compile_record_query(q, rtype)
            except RecordQueryError as exc:
                raise NetSuiteError(
                    400, "INVALID_PARAMETER", f"Invalid query parameter 'q': {exc.message}", "q"
                ) from None
            records = [record for record in records if matches(record)]
        items = [
            {
                "links": [{"rel": "self", "href": self.record_url(base, rtype.name, record["id"])}],
                "id": record["id"],
            }
            for record in records[offset : offset + limit]
        ]
        extra = {} if q is None else {"q": q}
        return _page(f"{base}{_RECORDS}/{rtype.name}", items, len(records), limit, offset, extra)

    def suiteql(self, base: str, text: str, limit: int, offset: int) -> dict[str, Any]:
        try:
            # SQLite gets the tables the query reads, as the records are now (`SuiteQlDatabase`).
            compiled = compile_suiteql(text, build_tables(self.records, RECORD_TYPES))
            rows = compiled.run()
        except SuiteQlError as exc:
            raise NetSuiteError(
                400,
                "INVALID_PARAMETER",
                f"Invalid search query. Detailed unprocessed description follows. {exc.message}",
            ) from None
        items = [{"links": [], **row} for row in rows[offset : offset + limit]]
        return _page(f"{base}{_SUITEQL_PATH}", items, len(rows), limit, offset, {})

    # -- writes ---------------------------------------------------------------------------------------------

    def writable(self, rtype: RecordType) -> None:
        if not rtype.writable:
            raise NetSuiteError(
                400, "USER_ERROR", f"The Stratum NetSuite sandbox serves {rtype.name} records read-only."
            )

    def create(self, base: str, rtype: RecordType, body: Any) -> Outcome:
        self.writable(rtype)
        record, touched = self.build(rtype, None, body)
        self.commit(rtype, record, touched)
        return Outcome(204, self.record_url(base, rtype.name, record["id"]))

    def update(self, rtype: RecordType, reference: str, body: Any) -> Outcome:
        self.writable(rtype)
        existing = self.find(rtype, reference)
        record, touched = self.build(rtype, existing, body)
        self.commit(rtype, record, touched)
        return Outcome(204)

    def upsert(self, base: str, rtype: RecordType, reference: str, body: Any) -> Outcome:
        self.writable(rtype)
        if not reference.startswith("eid:") or len(reference) == 4:
            raise NetSuiteError(
                400, "INVALID_PARAMETER", "PUT (upsert) needs an external id in the URL: eid:{externalId}."
            )
        external_id = reference[4:]
        if isinstance(body, dict):
            given = next((value for key, value in body.items() if key.lower() == "externalid"), external_id)
            if given != external_id:
                raise NetSuiteError(
                    400, "USER_ERROR", "The externalId in the body differs from the URL's.", "externalId"
                )
            body = {key: value for key, value in body.items() if key.lower() != "externalid"}
        existing = self.by_external_id(rtype, external_id)
        record, touched = self.build(rtype, existing, body, external_id=external_id)
        self.commit(rtype, record, touched)
        if existing is not None:
            return Outcome(204)
        return Outcome(204, self.record_url(base, rtype.name, record["id"]))

    def transform(self, base: str, rtype: RecordType, reference: str, target: str, body: Any) -> Outcome:
        """``POST {type}/{id}/!transform/{target}``: a new `target` record made from the source record's
        data, the body's fields on top; 204 + ``Location`` (NetSuite help: "Transforming Records").

        Invoice -> credit memo copies customer, currency, project and item lines, and applies the credit
        to the invoice, as NetSuite's "Credit" button does."""
        source = self.find(rtype, reference)
        target_type = self.record_type(target)
        if (rtype.name, target_type.name) not in _TRANSFORMS:
            raise NetSuiteError(
                400,
                "INVALID_PARAMETER",
                f"The transformation from {rtype.name} to {target_type.name} is not supported.",
            )
        if source.get("status") != "A":
            # Unverified wording: only an open invoice (approved, with something still due) is credited.
            raise NetSuiteError(
                400, "USER_ERROR", f"The invoice {source['tranId']} is not open: it cannot be credited."
            )
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise NetSuiteError(400, _BAD_CONTENT, "The request body must be a JSON object.")
        line_fields = ("item", "description", "quantity", "rate", "amount", "taxCode", SOURCES_FIELD)
        prefilled: dict[str, Any] = {
            "entity": {"id": source["entity"]},
            "currency": {"id": source["currency"]},
            "subsidiary": {"id": source["subsidiary"]} if source.get("subsidiary") else None,
            "job": {"id": source["job"]} if source.get("job") else None,
            "memo": source.get("memo"),
            "item": {
                "items": [
                    {
                        name: {"id": line[name]} if name in ("item", "taxCode") else line[name]
                        for name in line_fields
                        if line.get(name) is not None
                    }
                    for line in source.get("item") or []
                ]
            },
            "apply": {
                "items": [{"doc": {"id": source["id"]}, "apply": True, "amount": source["amountRemaining"]}]
            },
        }
        prefilled.update(body)
        record, touched = self.build(target_type, None, prefilled)
        record["createdFrom"] = source["id"]
        self.commit(target_type, record, touched)
        return Outcome(204, self.record_url(base, target_type.name, record["id"]))

    def customer_balance(self, customer_id: str) -> float:
        """What the customer's open invoices still owe (the customer's read-only ``balance``)."""
        return _money(
            sum(
                invoice.get("amountRemaining") or 0.0
                for invoice in self.records["invoice"].values()
                if invoice.get("entity") == customer_id and invoice.get("status") == "A"
            )
        )

    def delete(self, rtype: RecordType, reference: str) -> Outcome:
        self.writable(rtype)
        record = self.find(rtype, reference)
        if self.has_dependents(rtype, record["id"]):
            raise NetSuiteError(
                400, "USER_ERROR", "This record cannot be deleted because it has dependent records."
            )
        touched: list[tuple[str, Record]] = []
        if rtype.name in ("customerPayment", "creditMemo"):
            touched = self.apply_payment(None, record)
        del self.records[rtype.name][record["id"]]
        for type_name, changed in touched:
            self.records[type_name][changed["id"]] = changed
        return Outcome(204)

    def has_dependents(self, rtype: RecordType, record_id: str) -> bool:
        for other in RECORD_TYPES.values():
            for spec in other.fields:
                specs = [spec] if spec.kind == "ref" else [line for line in spec.lines if line.kind == "ref"]
                for ref in specs:
                    if rtype.name not in ref.ref_types:
                        continue
                    for record in self.records[other.name].values():
                        values = (
                            [record.get(ref.name)]
                            if spec.kind == "ref"
                            else [line.get(ref.name) for line in record.get(spec.name) or []]
                        )
                        if record_id in values and not (other is rtype and record["id"] == record_id):
                            return True
        return False

    def next_id(self, rtype: RecordType) -> str:
        family = [
            int(record_id)
            for other in RECORD_TYPES.values()
            if other.family == rtype.family
            for record_id in self.records[other.name]
        ]
        return str(max(family, default=0) + 1)

    def commit(self, rtype: RecordType, record: Record, touched: list[tuple[str, Record]]) -> None:
        self.records[rtype.name][record["id"]] = record
        for type_name, changed in touched:
            self.records[type_name][changed["id"]] = changed

    def build(
        self, rtype: RecordType, existing: Record | None, body: Any, external_id: str | None = None
    ) -> tuple[Record, list[tuple[str, Record]]]:
        """Apply a request body to a copy of `existing` (or a new record); all or nothing.

        Returns the record to store and other records the write changes (invoices a payment applies to).
        """
        if not isinstance(body, dict):
            raise NetSuiteError(400, _BAD_CONTENT, "The request body must be a JSON object.")
        record = _copy(existing) if existing is not None else self.blank(rtype)
        for name, value in body.items():
            if name == "links":
                continue  # clients echo the links of a record they read; NetSuite ignores them
            spec = rtype.field(name)
            if spec is None:
                self.unknown_property(f"Invalid field name '{name}' for record type {rtype.name}.", name)
                continue
            if spec.read_only:
                raise NetSuiteError(400, "USER_ERROR", f"The field {spec.name} is read-only.", spec.name)
            record[spec.name] = self.coerce(spec, value, spec.name)
        if external_id is not None:
            record["externalId"] = external_id
        touched = self.complete(rtype, record, existing)
        self.check_required(rtype, record)
        self.check_unique(rtype, record)
        record["lastModifiedDate"] = self.stamp()
        return record, touched

    def blank(self, rtype: RecordType) -> Record:
        record: Record = {spec.name: [] if spec.kind == "sublist" else None for spec in rtype.fields}
        record["id"] = self.next_id(rtype)
        stamp = self.stamp()
        for created in ("dateCreated", "createdDate"):
            if created in record:
                record[created] = stamp
        for flag in ("isInactive", "isPerson", "inArrears"):
            if flag in record:
                record[flag] = False
        return record

    def coerce(self, spec: FieldSpec, value: Any, path: str) -> Any:
        if value is None:
            return [] if spec.kind == "sublist" else None
        kind = spec.kind
        if kind in ("text", "email"):
            if not isinstance(value, str):
                raise _bad_value(spec, value, path)
            if spec.max_length is not None and len(value) > spec.max_length:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    f"The field {spec.name} contained more than the maximum number ( {spec.max_length} ) of "
                    "characters allowed.",
                    path,
                )
            if kind == "email" and value and not _EMAIL.fullmatch(value):
                raise NetSuiteError(400, "USER_ERROR", f"Please enter a valid email address: {value}", path)
            return value or None
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _bad_value(spec, value, path)
            return value
        if kind in ("money", "number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad_value(spec, value, path)
            return _money(float(value)) if kind == "money" else float(value)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad_value(spec, value, path)
            return value
        if kind == "date":
            parsed = None
            if isinstance(value, str) and len(value) == 10:
                try:
                    parsed = date.fromisoformat(value)
                except ValueError:
                    parsed = None
            if parsed is None:
                raise _bad_value(spec, value, path)
            return parsed.isoformat()
        if kind == "ref":
            return self.resolve(spec, value, path)
        if kind == "enum":
            option = value.get("id") if isinstance(value, dict) else value
            if not isinstance(option, str) or option not in (spec.choices or {}):
                detail = f"Invalid {spec.name} reference key {option}."
                raise NetSuiteError(400, "INVALID_KEY_OR_REF", detail, path)
            return option
        if kind == "sublist":
            return self.coerce_lines(spec, value, path)
        if kind == "subrecord":
            return self.coerce_subrecord(spec, value, path)
        raise _bad_value(spec, value, path)

    def coerce_subrecord(self, spec: FieldSpec, value: Any, path: str) -> Record:
        """A subrecord (an address) is one JSON object of its own fields."""
        if not isinstance(value, dict):
            raise NetSuiteError(400, _BAD_CONTENT, f"The subrecord {spec.name} must be a JSON object.", path)
        subrecord: Record = {inner.name: None for inner in spec.lines}
        for name, inner_value in value.items():
            if name == "links":
                continue
            inner = next((s for s in spec.lines if s.name.lower() == name.lower()), None)
            if inner is None:
                self.unknown_property(f"Invalid field name '{name}' for subrecord {spec.name}.", path)
                continue
            subrecord[inner.name] = self.coerce(inner, inner_value, f"{path}.{inner.name}")
        return subrecord

    def resolve(self, spec: FieldSpec, value: Any, path: str) -> str:
        if not isinstance(value, dict) or ("id" not in value and "externalId" not in value):
            raise NetSuiteError(
                400, _BAD_CONTENT, f'The field {spec.name} takes a reference: {{"id": "..."}}.', path
            )
        if "id" in value:
            wanted = str(value["id"])
            if any(wanted in self.records[name] for name in spec.ref_types):
                return wanted
        else:
            wanted = str(value["externalId"])
            for name in spec.ref_types:
                found = self.by_external_id(RECORD_TYPES[name], wanted)
                if found is not None:
                    return str(found["id"])
        # Unverified: NetSuite's REST wording; this is its classic "invalid reference key" message.
        raise NetSuiteError(400, "INVALID_KEY_OR_REF", f"Invalid {spec.name} reference key {wanted}.", path)

    def coerce_lines(self, spec: FieldSpec, value: Any, path: str) -> list[Record]:
        items = value.get("items") if isinstance(value, dict) else None
        if not isinstance(items, list):
            raise NetSuiteError(400, _BAD_CONTENT, f'The sublist {spec.name} takes {{"items": [...]}}.', path)
        lines: list[Record] = []
        for index, item in enumerate(items):
            line_path = f"{path}.items[{index}]"
            if not isinstance(item, dict):
                raise NetSuiteError(400, _BAD_CONTENT, "A sublist line must be a JSON object.", line_path)
            line: Record = {line_spec.name: None for line_spec in spec.lines}
            for name, item_value in item.items():
                if name == "links":
                    continue
                line_spec = next((s for s in spec.lines if s.name.lower() == name.lower()), None)
                if line_spec is None:
                    self.unknown_property(f"Invalid field name '{name}' for sublist {spec.name}.", line_path)
                    continue
                if line_spec.read_only:
                    continue  # the line number is assigned by position
                line[line_spec.name] = self.coerce(line_spec, item_value, f"{line_path}.{line_spec.name}")
            missing = [s.display for s in spec.lines if s.required and line.get(s.name) is None]
            if missing:
                raise NetSuiteError(
                    400, "USER_ERROR", f"Please enter value(s) for: {', '.join(missing)}", line_path
                )
            line["line"] = index + 1
            lines.append(line)
        return lines

    def check_required(self, rtype: RecordType, record: Record) -> None:
        missing = [spec for spec in rtype.fields if spec.required and record.get(spec.name) in (None, "", [])]
        if missing:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"Error while accessing a resource. Please enter value(s) for: "
                f"{', '.join(spec.display for spec in missing)}.",
                missing[0].name,
            )

    def check_unique(self, rtype: RecordType, record: Record) -> None:
        for name, message in (
            ("externalId", f"A {rtype.name} record with this external ID already exists."),
            ("entityId", f"A {rtype.name} record with this ID already exists. You must enter a unique ID."),
        ):
            value = record.get(name)
            # Contacts may share a name; customer and project ids must be unique.
            if value is None or rtype.field(name) is None or (rtype.name == "contact" and name == "entityId"):
                continue
            clash = any(
                other.get(name) == value and other["id"] != record["id"]
                for other in self.records[rtype.name].values()
            )
            if clash:
                raise NetSuiteError(400, "USER_ERROR", message, name)

    # -- derived fields -------------------------------------------------------------------------------------

    def complete(
        self, rtype: RecordType, record: Record, existing: Record | None
    ) -> list[tuple[str, Record]]:
        """Defaults and derived fields per record type, as NetSuite sets them on save."""
        name = rtype.name
        if name == "customer":
            record["entityId"] = record["entityId"] or f"C{record['id']}"
            if record["parent"] == record["id"]:
                raise NetSuiteError(400, "USER_ERROR", "A customer cannot be its own parent.", "parent")
            if record["currency"] is None and record["subsidiary"] is not None:
                record["currency"] = self.records["subsidiary"][record["subsidiary"]]["currency"]
        elif name == "contact":
            full_name = " ".join(part for part in (record["firstName"], record["lastName"]) if part)
            record["entityId"] = record["entityId"] or full_name or None
            self.inherit(record, "company", ("subsidiary",))
        elif name == "job":
            record["entityId"] = record["entityId"] or f"PRJ{record['id']}"
            record["entityStatus"] = record["entityStatus"] or "2"
            self.inherit(record, "parent", ("subsidiary", "currency"))
        elif name == "billingSchedule":
            record["scheduleType"] = record["scheduleType"] or "STDRD"
            if record["milestones"]:
                share = round(sum(line["milestoneAmount"] for line in record["milestones"]), 4)
                if share != 100:
                    detail = "The milestone amounts must total 100%."
                    raise NetSuiteError(400, "USER_ERROR", detail, "milestones")
        elif name in ("invoice", "salesOrder"):
            self.complete_order(record, existing, prefix="INV" if name == "invoice" else "SO")
        elif name == "creditMemo":
            record["tranId"] = record["tranId"] or f"CM{record['id']}"
            record["tranDate"] = record["tranDate"] or self.today().isoformat()
            self.inherit(record, "entity", ("subsidiary", "currency"))
            self.price_lines(record)
            return self.apply_payment(record, existing)
        elif name == "customerPayment":
            record["tranId"] = record["tranId"] or f"PYMT{record['id']}"
            record["tranDate"] = record["tranDate"] or self.today().isoformat()
            record["status"] = record["status"] or "B"
            self.inherit(record, "customer", ("subsidiary", "currency"))
            if record["payment"] is not None and record["payment"] <= 0:
                detail = "The payment amount must be greater than zero."
                raise NetSuiteError(400, "USER_ERROR", detail, "payment")
            if record["payment"] is not None and record["customer"] is not None:
                return self.apply_payment(record, existing)
        elif name == "timeBill":
            record["tranDate"] = record["tranDate"] or self.today().isoformat()
            record["approvalStatus"] = record["approvalStatus"] or "1"
            if record["isBillable"] is None:
                record["isBillable"] = True
            if record["hours"] is not None and not 0 < record["hours"] <= 24:
                detail = "The duration must be between 0 and 24 hours."
                raise NetSuiteError(400, "USER_ERROR", detail, "hours")
            if record["rate"] is None and record["item"] is not None:
                record["rate"] = self.records["serviceItem"][record["item"]]["rate"]
            self.inherit(record, "employee", ("subsidiary",))
        return []

    def inherit(self, record: Record, source: str, names: tuple[str, ...]) -> None:
        """Fill empty `names` from the record `source` points at (a project takes its customer's currency)."""
        source_id = record.get(source)
        if source_id is None:
            return
        origin = next(
            (
                self.records[type_name][source_id]
                for type_name in ("customer", "job", "employee")
                if source_id in self.records[type_name]
            ),
            None,
        )
        for name in names:
            if record.get(name) is None and origin is not None:
                record[name] = origin.get(name)

    def complete_order(self, record: Record, existing: Record | None, prefix: str) -> None:
        record["tranId"] = record["tranId"] or f"{prefix}{record['id']}"
        record["tranDate"] = record["tranDate"] or self.today().isoformat()
        customer = self.records["customer"].get(record["entity"] or "")
        if customer is not None:
            for name in ("subsidiary", "currency"):
                record[name] = record[name] or customer[name]
            if "terms" in record:
                record["terms"] = record["terms"] or customer["terms"]
        job = self.records["job"].get(record["job"] or "")
        if job is not None and record["entity"] is not None and job["parent"] != record["entity"]:
            raise NetSuiteError(400, "USER_ERROR", "The project does not belong to this customer.", "job")
        self.price_lines(record)
        if "amountRemaining" not in record:  # a sales order
            record["status"] = record["status"] or "B"
            return
        if record["dueDate"] is None and record["terms"] is not None:
            days = self.records["term"][record["terms"]]["daysUntilNetDue"]
            record["dueDate"] = (date.fromisoformat(record["tranDate"]) + timedelta(days=days)).isoformat()
        # Without a value the invoice is approved (as in an account without invoice approval routing).
        approval = record["approvalStatus"] = record.get("approvalStatus") or _APPROVED
        previous_approval = None if existing is None else existing.get("approvalStatus") or _APPROVED
        if previous_approval not in (None, _PENDING_APPROVAL, approval):
            # An approved invoice has posted and a rejected one is closed: approval only moves forward
            # from Pending Approval (unverified: NetSuite's wording).
            raise NetSuiteError(
                400,
                "USER_ERROR",
                "The approval status can only change while the invoice is pending approval.",
                "approvalStatus",
            )
        paid = record["amountPaid"] or 0.0
        if record["total"] + 0.005 < paid:
            raise NetSuiteError(
                400, "USER_ERROR", "The invoice total cannot be less than the payments applied to it.", "item"
            )
        self.settle(record, paid)

    def price_lines(self, record: Record) -> None:
        """Default each item line's quantity, rate, amount and description; the record's totals: ``subtotal``
        the lines' sum, ``taxTotal`` the tax (0: this sandbox computes no tax, whatever the lines' tax
        codes; REST web services need SuiteTax for taxation), ``total`` the two together."""
        for line in record["item"]:
            if line["quantity"] is None:
                line["quantity"] = 1.0
            if line["rate"] is None:
                line["rate"] = self.records["serviceItem"][line["item"]]["rate"]
            if line["amount"] is None:
                line["amount"] = _money(line["quantity"] * line["rate"])
            if line["description"] is None:
                line["description"] = self.records["serviceItem"][line["item"]]["displayName"]
        record["subtotal"] = _money(sum(line["amount"] for line in record["item"]))
        record["taxTotal"] = 0.0
        record["total"] = _money(record["subtotal"] + record["taxTotal"])

    @staticmethod
    def settle(invoice: Record, paid: float) -> None:
        """Amounts and status from what has been applied to the invoice (payments and credits; unverified:
        whether NetSuite's ``amountPaid`` counts applied credits too; the sandbox counts them)."""
        invoice["amountPaid"] = _money(paid)
        invoice["amountRemaining"] = _money(invoice["total"] - paid)
        approval = invoice.get("approvalStatus")
        if approval == _PENDING_APPROVAL:
            invoice["status"] = "D"
        elif approval == _REJECTED:
            invoice["status"] = "E"
        else:
            invoice["status"] = "B" if invoice["amountRemaining"] <= 0 else "A"

    def apply_payment(self, payment: Record | None, previous: Record | None) -> list[tuple[str, Record]]:
        """Move money between a payment (or a credit memo) and its invoices: undo `previous`, then apply
        `payment`."""
        touched: dict[str, Record] = {}

        def invoice(invoice_id: str) -> Record:
            if invoice_id not in touched:
                touched[invoice_id] = _copy(self.records["invoice"][invoice_id])
            return touched[invoice_id]

        for line in (previous or {}).get("apply") or []:
            if line.get("apply") and line.get("amount"):
                target = invoice(line["doc"])
                self.settle(target, target["amountPaid"] - line["amount"])
        if payment is not None:
            # A payment's amount is ``payment`` and its customer ``customer``; a credit memo's ``total``
            # and ``entity``.
            is_payment = "payment" in payment
            amount_field, customer_field = ("payment", "customer") if is_payment else ("total", "entity")
            available = payment[amount_field]
            for index, line in enumerate(payment["apply"]):
                path = f"apply.items[{index}]"
                if line["apply"] is False:
                    line["amount"] = None
                    continue
                target = invoice(line["doc"])
                if target["entity"] != payment[customer_field]:
                    raise NetSuiteError(400, "USER_ERROR", "The invoice belongs to another customer.", path)
                if target.get("status") in ("D", "E", "V"):
                    # Only an open invoice (approved, not voided) takes payments (unverified wording).
                    raise NetSuiteError(
                        400, "USER_ERROR", f"The invoice {target['tranId']} is not open for payment.", path
                    )
                due = target["amountRemaining"]
                amount = line["amount"] if line["amount"] is not None else _money(min(due, available))
                if amount <= 0 or amount > due + 0.005:
                    raise NetSuiteError(
                        400,
                        "USER_ERROR",
                        f"The amount applied to invoice {target['tranId']} must be between 0 and its amount "
                        f"due ({due}).",
                        path,
                    )
                available = _money(available - amount)
                if available < -0.005:
                    raise NetSuiteError(
                        400, "USER_ERROR", "The total applied exceeds the payment amount.", "apply"
                    )
                line["apply"], line["amount"] = True, amount
                self.settle(target, target["amountPaid"] + amount)
            payment["applied"] = _money(payment[amount_field] - available)
            payment["unapplied"] = _money(available)
            if amount_field == "total":
                payment["status"] = "B" if available <= 0 else "A"
        stamp = self.stamp()
        for target in touched.values():
            target["lastModifiedDate"] = stamp
        return [("invoice", target) for target in touched.values()]

    # -- property name validation ---------------------------------------------------------------------------

    @contextmanager
    def property_validation(self, level: str) -> Iterator[list[str]]:
        """Run one write (synchronous code: no other request interleaves) under a property-name validation
        level; yields the warnings it collects."""
        self._property_validation, self._property_warnings = level, []
        try:
            yield self._property_warnings
        finally:
            self._property_validation = _DEFAULT_PROPERTY_VALIDATION

    def unknown_property(self, detail: str, path: str) -> None:
        """A body property the record does not have: refused under ``Error``; under ``Warning`` (NetSuite's
        default) ignored with a warning; under ``Ignore`` ignored silently."""
        if self._property_validation == "error":
            raise NetSuiteError(400, _BAD_CONTENT, detail, path)
        if self._property_validation == "warning":
            self._property_warnings.append(detail)

    # -- asynchronous requests ------------------------------------------------------------------------------

    def submit(self, base: str, key: str | None, operation: Callable[[], Outcome]) -> _Job:
        """Run `operation` as an asynchronous job; the key, if any, may be used only once."""
        if key is not None:
            if not _UUID.fullmatch(key):
                raise NetSuiteError(
                    400, "INVALID_HEADER", "The X-NetSuite-Idempotency-Key header value must be a UUID."
                )
            first = self.idempotency_keys.get(key.lower())
            if first is not None:
                # Oracle's documented answer ("Sending an Asynchronous Request Using an Idempotency Key"):
                # 400 titled "Conflict", and the first job is named by the Location header, not the text.
                raise NetSuiteError(
                    400,
                    "IDEMPOTENCY_ERROR",
                    'A request with the same idempotency key is already submitted. See the "Location" '
                    "header for a link to the previously submitted job",
                    headers={"Location": f"{base}{_JOBS}/{first}", **_ASYNC_APPLIED},
                    titled_as=409,
                )
        job_id = str(len(self.jobs) + 1)
        try:
            outcome = operation()
        except NetSuiteError as exc:
            outcome = Outcome(exc.status, body=exc.body())
        job = _Job(job_id, "1", base, outcome, self.settings.async_pending_polls, key)
        self.jobs[job_id] = job
        if key is not None:
            self.idempotency_keys[key.lower()] = job_id
        return job

    def job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise _not_found(None)
        return job

    def job_state(self, job: _Job, *, poll: bool) -> tuple[bool, str]:
        if job.pending_polls > 0:
            if poll:
                job.pending_polls -= 1
            return False, "pending"
        return True, "succeeded" if job.outcome.status < 400 else "failed"


def _bad_value(spec: FieldSpec, value: Any, path: str) -> NetSuiteError:
    shown = msgspec.json.encode(value).decode()[:60]
    detail = f"Invalid value {shown} for field {spec.name} ({spec.kind})."
    return NetSuiteError(400, _BAD_CONTENT, detail, path)


def _page(
    url: str, items: list[dict[str, Any]], total: int, limit: int, offset: int, extra: Mapping[str, str]
) -> dict[str, Any]:
    """NetSuite's collection envelope with HATEOAS paging links."""

    def link(rel: str, page_offset: int) -> dict[str, str]:
        return {"rel": rel, "href": f"{url}?{urlencode({**extra, 'limit': limit, 'offset': page_offset})}"}

    links = []
    if offset > 0:
        links += [link("previous", max(0, offset - limit)), link("first", 0)]
    has_more = offset + len(items) < total
    if has_more:
        last = ((total - 1) // limit) * limit
        links += [link("next", offset + limit), link("last", last)]
    links.append(link("self", offset))
    return {
        "links": links,
        "count": len(items),
        "hasMore": has_more,
        "items": items,
        "offset": offset,
        "totalResults": total,
    }
