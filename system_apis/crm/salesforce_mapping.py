"""Salesforce records <-> canonical CRM objects: the vendor's field names live here and nowhere else.

Records are decoded into Structs that tolerate unknown fields (a Salesforce org always has more fields than
we read) and whose currency fields are ``Decimal`` read straight from the JSON text, so money never passes
through a float. The one write the gateway makes (activation written back to the opportunity) is built
here too. The functions are pure: no I/O, no clock.

The gateway's own objects and fields in the org (custom, so a customer org must have them deployed):

- Opportunity: ``Billing_Model__c``, ``Legal_Entity__c``, ``Contract_Terms__c`` (long text),
  ``Activation_Status__c`` (picklist, see ``ACTIVATION_STATUS_PICKLIST``), ``Project_Id__c`` (the PSA
  project), ``ERP_Project_Id__c``, ``ERP_Customer_Id__c``;
- ``Opportunity_Milestone__c`` (master-detail ``Opportunity__c``, ``Name``, ``Amount__c``, ``Due_Date__c``):
  the deal's billable milestones;
- ``Rate_Card_Line__c`` (master-detail ``Opportunity__c``, ``Role__c``, ``Rate__c``, ``Unit__c`` "Hour" or
  "Day"): the rates sold per role;
- Opportunity deal terms for billing: ``Retainer_Monthly_Fee__c`` (currency), ``Retainer_Included_Hours__c``
  (Number(6,2)), ``Payment_Terms_Days__c`` (Number(3,0)); and the invoice totals the gateway writes:
  ``Invoiced_Amount__c``, ``Paid_Amount__c``, ``Overdue_Amount__c`` (currency);
- ``Stratum_Invoice__c``: one record per ERP invoice (VENDORS.md, "Billing, payments and change signals"),
  upserted by ``ERP_Invoice_Id__c`` (Text(64), External ID, Unique), with lookups ``Opportunity__c`` and
  ``Account__c``, ``Invoice_Number__c``, ``Status__c`` (picklist, see ``INVOICE_STATUS_PICKLIST``),
  ``Total__c``, ``Balance__c`` (currency), ``Issue_Date__c``, ``Due_Date__c``, ``ERP_Updated_At__c``
  (datetime: the ERP's change time, which orders updates) and ``CurrencyIsoCode``.

Like ``Opportunity.CurrencyIsoCode``, the children's ``CurrencyIsoCode`` assumes a multi-currency org (a
detail record's is its master's).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

import msgspec

from contracts.models.billing import CrmInvoiceStatus, CrmInvoiceStatusUpdate
from contracts.models.common import Money, SystemIds, is_iso_4217
from contracts.models.crm import (
    ActivationStatus,
    Address,
    BillingModel,
    Contact,
    Customer,
    DealMilestone,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityStage,
    RateCardLine,
    RateUnit,
    RetainerTerms,
)

__all__ = [
    "ACCOUNT_FIELDS",
    "ACTIVATION_STATUS_PICKLIST",
    "CONTACT_FIELDS",
    "CUSTOM_FIELDS",
    "INVOICE_FIELDS",
    "INVOICE_OBJECT",
    "INVOICE_STATUS_PICKLIST",
    "INVOICE_TOTAL_FIELDS",
    "MILESTONE_FIELDS",
    "MILESTONE_OBJECT",
    "MILESTONE_RELATIONSHIP",
    "OPPORTUNITY_FIELDS",
    "RATE_CARD_LINE_FIELDS",
    "RATE_CARD_LINE_OBJECT",
    "RATE_CARD_LINE_RELATIONSHIP",
    "SELECT_LISTS",
    "STRATUM_CALL_OPTIONS",
    "STRATUM_CLIENT_ID",
    "CustomField",
    "SalesforceAccount",
    "SalesforceContact",
    "SalesforceInvoice",
    "SalesforceMilestone",
    "SalesforceOpportunity",
    "SalesforceOpportunityWithTerms",
    "SalesforceQueryPage",
    "SalesforceRateCardLine",
    "account_to_customer",
    "activation_status_from_picklist",
    "activation_update_body",
    "billing_model_from_picklist",
    "contact_from_record",
    "decode_account",
    "decode_opportunity",
    "decode_query_page",
    "invoice_body",
    "invoice_matches",
    "invoice_status_from_picklist",
    "invoice_totals",
    "known_stage_picklist_values",
    "milestone_from_record",
    "opportunity_from_record",
    "parse_salesforce_datetime",
    "rate_card_line_from_record",
    "stage_from_picklist",
    "stage_picklist_values",
    "totals_body",
]

R = TypeVar("R")


class SalesforceAccount(msgspec.Struct, kw_only=True, frozen=True):
    """The Account fields the gateway reads; anything else the org returns is ignored."""

    id: str = msgspec.field(name="Id")
    name: str = msgspec.field(name="Name")
    website: str | None = msgspec.field(default=None, name="Website")
    industry: str | None = msgspec.field(default=None, name="Industry")
    currency_iso_code: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    parent_id: str | None = msgspec.field(default=None, name="ParentId")
    owner_id: str | None = msgspec.field(default=None, name="OwnerId")
    billing_street: str | None = msgspec.field(default=None, name="BillingStreet")
    billing_city: str | None = msgspec.field(default=None, name="BillingCity")
    billing_postal_code: str | None = msgspec.field(default=None, name="BillingPostalCode")
    billing_state: str | None = msgspec.field(default=None, name="BillingState")
    billing_country: str | None = msgspec.field(default=None, name="BillingCountry")
    legal_entity: str | None = msgspec.field(default=None, name="Legal_Entity__c")
    tax_jurisdiction: str | None = msgspec.field(default=None, name="Tax_Jurisdiction__c")
    tax_id: str | None = msgspec.field(default=None, name="Tax_Id__c")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class SalesforceOpportunity(msgspec.Struct, kw_only=True, frozen=True):
    """The Opportunity fields the gateway reads. ``IsWon``/``IsClosed`` are derived by Salesforce from the
    stage and always present on a read, so their absence is a bad response."""

    id: str = msgspec.field(name="Id")
    name: str = msgspec.field(name="Name")
    stage_name: str = msgspec.field(name="StageName")
    is_won: bool = msgspec.field(name="IsWon")
    is_closed: bool = msgspec.field(name="IsClosed")
    account_id: str | None = msgspec.field(default=None, name="AccountId")
    amount: Decimal | None = msgspec.field(default=None, name="Amount")
    currency_iso_code: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    close_date: dt.date | None = msgspec.field(default=None, name="CloseDate")
    # A percent field: Salesforce sends it as a JSON number that may carry a fraction (e.g. 75.0).
    probability: Decimal | None = msgspec.field(default=None, name="Probability")
    billing_model: str | None = msgspec.field(default=None, name="Billing_Model__c")
    legal_entity: str | None = msgspec.field(default=None, name="Legal_Entity__c")
    project_id: str | None = msgspec.field(default=None, name="Project_Id__c")
    activation_status: str | None = msgspec.field(default=None, name="Activation_Status__c")
    erp_project_id: str | None = msgspec.field(default=None, name="ERP_Project_Id__c")
    erp_customer_id: str | None = msgspec.field(default=None, name="ERP_Customer_Id__c")
    contract_terms: str | None = msgspec.field(default=None, name="Contract_Terms__c")
    retainer_monthly_fee: Decimal | None = msgspec.field(default=None, name="Retainer_Monthly_Fee__c")
    retainer_included_hours: Decimal | None = msgspec.field(default=None, name="Retainer_Included_Hours__c")
    payment_terms_days: Decimal | None = msgspec.field(default=None, name="Payment_Terms_Days__c")
    owner_id: str | None = msgspec.field(default=None, name="OwnerId")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class SalesforceContact(msgspec.Struct, kw_only=True, frozen=True):
    """The Contact fields the gateway reads (``LastName`` is required on every Contact)."""

    id: str = msgspec.field(name="Id")
    last_name: str = msgspec.field(name="LastName")
    account_id: str | None = msgspec.field(default=None, name="AccountId")
    first_name: str | None = msgspec.field(default=None, name="FirstName")
    email: str | None = msgspec.field(default=None, name="Email")
    phone: str | None = msgspec.field(default=None, name="Phone")
    title: str | None = msgspec.field(default=None, name="Title")


class SalesforceMilestone(msgspec.Struct, kw_only=True, frozen=True):
    """An ``Opportunity_Milestone__c`` record: one billable milestone of a deal."""

    id: str = msgspec.field(name="Id")
    name: str = msgspec.field(name="Name")
    opportunity_id: str | None = msgspec.field(default=None, name="Opportunity__c")
    amount: Decimal | None = msgspec.field(default=None, name="Amount__c")
    due_date: dt.date | None = msgspec.field(default=None, name="Due_Date__c")
    currency_iso_code: str | None = msgspec.field(default=None, name="CurrencyIsoCode")


class SalesforceRateCardLine(msgspec.Struct, kw_only=True, frozen=True):
    """A ``Rate_Card_Line__c`` record: the hourly rate sold for one role on a deal."""

    id: str = msgspec.field(name="Id")
    role: str | None = msgspec.field(default=None, name="Role__c")
    opportunity_id: str | None = msgspec.field(default=None, name="Opportunity__c")
    rate: Decimal | None = msgspec.field(default=None, name="Rate__c")
    unit: str | None = msgspec.field(default=None, name="Unit__c")
    currency_iso_code: str | None = msgspec.field(default=None, name="CurrencyIsoCode")


class SalesforceInvoice(msgspec.Struct, kw_only=True, frozen=True):
    """A ``Stratum_Invoice__c`` record: one ERP invoice as sales see it."""

    id: str = msgspec.field(name="Id")
    erp_invoice_id: str | None = msgspec.field(default=None, name="ERP_Invoice_Id__c")
    opportunity_id: str | None = msgspec.field(default=None, name="Opportunity__c")
    account_id: str | None = msgspec.field(default=None, name="Account__c")
    number: str | None = msgspec.field(default=None, name="Invoice_Number__c")
    status: str | None = msgspec.field(default=None, name="Status__c")
    total: Decimal | None = msgspec.field(default=None, name="Total__c")
    balance: Decimal | None = msgspec.field(default=None, name="Balance__c")
    issue_date: dt.date | None = msgspec.field(default=None, name="Issue_Date__c")
    due_date: dt.date | None = msgspec.field(default=None, name="Due_Date__c")
    erp_updated_at: str | None = msgspec.field(default=None, name="ERP_Updated_At__c")
    currency_iso_code: str | None = msgspec.field(default=None, name="CurrencyIsoCode")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class SalesforceQueryPage(msgspec.Struct, Generic[R], kw_only=True, frozen=True):
    """One batch of a SOQL query result (``GET query/?q=`` or its ``nextRecordsUrl``)."""

    total_size: int = msgspec.field(name="totalSize")
    done: bool
    records: list[R]
    next_records_url: str | None = msgspec.field(default=None, name="nextRecordsUrl")


class SalesforceOpportunityWithTerms(SalesforceOpportunity, kw_only=True, frozen=True):
    """An Opportunity read with its deal milestones and rate card as parent-to-child subqueries.

    Salesforce nests each subquery's children under the relationship name as a query result of their own
    (``{"totalSize", "done", "records"}``), or ``null`` when the deal has none (SOQL and SOSL Reference,
    "Relationship Queries" / "Understanding Relationship Query Results": "the child records are returned
    as a nested QueryResult"; REST API Developer Guide, "Execute a SOQL Query", example with a nested
    ``Contacts`` result). A nested result may itself be unfinished (``done: false``) for a deal with many
    children; the adapter then reads that deal's children on their own."""

    milestones: SalesforceQueryPage[SalesforceMilestone] | None = msgspec.field(
        default=None, name="Opportunity_Milestones__r"
    )
    rate_card: SalesforceQueryPage[SalesforceRateCardLine] | None = msgspec.field(
        default=None, name="Rate_Card_Lines__r"
    )


