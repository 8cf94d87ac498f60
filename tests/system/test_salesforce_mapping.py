"""Salesforce records -> canonical objects: pure functions, fed the JSON Salesforce actually sends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from contracts.models import (
    ActivationStatus,
    BillingModel,
    Contact,
    Customer,
    DealMilestone,
    Opportunity,
    OpportunityActivationUpdate,
    OpportunityStage,
    RateCardLine,
    RateUnit,
)
from contracts.models.common import Money, SystemIds
from contracts.models.crm import Address
from system_apis.crm.salesforce_mapping import (
    ACTIVATION_STATUS_PICKLIST,
    SalesforceAccount,
    SalesforceContact,
    SalesforceMilestone,
    SalesforceOpportunity,
    SalesforceRateCardLine,
    account_to_customer,
    activation_status_from_picklist,
    activation_update_body,
    billing_model_from_picklist,
    contact_from_record,
    decode_account,
    decode_opportunity,
    decode_query_page,
    opportunity_from_record,
    parse_salesforce_datetime,
    rate_card_line_from_record,
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
  "ERP_Project_Id__c": "JOB-7731",
  "ERP_Customer_Id__c": "CUST-118",
  "Activation_Status__c": "Activated",
  "Contract_Terms__c": "  Net 30. Rates fixed for 12 months.\\nTravel billed at cost.  ",
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
        activation_status=ActivationStatus.ACTIVATED,
        owner_id="005Dn00000Oz0QbIAJ",
        updated_at=dt.datetime(2026, 2, 20, 8, 50, tzinfo=dt.UTC),
        # Where the deal lives now: activation wrote the PSA and ERP project ids back.
        system_ids=SystemIds(crm="006Dn00000R8B9IIAV", psa="PRJ-0042", erp="JOB-7731"),
        contract_terms="Net 30. Rates fixed for 12 months.\nTravel billed at cost.",
        milestones=[],
        rate_card=[],
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
    assert opportunity.contract_terms is None
    assert opportunity.activation_status is None
    assert opportunity.system_ids == SystemIds(crm="006Dn00000R8B9ZIAV")
    assert opportunity.milestones == []
    assert opportunity.rate_card == []


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
    page = decode_query_page(body, SalesforceOpportunity)
    assert page.total_size == 230
    assert page.done is False
    assert page.next_records_url == "/services/data/v61.0/query/01gDn00000tumwpIAA-200"
    assert [r.amount for r in page.records] == [Decimal("125000.10")] * 2


def test_a_query_page_of_another_object_decodes_into_its_records() -> None:
    body = msgspec.json.encode(
        {
            "totalSize": 1,
            "done": True,
            "records": [msgspec.json.decode(ACCOUNT_JSON)],
        }
    )
    page = decode_query_page(body, SalesforceAccount)
    assert [account_to_customer(r).name for r in page.records] == ["Northwind Health Systems"]
    with pytest.raises(msgspec.ValidationError):  # an Account is no Opportunity: IsWon etc. are missing
        decode_query_page(body, SalesforceOpportunity)


# --- deal milestones and rate card ---------------------------------------------------------------------

MILESTONES_JSON = b"""{
  "totalSize": 3, "done": true,
  "records": [
    {"attributes": {"type": "Opportunity_Milestone__c"}, "Id": "a0ADn000001AAAAIA1",
     "Opportunity__c": "006Dn00000R8B9IIAV", "Name": "Discovery sign-off", "Amount__c": 40000.1,
     "Due_Date__c": "2026-03-15"},
    {"attributes": {"type": "Opportunity_Milestone__c"}, "Id": "a0ADn000001AAABIA1",
     "Opportunity__c": "006Dn00000R8B9IIAV", "Name": "Go-live", "Amount__c": 85000.0,
     "Due_Date__c": "2026-06-30"},
    {"attributes": {"type": "Opportunity_Milestone__c"}, "Id": "a0ADn000001AAACIA1",
     "Opportunity__c": "006Dn00000R8B9IIAV", "Name": "Hypercare", "Amount__c": null, "Due_Date__c": null}
  ]
}"""

RATE_CARD_JSON = b"""{
  "totalSize": 5, "done": true,
  "records": [
    {"Id": "a0BDn000001AAAAIA1", "Opportunity__c": "006Dn00000R8B9IIAV", "Role__c": "Engagement Manager",
     "Rate__c": 245.0, "CurrencyIsoCode": "USD"},
    {"Id": "a0BDn000001AAABIA1", "Opportunity__c": "006Dn00000R8B9IIAV", "Role__c": "Senior Consultant",
     "Rate__c": 185.5, "CurrencyIsoCode": null},
    {"Id": "a0BDn000001AAACIA1", "Opportunity__c": "006Dn00000R8B9IIAV", "Role__c": "Offshore Developer",
     "Rate__c": 62.25, "CurrencyIsoCode": "eur"},
    {"Id": "a0BDn000001AAADIA1", "Opportunity__c": "006Dn00000R8B9IIAV", "Role__c": "Architect",
     "Rate__c": null, "CurrencyIsoCode": "USD"},
    {"Id": "a0BDn000001AAAEIA1", "Opportunity__c": "006Dn00000R8B9IIAV", "Role__c": " ",
     "Rate__c": 100.0, "CurrencyIsoCode": "USD"}
  ]
}"""


def _won_deal(currency: str | None = "USD") -> SalesforceOpportunity:
    record = msgspec.json.decode(OPPORTUNITY_JSON)
    record["CurrencyIsoCode"] = currency
    return decode_opportunity(msgspec.json.encode(record))


def test_milestones_are_read_in_the_deals_currency_at_the_amounts_scale() -> None:
    milestones = decode_query_page(MILESTONES_JSON, SalesforceMilestone).records
    opportunity = opportunity_from_record(_won_deal(), milestones=milestones)
    assert opportunity.milestones == [
        DealMilestone(
            name="Discovery sign-off",
            amount=Money(amount=Decimal("40000.10"), currency="USD"),
            due_date=dt.date(2026, 3, 15),
            system_ids=SystemIds(crm="a0ADn000001AAAAIA1"),
        ),
        DealMilestone(
            name="Go-live",
            amount=Money(amount=Decimal("85000.00"), currency="USD"),
            due_date=dt.date(2026, 6, 30),
            system_ids=SystemIds(crm="a0ADn000001AAABIA1"),
        ),
        DealMilestone(name="Hypercare", system_ids=SystemIds(crm="a0ADn000001AAACIA1")),
    ]
    first = opportunity.milestones[0].amount
    assert first is not None
    # Exactly the JSON's digits at two places, never via a float ("40000.1" would be 40000.099999...).
    assert msgspec.json.encode(first) == b'{"amount":"40000.10","currency":"USD"}'


def test_a_milestone_of_a_deal_without_currency_keeps_its_name_and_date_but_no_amount() -> None:
    milestones = decode_query_page(MILESTONES_JSON, SalesforceMilestone).records
    opportunity = opportunity_from_record(_won_deal(currency=None), milestones=milestones)
    assert [m.name for m in opportunity.milestones] == ["Discovery sign-off", "Go-live", "Hypercare"]
    assert [m.amount for m in opportunity.milestones] == [None, None, None]
    assert opportunity.milestones[1].due_date == dt.date(2026, 6, 30)


def test_rate_card_lines_carry_their_own_currency_or_the_deals() -> None:
    lines = decode_query_page(RATE_CARD_JSON, SalesforceRateCardLine).records
    opportunity = opportunity_from_record(_won_deal(), rate_card=lines)
    # A line without a rate or a role sells nothing and is left out.
    assert opportunity.rate_card == [
        RateCardLine(role="Engagement Manager", rate=Money(amount=Decimal("245.00"), currency="USD")),
        RateCardLine(role="Senior Consultant", rate=Money(amount=Decimal("185.50"), currency="USD")),
        RateCardLine(role="Offshore Developer", rate=Money(amount=Decimal("62.25"), currency="EUR")),
    ]


def test_a_rate_with_no_currency_anywhere_is_left_out() -> None:
    lines = decode_query_page(RATE_CARD_JSON, SalesforceRateCardLine).records
    opportunity = opportunity_from_record(_won_deal(currency=None), rate_card=lines)
    assert [line.role for line in opportunity.rate_card] == ["Engagement Manager", "Offshore Developer"]


def test_a_milestone_without_a_name_does_not_decode() -> None:
    body = MILESTONES_JSON.replace(b'"Name": "Go-live", ', b"")
    with pytest.raises(msgspec.ValidationError):
        decode_query_page(body, SalesforceMilestone)


# --- contacts ------------------------------------------------------------------------------------------


def test_contact_maps_to_contact() -> None:
    body = b"""{"totalSize": 1, "done": true, "records": [{
      "attributes": {"type": "Contact"}, "Id": "003Dn00000Kx1AbIAJ", "AccountId": "001Dn000005uXjzIAE",
      "FirstName": "Dana", "LastName": "Whitfield", "Email": "dana.whitfield@northwind-health.example",
      "Phone": "+1 212 555 0142", "Title": "VP Finance", "MailingCity": "New York"}]}"""
    [record] = decode_query_page(body, SalesforceContact).records
    assert contact_from_record(record) == Contact(
        id="003Dn00000Kx1AbIAJ",
        customer_id="001Dn000005uXjzIAE",
        first_name="Dana",
        last_name="Whitfield",
        email="dana.whitfield@northwind-health.example",
        phone="+1 212 555 0142",
        title="VP Finance",
        system_ids=SystemIds(crm="003Dn00000Kx1AbIAJ"),
    )


def test_a_contact_with_only_a_last_name() -> None:
    body = msgspec.json.encode(
        {"Id": "003Dn00000Kx1AcIAJ", "LastName": "Okafor", "FirstName": "", "Email": None}
    )
    contact = contact_from_record(msgspec.json.decode(body, type=SalesforceContact))
    assert (contact.first_name, contact.last_name, contact.email, contact.customer_id) == (
        None,
        "Okafor",
        None,
        None,
    )


# --- activation written back ---------------------------------------------------------------------------


def test_every_activation_status_has_its_documented_picklist_value() -> None:
    assert dict(ACTIVATION_STATUS_PICKLIST) == {
        ActivationStatus.NOT_STARTED: "Not Started",
        ActivationStatus.IN_PROGRESS: "In Progress",
        ActivationStatus.ACTIVATED: "Activated",
        ActivationStatus.BLOCKED: "Blocked",
        ActivationStatus.CANCELLED: "Cancelled",
    }


@pytest.mark.parametrize("status", list(ActivationStatus))
def test_an_activation_status_written_reads_back_as_itself(status: ActivationStatus) -> None:
    written = activation_update_body(OpportunityActivationUpdate(activation_status=status))
    assert activation_status_from_picklist(written["Activation_Status__c"]) == status


@pytest.mark.parametrize(
    ("picklist", "canonical"),
    [
        ("In Progress", "in_progress"),
        ("in progress", "in_progress"),
        ("Not started", "not_started"),
        ("Awaiting PMO review", "Awaiting PMO review"),  # an org's own value is kept, not lost
        ("", None),
        (None, None),
    ],
)
def test_activation_status_picklist(picklist: str | None, canonical: str | None) -> None:
    assert activation_status_from_picklist(picklist) == canonical


def test_an_activation_update_sends_the_status_and_only_the_ids_given() -> None:
    assert activation_update_body(
        OpportunityActivationUpdate(activation_status=ActivationStatus.BLOCKED)
    ) == {"Activation_Status__c": "Blocked"}
    update = OpportunityActivationUpdate(
        activation_status=ActivationStatus.ACTIVATED,
        psa_project_id="4417",
        erp_project_id="JOB-7731",
        erp_customer_id="CUST-118",
    )
    assert activation_update_body(update) == {
        "Activation_Status__c": "Activated",
        "Project_Id__c": "4417",
        "ERP_Project_Id__c": "JOB-7731",
        "ERP_Customer_Id__c": "CUST-118",
    }
    partial = OpportunityActivationUpdate(
        activation_status=ActivationStatus.IN_PROGRESS, psa_project_id="4417"
    )
    assert activation_update_body(partial) == {"Activation_Status__c": "In Progress", "Project_Id__c": "4417"}


def test_a_milestone_in_its_own_currency() -> None:
    body = MILESTONES_JSON.replace(
        b'"Due_Date__c": "2026-06-30"}', b'"Due_Date__c": "2026-06-30", "CurrencyIsoCode": "GBP"}'
    )
    milestones = decode_query_page(body, SalesforceMilestone).records
    amounts = [m.amount for m in opportunity_from_record(_won_deal(), milestones=milestones).milestones]
    assert [a.currency if a else None for a in amounts] == ["USD", "GBP", None]


@pytest.mark.parametrize(
    ("unit", "rate", "expected", "canonical_unit"),
    [
        (None, "185.0", "185.00", RateUnit.HOUR),
        ("Hour", "185.0", "185.00", RateUnit.HOUR),
        ("hour", "62.255", "62.26", RateUnit.HOUR),
        ("Day", "1480.0", "1480.00", RateUnit.DAY),
        ("Day", "950.5", "950.50", RateUnit.DAY),
    ],
)
def test_rate_card_rates_keep_the_unit_they_were_sold_in(
    unit: str | None, rate: str, expected: str, canonical_unit: RateUnit
) -> None:
    line = msgspec.json.decode(
        f'{{"Id": "a02Dn000001AAAAIA1", "Role__c": "Consultant", "Rate__c": {rate}, "Unit__c": '
        f'{msgspec.json.encode(unit).decode()}, "CurrencyIsoCode": "EUR"}}',
        type=SalesforceRateCardLine,
    )
    [converted] = opportunity_from_record(_won_deal(), rate_card=[line]).rate_card
    assert converted.rate == Money(amount=Decimal(expected), currency="EUR")
    assert str(converted.rate.amount) == expected
    assert converted.unit is canonical_unit


def test_a_rate_in_a_unit_the_rate_card_cannot_say_is_left_out() -> None:
    line = SalesforceRateCardLine(id="a02Dn000001AAAAIA1", role="Consultant", rate=Decimal(5000), unit="Week")
    assert rate_card_line_from_record(line, "USD") is None
