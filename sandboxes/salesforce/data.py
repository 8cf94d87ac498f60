"""Schema and deterministic seed data for the Salesforce sandbox.

The seed models the CRM of a professional-services firm: client accounts (one subsidiary with a parent)
and their opportunities across the whole sales pipeline. Well-known records have fixed ids and contents
so walk-throughs and tests can name them; the filler around them is drawn from `random.Random(seed)`.

Well-known ids (all 18-character, case-safe):

=======================================  ============================================================
constant                                 record
=======================================  ============================================================
``DEMO_ACCOUNT_ID``                      Northwind Health Systems (US-NY, US01, USD)
``BIG_ACCOUNT_ID``                       Globex Professional Services, exactly
                                         ``BIG_ACCOUNT_OPPORTUNITY_COUNT`` (230) opportunities, so a
                                         query for them pages with ``batchSize=200``
``SUBSIDIARY_ACCOUNT_ID``                Globex Professional Services UK Ltd, ``ParentId`` =
                                         ``BIG_ACCOUNT_ID``
``GERMAN_ACCOUNT_ID``                    Initech Software GmbH (DE-BY, DE01, EUR)
``UK_ACCOUNT_ID``                        Umbrella Life Sciences Ltd (GB, GB01, GBP)
``NO_TAX_JURISDICTION_ACCOUNT_ID``       Hooli Media Inc: ``Tax_Jurisdiction__c`` is null
``READY_OPPORTUNITY_ID``                 Closed Won, passes every activation rule (125000.5 USD, T&M)
``READY_OPPORTUNITY_IDS``                all fully ready, well-known Closed Won opportunities
``ZERO_AMOUNT_OPPORTUNITY_ID``           Closed Won, ``Amount`` = 0
``NULL_AMOUNT_OPPORTUNITY_ID``           Closed Won, ``Amount`` null
``MISSING_CURRENCY_OPPORTUNITY_ID``      Closed Won, ``CurrencyIsoCode`` null
``MISSING_BILLING_MODEL_OPPORTUNITY_ID`` Closed Won, ``Billing_Model__c`` null
``MISSING_LEGAL_ENTITY_OPPORTUNITY_ID``  Closed Won, ``Legal_Entity__c`` null
``NO_TAX_JURISDICTION_OPPORTUNITY_ID``   Closed Won, complete, but its account has no tax jurisdiction
``OPEN_OPPORTUNITY_ID``                  Negotiation/Review, otherwise complete: move it to Closed Won
``CLOSED_LOST_OPPORTUNITY_ID``           Closed Lost
=======================================  ============================================================

Each "failing" opportunity breaks exactly one activation rule (positive amount, currency, billing model,
legal entity, account tax jurisdiction); every other Closed Won opportunity, filler included, passes
all of them. `Project_Id__c` and `Activation_Status__c` start null everywhere.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

__all__ = [
    "ACCOUNT_SCHEMA",
    "BIG_ACCOUNT_ID",
    "BIG_ACCOUNT_OPPORTUNITY_COUNT",
    "CLOSED_LOST_OPPORTUNITY_ID",
    "DEMO_ACCOUNT_ID",
    "GERMAN_ACCOUNT_ID",
    "INTEGRATION_USER_ID",
    "MISSING_BILLING_MODEL_OPPORTUNITY_ID",
    "MISSING_CURRENCY_OPPORTUNITY_ID",
    "MISSING_LEGAL_ENTITY_OPPORTUNITY_ID",
    "NO_TAX_JURISDICTION_ACCOUNT_ID",
    "NO_TAX_JURISDICTION_OPPORTUNITY_ID",
    "NULL_AMOUNT_OPPORTUNITY_ID",
    "OPEN_OPPORTUNITY_ID",
    "OPPORTUNITY_SCHEMA",
    "ORG_ID",
    "READY_OPPORTUNITY_ID",
    "READY_OPPORTUNITY_IDS",
    "SCHEMAS",
    "STAGES",
    "SUBSIDIARY_ACCOUNT_ID",
    "UK_ACCOUNT_ID",
    "USERS",
    "ZERO_AMOUNT_OPPORTUNITY_ID",
    "FieldKind",
    "FieldSpec",
    "ObjectSchema",
    "Record",
    "StageInfo",
    "build_seed",
    "format_datetime",
    "normalize_salesforce_id",
    "salesforce_id",
]

Record = dict[str, Any]

# ---------------------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Pod and reserved characters of a real-looking org; they are constant for every record of one org.
_POD = "Dn00000"
_TAIL_SPACE = 62**5
# Any multiplier coprime with 62**5 makes n -> tail a bijection; it spreads consecutive numbers over
# mixed-case tails so the case-safe checksum is actually exercised.
_TAIL_MULTIPLIER = 15_485_863
_TAIL_OFFSET = 9_161_327


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def _checksum(id15: str) -> str:
    suffix = []
    for chunk_start in range(0, 15, 5):
        flags = 0
        for bit, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                flags |= 1 << bit
        suffix.append(_CHECKSUM_ALPHABET[flags])
    return "".join(suffix)


def salesforce_id(prefix: str, n: int) -> str:
    """Return the 18-character id of record number `n` with key prefix `prefix` (e.g. ``"001"``).

    The 15 case-sensitive characters are the prefix, a fixed pod part and a base62 tail derived from
    `n` (distinct `n` give distinct ids); the last three are Salesforce's case-safe checksum.
    """
    if len(prefix) != 3 or any(char not in _BASE62 for char in prefix):
        raise ValueError(f"key prefix must be 3 base62 characters, got {prefix!r}")
    if not 0 <= n < _TAIL_SPACE:
        raise ValueError(f"record number out of range: {n}")
    # Folding the prefix in keeps record 1 of different objects from sharing a tail.
    offset = _TAIL_OFFSET + sum(_BASE62.index(char) * 7919**position for position, char in enumerate(prefix))
    tail = _base62((n * _TAIL_MULTIPLIER + offset) % _TAIL_SPACE, 5)
    id15 = prefix + _POD + tail
    return id15 + _checksum(id15)


def normalize_salesforce_id(value: str) -> str | None:
    """Return the canonical 18-character form of a 15- or 18-character id, or None if it is not one.

    18-character ids are case-insensitive on the wire: the checksum suffix says which letters are
    upper case, so the canonical casing is recovered from it, as Salesforce does.
    """
    if len(value) == 15:
        if any(char not in _BASE62 for char in value):
            return None
        return value + _checksum(value)
    if len(value) != 18 or any(char not in _BASE62 for char in value):
        return None
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, flag_char in enumerate(suffix):
        flags = _CHECKSUM_ALPHABET.find(flag_char)
        if flags < 0:
            return None
        for bit in range(5):
            index = chunk * 5 + bit
            char = chars[index]
            if flags & (1 << bit):
                if not char.isalpha():
                    return None
                chars[index] = char.upper()
            else:
                chars[index] = char.lower()
    return "".join(chars) + suffix


ORG_ID = salesforce_id("00D", 1)

INTEGRATION_USER_ID = salesforce_id("005", 1)
USERS: Mapping[str, str] = {
    INTEGRATION_USER_ID: "Stratum Integration User",
    salesforce_id("005", 2): "Priya Raman",
    salesforce_id("005", 3): "Tom Becker",
    salesforce_id("005", 4): "Sofia Marques",
    salesforce_id("005", 5): "James Okafor",
}
_SALES_REPS = tuple(USERS)[1:]

# ---------------------------------------------------------------------------------------------------------
# Schema ("describe")
# ---------------------------------------------------------------------------------------------------------

FieldKind = Literal[
    "id",
    "string",
    "textarea",
    "url",
    "picklist",
    "reference",
    "currency",
    "double",
    "percent",
    "boolean",
    "date",
    "datetime",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of an sObject, as much of its describe result as the sandbox enforces."""

    name: str
    kind: FieldKind
    updateable: bool = True
    required: bool = False
    length: int | None = None
    restricted_values: tuple[str, ...] | None = None
    reference_to: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectSchema:
    """An sObject type: its name, key prefix and fields in describe order."""

    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    _by_lower_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Field names are case-insensitive everywhere in the API, so every lookup goes through this map.
        object.__setattr__(self, "_by_lower_name", {spec.name.lower(): spec for spec in self.fields})

    def field(self, name: str) -> FieldSpec | None:
        """Return the field called `name` (any casing), or None."""
        return self._by_lower_name.get(name.lower())