# The client id the gateway's writes carry (REST API Developer Guide, "Call Options Header":
# ``Sforce-Call-Options: client=...``). Change Data Capture reports it in ``changeOrigin``
# (``com/salesforce/api/rest/61.0;client=stratum``), which is how the gateway recognises, and drops, the
# change events of its own writes (ChangeEventHeader, "changeOrigin ... Use this field to detect whether your
# app initiated the change to not process the change again").
STRATUM_CLIENT_ID = "stratum"
STRATUM_CALL_OPTIONS = {"Sforce-Call-Options": f"client={STRATUM_CLIENT_ID}"}

MILESTONE_OBJECT = "Opportunity_Milestone__c"
RATE_CARD_LINE_OBJECT = "Rate_Card_Line__c"
INVOICE_OBJECT = "Stratum_Invoice__c"
# The child relationships of the custom lookups to Opportunity (``Opportunity__c``): the names a
# parent-to-child subquery selects FROM (a custom relationship's name ends in ``__r``). They must match the
# field names of ``SalesforceOpportunityWithTerms``.
MILESTONE_RELATIONSHIP = "Opportunity_Milestones__r"
RATE_CARD_LINE_RELATIONSHIP = "Rate_Card_Lines__r"


class CustomField(msgspec.Struct, kw_only=True, frozen=True):
    """A custom field the gateway reads (and maybe writes): what a customer org must have deployed."""

    sobject: str
    name: str
    types: tuple[str, ...]
    """The describe ``type`` values the gateway can work with; the first is the one to create."""
    written: bool = False
    """The gateway writes it (the activation write-back, the invoice status and totals): the integration
    user must be able to update it."""
    optional_object: bool = False
    """Its object is one of the gateway's own custom objects, which an org may not have: deals then have
    no milestones or rate cards (``SalesforceCrm`` reads none), so the object's absence is not an error."""


