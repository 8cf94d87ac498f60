"""Activation and billing end to end with the PSA served by Certinia (``psa_vendor="certinia"``) in the
Salesforce org the CRM reads: the process tier does not know, or need to know, which PSA answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import (
    PSE_PROJECT_IDS,
    PSE_UNAPPROVED_TIMECARD_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
)
from tests.process.test_billing_runs import PERIOD, VENDOR, WORKFLOWS

BILLING = "/process/v1/billing-runs"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(
            psa_vendor="certinia",
            workflows=WORKFLOWS,
            netsuite=VENDOR,
            certinia=VENDOR,
            salesforce=VENDOR,
            business_central=VENDOR,
            erp_vendor="netsuite",
            erp_by_legal_entity={"DE01": "business_central"},
        )
    )


async def _activate(gw: Any, opportunity_id: str) -> dict[str, Any]:
    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": opportunity_id},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"},
    )
    run: dict[str, Any] = response.json()
    assert run["state"] == "completed", run
    result: dict[str, Any] = run["result"]
    return result


async def test_a_won_deal_is_activated_onto_the_project_certinia_already_has(gw: Any) -> None:
    result = await _activate(gw, READY_OPPORTUNITY_ID)
    # The seed's Certinia project for the deal (made by Certinia's own automation) is adopted, not doubled.
    assert result["psa_project_id"] == PSE_PROJECT_IDS[0]
    projects = gw.sandbox_state("salesforce").records["pse__Proj__c"].values()
    deal_projects = [p for p in projects if p["pse__Opportunity__c"] == READY_OPPORTUNITY_ID]
    assert [p["Stratum_Key__c"] for p in deal_projects] == [READY_OPPORTUNITY_ID]
    again = await _activate(gw, READY_OPPORTUNITY_ID)
    assert again["psa_project_id"] == result["psa_project_id"]


async def _bill(gw: Any, legal_entity: str, project: str) -> dict[str, Any]:
    """Run billing for one project of the period; the project's child run once it settled."""
    response = await gw.client.post(
        BILLING,
        json={"legal_entity": legal_entity, "period": PERIOD, "project_ids": [project]},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run"]["id"]
    deadline = time.monotonic() + 60
    while True:
        view = (await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))).json()
        children = [r for r in view["projects"] if r["id"] == f"bill-{project}-{PERIOD}"]
        if children and children[0]["state"] in ("completed", "failed", "cancelled", "parked"):
            break
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)
    (child,) = children
    return child


async def test_a_billing_run_bills_the_approved_milestone_as_a_certinia_billing_event(gw: Any) -> None:
    project = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    child = await _bill(gw, "DE01", project)
    assert child["state"] == "completed", child
    result = child["result"]
    events = gw.sandbox_state("salesforce").records["pse__Billing_Event__c"]
    event = events[result["psa_invoice_id"]]
    assert event["Stratum_Key__c"] == f"bill:{project}:{PERIOD}"
    assert event["Stratum_Status__c"] == "Issued"
    assert event["Stratum_ERP_Invoice_Id__c"] == result["erp_invoice_id"]
    assert event["pse__Is_Released__c"] is True


async def test_a_time_and_materials_run_prices_certinia_time_by_the_role_of_its_assignment(gw: Any) -> None:
    # Certinia bills a timecard as the role of the assignment (pse__Assignment__c) its header books
    # against; the billing run prices that role from the deal's rate card (Northwind: Engagement Manager
    # 275, Business Analyst 120 an hour), so the seeded approved time is invoiced, not parked rate-missing.
    project = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    assert project == PSE_PROJECT_IDS[0]
    org = gw.sandbox_state("salesforce").records
    headers = org["pse__Timecard_Header__c"]
    billable_splits = {
        split_id
        for split_id, split in org["pse__Timecard__c"].items()
        if split["pse__Project__c"] == project
        and split["pse__Billable__c"]
        and headers[split["pse__Timecard_Header__c"]]["pse__Approved__c"]
    }
    assert len(billable_splits) == 3
    child = await _bill(gw, "US01", project)
    assert child["state"] == "completed", child
    result = child["result"]
    event = org["pse__Billing_Event__c"][result["psa_invoice_id"]]
    assert event["Stratum_Key__c"] == f"bill:{project}:{PERIOD}"
    assert event["Stratum_Status__c"] == "Issued"
    assert event["Stratum_ERP_Invoice_Id__c"] == result["erp_invoice_id"]
    items = [
        i for i in org["pse__Billing_Event_Item__c"].values() if i["pse__Billing_Event__c"] == event["Id"]
    ]
    assert {
        i["pse__Timecard_Split__c"] for i in items if i["pse__Category__c"] == "Timecard"
    } == billable_splits
    # The unapproved timecard stays unbilled.
    unapproved = [
        s
        for s in org["pse__Timecard__c"].values()
        if s["pse__Timecard_Header__c"] == PSE_UNAPPROVED_TIMECARD_ID
    ]
    assert [s["pse__Billing_Event_Item__c"] for s in unapproved] == [None]

    response = await gw.client.get(
        f"/system/v1/erp/invoices/{result['erp_invoice_id']}", headers=gw.auth("system:read")
    )
    assert response.status_code == 200, response.text
    invoice = response.json()
    time_lines = [
        line for line in invoice["lines"] if any(s.startswith("time:") for s in line.get("source_ids", []))
    ]
    # One priced line per role, each tracing to the splits billed as that role.
    assert len(time_lines) == 2
    traced = Counter(s for line in time_lines for s in line["source_ids"])
    assert traced == Counter(f"time:{split}" for split in billable_splits)
    hours = {
        role: sum(
            (
                Decimal(str(org["pse__Timecard__c"][split]["pse__Total_Hours__c"]))
                for split in billable_splits
                if org["pse__Assignment__c"][org["pse__Timecard__c"][split]["pse__Assignment__c"]][
                    "pse__Role__c"
                ]
                == role
            ),
            Decimal(0),
        )
        for role in ("Engagement Manager", "Business Analyst")
    }
    expected = {hours["Engagement Manager"] * 275, hours["Business Analyst"] * 120}
    assert {Decimal(line["amount"]) for line in time_lines} == expected
    assert all(Decimal(line["amount"]) > 0 for line in time_lines)