@dataclass(frozen=True, slots=True)
class StageInfo:
    """What an opportunity stage implies for the read-only and defaulted fields."""

    is_closed: bool
    is_won: bool
    probability: float


STAGES: Mapping[str, StageInfo] = {
    "Prospecting": StageInfo(False, False, 10.0),
    "Qualification": StageInfo(False, False, 10.0),
    "Needs Analysis": StageInfo(False, False, 20.0),
    "Proposal/Price Quote": StageInfo(False, False, 75.0),
    "Negotiation/Review": StageInfo(False, False, 90.0),
    "Closed Won": StageInfo(True, True, 100.0),
    "Closed Lost": StageInfo(True, False, 0.0),
}

_CURRENCIES = ("USD", "GBP", "EUR")
_BILLING_MODELS = ("Time and Materials", "Fixed Fee", "Milestone", "Retainer")

_SYSTEM_FIELDS = (
    FieldSpec(name="OwnerId", kind="reference", reference_to="User", required=True),
    FieldSpec(name="CreatedDate", kind="datetime", updateable=False),
    FieldSpec(name="LastModifiedDate", kind="datetime", updateable=False),
    FieldSpec(name="SystemModstamp", kind="datetime", updateable=False),
)

ACCOUNT_SCHEMA = ObjectSchema(
    "Account",
    "001",
    (
        FieldSpec(name="Id", kind="id", updateable=False),
        FieldSpec(name="Name", kind="string", length=255, required=True),
        FieldSpec(name="Type", kind="picklist", length=255),
        FieldSpec(name="Industry", kind="picklist", length=255),
        FieldSpec(name="Website", kind="url", length=255),
        FieldSpec(name="BillingStreet", kind="textarea", length=255),
        FieldSpec(name="BillingCity", kind="string", length=40),
        FieldSpec(name="BillingPostalCode", kind="string", length=20),
        FieldSpec(name="BillingState", kind="string", length=80),
        FieldSpec(name="BillingCountry", kind="string", length=80),
        FieldSpec(name="ParentId", kind="reference", reference_to="Account"),
        FieldSpec(name="CurrencyIsoCode", kind="picklist", restricted_values=_CURRENCIES, required=True),
        FieldSpec(name="Tax_Jurisdiction__c", kind="string", length=10),
        FieldSpec(name="Tax_Id__c", kind="string", length=30),
        FieldSpec(name="Legal_Entity__c", kind="string", length=10),
        *_SYSTEM_FIELDS,
    ),
)

