"""Entity schema, deterministic seed data and the development client of the Business Central sandbox.

The seed models the Business Central tenant of the professional-services firm whose CRM the Salesforce
sandbox holds, as a firm migrating its German books from NetSuite would have it: one environment
(`ENVIRONMENT`, "production") in tenant `TENANT_ID`, with two companies.

Legal entities and companies: Business Central has no legal-entity field; a company *is* a set of books.
The gateway's legal-entity code maps to a company by its ``name`` (`LEGAL_ENTITY_COMPANIES`): ``DE01`` is
"CRONUS DE" (local currency EUR), ``GB01`` is "CRONUS UK" (GBP). The adapter is configured with that name
(or the company id) and resolves the id through ``GET companies``.

Links to the CRM: a Business Central customer has no external-id field, so Stratum keys the customer it
masters from a CRM account by its ``number`` (Code[20], stored uppercase): the CRM id uppercased when it is
at most 20 letters and digits (a Salesforce 18-character id, which is case-safe by design), otherwise a
short hash of it (``system_apis.erp.business_central_mapping.business_key``). Projects (whose API v2.0
entity has only ``id``, ``number`` and ``displayName``) are keyed the same way by the deal's key, and
sales invoices by ``externalDocumentNumber``.

How it lines up with the other seeds (everything dated relative to `SEED_NOW`, the Salesforce anchor):

- Initech Software GmbH (``salesforce.GERMAN_ACCOUNT_ID``) is already a customer of CRONUS DE, linked by
  ``number`` = the account id uppercased (its books moved here from NetSuite); its Closed Won deals that
  closed at least three weeks before `SEED_NOW` have projects (``number`` = the Opportunity Id
  uppercased); more recent ones (the well-known "ready" fixed-fee deal) do not.
- `DUPLICATE_CUSTOMER_ID` is Contoso Deutschland keyed in by hand ("Contoso Deutschland G.m.b.H.", tax id
  spelled with spaces, no link): a probable duplicate of the Salesforce account of that name.
- Müller & Söhne Maschinenbau AG (`MUELLER_CUSTOMER_ID`, the NetSuite seed's German customer) is a
  Business Central-only customer with the well-known invoices.
- Each company's ``taxAreas`` are coded by the tax jurisdictions the Salesforce accounts name (ISO 3166-2:
  ``DE-BY``, ``GB``, ...; `tax_area_id`); seeded customers have none yet (``taxAreaId`` the empty GUID).

Well-known ids:

===============================  ==========================================================================
constant                         entity
===============================  ==========================================================================
``TENANT_ID``                    the Entra tenant (directory) id
``DE_COMPANY_ID``                company "CRONUS DE" (DE01, EUR), `CUSTOMER_COUNT_DE` customers
``UK_COMPANY_ID``                company "CRONUS UK" (GB01, GBP), a handful of customers
``INITECH_CUSTOMER_ID``          Initech Software GmbH, ``number`` = GERMAN_ACCOUNT_ID uppercased
``MUELLER_CUSTOMER_ID``          Müller & Söhne Maschinenbau AG, ``number`` 10000
``DUPLICATE_CUSTOMER_ID``        "Contoso Deutschland G.m.b.H.", ``number`` 10010, no link (see above)
``APOSTROPHE_CUSTOMER_ID``       "Anna's Backstube GmbH" (quotes in $filter literals)
``BLOCKED_CUSTOMER_ID``          Tyrell Beratung GmbH, ``blocked`` All
``UK_CUSTOMER_ID``               Fabrikam Retail Group plc (CRONUS UK)
``DEMO_PROJECT_ID``              Müller plant analytics rollout, ``number`` PR00010
``OPEN_INVOICE_ID``              Müller, Open, due in the future
``PAID_INVOICE_ID``              Müller, Paid by ``PAYMENT_ID``
``PARTIALLY_PAID_INVOICE_ID``    Initech, Open, partly paid by ``PARTIAL_PAYMENT_ID``
``OVERDUE_INVOICE_ID``           Müller, Open, due 45 days before `SEED_NOW`
``DRAFT_INVOICE_ID``             Müller, Draft (not posted: a draft number, no remaining amount)
===============================  ==========================================================================

Exactly `CUSTOMER_COUNT_DE` (260) customers exist in CRONUS DE, so reading them all pages (100 a page) and
`INVOICE_COUNT_DE` (50) sales invoices. Ids are GUIDs derived from fixed names (uuid5), so they never move.

Money is held as ``Decimal`` and goes on the wire as JSON numbers, as Business Central sends it.
VAT: each company has a VAT posting setup (`CompanySetup.tax_codes`: CRONUS DE VAT19 19 %, VAT7 7 %,
NO VAT 0 %; CRONUS UK STANDARD 20 %, REDUCED 5 %, ZERO 0 %); lines carry their ``taxPercent`` and tax, the
header the VAT per VAT identifier rounded at the document level (`sandboxes.business_central.vat`), seeded
invoices included: their ``remainingAmount`` and payments are on the gross amount.

Simplifications (documented where they are made): one VAT business posting group per company (the
customer's tax area does not change the rate), payments are posted the moment they are inserted and stay
listed.

The development client (`DEV_CLIENT_ID`, `DEV_CLIENT_SECRET`) is an app registration known to the sandbox
only; its secret is a published constant and worthless anywhere else.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sandboxes.business_central.vat import document_vat, round_nearest
from sandboxes.salesforce import data as salesforce

__all__ = [
    "APOSTROPHE_CUSTOMER_ID",
    "BLOCKED_CUSTOMER_ID",
    "CUSTOMER_COUNT_DE",
    "DEMO_PROJECT_ID",
    "DEV_CLIENT_ID",
    "DEV_CLIENT_SECRET",
    "DE_COMPANY_ID",
    "DRAFT_INVOICE_ID",
    "DUPLICATE_CUSTOMER_ID",
    "ENVIRONMENT",
    "INITECH_CUSTOMER_ID",
    "INVOICE_COUNT_DE",
    "LEGAL_ENTITY_COMPANIES",
    "MUELLER_CUSTOMER_ID",
    "OPEN_INVOICE_ID",
    "OVERDUE_INVOICE_ID",
    "PAID_INVOICE_ID",
    "PARTIALLY_PAID_INVOICE_ID",
    "PARTIAL_PAYMENT_ID",
    "PAYMENT_ID",
    "SEED_DATE",
    "SEED_NOW",
    "TENANT_ID",
    "UK_COMPANY_ID",
    "UK_CUSTOMER_ID",
    "ZERO_GUID",
    "CompanySetup",
    "Record",
    "build_seed",
    "company_setup",
    "format_datetime",
    "guid",
    "tax_area_id",
]

Record = dict[str, Any]

SEED_NOW = salesforce.SEED_NOW
SEED_DATE = SEED_NOW.date()

_NAMESPACE = uuid.UUID("0b6c1f0e-4f4e-5c55-9a1d-3c2b7e5d9a40")
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def guid(label: str) -> str:
    """A stable GUID for a seed label (lowercase, as Business Central writes them)."""
    return str(uuid.uuid5(_NAMESPACE, label))


def format_datetime(value: datetime) -> str:
    """Business Central's ``lastModifiedDateTime``: UTC with milliseconds, ``2026-03-02T09:30:00.123Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------------------
