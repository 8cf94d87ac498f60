"""The Business Central sandbox: a Litestar app that answers like Dynamics 365 Business Central API v2.0.

Served at the app's own root (mount it anywhere, see `create_business_central_sandbox`):

- ``POST /{tenant}/oauth2/v2.0/token``: Microsoft Entra ID's token endpoint, client credentials only
  (``client_id`` + ``client_secret`` in the form, or HTTP Basic), ``scope`` =
  ``https://api.businesscentral.dynamics.com/.default``; Entra's error shape (``error``,
  ``error_description`` with an ``AADSTS`` code, ``error_codes``, ``trace_id``...)
- ``/v2.0/{tenant}/{environment}/api/v2.0/``: ``companies`` and ``companies({id})``; per company
  ``customers``, ``projects``, ``salesInvoices`` (with ``salesInvoiceLines``, as a navigation
  ``salesInvoices({id})/salesInvoiceLines``, by ``$expand`` and by deep insert), ``customerPayments``;
  ``salesInvoices({id})/Microsoft.NAV.post`` posts a draft invoice (204)
- ``GET .../api/v2.0/$metadata``: the OData CSDL (EDMX) document describing what is served, derived from
  the entity sets' own definitions (``application/xml``); every ``@odata.context`` points into it.
  Unverified: the container's name (``default``) and the enum type names (the property's name)
- lists take ``$filter $select $orderby $top $skip $count=true $expand``; server-driven paging with
  ``@odata.nextLink`` (`BusinessCentralSandboxSettings.page_size` a page, or ``Prefer:
  odata.maxpagesize=N``, acknowledged in ``Preference-Applied``); ``{entitySet}/$count`` answers the count
  as ``text/plain`` (with a UTF-8 byte-order mark, which is why public clients decode it ``utf-8-sig``)
- every entity has ``@odata.etag`` (a new one on every change); ``PATCH`` and ``DELETE`` need ``If-Match``
  (that etag or ``*``): without it 400, with a stale one 412 ``Request_EntityChanged``; ``POST`` answers
  201 with the entity and ``Location``; ``PATCH`` 200 with the entity; ``DELETE`` 204
- errors are ``{"error": {"code", "message"}}`` with Business Central's codes (``BadRequest``,
  ``BadRequest_NotFound``, ``Internal_EntityWithSameKeyExists``, ``Request_EntityChanged``,
  ``Authentication_InvalidCredentials``, ``TooManyRequests``...); messages end with "CorrelationId: ..."
- limits: `rate_limit_requests` per `rate_limit_window_seconds` sliding window per principal (the token's
  client id; Business Central allows 6,000 per 5 minutes) and `concurrency_limit` requests in flight; over
  either, 429 with ``Retry-After``
- ``/__sandbox/...``: reset, token expiry, stats, fault injection and ``GET /__sandbox/records/{type}``
  (``companies``, ``customers``, ``projects``, ``salesInvoices``, ``customerPayments``: the stored
  entities, internal ``companyId`` and ``rowVersion`` included; `sandboxes.admin_records`)

Money travels as JSON numbers and is held as ``Decimal`` (never a float). Wire choices made without a
tenant to compare against are marked "(unverified)" where they are made. Simplifications: no tax (0 %),
no units of measure or items (invoice lines are G/L ``Account`` or ``Comment`` lines), payments are posted
as soon as they are inserted and stay listed (in Business Central they are payment-journal lines that
leave the journal when posted), ``projects`` has only the API's three fields.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import math
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeAlias, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode

import httpx
import msgspec
from litestar import Litestar, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.types import ASGIApp as LitestarASGIApp

from apis.json_limits import json_too_deep
from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.asgi_headers import bearer_token
from sandboxes.business_central.data import (
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    ENVIRONMENT,
    SEED_NOW,
    TENANT_ID,
    ZERO_GUID,
    CompanySetup,
    Record,
    build_seed,
    company_setup,
    format_datetime,
)
from sandboxes.business_central.odata import (
    FieldKind,
    ODataError,
    compile_filter,
    compile_orderby,
    edm_type,
    parse_select,
)
from sandboxes.business_central.webhooks import SavedSubscription, Subscription, Webhooks
from sandboxes.faults import ASGIApp, FaultInjector, Receive, Scope, Send, relative_path, with_faults
from sandboxes.request_log import RequestLog, RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "BC_SCOPE",
    "BusinessCentralClient",
    "BusinessCentralError",
    "BusinessCentralSandbox",
    "BusinessCentralSandboxSettings",
    "EntitySet",
    "api_root",
    "create_business_central_sandbox",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__sandbox"
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
_BC_RESOURCE = "https://api.businesscentral.dynamics.com"

_JSON = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)
_ENTRA_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain"  # Litestar adds "; charset=utf-8"
_ODATA_HEADERS = {"OData-Version": "4.0"}
_BOM = "\ufeff".encode()
# Characters OData links keep unescaped in a query (as Business Central writes its nextLinks).
_QUERY_SAFE = "$'(),:"

# Unverified: the code for a business rule a page's trigger refuses (Business Central raises these from
# AL "Error(...)" dialogs) and for a value of the wrong type in a body.
_DIALOG = "Application_DialogException"
_FIELD_VALIDATION = "Application_FieldValidationException"
_STRING_TOO_LONG = "Application_StringExceededLength"
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_DECIMAL_LIMIT = Decimal("999999999999999.99")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def api_root(tenant: str = TENANT_ID, environment: str = ENVIRONMENT) -> str:
    """The API's path below the sandbox root: ``/v2.0/{tenant}/{environment}/api/v2.0``."""
    return f"/v2.0/{tenant}/{environment}/api/v2.0"


class BusinessCentralClient(msgspec.Struct, kw_only=True, frozen=True):
    """An Entra app registration with a client secret, granted the Business Central API permission."""

    client_id: str
    client_secret: str


class BusinessCentralSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a production environment's documented limits."""

    tenant_id: str = TENANT_ID
    environment: str = ENVIRONMENT
    clients: tuple[BusinessCentralClient, ...] = ()
    """Extra app registrations; the development client (`DEV_CLIENT_ID`) is always registered too."""
    token_ttl_seconds: int = 3599
    rate_limit_requests: int = 6000
    """Requests one principal may make per sliding window (Business Central: 6,000 per 5 minutes)."""
    rate_limit_window_seconds: float = 300.0
    concurrency_limit: int = 100
    """Requests allowed in flight at once per environment; one more answers 429."""
    page_size: int = 100
    """Entities per page when the client sends no ``Prefer: odata.maxpagesize`` (Business Central's own
    server page is 20,000; a smaller one here makes every client exercise ``@odata.nextLink``)."""
    max_page_size: int = 20_000
    batch_max_requests: int = 100
    """Inner requests one ``$batch`` may carry (Business Central's operational limit: 100)."""
    notification_window_seconds: float = 30.0
    """How long changes are collected before one notification POST (Business Central: 30 s)."""
    subscription_lifetime_seconds: float = 3 * 24 * 3600.0
    """A webhook subscription's life unless renewed (Business Central: 3 days)."""
    handshake_timeout_seconds: float = 5.0
    notification_collection_threshold: int = 1000
    """Changes in one window past which a subscription gets one ``collection`` notification instead."""
    """How long the validation handshake may take before the subscription is refused."""
    notification_transport: httpx.AsyncBaseTransport | None = None
    """Where handshakes and notifications go (an ``httpx.MockTransport``, an ASGI app's transport). None:
    subscriptions are refused, since the sandbox never calls the network (any URL a caller names)."""
    or_across_fields: bool = True
    """Whether a ``$filter`` may ``or`` conditions on different properties. Business Central refuses that
    ("The 'OR' operator is not supported on distinct fields on an OData filter.", "Known limitations with
    Business Central OData"); False answers as it does. True (a departure, the default while Stratum's
    adapter still sends such filters: its duplicate search and its "paid" invoice status) evaluates them."""
    seed: int = 42