OPPORTUNITY_SCHEMA = ObjectSchema(
    "Opportunity",
    "006",
    (
        FieldSpec(name="Id", kind="id", updateable=False),
        FieldSpec(name="Name", kind="string", length=120, required=True),
        FieldSpec(name="AccountId", kind="reference", reference_to="Account"),
        FieldSpec(name="StageName", kind="picklist", restricted_values=tuple(STAGES), required=True),
        FieldSpec(name="Amount", kind="currency"),
        # Real multi-currency orgs never leave this null; the seed does on purpose (activation rule).
        FieldSpec(name="CurrencyIsoCode", kind="picklist", restricted_values=_CURRENCIES),
        FieldSpec(name="CloseDate", kind="date", required=True),
        FieldSpec(name="Probability", kind="percent"),
        FieldSpec(name="IsWon", kind="boolean", updateable=False),
        FieldSpec(name="IsClosed", kind="boolean", updateable=False),
        FieldSpec(name="Type", kind="picklist", length=255),
        FieldSpec(name="LeadSource", kind="picklist", length=255),
        FieldSpec(name="Billing_Model__c", kind="picklist", restricted_values=_BILLING_MODELS),
        FieldSpec(name="Legal_Entity__c", kind="string", length=10),
        FieldSpec(name="Project_Id__c", kind="string", length=64),
        FieldSpec(name="Activation_Status__c", kind="string", length=40),
        *_SYSTEM_FIELDS,
    ),
)