# Tenant, environment, companies, development client
# ---------------------------------------------------------------------------------------------------------

TENANT_ID = "7f3c9a52-1d4e-4b8a-9c61-2e5f0a8b3d17"
ENVIRONMENT = "production"
DEV_CLIENT_ID = "4a8e2c1f-6b3d-4f9e-8a27-c5d1e0f3b692"
# Entra client secrets are 40 characters with a "~" in them; this one is published and sandbox-only.
DEV_CLIENT_SECRET = "Sbx8Q~stratum.bc.sandbox.development.only"

DE_COMPANY_ID = guid("company:CRONUS DE")
UK_COMPANY_ID = guid("company:CRONUS UK")
LEGAL_ENTITY_COMPANIES: Mapping[str, str] = {"DE01": "CRONUS DE", "GB01": "CRONUS UK"}


@dataclass(frozen=True, slots=True)
class CompanySetup:
    """What a company's setup tables hold that the API validates against."""

    id: str
    name: str
    local_currency: str
    currencies: frozenset[str]
    """Foreign currencies set up (the local one is written as blank in Business Central)."""
    gl_accounts: frozenset[str]
    """Posting G/L accounts an invoice line of type Account may name."""
    country: str
    tax_codes: Mapping[str, Decimal] = field(default_factory=dict)
    """The company's VAT posting setup: each code a line's ``taxCode`` may name (in a VAT country a VAT
    product posting group, which the API validates ``VAT Prod. Posting Group`` with; in the US it would be
    the tax group) and its ``VAT %``. Business Central keys its VAT Posting Setup by business and product
    posting group (table 325 "VAT Posting Setup": "VAT Bus. Posting Group", "VAT Prod. Posting Group",
    "VAT Calculation Type", "VAT %", "VAT Identifier"); simplification: every customer here is in the
    company's domestic VAT business posting group, so the product group alone decides the rate, and each
    product group is its own VAT identifier (Normal VAT)."""
    default_tax_code: str = ""
    """The tax code a line gets from its G/L account when the body names none."""


