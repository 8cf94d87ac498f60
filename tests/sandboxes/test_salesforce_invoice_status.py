"""The sandbox's billing objects as simple-salesforce sees them over real HTTPS: ``Stratum_Invoice__c``
(one record per ERP invoice, VENDORS.md "Billing, payments and change signals"), the opportunity's totals
and deal-term fields.

Wire behaviour cited from the REST API Developer Guide, "Insert or Update (Upsert) a Record Using an
External ID" (201 with ``created: true`` when the upsert created the record, 200 with ``created: false``
when it updated one), and from simple-salesforce's ``SFType.upsert`` (it answers the status code) and
``Salesforce.query`` (simple_salesforce/api.py). The TLS server and client fixtures are the fidelity
test's, imported unchanged.
"""

from __future__ import annotations

from email.utils import format_datetime as format_http_date
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from sandboxes.salesforce.data import (
    DEMO_ACCOUNT_ID,
    INVOICE_STATUSES,
    READY_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
    parse_datetime,
)
from tests.sandboxes import test_salesforce_client_fidelity as fidelity
from tests.sandboxes.test_salesforce_client_fidelity import client_credentials, error_body

# The fidelity test's HTTPS sandbox and the trusting simple-salesforce session, as fixtures of this module.
server = fidelity.server
session = fidelity.session


def _invoice(**fields: Any) -> dict[str, Any]:
    return {
        "Opportunity__c": READY_OPPORTUNITY_ID,
        "Account__c": DEMO_ACCOUNT_ID,
        "Invoice_Number__c": "INV-1001",
        "Status__c": "Open",
        "Total__c": 1000.1,
        "Balance__c": 1000.1,
        "Issue_Date__c": "2026-05-01",
        "Due_Date__c": "2026-05-31",
        "ERP_Updated_At__c": "2026-05-01T12:00:00.000Z",
        "CurrencyIsoCode": "USD",
        **fields,
    }


def test_upsert_by_erp_invoice_id_answers_201_then_200_with_one_record(session: requests.Session) -> None:
    sf = client_credentials(session)
    assert sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/ns-4711", _invoice()) == 201
    assert sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/ns-4711", _invoice(Status__c="Paid")) == 200
    answer = sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/ns-4711", _invoice(), raw_response=True)
    assert answer.status_code == 200
    assert answer.json()["created"] is False

    found = sf.query("SELECT Id, Name, Status__c, Total__c FROM Stratum_Invoice__c")
    assert found["totalSize"] == 1
    [record] = found["records"]
    assert record["Name"] == "SI-000001"  # auto-number
    assert record["Status__c"] == "Open"
    assert record["Total__c"] == 1000.1
    by_key = sf.Stratum_Invoice__c.get_by_custom_id("ERP_Invoice_Id__c", "ns-4711")
    assert by_key["Id"] == record["Id"]
    assert by_key["ERP_Updated_At__c"] == "2026-05-01T12:00:00.000+0000"


def test_the_erp_invoice_id_is_unique(session: requests.Session) -> None:
    sf = client_credentials(session)
    sf.Stratum_Invoice__c.create({**_invoice(), "ERP_Invoice_Id__c": "bc-1"})
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Stratum_Invoice__c.create({**_invoice(), "ERP_Invoice_Id__c": "BC-1"})  # case-insensitively
    assert error_body(raised.value)[0]["errorCode"] == "DUPLICATE_VALUE"