SCHEMAS: Mapping[str, ObjectSchema] = {"Account": ACCOUNT_SCHEMA, "Opportunity": OPPORTUNITY_SCHEMA}

# ---------------------------------------------------------------------------------------------------------
# Well-known records
# ---------------------------------------------------------------------------------------------------------

DEMO_ACCOUNT_ID = salesforce_id("001", 1)
BIG_ACCOUNT_ID = salesforce_id("001", 2)
SUBSIDIARY_ACCOUNT_ID = salesforce_id("001", 3)
GERMAN_ACCOUNT_ID = salesforce_id("001", 4)
UK_ACCOUNT_ID = salesforce_id("001", 5)
_STARK_ACCOUNT_ID = salesforce_id("001", 6)
_WAYNE_ACCOUNT_ID = salesforce_id("001", 7)
NO_TAX_JURISDICTION_ACCOUNT_ID = salesforce_id("001", 8)

READY_OPPORTUNITY_ID = salesforce_id("006", 1)
_READY_FIXED_FEE_OPPORTUNITY_ID = salesforce_id("006", 2)
_READY_MILESTONE_OPPORTUNITY_ID = salesforce_id("006", 3)
_READY_RETAINER_OPPORTUNITY_ID = salesforce_id("006", 4)
READY_OPPORTUNITY_IDS: tuple[str, ...] = (
    READY_OPPORTUNITY_ID,
    _READY_FIXED_FEE_OPPORTUNITY_ID,
    _READY_MILESTONE_OPPORTUNITY_ID,
    _READY_RETAINER_OPPORTUNITY_ID,
)
ZERO_AMOUNT_OPPORTUNITY_ID = salesforce_id("006", 10)
NULL_AMOUNT_OPPORTUNITY_ID = salesforce_id("006", 11)
MISSING_CURRENCY_OPPORTUNITY_ID = salesforce_id("006", 12)
MISSING_BILLING_MODEL_OPPORTUNITY_ID = salesforce_id("006", 13)
MISSING_LEGAL_ENTITY_OPPORTUNITY_ID = salesforce_id("006", 14)
NO_TAX_JURISDICTION_OPPORTUNITY_ID = salesforce_id("006", 15)
OPEN_OPPORTUNITY_ID = salesforce_id("006", 20)
CLOSED_LOST_OPPORTUNITY_ID = salesforce_id("006", 21)

BIG_ACCOUNT_OPPORTUNITY_COUNT = 230

# Seed timestamps are anchored here rather than to the wall clock so the data is identical on every run.
_SEED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_SEED_TODAY = _SEED_NOW.date()


