"""NetSuite records and SuiteQL rows <-> canonical objects, and the SuiteQL the adapter writes: pure, no I/O.

The JSON here is shaped like SuiteTalk REST answers it: references as ``{"links", "id", "refName"}``,
select lists as ``{"id", "refName"}``, money as JSON numbers on records and as strings in SuiteQL rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from contracts.models import (
    Address,
    BillingModel,
    BillingScheduleCreate,
    BillingScheduleLine,
    CustomerUpsert,
    InvoiceCreate,
    InvoiceLineInput,
    InvoiceStatus,
    Money,
    ProjectCreate,
    ProjectStatus,
)
from system_apis.erp.netsuite_mapping import (
    NO_CURRENCY,
    CustomerRow,
    InvoiceRow,
    NetSuiteRef,
    SetupLookup,
    SetupRow,
    billing_schedule_body,
    billing_schedule_from_record,
    customer_from_record,
    customer_from_row,
    customer_query,
    customer_upsert_body,
    decode_async_job,
    decode_billing_schedule,
    decode_customer,
    decode_error,
    decode_invoice,
    decode_job,
    decode_payment,
    decode_suiteql_page,
    encode_body,
    invoice_body,
    invoice_from_record,
    invoice_from_row,
    invoice_query,
    invoice_status,
    job_body,
    line_amount,
    parse_netsuite_datetime,
    payment_from_record,
    payment_query,
    project_from_record,
    project_status,
    q_quote,
    record_id_from_url,
    suiteql_quote,
)

BASE = "https://123456-sb1.suitetalk.api.netsuite.com/services/rest/record/v1"
SETUP = SetupLookup.from_rows(
    [SetupRow(id="1", code="USD"), SetupRow(id="2", code="GBP"), SetupRow(id="4", code="eur")],
    {"1": "US01", "2": "GB01", "3": "DE01"},
)


def ref(record_type: str, record_id: str, name: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "links": [{"rel": "self", "href": f"{BASE}/{record_type}/{record_id}"}],
        "id": record_id,
    }
    if name is not None:
        value["refName"] = name
    return value


def encoded(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


CUSTOMER = {
    "links": [{"rel": "self", "href": f"{BASE}/customer/1001"}],
    "id": "1001",
    "entityId": "C1001",
    "companyName": "Globex Professional Services",
    "isPerson": False,
    "externalId": "001Dn000006xWJyIAM",
    "subsidiary": ref("subsidiary", "1", "Stratum Consulting Inc."),
    "currency": ref("currency", "1", "US Dollar"),
    "email": "accounts.payable@globex-ps.example",
    "url": "https://www.globex-ps.example",
    "vatRegNumber": "94-3216547",
    "terms": ref("term", "2", "Net 30"),
    "creditLimit": 250000.0,
    "parent": ref("customer", "1000", "C1000 Globex Holdings"),
    "isInactive": False,
    "dateCreated": "2022-06-01T10:00:00Z",
    "lastModifiedDate": "2023-01-28T07:16:32Z",
    "custentity_region": "NA",  # a custom field: accounts always have more than we read
}

INVOICE = {
    "links": [{"rel": "self", "href": f"{BASE}/invoice/10003"}],
    "id": "10003",
    "tranId": "INV10003",
    "entity": ref("customer", "1004", "C1004 Fabrikam Retail Group plc"),
    "job": ref("job", "3002", "PRJ3002 Fabrikam - Store Analytics Rollout"),
    "subsidiary": ref("subsidiary", "2", "Stratum Consulting UK Ltd"),
    "currency": ref("currency", "2", "British Pound"),
    "tranDate": "2026-01-03",
    "dueDate": "2026-02-02",
    "status": {"id": "A", "refName": "Open"},
    "total": 55890.0,
    "amountPaid": 22356.0,
    "amountRemaining": 33534.0,
    "item": {
        "links": [{"rel": "self", "href": f"{BASE}/invoice/10003/item"}],
        "count": 2,
        "hasMore": False,
        "items": [
            {
                "links": [],
                "line": 1,
                "item": ref("serviceItem", "104", "PS-FIXED"),
                "description": "Store Analytics - milestone 1 (30%)",
                "quantity": 1.0,
                "rate": 55000.0,
                "amount": 55000.0,
            },
            {
                "links": [],
                "line": 2,
                "item": ref("serviceItem", "101", "PS-CONSULT"),
                "description": "Extra workshop",
                "quantity": 3.5,
                "rate": 254.28571428,
                "amount": 890.0,
            },
        ],
        "offset": 0,
        "totalResults": 2,
    },
    "externalId": "billing-run-7:2026-01",
    "lastModifiedDate": "2026-02-10T12:53:07Z",
}


# --- quoting and queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("1003", "'1003'"),
        ("O'Neill & Partners LLP", "'O''Neill & Partners LLP'"),
        ("x' OR '1'='1", "'x'' OR ''1''=''1'"),
        ("1003') OR (type = 'CustInvc", "'1003'') OR (type = ''CustInvc'"),
        ("back\\slash", "'back\\slash'"),  # no escape character in Oracle SQL: a backslash is just data
        ("", "''"),
    ],
)
def test_suiteql_quote_keeps_any_value_one_literal(value: str, literal: str) -> None:
    assert suiteql_quote(value) == literal
    # Whatever the value, the literal's inside has only doubled quotes: no quote can end it early.
    assert "'" not in literal[1:-1].replace("''", "")


def test_suiteql_quote_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        suiteql_quote("a\x00b")


def test_q_quote_double_quotes_plain_values_and_refuses_what_could_end_them() -> None:
    assert q_quote("PS-CONSULT") == '"PS-CONSULT"'
    for bad in ('PS" OR itemId IS "x', "back\\slash", "new\nline"):
        with pytest.raises(ValueError, match="q filter"):
            q_quote(bad)


def test_invoice_query_quotes_the_customer_and_orders_by_id() -> None:
    query = invoice_query(customer_id="1003' OR '1'='1")
    assert "entity = '1003'' OR ''1''=''1'" in query
    assert query.startswith("SELECT id, tranid, entity, status, currency")
    assert "FROM transaction WHERE type = 'CustInvc'" in query
    assert query.endswith("ORDER BY id")
    assert "TO_CHAR(trandate, 'YYYY-MM-DD') AS issued" in query


@pytest.mark.parametrize(
    ("status", "condition"),
    [
        (InvoiceStatus.DRAFT, "(status = 'D')"),
        (InvoiceStatus.POSTED, "(status = 'A' AND foreignamountremaining >= foreigntotal)"),
        (InvoiceStatus.PARTIALLY_PAID, "(status = 'A' AND foreignamountremaining < foreigntotal)"),
        # Paid In Full by a credit memo made from it is void to Stratum (the NetSuite adapter credits).
        (
            InvoiceStatus.PAID,
            "(status = 'B' AND (SELECT MIN(c.id) FROM transaction c WHERE c.type = 'CustCred'",
        ),
        (InvoiceStatus.VOID, "(status IN ('V', 'E') OR (status = 'B' AND (SELECT MIN(c.id)"),
    ],
)
def test_each_status_has_its_condition(status: InvoiceStatus, condition: str) -> None:
    assert f"AND {condition}" in invoice_query(status=status)


def test_a_status_that_is_not_one_never_reaches_the_query() -> None:
    with pytest.raises(ValueError, match="is not a valid InvoiceStatus"):
        invoice_query(status="paid') OR ('1'='1")  # type: ignore[arg-type]


def test_modified_since_is_a_utc_timestamp_literal() -> None:
    since = dt.datetime(2026, 3, 2, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    expected = "lastmodifieddate >= TO_TIMESTAMP('2026-03-02 09:30:00', 'YYYY-MM-DD HH24:MI:SS')"
    assert expected in invoice_query(modified_since=since)
    assert f"WHERE {expected} ORDER BY id" in customer_query(modified_since=since)
    assert "WHERE" not in customer_query()


def test_payment_query() -> None:
    assert payment_query() == "SELECT id FROM transaction WHERE type = 'CustPymt' ORDER BY id"
    assert "AND entity = '1003'" in payment_query(customer_id="1003")


# --- values ----------------------------------------------------------------------------------------------


def test_netsuite_datetimes_are_aware_utc() -> None:
    assert parse_netsuite_datetime("2026-03-02T09:30:00Z") == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    # SuiteQL TO_CHAR text has no offset: read as UTC
    assert parse_netsuite_datetime("2026-03-02T09:30:00") == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    assert parse_netsuite_datetime(None) is None
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_netsuite_datetime("3/2/2026")


def test_suiteql_wall_clock_times_are_read_in_the_accounts_time_zone() -> None:
    pacific = ZoneInfo("America/Los_Angeles")
    read = functools.partial(parse_netsuite_datetime, zone=pacific)
    # TO_CHAR text is the account's local time: PST in winter, PDT in summer.
    assert read("2026-03-02T15:30:00") == dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC)
    assert read("2026-07-01T09:00:00") == dt.datetime(2026, 7, 1, 16, 0, tzinfo=dt.UTC)
    # The repeated 01:30 of the night the clocks go back is read as the earlier instant (PDT).
    assert read("2026-11-01T01:30:00") == dt.datetime(2026, 11, 1, 8, 30, tzinfo=dt.UTC)
    # A value with an offset (REST record bodies) needs no zone.
    assert read("2026-03-02T09:30:00Z") == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    # Watermark literals are written in the same wall-clock time, either side of a DST change.
    winter = dt.datetime(2026, 3, 8, 9, 30, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 3, 8, 10, 30, tzinfo=dt.UTC)
    assert "TO_TIMESTAMP('2026-03-08 01:30:00'" in customer_query(modified_since=winter, zone=pacific)
    assert "TO_TIMESTAMP('2026-03-08 03:30:00'" in invoice_query(modified_since=summer, zone=pacific)


def test_record_ids_come_from_location_urls() -> None:
    assert record_id_from_url(f"{BASE}/customer/647", "customer") == "647"
    assert record_id_from_url("https://x/services/rest/async/v1/job/12", "job") == "12"
    assert record_id_from_url(f"{BASE}/customer/647", "invoice") is None
    assert record_id_from_url(f"{BASE}/customer/eid:abc", "customer") is None


def test_line_amounts_round_half_up_to_cents() -> None:
    assert line_amount(Decimal("7.5"), Decimal("225.10")) == Decimal("1688.25")
    assert line_amount(Decimal("0.333"), Decimal("0.15")) == Decimal("0.05")  # 0.04995
    assert line_amount(Decimal("3"), Decimal("0.125")) == Decimal("0.38")  # 0.375, not banker's 0.38/0.37


def test_bodies_carry_decimals_as_exact_json_numbers() -> None:
    body = encode_body({"rate": Decimal("225.10"), "amount": Decimal("0.1000000000000000055511151231257827")})
    assert body == b'{"rate":225.10,"amount":0.1000000000000000055511151231257827}'


# --- invoice status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name", "total", "remaining", "expected"),
    [
        ("A", "Open", "100", "100", InvoiceStatus.POSTED),
        ("A", "Open", "100", "40", InvoiceStatus.PARTIALLY_PAID),
        ("B", "Paid In Full", "100", "0", InvoiceStatus.PAID),
        ("D", "Pending Approval", "100", "100", InvoiceStatus.DRAFT),
        ("E", "Rejected", "100", "100", InvoiceStatus.VOID),
        ("V", "Voided", "100", "0", InvoiceStatus.VOID),
        (None, "Invoice : Open", "100", "100", InvoiceStatus.POSTED),  # SuiteQL BUILTIN.DF's display
        (None, "Partially Paid", "100", "40", InvoiceStatus.PARTIALLY_PAID),
        (None, "Paid In Full", "100", "0", InvoiceStatus.PAID),
        (None, "Pending Approval", "100", "100", InvoiceStatus.DRAFT),
        (None, "voided", "100", "100", InvoiceStatus.VOID),
        ("X", "Something custom", "100", "0", InvoiceStatus.PAID),  # unknown: the amounts decide
        ("X", None, "100", "30", InvoiceStatus.PARTIALLY_PAID),
        (None, None, "100", "100", InvoiceStatus.POSTED),
    ],
)
def test_invoice_status_table(
    code: str | None, name: str | None, total: str, remaining: str, expected: InvoiceStatus
) -> None:
    assert invoice_status(code, name, total=Decimal(total), remaining=Decimal(remaining)) is expected


# --- customers -------------------------------------------------------------------------------------------


def test_customer_record_to_canonical() -> None:
    customer = customer_from_record(decode_customer(encoded(CUSTOMER)), SETUP)
    assert customer.id == "1001"
    assert customer.name == "Globex Professional Services"
    assert customer.legal_entity == "US01"  # the subsidiary's legal-entity code, not its display name
    assert customer.currency == "USD"  # the ISO code, not "US Dollar"
    assert customer.tax_id == "94-3216547"
    assert customer.website == "https://www.globex-ps.example"
    assert customer.parent_id == "1000"
    assert customer.updated_at == dt.datetime(2023, 1, 28, 7, 16, 32, tzinfo=dt.UTC)
    assert customer.system_ids.erp == "1001"
    assert customer.system_ids.crm == "001Dn000006xWJyIAM"


def test_a_sparse_customer_record_still_maps() -> None:
    # NetSuite leaves empty fields out of the document.
    customer = customer_from_record(decode_customer(b'{"id": "7", "entityId": "C7"}'), SETUP)
    assert (customer.name, customer.currency, customer.legal_entity, customer.parent_id) == (
        "C7",
        None,
        None,
        None,
    )
    assert customer.system_ids.crm is None


def test_unknown_currency_ids_read_as_no_currency() -> None:
    record = decode_customer(encoded({**CUSTOMER, "currency": ref("currency", "99", "Bitcoin")}))
    assert customer_from_record(record, SETUP).currency is None


def test_customer_row_to_canonical() -> None:
    row = CustomerRow(
        id="1004", companyname="Fabrikam Retail Group plc", externalid=None, subsidiary="2", currency="2",
        vatregnumber="GB246813579", lastmodified="2025-05-06T07:08:09",
    )  # fmt: skip
    customer = customer_from_row(row, SETUP)
    assert (customer.legal_entity, customer.currency, customer.tax_id) == ("GB01", "GBP", "GB246813579")
    assert customer.updated_at == dt.datetime(2025, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def upsert(**overrides: Any) -> CustomerUpsert:
    fields: dict[str, Any] = {
        "crm_customer_id": "001Dn000005uXjzIAE",
        "name": "Northwind Health Systems",
        "legal_entity": "US01",
        "currency": "USD",
        "tax_id": "13-5551234",
        "website": "https://northwind.example",
    }
    return CustomerUpsert(**{**fields, **overrides})


def test_a_new_customer_gets_every_field() -> None:
    body = customer_upsert_body(upsert(), None, parent_id="1001", setup=SETUP)
    assert body == {
        "companyName": "Northwind Health Systems",
        "parent": {"id": "1001"},
        "isPerson": False,
        "subsidiary": {"id": "1"},
        "currency": {"id": "1"},
        "vatRegNumber": "13-5551234",
        "url": "https://northwind.example",
    }


def test_survivorship_the_erp_keeps_its_billing_and_tax_fields() -> None:
    existing = decode_customer(encoded(CUSTOMER))
    body = customer_upsert_body(
        upsert(name="Globex PS (renamed in CRM)", legal_entity="GB01", currency="GBP", tax_id="99-9"),
        existing,
        parent_id=None,
        setup=SETUP,
    )
    # The CRM's name and hierarchy are written (no parent in the CRM clears NetSuite's); nothing else is.
    assert body == {"companyName": "Globex PS (renamed in CRM)", "parent": None}


def test_survivorship_fills_what_the_erp_does_not_have_yet() -> None:
    sparse = {key: value for key, value in CUSTOMER.items() if key not in ("vatRegNumber", "url")}
    body = customer_upsert_body(upsert(), decode_customer(encoded(sparse)), parent_id=None, setup=SETUP)
    assert body == {
        "companyName": "Northwind Health Systems",
        "parent": None,
        "vatRegNumber": "13-5551234",
        "url": "https://northwind.example",
    }


ADDRESS = Address(
    street="200 Park Avenue\nFloor 12",
    city="New York",
    postal_code="10166",
    region="NY",
    country="United States",
)


def test_a_new_customer_gets_its_billing_address_and_tax_code() -> None:
    body = customer_upsert_body(
        upsert(tax_jurisdiction="US-NY", billing_address=ADDRESS), None, parent_id=None, setup=SETUP
    )
    assert body["taxable"] is True
    # By external id: the firm's tax items are keyed by their jurisdiction's ISO 3166-2 code.
    assert body["taxItem"] == {"externalId": "US-NY"}
    assert body["addressBook"] == {
        "items": [
            {
                "defaultBilling": True,
                "defaultShipping": True,
                "label": "Billing",
                "addressBookAddress": {
                    "addr1": "200 Park Avenue",
                    "addr2": "Floor 12",
                    "city": "New York",
                    "state": "NY",
                    "zip": "10166",
                    "country": "US",
                },
            }
        ]
    }


def test_survivorship_the_erp_keeps_its_address_and_tax_code() -> None:
    kept = {
        **CUSTOMER,
        "taxItem": ref("salesTaxItem", "235", "US-NJ"),
        "addressBook": {
            "links": [],
            "items": [
                {"defaultBilling": False, "addressBookAddress": {"addr1": "1 Ship St", "city": "Newark"}},
                {
                    "defaultBilling": True,
                    "addressBookAddress": {"addr1": "9 Bill Rd", "city": "Hoboken", "country": {"id": "US"}},
                },
            ],
        },
    }
    existing = decode_customer(encoded(kept))
    body = customer_upsert_body(
        upsert(tax_jurisdiction="US-NY", billing_address=ADDRESS), existing, parent_id=None, setup=SETUP
    )
    assert "taxItem" not in body
    assert "addressBook" not in body
    # Read back, the customer's address is the default billing line, its jurisdiction its tax item's.
    customer = customer_from_record(existing, SETUP)
    assert customer.tax_jurisdiction == "US-NJ"
    assert customer.billing_address == Address(street="9 Bill Rd", city="Hoboken", country="US")


def test_unknown_legal_entities_and_currencies_are_refused() -> None:
    with pytest.raises(ValueError, match="legal entity 'FR01'"):
        customer_upsert_body(upsert(legal_entity="FR01"), None, parent_id=None, setup=SETUP)
    with pytest.raises(ValueError, match="currency 'JPY'"):
        customer_upsert_body(upsert(currency="JPY"), None, parent_id=None, setup=SETUP)


# --- projects --------------------------------------------------------------------------------------------

JOB = {
    "links": [],
    "id": "3002",
    "entityId": "PRJ3002",
    "companyName": "Fabrikam - Store Analytics Rollout",
    "parent": ref("customer", "1004"),
    "subsidiary": ref("subsidiary", "2"),
    "currency": ref("currency", "2"),
    "startDate": "2025-12-17",
    "projectedEndDate": "2026-06-05",
    "jobBillingType": {"id": "FBM", "refName": "Fixed Bid, Milestone"},
    "billingSchedule": ref("billingSchedule", "1"),
    "entityStatus": {"id": "2", "refName": "In Progress"},
    "projectManager": ref("employee", "12"),
    "externalId": "006Dn00000R8B9IIAV",
    "isInactive": False,
    "lastModifiedDate": "2026-01-10T10:00:00Z",
}


def test_job_record_to_canonical_project() -> None:
    project = project_from_record(decode_job(encoded(JOB)), SETUP)
    assert project.id == "3002"
    assert project.status is ProjectStatus.ACTIVE
    assert (project.customer_id, project.currency, project.legal_entity) == ("1004", "GBP", "GB01")
    assert project.billing_model is BillingModel.MILESTONE
    assert (project.start_date, project.end_date) == (dt.date(2025, 12, 17), dt.date(2026, 6, 5))
    assert (project.manager_id, project.external_key) == ("12", "006Dn00000R8B9IIAV")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (NetSuiteRef(id="1", ref_name="Closed"), ProjectStatus.COMPLETED),
        (NetSuiteRef(id="2", ref_name="In Progress"), ProjectStatus.ACTIVE),
        (NetSuiteRef(id="3", ref_name="Not Awarded"), ProjectStatus.CLOSED),
        (NetSuiteRef(id="4", ref_name="Pending"), ProjectStatus.PLANNED),
        (NetSuiteRef(id="17", ref_name="On Hold"), ProjectStatus.ON_HOLD),  # a status the account added
        (NetSuiteRef(id="4"), ProjectStatus.PLANNED),
        (None, ProjectStatus.ACTIVE),
    ],
)
def test_project_statuses(status: NetSuiteRef | None, expected: ProjectStatus) -> None:
    assert project_status(status) is expected


def test_job_body_for_a_new_project() -> None:
    command = ProjectCreate(
        external_key="006Dn00000R8B9IIAV", name="Northwind - EHR Integration", customer_id="3060",
        currency="USD", billing_model=BillingModel.TIME_AND_MATERIALS, legal_entity="US01",
        start_date=dt.date(2026, 3, 9), end_date=dt.date(2026, 9, 30), manager_id="9",
    )  # fmt: skip
    assert job_body(command, SETUP) == {
        "companyName": "Northwind - EHR Integration",
        "parent": {"id": "3060"},
        "currency": {"id": "1"},
        "subsidiary": {"id": "1"},
        "startDate": "2026-03-09",
        "projectedEndDate": "2026-09-30",
        "jobBillingType": {"id": "TM"},
        "projectManager": {"id": "9"},
    }


# --- billing schedules -----------------------------------------------------------------------------------


def schedule(model: BillingModel, *amounts: str | None) -> BillingScheduleCreate:
    lines = [
        BillingScheduleLine(
            date=dt.date(2026, 4 + index, 1),
            description=f"Milestone {index + 1}",
            amount=None if amount is None else Decimal(amount),
        )
        for index, amount in enumerate(amounts)
    ]
    return BillingScheduleCreate(
        external_key="act-42:schedule", billing_model=model, currency="USD", lines=lines
    )


def test_milestone_amounts_become_percentages_that_total_exactly_100() -> None:
    body = billing_schedule_body("3061", schedule(BillingModel.MILESTONE, "1000", "1000", "1000"))
    shares = [item["milestoneAmount"] for item in body["milestones"]["items"]]
    assert shares == [Decimal("33.3333"), Decimal("33.3333"), Decimal("33.3334")]
    assert sum(shares) == 100
    assert body["scheduleType"] == {"id": "FBM"}
    assert body["project"] == {"id": "3061"}
    assert body["name"] == "act-42:schedule"
    assert body["milestones"]["items"][0] == {
        "milestoneDate": "2026-04-01",
        "milestoneAmount": Decimal("33.3333"),
        "comments": "Milestone 1",
    }
    # On the wire, exact numbers
    assert b'"milestoneAmount":33.3334' in encode_body(body)


def test_fixed_fee_schedules_are_fixed_bid_interval_with_dated_shares() -> None:
    body = billing_schedule_body("3061", schedule(BillingModel.FIXED_FEE, "30000", "70000"))
    assert body["scheduleType"] == {"id": "FBI"}
    assert [item["milestoneAmount"] for item in body["milestones"]["items"]] == [Decimal("30"), Decimal("70")]


def test_a_milestone_line_without_an_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="needs an amount"):
        billing_schedule_body("3061", schedule(BillingModel.MILESTONE, "1000", None))


def test_time_and_materials_and_retainers_bill_monthly() -> None:
    body = billing_schedule_body("3061", schedule(BillingModel.TIME_AND_MATERIALS, None, None))
    assert body == {
        "name": "act-42:schedule",
        "scheduleType": {"id": "TM"},
        "project": {"id": "3061"},
        "frequency": {"id": "MONTHLY"},
    }
    retainer = billing_schedule_body("3061", schedule(BillingModel.RETAINER, "5000", "5000", "5000"))
    assert (retainer["scheduleType"], retainer["recurrenceCount"]) == ({"id": "STDRD"}, 3)


def test_billing_schedule_record_to_canonical() -> None:
    record = decode_billing_schedule(
        encoded(
            {
                "id": "1",
                "name": "Fabrikam Store Analytics - Milestones",
                "scheduleType": {"id": "FBM", "refName": "Fixed Bid Milestone"},
                "project": ref("job", "3002"),
                "milestones": {
                    "links": [],
                    "items": [
                        {
                            "line": 1,
                            "milestoneDate": "2026-01-01",
                            "milestoneAmount": 30.0,
                            "comments": "Design",
                        },
                        {"line": 2, "milestoneDate": "2026-03-17", "milestoneAmount": 70.0},
                    ],
                },
                "externalId": "act-42:schedule",
                "isInactive": True,
            }
        )
    )
    canonical = billing_schedule_from_record(record, currency="GBP")
    assert (canonical.id, canonical.project_id, canonical.currency) == ("1", "3002", "GBP")
    assert canonical.billing_model is BillingModel.MILESTONE
    assert canonical.voided is True
    assert canonical.external_key == "act-42:schedule"
    assert [(line.date, line.description, line.amount) for line in canonical.lines] == [
        (dt.date(2026, 1, 1), "Design", None),
        (dt.date(2026, 3, 17), "Milestone 2", None),
    ]
    # Not attached to a project: no currency to bill in
    assert billing_schedule_from_record(record, currency=None).currency == NO_CURRENCY


def test_a_standard_schedule_reads_as_a_retainer_and_collapsed_milestones_as_none() -> None:
    record = decode_billing_schedule(
        b'{"id": "2", "scheduleType": {"id": "STDRD"}, "milestones": {"links": []}}'
    )
    canonical = billing_schedule_from_record(record, currency="USD")
    assert (canonical.billing_model, canonical.lines, canonical.project_id) == (BillingModel.RETAINER, [], "")


# --- invoices --------------------------------------------------------------------------------------------


def test_invoice_record_to_canonical_with_exact_money() -> None:
    invoice = invoice_from_record(decode_invoice(encoded(INVOICE)), SETUP)
    assert invoice.id == "10003"
    assert invoice.number == "INV10003"
    assert invoice.customer_id == "1004"
    assert invoice.project_id == "3002"
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID
    assert invoice.currency == "GBP"
    assert invoice.total.amount == Decimal("55890.00")
    assert str(invoice.total.amount) == "55890.00"
    assert invoice.balance.amount == Decimal("33534.00")
    assert (invoice.issue_date, invoice.due_date) == (dt.date(2026, 1, 3), dt.date(2026, 2, 2))
    assert invoice.external_key == "billing-run-7:2026-01"
    first, second = invoice.lines
    assert (first.quantity, first.unit_price, first.amount) == (
        Decimal("1.0"),
        Decimal("55000.00"),
        Decimal("55000.00"),
    )
    # A rate with more than cents keeps every digit NetSuite sent
    assert second.unit_price == Decimal("254.28571428")
    assert second.quantity == Decimal("3.5")


def test_amounts_never_pass_through_a_float() -> None:
    # 0.1 + 0.2 as floats is 0.30000000000000004; as the JSON text it is exactly 0.3.
    body = (
        b'{"id": "1", "entity": {"id": "5"}, "currency": {"id": "1"}, "total": 12345678901234.30,'
        b' "amountRemaining": 0.3}'
    )
    invoice = invoice_from_record(decode_invoice(body), SETUP)
    assert invoice.total.amount == Decimal("12345678901234.30")
    assert invoice.balance.amount == Decimal("0.30")
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID


def test_an_invoice_with_tax_answers_net_tax_and_gross() -> None:
    """A SuiteTax account's invoice: ``subtotal`` (the lines), ``taxTotal`` and ``total`` (what is owed)."""
    body = (
        b'{"id": "1", "entity": {"id": "5"}, "currency": {"id": "1"}, "subtotal": 1000.0,'
        b' "taxTotal": 88.75, "total": 1088.75, "amountRemaining": 1088.75}'
    )
    invoice = invoice_from_record(decode_invoice(body), SETUP)
    assert invoice.subtotal is not None
    assert invoice.tax is not None
    assert (invoice.subtotal.amount, invoice.tax.amount) == (Decimal("1000.00"), Decimal("88.75"))
    assert invoice.total.amount == invoice.balance.amount == Decimal("1088.75")
    no_totals = invoice_from_record(
        decode_invoice(b'{"id": "1", "entity": {"id": "5"}, "currency": {"id": "1"}}'), SETUP
    )
    assert (no_totals.subtotal, no_totals.tax) == (None, None)


