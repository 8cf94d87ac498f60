"""Activation and billing end to end with two PSAs side by side (``psa_by_legal_entity``): Kantata delivers
for every legal entity but DE01, which Certinia delivers (in the Salesforce org the CRM reads). The process
tier does not know which PSA answers: a deal's project lands in the PSA of the deal's legal entity, and the
billing run bills a routed project by the id the router handed out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from process_apis.billing_pricing import billing_key
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
from tests.process.test_billing_runs import PERIOD, VENDOR, WORKFLOWS

BILLING = "/process/v1/billing-runs"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(
            psa_vendor="kantata",
            psa_by_legal_entity={"DE01": "certinia"},
            workflows=WORKFLOWS,
            netsuite=VENDOR,
            kantata=VENDOR,
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


async def test_each_deal_is_delivered_in_its_entitys_psa_and_the_routed_one_is_billed(gw: Any) -> None:
    us = (await _activate(gw, READY_OPPORTUNITY_ID))["psa_project_id"]
    de = (await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID))["psa_project_id"]
    assert ":" not in us  # Kantata, the default: its own id
    code, _, own = de.partition(":")
    assert code == "c"
    assert own in gw.sandbox_state("salesforce").records["pse__Proj__c"]

    response = await gw.client.post(
        BILLING,
        json={"legal_entity": "DE01", "period": PERIOD, "project_ids": [de]},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run"]["id"]
    deadline = time.monotonic() + 60
    while True:
        view = (await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))).json()
        children = [r for r in view["projects"] if r["id"] == f"bill-{de}-{PERIOD}"]
        if children and children[0]["state"] in ("completed", "failed", "cancelled", "parked"):
            break
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)
    (child,) = children
    assert child["state"] == "completed", child
    result = child["result"]
    # The PSA invoice is a Certinia billing event, handed out with Certinia's code, under the routed key.
    assert result["psa_invoice_id"].startswith("c:")
    event = gw.sandbox_state("salesforce").records["pse__Billing_Event__c"][result["psa_invoice_id"][2:]]
    assert event["Stratum_Key__c"] == billing_key(de, PERIOD)
    assert event["Stratum_Status__c"] == "Issued"
    assert len(billing_key(de, PERIOD)) <= 35  # Business Central's externalDocumentNumber
