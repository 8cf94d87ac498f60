"""The deal a PSA project delivers, read by the project id alone (``getCrmOpportunityByProject``): the
deal whose activation wrote that project id back, with its milestones and rate card, against the
Salesforce sandbox through the whole gateway."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_MILESTONE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID

PATH = "/system/v1/crm/opportunities/by-project"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # No retries and no breaker, so a fault is seen at once; the default timeout (a loaded machine).
    fast = {"breaker_failure_threshold": 0, "retry_max_attempts": 1}
    return await make_gateway(make_settings(salesforce=fast))


async def _write_back(gw: Any, opportunity_id: str, project_id: str) -> dict[str, Any]:
    response = await gw.client.patch(
        f"/system/v1/crm/opportunities/{opportunity_id}/activation",
        json={"activation_status": "activated", "psa_project_id": project_id},
        headers={**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text
    written: dict[str, Any] = response.json()
    return written


async def test_the_deal_is_found_by_the_project_its_activation_wrote_back(gw: Any) -> None:
    await _write_back(gw, READY_OPPORTUNITY_ID, "77001")
    await _write_back(gw, READY_MILESTONE_OPPORTUNITY_ID, "77002")
    for deal_id, project_id in ((READY_OPPORTUNITY_ID, "77001"), (READY_MILESTONE_OPPORTUNITY_ID, "77002")):
        found = await gw.client.get(f"{PATH}/{project_id}", headers=gw.auth("system:read"))
        assert found.status_code == 200, found.text
        # The same deal, milestones and rate card included, as reading it by its own id answers.
        by_id = await gw.client.get(f"/system/v1/crm/opportunities/{deal_id}", headers=gw.auth("system:read"))
        assert {**found.json(), "updated_at": None} == {**by_id.json(), "updated_at": None}
        assert found.json()["project_id"] == project_id


async def test_the_milestones_are_the_deals_own(gw: Any) -> None:
    await _write_back(gw, READY_MILESTONE_OPPORTUNITY_ID, "77003")
    found = (await gw.client.get(f"{PATH}/77003", headers=gw.auth("system:read"))).json()
    by_id = (
        await gw.client.get(
            f"/system/v1/crm/opportunities/{READY_MILESTONE_OPPORTUNITY_ID}", headers=gw.auth("system:read")
        )
    ).json()
    assert found["milestones"], "the milestone deal has milestones"
    assert found["milestones"] == by_id["milestones"]


async def test_a_project_no_deal_carries_is_404(gw: Any) -> None:
    response = await gw.client.get(f"{PATH}/no-such-project", headers=gw.auth("system:read"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not-found"


async def test_a_malformed_project_id_is_refused(gw: Any) -> None:
    response = await gw.client.get(f"{PATH}/bad%20id%27", headers=gw.auth("system:read"))
    assert response.status_code in (400, 404, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_another_scope_is_403(gw: Any) -> None:
    response = await gw.client.get(f"{PATH}/77001", headers=gw.auth("experience:delivery"))
    assert response.status_code == 403


async def test_salesforce_down_is_a_503_problem(gw: Any) -> None:
    async with gw.sandbox("salesforce") as salesforce:
        fault = {"kind": "error", "status": 503, "path_pattern": "^/services/data/.*/query"}
        assert (await salesforce.post("/__sandbox/faults", json=fault)).status_code == 201
    response = await gw.client.get(f"{PATH}/77001", headers=gw.auth("system:read"))
    assert response.status_code in (502, 503), response.text
    assert response.headers["content-type"] == "application/problem+json"