_TEXT = ("string",)
_CHOICE = ("picklist", "string")
_LONG_TEXT = ("textarea", "string")
_MONEY = ("currency", "double")
_NUMBER = ("double", "currency")

# Every custom field the gateway needs, in one place: the SOQL select lists below may only name custom fields
# listed here (checked at import), the activation write-back writes only fields marked written, and
# `stratum vendors check` and the README's table are built from it.
CUSTOM_FIELDS: tuple[CustomField, ...] = (
    CustomField(sobject="Account", name="Legal_Entity__c", types=_TEXT),
    CustomField(sobject="Account", name="Tax_Jurisdiction__c", types=_TEXT),
    CustomField(sobject="Account", name="Tax_Id__c", types=_TEXT),
    CustomField(sobject="Opportunity", name="Billing_Model__c", types=_CHOICE),
    CustomField(sobject="Opportunity", name="Legal_Entity__c", types=_TEXT),
    CustomField(sobject="Opportunity", name="Project_Id__c", types=_TEXT, written=True),
    CustomField(sobject="Opportunity", name="Activation_Status__c", types=_CHOICE, written=True),
    CustomField(sobject="Opportunity", name="ERP_Project_Id__c", types=_TEXT, written=True),
    CustomField(sobject="Opportunity", name="ERP_Customer_Id__c", types=_TEXT, written=True),
    CustomField(sobject="Opportunity", name="Contract_Terms__c", types=_LONG_TEXT),
    CustomField(sobject="Opportunity", name="Retainer_Monthly_Fee__c", types=_MONEY),
    CustomField(sobject="Opportunity", name="Retainer_Included_Hours__c", types=_NUMBER),
    CustomField(sobject="Opportunity", name="Payment_Terms_Days__c", types=_NUMBER),
    CustomField(sobject="Opportunity", name="Invoiced_Amount__c", types=_MONEY, written=True),
    CustomField(sobject="Opportunity", name="Paid_Amount__c", types=_MONEY, written=True),
    CustomField(sobject="Opportunity", name="Overdue_Amount__c", types=_MONEY, written=True),
    CustomField(sobject=MILESTONE_OBJECT, name="Opportunity__c", types=("reference",), optional_object=True),
    CustomField(sobject=MILESTONE_OBJECT, name="Amount__c", types=_MONEY, optional_object=True),
    CustomField(sobject=MILESTONE_OBJECT, name="Due_Date__c", types=("date",), optional_object=True),
    CustomField(sobject=RATE_CARD_LINE_OBJECT, name="Role__c", types=_CHOICE, optional_object=True),
    CustomField(
        sobject=RATE_CARD_LINE_OBJECT, name="Opportunity__c", types=("reference",), optional_object=True
    ),
    CustomField(sobject=RATE_CARD_LINE_OBJECT, name="Rate__c", types=_MONEY, optional_object=True),
    CustomField(sobject=RATE_CARD_LINE_OBJECT, name="Unit__c", types=_CHOICE, optional_object=True),
    # Billing needs the invoice object (not optional: without it no invoice status reaches sales, which
    # blocks only the invoice status calls).
    CustomField(sobject=INVOICE_OBJECT, name="ERP_Invoice_Id__c", types=_TEXT, written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Opportunity__c", types=("reference",), written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Account__c", types=("reference",), written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Invoice_Number__c", types=_TEXT, written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Status__c", types=_CHOICE, written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Total__c", types=_MONEY, written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Balance__c", types=_MONEY, written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Issue_Date__c", types=("date",), written=True),
    CustomField(sobject=INVOICE_OBJECT, name="Due_Date__c", types=("date",), written=True),
    CustomField(sobject=INVOICE_OBJECT, name="ERP_Updated_At__c", types=("datetime",), written=True),
)
_DECLARED = {(f.sobject, f.name) for f in CUSTOM_FIELDS}


def _select_list(sobject: str, record_type: type[msgspec.Struct]) -> tuple[str, ...]:
    names = tuple(f.encode_name for f in msgspec.structs.fields(record_type))
    undeclared = [n for n in names if n.endswith("__c") and (sobject, n) not in _DECLARED]
    if undeclared:
        # A custom field read but not in CUSTOM_FIELDS would be missed by `stratum vendors check`.
        raise RuntimeError(f"{sobject} custom fields not in CUSTOM_FIELDS: {', '.join(undeclared)}")
    return names


# The SOQL select lists: exactly the fields the Structs above read, so a query never asks for more.
ACCOUNT_FIELDS: tuple[str, ...] = _select_list("Account", SalesforceAccount)
OPPORTUNITY_FIELDS: tuple[str, ...] = _select_list("Opportunity", SalesforceOpportunity)
CONTACT_FIELDS: tuple[str, ...] = _select_list("Contact", SalesforceContact)
MILESTONE_FIELDS: tuple[str, ...] = _select_list(MILESTONE_OBJECT, SalesforceMilestone)
RATE_CARD_LINE_FIELDS: tuple[str, ...] = _select_list(RATE_CARD_LINE_OBJECT, SalesforceRateCardLine)
INVOICE_FIELDS: tuple[str, ...] = _select_list(INVOICE_OBJECT, SalesforceInvoice)
# Object -> the fields its queries select: every one must exist in the org, or the query fails.
SELECT_LISTS: Mapping[str, tuple[str, ...]] = {
    "Account": ACCOUNT_FIELDS,
    "Contact": CONTACT_FIELDS,
    "Opportunity": OPPORTUNITY_FIELDS,
    MILESTONE_OBJECT: MILESTONE_FIELDS,
    RATE_CARD_LINE_OBJECT: RATE_CARD_LINE_FIELDS,
    INVOICE_OBJECT: INVOICE_FIELDS,
}

# Decoders are built once: building one compiles the type's decoding plan.
_account_decoder = msgspec.json.Decoder(SalesforceAccount)
_opportunity_decoder = msgspec.json.Decoder(SalesforceOpportunity)
_query_page_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    record_type: msgspec.json.Decoder(SalesforceQueryPage[record_type])  # type: ignore[valid-type]
    for record_type in (
        SalesforceAccount,
        SalesforceOpportunity,
        SalesforceOpportunityWithTerms,
        SalesforceContact,
        SalesforceMilestone,
        SalesforceRateCardLine,
        SalesforceInvoice,
    )
}


