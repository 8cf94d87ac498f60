"""Deterministic seed data for the Kantata OX sandbox: the PSA side of a professional-services firm.

About thirty workspaces (projects) in USD, GBP and EUR with their milestones and tasks, staffing
(participations and workspace resources, some unstaffed), roughly three months of time entries and
expenses up to `SEED_DATE`, a few invoices, and the subscribed events of the last two weeks.

The seed is aligned with the Salesforce sandbox built with the same seed (both default to 42): most
workspaces were "activated" from a Closed Won Salesforce opportunity and carry an external reference
to it (``service_name`` "Salesforce", ``service_model`` "Opportunity", ``service_model_ref`` the
opportunity id). Only filler opportunities are linked; the Salesforce seed's well-known opportunities
(the "ready" ones and the ones failing one activation rule) stay un-activated, so the activation
workflow finds no project for them. `salesforce_links` says which workspace carries which opportunity.

Well-known ids (identical for every seed; the contents of the two linked ones follow the Salesforce
opportunity they are linked to):

====================================  ================================================================
constant                              record
====================================  ================================================================
``ADMIN_USER_ID``                     Stratum Integration, the account administrator whose token the
                                      sandbox accepts; creator of everything the API creates
``DEMO_USER_ID``                      Aisha Khan, Senior Consultant, staffed on both demo workspaces
``PROJECT_MANAGER_USER_ID``           Rachel Whitmore, Engagement Manager, primary maven of both
``DEMO_WORKSPACE_ID``                 active, linked to ``DEMO_OPPORTUNITY_ID`` (default seed),
                                      ``DEMO_WORKSPACE_TIME_ENTRY_COUNT`` (90) time entries
``DEMO_OPPORTUNITY_ID``               the Salesforce opportunity linked to the demo workspace (seed 42)
``BIG_WORKSPACE_ID``                  active, linked, exactly ``BIG_WORKSPACE_TIME_ENTRY_COUNT`` (260)
                                      time entries, so listing them pages with ``per_page=200``
``INTERNAL_WORKSPACE_ID``             Practice Development: no external reference, not budgeted, every
                                      time entry non-billable
``EUR_WORKSPACE_ID``                  Initech cloud cost work, EUR, active, no external reference
``GBP_WORKSPACE_ID``                  Umbrella pharmacovigilance pipeline, GBP, active, no reference
``ARCHIVED_WORKSPACE_ID``             completed and archived (EUR); hidden from lists unless
                                      ``include_archived=true``
``PLANNED_WORKSPACE_ID``              In Planning, starts after the seed date: no time, an unstaffed
                                      resource request
====================================  ================================================================

Ids are strings of integers, as on the wire; each collection has its own range (`ID_START`) so an id of
one kind never finds a record of another. Timestamps are anchored at `SEED_NOW`, not the wall clock.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sandboxes.salesforce.data import (
    CLOSED_LOST_OPPORTUNITY_ID,
    MISSING_BILLING_MODEL_OPPORTUNITY_ID,
    MISSING_CURRENCY_OPPORTUNITY_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    NO_TAX_JURISDICTION_OPPORTUNITY_ID,
    NULL_AMOUNT_OPPORTUNITY_ID,
    OPEN_OPPORTUNITY_ID,
    READY_OPPORTUNITY_IDS,
    ZERO_AMOUNT_OPPORTUNITY_ID,
    salesforce_id,
)
from sandboxes.salesforce.data import build_seed as build_salesforce_seed

__all__ = [
    "ADMIN_USER_ID",
    "ARCHIVED_WORKSPACE_ID",
    "BIG_WORKSPACE_ID",
    "BIG_WORKSPACE_TIME_ENTRY_COUNT",
    "COLLECTIONS",
    "CURRENCY_SYMBOLS",
    "DEFAULT_SEED",
    "DEMO_OPPORTUNITY_ID",
    "DEMO_USER_ID",
    "DEMO_WORKSPACE_ID",
    "DEMO_WORKSPACE_TIME_ENTRY_COUNT",
    "EUR_WORKSPACE_ID",
    "EVENT_WINDOW",
    "GBP_WORKSPACE_ID",
    "ID_START",
    "INTERNAL_WORKSPACE_ID",
    "PLANNED_WORKSPACE_ID",
    "PROJECT_MANAGER_USER_ID",
    "ROLES",
    "SALESFORCE_WELL_KNOWN_OPPORTUNITY_IDS",
    "SEED_DATE",
    "SEED_NOW",
    "WORKSPACE_STATUSES",
    "Record",
    "WorkspaceStatus",
    "build_seed",
    "default_rate_in_cents",
    "format_timestamp",
    "salesforce_links",
    "status_of",
]

Record = dict[str, Any]

DEFAULT_SEED = 42
# The Salesforce seed is anchored at the same instant, so "closed last month" means the same thing in both.
SEED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SEED_DATE = SEED_NOW.date()
# Only the subscribed events of this window before SEED_NOW are seeded; older history has been consumed.
EVENT_WINDOW = timedelta(days=14)
_TIME_HISTORY = timedelta(days=91)

COLLECTIONS = (
    "roles",
    "users",
    "workspaces",
    "stories",
    "participations",
    "workspace_resources",
    "time_entries",
    "expenses",
    "invoices",
    "billing_milestones",
    "additional_items",
    "fixed_fee_items",
    "external_payments",
    "external_references",
    "subscribed_events",
)
# First id of each collection; disjoint ranges, so a workspace id used as a story id is simply not found.
ID_START: Mapping[str, int] = {
    "roles": 4_201,
    "users": 6_100_001,
    "workspaces": 31_800_001,
    "stories": 912_000_001,
    "participations": 53_000_001,
    "workspace_resources": 2_900_001,
    "time_entries": 1_100_000_001,
    "expenses": 47_000_001,
    "invoices": 8_800_001,
    "billing_milestones": 640_001,
    "additional_items": 3_300_001,
    "fixed_fee_items": 3_700_001,
    "external_payments": 5_500_001,
    "external_references": 730_001,
    "subscribed_events": 150_000_001,
}

CURRENCY_SYMBOLS: Mapping[str, str] = {"USD": "$", "GBP": "£", "EUR": "€"}

# ---------------------------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkspaceStatus:
    """A workspace status as Kantata shows it: ``{"color", "key", "message"}``."""

    key: int
    message: str
    color: str

    def as_json(self) -> dict[str, Any]:
        return {"color": self.color, "key": self.key, "message": self.message}


WORKSPACE_STATUSES: Mapping[int, WorkspaceStatus] = {
    status.key: status
    for status in (
        WorkspaceStatus(200, "Not Started", "grey"),
        WorkspaceStatus(210, "In Planning", "lightblue"),
        WorkspaceStatus(310, "Active", "green"),
        WorkspaceStatus(320, "On Hold", "yellow"),
        WorkspaceStatus(400, "Completed", "blue"),
        WorkspaceStatus(410, "Cancelled", "red"),
    )
}
_IN_PLANNING, _ACTIVE, _COMPLETED = 210, 310, 400


def status_of(key: int) -> dict[str, Any]:
    """The wire form of status `key` (which must be one of `WORKSPACE_STATUSES`)."""
    return WORKSPACE_STATUSES[key].as_json()


ROLES: Mapping[str, str] = {
    "4201": "Engagement Manager",
    "4202": "Project Manager",
    "4203": "Solution Architect",
    "4204": "Senior Consultant",
    "4205": "Consultant",
    "4206": "Data Engineer",
    "4207": "Business Analyst",
    "4208": "Data Scientist",
}
_ROLE_BY_NAME = {name: role_id for role_id, name in ROLES.items()}
# Standard bill rates per hour, in cents; GBP and EUR cards are set separately, not converted.
_RATE_CARDS: Mapping[str, Mapping[str, int]] = {
    "USD": {
        "4201": 29500,
        "4202": 22000,
        "4203": 26500,
        "4204": 23500,
        "4205": 17500,
        "4206": 21000,
        "4207": 15000,
        "4208": 22500,
    },
    "GBP": {
        "4201": 23000,
        "4202": 17000,
        "4203": 21000,
        "4204": 18500,
        "4205": 13500,
        "4206": 16500,
        "4207": 11500,
        "4208": 17500,
    },
    "EUR": {
        "4201": 26000,
        "4202": 19500,
        "4203": 24000,
        "4204": 21000,
        "4205": 15500,
        "4206": 19000,
        "4207": 13500,
        "4208": 20000,
    },
}


def _user_id(n: int) -> str:
    return str(ID_START["users"] + n - 1)


def _workspace_id(n: int) -> str:
    return str(ID_START["workspaces"] + n - 1)


ADMIN_USER_ID = _user_id(1)
PROJECT_MANAGER_USER_ID = _user_id(2)
DEMO_USER_ID = _user_id(4)

DEMO_WORKSPACE_ID = _workspace_id(1)
BIG_WORKSPACE_ID = _workspace_id(2)
INTERNAL_WORKSPACE_ID = _workspace_id(3)
EUR_WORKSPACE_ID = _workspace_id(4)
GBP_WORKSPACE_ID = _workspace_id(5)
ARCHIVED_WORKSPACE_ID = _workspace_id(6)
PLANNED_WORKSPACE_ID = _workspace_id(7)
DEMO_WORKSPACE_TIME_ENTRY_COUNT = 90
BIG_WORKSPACE_TIME_ENTRY_COUNT = 260
_LINKED_FILLER_COUNT = 22  # workspaces 9.. carry the other linked opportunities

# The Salesforce seed numbers its well-known records below 1000 and its filler from 1000 up; reserving the
# whole range keeps well-known deals added there later un-activated here too.
SALESFORCE_WELL_KNOWN_OPPORTUNITY_IDS: frozenset[str] = frozenset(
    {
        *READY_OPPORTUNITY_IDS,
        ZERO_AMOUNT_OPPORTUNITY_ID,
        NULL_AMOUNT_OPPORTUNITY_ID,
        MISSING_CURRENCY_OPPORTUNITY_ID,
        MISSING_BILLING_MODEL_OPPORTUNITY_ID,
        MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
        NO_TAX_JURISDICTION_OPPORTUNITY_ID,
        OPEN_OPPORTUNITY_ID,
        CLOSED_LOST_OPPORTUNITY_ID,
        *(salesforce_id("006", number) for number in range(1, 1000)),
    }
)
"""Salesforce opportunities the activation workflow is tested with: never linked to a workspace here."""


@dataclass(frozen=True, slots=True)
class _Person:
    number: int
    full_name: str
    email_address: str
    headline: str
    client_account: str | None = None  # Salesforce account name, for client-side (buyer) users

    @property
    def id(self) -> str:
        return _user_id(self.number)


_STAFF_DOMAIN = "stratum-consulting.example"
_PEOPLE = (
    _Person(1, "Stratum Integration", f"integration@{_STAFF_DOMAIN}", "Account Administrator (API)"),
    _Person(2, "Rachel Whitmore", f"rachel.whitmore@{_STAFF_DOMAIN}", "Engagement Manager"),
    _Person(3, "Daniel Osei", f"daniel.osei@{_STAFF_DOMAIN}", "Project Manager"),
    _Person(4, "Aisha Khan", f"aisha.khan@{_STAFF_DOMAIN}", "Senior Consultant"),
    _Person(5, "Marco Bianchi", f"marco.bianchi@{_STAFF_DOMAIN}", "Data Engineer"),
    _Person(6, "Lena Fischer", f"lena.fischer@{_STAFF_DOMAIN}", "Solution Architect"),
    _Person(7, "Tom Gallagher", f"tom.gallagher@{_STAFF_DOMAIN}", "Consultant"),
    _Person(8, "Priya Nair", f"priya.nair@{_STAFF_DOMAIN}", "Business Analyst"),
    _Person(9, "Jonas Weber", f"jonas.weber@{_STAFF_DOMAIN}", "Senior Consultant"),
    _Person(10, "Emily Carter", f"emily.carter@{_STAFF_DOMAIN}", "Consultant"),
    _Person(11, "Samuel Adeyemi", f"samuel.adeyemi@{_STAFF_DOMAIN}", "Data Scientist"),
    _Person(12, "Charlotte Dubois", f"charlotte.dubois@{_STAFF_DOMAIN}", "Project Manager"),
    _Person(
        13,
        "Grace Holloway",
        "grace.holloway@northwind-health.example",
        "Director of Clinical Informatics",
        "Northwind Health Systems",
    ),
    _Person(
        14,
        "Michael Tran",
        "michael.tran@globex-ps.example",
        "VP Operations",
        "Globex Professional Services",
    ),
    _Person(
        15,
        "Martin Schulz",
        "martin.schulz@initech-software.example",
        "CIO",
        "Initech Software GmbH",
    ),
    _Person(
        16,
        "Hannah Price",
        "hannah.price@umbrella-life.example",
        "Head of Data Platforms",
        "Umbrella Life Sciences Ltd",
    ),
    _Person(
        17,
        "Victor Alvarez",
        "victor.alvarez@stark-industrial.example",
        "Plant Systems Director",
        "Stark Industrial Manufacturing Inc",
    ),
)
_MANAGERS = tuple(p.id for p in _PEOPLE if p.headline in ("Engagement Manager", "Project Manager"))
_CONSULTANTS = tuple(
    p.id for p in _PEOPLE if p.client_account is None and p.number > 1 and p.id not in _MANAGERS
)
_CLIENT_BY_ACCOUNT = {p.client_account: p.id for p in _PEOPLE if p.client_account is not None}
_ROLE_OF_USER = {p.id: _ROLE_BY_NAME[p.headline] for p in _PEOPLE if p.headline in _ROLE_BY_NAME}


def default_rate_in_cents(user_id: str, currency: str) -> int:
    """The standard bill rate of `user_id`'s role in `currency` (0 for users without a billable role)."""
    role_id = _ROLE_OF_USER.get(user_id)
    card = _RATE_CARDS.get(currency)
    if role_id is None or card is None:
        return 0
    return card[role_id]


