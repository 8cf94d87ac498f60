"""Record schema, deterministic seed data and the development client of the NetSuite sandbox.

The seed models the ERP side of the professional-services firm whose CRM the Salesforce sandbox holds:
three subsidiaries (legal entities ``US01`` USD, ``GB01`` GBP, ``DE01`` EUR, each with the legal-entity code
as its ``externalId``), about forty customers, their projects (``job``), billing schedules, about three
hundred invoices (open, partially paid, paid, overdue), the payments applied to them and time bills.
Everything is dated relative to `SEED_NOW` (the Salesforce seed's anchor), never the wall clock.

How it lines up with the Salesforce seed:

- Only Globex Professional Services (``BIG_ACCOUNT_ID``) exists as a NetSuite customer linked by
  ``externalId`` = Salesforce Account Id. Its Closed Won opportunities that closed at least three weeks
  before `SEED_NOW` already have projects (``job.externalId`` = Opportunity Id); more recent ones do not.
- The accounts behind the well-known "ready" and "fails rule X" opportunities (Northwind, Initech,
  Umbrella, Stark, Wayne, Hooli, Globex UK) have no linked customer, so activation has one to create.
- Every tax jurisdiction the Salesforce accounts name (``Tax_Jurisdiction__c``: ``US-NY``, ``GB``,
  ``DE-BY``, ...) has a ``salesTaxItem`` whose ``externalId`` (and name) is that code, so a customer made
  from an account gets its tax code by external-id reference; customers keep an ``addressBook`` sublist.
- ``DUPLICATE_CUSTOMER_ID`` is Wayne Capital entered by hand long ago: a probable duplicate of the
  Salesforce account by normalised name, tax id (``vatRegNumber`` = ``Tax_Id__c``) and web domain, with no
  ``externalId``. Customer master sync should flag it.

Well-known ids (internal ids are strings on the wire, as in NetSuite):

==================================  =================================================================
constant                            record
==================================  =================================================================
``GLOBEX_CUSTOMER_ID`` 1001         Globex Professional Services, ``externalId`` = ``BIG_ACCOUNT_ID``
``DUPLICATE_CUSTOMER_ID`` 1002      "Wayne Capital Partners, L.L.C.", no externalId (see above)
``DEMO_CUSTOMER_ID`` 1003           Contoso Pharmaceuticals Inc (US01, USD), NetSuite-only
``UK_CUSTOMER_ID`` 1004             Fabrikam Retail Group plc (GB01, GBP)
``DE_CUSTOMER_ID`` 1005             Müller & Söhne Maschinenbau AG (DE01, EUR)
``INACTIVE_CUSTOMER_ID`` 1006       Tyrell Advisory Corp, ``isInactive`` true
``CHILD_CUSTOMER_ID`` 1007          Globex Federal Services LLC, ``parent`` = Globex
``APOSTROPHE_CUSTOMER_ID`` 1008     O'Neill & Partners LLP (quotes in SuiteQL literals)
``DEMO_PROJECT_ID`` 3001            Contoso time-and-materials project (``jobBillingType`` TM)
``MILESTONE_PROJECT_ID`` 3002       Fabrikam fixed-bid milestone project, billing schedule 1
``RETAINER_PROJECT_ID`` 3003        Müller charge-based retainer, monthly billing schedule 2
``MILESTONE_BILLING_SCHEDULE_ID``   1: three milestones (30/40/30 %), the first completed
``MONTHLY_BILLING_SCHEDULE_ID``     2: monthly in arrears, 12 recurrences
``TM_BILLING_SCHEDULE_ID``          4: time and materials, monthly
``OPEN_INVOICE_ID`` 10001           Contoso, open, due in the future (not overdue)
``PAID_INVOICE_ID`` 10002           Contoso, paid in full by ``PAYMENT_ID``
``PARTIALLY_PAID_INVOICE_ID`` 10003 Fabrikam (GBP), partly paid by ``PARTIAL_PAYMENT_ID``
``OVERDUE_INVOICE_ID`` 10004        Müller (EUR), open, due 45 days before `SEED_NOW`
``PAYMENT_ID`` 20001                pays ``PAID_INVOICE_ID`` in full
``PARTIAL_PAYMENT_ID`` 20002        pays part of ``PARTIALLY_PAID_INVOICE_ID``
``TIME_BILL_ID`` 1                  7.5 approved billable hours on ``DEMO_PROJECT_ID``
``PENDING_TIME_BILL_ID`` 2          8 hours on ``DEMO_PROJECT_ID`` awaiting approval
==================================  =================================================================

Exactly `INVOICE_COUNT` (300) invoices exist, so listing them pages (``limit=50`` gives six pages).
Internal ids come from NetSuite-like id spaces: customers, contacts, projects and employees share the
entity space; invoices, payments and sales orders share the transaction space.

The development client (`DEV_CLIENT_ID`, `DEV_CERTIFICATE_ID`, `dev_private_key_pem`) is an EC P-256
key pair derived from a published constant: it is for the sandbox only and worthless anywhere else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandboxes.salesforce import data as salesforce

__all__ = [
    "ACCOUNT_ID",
    "ACCOUNT_TIME_ZONE",
    "APOSTROPHE_CUSTOMER_ID",
    "APPROVAL_STATUSES",
    "CHILD_CUSTOMER_ID",
    "CREDIT_HOLD_OVERRIDES",
    "CREDIT_MEMO_STATUSES",
    "CURRENCY_IDS",
    "DEMO_CUSTOMER_ID",
    "DEMO_PROJECT_ID",
    "DEV_CERTIFICATE_ID",
    "DEV_CLIENT_ID",
    "DE_CUSTOMER_ID",
    "DUPLICATE_CUSTOMER_ID",
    "GLOBEX_CUSTOMER_ID",
    "INACTIVE_CUSTOMER_ID",
    "INVOICE_COUNT",
    "INVOICE_STATUSES",
    "JOB_BILLING_TYPES",
    "MILESTONE_BILLING_SCHEDULE_ID",
    "MILESTONE_PROJECT_ID",
    "MONTHLY_BILLING_SCHEDULE_ID",
    "OPEN_INVOICE_ID",
    "OVERDUE_INVOICE_ID",
    "PAID_INVOICE_ID",
    "PARTIALLY_PAID_INVOICE_ID",
    "PARTIAL_PAYMENT_ID",
    "PAYMENT_ID",
    "PENDING_TIME_BILL_ID",
    "RECORD_TYPES",
    "RETAINER_PROJECT_ID",
    "SEED_DATE",
    "SEED_NOW",
    "SOURCES_FIELD",
    "SUBSIDIARY_IDS",
    "TIME_BILL_ID",
    "TM_BILLING_SCHEDULE_ID",
    "UK_CUSTOMER_ID",
    "FieldKind",
    "FieldSpec",
    "Record",
    "RecordType",
    "build_seed",
    "dev_private_key_pem",
    "dev_public_key_pem",
    "format_datetime",
    "record_type",
    "ref_name",
]

Record = dict[str, Any]

ACCOUNT_ID = "123456_SB1"
# The account's time zone (Setup > Company > Company Information, and each user's preference): SuiteQL shows
# and reads dates and times in it. Records keep their timestamps in UTC; REST record bodies say so with "Z".
ACCOUNT_TIME_ZONE = "America/Los_Angeles"

# The Salesforce seed's anchor, so "three weeks ago" means the same day in both sandboxes.
SEED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SEED_DATE = SEED_NOW.date()


def ref_name(records: Mapping[str, Mapping[str, Record]], type_name: str, record_id: str) -> str | None:
    """A record's display name, REST's ``refName`` and SuiteQL's ``BUILTIN.DF``; None if there is none."""
    rtype = RECORD_TYPES[type_name]
    target = records[type_name].get(record_id)
    if target is None:
        return None
    parts = [str(target[name]) for name in rtype.ref_name if target.get(name) not in (None, "")]
    return rtype.ref_prefix + " ".join(parts)