def test_an_invoice_without_customer_or_known_currency_is_unusable() -> None:
    with pytest.raises(ValueError, match="no customer or no known currency"):
        invoice_from_record(decode_invoice(b'{"id": "1", "currency": {"id": "1"}}'), SETUP)
    with pytest.raises(ValueError, match="no customer or no known currency"):
        invoice_from_record(
            decode_invoice(b'{"id": "1", "entity": {"id": "5"}, "currency": {"id": "99"}}'), SETUP
        )


def test_suiteql_invoice_rows_read_strings_exactly() -> None:
    body = encoded(
        {
            "links": [],
            "count": 2,
            "hasMore": True,
            "items": [
                {
                    "links": [], "id": "10001", "tranid": "INV10001", "entity": "1003", "status": "A",
                    "currency": "1", "total": "29800", "remaining": "29800", "issued": "2026-02-20",
                    "due": "2026-03-22", "lastmodified": "2026-02-20T09:12:13",
                },
                {
                    "links": [], "id": "10004", "entity": "1005", "status": "A", "currency": "4",
                    "total": "18500", "remaining": ".5",
                },
            ],
            "offset": 0,
            "totalResults": 3,
        }
    )  # fmt: skip
    page = decode_suiteql_page(body, InvoiceRow)
    assert page.has_more is True
    first, second = (invoice_from_row(row, SETUP) for row in page.items)
    assert first.status is InvoiceStatus.POSTED
    assert first.total.amount == Decimal("29800.00")
    assert (first.issue_date, first.due_date) == (dt.date(2026, 2, 20), dt.date(2026, 3, 22))
    assert first.lines == []
    assert second.balance.amount == Decimal("0.50")
    assert second.status is InvoiceStatus.PARTIALLY_PAID
    assert second.currency == "EUR"  # the lookup upper-cases ISO codes


