"""The Salesforce sandbox: a Litestar app that answers like the Salesforce REST API on the wire.

Served at the app's own root (mount it anywhere: URLs it hands out follow Salesforce's rules, see
`create_salesforce_sandbox`):

- ``POST /services/oauth2/token``: client-credentials grant (HTTP Basic or form fields)
- ``GET /services/data``: API versions (no auth, like Salesforce)
- ``GET /services/data/vXX.X``, ``.../limits``, ``GET`` and ``PATCH .../sobjects/{Obj}/{id}``,
  ``.../query?q=`` and ``.../queryAll?q=`` with ``nextRecordsUrl`` paging
- ``/__sandbox/...``: reset, session expiry, stats and fault injection (no auth; never on vendor paths)

Every ``/services/data/vXX.X/...`` call needs a bearer token, counts against the daily API limit and
carries ``Sforce-Limit-Info``; errors there are Salesforce's JSON arrays.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from hashlib import sha256
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, unquote

import msgspec
from litestar import Litestar, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp as LitestarASGIApp

from sandboxes.faults import ASGIApp, FaultInjector, Message, Receive, Scope, Send, relative_path, with_faults
from sandboxes.salesforce.data import (
    INTEGRATION_USER_ID,
    ORG_ID,
    SCHEMAS,
    STAGES,
    USERS,
    FieldSpec,
    ObjectSchema,
    Record,
    build_seed,
    format_datetime,
    normalize_salesforce_id,
    salesforce_id,
)
from sandboxes.salesforce.soql import BoundQuery, SoqlError, compile_query

__all__ = [
    "ADMIN_PREFIX",
    "RequestLogEntry",
    "SalesforceError",
    "SalesforceSandbox",
    "SalesforceSandboxSettings",
    "create_salesforce_sandbox",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__sandbox"
_DATA_PREFIX = "/services/data/"
_JSON = "application/json;charset=UTF-8"
# Salesforce keeps an idle query cursor for 15 minutes; the cap bounds memory if clients never finish.
_CURSOR_TTL_SECONDS = 15 * 60
_MAX_CURSORS = 100
_DEFAULT_BATCH_SIZE = 2000
_MIN_BATCH_SIZE = 200
_NOT_FOUND_MESSAGE = "The requested resource does not exist"


def _default_clients() -> dict[str, str]:
    return {"stratum-sandbox": "stratum-sandbox-secret"}


class SalesforceSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a fresh developer org."""

    api_version: str = "v61.0"
    """The only API version served; any other answers 404 ``NOT_FOUND``."""
    clients: Mapping[str, str] = msgspec.field(default_factory=_default_clients)
    """Consumer key -> consumer secret accepted by the token endpoint."""
    daily_api_limit: int = 5000
    session_ttl_seconds: int = 7200
    max_batch_size: int = 2000
    """Cap on query batch size, below Salesforce's own 200..2000 range if a test wants small pages."""
    seed: int = 42


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


class RequestLogEntry(msgspec.Struct, frozen=True):
    """One served request, as listed by ``GET /__sandbox/stats``."""

    method: str
    path: str
    status: int


@dataclass(slots=True)
class _Cursor:
    rows: list[Record]
    batch_size: int
    last_used: float


def _not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", _NOT_FOUND_MESSAGE)


def _release_label(version: str) -> str:
    # Three releases a year; v61.0 was Summer '24. Only cosmetic, for the versions listing.
    try:
        index = int(float(version)) - 59
    except ValueError:
        return version
    season = ("Winter", "Spring", "Summer")[index % 3]
    return f"{season} '{24 + index // 3:02d}"


