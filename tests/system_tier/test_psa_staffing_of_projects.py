"""The staffing demand of several projects in one listing (``listPsaStaffingDemandsOfProjects``), through
the system tier against the Kantata sandbox: what each project's own listing holds, in one Kantata call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.kantata.data import (
    ARCHIVED_WORKSPACE_ID,
    BIG_WORKSPACE_ID,
    DEMO_WORKSPACE_ID,
    EUR_WORKSPACE_ID,
)

PATH = "/system/v1/psa/staffing-demands"
PROJECTS = [DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID, EUR_WORKSPACE_ID, ARCHIVED_WORKSPACE_ID]


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # No retries and no breaker, so a fault is seen at once; the default timeout (a loaded machine).
    fast = {"breaker_failure_threshold": 0, "retry_max_attempts": 1}
    return await make_gateway(make_settings(kantata=fast))


async def _each(gw: Any, project: str) -> list[dict[str, Any]]:
    response = await gw.client.get(
        f"/system/v1/psa/projects/{project}/staffing-demands", headers=gw.auth("system:read")
    )
    assert response.status_code == 200, response.text
    demands: list[dict[str, Any]] = response.json()
    return demands


async def test_several_projects_staffing_demand_is_one_listing_of_each_ones(gw: Any) -> None:
    each = [demand for project in PROJECTS for demand in await _each(gw, project)]
    assert each, "the seed has staffing demand"
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    # One the PSA does not have and one no Kantata id at all: none for them, no 404.
    response = await gw.client.get(
        PATH,
        params={"project_id": ",".join([*PROJECTS, "31899999", "not-kantata"])},
        headers=gw.auth("system:read"),
    )
    assert response.status_code == 200, response.text
    together = response.json()
    assert sorted(together, key=lambda d: d["id"]) == sorted(each, key=lambda d: d["id"])
    assert {d["project_id"] for d in together} <= set(PROJECTS)
    assert len([e for e in log if "workspace_resources" in e.path]) == 1


async def test_more_projects_than_a_listing_takes_is_422(gw: Any) -> None:
    too_many = ",".join(str(31800000 + n) for n in range(51))
    refused = await gw.client.get(PATH, params={"project_id": too_many}, headers=gw.auth("system:read"))
    assert refused.status_code == 422
    assert refused.json()["code"] == "validation-failed"
    fifty = ",".join(str(31800000 + n) for n in range(50))
    assert (
        await gw.client.get(PATH, params={"project_id": fifty}, headers=gw.auth("system:read"))
    ).status_code == 200
    missing = await gw.client.get(PATH, headers=gw.auth("system:read"))
    assert missing.status_code in (400, 422)


async def test_kantata_down_is_a_problem_not_an_empty_list(gw: Any) -> None:
    async with gw.sandbox("kantata") as kantata:
        fault = {"kind": "error", "status": 503, "path_pattern": "workspace_resources"}
        assert (await kantata.post("/__sandbox/faults", json=fault)).status_code == 201
    response = await gw.client.get(
        PATH, params={"project_id": DEMO_WORKSPACE_ID}, headers=gw.auth("system:read")
    )
    assert response.status_code in (502, 503), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_another_scope_is_403(gw: Any) -> None:
    response = await gw.client.get(
        PATH, params={"project_id": DEMO_WORKSPACE_ID}, headers=gw.auth("experience:delivery")
    )
    assert response.status_code == 403
