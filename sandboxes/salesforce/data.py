"""Schema and deterministic seed data for the Salesforce sandbox.

The seed models the CRM of a professional-services firm: 36 client accounts in the US, the UK and Germany
(USD, GBP, EUR; several parent/child hierarchies, one three levels deep across three countries), their
contacts, contracts and opportunities across the whole sales pipeline, and for won deals the commercial
terms the gateway carries over to delivery: milestones (``Opportunity_Milestone__c``) for fixed-fee and
milestone billing, rate cards (``Rate_Card_Line__c``) for time and materials, retainers (overage) and
milestone deals (change requests).

Well-known records have fixed ids and contents so walk-throughs and tests can name them; the filler
around them is drawn from seeded generators. New records are always generated after the older ones or
from a separate generator, so adding data never moves an existing id.

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
``NO_TAX_JURISDICTION_ACCOUNT_ID``       Hooli Media Inc: ``Tax_Jurisdiction__c`` is null (the only one)
``GROUP_PARENT_ACCOUNT_ID``              Contoso Group plc (GB): parent of Contoso Inc (US) and Contoso
                                         Deutschland GmbH (DE); Contoso Inc is parent of Contoso
                                         Federal LLC (US)
``READY_OPPORTUNITY_ID``                 Closed Won, passes every activation rule (125000.5 USD, T&M),
                                         four rate card lines, covered by ``DEMO_CONTRACT_ID``
``READY_FIXED_FEE_OPPORTUNITY_ID``       Closed Won, ready, Fixed Fee (84000 EUR), two milestones
``READY_MILESTONE_OPPORTUNITY_ID``       Closed Won, ready, Milestone (310500.75 GBP), four milestones
                                         summing to the amount and a rate card for change requests
``READY_RETAINER_OPPORTUNITY_ID``        Closed Won, ready, Retainer (48000 USD), two rate card lines,
                                         4000 USD a month covering 20 hours, Net 15
``READY_OPPORTUNITY_IDS``                all fully ready, well-known Closed Won opportunities
``ZERO_AMOUNT_OPPORTUNITY_ID``           Closed Won, ``Amount`` = 0
``NULL_AMOUNT_OPPORTUNITY_ID``           Closed Won, ``Amount`` null
``MISSING_CURRENCY_OPPORTUNITY_ID``      Closed Won, ``CurrencyIsoCode`` null
``MISSING_BILLING_MODEL_OPPORTUNITY_ID`` Closed Won, ``Billing_Model__c`` null
``MISSING_LEGAL_ENTITY_OPPORTUNITY_ID``  Closed Won, ``Legal_Entity__c`` null
``NO_TAX_JURISDICTION_OPPORTUNITY_ID``   Closed Won, complete, but its account has no tax jurisdiction
``OPEN_OPPORTUNITY_ID``                  Negotiation/Review, otherwise complete: move it to Closed Won
``CLOSED_LOST_OPPORTUNITY_ID``           Closed Lost
``DEMO_CONTACT_ID``                      Dana Whitfield, Director of Finance at Northwind Health
``DEMO_CONTRACT_ID``                     Northwind's Activated contract (24 months from 2026-03-01),
                                         ``Opportunity__c`` = ``READY_OPPORTUNITY_ID``
``DUPLICATE_CONTACT_IDS``                two Tailspin Aerospace contacts sharing ``External_Id__c`` =
                                         ``DUPLICATE_CONTACT_EXTERNAL_ID`` (a legacy import's duplicate):
                                         an upsert on that value answers 300
=======================================  ============================================================

Certinia PSA (the managed package ``pse__``, installed in the same org; see the "Certinia PSA" section
below) is seeded small and the same for every seed: ``PSE_PROJECT_IDS`` (three projects delivering the
ready T&M, fixed-fee and milestone deals), ``PSE_RESOURCE_IDS`` (four Contacts without an account, the
firm's own people, each with its ``pse__Resource_Role__c``), one assignment per resource and project
(``pse__Assignment__c``: the role its timecards bill as, one the deal's rate card prices), approved
billable timecards with one split each (header and split naming the assignment), approved billable expenses,
milestones (``PSE_APPROVED_MILESTONE_ID`` approved), ``PSE_UNAPPROVED_TIMECARD_ID`` (submitted, not
approved), ``PSE_NON_BILLABLE_TIMECARD_ID`` (fixed-price time), a resource request and rate cards; no
billing events yet.

Each "failing" opportunity breaks exactly one activation rule (positive amount, currency, billing model,
legal entity, account tax jurisdiction); every other Closed Won opportunity, filler included, passes
all of them. Every deal with terms text has ``Payment_Terms_Days__c`` saying the same ("Net 30" -> 30).
``Stratum_Invoice__c`` (one record per ERP invoice, written by the gateway) starts empty, and so do the
opportunities' invoice totals. `Project_Id__c`, `Activation_Status__c` and the ``Stratum_Id__c``
external ids start null everywhere; ``External_Id__c`` on contacts is null except for the duplicate pair.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "ACCOUNT_SCHEMA",
    "ACTIVATION_STATUSES",
    "BIG_ACCOUNT_ID",
    "BIG_ACCOUNT_OPPORTUNITY_COUNT",
    "CERTINIA_SCHEMAS",
    "CLOSED_LOST_OPPORTUNITY_ID",
    "CONTACT_SCHEMA",
    "CONTRACT_SCHEMA",
    "CONTRACT_STATUSES",
    "DEMO_ACCOUNT_ID",
    "DEMO_CONTACT_ID",
    "DEMO_CONTRACT_ID",
    "DUPLICATE_CONTACT_EXTERNAL_ID",
    "DUPLICATE_CONTACT_IDS",
    "GERMAN_ACCOUNT_ID",
    "GROUP_PARENT_ACCOUNT_ID",
    "INTEGRATION_USERNAME",
    "INTEGRATION_USER_ID",
    "INVOICE_STATUSES",
    "MISSING_BILLING_MODEL_OPPORTUNITY_ID",
    "MISSING_CURRENCY_OPPORTUNITY_ID",
    "MISSING_LEGAL_ENTITY_OPPORTUNITY_ID",
    "NO_TAX_JURISDICTION_ACCOUNT_ID",
    "NO_TAX_JURISDICTION_OPPORTUNITY_ID",
    "NULL_AMOUNT_OPPORTUNITY_ID",
    "OPEN_OPPORTUNITY_ID",
    "OPPORTUNITY_MILESTONE_SCHEMA",
    "OPPORTUNITY_SCHEMA",
    "ORGANIZATION_SCHEMA",
    "ORG_ID",
    "ORG_NAME",
    "PSE_APPROVED_MILESTONE_ID",
    "PSE_ASSIGNMENT_SCHEMA",
    "PSE_AUTO_NUMBER_PREFIXES",
    "PSE_BILLING_EVENT_ITEM_SCHEMA",
    "PSE_BILLING_EVENT_SCHEMA",
    "PSE_DAY_HOURS_FIELDS",
    "PSE_EXPENSE_SCHEMA",
    "PSE_MILESTONE_SCHEMA",
    "PSE_NON_BILLABLE_TIMECARD_ID",
    "PSE_PROJECT_IDS",
    "PSE_PROJECT_SCHEMA",
    "PSE_RATE_CARD_SCHEMA",
    "PSE_RESOURCE_IDS",
    "PSE_RESOURCE_REQUEST_SCHEMA",
    "PSE_TIMECARD_HEADER_SCHEMA",
    "PSE_TIMECARD_SCHEMA",
    "PSE_UNAPPROVED_TIMECARD_ID",
    "RATE_CARD_LINE_SCHEMA",
    "READY_FIXED_FEE_OPPORTUNITY_ID",
    "READY_MILESTONE_OPPORTUNITY_ID",
    "READY_OPPORTUNITY_ID",
    "READY_OPPORTUNITY_IDS",
    "READY_RETAINER_OPPORTUNITY_ID",
    "SCHEMAS",
    "SEED_NOW",
    "STAGES",
    "STRATUM_BILLING_EVENT_STATUSES",
    "STRATUM_INVOICE_SCHEMA",
    "SUBSIDIARY_ACCOUNT_ID",
    "UK_ACCOUNT_ID",
    "USERNAMES",
    "USERS",
    "ZERO_AMOUNT_OPPORTUNITY_ID",
    "FieldKind",
    "FieldSpec",
    "ObjectSchema",
    "Record",
    "StageInfo",
    "add_months",
    "build_seed",
    "compute_formulas",
    "contract_end_date",
    "format_datetime",
    "normalize_salesforce_id",
    "organization_record",
    "parse_datetime",
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
ORG_NAME = "Stratum Sandbox Org"

INTEGRATION_USER_ID = salesforce_id("005", 1)
USERS: Mapping[str, str] = {
    INTEGRATION_USER_ID: "Stratum Integration User",
    salesforce_id("005", 2): "Priya Raman",
    salesforce_id("005", 3): "Tom Becker",
    salesforce_id("005", 4): "Sofia Marques",
    salesforce_id("005", 5): "James Okafor",
}
_SALES_REPS = tuple(USERS)[1:]

INTEGRATION_USERNAME = "integration@stratum-sandbox.example"
# Salesforce usernames are e-mail shaped and unique across all orgs; the JWT bearer flow names the user
# by username (``sub``), so every user has one.
USERNAMES: Mapping[str, str] = {
    INTEGRATION_USERNAME: INTEGRATION_USER_ID,
    "priya.raman@stratum-sandbox.example": salesforce_id("005", 2),
    "tom.becker@stratum-sandbox.example": salesforce_id("005", 3),
    "sofia.marques@stratum-sandbox.example": salesforce_id("005", 4),
    "james.okafor@stratum-sandbox.example": salesforce_id("005", 5),
}

# ---------------------------------------------------------------------------------------------------------
# Schema ("describe")
# ---------------------------------------------------------------------------------------------------------

FieldKind = Literal[
    "id",
    "string",
    "textarea",
    "url",
    "email",
    "phone",
    "picklist",
    "reference",
    "currency",
    "double",
    "percent",
    "int",
    "boolean",
    "date",
    "datetime",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of an sObject, as much of its describe result as the sandbox enforces.

    `createable`/`updateable` are the describe flags (system, derived and auto-number fields are
    neither; a master-detail field is createable but not updateable). `external_id` fields can key an
    upsert; `unique` ones reject a second record with the same value (case-insensitively).
    `cascade_delete` on a reference means deleting the referenced record deletes this one too, as for
    master-detail children and an account's contacts and opportunities.
    """

    name: str
    kind: FieldKind
    updateable: bool = True
    createable: bool = True
    required: bool = False
    length: int | None = None
    restricted_values: tuple[str, ...] | None = None
    reference_to: str | None = None
    external_id: bool = False
    unique: bool = False
    cascade_delete: bool = False
    # Number(precision, scale) of a custom number or currency field; None: the kind's default shape.
    precision: int | None = None
    scale: int | None = None
    # A formula (or roll-up summary) field: computed by the org on read, never createable or updateable
    # (describe's ``calculated``); `sandboxes.salesforce.sobjects` recomputes it after every write.
    formula: bool = False
    # An auto-number Name (describe's ``autoNumber``): the org numbers it on create, never writable.
    auto_number: bool = False
    # The values describe lists for an unrestricted picklist (any value is accepted, as Salesforce's
    # classic picklists do); `restricted_values` is for restricted ones.
    picklist_values: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ObjectSchema:
    """An sObject type: its name, key prefix and fields in describe order.

    `createable`/`updateable`/`deletable` are the object's describe flags for the API user, enforced by
    the sandbox: a setup object such as ``Organization`` can be read and queried but not written.
    """

    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    # The object's label when it is not derived from its API name (a package's "Timecard Split").
    label: str | None = None
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

CONTRACT_STATUSES = ("Draft", "InApproval", "Activated", "Terminated", "Expired")
# The gateway writes activation back to the deal; the org's picklist holds exactly these values.
ACTIVATION_STATUSES = ("Not Started", "In Progress", "Activated", "Blocked", "Cancelled")

_CURRENCIES = ("USD", "GBP", "EUR")
_BILLING_MODELS = ("Time and Materials", "Fixed Fee", "Milestone", "Retainer")
_MILESTONE_STATUSES = ("Planned", "Ready to Invoice", "Invoiced")
# The gateway's invoice status picklist on Stratum_Invoice__c (VENDORS.md "Billing, payments and change
# signals": one child record per ERP invoice, upserted by an external-id field).
INVOICE_STATUSES = ("Draft", "Open", "Partially Paid", "Paid", "Overdue", "Void")
_RATE_UNITS = ("Hour", "Day")