# ---------------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------------


def format_timestamp(value: datetime) -> str:
    """Kantata's timestamp format, in UTC: ``2026-03-02T09:30:00+00:00``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------
# Workspace plans
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one seeded workspace is, before its records are generated."""

    id: str
    title: str
    description: str
    currency: str
    price_in_cents: int | None
    start: date
    due: date
    client_account: str | None
    opportunity_id: str | None = None
    billing_model: str | None = None
    internal: bool = False
    time_entries: int | None = None  # None: a random amount fitting the project's span
    archived: bool = False
    status_key: int | None = None  # None: derived from the dates


def _derived_status(plan: _Plan) -> int:
    if plan.status_key is not None:
        return plan.status_key
    if plan.due < SEED_DATE:
        return _COMPLETED
    if plan.start > SEED_DATE:
        return _IN_PLANNING
    return _ACTIVE


_UNLINKED_PLANS = (
    _Plan(
        INTERNAL_WORKSPACE_ID,
        "Stratum Consulting - Practice Development FY26",
        "Internal: methods, accelerators and certification time. Not billable.",
        "USD",
        None,
        date(2025, 7, 1),
        date(2026, 6, 30),
        None,
        internal=True,
        time_entries=48,
    ),
    _Plan(
        EUR_WORKSPACE_ID,
        "Initech - Cloud Cost Optimisation",
        "FinOps review of the Azure estate; created in Kantata before the CRM integration existed.",
        "EUR",
        6_480_000,
        date(2025, 12, 1),
        date(2026, 4, 30),
        "Initech Software GmbH",
        billing_model="Time and Materials",
        time_entries=36,
    ),
    _Plan(
        GBP_WORKSPACE_ID,
        "Umbrella - Pharmacovigilance Data Pipeline",
        "Adverse-event intake pipeline and signal dashboards; change order to an earlier engagement.",
        "GBP",
        11_250_000,
        date(2025, 11, 17),
        date(2026, 5, 29),
        "Umbrella Life Sciences Ltd",
        billing_model="Milestone",
        time_entries=40,
    ),
    _Plan(
        ARCHIVED_WORKSPACE_ID,
        "Initech - SAP Basis Support 2025",
        "Annual Basis support retainer, closed out at year end.",
        "EUR",
        4_200_000,
        date(2025, 1, 6),
        date(2025, 12, 19),
        "Initech Software GmbH",
        billing_model="Retainer",
        time_entries=12,
        archived=True,
    ),
    _Plan(
        PLANNED_WORKSPACE_ID,
        "Wayne Capital - Stress Testing Support",
        "CCAR stress-testing support; kick-off pending the client's data-room access.",
        "USD",
        9_600_000,
        date(2026, 4, 6),
        date(2026, 8, 28),
        None,
        billing_model="Time and Materials",
        time_entries=0,
    ),
    _Plan(
        _workspace_id(8),
        "Globex UK - Finance Shared Services Review",
        "Diagnostic of the UK shared-services centre ahead of the operating-model work.",
        "GBP",
        3_850_000,
        date(2026, 1, 12),
        date(2026, 3, 27),
        "Globex Professional Services",
        billing_model="Fixed Fee",
    ),
)


