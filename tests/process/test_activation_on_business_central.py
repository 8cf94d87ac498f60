"""A won deal of a legal entity billed from Business Central (DE01, mid-migration) is activated there: the
process tier does not know, or need to know, which ERP serves the entity."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(erp_vendor="netsuite", erp_by_legal_entity={"DE01": "business_central"})
    )


async def test_a_de01_deal_becomes_a_business_central_project_with_its_milestones_drafted(gw: Any) -> None:
    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": READY_FIXED_FEE_OPPORTUNITY_ID},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"},
    )
    run = response.json()
    assert run["state"] == "completed", run
    result = run["result"]
    assert result["erp_customer_id"].startswith("business_central:")
    assert result["erp_project_id"].startswith("business_central:")
    assert result["billing_schedule_id"].startswith("business_central:")
    # Nothing of this deal went to NetSuite.
    assert not [
        j
        for j in gw.sandbox_state("netsuite").records["job"].values()
        if j.get("externalId") == READY_FIXED_FEE_OPPORTUNITY_ID
    ]
    # The fixed fee's milestones wait in Business Central as draft invoices, for the project's customer.
    customer_guid = result["erp_customer_id"].split(":", 1)[1]
    drafts = [
        i
        for i in gw.sandbox_state("business-central").records["salesInvoices"].values()
        if i.get("status") == "Draft" and i.get("customerId") == customer_guid
    ]
    assert len(drafts) >= 1