def test_invoice_body() -> None:
    command = InvoiceCreate(
        external_key="billing-run-8:2026-03",
        customer_id="1003",
        currency="USD",
        issue_date=dt.date(2026, 3, 1),
        due_date=dt.date(2026, 3, 31),
        project_id="3001",
        lines=[
            InvoiceLineInput(
                description="Consulting, February", quantity=Decimal("7.5"), unit_price=Decimal("225.10")
            ),
            InvoiceLineInput(description="Project management", unit_price=Decimal("1750")),
        ],
    )
    body = invoice_body(command, item_id="101", setup=SETUP)
    assert body["externalId"] == "billing-run-8:2026-03"
    assert body["entity"] == {"id": "1003"}
    assert body["job"] == {"id": "3001"}
    assert body["currency"] == {"id": "1"}
    assert (body["tranDate"], body["dueDate"]) == ("2026-03-01", "2026-03-31")
    first, second = body["item"]["items"]
    assert first == {
        "item": {"id": "101"},
        "description": "Consulting, February",
        "quantity": Decimal("7.5"),
        "rate": Decimal("225.10"),
        "amount": Decimal("1688.25"),
    }
    assert (second["quantity"], second["amount"]) == (Decimal(1), Decimal("1750.00"))
    wire = encode_body(body)
    assert b'"quantity":7.5,"rate":225.10,"amount":1688.25' in wire
    with pytest.raises(ValueError, match="currency 'CHF'"):
        invoice_body(msgspec.structs.replace(command, currency="CHF"), item_id="101", setup=SETUP)


