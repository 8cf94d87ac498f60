"""Certinia PSA's objects in the Salesforce sandbox: more objects of the same org (same OAuth, REST, SOQL).

Names are the managed package's (namespace ``pse__``), as Certinia's data dictionary (help.certinia.com,
TechnicalReference, ProfessionalServicesAutomation/Schema) and real PSA orgs' schemas show them: e.g. the
Fivetran staging models of github.com/elastic/dbt-sources (models/stage/stg_salesforce/
stg_salesforce__pse_timecard_c.sql, ..._pse_billing_event_item_c.sql, ..._pse_expense_c.sql,
..._pse_billing_event_c.sql, ..._pse_milestone_c.sql) and github.com/sirhcrd/sirhcrd.github.io
(schema-intel/data/tables/pse_timecard_header_c.md). The Salesforce behaviour each test leans on is named in
the test: REST API Developer Guide resources ("sObject Describe", "Insert or Update (Upsert) a Record Using
an External ID", "Query"), and the SOQL and SOSL Reference ("Relationship Queries").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import requests
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandboxes.persistence import SandboxStore, persist_sandbox
from sandboxes.salesforce import create_salesforce_sandbox
from sandboxes.salesforce.data import (
    CERTINIA_SCHEMAS,
    DEMO_ACCOUNT_ID,
    PSE_APPROVED_MILESTONE_ID,
    PSE_DAY_HOURS_FIELDS,
    PSE_NON_BILLABLE_TIMECARD_ID,
    PSE_PROJECT_IDS,
    PSE_RESOURCE_IDS,
    PSE_UNAPPROVED_TIMECARD_ID,
    READY_OPPORTUNITY_ID,
    SCHEMAS,
    build_seed,
)
from tests.sandboxes.test_salesforce_client_fidelity import (  # noqa: F401 - fixtures used by name
    client_credentials,
    error_body,
    server,
    session,
)
from tests.sandboxes.test_salesforce_sandbox import DATA, Org, assert_error, org

CERTINIA_OBJECTS = {
    "pse__Proj__c": "a0P",
    "pse__Milestone__c": "a0Q",
    "pse__Resource_Request__c": "a0R",
    "pse__Timecard_Header__c": "a0S",
    "pse__Timecard__c": "a0T",
    "pse__Expense__c": "a0U",
    "pse__Billing_Event__c": "a0V",
    "pse__Billing_Event_Item__c": "a0W",
    "pse__Rate_Card__c": "a0X",
    "pse__Assignment__c": "a0Y",
}
NORTHWIND_PROJECT = PSE_PROJECT_IDS[0]
SEED = build_seed(42)


async def upsert(sf: Org, sobject: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return await sf.api("PATCH", f"{DATA}/sobjects/{sobject}/Stratum_Key__c/{key}", json=body)


async def read(sf: Org, sobject: str, record_id: str) -> dict[str, Any]:
    response = await sf.api("GET", f"{DATA}/sobjects/{sobject}/{record_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def records(sf: Org, soql: str) -> list[dict[str, Any]]:
    response = await sf.query(soql)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def approved_billable_split() -> dict[str, Any]:
    """A seeded timecard split whose header is approved and billable (Northwind, 275 an hour)."""
    return next(
        split
        for split in SEED["pse__Timecard__c"].values()
        if split["pse__Project__c"] == NORTHWIND_PROJECT and split["pse__Bill_Rate__c"] == 275.0
    )


@asynccontextmanager
async def billing_event(sf: Org, key: str = "BE-KEY-1") -> AsyncIterator[tuple[str, str, str]]:
    """A billing event with two items, the first billing a seeded split: (event, item, split) ids."""
    split = approved_billable_split()
    created = await upsert(
        sf, "pse__Billing_Event__c", key, {"pse__Project__c": NORTHWIND_PROJECT, "pse__Date__c": "2026-03-02"}
    )
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    first = await upsert(
        sf,
        "pse__Billing_Event_Item__c",
        f"{key}-1",
        {
            "pse__Billing_Event__c": event_id,
            "pse__Project__c": NORTHWIND_PROJECT,
            "pse__Category__c": "Timecard",
            "pse__Object_Id__c": split["Id"],
            "pse__Timecard_Split__c": split["Id"],
            "pse__Amount__c": 9350.0,
            "pse__Quantity__c": 34.0,
            "pse__Unit_Price__c": 275.0,
        },
    )
    assert first.status_code == 201, first.text
    second = await upsert(
        sf,
        "pse__Billing_Event_Item__c",
        f"{key}-2",
        {
            "pse__Billing_Event__c": event_id,
            "pse__Category__c": "Miscellaneous Adjustment",
            "pse__Amount__c": 0.35,
        },
    )
    assert second.status_code == 201, second.text
    item_id = first.json()["id"]
    linked = await sf.api(
        "PATCH",
        f"{DATA}/sobjects/pse__Timecard__c/{split['Id']}",
        json={"pse__Billing_Event_Item__c": item_id},
    )
    assert linked.status_code == 204, linked.text
    yield event_id, item_id, split["Id"]


# ---------------------------------------------------------------------------------------------------------
# Describe
# ---------------------------------------------------------------------------------------------------------


async def test_describe_global_lists_the_certinia_objects_with_org_assigned_key_prefixes() -> None:
    # REST API Developer Guide, "Describe Global": every object of the org, managed packages' included;
    # a package's custom objects get key prefixes assigned in each org (these are the sandbox's).
    async with org() as sf:
        response = await sf.api("GET", f"{DATA}/sobjects/")
    assert response.status_code == 200
    prefixes = {entry["name"]: entry["keyPrefix"] for entry in response.json()["sobjects"]}
    assert {name: prefixes.get(name) for name in CERTINIA_OBJECTS} == CERTINIA_OBJECTS
    assert len(set(prefixes.values())) == len(prefixes)  # no prefix is shared


async def test_describe_certinia_fields_formulas_external_ids_and_relationships() -> None:
    # REST API Developer Guide, "sObject Describe": calculated (formula) fields are neither createable nor
    # updateable; an External ID field is idLookup; childRelationships name what subqueries select FROM.
    async with org() as sf:
        event = (await sf.api("GET", f"{DATA}/sobjects/pse__Billing_Event__c/describe/")).json()
        project = (await sf.api("GET", f"{DATA}/sobjects/pse__Proj__c/describe/")).json()
        split = (await sf.api("GET", f"{DATA}/sobjects/pse__Timecard__c/describe/")).json()
    fields = {field["name"]: field for field in event["fields"]}
    summary = fields["pse__Summary_Amount__c"]
    assert (summary["calculated"], summary["createable"], summary["updateable"], summary["type"]) == (
        True,
        False,
        False,
        "currency",
    )
    key = fields["Stratum_Key__c"]
    assert (key["externalId"], key["unique"], key["idLookup"], key["length"], key["custom"]) == (
        True,
        True,
        True,
        80,
        True,
    )
    assert fields["Name"]["autoNumber"] is True
    assert fields["Name"]["createable"] is False
    status = fields["Stratum_Status__c"]
    assert status["restrictedPicklist"] is True
    assert [value["value"] for value in status["picklistValues"]] == ["Draft", "Issued", "Cancelled"]
    assert fields["Stratum_Payment_Ids__c"]["length"] == 32768
    assert fields["pse__Project__c"]["relationshipName"] == "pse__Project__r"
    assert fields["pse__Project__c"]["referenceTo"] == ["pse__Proj__c"]
    children = {child["relationshipName"]: child for child in event["childRelationships"]}
    assert children["pse__Billing_Event_Items__r"]["childSObject"] == "pse__Billing_Event_Item__c"
    assert children["pse__Billing_Event_Items__r"]["cascadeDelete"] is True
    project_children = {child["relationshipName"] for child in project["childRelationships"]}
    assert {"pse__Milestones__r", "pse__Timecards__r", "pse__Expenses__r", "pse__Billing_Events__r"} <= (
        project_children
    )
    assert (split["label"], project["label"]) == ("Timecard Split", "Project")
    split_fields = {field["name"]: field for field in split["fields"]}
    assert split_fields["pse__Invoiced__c"]["calculated"] is True
    assert split_fields["pse__Billing_Event_Invoiced__c"]["calculated"] is True
    # Picklists of the package are unrestricted (org-configurable), their values still described.
    stage = {field["name"]: field for field in project["fields"]}["pse__Stage__c"]
    assert stage["restrictedPicklist"] is False
    assert "In Progress" in [value["value"] for value in stage["picklistValues"]]


def test_every_contract_field_is_in_the_schemas() -> None:
    # The field contract (Certinia's data dictionary names): checked here so a rename cannot slip through.
    expected = {
        "pse__Proj__c": "Name pse__Account__c pse__Opportunity__c pse__Billing_Type__c pse__Start_Date__c "
        "pse__End_Date__c pse__Is_Active__c pse__Is_Billable__c pse__Stage__c pse__Closed_for_Time_Entry__c "
        "pse__Closed_for_Expense_Entry__c pse__Project_Manager__c pse__Description__c Stratum_Key__c",
        "pse__Milestone__c": "Name pse__Project__c pse__Milestone_Amount__c pse__Target_Date__c "
        "pse__Actual_Date__c pse__Status__c pse__Approved__c pse__Billed__c pse__Invoiced__c "
        "pse__Invoice_Number__c pse__Invoice_Date__c pse__Billing_Event_Item__c Stratum_Key__c",
        "pse__Resource_Request__c": "Name pse__Project__c pse__Resource_Role__c pse__Start_Date__c "
        "pse__End_Date__c pse__SOW_Hours__c pse__Requested_Bill_Rate__c pse__Status__c pse__Notes__c "
        "Stratum_Key__c",
        "pse__Timecard_Header__c": "Name pse__Project__c pse__Resource__c pse__Milestone__c "
        "pse__Start_Date__c pse__End_Date__c pse__Status__c pse__Approved__c pse__Billable__c "
        f"{' '.join(PSE_DAY_HOURS_FIELDS)} pse__Total_Hours__c pse__Bill_Rate__c pse__Notes__c",
        "pse__Timecard__c": "Name pse__Timecard_Header__c pse__Project__c pse__Resource__c "
        "pse__Start_Date__c pse__End_Date__c pse__Total_Hours__c pse__Billable__c pse__Status__c "
        "pse__Bill_Rate__c pse__Total_Billable_Amount__c pse__Billed__c pse__Invoiced__c "
        "pse__Invoice_Number__c pse__Invoice_Date__c pse__Billing_Event_Item__c",
        "pse__Expense__c": "Name pse__Project__c pse__Resource__c pse__Expense_Date__c pse__Type__c "
        "pse__Amount__c pse__Billable__c pse__Billable_Amount__c pse__Status__c pse__Approved__c "
        "pse__Billed__c pse__Invoiced__c pse__Invoice_Number__c pse__Invoice_Date__c "
        "pse__Billing_Event_Item__c pse__Description__c",
        "pse__Billing_Event__c": "Name pse__Project__c pse__Date__c pse__Summary_Amount__c "
        "pse__Is_Released__c pse__Invoiced__c pse__Invoice_Number__c pse__Invoice_Date__c pse__Event_Key__c "
        "Stratum_Key__c Stratum_Status__c Stratum_ERP_Invoice_Id__c Stratum_Paid_Amount__c "
        "Stratum_Payment_Ids__c",
        "pse__Billing_Event_Item__c": "Name pse__Billing_Event__c pse__Project__c pse__Category__c "
        "pse__Object_Id__c pse__Timecard_Split__c pse__Expense__c pse__Milestone__c pse__Amount__c "
        "pse__Quantity__c pse__Unit_Price__c pse__Date__c pse__Description__c Stratum_Key__c",
        "pse__Rate_Card__c": "pse__Role__c pse__Suggested_Bill_Rate__c pse__Account__c",
    }
    for sobject, names in expected.items():
        schema = SCHEMAS[sobject]
        missing = [
            name for name in names.split() if schema.field(name) is None or schema.field(name).name != name
        ]
        assert missing == [], sobject
        system = {"Id", "CurrencyIsoCode", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"}
        assert system <= {spec.name for spec in schema.fields}
    # Only the master-detail child has no owner of its own.
    owned = {schema.name for schema in CERTINIA_SCHEMAS if schema.field("OwnerId") is not None}
    assert owned == set(CERTINIA_OBJECTS) - {"pse__Billing_Event_Item__c"}


# ---------------------------------------------------------------------------------------------------------
# Upsert by the org's external id
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sobject", "body"),
    [
        ("pse__Proj__c", {"Name": "Stratum - Data Platform", "pse__Account__c": DEMO_ACCOUNT_ID}),
        ("pse__Milestone__c", {"Name": "Kick-off", "pse__Project__c": NORTHWIND_PROJECT}),
        ("pse__Resource_Request__c", {"pse__Project__c": NORTHWIND_PROJECT, "pse__SOW_Hours__c": 80.0}),
        ("pse__Billing_Event__c", {"pse__Project__c": NORTHWIND_PROJECT, "pse__Date__c": "2026-03-31"}),
    ],
)
async def test_upsert_by_stratum_key_creates_then_updates_and_never_duplicates(
    sobject: str, body: dict[str, Any]
) -> None:
    # REST API Developer Guide, "Insert or Update (Upsert) a Record Using an External ID": 201 with
    # created true when no record has the value, 200 with created false when one does; the External ID is
    # case-insensitive, so the key in another case updates the same record.
    async with org() as sf:
        first = await upsert(sf, sobject, "STR-42", body)
        assert first.status_code == 201, first.text
        assert first.json()["created"] is True
        assert first.headers["location"] == f"{DATA}/sobjects/{sobject}/{first.json()['id']}"
        retried = await upsert(sf, sobject, "STR-42", body)
        other_case = await upsert(sf, sobject, "str-42", {})
        found = await records(
            sf, f"SELECT Id, Stratum_Key__c, Name FROM {sobject} WHERE Stratum_Key__c = 'STR-42'"
        )
    assert (retried.status_code, retried.json()["created"]) == (200, False)
    assert retried.json()["id"] == other_case.json()["id"] == first.json()["id"]
    assert [record["Id"] for record in found] == [first.json()["id"]]
    assert found[0]["Stratum_Key__c"] == "STR-42"
    assert found[0]["Name"]  # given, or numbered by the org (auto-number)


async def test_auto_numbered_names_continue_from_the_seed() -> None:
    # An auto-number field is set by the org on insert (RR-{000000}, TC-{000000}, BE-{000000}).
    async with org() as sf:
        request = await upsert(
            sf, "pse__Resource_Request__c", "RR-NEW", {"pse__Project__c": NORTHWIND_PROJECT}
        )
        event = await upsert(sf, "pse__Billing_Event__c", "BE-NEW", {"pse__Project__c": NORTHWIND_PROJECT})
        header = await sf.api(
            "POST",
            f"{DATA}/sobjects/pse__Timecard_Header__c/",
            json={"pse__Project__c": NORTHWIND_PROJECT, "pse__Resource__c": PSE_RESOURCE_IDS[0]},
        )
        names = [
            (await read(sf, sobject, response.json()["id"]))["Name"]
            for sobject, response in (
                ("pse__Resource_Request__c", request),
                ("pse__Billing_Event__c", event),
                ("pse__Timecard_Header__c", header),
            )
        ]
        refused = await upsert(sf, "pse__Billing_Event__c", "BE-NAMED", {"Name": "BE-999999"})
    assert names == [
        f"RR-{len(SEED['pse__Resource_Request__c']) + 1:06d}",
        "BE-000001",
        f"TC-{len(SEED['pse__Timecard_Header__c']) + 1:06d}",
    ]
    assert_error(refused, 400, "INVALID_FIELD_FOR_INSERT_UPDATE")


async def test_a_billing_event_item_is_a_detail_of_its_event() -> None:
    # Master-detail: the item takes the event's currency, cannot be reparented, goes with the event.
    async with org() as sf, billing_event(sf) as (event_id, item_id, split_id):
        item = await read(sf, "pse__Billing_Event_Item__c", item_id)
        other = await upsert(sf, "pse__Billing_Event__c", "BE-OTHER", {"pse__Project__c": NORTHWIND_PROJECT})
        reparent = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/pse__Billing_Event_Item__c/{item_id}",
            json={"pse__Billing_Event__c": other.json()["id"]},
        )
        missing = await upsert(sf, "pse__Billing_Event_Item__c", "BEI-ORPHAN", {"pse__Amount__c": 1.0})
        deleted = await sf.api("DELETE", f"{DATA}/sobjects/pse__Billing_Event__c/{event_id}")
        gone = await sf.api("GET", f"{DATA}/sobjects/pse__Billing_Event_Item__c/{item_id}")
        split = await read(sf, "pse__Timecard__c", split_id)
    assert (item["CurrencyIsoCode"], "OwnerId" in item) == ("USD", False)
    assert_error(reparent, 400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    assert_error(missing, 400, "REQUIRED_FIELD_MISSING")
    assert deleted.status_code == 204
    assert_error(gone, 404, "ENTITY_IS_DELETED")
    # The split's lookup to the deleted item is cleared, so it is unbilled again.
    assert (split["pse__Billing_Event_Item__c"], split["pse__Invoiced__c"]) == (None, False)


async def test_stratum_status_is_a_restricted_picklist() -> None:
    # A restricted picklist refuses values it does not list (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST);
    # the package's own picklists are unrestricted and take an org's own values.
    async with org() as sf:
        bad = await upsert(
            sf,
            "pse__Billing_Event__c",
            "BE-X",
            {"pse__Project__c": NORTHWIND_PROJECT, "Stratum_Status__c": "Paid"},
        )
        good = await upsert(
            sf,
            "pse__Billing_Event__c",
            "BE-X",
            {
                "pse__Project__c": NORTHWIND_PROJECT,
                "Stratum_Status__c": "Issued",
                "Stratum_Paid_Amount__c": 10.5,
            },
        )
        own_value = await upsert(sf, "pse__Proj__c", "P-X", {"Name": "Own stage", "pse__Stage__c": "On Hold"})
    assert_error(bad, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert good.status_code == 201, good.text
    assert own_value.status_code == 201, own_value.text


# ---------------------------------------------------------------------------------------------------------
# Formula fields
# ---------------------------------------------------------------------------------------------------------


async def test_formula_fields_follow_the_billing_event_and_the_day_hours() -> None:
    # Certinia: "Invoicing always occurs at the billing event level"; the source records' invoiced flag and
    # the event's summary amount follow from the event and its items (the field contract's formulas).
    async with org() as sf, billing_event(sf) as (event_id, item_id, split_id):
        before = await read(sf, "pse__Billing_Event__c", event_id)
        split_before = await read(sf, "pse__Timecard__c", split_id)
        invoiced = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/pse__Billing_Event__c/{event_id}",
            json={
                "pse__Invoiced__c": True,
                "pse__Invoice_Number__c": "INV-0042",
                "pse__Invoice_Date__c": "2026-03-05",
            },
        )
        split_after = await read(sf, "pse__Timecard__c", split_id)
        item_after = await read(sf, "pse__Billing_Event_Item__c", item_id)
        more = await sf.api(
            "PATCH", f"{DATA}/sobjects/pse__Billing_Event_Item__c/{item_id}", json={"pse__Amount__c": 9625.0}
        )
        after = await read(sf, "pse__Billing_Event__c", event_id)
        header_id = SEED["pse__Timecard__c"][split_id]["pse__Timecard_Header__c"]
        header_before = await read(sf, "pse__Timecard_Header__c", header_id)
        saturday = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/pse__Timecard_Header__c/{header_id}",
            json={"pse__Saturday_Hours__c": 2.25},
        )
        header_after = await read(sf, "pse__Timecard_Header__c", header_id)
    assert before["pse__Summary_Amount__c"] == 9350.35
    assert (split_before["pse__Invoiced__c"], split_before["pse__Billing_Event_Invoiced__c"]) == (
        False,
        False,
    )
    assert invoiced.status_code == 204
    assert (split_after["pse__Invoiced__c"], split_after["pse__Billing_Event_Invoiced__c"]) == (True, True)
    assert item_after["pse__Invoiced__c"] is True
    # A formula changing does not modify the record that shows it.
    assert split_after["LastModifiedDate"] == split_before["LastModifiedDate"]
    assert more.status_code == 204
    assert after["pse__Summary_Amount__c"] == 9625.35
    assert header_before["pse__Total_Hours__c"] == 34.0
    assert saturday.status_code == 204
    assert header_after["pse__Total_Hours__c"] == 36.25


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "pse__Timecard__c/{split}", {"pse__Invoiced__c": True}, "pse__Invoiced__c"),
        ("PATCH", "pse__Expense__c/{expense}", {"pse__Invoiced__c": False}, "pse__Invoiced__c"),
        ("PATCH", "pse__Milestone__c/{milestone}", {"pse__Invoiced__c": True}, "pse__Invoiced__c"),
        (
            "POST",
            "pse__Timecard_Header__c/",
            {"pse__Project__c": "{project}", "pse__Resource__c": "{resource}", "pse__Total_Hours__c": 40},
            "pse__Total_Hours__c",
        ),
        (
            "PATCH",
            "pse__Billing_Event__c/Stratum_Key__c/BE-F",
            {"pse__Project__c": "{project}", "pse__Summary_Amount__c": 100.0},
            "pse__Summary_Amount__c",
        ),
    ],
)
async def test_a_write_to_a_formula_field_is_invalid_field_for_insert_update(
    method: str, path: str, body: dict[str, Any], field: str
) -> None:
    # Salesforce refuses a value for a calculated field: INVALID_FIELD_FOR_INSERT_UPDATE naming the field.
    ids = {
        "split": approved_billable_split()["Id"],
        "expense": next(iter(SEED["pse__Expense__c"])),
        "milestone": PSE_APPROVED_MILESTONE_ID,
        "project": NORTHWIND_PROJECT,
        "resource": PSE_RESOURCE_IDS[0],
    }
    filled = {name: value.format(**ids) if isinstance(value, str) else value for name, value in body.items()}
    async with org() as sf:
        response = await sf.api(method, f"{DATA}/sobjects/{path.format(**ids)}", json=filled)
    error = assert_error(response, 400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    assert error["fields"] == [field]


async def test_soql_filters_on_formula_fields() -> None:
    # SOQL and SOSL Reference, "WHERE": formula fields are filterable like stored ones.
    async with org() as sf, billing_event(sf) as (event_id, _item_id, split_id):
        await sf.api(
            "PATCH", f"{DATA}/sobjects/pse__Billing_Event__c/{event_id}", json={"pse__Invoiced__c": True}
        )
        uninvoiced = await records(sf, "SELECT Id FROM pse__Timecard__c WHERE pse__Invoiced__c = false")
        invoiced = await records(sf, "SELECT Id FROM pse__Timecard__c WHERE pse__Invoiced__c = true")
        big = await records(sf, "SELECT Id FROM pse__Billing_Event__c WHERE pse__Summary_Amount__c > 9000")
        long_weeks = await records(
            sf, "SELECT Id FROM pse__Timecard_Header__c WHERE pse__Total_Hours__c >= 40 ORDER BY Name"
        )
    assert [record["Id"] for record in invoiced] == [split_id]
    assert split_id not in {record["Id"] for record in uninvoiced}
    assert len(uninvoiced) == len(SEED["pse__Timecard__c"]) - 1
    assert [record["Id"] for record in big] == [event_id]
    expected = sorted(
        (header["Name"], header["Id"])
        for header in SEED["pse__Timecard_Header__c"].values()
        if header["pse__Total_Hours__c"] >= 40
    )
    assert [record["Id"] for record in long_weeks] == [header_id for _name, header_id in expected]


async def test_composite_upserts_an_event_and_its_items_or_nothing() -> None:
    # REST API Developer Guide, "Composite": subrequests reference earlier ones (@{event.id}); with
    # allOrNone a failure rolls every subrequest back, formula values included.
    def request(all_or_none: bool, amount: Any) -> dict[str, Any]:
        base = f"{DATA}/sobjects"
        return {
            "allOrNone": all_or_none,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"{base}/pse__Billing_Event__c/Stratum_Key__c/BE-C",
                    "referenceId": "event",
                    "body": {"pse__Project__c": NORTHWIND_PROJECT},
                },
                {
                    "method": "PATCH",
                    "url": f"{base}/pse__Billing_Event_Item__c/Stratum_Key__c/BE-C-1",
                    "referenceId": "item1",
                    "body": {"pse__Billing_Event__c": "@{event.id}", "pse__Amount__c": 100.0},
                },
                {
                    "method": "PATCH",
                    "url": f"{base}/pse__Billing_Event_Item__c/Stratum_Key__c/BE-C-2",
                    "referenceId": "item2",
                    "body": {"pse__Billing_Event__c": "@{event.id}", "pse__Amount__c": amount},
                },
            ],
        }

    async with org() as sf:
        failed = await sf.api("POST", f"{DATA}/composite", json=request(True, "not a number"))
        after_failure = await records(sf, "SELECT Id FROM pse__Billing_Event__c")
        done = await sf.api("POST", f"{DATA}/composite", json=request(True, 20.25))
        events = await records(sf, "SELECT Id, pse__Summary_Amount__c FROM pse__Billing_Event__c")
    assert failed.status_code == 200
    assert [part["httpStatusCode"] for part in failed.json()["compositeResponse"]][-1] == 400
    assert after_failure == []
    assert [part["httpStatusCode"] for part in done.json()["compositeResponse"]] == [201, 201, 201]
    assert [event["pse__Summary_Amount__c"] for event in events] == [120.25]


# ---------------------------------------------------------------------------------------------------------
# SOQL relationships
# ---------------------------------------------------------------------------------------------------------


async def test_soql_parent_relationships_through_pse_lookups() -> None:
    # SOQL and SOSL Reference, "Relationship Queries": custom lookups are traversed by their __r names.
    soql = (
        "SELECT Id, pse__Total_Hours__c, pse__Project__r.Name, pse__Resource__r.Name, "
        "pse__Timecard_Header__r.pse__Approved__c, pse__Project__r.pse__Account__r.Name "
        "FROM pse__Timecard__c WHERE pse__Timecard_Header__r.pse__Approved__c = true "
        "AND pse__Billable__c = true AND pse__Billing_Event_Item__c = null ORDER BY Name"
    )
    async with org() as sf:
        found = await records(sf, soql)
    headers = SEED["pse__Timecard_Header__c"]
    expected = [
        split["Id"]
        for split in sorted(SEED["pse__Timecard__c"].values(), key=lambda split: split["Name"])
        if headers[split["pse__Timecard_Header__c"]]["pse__Approved__c"] and split["pse__Billable__c"]
    ]
    assert [record["Id"] for record in found] == expected
    assert len(expected) == 4
    first = found[0]
    assert first["pse__Project__r"]["Name"] == "Northwind Health - EHR Integration Phase 2"
    assert first["pse__Project__r"]["pse__Account__r"]["Name"] == "Northwind Health Systems"
    assert first["pse__Resource__r"]["Name"] == "Maya Chen"
    assert first["pse__Timecard_Header__r"]["pse__Approved__c"] is True
    assert first["pse__Project__r"]["attributes"]["type"] == "pse__Proj__c"


async def test_soql_child_subqueries_on_projects_and_billing_events() -> None:
    # SOQL and SOSL Reference, "Relationship Queries": parent-to-child subqueries select FROM the child
    # relationship name (pse__Milestones__r, pse__Billing_Event_Items__r).
    async with org() as sf, billing_event(sf) as (event_id, _item_id, _split_id):
        projects = await records(
            sf,
            "SELECT Name, (SELECT Name, pse__Milestone_Amount__c FROM pse__Milestones__r ORDER BY Name) "
            "FROM pse__Proj__c ORDER BY Name",
        )
        events = await records(
            sf,
            "SELECT Id, pse__Summary_Amount__c, pse__Project__r.Name, "
            "(SELECT pse__Category__c, pse__Amount__c FROM pse__Billing_Event_Items__r "
            "ORDER BY pse__Amount__c DESC) FROM pse__Billing_Event__c",
        )
    by_name = {project["Name"]: project for project in projects}
    initech = by_name["Initech - S/4HANA Readiness Assessment"]["pse__Milestones__r"]
    assert [m["Name"] for m in initech["records"]] == ["Final deliverables accepted", "Mobilisation"]
    assert initech["totalSize"] == 2
    assert by_name["Northwind Health - EHR Integration Phase 2"]["pse__Milestones__r"] is None
    assert [event["Id"] for event in events] == [event_id]
    items = events[0]["pse__Billing_Event_Items__r"]["records"]
    assert [(item["pse__Category__c"], item["pse__Amount__c"]) for item in items] == [
        ("Timecard", 9350.0),
        ("Miscellaneous Adjustment", 0.35),
    ]


# ---------------------------------------------------------------------------------------------------------
# Seed
# ---------------------------------------------------------------------------------------------------------


def test_seed_projects_deliver_won_deals_and_their_work_is_consistent() -> None:
    # The seed the field contract asks for: projects on seeded won deals' accounts, resources as Contacts.
    projects, opportunities = SEED["pse__Proj__c"], SEED["Opportunity"]
    assert list(projects) == list(PSE_PROJECT_IDS)
    for project in projects.values():
        deal = opportunities[project["pse__Opportunity__c"]]
        assert deal["IsWon"] is True
        assert project["pse__Account__c"] == deal["AccountId"]
        assert project["CurrencyIsoCode"] == deal["CurrencyIsoCode"]
    assert projects[NORTHWIND_PROJECT]["pse__Opportunity__c"] == READY_OPPORTUNITY_ID
    contacts = SEED["Contact"]
    assert all(contacts[r]["AccountId"] is None for r in PSE_RESOURCE_IDS)
    headers, splits = SEED["pse__Timecard_Header__c"], SEED["pse__Timecard__c"]
    for header in headers.values():
        assert header["pse__Resource__c"] in PSE_RESOURCE_IDS
        assert header["pse__Total_Hours__c"] == sum(header[day] for day in PSE_DAY_HOURS_FIELDS)
    for split in splits.values():
        header = headers[split["pse__Timecard_Header__c"]]
        assert split["pse__Total_Hours__c"] == header["pse__Total_Hours__c"]
        assert split["pse__Billing_Event_Item__c"] is None  # nothing billed yet
        assert split["pse__Invoiced__c"] is False
    unapproved = headers[PSE_UNAPPROVED_TIMECARD_ID]
    assert (unapproved["pse__Approved__c"], unapproved["pse__Status__c"]) == (False, "Submitted")
    assert [h["Id"] for h in headers.values() if not h["pse__Approved__c"]] == [PSE_UNAPPROVED_TIMECARD_ID]
    assert headers[PSE_NON_BILLABLE_TIMECARD_ID]["pse__Billable__c"] is False
    approved_billable = [h for h in headers.values() if h["pse__Approved__c"] and h["pse__Billable__c"]]
    assert len(approved_billable) == 4
    milestone = SEED["pse__Milestone__c"][PSE_APPROVED_MILESTONE_ID]
    assert (milestone["pse__Approved__c"], milestone["pse__Milestone_Amount__c"]) == (True, 42000.0)
    expenses = SEED["pse__Expense__c"].values()
    assert all(e["pse__Approved__c"] and e["pse__Billable__c"] for e in expenses)
    assert SEED["pse__Billing_Event__c"] == {} == SEED["pse__Billing_Event_Item__c"]
    assert build_seed(7)["pse__Timecard__c"] == splits  # the same for every seed


async def test_the_seeded_timecards_and_expenses_are_readable_over_rest_and_soql() -> None:
    # REST API Developer Guide, "sObject Rows" and "Query".
    expense_id = next(iter(SEED["pse__Expense__c"]))
    async with org() as sf:
        header = await read(sf, "pse__Timecard_Header__c", PSE_UNAPPROVED_TIMECARD_ID)
        expense = await read(sf, "pse__Expense__c", expense_id)
        approved = await records(
            sf,
            "SELECT Id, pse__Amount__c, pse__Billable_Amount__c, CurrencyIsoCode FROM pse__Expense__c "
            "WHERE pse__Approved__c = true AND pse__Billable__c = true AND pse__Billing_Event_Item__c = null",
        )
        count = (await sf.query("SELECT COUNT() FROM pse__Timecard_Header__c")).json()["totalSize"]
    assert header["attributes"]["type"] == "pse__Timecard_Header__c"
    assert header["pse__Approved__c"] is False
    assert (expense["pse__Type__c"], expense["pse__Amount__c"]) == ("Airfare", 412.8)
    assert len(approved) == len(SEED["pse__Expense__c"])
    assert count == len(SEED["pse__Timecard_Header__c"])


async def test_reset_forgets_certinia_writes() -> None:
    async with org() as sf:
        await upsert(sf, "pse__Proj__c", "P-RESET", {"Name": "Gone after reset"})
        assert (await sf.client.post("/__sandbox/reset")).status_code == 204
        sf.token = None  # a reset forgets sessions too
        found = await records(sf, "SELECT Id FROM pse__Proj__c WHERE Stratum_Key__c = 'P-RESET'")
    assert found == []


# ---------------------------------------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------------------------------------


async def test_a_restarted_sandbox_keeps_certinia_records_and_their_numbers(tmp_path: Path) -> None:
    before = persist_sandbox(create_salesforce_sandbox(), tmp_path, "salesforce")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=before), base_url="http://sandbox.test"
    ) as http:
        token = await http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        )
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        path = f"{DATA}/sobjects/pse__Billing_Event__c/Stratum_Key__c"
        first = await http.patch(f"{path}/BE-P1", json={"pse__Project__c": NORTHWIND_PROJECT}, headers=auth)
    assert first.status_code == 201, first.text
    before.state.sandbox_store.release()
    after = persist_sandbox(create_salesforce_sandbox(), tmp_path, "salesforce")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=after), base_url="http://sandbox.test"
    ) as http:
        token = await http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        )
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        again = await http.patch(f"{path}/BE-P1", json={}, headers=auth)
        second = await http.patch(f"{path}/BE-P2", json={"pse__Project__c": NORTHWIND_PROJECT}, headers=auth)
    after.state.sandbox_store.release()
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    records_after = after.state.sandbox.records["pse__Billing_Event__c"]
    assert [records_after[i]["Name"] for i in (first.json()["id"], second.json()["id"])] == [
        "BE-000001",
        "BE-000002",
    ]


def test_state_saved_before_the_package_was_installed_gets_the_certinia_seed(tmp_path: Path) -> None:
    # A data directory written by an older sandbox has no pse__ objects: they start from the seed.
    saved = create_salesforce_sandbox().state.sandbox
    state = msgspec.to_builtins(saved.durable_state())
    for name in CERTINIA_OBJECTS:
        del state["data"]["records"][name]
        del state["data"]["recycle_bin"][name]
        state["data"]["auto_numbers"].pop(name, None)
    store = SandboxStore(tmp_path, "salesforce")
    store.save(msgspec.json.encode(state))
    restored = create_salesforce_sandbox().state.sandbox
    restored.restore_durable_state(store.load(restored.durable_type))
    assert restored.records["pse__Timecard__c"] == SEED["pse__Timecard__c"]
    assert restored.recycle_bin["pse__Timecard__c"] == {}
    assert restored._auto_numbers["pse__Timecard_Header__c"] == len(SEED["pse__Timecard_Header__c"]) + 1


# ---------------------------------------------------------------------------------------------------------
# Assignments: the role a timecard is billed as
# ---------------------------------------------------------------------------------------------------------


async def test_describe_assignment_and_the_role_lookups_on_timecards_and_contacts() -> None:
    # REST API Developer Guide, "sObject Describe". Names as real PSA orgs have them (elastic/dbt-sources,
    # stg_salesforce__pse_assignment_c.sql: pse_project_c, pse_resource_c, pse_role_c, pse_bill_rate_c,
    # pse_status_c; ..._pse_timecard_header_c.sql and ..._pse_timecard_c.sql: pse_assignment_c;
    # ..._contact.sql: pse_resource_role_c).
    async with org() as sf:
        assignment = (await sf.api("GET", f"{DATA}/sobjects/pse__Assignment__c/describe/")).json()
        header = (await sf.api("GET", f"{DATA}/sobjects/pse__Timecard_Header__c/describe/")).json()
        split = (await sf.api("GET", f"{DATA}/sobjects/pse__Timecard__c/describe/")).json()
        contact = (await sf.api("GET", f"{DATA}/sobjects/Contact/describe/")).json()
    fields = {field["name"]: field for field in assignment["fields"]}
    assert {
        "Name",
        "pse__Project__c",
        "pse__Resource__c",
        "pse__Role__c",
        "pse__Bill_Rate__c",
        "pse__Start_Date__c",
        "pse__End_Date__c",
        "pse__Status__c",
        "OwnerId",
    } <= set(fields)
    assert (assignment["label"], assignment["keyPrefix"]) == ("Assignment", "a0Y")
    assert fields["Name"]["autoNumber"] is True
    assert fields["pse__Resource__c"]["referenceTo"] == ["Contact"]
    assert fields["pse__Role__c"]["type"] == "picklist"
    assert fields["pse__Role__c"]["restrictedPicklist"] is False
    assert fields["pse__Bill_Rate__c"]["type"] == "currency"
    for described in (header, split):
        lookup = {field["name"]: field for field in described["fields"]}["pse__Assignment__c"]
        assert (lookup["referenceTo"], lookup["relationshipName"]) == (
            ["pse__Assignment__c"],
            "pse__Assignment__r",
        )
    role = {field["name"]: field for field in contact["fields"]}["pse__Resource_Role__c"]
    assert (role["type"], role["restrictedPicklist"]) == ("picklist", False)
    assert "Senior Consultant" in [value["value"] for value in role["picklistValues"]]


async def test_soql_reads_a_timecards_role_through_its_headers_assignment_and_its_resource() -> None:
    # SOQL and SOSL Reference, "Relationship Queries": up to five levels of parent relationships, so the
    # split reaches its header's assignment's role and its resource's own role in one query.
    soql = (
        "SELECT Id, pse__Project__r.pse__Opportunity__c, "
        "pse__Timecard_Header__r.pse__Assignment__r.pse__Role__c, pse__Resource__r.pse__Resource_Role__c, "
        "pse__Assignment__r.pse__Role__c FROM pse__Timecard__c "
        "WHERE pse__Timecard_Header__r.pse__Approved__c = true AND pse__Billable__c = true ORDER BY Name"
    )
    async with org() as sf:
        found = await records(sf, soql)
        assignments = await records(
            sf, "SELECT Name, pse__Role__c, pse__Resource__r.Name FROM pse__Assignment__c ORDER BY Name"
        )
    assert len(found) == 4
    priced: dict[str, set[str]] = {}
    for line in SEED["Rate_Card_Line__c"].values():
        priced.setdefault(line["Opportunity__c"], set()).add(line["Role__c"])
    for row in found:
        role = row["pse__Timecard_Header__r"]["pse__Assignment__r"]["pse__Role__c"]
        # Every seeded approved, billable split is billed as a role its project's deal's rate card prices.
        assert role in priced[row["pse__Project__r"]["pse__Opportunity__c"]], row
        assert row["pse__Assignment__r"]["pse__Role__c"] == role
        assert row["pse__Resource__r"]["pse__Resource_Role__c"] == role
    assert [(a["Name"], a["pse__Role__c"], a["pse__Resource__r"]["Name"]) for a in assignments] == [
        ("AS-000001", "Engagement Manager", "Maya Chen"),
        ("AS-000002", "Business Analyst", "Ravi Patel"),
        ("AS-000003", "Senior Consultant", "Olivia Grant"),
        ("AS-000004", "Senior Consultant", "Lukas Weber"),
    ]
    # Every seeded timecard header names its resource's assignment to its project.
    headers = SEED["pse__Timecard_Header__c"].values()
    seeded = SEED["pse__Assignment__c"]
    assert all(
        (
            seeded[h["pse__Assignment__c"]]["pse__Project__c"],
            seeded[h["pse__Assignment__c"]]["pse__Resource__c"],
        )
        == (h["pse__Project__c"], h["pse__Resource__c"])
        for h in headers
    )
    assert all(SEED["Contact"][r]["pse__Resource_Role__c"] for r in PSE_RESOURCE_IDS)


# ---------------------------------------------------------------------------------------------------------
# simple-salesforce, unmodified
# ---------------------------------------------------------------------------------------------------------


def test_simple_salesforce_reads_and_writes_the_certinia_objects(session: requests.Session) -> None:  # noqa: F811
    # simple-salesforce (github.com/simple-salesforce/simple-salesforce) names any object by attribute,
    # namespaced package objects included: sf.pse__Proj__c.create/upsert/get_by_custom_id/update/delete.
    sf = client_credentials(session)
    created = sf.pse__Proj__c.create({"Name": "Client-made project", "pse__Account__c": DEMO_ACCOUNT_ID})
    assert created["success"] is True
    assert sf.pse__Proj__c.update(created["id"], {"pse__Stage__c": "Planned"}) == 204
    project = sf.pse__Proj__c.get(created["id"])
    assert (project["Name"], project["pse__Stage__c"]) == ("Client-made project", "Planned")

    assert sf.pse__Billing_Event__c.upsert("Stratum_Key__c/INV-7", {"pse__Project__c": created["id"]}) == 201
    assert sf.pse__Billing_Event__c.upsert("Stratum_Key__c/INV-7", {"Stratum_Status__c": "Draft"}) == 200
    event = sf.pse__Billing_Event__c.get_by_custom_id("Stratum_Key__c", "INV-7")
    assert (event["Stratum_Status__c"], event["pse__Summary_Amount__c"]) == ("Draft", 0.0)
    item = sf.pse__Billing_Event_Item__c.upsert(
        "Stratum_Key__c/INV-7-1",
        {"pse__Billing_Event__c": event["Id"], "pse__Category__c": "Expense", "pse__Amount__c": 125.5},
        raw_response=True,
    )
    assert (item.status_code, item.json()["created"]) == (201, True)

    result = sf.query(
        "SELECT Id, pse__Summary_Amount__c, pse__Project__r.Name, "
        "(SELECT pse__Amount__c FROM pse__Billing_Event_Items__r) "
        f"FROM pse__Billing_Event__c WHERE Id = '{event['Id']}'"
    )
    assert result["totalSize"] == 1
    row = result["records"][0]
    assert row["pse__Summary_Amount__c"] == 125.5
    assert row["pse__Project__r"]["Name"] == "Client-made project"
    assert [i["pse__Amount__c"] for i in row["pse__Billing_Event_Items__r"]["records"]] == [125.5]

    timecards = sf.query_all(
        "SELECT Id, pse__Total_Hours__c FROM pse__Timecard__c "
        "WHERE pse__Invoiced__c = false AND pse__Billable__c = true"
    )
    assert timecards["totalSize"] == sum(
        1 for s in SEED["pse__Timecard__c"].values() if s["pse__Billable__c"]
    )

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.pse__Billing_Event__c.update(event["Id"], {"pse__Summary_Amount__c": 1.0})
    assert error_body(caught.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    described = sf.pse__Timecard_Header__c.describe()
    assert {"pse__Total_Hours__c", "pse__Monday_Hours__c"} <= {f["name"] for f in described["fields"]}

    assert sf.pse__Billing_Event__c.delete(event["Id"]) == 204
    assert (
        sf.query(
            f"SELECT COUNT() FROM pse__Billing_Event_Item__c WHERE pse__Billing_Event__c = '{event['Id']}'"
        )["totalSize"]
        == 0
    )
    assert sf.pse__Proj__c.delete(created["id"]) == 204


def test_simple_salesforce_books_an_assignment_and_reads_its_role_through_a_timecard(
    session: requests.Session,  # noqa: F811
) -> None:
    # simple-salesforce names the package's assignment object by attribute as any other.
    sf = client_credentials(session)
    northwind, resource = NORTHWIND_PROJECT, PSE_RESOURCE_IDS[1]
    made = sf.pse__Assignment__c.create(
        {
            "pse__Project__c": northwind,
            "pse__Resource__c": resource,
            "pse__Role__c": "Consultant",
            "pse__Bill_Rate__c": 165.0,
            "pse__Status__c": "Scheduled",
        }
    )
    assert made["success"] is True
    assignment = sf.pse__Assignment__c.get(made["id"])
    assert (assignment["Name"], assignment["pse__Role__c"]) == ("AS-000005", "Consultant")
    header = sf.pse__Timecard_Header__c.create(
        {
            "pse__Project__c": northwind,
            "pse__Resource__c": resource,
            "pse__Assignment__c": made["id"],
            "pse__Start_Date__c": "2026-03-02",
            "pse__Monday_Hours__c": 4.0,
        }
    )
    split = sf.pse__Timecard__c.create({"pse__Timecard_Header__c": header["id"], "pse__Total_Hours__c": 4.0})
    row = sf.query(
        "SELECT pse__Timecard_Header__r.pse__Assignment__r.pse__Role__c, "
        f"pse__Resource__r.pse__Resource_Role__c FROM pse__Timecard__c WHERE Id = '{split['id']}'"
    )["records"][0]
    assert row["pse__Timecard_Header__r"]["pse__Assignment__r"]["pse__Role__c"] == "Consultant"
    assert row["pse__Resource__r"] is None  # the split names no resource of its own
    assert sf.pse__Proj__c.delete(northwind) == 204
    assert sf.query(f"SELECT COUNT() FROM pse__Assignment__c WHERE Id = '{made['id']}'")["totalSize"] == 0