_COMPANIES = (
    CompanySetup(
        DE_COMPANY_ID,
        "CRONUS DE",
        "EUR",
        frozenset({"USD", "GBP", "CHF"}),
        frozenset({"8100", "8400"}),
        "DE",
        # German VAT (UStG section 12): 19 % standard, 7 % reduced; NO VAT for what is outside its scope.
        {"VAT19": Decimal(19), "VAT7": Decimal(7), "NO VAT": Decimal(0)},
        "VAT19",
    ),
    CompanySetup(
        UK_COMPANY_ID,
        "CRONUS UK",
        "GBP",
        frozenset({"EUR", "USD"}),
        frozenset({"40100", "40200"}),
        "GB",
        # UK VAT rates (gov.uk "VAT rates"): standard 20 %, reduced 5 %, zero.
        {"STANDARD": Decimal(20), "REDUCED": Decimal(5), "ZERO": Decimal(0)},
        "STANDARD",
    ),
)


def company_setup(company_id: str) -> CompanySetup | None:
    return next((company for company in _COMPANIES if company.id == company_id), None)


# ---------------------------------------------------------------------------------------------------------
# Well-known ids
# ---------------------------------------------------------------------------------------------------------

INITECH_CUSTOMER_ID = guid("customer:initech")
MUELLER_CUSTOMER_ID = guid("customer:mueller")
DUPLICATE_CUSTOMER_ID = guid("customer:contoso-de-duplicate")
APOSTROPHE_CUSTOMER_ID = guid("customer:annas-backstube")
BLOCKED_CUSTOMER_ID = guid("customer:tyrell")
UK_CUSTOMER_ID = guid("customer:fabrikam")
DEMO_PROJECT_ID = guid("project:PR00010")
OPEN_INVOICE_ID = guid("invoice:open")
PAID_INVOICE_ID = guid("invoice:paid")
PARTIALLY_PAID_INVOICE_ID = guid("invoice:partially-paid")
OVERDUE_INVOICE_ID = guid("invoice:overdue")
DRAFT_INVOICE_ID = guid("invoice:draft")
PAYMENT_ID = guid("payment:paid")
PARTIAL_PAYMENT_ID = guid("payment:partial")

CUSTOMER_COUNT_DE = 260
INVOICE_COUNT_DE = 50

_PAYMENT_TERMS_DAYS = 30
_ACTIVATED_BEFORE = SEED_DATE - timedelta(days=21)


@dataclass(frozen=True, slots=True)
class _CustomerSeed:
    id: str
    number: str
    name: str
    company: str
    address: str
    city: str
    postal_code: str
    country: str
    tax_id: str | None
    website: str | None
    currency: str = ""  # blank: the company's local currency
    blocked: str = "_x0020_"


