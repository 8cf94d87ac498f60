"""Activation and billing end to end with the PSA served by Certinia (``psa_vendor="certinia"``) in the
Salesforce org the CRM reads: the process tier does not know, or need to know, which PSA answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import PSE_PROJECT_IDS, READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
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


async def test_a_billing_run_bills_the_approved_milestone_as_a_certinia_billing_event(gw: Any) -> None:
    project = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    response = await gw.client.post(
        BILLING,
        json={"legal_entity": "DE01", "period": PERIOD, "project_ids": [project]},
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
    assert child["state"] == "completed", child
    result = child["result"]
    events = gw.sandbox_state("salesforce").records["pse__Billing_Event__c"]
    event = events[result["psa_invoice_id"]]
    assert event["Stratum_Key__c"] == f"bill:{project}:{PERIOD}"
    assert event["Stratum_Status__c"] == "Issued"
    assert event["Stratum_ERP_Invoice_Id__c"] == result["erp_invoice_id"]
    assert event["pse__Is_Released__c"] is True