def decode_account(body: bytes) -> SalesforceAccount:
    """The Account in a ``GET sobjects/Account/{id}`` body; raises ``msgspec.DecodeError`` when unusable."""
    return _account_decoder.decode(body)


def decode_opportunity(body: bytes) -> SalesforceOpportunity:
    """The Opportunity in a ``GET sobjects/Opportunity/{id}`` body; raises ``msgspec.DecodeError``."""
    return _opportunity_decoder.decode(body)


def decode_query_page(body: bytes, record_type: type[R]) -> SalesforceQueryPage[R]:
    """A SOQL result batch of ``record_type`` records (one of the Structs above); raises
    ``msgspec.DecodeError`` when unusable."""
    page: SalesforceQueryPage[R] = _query_page_decoders[record_type].decode(body)
    return page


def _picklist_key(value: str) -> str:
    # Picklist values are matched ignoring case, spacing and punctuation: orgs rename "Closed Won" to
    # "Closed - Won" or "closed won" and it still means the same thing.
    return re.sub(r"[^a-z0-9]", "", value.casefold())


# Salesforce's standard Opportunity stage picklist, in pipeline order. The three middle stages of the
# standard list (Value Proposition, Id. Decision Makers, Perception Analysis) have no canonical
# counterpart and so read as OTHER, like any custom stage.
_STAGE_VALUES: dict[OpportunityStage, tuple[str, ...]] = {
    OpportunityStage.PROSPECTING: ("Prospecting",),
    OpportunityStage.QUALIFICATION: ("Qualification",),
    OpportunityStage.NEEDS_ANALYSIS: ("Needs Analysis",),
    OpportunityStage.PROPOSAL: ("Proposal/Price Quote", "Proposal"),
    OpportunityStage.NEGOTIATION: ("Negotiation/Review", "Negotiation"),
    OpportunityStage.CLOSED_WON: ("Closed Won",),
    OpportunityStage.CLOSED_LOST: ("Closed Lost",),
}
_STAGE_BY_KEY: dict[str, OpportunityStage] = {
    _picklist_key(value): stage for stage, values in _STAGE_VALUES.items() for value in values
}

