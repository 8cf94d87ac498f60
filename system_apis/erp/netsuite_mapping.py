"""NetSuite records and SuiteQL rows <-> canonical ERP objects: NetSuite's field names live here only.

Decoding is tolerant (NetSuite accounts always carry more fields than we read; unknown ones are ignored)
and exact: every amount is a ``Decimal`` read straight from the JSON text, whether NetSuite sent a record
field as a JSON number (``"total": 29800.0``) or a SuiteQL value as a string (``"foreigntotal": ".5"``).
Bodies we send encode ``Decimal`` as a JSON number written from its exact text, never via a float.

Every value that enters a SuiteQL statement goes through `suiteql_quote` and every value in a record-list
``q`` filter through `q_quote`; the statement builders here are the only places queries are written.

Invoice status, NetSuite -> canonical (`invoice_status`):

===============================================  =====================
NetSuite ``status`` (SuiteQL code: display name)  canonical
===============================================  =====================
``A``: Open, nothing paid yet                     ``posted``
``A``: Open, ``amountRemaining`` < ``total``      ``partially_paid``
``B``: Paid In Full                               ``paid``
``D``: Pending Approval                           ``draft``
``E``: Rejected (by approval; never posted)       ``void``
``V``: Voided                                     ``void``
anything else                                     by amounts: nothing due ``paid``, part due
                                                  ``partially_paid``, else ``posted``
===============================================  =====================

NetSuite has no "partially paid" status of its own: a part-paid invoice stays Open, so the amounts decide
(a display name "Partially Paid", as some accounts customise it, reads the same way).

Functions are pure: no I/O and no clock. Setup data the records point at (currency and subsidiary internal
ids) is passed in as a `SetupLookup`, which the adapter loads from NetSuite once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

import msgspec

from contracts.models.common import Money, SystemIds, is_iso_4217
from contracts.models.crm import Address, BillingModel, Customer
from contracts.models.delivery import Project, ProjectCreate, ProjectStatus
from contracts.models.finance import (
    BillingSchedule,
    BillingScheduleCreate,
    BillingScheduleLine,
    CustomerUpsert,
    Invoice,
    InvoiceCreate,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentApplication,
)
from system_apis.erp.business_central_mapping import country_code

__all__ = [
    "APPROVAL_APPROVED",
    "APPROVAL_PENDING",
    "APPROVAL_REJECTED",
    "NO_CURRENCY",
    "SOURCES_FIELD",
    "AsyncJob",
    "CreditMemoRow",
    "CustomerRow",
    "InvoiceRow",
    "NetSuiteAddress",
    "NetSuiteAddressBook",
    "NetSuiteAddressBookLine",
    "NetSuiteBillingSchedule",
    "NetSuiteCustomer",
    "NetSuiteErrorBody",
    "NetSuiteErrorDetail",
    "NetSuiteInvoice",
    "NetSuiteJob",
    "NetSuiteLink",
    "NetSuitePayment",
    "NetSuiteRef",
    "PaymentRow",
    "RecordList",
    "SetupLookup",
    "SetupRow",
    "SuiteQlPage",
    "billing_model_from_schedule_type",
    "billing_schedule_body",
    "billing_schedule_from_record",
    "credit_hold",
    "credit_memo_query",
    "currency_query",
    "customer_from_record",
    "customer_from_row",
    "customer_query",
    "customer_upsert_body",
    "decode_async_job",
    "decode_billing_schedule",
    "decode_customer",
    "decode_error",
    "decode_invoice",
    "decode_job",
    "decode_payment",
    "decode_record_list",
    "decode_suiteql_page",
    "encode_body",
    "invoice_body",
    "invoice_from_record",
    "invoice_from_row",
    "invoice_query",
    "invoice_status",
    "is_overdue",
    "job_body",
    "join_source_ids",
    "line_amount",
    "parse_netsuite_datetime",
    "payment_from_record",
    "payment_query",
    "project_from_record",
    "project_status",
    "q_quote",
    "record_id_from_url",
    "split_source_ids",
    "suiteql_quote",
]

#: The transaction-column custom field (type Long Text, applied to sale items) where an invoice line keeps
#: the billable items it bills, comma-separated (README "NetSuite setup"; ``stratum vendors check``).
SOURCES_FIELD = "custcol_stratum_sources"

# ISO 4217's code for "no currency": what a schedule not attached to any project is billed in.
NO_CURRENCY = "XXX"
_CENT = Decimal("0.01")
_PERCENT_SCALE = Decimal("0.0001")
_HUNDRED = Decimal(100)


# --- wire shapes -----------------------------------------------------------------------------------------


class NetSuiteLink(msgspec.Struct, kw_only=True, frozen=True):
    rel: str = ""
    href: str = ""


class NetSuiteRef(msgspec.Struct, kw_only=True, frozen=True):
    """A reference (``{"links", "id", "refName"}``) or a select-list value (``{"id", "refName"}``)."""

    id: str | None = None
    ref_name: str | None = msgspec.field(default=None, name="refName")


class _Sublist(msgspec.Struct, kw_only=True, frozen=True):
    # A sublist is only ``{"links": [...]}`` unless the record was read with expandSubResources=true.
    items: list[dict[str, Any]] = []


class NetSuiteAddress(msgspec.Struct, kw_only=True, frozen=True):
    """The ``addressBookAddress`` subrecord of an address book line."""

    addr1: str | None = None
    addr2: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: NetSuiteRef | str | None = None


class NetSuiteAddressBookLine(msgspec.Struct, kw_only=True, frozen=True):
    default_billing: bool = msgspec.field(default=False, name="defaultBilling")
    address: NetSuiteAddress | None = msgspec.field(default=None, name="addressBookAddress")


class NetSuiteAddressBook(msgspec.Struct, kw_only=True, frozen=True):
    # Only ``{"links": [...]}`` unless the customer was read with expandSubResources=true.
    items: list[NetSuiteAddressBookLine] | None = None


class NetSuiteCustomer(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    external_id: str | None = msgspec.field(default=None, name="externalId")
    entity_id: str | None = msgspec.field(default=None, name="entityId")
    company_name: str | None = msgspec.field(default=None, name="companyName")
    subsidiary: NetSuiteRef | None = None
    currency: NetSuiteRef | None = None
    parent: NetSuiteRef | None = None
    url: str | None = None
    vat_reg_number: str | None = msgspec.field(default=None, name="vatRegNumber")
    tax_item: NetSuiteRef | None = msgspec.field(default=None, name="taxItem")
    address_book: NetSuiteAddressBook | None = msgspec.field(default=None, name="addressBook")
    # Credit Hold (``creditHoldOverride``: AUTO, ON, OFF), the credit limit and the open balance.
    credit_hold_override: NetSuiteRef | None = msgspec.field(default=None, name="creditHoldOverride")
    credit_limit: Decimal | None = msgspec.field(default=None, name="creditLimit")
    balance: Decimal | None = None
    is_inactive: bool = msgspec.field(default=False, name="isInactive")
    last_modified_date: str | None = msgspec.field(default=None, name="lastModifiedDate")


class NetSuiteJob(msgspec.Struct, kw_only=True, frozen=True):
    """A ``job``: NetSuite's project record."""

    id: str
    external_id: str | None = msgspec.field(default=None, name="externalId")
    entity_id: str | None = msgspec.field(default=None, name="entityId")
    company_name: str | None = msgspec.field(default=None, name="companyName")
    parent: NetSuiteRef | None = None
    subsidiary: NetSuiteRef | None = None
    currency: NetSuiteRef | None = None
    start_date: dt.date | None = msgspec.field(default=None, name="startDate")
    projected_end_date: dt.date | None = msgspec.field(default=None, name="projectedEndDate")
    job_billing_type: NetSuiteRef | None = msgspec.field(default=None, name="jobBillingType")
    billing_schedule: NetSuiteRef | None = msgspec.field(default=None, name="billingSchedule")
    entity_status: NetSuiteRef | None = msgspec.field(default=None, name="entityStatus")
    project_manager: NetSuiteRef | None = msgspec.field(default=None, name="projectManager")
    is_inactive: bool = msgspec.field(default=False, name="isInactive")
    last_modified_date: str | None = msgspec.field(default=None, name="lastModifiedDate")