class SalesforceSandbox:
    """All mutable state of one sandbox org: records, sessions, API usage, query cursors, faults."""

    def __init__(
        self, settings: SalesforceSandboxSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.records: dict[str, dict[str, Record]] = {}
        self.sessions: dict[str, float] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_serial = 0
        self.reset()

    def reset(self) -> None:
        """Reseed the data and forget sessions, usage, cursors, the request log and faults."""
        self.records = build_seed(self.settings.seed)
        self.sessions.clear()
        self.request_log.clear()
        self._api_usage = 0
        self._usage_day = self._today()
        self._cursors.clear()
        self._cursor_serial = 0
        self.faults.clear()

    # -- sessions -----------------------------------------------------------------------------------------

    def open_session(self) -> tuple[str, int]:
        """Issue an access token; returns it with its issue time in epoch milliseconds."""
        now = self.clock()
        # Real tokens are "<org id>!<opaque>"; some clients log the org part, so keep the shape.
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(72)}"
        self.sessions[token] = now + self.settings.session_ttl_seconds
        return token, int(now * 1000)

    def session_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        expires_at = self.sessions.get(token)
        if expires_at is None:
            return False
        if self.clock() >= expires_at:
            del self.sessions[token]
            return False
        return True

    def expire_sessions(self) -> None:
        self.sessions.clear()

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

    # -- records ------------------------------------------------------------------------------------------

    def check_version(self, version: str) -> None:
        if version != self.settings.api_version:
            raise _not_found()

    def schema(self, sobject: str) -> ObjectSchema:
        wanted = sobject.lower()
        for name, schema in SCHEMAS.items():
            if name.lower() == wanted:
                return schema
        raise _not_found()

    def record(self, schema: ObjectSchema, record_id: str) -> Record:
        normalized = normalize_salesforce_id(record_id)
        record = None if normalized is None else self.records[schema.name].get(normalized)
        if record is None:
            raise _not_found()
        return record

    def render(
        self, schema: ObjectSchema, record: Record, fields: tuple[FieldSpec, ...] | None = None
    ) -> Record:
        """A record as the API shows it: ``attributes`` first, then the fields."""
        rendered: Record = {
            "attributes": {
                "type": schema.name,
                "url": f"/services/data/{self.settings.api_version}/sobjects/{schema.name}/{record['Id']}",
            }
        }
        for spec in fields if fields is not None else schema.fields:
            rendered[spec.name] = record.get(spec.name)
        return rendered

    def update(self, schema: ObjectSchema, record_id: str, body: Any) -> None:
        """Apply a PATCH body, validating it the way Salesforce does; all or nothing."""
        record = self.record(schema, record_id)
        if not isinstance(body, dict):
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {schema.name} from {_json_token(body)} value",
            )
        changes: dict[str, Any] = {}
        read_only: list[str] = []
        missing: list[str] = []
        for name, value in body.items():
            if name == "attributes":
                continue  # Salesforce tolerates the attributes block clients echo back.
            spec = schema.field(name)
            if spec is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {schema.name}", [name]
                )
            if not spec.updateable:
                read_only.append(spec.name)
                continue
            changes[spec.name] = self._coerce(spec, value)
            if changes[spec.name] is None and spec.required:
                missing.append(spec.name)
        if read_only:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", message, missing)
        if schema.name == "Opportunity" and "StageName" in changes:
            stage = STAGES[changes["StageName"]]
            changes["IsWon"] = stage.is_won
            changes["IsClosed"] = stage.is_closed
            # Changing the stage resets Probability to the stage default unless the caller set it too.
            changes.setdefault("Probability", stage.probability)
        stamp = format_datetime(datetime.fromtimestamp(self.clock(), UTC))
        changes["LastModifiedDate"] = stamp
        changes["SystemModstamp"] = stamp
        record.update(changes)

    def _coerce(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if spec.kind in ("currency", "double", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _deserialize_error("double", value)
            return round(float(value), 2)
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
        if spec.kind == "reference":
            return self._reference(spec, value)
        if spec.restricted_values is not None and value not in spec.restricted_values:
            raise SalesforceError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.name}: bad value for restricted picklist field: {value}",
                [spec.name],
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

    # -- query cursors ------------------------------------------------------------------------------------

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
            version = self.settings.api_version
            payload["nextRecordsUrl"] = f"/services/data/{version}/{resource}/{locator}-{end}"
        payload["records"] = batch
        return payload

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


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[SalesforceSandbox]


def _json_token(value: Any) -> str:
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int | float):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    return "START_OBJECT"


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


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> Response[bytes]:
    return _json({"error": error, "error_description": description}, status)


def _on_salesforce_error(_: Request[Any, Any, Any], exc: SalesforceError) -> Response[bytes]:
    return _json(exc.body(), exc.status)


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


@post("/services/oauth2/token", status_code=200)
async def issue_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    if form.get("grant_type") != "client_credentials":
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    client_id, client_secret = _client_credentials(request, form)
    expected = None if client_id is None else sandbox.settings.clients.get(client_id)
    if expected is None or client_secret is None or not hmac.compare_digest(expected, client_secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    token, issued_at = sandbox.open_session()
    instance_url = str(request.base_url).rstrip("/")
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
    return _json(payload, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})


# ---------------------------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------------------------

_RECORD_PATH = "/services/data/{version:str}/sobjects/{sobject:str}/{record_id:str}"


@get("/services/data")
async def list_versions(sandbox: _Sandbox) -> Response[bytes]:
    version = sandbox.settings.api_version
    number = version.removeprefix("v")
    return _json([{"label": _release_label(number), "url": f"/services/data/{version}", "version": number}])