_WELL_KNOWN_CUSTOMERS = (
    _CustomerSeed(
        INITECH_CUSTOMER_ID,
        salesforce.GERMAN_ACCOUNT_ID.upper(),
        "Initech Software GmbH",
        DE_COMPANY_ID,
        "Leopoldstraße 180",
        "München",
        "80804",
        "DE",
        "DE811234567",
        "https://www.initech-software.example",
    ),
    _CustomerSeed(
        MUELLER_CUSTOMER_ID,
        "10000",
        "Müller & Söhne Maschinenbau AG",
        DE_COMPANY_ID,
        "Industriestraße 12",
        "Stuttgart",
        "70565",
        "DE",
        "DE298765432",
        "https://www.mueller-soehne.example",
    ),
    # Keyed in by finance before the CRM link existed: same company as the Salesforce account "Contoso
    # Deutschland GmbH" (same tax id, spelled with spaces), other punctuation, no link.
    _CustomerSeed(
        DUPLICATE_CUSTOMER_ID,
        "10010",
        "Contoso Deutschland G.m.b.H.",
        DE_COMPANY_ID,
        "Friedrichstraße 68",
        "Berlin",
        "10117",
        "DE",
        "DE 298 765 431",
        None,
    ),
    _CustomerSeed(
        APOSTROPHE_CUSTOMER_ID,
        "10020",
        "Anna's Backstube GmbH",
        DE_COMPANY_ID,
        "Marktplatz 3",
        "Freiburg im Breisgau",
        "79098",
        "DE",
        "DE143256789",
        "https://www.annas-backstube.example",
    ),
    _CustomerSeed(
        BLOCKED_CUSTOMER_ID,
        "10030",
        "Tyrell Beratung GmbH",
        DE_COMPANY_ID,
        "Königsallee 1",
        "Düsseldorf",
        "40212",
        "DE",
        "DE567890123",
        "https://www.tyrell-beratung.example",
        blocked="All",
    ),
    _CustomerSeed(
        UK_CUSTOMER_ID,
        "10000",
        "Fabrikam Retail Group plc",
        UK_COMPANY_ID,
        "1 Poultry",
        "London",
        "EC2R 8EJ",
        "GB",
        "GB246813579",
        "https://www.fabrikam-retail.example",
    ),
)

_UK_FILLER = (
    ("Albion Water plc", "Bristol", "BS1 4DJ"),
    ("Brightstone Housing Association", "Leeds", "LS1 4AP"),
    ("Cavendish Legal LLP", "London", "EC4M 7AN"),
    ("Kestrel Insurance Group Ltd", "Norwich", "NR1 3NG"),
    ("Thames Valley Logistics Ltd", "Reading", "RG1 1AZ"),
)

# German filler names: a place or a coined word, a trade, a legal form.
_DE_PREFIXES = (
    "Alpenblick",
    "Bergmann",
    "Hanse",
    "Rheinland",
    "Schwarzwald",
    "Nordlicht",
    "Isar",
    "Elbtal",
    "Mainufer",
    "Spreewald",
    "Bodensee",
    "Harz",
    "Eifel",
    "Allgäu",
    "Weser",
    "Lahn",
    "Mosel",
    "Taunus",
    "Odenwald",
    "Ostsee",
)
_DE_TRADES = (
    "Logistik",
    "Energie",
    "Kliniken",
    "Präzisionstechnik",
    "Medien",
    "Finanzdienstleistungen",
    "Versicherung",
    "Bau",
    "Software",
    "Immobilien",
    "Maschinenbau",
    "Handel",
    "Pharma",
    "Textil",
)
_DE_FORMS = ("GmbH", "AG", "GmbH & Co. KG", "SE", "KG", "gGmbH")
_DE_CITIES = (
    ("München", "80331"),
    ("Hamburg", "20095"),
    ("Berlin", "10115"),
    ("Köln", "50667"),
    ("Frankfurt am Main", "60311"),
    ("Stuttgart", "70173"),
    ("Düsseldorf", "40213"),
    ("Leipzig", "04109"),
    ("Dresden", "01067"),
    ("Nürnberg", "90402"),
    ("Hannover", "30159"),
    ("Bremen", "28195"),
)
_STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Goethestraße", "Lindenallee")


def _slug(name: str) -> str:
    spelled = name
    for char, ascii_spelling in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("Ä", "Ae")):
        spelled = spelled.replace(char, ascii_spelling)
    return "-".join("".join(c if c.isalnum() else " " for c in spelled.lower()).split())


def _moment(rng: random.Random, day: date) -> datetime:
    """A working-hours moment on `day`, never after `SEED_NOW`."""
    moment = datetime.combine(day, time(rng.randrange(7, 19), rng.randrange(0, 60), rng.randrange(0, 60)))
    return min(moment.replace(tzinfo=UTC), SEED_NOW)


