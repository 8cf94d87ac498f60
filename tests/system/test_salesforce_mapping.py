"""Salesforce records -> canonical objects: pure functions, fed the JSON Salesforce actually sends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from contracts.models import BillingModel, Customer, Opportunity, OpportunityStage
from contracts.models.common import SystemIds
from contracts.models.crm import Address
from system_apis.crm.salesforce_mapping import (
    account_to_customer,
    billing_model_from_picklist,
    decode_account,
    decode_opportunity,
    decode_query_page,
    opportunity_from_record,
    parse_salesforce_datetime,
    stage_from_picklist,
    stage_picklist_values,
)

ACCOUNT_JSON = b"""{
  "attributes": {"type": "Account", "url": "/services/data/v61.0/sobjects/Account/001Dn000005uXjzIAE"},
  "Id": "001Dn000005uXjzIAE",
  "Name": "Northwind Health Systems",
  "Type": "Customer - Direct",
  "Industry": "Healthcare",
  "Website": "https://www.northwind-health.example",
  "BillingStreet": "350 Fifth Avenue, Floor 21",
  "BillingCity": "New York",
  "BillingPostalCode": "10118",
  "BillingState": "NY",
  "BillingCountry": "United States",
  "ParentId": null,
  "CurrencyIsoCode": "USD",
  "Tax_Jurisdiction__c": "US-NY",
  "Tax_Id__c": "13-4567890",
  "Legal_Entity__c": "US01",
  "OwnerId": "005Dn00000Oz0QbIAJ",
  "CreatedDate": "2024-01-10T09:00:00.000+0000",
  "LastModifiedDate": "2026-03-04T10:15:00.000+0000",
  "SystemModstamp": "2026-03-04T10:15:00.000+0000",
  "Some_Other_Org_Field__c": {"nested": [1, 2, 3]}
}"""

OPPORTUNITY_JSON = b"""{
  "attributes": {
    "type": "Opportunity", "url": "/services/data/v61.0/sobjects/Opportunity/006Dn00000R8B9IIAV"
  },
  "Id": "006Dn00000R8B9IIAV",
  "Name": "Northwind Health - EHR Integration Phase 2",
  "AccountId": "001Dn000005uXjzIAE",
  "StageName": "Closed Won",
  "Amount": 125000.10,
  "CurrencyIsoCode": "USD",
  "CloseDate": "2026-02-20",
  "Probability": 100.0,
  "IsWon": true,
  "IsClosed": true,
  "Type": "New Business",
  "LeadSource": "Web",
  "Billing_Model__c": "Time and Materials",
  "Legal_Entity__c": "US01",
  "Project_Id__c": "PRJ-0042",
  "Activation_Status__c": "Activated",
  "OwnerId": "005Dn00000Oz0QbIAJ",
  "LastModifiedDate": "2026-02-20T08:50:00.000+0000"
}"""


def test_account_maps_to_customer() -> None:
    customer = account_to_customer(decode_account(ACCOUNT_JSON))
    assert customer == Customer(
        id="001Dn000005uXjzIAE",
        name="Northwind Health Systems",
        legal_entity="US01",
        tax_jurisdiction="US-NY",
        tax_id="13-4567890",
        website="https://www.northwind-health.example",
        industry="Healthcare",
        currency="USD",
        parent_id=None,
        billing_address=Address(
            street="350 Fifth Avenue, Floor 21",
            city="New York",
            postal_code="10118",
            region="NY",
            country="United States",
        ),
        owner_id="005Dn00000Oz0QbIAJ",
        updated_at=dt.datetime(2026, 3, 4, 10, 15, tzinfo=dt.UTC),
        system_ids=SystemIds(crm="001Dn000005uXjzIAE"),
    )


def test_account_with_parent_and_no_address() -> None:
    body = msgspec.json.encode(
        {
            "Id": "001Dn000006xWJzIAM",
            "Name": "Globex UK",
            "ParentId": "001Dn000006xWJyIAM",
            "BillingCity": None,
        }
    )
    customer = account_to_customer(decode_account(body))
    assert customer.parent_id == "001Dn000006xWJyIAM"
    assert customer.billing_address is None
    assert customer.currency is None
    assert customer.updated_at is None


def test_opportunity_maps_every_field() -> None:
    opportunity = opportunity_from_record(decode_opportunity(OPPORTUNITY_JSON))
    assert opportunity == Opportunity(
        id="006Dn00000R8B9IIAV",
        name="Northwind Health - EHR Integration Phase 2",
        customer_id="001Dn000005uXjzIAE",
        stage=OpportunityStage.CLOSED_WON,
        is_won=True,
        is_closed=True,
        amount=Decimal("125000.10"),
        currency="USD",
        close_date=dt.date(2026, 2, 20),
        probability=100,
        billing_model=BillingModel.TIME_AND_MATERIALS,
        legal_entity="US01",
        project_id="PRJ-0042",
        activation_status="Activated",
        owner_id="005Dn00000Oz0QbIAJ",
        updated_at=dt.datetime(2026, 2, 20, 8, 50, tzinfo=dt.UTC),
        system_ids=SystemIds(crm="006Dn00000R8B9IIAV"),
    )


@pytest.mark.parametrize(
    ("amount_text", "canonical"),
    [
        ("125000.10", "125000.10"),
        ("0.10", "0.10"),
        ("0.30", "0.30"),
        ("99999999999999.99", "99999999999999.99"),
        ("1234567890123456.78", "1234567890123456.78"),
        ("0", "0.00"),
        ("-250.05", "-250.05"),
        ("24000.0", "24000.00"),  # how Salesforce's JSON writes a whole amount
    ],
)
def test_amount_is_read_exactly_from_the_json_text(amount_text: str, canonical: str) -> None:
    body = OPPORTUNITY_JSON.replace(b'"Amount": 125000.10', b'"Amount": ' + amount_text.encode())
    opportunity = opportunity_from_record(decode_opportunity(body))
    assert opportunity.amount == Decimal(amount_text)
    # Same digits at the currency field's scale, never via a float: "125000.10" must not become 125000.1.
    assert str(opportunity.amount) == canonical
    assert msgspec.json.encode(opportunity.amount) == b'"' + canonical.encode() + b'"'


def test_null_amount_and_missing_optional_fields() -> None:
    body = msgspec.json.encode(
        {
            "Id": "006Dn00000R8B9ZIAV",
            "Name": "Bare",
            "StageName": "Prospecting",
            "IsWon": False,
            "IsClosed": False,
            "Amount": None,
            "CurrencyIsoCode": None,
            "Billing_Model__c": None,
        }
    )
    opportunity = opportunity_from_record(decode_opportunity(body))
    assert opportunity.amount is None
    assert opportunity.currency is None
    assert opportunity.billing_model is None
    assert opportunity.customer_id is None
    assert opportunity.probability is None


@pytest.mark.parametrize("missing", ["Id", "Name", "StageName", "IsWon", "IsClosed"])
def test_a_record_missing_a_required_field_does_not_decode(missing: str) -> None:
    record = msgspec.json.decode(OPPORTUNITY_JSON)
    del record[missing]
    with pytest.raises(msgspec.ValidationError):
        decode_opportunity(msgspec.json.encode(record))


def test_a_record_with_a_wrongly_typed_amount_does_not_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_opportunity(OPPORTUNITY_JSON.replace(b'"Amount": 125000.10', b'"Amount": [1]'))


@pytest.mark.parametrize(
    ("picklist", "stage"),
    [
        ("Prospecting", OpportunityStage.PROSPECTING),
        ("Qualification", OpportunityStage.QUALIFICATION),
        ("Needs Analysis", OpportunityStage.NEEDS_ANALYSIS),
        ("Proposal/Price Quote", OpportunityStage.PROPOSAL),
        ("Negotiation/Review", OpportunityStage.NEGOTIATION),
        ("Closed Won", OpportunityStage.CLOSED_WON),
        ("closed won", OpportunityStage.CLOSED_WON),
        ("Closed - Won", OpportunityStage.CLOSED_WON),
        ("Closed Lost", OpportunityStage.CLOSED_LOST),
        ("Value Proposition", OpportunityStage.OTHER),
        ("Contract Signed (custom)", OpportunityStage.OTHER),
        ("", OpportunityStage.OTHER),
        (None, OpportunityStage.OTHER),
    ],
)
def test_stage_picklist(picklist: str | None, stage: OpportunityStage) -> None:
    assert stage_from_picklist(picklist) is stage


def test_every_canonical_stage_but_other_has_picklist_values_that_read_back_as_it() -> None:
    for stage in OpportunityStage:
        values = stage_picklist_values(stage)
        if stage is OpportunityStage.OTHER:
            assert values == ()
        else:
            assert values
            assert {stage_from_picklist(value) for value in values} == {stage}


@pytest.mark.parametrize(
    ("picklist", "model"),
    [
        ("Time and Materials", BillingModel.TIME_AND_MATERIALS),
        ("time and materials", BillingModel.TIME_AND_MATERIALS),
        ("  Time  and   Materials ", BillingModel.TIME_AND_MATERIALS),
        ("Fixed Fee", BillingModel.FIXED_FEE),
        ("FIXED FEE", BillingModel.FIXED_FEE),
        ("fixed_fee", BillingModel.FIXED_FEE),
        ("Milestone", BillingModel.MILESTONE),
        ("Retainer", BillingModel.RETAINER),
        ("Subscription", None),
        ("", None),
        (None, None),
    ],
)
def test_billing_model_picklist(picklist: str | None, model: BillingModel | None) -> None:
    assert billing_model_from_picklist(picklist) is model


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-04T10:15:00.000+0000", dt.datetime(2026, 3, 4, 10, 15, tzinfo=dt.UTC)),
        ("2026-03-04T10:15:00.000Z", dt.datetime(2026, 3, 4, 10, 15, tzinfo=dt.UTC)),
        ("2026-03-04T12:15:00.000+0200", dt.datetime(2026, 3, 4, 10, 15, tzinfo=dt.UTC)),
        ("2026-03-04T10:15:00", dt.datetime(2026, 3, 4, 10, 15, tzinfo=dt.UTC)),
        (None, None),
        ("", None),
    ],
)
def test_salesforce_datetimes_become_aware_utc(text: str | None, expected: dt.datetime | None) -> None:
    parsed = parse_salesforce_datetime(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == dt.timedelta(0)


def test_a_garbled_timestamp_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_salesforce_datetime("yesterday")


def test_currency_codes_are_normalised_and_unknown_ones_dropped() -> None:
    lower = OPPORTUNITY_JSON.replace(b'"CurrencyIsoCode": "USD"', b'"CurrencyIsoCode": "eur"')
    assert opportunity_from_record(decode_opportunity(lower)).currency == "EUR"
    bogus = OPPORTUNITY_JSON.replace(b'"CurrencyIsoCode": "USD"', b'"CurrencyIsoCode": "XXXX"')
    assert opportunity_from_record(decode_opportunity(bogus)).currency is None


def test_query_page_decodes_batches() -> None:
    record = msgspec.json.decode(OPPORTUNITY_JSON)
    body = msgspec.json.encode(
        {
            "totalSize": 230,
            "done": False,
            "nextRecordsUrl": "/services/data/v61.0/query/01gDn00000tumwpIAA-200",
            "records": [record, record],
        }
    )
    page = decode_query_page(body)
    assert page.total_size == 230
    assert page.done is False
    assert page.next_records_url == "/services/data/v61.0/query/01gDn00000tumwpIAA-200"
    assert [r.amount for r in page.records] == [Decimal("125000.10")] * 2