def _read_only(name: str, kind: FieldKind, **extra: Any) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, updateable=False, createable=False, **extra)


_ID = _read_only("Id", "id")
_OWNER = FieldSpec(name="OwnerId", kind="reference", reference_to="User", required=True)
_AUDIT_FIELDS = (
    _read_only("IsDeleted", "boolean"),
    _read_only("CreatedDate", "datetime"),
    _read_only("LastModifiedDate", "datetime"),
    _read_only("SystemModstamp", "datetime"),
)
_SYSTEM_FIELDS = (_OWNER, *_AUDIT_FIELDS)
# Multi-currency org: the running user's currency is the default on create (see the sandbox app).
_CURRENCY = FieldSpec(name="CurrencyIsoCode", kind="picklist", restricted_values=_CURRENCIES)
# Children of a master-detail relationship take the master's currency and cannot set their own.
_INHERITED_CURRENCY = _read_only("CurrencyIsoCode", "picklist", restricted_values=_CURRENCIES)


def _stratum_id() -> FieldSpec:
    # The gateway's own id for a record it created: unique, so a retried create-by-upsert never duplicates.
    return FieldSpec(name="Stratum_Id__c", kind="string", length=64, external_id=True, unique=True)


def _opportunity_master() -> FieldSpec:
    return FieldSpec(
        name="Opportunity__c",
        kind="reference",
        reference_to="Opportunity",
        required=True,
        updateable=False,  # master-detail, reparenting not allowed (Salesforce's default)
        cascade_delete=True,
    )


ACCOUNT_SCHEMA = ObjectSchema(
    "Account",
    "001",
    (
        _ID,
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
        _stratum_id(),
        *_SYSTEM_FIELDS,
    ),
)

# Certinia's resource roles (org-configurable picklist values, here the rate cards' roles): on Contact, a
# resource request and an assignment.
PSE_RESOURCE_ROLES = (
    "Project Manager",
    "Consultant",
    "Senior Consultant",
    "Architect",
    "Developer",
    "Engagement Manager",
    "Solution Architect",
    "Business Analyst",
)

CONTACT_SCHEMA = ObjectSchema(
    "Contact",
    "003",
    (
        _ID,
        FieldSpec(name="AccountId", kind="reference", reference_to="Account", cascade_delete=True),
        FieldSpec(name="Salutation", kind="picklist", length=40),
        FieldSpec(name="FirstName", kind="string", length=40),
        FieldSpec(name="LastName", kind="string", length=80, required=True),
        # Compound name: Salesforce derives it from the parts and never lets it be written.
        _read_only("Name", "string", length=121),
        FieldSpec(name="Title", kind="string", length=128),
        FieldSpec(name="Department", kind="string", length=80),
        FieldSpec(name="Email", kind="email", length=80),
        FieldSpec(name="Phone", kind="phone", length=40),
        FieldSpec(name="MobilePhone", kind="phone", length=40),
        FieldSpec(name="MailingCity", kind="string", length=40),
        FieldSpec(name="MailingCountry", kind="string", length=80),
        _CURRENCY,
        # Not unique on purpose: legacy imports left duplicates, which is what makes an upsert answer 300.
        FieldSpec(name="External_Id__c", kind="string", length=255, external_id=True),
        # Certinia's field on Contact (its resources are Contacts): the resource's own role, what a
        # timecard is billed as when no assignment names one. Unrestricted, org-configurable picklist
        # (public dumps of real PSA orgs' Contact columns: github.com/elastic/dbt-sources,
        # models/stage/stg_salesforce/stg_salesforce__contact.sql, pse_resource_role_c).
        FieldSpec(
            name="pse__Resource_Role__c",
            kind="picklist",
            length=255,
            picklist_values=PSE_RESOURCE_ROLES,
        ),
        *_SYSTEM_FIELDS,
    ),
)

OPPORTUNITY_SCHEMA = ObjectSchema(
    "Opportunity",
    "006",
    (
        _ID,
        FieldSpec(name="Name", kind="string", length=120, required=True),
        FieldSpec(name="AccountId", kind="reference", reference_to="Account", cascade_delete=True),
        FieldSpec(name="StageName", kind="picklist", restricted_values=tuple(STAGES), required=True),
        FieldSpec(name="Amount", kind="currency"),
        # Real multi-currency orgs never leave this null; the seed does on purpose (activation rule).
        _CURRENCY,
        FieldSpec(name="CloseDate", kind="date", required=True),
        FieldSpec(name="Probability", kind="percent"),
        _read_only("IsWon", "boolean"),
        _read_only("IsClosed", "boolean"),
        FieldSpec(name="Type", kind="picklist", length=255),
        FieldSpec(name="LeadSource", kind="picklist", length=255),
        FieldSpec(name="Billing_Model__c", kind="picklist", restricted_values=_BILLING_MODELS),
        FieldSpec(name="Legal_Entity__c", kind="string", length=10),
        FieldSpec(name="Project_Id__c", kind="string", length=64),  # the PSA project
        FieldSpec(name="Activation_Status__c", kind="picklist", restricted_values=ACTIVATION_STATUSES),
        FieldSpec(name="ERP_Project_Id__c", kind="string", length=64),
        FieldSpec(name="ERP_Customer_Id__c", kind="string", length=64),
        FieldSpec(name="Contract_Terms__c", kind="textarea", length=32768),
        # Deal terms the billing run prices from: a retainer's monthly fee and the hours it includes,
        # and the contract's payment terms in days (Number(6,2) and Number(3,0) custom fields).
        FieldSpec(name="Retainer_Monthly_Fee__c", kind="currency"),
        FieldSpec(name="Retainer_Included_Hours__c", kind="double", precision=6, scale=2),
        FieldSpec(name="Payment_Terms_Days__c", kind="double", precision=3, scale=0),
        # Invoice totals over the deal's Stratum_Invoice__c records, written by the gateway.
        FieldSpec(name="Invoiced_Amount__c", kind="currency"),
        FieldSpec(name="Paid_Amount__c", kind="currency"),
        FieldSpec(name="Overdue_Amount__c", kind="currency"),
        _stratum_id(),
        *_SYSTEM_FIELDS,
    ),
)

CONTRACT_SCHEMA = ObjectSchema(
    "Contract",
    "800",
    (
        _ID,
        FieldSpec(
            name="AccountId", kind="reference", reference_to="Account", required=True, cascade_delete=True
        ),
        _read_only("ContractNumber", "string", length=30),  # auto-number
        # Required, but defaulted to Draft on create like the picklist's default value.
        FieldSpec(name="Status", kind="picklist", restricted_values=CONTRACT_STATUSES, required=True),
        FieldSpec(name="StartDate", kind="date"),
        FieldSpec(name="ContractTerm", kind="int"),
        _read_only("EndDate", "date"),  # StartDate + ContractTerm months - 1 day
        _read_only("ActivatedDate", "datetime"),
        _CURRENCY,
        FieldSpec(name="Description", kind="textarea", length=32000),
        FieldSpec(name="SpecialTerms", kind="textarea", length=4000),
        FieldSpec(name="Opportunity__c", kind="reference", reference_to="Opportunity"),
        *_SYSTEM_FIELDS,
    ),
)

OPPORTUNITY_MILESTONE_SCHEMA = ObjectSchema(
    "Opportunity_Milestone__c",
    "a01",
    (
        _ID,
        FieldSpec(name="Name", kind="string", length=80, required=True),
        _opportunity_master(),
        FieldSpec(name="Sequence__c", kind="int"),
        FieldSpec(name="Amount__c", kind="currency"),
        FieldSpec(name="Due_Date__c", kind="date"),
        FieldSpec(name="Status__c", kind="picklist", restricted_values=_MILESTONE_STATUSES),
        _INHERITED_CURRENCY,
        *_AUDIT_FIELDS,  # detail records have no owner of their own
    ),
)

RATE_CARD_LINE_SCHEMA = ObjectSchema(
    "Rate_Card_Line__c",
    "a02",
    (
        _ID,
        _read_only("Name", "string", length=80),  # auto-number RCL-{000000}
        _opportunity_master(),
        FieldSpec(name="Role__c", kind="string", length=80, required=True),
        FieldSpec(name="Rate__c", kind="currency", required=True),
        FieldSpec(name="Unit__c", kind="picklist", restricted_values=_RATE_UNITS),
        _INHERITED_CURRENCY,
        *_AUDIT_FIELDS,
    ),
)

# One record per ERP invoice, under the opportunity and the account (lookups, not master-detail: an
# invoice outlives a deleted deal, and has its own currency and owner). Upserted by ERP_Invoice_Id__c.
STRATUM_INVOICE_SCHEMA = ObjectSchema(
    "Stratum_Invoice__c",
    "a03",
    (
        _ID,
        _read_only("Name", "string", length=80),  # auto-number SI-{000000}
        FieldSpec(name="ERP_Invoice_Id__c", kind="string", length=64, external_id=True, unique=True),
        FieldSpec(name="Opportunity__c", kind="reference", reference_to="Opportunity"),
        FieldSpec(name="Account__c", kind="reference", reference_to="Account"),
        FieldSpec(name="Invoice_Number__c", kind="string", length=64),
        FieldSpec(name="Status__c", kind="picklist", restricted_values=INVOICE_STATUSES),
        FieldSpec(name="Total__c", kind="currency"),
        FieldSpec(name="Balance__c", kind="currency"),
        FieldSpec(name="Issue_Date__c", kind="date"),
        FieldSpec(name="Due_Date__c", kind="date"),
        FieldSpec(name="ERP_Updated_At__c", kind="datetime"),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

# The org itself (`GET .../sobjects/Organization/{ORG_ID}`, ``SELECT ... FROM Organization``): one record,
# read-only through the API (the integration user cannot change company settings). A subset of its fields.
ORGANIZATION_SCHEMA = ObjectSchema(
    "Organization",
    "00D",
    (
        _ID,
        _read_only("Name", "string", length=80),
        _read_only("Division", "string", length=80),
        _read_only("Country", "string", length=80),
        _read_only("DefaultLocaleSidKey", "picklist", length=40),
        _read_only("LanguageLocaleKey", "picklist", length=40),
        _read_only("TimeZoneSidKey", "picklist", length=40),
        _read_only("OrganizationType", "picklist", length=40),
        _read_only("InstanceName", "string", length=5),
        _read_only("IsSandbox", "boolean"),
        _read_only("NamespacePrefix", "string", length=15),
        _read_only("TrialExpirationDate", "datetime"),
        _read_only("CreatedDate", "datetime"),
        _read_only("LastModifiedDate", "datetime"),
        _read_only("SystemModstamp", "datetime"),
    ),
    createable=False,
    updateable=False,
    deletable=False,
)

# ---------------------------------------------------------------------------------------------------------
# Certinia PSA (formerly FinancialForce PSA): the managed package's objects in the same org
# ---------------------------------------------------------------------------------------------------------
#
# Certinia PSA is a managed package installed in the customer's org, so its objects are more objects of this
# org: same OAuth, REST, SOQL, limits and error arrays (VENDORS.md "Certinia PSA"). Object and field names
# are the package's (namespace ``pse__``) as in Certinia's data dictionary (help.certinia.com,
# TechnicalReference, ProfessionalServicesAutomation/Schema) and in public dumps of real PSA orgs'
# schemas (github.com/sirhcrd/sirhcrd.github.io, schema-intel/data/tables/pse_timecard_header_c.md,
# pse_milestone_c.md, ...); the subset and the shapes are the field contract of
# /work/notes/certinia-contract.md. Key prefixes of a managed package's custom objects are assigned per
# org: these (a0P..a0Y) are simply unused in this org. ``Stratum_Key__c`` and the ``Stratum_*`` fields on
# the billing event are the customer's own custom fields on the package's objects (no namespace): the
# package has no external id of its own.

PSE_BILLING_TYPES = ("Time and Materials", "Fixed Price")
PSE_PROJECT_STAGES = ("Draft", "Planned", "In Progress", "Completed", "Canceled")
PSE_MILESTONE_STATUSES = ("Planned", "Open", "Approved", "Canceled")
PSE_RESOURCE_REQUEST_STATUSES = ("Draft", "Ready to Staff", "Hold", "Assigned", "Cancelled")
PSE_TIMECARD_STATUSES = ("Saved", "Submitted", "Approved", "Rejected")
PSE_EXPENSE_STATUSES = ("Draft", "Submitted", "Approved", "Rejected")
PSE_EXPENSE_TYPES = ("Airfare", "Hotel", "Meals", "Mileage", "Other")
PSE_BILLING_EVENT_ITEM_CATEGORIES = ("Budget", "Expense", "Milestone", "Miscellaneous Adjustment", "Timecard")
# pse__Assignment__c.pse__Status__c (org-configurable; "Scheduled" is what real orgs' queries filter on).
PSE_ASSIGNMENT_STATUSES = ("Tentative", "Scheduled", "Closed")
STRATUM_BILLING_EVENT_STATUSES = ("Draft", "Issued", "Cancelled")
PSE_DAY_HOURS_FIELDS = tuple(
    f"pse__{day}_Hours__c"
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
)
# Auto-number Name fields: object -> the display format's fixed part (``RR-{000000}`` -> "RR-").
PSE_AUTO_NUMBER_PREFIXES: Mapping[str, str] = {
    "pse__Resource_Request__c": "RR-",
    "pse__Timecard_Header__c": "TC-",
    "pse__Timecard__c": "TS-",
    "pse__Expense__c": "EX-",
    "pse__Billing_Event__c": "BE-",
    "pse__Billing_Event_Item__c": "BEI-",
    "pse__Rate_Card__c": "RC-",
    "pse__Assignment__c": "AS-",
}


def _auto_name() -> FieldSpec:
    return FieldSpec(
        name="Name", kind="string", length=80, createable=False, updateable=False, auto_number=True
    )


def _formula(name: str, kind: FieldKind) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, createable=False, updateable=False, formula=True)


def _stratum_key() -> FieldSpec:
    # The org's own business key on the package's objects: every create is an upsert on it (Text(80),
    # External ID, Unique, case-insensitive), so a lost answer and a retry make one record.
    return FieldSpec(name="Stratum_Key__c", kind="string", length=80, external_id=True, unique=True)


def _pse_ref(name: str, target: str, *, required: bool = False) -> FieldSpec:
    # A required lookup to a parent takes its records with it when the parent is deleted (decided here:
    # a dangling required lookup cannot exist in an org).
    return FieldSpec(
        name=name, kind="reference", reference_to=target, required=required, cascade_delete=required
    )


def _pse_picklist(name: str, values: tuple[str, ...]) -> FieldSpec:
    # The package's picklists are unrestricted and org-configurable (VENDORS.md: "Status picklist values
    # are org-configurable"): describe lists the values, any value is accepted.
    return FieldSpec(name=name, kind="picklist", length=255, picklist_values=values)


def _invoice_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec(name="pse__Invoice_Number__c", kind="string", length=255),
        FieldSpec(name="pse__Invoice_Date__c", kind="date"),
    )