_BILLING_MODEL_BY_KEY: dict[str, BillingModel] = {
    "timeandmaterials": BillingModel.TIME_AND_MATERIALS,
    "timematerials": BillingModel.TIME_AND_MATERIALS,
    "fixedfee": BillingModel.FIXED_FEE,
    "milestone": BillingModel.MILESTONE,
    "retainer": BillingModel.RETAINER,
}


def stage_from_picklist(stage_name: str | None) -> OpportunityStage:
    """The canonical stage for a ``StageName`` picklist value; a stage we do not know is ``OTHER``."""
    if not stage_name:
        return OpportunityStage.OTHER
    return _STAGE_BY_KEY.get(_picklist_key(stage_name), OpportunityStage.OTHER)


def stage_picklist_values(stage: OpportunityStage) -> tuple[str, ...]:
    """The ``StageName`` values that read as ``stage`` (empty for ``OTHER``, which is "none of the known")."""
    return _STAGE_VALUES.get(stage, ())


def known_stage_picklist_values() -> tuple[str, ...]:
    """Every ``StageName`` value with a canonical counterpart (the complement of ``OTHER``)."""
    return tuple(value for values in _STAGE_VALUES.values() for value in values)


def billing_model_from_picklist(value: str | None) -> BillingModel | None:
    """The canonical billing model for ``Billing_Model__c``; empty or unknown is ``None`` (undecided)."""
    if not value:
        return None
    return _BILLING_MODEL_BY_KEY.get(_picklist_key(value))