def format_datetime(value: datetime) -> str:
    """Format an aware datetime the way NetSuite REST does: ``2026-03-02T09:30:00Z`` (UTC, seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------
# Development client
# ---------------------------------------------------------------------------------------------------------

# NetSuite client ids are 64 hex characters and certificate ids 43 URL-safe characters; deriving both from
# fixed strings keeps them stable and obviously not secrets.
DEV_CLIENT_ID = hashlib.sha256(b"stratum-netsuite-sandbox/dev-client-id").hexdigest()
DEV_CERTIFICATE_ID = (
    base64.urlsafe_b64encode(hashlib.sha256(b"stratum-netsuite-sandbox/dev-certificate-id").digest())
    .decode()
    .rstrip("=")
)
_DEV_KEY_SEED = b"stratum-netsuite-sandbox/dev-client-key/v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@functools.cache
def _dev_private_key() -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(_DEV_KEY_SEED).digest(), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def dev_private_key_pem() -> str:
    """The development client's EC P-256 private key (PKCS#8 PEM); sign ES256 client assertions with it."""
    return (
        _dev_private_key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def dev_public_key_pem() -> str:
    """The development client's public key (SubjectPublicKeyInfo PEM), as the sandbox registers it."""
    return (
        _dev_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# ---------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------

FieldKind = Literal[
    "id",
    "text",
    "email",
    "date",
    "datetime",
    "boolean",
    "money",
    "number",
    "integer",
    "ref",
    "enum",
    "sublist",
    "subrecord",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of a record type: as much of NetSuite's record browser as the sandbox enforces.

    References (``ref``) are stored as the target's internal id and may point at any of `ref_types`;
    select lists (``enum``) are stored as the option id, one of `choices` (id -> display name);
    sublists hold a list of lines whose fields are `lines`; a subrecord (an address) is one nested object
    whose fields are `lines`.
    """

    name: str
    kind: FieldKind
    label: str = ""
    required: bool = False
    read_only: bool = False
    max_length: int | None = None
    ref_types: tuple[str, ...] = ()
    choices: Mapping[str, str] | None = None
    lines: tuple[FieldSpec, ...] = ()

    @property
    def display(self) -> str:
        """The field's label in NetSuite's messages ("Please enter value(s) for: Company Name")."""
        return self.label or self.name


@dataclass(frozen=True, slots=True)
class RecordType:
    """A REST record type: canonical name, id space, fields, and how its ``refName`` is made."""

    name: str
    family: str
    fields: tuple[FieldSpec, ...]
    ref_name: tuple[str, ...] = ("id",)
    ref_prefix: str = ""
    writable: bool = True
    _by_lower_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Field names in bodies and "q" filters are matched without regard to case.
        object.__setattr__(self, "_by_lower_name", {spec.name.lower(): spec for spec in self.fields})

    def field(self, name: str) -> FieldSpec | None:
        """Return the field called `name` (any casing), or None."""
        return self._by_lower_name.get(name.lower())

    def sublists(self) -> tuple[FieldSpec, ...]:
        return tuple(spec for spec in self.fields if spec.kind == "sublist")


def _f(name: str, kind: FieldKind, label: str = "", **options: Any) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, label=label, **options)


JOB_BILLING_TYPES: Mapping[str, str] = {
    "CB": "Charge-Based",
    "FBI": "Fixed Bid, Interval",
    "FBM": "Fixed Bid, Milestone",
    "TM": "Time and Materials",
}
PROJECT_STATUSES: Mapping[str, str] = {
    "1": "Closed",
    "2": "In Progress",
    "3": "Not Awarded",
    "4": "Pending",
}
# Invoice statuses as SuiteQL shows them (CustInvc:A Open, CustInvc:B Paid In Full, CustInvc:D Pending
# Approval, CustInvc:E Rejected, CustInvc:V Voided; https://timdietrich.me/blog/netsuite-suiteql-transaction-statuses).
# D and E exist where invoice approval is on (Setup > Accounting > Accounting Preferences > Approval Routing).
INVOICE_STATUSES: Mapping[str, str] = {
    "A": "Open",
    "B": "Paid In Full",
    "D": "Pending Approval",
    "E": "Rejected",
    "V": "Voided",
}
# Credit memo statuses (CustCred:A Open, CustCred:B Fully Applied).
CREDIT_MEMO_STATUSES: Mapping[str, str] = {"A": "Open", "B": "Fully Applied"}
# The customer's "Credit Hold" select (``creditHoldOverride``): Auto lets NetSuite decide from the credit
# limit and the customer's balance, On always holds, Off never does (NetSuite help: "Customer Credit Holds").
CREDIT_HOLD_OVERRIDES: Mapping[str, str] = {"AUTO": "Auto", "ON": "On", "OFF": "Off"}
# The transaction-column custom field (Long Text) where Stratum keeps the billable items an invoice line
# bills; an account must have it (README "NetSuite setup", `stratum vendors check`).
SOURCES_FIELD = "custcol_stratum_sources"
PAYMENT_STATUSES: Mapping[str, str] = {"A": "Unapproved Payment", "B": "Not Deposited", "C": "Deposited"}
SALES_ORDER_STATUSES: Mapping[str, str] = {
    "A": "Pending Approval",
    "B": "Pending Fulfillment",
    "F": "Pending Billing",
    "G": "Billed",
    "H": "Closed",
}
APPROVAL_STATUSES: Mapping[str, str] = {"1": "Pending Approval", "2": "Approved", "3": "Rejected"}
SCHEDULE_TYPES: Mapping[str, str] = {
    "STDRD": "Standard",
    "FBI": "Fixed Bid Interval",
    "FBM": "Fixed Bid Milestone",
    "TM": "Time and Materials",
}
FREQUENCIES: Mapping[str, str] = {
    "DAILY": "Daily",
    "WEEKLY": "Weekly",
    "MONTHLY": "Monthly",
    "QUARTERLY": "Quarterly",
    "ANNUALLY": "Annually",
}

_EXTERNAL_ID = _f("externalId", "text", "External ID", max_length=255)
_LAST_MODIFIED = _f("lastModifiedDate", "datetime", "Last Modified", read_only=True)
_INACTIVE = _f("isInactive", "boolean", "Inactive")


def _subsidiary(required: bool = True) -> FieldSpec:
    return _f("subsidiary", "ref", "Subsidiary", required=required, ref_types=("subsidiary",))


_CURRENCY = _f("currency", "ref", "Currency", ref_types=("currency",))
# A transaction's body totals (REST API Browser, invoice / creditMemo / salesOrder: subtotal, taxTotal,
# total). This account computes no tax (no SuiteTax engine here): taxTotal is 0 and total = subtotal.
_BODY_TOTALS = (
    _f("subtotal", "money", "Subtotal", read_only=True),
    _f("taxTotal", "money", "Tax", read_only=True),
    _f("total", "money", "Total", read_only=True),
)
_ITEM_LINES = _f(
    "item",
    "sublist",
    "Items",
    required=True,
    lines=(
        _f("line", "integer", "Line", read_only=True),
        _f("item", "ref", "Item", required=True, ref_types=("serviceItem",)),
        _f("description", "text", "Description", max_length=999),
        _f("quantity", "number", "Quantity"),
        _f("rate", "money", "Rate"),
        _f("amount", "money", "Amount"),
        # Legacy tax: the line's tax code, a sales tax item (the invoice record's item sublist ``taxCode``).
        _f("taxCode", "ref", "Tax Code", ref_types=("salesTaxItem",)),
        # A custom transaction column field: NetSuite's "Long Text" type holds up to 1,000,000 characters.
        _f(SOURCES_FIELD, "text", "Stratum Sources", max_length=1_000_000),
    ),
)

# Address countries are NetSuite's country select list, ids the ISO 3166-1 alpha-2 codes (REST shows
# ``{"id": "US", "refName": "United States"}``); the sandbox knows the countries its seeds use.
COUNTRIES: Mapping[str, str] = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "CA": "Canada",
    "IE": "Ireland",
    "FR": "France",
    "NL": "Netherlands",
}
# The customer's ``addressBook`` sublist (REST API Browser: customer-addressBookCollection): each line has
# ``defaultBilling``/``defaultShipping``, a ``label`` and the address itself as the subrecord
# ``addressBookAddress`` (addr1, addr2, addressee, city, state, zip, country).
_ADDRESS_BOOK = _f(
    "addressBook",
    "sublist",
    "Address",
    lines=(
        _f("line", "integer", "Line", read_only=True),
        _f("defaultBilling", "boolean", "Default Billing"),
        _f("defaultShipping", "boolean", "Default Shipping"),
        _f("isResidential", "boolean", "Residential Address"),
        _f("label", "text", "Label", max_length=150),
        _f(
            "addressBookAddress",
            "subrecord",
            "Address",
            lines=(
                _f("addressee", "text", "Addressee", max_length=150),
                _f("addr1", "text", "Address 1", max_length=150),
                _f("addr2", "text", "Address 2", max_length=150),
                _f("city", "text", "City", max_length=50),
                _f("state", "text", "State", max_length=30),
                _f("zip", "text", "Zip", max_length=36),
                _f("country", "enum", "Country", choices=COUNTRIES),
            ),
        ),
    ),
)

_TYPES = (
    RecordType(
        "customer",
        "entity",
        (
            _f("id", "id", read_only=True),
            _f("entityId", "text", "Customer ID", max_length=83),
            _f("companyName", "text", "Company Name", required=True, max_length=83),
            _f("isPerson", "boolean", "Type"),
            _EXTERNAL_ID,
            _subsidiary(),
            _CURRENCY,
            _f("email", "email", "Email", max_length=254),
            _f("phone", "text", "Phone", max_length=32),
            _f("url", "text", "Web Address", max_length=999),
            _f("vatRegNumber", "text", "Tax Reg. Number", max_length=64),
            # Legacy tax: whether the customer is taxed, and its default tax code (a sales tax item).
            _f("taxable", "boolean", "Taxable"),
            _f("taxItem", "ref", "Tax Item", ref_types=("salesTaxItem",)),
            _ADDRESS_BOOK,
            _f("terms", "ref", "Terms", ref_types=("term",)),
            _f("creditLimit", "money", "Credit Limit"),
            _f("creditHoldOverride", "enum", "Credit Hold", choices=CREDIT_HOLD_OVERRIDES),
            # The customer's open receivables (sum of what its open invoices still owe): read-only.
            _f("balance", "money", "Balance", read_only=True),
            _f("parent", "ref", "Child Of", ref_types=("customer",)),
            _INACTIVE,
            _f("dateCreated", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("entityId", "companyName"),
    ),
    RecordType(
        "contact",
        "entity",
        (
            _f("id", "id", read_only=True),
            _f("entityId", "text", "Contact", max_length=83),
            _f("firstName", "text", "First Name", max_length=32),
            _f("lastName", "text", "Last Name", required=True, max_length=32),
            _f("title", "text", "Job Title", max_length=99),
            _f("email", "email", "Email", max_length=254),
            _f("phone", "text", "Phone", max_length=32),
            _f("company", "ref", "Company", ref_types=("customer", "job")),
            _subsidiary(required=False),
            _EXTERNAL_ID,
            _INACTIVE,
            _f("dateCreated", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("entityId",),
    ),
    RecordType(
        "job",
        "entity",
        (
            _f("id", "id", read_only=True),
            _f("entityId", "text", "Project ID", max_length=83),
            _f("companyName", "text", "Project Name", required=True, max_length=83),
            _f("parent", "ref", "Customer", required=True, ref_types=("customer",)),
            _subsidiary(required=False),
            _CURRENCY,
            _f("startDate", "date", "Start Date"),
            _f("projectedEndDate", "date", "Projected End Date"),
            _f("jobBillingType", "enum", "Billing Type", choices=JOB_BILLING_TYPES),
            _f("billingSchedule", "ref", "Billing Schedule", ref_types=("billingSchedule",)),
            _f("entityStatus", "enum", "Status", choices=PROJECT_STATUSES),
            _f("projectManager", "ref", "Project Manager", ref_types=("employee",)),
            _EXTERNAL_ID,
            _INACTIVE,
            _f("dateCreated", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("entityId", "companyName"),
    ),
    RecordType(
        "billingSchedule",
        "billingSchedule",
        (
            _f("id", "id", read_only=True),
            _f("name", "text", "Name", required=True, max_length=64),
            _f("scheduleType", "enum", "Type", choices=SCHEDULE_TYPES),
            _f("frequency", "enum", "Frequency", choices=FREQUENCIES),
            _f("initialAmount", "money", "Initial Amount"),
            _f("recurrenceCount", "integer", "Recurrence Count"),
            _f("inArrears", "boolean", "In Arrears"),
            _f("project", "ref", "Project", ref_types=("job",)),
            _f(
                "milestones",
                "sublist",
                "Milestones",
                lines=(
                    _f("line", "integer", "Line", read_only=True),
                    _f("milestoneDate", "date", "Date", required=True),
                    _f("milestoneAmount", "number", "Amount (%)", required=True),
                    _f("comments", "text", "Comments", max_length=999),
                    _f("milestoneCompleted", "boolean", "Completed"),
                ),
            ),
            _EXTERNAL_ID,
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("name",),
    ),
    RecordType(
        "invoice",
        "transaction",
        (
            _f("id", "id", read_only=True),
            _f("tranId", "text", "Invoice #", max_length=45),
            _f("entity", "ref", "Customer", required=True, ref_types=("customer",)),
            _f("job", "ref", "Project", ref_types=("job",)),
            _subsidiary(required=False),
            _CURRENCY,
            _f("tranDate", "date", "Date"),
            _f("dueDate", "date", "Due Date"),
            _f("terms", "ref", "Terms", ref_types=("term",)),
            _f("otherRefNum", "text", "PO/Check Number", max_length=45),
            _f("memo", "text", "Memo", max_length=999),
            _f("status", "enum", "Status", read_only=True, choices=INVOICE_STATUSES),
            # Invoice approval (Approval Routing on for invoices): Pending Approval invoices do not post.
            _f("approvalStatus", "enum", "Approval Status", choices=APPROVAL_STATUSES),
            *_BODY_TOTALS,
            _f("amountPaid", "money", "Amount Paid", read_only=True),
            _f("amountRemaining", "money", "Amount Due", read_only=True),
            _ITEM_LINES,
            _EXTERNAL_ID,
            _f("createdDate", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("tranId",),
        ref_prefix="Invoice #",
    ),
    # A credit memo, made from an invoice by ``POST invoice/{id}/!transform/creditMemo`` (NetSuite help:
    # "Transforming Records"; invoice -> credit memo is among record.transform's supported types), which
    # applies it to that invoice.
    RecordType(
        "creditMemo",
        "transaction",
        (
            _f("id", "id", read_only=True),
            _f("tranId", "text", "Credit #", max_length=45),
            _f("entity", "ref", "Customer", required=True, ref_types=("customer",)),
            _f("createdFrom", "ref", "Created From", read_only=True, ref_types=("invoice",)),
            _f("job", "ref", "Project", ref_types=("job",)),
            _subsidiary(required=False),
            _CURRENCY,
            _f("tranDate", "date", "Date"),
            _f("memo", "text", "Memo", max_length=999),
            _f("status", "enum", "Status", read_only=True, choices=CREDIT_MEMO_STATUSES),
            *_BODY_TOTALS,
            _f("applied", "money", "Applied", read_only=True),
            _f("unapplied", "money", "Unapplied", read_only=True),
            _ITEM_LINES,
            _f(
                "apply",
                "sublist",
                "Apply",
                lines=(
                    _f("line", "integer", "Line", read_only=True),
                    _f("doc", "ref", "Invoice", required=True, ref_types=("invoice",)),
                    _f("apply", "boolean", "Apply"),
                    _f("amount", "money", "Payment"),
                ),
            ),
            _EXTERNAL_ID,
            _f("createdDate", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("tranId",),
        ref_prefix="Credit Memo #",
    ),
    RecordType(
        "customerPayment",
        "transaction",
        (
            _f("id", "id", read_only=True),
            _f("tranId", "text", "Payment #", max_length=45),
            _f("customer", "ref", "Customer", required=True, ref_types=("customer",)),
            _subsidiary(required=False),
            _CURRENCY,
            _f("tranDate", "date", "Date"),
            _f("payment", "money", "Payment Amount", required=True),
            _f("applied", "money", "Applied", read_only=True),
            _f("unapplied", "money", "Unapplied", read_only=True),
            _f("status", "enum", "Status", read_only=True, choices=PAYMENT_STATUSES),
            _f("memo", "text", "Memo", max_length=999),
            _f(
                "apply",
                "sublist",
                "Apply",
                lines=(
                    _f("line", "integer", "Line", read_only=True),
                    _f("doc", "ref", "Invoice", required=True, ref_types=("invoice",)),
                    _f("apply", "boolean", "Apply"),
                    _f("amount", "money", "Payment"),
                ),
            ),
            _EXTERNAL_ID,
            _f("createdDate", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("tranId",),
        ref_prefix="Payment #",
    ),
    RecordType(
        "timeBill",
        "timeBill",
        (
            _f("id", "id", read_only=True),
            _f("employee", "ref", "Employee", required=True, ref_types=("employee",)),
            # NetSuite's "Customer:Project" field takes a customer or a project.
            _f("customer", "ref", "Customer:Project", ref_types=("job", "customer")),
            _f("item", "ref", "Service Item", ref_types=("serviceItem",)),
            _subsidiary(required=False),
            _f("tranDate", "date", "Date"),
            _f("hours", "number", "Duration", required=True),
            _f("isBillable", "boolean", "Billable"),
            _f("rate", "money", "Rate"),
            _f("approvalStatus", "enum", "Approval Status", choices=APPROVAL_STATUSES),
            _f("memo", "text", "Memo", max_length=999),
            _EXTERNAL_ID,
            _LAST_MODIFIED,
        ),
    ),
    RecordType(
        "salesOrder",
        "transaction",
        (
            _f("id", "id", read_only=True),
            _f("tranId", "text", "Order #", max_length=45),
            _f("entity", "ref", "Customer", required=True, ref_types=("customer",)),
            _f("job", "ref", "Project", ref_types=("job",)),
            _subsidiary(required=False),
            _CURRENCY,
            _f("tranDate", "date", "Date"),
            _f("memo", "text", "Memo", max_length=999),
            _f("status", "enum", "Status", read_only=True, choices=SALES_ORDER_STATUSES),
            *_BODY_TOTALS,
            _ITEM_LINES,
            _EXTERNAL_ID,
            _f("createdDate", "datetime", "Date Created", read_only=True),
            _LAST_MODIFIED,
        ),
        ref_name=("tranId",),
        ref_prefix="Sales Order #",
    ),
    # Setup records the others point at; served read-only.
    RecordType(
        "subsidiary",
        "subsidiary",
        (
            _f("id", "id", read_only=True),
            _f("name", "text", "Name"),
            _f("legalName", "text", "Legal Name"),
            _f("country", "text", "Country"),
            _CURRENCY,
            _EXTERNAL_ID,
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("name",),
        writable=False,
    ),
    RecordType(
        "currency",
        "currency",
        (
            _f("id", "id", read_only=True),
            _f("name", "text", "Name"),
            _f("symbol", "text", "ISO Code"),
            _f("isBaseCurrency", "boolean", "Is Base Currency"),
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("name",),
        writable=False,
    ),
    RecordType(
        "term",
        "term",
        (
            _f("id", "id", read_only=True),
            _f("name", "text", "Terms"),
            _f("daysUntilNetDue", "integer", "Days Till Net Due"),
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("name",),
        writable=False,
    ),
    RecordType(
        "employee",
        "entity",
        (
            _f("id", "id", read_only=True),
            _f("entityId", "text", "Name"),
            _f("firstName", "text", "First Name"),
            _f("lastName", "text", "Last Name"),
            _f("email", "email", "Email"),
            _subsidiary(),
            _f("laborCost", "money", "Labor Cost"),
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("entityId",),
        writable=False,
    ),
    RecordType(
        "serviceItem",
        "item",
        (
            _f("id", "id", read_only=True),
            _f("itemId", "text", "Item Name/Number"),
            _f("displayName", "text", "Display Name"),
            _f("rate", "money", "Base Price"),
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("itemId",),
        writable=False,
    ),
    # A tax code: the firm names (and external-ids) each jurisdiction's by its ISO 3166-2 code, e.g.
    # ``US-NY``, ``GB``, ``DE-BY``, so a CRM account's tax jurisdiction names its customer's tax item.
    RecordType(
        "salesTaxItem",
        "item",
        (
            _f("id", "id", read_only=True),
            _f("itemId", "text", "Tax Name"),
            _f("description", "text", "Description"),
            _f("rate", "number", "Rate"),
            _EXTERNAL_ID,
            _INACTIVE,
            _LAST_MODIFIED,
        ),
        ref_name=("itemId",),
        writable=False,
    ),
)

RECORD_TYPES: Mapping[str, RecordType] = {record.name: record for record in _TYPES}
_TYPES_BY_LOWER_NAME = {name.lower(): record for name, record in RECORD_TYPES.items()}


def record_type(name: str) -> RecordType | None:
    """The record type called `name` in the URL (NetSuite matches record type names without case)."""
    return _TYPES_BY_LOWER_NAME.get(name.lower())


# ---------------------------------------------------------------------------------------------------------
# Setup data
# ---------------------------------------------------------------------------------------------------------

CURRENCY_IDS: Mapping[str, str] = {"USD": "1", "GBP": "2", "CAD": "3", "EUR": "4"}
SUBSIDIARY_IDS: Mapping[str, str] = {"US01": "1", "GB01": "2", "DE01": "3"}
_NET_15, _NET_30, _NET_60, _DUE_ON_RECEIPT = "1", "2", "3", "4"
_TERM_DAYS = {_NET_15: 15, _NET_30: 30, _NET_60: 60, _DUE_ON_RECEIPT: 0}
_SETUP_STAMP = format_datetime(datetime(2023, 1, 9, 8, 0, tzinfo=UTC))


def _setup_records() -> dict[str, dict[str, Record]]:
    stamp = {"lastModifiedDate": _SETUP_STAMP}
    currencies = {
        "1": {"id": "1", "name": "US Dollar", "symbol": "USD", "isBaseCurrency": True},
        "2": {"id": "2", "name": "British Pound", "symbol": "GBP", "isBaseCurrency": False},
        "3": {"id": "3", "name": "Canadian Dollar", "symbol": "CAD", "isBaseCurrency": False},
        "4": {"id": "4", "name": "Euro", "symbol": "EUR", "isBaseCurrency": False},
    }
    subsidiaries = {
        "1": {
            "id": "1",
            "name": "Stratum Consulting Inc.",
            "legalName": "Stratum Consulting Inc.",
            "country": "US",
            "currency": "1",
            "externalId": "US01",
        },
        "2": {
            "id": "2",
            "name": "Stratum Consulting UK Ltd",
            "legalName": "Stratum Consulting UK Limited",
            "country": "GB",
            "currency": "2",
            "externalId": "GB01",
        },
        "3": {
            "id": "3",
            "name": "Stratum Consulting GmbH",
            "legalName": "Stratum Consulting GmbH",
            "country": "DE",
            "currency": "4",
            "externalId": "DE01",
        },
    }
    terms = {
        _NET_15: {"id": _NET_15, "name": "Net 15", "daysUntilNetDue": 15},
        _NET_30: {"id": _NET_30, "name": "Net 30", "daysUntilNetDue": 30},
        _NET_60: {"id": _NET_60, "name": "Net 60", "daysUntilNetDue": 60},
        _DUE_ON_RECEIPT: {"id": _DUE_ON_RECEIPT, "name": "Due on receipt", "daysUntilNetDue": 0},
    }
    employees = {
        str(number): {
            "id": str(number),
            "entityId": f"{first} {last}",
            "firstName": first,
            "lastName": last,
            "email": f"{first.lower()}.{last.lower()}@stratum-consulting.example",
            "subsidiary": SUBSIDIARY_IDS[entity],
            "laborCost": cost,
        }
        for number, (first, last, entity, cost) in enumerate(_EMPLOYEES, start=8)
    }
    items = {
        item_id: {"id": item_id, "itemId": code, "displayName": name, "rate": rate}
        for item_id, (code, name, rate) in _ITEMS.items()
    }
    tax_items = {
        str(number): {
            "id": str(number),
            "itemId": code,
            "description": f"Sales tax / VAT, {code}",
            "rate": rate,
            "externalId": code,
        }
        for number, (code, rate) in enumerate(_TAX_JURISDICTIONS, start=_FIRST_TAX_ITEM_NUMBER)
    }
    groups: dict[str, dict[str, Record]] = {
        "currency": currencies,
        "subsidiary": subsidiaries,
        "term": terms,
        "employee": employees,
        "serviceItem": items,
        "salesTaxItem": tax_items,
    }
    for records in groups.values():
        for record in records.values():
            record.setdefault("isInactive", False)
            record.setdefault("externalId", None)
            record.update(stamp)
    return groups


_US_STATES = (
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
)
_GERMAN_STATES = (
    "BW",
    "BY",
    "BE",
    "BB",
    "HB",
    "HH",
    "HE",
    "MV",
    "NI",
    "NW",
    "RP",
    "SL",
    "SN",
    "ST",
    "SH",
    "TH",
)
# Every jurisdiction the Salesforce seed's accounts name (US states, GB, German states), with a rate.
_TAX_JURISDICTIONS: tuple[tuple[str, float], ...] = (
    *((f"US-{state}", 0.0 if state in ("DE", "MT", "NH", "OR") else 6.0) for state in _US_STATES),
    ("GB", 20.0),
    *((f"DE-{state}", 19.0) for state in _GERMAN_STATES),
)
_FIRST_TAX_ITEM_NUMBER = 201

_EMPLOYEES = (
    ("Alex", "Chen", "US01", 95.0),
    ("Maya", "Patel", "US01", 110.0),
    ("Daniel", "Brooks", "US01", 85.0),
    ("Sara", "Lindqvist", "US01", 120.0),
    ("Oliver", "Grant", "GB01", 80.0),
    ("Emily", "Carter", "GB01", 90.0),
    ("Hannah", "Weber", "DE01", 88.0),
    ("Lukas", "Schmidt", "DE01", 84.0),
)
_EMPLOYEES_BY_ENTITY = {
    entity: tuple(str(number) for number, row in enumerate(_EMPLOYEES, start=8) if row[2] == entity)
    for entity in SUBSIDIARY_IDS
}

_CONSULTING, _PROJECT_MANAGEMENT, _ARCHITECTURE, _FIXED_FEE, _RETAINER = "101", "102", "103", "104", "105"
_ITEMS = {
    _CONSULTING: ("PS-CONSULT", "Professional Services - Consulting", 200.0),
    _PROJECT_MANAGEMENT: ("PS-PM", "Professional Services - Project Management", 175.0),
    _ARCHITECTURE: ("PS-ARCH", "Professional Services - Solution Architecture", 250.0),
    _FIXED_FEE: ("PS-FIXED", "Fixed Fee Services", 0.0),
    _RETAINER: ("PS-RETAINER", "Managed Services Retainer", 0.0),
}
_HOURLY_ITEMS = (_CONSULTING, _PROJECT_MANAGEMENT, _ARCHITECTURE)

# ---------------------------------------------------------------------------------------------------------
# Well-known records
# ---------------------------------------------------------------------------------------------------------

GLOBEX_CUSTOMER_ID = "1001"
DUPLICATE_CUSTOMER_ID = "1002"
DEMO_CUSTOMER_ID = "1003"
UK_CUSTOMER_ID = "1004"
DE_CUSTOMER_ID = "1005"
INACTIVE_CUSTOMER_ID = "1006"
CHILD_CUSTOMER_ID = "1007"
APOSTROPHE_CUSTOMER_ID = "1008"

DEMO_PROJECT_ID = "3001"
MILESTONE_PROJECT_ID = "3002"
RETAINER_PROJECT_ID = "3003"

MILESTONE_BILLING_SCHEDULE_ID = "1"
MONTHLY_BILLING_SCHEDULE_ID = "2"
_QUARTERLY_BILLING_SCHEDULE_ID = "3"
TM_BILLING_SCHEDULE_ID = "4"

OPEN_INVOICE_ID = "10001"
PAID_INVOICE_ID = "10002"
PARTIALLY_PAID_INVOICE_ID = "10003"
OVERDUE_INVOICE_ID = "10004"
PAYMENT_ID = "20001"
PARTIAL_PAYMENT_ID = "20002"
TIME_BILL_ID = "1"
PENDING_TIME_BILL_ID = "2"

INVOICE_COUNT = 300
_FIRST_INVOICE_NUMBER = 10001
_FIRST_PAYMENT_NUMBER = 20001
_FIRST_SALES_ORDER_NUMBER = 30001
_FIRST_CONTACT_NUMBER = 2001
_FIRST_FILLER_CUSTOMER_NUMBER = 1009
# Globex opportunities that closed at least this long ago were activated before Stratum existed.
_ACTIVATED_BEFORE = SEED_DATE - timedelta(days=21)


@dataclass(frozen=True, slots=True)
class _CustomerSeed:
    id: str
    name: str
    entity: str
    domain: str
    tax_id: str | None = None
    external_id: str | None = None
    parent: str | None = None
    inactive: bool = False
    url: str | None = None


_WELL_KNOWN_CUSTOMERS = (
    _CustomerSeed(
        GLOBEX_CUSTOMER_ID,
        "Globex Professional Services",
        "US01",
        "globex-ps.example",
        "94-3216547",
        external_id=salesforce.BIG_ACCOUNT_ID,
    ),
    # Keyed in by finance years ago: same company as the Salesforce account (same tax id, same domain in
    # another spelling), different punctuation, no link.
    _CustomerSeed(
        DUPLICATE_CUSTOMER_ID,
        "Wayne Capital Partners, L.L.C.",
        "US01",
        "wayne-capital.example",
        "04-7654321",
        url="http://wayne-capital.example/",
    ),
    _CustomerSeed(
        DEMO_CUSTOMER_ID, "Contoso Pharmaceuticals Inc", "US01", "contoso-pharma.example", "23-1234567"
    ),
    _CustomerSeed(
        UK_CUSTOMER_ID, "Fabrikam Retail Group plc", "GB01", "fabrikam-retail.example", "GB246813579"
    ),
    _CustomerSeed(
        DE_CUSTOMER_ID, "Müller & Söhne Maschinenbau AG", "DE01", "mueller-soehne.example", "DE298765432"
    ),
    _CustomerSeed(
        INACTIVE_CUSTOMER_ID,
        "Tyrell Advisory Corp",
        "US01",
        "tyrell-advisory.example",
        "36-9876543",
        inactive=True,
    ),
    _CustomerSeed(
        CHILD_CUSTOMER_ID,
        "Globex Federal Services LLC",
        "US01",
        "globex-federal.example",
        "52-1472583",
        parent=GLOBEX_CUSTOMER_ID,
    ),
    _CustomerSeed(
        APOSTROPHE_CUSTOMER_ID, "O'Neill & Partners LLP", "GB01", "oneill-partners.example", "GB135792468"
    ),
)

_FILLER_CUSTOMERS = (
    ("Acme Analytics Corp", "US01"),
    ("Blue Harbor Logistics Inc", "US01"),
    ("Cobalt Ridge Energy LLC", "US01"),
    ("Crestview Medical Group", "US01"),
    ("Dunmore Insurance Holdings", "US01"),
    ("Evergreen Capital Advisors LLC", "US01"),
    ("Fairway Hospitality Group", "US01"),
    ("Granite Peak Manufacturing", "US01"),
    ("Harborview Financial Inc", "US01"),
    ("Ironwood Construction Co", "US01"),
    ("Juniper Telecom Inc", "US01"),
    ("Keystone Retail Partners", "US01"),
    ("Lakeshore Credit Union", "US01"),
    ("Meridian Biotech Inc", "US01"),
    ("Northstar Aerospace Corp", "US01"),
    ("Pinecrest University", "US01"),
    ("Quantum Freight Systems", "US01"),
    ("Redwood Media Holdings", "US01"),
    ("Albion Water plc", "GB01"),
    ("Brightstone Housing Association", "GB01"),
    ("Cavendish Legal LLP", "GB01"),
    ("Kestrel Insurance Group Ltd", "GB01"),
    ("Thames Valley Logistics Ltd", "GB01"),
    ("Westminster Asset Management Ltd", "GB01"),
    ("Yorkshire Building Products Ltd", "GB01"),
    ("Alpenblick Versicherung AG", "DE01"),
    ("Bergmann Logistik GmbH", "DE01"),
    ("Hanse Energie GmbH", "DE01"),
    ("Rheinland Kliniken gGmbH", "DE01"),
    ("Schwarzwald Präzisionstechnik GmbH", "DE01"),
    ("Nordlicht Medien GmbH", "DE01"),
    ("Isar Finanzdienstleistungen AG", "DE01"),
)

_FIRST_NAMES = (
    "James",
    "Olivia",
    "Noah",
    "Amelia",
    "Lucas",
    "Sophie",
    "Ethan",
    "Chloe",
    "Felix",
    "Clara",
    "Henry",
    "Isla",
    "Jonas",
    "Lena",
    "Mateo",
    "Priya",
    "Ravi",
    "Grace",
    "Tomás",
    "Anika",
)
_LAST_NAMES = (
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Fischer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Nguyen",
    "Kowalski",
    "Murphy",
    "O'Brien",
    "Rossi",
    "Garcia",
    "Khan",
)
_TITLES = (
    "Accounts Payable Manager",
    "Financial Controller",
    "Head of Procurement",
    "CFO",
    "Finance Director",
    "Billing Coordinator",
)
_PHONE_PREFIX = {"US01": "+1 212 555 ", "GB01": "+44 20 7946 ", "DE01": "+49 89 1234 "}
_SERVICES = (
    "Cloud Migration",
    "Data Platform Modernisation",
    "ERP Implementation",
    "Cybersecurity Review",
    "Operating Model Advisory",
    "Analytics Enablement",
    "Process Automation",
    "Finance Transformation",
)
_BILLING_TYPE_BY_MODEL = {
    "Time and Materials": "TM",
    "Fixed Fee": "FBI",
    "Milestone": "FBM",
    "Retainer": "CB",
}
_SCHEDULE_BY_BILLING_TYPE = {
    "TM": TM_BILLING_SCHEDULE_ID,
    "FBI": MONTHLY_BILLING_SCHEDULE_ID,
    "FBM": None,
    "CB": _QUARTERLY_BILLING_SCHEDULE_ID,
}


def _moment(rng: random.Random, day: date) -> datetime:
    """A working-hours moment on `day`, never after `SEED_NOW`."""
    moment = datetime.combine(day, time(rng.randrange(7, 19), rng.randrange(0, 60), rng.randrange(0, 60)))
    return min(moment.replace(tzinfo=UTC), SEED_NOW)


def _stamp(rng: random.Random, day: date) -> str:
    return format_datetime(_moment(rng, day))


def _customer_record(seed: _CustomerSeed, rng: random.Random) -> Record:
    created = _moment(rng, SEED_DATE - timedelta(days=rng.randrange(500, 1500)))
    modified = _moment(rng, created.date() + timedelta(days=rng.randrange(20, 400)))
    subsidiary = SUBSIDIARY_IDS[seed.entity]
    currency = {"US01": "1", "GB01": "2", "DE01": "4"}[seed.entity]
    return {
        "id": seed.id,
        "entityId": f"C{seed.id}",
        "companyName": seed.name,
        "isPerson": False,
        "externalId": seed.external_id,
        "subsidiary": subsidiary,
        "currency": currency,
        "email": f"accounts.payable@{seed.domain}",
        "phone": _PHONE_PREFIX[seed.entity] + f"{rng.randrange(1000, 10000)}",
        "url": seed.url or f"https://www.{seed.domain}",
        "vatRegNumber": seed.tax_id,
        "taxable": None,
        "taxItem": None,
        "addressBook": [],
        "terms": _NET_60 if seed.entity == "US01" and rng.random() < 0.15 else _NET_30,
        "creditLimit": float(rng.randrange(5, 60) * 10_000),
        "parent": seed.parent,
        "isInactive": seed.inactive,
        "dateCreated": format_datetime(created),
        "lastModifiedDate": format_datetime(max(created, modified)),
    }


def _contact_record(number: int, customer: Record, rng: random.Random) -> Record:
    first = _FIRST_NAMES[rng.randrange(len(_FIRST_NAMES))]
    last = _LAST_NAMES[rng.randrange(len(_LAST_NAMES))]
    domain = customer["url"].split("//", 1)[-1].removeprefix("www.").split("/", 1)[0]
    local = f"{first}.{last}".lower().replace("'", "").replace("á", "a")
    created = customer["dateCreated"]
    return {
        "id": str(number),
        "entityId": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "title": _TITLES[rng.randrange(len(_TITLES))],
        "email": f"{local}@{domain}",
        "phone": customer["phone"][:-4] + f"{rng.randrange(1000, 10000)}",
        "company": customer["id"],
        "subsidiary": customer["subsidiary"],
        "externalId": None,
        "isInactive": False,
        "dateCreated": created,
        "lastModifiedDate": created,
    }


@dataclass(frozen=True, slots=True)
class _ProjectSeed:
    id: str
    name: str
    customer: str
    billing_type: str
    start: date
    end: date
    status: str = "2"
    schedule: str | None = None
    external_id: str | None = None


def _job_record(seed: _ProjectSeed, customer: Record, rng: random.Random) -> Record:
    created = _moment(rng, seed.start - timedelta(days=rng.randrange(3, 15)))
    modified = _moment(rng, min(SEED_DATE, seed.start + timedelta(days=rng.randrange(0, 60))))
    entity = next(code for code, sub in SUBSIDIARY_IDS.items() if sub == customer["subsidiary"])
    managers = _EMPLOYEES_BY_ENTITY[entity]
    return {
        "id": seed.id,
        "entityId": f"PRJ{seed.id}",
        "companyName": seed.name,
        "parent": seed.customer,
        "subsidiary": customer["subsidiary"],
        "currency": customer["currency"],
        "startDate": seed.start.isoformat(),
        "projectedEndDate": seed.end.isoformat(),
        "jobBillingType": seed.billing_type,
        "billingSchedule": seed.schedule,
        "entityStatus": seed.status,
        "projectManager": managers[rng.randrange(len(managers))],
        "externalId": seed.external_id,
        "isInactive": False,
        "dateCreated": format_datetime(created),
        "lastModifiedDate": format_datetime(max(created, modified)),
    }


def _billing_schedules(rng: random.Random) -> dict[str, Record]:
    def schedule(
        schedule_id: str, name: str, schedule_type: str, frequency: str | None, **extra: Any
    ) -> Record:
        record: Record = {
            "id": schedule_id,
            "name": name,
            "scheduleType": schedule_type,
            "frequency": frequency,
            "initialAmount": 0.0,
            "recurrenceCount": None,
            "inArrears": False,
            "project": None,
            "milestones": [],
            "externalId": None,
            "isInactive": False,
            "lastModifiedDate": _stamp(rng, SEED_DATE - timedelta(days=rng.randrange(90, 700))),
        }
        record.update(extra)
        return record

    milestones = [
        {
            "line": 1,
            "milestoneDate": (SEED_DATE - timedelta(days=60)).isoformat(),
            "milestoneAmount": 30.0,
            "comments": "Discovery and design signed off",
            "milestoneCompleted": True,
        },
        {
            "line": 2,
            "milestoneDate": (SEED_DATE + timedelta(days=15)).isoformat(),
            "milestoneAmount": 40.0,
            "comments": "Pilot stores live",
            "milestoneCompleted": False,
        },
        {
            "line": 3,
            "milestoneDate": (SEED_DATE + timedelta(days=90)).isoformat(),
            "milestoneAmount": 30.0,
            "comments": "Estate-wide rollout complete",
            "milestoneCompleted": False,
        },
    ]
    return {
        MILESTONE_BILLING_SCHEDULE_ID: schedule(
            MILESTONE_BILLING_SCHEDULE_ID,
            "Fabrikam Store Analytics - Milestones",
            "FBM",
            None,
            project=MILESTONE_PROJECT_ID,
            milestones=milestones,
        ),
        MONTHLY_BILLING_SCHEDULE_ID: schedule(
            MONTHLY_BILLING_SCHEDULE_ID,
            "Monthly in Arrears (12)",
            "STDRD",
            "MONTHLY",
            recurrenceCount=12,
            inArrears=True,
        ),
        _QUARTERLY_BILLING_SCHEDULE_ID: schedule(
            _QUARTERLY_BILLING_SCHEDULE_ID,
            "Quarterly in Advance (4)",
            "STDRD",
            "QUARTERLY",
            recurrenceCount=4,
        ),
        TM_BILLING_SCHEDULE_ID: schedule(
            TM_BILLING_SCHEDULE_ID,
            "Time and Materials - Monthly",
            "TM",
            "MONTHLY",
            inArrears=True,
        ),
    }


@dataclass(frozen=True, slots=True)
class _InvoiceSeed:
    id: str
    customer: str
    job: str | None
    tran_date: date
    lines: tuple[tuple[str, float, float, str], ...]  # item, quantity, rate, description
    paid: float  # the share of the total paid, 0..1
    paid_on: date | None = None
    payment_id: str | None = None


def _lines_total(lines: list[Record]) -> float:
    return round(float(sum(line["amount"] for line in lines)), 2)


def _invoice_record(seed: _InvoiceSeed, customer: Record, rng: random.Random) -> tuple[Record, float]:
    lines = [
        {
            "line": number,
            "item": item,
            "description": description,
            "quantity": quantity,
            "rate": rate,
            "amount": round(quantity * rate, 2),
        }
        for number, (item, quantity, rate, description) in enumerate(seed.lines, start=1)
    ]
    total = _lines_total(lines)
    paid = round(total * seed.paid, 2)
    created = _moment(rng, seed.tran_date)
    modified = created if seed.paid_on is None else max(created, _moment(rng, seed.paid_on))
    terms = customer["terms"]
    record = {
        "id": seed.id,
        "tranId": f"INV{seed.id}",
        "entity": seed.customer,
        "job": seed.job,
        "subsidiary": customer["subsidiary"],
        "currency": customer["currency"],
        "tranDate": seed.tran_date.isoformat(),
        "dueDate": (seed.tran_date + timedelta(days=_TERM_DAYS[terms])).isoformat(),
        "terms": terms,
        "otherRefNum": f"PO-{rng.randrange(10000, 99999)}" if rng.random() < 0.4 else None,
        "memo": None,
        "status": "B" if paid >= total else "A",
        "subtotal": total,
        "taxTotal": 0.0,
        "total": total,
        "amountPaid": paid,
        "amountRemaining": round(total - paid, 2),
        "item": lines,
        "externalId": None,
        "createdDate": format_datetime(created),
        "lastModifiedDate": format_datetime(modified),
    }
    return record, paid


def _payment_record(payment_id: str, invoice: Record, amount: float, day: date, rng: random.Random) -> Record:
    stamp = _stamp(rng, day)
    return {
        "id": payment_id,
        "tranId": f"PYMT{payment_id}",
        "customer": invoice["entity"],
        "subsidiary": invoice["subsidiary"],
        "currency": invoice["currency"],
        "tranDate": day.isoformat(),
        "payment": amount,
        "applied": amount,
        "unapplied": 0.0,
        # Older receipts have been banked; the last fortnight's are still waiting to be deposited.
        "status": "C" if day < SEED_DATE - timedelta(days=14) else "B",
        "memo": None,
        "apply": [{"line": 1, "doc": invoice["id"], "apply": True, "amount": amount}],
        "externalId": None,
        "createdDate": stamp,
        "lastModifiedDate": stamp,
    }


def _hourly_lines(rng: random.Random, count: int) -> tuple[tuple[str, float, float, str], ...]:
    lines = []
    for _ in range(count):
        item = _HOURLY_ITEMS[rng.randrange(len(_HOURLY_ITEMS))]
        base_rate = _ITEMS[item][2]
        rate = base_rate + rng.randrange(-2, 4) * 12.5
        hours = float(rng.randrange(4, 161)) + (0.5 if rng.random() < 0.3 else 0.0)
        lines.append((item, hours, rate, _ITEMS[item][1]))
    return tuple(lines)


def _fixed_lines(rng: random.Random, service: str) -> tuple[tuple[str, float, float, str], ...]:
    fee = float(rng.randrange(8, 120) * 500)
    if rng.random() < 0.25:
        fee = round(fee + rng.randrange(1, 100) * 7.35, 2)
    return ((_FIXED_FEE, 1.0, fee, f"{service} - fixed fee instalment"),)


def _paid_share(rng: random.Random, due: date) -> float:
    """How much of an invoice due on `due` has been paid by `SEED_NOW`: old ones mostly in full."""
    age = (SEED_DATE - due).days
    roll = rng.random()
    if age > 30:
        full, partial = 0.9, 0.04
    elif age > -10:
        full, partial = 0.45, 0.15
    else:
        full, partial = 0.10, 0.05
    if roll < full:
        return 1.0
    if roll < full + partial:
        return rng.choice((0.25, 0.4, 0.5, 0.6))
    return 0.0


def build_seed(seed: int) -> dict[str, dict[str, Record]]:
    """Build fresh seed records: ``{record type: {internal id: record}}`` for every type in `RECORD_TYPES`.

    Well-known records are identical for every seed; `seed` drives the filler (amounts, dates, which
    invoices are paid) and, through the Salesforce seed, which Globex deals already have projects. The
    result is the caller's to mutate.
    """
    template = _seed_template(seed)
    return {
        name: {record_id: _copy_record(record) for record_id, record in records.items()}
        for name, records in template.items()
    }


def _copy_record(record: Record) -> Record:
    # Sublists are the only nested values: lists of flat line dicts.
    return {
        key: [dict(line) for line in value] if isinstance(value, list) else value
        for key, value in record.items()
    }


@functools.lru_cache(maxsize=4)
def _seed_template(seed: int) -> dict[str, dict[str, Record]]:
    # Well-known records take their incidental values from a fixed generator so they never move with
    # the seed; the filler uses `seed`.
    fixed = random.Random(0)  # noqa: S311 - reproducible seed data, not security
    rng = random.Random(seed)  # noqa: S311 - as above
    records: dict[str, dict[str, Record]] = {name: {} for name in RECORD_TYPES}
    records.update(_setup_records())

    customers = records["customer"]
    for known in _WELL_KNOWN_CUSTOMERS:
        customers[known.id] = _customer_record(known, fixed)
    for offset, (name, entity) in enumerate(_FILLER_CUSTOMERS):
        number = str(_FIRST_FILLER_CUSTOMER_NUMBER + offset)
        slug = "".join(char for char in name.lower() if char.isascii() and char.isalnum())[:18]
        filler = _CustomerSeed(number, name, entity, f"{slug}.example", None)
        customers[number] = _customer_record(filler, rng)
        customers[number]["vatRegNumber"] = _tax_id(entity, rng)
    for offset, customer in enumerate(customers.values()):
        contact = _contact_record(_FIRST_CONTACT_NUMBER + offset, customer, rng if offset >= 8 else fixed)
        records["contact"][contact["id"]] = contact

    records["billingSchedule"] = _billing_schedules(fixed)
    jobs = records["job"]
    for project in _well_known_projects():
        jobs[project.id] = _job_record(project, customers[project.customer], fixed)
    for project in _filler_projects(seed, rng, len(jobs)):
        jobs[project.id] = _job_record(project, customers[project.customer], rng)

    invoices, payments = records["invoice"], records["customerPayment"]
    for invoice_seed in [*_well_known_invoices(), *_filler_invoices(rng, customers, jobs)]:
        generator = fixed if int(invoice_seed.id) <= int(OVERDUE_INVOICE_ID) else rng
        customer = customers[invoice_seed.customer]
        invoice, paid = _invoice_record(invoice_seed, customer, generator)
        invoices[invoice["id"]] = invoice
        if paid > 0:
            payment_id = invoice_seed.payment_id or str(_FIRST_PAYMENT_NUMBER + len(payments))
            paid_on = invoice_seed.paid_on or SEED_DATE
            payments[payment_id] = _payment_record(payment_id, invoice, paid, paid_on, generator)

    records["salesOrder"] = _sales_orders(rng, customers, jobs)
    records["timeBill"] = _time_bills(fixed, rng, jobs)
    return records


def _tax_id(entity: str, rng: random.Random) -> str:
    if entity == "US01":
        return f"{rng.randrange(10, 99)}-{rng.randrange(1000000, 9999999)}"
    if entity == "GB01":
        return f"GB{rng.randrange(100000000, 999999999)}"
    return f"DE{rng.randrange(100000000, 999999999)}"


def _well_known_projects() -> list[_ProjectSeed]:
    return [
        _ProjectSeed(
            DEMO_PROJECT_ID,
            "Contoso - Clinical Trials Data Hub",
            DEMO_CUSTOMER_ID,
            "TM",
            SEED_DATE - timedelta(days=120),
            SEED_DATE + timedelta(days=150),
            schedule=TM_BILLING_SCHEDULE_ID,
        ),
        _ProjectSeed(
            MILESTONE_PROJECT_ID,
            "Fabrikam - Store Analytics Rollout",
            UK_CUSTOMER_ID,
            "FBM",
            SEED_DATE - timedelta(days=75),
            SEED_DATE + timedelta(days=95),
            schedule=MILESTONE_BILLING_SCHEDULE_ID,
        ),
        _ProjectSeed(
            RETAINER_PROJECT_ID,
            "Müller - SAP Finance Support Retainer",
            DE_CUSTOMER_ID,
            "CB",
            SEED_DATE - timedelta(days=200),
            SEED_DATE + timedelta(days=165),
            schedule=MONTHLY_BILLING_SCHEDULE_ID,
        ),
    ]


def _filler_projects(seed: int, rng: random.Random, existing: int) -> list[_ProjectSeed]:
    projects: list[_ProjectSeed] = []
    number = int(DEMO_PROJECT_ID) + existing
    # Globex's deals that closed a while ago were activated: their projects carry the Opportunity Id.
    opportunities = salesforce.build_seed(seed)["Opportunity"]
    activated = sorted(
        (
            opportunity
            for opportunity in opportunities.values()
            if opportunity["AccountId"] == salesforce.BIG_ACCOUNT_ID
            and opportunity["IsWon"]
            and date.fromisoformat(opportunity["CloseDate"]) <= _ACTIVATED_BEFORE
        ),
        key=lambda opportunity: (opportunity["CloseDate"], opportunity["Id"]),
    )
    for opportunity in activated:
        closed = date.fromisoformat(opportunity["CloseDate"])
        start = closed + timedelta(days=rng.randrange(5, 15))
        end = start + timedelta(days=rng.randrange(60, 300))
        billing_type = _BILLING_TYPE_BY_MODEL[opportunity["Billing_Model__c"]]
        projects.append(
            _ProjectSeed(
                str(number),
                opportunity["Name"][:83],
                GLOBEX_CUSTOMER_ID,
                billing_type,
                start,
                end,
                status="1" if end < SEED_DATE else "2",
                schedule=_SCHEDULE_BY_BILLING_TYPE[billing_type],
                external_id=opportunity["Id"],
            )
        )
        number += 1
    # Every other filler customer has a project of its own.
    for offset in range(0, len(_FILLER_CUSTOMERS), 2):
        customer = str(_FIRST_FILLER_CUSTOMER_NUMBER + offset)
        name, _ = _FILLER_CUSTOMERS[offset]
        short = name.split(" ")[0]
        service = _SERVICES[rng.randrange(len(_SERVICES))]
        start = SEED_DATE - timedelta(days=rng.randrange(20, 400))
        end = start + timedelta(days=rng.randrange(90, 360))
        billing_type = ("TM", "TM", "FBI", "FBM", "CB")[rng.randrange(5)]
        projects.append(
            _ProjectSeed(
                str(number),
                f"{short} - {service}",
                customer,
                billing_type,
                start,
                end,
                status="1" if end < SEED_DATE else "2",
                schedule=_SCHEDULE_BY_BILLING_TYPE[billing_type],
            )
        )
        number += 1
    return projects


def _well_known_invoices() -> list[_InvoiceSeed]:
    consulting = _ITEMS[_CONSULTING][1]
    management = _ITEMS[_PROJECT_MANAGEMENT][1]
    return [
        _InvoiceSeed(
            OPEN_INVOICE_ID,
            DEMO_CUSTOMER_ID,
            DEMO_PROJECT_ID,
            SEED_DATE - timedelta(days=10),
            ((_CONSULTING, 120.0, 225.0, consulting), (_PROJECT_MANAGEMENT, 16.0, 175.0, management)),
            0.0,
        ),
        _InvoiceSeed(
            PAID_INVOICE_ID,
            DEMO_CUSTOMER_ID,
            DEMO_PROJECT_ID,
            SEED_DATE - timedelta(days=40),
            ((_CONSULTING, 96.5, 225.0, consulting),),
            1.0,
            SEED_DATE - timedelta(days=12),
            PAYMENT_ID,
        ),
        _InvoiceSeed(
            PARTIALLY_PAID_INVOICE_ID,
            UK_CUSTOMER_ID,
            MILESTONE_PROJECT_ID,
            SEED_DATE - timedelta(days=58),
            ((_FIXED_FEE, 1.0, 55890.0, "Store Analytics - milestone 1 (30%)"),),
            0.4,
            SEED_DATE - timedelta(days=20),
            PARTIAL_PAYMENT_ID,
        ),
        _InvoiceSeed(
            OVERDUE_INVOICE_ID,
            DE_CUSTOMER_ID,
            RETAINER_PROJECT_ID,
            SEED_DATE - timedelta(days=75),
            ((_RETAINER, 1.0, 18500.0, "SAP Finance Support Retainer - December"),),
            0.0,
        ),
    ]


def _filler_invoices(
    rng: random.Random, customers: Mapping[str, Record], jobs: Mapping[str, Record]
) -> list[_InvoiceSeed]:
    jobs_by_customer: dict[str, list[Record]] = {}
    for project in jobs.values():
        jobs_by_customer.setdefault(project["parent"], []).append(project)
    # Big accounts are invoiced more often; the inactive customer stopped a year ago.
    weights = {
        customer_id: 12
        if customer_id in (GLOBEX_CUSTOMER_ID, DEMO_CUSTOMER_ID)
        else 2
        if customer_id == INACTIVE_CUSTOMER_ID
        else 5
        for customer_id in customers
    }
    population = list(weights)
    chosen = rng.choices(population, weights=[weights[key] for key in population], k=INVOICE_COUNT - 4)
    invoices = []
    for offset, customer_id in enumerate(chosen):
        number = str(_FIRST_INVOICE_NUMBER + 4 + offset)
        earliest = 400 if customer_id != INACTIVE_CUSTOMER_ID else 700
        latest = 0 if customer_id != INACTIVE_CUSTOMER_ID else 380
        tran_date = SEED_DATE - timedelta(days=rng.randrange(latest, earliest))
        candidates = jobs_by_customer.get(customer_id, [])
        job = candidates[rng.randrange(len(candidates))] if candidates else None
        service = _SERVICES[rng.randrange(len(_SERVICES))]
        if (job is not None and job["jobBillingType"] == "TM") or (job is None and rng.random() < 0.6):
            lines = _hourly_lines(rng, rng.randrange(1, 4))
        else:
            lines = _fixed_lines(rng, job["companyName"] if job is not None else service)
        due = tran_date + timedelta(days=_TERM_DAYS[customers[customer_id]["terms"]])
        share = _paid_share(rng, due)
        paid_on = None
        if share > 0:
            latest_payment = max(1, min(75, (SEED_DATE - tran_date).days))
            paid_on = tran_date + timedelta(days=rng.randrange(0, latest_payment + 1))
        invoices.append(
            _InvoiceSeed(
                number, customer_id, None if job is None else job["id"], tran_date, lines, share, paid_on
            )
        )
    return invoices


def _sales_orders(
    rng: random.Random, customers: Mapping[str, Record], jobs: Mapping[str, Record]
) -> dict[str, Record]:
    orders: dict[str, Record] = {}
    open_jobs = [job for job in jobs.values() if job["entityStatus"] == "2"][:6]
    for offset, job in enumerate(open_jobs):
        order_id = str(_FIRST_SALES_ORDER_NUMBER + offset)
        customer = customers[job["parent"]]
        day = date.fromisoformat(job["startDate"]) - timedelta(days=rng.randrange(2, 10))
        fee = float(rng.randrange(20, 200) * 1000)
        stamp = _stamp(rng, min(day, SEED_DATE))
        orders[order_id] = {
            "id": order_id,
            "tranId": f"SO{order_id}",
            "entity": customer["id"],
            "job": job["id"],
            "subsidiary": customer["subsidiary"],
            "currency": customer["currency"],
            "tranDate": min(day, SEED_DATE).isoformat(),
            "memo": f"Statement of work for {job['companyName']}",
            "status": "F",
            "subtotal": fee,
            "taxTotal": 0.0,
            "total": fee,
            "item": [
                {
                    "line": 1,
                    "item": _FIXED_FEE,
                    "description": "Statement of work",
                    "quantity": 1.0,
                    "rate": fee,
                    "amount": fee,
                }
            ],
            "externalId": None,
            "createdDate": stamp,
            "lastModifiedDate": stamp,
        }
    return orders


def _time_bills(fixed: random.Random, rng: random.Random, jobs: Mapping[str, Record]) -> dict[str, Record]:
    bills: dict[str, Record] = {}

    def add(
        job: Record,
        employee: str,
        day: date,
        hours: float,
        approval: str,
        billable: bool,
        item: str,
        rate: float,
        generator: random.Random,
    ) -> None:
        bill_id = str(len(bills) + 1)
        bills[bill_id] = {
            "id": bill_id,
            "employee": employee,
            "customer": job["id"],
            "item": item,
            "subsidiary": job["subsidiary"],
            "tranDate": day.isoformat(),
            "hours": hours,
            "isBillable": billable,
            "rate": rate,
            "approvalStatus": approval,
            "memo": None,
            "externalId": None,
            "lastModifiedDate": _stamp(generator, min(day + timedelta(days=1), SEED_DATE)),
        }

    demo = jobs[DEMO_PROJECT_ID]
    add(demo, "8", SEED_DATE - timedelta(days=3), 7.5, "2", True, _CONSULTING, 225.0, fixed)
    add(demo, "9", SEED_DATE - timedelta(days=1), 8.0, "1", True, _CONSULTING, 225.0, fixed)
    time_and_materials = [
        job for job in jobs.values() if job["jobBillingType"] == "TM" and job["entityStatus"] == "2"
    ]
    for job in time_and_materials:
        entity = next(code for code, sub in SUBSIDIARY_IDS.items() if sub == job["subsidiary"])
        team = _EMPLOYEES_BY_ENTITY[entity]
        for _ in range(rng.randrange(12, 24)):
            day = SEED_DATE - timedelta(days=rng.randrange(0, 60))
            if day.weekday() >= 5:
                day -= timedelta(days=2)
            hours = rng.choice((2.0, 4.0, 6.0, 7.5, 8.0))
            # Anything older than a week has been through approval.
            approval = "1" if (SEED_DATE - day).days < 7 else ("2" if rng.random() < 0.95 else "3")
            item = _HOURLY_ITEMS[rng.randrange(len(_HOURLY_ITEMS))]
            employee = team[rng.randrange(len(team))]
            add(job, employee, day, hours, approval, rng.random() < 0.9, item, _ITEMS[item][2], rng)
    return bills