@get("/services/data/{version:str}")
async def list_resources(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    base = f"/services/data/{version}"
    return _json({name: f"{base}/{name}" for name in ("limits", "query", "queryAll", "sobjects")})


@get("/services/data/{version:str}/limits")
async def limits(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    maximum = sandbox.settings.daily_api_limit
    return _json({"DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - sandbox.api_usage)}})


@get(_RECORD_PATH)
async def read_record(
    version: FromPath[str],
    sobject: FromPath[str],
    record_id: FromPath[str],
    sandbox: _Sandbox,
    fields: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    record = sandbox.record(schema, record_id)
    selected: tuple[FieldSpec, ...] | None = None
    if fields is not None:
        specs = []
        for name in (part.strip() for part in fields.split(",")):
            spec = schema.field(name) if name else None
            if spec is None:
                message = f"No such column '{name}' on sobject of type {schema.name}"
                raise SalesforceError(400, "INVALID_FIELD", message)
            specs.append(spec)
        selected = tuple(specs)
    return _json(sandbox.render(schema, record, selected))


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
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        message = f"Unexpected character in request body: {exc}"
        raise SalesforceError(400, "JSON_PARSER_ERROR", message) from None
    sandbox.update(schema, record_id, body)


def _run_query(
    request: Request[Any, Any, Any], sandbox: SalesforceSandbox, resource: str, q: str | None
) -> Response[bytes]:
    if q is None or not q.strip():
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        bound: BoundQuery = compile_query(q, SCHEMAS)
    except SoqlError as exc:
        raise SalesforceError(400, exc.code, exc.message) from None
    rows = bound.execute(sandbox.records[bound.schema.name].values())
    if bound.is_count:
        return _json({"totalSize": len(rows), "done": True, "records": []})
    # The result is a snapshot, like a Salesforce cursor: later updates do not leak into later pages.
    rendered = [sandbox.render(bound.schema, row, bound.fields) for row in rows]
    batch_size = sandbox.batch_size(request.headers.get("sforce-query-options"))
    return _json(sandbox.first_page(resource, rendered, batch_size))


@get("/services/data/{version:str}/query")
async def query(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return _run_query(request, sandbox, "query", q)


@get("/services/data/{version:str}/queryAll")
async def query_all(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    # Nothing is ever deleted in the sandbox, so queryAll sees exactly what query sees.
    sandbox.check_version(version)
    return _run_query(request, sandbox, "queryAll", q)


def _next_page(sandbox: SalesforceSandbox, resource: str, version: str, cursor_ref: str) -> Response[bytes]:
    sandbox.check_version(version)
    locator, _, offset = cursor_ref.rpartition("-")
    if not locator or not offset.isdigit():
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _json(sandbox.page(resource, locator, int(offset)))


@get("/services/data/{version:str}/query/{cursor_ref:str}")
async def query_more(version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    return _next_page(sandbox, "query", version, cursor_ref)


@get("/services/data/{version:str}/queryAll/{cursor_ref:str}")
async def query_all_more(
    version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return _next_page(sandbox, "queryAll", version, cursor_ref)


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
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer_token(scope: Scope) -> str | None:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    # "OAuth <token>" is Salesforce's legacy spelling and still accepted by the real API.
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


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
        if not sandbox.session_valid(_bearer_token(scope)):
            error = SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            await _send_errors(send, error, sandbox.limit_info())
            return
        if not sandbox.consume_api_call():
            error = SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            await _send_errors(send, error, sandbox.limit_info())
            return
        limit_info = sandbox.limit_info().encode()

        async def send_with_limit_info(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"sforce-limit-info", limit_info)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_limit_info)


class _RequestLog:
    """Records method, path and final status of every non-admin request, faults included."""

    def __init__(self, app: ASGIApp, sandbox: SalesforceSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        # 499 (nginx's "client closed request") when nothing was answered, e.g. a hang fault the client
        # gave up on; 500 if the app blew up before answering.
        status = 499

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            # Cancellation (a client timing out in process) is not an Exception and stays 499.
            status = 500 if status == 499 else status
            raise
        finally:
            self.sandbox.request_log.append(RequestLogEntry(scope.get("method", "GET"), path, status))


def create_salesforce_sandbox(settings: SalesforceSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox org as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``:
    ``instance_url`` is built from the request (scheme, host and ``root_path``), while
    ``attributes.url`` and ``nextRecordsUrl`` stay server-relative (``/services/data/...``) as in
    Salesforce, for clients to join onto ``instance_url``. In-process handles for tests:
    ``app.state.sandbox`` (`SalesforceSandbox`) and ``app.state.faults`` (`FaultInjector`).
    """
    settings = settings or SalesforceSandboxSettings()
    sandbox = SalesforceSandbox(settings)

    def provide_sandbox() -> SalesforceSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            issue_token,
            list_versions,
            list_resources,
            limits,
            read_record,
            update_record,
            query,
            query_all,
            query_more,
            query_all_more,
            reset,
            expire_sessions,
            stats,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            SalesforceError: _on_salesforce_error,
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
    wrapped = _RequestLog(with_faults(_ApiGate(router, sandbox), sandbox.faults, ADMIN_PREFIX), sandbox)
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app