def parse_salesforce_datetime(value: str | None) -> dt.datetime | None:
    """An aware UTC datetime from Salesforce's ``2026-03-04T10:15:00.000+0000``; ``None`` when absent.

    Raises ``ValueError`` on text that is not a timestamp. A timestamp without an offset is taken as UTC,
    which is what the REST API means by it.
    """
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _currency(code: str | None) -> str | None:
    if not code:
        return None
    upper = code.strip().upper()
    return upper if is_iso_4217(upper) else None


def _text(value: str | None) -> str | None:
    # Salesforce sends empty text fields as null, but custom integrations sometimes write "".
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _probability(value: Decimal | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.to_integral_value())
    except (InvalidOperation, OverflowError):
        raise ValueError("Probability is not a number") from None


def account_to_customer(record: SalesforceAccount) -> Customer:
    """The canonical customer for a Salesforce Account."""
    address_parts = (
        record.billing_street,
        record.billing_city,
        record.billing_postal_code,
        record.billing_state,
        record.billing_country,
    )
    address = (
        Address(
            street=_text(record.billing_street),
            city=_text(record.billing_city),
            postal_code=_text(record.billing_postal_code),
            region=_text(record.billing_state),
            country=_text(record.billing_country),
        )
        if any(_text(part) for part in address_parts)
        else None
    )
    return Customer(
        id=record.id,
        name=record.name,
        legal_entity=_text(record.legal_entity),
        tax_jurisdiction=_text(record.tax_jurisdiction),
        tax_id=_text(record.tax_id),
        website=_text(record.website),
        industry=_text(record.industry),
        currency=_currency(record.currency_iso_code),
        parent_id=_text(record.parent_id),
        billing_address=address,
        owner_id=_text(record.owner_id),
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(crm=record.id),
    )


# Salesforce currency fields have two decimal places (currency(18,2)); JSON carries them as numbers, so
# 24000 arrives as "24000.0". Normalise to the field's scale so equal amounts compare and print alike.
_CURRENCY_SCALE = Decimal("0.01")


def _at_currency_scale(value: Decimal) -> Decimal:
    try:
        return value.quantize(_CURRENCY_SCALE)
    except InvalidOperation:  # more digits than Decimal's context: far beyond any currency field
        raise ValueError(f"amount {value} is too large") from None


def _currency_amount(value: Decimal | None) -> Decimal | None:
    return None if value is None else _at_currency_scale(value)


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    if amount is None or currency is None:
        return None
    return Money(amount=_at_currency_scale(amount), currency=currency)


def milestone_from_record(record: SalesforceMilestone, currency: str | None) -> DealMilestone:
    """The canonical milestone for an ``Opportunity_Milestone__c``, in its own currency or else
    ``currency`` (its opportunity's).

    Without any currency an amount means nothing, so it is left out (the opportunity's own missing
    currency is what activation reports)."""
    return DealMilestone(
        name=record.name,
        amount=_money(record.amount, _currency(record.currency_iso_code) or currency),
        due_date=record.due_date,
        system_ids=SystemIds(crm=record.id),
    )


# ``Rate_Card_Line__c.Unit__c`` sells an hour or a day; the canonical line carries the unit as sold, so no
# working-day length is assumed here (billing decides how a day rate meets booked hours).
_RATE_UNITS: Mapping[str, RateUnit] = {"hour": RateUnit.HOUR, "day": RateUnit.DAY}


def rate_card_line_from_record(record: SalesforceRateCardLine, currency: str | None) -> RateCardLine | None:
    """The canonical rate for a ``Rate_Card_Line__c``, in its own currency or else ``currency`` (its
    opportunity's), per hour or per day as sold (no unit means hours).

    ``None`` for a line that sells nothing the canonical rate card can say: no role, no rate, no
    currency, or a unit other than an hour or a day."""
    role = _text(record.role)
    unit = _RATE_UNITS.get(_picklist_key(record.unit or "hour"))
    if role is None or unit is None or record.rate is None:
        return None
    rate = _money(record.rate, _currency(record.currency_iso_code) or currency)
    if rate is None:
        return None
    return RateCardLine(role=role, rate=rate, unit=unit)


