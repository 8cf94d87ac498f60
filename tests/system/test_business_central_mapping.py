"""Pure mapping between Business Central API v2.0 entities and the canonical finance objects."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import msgspec
import pytest

from contracts.models import (
    BillingModel,
    BillingScheduleCreate,
    BillingScheduleLine,
    CustomerMatchQuery,
    CustomerUpsert,
    InvoiceCreate,
    InvoiceLineInput,
    InvoiceStatus,
    Money,
)
from contracts.models.crm import Address
from sandboxes.business_central.data import ZERO_GUID
from sandboxes.salesforce import data as salesforce
from system_apis.crm.port import InvalidCursor
from system_apis.erp.business_central import decode_cursor, duplicate_candidates_filters, encode_cursor
from system_apis.erp.business_central_mapping import (
    MAX_SCHEDULE_LINES,
    BcCustomer,
    BcInvoice,
    BcInvoiceLine,
    BcPayment,
    BcProject,
    ScheduleRef,
    business_key,
    country_code,
    crm_id_from_number,
    customer_create_body,
    customer_from_bc,
    customer_update_body,
    decode_error,
    decode_page,
    decode_schedule_id,
    encode_body,
    encode_schedule_id,
    invoice_body,
    invoice_from_bc,
    invoice_query,
    invoice_status,
    odata_datetime,
    odata_quote,
    parse_bc_datetime,
    payment_from_bc,
    project_from_bc,
    schedule_invoice_body,
    schedule_key,
    schedule_line_from_bc,
    schedule_line_number,
)

INVOICE_JSON = b"""{
  "@odata.etag": "W/\\"JzE5OzEn\\"",
  "id": "c6a587f2-6b2a-5e07-8e2f-fcfc8abec279",
  "number": "103001",
  "externalDocumentNumber": "RUN-7.MUELLER",
  "invoiceDate": "2026-02-20",
  "dueDate": "2026-03-22",
  "customerId": "9fe150c0-c777-5151-9b36-4261cabeea2a",
  "customerNumber": "10000",
  "currencyCode": "EUR",
  "totalAmountExcludingTax": 14440.50,
  "totalTaxAmount": 2743.70,
  "totalAmountIncludingTax": 17184.20,
  "remainingAmount": 17184.20,
  "status": "Open",
  "lastModifiedDateTime": "2026-02-22T09:19:06.12Z",
  "unknownNewField": true,
  "salesInvoiceLines": [
    {"id": "1", "sequence": 10000, "lineType": "Account", "description": "Senior Consultant",
     "quantity": 80, "unitPrice": 165.00, "amountExcludingTax": 13200.00},
    {"id": "2", "sequence": 20000, "lineType": "Comment", "description": "Thank you"},
    {"id": "3", "sequence": 30000, "lineType": "Account", "description": "Travel",
     "quantity": 1, "unitPrice": 1240.50, "amountExcludingTax": 1240.50}
  ]
}"""


def test_an_invoice_without_its_tax_totals_says_none_rather_than_guess() -> None:
    record = msgspec.json.decode(
        b'{"id": "x", "currencyCode": "", "totalAmountIncludingTax": 119.00, "remainingAmount": 119.00,'
        b' "status": "Open"}',
        type=BcInvoice,
    )
    invoice = invoice_from_bc(record, local_currency="EUR")
    assert (invoice.total.amount, invoice.subtotal, invoice.tax) == (Decimal("119.00"), None, None)


def test_business_keys_fit_code_fields() -> None:
    assert business_key(salesforce.GERMAN_ACCOUNT_ID) == salesforce.GERMAN_ACCOUNT_ID.upper()
    assert business_key("run-2026-03.mueller", 35) == "RUN-2026-03.MUELLER"
    long = business_key("opportunity-0000000000000000000000001")
    assert len(long) == 20
    assert long.startswith("X")
    assert long == business_key("opportunity-0000000000000000000000001")
    assert long != business_key("opportunity-0000000000000000000000002")
    assert business_key("it's") != "IT'S"  # not Code-safe: hashed, never put in a filter as is


def test_salesforce_ids_get_their_case_back() -> None:
    for account in (salesforce.GERMAN_ACCOUNT_ID, salesforce.DEMO_ACCOUNT_ID, salesforce.BIG_ACCOUNT_ID):
        assert crm_id_from_number(business_key(account)) == account
    assert crm_id_from_number("10000") is None
    assert crm_id_from_number("C00010") is None
    assert crm_id_from_number("1" * 15 + "AAB") is None  # a digit flagged uppercase: no Salesforce id


def test_odata_literals() -> None:
    assert odata_quote("Anna's Backstube") == "'Anna''s Backstube'"
    assert odata_quote("' or 1 eq 1 or '") == "''' or 1 eq 1 or '''"
    assert odata_datetime(dt.datetime(2026, 3, 2, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == (
        "2026-03-02T09:30:00Z"
    )
    with pytest.raises(ValueError, match="naive"):
        odata_datetime(dt.datetime(2026, 3, 2))
    assert parse_bc_datetime("2026-02-22T09:19:06.1234567Z") == dt.datetime(
        2026, 2, 22, 9, 19, 6, 123456, tzinfo=dt.UTC
    )
    assert parse_bc_datetime("0001-01-01T00:00:00Z") is None


def test_invoice_from_bc_is_exact_and_skips_comment_lines() -> None:
    record = msgspec.json.decode(INVOICE_JSON, type=BcInvoice)
    invoice = invoice_from_bc(record, local_currency="EUR")
    # total is what the customer owes (totalAmountIncludingTax); subtotal the lines, net; tax the VAT.
    assert invoice.total.amount == Decimal("17184.20")
    assert str(invoice.total.amount) == "17184.20"
    assert invoice.subtotal == Money(amount=Decimal("14440.50"), currency="EUR")
    assert invoice.tax == Money(amount=Decimal("2743.70"), currency="EUR")
    assert invoice.balance.amount == Decimal("17184.20")
    assert sum(line.amount for line in invoice.lines) == Decimal("14440.50")
    assert invoice.status is InvoiceStatus.POSTED
    assert [line.description for line in invoice.lines] == ["Senior Consultant", "Travel"]
    assert invoice.lines[0].unit_price == Decimal("165.00")
    assert invoice.issue_date == dt.date(2026, 2, 20)
    assert invoice.external_key == "RUN-7.MUELLER"
    assert invoice.updated_at == dt.datetime(2026, 2, 22, 9, 19, 6, 120000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "total", "remaining", "expected"),
    [
        ("Draft", "100", "0", InvoiceStatus.DRAFT),
        ("In Review", "100", "0", InvoiceStatus.DRAFT),
        ("Open", "100", "100", InvoiceStatus.POSTED),
        ("Open", "100", "40", InvoiceStatus.PARTIALLY_PAID),
        ("Open", "100", "0", InvoiceStatus.PAID),
        ("Paid", "100", "0", InvoiceStatus.PAID),
        ("Canceled", "100", "100", InvoiceStatus.VOID),
        ("Corrective", "100", "0", InvoiceStatus.VOID),
    ],
)
def test_invoice_status(status: str, total: str, remaining: str, expected: InvoiceStatus) -> None:
    record = BcInvoice(
        id="x", status=status, total_amount_including_tax=Decimal(total), remaining_amount=Decimal(remaining)
    )
    assert invoice_status(record) is expected


def test_a_draft_owes_its_total() -> None:
    record = BcInvoice(
        id="x", status="Draft", total_amount_including_tax=Decimal("10.00"), remaining_amount=Decimal(0)
    )
    assert invoice_from_bc(record, local_currency="EUR").balance.amount == Decimal("10.00")


def test_invoice_filters() -> None:
    customer = "9fe150c0-c777-5151-9b36-4261cabeea2a"
    where, refine = invoice_query(
        customer_id=customer, status=InvoiceStatus.PARTIALLY_PAID, modified_since=None
    )
    assert where == f"customerId eq {customer} and status eq 'Open'"
    assert refine is not None
    partly = BcInvoice(
        id="a", status="Open", total_amount_including_tax=Decimal(5), remaining_amount=Decimal(2)
    )
    assert refine(partly)
    assert not refine(msgspec.structs.replace(partly, remaining_amount=Decimal(5)))
    since = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    where, refine = invoice_query(customer_id=None, status=InvoiceStatus.PAID, modified_since=since)
    # No "or" across status and remainingAmount (Business Central refuses it): the amount is checked here.
    assert where == "(status eq 'Paid' or status eq 'Open') and lastModifiedDateTime gt 2026-03-01T00:00:00Z"
    assert refine is not None
    assert refine(msgspec.structs.replace(partly, remaining_amount=Decimal(0)))
    assert refine(msgspec.structs.replace(partly, status="Paid", remaining_amount=Decimal(0)))
    assert not refine(partly)
    assert invoice_query(customer_id=None, status=None, modified_since=None) == (None, None)


def test_invoice_body_is_a_deep_insert_with_numbers() -> None:
    command = InvoiceCreate(
        external_key="run-1",
        customer_id="9fe150c0-c777-5151-9b36-4261cabeea2a",
        currency="EUR",
        issue_date=dt.date(2026, 3, 1),
        due_date=dt.date(2026, 3, 31),
        lines=[
            InvoiceLineInput(description="x" * 120, quantity=Decimal("7.5"), unit_price=Decimal("225.10"))
        ],
    )
    body = invoice_body(command, key="RUN-1", revenue_account="8400", local_currency="EUR")
    encoded = encode_body(body)
    assert body["currencyCode"] == ""  # the local currency is blank in Business Central
    # The key as given leads (the Code field keeps it upper-cased), then the line.
    assert body["salesInvoiceLines"][0] == {
        "lineType": "Comment",
        "description": "Key: run-1",
        "sequence": 10000,
    }
    assert body["salesInvoiceLines"][1]["description"] == "x" * 100
    upper = invoice_body(
        msgspec.structs.replace(command, external_key="RUN-1"),
        key="RUN-1",
        revenue_account="8400",
        local_currency="EUR",
    )
    assert upper["salesInvoiceLines"][0]["lineType"] == "Account"  # nothing lost: no key line
    assert b'"quantity":7.5,"unitPrice":225.10' in encoded
    foreign = invoice_body(
        msgspec.structs.replace(command, currency="CHF"),
        key="RUN-1",
        revenue_account="8400",
        local_currency="EUR",
    )
    assert foreign["currencyCode"] == "CHF"


def test_customers_round_trip_and_survivorship() -> None:
    command = CustomerUpsert(
        crm_customer_id=salesforce.GERMAN_ACCOUNT_ID,
        name="Initech Software GmbH",
        legal_entity="DE01",
        currency="EUR",
        tax_id="DE811234567",
        website="https://www.initech-software.example",
        billing_address=Address(
            street="Leopoldstraße 180", city="München", postal_code="80804", country="Germany"
        ),
    )
    body = customer_create_body(command, number=business_key(command.crm_customer_id), local_currency="EUR")
    assert body == {
        "number": salesforce.GERMAN_ACCOUNT_ID.upper(),
        "displayName": "Initech Software GmbH",
        "type": "Company",
        "currencyCode": "",
        "taxRegistrationNumber": "DE811234567",
        "website": "https://www.initech-software.example",
        "addressLine1": "Leopoldstraße 180",
        "city": "München",
        "postalCode": "80804",
        "country": "DE",
    }
    existing = BcCustomer(
        id="c1",
        number=body["number"],
        display_name="Initech GmbH",
        tax_registration_number="DE000",
        website="",
        city="Berlin",
        currency_code="EUR",
        last_modified_date_time="2026-03-02T09:30:00Z",
    )
    assert customer_update_body(command, existing) == {
        "displayName": "Initech Software GmbH",
        "website": "https://www.initech-software.example",
    }
    same = msgspec.structs.replace(existing, display_name="Initech Software GmbH", website="x.example")
    assert customer_update_body(command, same) == {}
    customer = customer_from_bc(existing, legal_entity="DE01")
    assert customer.system_ids.crm == salesforce.GERMAN_ACCOUNT_ID
    assert (customer.legal_entity, customer.currency, customer.tax_id) == ("DE01", "EUR", "DE000")
    assert customer.website is None


def test_a_customer_gets_its_tax_area_unless_business_central_has_one() -> None:
    command = CustomerUpsert(
        crm_customer_id=salesforce.GERMAN_ACCOUNT_ID, name="Initech Software GmbH", tax_jurisdiction="DE-BY"
    )
    area = "6f1c3d2e-0000-4000-8000-000000000001"
    created = customer_create_body(command, number="N", local_currency="EUR", tax_area_id=area)
    assert created["taxAreaId"] == area
    # Business Central shows "none" as the empty GUID: then the area is written; a set one is the ERP's.
    unset = BcCustomer(id="c1", display_name="Initech Software GmbH", tax_area_id=ZERO_GUID)
    assert customer_update_body(command, unset, tax_area_id=area) == {"taxAreaId": area}
    kept = msgspec.structs.replace(unset, tax_area_id="6f1c3d2e-0000-4000-8000-000000000002")
    assert customer_update_body(command, kept, tax_area_id=area) == {}
    customer = customer_from_bc(kept, legal_entity="DE01", tax_jurisdiction="DE-BE")
    assert customer.tax_jurisdiction == "DE-BE"


def test_projects_and_payments() -> None:
    project = project_from_bc(
        BcProject(id="p1", number=salesforce.READY_OPPORTUNITY_ID.upper(), display_name="Northwind"),
        legal_entity="DE01",
    )
    payment = payment_from_bc(
        BcPayment(
            id="pay", customer_id="c", posting_date="2026-02-28", amount=Decimal("-7200.00"),
            applies_to_invoice_id="00000000-0000-0000-0000-000000000000",
        ),
        currency="eur",
    )  # fmt: skip
    assert project.external_key == salesforce.READY_OPPORTUNITY_ID
    assert payment.amount.amount == Decimal("7200.00")
    assert payment.amount.currency == "EUR"
    assert payment.invoice_ids == []  # the zero GUID: applied to nothing
    assert payment.applications == []
    # A payment journal line applies to one invoice (appliesToInvoiceId): its whole amount went there.
    applied = payment_from_bc(
        BcPayment(id="pay", customer_id="c", amount=Decimal("-7200.00"), applies_to_invoice_id="inv-1"),
        currency="eur",
    )
    assert [(a.invoice_id, a.amount.amount, a.amount.currency) for a in applied.applications] == [
        ("inv-1", Decimal("7200.00"), "EUR")
    ]


def test_error_documents_and_pages() -> None:
    error = decode_error(
        b'{"error":{"code":"Request_EntityChanged","message":"Another user has already changed the record.'
        b'  CorrelationId:  2f1e0c8e-1a2b-4c3d-9e8f-0a1b2c3d4e5f."}}'
    )
    assert error is not None
    assert (error.code, error.message) == (
        "Request_EntityChanged",
        "Another user has already changed the record.",
    )
    assert decode_error(b"<html>oops</html>") is None
    page = decode_page(
        b'{"@odata.context":"x","value":[{"id":"a","number":"1"}],"@odata.nextLink":"n"}', BcProject
    )
    assert page.next_link == "n"
    assert [row.id for row in page.value] == ["a"]


def test_country_codes() -> None:
    assert country_code("Germany") == "DE"
    assert country_code("de") == "DE"
    assert country_code("United Kingdom") == "GB"
    assert country_code("Atlantis") is None
    assert country_code(None) is None


def test_duplicate_candidates_filters_or_only_within_one_property() -> None:
    # Business Central refuses "or" across distinct properties (Known limitations with Business Central
    # OData), so each property gets its own filter.
    filters = duplicate_candidates_filters(
        CustomerMatchQuery(
            name="O'Neill & Partners GmbH", tax_id="DE 12 34", website="https://www.oneill.example/de"
        )
    )
    assert filters == [
        "startswith(displayName,'O''NEILL') or startswith(displayName,'O''Neill') or "
        "startswith(displayName,'O''neill') or startswith(displayName,'o''neill')",
        "taxRegistrationNumber eq 'DE 12 34' or taxRegistrationNumber eq 'DE1234'",
        "contains(website,'oneill.example')",
    ]
    assert duplicate_candidates_filters(CustomerMatchQuery(name="Acme GmbH")) == []


def test_cursor_round_trip() -> None:
    cursor = encode_cursor(240, 120, "0123456789abcdef")
    assert decode_cursor(cursor, limit=120, fingerprint="0123456789abcdef") == 240
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, limit=50, fingerprint="0123456789abcdef")
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, limit=120, fingerprint="fedcba9876543210")


# --- billing schedules ----------------------------------------------------------------------------------


def test_a_schedule_id_carries_what_a_read_needs_and_fits_behind_the_router_prefix() -> None:
    project_id = "6f2b1c4e-1234-4abc-9def-0123456789ab"
    key = schedule_key("006Qy00000BigDeal.billing")
    assert key == schedule_key("006Qy00000BigDeal.billing")
    assert re.fullmatch(r"[A-Z2-7]{10}", key)
    for model in BillingModel:
        for count in (0, 2, 35, 36, MAX_SCHEDULE_LINES):
            schedule_id = encode_schedule_id(
                billing_model=model, currency="gbp", line_count=count, key=key, project_id=project_id.upper()
            )
            assert re.fullmatch(r"[A-Za-z0-9_.-]+", schedule_id)
            assert len("business_central:" + schedule_id) <= 64
            assert decode_schedule_id(schedule_id) == ScheduleRef(
                billing_model=model, currency="GBP", line_count=count, key=key, project_id=project_id
            )
    with pytest.raises(ValueError, match="at most"):
        encode_schedule_id(
            billing_model=BillingModel.MILESTONE,
            currency="GBP",
            line_count=MAX_SCHEDULE_LINES + 1,
            key=key,
            project_id=project_id,
        )


@pytest.mark.parametrize(
    "schedule_id",
    [
        "",
        "1",
        "bs.X.GBP.2.ABCDEFGHIJ.byscThI0Sryd7wEjRWeJqw",
        "bs.M.GBP.02.ABCDEFGHIJ.byscThI0Sryd7wEjRWeJqw",
        "bs.M.GBP.2.abcdefghij.byscThI0Sryd7wEjRWeJqw",
        "bs.M.GBP.2.ABCDEFGHIJ.byscThI0Sryd7wEjRWeJq",
        "bs.M.GBP.2.ABCDEFGHIJ.byscThI0Sryd7wEjRWeJqx",
        "business_central:bs.M.GBP.2.ABCDEFGHIJ.x",
    ],
)
def test_ids_not_made_by_encode_are_not_schedules(schedule_id: str) -> None:
    assert decode_schedule_id(schedule_id) is None


def test_a_schedule_line_is_a_dated_draft_with_one_gl_line() -> None:
    command = BillingScheduleCreate(
        external_key="opp.billing",
        billing_model=BillingModel.MILESTONE,
        currency="GBP",
        lines=[
            BillingScheduleLine(date=dt.date(2026, 5, 15), description="Discovery", amount=Decimal("10.05")),
            BillingScheduleLine(date=dt.date(2026, 9, 1), description="Go-live " * 30, amount=Decimal("20")),
        ],
    )
    key = schedule_key(command.external_key)
    body = schedule_invoice_body(
        command, 2, key=key, customer_id="c-1", revenue_account="40100", local_currency="GBP"
    )
    assert body["externalDocumentNumber"] == f"{key}#2"
    assert len(body["externalDocumentNumber"]) <= 35
    assert (body["customerId"], body["invoiceDate"], body["currencyCode"]) == ("c-1", "2026-09-01", "")
    [line] = body["salesInvoiceLines"]
    assert (line["lineType"], line["lineObjectNumber"], line["quantity"], line["unitPrice"]) == (
        "Account",
        "40100",
        Decimal(1),
        Decimal("20"),
    )
    assert len(line["description"]) == 100
    assert b'"unitPrice":20' in encode_body(body)

    draft = BcInvoice(
        id="i-1",
        external_document_number=f"{key}#2",
        invoice_date="2026-09-01",
        status="Draft",
        sales_invoice_lines=[
            BcInvoiceLine(line_type="Account", description="Go-live", amount_excluding_tax=Decimal("20.00")),
            BcInvoiceLine(line_type="Comment", description="note"),
        ],
    )
    assert schedule_line_number(draft, key) == 2
    assert schedule_line_number(draft, "ZZZZZZZZZZ") is None
    assert schedule_line_from_bc(draft) == BillingScheduleLine(
        date=dt.date(2026, 9, 1), description="Go-live", amount=Decimal("20.00")
    )