@functools.lru_cache(maxsize=4)
def _eligible_opportunities(seed: int) -> tuple[Record, ...]:
    """Closed Won filler opportunities of the Salesforce seed, oldest first: the ones activated before."""
    opportunities = build_salesforce_seed(seed)["Opportunity"].values()
    eligible = [
        opportunity
        for opportunity in opportunities
        if opportunity["StageName"] == "Closed Won"
        and opportunity["Id"] not in SALESFORCE_WELL_KNOWN_OPPORTUNITY_IDS
        and opportunity["CurrencyIsoCode"] is not None
        and opportunity["Amount"]
    ]
    return tuple(sorted(eligible, key=lambda o: (o["CloseDate"], o["Id"])))


@functools.lru_cache(maxsize=4)
def salesforce_links(seed: int = DEFAULT_SEED) -> Mapping[str, str]:
    """Workspace id -> the Salesforce opportunity id its seeded external reference points at."""
    return {plan.id: plan.opportunity_id for plan in _plans(seed) if plan.opportunity_id is not None}


@functools.lru_cache(maxsize=4)
def _plans(seed: int) -> tuple[_Plan, ...]:
    rng = random.Random(seed * 7919 + 1)  # noqa: S311 - reproducible seed data, not security
    salesforce = build_salesforce_seed(seed)
    account_names = {account_id: account["Name"] for account_id, account in salesforce["Account"].items()}
    remaining = list(_eligible_opportunities(seed))
    # The demo workspaces get the deals closest to ~100 days old: three months of time to page through.
    target = SEED_DATE - timedelta(days=100)
    remaining.sort(key=lambda o: (abs((date.fromisoformat(o["CloseDate"]) - target).days), o["Id"]))
    demo_picks, remaining = remaining[:2], remaining[2:]
    remaining.sort(key=lambda o: (o["CloseDate"], o["Id"]), reverse=True)
    # Every GBP and EUR deal (the Salesforce seed is mostly USD), then every n-th USD deal, newest first,
    # so the linked projects span currencies and running, finished and archived ones.
    foreign = [o for o in remaining if o["CurrencyIsoCode"] != "USD"][:_LINKED_FILLER_COUNT]
    domestic = [o for o in remaining if o["CurrencyIsoCode"] == "USD"]
    wanted = _LINKED_FILLER_COUNT - len(foreign)
    step = max(1, len(domestic) // max(wanted, 1))
    picked = {o["Id"] for o in foreign} | {o["Id"] for o in domestic[::step][:wanted]}
    linked = [o for o in remaining if o["Id"] in picked]

    def linked_plan(workspace_id: str, opportunity: Record) -> _Plan:
        closed = date.fromisoformat(opportunity["CloseDate"])
        start = closed + timedelta(days=rng.randrange(3, 15))
        due = start + timedelta(days=rng.randrange(60, 300))
        model = opportunity["Billing_Model__c"]
        return _Plan(
            id=workspace_id,
            title=opportunity["Name"],
            description=f"{model} engagement, activated from Salesforce opportunity {opportunity['Id']}.",
            currency=opportunity["CurrencyIsoCode"],
            price_in_cents=round(opportunity["Amount"] * 100),
            start=start,
            due=due,
            client_account=account_names.get(opportunity["AccountId"]),
            opportunity_id=opportunity["Id"],
            billing_model=model,
        )

    plans: list[_Plan] = []
    demo_counts = (DEMO_WORKSPACE_TIME_ENTRY_COUNT, BIG_WORKSPACE_TIME_ENTRY_COUNT)
    for index, workspace_id in enumerate((DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID)):
        if index < len(demo_picks):
            opportunity = demo_picks[index]
            start = max(
                date.fromisoformat(opportunity["CloseDate"]) + timedelta(days=7), SEED_DATE - _TIME_HISTORY
            )
            due = SEED_DATE + timedelta(days=rng.randrange(60, 150))
            plan = linked_plan(workspace_id, opportunity)
            plans.append(replace(plan, start=start, due=due, time_entries=demo_counts[index]))
        else:
            # Only if a Salesforce seed had almost no wins: keep the well-known ids, without a link.
            plans.append(
                _Plan(
                    workspace_id,
                    f"Northwind Health - Analytics Programme {index + 1}",
                    "",
                    "USD",
                    15_000_000,
                    SEED_DATE - _TIME_HISTORY,
                    SEED_DATE + timedelta(days=90),
                    "Northwind Health Systems",
                    billing_model="Time and Materials",
                    time_entries=demo_counts[index],
                )
            )
    plans.extend(_UNLINKED_PLANS)
    for number, opportunity in enumerate(linked, start=len(plans) + 1):
        plan = linked_plan(_workspace_id(number), opportunity)
        if plan.due < SEED_DATE - timedelta(days=120):
            plan = replace(plan, archived=True)
        plans.append(plan)
    return tuple(plans)


# ---------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------

_PHASES = (
    ("Mobilisation & Discovery", ("Kick-off workshop", "Stakeholder interviews", "Current-state assessment")),
    ("Solution Design", ("Target architecture", "Data model design", "Design authority review")),
    ("Build", ("Sprint 1 build", "Sprint 2 build", "Integration build")),
    ("Test & Cutover", ("System integration testing", "User acceptance testing", "Cutover rehearsal")),
    ("Hypercare & Handover", ("Hypercare support", "Knowledge transfer", "Closeout report")),
)
_DELIVERABLES = ("Findings report", "Solution blueprint", "Operating model playbook", "Handover pack")
_NOTES = (
    "Workshop preparation and facilitation",
    "Stakeholder interviews; notes written up",
    "Requirements refinement with client SMEs",
    "Build and unit test",
    "Defect triage with client team",
    "Status report and steering committee pack",
    "Data profiling and quality checks",
    "Design review feedback incorporated",
    "Test script execution",
    "Travel day; on-site working session",
)
_INTERNAL_NOTES = (
    "Accelerator development",
    "Certification study",
    "Practice community call",
    "Proposal support",
    "Internal training delivery",
)
_EXPENSES = (
    ("Travel", 18_000, 95_000, "Return flight to client site"),
    ("Lodging", 14_000, 62_000, "Hotel, client site visit"),
    ("Food", 1_800, 9_500, "Working lunch with client team"),
    ("Mileage", 2_400, 14_000, "Mileage to client office"),
    ("Other", 1_500, 25_000, "Workshop materials"),
)
_MINUTES = (30, 45, 60, 90, 120, 120, 180, 240, 240, 300, 360, 420, 480, 480)


def _weekdays(first: date, last: date) -> list[date]:
    return [
        first + timedelta(days=offset)
        for offset in range((last - first).days + 1)
        if (first + timedelta(days=offset)).weekday() < 5
    ]


def _approval_moment(day: date) -> datetime:
    """Timesheets are approved in one batch on the Monday after the week ends, at 10:00:00 UTC."""
    monday = day + timedelta(days=7 - day.weekday())
    return _at(monday, 10)


class _Ids:
    """Hands out the next id of each collection, as strings."""

    def __init__(self) -> None:
        self._next = dict(ID_START)

    def take(self, collection: str) -> str:
        value = self._next[collection]
        self._next[collection] = value + 1
        return str(value)


@dataclass(slots=True)
class _Pending:
    """A seeded event before it gets its id (ids follow the order events happened)."""

    at: datetime
    event_type: str
    subject_type: str
    subject_id: str
    payload: Record


class _SeedBuilder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible seed data, not security
        self.ids = _Ids()
        self.data: dict[str, dict[str, Record]] = {name: {} for name in COLLECTIONS}
        self.events: list[_Pending] = []
        self.plans = _plans(seed)

    def build(self) -> dict[str, dict[str, Record]]:
        self._users()
        time_entries: list[Record] = []
        for plan in self.plans:
            workspace = self._workspace(plan)
            mavens = self._participations(plan, workspace)
            tasks = self._stories(plan, workspace)
            self._workspace_resources(plan, mavens)
            time_entries.extend(self._time_entries(plan, mavens, tasks))
            self._expenses(plan, mavens)
            if plan.opportunity_id is not None:
                self._external_reference(plan, workspace)
        # Time entry ids follow creation order across all workspaces, as a real account's would.
        time_entries.sort(key=lambda entry: (entry["created_at"], entry["workspace_id"], entry["notes"]))
        for entry in time_entries:
            entry["id"] = self.ids.take("time_entries")
            self.data["time_entries"][entry["id"]] = entry
            self._time_entry_events(entry)
        self._invoices()
        self._billable_milestone()
        self._subscribed_events()
        return self.data

    def _billable_milestone(self) -> None:
        """The demo workspace's first completed milestone is a billable fixed-fee one, ready to invoice
        (``billable``, ``fixed_fee``, ``state`` completed, its amount the budget estimate). Set after the
        rest is generated, so every other record stays as the seed always made it."""
        milestones = [
            story
            for story in self.data["stories"].values()
            if story["workspace_id"] == DEMO_WORKSPACE_ID and story["story_type"] == "milestone"
        ]
        completed = [story for story in milestones if story["state"] == "completed"] or milestones[:1]
        for story in completed[:1]:
            # Completed by the seed date at the latest: the milestone is due for billing now.
            yesterday = (SEED_DATE - timedelta(days=1)).isoformat()
            story["due_date"] = min(story["due_date"] or yesterday, yesterday)
            story["state"] = "completed"
            story["percentage_complete"] = 100
            story["billable"] = True
            story["fixed_fee"] = True
            if story["budget_estimate_in_cents"] is None:
                story["budget_estimate_in_cents"] = 1_500_000

    # -- people and projects ------------------------------------------------------------------------------

    def _users(self) -> None:
        for role_id, name in ROLES.items():
            self.data["roles"][role_id] = {"id": role_id, "name": name}
        for person in _PEOPLE:
            self.data["users"][person.id] = {
                "id": person.id,
                "full_name": person.full_name,
                "email_address": person.email_address,
                "headline": person.headline,
            }

    def _workspace(self, plan: _Plan) -> Record:
        created = _at(plan.start - timedelta(days=self.rng.randrange(2, 10)), self.rng.randrange(8, 18))
        created = min(created, SEED_NOW - timedelta(days=1))
        primary = PROJECT_MANAGER_USER_ID if plan.id in (DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID) else None
        workspace: Record = {
            "id": plan.id,
            "title": plan.title,
            "description": plan.description,
            "budgeted": plan.price_in_cents is not None,
            "price_in_cents": plan.price_in_cents,
            "currency": plan.currency,
            "currency_symbol": CURRENCY_SYMBOLS[plan.currency],
            "currency_base_unit": 100,
            "start_date": plan.start.isoformat(),
            "due_date": plan.due.isoformat(),
            "status": status_of(_derived_status(plan)),
            "creator_id": ADMIN_USER_ID if plan.opportunity_id is not None else PROJECT_MANAGER_USER_ID,
            "primary_maven_id": primary or _MANAGERS[self.rng.randrange(len(_MANAGERS))],
            "archived": plan.archived,
            "consultant_role_name": "Consultants",
            "client_role_name": "Clients",
            "created_at": format_timestamp(created),
            "updated_at": format_timestamp(created),
        }
        if plan.archived or _derived_status(plan) == _COMPLETED:
            closed = min(_at(plan.due + timedelta(days=self.rng.randrange(1, 20)), 16), SEED_NOW)
            workspace["updated_at"] = format_timestamp(max(closed, created))
        self.data["workspaces"][plan.id] = workspace
        self._event(created, "workspace:created", "Workspace", workspace)
        return workspace

    def _participations(self, plan: _Plan, workspace: Record) -> list[str]:
        mavens = [workspace["primary_maven_id"]]
        pool = [user for user in _CONSULTANTS if user != DEMO_USER_ID]
        self.rng.shuffle(pool)
        if plan.id in (DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID):
            mavens.append(DEMO_USER_ID)
        mavens.extend(pool[: self.rng.randrange(2, 5)])
        users = [(user, "maven") for user in mavens]
        client = _CLIENT_BY_ACCOUNT.get(plan.client_account or "")
        if client is not None:
            users.append((client, "buyer"))
        for user_id, role in users:
            participation_id = self.ids.take("participations")
            self.data["participations"][participation_id] = {
                "id": participation_id,
                "workspace_id": plan.id,
                "user_id": user_id,
                "role": role,
                "created_at": workspace["created_at"],
                "updated_at": workspace["created_at"],
            }
        return mavens

    def _stories(self, plan: _Plan, workspace: Record) -> list[Record]:
        """Milestones with their tasks (and a deliverable); returns the tasks, where time is logged."""
        phases = _PHASES[: self.rng.randrange(2, 6)]
        span = max((plan.due - plan.start).days, len(phases))
        budget = plan.price_in_cents
        tasks: list[Record] = []
        for index, (phase_title, task_titles) in enumerate(phases):
            first = plan.start + timedelta(days=span * index // len(phases))
            last = plan.start + timedelta(days=span * (index + 1) // len(phases) - 1)
            milestone = self._story(
                workspace,
                phase_title,
                "milestone",
                first,
                last,
                None if budget is None else budget // len(phases),
                None,
            )
            for title in task_titles[: self.rng.randrange(1, 4)]:
                tasks.append(self._story(workspace, title, "task", first, last, None, milestone["id"]))
        if self.rng.random() < 0.6:
            deliverable = _DELIVERABLES[self.rng.randrange(len(_DELIVERABLES))]
            self._story(workspace, deliverable, "deliverable", plan.due, plan.due, None, None)
        return tasks

    def _story(
        self,
        workspace: Record,
        title: str,
        story_type: str,
        start: date,
        due: date,
        budget: int | None,
        parent_id: str | None,
    ) -> Record:
        if due < SEED_DATE:
            state, complete = "completed", 100
        elif start <= SEED_DATE:
            span = max((due - start).days, 1)
            state, complete = "started", min(95, 100 * (SEED_DATE - start).days // span)
        else:
            state, complete = "not started", 0
        story_id = self.ids.take("stories")
        story: Record = {
            "id": story_id,
            "workspace_id": workspace["id"],
            "title": title,
            "description": None,
            "story_type": story_type,
            "state": state,
            "start_date": start.isoformat(),
            "due_date": due.isoformat(),
            "budget_estimate_in_cents": budget,
            "percentage_complete": complete,
            "parent_id": parent_id,
            "archived": False,
            "created_at": workspace["created_at"],
            "updated_at": workspace["created_at"],
        }
        self.data["stories"][story_id] = story
        return story

    def _workspace_resources(self, plan: _Plan, mavens: list[str]) -> None:
        staffed = [user for user in mavens[1:] if user in _ROLE_OF_USER]
        count = 2 if plan.internal else self.rng.randrange(2, 5)
        for index in range(count):
            # Projects that have not finished usually have an open request or two.
            open_request = index == count - 1 or self.rng.random() < 0.2
            unstaffed = _derived_status(plan) != _COMPLETED and open_request
            if unstaffed or not staffed:
                user_id = None
                role_id = tuple(ROLES)[self.rng.randrange(2, len(ROLES))]
            else:
                user_id = staffed[index % len(staffed)]
                role_id = _ROLE_OF_USER[user_id]
            resource_id = self.ids.take("workspace_resources")
            self.data["workspace_resources"][resource_id] = {
                "id": resource_id,
                "workspace_id": plan.id,
                "role_id": role_id,
                "role_name": ROLES[role_id],
                "title": f"{ROLES[role_id]}, {plan.title.partition(' - ')[0]}",
                "user_id": user_id,
                "allocated_minutes": self.rng.randrange(40, 400, 8) * 60,
                "start_date": plan.start.isoformat(),
                "end_date": plan.due.isoformat(),
                "created_at": self.data["workspaces"][plan.id]["created_at"],
                "updated_at": self.data["workspaces"][plan.id]["created_at"],
            }

    # -- time and expenses --------------------------------------------------------------------------------

    def _window(self, plan: _Plan) -> list[date]:
        first = max(plan.start, SEED_DATE - _TIME_HISTORY)
        last = min(plan.due, SEED_DATE - timedelta(days=1))
        return _weekdays(first, last) if first <= last else []

    def _time_entries(self, plan: _Plan, mavens: list[str], tasks: list[Record]) -> list[Record]:
        days = self._window(plan)
        if not days or not tasks:
            return []
        count = plan.time_entries
        if count is None:
            count = min(len(days) * 2, self.rng.randrange(8, 36))
        rates = _RATE_CARDS[plan.currency]
        entries: list[Record] = []
        for _ in range(count):
            day = days[self.rng.randrange(len(days))]
            user_id = mavens[self.rng.randrange(len(mavens))]
            # Tasks whose span covers the day, falling back to any task (work does run over plans).
            current = [t for t in tasks if t["start_date"] <= day.isoformat() <= t["due_date"]] or tasks
            story = current[self.rng.randrange(len(current))]
            billable = not plan.internal and self.rng.random() < 0.9
            notes_pool = _INTERNAL_NOTES if plan.internal else _NOTES
            created = _at(day, self.rng.randrange(16, 20), self.rng.randrange(0, 60), self.rng.randrange(60))
            approved_at = _approval_moment(day)
            approved = approved_at < SEED_NOW and self.rng.random() < 0.93
            entries.append(
                {
                    "id": "",
                    "workspace_id": plan.id,
                    "user_id": user_id,
                    "story_id": story["id"],
                    "date_performed": day.isoformat(),
                    "time_in_minutes": _MINUTES[self.rng.randrange(len(_MINUTES))],
                    "billable": billable,
                    "rate_in_cents": rates[_ROLE_OF_USER.get(user_id, "4205")],
                    "currency": plan.currency,
                    "currency_symbol": CURRENCY_SYMBOLS[plan.currency],
                    "currency_base_unit": 100,
                    "approved": approved,
                    "is_invoiced": False,
                    "notes": notes_pool[self.rng.randrange(len(notes_pool))],
                    "created_at": format_timestamp(created),
                    "updated_at": format_timestamp(approved_at if approved else created),
                }
            )
        return entries

    def _time_entry_events(self, entry: Record) -> None:
        created = datetime.fromisoformat(entry["created_at"])
        # The created event shows the entry as it was then: not yet approved.
        self._event(
            created, "time_entry:created", "TimeEntry", entry, approved=False, updated_at=entry["created_at"]
        )
        if entry["approved"]:
            self._event(datetime.fromisoformat(entry["updated_at"]), "time_entry:updated", "TimeEntry", entry)

    def _expenses(self, plan: _Plan, mavens: list[str]) -> None:
        days = self._window(plan)
        if not days:
            return
        for _ in range(self.rng.randrange(0, 2) if plan.internal else self.rng.randrange(1, 6)):
            category, low, high, note = _EXPENSES[self.rng.randrange(len(_EXPENSES))]
            day = days[self.rng.randrange(len(days))]
            created = _at(day + timedelta(days=self.rng.randrange(0, 4)), self.rng.randrange(8, 20))
            created = min(created, SEED_NOW - timedelta(hours=1))
            approved = _approval_moment(day) < SEED_NOW and self.rng.random() < 0.85
            expense_id = self.ids.take("expenses")
            expense: Record = {
                "id": expense_id,
                "workspace_id": plan.id,
                "user_id": mavens[self.rng.randrange(len(mavens))],
                "date": day.isoformat(),
                "category": category,
                "amount_in_cents": self.rng.randrange(low, high, 50),
                "currency": plan.currency,
                "currency_symbol": CURRENCY_SYMBOLS[plan.currency],
                "currency_base_unit": 100,
                "is_billable": not plan.internal and self.rng.random() < 0.85,
                "reimbursable": True,
                "approved": approved,
                "is_invoiced": False,
                "notes": note,
                "created_at": format_timestamp(created),
                "updated_at": format_timestamp(created),
            }
            self.data["expenses"][expense_id] = expense
            self._event(created, "expense:created", "Expense", expense)

    def _external_reference(self, plan: _Plan, workspace: Record) -> None:
        reference_id = self.ids.take("external_references")
        reference: Record = {
            "id": reference_id,
            "subject_type": "Workspace",
            "subject_id": plan.id,
            "service_name": "Salesforce",
            "service_model": "Opportunity",
            "service_model_ref": plan.opportunity_id,
            "status": "synced",
            "external_status": "Closed Won",
            "external_link": f"https://stratum.lightning.force.example/lightning/r/Opportunity/{plan.opportunity_id}/view",
            "external_message": None,
            "locked": False,
            "created_at": workspace["created_at"],
            "updated_at": workspace["created_at"],
            "last_synced_at": workspace["created_at"],
        }
        self.data["external_references"][reference_id] = reference
        self._event(
            datetime.fromisoformat(workspace["created_at"]),
            "external_reference:created",
            "ExternalReference",
            reference,
        )

    def _invoices(self) -> None:
        """A few invoices from approved billable time: paid, sent, draft and one cancelled."""
        billable: dict[str, list[Record]] = {}
        for entry in self.data["time_entries"].values():
            if entry["billable"] and entry["approved"]:
                billable.setdefault(entry["workspace_id"], []).append(entry)
        candidates = [plan for plan in self.plans if plan.id in billable and plan.billing_model is not None]
        outcomes = ("accepted payment", "new", "new", "accepted payment", "new", "cancelled", "new", "new")
        for number, (plan, status) in enumerate(zip(candidates, outcomes, strict=False), start=1041):
            entries = sorted(billable[plan.id], key=lambda e: e["date_performed"])
            invoiced = entries[: max(1, len(entries) // 2)]
            total = sum(math.ceil(e["time_in_minutes"] * e["rate_in_cents"] / 60) for e in invoiced)
            draft = status == "new" and number % 3 == 0
            if status != "cancelled":
                for entry in invoiced:
                    entry["is_invoiced"] = not draft
            invoice_date = date.fromisoformat(invoiced[-1]["date_performed"]) + timedelta(days=3)
            invoice_date = min(invoice_date, SEED_DATE - timedelta(days=1))
            created = _at(invoice_date, 11)
            invoice_id = self.ids.take("invoices")
            self.data["invoices"][invoice_id] = {
                "id": invoice_id,
                "workspace_ids": [plan.id],
                "user_id": self.data["workspaces"][plan.id]["primary_maven_id"],
                "title": f"{'Draft ' if draft else ''}Invoice #{number}",
                "user_invoice_number": number,
                "status": status,
                "draft": draft,
                "currency": plan.currency,
                "currency_symbol": CURRENCY_SYMBOLS[plan.currency],
                "currency_base_unit": 100,
                "price_in_cents": total,
                "balance_in_cents": 0 if status in ("accepted payment", "cancelled") else total,
                "invoice_date": invoice_date.isoformat(),
                "due_date": (invoice_date + timedelta(days=30)).isoformat(),
                "payment_schedule": 30,
                "created_at": format_timestamp(created),
                "updated_at": format_timestamp(created),
            }

    # -- events -------------------------------------------------------------------------------------------

    def _event(
        self, at: datetime, event_type: str, subject_type: str, subject: Record, **changes: Any
    ) -> None:
        if at < SEED_NOW - EVENT_WINDOW or at > SEED_NOW:
            return
        payload = _copy_value({**subject, **changes})
        self.events.append(_Pending(at, event_type, subject_type, subject["id"], payload))

    def _subscribed_events(self) -> None:
        # Python's sort is stable, so events of the same instant keep the order they were produced in.
        for pending in sorted(self.events, key=lambda event: event.at):
            event_id = self.ids.take("subscribed_events")
            self.data["subscribed_events"][event_id] = {
                "id": event_id,
                "event_type": pending.event_type,
                "subject_type": pending.subject_type,
                "subject_id": pending.subject_id,
                "created_at": format_timestamp(pending.at),
                "payload": pending.payload,
            }


def build_seed(seed: int = DEFAULT_SEED) -> dict[str, dict[str, Record]]:
    """Fresh seed records: ``{collection: {id: record}}`` for every name in `COLLECTIONS`, ids ascending.

    Deterministic for a given `seed`; the result is the caller's to mutate.
    """
    return {
        collection: {record_id: _copy_value(record) for record_id, record in records.items()}
        for collection, records in _seed_template(seed).items()
    }


def _copy_value(value: Any) -> Any:
    """A deep copy of JSON-shaped data (several times faster than `copy.deepcopy` for it)."""
    if isinstance(value, dict):
        return {key: _copy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return value


@functools.lru_cache(maxsize=4)
def _seed_template(seed: int) -> dict[str, dict[str, Record]]:
    # Generating is several times slower than copying, and every sandbox (re)start needs a fresh seed.
    return _SeedBuilder(seed).build()


DEMO_OPPORTUNITY_ID: str = salesforce_links(DEFAULT_SEED).get(DEMO_WORKSPACE_ID, "")
"""The Salesforce opportunity the demo workspace was activated from, in the default (42) seed."""