def opportunity_from_record(
    record: SalesforceOpportunity,
    *,
    milestones: Iterable[SalesforceMilestone] = (),
    rate_card: Iterable[SalesforceRateCardLine] = (),
) -> Opportunity:
    """The canonical opportunity for a Salesforce Opportunity and, when read, its child records.

    ``system_ids`` says where the deal lives: the opportunity itself, the PSA project and the ERP project
    activation wrote back."""
    currency = _currency(record.currency_iso_code)
    project_id = _text(record.project_id)
    lines = (rate_card_line_from_record(line, currency) for line in rate_card)
    return Opportunity(
        id=record.id,
        name=record.name,
        customer_id=_text(record.account_id),
        stage=stage_from_picklist(record.stage_name),
        is_won=record.is_won,
        is_closed=record.is_closed,
        amount=_currency_amount(record.amount),
        currency=currency,
        close_date=record.close_date,
        probability=_probability(record.probability),
        billing_model=billing_model_from_picklist(record.billing_model),
        legal_entity=_text(record.legal_entity),
        project_id=project_id,
        activation_status=activation_status_from_picklist(record.activation_status),
        owner_id=_text(record.owner_id),
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(crm=record.id, psa=project_id, erp=_text(record.erp_project_id)),
        contract_terms=_text(record.contract_terms),
        retainer=_retainer(record, currency),
        payment_terms_days=_whole_days(record.payment_terms_days),
        milestones=[milestone_from_record(milestone, currency) for milestone in milestones],
        rate_card=[line for line in lines if line is not None],
    )


def _retainer(record: SalesforceOpportunity, currency: str | None) -> RetainerTerms | None:
    """The retainer terms when the deal has a monthly fee (in the deal's currency); none otherwise."""
    fee = _money(record.retainer_monthly_fee, currency)
    if fee is None:
        return None
    hours = record.retainer_included_hours
    return RetainerTerms(monthly_fee=fee, included_hours=Decimal(0) if hours is None else hours.normalize())


def _whole_days(value: Decimal | None) -> int | None:
    # Number(3,0): JSON may still carry it as 30.0; a fraction is not a payment term, so it reads as none.
    if value is None or value != value.to_integral_value() or value < 0:
        return None
    return int(value)


def contact_from_record(record: SalesforceContact) -> Contact:
    """The canonical contact for a Salesforce Contact."""
    return Contact(
        id=record.id,
        customer_id=_text(record.account_id),
        first_name=_text(record.first_name),
        last_name=record.last_name,
        email=_text(record.email),
        phone=_text(record.phone),
        title=_text(record.title),
        system_ids=SystemIds(crm=record.id),
    )


# ``Activation_Status__c`` picklist values. The org's picklist must hold exactly these labels (restricted
# picklists refuse anything else); reading matches them as loosely as the stage picklist.
ACTIVATION_STATUS_PICKLIST: Mapping[ActivationStatus, str] = {
    ActivationStatus.NOT_STARTED: "Not Started",
    ActivationStatus.IN_PROGRESS: "In Progress",
    ActivationStatus.ACTIVATED: "Activated",
    ActivationStatus.BLOCKED: "Blocked",
    ActivationStatus.CANCELLED: "Cancelled",
}
_ACTIVATION_STATUS_BY_KEY: dict[str, ActivationStatus] = {
    _picklist_key(value): status for status, value in ACTIVATION_STATUS_PICKLIST.items()
}


def activation_status_from_picklist(value: str | None) -> str | None:
    """The canonical ``ActivationStatus`` value for an ``Activation_Status__c`` picklist value.

    A value the gateway does not know (an org-specific one) is passed on as written rather than lost."""
    text = _text(value)
    if text is None:
        return None
    status = _ACTIVATION_STATUS_BY_KEY.get(_picklist_key(text))
    return text if status is None else status.value


def activation_update_body(update: OpportunityActivationUpdate) -> dict[str, str]:
    """The ``PATCH sobjects/Opportunity/{id}`` body for an activation update: the status and the ids given
    (an id left out is not sent, so Salesforce leaves the field as it is). Absolute values only, so the
    same body twice changes nothing the second time."""
    body = {"Activation_Status__c": ACTIVATION_STATUS_PICKLIST[update.activation_status]}
    ids = (
        ("Project_Id__c", update.psa_project_id),
        ("ERP_Project_Id__c", update.erp_project_id),
        ("ERP_Customer_Id__c", update.erp_customer_id),
    )
    body.update((field_name, value) for field_name, value in ids if value is not None)
    return body


# ``Stratum_Invoice__c.Status__c`` picklist values, one per canonical invoice status.
INVOICE_STATUS_PICKLIST: Mapping[CrmInvoiceStatus, str] = {
    CrmInvoiceStatus.DRAFT: "Draft",
    CrmInvoiceStatus.OPEN: "Open",
    CrmInvoiceStatus.PARTIALLY_PAID: "Partially Paid",
    CrmInvoiceStatus.PAID: "Paid",
    CrmInvoiceStatus.OVERDUE: "Overdue",
    CrmInvoiceStatus.VOID: "Void",
}
_INVOICE_STATUS_BY_KEY: dict[str, CrmInvoiceStatus] = {
    _picklist_key(value): status for status, value in INVOICE_STATUS_PICKLIST.items()
}
# An invoice that does not count towards what was invoiced: not issued yet, or voided.
_NOT_INVOICED = frozenset({CrmInvoiceStatus.DRAFT, CrmInvoiceStatus.VOID})
# Statuses that still owe money and so become overdue once the due date has passed.
_OWING = frozenset({CrmInvoiceStatus.OPEN, CrmInvoiceStatus.PARTIALLY_PAID, CrmInvoiceStatus.OVERDUE})


