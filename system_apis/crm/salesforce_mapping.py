"""Salesforce records -> canonical CRM objects: the vendor's field names live here and nowhere else.

Records are decoded into Structs that tolerate unknown fields (a Salesforce org always has more fields than
we read) and whose ``Amount`` is a ``Decimal`` read straight from the JSON text, so money never passes
through a float. The functions are pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

import msgspec

from contracts.models.common import SystemIds, is_iso_4217
from contracts.models.crm import Address, BillingModel, Customer, Opportunity, OpportunityStage

__all__ = [
    "ACCOUNT_FIELDS",
    "OPPORTUNITY_FIELDS",
    "SalesforceAccount",
    "SalesforceOpportunity",
    "SalesforceQueryPage",
    "account_to_customer",
    "billing_model_from_picklist",
    "decode_account",
    "decode_opportunity",
    "decode_query_page",
    "known_stage_picklist_values",
    "opportunity_from_record",
    "parse_salesforce_datetime",
    "stage_from_picklist",
    "stage_picklist_values",
]


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
    owner_id: str | None = msgspec.field(default=None, name="OwnerId")
    last_modified_date: str | None = msgspec.field(default=None, name="LastModifiedDate")


class SalesforceQueryPage(msgspec.Struct, kw_only=True, frozen=True):
    """One batch of a SOQL query result (``GET query/?q=`` or its ``nextRecordsUrl``)."""

    total_size: int = msgspec.field(name="totalSize")
    done: bool
    records: list[SalesforceOpportunity]
    next_records_url: str | None = msgspec.field(default=None, name="nextRecordsUrl")


# The SOQL select lists: exactly the fields the Structs above read, so a query never asks for more.
ACCOUNT_FIELDS: tuple[str, ...] = tuple(f.encode_name for f in msgspec.structs.fields(SalesforceAccount))
OPPORTUNITY_FIELDS: tuple[str, ...] = tuple(
    f.encode_name for f in msgspec.structs.fields(SalesforceOpportunity)
)

# Decoders are built once: building one compiles the type's decoding plan.
_account_decoder = msgspec.json.Decoder(SalesforceAccount)
_opportunity_decoder = msgspec.json.Decoder(SalesforceOpportunity)
_query_page_decoder = msgspec.json.Decoder(SalesforceQueryPage)


def decode_account(body: bytes) -> SalesforceAccount:
    """The Account in a ``GET sobjects/Account/{id}`` body; raises ``msgspec.DecodeError`` when unusable."""
    return _account_decoder.decode(body)


def decode_opportunity(body: bytes) -> SalesforceOpportunity:
    """The Opportunity in a ``GET sobjects/Opportunity/{id}`` body; raises ``msgspec.DecodeError``."""
    return _opportunity_decoder.decode(body)


def decode_query_page(body: bytes) -> SalesforceQueryPage:
    """A SOQL result batch of Opportunity records; raises ``msgspec.DecodeError`` when unusable."""
    return _query_page_decoder.decode(body)


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


def _currency_amount(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_CURRENCY_SCALE)


def opportunity_from_record(record: SalesforceOpportunity) -> Opportunity:
    """The canonical opportunity for a Salesforce Opportunity."""
    return Opportunity(
        id=record.id,
        name=record.name,
        customer_id=_text(record.account_id),
        stage=stage_from_picklist(record.stage_name),
        is_won=record.is_won,
        is_closed=record.is_closed,
        amount=_currency_amount(record.amount),
        currency=_currency(record.currency_iso_code),
        close_date=record.close_date,
        probability=_probability(record.probability),
        billing_model=billing_model_from_picklist(record.billing_model),
        legal_entity=_text(record.legal_entity),
        project_id=_text(record.project_id),
        activation_status=_text(record.activation_status),
        owner_id=_text(record.owner_id),
        updated_at=parse_salesforce_datetime(record.last_modified_date),
        system_ids=SystemIds(crm=record.id),
    )
