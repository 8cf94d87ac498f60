"""Kantata records <-> canonical objects: pure functions, fed the envelopes Kantata actually sends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from contracts.models import (
    BillingModel,
    MilestoneInput,
    MilestoneStatus,
    Money,
    ProjectCreate,
    ProjectStatus,
    StaffingDemandCreate,
)
from contracts.models.common import SystemIds
from system_apis.psa.kantata_mapping import (
    KantataStatus,
    KantataWorkspace,
    cents_from_money,
    decode_envelope,
    decode_errors,
    expense_from_record,
    external_key_of,
    hours_from_minutes,
    milestone_status_from_state,
    milestone_story_body,
    minutes_from_hours,
    money_from_cents,
    ordered,
    parse_kantata_date,
    parse_kantata_datetime,
    project_from_workspace,
    project_status_from_workspace,
    resource_title,
    split_resource_title,
    staffing_demand_body,
    staffing_demand_from_resource,
    time_entry_from_record,
    workspace_create_body,
)

# GET /workspaces/31800001.json?include=external_references,stories, trimmed, with fields we do not read
# left in (Kantata sends many more) and the map deliberately out of ``results`` order.
WORKSPACE_JSON = b"""{
  "count": 1,
  "meta": {"count": 1, "page_count": 1, "page_number": 1, "page_size": 20},
  "results": [{"key": "workspaces", "id": "31800001"}],
  "workspaces": {
    "31800001": {
      "id": "31800001",
      "title": "Globex - Finance Transformation 85",
      "description": "Fixed Fee engagement.",
      "budgeted": true,
      "price_in_cents": 32999425,
      "currency": "USD",
      "currency_symbol": "$",
      "currency_base_unit": 100,
      "start_date": "2025-12-01",
      "due_date": "2026-06-06",
      "status": {"color": "green", "key": 310, "message": "Active"},
      "creator_id": "6100001",
      "primary_maven_id": "6100002",
      "archived": false,
      "consultant_role_name": "Consultants",
      "permissions": {"can_edit": true, "can_see_financials": true},
      "created_at": "2025-11-28T08:00:00+00:00",
      "updated_at": "2026-02-27T16:45:12-08:00",
      "external_reference_ids": ["730001", "730002"],
      "story_ids": ["912000004", "912000001"]
    }
  },
  "external_references": {
    "730002": {
      "id": "730002", "subject_type": "Workspace", "subject_id": "31800001",
      "service_name": "Stratum", "service_model": "Project", "service_model_ref": "006Dn00000oKI1lIAG",
      "status": null, "locked": false
    },
    "730001": {
      "id": "730001", "subject_type": "Workspace", "subject_id": "31800001",
      "service_name": "Salesforce", "service_model": "Opportunity", "service_model_ref": "006OTHER",
      "status": "synced", "external_link": "https://example.invalid/006OTHER"
    }
  },
  "stories": {
    "912000004": {
      "id": "912000004", "workspace_id": "31800001", "title": "Solution Design", "story_type": "milestone",
      "state": "not started", "start_date": "2026-03-04", "due_date": "2026-06-06",
      "budget_estimate_in_cents": 16499713, "percentage_complete": 0, "parent_id": null, "archived": false
    },
    "912000001": {
      "id": "912000001", "workspace_id": "31800001", "title": "Mobilisation & Discovery",
      "story_type": "milestone", "state": "completed", "start_date": "2025-12-01", "due_date": "2026-03-03",
      "budget_estimate_in_cents": 16499712, "percentage_complete": 100, "parent_id": null
    }
  }
}"""

TIME_ENTRIES_JSON = b"""{
  "count": 3,
  "meta": {"count": 3, "page_count": 1, "page_number": 1, "page_size": 200},
  "results": [
    {"key": "time_entries", "id": "1100000007"},
    {"key": "time_entries", "id": "1100000004"},
    {"key": "time_entries", "id": "1100000009"}
  ],
  "time_entries": {
    "1100000004": {
      "id": "1100000004", "workspace_id": "31800002", "user_id": "6100011", "story_id": "912000011",
      "date_performed": "2025-12-01", "time_in_minutes": 90, "billable": true, "rate_in_cents": 22500,
      "currency": "USD", "currency_symbol": "$", "currency_base_unit": 100, "approved": true,
      "is_invoiced": true, "notes": "Data profiling and quality checks",
      "created_at": "2025-12-01T18:06:13+00:00", "updated_at": "2025-12-08T10:00:00+00:00"
    },
    "1100000007": {
      "id": "1100000007", "workspace_id": "31800002", "user_id": "6100004", "story_id": null,
      "date_performed": "2025-12-02", "time_in_minutes": 20, "billable": false, "rate_in_cents": 23599,
      "currency": "GBP", "approved": false, "notes": "  ",
      "created_at": "2025-12-02T19:04:09+00:00", "updated_at": "2025-12-02T19:04:09+00:00"
    },
    "1100000009": {
      "id": 1100000009, "workspace_id": 31800002, "user_id": null,
      "date_performed": "2025-12-03", "time_in_minutes": 480, "billable": true, "rate_in_cents": null,
      "currency": "USD", "approved": true
    }
  }
}"""

EXPENSE_JSON = b"""{
  "count": 1, "meta": {"count": 1, "page_count": 1, "page_number": 1, "page_size": 20},
  "results": [{"key": "expenses", "id": "47000001"}],
  "expenses": {
    "47000001": {
      "id": "47000001", "workspace_id": "31800001", "user_id": "6100008", "date": "2025-12-19",
      "category": "Mileage", "amount_in_cents": 12950, "currency": "USD", "currency_symbol": "$",
      "currency_base_unit": 100, "is_billable": true, "reimbursable": true, "approved": true,
      "is_invoiced": false, "notes": "Mileage to client office",
      "created_at": "2025-12-20T09:00:00+00:00", "updated_at": "2025-12-20T09:00:00+00:00"
    }
  }
}"""

RESOURCES_JSON = b"""{
  "count": 2, "meta": {"count": 2, "page_count": 1, "page_number": 1, "page_size": 200},
  "results": [
    {"key": "workspace_resources", "id": "2900001"}, {"key": "workspace_resources", "id": "2900093"}
  ],
  "workspace_resources": {
    "2900001": {
      "id": "2900001", "workspace_id": "31800001", "role_id": "4204", "role_name": "Senior Consultant",
      "title": "Senior Consultant (staffed)", "user_id": "6100004", "allocated_minutes": 20640,
      "start_date": "2025-12-01", "end_date": "2026-06-06"
    },
    "2900093": {
      "id": "2900093", "workspace_id": "31800001", "role_id": "4206", "role_name": "Data Engineer",
      "title": "Data Engineer [Stratum opp-1:staff:2]", "user_id": null, "allocated_minutes": 7230,
      "start_date": "2026-03-02", "end_date": "2026-05-29"
    }
  }
}"""


# --- envelope ------------------------------------------------------------------------------------------


def test_records_come_in_results_order_not_map_order() -> None:
    envelope = decode_envelope(TIME_ENTRIES_JSON)
    records = ordered(envelope, "time_entries", envelope.time_entries)
    assert [str(r.id) for r in records] == ["1100000007", "1100000004", "1100000009"]


def test_side_loaded_records_are_not_primary_results() -> None:
    envelope = decode_envelope(WORKSPACE_JSON)
    assert [w.title for w in ordered(envelope, "workspaces", envelope.workspaces)] == [
        "Globex - Finance Transformation 85"
    ]
    assert ordered(envelope, "stories", envelope.stories) == []  # side-loaded, not in results
    assert set(envelope.stories) == {"912000001", "912000004"}


def test_results_naming_a_record_the_answer_lacks_is_refused() -> None:
    body = b'{"count": 1, "results": [{"key": "workspaces", "id": "9"}], "workspaces": {}}'
    envelope = decode_envelope(body)
    with pytest.raises(ValueError, match="does not hold"):
        ordered(envelope, "workspaces", envelope.workspaces)


def test_an_empty_list_decodes() -> None:
    body = b'{"count": 0, "meta": {"count": 0, "page_count": 0, "page_number": 1, "page_size": 20},'
    body += b' "results": []}'
    envelope = decode_envelope(body)
    assert ordered(envelope, "workspaces", envelope.workspaces) == []
    assert envelope.meta is not None
    assert envelope.meta.page_count == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>maintenance</html>",
        b'{"count": 1, "results": "nope"}',
        b'{"results": [{"key": "workspaces", "id": "1"}], "workspaces": {"1": {"id": "1"}}}',  # no title
        b'{"results": [], "time_entries": {"1": {"id": "1", "workspace_id": "2",'
        b' "date_performed": "2025-01-01", "time_in_minutes": 1.5}}}',  # minutes are whole numbers
        b'{"results": [], "workspaces": {"1": {"id": "1", "title": "x", "price_in_cents": 10.5}}}',
    ],
)
def test_unusable_bodies_do_not_decode(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_envelope(body)


def test_error_bodies() -> None:
    body = b'{"errors": [{"type": "validation", "message": "Title can\'t be blank", "field": "title"}]}'
    [error] = decode_errors(body)
    assert (error.type, error.field, error.message) == ("validation", "title", "Title can't be blank")
    assert decode_errors(b"<html>502 Bad Gateway</html>") == []
    assert decode_errors(b'{"errors": "nope"}') == []


def test_external_key_is_only_read_from_our_own_reference() -> None:
    envelope = decode_envelope(WORKSPACE_JSON)
    workspace = envelope.workspaces["31800001"]
    references = envelope.external_references
    assert external_key_of(workspace.external_reference_ids, references) == "006Dn00000oKI1lIAG"
    assert external_key_of(["730001"], references) is None  # Salesforce's link is not our key
    assert external_key_of(["730001"], references, service_name="Salesforce") == "006OTHER"
    assert external_key_of(["999"], references) is None  # not side-loaded


# --- values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "currency", "base_unit", "expected"),
    [
        (32999425, "USD", None, Decimal("329994.25")),
        (1, "usd", 100, Decimal("0.01")),
        (0, "EUR", 100, Decimal("0.00")),
        (-4550, "GBP", 100, Decimal("-45.50")),
        # 2**63 cents survive exactly (a float would round them).
        (9223372036854775807, "USD", 100, Decimal("92233720368547758.07")),
        (5000, "JPY", 1, Decimal("5000.00")),
        (12345, "KWD", 1000, Decimal("12.345")),
    ],
)
def test_money_from_cents_is_exact(
    cents: int, currency: str, base_unit: int | None, expected: Decimal
) -> None:
    money = money_from_cents(cents, currency, base_unit=base_unit)
    assert money is not None
    assert money.amount == expected
    assert str(money.amount) == str(expected)  # the scale too, not just the value
    assert money.currency == currency.upper()


@pytest.mark.parametrize(("cents", "currency"), [(None, "USD"), (100, None), (100, ""), (100, "XXX1")])
def test_no_money_without_an_amount_and_a_valid_currency(cents: int | None, currency: str | None) -> None:
    assert money_from_cents(cents, currency) is None


def test_a_base_unit_that_is_no_power_of_ten_is_refused() -> None:
    with pytest.raises(ValueError, match="power of ten"):
        money_from_cents(100, "USD", base_unit=12)


def test_cents_from_money() -> None:
    assert cents_from_money(Money(amount=Decimal("1234.50"), currency="USD")) == 123450
    assert cents_from_money(Money(amount=Decimal("1000"), currency="USD")) == 100000
    assert cents_from_money(Money(amount=Decimal("0.1"), currency="USD")) == 10
    with pytest.raises(ValueError, match="fractions of a cent"):
        cents_from_money(Money(amount=Decimal("10.005"), currency="USD"))


@pytest.mark.parametrize(
    ("minutes", "hours"),
    [(90, "1.50"), (20, "0.33"), (40, "0.67"), (1, "0.02"), (0, "0.00"), (480, "8.00"), (1439, "23.98")],
)
def test_hours_from_minutes(minutes: int, hours: str) -> None:
    converted = hours_from_minutes(minutes)
    assert isinstance(converted, Decimal)
    assert str(converted) == hours


def test_minutes_from_hours() -> None:
    assert minutes_from_hours(Decimal("7.5")) == 450
    assert minutes_from_hours(Decimal("120")) == 7200
    assert minutes_from_hours(Decimal("0.33")) == 20  # 19.8 minutes is 20 minutes


def test_dates_and_times() -> None:
    assert parse_kantata_date("2026-06-06") == dt.date(2026, 6, 6)
    assert parse_kantata_date("2026-06-06T00:00:00-07:00") == dt.date(2026, 6, 6)
    assert parse_kantata_date(None) is None
    assert parse_kantata_date("") is None
    assert parse_kantata_datetime("2026-02-27T16:45:12-08:00") == dt.datetime(
        2026, 2, 28, 0, 45, 12, tzinfo=dt.UTC
    )
    assert parse_kantata_datetime("2026-02-27T16:45:12Z") == dt.datetime(
        2026, 2, 27, 16, 45, 12, tzinfo=dt.UTC
    )
    assert parse_kantata_datetime("2026-02-27T16:45:12") == dt.datetime(
        2026, 2, 27, 16, 45, 12, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="soon"):
        parse_kantata_date("soon")
    with pytest.raises(ValueError, match="yesterday"):
        parse_kantata_datetime("yesterday")


# --- statuses ------------------------------------------------------------------------------------------


def _workspace(message: str | None, color: str | None, *, archived: bool = False) -> KantataWorkspace:
    status = None if message is None and color is None else KantataStatus(message=message, color=color)
    return KantataWorkspace(id="1", title="t", status=status, archived=archived)


@pytest.mark.parametrize(
    ("message", "color", "expected"),
    [
        # The sandbox's (and a default Kantata account's) statuses.
        ("Not Started", "grey", ProjectStatus.PLANNED),
        ("In Planning", "light_blue", ProjectStatus.PLANNED),
        ("Active", "green", ProjectStatus.ACTIVE),
        ("On Hold", "yellow", ProjectStatus.ON_HOLD),
        ("Completed", "blue", ProjectStatus.COMPLETED),
        ("Cancelled", "red", ProjectStatus.CLOSED),
        # Spelling and spacing do not matter; the message wins over the colour.
        ("on-hold", "green", ProjectStatus.ON_HOLD),
        ("IN PROGRESS", None, ProjectStatus.ACTIVE),
        ("Okay to Start", "light_green", ProjectStatus.ACTIVE),
        # An account's own status names fall back to the colour group.
        ("Waiting on client PO", "yellow", ProjectStatus.ON_HOLD),
        ("Delivered - awaiting sign-off", "blue", ProjectStatus.COMPLETED),
        ("Something new", "purple", ProjectStatus.ACTIVE),
        (None, None, ProjectStatus.ACTIVE),
    ],
)
def test_project_status(message: str | None, color: str | None, expected: ProjectStatus) -> None:
    assert project_status_from_workspace(_workspace(message, color)) is expected


@pytest.mark.parametrize(
    ("message", "color", "expected"),
    [
        ("Active", "green", ProjectStatus.CLOSED),
        ("Not Started", "grey", ProjectStatus.CLOSED),
        ("Completed", "blue", ProjectStatus.COMPLETED),  # finished, then archived: still finished
        (None, None, ProjectStatus.CLOSED),
    ],
)
def test_an_archived_workspace_is_closed_unless_it_was_completed(
    message: str | None, color: str | None, expected: ProjectStatus
) -> None:
    assert project_status_from_workspace(_workspace(message, color, archived=True)) is expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("not started", MilestoneStatus.NOT_STARTED),
        (None, MilestoneStatus.NOT_STARTED),
        ("started", MilestoneStatus.IN_PROGRESS),
        ("needs feedback", MilestoneStatus.IN_PROGRESS),
        ("blocked", MilestoneStatus.IN_PROGRESS),
        ("Completed", MilestoneStatus.COMPLETED),
        # Never billable by accident: only "completed" itself is completed.
        ("completed?", MilestoneStatus.COMPLETED),  # punctuation is ignored, the word is not
        ("complete-ish", MilestoneStatus.IN_PROGRESS),
        ("uncompleted", MilestoneStatus.IN_PROGRESS),
    ],
)
def test_milestone_status(state: str | None, expected: MilestoneStatus) -> None:
    assert milestone_status_from_state(state) is expected


# --- Kantata -> canonical ------------------------------------------------------------------------------


def test_workspace_maps_to_project() -> None:
    envelope = decode_envelope(WORKSPACE_JSON)
    workspace = envelope.workspaces["31800001"]
    stories = [envelope.stories["912000001"], envelope.stories["912000004"]]
    project = project_from_workspace(workspace, references=envelope.external_references, milestones=stories)
    assert project.id == "31800001"
    assert project.name == "Globex - Finance Transformation 85"
    assert project.status is ProjectStatus.ACTIVE
    assert project.external_key == "006Dn00000oKI1lIAG"
    assert project.currency == "USD"
    assert project.budget == Money(amount=Decimal("329994.25"), currency="USD")
    assert project.start_date == dt.date(2025, 12, 1)
    assert project.end_date == dt.date(2026, 6, 6)
    assert project.manager_id == "6100002"
    assert project.updated_at == dt.datetime(2026, 2, 28, 0, 45, 12, tzinfo=dt.UTC)
    assert project.system_ids == SystemIds(psa="31800001")
    first, second = project.milestones
    assert (first.id, first.name, first.status) == (
        "912000001",
        "Mobilisation & Discovery",
        MilestoneStatus.COMPLETED,
    )
    assert first.project_id == "31800001"
    assert first.due_date == dt.date(2026, 3, 3)
    assert first.amount == Money(amount=Decimal("164997.12"), currency="USD")
    assert first.system_ids == SystemIds(psa="912000001")
    assert second.status is MilestoneStatus.NOT_STARTED
    # Kantata has no customer, billing model or legal entity of its own.
    assert project.customer_id is None
    assert project.billing_model is None


def test_an_unbudgeted_workspace_has_no_budget() -> None:
    workspace = KantataWorkspace(id="3", title="Internal", budgeted=False, price_in_cents=0, currency="USD")
    project = project_from_workspace(workspace, references={})
    assert project.budget is None
    assert project.external_key is None
    assert project.milestones == []


def test_time_entries_map_with_hours_and_rate() -> None:
    envelope = decode_envelope(TIME_ENTRIES_JSON)
    late, early, unrated = (
        time_entry_from_record(r) for r in ordered(envelope, "time_entries", envelope.time_entries)
    )
    assert early.id == "1100000004"
    assert early.project_id == "31800002"
    assert early.person_id == "6100011"
    assert early.date == dt.date(2025, 12, 1)
    assert early.hours == Decimal("1.50")
    assert early.billable
    assert early.approved
    assert early.rate == Money(amount=Decimal("225.00"), currency="USD")
    assert early.notes == "Data profiling and quality checks"
    assert early.updated_at == dt.datetime(2025, 12, 8, 10, 0, tzinfo=dt.UTC)
    assert early.system_ids == SystemIds(psa="1100000004")
    assert late.hours == Decimal("0.33")
    assert late.rate == Money(amount=Decimal("235.99"), currency="GBP")
    assert not late.billable
    assert not late.approved
    assert late.notes is None  # blank notes are no notes
    # Ids sent as numbers read as the same strings; no rate is no rate, not zero.
    assert (unrated.id, unrated.project_id, unrated.person_id) == ("1100000009", "31800002", None)
    assert unrated.rate is None
    assert unrated.hours == Decimal("8.00")


def test_expense_maps_with_exact_amount() -> None:
    envelope = decode_envelope(EXPENSE_JSON)
    [expense] = [expense_from_record(r) for r in ordered(envelope, "expenses", envelope.expenses)]
    assert expense.id == "47000001"
    assert expense.project_id == "31800001"
    assert expense.person_id == "6100008"
    assert expense.date == dt.date(2025, 12, 19)
    assert expense.category == "Mileage"
    assert expense.amount == Money(amount=Decimal("129.50"), currency="USD")
    assert expense.billable
    assert expense.approved
    assert expense.notes == "Mileage to client office"


def test_expense_billable_is_read_from_either_spelling_and_approval_defaults_to_no() -> None:
    body = (
        b'{"results": [{"key": "expenses", "id": "1"}], "expenses": {"1": {"id": "1", "workspace_id": "2",'
        b' "date": "2026-01-05", "amount_in_cents": 100, "currency": "EUR", "billable": true}}}'
    )
    envelope = decode_envelope(body)
    expense = expense_from_record(envelope.expenses["1"])
    assert expense.billable
    assert not expense.approved


def test_an_expense_without_a_currency_is_unusable() -> None:
    body = (
        b'{"results": [], "expenses": {"1": {"id": "1", "workspace_id": "2", "date": "2026-01-05",'
        b' "amount_in_cents": 100, "currency": null}}}'
    )
    with pytest.raises(ValueError, match="currency"):
        expense_from_record(decode_envelope(body).expenses["1"])


def test_workspace_resources_map_to_staffing_demand() -> None:
    envelope = decode_envelope(RESOURCES_JSON)
    staffed, ours = (
        staffing_demand_from_resource(r)
        for r in ordered(envelope, "workspace_resources", envelope.workspace_resources)
    )
    assert staffed.role == "Senior Consultant"
    assert staffed.hours == Decimal("344.00")
    assert staffed.assignee_id == "6100004"
    assert staffed.external_key is None  # not raised by us
    assert staffed.start_date == dt.date(2025, 12, 1)
    assert ours.id == "2900093"
    assert ours.project_id == "31800001"
    assert ours.role == "Data Engineer"
    assert ours.hours == Decimal("120.50")
    assert ours.assignee_id is None
    assert ours.external_key == "opp-1:staff:2"
    assert ours.system_ids == SystemIds(psa="2900093")


# --- canonical -> Kantata ------------------------------------------------------------------------------

COMMAND = ProjectCreate(
    external_key="006Dn00000R8B9IIAV",
    name="Northwind Health - EHR Integration Phase 2",
    customer_id="001Dn000005uXjzIAE",
    currency="USD",
    budget=Money(amount=Decimal("125000.50"), currency="USD"),
    billing_model=BillingModel.TIME_AND_MATERIALS,
    legal_entity="US01",
    start_date=dt.date(2026, 3, 9),
    end_date=dt.date(2026, 9, 30),
    manager_id="6100002",
    milestones=[MilestoneInput(name="Design sign-off", due_date=dt.date(2026, 4, 30))],
)


def test_workspace_create_body_nests_our_reference_and_speaks_the_mavenlink_gem_spec() -> None:
    """mavenlink_gem's lib/config/specification.yml (workspaces): `creator_role` (maven or buyer) is
    required on create, and the budget is written as `price`; `price_in_cents` is not a create attribute."""
    body = workspace_create_body(COMMAND)
    assert body == {
        "workspace": {
            "title": "Northwind Health - EHR Integration Phase 2",
            "creator_role": "maven",
            "description": (
                "Customer: 001Dn000005uXjzIAE. Billing model: time and materials. Legal entity: US01. "
                "Created by Stratum under 006Dn00000R8B9IIAV."
            ),
            "currency": "USD",
            "budgeted": True,
            "price": "125000.50",
            "start_date": "2026-03-09",
            "due_date": "2026-09-30",
            "primary_maven_id": "6100002",
            "external_references_attributes": [
                {
                    "service_name": "Stratum",
                    "service_model": "Project",
                    "service_model_ref": "006Dn00000R8B9IIAV",
                },
                # The customer: Kantata links records to another system's only by reference.
                {
                    "service_name": "Stratum",
                    "service_model": "Account",
                    "service_model_ref": "001Dn000005uXjzIAE",
                },
            ],
        }
    }
    # The budget travels as a decimal string, never a float.
    assert b'"price":"125000.50"' in msgspec.json.encode(body)


def test_a_minimal_workspace_create_body() -> None:
    command = ProjectCreate(external_key="k", name="n", customer_id="c", currency="EUR")
    workspace = workspace_create_body(command)["workspace"]
    assert set(workspace) == {
        "title", "creator_role", "description", "currency", "external_references_attributes"
    }


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (Money(amount=Decimal("10.001"), currency="USD"), "fractions of a cent"),
        (Money(amount=Decimal("10"), currency="EUR"), "project's currency"),
    ],
)
def test_a_budget_kantata_cannot_hold_is_refused(budget: Money, message: str) -> None:
    command = msgspec.structs.replace(COMMAND, budget=budget)
    with pytest.raises(ValueError, match=message):
        workspace_create_body(command)


def test_milestone_story_body() -> None:
    milestone = MilestoneInput(
        name="Go-live", due_date=dt.date(2026, 9, 1), amount=Money(amount=Decimal("40000"), currency="USD")
    )
    body = milestone_story_body("31800031", "opp-1", 3, milestone, currency="USD")
    assert body == {
        "workspace_id": "31800031",
        "title": "Go-live",
        "story_type": "milestone",
        "due_date": "2026-09-01",
        "budget_estimate_in_cents": 4000000,
        "billable": True,  # billed when completed
        "fixed_fee": True,
        "external_references_attributes": [
            {
                "service_name": "Stratum",
                "service_model": "Milestone",
                "service_model_ref": "opp-1:milestone:3",
            }
        ],
    }
    with pytest.raises(ValueError, match="currency"):
        milestone_story_body("1", "opp-1", 1, milestone, currency="GBP")


def test_staffing_demand_body_carries_the_key_in_the_title() -> None:
    command = StaffingDemandCreate(
        external_key="opp-1:staff:2",
        role="Data Engineer",
        hours=Decimal("120.5"),
        start_date=dt.date(2026, 3, 2),
        end_date=dt.date(2026, 5, 29),
    )
    assert staffing_demand_body("31800001", "4206", command) == {
        "workspace_resource": {
            "workspace_id": "31800001",
            "role_id": "4206",
            "title": "Data Engineer [Stratum opp-1:staff:2]",
            "allocated_minutes": 7230,
            "start_date": "2026-03-02",
            "end_date": "2026-05-29",
        }
    }


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Data Engineer [Stratum opp-1:staff:2]", ("Data Engineer", "opp-1:staff:2")),
        ("  Data Engineer   [Stratum a.b_c-d]  ", ("Data Engineer", "a.b_c-d")),
        ("Senior Consultant (staffed)", ("Senior Consultant (staffed)", None)),
        ("Engineer [Salesforce opp-1]", ("Engineer [Salesforce opp-1]", None)),
        ("Engineer [Stratum two words]", ("Engineer [Stratum two words]", None)),
        ("[Stratum k]", (None, "k")),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_split_resource_title(title: str | None, expected: tuple[str | None, str | None]) -> None:
    assert split_resource_title(title) == expected


def test_a_long_role_is_shortened_but_the_key_survives() -> None:
    title = resource_title("R" * 400, "k" * 80)
    assert len(title) == 255
    assert split_resource_title(title)[1] == "k" * 80