class BusinessCentralError(Exception):
    """An error answered as ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return _error_body(self.code, self.message)


def _error_body(code: str, message: str) -> dict[str, Any]:
    # Business Central appends the request's correlation id to every message, two spaces before it.
    return {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}


def _not_found(what: str = "resource") -> BusinessCentralError:
    return BusinessCentralError(404, "BadRequest_NotFound", f"The {what} you are looking for does not exist.")


def _bad_request(message: str) -> BusinessCentralError:
    return BusinessCentralError(400, "BadRequest", message)


class _EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


# ---------------------------------------------------------------------------------------------------------
# Entity sets
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntitySet:
    """One API page as the sandbox serves it: its properties (in the order they are rendered) and rules."""

    name: str
    entity_type: str
    fields: Mapping[str, FieldKind]
    writable: frozenset[str]
    max_lengths: Mapping[str, int]
    enums: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    """The default order of a list (Business Central sorts by the page's key)."""
    table: str


_CUSTOMER_FIELDS: dict[str, FieldKind] = {
    "id": "guid",
    "number": "code",
    "displayName": "text",
    "type": "enum",
    "addressLine1": "text",
    "addressLine2": "text",
    "city": "text",
    "state": "text",
    "country": "code",
    "postalCode": "code",
    "phoneNumber": "text",
    "email": "text",
    "website": "text",
    "taxLiable": "boolean",
    "taxAreaId": "guid",
    "taxAreaDisplayName": "text",
    "taxRegistrationNumber": "text",
    "currencyId": "guid",
    "currencyCode": "code",
    "blocked": "enum",
    "balanceDue": "decimal",
    "lastModifiedDateTime": "datetime",
}
_LINE_FIELDS: dict[str, FieldKind] = {
    "id": "guid",
    "documentId": "guid",
    "sequence": "integer",
    "lineType": "enum",
    "lineObjectNumber": "code",
    "description": "text",
    "quantity": "decimal",
    "unitPrice": "decimal",
    "discountAmount": "decimal",
    "discountPercent": "decimal",
    "amountExcludingTax": "decimal",
    "taxPercent": "decimal",
    "totalTaxAmount": "decimal",
    "amountIncludingTax": "decimal",
    "netAmount": "decimal",
}

CUSTOMERS = EntitySet(
    name="customers",
    entity_type="customer",
    fields=_CUSTOMER_FIELDS,
    writable=frozenset(_CUSTOMER_FIELDS)
    - {"id", "currencyId", "balanceDue", "lastModifiedDateTime", "taxAreaDisplayName"},
    max_lengths={
        "number": 20,
        "displayName": 100,
        "addressLine1": 100,
        "addressLine2": 50,
        "city": 30,
        "state": 30,
        "country": 10,
        "postalCode": 20,
        "phoneNumber": 30,
        "email": 80,
        "website": 80,
        "taxRegistrationNumber": 20,
        "currencyCode": 10,
    },
    enums={"type": ("Company", "Person"), "blocked": ("_x0020_", "Ship", "Invoice", "All")},
    order=("number",),
    table="Customer",
)
PROJECTS = EntitySet(
    name="projects",
    entity_type="project",
    fields={"id": "guid", "number": "code", "displayName": "text"},
    writable=frozenset({"number", "displayName"}),
    max_lengths={"number": 20, "displayName": 100},
    enums={},
    order=("number",),
    table="Job",
)
SALES_INVOICES = EntitySet(
    name="salesInvoices",
    entity_type="salesInvoice",
    fields={
        "id": "guid",
        "number": "code",
        "externalDocumentNumber": "code",
        "invoiceDate": "date",
        "postingDate": "date",
        "dueDate": "date",
        "customerId": "guid",
        "customerNumber": "code",
        "customerName": "text",
        "currencyId": "guid",
        "currencyCode": "code",
        "pricesIncludeTax": "boolean",
        "discountAmount": "decimal",
        "totalAmountExcludingTax": "decimal",
        "totalTaxAmount": "decimal",
        "totalAmountIncludingTax": "decimal",
        "remainingAmount": "decimal",
        "status": "enum",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(
        {
            "externalDocumentNumber",
            "invoiceDate",
            "postingDate",
            "dueDate",
            "customerId",
            "customerNumber",
            "currencyCode",
        }
    ),
    max_lengths={"externalDocumentNumber": 35, "customerNumber": 20, "currencyCode": 10},
    enums={"status": ("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective")},
    order=("number",),
    table="Sales Header",
)
SALES_INVOICE_LINES = EntitySet(
    name="salesInvoiceLines",
    entity_type="salesInvoiceLine",
    fields=_LINE_FIELDS,
    writable=frozenset(
        {
            "sequence",
            "lineType",
            "lineObjectNumber",
            "description",
            "quantity",
            "unitPrice",
            "discountAmount",
            "discountPercent",
        }
    ),
    max_lengths={"lineObjectNumber": 20, "description": 100},
    enums={"lineType": ("Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge")},
    order=("sequence",),
    table="Sales Line",
)
CUSTOMER_PAYMENTS = EntitySet(
    name="customerPayments",
    entity_type="customerPayment",
    fields={
        "id": "guid",
        "journalDisplayName": "code",
        "lineNumber": "integer",
        "customerId": "guid",
        "customerNumber": "code",
        "postingDate": "date",
        "documentNumber": "code",
        "externalDocumentNumber": "code",
        "amount": "decimal",
        "appliesToInvoiceId": "guid",
        "appliesToInvoiceNumber": "code",
        "description": "text",
        "comment": "text",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(
        {
            "lineNumber",
            "customerId",
            "customerNumber",
            "postingDate",
            "documentNumber",
            "externalDocumentNumber",
            "amount",
            "appliesToInvoiceId",
            "appliesToInvoiceNumber",
            "description",
            "comment",
        }
    ),
    max_lengths={
        "customerNumber": 20,
        "documentNumber": 20,
        "externalDocumentNumber": 35,
        "appliesToInvoiceNumber": 20,
        "description": 100,
        "comment": 250,
    },
    enums={},
    order=("lineNumber",),
    table="Gen. Journal Line",
)
COMPANIES = EntitySet(
    name="companies",
    entity_type="company",
    fields={
        "id": "guid",
        "systemVersion": "text",
        "timestamp": "integer",
        "name": "text",
        "displayName": "text",
        "businessProfileId": "text",
        "systemCreatedAt": "datetime",
        "systemCreatedBy": "guid",
        "systemModifiedAt": "datetime",
        "systemModifiedBy": "guid",
    },
    writable=frozenset(),
    max_lengths={},
    enums={},
    order=("name",),
    table="Company",
)
# API v2.0 taxAreas (learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/
# dynamics_taxarea): a customer's taxAreaId points at one; served read-only here (set up by finance).
TAX_AREAS = EntitySet(
    name="taxAreas",
    entity_type="taxArea",
    fields={
        "id": "guid",
        "code": "code",
        "displayName": "text",
        "taxType": "enum",
        "lastModifiedDateTime": "datetime",
    },
    writable=frozenset(),
    max_lengths={"code": 20, "displayName": 100},
    enums={"taxType": ("Sales_x0020_Tax", "VAT")},
    order=("code",),
    table="Tax Area",
)
ENTITY_SETS: Mapping[str, EntitySet] = {
    entity_set.name: entity_set
    for entity_set in (CUSTOMERS, PROJECTS, SALES_INVOICES, CUSTOMER_PAYMENTS, TAX_AREAS)
}


# ---------------------------------------------------------------------------------------------------------
# $metadata
# ---------------------------------------------------------------------------------------------------------

_EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
_EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"
_SCHEMA = "Microsoft.NAV"  # the namespace of the API's types, as in its bound actions (Microsoft.NAV.post)
_XML = "application/xml"  # Litestar adds "; charset=utf-8"


def _enum_member(value: str) -> str:
    # Business Central names enum members as identifiers, a space written as "_x0020_" (as "blocked" is).
    return value.replace(" ", "_x0020_")


@functools.cache
def metadata_document() -> bytes:
    """The OData CSDL (EDMX) document at ``api/v2.0/$metadata``, derived from the entity sets served.

    ``companies`` is the one entity set of the container; each company contains the per-company sets as
    navigation properties (``ContainsTarget``), which is how their URLs read: ``companies({id})/customers``.
    """
    ET.register_namespace("edmx", _EDMX_NS)
    root = ET.Element(f"{{{_EDMX_NS}}}Edmx", Version="4.0")
    schema = ET.SubElement(ET.SubElement(root, f"{{{_EDMX_NS}}}DataServices"), "Schema")
    schema.set("xmlns", _EDM_NS)
    schema.set("Namespace", _SCHEMA)
    enums: dict[str, tuple[str, ...]] = {}
    contained: dict[str, list[EntitySet]] = {
        COMPANIES.name: list(ENTITY_SETS.values()),
        SALES_INVOICES.name: [SALES_INVOICE_LINES],
    }
    for entity_set in (COMPANIES, *ENTITY_SETS.values(), SALES_INVOICE_LINES):
        entity_type = ET.SubElement(schema, "EntityType", Name=entity_set.entity_type)
        ET.SubElement(ET.SubElement(entity_type, "Key"), "PropertyRef", Name="id")
        for name, kind in entity_set.fields.items():
            attributes = {"Name": name, "Type": edm_type(kind)}
            if kind == "enum":
                members = enums.setdefault(name, entity_set.enums[name])
                if members != entity_set.enums[name]:
                    raise ValueError(f"two enums named {name!r} differ: give one another name")
                attributes["Type"] = f"{_SCHEMA}.{name}"
            if name == "id":
                attributes["Nullable"] = "false"
            if name in entity_set.max_lengths:
                attributes["MaxLength"] = str(entity_set.max_lengths[name])
            if kind == "decimal":
                attributes["Scale"] = "Variable"
            ET.SubElement(entity_type, "Property", attributes)
        for child in contained.get(entity_set.name, []):
            ET.SubElement(
                entity_type,
                "NavigationProperty",
                Name=child.name,
                Type=f"Collection({_SCHEMA}.{child.entity_type})",
                ContainsTarget="true",
            )
    for name, members in enums.items():
        enum_type = ET.SubElement(schema, "EnumType", Name=name)
        for index, member in enumerate(members):
            ET.SubElement(enum_type, "Member", Name=_enum_member(member), Value=str(index))
    post_action = ET.SubElement(schema, "Action", Name="post", IsBound="true")
    ET.SubElement(post_action, "Parameter", Name="bindingParameter", Type=f"{_SCHEMA}.salesInvoice")
    container = ET.SubElement(schema, "EntityContainer", Name="default")
    company_type = f"{_SCHEMA}.{COMPANIES.entity_type}"
    ET.SubElement(container, "EntitySet", Name=COMPANIES.name, EntityType=company_type)
    return cast("bytes", ET.tostring(root, encoding="utf-8", xml_declaration=True))


# Payments posted in the seed used these; new ones continue the series.
_PAYMENT_TOLERANCE = Decimal("0.005")
_CENT = Decimal("0.01")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT)


def _copy(record: Record) -> Record:
    return {
        key: [dict(line) for line in value] if isinstance(value, list) else value
        for key, value in record.items()
    }


# ---------------------------------------------------------------------------------------------------------
# The sandbox's state
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    client_id: str
    tenant_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class _Query:
    """A list request's query options, parsed."""

    filter: str | None
    select: str | None
    orderby: str | None
    expand: str | None
    top: int | None
    skip: int
    count: bool
    skiptoken: int


def _decimals_back(entity_set: EntitySet, entity: Record) -> None:
    for name, kind in entity_set.fields.items():
        if kind == "decimal" and isinstance(entity.get(name), str):
            entity[name] = Decimal(entity[name])


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the entities, the row version their etags
    continue from, and the webhook subscriptions (absent from states saved before they were kept)."""

    records: dict[str, dict[str, Record]]
    row_version: int
    subscriptions: list[SavedSubscription] = msgspec.field(default_factory=list)


class BusinessCentralSandbox:
    """All mutable state of one sandbox tenant: entities, tokens, rate-limit windows, counters, faults."""

    durable_type = _DurableState

    def __init__(
        self, settings: BusinessCentralSandboxSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector(seed=settings.seed)
        self.clients: dict[str, str] = {DEV_CLIENT_ID: DEV_CLIENT_SECRET}
        self.clients.update({client.client_id: client.client_secret for client in settings.clients})
        self.records: dict[str, dict[str, Record]] = {}
        self.tokens: dict[str, _Token] = {}
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

    def durable_state(self) -> _DurableState:
        return _DurableState(
            records=self.records, row_version=self.row_version, subscriptions=self.webhooks.saved()
        )

    def restore_durable_state(self, state: _DurableState) -> None:
        # Money is saved as text (msgspec's form of a Decimal); the entity sets say which fields are money.
        sets = {**ENTITY_SETS, COMPANIES.name: COMPANIES}
        for set_name, entities in state.records.items():
            entity_set = sets.get(set_name)
            for entity in entities.values():
                if entity_set is not None:
                    _decimals_back(entity_set, entity)
                for line in entity.get("salesInvoiceLines") or []:
                    _decimals_back(SALES_INVOICE_LINES, line)
        self.records = state.records
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

    # -- Entra ID

    def issue_token(
        self, tenant: str, form: Mapping[str, str], basic: tuple[str, str] | None
    ) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type != "client_credentials":
            raise _EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        if tenant.lower() != self.settings.tenant_id.lower():
            raise _EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        client_id, client_secret = (
            basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        )
        if not client_id:
            raise _EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        scope = form.get("scope")
        if not scope:
            raise _EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        if scope.rstrip("/") != BC_SCOPE:
            if not scope.endswith("/.default"):
                raise _EntraError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must have "
                    "a scope value with /.default suffixed to the resource identifier (application ID URI).",
                )
            raise _EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {scope.removesuffix('/.default')} was not found in the "
                f"tenant named {tenant}.",
            )
        secret = self.clients.get(client_id)
        if secret is None:
            raise _EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if not client_secret:
            raise _EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if not secrets.compare_digest(client_secret.encode(), secret.encode()):
            raise _EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        access_token = secrets.token_urlsafe(48)
        ttl = self.settings.token_ttl_seconds
        self.tokens[access_token] = _Token(client_id, self.settings.tenant_id, self.clock() + ttl)
        return {
            "token_type": "Bearer",
            "expires_in": ttl,
            "ext_expires_in": ttl,
            "access_token": access_token,
        }

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
            raise _not_found("company")
        return record, setup

    def entities(self, entity_set: EntitySet, company_id: str) -> list[Record]:
        return [e for e in self.records[entity_set.name].values() if e.get("companyId") == company_id]

    def find(self, entity_set: EntitySet, company_id: str, entity_id: str) -> Record:
        entity = self.records[entity_set.name].get(entity_id.lower())
        if entity is None or entity.get("companyId") != company_id:
            raise _not_found(entity_set.entity_type)
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
            area = self.records["taxAreas"].get(entity.get("taxAreaId") or "")
            derived["taxAreaDisplayName"] = area["displayName"] if area is not None else ""
            derived["balanceDue"] = sum(
                (
                    Decimal(invoice["remainingAmount"])
                    for invoice in self.records["salesInvoices"].values()
                    if invoice["customerId"] == entity["id"] and invoice["status"] == "Open"
                ),
                Decimal(0),
            )
        return derived

    # -- lists

    def select(
        self, entity_set: EntitySet, entities: list[Record], setup: CompanySetup | None, query: _Query
    ) -> list[Record]:
        """Filter and order `entities` as the query asks (before $skip/$top and paging)."""
        rows = entities
        if query.filter is not None:
            matches = compile_filter(
                query.filter,
                entity_set.fields,
                entity_set.entity_type,
                or_across_fields=self.settings.or_across_fields,
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

    def coerce(self, entity_set: EntitySet, name: str, value: Any) -> Any:
        """A body value as stored, or a 400 as Business Central answers a value it cannot take."""
        kind = entity_set.fields[name]
        bad = BusinessCentralError(
            400,
            "BadRequest",
            f"Cannot convert the literal '{value}' to the expected type '{_edm(kind)}'.",
        )
        if kind in ("text", "code", "enum"):
            if not isinstance(value, str):
                raise bad
            limit = entity_set.max_lengths.get(name)
            if limit is not None and len(value) > limit:
                raise BusinessCentralError(
                    400,
                    _STRING_TOO_LONG,
                    f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                    f"characters. Value: {value}",
                )
            if kind == "enum":
                allowed = entity_set.enums.get(name, ())
                spelled = "_x0020_" if value == " " else value
                if spelled not in allowed:
                    raise BusinessCentralError(
                        400, "BadRequest", f"The value '{value}' is not valid for the enum property '{name}'."
                    )
                return spelled
            return value.upper() if kind == "code" else value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if kind in ("decimal", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                raise bad
            if kind == "integer":
                if not isinstance(value, int):
                    raise bad
                return value
            number = Decimal(value)
            if abs(number) > _DECIMAL_LIMIT:
                # AL's Decimal holds +/- 999,999,999,999,999.99 (learn.microsoft.com, "Decimal Data Type");
                # a field cannot be assigned more. The error code and wording are unverified.
                message = f"The value {value} of the property '{name}' is outside the valid range."
                raise BusinessCentralError(400, "BadRequest", message)
            return number
        if kind == "date":
            if not isinstance(value, str) or len(value) != 10:
                raise bad
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                raise bad from None
        if kind == "guid":
            if not isinstance(value, str):
                raise bad
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise bad from None
        raise bad

    def apply_body(self, entity_set: EntitySet, entity: Record, body: Any) -> set[str]:
        """Write a JSON body's properties onto `entity` (a copy); returns the names written."""
        if not isinstance(body, dict):
            raise _bad_request("The request body must be a JSON object.")
        written: set[str] = set()
        for name, value in body.items():
            if name.startswith("@odata."):
                continue  # annotations a client echoes back (the etag) are not properties
            if name == "salesInvoiceLines" and entity_set is SALES_INVOICES:
                continue  # deep insert: handled by the caller
            if name not in entity_set.fields:
                raise _bad_request(
                    f"The property '{name}' does not exist on type 'Microsoft.NAV.{entity_set.entity_type}'. "
                    "Make sure to only use property names that are defined by the type."
                )
            if name not in entity_set.writable:
                # Unverified: Business Central's wording for a read-only property.
                raise _bad_request(f"The property '{name}' is read-only and cannot be modified.")
            entity[name] = self.coerce(entity_set, name, value)
            written.add(name)
        return written

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
        entity: Record = {"id": str(uuid.uuid4()), "companyId": company_id}
        if entity_set is CUSTOMERS:
            entity.update(
                {
                    "number": "",
                    "displayName": "",
                    "type": "Company",
                    "addressLine1": "",
                    "addressLine2": "",
                    "city": "",
                    "state": "",
                    "country": "",
                    "postalCode": "",
                    "phoneNumber": "",
                    "email": "",
                    "website": "",
                    "taxLiable": False,
                    "taxAreaId": ZERO_GUID,
                    "taxRegistrationNumber": "",
                    "currencyCode": "",
                    "blocked": "_x0020_",
                }
            )
            self.apply_body(entity_set, entity, body)
            entity["number"] = entity["number"] or self.next_number(CUSTOMERS, company_id, "C", 5)
            self.complete_customer(entity, setup)
        elif entity_set is PROJECTS:
            entity.update({"number": "", "displayName": ""})
            self.apply_body(entity_set, entity, body)
            entity["number"] = entity["number"] or self.next_number(PROJECTS, company_id, "PR", 5)
        elif entity_set is SALES_INVOICES:
            entity.update(
                {
                    "number": "",
                    "externalDocumentNumber": "",
                    "invoiceDate": None,
                    "postingDate": None,
                    "dueDate": None,
                    "customerId": None,
                    "customerNumber": "",
                    "customerName": "",
                    "currencyCode": None,
                    "pricesIncludeTax": False,
                    "discountAmount": Decimal(0),
                    "status": "Draft",
                    "salesInvoiceLines": [],
                }
            )
            self.apply_body(entity_set, entity, body)
            self.complete_invoice(entity, setup, created=True)
            lines = body.get("salesInvoiceLines") if isinstance(body, dict) else None
            if lines is not None:
                if not isinstance(lines, list):
                    raise _bad_request("The property 'salesInvoiceLines' must be a collection.")
                for line_body in lines:
                    self.add_line(entity, setup, line_body, stamp=False)
            entity["number"] = self.next_draft_number(company_id)
        elif entity_set is CUSTOMER_PAYMENTS:
            entity.update(
                {
                    "journalDisplayName": "ZAHLUNG" if setup.country == "DE" else "PAYMENT",
                    "lineNumber": 0,
                    "customerId": None,
                    "customerNumber": "",
                    "postingDate": None,
                    "documentNumber": "",
                    "externalDocumentNumber": "",
                    "amount": Decimal(0),
                    "appliesToInvoiceId": None,
                    "appliesToInvoiceNumber": "",
                    "description": "",
                    "comment": "",
                }
            )
            self.apply_body(entity_set, entity, body)
            self.complete_payment(entity, company_id)
        else:  # read-only sets (taxAreas): finance sets them up in the client
            raise _not_found()
        if entity_set is not PROJECTS:
            entity["lastModifiedDateTime"] = format_datetime(self.now())
        self.bump(entity)
        self.records[entity_set.name][entity["id"]] = entity
        return entity

    def update(
        self, entity_set: EntitySet, company_id: str, setup: CompanySetup, entity: Record, body: Any
    ) -> Record:
        changed = _copy(entity)
        written = self.apply_body(entity_set, changed, body)
        if entity_set is CUSTOMERS:
            self.complete_customer(changed, setup)
        elif entity_set is PROJECTS:
            if not changed["number"]:
                raise BusinessCentralError(400, _FIELD_VALIDATION, "No. must have a value in Project.")
            self.check_unique_number(PROJECTS, company_id, changed)
        elif entity_set is SALES_INVOICES:
            if entity["status"] != "Draft" and written:
                raise BusinessCentralError(
                    400, _DIALOG, f"You cannot change posted sales invoice {entity['number']}."
                )
            self.complete_invoice(changed, setup, created=False)
        elif entity_set is CUSTOMER_PAYMENTS:
            money = {"customerId", "customerNumber", "amount", "appliesToInvoiceId", "appliesToInvoiceNumber"}
            if written & money:
                # Simplification: the sandbox posts payments on insert, so their money cannot move.
                raise BusinessCentralError(
                    400, _DIALOG, "The payment has been posted. Delete it and enter a new one instead."
                )
        if entity_set is not PROJECTS:
            changed["lastModifiedDateTime"] = format_datetime(self.now())
        self.bump(changed)
        self.records[entity_set.name][changed["id"]] = changed
        return changed

    def delete(self, entity_set: EntitySet, company_id: str, entity: Record) -> None:
        if entity_set is CUSTOMERS and any(
            invoice["customerId"] == entity["id"] for invoice in self.records["salesInvoices"].values()
        ):
            raise BusinessCentralError(
                400,
                _DIALOG,
                f"You cannot delete Customer {entity['number']} because there is at least one outstanding "
                "Sales Invoice for this customer.",
            )
        if entity_set is SALES_INVOICES and entity["status"] != "Draft":
            raise BusinessCentralError(
                400, _DIALOG, f"You cannot delete posted sales invoice {entity['number']}."
            )
        if entity_set is CUSTOMER_PAYMENTS and entity.get("appliesToInvoiceId") not in (None, ZERO_GUID):
            invoice = self.records["salesInvoices"].get(entity["appliesToInvoiceId"])
            if invoice is not None:
                changed = _copy(invoice)
                self.settle(changed, Decimal(changed["remainingAmount"]) - Decimal(entity["amount"]))
                self.stamp(changed)
                self.records["salesInvoices"][changed["id"]] = changed
        del self.records[entity_set.name][entity["id"]]

    # -- per entity rules

    def complete_customer(self, entity: Record, setup: CompanySetup) -> None:
        self.check_unique_number(CUSTOMERS, entity["companyId"], entity)
        area_id = entity.get("taxAreaId") or ZERO_GUID
        area = self.records["taxAreas"].get(area_id)
        if area_id != ZERO_GUID and (area is None or area["companyId"] != entity["companyId"]):
            raise BusinessCentralError(
                400,
                _FIELD_VALIDATION,
                f"The field Tax Area Code of table Customer contains a value ({area_id}) that cannot be "
                "found in the related table (Tax Area).",
            )
        entity["currencyCode"] = self.currency(entity.get("currencyCode") or "", setup, "Customer")

    def currency(self, code: str, setup: CompanySetup, table: str) -> str:
        """A currency code as stored: blank for the local currency; unknown codes refused."""
        code = code.upper()
        if code in ("", setup.local_currency):
            return ""
        if code not in setup.currencies:
            raise BusinessCentralError(
                400,
                _FIELD_VALIDATION,
                f"The field Currency Code of table {table} contains a value ({code}) that cannot be found in "
                "the related table (Currency).",
            )
        return code

    def complete_invoice(self, invoice: Record, setup: CompanySetup, *, created: bool) -> None:
        company_id = invoice["companyId"]
        customer: Record | None = None
        if invoice.get("customerId"):
            customer = self.records["customers"].get(invoice["customerId"])
            if customer is None or customer["companyId"] != company_id:
                raise BusinessCentralError(
                    400,
                    "Internal_RecordNotFound",
                    f"The Customer does not exist. Identification fields and "
                    f"values: Id='{invoice['customerId']}'",
                )
            if invoice.get("customerNumber") and invoice["customerNumber"] != customer["number"]:
                raise _bad_request("The customerId and customerNumber properties name different customers.")
        elif invoice.get("customerNumber"):
            customer = self.by_number(CUSTOMERS, company_id, invoice["customerNumber"])
            if customer is None:
                raise BusinessCentralError(
                    400,
                    "Internal_RecordNotFound",
                    f"The Customer does not exist. Identification fields and "
                    f"values: No.='{invoice['customerNumber']}'",
                )
        if customer is None:
            raise BusinessCentralError(
                400, _FIELD_VALIDATION, "Sell-to Customer No. must have a value in Sales Header."
            )
        if customer["blocked"] in ("Invoice", "All"):
            raise BusinessCentralError(
                400,
                _DIALOG,
                f"You cannot create this type of document when Customer {customer['number']} is blocked with "
                f"type {customer['blocked']}.",
            )
        changed_customer = invoice.get("customerId") != customer["id"]
        invoice["customerId"] = customer["id"]
        invoice["customerNumber"] = customer["number"]
        invoice["customerName"] = customer["displayName"]
        if invoice.get("currencyCode") is None or (
            created and changed_customer and invoice["currencyCode"] is None
        ):
            invoice["currencyCode"] = customer["currencyCode"]
        invoice["currencyCode"] = self.currency(invoice["currencyCode"] or "", setup, "Sales Header")
        today = self.today().isoformat()
        invoice["invoiceDate"] = invoice.get("invoiceDate") or today
        invoice["postingDate"] = invoice.get("postingDate") or invoice["invoiceDate"]
        if not invoice.get("dueDate"):
            invoice["dueDate"] = (date.fromisoformat(invoice["invoiceDate"]) + timedelta(days=30)).isoformat()
        if invoice["dueDate"] < invoice["invoiceDate"]:
            raise BusinessCentralError(400, _DIALOG, "Due Date must not be before Document Date.")
        self.total(invoice)

    def next_draft_number(self, company_id: str) -> str:
        used = [
            int(invoice["number"][5:])
            for invoice in self.entities(SALES_INVOICES, company_id)
            if invoice["number"].startswith("S-INV") and invoice["number"][5:].isdigit()
        ]
        return f"S-INV{max(used, default=100000) + 1}"

    def add_line(self, invoice: Record, setup: CompanySetup, body: Any, *, stamp: bool = True) -> Record:
        if invoice["status"] != "Draft":
            raise BusinessCentralError(
                400, _DIALOG, f"You cannot change posted sales invoice {invoice['number']}."
            )
        lines: list[Record] = invoice["salesInvoiceLines"]
        line: Record = {
            "id": str(uuid.uuid4()),
            "documentId": invoice["id"],
            "sequence": max((existing["sequence"] for existing in lines), default=0) + 10000,
            "lineType": "Item",
            "lineObjectNumber": "",
            "description": "",
            "quantity": Decimal(0),
            "unitPrice": Decimal(0),
            "discountAmount": Decimal(0),
            "discountPercent": Decimal(0),
        }
        self.apply_body(SALES_INVOICE_LINES, line, body)
        if line["lineType"] != "Comment":
            if not line["lineObjectNumber"]:
                raise BusinessCentralError(
                    400, _FIELD_VALIDATION, "No. must have a value in Sales Line: Document Type=Invoice."
                )
            if line["lineType"] == "Account" and line["lineObjectNumber"] not in setup.gl_accounts:
                raise BusinessCentralError(
                    400,
                    "Internal_RecordNotFound",
                    f"The G/L Account does not exist. Identification fields and values: "
                    f"No.='{line['lineObjectNumber']}'",
                )
            if line["lineType"] != "Account":
                # Simplification: this sandbox has no items, resources, fixed assets or charges set up.
                raise BusinessCentralError(
                    400,
                    "Internal_RecordNotFound",
                    f"The {line['lineType']} does not exist. Identification fields and values: "
                    f"No.='{line['lineObjectNumber']}'",
                )
        if line["quantity"] < 0 or line["unitPrice"] < 0:
            raise BusinessCentralError(
                400, _DIALOG, "Quantity and Unit Price must not be negative on an invoice."
            )
        gross = line["quantity"] * line["unitPrice"]
        discount = line["discountAmount"] or _cents(gross * line["discountPercent"] / 100)
        amount = _cents(gross - discount)
        line.update(
            {
                "discountAmount": discount,
                "amountExcludingTax": amount,
                "taxPercent": Decimal(0),
                "totalTaxAmount": Decimal(0),
                "amountIncludingTax": amount,
                "netAmount": amount,
            }
        )
        self.bump(line)
        lines.append(line)
        self.total(invoice)
        if stamp:
            invoice["lastModifiedDateTime"] = format_datetime(self.now())
            self.bump(invoice)
        return line

    @staticmethod
    def total(invoice: Record) -> None:
        total = sum(
            (Decimal(line["amountExcludingTax"]) for line in invoice["salesInvoiceLines"]), Decimal(0)
        )
        invoice["totalAmountExcludingTax"] = total
        invoice["totalTaxAmount"] = Decimal(0)
        invoice["totalAmountIncludingTax"] = total
        if invoice["status"] == "Draft":
            invoice["remainingAmount"] = Decimal(0)

    def post_invoice(self, invoice: Record) -> None:
        if invoice["status"] != "Draft":
            raise BusinessCentralError(
                400, _DIALOG, f"Sales invoice {invoice['number']} has already been posted."
            )
        if not any(line["lineType"] != "Comment" for line in invoice["salesInvoiceLines"]):
            raise BusinessCentralError(400, _DIALOG, "There is nothing to post.")
        company_id = invoice["companyId"]
        used = [
            int(other["number"])
            for other in self.entities(SALES_INVOICES, company_id)
            if str(other["number"]).isdigit()
        ]
        changed = _copy(invoice)
        # Posting gives the invoice its number from the posted-invoice series; the id stays the same.
        changed["number"] = str(max(used, default=103000) + 1)
        changed["status"] = "Open"
        changed["remainingAmount"] = changed["totalAmountIncludingTax"]
        if changed["remainingAmount"] <= 0:
            changed["status"] = "Paid"
        self.stamp(changed)
        self.records["salesInvoices"][changed["id"]] = changed

    @staticmethod
    def settle(invoice: Record, remaining: Decimal) -> None:
        invoice["remainingAmount"] = remaining
        invoice["status"] = "Paid" if remaining <= 0 else "Open"

    def complete_payment(self, payment: Record, company_id: str) -> None:
        customer: Record | None = None
        if payment.get("customerId"):
            customer = self.records["customers"].get(payment["customerId"])
        elif payment.get("customerNumber"):
            customer = self.by_number(CUSTOMERS, company_id, payment["customerNumber"])
        if customer is None or customer["companyId"] != company_id:
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                "The Customer does not exist. Identification fields and values: "
                f"No.='{payment.get('customerNumber') or payment.get('customerId')}'",
            )
        payment["customerId"], payment["customerNumber"] = customer["id"], customer["number"]
        payment["postingDate"] = payment.get("postingDate") or self.today().isoformat()
        payments = self.entities(CUSTOMER_PAYMENTS, company_id)
        payment["lineNumber"] = (
            payment["lineNumber"] or max((p["lineNumber"] for p in payments), default=0) + 10000
        )
        if not payment["documentNumber"]:
            numbers = [int(p["documentNumber"][2:]) for p in payments if p["documentNumber"][2:].isdigit()]
            payment["documentNumber"] = f"ZE{max(numbers, default=200000) + 1}"
        payment["description"] = payment["description"] or customer["displayName"][:100]
        amount = Decimal(payment["amount"])
        # Unverified for the API page: payment-journal amounts credit the customer, so they are negative.
        if amount >= 0:
            raise BusinessCentralError(400, _DIALOG, "Amount must be negative in Gen. Journal Line.")
        invoice: Record | None = None
        # A GUID property is never null in Business Central: "not applied" is the zero GUID.
        applies_to = payment.get("appliesToInvoiceId") or ZERO_GUID
        if applies_to != ZERO_GUID:
            invoice = self.records["salesInvoices"].get(applies_to)
        elif payment.get("appliesToInvoiceNumber"):
            invoice = self.by_number(SALES_INVOICES, company_id, payment["appliesToInvoiceNumber"])
        if (applies_to != ZERO_GUID or payment.get("appliesToInvoiceNumber")) and (
            invoice is None or invoice["companyId"] != company_id
        ):
            raise BusinessCentralError(
                400,
                "Internal_RecordNotFound",
                "The Sales Invoice Header does not exist. Identification fields and values: "
                f"No.='{payment.get('appliesToInvoiceNumber') or payment.get('appliesToInvoiceId')}'",
            )
        if invoice is None:
            payment["appliesToInvoiceId"], payment["appliesToInvoiceNumber"] = ZERO_GUID, ""
            return
        if invoice["customerId"] != customer["id"]:
            raise BusinessCentralError(400, _DIALOG, "The invoice to apply to belongs to another customer.")
        if invoice["status"] not in ("Open",):
            raise BusinessCentralError(
                400,
                _DIALOG,
                f"Sales invoice {invoice['number']} is not open: nothing to apply the payment to.",
            )
        remaining = Decimal(invoice["remainingAmount"])
        if -amount > remaining + _PAYMENT_TOLERANCE:
            raise BusinessCentralError(
                400,
                _DIALOG,
                f"The amount to apply ({-amount}) is greater than the remaining amount ({remaining}) of "
                f"sales invoice {invoice['number']}.",
            )
        payment["appliesToInvoiceId"], payment["appliesToInvoiceNumber"] = invoice["id"], invoice["number"]
        changed = _copy(invoice)
        self.settle(changed, remaining + amount)
        self.stamp(changed)
        self.records["salesInvoices"][changed["id"]] = changed


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | Decimal):
        return (1, Decimal(value))
    return (2, str(value))