def _customer_record(seed: _CustomerSeed, rng: random.Random) -> Record:
    modified = _moment(rng, SEED_DATE - timedelta(days=rng.randrange(20, 700)))
    domain = _slug(seed.name)[:30] + ".example"
    return {
        "id": seed.id,
        "companyId": seed.company,
        "number": seed.number,
        "displayName": seed.name,
        "type": "Company",
        "addressLine1": seed.address,
        "addressLine2": "",
        "city": seed.city,
        "state": "",
        "country": seed.country,
        "postalCode": seed.postal_code,
        "phoneNumber": "",
        "email": f"buchhaltung@{domain}" if seed.country == "DE" else f"accounts@{domain}",
        "website": seed.website or "",
        "taxLiable": False,
        "taxAreaId": ZERO_GUID,
        "taxRegistrationNumber": seed.tax_id or "",
        "currencyCode": seed.currency,
        "blocked": seed.blocked,
        "lastModifiedDateTime": format_datetime(modified),
    }


def _filler_customers(rng: random.Random) -> list[_CustomerSeed]:
    names: list[str] = []
    seen: set[str] = set()
    combos = [(p, t, f) for p in _DE_PREFIXES for t in _DE_TRADES for f in _DE_FORMS]
    picker = random.Random(7)  # noqa: S311 - the names are fixed for every seed
    picker.shuffle(combos)
    for prefix, trade, form in combos:
        if len(names) >= CUSTOMER_COUNT_DE - 5:
            break
        key = f"{prefix} {trade}"
        if key in seen:
            continue
        seen.add(key)
        names.append(f"{prefix} {trade} {form}")
    customers: list[_CustomerSeed] = []
    for offset, name in enumerate(names):
        city, postal_code = _DE_CITIES[offset % len(_DE_CITIES)]
        number = f"C{(offset + 1) * 10:05d}"
        customers.append(
            _CustomerSeed(
                guid(f"customer:de:{number}"),
                number,
                name,
                DE_COMPANY_ID,
                f"{_STREETS[offset % len(_STREETS)]} {rng.randrange(1, 120)}",
                city,
                postal_code,
                "DE",
                f"DE{rng.randrange(100000000, 999999999)}",
                f"https://www.{_slug(name)[:30]}.example",
                currency="CHF" if offset % 41 == 40 else "",
            )
        )
    for offset, (name, city, postal_code) in enumerate(_UK_FILLER):
        number = f"C{(offset + 1) * 10:05d}"
        customers.append(
            _CustomerSeed(
                guid(f"customer:uk:{number}"),
                number,
                name,
                UK_COMPANY_ID,
                f"{rng.randrange(1, 200)} High Street",
                city,
                postal_code,
                "GB",
                f"GB{rng.randrange(100000000, 999999999)}",
                f"https://www.{_slug(name)[:30]}.example",
            )
        )
    return customers


# ---------------------------------------------------------------------------------------------------------
# Projects, invoices, payments
# ---------------------------------------------------------------------------------------------------------


def _project(project_id: str, company: str, number: str, name: str) -> Record:
    return {"id": project_id, "companyId": company, "number": number, "displayName": name[:100]}


def _projects(seed: int) -> list[Record]:
    projects = [
        _project(DEMO_PROJECT_ID, DE_COMPANY_ID, "PR00010", "Müller - Plant Analytics Rollout"),
        _project(guid("project:PR00020"), DE_COMPANY_ID, "PR00020", "Müller - Retainer 2026"),
        _project(guid("project:PR00030"), DE_COMPANY_ID, "PR00030", "Hanse Energie - Grid Data Platform"),
        _project(guid("project:uk:PR00010"), UK_COMPANY_ID, "PR00010", "Fabrikam - Store Analytics"),
    ]
    # Initech's deals that closed a while ago were activated (in NetSuite, then migrated): their projects
    # are numbered by the Opportunity Id.
    opportunities = salesforce.build_seed(seed)["Opportunity"]
    activated = sorted(
        (
            opportunity
            for opportunity in opportunities.values()
            if opportunity["AccountId"] == salesforce.GERMAN_ACCOUNT_ID
            and opportunity["IsWon"]
            and date.fromisoformat(opportunity["CloseDate"]) <= _ACTIVATED_BEFORE
        ),
        key=lambda opportunity: (opportunity["CloseDate"], opportunity["Id"]),
    )
    for opportunity in activated:
        number = str(opportunity["Id"]).upper()
        projects.append(_project(guid(f"project:{number}"), DE_COMPANY_ID, number, str(opportunity["Name"])))
    return projects