class NetSuiteMilestone(msgspec.Struct, kw_only=True, frozen=True):
    milestone_date: dt.date | None = msgspec.field(default=None, name="milestoneDate")
    # A share of the project's amount, in percent (NetSuite's "Amount (%)").
    milestone_amount: Decimal | None = msgspec.field(default=None, name="milestoneAmount")
    comments: str | None = None
    milestone_completed: bool = msgspec.field(default=False, name="milestoneCompleted")


class _Milestones(msgspec.Struct, kw_only=True, frozen=True):
    items: list[NetSuiteMilestone] = []


class NetSuiteBillingSchedule(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str | None = None
    external_id: str | None = msgspec.field(default=None, name="externalId")
    schedule_type: NetSuiteRef | None = msgspec.field(default=None, name="scheduleType")
    frequency: NetSuiteRef | None = None
    project: NetSuiteRef | None = None
    milestones: _Milestones | None = None
    is_inactive: bool = msgspec.field(default=False, name="isInactive")
    last_modified_date: str | None = msgspec.field(default=None, name="lastModifiedDate")


class NetSuiteItemLine(msgspec.Struct, kw_only=True, frozen=True):
    description: str | None = None
    quantity: Decimal | None = None
    rate: Decimal | None = None
    amount: Decimal | None = None
    tax_code: NetSuiteRef | None = msgspec.field(default=None, name="taxCode")
    sources: str | None = msgspec.field(default=None, name=SOURCES_FIELD)


class _ItemLines(msgspec.Struct, kw_only=True, frozen=True):
    items: list[NetSuiteItemLine] = []


class NetSuiteInvoice(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    tran_id: str | None = msgspec.field(default=None, name="tranId")
    external_id: str | None = msgspec.field(default=None, name="externalId")
    entity: NetSuiteRef | None = None
    job: NetSuiteRef | None = None
    # The subsidiary whose books hold the invoice (OneWorld): the legal entity, by the account's setup.
    subsidiary: NetSuiteRef | None = None
    currency: NetSuiteRef | None = None
    tran_date: dt.date | None = msgspec.field(default=None, name="tranDate")
    due_date: dt.date | None = msgspec.field(default=None, name="dueDate")
    status: NetSuiteRef | None = None
    approval_status: NetSuiteRef | None = msgspec.field(default=None, name="approvalStatus")
    memo: str | None = None
    # The invoice record's body totals (REST API Browser, invoice; SuiteScript Records Browser: subtotal,
    # taxtotal, total): ``subtotal`` the item lines' sum, ``taxTotal`` the tax on it, ``total`` what the
    # customer owes.
    subtotal: Decimal | None = None
    tax_total: Decimal | None = msgspec.field(default=None, name="taxTotal")
    total: Decimal | None = None
    amount_paid: Decimal | None = msgspec.field(default=None, name="amountPaid")
    amount_remaining: Decimal | None = msgspec.field(default=None, name="amountRemaining")
    item: _ItemLines | None = None
    last_modified_date: str | None = msgspec.field(default=None, name="lastModifiedDate")


class NetSuiteApplyLine(msgspec.Struct, kw_only=True, frozen=True):
    doc: NetSuiteRef | None = None
    apply: bool = False
    amount: Decimal | None = None


class _ApplyLines(msgspec.Struct, kw_only=True, frozen=True):
    items: list[NetSuiteApplyLine] = []


class NetSuitePayment(msgspec.Struct, kw_only=True, frozen=True):
    """A ``customerPayment``."""

    id: str
    customer: NetSuiteRef | None = None
    currency: NetSuiteRef | None = None
    tran_date: dt.date | None = msgspec.field(default=None, name="tranDate")
    payment: Decimal | None = None
    apply: _ApplyLines | None = None
    last_modified_date: str | None = msgspec.field(default=None, name="lastModifiedDate")


class RecordList(msgspec.Struct, kw_only=True, frozen=True):
    """``GET record/v1/{type}``: ids only, with ``hasMore`` paging."""

    items: list[NetSuiteRef] = []
    has_more: bool = msgspec.field(default=False, name="hasMore")
    total_results: int | None = msgspec.field(default=None, name="totalResults")


RowT = TypeVar("RowT")


class SuiteQlPage(msgspec.Struct, Generic[RowT], kw_only=True, frozen=True):
    """One page of a SuiteQL result: NetSuite's collection envelope with the selected columns per item."""

    items: list[RowT] = []
    has_more: bool = msgspec.field(default=False, name="hasMore")
    total_results: int | None = msgspec.field(default=None, name="totalResults")


# SuiteQL rows: every value comes back as a string (numbers as ".5", booleans "T"/"F") and NULLs are left
# out, so every column is optional. Dates are selected through TO_CHAR into ISO text (see the queries).


class SetupRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    code: str | None = None


class CustomerRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    companyname: str | None = None
    entityid: str | None = None
    externalid: str | None = None
    subsidiary: str | None = None
    currency: str | None = None
    parent: str | None = None
    url: str | None = None
    vatregnumber: str | None = None
    lastmodified: str | None = None


class InvoiceRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    tranid: str | None = None
    entity: str | None = None
    status: str | None = None
    currency: str | None = None
    externalid: str | None = None
    total: Decimal | None = None
    remaining: Decimal | None = None
    issued: str | None = None
    due: str | None = None
    lastmodified: str | None = None
    creditmemo: str | None = None
    subsidiary: str | None = None
    customername: str | None = None


class PaymentRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str


class CreditMemoRow(msgspec.Struct, kw_only=True, frozen=True):
    id: str


class AsyncJobTask(msgspec.Struct, kw_only=True, frozen=True):
    links: list[NetSuiteLink] = []


class AsyncJob(msgspec.Struct, kw_only=True, frozen=True):
    """``GET async/v1/job/{id}``: ``{completed, progress, task{links}}``."""

    completed: bool
    id: str | None = None
    progress: str | None = None
    task: AsyncJobTask | None = None

    @property
    def failed(self) -> bool:
        return (self.progress or "").lower() in ("failed", "error")

    def task_href(self) -> str | None:
        if self.task is None:
            return None
        return next((link.href for link in self.task.links if link.href), None)


class NetSuiteErrorDetail(msgspec.Struct, kw_only=True, frozen=True):
    detail: str = ""
    error_code: str | None = msgspec.field(default=None, name="o:errorCode")
    error_path: str | None = msgspec.field(default=None, name="o:errorPath")


class NetSuiteErrorBody(msgspec.Struct, kw_only=True, frozen=True):
    """``{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode", "o:errorPath"}]}``."""

    title: str | None = None
    status: int | None = None
    details: list[NetSuiteErrorDetail] = msgspec.field(default_factory=list, name="o:errorDetails")

    @property
    def code(self) -> str | None:
        return next((d.error_code for d in self.details if d.error_code), None)

    @property
    def detail(self) -> str:
        return next((d.detail for d in self.details if d.detail), self.title or "")


# Decoders are built once: building one compiles the type's decoding plan.
_customer_decoder = msgspec.json.Decoder(NetSuiteCustomer)
_job_decoder = msgspec.json.Decoder(NetSuiteJob)
_schedule_decoder = msgspec.json.Decoder(NetSuiteBillingSchedule)
_invoice_decoder = msgspec.json.Decoder(NetSuiteInvoice)
_payment_decoder = msgspec.json.Decoder(NetSuitePayment)
_record_list_decoder = msgspec.json.Decoder(RecordList)
_async_job_decoder = msgspec.json.Decoder(AsyncJob)
_error_decoder = msgspec.json.Decoder(NetSuiteErrorBody)
_page_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
# Decimals go out as JSON numbers written from their exact text (NetSuite's money fields are numbers).
_encoder = msgspec.json.Encoder(decimal_format="number")


def decode_customer(body: bytes) -> NetSuiteCustomer:
    """A ``customer`` record; raises ``msgspec.DecodeError`` (or ``ValidationError``) when unusable."""
    return _customer_decoder.decode(body)


def decode_job(body: bytes) -> NetSuiteJob:
    return _job_decoder.decode(body)


def decode_billing_schedule(body: bytes) -> NetSuiteBillingSchedule:
    return _schedule_decoder.decode(body)


def decode_invoice(body: bytes) -> NetSuiteInvoice:
    return _invoice_decoder.decode(body)


def decode_payment(body: bytes) -> NetSuitePayment:
    return _payment_decoder.decode(body)


def decode_record_list(body: bytes) -> RecordList:
    return _record_list_decoder.decode(body)


def decode_async_job(body: bytes) -> AsyncJob:
    return _async_job_decoder.decode(body)


def decode_suiteql_page(body: bytes, row_type: type[RowT]) -> SuiteQlPage[RowT]:
    """A SuiteQL result page whose items are ``row_type``; raises ``msgspec.DecodeError`` when unusable."""
    decoder = _page_decoders.get(row_type)
    if decoder is None:
        decoder = _page_decoders[row_type] = msgspec.json.Decoder(SuiteQlPage[row_type])  # type: ignore[valid-type]
    page: SuiteQlPage[RowT] = decoder.decode(body)
    return page


def decode_error(body: bytes) -> NetSuiteErrorBody | None:
    """NetSuite's error document, or ``None`` when the body is not one (an HTML error page, say)."""
    try:
        return _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def encode_body(body: Mapping[str, Any]) -> bytes:
    """A request body as JSON, ``Decimal``s as exact JSON numbers."""
    return _encoder.encode(body)


# --- query languages -------------------------------------------------------------------------------------


def suiteql_quote(value: str) -> str:
    """``value`` as a SuiteQL (Oracle SQL) string literal, quotes included: the only way a value enters a
    statement. Oracle has one escape, a doubled quote, so ``x' OR '1'='1`` stays one literal
    (``'x'' OR ''1''=''1'``); backslashes mean nothing and stay as they are."""
    if "\x00" in value:
        # A NUL cannot be in any NetSuite value; refusing it keeps the statement text a valid string.
        raise ValueError("a SuiteQL literal cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


_Q_FORBIDDEN = re.compile(r'["\\\x00-\x1f]')
_DIGITS = re.compile(r"[0-9]{1,18}")  # a NetSuite internal id


def q_quote(value: str) -> str:
    """``value`` as a double-quoted string of the record-list ``q`` filter (``itemId IS "PS-CONSULT"``).

    NetSuite documents no escape inside these quotes, so a value that could end the string early (a double
    quote, a backslash, a control character) is refused with ``ValueError`` rather than guessed at.
    """
    if _Q_FORBIDDEN.search(value):
        raise ValueError("a q filter value cannot contain quotes, backslashes or control characters")
    return f'"{value}"'


def _timestamp_literal(moment: dt.datetime, zone: dt.tzinfo) -> str:
    # SuiteQL reads a TO_TIMESTAMP literal in the account's time zone, so the moment is written as the
    # account's wall-clock time (a naive moment is UTC). Where a DST change repeats an hour, the text is
    # ambiguous and is read as its earlier instant: never later than the moment, so a watermark can re-read
    # part of that hour but never skip a change.
    utc = moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    text = utc.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    return f"TO_TIMESTAMP({suiteql_quote(text)}, 'YYYY-MM-DD HH24:MI:SS')"


_ISO_DATE = "TO_CHAR({column}, 'YYYY-MM-DD')"
_ISO_DATETIME = "TO_CHAR({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"


def currency_query() -> str:
    """The account's currencies: internal id and ISO code (NetSuite's ``symbol``)."""
    return "SELECT id, symbol AS code FROM currency ORDER BY id"


def customer_query(
    *,
    modified_since: dt.datetime | None = None,
    zone: dt.tzinfo = dt.UTC,
    ids: Sequence[str] | None = None,
) -> str:
    """Customers in internal-id order (stable for offset paging), optionally changed since a moment, or
    only those of ``ids`` (NetSuite internal ids: digits only, checked here; never interpolated as text).

    `zone` is the account's time zone, in which SuiteQL reads the moment's literal."""
    conditions: list[str] = []
    if modified_since is not None:
        conditions.append(f"lastmodifieddate >= {_timestamp_literal(modified_since, zone)}")
    if ids is not None:
        if not ids or not all(_DIGITS.fullmatch(i) for i in ids):
            raise ValueError("customer ids must be NetSuite internal ids (digits), at least one")
        # SuiteQL is Oracle SQL: ``IN`` takes a list of literals (numbers here, as ``id`` is an integer).
        conditions.append(f"id IN ({', '.join(str(int(i)) for i in ids)})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # S608: built from constants and suiteql_quote'd literals only.
    return (
        "SELECT id, companyname, entityid, externalid, subsidiary, currency, parent, url, vatregnumber, "  # noqa: S608
        f"{_ISO_DATETIME.format(column='lastmodifieddate')} AS lastmodified FROM customer{where} ORDER BY id"
    )


# The credit memo made from an invoice row (a correlated subquery on ``createdfrom``): a credited invoice
# is Paid In Full to NetSuite but void to Stratum (`void_invoice` credits, REST cannot void).
_CREDIT_MEMO_OF = (
    "(SELECT MIN(c.id) FROM transaction c WHERE c.type = 'CustCred' AND c.createdfrom = transaction.id)"
)
# SuiteQL keeps a transaction's subsidiary on its lines, not its header: the main line's (mainline 'T') is
# the transaction's (Records Catalog, TransactionLine.subsidiary; the Transaction table has no such column).
_SUBSIDIARY_OF = (
    "(SELECT MIN(m.subsidiary) FROM transactionline m WHERE m.transaction = transaction.id "
    "AND m.mainline = 'T')"
)
# The customer's name as `customer_from_row` makes it (company name, else the entity id), read with the
# invoice so a listing names its customers without a second query. Not BUILTIN.DF(entity): that is the
# display name, "entity id + company name" where the account numbers its customers.
_CUSTOMER_NAME_OF = "(SELECT NVL(c.companyname, c.entityid) FROM customer c WHERE c.id = transaction.entity)"

# The SuiteQL conditions that select each canonical status (the inverse of `invoice_status`).
_STATUS_CONDITIONS: Mapping[InvoiceStatus, str] = {
    InvoiceStatus.DRAFT: "status = 'D'",
    InvoiceStatus.POSTED: "status = 'A' AND foreignamountremaining >= foreigntotal",
    InvoiceStatus.PARTIALLY_PAID: "status = 'A' AND foreignamountremaining < foreigntotal",
    InvoiceStatus.PAID: f"status = 'B' AND {_CREDIT_MEMO_OF} IS NULL",
    InvoiceStatus.VOID: f"status IN ('V', 'E') OR (status = 'B' AND {_CREDIT_MEMO_OF} IS NOT NULL)",
}


def invoice_query(
    *,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
    modified_since: dt.datetime | None = None,
    zone: dt.tzinfo = dt.UTC,
) -> str:
    """Invoices (``transaction`` rows of type ``CustInvc``) in internal-id order, filtered; `zone` is the
    account's time zone, in which SuiteQL reads `modified_since`'s literal.

    Raises ``ValueError`` for a status that is not an ``InvoiceStatus`` (nothing else reaches the text).
    """
    conditions = ["type = 'CustInvc'"]
    if customer_id is not None:
        conditions.append(f"entity = {suiteql_quote(customer_id)}")
    if status is not None:
        conditions.append(f"({_STATUS_CONDITIONS[InvoiceStatus(status)]})")
    if modified_since is not None:
        conditions.append(f"lastmodifieddate >= {_timestamp_literal(modified_since, zone)}")
    columns = (
        "id, tranid, entity, status, currency, externalid, foreigntotal AS total, "
        "foreignamountremaining AS remaining, "
        f"{_ISO_DATE.format(column='trandate')} AS issued, {_ISO_DATE.format(column='duedate')} AS due, "
        f"{_ISO_DATETIME.format(column='lastmodifieddate')} AS lastmodified, "
        f"{_CREDIT_MEMO_OF} AS creditmemo, {_SUBSIDIARY_OF} AS subsidiary, "
        f"{_CUSTOMER_NAME_OF} AS customername"
    )
    # S608: constants, suiteql_quote'd literals and an enum-keyed table of constant conditions only.
    return f"SELECT {columns} FROM transaction WHERE {' AND '.join(conditions)} ORDER BY id"  # noqa: S608


def payment_query(
    *,
    customer_id: str | None = None,
    modified_since: dt.datetime | None = None,
    zone: dt.tzinfo = dt.UTC,
) -> str:
    """Customer payments (``CustPymt``) in internal-id order, optionally of one customer and changed since
    a moment (read, like invoices', in the account's time zone `zone`)."""
    conditions = ["type = 'CustPymt'"]
    if customer_id is not None:
        conditions.append(f"entity = {suiteql_quote(customer_id)}")
    if modified_since is not None:
        conditions.append(f"lastmodifieddate >= {_timestamp_literal(modified_since, zone)}")
    return f"SELECT id FROM transaction WHERE {' AND '.join(conditions)} ORDER BY id"  # noqa: S608


def credit_memo_query(invoice_id: str) -> str:
    """The credit memos (``CustCred``) made from an invoice (``createdfrom``), oldest first."""
    return (
        "SELECT id FROM transaction WHERE type = 'CustCred' "  # noqa: S608 - a suiteql_quote'd literal only
        f"AND createdfrom = {suiteql_quote(invoice_id)} ORDER BY id"
    )


# --- setup data ------------------------------------------------------------------------------------------


class SetupLookup(msgspec.Struct, kw_only=True, frozen=True):
    """Currency ISO codes and legal-entity codes by NetSuite internal id, and back."""

    currency_codes: Mapping[str, str] = {}
    legal_entities: Mapping[str, str] = {}

    @classmethod
    def from_rows(cls, currencies: Iterable[SetupRow], legal_entities: Mapping[str, str]) -> SetupLookup:
        """``legal_entities`` maps subsidiary internal ids to legal-entity codes: the account's setup, which
        NetSuite has no standard field for, so it comes from configuration."""
        return cls(
            currency_codes={row.id: row.code.upper() for row in currencies if row.code},
            legal_entities=dict(legal_entities),
        )

    def currency_code(self, currency_id: str | None) -> str | None:
        if currency_id is None:
            return None
        code = self.currency_codes.get(currency_id)
        return code if code is not None and is_iso_4217(code) else None

    def currency_id(self, code: str) -> str | None:
        return next((key for key, value in self.currency_codes.items() if value == code.upper()), None)

    def legal_entity(self, subsidiary_id: str | None) -> str | None:
        return None if subsidiary_id is None else self.legal_entities.get(subsidiary_id)

    def subsidiary_id(self, legal_entity: str) -> str | None:
        return next((key for key, value in self.legal_entities.items() if value == legal_entity), None)


# --- values ----------------------------------------------------------------------------------------------


def parse_netsuite_datetime(value: str | None, zone: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """An aware UTC datetime from NetSuite's ``2026-03-02T09:30:00Z`` or from a SuiteQL ``TO_CHAR`` without
    an offset, which is the account's wall-clock time in `zone` (in an hour a DST change repeats, the
    earlier instant, as `_timestamp_literal` reads it); ``None`` when absent. Raises ``ValueError`` on text
    that is no time."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    return parsed.astimezone(dt.UTC)


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _ref_id(ref: NetSuiteRef | None) -> str | None:
    return None if ref is None else _text(ref.id)


def _money(value: Decimal | None) -> Decimal:
    """A currency amount at cent scale: NetSuite sends ``29800.0`` or ``"29800"`` for the same amount."""
    if value is None:
        return Decimal("0.00")
    try:
        return value.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"amount {value} is not a usable number") from None


def _rate(value: Decimal | None) -> Decimal:
    # Rates may carry more than cents (NetSuite allows several decimals); only widen short ones to cents.
    if value is None:
        return Decimal("0.00")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return _money(value)
    return value


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """A line's amount as NetSuite books it: quantity times rate, rounded half up to cents."""
    return (quantity * unit_price).quantize(_CENT, rounding=ROUND_HALF_UP)


def record_id_from_url(url: str, record_type: str) -> str | None:
    """The internal id at the end of a ``Location`` such as ``.../record/v1/customer/647`` (or an async
    job's ``.../async/v1/job/12``); ``None`` when the URL is not that record type's."""
    match = re.search(rf"/{re.escape(record_type)}/(\d+)/?$", url)
    return match.group(1) if match else None


# --- invoice status --------------------------------------------------------------------------------------

_STATUS_BY_CODE: Mapping[str, InvoiceStatus | None] = {
    "A": None,  # Open: the amounts decide between posted and partially paid
    "B": InvoiceStatus.PAID,
    "D": InvoiceStatus.DRAFT,
    "E": InvoiceStatus.VOID,
    "V": InvoiceStatus.VOID,
}
_STATUS_BY_NAME: Mapping[str, InvoiceStatus | None] = {
    "open": None,
    "partiallypaid": InvoiceStatus.PARTIALLY_PAID,
    "paidinfull": InvoiceStatus.PAID,
    "paid": InvoiceStatus.PAID,
    "pendingapproval": InvoiceStatus.DRAFT,
    "rejected": InvoiceStatus.VOID,
    "voided": InvoiceStatus.VOID,
    "void": InvoiceStatus.VOID,
}


def _status_key(value: str) -> str:
    # SuiteQL's BUILTIN.DF gives "Invoice : Open"; records give "Open"; match ignoring case and spacing.
    name = value.rsplit(":", 1)[-1]
    return re.sub(r"[^a-z]", "", name.casefold())


def invoice_status(
    status_code: str | None, status_name: str | None, *, total: Decimal | None, remaining: Decimal | None
) -> InvoiceStatus:
    """The canonical status for NetSuite's invoice status (code or display name) and its amounts."""
    missing = object()
    decided: InvoiceStatus | object | None = missing
    if status_code:
        decided = _STATUS_BY_CODE.get(status_code.strip().upper(), missing)
    if decided is missing and status_name:
        decided = _STATUS_BY_NAME.get(_status_key(status_name), missing)
    if isinstance(decided, InvoiceStatus):
        return decided
    # Open, or a status we do not know: what is still due says how far it got.
    if remaining is not None and remaining <= 0 and total is not None and total > 0:
        return InvoiceStatus.PAID
    if remaining is not None and total is not None and 0 < remaining < total:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.POSTED


# --- customers -------------------------------------------------------------------------------------------


def _billing_address(record: NetSuiteCustomer) -> Address | None:
    """The default billing address of the address book (the first address when none is marked)."""
    lines = (record.address_book.items if record.address_book else None) or []
    line = next((line for line in lines if line.default_billing), lines[0] if lines else None)
    if line is None or line.address is None:
        return None
    found = line.address
    country = found.country.id if isinstance(found.country, NetSuiteRef) else found.country
    street = "\n".join(part for part in (_text(found.addr1), _text(found.addr2)) if part)
    address = Address(
        street=street or None,
        city=_text(found.city),
        postal_code=_text(found.zip),
        region=_text(found.state),
        country=_text(country),
    )
    return address if address != Address() else None


def credit_hold(record: NetSuiteCustomer) -> bool | None:
    """Whether NetSuite holds the customer's credit: ``creditHoldOverride`` ON holds, OFF does not; AUTO
    (NetSuite's default) lets NetSuite decide from the credit limit, so it holds only when the open
    balance is over the limit (both known; NetSuite help "Customer Credit Holds"); None when the record
    does not say."""
    override = (_ref_id(record.credit_hold_override) or "").upper()
    if override == "ON":
        return True
    if override == "OFF":
        return False
    if override == "AUTO":
        if record.credit_limit is not None and record.balance is not None:
            return record.balance > record.credit_limit
        return False
    return None


def customer_from_record(record: NetSuiteCustomer, setup: SetupLookup) -> Customer:
    """The canonical customer for a NetSuite ``customer`` record; its address needs the record read with
    expandSubResources=true. The tax jurisdiction is the name of its tax item (see `customer_upsert_body`)."""
    return Customer(
        id=record.id,
        name=_text(record.company_name) or _text(record.entity_id) or record.id,
        legal_entity=setup.legal_entity(_ref_id(record.subsidiary)),
        tax_jurisdiction=_text(record.tax_item.ref_name) if record.tax_item else None,
        billing_address=_billing_address(record),
        tax_id=_text(record.vat_reg_number),
        website=_text(record.url),
        currency=setup.currency_code(_ref_id(record.currency)),
        parent_id=_ref_id(record.parent),
        updated_at=parse_netsuite_datetime(record.last_modified_date),
        system_ids=SystemIds(erp=record.id, crm=_text(record.external_id)),
        credit_hold=credit_hold(record),
    )


def customer_from_row(row: CustomerRow, setup: SetupLookup, zone: dt.tzinfo = dt.UTC) -> Customer:
    """The canonical customer for a SuiteQL ``customer`` row (see `customer_query`)."""
    return Customer(
        id=row.id,
        name=_text(row.companyname) or _text(row.entityid) or row.id,
        legal_entity=setup.legal_entity(row.subsidiary),
        tax_id=_text(row.vatregnumber),
        website=_text(row.url),
        currency=setup.currency_code(row.currency),
        parent_id=_text(row.parent),
        updated_at=parse_netsuite_datetime(row.lastmodified, zone),
        system_ids=SystemIds(erp=row.id, crm=_text(row.externalid)),
    )


def customer_upsert_body(
    command: CustomerUpsert,
    existing: NetSuiteCustomer | None,
    *,
    parent_id: str | None,
    setup: SetupLookup,
) -> dict[str, Any]:
    """The ``PUT customer/eid:{crm id}`` body, applying survivorship against the record as it is now.

    The CRM owns the name and the hierarchy: always written (no parent clears NetSuite's). The ERP owns
    billing and tax: subsidiary (legal entity), currency, tax registration number, web address, tax code
    and billing address are written only where the ERP record has none yet (all of them when it is being
    created). ``parent_id`` is the parent's NetSuite internal id, resolved by the caller. Raises
    ``ValueError`` for a legal entity or currency the account does not have. ``existing`` must have been
    read with expandSubResources=true, or its address book looks empty.

    Tax: the customer is ``taxable`` with the tax code of its jurisdiction as ``taxItem`` (legacy tax's
    "Tax Item"), referenced by external id: the firm's tax items carry the ISO 3166-2 code of their
    jurisdiction as external id (``US-NY``, ``GB``, ``DE-BY``). NetSuite answers a jurisdiction with no tax
    item 400 ``INVALID_KEY_OR_REF``: finance must set the tax code up. The address is one ``addressBook``
    line marked ``defaultBilling`` (and ``defaultShipping``), the address in its ``addressBookAddress``
    subrecord, the country as its ISO 3166-1 alpha-2 id (NetSuite's country select list).
    """
    body: dict[str, Any] = {
        "companyName": command.name,
        "parent": {"id": parent_id} if parent_id is not None else None,
    }
    if existing is None:
        body["isPerson"] = False
    if command.legal_entity and (existing is None or _ref_id(existing.subsidiary) is None):
        subsidiary = setup.subsidiary_id(command.legal_entity)
        if subsidiary is None:
            raise ValueError(f"NetSuite has no subsidiary for legal entity {command.legal_entity!r}")
        body["subsidiary"] = {"id": subsidiary}
    if command.currency and (existing is None or _ref_id(existing.currency) is None):
        currency = setup.currency_id(command.currency)
        if currency is None:
            raise ValueError(f"NetSuite has no currency {command.currency!r}")
        body["currency"] = {"id": currency}
    if command.tax_id and (existing is None or _text(existing.vat_reg_number) is None):
        body["vatRegNumber"] = command.tax_id
    if command.website and (existing is None or _text(existing.url) is None):
        body["url"] = command.website
    if command.tax_jurisdiction and (existing is None or existing.tax_item is None):
        body["taxable"] = True
        body["taxItem"] = {"externalId": command.tax_jurisdiction}
    if command.billing_address is not None and (existing is None or _billing_address(existing) is None):
        address = _address_book_address(command.billing_address)
        if address:
            body["addressBook"] = {
                "items": [
                    {
                        "defaultBilling": True,
                        "defaultShipping": True,
                        "label": "Billing",
                        "addressBookAddress": address,
                    }
                ]
            }
    return body


def _address_book_address(address: Address) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if address.street:
        first, _, rest = address.street.partition("\n")
        fields["addr1"] = first.strip()[:150]
        if rest.strip():
            fields["addr2"] = rest.strip().replace("\n", ", ")[:150]
    if address.city:
        fields["city"] = address.city[:50]
    if address.region:
        fields["state"] = address.region[:30]
    if address.postal_code:
        fields["zip"] = address.postal_code[:36]
    country = country_code(address.country)
    if country:
        fields["country"] = country
    return fields


# --- projects --------------------------------------------------------------------------------------------

_BILLING_TYPE_BY_MODEL: Mapping[BillingModel, str] = {
    BillingModel.TIME_AND_MATERIALS: "TM",
    BillingModel.FIXED_FEE: "FBI",
    BillingModel.MILESTONE: "FBM",
    BillingModel.RETAINER: "CB",
}
_MODEL_BY_BILLING_TYPE: Mapping[str, BillingModel] = {
    code: model for model, code in _BILLING_TYPE_BY_MODEL.items()
}

# NetSuite's project statuses (``entityStatus``): Closed, In Progress, Not Awarded, Pending.
_PROJECT_STATUS_BY_NAME: Mapping[str, ProjectStatus] = {
    "closed": ProjectStatus.COMPLETED,
    "inprogress": ProjectStatus.ACTIVE,
    "notawarded": ProjectStatus.CLOSED,
    "pending": ProjectStatus.PLANNED,
    "awarded": ProjectStatus.PLANNED,
    "onhold": ProjectStatus.ON_HOLD,
}
_PROJECT_STATUS_BY_ID: Mapping[str, ProjectStatus] = {
    "1": ProjectStatus.COMPLETED,
    "2": ProjectStatus.ACTIVE,
    "3": ProjectStatus.CLOSED,
    "4": ProjectStatus.PLANNED,
}


def project_status(status: NetSuiteRef | None, *, inactive: bool = False) -> ProjectStatus:
    """The canonical status for a job's ``entityStatus`` (by name, else by NetSuite's standard ids)."""
    if status is not None and status.ref_name:
        by_name = _PROJECT_STATUS_BY_NAME.get(_status_key(status.ref_name))
        if by_name is not None:
            return by_name
    if status is not None and status.id is not None and status.id in _PROJECT_STATUS_BY_ID:
        return _PROJECT_STATUS_BY_ID[status.id]
    return ProjectStatus.CLOSED if inactive else ProjectStatus.ACTIVE


def project_from_record(record: NetSuiteJob, setup: SetupLookup) -> Project:
    """The canonical (billing-side) project for a NetSuite ``job``."""
    billing_type = _ref_id(record.job_billing_type)
    return Project(
        id=record.id,
        name=_text(record.company_name) or _text(record.entity_id) or record.id,
        status=project_status(record.entity_status, inactive=record.is_inactive),
        customer_id=_ref_id(record.parent),
        external_key=_text(record.external_id),
        currency=setup.currency_code(_ref_id(record.currency)),
        billing_model=_MODEL_BY_BILLING_TYPE.get(billing_type or ""),
        legal_entity=setup.legal_entity(_ref_id(record.subsidiary)),
        start_date=record.start_date,
        end_date=record.projected_end_date,
        manager_id=_ref_id(record.project_manager),
        updated_at=parse_netsuite_datetime(record.last_modified_date),
        system_ids=SystemIds(erp=record.id),
    )


def job_body(command: ProjectCreate, setup: SetupLookup) -> dict[str, Any]:
    """The ``PUT job/eid:{external_key}`` body for a new project. Raises ``ValueError`` for a currency or
    legal entity the account does not have. NetSuite's job has no budget or milestone fields: those stay
    with the PSA."""
    currency = setup.currency_id(command.currency)
    if currency is None:
        raise ValueError(f"NetSuite has no currency {command.currency!r}")
    body: dict[str, Any] = {
        "companyName": command.name[:83],
        "parent": {"id": command.customer_id},
        "currency": {"id": currency},
    }
    if command.legal_entity:
        subsidiary = setup.subsidiary_id(command.legal_entity)
        if subsidiary is None:
            raise ValueError(f"NetSuite has no subsidiary for legal entity {command.legal_entity!r}")
        body["subsidiary"] = {"id": subsidiary}
    if command.start_date is not None:
        body["startDate"] = command.start_date.isoformat()
    if command.end_date is not None:
        body["projectedEndDate"] = command.end_date.isoformat()
    if command.billing_model is not None:
        body["jobBillingType"] = {"id": _BILLING_TYPE_BY_MODEL[command.billing_model]}
    if command.manager_id is not None:
        body["projectManager"] = {"id": command.manager_id}
    return body


# --- billing schedules -----------------------------------------------------------------------------------

# NetSuite schedule types: Standard, Fixed Bid Interval, Fixed Bid Milestone, Time and Materials.
_SCHEDULE_TYPE_BY_MODEL: Mapping[BillingModel, str] = {
    BillingModel.TIME_AND_MATERIALS: "TM",
    BillingModel.FIXED_FEE: "FBI",
    BillingModel.MILESTONE: "FBM",
    BillingModel.RETAINER: "STDRD",
}
_MODEL_BY_SCHEDULE_TYPE: Mapping[str, BillingModel] = {
    code: model for model, code in _SCHEDULE_TYPE_BY_MODEL.items()
}


def billing_model_from_schedule_type(schedule_type: NetSuiteRef | None) -> BillingModel:
    """The canonical billing model for a schedule's ``scheduleType`` (Standard reads as a retainer)."""
    code = _ref_id(schedule_type) or "STDRD"
    return _MODEL_BY_SCHEDULE_TYPE.get(code.upper(), BillingModel.RETAINER)


def _percent_shares(amounts: Sequence[Decimal]) -> list[Decimal]:
    """Each amount's share of their sum in percent at NetSuite's scale; the last absorbs the rounding so
    the shares total exactly 100, which NetSuite requires."""
    total = sum(amounts, Decimal(0))
    shares = [
        (amount * _HUNDRED / total).quantize(_PERCENT_SCALE, rounding=ROUND_HALF_UP) for amount in amounts
    ]
    shares[-1] = _HUNDRED - sum(shares[:-1], Decimal(0))
    return shares


def billing_schedule_body(project_id: str, command: BillingScheduleCreate) -> dict[str, Any]:
    """The ``PUT billingSchedule/eid:{external_key}`` body, attached to the project.

    Dated amounts (milestone and fixed-fee lines) become NetSuite milestones, each a percentage of the
    whole with the description in ``comments``; every such line needs an amount (``ValueError`` otherwise).
    Time and materials and retainers bill on a monthly cadence and carry no milestones, since NetSuite
    derives their amounts from time or from the project.
    """
    model = command.billing_model
    body: dict[str, Any] = {
        # The schedule's name must be unique and at most 64 characters; the key is both.
        "name": command.external_key[:64],
        "scheduleType": {"id": _SCHEDULE_TYPE_BY_MODEL[model]},
        "project": {"id": project_id},
    }
    if model in (BillingModel.MILESTONE, BillingModel.FIXED_FEE) and command.lines:
        amounts = [line.amount for line in command.lines]
        if any(amount is None for amount in amounts):
            raise ValueError("every line of a milestone or fixed-fee schedule needs an amount")
        shares = _percent_shares([amount for amount in amounts if amount is not None])
        body["milestones"] = {
            "items": [
                {
                    "milestoneDate": line.date.isoformat(),
                    "milestoneAmount": share,
                    "comments": (line.milestone_name or line.description)[:999],
                }
                for line, share in zip(command.lines, shares, strict=True)
            ]
        }
    else:
        body["frequency"] = {"id": "MONTHLY"}
        if model is BillingModel.RETAINER and command.lines:
            body["recurrenceCount"] = len(command.lines)
    return body


def billing_schedule_from_record(record: NetSuiteBillingSchedule, *, currency: str | None) -> BillingSchedule:
    """The canonical schedule for a ``billingSchedule`` read with its milestones expanded.

    NetSuite keeps milestone shares in percent of the project's amount, not money, so line amounts do not
    come back (``amount`` is ``None``); the description and milestone name are the milestone's comments.
    ``currency`` is the project's (the schedule has none of its own).
    """
    lines = [
        BillingScheduleLine(
            date=milestone.milestone_date,
            description=_text(milestone.comments) or f"Milestone {number}",
            milestone_name=_text(milestone.comments),
        )
        for number, milestone in enumerate(record.milestones.items if record.milestones else [], start=1)
        if milestone.milestone_date is not None
    ]
    return BillingSchedule(
        id=record.id,
        project_id=_ref_id(record.project) or "",
        billing_model=billing_model_from_schedule_type(record.schedule_type),
        currency=currency or NO_CURRENCY,
        lines=lines,
        external_key=_text(record.external_id),
        voided=record.is_inactive,
        system_ids=SystemIds(erp=record.id),
    )


# --- invoices --------------------------------------------------------------------------------------------


def invoice_body(command: InvoiceCreate, *, item_id: str, setup: SetupLookup) -> dict[str, Any]:
    """The invoice to create, ``externalId`` = the command's key (so ``eid:`` finds it and NetSuite refuses
    a second one). Every line bills ``item_id`` (a service item) with our description, quantity and rate;
    the amount is computed here so it is exactly what we expect NetSuite to book. Raises ``ValueError`` for
    a currency the account does not have."""
    currency = setup.currency_id(command.currency)
    if currency is None:
        raise ValueError(f"NetSuite has no currency {command.currency!r}")
    lines: list[dict[str, Any]] = []
    for line in command.lines:
        item: dict[str, Any] = {
            "item": {"id": item_id},
            "description": line.description[:999],
            "quantity": line.quantity,
            "rate": line.unit_price,
            "amount": line_amount(line.quantity, line.unit_price),
        }
        if command.tax_code is not None:
            # The legal entity's tax code is a sales tax item whose external id is the code (as customers'
            # tax items are referenced, see `customer_upsert_body`); NetSuite's invoice sets it per line.
            item["taxCode"] = {"externalId": command.tax_code}
        if line.source_ids:
            item[SOURCES_FIELD] = join_source_ids(line.source_ids)
        lines.append(item)
    body: dict[str, Any] = {
        "externalId": command.external_key,
        "entity": {"id": command.customer_id},
        "currency": {"id": currency},
        "tranDate": command.issue_date.isoformat(),
        "dueDate": command.due_date.isoformat(),
        "item": {"items": lines},
    }
    if command.project_id is not None:
        body["job"] = {"id": command.project_id}
    if command.memo is not None:
        body["memo"] = command.memo
    if command.draft:
        # Invoice approval: a Pending Approval invoice does not post until it is approved (post_invoice).
        body["approvalStatus"] = {"id": APPROVAL_PENDING}
    return body


#: ``approvalStatus`` ids of NetSuite's approval status list.
APPROVAL_PENDING, APPROVAL_APPROVED, APPROVAL_REJECTED = "1", "2", "3"


def join_source_ids(source_ids: Sequence[str]) -> str:
    """Source ids as the custom column holds them: comma-separated (a source id never has a comma)."""
    return ",".join(source_ids)


def split_source_ids(text: str | None) -> list[str]:
    return [part for part in (part.strip() for part in (text or "").split(",")) if part]


def is_overdue(balance: Decimal, due_date: dt.date | None, today: dt.date | None) -> bool:
    """Canonical overdue: something is still due and the due date is past (``today`` is the UTC date)."""
    return today is not None and due_date is not None and balance > 0 and due_date < today


def invoice_from_record(
    record: NetSuiteInvoice,
    setup: SetupLookup,
    *,
    today: dt.date | None = None,
    credit_memo_id: str | None = None,
) -> Invoice:
    """The canonical invoice for an ``invoice`` record (read with ``expandSubResources=true`` for lines):
    ``total`` is the record's ``total`` (tax included), ``subtotal`` and ``tax`` its ``subtotal`` and
    ``taxTotal`` (None when the record has none). ``today`` (UTC) decides ``overdue``; ``credit_memo_id``
    is the credit memo that reversed it (the invoice is then ``void`` with nothing due). Raises
    ``ValueError`` when the record has no customer or no known currency."""
    customer_id = _ref_id(record.entity)
    currency = setup.currency_code(_ref_id(record.currency))
    if customer_id is None or currency is None:
        raise ValueError("invoice has no customer or no known currency")
    total = _money(record.total)
    balance = _money(record.amount_remaining if record.amount_remaining is not None else record.total)
    status = record.status or NetSuiteRef()
    lines = [
        InvoiceLine(
            description=_text(line.description) or "",
            quantity=line.quantity if line.quantity is not None else Decimal(1),
            unit_price=_rate(line.rate),
            amount=_money(line.amount),
            source_ids=split_source_ids(line.sources),
        )
        for line in (record.item.items if record.item else [])
    ]
    decided = invoice_status(status.id, status.ref_name, total=total, remaining=balance)
    if credit_memo_id is not None:
        decided, balance = InvoiceStatus.VOID, Decimal(0)
    return Invoice(
        id=record.id,
        number=_text(record.tran_id),
        customer_id=customer_id,
        status=decided,
        currency=currency,
        total=Money(amount=total, currency=currency),
        balance=Money(amount=balance, currency=currency),
        issue_date=record.tran_date,
        due_date=record.due_date,
        project_id=_ref_id(record.job),
        external_key=_text(record.external_id),
        legal_entity=setup.legal_entity(_ref_id(record.subsidiary)),
        lines=lines,
        updated_at=parse_netsuite_datetime(record.last_modified_date),
        system_ids=SystemIds(erp=record.id),
        overdue=decided is not InvoiceStatus.VOID and is_overdue(balance, record.due_date, today),
        credit_memo_id=credit_memo_id,
        subtotal=None
        if record.subtotal is None
        else Money(amount=_money(record.subtotal), currency=currency),
        tax=None if record.tax_total is None else Money(amount=_money(record.tax_total), currency=currency),
    )


def invoice_from_row(
    row: InvoiceRow, setup: SetupLookup, zone: dt.tzinfo = dt.UTC, *, today: dt.date | None = None
) -> Invoice:
    """The canonical invoice summary for a SuiteQL row (see `invoice_query`): no lines, no project, no
    subtotal or tax (``get_invoice`` has them). Raises ``ValueError`` when the row has no customer or
    known currency."""
    currency = setup.currency_code(row.currency)
    if row.entity is None or currency is None:
        raise ValueError("invoice row has no customer or no known currency")
    total = _money(row.total)
    balance = _money(row.remaining if row.remaining is not None else row.total)
    status = invoice_status(row.status, None, total=total, remaining=balance)
    credit_memo_id = _text(row.creditmemo)
    if credit_memo_id is not None and status is InvoiceStatus.PAID:
        status, balance = InvoiceStatus.VOID, Decimal(0)
    due = _date(row.due)
    return Invoice(
        id=row.id,
        number=_text(row.tranid),
        customer_id=row.entity,
        status=status,
        currency=currency,
        total=Money(amount=total, currency=currency),
        balance=Money(amount=balance, currency=currency),
        issue_date=_date(row.issued),
        due_date=_date(row.due),
        external_key=_text(row.externalid),
        legal_entity=setup.legal_entity(_text(row.subsidiary)),
        updated_at=parse_netsuite_datetime(row.lastmodified, zone),
        system_ids=SystemIds(erp=row.id),
        overdue=status is not InvoiceStatus.VOID and is_overdue(balance, due, today),
        credit_memo_id=credit_memo_id if status is InvoiceStatus.VOID else None,
        customer_name=_text(row.customername),
    )


# --- payments --------------------------------------------------------------------------------------------


def payment_from_record(record: NetSuitePayment, setup: SetupLookup) -> Payment:
    """The canonical payment for a ``customerPayment`` (read with its ``apply`` sublist expanded): the
    invoices are the lines actually applied. Raises ``ValueError`` when customer, date or currency is
    missing."""
    customer_id = _ref_id(record.customer)
    currency = setup.currency_code(_ref_id(record.currency))
    if customer_id is None or currency is None or record.tran_date is None:
        raise ValueError("payment has no customer, date or known currency")
    applied = [
        (doc_id, line.amount)
        for line in (record.apply.items if record.apply else [])
        if line.apply and (doc_id := _ref_id(line.doc)) is not None
    ]
    invoice_ids = list(dict.fromkeys(doc_id for doc_id, _ in applied))
    # Each apply line's ``amount`` is what the payment paid on that invoice (Oracle's REST customerPayment
    # sample: ``apply.items[{doc, apply, amount}]`` under a ``payment`` that may exceed their sum). A line
    # without an amount leaves the split unknown: then no application is claimed for any invoice.
    applications = (
        [
            PaymentApplication(invoice_id=doc_id, amount=Money(amount=_money(amount), currency=currency))
            for doc_id, amount in applied
            if amount is not None
        ]
        if all(amount is not None for _, amount in applied)
        else []
    )
    return Payment(
        id=record.id,
        customer_id=customer_id,
        date=record.tran_date,
        amount=Money(amount=_money(record.payment), currency=currency),
        invoice_ids=invoice_ids,
        applications=applications,
        system_ids=SystemIds(erp=record.id),
        updated_at=parse_netsuite_datetime(record.last_modified_date),
    )