PSE_PROJECT_SCHEMA = ObjectSchema(
    "pse__Proj__c",
    "a0P",
    (
        _ID,
        FieldSpec(name="Name", kind="string", length=80, required=True),
        FieldSpec(name="pse__Account__c", kind="reference", reference_to="Account"),
        FieldSpec(name="pse__Opportunity__c", kind="reference", reference_to="Opportunity"),
        _pse_picklist("pse__Billing_Type__c", PSE_BILLING_TYPES),
        FieldSpec(name="pse__Start_Date__c", kind="date"),
        FieldSpec(name="pse__End_Date__c", kind="date"),
        FieldSpec(name="pse__Is_Active__c", kind="boolean"),
        FieldSpec(name="pse__Is_Billable__c", kind="boolean"),
        _pse_picklist("pse__Stage__c", PSE_PROJECT_STAGES),
        FieldSpec(name="pse__Closed_for_Time_Entry__c", kind="boolean"),
        FieldSpec(name="pse__Closed_for_Expense_Entry__c", kind="boolean"),
        FieldSpec(name="pse__Project_Manager__c", kind="reference", reference_to="Contact"),
        FieldSpec(name="pse__Description__c", kind="textarea", length=32768),
        _stratum_key(),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
    label="Project",
)

PSE_MILESTONE_SCHEMA = ObjectSchema(
    "pse__Milestone__c",
    "a0Q",
    (
        _ID,
        FieldSpec(name="Name", kind="string", length=80, required=True),
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        FieldSpec(name="pse__Milestone_Amount__c", kind="currency"),
        FieldSpec(name="pse__Target_Date__c", kind="date"),
        FieldSpec(name="pse__Actual_Date__c", kind="date"),
        _pse_picklist("pse__Status__c", PSE_MILESTONE_STATUSES),
        FieldSpec(name="pse__Approved__c", kind="boolean"),
        FieldSpec(name="pse__Billed__c", kind="boolean"),
        _formula("pse__Invoiced__c", "boolean"),
        _formula("pse__Billing_Event_Invoiced__c", "boolean"),
        *_invoice_fields(),
        FieldSpec(
            name="pse__Billing_Event_Item__c", kind="reference", reference_to="pse__Billing_Event_Item__c"
        ),
        _stratum_key(),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

PSE_RESOURCE_REQUEST_SCHEMA = ObjectSchema(
    "pse__Resource_Request__c",
    "a0R",
    (
        _ID,
        _auto_name(),  # RR-{000000}
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        _pse_picklist("pse__Resource_Role__c", PSE_RESOURCE_ROLES),
        FieldSpec(name="pse__Start_Date__c", kind="date"),
        FieldSpec(name="pse__End_Date__c", kind="date"),
        FieldSpec(name="pse__SOW_Hours__c", kind="double"),
        FieldSpec(name="pse__Requested_Bill_Rate__c", kind="currency"),
        _pse_picklist("pse__Status__c", PSE_RESOURCE_REQUEST_STATUSES),
        FieldSpec(name="pse__Notes__c", kind="textarea", length=32768),
        _stratum_key(),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

PSE_TIMECARD_HEADER_SCHEMA = ObjectSchema(
    "pse__Timecard_Header__c",
    "a0S",
    (
        _ID,
        _auto_name(),  # TC-{000000}
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        # Certinia's resources are Contacts (with a user behind them when they log time themselves).
        FieldSpec(name="pse__Resource__c", kind="reference", reference_to="Contact", required=True),
        FieldSpec(name="pse__Milestone__c", kind="reference", reference_to="pse__Milestone__c"),
        # The resource's assignment to the project the time is booked against: what names the role
        # billed (elastic/dbt-sources stg_salesforce__pse_timecard_header_c.sql: pse_assignment_c).
        FieldSpec(name="pse__Assignment__c", kind="reference", reference_to="pse__Assignment__c"),
        FieldSpec(name="pse__Start_Date__c", kind="date"),  # the week's Monday
        FieldSpec(name="pse__End_Date__c", kind="date"),
        _pse_picklist("pse__Status__c", PSE_TIMECARD_STATUSES),
        FieldSpec(name="pse__Approved__c", kind="boolean"),
        FieldSpec(name="pse__Billable__c", kind="boolean"),
        *(FieldSpec(name=name, kind="double", precision=18, scale=2) for name in PSE_DAY_HOURS_FIELDS),
        _formula("pse__Total_Hours__c", "double"),  # the sum of the seven days
        FieldSpec(name="pse__Bill_Rate__c", kind="currency"),
        FieldSpec(name="pse__Notes__c", kind="textarea", length=255),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
    label="Timecard",
)

PSE_TIMECARD_SCHEMA = ObjectSchema(
    "pse__Timecard__c",  # labelled "Timecard Split": what carries billing
    "a0T",
    (
        _ID,
        _auto_name(),  # TS-{000000}
        _pse_ref("pse__Timecard_Header__c", "pse__Timecard_Header__c", required=True),
        FieldSpec(name="pse__Project__c", kind="reference", reference_to="pse__Proj__c"),
        FieldSpec(name="pse__Resource__c", kind="reference", reference_to="Contact"),
        # Real orgs' splits carry their header's assignment too (elastic/dbt-sources,
        # stg_salesforce__pse_timecard_c.sql: pse_assignment_c).
        FieldSpec(name="pse__Assignment__c", kind="reference", reference_to="pse__Assignment__c"),
        FieldSpec(name="pse__Start_Date__c", kind="date"),
        FieldSpec(name="pse__End_Date__c", kind="date"),
        FieldSpec(name="pse__Total_Hours__c", kind="double", precision=18, scale=2),
        FieldSpec(name="pse__Billable__c", kind="boolean"),
        _pse_picklist("pse__Status__c", PSE_TIMECARD_STATUSES),
        FieldSpec(name="pse__Bill_Rate__c", kind="currency"),
        FieldSpec(name="pse__Total_Billable_Amount__c", kind="currency"),
        FieldSpec(name="pse__Billed__c", kind="boolean"),
        _formula("pse__Invoiced__c", "boolean"),
        _formula("pse__Billing_Event_Invoiced__c", "boolean"),
        *_invoice_fields(),
        FieldSpec(
            name="pse__Billing_Event_Item__c", kind="reference", reference_to="pse__Billing_Event_Item__c"
        ),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
    label="Timecard Split",
)

PSE_EXPENSE_SCHEMA = ObjectSchema(
    "pse__Expense__c",
    "a0U",
    (
        _ID,
        _auto_name(),  # EX-{000000}
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        FieldSpec(name="pse__Resource__c", kind="reference", reference_to="Contact"),
        FieldSpec(name="pse__Expense_Date__c", kind="date"),
        _pse_picklist("pse__Type__c", PSE_EXPENSE_TYPES),
        FieldSpec(name="pse__Amount__c", kind="currency"),
        FieldSpec(name="pse__Billable__c", kind="boolean"),
        FieldSpec(name="pse__Billable_Amount__c", kind="currency"),
        _pse_picklist("pse__Status__c", PSE_EXPENSE_STATUSES),
        FieldSpec(name="pse__Approved__c", kind="boolean"),
        FieldSpec(name="pse__Billed__c", kind="boolean"),
        _formula("pse__Invoiced__c", "boolean"),
        _formula("pse__Billing_Event_Invoiced__c", "boolean"),
        *_invoice_fields(),
        FieldSpec(
            name="pse__Billing_Event_Item__c", kind="reference", reference_to="pse__Billing_Event_Item__c"
        ),
        FieldSpec(name="pse__Description__c", kind="textarea", length=255),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

PSE_BILLING_EVENT_SCHEMA = ObjectSchema(
    "pse__Billing_Event__c",
    "a0V",
    (
        _ID,
        _auto_name(),  # BE-{000000}
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        FieldSpec(name="pse__Date__c", kind="date"),
        _formula("pse__Summary_Amount__c", "currency"),  # the sum of its items' pse__Amount__c
        FieldSpec(name="pse__Is_Released__c", kind="boolean"),
        # Invoicing happens at the billing event level: the ERP integration updates these three.
        FieldSpec(name="pse__Invoiced__c", kind="boolean"),
        *_invoice_fields(),
        FieldSpec(name="pse__Event_Key__c", kind="string", length=255),
        _stratum_key(),
        FieldSpec(
            name="Stratum_Status__c",
            kind="picklist",
            length=255,
            restricted_values=STRATUM_BILLING_EVENT_STATUSES,
        ),
        FieldSpec(name="Stratum_ERP_Invoice_Id__c", kind="string", length=64),
        FieldSpec(name="Stratum_Paid_Amount__c", kind="currency"),
        # The ERP payment ids already recorded, one per line (Long Text Area(32768)).
        FieldSpec(name="Stratum_Payment_Ids__c", kind="textarea", length=32768),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

PSE_BILLING_EVENT_ITEM_SCHEMA = ObjectSchema(
    "pse__Billing_Event_Item__c",
    "a0W",
    (
        _ID,
        _auto_name(),  # BEI-{000000}
        FieldSpec(
            name="pse__Billing_Event__c",
            kind="reference",
            reference_to="pse__Billing_Event__c",
            required=True,
            updateable=False,  # master-detail, reparenting not allowed (Salesforce's default)
            cascade_delete=True,
        ),
        FieldSpec(name="pse__Project__c", kind="reference", reference_to="pse__Proj__c"),
        _pse_picklist("pse__Category__c", PSE_BILLING_EVENT_ITEM_CATEGORIES),
        FieldSpec(name="pse__Object_Id__c", kind="string", length=18),  # the source record's id
        FieldSpec(name="pse__Timecard_Split__c", kind="reference", reference_to="pse__Timecard__c"),
        FieldSpec(name="pse__Expense__c", kind="reference", reference_to="pse__Expense__c"),
        FieldSpec(name="pse__Milestone__c", kind="reference", reference_to="pse__Milestone__c"),
        FieldSpec(name="pse__Amount__c", kind="currency"),
        FieldSpec(name="pse__Quantity__c", kind="double", precision=18, scale=2),
        FieldSpec(name="pse__Unit_Price__c", kind="currency"),
        FieldSpec(name="pse__Date__c", kind="date"),
        FieldSpec(name="pse__Description__c", kind="textarea", length=255),
        _formula("pse__Invoiced__c", "boolean"),  # its billing event's
        _stratum_key(),
        _INHERITED_CURRENCY,  # a detail takes its master's currency
        *_AUDIT_FIELDS,  # detail records have no owner of their own
    ),
)

PSE_RATE_CARD_SCHEMA = ObjectSchema(
    "pse__Rate_Card__c",
    "a0X",
    (
        _ID,
        _auto_name(),  # RC-{000000}
        FieldSpec(name="pse__Role__c", kind="string", length=255),
        FieldSpec(name="pse__Suggested_Bill_Rate__c", kind="currency"),
        FieldSpec(name="pse__Account__c", kind="reference", reference_to="Account"),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
)

PSE_ASSIGNMENT_SCHEMA = ObjectSchema(
    # A resource's staffing on a project: its role and bill rate there. Certinia bills a timecard as the
    # role of the assignment its header names. Names from public dumps of real PSA orgs' columns
    # (github.com/elastic/dbt-sources, models/stage/stg_salesforce/stg_salesforce__pse_assignment_c.sql:
    # pse_project_c, pse_resource_c, pse_role_c, pse_bill_rate_c, pse_start_date_c, pse_end_date_c,
    # pse_status_c, pse_is_billable_c); the key prefix is the org's, unused so far in this one.
    "pse__Assignment__c",
    "a0Y",
    (
        _ID,
        _auto_name(),  # AS-{000000}
        _pse_ref("pse__Project__c", "pse__Proj__c", required=True),
        FieldSpec(name="pse__Resource__c", kind="reference", reference_to="Contact", required=True),
        _pse_picklist("pse__Role__c", PSE_RESOURCE_ROLES),
        FieldSpec(name="pse__Bill_Rate__c", kind="currency"),
        FieldSpec(name="pse__Start_Date__c", kind="date"),
        FieldSpec(name="pse__End_Date__c", kind="date"),
        _pse_picklist("pse__Status__c", PSE_ASSIGNMENT_STATUSES),
        FieldSpec(name="pse__Is_Billable__c", kind="boolean"),
        _CURRENCY,
        *_SYSTEM_FIELDS,
    ),
    label="Assignment",
)

CERTINIA_SCHEMAS: tuple[ObjectSchema, ...] = (
    PSE_PROJECT_SCHEMA,
    PSE_MILESTONE_SCHEMA,
    PSE_RESOURCE_REQUEST_SCHEMA,
    PSE_TIMECARD_HEADER_SCHEMA,
    PSE_TIMECARD_SCHEMA,
    PSE_EXPENSE_SCHEMA,
    PSE_BILLING_EVENT_SCHEMA,
    PSE_BILLING_EVENT_ITEM_SCHEMA,
    PSE_RATE_CARD_SCHEMA,
    PSE_ASSIGNMENT_SCHEMA,
)

SCHEMAS: Mapping[str, ObjectSchema] = {
    schema.name: schema
    for schema in (
        ACCOUNT_SCHEMA,
        CONTACT_SCHEMA,
        OPPORTUNITY_SCHEMA,
        CONTRACT_SCHEMA,
        OPPORTUNITY_MILESTONE_SCHEMA,
        RATE_CARD_LINE_SCHEMA,
        STRATUM_INVOICE_SCHEMA,
        ORGANIZATION_SCHEMA,
        *CERTINIA_SCHEMAS,
    )
}

# ---------------------------------------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------------------------------------

# Seed timestamps are anchored here rather than to the wall clock so the data is identical on every run.
SEED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_SEED_NOW = SEED_NOW
_SEED_TODAY = _SEED_NOW.date()


def format_datetime(value: datetime) -> str:
    """Format an aware datetime the way Salesforce does: ``2026-03-04T10:15:00.000+0000``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(value: str) -> datetime:
    """Parse a datetime as `format_datetime` writes it (or any ISO 8601 with an offset) to aware UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"datetime without a UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the end of a shorter month."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


def contract_end_date(start: date | None, term_months: int | None) -> date | None:
    """Salesforce's derived ``Contract.EndDate``: the day before the term's anniversary of the start."""
    if start is None or term_months is None:
        return None
    return add_months(start, term_months) - timedelta(days=1)


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
READY_FIXED_FEE_OPPORTUNITY_ID = salesforce_id("006", 2)
READY_MILESTONE_OPPORTUNITY_ID = salesforce_id("006", 3)
READY_RETAINER_OPPORTUNITY_ID = salesforce_id("006", 4)
READY_OPPORTUNITY_IDS: tuple[str, ...] = (
    READY_OPPORTUNITY_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
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
        DEMO_ACCOUNT_ID,
        "Northwind Health Systems",
        "Northwind Health",
        "Customer - Direct",
        "Healthcare",
        "https://www.northwind-health.example",
        "350 Fifth Avenue, Floor 21",
        "New York",
        "10118",
        "NY",
        "United States",
        "USD",
        "US-NY",
        "13-4567890",
        "US01",
        4,
    ),
    _AccountSeed(
        BIG_ACCOUNT_ID,
        "Globex Professional Services",
        "Globex",
        "Customer - Direct",
        "Consulting",
        "https://www.globex-ps.example",
        "1 Market Street, Suite 3600",
        "San Francisco",
        "94105",
        "CA",
        "United States",
        "USD",
        "US-CA",
        "94-3216547",
        "US01",
        BIG_ACCOUNT_OPPORTUNITY_COUNT,
    ),
    _AccountSeed(
        SUBSIDIARY_ACCOUNT_ID,
        "Globex Professional Services UK Ltd",
        "Globex UK",
        "Customer - Direct",
        "Consulting",
        "https://www.globex-ps.example/uk",
        "30 St Mary Axe",
        "London",
        "EC3A 8BF",
        None,
        "United Kingdom",
        "GBP",
        "GB",
        "GB123456789",
        "GB01",
        4,
        parent_id=BIG_ACCOUNT_ID,
    ),
    _AccountSeed(
        GERMAN_ACCOUNT_ID,
        "Initech Software GmbH",
        "Initech",
        "Customer - Direct",
        "Technology",
        "https://www.initech-software.example",
        "Leopoldstraße 180",
        "München",
        "80804",
        "Bayern",
        "Germany",
        "EUR",
        "DE-BY",
        "DE811234567",
        "DE01",
        5,
    ),
    _AccountSeed(
        UK_ACCOUNT_ID,
        "Umbrella Life Sciences Ltd",
        "Umbrella",
        "Customer - Direct",
        "Biotechnology",
        "https://www.umbrella-life.example",
        "Cambridge Science Park, Milton Road",
        "Cambridge",
        "CB4 0FZ",
        None,
        "United Kingdom",
        "GBP",
        "GB",
        "GB987654321",
        "GB01",
        5,
    ),
    _AccountSeed(
        _STARK_ACCOUNT_ID,
        "Stark Industrial Manufacturing Inc",
        "Stark Industrial",
        "Customer - Direct",
        "Manufacturing",
        "https://www.stark-industrial.example",
        "2000 Post Oak Boulevard",
        "Houston",
        "77056",
        "TX",
        "United States",
        "USD",
        "US-TX",
        "76-1234567",
        "US01",
        4,
    ),
    _AccountSeed(
        _WAYNE_ACCOUNT_ID,
        "Wayne Capital Partners LLC",
        "Wayne Capital",
        "Customer - Direct",
        "Banking",
        "https://www.wayne-capital.example",
        "100 Federal Street",
        "Boston",
        "02110",
        "MA",
        "United States",
        "USD",
        "US-MA",
        "04-7654321",
        "US01",
        3,
    ),
    _AccountSeed(
        NO_TAX_JURISDICTION_ACCOUNT_ID,
        "Hooli Media Inc",
        "Hooli",
        "Customer - Channel",
        "Media",
        "https://www.hooli-media.example",
        "2624 Mill Street",
        "Palo Alto",
        "94306",
        "CA",
        "United States",
        "USD",
        None,
        "77-0001234",
        "US01",
        3,
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
        READY_OPPORTUNITY_ID,
        DEMO_ACCOUNT_ID,
        "Northwind Health - EHR Integration Phase 2",
        "Closed Won",
        125000.5,
        "USD",
        "Time and Materials",
        "US01",
        date(2026, 2, 20),
        "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        READY_FIXED_FEE_OPPORTUNITY_ID,
        GERMAN_ACCOUNT_ID,
        "Initech - S/4HANA Readiness Assessment",
        "Closed Won",
        84000.0,
        "EUR",
        "Fixed Fee",
        "DE01",
        date(2026, 2, 11),
    ),
    _OpportunitySeed(
        READY_MILESTONE_OPPORTUNITY_ID,
        UK_ACCOUNT_ID,
        "Umbrella - Clinical Data Platform Build",
        "Closed Won",
        310500.75,
        "GBP",
        "Milestone",
        "GB01",
        date(2026, 1, 30),
    ),
    _OpportunitySeed(
        READY_RETAINER_OPPORTUNITY_ID,
        _STARK_ACCOUNT_ID,
        "Stark Industrial - Managed Analytics Retainer FY26",
        "Closed Won",
        48000.0,
        "USD",
        "Retainer",
        "US01",
        date(2026, 2, 26),
        "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        ZERO_AMOUNT_OPPORTUNITY_ID,
        DEMO_ACCOUNT_ID,
        "Northwind Health - Change Request 14 (no charge)",
        "Closed Won",
        0.0,
        "USD",
        "Fixed Fee",
        "US01",
        date(2026, 2, 24),
        "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        NULL_AMOUNT_OPPORTUNITY_ID,
        _WAYNE_ACCOUNT_ID,
        "Wayne Capital - Risk Model Validation",
        "Closed Won",
        None,
        "USD",
        "Time and Materials",
        "US01",
        date(2026, 2, 17),
    ),
    _OpportunitySeed(
        MISSING_CURRENCY_OPPORTUNITY_ID,
        _WAYNE_ACCOUNT_ID,
        "Wayne Capital - Data Governance Framework",
        "Closed Won",
        67250.0,
        None,
        "Milestone",
        "US01",
        date(2026, 2, 9),
    ),
    _OpportunitySeed(
        MISSING_BILLING_MODEL_OPPORTUNITY_ID,
        _STARK_ACCOUNT_ID,
        "Stark Industrial - Plant Floor IoT Pilot",
        "Closed Won",
        152000.0,
        "USD",
        None,
        "US01",
        date(2026, 2, 3),
    ),
    _OpportunitySeed(
        MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
        SUBSIDIARY_ACCOUNT_ID,
        "Globex UK - Operating Model Redesign",
        "Closed Won",
        96400.25,
        "GBP",
        "Time and Materials",
        None,
        date(2026, 2, 13),
    ),
    _OpportunitySeed(
        NO_TAX_JURISDICTION_OPPORTUNITY_ID,
        NO_TAX_JURISDICTION_ACCOUNT_ID,
        "Hooli - Content Platform Migration",
        "Closed Won",
        210000.0,
        "USD",
        "Fixed Fee",
        "US01",
        date(2026, 2, 27),
    ),
    _OpportunitySeed(
        OPEN_OPPORTUNITY_ID,
        DEMO_ACCOUNT_ID,
        "Northwind Health - Patient Portal Redesign",
        "Negotiation/Review",
        98000.0,
        "USD",
        "Time and Materials",
        "US01",
        date(2026, 3, 31),
        "Existing Customer - Upgrade",
    ),
    _OpportunitySeed(
        CLOSED_LOST_OPPORTUNITY_ID,
        GERMAN_ACCOUNT_ID,
        "Initech - Legacy Code Audit",
        "Closed Lost",
        36000.0,
        "EUR",
        "Fixed Fee",
        "DE01",
        date(2026, 1, 15),
        lead_source="Web",
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
        "Stratum_Id__c": None,
        "OwnerId": _SALES_REPS[rng.randrange(len(_SALES_REPS))],
        "IsDeleted": False,
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
        "ERP_Project_Id__c": None,
        "ERP_Customer_Id__c": None,
        "Contract_Terms__c": None,
        "Retainer_Monthly_Fee__c": None,
        "Retainer_Included_Hours__c": None,
        "Payment_Terms_Days__c": None,
        "Invoiced_Amount__c": None,
        "Paid_Amount__c": None,
        "Overdue_Amount__c": None,
        "Stratum_Id__c": None,
        "OwnerId": owner_id,
        "IsDeleted": False,
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


# ---------------------------------------------------------------------------------------------------------
# More accounts: hierarchies and the wider client base (fixed, like the accounts above)
# ---------------------------------------------------------------------------------------------------------

GROUP_PARENT_ACCOUNT_ID = salesforce_id("001", 9)
_CONTOSO_US_ACCOUNT_ID = salesforce_id("001", 10)
_FABRIKAM_ACCOUNT_ID = salesforce_id("001", 13)
_WOODGROVE_ACCOUNT_ID = salesforce_id("001", 16)
_TAILSPIN_ACCOUNT_ID = salesforce_id("001", 20)


def _website(short_name: str) -> str:
    slug = "".join(char if char.isalnum() else "-" for char in _ascii(short_name).lower().replace("'", ""))
    return f"https://www.{'-'.join(part for part in slug.split('-') if part)}.example"


_UMLAUTS = (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue"), ("ß", "ss"))


def _ascii(text: str) -> str:
    # German umlauts have conventional ASCII spellings; anything else loses its accent.
    for char, spelled in _UMLAUTS:
        text = text.replace(char, spelled)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _us(
    number: int,
    name: str,
    short_name: str,
    industry: str,
    street: str,
    city: str,
    state: str,
    postal_code: str,
    tax_id: str,
    opportunities: int,
    parent_id: str | None = None,
    account_type: str = "Customer - Direct",
) -> _AccountSeed:
    return _AccountSeed(
        id=salesforce_id("001", number),
        name=name,
        short_name=short_name,
        type=account_type,
        industry=industry,
        website=_website(short_name),
        street=street,
        city=city,
        postal_code=postal_code,
        state=state,
        country="United States",
        currency="USD",
        tax_jurisdiction=f"US-{state}",
        tax_id=tax_id,
        legal_entity="US01",
        filler_opportunities=opportunities,
        parent_id=parent_id,
    )


def _gb(
    number: int,
    name: str,
    short_name: str,
    industry: str,
    street: str,
    city: str,
    postal_code: str,
    vat_number: str,
    opportunities: int,
    parent_id: str | None = None,
    account_type: str = "Customer - Direct",
) -> _AccountSeed:
    return _AccountSeed(
        id=salesforce_id("001", number),
        name=name,
        short_name=short_name,
        type=account_type,
        industry=industry,
        website=_website(short_name),
        street=street,
        city=city,
        postal_code=postal_code,
        state=None,
        country="United Kingdom",
        currency="GBP",
        tax_jurisdiction="GB",
        tax_id=vat_number,
        legal_entity="GB01",
        filler_opportunities=opportunities,
        parent_id=parent_id,
    )


def _de(
    number: int,
    name: str,
    short_name: str,
    industry: str,
    street: str,
    city: str,
    state: str,
    state_code: str,
    postal_code: str,
    vat_number: str,
    opportunities: int,
    parent_id: str | None = None,
    account_type: str = "Customer - Direct",
) -> _AccountSeed:
    return _AccountSeed(
        id=salesforce_id("001", number),
        name=name,
        short_name=short_name,
        type=account_type,
        industry=industry,
        website=_website(short_name),
        street=street,
        city=city,
        postal_code=postal_code,
        state=state,
        country="Germany",
        currency="EUR",
        tax_jurisdiction=f"DE-{state_code}",
        tax_id=vat_number,
        legal_entity="DE01",
        filler_opportunities=opportunities,
        parent_id=parent_id,
    )


_MORE_ACCOUNTS = (
    # Contoso: a UK parent with a US and a German subsidiary, and a US sub-subsidiary.
    _gb(
        9,
        "Contoso Group plc",
        "Contoso Group",
        "Retail",
        "1 Canada Square",
        "London",
        "E14 5AB",
        "GB214365870",
        6,
    ),
    _us(
        10,
        "Contoso Inc",
        "Contoso US",
        "Retail",
        "1201 Third Avenue",
        "Seattle",
        "WA",
        "98101",
        "91-2345678",
        5,
        GROUP_PARENT_ACCOUNT_ID,
    ),
    _de(
        11,
        "Contoso Deutschland GmbH",
        "Contoso DE",
        "Retail",
        "Friedrichstraße 68",
        "Berlin",
        "Berlin",
        "BE",
        "10117",
        "DE298765431",
        4,
        GROUP_PARENT_ACCOUNT_ID,
    ),
    _us(
        12,
        "Contoso Federal LLC",
        "Contoso Federal",
        "Government",
        "1550 Crystal Drive",
        "Arlington",
        "VA",
        "22202",
        "54-1234987",
        3,
        _CONTOSO_US_ACCOUNT_ID,
    ),
    # Fabrikam: a US parent with a US and a UK subsidiary.
    _us(
        13,
        "Fabrikam Holdings Inc",
        "Fabrikam",
        "Manufacturing",
        "233 South Wacker Drive",
        "Chicago",
        "IL",
        "60606",
        "36-4567123",
        5,
    ),
    _us(
        14,
        "Fabrikam Manufacturing Inc",
        "Fabrikam Manufacturing",
        "Manufacturing",
        "500 Woodward Avenue",
        "Detroit",
        "MI",
        "48226",
        "38-2345671",
        4,
        _FABRIKAM_ACCOUNT_ID,
    ),
    _gb(
        15,
        "Fabrikam UK Ltd",
        "Fabrikam UK",
        "Manufacturing",
        "1 Spinningfields",
        "Manchester",
        "M3 3JE",
        "GB345678912",
        3,
        _FABRIKAM_ACCOUNT_ID,
    ),
    # Woodgrove: a German parent with a UK and a German subsidiary.
    _de(
        16,
        "Woodgrove Finanzgruppe AG",
        "Woodgrove",
        "Banking",
        "Neue Mainzer Straße 52",
        "Frankfurt am Main",
        "Hessen",
        "HE",
        "60311",
        "DE812345670",
        6,
    ),
    _gb(
        17,
        "Woodgrove Bank Ltd",
        "Woodgrove UK",
        "Banking",
        "40 St Andrew Square",
        "Edinburgh",
        "EH2 2AD",
        "GB456789123",
        4,
        _WOODGROVE_ACCOUNT_ID,
    ),
    _de(
        18,
        "Woodgrove Asset Management GmbH",
        "Woodgrove AM",
        "Financial Services",
        "Ballindamm 40",
        "Hamburg",
        "Hamburg",
        "HH",
        "20095",
        "DE276543219",
        3,
        _WOODGROVE_ACCOUNT_ID,
    ),
    _us(
        19,
        "Adventure Works Cycles Inc",
        "Adventure Works",
        "Consumer Goods",
        "1700 Lincoln Street",
        "Denver",
        "CO",
        "80202",
        "84-3456712",
        5,
    ),
    _us(
        20,
        "Tailspin Aerospace Inc",
        "Tailspin",
        "Aerospace",
        "125 North Market Street",
        "Wichita",
        "KS",
        "67202",
        "48-5671234",
        4,
    ),
    _us(
        21,
        "Wide World Importers LLC",
        "Wide World Importers",
        "Wholesale",
        "701 Brickell Avenue",
        "Miami",
        "FL",
        "33131",
        "65-1237890",
        4,
    ),
    _us(
        22,
        "Litware Inc",
        "Litware",
        "Technology",
        "500 West 2nd Street",
        "Austin",
        "TX",
        "78701",
        "74-2987654",
        6,
    ),
    _us(
        23,
        "Proseware Health Inc",
        "Proseware Health",
        "Healthcare",
        "80 South 8th Street",
        "Minneapolis",
        "MN",
        "55402",
        "41-7654123",
        4,
    ),
    _us(
        24,
        "Fourth Coffee Company",
        "Fourth Coffee",
        "Food & Beverage",
        "1000 SW Broadway",
        "Portland",
        "OR",
        "97205",
        "93-1122334",
        3,
    ),
    _us(
        25,
        "Alpine Ski House Resorts Inc",
        "Alpine Ski House",
        "Hospitality",
        "222 South Main Street",
        "Salt Lake City",
        "UT",
        "84101",
        "87-6655443",
        3,
    ),
    _us(
        26,
        "Trey Research Labs Inc",
        "Trey Research",
        "Biotechnology",
        "300 Morris Street",
        "Durham",
        "NC",
        "27701",
        "56-2233445",
        5,
    ),
    _us(
        27,
        "Coho Winery LLC",
        "Coho Winery",
        "Food & Beverage",
        "1300 First Street",
        "Napa",
        "CA",
        "94559",
        "68-9988776",
        3,
        account_type="Customer - Channel",
    ),
    _gb(
        28,
        "Lucerne Publishing Ltd",
        "Lucerne Publishing",
        "Media",
        "15 Beaumont Street",
        "Oxford",
        "OX1 2NA",
        "GB567891234",
        4,
    ),
    _gb(
        29,
        "Margie's Travel Ltd",
        "Margie's Travel",
        "Hospitality",
        "2 Temple Back East",
        "Bristol",
        "BS1 6EG",
        "GB678912345",
        3,
    ),
    _gb(
        30,
        "Tailwind Traders UK Ltd",
        "Tailwind Traders",
        "Retail",
        "3 Wellington Place",
        "Leeds",
        "LS1 4AP",
        "GB789123456",
        4,
    ),
    _gb(
        31,
        "Northbrook Energy plc",
        "Northbrook Energy",
        "Energy",
        "Marischal Square, Broad Street",
        "Aberdeen",
        "AB10 1BL",
        "GB891234567",
        5,
    ),
    _de(
        32,
        "Blue Yonder Logistik GmbH",
        "Blue Yonder",
        "Transportation",
        "Am Wall 140",
        "Bremen",
        "Bremen",
        "HB",
        "28195",
        "DE301234567",
        4,
    ),
    _de(
        33,
        "Wingtip Maschinenbau GmbH",
        "Wingtip",
        "Manufacturing",
        "Königstraße 28",
        "Stuttgart",
        "Baden-Württemberg",
        "BW",
        "70173",
        "DE145678923",
        5,
    ),
    _de(
        34,
        "Alpenblick Versicherung AG",
        "Alpenblick",
        "Insurance",
        "Maximilianstraße 12",
        "München",
        "Bayern",
        "BY",
        "80539",
        "DE129876543",
        4,
    ),
    _de(
        35,
        "Rheinland Chemie GmbH",
        "Rheinland Chemie",
        "Chemicals",
        "Hohe Straße 100",
        "Köln",
        "Nordrhein-Westfalen",
        "NW",
        "50667",
        "DE118765432",
        4,
    ),
    _de(
        36,
        "Spreewald Medien GmbH",
        "Spreewald Medien",
        "Media",
        "Alexanderplatz 1",
        "Berlin",
        "Berlin",
        "BE",
        "10178",
        "DE267890123",
        3,
        account_type="Customer - Channel",
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Contacts
# ---------------------------------------------------------------------------------------------------------

DEMO_CONTACT_ID = salesforce_id("003", 1)
DUPLICATE_CONTACT_EXTERNAL_ID = "LEGACY-0042"
DUPLICATE_CONTACT_IDS: tuple[str, ...] = (salesforce_id("003", 900), salesforce_id("003", 901))

_FIRST_NAMES: Mapping[str, tuple[str, ...]] = {
    "United States": (
        "James",
        "Mary",
        "Robert",
        "Patricia",
        "Michael",
        "Jennifer",
        "David",
        "Linda",
        "Marcus",
        "Aisha",
        "Kevin",
        "Emily",
        "Carlos",
        "Grace",
        "Daniel",
        "Mei",
    ),
    "United Kingdom": (
        "Oliver",
        "Amelia",
        "Harry",
        "Isla",
        "George",
        "Olivia",
        "Jack",
        "Charlotte",
        "Thomas",
        "Sophie",
        "William",
        "Priya",
        "Callum",
        "Niamh",
    ),
    "Germany": (
        "Lukas",
        "Anna",
        "Felix",
        "Lea",
        "Jonas",
        "Sophie",
        "Maximilian",
        "Marie",
        "Paul",
        "Hannah",
        "Jan",
        "Katrin",
        "Tobias",
        "Jülide",
    ),
}
_LAST_NAMES: Mapping[str, tuple[str, ...]] = {
    "United States": (
        "Johnson",
        "Williams",
        "Brown",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Anderson",
        "Thompson",
        "Nguyen",
        "Patel",
        "Kim",
        "Walker",
        "O'Connor",
    ),
    "United Kingdom": (
        "Smith",
        "Jones",
        "Taylor",
        "Evans",
        "Wilson",
        "Davies",
        "Hughes",
        "Roberts",
        "Wright",
        "Clarke",
        "Khan",
        "Murphy",
        "Campbell",
        "Fraser",
    ),
    "Germany": (
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "Wolf",
        "Neumann",
    ),
}
_SALUTATIONS: Mapping[str, str] = {
    "Mary": "Ms.",
    "Patricia": "Ms.",
    "Jennifer": "Ms.",
    "Linda": "Ms.",
    "Aisha": "Ms.",
    "Emily": "Ms.",
    "Grace": "Ms.",
    "Mei": "Ms.",
    "Amelia": "Ms.",
    "Isla": "Ms.",
    "Olivia": "Ms.",
    "Charlotte": "Ms.",
    "Sophie": "Ms.",
    "Priya": "Dr.",
    "Niamh": "Ms.",
    "Anna": "Ms.",
    "Lea": "Ms.",
    "Marie": "Ms.",
    "Hannah": "Ms.",
    "Katrin": "Dr.",
    "Jülide": "Ms.",
}
_CONTACT_ROLES = (
    ("Chief Financial Officer", "Finance"),
    ("Director of Finance", "Finance"),
    ("Accounts Payable Manager", "Finance"),
    ("VP Operations", "Operations"),
    ("Programme Director", "Operations"),
    ("Head of IT", "IT"),
    ("Procurement Lead", "Procurement"),
    ("General Counsel", "Legal"),
)
_US_AREA_CODES = ("212", "312", "415", "512", "617", "206", "303", "305")


def _phone(country: str, rng: random.Random) -> str:
    # Numbers from the ranges regulators keep for fiction, so no real line is ever dialled.
    if country == "United States":
        return f"+1 {_US_AREA_CODES[rng.randrange(len(_US_AREA_CODES))]} 555 01{rng.randrange(100):02d}"
    if country == "United Kingdom":
        return f"+44 20 7946 0{rng.randrange(1000):03d}"
    return f"+49 30 23125 {rng.randrange(1000):03d}"


def _contact_record(
    contact_id: str,
    account: Record,
    salutation: str | None,
    first_name: str,
    last_name: str,
    title: str,
    department: str,
    rng: random.Random,
    *,
    phone: str | None = None,
    external_id: str | None = None,
) -> Record:
    domain = (urlsplit(str(account["Website"])).hostname or "example.com").removeprefix("www.")
    local_part = f"{_ascii(first_name)}.{_ascii(last_name)}".lower().replace("'", "").replace(" ", "")
    created = _seed_datetime(rng, _SEED_TODAY - timedelta(days=rng.randrange(30, 700)))
    modified = max(created, _seed_datetime(rng, created.date() + timedelta(days=rng.randrange(0, 200))))
    return {
        "Id": contact_id,
        "AccountId": account["Id"],
        "Salutation": salutation,
        "FirstName": first_name,
        "LastName": last_name,
        "Name": f"{first_name} {last_name}",
        "Title": title,
        "Department": department,
        "Email": f"{local_part}@{domain}",
        "Phone": phone or _phone(str(account["BillingCountry"]), rng),
        "MobilePhone": None,
        "MailingCity": account["BillingCity"],
        "MailingCountry": account["BillingCountry"],
        "CurrencyIsoCode": account["CurrencyIsoCode"],
        "External_Id__c": external_id,
        "pse__Resource_Role__c": None,  # client contacts are no Certinia resources
        "OwnerId": account["OwnerId"],
        "IsDeleted": False,
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _contacts(accounts: Mapping[str, Record]) -> dict[str, Record]:
    # Contacts do not depend on the seed: their own fixed generator, so their ids and contents are stable.
    rng = random.Random("contacts")  # noqa: S311 - reproducible seed data, not security
    contacts: dict[str, Record] = {}
    demo = _contact_record(
        DEMO_CONTACT_ID,
        accounts[DEMO_ACCOUNT_ID],
        "Ms.",
        "Dana",
        "Whitfield",
        "Director of Finance",
        "Finance",
        rng,
        phone="+1 212 555 0142",
    )
    contacts[demo["Id"]] = demo
    # One person imported twice by a legacy migration: same external id on both copies.
    for contact_id, phone in zip(DUPLICATE_CONTACT_IDS, ("+1 316 555 0117", "+1 316 555 0118"), strict=True):
        duplicate = _contact_record(
            contact_id,
            accounts[_TAILSPIN_ACCOUNT_ID],
            "Ms.",
            "Rachel",
            "Moreno",
            "Procurement Lead",
            "Procurement",
            rng,
            phone=phone,
            external_id=DUPLICATE_CONTACT_EXTERNAL_ID,
        )
        contacts[contact_id] = duplicate
    number = 1000
    for account in accounts.values():
        country = str(account["BillingCountry"])
        first_names, last_names = _FIRST_NAMES[country], _LAST_NAMES[country]
        roles = list(_CONTACT_ROLES)
        rng.shuffle(roles)
        for title, department in roles[: rng.randrange(2, 5)]:
            first = first_names[rng.randrange(len(first_names))]
            last = last_names[rng.randrange(len(last_names))]
            contact = _contact_record(
                salesforce_id("003", number),
                account,
                _SALUTATIONS.get(first, "Mr."),
                first,
                last,
                title,
                department,
                rng,
            )
            contacts[contact["Id"]] = contact
            number += 1
    return contacts


# ---------------------------------------------------------------------------------------------------------
# Deal terms: contract terms text, milestones and rate cards on won (and nearly won) deals
# ---------------------------------------------------------------------------------------------------------

_TERMS_STAGES = frozenset({"Closed Won", "Negotiation/Review"})
_TERMS_TEXT: Mapping[str, str] = {
    "Time and Materials": "Time and materials at the agreed rate card; invoiced monthly in arrears; "
    "payment {net}.",
    "Fixed Fee": "Fixed fee invoiced against the milestone schedule; changes by written change request "
    "only; payment {net}.",
    "Milestone": "Each milestone invoiced on the client's written acceptance; change requests priced at "
    "the rate card; payment {net}.",
    "Retainer": "Monthly retainer invoiced in advance; hours beyond the retainer billed at the rate card; "
    "payment {net}.",
}
_MILESTONE_NAMES: Mapping[str, tuple[str, ...]] = {
    "Milestone": (
        "Discovery and design sign-off",
        "Build complete",
        "User acceptance",
        "Go-live",
        "Hypercare exit",
    ),
    "Fixed Fee": ("Mobilisation", "Interim findings", "Final deliverables accepted"),
}
# How many rate card lines a deal of each billing model sells: time and materials bills by them, a
# retainer bills overage by them, a milestone deal prices its change requests by them. Fixed fee has none.
_RATE_CARD_LINES: Mapping[str, tuple[int, int]] = {
    "Time and Materials": (2, 4),
    "Retainer": (2, 2),
    "Milestone": (2, 3),
}
# Hourly list rates in USD; other currencies are converted at round planning rates.
_ROLE_RATES = (
    ("Engagement Manager", 275),
    ("Solution Architect", 250),
    ("Senior Consultant", 210),
    ("Data Engineer", 185),
    ("Consultant", 165),
    ("Business Analyst", 120),
)
_PLANNING_RATES: Mapping[str | None, float] = {"USD": 1.0, "GBP": 0.8, "EUR": 0.92, None: 1.0}


def _rate(usd_hourly: int, currency: str | None, unit: str) -> float:
    hourly = round(usd_hourly * _PLANNING_RATES[currency] / 5) * 5
    return float(hourly * 8 if unit == "Day" else hourly)


def _split(amount: float, weights: list[int]) -> list[float]:
    """`amount` split by `weights` in whole cents; the last part takes the rounding remainder."""
    cents = round(amount * 100)
    total = sum(weights)
    parts = [cents * weight // total for weight in weights[:-1]]
    parts.append(cents - sum(parts))
    return [part / 100 for part in parts]


def _stamp_like(parent: Record) -> dict[str, Any]:
    stamp = parent["LastModifiedDate"]
    return {"IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}


@dataclass(slots=True)
class _DealTerms:
    """Children being generated, with the auto-number and id counters they draw from."""

    milestones: dict[str, Record] = field(default_factory=dict)
    rate_cards: dict[str, Record] = field(default_factory=dict)
    next_milestone: int = 1
    next_rate_card: int = 1
    rate_card_names: int = 0

    def milestone(
        self, opportunity: Record, sequence: int, name: str, amount: float, due: date, status: str
    ) -> None:
        record_id = salesforce_id("a01", self.next_milestone)
        self.next_milestone += 1
        self.milestones[record_id] = {
            "Id": record_id,
            "Name": name,
            "Opportunity__c": opportunity["Id"],
            "Sequence__c": sequence,
            "Amount__c": amount,
            "Due_Date__c": due.isoformat(),
            "Status__c": status,
            "CurrencyIsoCode": opportunity["CurrencyIsoCode"],
            **_stamp_like(opportunity),
        }

    def rate_card_line(self, opportunity: Record, role: str, rate: float, unit: str) -> None:
        record_id = salesforce_id("a02", self.next_rate_card)
        self.next_rate_card += 1
        self.rate_card_names += 1
        self.rate_cards[record_id] = {
            "Id": record_id,
            "Name": f"RCL-{self.rate_card_names:06d}",
            "Opportunity__c": opportunity["Id"],
            "Role__c": role,
            "Rate__c": rate,
            "Unit__c": unit,
            "CurrencyIsoCode": opportunity["CurrencyIsoCode"],
            **_stamp_like(opportunity),
        }


def _set_terms(opportunity: Record, model: str, net: str) -> None:
    """The terms text and the payment terms field that says the same ("Net 30" -> 30 days)."""
    opportunity["Contract_Terms__c"] = _TERMS_TEXT[model].format(net=net)
    opportunity["Payment_Terms_Days__c"] = float(net.removeprefix("Net "))


def _milestone_status(opportunity: Record, due: date) -> str:
    if opportunity["StageName"] != "Closed Won":
        return "Planned"
    return "Invoiced" if due <= _SEED_TODAY else "Planned"


def _terms_for(opportunity: Record, terms: _DealTerms, rng: random.Random) -> None:
    """Give one deal its terms text and the children its billing model implies."""
    model = opportunity["Billing_Model__c"]
    if opportunity["StageName"] not in _TERMS_STAGES or model is None:
        return
    net = ("Net 30", "Net 30", "Net 45", "Net 60")[rng.randrange(4)]
    _set_terms(opportunity, model, net)
    amount = opportunity["Amount"]
    close_date = date.fromisoformat(opportunity["CloseDate"])
    if model in _MILESTONE_NAMES and amount:  # no amount: nothing to schedule (a rule flags that itself)
        names = _MILESTONE_NAMES[model]
        count = rng.randrange(3, len(names) + 1) if model == "Milestone" else rng.randrange(1, len(names) + 1)
        chosen = names[: count - 1] + names[-1:] if count < len(names) else names
        amounts = _split(amount, [rng.randrange(2, 6) for _ in chosen])
        for sequence, (name, part) in enumerate(zip(chosen, amounts, strict=True), start=1):
            due = close_date + timedelta(days=45 * sequence)
            terms.milestone(opportunity, sequence, name, part, due, _milestone_status(opportunity, due))
    if model in _RATE_CARD_LINES:
        unit = "Day" if opportunity["CurrencyIsoCode"] == "EUR" else "Hour"
        roles = list(_ROLE_RATES)
        rng.shuffle(roles)
        low, high = _RATE_CARD_LINES[model]
        for role, usd_hourly in sorted(roles[: rng.randrange(low, high + 1)], key=lambda pair: -pair[1]):
            rate = _rate(usd_hourly, opportunity["CurrencyIsoCode"], unit)
            terms.rate_card_line(opportunity, role, rate, unit)


def _ready_terms(opportunities: Mapping[str, Record], terms: _DealTerms) -> None:
    """The hand-written terms of the well-known ready deals (their children get the first ids)."""
    ready = opportunities[READY_OPPORTUNITY_ID]
    _set_terms(ready, "Time and Materials", "Net 30")
    for role, rate in (
        ("Engagement Manager", 275.0),
        ("Senior Consultant", 210.0),
        ("Consultant", 165.0),
        ("Business Analyst", 120.0),
    ):
        terms.rate_card_line(ready, role, rate, "Hour")
    fixed_fee = opportunities[READY_FIXED_FEE_OPPORTUNITY_ID]
    _set_terms(fixed_fee, "Fixed Fee", "Net 30")
    terms.milestone(fixed_fee, 1, "Mobilisation", 42000.0, date(2026, 2, 25), "Invoiced")
    terms.milestone(fixed_fee, 2, "Final deliverables accepted", 42000.0, date(2026, 4, 30), "Planned")
    milestone = opportunities[READY_MILESTONE_OPPORTUNITY_ID]
    _set_terms(milestone, "Milestone", "Net 45")
    for sequence, (name, amount, due, status) in enumerate(
        (
            ("Discovery and design sign-off", 62100.15, date(2026, 2, 27), "Invoiced"),
            ("Build complete", 124200.30, date(2026, 5, 29), "Planned"),
            ("User acceptance", 77625.19, date(2026, 7, 31), "Planned"),
            ("Go-live", 46575.11, date(2026, 9, 30), "Planned"),
        ),
        start=1,
    ):
        terms.milestone(milestone, sequence, name, amount, due, status)
    # Change requests on the milestone deal are priced by role.
    terms.rate_card_line(milestone, "Solution Architect", 200.0, "Hour")
    terms.rate_card_line(milestone, "Senior Consultant", 170.0, "Hour")
    retainer = opportunities[READY_RETAINER_OPPORTUNITY_ID]
    _set_terms(retainer, "Retainer", "Net 15")
    retainer["Retainer_Monthly_Fee__c"] = 4000.0
    retainer["Retainer_Included_Hours__c"] = 20.0
    terms.rate_card_line(retainer, "Data Scientist", 240.0, "Hour")
    terms.rate_card_line(retainer, "Data Engineer", 185.0, "Hour")


# ---------------------------------------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------------------------------------

DEMO_CONTRACT_ID = salesforce_id("800", 1)
_CONTRACT_DESCRIPTIONS = ("Master services agreement", "Statement of work", "Framework agreement")
_SPECIAL_TERMS = (None, "Net 45", "Net 30; annual rate review", "Net 60; capped expenses")
_CONTRACT_STATUS_DRAW = (
    "Activated",
    "Activated",
    "Activated",
    "Activated",
    "Expired",
    "Expired",
    "Draft",
    "InApproval",
    "Terminated",
)


def _contract_record(
    contract_id: str,
    number: int,
    account: Record,
    status: str,
    start: date,
    term: int,
    opportunity_id: str | None,
    description: str,
    special_terms: str | None,
    rng: random.Random,
) -> Record:
    activated = None
    if status in ("Activated", "Terminated", "Expired"):
        activated = _seed_datetime(rng, start - timedelta(days=rng.randrange(2, 11)))
        created = _seed_datetime(rng, activated.date() - timedelta(days=rng.randrange(5, 40)))
        modified = max(activated, created)
    else:
        created = _seed_datetime(rng, _SEED_TODAY - timedelta(days=rng.randrange(1, 30)))
        modified = created
    end = contract_end_date(start, term)
    return {
        "Id": contract_id,
        "AccountId": account["Id"],
        "ContractNumber": f"{number:08d}",
        "Status": status,
        "StartDate": start.isoformat(),
        "ContractTerm": term,
        "EndDate": None if end is None else end.isoformat(),
        "ActivatedDate": None if activated is None else format_datetime(activated),
        "CurrencyIsoCode": account["CurrencyIsoCode"],
        "Description": description,
        "SpecialTerms": special_terms,
        "Opportunity__c": opportunity_id,
        "OwnerId": account["OwnerId"],
        "IsDeleted": False,
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _contract_dates(status: str, term: int, rng: random.Random) -> date:
    this_month = _SEED_TODAY.replace(day=1)
    if status == "Activated":
        return add_months(this_month, -rng.randrange(0, term))  # still running
    if status == "Expired":
        return add_months(this_month, -(term + rng.randrange(1, 12)))  # ended before this month
    if status == "Terminated":
        return add_months(this_month, -rng.randrange(1, term))  # ended early, by termination
    return add_months(this_month, rng.randrange(1, 4))  # not started yet


def _contracts(
    accounts: Mapping[str, Record], opportunities: Mapping[str, Record], seed: int
) -> dict[str, Record]:
    # How many contracts each account has is fixed; which deal a contract covers follows the seed's deals.
    shape = random.Random("contracts")  # noqa: S311 - reproducible seed data, not security
    links = random.Random(f"contract-links:{seed}")  # noqa: S311 - as above
    fixed = random.Random("demo-contract")  # noqa: S311 - as above
    by_account: dict[str, list[Record]] = {}
    for opportunity in opportunities.values():
        by_account.setdefault(opportunity["AccountId"], []).append(opportunity)
    contracts: dict[str, Record] = {}
    demo = _contract_record(
        DEMO_CONTRACT_ID,
        100,
        accounts[DEMO_ACCOUNT_ID],
        "Activated",
        date(2026, 3, 1),
        24,
        READY_OPPORTUNITY_ID,
        "Master services agreement and statement of work: EHR Integration Phase 2",
        "Net 30; invoices in arrears; rates fixed for the first 12 months.",
        fixed,
    )
    contracts[DEMO_CONTRACT_ID] = demo
    number, contract_number = 1000, 101
    for account in accounts.values():
        if account["Id"] == DEMO_ACCOUNT_ID:
            continue
        count = (0, 0, 1, 1, 1, 2)[shape.randrange(6)]
        for _ in range(count):
            status = _CONTRACT_STATUS_DRAW[shape.randrange(len(_CONTRACT_STATUS_DRAW))]
            term = (12, 24, 36)[shape.randrange(3)]
            start = _contract_dates(status, term, shape)
            description = _CONTRACT_DESCRIPTIONS[shape.randrange(len(_CONTRACT_DESCRIPTIONS))]
            special = _SPECIAL_TERMS[shape.randrange(len(_SPECIAL_TERMS))]
            signed = status in ("Activated", "Terminated", "Expired")
            wanted = "Closed Won" if signed else "Negotiation/Review"
            candidates = [o["Id"] for o in by_account.get(account["Id"], []) if o["StageName"] == wanted]
            linked = candidates[links.randrange(len(candidates))] if candidates else None
            contract = _contract_record(
                salesforce_id("800", number),
                contract_number,
                account,
                status,
                start,
                term,
                linked,
                description,
                special,
                shape,
            )
            contracts[contract["Id"]] = contract
            number += 1
            contract_number += 1
    return contracts


# ---------------------------------------------------------------------------------------------------------
# Certinia PSA records
# ---------------------------------------------------------------------------------------------------------
#
# Small and hand-written (the same for every seed): three projects delivering well-known won deals, four
# resources, a few weeks of time, some expenses and milestones. Nothing is billed yet (no billing events):
# the approved, billable, unbilled work is what a billing run turns into billing events.

PSE_PROJECT_IDS: tuple[str, ...] = tuple(salesforce_id("a0P", n) for n in (1, 2, 3))
"""The seeded Certinia projects: Northwind EHR (T&M, USD), Initech S/4HANA (fixed price, EUR), Umbrella
clinical data platform (T&M, GBP)."""
PSE_RESOURCE_IDS: tuple[str, ...] = tuple(salesforce_id("003", n) for n in (9001, 9002, 9003, 9004))
"""The seeded resources: Contacts of the firm's own people (no client account; numbered far above the
client contacts so neither range moves the other)."""
PSE_UNAPPROVED_TIMECARD_ID = salesforce_id("a0S", 4)
"""A submitted, not yet approved timecard header (billable project, so only approval keeps it unbilled)."""
PSE_NON_BILLABLE_TIMECARD_ID = salesforce_id("a0S", 6)
"""An approved timecard on the fixed-price project: not billable (fixed-price time is billed by milestone)."""
PSE_APPROVED_MILESTONE_ID = salesforce_id("a0Q", 1)
"""Initech's approved "Mobilisation" milestone (42000 EUR)."""

_PSE_STAMP = format_datetime(datetime(2026, 3, 1, 18, 0, tzinfo=UTC))

# (first, last, title, currency, city, country)
_PSE_RESOURCES = (
    ("Maya", "Chen", "Engagement Manager", "USD", "New York", "United States"),
    ("Ravi", "Patel", "Business Analyst", "USD", "Boston", "United States"),
    ("Lukas", "Weber", "Senior Consultant", "EUR", "München", "Germany"),
    ("Olivia", "Grant", "Senior Consultant", "GBP", "London", "United Kingdom"),
)


def _pse_system(owner_id: str | None = INTEGRATION_USER_ID) -> Record:
    system: Record = {
        "IsDeleted": False,
        "CreatedDate": _PSE_STAMP,
        "LastModifiedDate": _PSE_STAMP,
        "SystemModstamp": _PSE_STAMP,
    }
    if owner_id is not None:
        system["OwnerId"] = owner_id
    return system


def _pse_resources() -> dict[str, Record]:
    resources: dict[str, Record] = {}
    for resource_id, (first, last, title, currency, city, country) in zip(
        PSE_RESOURCE_IDS, _PSE_RESOURCES, strict=True
    ):
        resources[resource_id] = {
            "Id": resource_id,
            "AccountId": None,
            "Salutation": None,
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Title": title,
            "Department": "Professional Services",
            "Email": f"{_ascii(first).lower()}.{_ascii(last).lower()}@stratum-consulting.example",
            "Phone": None,
            "MobilePhone": None,
            "MailingCity": city,
            "MailingCountry": country,
            "CurrencyIsoCode": currency,
            "External_Id__c": None,
            # The resource's own role (its title, a role the seeded deals' rate cards price): what its time
            # is billed as where no assignment names a role.
            "pse__Resource_Role__c": title,
            **_pse_system(),
        }
    return resources


def _pse_record(schema: ObjectSchema, values: Record) -> Record:
    """A record of `schema` with every field present (null unless given) and the system fields set."""
    record: Record = {spec.name: None for spec in schema.fields}
    record.update(_pse_system(INTEGRATION_USER_ID if schema.field("OwnerId") is not None else None))
    record.update(values)
    return record


def _certinia_seed(opportunities: Mapping[str, Record]) -> dict[str, dict[str, Record]]:
    seed: dict[str, dict[str, Record]] = {schema.name: {} for schema in CERTINIA_SCHEMAS}
    maya, ravi, lukas, olivia = PSE_RESOURCE_IDS
    northwind, initech, umbrella = PSE_PROJECT_IDS

    def add(schema: ObjectSchema, number: int, values: Record) -> str:
        record_id = salesforce_id(schema.key_prefix, number)
        if schema.name in PSE_AUTO_NUMBER_PREFIXES:
            values = {"Name": f"{PSE_AUTO_NUMBER_PREFIXES[schema.name]}{number:06d}", **values}
        seed[schema.name][record_id] = _pse_record(schema, {"Id": record_id, **values})
        return record_id

    for number, (opportunity_id, billing_type, start, end, description) in enumerate(
        (
            (
                READY_OPPORTUNITY_ID,
                "Time and Materials",
                "2026-02-02",
                "2026-12-18",
                "EHR integration, phase 2",
            ),
            (READY_FIXED_FEE_OPPORTUNITY_ID, "Fixed Price", "2026-02-09", "2026-04-30", "S/4HANA readiness"),
            (
                READY_MILESTONE_OPPORTUNITY_ID,
                "Time and Materials",
                "2026-02-16",
                "2026-09-30",
                "Data platform",
            ),
        ),
        start=1,
    ):
        opportunity = opportunities[opportunity_id]
        add(
            PSE_PROJECT_SCHEMA,
            number,
            {
                "Name": str(opportunity["Name"])[:80],
                "pse__Account__c": opportunity["AccountId"],
                "pse__Opportunity__c": opportunity_id,
                "pse__Billing_Type__c": billing_type,
                "pse__Start_Date__c": start,
                "pse__End_Date__c": end,
                "pse__Is_Active__c": True,
                "pse__Is_Billable__c": True,
                "pse__Stage__c": "In Progress",
                "pse__Closed_for_Time_Entry__c": False,
                "pse__Closed_for_Expense_Entry__c": False,
                "pse__Project_Manager__c": maya if number == 1 else lukas if number == 2 else olivia,
                "pse__Description__c": description,
                "CurrencyIsoCode": opportunity["CurrencyIsoCode"],
                "OwnerId": opportunity["OwnerId"],
            },
        )

    milestone_values = (
        (initech, "Mobilisation", 42000.0, "2026-02-25", "2026-02-25", "Approved", True),
        (initech, "Final deliverables accepted", 42000.0, "2026-04-30", None, "Planned", False),
        (umbrella, "Discovery and design sign-off", 62100.15, "2026-02-27", None, "Open", False),
    )
    for number, (project, name, amount, target, actual, status, approved) in enumerate(
        milestone_values, start=1
    ):
        add(
            PSE_MILESTONE_SCHEMA,
            number,
            {
                "Name": name,
                "pse__Project__c": project,
                "pse__Milestone_Amount__c": amount,
                "pse__Target_Date__c": target,
                "pse__Actual_Date__c": actual,
                "pse__Status__c": status,
                "pse__Approved__c": approved,
                "pse__Billed__c": False,
                "CurrencyIsoCode": seed["pse__Proj__c"][project]["CurrencyIsoCode"],
            },
        )

    add(
        PSE_RESOURCE_REQUEST_SCHEMA,
        1,
        {
            "pse__Project__c": umbrella,
            "pse__Resource_Role__c": "Architect",
            "pse__Start_Date__c": "2026-03-16",
            "pse__End_Date__c": "2026-06-26",
            "pse__SOW_Hours__c": 400.0,
            "pse__Requested_Bill_Rate__c": 200.0,
            "pse__Status__c": "Ready to Staff",
            "CurrencyIsoCode": "GBP",
        },
    )

    # Each resource's assignment to a project it books time on: the role its timecards are billed as, one
    # the project's deal's rate card prices (Northwind: Engagement Manager, Business Analyst; Umbrella:
    # Senior Consultant; Initech is fixed price, its time never billed by role).
    # (project, resource, role, bill rate, start, end)
    assignment_values = (
        (northwind, maya, "Engagement Manager", 275.0, "2026-02-02", "2026-12-18"),
        (northwind, ravi, "Business Analyst", 120.0, "2026-02-02", "2026-12-18"),
        (umbrella, olivia, "Senior Consultant", 170.0, "2026-02-16", "2026-09-30"),
        (initech, lukas, "Senior Consultant", 0.0, "2026-02-09", "2026-04-30"),
    )
    assignments: dict[tuple[str, str], str] = {}
    for number, (project, resource, role, rate, start, end) in enumerate(assignment_values, start=1):
        assignments[project, resource] = add(
            PSE_ASSIGNMENT_SCHEMA,
            number,
            {
                "pse__Project__c": project,
                "pse__Resource__c": resource,
                "pse__Role__c": role,
                "pse__Bill_Rate__c": rate,
                "pse__Start_Date__c": start,
                "pse__End_Date__c": end,
                "pse__Status__c": "Scheduled",
                "pse__Is_Billable__c": project != initech,
                "CurrencyIsoCode": seed["pse__Proj__c"][project]["CurrencyIsoCode"],
            },
        )

    # (project, resource, week's Monday, Mon..Sun hours, rate, status, approved, billable)
    timecards = (
        (northwind, maya, date(2026, 2, 16), (8, 8, 6, 8, 4, 0, 0), 275.0, "Approved", True, True),
        (northwind, ravi, date(2026, 2, 16), (8, 8, 8, 8, 8, 0, 0), 120.0, "Approved", True, True),
        (northwind, maya, date(2026, 2, 23), (6, 7.5, 8, 8, 6, 0, 0), 275.0, "Approved", True, True),
        (northwind, ravi, date(2026, 2, 23), (8, 8, 8, 8, 8, 0, 0), 120.0, "Submitted", False, True),
        (umbrella, olivia, date(2026, 2, 23), (7.5, 7.5, 7.5, 7.5, 7.5, 0, 0), 170.0, "Approved", True, True),
        (initech, lukas, date(2026, 2, 16), (8, 8, 8, 8, 6, 0, 0), 0.0, "Approved", True, False),
    )
    for number, (project, resource, monday, hours, rate, status, approved, billable) in enumerate(
        timecards, start=1
    ):
        currency = seed["pse__Proj__c"][project]["CurrencyIsoCode"]
        sunday = (monday + timedelta(days=6)).isoformat()
        header = add(
            PSE_TIMECARD_HEADER_SCHEMA,
            number,
            {
                "pse__Project__c": project,
                "pse__Resource__c": resource,
                "pse__Assignment__c": assignments[project, resource],
                "pse__Start_Date__c": monday.isoformat(),
                "pse__End_Date__c": sunday,
                "pse__Status__c": status,
                "pse__Approved__c": approved,
                "pse__Billable__c": billable,
                **{day: float(value) for day, value in zip(PSE_DAY_HOURS_FIELDS, hours, strict=True)},
                "pse__Bill_Rate__c": rate,
                "CurrencyIsoCode": currency,
            },
        )
        total = sum(Decimal(str(value)) for value in hours)
        add(
            PSE_TIMECARD_SCHEMA,
            number,
            {
                "pse__Timecard_Header__c": header,
                "pse__Project__c": project,
                "pse__Resource__c": resource,
                "pse__Assignment__c": assignments[project, resource],
                "pse__Start_Date__c": monday.isoformat(),
                "pse__End_Date__c": sunday,
                "pse__Total_Hours__c": float(total),
                "pse__Billable__c": billable,
                "pse__Status__c": status,
                "pse__Bill_Rate__c": rate,
                "pse__Total_Billable_Amount__c": float(total * Decimal(str(rate))) if billable else 0.0,
                "pse__Billed__c": False,
                "CurrencyIsoCode": currency,
            },
        )

    # (project, resource, date, type, amount, description)
    expenses = (
        (northwind, maya, "2026-02-16", "Airfare", 412.80, "Return flight BOS-JFK, workshop week"),
        (northwind, maya, "2026-02-17", "Hotel", 389.00, "Two nights, Midtown"),
        (umbrella, olivia, "2026-02-24", "Mileage", 36.45, "Client site visit, Cambridge"),
    )
    for number, (project, resource, day, kind, amount, description) in enumerate(expenses, start=1):
        add(
            PSE_EXPENSE_SCHEMA,
            number,
            {
                "pse__Project__c": project,
                "pse__Resource__c": resource,
                "pse__Expense_Date__c": day,
                "pse__Type__c": kind,
                "pse__Amount__c": amount,
                "pse__Billable__c": True,
                "pse__Billable_Amount__c": amount,
                "pse__Status__c": "Approved",
                "pse__Approved__c": True,
                "pse__Billed__c": False,
                "pse__Description__c": description,
                "CurrencyIsoCode": seed["pse__Proj__c"][project]["CurrencyIsoCode"],
            },
        )

    for number, (role, rate, account_id) in enumerate(
        (
            ("Engagement Manager", 275.0, DEMO_ACCOUNT_ID),
            ("Business Analyst", 120.0, DEMO_ACCOUNT_ID),
            ("Senior Consultant", 170.0, UK_ACCOUNT_ID),
        ),
        start=1,
    ):
        add(
            PSE_RATE_CARD_SCHEMA,
            number,
            {
                "pse__Role__c": role,
                "pse__Suggested_Bill_Rate__c": rate,
                "pse__Account__c": account_id,
                "CurrencyIsoCode": "GBP" if account_id == UK_ACCOUNT_ID else "USD",
            },
        )
    compute_formulas(seed)
    return seed


# ---------------------------------------------------------------------------------------------------------
# The whole seed
# ---------------------------------------------------------------------------------------------------------


def build_seed(seed: int) -> dict[str, dict[str, Record]]:
    """Build fresh seed records, one ``{id: record}`` dict per object name in `SCHEMAS`.

    Well-known records are identical for every seed, and so are all accounts and contacts; `seed` drives
    the filler opportunities (stages, amounts, dates, owners) and what hangs off them (terms, milestones,
    rate cards, which deal a contract covers). Dicts keep insertion order, which is the order unordered
    queries return. The result is the caller's to mutate.
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
    # they do not change with the seed; only the filler uses `seed`. Every later addition draws from a
    # generator of its own, so the records generated before it keep their ids and contents.
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

    more_fixed = random.Random("more-accounts")  # noqa: S311 - as above
    more_rng = random.Random(f"more-opportunities:{seed}")  # noqa: S311 - as above
    for account in _MORE_ACCOUNTS:
        accounts[account.id] = _account_record(account, more_fixed)
    for account in _MORE_ACCOUNTS:
        for ordinal in range(1, account.filler_opportunities + 1):
            filler = _filler_opportunity(account, number, ordinal, more_rng)
            opportunities[filler.id] = _opportunity_record(filler, accounts[account.id]["OwnerId"], more_rng)
            number += 1

    terms = _DealTerms()
    _ready_terms(opportunities, terms)
    well_known_terms = random.Random("well-known-terms")  # noqa: S311 - as above
    for known in _WELL_KNOWN_OPPORTUNITIES:
        if known.id not in READY_OPPORTUNITY_IDS:
            _terms_for(opportunities[known.id], terms, well_known_terms)
    # Filler children get ids from 1000 up, so the well-known ones above never move.
    terms.next_milestone = terms.next_rate_card = 1000
    filler_terms = random.Random(f"deal-terms:{seed}")  # noqa: S311 - as above
    well_known_ids = {known.id for known in _WELL_KNOWN_OPPORTUNITIES}
    for opportunity in opportunities.values():
        if opportunity["Id"] not in well_known_ids:
            _terms_for(opportunity, terms, filler_terms)

    certinia = _certinia_seed(opportunities)
    return {
        "Account": accounts,
        "Contact": {**_contacts(accounts), **_pse_resources()},
        "Opportunity": opportunities,
        "Contract": _contracts(accounts, opportunities, seed),
        "Opportunity_Milestone__c": terms.milestones,
        "Rate_Card_Line__c": terms.rate_cards,
        "Stratum_Invoice__c": {},
        "Organization": {ORG_ID: organization_record()},
        **certinia,
    }


def _decimal(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def compute_formulas(records: Mapping[str, Mapping[str, Record]]) -> None:
    """Recompute the Certinia package's formula and roll-up fields of `records` in place.

    The org computes these on read and they are never writable (describe: ``calculated``); the sandbox
    stores the computed value and recomputes it after every write, so reads, SOQL filters and ordering see
    what a read in the org would:

    - ``pse__Billing_Event__c.pse__Summary_Amount__c``: the sum of its items' ``pse__Amount__c`` (0 when it
      has none, as a roll-up summary is);
    - ``pse__Invoiced__c`` of timecard splits, expenses and milestones: the ``pse__Invoiced__c`` of the
      billing event their ``pse__Billing_Event_Item__c`` belongs to, false when unlinked (VENDORS.md:
      "Invoicing always occurs at the billing event level"); the same value in
      ``pse__Billing_Event_Invoiced__c``, the package's formula of that name (a real org's
      ``pse__Invoiced__c`` on these objects is a checkbox the package's billing sets; the field
      contract makes it a formula, which reads the same), and in a billing event item's
      ``pse__Invoiced__c``;
    - ``pse__Timecard_Header__c.pse__Total_Hours__c``: the sum of the seven day fields (a blank day is 0).

    Objects missing from `records` (an org deployed without the package) are skipped. Stamps are left
    alone: a formula's value changing does not modify the record.
    """
    events = records.get("pse__Billing_Event__c")
    items = records.get("pse__Billing_Event_Item__c")
    if events is not None and items is not None:
        totals: dict[str, Decimal] = {}
        for item in items.values():
            event_id = item.get("pse__Billing_Event__c")
            if event_id is not None:
                totals[event_id] = totals.get(event_id, Decimal(0)) + _decimal(item.get("pse__Amount__c"))
        for event_id, event in events.items():
            event["pse__Summary_Amount__c"] = float(totals.get(event_id, Decimal(0)))
        invoiced_items = {
            item_id
            for item_id, item in items.items()
            if (owner := events.get(item.get("pse__Billing_Event__c") or "")) is not None
            and owner.get("pse__Invoiced__c")
        }
        for item_id, item in items.items():
            item["pse__Invoiced__c"] = item_id in invoiced_items
        for sobject in ("pse__Timecard__c", "pse__Expense__c", "pse__Milestone__c"):
            for record in records.get(sobject, {}).values():
                invoiced = record.get("pse__Billing_Event_Item__c") in invoiced_items
                record["pse__Invoiced__c"] = record["pse__Billing_Event_Invoiced__c"] = invoiced
    for header in records.get("pse__Timecard_Header__c", {}).values():
        header["pse__Total_Hours__c"] = float(
            sum((_decimal(header.get(day)) for day in PSE_DAY_HOURS_FIELDS), Decimal(0))
        )


def organization_record() -> Record:
    """The org's one ``Organization`` record (the same for every seed)."""
    stamp = format_datetime(_SEED_NOW - timedelta(days=400))
    return {
        "Id": ORG_ID,
        "Name": ORG_NAME,
        "Division": None,
        "Country": "US",
        "DefaultLocaleSidKey": "en_US",
        "LanguageLocaleKey": "en_US",
        "TimeZoneSidKey": "America/Los_Angeles",
        "OrganizationType": "Enterprise Edition",
        "InstanceName": "NA224",
        "IsSandbox": False,
        "NamespacePrefix": None,
        "TrialExpirationDate": None,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
    }