@dataclass(frozen=True, slots=True)
class _InvoiceSeed:
    id: str
    customer: str
    invoice_date: date
    lines: tuple[tuple[str, Decimal, Decimal], ...]  # description, quantity, unit price
    paid_share: Decimal = Decimal(0)
    payment_id: str | None = None
    external_document_number: str = ""
    draft: bool = False


_SERVICES = (
    "Senior Consultant",
    "Consultant",
    "Solution Architect",
    "Project Management",
    "Data Engineering",
    "Workshop (fixed fee)",
)


def _well_known_invoices() -> list[_InvoiceSeed]:
    return [
        _InvoiceSeed(
            OPEN_INVOICE_ID,
            MUELLER_CUSTOMER_ID,
            SEED_DATE - timedelta(days=10),
            (
                ("Senior Consultant, February", Decimal("80"), Decimal("165.00")),
                ("Travel and expenses", Decimal("1"), Decimal("1240.50")),
            ),
            external_document_number="PR00010-2026-02",
        ),
        _InvoiceSeed(
            PAID_INVOICE_ID,
            MUELLER_CUSTOMER_ID,
            SEED_DATE - timedelta(days=40),
            (("Senior Consultant, January", Decimal("96"), Decimal("165.00")),),
            paid_share=Decimal(1),
            payment_id=PAYMENT_ID,
            external_document_number="PR00010-2026-01",
        ),
        _InvoiceSeed(
            PARTIALLY_PAID_INVOICE_ID,
            INITECH_CUSTOMER_ID,
            SEED_DATE - timedelta(days=20),
            (("Workshop (fixed fee)", Decimal("1"), Decimal("18000.00")),),
            paid_share=Decimal("0.4"),
            payment_id=PARTIAL_PAYMENT_ID,
        ),
        _InvoiceSeed(
            OVERDUE_INVOICE_ID,
            MUELLER_CUSTOMER_ID,
            SEED_DATE - timedelta(days=45 + _PAYMENT_TERMS_DAYS),
            (("Solution Architect, December", Decimal("40"), Decimal("190.00")),),
        ),
        _InvoiceSeed(
            DRAFT_INVOICE_ID,
            MUELLER_CUSTOMER_ID,
            SEED_DATE - timedelta(days=1),
            (("Project Management, March", Decimal("12"), Decimal("150.00")),),
            draft=True,
        ),
    ]


def _filler_invoices(rng: random.Random, customers: list[Record]) -> list[_InvoiceSeed]:
    german = [c for c in customers if c["companyId"] == DE_COMPANY_ID and c["blocked"] != "All"]
    invoices: list[_InvoiceSeed] = []
    for number in range(INVOICE_COUNT_DE - len(_well_known_invoices())):
        customer = german[rng.randrange(len(german))]
        day = SEED_DATE - timedelta(days=rng.randrange(3, 200))
        lines = tuple(
            (
                _SERVICES[rng.randrange(len(_SERVICES))],
                Decimal(rng.randrange(1, 80)),
                Decimal(rng.randrange(90, 220)) + Decimal(rng.choice(("0", "0.5", "0.25"))),
            )
            for _ in range(rng.randrange(1, 4))
        )
        age = (SEED_DATE - day).days
        roll = rng.random()
        share = Decimal(0)
        if age > 60 and roll < 0.8:
            share = Decimal(1)
        elif age > 20 and roll < 0.35:
            share = rng.choice((Decimal("0.25"), Decimal("0.5")))
        invoices.append(
            _InvoiceSeed(
                guid(f"invoice:filler:{number}"),
                customer["id"],
                day,
                lines,
                paid_share=share,
                external_document_number=f"STRATUM-SEED-{number:04d}" if rng.random() < 0.3 else "",
            )
        )
    return invoices


