"""Inner calls are charged to the caller they are made for: one sales client hammering its account views
(each fans out to the system and process tiers through the shared tier clients) runs out of its own inner
budget, and neither another client's views nor a workflow's system-tier calls get a 429 for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apis.config import Settings
from apis.oauth_server import ALL_SCOPES
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, READY_OPPORTUNITY_ID

VIEW = f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}"
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
QUICK = {"step_backoff_base_seconds": 0.01, "step_backoff_max_seconds": 0.05, "poll_interval_seconds": 0.1}


def _register(settings: Settings, *sales_clients: str) -> None:
    """The dev issuer's clients, plus sales clients of our own (clients are configuration)."""
    clients = [
        {"client_id": "stratum-demo", "client_secret": "demo-secret", "scopes": list(ALL_SCOPES)},
        {
            "client_id": settings.process_client.client_id,
            "client_secret": "process-secret",
            "scopes": ["system:read", "system:write"],
        },
        {
            "client_id": settings.experience_client.client_id,
            "client_secret": "experience-secret",
            "scopes": ["system:read", "process:run", "process:read"],
        },
        *(
            {"client_id": c, "client_secret": f"{c}-secret", "scopes": ["experience:sales"]}
            for c in sales_clients
        ),
    ]
    path = Path(settings.data_dir) / "clients.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clients))


def _refusals(response: Any) -> list[str]:
    """What refused this view, if anything: the view's own 429, or its sections' error codes."""
    if response.status_code == 429:
        return ["rate-limited (the view itself)"]
    assert response.status_code == 200, response.text
    view = response.json()
    sections = [view["account"], view["opportunities"]] + [
        item["readiness"] for item in view["opportunities"].get("items") or []
    ]
    return [s["error"]["code"] for s in sections if s.get("status") == "unavailable" and s.get("error")]


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    settings = make_settings(
        # Small budgets, so a few views exhaust them: the tier clients' own, and each caller's inner one.
        rate_limit_system="60/minute",
        rate_limit_process="60/minute",
        rate_limit_system_inner="40/minute",
        rate_limit_process_inner="20/minute",
        workflows=QUICK,
        netsuite=VENDOR,
        kantata=VENDOR,
        salesforce=VENDOR,
    )
    _register(settings, "sales-hammer", "sales-other")
    return await make_gateway(settings)


async def test_one_callers_view_fan_out_exhausts_only_its_own_budget(gw: Any) -> None:
    hammer = gw.auth("experience:sales", client_id="sales-hammer")
    refusals: list[str] = []
    for _ in range(100):
        refusals = _refusals(await gw.client.get(VIEW, headers=hammer))
        if refusals:
            break
    assert refusals, "100 views never ran out of the inner budget"

    # Another sales client's view is whole.
    other = await gw.client.get(VIEW, headers=gw.auth("experience:sales", client_id="sales-other"))
    assert _refusals(other) == []
    assert other.json()["account"]["status"] == "ok"

    # A workflow's system-tier calls are not refused either: the run completes without a retry.
    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": READY_OPPORTUNITY_ID},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=60"},
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "completed", run
    assert [s for s in run["steps"] if s["outcome"] != "completed"] == []

    # And the hammering caller is told it ran out of its own budget (not that a tier is down): the view's
    # own 429 when the account or page source was refused, or its readiness sections marked rate-limited.
    assert set(refusals) <= {"rate-limited", "rate-limited (the view itself)"}, refusals


async def test_an_inner_call_names_and_charges_the_caller_it_is_made_for(gw: Any) -> None:
    # A tier client calling for a caller: that caller's inner quota, in the answer's RateLimit headers.
    token = gw.token("system:read", client_id=gw.runtime.settings.experience_client.client_id)
    response = await gw.client.get(
        f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}",
        headers={"Authorization": f"Bearer {token}", "X-Stratum-On-Behalf-Of": "sales-other"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ratelimit-policy"].startswith('"system-inner";q=40;')
    # Anyone else naming a caller is charged as itself.
    forged = await gw.client.get(
        f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}",
        headers={**gw.auth("system:read"), "X-Stratum-On-Behalf-Of": "sales-other", "X-Stratum-Run-ID": "x"},
    )
    assert forged.headers["ratelimit-policy"].startswith('"system";q=60;')
