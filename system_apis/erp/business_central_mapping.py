"""Pure mapping between Business Central API v2.0 entities and the canonical finance objects.

Business Central's wire format lives here and in ``business_central``: OData entities (camelCase, money as
JSON numbers read straight into ``Decimal``, never a float), ``$filter`` literals, and the keys Stratum
stores in Business Central, which has no external-id field:

- a customer mastered from a CRM account has ``number`` = `business_key` (the CRM id);
- a project has ``number`` = `business_key` (its external key, e.g. the opportunity id);
- an invoice has ``externalDocumentNumber`` = `business_key` (its external key, up to 35 characters). That
  field is a ``Code[35]``: Business Central keeps it upper-cased, and a longer value would not fit, so a key
  that is not already what BC stores (lower case, or over 35 characters: then `business_key` hashes it,
  never truncates it) is also written whole as the invoice's first ``Comment`` line, `KEY_PREFIX` + the key
  (`invoice_body`), and read back from there (`written_key`, checked against the document number, so a
  line edited by hand cannot name another key): ``Invoice.external_key`` is the key as Stratum gave it;
- an invoice line's source ids (the billable items it bills) follow it as ``Comment`` lines whose
  description is `SOURCE_PREFIX` + a slice of the ids joined by commas (`source_comment_lines`): the API's
  ``salesInvoiceLine`` has no second description or custom field (API v2.0, page 30043), and a comment line
  stays on the invoice when it is posted, so `invoice_from_bc` reads the trail back from any invoice;
- the invoice's memo is its leading ``Comment`` lines (the sales invoice has no memo field); it is not
  read back (the canonical invoice has none);
- a billing schedule line is a draft invoice with ``externalDocumentNumber`` = `schedule_key` (a 10-character
  hash of the schedule's external key) + ``#`` + the line's number (``#`` is never in a `business_key`), and
  the schedule's id (`encode_schedule_id`) carries what reading it back needs.

`business_key` is the key uppercased when it fits the field (Business Central ``Code`` fields hold
uppercase; a Salesforce 18-character id is case-safe by design, so uppercasing it loses nothing) and a
short hash of it otherwise. A CRM whose ids differ only by case (Salesforce 15-character ids) must hand
over its case-safe form, as the Salesforce adapter does. `crm_id_from_number` restores a Salesforce id's
case from its checksum, so customers read from Business Central can still name their CRM account.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

from contracts.models import (
    Address,
    BillingModel,
    BillingScheduleCreate,
    BillingScheduleLine,
    Customer,
    CustomerUpsert,
    Invoice,
    InvoiceCreate,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Payment,
    PaymentApplication,
    Project,
    ProjectCreate,
    SystemIds,
)
from contracts.models.delivery import ProjectStatus

__all__ = [
    "KEY_PREFIX",
    "SOURCE_PREFIX",
    "BcCompany",
    "BcCreditMemo",
    "BcCustomer",
    "BcError",
    "BcInvoice",
    "BcInvoiceLine",
    "BcPayment",
    "BcProject",
    "BcSubscription",
    "BcTaxArea",
    "ODataPage",
    "ScheduleRef",
    "business_key",
    "country_code",
    "credit_hold",
    "crm_id_from_number",
    "customer_create_body",
    "customer_from_bc",
    "customer_update_body",
    "decode_error",
    "decode_page",
    "decode_schedule_id",
    "encode_body",
    "encode_schedule_id",
    "invoice_body",
    "invoice_from_bc",
    "invoice_query",
    "invoice_status",
    "is_guid",
    "odata_datetime",
    "odata_quote",
    "parse_bc_datetime",
    "payment_from_bc",
    "project_body",
    "project_from_bc",
    "same_subscription_resource",
    "schedule_document_number",
    "schedule_invoice_body",
    "schedule_key",
    "schedule_line_from_bc",
    "schedule_line_number",
    "source_comment_lines",
    "source_ids_by_line",
    "written_key",
]

_T = TypeVar("_T")

CODE_LENGTH = 20
EXTERNAL_DOCUMENT_NUMBER_LENGTH = 35
_CODE_SAFE = re.compile(r"[A-Za-z0-9_:.-]+")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SALESFORCE_ID = re.compile(r"[A-Z0-9]{15}[A-Z0-5]{3}")
_SALESFORCE_CASE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_LINE_DESCRIPTION_LENGTH = 100
# A comment line carrying (a slice of) the source ids of the invoice line before it.
SOURCE_PREFIX = "Source: "
KEY_PREFIX = "Key: "
_SOURCE_SLICE = _LINE_DESCRIPTION_LENGTH - len(SOURCE_PREFIX)
# Business Central's ``blocked`` values that stop invoicing the customer ("Ship" stops shipments only).
_CREDIT_HOLD = frozenset({"invoice", "all"})
# Countries as CRMs spell them, to Business Central's country/region codes (ISO 3166 alpha-2).
_COUNTRIES: Mapping[str, str] = {
    "germany": "DE",
    "deutschland": "DE",
    "united kingdom": "GB",
    "great britain": "GB",
    "uk": "GB",
    "united states": "US",
    "usa": "US",
    "austria": "AT",
    "österreich": "AT",
    "switzerland": "CH",
    "schweiz": "CH",
    "france": "FR",
    "netherlands": "NL",
    "ireland": "IE",
}


# --- wire types ------------------------------------------------------------------------------------------


class BcCompany(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    name: str = ""
    display_name: str = ""


class BcCustomer(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    etag: str | None = msgspec.field(default=None, name="@odata.etag")
    number: str = ""
    display_name: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    country: str = ""
    postal_code: str = ""
    email: str = ""
    website: str = ""
    tax_registration_number: str = ""
    tax_area_id: str = ""
    currency_code: str = ""
    blocked: str | None = None
    last_modified_date_time: str | None = None

    @property
    def has_tax_area(self) -> bool:
        # Business Central shows an unset GUID as the empty GUID.
        return self.tax_area_id.strip("0-") != ""


class BcTaxArea(msgspec.Struct, kw_only=True, rename="camel"):
    """A ``taxAreas`` entity: in a sales-tax country a tax area, in a VAT country a VAT business posting
    group; its ``code`` is what the firm names a jurisdiction by (ISO 3166-2, e.g. ``DE-BY``)."""

    id: str
    code: str = ""
    display_name: str = ""


class BcProject(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    etag: str | None = msgspec.field(default=None, name="@odata.etag")
    number: str = ""
    display_name: str = ""


class BcInvoiceLine(msgspec.Struct, kw_only=True, rename="camel"):
    id: str = ""
    sequence: int = 0
    line_type: str = ""
    description: str = ""
    quantity: Decimal = Decimal(0)
    unit_price: Decimal = Decimal(0)
    amount_excluding_tax: Decimal = Decimal(0)
    tax_code: str = ""


class BcCreditMemo(msgspec.Struct, kw_only=True, rename="camel"):
    """A ``salesCreditMemo``: the one a cancelled invoice was credited by names it in ``invoiceNumber``."""

    id: str
    number: str = ""
    status: str = ""
    invoice_number: str = ""


class BcInvoice(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    etag: str | None = msgspec.field(default=None, name="@odata.etag")
    number: str = ""
    external_document_number: str = ""
    invoice_date: str | None = None
    due_date: str | None = None
    customer_id: str = ""
    customer_number: str = ""
    # The sell-to customer's name on the invoice (API v2.0 salesInvoice, customerName).
    customer_name: str = ""
    currency_code: str = ""
    # API v2.0 salesInvoice (learn.microsoft.com): totalAmountExcludingTax, totalTaxAmount,
    # totalAmountIncludingTax (what the customer owes) and remainingAmount (what is left of it).
    total_amount_excluding_tax: Decimal | None = None
    total_tax_amount: Decimal | None = None
    total_amount_including_tax: Decimal = Decimal(0)
    remaining_amount: Decimal = Decimal(0)
    status: str = ""
    last_modified_date_time: str | None = None
    sales_invoice_lines: list[BcInvoiceLine] | None = None


class BcPayment(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    customer_id: str = ""
    customer_number: str = ""
    posting_date: str | None = None
    amount: Decimal = Decimal(0)
    applies_to_invoice_id: str | None = None
    applies_to_invoice_number: str = ""
    last_modified_date_time: str | None = None


class BcSubscription(msgspec.Struct, kw_only=True, rename="camel"):
    """A webhook ``subscription`` (API v2.0 "subscriptions resource type": subscriptionId, notificationUrl,
    resource, clientState, expirationDateTime; learn.microsoft.com/dynamics365/business-central/dev-itpro/
    api-reference/v2.0/resources/dynamics_subscriptions)."""

    subscription_id: str
    notification_url: str = ""
    resource: str = ""
    client_state: str = ""
    expiration_date_time: str | None = None
    etag: str | None = msgspec.field(default=None, name="@odata.etag")


def same_subscription_resource(a: str, b: str) -> bool:
    """Whether two subscription resources name the same collection: Business Central takes a relative or
    an absolute URL (``/api/v2.0/companies(id)/salesInvoices`` or ``https://.../api/v2.0/...``), and GUIDs
    and entity set names are compared without regard to case."""

    def tail(resource: str) -> str:
        return resource.rsplit("/api/v2.0/", 1)[-1].lstrip("/").rstrip("/").lower()

    return tail(a) == tail(b)


class ODataPage(msgspec.Struct, Generic[_T], kw_only=True):
    value: list[_T]
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")
    count: int | None = msgspec.field(default=None, name="@odata.count")


class _ErrorDetail(msgspec.Struct, kw_only=True):
    code: str = ""
    message: str = ""


class _ErrorDocument(msgspec.Struct, kw_only=True):
    error: _ErrorDetail


class BcError(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    message: str


def decode_page(content: bytes, item_type: type[_T]) -> ODataPage[_T]:
    """An OData collection of ``item_type``; raises ``msgspec.DecodeError``/``ValueError`` when malformed."""
    return msgspec.json.decode(content, type=ODataPage[item_type])  # type: ignore[valid-type]


def decode_error(content: bytes) -> BcError | None:
    """``{"error": {"code", "message"}}`` without the "CorrelationId: ..." Business Central appends."""
    try:
        document = msgspec.json.decode(content, type=_ErrorDocument)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    message = re.sub(r"\s+CorrelationId:\s+[0-9a-fA-F-]+\.?\s*$", "", document.error.message)
    return BcError(code=document.error.code, message=message)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """A request body with ``Decimal`` money as JSON numbers, which is what Business Central takes."""
    return _ENCODER.encode(body)


# --- keys and literals ----------------------------------------------------------------------------------


def business_key(value: str, max_length: int = CODE_LENGTH) -> str:
    """The ``Code`` value Stratum keys a record by: ``value`` uppercased when it fits ``max_length`` (and has
    only letters, digits and ``_:.-``), else ``X`` + a base32 SHA-256 prefix of it, always the same."""
    if 0 < len(value) <= max_length and _CODE_SAFE.fullmatch(value):
        return value.upper()
    digest = base64.b32encode(hashlib.sha256(value.encode()).digest()).decode().rstrip("=")
    return "X" + digest[: max_length - 1]


def crm_id_from_number(number: str) -> str | None:
    """The Salesforce id a customer or project ``number`` was made from, its case restored from the id's
    checksum suffix; None for any number that is not an uppercased 18-character Salesforce id."""
    if not _SALESFORCE_ID.fullmatch(number):
        return None
    chars = list(number[:15])
    for block, flag in enumerate(number[15:]):
        bits = _SALESFORCE_CASE_ALPHABET.index(flag)
        for offset in range(5):
            index = block * 5 + offset
            if bits & (1 << offset):
                if not chars[index].isalpha():
                    return None  # a digit cannot have been uppercase: not a Salesforce id
            else:
                chars[index] = chars[index].lower()
    return "".join(chars) + number[15:]


def is_guid(value: str) -> bool:
    return _GUID.fullmatch(value) is not None


def odata_quote(text: str) -> str:
    """``text`` as an OData string literal: single quotes, a quote inside doubled. The one quoting function
    every ``$filter`` value goes through."""
    return "'" + text.replace("'", "''") + "'"


def odata_datetime(moment: dt.datetime) -> str:
    """A ``DateTimeOffset`` literal in UTC (``2026-03-02T09:30:00Z``)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in a filter")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def parse_bc_datetime(value: str | None) -> dt.datetime | None:
    """Business Central's ``lastModifiedDateTime`` (``2026-03-02T09:30:00.123Z``), None if absent or the
    zero date (``0001-01-01T00:00:00Z``) it shows for never."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = re.match(r"\d*", rest)
        fraction = digits.group() if digits else ""
        text = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _date(value: str | None) -> dt.date | None:
    if not value or value.startswith("0001-01-01"):
        return None
    return dt.date.fromisoformat(value[:10])


def _text(value: str | None) -> str | None:
    return value.strip() or None if value else None


def country_code(country: str | None) -> str | None:
    """A country as Business Central's two-letter country/region code, None if it cannot tell."""
    if not country or not country.strip():
        return None
    text = country.strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRIES.get(text.casefold())


# --- customers -----------------------------------------------------------------------------------------


def customer_from_bc(
    record: BcCustomer,
    *,
    legal_entity: str | None,
    crm_id: str | None = None,
    tax_jurisdiction: str | None = None,
) -> Customer:
    """The canonical customer for a Business Central ``customer``; ``crm_id`` when the caller knows it,
    ``tax_jurisdiction`` the code of the tax area its ``taxAreaId`` names."""
    street = ", ".join(part for part in (record.address_line1.strip(), record.address_line2.strip()) if part)
    address = Address(
        street=street or None,
        city=_text(record.city),
        postal_code=_text(record.postal_code),
        region=_text(record.state),
        country=_text(record.country),
    )
    return Customer(
        id=record.id,
        name=_text(record.display_name) or record.number or record.id,
        legal_entity=legal_entity,
        tax_jurisdiction=tax_jurisdiction,
        tax_id=_text(record.tax_registration_number),
        website=_text(record.website),
        currency=_text(record.currency_code),
        billing_address=address if address != Address() else None,
        updated_at=parse_bc_datetime(record.last_modified_date_time),
        system_ids=SystemIds(erp=record.id, crm=crm_id or crm_id_from_number(record.number)),
        credit_hold=credit_hold(record.blocked),
    )


def credit_hold(blocked: str | None) -> bool | None:
    """Whether ``blocked`` stops invoicing: ``Invoice`` and ``All`` do; blank (``" "``, on the wire the
    enum member ``_x0020_``) and ``Ship`` do not; None when the customer was read without it."""
    if blocked is None:
        return None
    return blocked.strip().lower() in _CREDIT_HOLD


def _address_fields(address: Address | None) -> dict[str, str]:
    if address is None:
        return {}
    fields: dict[str, str] = {}
    if address.street:
        first, _, second = address.street.partition("\n")
        fields["addressLine1"] = first.strip()[:100]
        if second.strip():
            fields["addressLine2"] = second.strip().replace("\n", ", ")[:50]
    if address.city:
        fields["city"] = address.city[:30]
    if address.postal_code:
        fields["postalCode"] = address.postal_code[:20]
    if address.region:
        fields["state"] = address.region[:30]
    country = country_code(address.country)
    if country:
        fields["country"] = country
    return fields


def _currency_field(currency: str | None, local_currency: str) -> str | None:
    # Business Central writes the local currency as blank; a company's currency table need not hold it.
    if not currency:
        return None
    return "" if currency.upper() == local_currency.upper() else currency.upper()


def customer_create_body(
    command: CustomerUpsert, *, number: str, local_currency: str, tax_area_id: str | None = None
) -> dict[str, Any]:
    """The ``POST customers`` body for a CRM account Business Central does not have yet: everything.
    ``tax_area_id`` is the id of the tax area whose code is the account's tax jurisdiction."""
    body: dict[str, Any] = {"number": number, "displayName": command.name[:100], "type": "Company"}
    currency = _currency_field(command.currency, local_currency)
    if currency is not None:
        body["currencyCode"] = currency
    if command.tax_id:
        body["taxRegistrationNumber"] = command.tax_id[:20]
    if tax_area_id is not None:
        body["taxAreaId"] = tax_area_id
    if command.website:
        body["website"] = command.website[:80]
    body.update(_address_fields(command.billing_address))
    return body


def customer_update_body(
    command: CustomerUpsert, existing: BcCustomer, *, tax_area_id: str | None = None
) -> dict[str, Any]:
    """The ``PATCH`` body applying survivorship to a customer Business Central has (empty: nothing to do).

    The CRM owns the name: always written. The ERP owns billing and tax: the tax registration number, tax
    area, web address and address are written only where Business Central has none yet, and the currency never
    (Business Central shows the local currency for blank, so "none yet" cannot be told; it was set on
    create). Business Central's API keeps no customer hierarchy, so the CRM parent is not written."""
    body: dict[str, Any] = {}
    if existing.display_name != command.name[:100]:
        body["displayName"] = command.name[:100]
    if command.tax_id and not existing.tax_registration_number.strip():
        body["taxRegistrationNumber"] = command.tax_id[:20]
    if tax_area_id is not None and not existing.has_tax_area:
        body["taxAreaId"] = tax_area_id
    if command.website and not existing.website.strip():
        body["website"] = command.website[:80]
    if not (existing.address_line1.strip() or existing.city.strip()):
        body.update(_address_fields(command.billing_address))
    return body


# --- projects ------------------------------------------------------------------------------------------


def project_from_bc(
    record: BcProject, *, legal_entity: str | None, external_key: str | None = None
) -> Project:
    """The canonical project for a Business Central ``project``. The API's project has only a number and
    a name: its status reads active, and customer, currency and dates are not known here."""
    return Project(
        id=record.id,
        name=_text(record.display_name) or record.number or record.id,
        status=ProjectStatus.ACTIVE,
        external_key=external_key or crm_id_from_number(record.number),
        legal_entity=legal_entity,
        system_ids=SystemIds(erp=record.id),
    )


def project_body(command: ProjectCreate, *, number: str) -> dict[str, Any]:
    return {"number": number, "displayName": command.name[:100]}


# --- invoices ------------------------------------------------------------------------------------------


def invoice_status(record: BcInvoice) -> InvoiceStatus:
    """Business Central's status and remaining amount as the canonical status."""
    status = record.status.replace(" ", "").lower()
    if status in ("draft", "inreview"):
        return InvoiceStatus.DRAFT
    if status in ("canceled", "cancelled", "corrective"):
        return InvoiceStatus.VOID
    if status == "paid" or record.remaining_amount <= 0:
        return InvoiceStatus.PAID
    if record.remaining_amount < record.total_amount_including_tax:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.POSTED


def invoice_from_bc(
    record: BcInvoice,
    *,
    local_currency: str,
    external_key: str | None = None,
    today: dt.date | None = None,
    credit_memo_id: str | None = None,
    legal_entity: str | None = None,
) -> Invoice:
    """The canonical invoice for a Business Central ``salesInvoice`` (lines, with their source ids, when it
    was read expanded): ``total`` is ``totalAmountIncludingTax`` (gross), ``subtotal``
    ``totalAmountExcludingTax`` (net, the lines' sum) and ``tax`` ``totalTaxAmount``. ``today`` (UTC;
    default now) decides ``overdue``: a posted invoice with a balance left whose due date has passed.
    ``credit_memo_id``: the credit memo a cancelled invoice was credited by. ``legal_entity``: the one whose
    books the company keeps (a company is one legal entity; the adapter's configuration says which)."""
    currency = (record.currency_code or local_currency).upper()
    status = invoice_status(record)
    balance = record.total_amount_including_tax if status is InvoiceStatus.DRAFT else record.remaining_amount
    balance = max(balance, Decimal(0))
    lines = [
        InvoiceLine(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount_excluding_tax,
            source_ids=source_ids,
        )
        for line, source_ids in source_ids_by_line(record.sales_invoice_lines or [])
    ]
    due_date = _date(record.due_date)
    today = today or dt.datetime.now(dt.UTC).date()
    open_status = status in (InvoiceStatus.POSTED, InvoiceStatus.PARTIALLY_PAID)
    overdue = open_status and balance > 0 and due_date is not None and due_date < today
    return Invoice(
        id=record.id,
        number=_text(record.number),
        customer_id=record.customer_id,
        status=status,
        currency=currency,
        total=Money(amount=record.total_amount_including_tax, currency=currency),
        balance=Money(amount=balance, currency=currency),
        issue_date=_date(record.invoice_date),
        due_date=due_date,
        external_key=external_key or written_key(record) or _text(record.external_document_number),
        legal_entity=legal_entity,
        lines=lines,
        updated_at=parse_bc_datetime(record.last_modified_date_time),
        system_ids=SystemIds(erp=record.id),
        overdue=overdue,
        credit_memo_id=credit_memo_id if status is InvoiceStatus.VOID else None,
        subtotal=_money_or_none(record.total_amount_excluding_tax, currency),
        tax=_money_or_none(record.total_tax_amount, currency),
        customer_name=_text(record.customer_name),
    )


def _money_or_none(amount: Decimal | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def source_comment_lines(source_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The ``Comment`` lines that carry an invoice line's source ids, to follow it: the ids joined by commas
    (an id never has one: ``RecordId``), cut into slices that fit a line's 100-character description."""
    joined = ",".join(source_ids)
    return [
        {"lineType": "Comment", "description": SOURCE_PREFIX + joined[start : start + _SOURCE_SLICE]}
        for start in range(0, len(joined), _SOURCE_SLICE)
    ]


def source_ids_by_line(lines: Sequence[BcInvoiceLine]) -> list[tuple[BcInvoiceLine, list[str]]]:
    """The invoice's lines that are not comments, in order, each with the source ids of the `SOURCE_PREFIX`
    comment lines that follow it (other comments, e.g. the memo or a user's notes, are left out)."""
    found: list[tuple[BcInvoiceLine, list[str]]] = []
    trail: list[str] = []
    for line in sorted(lines, key=lambda line: line.sequence):
        if line.line_type != "Comment":
            if found:
                found[-1] = (found[-1][0], _split_ids(trail))
            found.append((line, []))
            trail = []
        elif found and line.description.startswith(SOURCE_PREFIX):
            trail.append(line.description[len(SOURCE_PREFIX) :])
    if found:
        found[-1] = (found[-1][0], _split_ids(trail))
    return found


def _split_ids(slices: list[str]) -> list[str]:
    return [source_id for source_id in "".join(slices).split(",") if source_id]


def written_key(record: BcInvoice) -> str | None:
    """The external key Stratum wrote on the invoice (its first line, `KEY_PREFIX` + key), when that line
    is there and the key is the one its ``externalDocumentNumber`` was made from; else None."""
    lines = record.sales_invoice_lines or []
    if not lines or lines[0].line_type != "Comment" or not lines[0].description.startswith(KEY_PREFIX):
        return None
    key = lines[0].description[len(KEY_PREFIX) :]
    stored = record.external_document_number.upper()
    return key if key and business_key(key, EXTERNAL_DOCUMENT_NUMBER_LENGTH) == stored else None


def invoice_body(
    command: InvoiceCreate, *, key: str, revenue_account: str, local_currency: str
) -> dict[str, Any]:
    """The ``POST salesInvoices`` body: header and lines in one deep insert, so an invoice never exists
    without its lines (nor a line without its trail). Lines post to the G/L ``revenue_account`` with the
    command's ``tax_code`` as ``taxCode`` (the VAT product posting group in a VAT company, the tax group
    in a sales-tax one; none: the G/L account's). The memo leads as comment lines; each line's source ids
    follow it as comment lines (`source_comment_lines`)."""
    lines: list[dict[str, Any]] = []
    if command.external_key != key:
        # What the Code field cannot keep (case, or a key over 35 characters), kept whole (at most 80
        # characters: one line) to answer the key as Stratum gave it.
        lines.append({"lineType": "Comment", "description": KEY_PREFIX + command.external_key})
    memo = (command.memo or "").strip()
    for start in range(0, len(memo), _LINE_DESCRIPTION_LENGTH):
        lines.append({"lineType": "Comment", "description": memo[start : start + _LINE_DESCRIPTION_LENGTH]})
    for line in command.lines:
        body: dict[str, Any] = {
            "lineType": "Account",
            "lineObjectNumber": revenue_account,
            "description": line.description[:_LINE_DESCRIPTION_LENGTH],
            "quantity": line.quantity,
            "unitPrice": line.unit_price,
        }
        if command.tax_code is not None:
            body["taxCode"] = command.tax_code.upper()
        lines.append(body)
        lines.extend(source_comment_lines(line.source_ids))
    for sequence, line_body in enumerate(lines, start=1):
        line_body["sequence"] = sequence * 10000  # the order read back is the order written
    return {
        "externalDocumentNumber": key,
        "customerId": command.customer_id,
        "invoiceDate": command.issue_date.isoformat(),
        "postingDate": command.issue_date.isoformat(),
        "dueDate": command.due_date.isoformat(),
        "currencyCode": _currency_field(command.currency, local_currency) or "",
        "salesInvoiceLines": lines,
    }


def invoice_query(
    *, customer_id: str | None, status: InvoiceStatus | None, modified_since: dt.datetime | None
) -> tuple[str | None, Callable[[BcInvoice], bool] | None]:
    """The ``$filter`` for an invoice listing, and a predicate for what OData cannot say: an open invoice
    is "posted" or "partially paid" by comparing two of its amounts, which a filter cannot do."""
    conditions: list[str] = []
    refine: Callable[[BcInvoice], bool] | None = None
    if customer_id is not None:
        conditions.append(f"customerId eq {customer_id}")  # a GUID literal, checked by the caller
    if status is not None:
        server = {
            InvoiceStatus.DRAFT: "(status eq 'Draft' or status eq 'In Review')",
            InvoiceStatus.POSTED: "status eq 'Open'",
            InvoiceStatus.PARTIALLY_PAID: "status eq 'Open'",
            # An open invoice with nothing remaining is paid too; Business Central refuses ``or`` across
            # two properties ("Known limitations with Business Central OData"), so the amount is checked here.
            InvoiceStatus.PAID: "(status eq 'Paid' or status eq 'Open')",
            InvoiceStatus.VOID: "(status eq 'Canceled' or status eq 'Corrective')",
        }[status]
        conditions.append(server)
        if status in (InvoiceStatus.POSTED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID):
            wanted = status
            refine = lambda record: invoice_status(record) is wanted  # noqa: E731
    if modified_since is not None:
        conditions.append(f"lastModifiedDateTime gt {odata_datetime(modified_since)}")
    return (" and ".join(conditions) or None), refine


# --- payments ------------------------------------------------------------------------------------------


def payment_from_bc(record: BcPayment, *, currency: str) -> Payment:
    """The canonical payment for a ``customerPayment``. Payment-journal amounts credit the customer, so
    Business Central writes them negative; the canonical amount is what was paid."""
    posted = _date(record.posting_date) or dt.date.min
    invoice_ids = [record.applies_to_invoice_id] if record.applies_to_invoice_id else []
    invoice_ids = [invoice_id for invoice_id in invoice_ids if invoice_id and not _zero_guid(invoice_id)]
    amount = Money(amount=abs(record.amount), currency=currency.upper())
    return Payment(
        id=record.id,
        customer_id=record.customer_id,
        date=posted,
        amount=amount,
        invoice_ids=invoice_ids,
        # A payment journal line applies to one invoice (appliesToInvoiceId, learn.microsoft.com
        # api-reference/v2.0/resources/dynamics_customerpayment): all of its amount went there.
        applications=[PaymentApplication(invoice_id=invoice_id, amount=amount) for invoice_id in invoice_ids],
        system_ids=SystemIds(erp=record.id),
        updated_at=parse_bc_datetime(record.last_modified_date_time),
    )


def _zero_guid(value: str) -> bool:
    return value.replace("-", "").strip("0") == ""


# --- billing schedules ---------------------------------------------------------------------------------

SCHEDULE_KEY_LENGTH = 10
MAX_SCHEDULE_LINES = 36**2 - 1  # the line count travels in the id as at most two base-36 digits
_MODEL_CODES: Mapping[BillingModel, str] = {
    BillingModel.TIME_AND_MATERIALS: "T",
    BillingModel.FIXED_FEE: "F",
    BillingModel.MILESTONE: "M",
    BillingModel.RETAINER: "R",
}
_MODELS = {code: model for model, code in _MODEL_CODES.items()}
_SCHEDULE_ID = re.compile(
    rf"bs\.([TFMR])\.([A-Z]{{3}})\.([0-9a-z]{{1,2}})\.([A-Z2-7]{{{SCHEDULE_KEY_LENGTH}}})\.([A-Za-z0-9_-]{{22}})"
)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class ScheduleRef(msgspec.Struct, kw_only=True, frozen=True):
    """What a Business Central billing schedule id says: enough to find and rebuild the schedule."""

    billing_model: BillingModel
    currency: str
    line_count: int
    key: str
    project_id: str


def schedule_key(external_key: str) -> str:
    """The schedule's share of its drafts' ``externalDocumentNumber``: a base32 SHA-256 prefix of its
    external key (uppercase, as Business Central ``Code`` fields are), always the same."""
    digest = base64.b32encode(hashlib.sha256(external_key.encode()).digest()).decode()
    return digest[:SCHEDULE_KEY_LENGTH]


def schedule_document_number(key: str, line_number: int) -> str:
    """``{key}#{n}``: the draft invoice of the schedule's ``n``th line (from 1); at most 15 characters."""
    return f"{key}#{line_number}"


def schedule_line_number(record: BcInvoice, key: str) -> int | None:
    """The schedule line a sales invoice is the draft of, None when it is no line of the schedule ``key``."""
    number = record.external_document_number.upper()
    prefix = f"{key}#"
    if not number.startswith(prefix) or not number[len(prefix) :].isdigit():
        return None
    line = int(number[len(prefix) :])
    return line if line >= 1 else None


def encode_schedule_id(
    *, billing_model: BillingModel, currency: str, line_count: int, key: str, project_id: str
) -> str:
    """``bs.{model}.{currency}.{line count, base 36}.{key}.{project GUID, base64url}``: at most 45
    characters of ``[A-Za-z0-9_.-]`` (no ``:``, which prefixes ids by ERP), all a read needs."""
    if not 0 <= line_count <= MAX_SCHEDULE_LINES:
        raise ValueError(f"a schedule has at most {MAX_SCHEDULE_LINES} lines")
    count = _BASE36[line_count // 36] + _BASE36[line_count % 36] if line_count >= 36 else _BASE36[line_count]
    project = base64.urlsafe_b64encode(uuid.UUID(project_id).bytes).decode().rstrip("=")
    return f"bs.{_MODEL_CODES[billing_model]}.{currency.upper()}.{count}.{key}.{project}"


def decode_schedule_id(schedule_id: str) -> ScheduleRef | None:
    """The reference in a schedule id made by `encode_schedule_id`; None for anything else."""
    match = _SCHEDULE_ID.fullmatch(schedule_id)
    if match is None:
        return None
    model, currency, count, key, project = match.groups()
    if len(count) == 2 and count[0] == "0":
        return None  # not how a count is written: one id per schedule
    try:
        project_id = str(uuid.UUID(bytes=base64.urlsafe_b64decode(project + "==")))
    except (ValueError, binascii.Error):
        return None
    if base64.urlsafe_b64encode(uuid.UUID(project_id).bytes).decode().rstrip("=") != project:
        return None
    return ScheduleRef(
        billing_model=_MODELS[model],
        currency=currency,
        line_count=int(count, 36),
        key=key,
        project_id=project_id,
    )


def schedule_invoice_body(
    command: BillingScheduleCreate,
    line_number: int,
    *,
    key: str,
    customer_id: str,
    revenue_account: str,
    local_currency: str,
) -> dict[str, Any]:
    """The ``POST salesInvoices`` body of the draft for the schedule's ``line_number``th line (from 1):
    dated at the line's date, one G/L line on ``revenue_account`` for the line's amount."""
    line = command.lines[line_number - 1]
    if line.amount is None:
        raise ValueError("a schedule line without an amount cannot become a draft invoice")
    return {
        "externalDocumentNumber": schedule_document_number(key, line_number),
        "customerId": customer_id,
        "invoiceDate": line.date.isoformat(),
        "postingDate": line.date.isoformat(),
        "dueDate": line.date.isoformat(),
        "currencyCode": _currency_field(command.currency, local_currency) or "",
        "salesInvoiceLines": [
            {
                "lineType": "Account",
                "lineObjectNumber": revenue_account,
                "description": line.description[:_LINE_DESCRIPTION_LENGTH],
                "quantity": Decimal(1),
                "unitPrice": line.amount,
            }
        ],
    }


def schedule_line_from_bc(record: BcInvoice) -> BillingScheduleLine:
    """The schedule line a draft (or, once posted, an invoice) stands for: its date, its first G/L line's
    description, its amount before tax. The milestone name is not kept in Business Central."""
    lines = [line for line in record.sales_invoice_lines or [] if line.line_type != "Comment"]
    date = _date(record.invoice_date)
    if date is None:
        raise ValueError("a schedule's invoice has no invoice date")
    amount = sum((line.amount_excluding_tax for line in lines), Decimal(0))
    description = next((line.description for line in lines if line.description.strip()), "") or (
        record.external_document_number
    )
    return BillingScheduleLine(date=date, description=description, amount=amount if amount > 0 else None)