# --- payments, jobs, errors ------------------------------------------------------------------------------


def test_payment_record_lists_only_the_invoices_it_applies_to() -> None:
    body = encoded(
        {
            "id": "20002",
            "customer": ref("customer", "1004"),
            "currency": ref("currency", "2"),
            "tranDate": "2026-02-10",
            "payment": 22356.0,
            "apply": {
                "links": [],
                "items": [
                    {"line": 1, "doc": ref("invoice", "10003"), "apply": True, "amount": 22356.0},
                    {"line": 2, "doc": ref("invoice", "10099"), "apply": False},
                ],
            },
        }
    )
    payment = payment_from_record(decode_payment(body), SETUP)
    assert (payment.id, payment.customer_id, payment.date) == ("20002", "1004", dt.date(2026, 2, 10))
    assert payment.amount.amount == Decimal("22356.00")
    assert payment.amount.currency == "GBP"
    assert payment.invoice_ids == ["10003"]
    assert [(a.invoice_id, a.amount.amount) for a in payment.applications] == [("10003", Decimal("22356.00"))]


def test_a_payment_applied_to_several_invoices_keeps_each_apply_lines_amount() -> None:
    """Oracle's REST sample ("Customer Payment", docs.oracle.com ... article_0224093711): ``payment`` 250
    with ``apply.items[{amount: 200.0, apply: true, doc}]``: what each invoice got is its line's amount."""
    line = {"apply": True}
    body = encoded(
        {
            "id": "20010",
            "customer": ref("customer", "1004"),
            "currency": ref("currency", "1"),
            "tranDate": "2026-02-10",
            "payment": 1600.0,
            "apply": {
                "items": [
                    {**line, "doc": ref("invoice", "10003"), "amount": 1000.0},
                    {**line, "doc": ref("invoice", "10004"), "amount": 500.5},
                ]
            },
        }
    )
    payment = payment_from_record(decode_payment(body), SETUP)
    assert payment.invoice_ids == ["10003", "10004"]
    assert payment.amount.amount == Decimal("1600.00")  # 99.50 left unapplied
    assert payment.applied_to("10003") == Money(amount=Decimal("1000.00"), currency="USD")
    assert payment.applied_to("10004") == Money(amount=Decimal("500.50"), currency="USD")
    assert payment.applied_to("10099") is None
    # A line without its amount: the split is unknown, never guessed as the whole payment per invoice.
    without = msgspec.json.decode(body)
    del without["apply"]["items"][1]["amount"]
    unknown = decode_payment(msgspec.json.encode(without))
    assert payment_from_record(unknown, SETUP).applications == []
    assert payment_from_record(unknown, SETUP).applied_to("10003") is None