def _cents(value: Decimal) -> Decimal:
    return round_nearest(value)


def _invoice_records(
    seed: _InvoiceSeed, customer: Record, sequence: int, rng: random.Random
) -> tuple[Record, Record | None]:
    setup = company_setup(customer["companyId"])
    assert setup is not None
    lines: list[Record] = []
    for index, (description, quantity, unit_price) in enumerate(seed.lines, start=1):
        amount = _cents(quantity * unit_price)
        lines.append(
            {
                "id": guid(f"{seed.id}:line:{index}"),
                "documentId": seed.id,
                "sequence": index * 10000,
                "lineType": "Account",
                "lineObjectNumber": sorted(setup.gl_accounts)[-1],
                "description": description,
                "quantity": quantity,
                "unitPrice": unit_price,
                "discountAmount": Decimal(0),
                "discountPercent": Decimal(0),
                "amountExcludingTax": amount,
                "taxCode": setup.default_tax_code,
                "netAmount": amount,
            }
        )
    net, tax = document_vat(lines, setup.tax_codes)
    total = net + tax  # what the customer owes, and what payments pay
    paid = _cents(total * seed.paid_share)
    modified = _moment(rng, min(SEED_DATE, seed.invoice_date + timedelta(days=rng.randrange(0, 3))))
    invoice: Record = {
        "id": seed.id,
        "companyId": customer["companyId"],
        "number": f"S-INV{100000 + sequence}" if seed.draft else f"{103000 + sequence}",
        "externalDocumentNumber": seed.external_document_number,
        "invoiceDate": seed.invoice_date.isoformat(),
        "postingDate": seed.invoice_date.isoformat(),
        "dueDate": (seed.invoice_date + timedelta(days=_PAYMENT_TERMS_DAYS)).isoformat(),
        "customerId": customer["id"],
        "customerNumber": customer["number"],
        "customerName": customer["displayName"],
        "currencyCode": customer["currencyCode"],
        "pricesIncludeTax": False,
        "discountAmount": Decimal(0),
        "totalAmountExcludingTax": net,
        "totalTaxAmount": tax,
        "totalAmountIncludingTax": total,
        "remainingAmount": Decimal(0) if seed.draft else total - paid,
        "status": "Draft" if seed.draft else ("Paid" if paid >= total else "Open"),
        "lastModifiedDateTime": format_datetime(modified),
        "salesInvoiceLines": lines,
    }
    if paid <= 0:
        return invoice, None
    paid_on = min(SEED_DATE, seed.invoice_date + timedelta(days=rng.randrange(5, 40)))
    payment_id = seed.payment_id or guid(f"payment:{seed.id}")
    payment: Record = {
        "id": payment_id,
        "companyId": customer["companyId"],
        "journalDisplayName": "ZAHLUNG" if customer["companyId"] == DE_COMPANY_ID else "PAYMENT",
        "lineNumber": 10000 * (sequence + 1),
        "customerId": customer["id"],
        "customerNumber": customer["number"],
        "postingDate": paid_on.isoformat(),
        "documentNumber": f"ZE{200000 + sequence}",
        "externalDocumentNumber": "",
        # A payment credits the customer: journal amounts are negative (unverified for the API page).
        "amount": -paid,
        "appliesToInvoiceId": seed.id,
        "appliesToInvoiceNumber": invoice["number"],
        "description": customer["displayName"][:100],
        "comment": "",
        "lastModifiedDateTime": format_datetime(_moment(rng, paid_on)),
    }
    return invoice, payment


# ---------------------------------------------------------------------------------------------------------
# The seed
# ---------------------------------------------------------------------------------------------------------


def _companies() -> dict[str, Record]:
    created = format_datetime(SEED_NOW - timedelta(days=900))
    return {
        company.id: {
            "id": company.id,
            "systemVersion": "25.3.28755.29346",
            "timestamp": 0,
            "name": company.name,
            "displayName": company.name,
            "businessProfileId": "",
            "systemCreatedAt": created,
            "systemCreatedBy": ZERO_GUID,
            "systemModifiedAt": created,
            "systemModifiedBy": ZERO_GUID,
        }
        for company in _COMPANIES
    }


