"""Activation and billing end to end with both swapped tools at once: Certinia as the PSA (in the CRM's
Salesforce org) and Workday Adaptive Planning as the planning tool, DE01 billed from Business Central.

The process tier does not know which vendors answer. What it promises does not change with them: a deal
activates once, its revenue plan reaches the planning tool, a project-period is invoiced once however many
billing runs ask, at once or again, and whatever answers are lost, and the invoiced revenue reaches the
planning tool as actuals."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID
from tests.process.test_billing_runs import PERIOD, VENDOR, WORKFLOWS
from tests.process.test_certinia_end_to_end import _activate

BILLING = "/process/v1/billing-runs"
FINAL = {"completed", "failed", "cancelled", "parked"}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(
            psa_vendor="certinia",
            fpa_vendor="adaptive",
            workflows=WORKFLOWS,
            netsuite=VENDOR,
            # A lost Salesforce answer is waited out in half a second, then retried.
            certinia={**VENDOR, "retry_max_attempts": 3, "timeout_seconds": 0.5},
            salesforce=VENDOR,
            business_central=VENDOR,
            adaptive=VENDOR,
            erp_vendor="netsuite",
            erp_by_legal_entity={"DE01": "business_central"},
        )
    )


async def _bill(gw: Any, project: str) -> str:
    response = await gw.client.post(
        BILLING,
        json={"legal_entity": "DE01", "period": PERIOD, "project_ids": [project]},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run"]["id"]
    return run_id


async def _child(gw: Any, run_id: str, project: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        view = (await gw.client.get(f"{BILLING}/{run_id}", headers=gw.auth("process:read"))).json()
        children = [r for r in view["projects"] if r["id"] == f"bill-{project}-{PERIOD}"]
        if children and children[0]["state"] in FINAL:
            child: dict[str, Any] = children[0]
            return child
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)


async def _forecast(gw: Any, project: str) -> dict[str, Any]:
    response = await gw.client.get(
        f"/system/v1/fpa/projects/{project}/forecast", headers=gw.auth("system:read")
    )
    assert response.status_code == 200, response.text
    forecast: dict[str, Any] = response.json()
    return forecast


def _events(gw: Any, key: str) -> list[dict[str, Any]]:
    events = gw.sandbox_state("salesforce").records.get("pse__Billing_Event__c", {}).values()
    return [e for e in events if (e.get("Stratum_Key__c") or "").lower() == key.lower()]


def _items(gw: Any, event_id: str) -> list[dict[str, Any]]:
    items = gw.sandbox_state("salesforce").records.get("pse__Billing_Event_Item__c", {}).values()
    return [i for i in items if i["pse__Billing_Event__c"] == event_id]


async def test_a_deal_activates_on_certinia_and_its_plan_reaches_adaptive_in_its_currency(gw: Any) -> None:
    result = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    assert result["fpa"]["published"] is True, result["fpa"]
    forecast = await _forecast(gw, result["erp_project_id"])
    # A DE01 deal sold in EUR: Adaptive keeps it at the level kept in EUR.
    assert forecast["currency"] == "EUR"
    assert forecast["months"]
    assert {m["source"] for m in forecast["months"]} == {"baseline"}
    cells = gw.sandbox_state("adaptive").cells
    levels = {key[2] for key in cells if key[3] == result["erp_project_id"]}
    assert levels == {"Services DE"}
    # Activating again (a redelivered event, a second click) finds the same run and the same project.
    again = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    assert (again["psa_project_id"], again["erp_project_id"]) == (
        result["psa_project_id"],
        result["erp_project_id"],
    )


async def test_billing_runs_started_at_once_and_again_invoice_a_certinia_project_once(gw: Any) -> None:
    activated = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    project = activated["psa_project_id"]
    # Two billing runs of the same project and period at the same instant, then a third after they finish.
    first, second = await asyncio.gather(_bill(gw, project), _bill(gw, project))
    children = [await _child(gw, first, project), await _child(gw, second, project)]
    third = await _child(gw, await _bill(gw, project), project)
    assert {c["state"] for c in [*children, third]} == {"completed"}, children
    assert len({c["result"]["psa_invoice_id"] for c in [*children, third]}) == 1
    key = f"bill:{project}:{PERIOD}"
    (event,) = _events(gw, key)
    assert event["Stratum_Status__c"] == "Issued"
    assert event["Stratum_ERP_Invoice_Id__c"] == third["result"]["erp_invoice_id"]
    sources = [i["pse__Object_Id__c"] for i in _items(gw, event["Id"])]
    assert sources
    assert len(sources) == len(set(sources))
    # The invoiced month reached Adaptive as the project's actual.
    forecast = await _forecast(gw, activated["erp_project_id"])
    actual = [m for m in forecast["months"] if m["source"] == "actual"]
    assert [m["month"] for m in actual] == [PERIOD]


async def test_a_lost_certinia_answer_still_records_one_billing_event_with_each_item_once(gw: Any) -> None:
    activated = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    project = activated["psa_project_id"]
    async with gw.sandbox("salesforce") as salesforce:
        # Salesforce commits the invoice's items and the links from their sources (one composite call), and
        # its answer never arrives: the adapter's retry must find them, not write them again.
        rule = {
            "kind": "lost",
            "method": "POST",
            "path_pattern": "/composite$",
            "latency_ms": 1500,
            "times": 1,
        }
        assert (await salesforce.post("/__sandbox/faults", json=rule)).status_code == 201
    child = await _child(gw, await _bill(gw, project), project)
    assert child["state"] == "completed", child
    async with gw.sandbox("salesforce") as salesforce:
        assert (await salesforce.get("/__sandbox/faults")).json()["faults"] == []  # the answer was lost
    (event,) = _events(gw, f"bill:{project}:{PERIOD}")
    assert event["Id"] == child["result"]["psa_invoice_id"]
    sources = [i["pse__Object_Id__c"] for i in _items(gw, event["Id"])]
    assert sources
    assert len(sources) == len(set(sources))