def test_the_status_picklist_is_restricted(session: requests.Session) -> None:
    sf = client_credentials(session)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/x-1", _invoice(Status__c="Settled"))
    assert error_body(raised.value)[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_describe_shows_the_invoice_object_and_the_deal_fields(session: requests.Session) -> None:
    sf = client_credentials(session)
    invoice = {f["name"]: f for f in sf.Stratum_Invoice__c.describe()["fields"]}
    key = invoice["ERP_Invoice_Id__c"]
    assert (key["externalId"], key["unique"], key["length"], key["type"]) == (True, True, 64, "string")
    assert [v["value"] for v in invoice["Status__c"]["picklistValues"]] == list(INVOICE_STATUSES)
    assert invoice["Opportunity__c"]["referenceTo"] == ["Opportunity"]
    assert invoice["Account__c"]["referenceTo"] == ["Account"]
    assert invoice["Total__c"]["type"] == invoice["Balance__c"]["type"] == "currency"
    assert invoice["ERP_Updated_At__c"]["type"] == "datetime"
    opportunity = sf.Opportunity.describe()
    fields = {f["name"]: f for f in opportunity["fields"]}
    assert (
        fields["Retainer_Included_Hours__c"]["precision"],
        fields["Retainer_Included_Hours__c"]["scale"],
    ) == (
        6,
        2,
    )
    assert (fields["Payment_Terms_Days__c"]["precision"], fields["Payment_Terms_Days__c"]["scale"]) == (3, 0)
    for name in ("Retainer_Monthly_Fee__c", "Invoiced_Amount__c", "Paid_Amount__c", "Overdue_Amount__c"):
        assert fields[name]["type"] == "currency"
    children = {c["relationshipName"]: c for c in opportunity["childRelationships"]}
    assert children["Stratum_Invoices__r"]["childSObject"] == "Stratum_Invoice__c"
    assert children["Stratum_Invoices__r"]["cascadeDelete"] is False  # a lookup, not master-detail


def test_a_deals_invoices_by_subquery_and_aggregate(session: requests.Session) -> None:
    sf = client_credentials(session)
    sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/a", _invoice(Total__c=0.1, Balance__c=0.1))
    sf.Stratum_Invoice__c.upsert(
        "ERP_Invoice_Id__c/b", _invoice(Total__c=0.2, Balance__c=0, Status__c="Paid")
    )

    nested = sf.query(
        "SELECT Id, (SELECT ERP_Invoice_Id__c FROM Stratum_Invoices__r ORDER BY ERP_Invoice_Id__c) "
        f"FROM Opportunity WHERE Id = '{READY_OPPORTUNITY_ID}'"
    )
    children = nested["records"][0]["Stratum_Invoices__r"]["records"]
    assert [c["ERP_Invoice_Id__c"] for c in children] == ["a", "b"]

    grouped = sf.query(
        "SELECT SUM(Total__c) total, SUM(Balance__c) balance, COUNT(Id) n FROM Stratum_Invoice__c "
        f"WHERE Opportunity__c = '{READY_OPPORTUNITY_ID}'"
    )
    [row] = grouped["records"]
    assert (row["total"], row["balance"], row["n"]) == (0.3, 0.1, 2)


def test_number_fields_round_to_their_scale_and_refuse_too_many_digits(session: requests.Session) -> None:
    sf = client_credentials(session)
    sf.Opportunity.update(READY_RETAINER_OPPORTUNITY_ID, {"Payment_Terms_Days__c": 30.5})
    assert sf.Opportunity.get(READY_RETAINER_OPPORTUNITY_ID)["Payment_Terms_Days__c"] == 31  # half up
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Opportunity.update(READY_RETAINER_OPPORTUNITY_ID, {"Payment_Terms_Days__c": 1000})
    assert error_body(raised.value)[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_the_retainer_deal_is_seeded_with_its_terms(session: requests.Session) -> None:
    sf = client_credentials(session)
    deal = sf.Opportunity.get(READY_RETAINER_OPPORTUNITY_ID)
    assert deal["Retainer_Monthly_Fee__c"] == 4000
    assert deal["Retainer_Included_Hours__c"] == 20
    assert deal["Payment_Terms_Days__c"] == 15
    assert "Net 15" in deal["Contract_Terms__c"]
    assert deal["Invoiced_Amount__c"] is None


def test_an_update_under_if_unmodified_since_is_refused_412_once_the_record_changed(
    server: fidelity.Server, session: requests.Session
) -> None:
    # REST API Developer Guide, "Conditional Request Headers": If-Unmodified-Since on sObject Rows.
    sf = client_credentials(session)
    sf.Stratum_Invoice__c.upsert("ERP_Invoice_Id__c/c-1", _invoice())
    record = sf.Stratum_Invoice__c.get_by_custom_id("ERP_Invoice_Id__c", "c-1")
    read_at = parse_datetime(record["LastModifiedDate"])
    header = {"If-Unmodified-Since": format_http_date(read_at, usegmt=True)}
    assert sf.Stratum_Invoice__c.update(record["Id"], {"Status__c": "Paid"}, headers=header) == 204

    server.clock.advance(2)  # a later save, in a later second
    sf.Stratum_Invoice__c.update(record["Id"], {"Balance__c": 0})
    with pytest.raises(SalesforceGeneralError) as raised:
        sf.Stratum_Invoice__c.update(record["Id"], {"Status__c": "Open"}, headers=header)
    assert raised.value.status == 412
    assert sf.Stratum_Invoice__c.get(record["Id"])["Status__c"] == "Paid"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Stratum_Invoice__c.update(
            record["Id"], {"Status__c": "Open"}, headers={"If-Unmodified-Since": "soon"}
        )