def invoice_status_from_picklist(value: str | None) -> CrmInvoiceStatus | None:
    """The canonical status for a ``Status__c`` value; None for an empty or unknown one."""
    text = _text(value)
    return None if text is None else _INVOICE_STATUS_BY_KEY.get(_picklist_key(text))


def _salesforce_datetime(value: dt.datetime) -> str:
    # Salesforce keeps milliseconds; a finer stamp would not read back equal.
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def invoice_body(update: CrmInvoiceStatusUpdate, account_id: str | None) -> dict[str, Any]:
    """The ``Stratum_Invoice__c`` upsert body (without the external id, which is in the URL): absolute
    values only, so the same body twice leaves one record as one write would. Amounts are Decimals; the
    caller encodes them as JSON numbers. A field the update leaves out (None) is sent as null, so a
    correction that clears a date clears it; ``ERP_Updated_At__c`` is not cleared by an unstamped update."""
    body: dict[str, Any] = {
        "Opportunity__c": update.opportunity_id,
        "Account__c": update.customer_id or account_id,
        "Invoice_Number__c": update.number,
        "Status__c": INVOICE_STATUS_PICKLIST[update.status],
        "Total__c": update.total,
        "Balance__c": update.balance,
        "Issue_Date__c": None if update.issue_date is None else update.issue_date.isoformat(),
        "Due_Date__c": None if update.due_date is None else update.due_date.isoformat(),
        "CurrencyIsoCode": update.currency,
    }
    if update.erp_updated_at is not None:
        body["ERP_Updated_At__c"] = _salesforce_datetime(update.erp_updated_at)
    return body


def invoice_matches(
    record: SalesforceInvoice, update: CrmInvoiceStatusUpdate, account_id: str | None
) -> bool:
    """True when the stored record already says everything ``update`` says (nothing to write)."""
    stored_stamp = parse_salesforce_datetime(record.erp_updated_at)
    return (
        record.opportunity_id == update.opportunity_id
        and record.account_id == (update.customer_id or account_id)
        and _text(record.number) == _text(update.number)
        and invoice_status_from_picklist(record.status) == update.status
        and _currency_amount(record.total) == _at_currency_scale(update.total)
        and _currency_amount(record.balance) == _at_currency_scale(update.balance)
        and record.issue_date == update.issue_date
        and record.due_date == update.due_date
        and _currency(record.currency_iso_code) == update.currency
        and (update.erp_updated_at is None or stored_stamp == update.erp_updated_at)
    )


def invoice_totals(
    currency: str, invoices: Iterable[SalesforceInvoice], *, today: dt.date
) -> tuple[Decimal, Decimal, Decimal, int]:
    """(invoiced, paid, overdue, invoice count) over an opportunity's invoices in ``currency``, exact in
    Decimal. Invoiced counts every issued invoice (not drafts, not voided); paid is what of it was paid
    (total - balance); overdue is the balance of invoices marked overdue or still owing past their due date
    (canonical ``Invoice.overdue``: balance > 0 and due date before today, UTC). An invoice in another
    currency cannot be added without a rate, so it is left out of the amounts (and of the count)."""
    invoiced = paid = overdue = Decimal("0.00")
    count = 0
    for record in invoices:
        status = invoice_status_from_picklist(record.status)
        if _currency(record.currency_iso_code) != currency or status is None or status in _NOT_INVOICED:
            continue
        total = _currency_amount(record.total) or Decimal("0.00")
        balance = _currency_amount(record.balance) or Decimal("0.00")
        count += 1
        invoiced += total
        paid += total - balance
        past_due = record.due_date is not None and record.due_date < today
        if balance > 0 and (status is CrmInvoiceStatus.OVERDUE or (status in _OWING and past_due)):
            overdue += balance
    return invoiced, paid, overdue, count


# The opportunity's total fields, in the order of ``invoice_totals``.
INVOICE_TOTAL_FIELDS = ("Invoiced_Amount__c", "Paid_Amount__c", "Overdue_Amount__c")


def totals_body(invoiced: Decimal, paid: Decimal, overdue: Decimal) -> dict[str, Decimal]:
    """The ``PATCH sobjects/Opportunity/{id}`` body for the totals: absolute values, idempotent."""
    return dict(zip(INVOICE_TOTAL_FIELDS, (invoiced, paid, overdue), strict=True))
