"""One Salesforce org as the adapters reach it: OAuth, instance URL, SOQL paging, error arrays, API limits.

The CRM adapter (``system_apis.crm.salesforce``) and the Certinia PSA adapter (``system_apis.psa.certinia``:
Certinia is a managed package inside the customer's Salesforce org) speak the same wire, so both build a
``SalesforceOrg`` and send through it:

- client-credentials OAuth whose token response names the ``instance_url`` data calls must go to
  (``_InstanceUrlAuth``);
- SOQL built only from escaped literals (``soql_quote``), validated ids and datetimes formatted from aware
  ``datetime`` objects (``soql_datetime``), never from caller text;
- ``query``: SOQL following ``nextRecordsUrl`` because Salesforce may split one page into several batches;
- the JSON error arrays (``[{"errorCode", "message"}]``) mapped to the port's errors (``error_for_response``);
- ``Sforce-Limit-Info`` tracked so the daily API quota is visible before it runs out (``api_usage``). Two
  adapters on one org each see the org's whole usage: the limit is the org's, not the adapter's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import httpx
import msgspec
import structlog

from apis.config import SalesforceSettings
from apis.oauth_client import ClientCredentialsAuth
from system_apis.errors import VendorBadResponse, VendorError, VendorRejected, VendorUnavailable
from system_apis.vendor_http import (
    BreakerPolicy,
    RetryPolicy,
    VendorHttpClient,
    default_error_for_response,
    vendor_http_config,
)
from system_apis.vendor_links import followable_link

__all__ = [
    "PRECONDITION_FAILED",
    "SALESFORCE_ID_PATTERN",
    "ApiUsage",
    "QueryBatch",
    "SalesforceOrg",
    "bad_body",
    "can_name_a_record",
    "first_error",
    "is_salesforce_id",
    "quoted_list",
    "soql_datetime",
    "soql_quote",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

SALESFORCE_ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")

# Salesforce's batch size floor is 200; asking for it keeps each batch small enough that one page (at most
# 200 items plus the look-ahead record) needs at most two batches from the real service.
_QUERY_OPTIONS = "batchSize=200"
# A page is at most 201 records; even a sandbox batching 1 by 1 would not need more batches than that.
_MAX_BATCHES_PER_PAGE = 250
# The daily API allowance resets on a rolling 24 h window; an hour is a fair guess at when calls resume.
_DAILY_LIMIT_RETRY_AFTER = 3600.0
_USAGE_WARNING_RATIO = 0.8
_LIMIT_INFO = re.compile(r"(?:^|[,;]\s*)api-usage=(\d+)/(\d+)")
PRECONDITION_FAILED = "PRECONDITION_FAILED"


def _log() -> Any:
    # A fresh lazy proxy per use (see system_apis.crm.salesforce): capture_logs must see these lines.
    return structlog.get_logger(__name__)


class ApiUsage(msgspec.Struct, kw_only=True, frozen=True):
    """The org's daily API usage as of the latest response (``Sforce-Limit-Info: api-usage=18/5000``)."""

    used: int
    limit: int
    #: When the response that carried it arrived (None: unknown).
    observed_at: dt.datetime | None = None

    @property
    def ratio(self) -> float:
        return self.used / self.limit if self.limit else 0.0


class _SalesforceError(msgspec.Struct, kw_only=True, frozen=True):
    message: str = ""
    error_code: str = msgspec.field(default="", name="errorCode")


_errors_decoder = msgspec.json.Decoder(list[_SalesforceError])