def test_async_job_documents() -> None:
    done = decode_async_job(
        encoded(
            {
                "links": [{"rel": "self", "href": "https://x/services/rest/async/v1/job/3"}],
                "id": "3",
                "completed": True,
                "progress": "failed",
                "task": {"links": [{"rel": "self", "href": "https://x/services/rest/async/v1/job/3/task"}]},
            }
        )
    )
    assert done.completed
    assert done.failed
    assert done.task_href() == "https://x/services/rest/async/v1/job/3/task"
    pending = decode_async_job(b'{"id": "4", "completed": false, "progress": "pending"}')
    assert (pending.completed, pending.failed, pending.task_href()) == (False, False, None)


def test_error_documents() -> None:
    error = decode_error(
        encoded(
            {
                "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
                "title": "Bad Request",
                "status": 400,
                "o:errorDetails": [
                    {
                        "detail": "Invalid entity reference key 42.",
                        "o:errorCode": "INVALID_KEY_OR_REF",
                        "o:errorPath": "entity",
                    }
                ],
            }
        )
    )
    assert error is not None
    assert (error.code, error.detail, error.status) == (
        "INVALID_KEY_OR_REF",
        "Invalid entity reference key 42.",
        400,
    )
    assert decode_error(b"<html>Down for maintenance</html>") is None
    assert decode_error(b'{"error": "service_unavailable"}') is not None  # a JSON body without details
    assert decode_error(b'{"error": "service_unavailable"}').code is None  # type: ignore[union-attr]


def test_customer_query_by_ids_is_one_in_list_of_integers() -> None:
    statement = customer_query(ids=["12", "7", "0300"])
    assert "FROM customer WHERE id IN (12, 7, 300) ORDER BY id" in statement
    for bad in (["1", "1) OR (1=1"], ["x"], [], ["1" * 19]):
        with pytest.raises(ValueError, match="internal ids"):
            customer_query(ids=bad)
