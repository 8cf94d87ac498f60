"""OData on the wire as Business Central speaks it, for every resource: media types and headers, query
options (``$filter $select $orderby $expand $top $skip $count $skiptoken``), server-driven paging with
``@odata.nextLink``, ``@odata.context`` URLs, bodies and ``If-Match``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import msgspec
from litestar import Request, Response

from apis.json_limits import json_too_deep
from sandboxes.business_central.data import CompanySetup, Record
from sandboxes.business_central.entities import EntitySet
from sandboxes.business_central.errors import BusinessCentralError, bad_request
from sandboxes.business_central.odata import parse_select
from sandboxes.faults import relative_path

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = [
    "DECODER",
    "ENCODER",
    "ODATA_HEADERS",
    "ODATA_JSON",
    "Query",
    "api_base",
    "context_url",
    "count_response",
    "if_match",
    "json_response",
    "page",
    "parse_query",
    "query_params",
    "read_body",
    "request_url",
    "select_expand",
]

ODATA_JSON = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)
_TEXT = "text/plain"  # Litestar adds "; charset=utf-8"
ODATA_HEADERS = {"OData-Version": "4.0"}
_BOM = "\ufeff".encode()
# Characters OData links keep unescaped in a query (as Business Central writes its nextLinks).
_QUERY_SAFE = "$'(),:"
ENCODER = msgspec.json.Encoder(decimal_format="number")
DECODER = msgspec.json.Decoder(float_hook=Decimal)


@dataclass(frozen=True, slots=True)
class Query:
    """A list request's query options, parsed."""

    filter: str | None
    select: str | None
    orderby: str | None
    expand: str | None
    top: int | None
    skip: int
    count: bool
    skiptoken: int


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response[bytes]:
    return Response(
        ENCODER.encode(payload),
        status_code=status,
        media_type=ODATA_JSON,
        headers={**ODATA_HEADERS, **(headers or {})},
    )


def base_url(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and mount prefix: what every absolute URL the sandbox hands out starts with."""
    return str(request.base_url).rstrip("/")


def query_params(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    # OData clients percent-encode option names ($ as %24) and values; parse the raw string ourselves so
    # "+" and "%2B" keep their form-encoding meanings.
    raw = request.scope.get("query_string", b"")
    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


def _non_negative(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise bad_request(
            f"Invalid value '{raw}' for ${name} query option found. The ${name} query option requires a "
            "non-negative integer value."
        )
    return int(raw)


def parse_query(params: list[tuple[str, str]]) -> Query:
    options: dict[str, str] = {}
    for name, value in params:
        if name.startswith("$"):
            if name in options:
                raise bad_request(
                    f"Query option '{name}' was specified more than once, but it must be specified at most "
                    "once."
                )
            options[name] = value
    known = {
        "$filter",
        "$select",
        "$orderby",
        "$expand",
        "$top",
        "$skip",
        "$count",
        "$skiptoken",
        "$schemaversion",
    }
    for name in options:
        if name not in known:
            raise bad_request(f"The query parameter '{name}' is not supported.")
    count = options.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise bad_request(f"'{options['$count']}' is not a valid count option.")
    skiptoken = 0
    if "$skiptoken" in options:
        try:
            decoded = base64.urlsafe_b64decode(options["$skiptoken"] + "==").decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if not decoded.startswith("o:") or not decoded[2:].isdigit():
            raise bad_request("The skip token value is not valid.")
        skiptoken = int(decoded[2:])
    return Query(
        filter=options.get("$filter"),
        select=options.get("$select"),
        orderby=options.get("$orderby"),
        expand=options.get("$expand"),
        top=_non_negative("top", options["$top"]) if "$top" in options else None,
        skip=_non_negative("skip", options["$skip"]) if "$skip" in options else 0,
        count=count == "true",
        skiptoken=skiptoken,
    )


def _max_page_size(request: Request[Any, Any, Any]) -> int | None:
    for prefer in request.headers.getall("prefer", []):
        for part in prefer.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit() and int(value) > 0:
                return int(value)
    return None


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def select_expand(entity_set: EntitySet, query: Query) -> tuple[list[str] | None, bool]:
    select = parse_select(query.select, entity_set.fields, entity_set.entity_type) if query.select else None
    expand = False
    if query.expand:
        names = [name.strip() for name in query.expand.split(",")]
        for name in names:
            if name not in entity_set.navigation:
                raise bad_request(
                    f"Could not find a property named '{name}' on type "
                    f"'Microsoft.NAV.{entity_set.entity_type}'."
                )
        expand = True
    return select, expand


def if_match(request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, entity: Record) -> None:
    given = request.headers.get("if-match")
    if given is None:
        # Unverified: the status; this is the OData library's message for a missing concurrency token.
        raise bad_request(
            "Could not validate the client concurrency token required by the service. Please provide a valid "
            "ETag value with the If-Match header in your request."
        )
    tags = [tag.strip() for tag in given.split(",")]
    if "*" not in tags and sandbox.etag(entity) not in tags:
        raise BusinessCentralError(
            412, "Request_EntityChanged", "Another user has already changed the record."
        )


async def read_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("The request body is empty.")
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return DECODER.decode(raw)
    except msgspec.DecodeError:
        raise bad_request("The request body is not valid JSON.") from None


def api_base(request: Request[Any, Any, Any]) -> str:
    """The absolute URL of ``.../api/v2.0`` as this request reached it."""
    path = relative_path(request.scope)  # type: ignore[arg-type]
    return base_url(request) + path[: path.index("/api/v2.0") + len("/api/v2.0")]


def request_url(request: Request[Any, Any, Any]) -> str:
    """The absolute URL of this request, without its query."""
    return base_url(request) + relative_path(request.scope)  # type: ignore[arg-type]


def context_url(request: Request[Any, Any, Any], path: str) -> str:
    return f"{api_base(request)}/$metadata#{path}"


def page(
    request: Request[Any, Any, Any],
    sandbox: BusinessCentralSandbox,
    entity_set: EntitySet,
    rows: list[Record],
    setup: CompanySetup | None,
    query: Query,
    context: str,
) -> Response[bytes]:
    select, expand = select_expand(entity_set, query)
    window = rows[query.skip :]
    if query.top is not None:
        window = window[: query.top]
    asked = _max_page_size(request)
    page_size = min(asked or sandbox.settings.page_size, sandbox.settings.max_page_size)
    page = window[query.skiptoken : query.skiptoken + page_size]
    body: dict[str, Any] = {"@odata.context": context}
    if query.count:
        body["@odata.count"] = len(rows)
    body["value"] = [sandbox.render(entity_set, row, setup, select, expand) for row in page]
    if query.skiptoken + page_size < len(window):
        params = [(name, value) for name, value in query_params(request) if name != "$skiptoken"]
        params.append(("$skiptoken", _skiptoken(query.skiptoken + page_size)))
        query_string = urlencode(params, quote_via=quote, safe=_QUERY_SAFE)
        body["@odata.nextLink"] = f"{request_url(request)}?{query_string}"
    headers = {"Preference-Applied": f"odata.maxpagesize={asked}"} if asked else None
    return json_response(body, headers=headers)


def count_response(rows: list[Record]) -> Response[bytes]:
    return Response(_BOM + str(len(rows)).encode(), media_type=_TEXT, headers=ODATA_HEADERS)