def _edm(kind: FieldKind) -> str:
    return {
        "guid": "Edm.Guid",
        "text": "Edm.String",
        "code": "Edm.String",
        "enum": "Edm.String",
        "decimal": "Edm.Decimal",
        "integer": "Edm.Int32",
        "boolean": "Edm.Boolean",
        "date": "Edm.Date",
        "datetime": "Edm.DateTimeOffset",
    }[kind]


# ---------------------------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------------------------

_Sandbox: TypeAlias = NamedDependency[BusinessCentralSandbox]


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(
        _ENCODER.encode(payload),
        status_code=status,
        media_type=_JSON,
        headers={**_ODATA_HEADERS, **(headers or {})},
    )


def _base(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and mount prefix: what every absolute URL the sandbox hands out starts with."""
    return str(request.base_url).rstrip("/")


def _query_params(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    # OData clients percent-encode option names ($ as %24) and values; parse the raw string ourselves so
    # "+" and "%2B" keep their form-encoding meanings.
    raw = request.scope.get("query_string", b"")
    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


def _non_negative(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise _bad_request(
            f"Invalid value '{raw}' for ${name} query option found. The ${name} query option requires a "
            "non-negative integer value."
        )
    return int(raw)


def _parse_query(params: list[tuple[str, str]]) -> _Query:
    options: dict[str, str] = {}
    for name, value in params:
        if name.startswith("$"):
            if name in options:
                raise _bad_request(
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
            raise _bad_request(f"The query parameter '{name}' is not supported.")
    count = options.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise _bad_request(f"'{options['$count']}' is not a valid count option.")
    skiptoken = 0
    if "$skiptoken" in options:
        try:
            decoded = base64.urlsafe_b64decode(options["$skiptoken"] + "==").decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if not decoded.startswith("o:") or not decoded[2:].isdigit():
            raise _bad_request("The skip token value is not valid.")
        skiptoken = int(decoded[2:])
    return _Query(
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


def _select_expand(entity_set: EntitySet, query: _Query) -> tuple[list[str] | None, bool]:
    select = parse_select(query.select, entity_set.fields, entity_set.entity_type) if query.select else None
    expand = False
    if query.expand:
        names = [name.strip() for name in query.expand.split(",")]
        for name in names:
            if entity_set is not SALES_INVOICES or name != "salesInvoiceLines":
                raise _bad_request(
                    f"Could not find a property named '{name}' on type "
                    f"'Microsoft.NAV.{entity_set.entity_type}'."
                )
        expand = True
    return select, expand


def _if_match(request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, entity: Record) -> None:
    given = request.headers.get("if-match")
    if given is None:
        # Unverified: the status; this is the OData library's message for a missing concurrency token.
        raise _bad_request(
            "Could not validate the client concurrency token required by the service. Please provide a valid "
            "ETag value with the If-Match header in your request."
        )
    tags = [tag.strip() for tag in given.split(",")]
    if "*" not in tags and sandbox.etag(entity) not in tags:
        raise BusinessCentralError(
            412, "Request_EntityChanged", "Another user has already changed the record."
        )


async def _body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise _bad_request("The request body is empty.")
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        return _DECODER.decode(raw)
    except msgspec.DecodeError:
        raise _bad_request("The request body is not valid JSON.") from None


def _on_error(_: Request[Any, Any, Any], exc: BusinessCentralError) -> Response[bytes]:
    return _json(exc.body(), exc.status, exc.headers)


def _on_odata_error(_: Request[Any, Any, Any], exc: ODataError) -> Response[bytes]:
    return _json(_error_body("BadRequest", exc.message), 400)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code == 404:
        return _json(
            _error_body("BadRequest_NotFound", "No HTTP resource was found that matches the request URI."),
            404,
        )
    if exc.status_code == 405:
        message = f"The HTTP method '{request.method}' is not allowed on this resource."
        return _json(_error_body("BadRequest_MethodNotAllowed", message), 405, exc.headers)
    return _json(_error_body("BadRequest", exc.detail), exc.status_code)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception(
        "business central sandbox failed on %s %s", request.method, request.url.path, exc_info=exc
    )
    return _json(_error_body("Internal_ServerError", "An unexpected error occurred."), 500)


def _entra_error(exc: _EntraError, tenant: str) -> Response[bytes]:
    trace = str(uuid.uuid4())
    correlation = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": exc.error,
        "error_description": f"AADSTS{exc.code}: {exc.description} Trace ID: {trace} Correlation ID: "
        f"{correlation} Timestamp: {stamp}",
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }
    return Response(
        _ENCODER.encode(body),
        status_code=exc.status,
        media_type=_ENTRA_JSON,
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


# ---------------------------------------------------------------------------------------------------------
# Entra ID token endpoint
# ---------------------------------------------------------------------------------------------------------


@post("/{tenant:str}/oauth2/v2.0/token", status_code=200)
async def issue_token(
    request: Request[Any, Any, Any], tenant: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    basic: tuple[str, str] | None = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        basic = (unquote(user), unquote(password))
    try:
        payload = sandbox.issue_token(tenant, form, basic)
    except _EntraError as exc:
        return _entra_error(exc, tenant)
    return Response(
        _ENCODER.encode(payload),
        media_type=_ENTRA_JSON,
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


# ---------------------------------------------------------------------------------------------------------
# API v2.0
# ---------------------------------------------------------------------------------------------------------

_API = "/v2.0/{tenant:str}/{environment:str}/api/v2.0"


@dataclass(frozen=True, slots=True)
class _Target:
    """What an API URL names below ``api/v2.0``."""

    company_id: str | None  # None: the companies collection itself
    entity_set: EntitySet | None  # None: the company itself
    entity_id: str | None
    lines: bool  # .../salesInvoices({id})/salesInvoiceLines
    line_id: str | None
    count: bool  # .../$count
    action: str | None  # Microsoft.NAV.post


def _segment(text: str) -> tuple[str, str | None]:
    if text.endswith(")") and "(" in text:
        name, _, key = text[:-1].partition("(")
        key = key.removeprefix("id=")
        try:
            return name, str(uuid.UUID(key.strip("'")))
        except ValueError:
            raise _bad_request(
                f"Bad Request - Error in query syntax: the key '{key}' is not a valid Edm.Guid."
            ) from None
    return text, None


def _target(rest: str, sandbox: BusinessCentralSandbox) -> _Target:
    segments = [segment for segment in rest.strip("/").split("/") if segment]
    if not segments:
        raise _not_found()
    count = segments[-1] == "$count"
    if count:
        segments = segments[:-1]
    name, company_id = _segment(segments[0])
    if name != "companies":
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'."
        )
    if company_id is None:
        if len(segments) > 1:
            raise _bad_request("Bad Request - Error in query syntax.")
        return _Target(None, None, None, False, None, count, None)
    sandbox.company(company_id)
    if len(segments) == 1:
        return _Target(company_id, None, None, False, None, count, None)
    set_name, entity_id = _segment(segments[1])
    entity_set = ENTITY_SETS.get(set_name)
    if entity_set is None:
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{set_name}'."
        )
    if len(segments) == 2:
        return _Target(company_id, entity_set, entity_id, False, None, count, None)
    if entity_set is not SALES_INVOICES or entity_id is None or len(segments) > 3:
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{segments[2]}'."
        )
    third, line_id = _segment(segments[2])
    if third == "Microsoft.NAV.post" and line_id is None and not count:
        return _Target(company_id, entity_set, entity_id, False, None, False, "post")
    if third != "salesInvoiceLines":
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{third}'."
        )
    return _Target(company_id, entity_set, entity_id, True, line_id, count, None)


def _api_base(request: Request[Any, Any, Any]) -> str:
    """The absolute URL of ``.../api/v2.0`` as this request reached it."""
    path = relative_path(request.scope)  # type: ignore[arg-type]
    return _base(request) + path[: path.index("/api/v2.0") + len("/api/v2.0")]


def _request_url(request: Request[Any, Any, Any]) -> str:
    """The absolute URL of this request, without its query."""
    return _base(request) + relative_path(request.scope)  # type: ignore[arg-type]


def _context(request: Request[Any, Any, Any], path: str) -> str:
    return f"{_api_base(request)}/$metadata#{path}"


def _page(
    request: Request[Any, Any, Any],
    sandbox: BusinessCentralSandbox,
    entity_set: EntitySet,
    rows: list[Record],
    setup: CompanySetup | None,
    query: _Query,
    context: str,
) -> Response[bytes]:
    select, expand = _select_expand(entity_set, query)
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
        params = [(name, value) for name, value in _query_params(request) if name != "$skiptoken"]
        params.append(("$skiptoken", _skiptoken(query.skiptoken + page_size)))
        query_string = urlencode(params, quote_via=quote, safe=_QUERY_SAFE)
        body["@odata.nextLink"] = f"{_request_url(request)}?{query_string}"
    headers = {"Preference-Applied": f"odata.maxpagesize={asked}"} if asked else None
    return _json(body, headers=headers)


def _count(rows: list[Record]) -> Response[bytes]:
    return Response(_BOM + str(len(rows)).encode(), media_type=_TEXT, headers=_ODATA_HEADERS)


def _check_environment(sandbox: BusinessCentralSandbox, tenant: str, environment: str) -> None:
    if tenant.lower() != sandbox.settings.tenant_id.lower():
        raise BusinessCentralError(
            401, "Authentication_InvalidCredentials", "The server has rejected the client credentials."
        )
    if environment != sandbox.settings.environment:
        # Unverified: the code for an environment the tenant does not have.
        raise BusinessCentralError(404, "NoEnvironment", f"The environment '{environment}' does not exist.")


def _is_subscriptions(rest: str) -> bool:
    first = rest.strip("/").split("/", 1)[0]
    return first == "subscriptions" or first.startswith("subscriptions(")


class _SubscriptionBody(msgspec.Struct, frozen=True, rename="camel"):
    notification_url: Annotated[str, msgspec.Meta(min_length=1)]
    resource: str
    client_state: Annotated[str, msgspec.Meta(max_length=2048)] = ""  # documented: up to 2048 characters


def _subscription(sandbox: BusinessCentralSandbox, rest: str) -> Subscription | None:
    """The subscription ``subscriptions('{id}')`` names; None for the collection itself."""
    segments = [segment for segment in rest.strip("/").split("/") if segment]
    if len(segments) > 1:
        raise _not_found()
    if segments[0] == "subscriptions":
        return None
    key = segments[0].removeprefix("subscriptions(").removesuffix(")").strip("'")
    found = sandbox.webhooks.subscriptions.get(key)
    if found is None:
        raise _not_found("subscription")
    return found


def _subscription_if_match(request: Request[Any, Any, Any], subscription: Subscription) -> None:
    sent = request.headers.get("if-match")
    if sent is None:
        raise _bad_request("Could not validate the client concurrency token required by the service.")
    if sent != "*" and sent != subscription.render()["@odata.etag"]:
        raise BusinessCentralError(
            412, "Request_EntityChanged", "Another user has already changed the record."
        )


# The entity sets of this sandbox Business Central sends webhooks for (its documented list of supported
# entities has customers and salesInvoices, not projects or customerPayments).
_WEBHOOK_SETS = frozenset({"customers", "salesInvoices"})


def _subscription_resource(sandbox: BusinessCentralSandbox, resource: str) -> str:
    """``companies({id})/{entitySet}``, from the resource as clients write it (``/api/v2.0/...`` or the
    API-root-relative form): only an entity set of a company can be subscribed to."""
    relative = resource.split("/api/v2.0/", 1)[-1] if "/api/v2.0/" in resource else resource
    target = _target(relative, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_set.name not in _WEBHOOK_SETS
        or target.entity_id is not None
        or (target.count or target.lines or target.action)
    ):
        raise _bad_request(f"The resource '{resource}' cannot be subscribed to.")
    return f"companies({target.company_id})/{target.entity_set.name}"


def _read_subscriptions(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        rows = [found.render() for found in sandbox.webhooks.subscriptions.values()]
        return _json({"@odata.context": _context(request, "subscriptions"), "value": rows})
    return _json({"@odata.context": _context(request, "subscriptions/$entity"), **subscription.render()})


async def _subscribe(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    if _subscription(sandbox, rest) is not None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'POST' requests for this resource are not allowed."
        )
    try:
        wanted = msgspec.convert(await _body(request), _SubscriptionBody)
    except msgspec.ValidationError as exc:
        raise _bad_request(f"The subscription is not valid: {exc}") from None
    resource = _subscription_resource(sandbox, wanted.resource)
    if sandbox.webhooks.transport is None:
        raise _bad_request(
            "This sandbox delivers notifications only through its configured transport "
            "(BusinessCentralSandboxSettings.notification_transport), and none is configured."
        )
    if not await sandbox.webhooks.handshake(wanted.notification_url):
        # Unverified: the code and wording; that a failed handshake refuses the subscription is documented.
        raise _bad_request(
            f"The notification URL '{wanted.notification_url}' did not return the validation token."
        )
    subscription = sandbox.webhooks.add(wanted.notification_url, resource, wanted.client_state)
    location = f"{_api_base(request)}/subscriptions('{subscription.id}')"
    body = {"@odata.context": _context(request, "subscriptions/$entity"), **subscription.render()}
    return _json(body, 201, {"Location": location})


async def _renew_subscription(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'PATCH' requests for this resource are not allowed."
        )
    _subscription_if_match(request, subscription)
    # A renewal handshakes again, as Business Central does before it extends the subscription.
    if not await sandbox.webhooks.handshake(subscription.notification_url):
        raise _bad_request(
            f"The notification URL '{subscription.notification_url}' did not return the validation token."
        )
    sandbox.webhooks.renew(subscription)
    return _json({"@odata.context": _context(request, "subscriptions/$entity"), **subscription.render()})


def _unsubscribe(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'DELETE' requests for this resource are not allowed."
        )
    _subscription_if_match(request, subscription)
    sandbox.webhooks.remove(subscription)
    return Response(b"", status_code=204, headers=_ODATA_HEADERS)


@get(f"{_API}/{{rest:path}}")
async def read(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    _check_environment(sandbox, tenant, environment)
    if _is_subscriptions(rest):
        return _read_subscriptions(request, sandbox, rest)
    if rest.strip("/") == "$metadata":
        return Response(metadata_document(), media_type=_XML, headers=_ODATA_HEADERS)
    target = _target(rest, sandbox)
    query = _parse_query(_query_params(request))
    if target.company_id is None:
        rows = sandbox.select(COMPANIES, list(sandbox.records["companies"].values()), None, query)
        if target.count:
            return _count(rows)
        return _page(request, sandbox, COMPANIES, rows, None, query, _context(request, "companies"))
    company, setup = sandbox.company(target.company_id)
    scope = f"companies({company['id']})"
    if target.entity_set is None:
        if target.count:
            raise _bad_request("Bad Request - Error in query syntax.")
        select, _ = _select_expand(COMPANIES, query)
        body = {
            "@odata.context": _context(request, "companies/$entity"),
            **sandbox.render(COMPANIES, company, None, select),
        }
        return _json(body)
    entity_set = target.entity_set
    if target.entity_id is None:
        rows = sandbox.select(entity_set, sandbox.entities(entity_set, target.company_id), setup, query)
        if target.count:
            return _count(rows)
        return _page(
            request, sandbox, entity_set, rows, setup, query, _context(request, f"{scope}/{entity_set.name}")
        )
    entity = sandbox.find(entity_set, target.company_id, target.entity_id)
    if target.lines:
        lines = entity["salesInvoiceLines"]
        if target.line_id is not None:
            line = next((line for line in lines if line["id"] == target.line_id), None)
            if line is None:
                raise _not_found("salesInvoiceLine")
            select, _ = _select_expand(SALES_INVOICE_LINES, query)
            context = _context(request, f"{scope}/salesInvoices({entity['id']})/salesInvoiceLines/$entity")
            return _json(
                {"@odata.context": context, **sandbox.render(SALES_INVOICE_LINES, line, setup, select)}
            )
        rows = sandbox.select(SALES_INVOICE_LINES, list(lines), setup, query)
        if target.count:
            return _count(rows)
        context = _context(request, f"{scope}/salesInvoices({entity['id']})/salesInvoiceLines")
        return _page(request, sandbox, SALES_INVOICE_LINES, rows, setup, query, context)
    if target.count:
        raise _bad_request("Bad Request - Error in query syntax.")
    select, expand = _select_expand(entity_set, query)
    context = _context(request, f"{scope}/{entity_set.name}/$entity")
    return _json({"@odata.context": context, **sandbox.render(entity_set, entity, setup, select, expand)})


class _BatchRequest(msgspec.Struct, frozen=True):
    """One inner request of a JSON ``$batch`` (OData JSON Format 4.01, section 19.1)."""

    id: str
    method: str
    url: str
    headers: dict[str, str] = {}
    body: Any = None


class _Batch(msgspec.Struct, frozen=True):
    requests: list[_BatchRequest]


_BATCH_METHODS = frozenset({"GET", "POST", "PATCH", "DELETE"})
# An inner request's own headers the sandbox passes on; the outer request's token is every inner one's.
_BATCH_HEADERS = frozenset({"if-match", "prefer", "accept", "content-type", "data-access-intent"})


async def _batch(request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox) -> Response[bytes]:
    """``POST .../api/v2.0/$batch`` in the JSON batch format Business Central takes ("Using OData $batch
    requests", learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch;
    OData JSON Format 4.01 section 19): each inner request runs through this same app, in order, with the
    outer request's token, and answers ``{"id", "status", "headers", "body"}`` in ``responses``; one
    failing request does not stop the others (no ``Isolation: snapshot`` transaction here)."""
    try:
        batch = msgspec.convert(await _body(request), _Batch)
    except msgspec.ValidationError as exc:
        raise _bad_request(f"The $batch request body is not valid: {exc}") from None
    if len(batch.requests) > sandbox.settings.batch_max_requests:
        raise _bad_request(
            f"The $batch request has {len(batch.requests)} requests; at most "
            f"{sandbox.settings.batch_max_requests} are allowed."
        )
    if len({inner.id for inner in batch.requests}) != len(batch.requests):
        raise _bad_request("The ids of the requests in a $batch must be unique.")
    root = _api_base(request) + "/"
    base = _base(request)
    token = request.headers.get("authorization", "")
    app: Any = request.app
    transport = httpx.ASGITransport(app=app, root_path=request.scope.get("root_path", ""))
    responses: list[dict[str, Any]] = []
    async with httpx.AsyncClient(transport=transport) as client:
        for inner in batch.requests:
            method = inner.method.upper()
            # Relative URLs are relative to the service root (the batch's own URL without $batch).
            url = inner.url if "://" in inner.url else root + inner.url.lstrip("/")
            if method not in _BATCH_METHODS or not (url + "/").startswith(base + "/"):
                raise _bad_request(f"The $batch request '{inner.id}' is not a request to this service.")
            if httpx.URL(url).path.rstrip("/").endswith("/$batch"):
                raise _bad_request("A $batch request cannot contain another $batch request.")
            headers = {name: value for name, value in inner.headers.items() if name.lower() in _BATCH_HEADERS}
            headers["authorization"] = token
            content = None if inner.body is None else _ENCODER.encode(inner.body)
            if content is not None:
                headers.setdefault("content-type", "application/json")
            answer = await client.request(method, url, headers=headers, content=content)
            entry: dict[str, Any] = {
                "id": inner.id,
                "status": answer.status_code,
                "headers": {
                    name: value
                    for name, value in answer.headers.items()
                    if name in ("content-type", "location", "etag", "odata-version", "retry-after")
                },
            }
            if answer.content:
                if answer.headers.get("content-type", "").startswith("application/json"):
                    entry["body"] = _DECODER.decode(answer.content)
                else:
                    entry["body"] = answer.content.decode("utf-8-sig")
            responses.append(entry)
    return _json({"responses": responses})


@post(f"{_API}/{{rest:path}}", status_code=201)
async def create(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    _check_environment(sandbox, tenant, environment)
    if rest.strip("/") == "$batch":
        return await _batch(request, sandbox)
    if _is_subscriptions(rest):
        return await _subscribe(request, sandbox, rest)
    target = _target(rest, sandbox)
    if target.company_id is None or target.entity_set is None or target.count or target.line_id is not None:
        raise BusinessCentralError(
            405,
            "BadRequest_MethodNotAllowed",
            "'POST' requests for this resource are not allowed within Dynamics 365 Business Central OData "
            "web services.",
        )
    _, setup = sandbox.company(target.company_id)
    entity_set = target.entity_set
    base = _request_url(request)
    if target.action == "post":
        assert target.entity_id is not None
        sandbox.post_invoice(sandbox.find(SALES_INVOICES, target.company_id, target.entity_id))
        sandbox.webhooks.changed(f"companies({target.company_id})/salesInvoices", target.entity_id, "updated")
        return Response(b"", status_code=204, headers=_ODATA_HEADERS)
    if target.entity_id is not None and not target.lines:
        raise BusinessCentralError(
            405,
            "BadRequest_MethodNotAllowed",
            f"'POST' requests for '{entity_set.name}' of EdmType 'Entity' are not allowed.",
        )
    body = await _body(request)
    scope = f"companies({target.company_id})"
    if target.lines:
        assert target.entity_id is not None
        invoice = _copy(sandbox.find(SALES_INVOICES, target.company_id, target.entity_id))
        line = sandbox.add_line(invoice, setup, body)
        sandbox.records["salesInvoices"][invoice["id"]] = invoice
        sandbox.webhooks.changed(f"{scope}/salesInvoices", invoice["id"], "updated")
        context = _context(request, f"{scope}/salesInvoices({invoice['id']})/salesInvoiceLines/$entity")
        rendered = {"@odata.context": context, **sandbox.render(SALES_INVOICE_LINES, line, setup)}
        return _json(rendered, 201, {"Location": f"{base}({line['id']})"})
    entity = sandbox.create(entity_set, target.company_id, setup, body)
    sandbox.webhooks.changed(f"{scope}/{entity_set.name}", entity["id"], "created")
    context = _context(request, f"{scope}/{entity_set.name}/$entity")
    expand = entity_set is SALES_INVOICES and isinstance(body, dict) and "salesInvoiceLines" in body
    rendered = {"@odata.context": context, **sandbox.render(entity_set, entity, setup, None, expand)}
    return _json(rendered, 201, {"Location": f"{base}({entity['id']})"})


@patch(f"{_API}/{{rest:path}}", status_code=200)
async def update(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    _check_environment(sandbox, tenant, environment)
    if _is_subscriptions(rest):
        return await _renew_subscription(request, sandbox, rest)
    target = _target(rest, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_id is None
        or target.count
        or target.lines
        or target.action
    ):
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'PATCH' requests for this resource are not allowed."
        )
    _, setup = sandbox.company(target.company_id)
    entity = sandbox.find(target.entity_set, target.company_id, target.entity_id)
    _if_match(request, sandbox, entity)
    body = await _body(request)
    changed = sandbox.update(target.entity_set, target.company_id, setup, entity, body)
    sandbox.webhooks.changed(
        f"companies({target.company_id})/{target.entity_set.name}", changed["id"], "updated"
    )
    context = _context(request, f"companies({target.company_id})/{target.entity_set.name}/$entity")
    return _json({"@odata.context": context, **sandbox.render(target.entity_set, changed, setup)})


@delete(f"{_API}/{{rest:path}}", status_code=200)
async def remove(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    _check_environment(sandbox, tenant, environment)
    if _is_subscriptions(rest):
        return _unsubscribe(request, sandbox, rest)
    target = _target(rest, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_id is None
        or target.count
        or target.lines
        or target.action
    ):
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'DELETE' requests for this resource are not allowed."
        )
    entity = sandbox.find(target.entity_set, target.company_id, target.entity_id)
    _if_match(request, sandbox, entity)
    sandbox.delete(target.entity_set, target.company_id, entity)
    sandbox.webhooks.changed(
        f"companies({target.company_id})/{target.entity_set.name}", entity["id"], "deleted"
    )
    return Response(b"", status_code=204, headers=_ODATA_HEADERS)


# ---------------------------------------------------------------------------------------------------------
# Sandbox administration
# ---------------------------------------------------------------------------------------------------------


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/tokens/expire", status_code=204)
async def expire_tokens(sandbox: _Sandbox) -> None:
    sandbox.tokens.clear()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    payload = {
        "tenant_id": sandbox.settings.tenant_id,
        "environment": sandbox.settings.environment,
        "active_tokens": len(sandbox.tokens),
        "rate_limit_requests": sandbox.settings.rate_limit_requests,
        "rate_limit_window_seconds": sandbox.settings.rate_limit_window_seconds,
        "requests_in_window": {principal: len(window) for principal, window in sandbox.windows.items()},
        "throttled": sandbox.throttled,
        "in_flight": sandbox.in_flight,
        "records": {name: len(records) for name, records in sandbox.records.items()},
        "requests": msgspec.to_builtins(list(sandbox.request_log)),
    }
    return Response(msgspec.json.encode(payload), media_type="application/json")


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.records, record_type, request.query_params.multi_items())


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


def _governed(path: str) -> bool:
    """The API paths that need a token and count against the limits (not Entra's token endpoint)."""
    return path.startswith("/v2.0/")


async def _send_error(
    send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    payload = _ENCODER.encode(_error_body(code, message))
    headers = [
        (b"content-type", _JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"odata-version", b"4.0"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class _AuthGate:
    """Rejects API calls without a valid bearer token, routed or not, before Litestar sees them."""

    def __init__(self, app: ASGIApp, sandbox: BusinessCentralSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and _governed(relative_path(scope))
            and self.sandbox.principal(bearer_token(scope)) is None
        ):
            tenant = self.sandbox.settings.tenant_id
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{tenant}/oauth2/authorize", '
                f'resource_id="{_BC_RESOURCE}"'
            ).encode()
            await _send_error(
                send,
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
                [(b"www-authenticate", challenge)],
            )
            return
        await self.app(scope, receive, send)


class _Governor:
    """Business Central's limits: a sliding window of requests per principal and requests in flight.

    It sits outside fault injection, so a latency fault keeps its request in flight, as against a slow
    environment, and a request the faults answer still counted against the principal's window.
    """

    def __init__(self, app: ASGIApp, sandbox: BusinessCentralSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox = self.sandbox
        principal = (
            sandbox.principal(bearer_token(scope))
            if scope["type"] == "http" and _governed(relative_path(scope))
            else None
        )
        if principal is None:
            await self.app(scope, receive, send)
            return
        retry_after = sandbox.admit(principal)
        if retry_after is None and sandbox.in_flight >= sandbox.settings.concurrency_limit:
            retry_after = 1.0
        if retry_after is not None:
            sandbox.throttled += 1
            # Unverified: the code and wording; the status and Retry-After are documented.
            await _send_error(
                send,
                429,
                "TooManyRequests",
                "Too many requests reached. Reduce the rate of requests and retry after the time given in "
                "the Retry-After header.",
                [(b"retry-after", str(math.ceil(retry_after)).encode())],
            )
            return
        sandbox.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            sandbox.in_flight -= 1


def create_business_central_sandbox(
    settings: BusinessCentralSandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> Litestar:
    """Build a fresh sandbox tenant as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``: every
    absolute URL it hands out (``@odata.context``, ``@odata.nextLink``, ``Location``) is built from the
    request's scheme, host and ``root_path``. In-process handles for tests: ``app.state.sandbox``
    (`BusinessCentralSandbox`, whose ``clock`` may be replaced) and ``app.state.faults`` (`FaultInjector`).
    """
    settings = settings or BusinessCentralSandboxSettings()
    sandbox = BusinessCentralSandbox(settings, clock=clock)

    def provide_sandbox() -> BusinessCentralSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            issue_token,
            read,
            create,
            update,
            remove,
            reset,
            expire_tokens,
            stats,
            stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            BusinessCentralError: _on_error,
            ODataError: _on_odata_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    router = cast("ASGIApp", app.asgi_handler)
    gated = with_faults(_AuthGate(router, sandbox), sandbox.faults, ADMIN_PREFIX)
    app.asgi_handler = cast(
        "LitestarASGIApp",
        RequestLog(_Governor(gated, sandbox), lambda entry: sandbox.request_log.append(entry), ADMIN_PREFIX),
    )
    return app
