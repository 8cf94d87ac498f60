"""The delivery view when a source is down (the sandboxes' fault injector) and when the caller is wrong, on
the seeded sandboxes (no activation needed): an optional source down leaves its section `unavailable` with
the reason and fills the rest; the PSA down for the project itself is a 503 `source-unavailable`; a project
whose work cannot be read has an unknown risk in the portfolio, never "no risk"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.kantata.data import DEMO_WORKSPACE_ID, PROJECT_MANAGER_USER_ID

VIEW = "/experience/v1/delivery/projects"
SCOPE = "experience:delivery"
# One attempt and no breaker, so an injected outage is met at once and the next test starts clean.
FAIL_FAST = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(kantata=FAIL_FAST, anaplan=FAIL_FAST, salesforce=FAIL_FAST, netsuite=FAIL_FAST)
    )


async def _fault(gw: Any, vendor: str, **rule: Any) -> None:
    async with gw.sandbox(vendor) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
    assert response.status_code == 201, response.text


async def test_the_fpa_system_down_leaves_the_forecast_unavailable_and_the_rest_filled(gw: Any) -> None:
    await _fault(gw, "anaplan", kind="error", status=503)

    response = await gw.client.get(f"{VIEW}/{DEMO_WORKSPACE_ID}", headers=gw.auth(SCOPE))

    assert response.status_code == 200, response.text
    view = response.json()
    forecast = view["forecast"]
    assert forecast["status"] == "unavailable"
    assert forecast["error"]["source"] == "system:fpa.forecast"
    assert forecast["error"]["code"] in {"vendor-unavailable", "vendor-bad-response", "tier-unavailable"}
    assert forecast["error"]["detail"]
    assert "data" not in forecast
    # Everything the PSA and the CRM give is there.
    for section in ("budget", "billed", "unbilled", "staffing", "milestones"):
        assert view[section]["status"] == "ok", (section, view[section])
    assert view["budget"]["data"]["hours_actual"] != "0"
    assert view["project"]["id"] == DEMO_WORKSPACE_ID


async def test_the_psa_down_for_the_project_itself_is_a_503_naming_the_section(gw: Any) -> None:
    await _fault(gw, "kantata", kind="outage", path_pattern=r"/workspaces/")

    response = await gw.client.get(f"{VIEW}/{DEMO_WORKSPACE_ID}", headers=gw.auth(SCOPE))

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    problem = response.json()
    assert problem["code"] == "source-unavailable"
    assert problem["section"] == "project"


async def test_time_unreadable_leaves_the_budget_unavailable_not_zero(gw: Any) -> None:
    await _fault(gw, "kantata", kind="error", status=500, path_pattern=r"/time_entries")

    response = await gw.client.get(f"{VIEW}/{DEMO_WORKSPACE_ID}", headers=gw.auth(SCOPE))

    assert response.status_code == 200, response.text
    view = response.json()
    assert view["budget"]["status"] == "unavailable"
    assert view["budget"]["error"]["source"] == "system:psa.time-entries"
    assert "data" not in view["budget"]
    assert view["billed"]["status"] == "ok"


async def test_a_portfolio_whose_work_cannot_be_read_shows_the_risk_as_unknown(gw: Any) -> None:
    await _fault(gw, "kantata", kind="error", status=500, path_pattern=r"/expenses")

    response = await gw.client.get(
        VIEW, params={"manager_id": PROJECT_MANAGER_USER_ID}, headers=gw.auth(SCOPE)
    )

    assert response.status_code == 200, response.text
    portfolio = response.json()
    assert portfolio["items"]
    for item in portfolio["items"]:
        risk = item["risk"]
        assert risk["status"] == "unavailable"
        assert (risk["over_budget"], risk["unbilled_ageing"]) == (None, None)
        assert risk["error"]["source"] == "system:psa.expenses"
        # What the project itself says is still known.
        assert isinstance(risk["milestone_overdue"], bool)
    assert portfolio["totals"]["risk_unknown"] == portfolio["totals"]["projects"] == len(portfolio["items"])


async def test_the_portfolio_of_a_manager_lists_only_their_projects_with_risks_known(gw: Any) -> None:
    response = await gw.client.get(
        VIEW, params={"manager_id": PROJECT_MANAGER_USER_ID}, headers=gw.auth(SCOPE)
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert DEMO_WORKSPACE_ID in [i["project_id"] for i in items]
    assert {i["manager_id"] for i in items} == {PROJECT_MANAGER_USER_ID}
    assert {i["risk"]["status"] for i in items} == {"ok"}
    counts = [i["risk"]["count"] for i in items]
    assert counts == sorted(counts, reverse=True)


async def test_the_crm_down_leaves_legal_entities_unknown_and_refuses_a_legal_entity_filter(gw: Any) -> None:
    await _fault(gw, "salesforce", kind="error", status=503, path_pattern=r"/query")
    params = {"manager_id": PROJECT_MANAGER_USER_ID}

    response = await gw.client.get(VIEW, params=params, headers=gw.auth(SCOPE))

    assert response.status_code == 200, response.text
    assert response.json()["legal_entities_error"]["source"] == "system:crm.opportunities"
    filtered = await gw.client.get(VIEW, params={**params, "legal_entity": "US01"}, headers=gw.auth(SCOPE))
    assert filtered.status_code == 503, filtered.text
    assert filtered.json()["code"] == "source-unavailable"


async def test_an_unknown_project_is_404(gw: Any) -> None:
    response = await gw.client.get(f"{VIEW}/99999999", headers=gw.auth(SCOPE))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not-found"


async def test_another_roles_scope_is_403(gw: Any) -> None:
    for path in (VIEW, f"{VIEW}/{DEMO_WORKSPACE_ID}"):
        response = await gw.client.get(path, headers=gw.auth("experience:sales"))
        assert response.status_code == 403, response.text
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("cursor", ["garbage!", "Z2FyYmFnZQ"])
async def test_a_cursor_the_view_did_not_issue_is_422(gw: Any, cursor: str) -> None:
    response = await gw.client.get(VIEW, params={"cursor": cursor}, headers=gw.auth(SCOPE))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "cursor"


async def test_the_psa_lists_a_projects_invoices_as_the_sandbox_holds_them(gw: Any) -> None:
    held = gw.sandbox_state("kantata").records["invoices"].values()
    by_project: dict[str, set[str]] = {}
    for invoice in held:
        by_project.setdefault(str(invoice["workspace_ids"][0]), set()).add(str(invoice["id"]))
    assert by_project
    for project_id, ids in by_project.items():
        response = await gw.client.get(
            f"/system/v1/psa/projects/{project_id}/invoices", headers=gw.auth("system:read")
        )
        assert response.status_code == 200, response.text
        assert {i["id"] for i in response.json()} == ids
        assert {i["project_id"] for i in response.json()} == {project_id}
    unknown = await gw.client.get("/system/v1/psa/projects/99999999/invoices", headers=gw.auth("system:read"))
    assert unknown.status_code == 404, unknown.text


async def test_the_psas_invoices_unreadable_leave_billed_unavailable_and_milestone_billing_unknown(
    gw: Any,
) -> None:
    await _fault(gw, "kantata", kind="error", status=500, path_pattern=r"/invoices")

    response = await gw.client.get(f"{VIEW}/{DEMO_WORKSPACE_ID}", headers=gw.auth(SCOPE))

    assert response.status_code == 200, response.text
    view = response.json()
    assert view["billed"]["status"] == "unavailable"
    assert view["billed"]["error"]["source"] == "system:psa.invoices"
    milestones = view["milestones"]
    assert milestones["status"] == "ok"
    assert milestones["billing_error"]["source"] == "system:psa.invoices"
    states = {m["status"]: m["billing_state"] for m in milestones["items"]}
    assert states["completed"] == "unknown"  # not "unbilled": nobody knows
    assert states["not_started"] == "not_billable_yet"
    assert view["unbilled"]["status"] == "ok"