# Tax areas (API v2.0 ``taxAreas``: id, code, displayName, taxType): the firm codes each jurisdiction it
# invoices by its ISO 3166-2 code, as the CRM's Tax_Jurisdiction__c does (CRONUS DE: the German states, the
# UK and the US states of its cross-border accounts; CRONUS UK: GB). In a VAT country Business Central
# lists its VAT business posting groups here, with taxType "VAT".
_GERMAN_STATES = {
    "BW": "Baden-Württemberg", "BY": "Bayern", "BE": "Berlin", "BB": "Brandenburg", "HB": "Bremen",
    "HH": "Hamburg", "HE": "Hessen", "MV": "Mecklenburg-Vorpommern", "NI": "Niedersachsen",
    "NW": "Nordrhein-Westfalen", "RP": "Rheinland-Pfalz", "SL": "Saarland", "SN": "Sachsen",
    "ST": "Sachsen-Anhalt", "SH": "Schleswig-Holstein", "TH": "Thüringen",
}  # fmt: skip
_TAX_AREAS: Mapping[str, tuple[tuple[str, str], ...]] = {
    DE_COMPANY_ID: (
        *((f"DE-{code}", f"Inland, {name}") for code, name in _GERMAN_STATES.items()),
        ("GB", "EU-Ausland, Vereinigtes Königreich"),
    ),
    UK_COMPANY_ID: (("GB", "Domestic, United Kingdom"),),
}


def tax_area_id(company_id: str, code: str) -> str:
    """The (fixed) id of a company's tax area."""
    return guid(f"tax-area:{company_id}:{code}")


def _tax_areas() -> dict[str, Record]:
    stamp = format_datetime(SEED_NOW - timedelta(days=900))
    return {
        tax_area_id(company_id, code): {
            "id": tax_area_id(company_id, code),
            "companyId": company_id,
            "code": code,
            "displayName": name,
            "taxType": "VAT",
            "lastModifiedDateTime": stamp,
        }
        for company_id, areas in _TAX_AREAS.items()
        for code, name in areas
    }


def build_seed(seed: int) -> dict[str, dict[str, Record]]:
    """Fresh seed entities: ``{entity set: {id: entity}}`` for ``companies``, ``customers``, ``projects``,
    ``salesInvoices`` (lines nested under ``salesInvoiceLines``), ``customerPayments`` and
    ``salesCreditMemos`` (none in the seed: cancelling a posted invoice makes one).

    Every entity but a company carries its ``companyId``. Well-known entities are identical for every
    seed; `seed` drives the filler (amounts, dates, which invoices are paid) and, through the Salesforce
    seed, which Initech deals already have projects. The result is the caller's to mutate.
    """
    template = _seed_template(seed)
    return {
        name: {
            entity_id: {
                key: [dict(line) for line in value] if isinstance(value, list) else value
                for key, value in entity.items()
            }
            for entity_id, entity in entities.items()
        }
        for name, entities in template.items()
    }


@functools.lru_cache(maxsize=4)
def _seed_template(seed: int) -> dict[str, dict[str, Record]]:
    fixed = random.Random(0)  # noqa: S311 - reproducible seed data, not security
    rng = random.Random(seed)  # noqa: S311 - as above
    customers = [_customer_record(known, fixed) for known in _WELL_KNOWN_CUSTOMERS]
    customers += [_customer_record(filler, rng) for filler in _filler_customers(rng)]
    by_id = {customer["id"]: customer for customer in customers}
    invoices: dict[str, Record] = {}
    payments: dict[str, Record] = {}
    seeds = [*_well_known_invoices(), *_filler_invoices(rng, customers)]
    for sequence, invoice_seed in enumerate(seeds, start=1):
        generator = fixed if sequence <= len(_well_known_invoices()) else rng
        invoice, payment = _invoice_records(invoice_seed, by_id[invoice_seed.customer], sequence, generator)
        invoices[invoice["id"]] = invoice
        if payment is not None:
            payments[payment["id"]] = payment
    return {
        "companies": _companies(),
        "taxAreas": _tax_areas(),
        "customers": by_id,
        "projects": {project["id"]: project for project in _projects(seed)},
        "salesInvoices": invoices,
        "customerPayments": payments,
        "salesCreditMemos": {},
    }