# SOQL's escape sequences for string literals. Any other backslash sequence is a syntax error in SOQL,
# so nothing else needs (or may get) a backslash.
_SOQL_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\f": "\\f",
        "\b": "\\b",
    }
)


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal, quotes included: the only way a value enters a query.

    An attempt such as ``x' OR Name != 'y`` stays one literal (``'x\\' OR Name != \\'y'``).
    """
    return "'" + value.translate(_SOQL_ESCAPES) + "'"


def is_salesforce_id(value: str) -> bool:
    """True for a 15- or 18-character Salesforce id (shape only; the checksum is the vendor's business)."""
    return SALESFORCE_ID_PATTERN.fullmatch(value) is not None


_CASE_SAFE_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def can_name_a_record(value: str) -> bool:
    """True for a Salesforce id that can name a record: 15 characters, or 18 whose last three are the
    case-safe suffix of the first 15 (each suffix character encodes, as a 5-bit flag from this alphabet,
    which of 5 characters are upper-case letters: a flag on a digit makes the id invalid). SOQL refuses a
    whole query over an id that is not (``INVALID_QUERY_FILTER_OPERATOR``, "invalid ID field"), where the
    record read of it answers 404; so such ids are left out of a query by id."""
    if not is_salesforce_id(value):
        return False
    if len(value) == 15:
        return True
    for chunk, flag_char in enumerate(value[15:].upper()):
        flags = _CASE_SAFE_SUFFIX.find(flag_char)
        if flags < 0:
            return False
        for bit in range(5):
            if flags & (1 << bit) and not value[chunk * 5 + bit].isalpha():
                return False
    return True


def soql_datetime(value: dt.datetime) -> str:
    """``value`` as a SOQL datetime literal (unquoted, UTC: ``2026-01-01T00:00:00Z``).

    Only aware datetimes: a naive one names no moment. Fractions of a second are dropped, which moves the
    moment back and so only widens a ``>=`` filter (a change is never missed, at worst seen twice).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a SOQL datetime needs a timezone-aware datetime")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted_list(values: Iterable[str]) -> str:
    return ", ".join(soql_quote(value) for value in values)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class _InstanceUrlAuth(httpx.Auth):
    """Client-credentials auth that also sends the call to the token response's ``instance_url``.

    Salesforce answers a token request with the org's instance URL and data calls belong there; it is only
    known once the token has been fetched, which happens inside the auth flow, so the rewrite lives here.
    """

    def __init__(self, inner: ClientCredentialsAuth, base_url: httpx.URL) -> None:
        self._inner = inner
        self._base = base_url
        self._base_prefix = str(base_url).rstrip("/")
        self._ignored_instance_url: str | None = None
        # The token response changes once an hour at most: parse its instance_url once, not per call.
        self._parsed: tuple[str, httpx.URL | None] | None = None

    def instance_url(self) -> httpx.URL | None:
        raw = self._inner.token_info.get("instance_url")
        if not isinstance(raw, str) or not raw:
            return None
        if self._parsed is None or self._parsed[0] != raw:
            self._parsed = (raw, self._trusted(raw))
        return self._parsed[1]

    def _trusted(self, raw: str) -> httpx.URL | None:
        try:
            url = httpx.URL(raw.rstrip("/"))
        except httpx.InvalidURL:
            return None
        # TLS-verified Salesforce hosts are trusted as Salesforce directs; plain http only for the very
        # host we were configured with (a local sandbox), so a token response cannot steer us elsewhere.
        if url.scheme == "https" or _origin(url) == _origin(self._base):
            return url
        if raw != self._ignored_instance_url:
            self._ignored_instance_url = raw
            _log().warning("salesforce_instance_url_ignored", instance_url=raw)
        return None

    def _retarget(self, request: httpx.Request) -> None:
        instance = self.instance_url()
        if instance is None or instance == self._base:
            return
        current = str(request.url)
        if not current.startswith(self._base_prefix + "/"):
            return
        target = httpx.URL(str(instance) + current[len(self._base_prefix) :])
        if target == request.url:
            return
        request.url = target
        request.headers["Host"] = target.netloc.decode("ascii")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await self._inner.access_token()
        self._retarget(request)
        flow = self._inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
                self._retarget(outgoing)
        finally:
            await flow.aclose()


def quoted_list(values: Iterable[str]) -> str:
    """Values as a SOQL ``IN`` list of ``soql_quote``d literals."""
    return ", ".join(soql_quote(value) for value in values)


class QueryBatch(Protocol[R_co]):
    """One batch of a SOQL result as a record type's decoder gives it."""

    @property
    def done(self) -> bool: ...

    @property
    def records(self) -> Sequence[R_co]: ...

    @property
    def next_records_url(self) -> str | None: ...


def first_error(response: httpx.Response) -> tuple[str, str]:
    """The first ``(errorCode, message)`` of Salesforce's error array (empty strings when there is none)."""
    try:
        errors = _errors_decoder.decode(response.content)
    except msgspec.DecodeError:
        return "", ""
    if not errors:
        return "", ""
    # Salesforce messages can echo our query; keep them short in errors and logs.
    return errors[0].error_code, errors[0].message[:300]


def bad_body(vendor: str, what: str, exc: Exception) -> VendorBadResponse:
    return VendorBadResponse(vendor, f"Salesforce sent an unusable {what}: {type(exc).__name__}: {exc}"[:400])


class SalesforceOrg:
    """The outbound side of one Salesforce org: the token, the instance URL, the shared ``VendorHttpClient``
    (its pool, retries of safe calls and breaker under ``vendor``'s name), SOQL paging, error mapping and
    the org's API usage. ``transport`` is the test seam and carries the token requests too."""

    def __init__(
        self,
        vendor: str,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        error_for_response: Callable[[httpx.Response], VendorError | None] | None = None,
    ) -> None:
        if settings.base_url is None:
            raise ValueError(
                f"the {vendor} adapter needs a base_url (the bootstrap substitutes the sandbox's)"
            )
        self.vendor = vendor
        base_url = settings.base_url.rstrip("/")
        self.api = f"services/data/{settings.api_version}"
        self.token_auth = ClientCredentialsAuth(
            token_url=settings.token_url or f"{base_url}/services/oauth2/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            transport=transport,
            timeout=settings.timeout_seconds,
        )
        config = vendor_http_config(settings, base_url, retry=retry, breaker=breaker)
        self.auth = _InstanceUrlAuth(self.token_auth, httpx.URL(base_url))
        # An adapter may map some answers its own way first (None: Salesforce's usual mapping).
        self._special_error = error_for_response
        self.http = VendorHttpClient(
            vendor,
            config,
            auth=self.auth,
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self.error_for_response,
            on_response=self.track_limits,
            sleep=sleep,
        )
        self.api_usage: ApiUsage | None = None
        self._warned_usage_percent: int | None = None

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.token_auth.aclose()

    async def query(
        self, soql: str, decode: Callable[[bytes], QueryBatch[R]], *, want: int | None = None
    ) -> list[R]:
        """Run SOQL, following ``nextRecordsUrl`` until ``want`` records (``None``: all) or the end;
        ``decode`` turns a batch's body into its records (raising ``msgspec.DecodeError`` when unusable)."""
        headers = {"Sforce-Query-Options": _QUERY_OPTIONS}
        response = await self.http.send("GET", f"{self.api}/query/", params={"q": soql}, headers=headers)
        records: list[R] = []
        for _ in range(_MAX_BATCHES_PER_PAGE):
            try:
                batch = decode(response.content)
            except msgspec.DecodeError as exc:
                raise bad_body(self.vendor, "query result", exc) from None
            records.extend(batch.records)
            if batch.done or (want is not None and len(records) >= want):
                return records
            if not batch.next_records_url:
                raise VendorBadResponse(
                    self.vendor, "Salesforce query result is not done but has no nextRecordsUrl"
                )
            response = await self.http.send(
                "GET", self.next_batch_path(batch.next_records_url), headers=headers
            )
        raise VendorBadResponse(self.vendor, "Salesforce query result did not end")

    def next_batch_path(self, next_records_url: str) -> str:
        """``nextRecordsUrl`` (a host-relative path) as a path under our base URL and this API version's
        ``query/``; anything else (another host, ``..``, an encoded separator, another API) is refused so a
        response cannot send our token anywhere else."""
        base = self.http.base_url
        base_path = base.path.rstrip("/")
        query_path = f"/{self.api}/query/"
        if next_records_url.startswith("/") and not next_records_url.startswith("//"):
            # Real Salesforce serves at the host root; a sandbox mounted under a prefix may include it.
            for prefix in dict.fromkeys((base_path, "")):
                try:
                    url = followable_link(base, next_records_url, prefix + query_path)
                except ValueError:
                    continue
                return url.path[len(prefix) :].lstrip("/")
        raise VendorBadResponse(self.vendor, "Salesforce sent an unusable nextRecordsUrl")

    def track_limits(self, response: httpx.Response) -> None:
        header = response.headers.get("Sforce-Limit-Info")
        if not header:
            return
        match = _LIMIT_INFO.search(header)
        if match is None:
            return
        usage = ApiUsage(
            used=int(match.group(1)), limit=int(match.group(2)), observed_at=dt.datetime.now(dt.UTC)
        )
        self.api_usage = usage
        percent = int(usage.ratio * 100)
        if usage.ratio > _USAGE_WARNING_RATIO:
            # Once per percentage point, not once per call: the warning is for a person, not a graph.
            if percent != self._warned_usage_percent:
                self._warned_usage_percent = percent
                _log().warning(
                    "salesforce_api_usage_high",
                    vendor=self.vendor,
                    used=usage.used,
                    limit=usage.limit,
                    percent=percent,
                )
        else:
            self._warned_usage_percent = None

    def error_for_response(self, response: httpx.Response) -> VendorError:
        """Salesforce's error array (``[{"errorCode", "message"}]``) and status -> the port's errors."""
        if self._special_error is not None and (special := self._special_error(response)) is not None:
            return special
        vendor = self.vendor
        status = response.status_code
        code, message = first_error(response)
        detail = (
            f"Salesforce {code or 'HTTP ' + str(status)}: {message}"
            if message
            else f"Salesforce HTTP {status}"
        )
        if status == 412:
            # A conditional update whose record changed since it was read (If-Unmodified-Since).
            return VendorRejected(vendor, detail, vendor_code=PRECONDITION_FAILED)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            return VendorUnavailable(
                vendor, "Salesforce daily API request limit exceeded", retry_after=_DAILY_LIMIT_RETRY_AFTER
            )
        if 400 <= status < 500 and status not in (401, 404, 410, 429):
            # Our query or our request is wrong (MALFORMED_QUERY, INVALID_FIELD, ...): a bug on our side,
            # which the gateway reports as a bad gateway, not as the caller's fault. Keep Salesforce's code.
            return VendorRejected(vendor, detail, vendor_code=code or None)
        # The rest is what the status alone says (a 401 here comes after the auth flow already fetched a
        # fresh token once, so the credentials themselves are refused).
        error = default_error_for_response(vendor, response)
        if isinstance(error, VendorBadResponse) and code:
            error = VendorBadResponse(vendor, f"{error.message} ({code})")
        return error