def format_datetime(value: datetime) -> str:
    """Format an aware datetime the way Salesforce does: ``2026-03-04T10:15:00.000+0000``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


@dataclass(frozen=True, slots=True)
class _AccountSeed:
    id: str
    name: str
    short_name: str
    type: str
    industry: str
    website: str
    street: str
    city: str
    postal_code: str
    state: str | None
    country: str
    currency: str
    tax_jurisdiction: str | None
    tax_id: str
    legal_entity: str
    filler_opportunities: int
    parent_id: str | None = None


_ACCOUNTS = (
    _AccountSeed(
        DEMO_ACCOUNT_ID, "Northwind Health Systems", "Northwind Health", "Customer - Direct", "Healthcare",
        "https://www.northwind-health.example", "350 Fifth Avenue, Floor 21", "New York", "10118", "NY",
        "United States", "USD", "US-NY", "13-4567890", "US01", 4,
    ),
    _AccountSeed(
        BIG_ACCOUNT_ID, "Globex Professional Services", "Globex", "Customer - Direct", "Consulting",
        "https://www.globex-ps.example", "1 Market Street, Suite 3600", "San Francisco", "94105", "CA",
        "United States", "USD", "US-CA", "94-3216547", "US01", BIG_ACCOUNT_OPPORTUNITY_COUNT,
    ),
    _AccountSeed(
        SUBSIDIARY_ACCOUNT_ID, "Globex Professional Services UK Ltd", "Globex UK", "Customer - Direct",
        "Consulting", "https://www.globex-ps.example/uk", "30 St Mary Axe", "London", "EC3A 8BF", None,
        "United Kingdom", "GBP", "GB", "GB123456789", "GB01", 4, parent_id=BIG_ACCOUNT_ID,
    ),
    _AccountSeed(
        GERMAN_ACCOUNT_ID, "Initech Software GmbH", "Initech", "Customer - Direct", "Technology",
        "https://www.initech-software.example", "Leopoldstraße 180", "München", "80804", "Bayern",
        "Germany", "EUR", "DE-BY", "DE811234567", "DE01", 5,
    ),
    _AccountSeed(
        UK_ACCOUNT_ID, "Umbrella Life Sciences Ltd", "Umbrella", "Customer - Direct", "Biotechnology",
        "https://www.umbrella-life.example", "Cambridge Science Park, Milton Road", "Cambridge", "CB4 0FZ",
        None, "United Kingdom", "GBP", "GB", "GB987654321", "GB01", 5,
    ),
    _AccountSeed(
        _STARK_ACCOUNT_ID, "Stark Industrial Manufacturing Inc", "Stark Industrial", "Customer - Direct",
        "Manufacturing", "https://www.stark-industrial.example", "2000 Post Oak Boulevard", "Houston",
        "77056", "TX", "United States", "USD", "US-TX", "76-1234567", "US01", 4,
    ),
    _AccountSeed(
        _WAYNE_ACCOUNT_ID, "Wayne Capital Partners LLC", "Wayne Capital", "Customer - Direct", "Banking",
        "https://www.wayne-capital.example", "100 Federal Street", "Boston", "02110", "MA", "United States",
        "USD", "US-MA", "04-7654321", "US01", 3,
    ),
    _AccountSeed(
        NO_TAX_JURISDICTION_ACCOUNT_ID, "Hooli Media Inc", "Hooli", "Customer - Channel", "Media",
        "https://www.hooli-media.example", "2624 Mill Street", "Palo Alto", "94306", "CA", "United States",
        "USD", None, "77-0001234", "US01", 3,
    ),
)


@dataclass(frozen=True, slots=True)
class _OpportunitySeed:
    id: str
    account_id: str
    name: str
    stage: str
    amount: float | None
    currency: str | None
    billing_model: str | None
    legal_entity: str | None
    close_date: date
    type: str = "New Customer"
    lead_source: str = "Partner Referral"


_WELL_KNOWN_OPPORTUNITIES = (
    _OpportunitySeed(
        READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID, "Northwind Health - EHR Integration Phase 2", "Closed Won",
        125000.5, "USD", "Time and Materials", "US01", date(2026, 2, 20), "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        _READY_FIXED_FEE_OPPORTUNITY_ID, GERMAN_ACCOUNT_ID, "Initech - S/4HANA Readiness Assessment",
        "Closed Won", 84000.0, "EUR", "Fixed Fee", "DE01", date(2026, 2, 11),
    ),
    _OpportunitySeed(
        _READY_MILESTONE_OPPORTUNITY_ID, UK_ACCOUNT_ID, "Umbrella - Clinical Data Platform Build",
        "Closed Won", 310500.75, "GBP", "Milestone", "GB01", date(2026, 1, 30),
    ),
    _OpportunitySeed(
        _READY_RETAINER_OPPORTUNITY_ID, _STARK_ACCOUNT_ID,
        "Stark Industrial - Managed Analytics Retainer FY26", "Closed Won", 48000.0, "USD", "Retainer",
        "US01", date(2026, 2, 26), "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        ZERO_AMOUNT_OPPORTUNITY_ID, DEMO_ACCOUNT_ID, "Northwind Health - Change Request 14 (no charge)",
        "Closed Won", 0.0, "USD", "Fixed Fee", "US01", date(2026, 2, 24), "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        NULL_AMOUNT_OPPORTUNITY_ID, _WAYNE_ACCOUNT_ID, "Wayne Capital - Risk Model Validation", "Closed Won",
        None, "USD", "Time and Materials", "US01", date(2026, 2, 17),
    ),
    _OpportunitySeed(
        MISSING_CURRENCY_OPPORTUNITY_ID, _WAYNE_ACCOUNT_ID, "Wayne Capital - Data Governance Framework",
        "Closed Won", 67250.0, None, "Milestone", "US01", date(2026, 2, 9),
    ),
    _OpportunitySeed(
        MISSING_BILLING_MODEL_OPPORTUNITY_ID, _STARK_ACCOUNT_ID, "Stark Industrial - Plant Floor IoT Pilot",
        "Closed Won", 152000.0, "USD", None, "US01", date(2026, 2, 3),
    ),
    _OpportunitySeed(
        MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, SUBSIDIARY_ACCOUNT_ID, "Globex UK - Operating Model Redesign",
        "Closed Won", 96400.25, "GBP", "Time and Materials", None, date(2026, 2, 13),
    ),
    _OpportunitySeed(
        NO_TAX_JURISDICTION_OPPORTUNITY_ID, NO_TAX_JURISDICTION_ACCOUNT_ID,
        "Hooli - Content Platform Migration", "Closed Won", 210000.0, "USD", "Fixed Fee", "US01",
        date(2026, 2, 27),
    ),
    _OpportunitySeed(
        OPEN_OPPORTUNITY_ID, DEMO_ACCOUNT_ID, "Northwind Health - Patient Portal Redesign",
        "Negotiation/Review", 98000.0, "USD", "Time and Materials", "US01", date(2026, 3, 31),
        "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        CLOSED_LOST_OPPORTUNITY_ID, GERMAN_ACCOUNT_ID, "Initech - Legacy Code Audit", "Closed Lost",
        36000.0, "EUR", "Fixed Fee", "DE01", date(2026, 1, 15), lead_source="Web",
    ),
)

_SERVICES = (
    "Cloud Migration Wave",
    "Data Platform Modernisation",
    "ERP Implementation",
    "Cybersecurity Assessment",
    "Managed Services Renewal",
    "Operating Model Advisory",
    "CRM Optimisation",
    "M&A Integration Support",
    "Analytics Enablement",
    "Process Automation Sprint",
    "Regulatory Reporting Uplift",
    "Finance Transformation",
)
_OPPORTUNITY_TYPES = (
    "New Customer",
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
)
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Employee Referral", "Trade Show", "Other")


def _seed_datetime(rng: random.Random, day: date) -> datetime:
    moment = datetime.combine(day, time(rng.randrange(8, 19), rng.randrange(0, 60, 5)), tzinfo=UTC)
    return min(moment, _SEED_NOW)


def _account_record(account: _AccountSeed, rng: random.Random) -> Record:
    created = _seed_datetime(rng, _SEED_TODAY - timedelta(days=rng.randrange(400, 900)))
    modified = _seed_datetime(rng, created.date() + timedelta(days=rng.randrange(30, 300)))
    return {
        "Id": account.id,
        "Name": account.name,
        "Type": account.type,
        "Industry": account.industry,
        "Website": account.website,
        "BillingStreet": account.street,
        "BillingCity": account.city,
        "BillingPostalCode": account.postal_code,
        "BillingState": account.state,
        "BillingCountry": account.country,
        "ParentId": account.parent_id,
        "CurrencyIsoCode": account.currency,
        "Tax_Jurisdiction__c": account.tax_jurisdiction,
        "Tax_Id__c": account.tax_id,
        "Legal_Entity__c": account.legal_entity,
        "OwnerId": _SALES_REPS[rng.randrange(len(_SALES_REPS))],
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _opportunity_record(seed: _OpportunitySeed, owner_id: str, rng: random.Random) -> Record:
    stage = STAGES[seed.stage]
    created = _seed_datetime(rng, seed.close_date - timedelta(days=rng.randrange(30, 200)))
    modified_day = min(seed.close_date, _SEED_TODAY) if stage.is_closed else created.date()
    modified = max(created, _seed_datetime(rng, modified_day + timedelta(days=rng.randrange(0, 3))))
    return {
        "Id": seed.id,
        "Name": seed.name,
        "AccountId": seed.account_id,
        "StageName": seed.stage,
        "Amount": seed.amount,
        "CurrencyIsoCode": seed.currency,
        "CloseDate": seed.close_date.isoformat(),
        "Probability": stage.probability,
        "IsWon": stage.is_won,
        "IsClosed": stage.is_closed,
        "Type": seed.type,
        "LeadSource": seed.lead_source,
        "Billing_Model__c": seed.billing_model,
        "Legal_Entity__c": seed.legal_entity,
        "Project_Id__c": None,
        "Activation_Status__c": None,
        "OwnerId": owner_id,
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _filler_opportunity(
    account: _AccountSeed, number: int, ordinal: int, rng: random.Random
) -> _OpportunitySeed:
    stages = tuple(STAGES)
    if account.tax_jurisdiction is None:
        # Only the well-known opportunity may fail the tax rule, so this account gets no other wins.
        stages = tuple(name for name in stages if name != "Closed Won")
    stage = stages[rng.randrange(len(stages))]
    if STAGES[stage].is_closed:
        close_date = _SEED_TODAY - timedelta(days=rng.randrange(1, 420))
    else:
        close_date = _SEED_TODAY + timedelta(days=rng.randrange(10, 240))
    # Professional-services deals are mostly quoted in round thousands; some carry pence/cents.
    amount = float(rng.randrange(12, 480) * 1000)
    if rng.random() < 0.3:
        amount = round(amount + rng.randrange(1, 100) * 10.25, 2)
    service = _SERVICES[rng.randrange(len(_SERVICES))]
    return _OpportunitySeed(
        id=salesforce_id("006", number),
        account_id=account.id,
        name=f"{account.short_name} - {service} {ordinal}",
        stage=stage,
        amount=amount,
        currency=account.currency,
        billing_model=_BILLING_MODELS[rng.randrange(len(_BILLING_MODELS))],
        legal_entity=account.legal_entity,
        close_date=close_date,
        type=_OPPORTUNITY_TYPES[rng.randrange(len(_OPPORTUNITY_TYPES))],
        lead_source=_LEAD_SOURCES[rng.randrange(len(_LEAD_SOURCES))],
    )


def build_seed(seed: int) -> dict[str, dict[str, Record]]:
    """Build fresh seed records: ``{"Account": {id: record}, "Opportunity": {id: record}}``.

    Well-known records are identical for every seed; `seed` drives the filler (stages, amounts, dates,
    owners). Dicts keep insertion order, which is the order unordered queries return. The result is the
    caller's to mutate.
    """
    # Record values are immutable scalars, so copying each record dict is a full copy.
    return {
        sobject: {record_id: dict(record) for record_id, record in records.items()}
        for sobject, records in _seed_template(seed).items()
    }


@functools.lru_cache(maxsize=4)
def _seed_template(seed: int) -> dict[str, dict[str, Record]]:
    # Generating is ~20x slower than copying, and every sandbox (re)start needs a fresh seed.
    # Well-known records draw their incidental values (owners, timestamps) from a fixed generator so
    # they do not change with the seed; only the filler uses `seed`.
    fixed = random.Random(0)  # noqa: S311 - reproducible seed data, not security
    rng = random.Random(seed)  # noqa: S311 - as above
    accounts = {account.id: _account_record(account, fixed) for account in _ACCOUNTS}
    opportunities: dict[str, Record] = {}
    for known in _WELL_KNOWN_OPPORTUNITIES:
        opportunities[known.id] = _opportunity_record(known, accounts[known.account_id]["OwnerId"], fixed)
    # Filler numbers start well above the well-known ones so the two can never collide.
    number = 1000
    for account in _ACCOUNTS:
        for ordinal in range(1, account.filler_opportunities + 1):
            filler = _filler_opportunity(account, number, ordinal, rng)
            opportunities[filler.id] = _opportunity_record(filler, accounts[account.id]["OwnerId"], rng)
            number += 1
    return {"Account": accounts, "Opportunity": opportunities}

