"""The operations view when a source is down: the documented partial answer.

- the run database (PostgreSQL, behind a proxy the test controls) down on the whole gateway: the overview
  still answers 200, health, exceptions and dead letters ``unavailable``, sync lag filled with the run
  database named on the figures it holds; the exceptions and dead-letter lists, which need it, answer 503;
- one tier call failing (the tier clients on an ``httpx.MockTransport``): only its section is unavailable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from apis.config import OperationsSettings, Settings
from experience_apis.client import ExperienceClients
from experience_apis.ops import OPS_OVERVIEW_VIEW, _Ask
from process_apis.client import ProcessApiClient
from sandboxes.salesforce.data import MISSING_LEGAL_ENTITY_OPPORTUNITY_ID
from system_apis.client import SystemApiClient

# The run database outage fixtures (PostgreSQL behind a proxy the test controls).
from tests.process.test_run_database_outage import database, proxy  # noqa: F401
from tests.tcp_proxy import TcpProxy

OVERVIEW = "/experience/v1/ops/overview"
# Not a speed check: a bound so a request that hangs for the outage fails the test instead of hanging it.
HANG = 30


@pytest.fixture
async def gw(
    proxy: TcpProxy,  # noqa: F811
    database: str,  # noqa: F811
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> Any:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    return await make_gateway(make_settings(workflows={"database_url": url, "poll_interval_seconds": 0.1}))


async def _get(gw: Any, path: str) -> httpx.Response:
    response: httpx.Response = await asyncio.wait_for(
        gw.client.get(path, headers=gw.auth("experience:ops")), HANG
    )
    return response


async def test_with_the_run_database_down_the_overview_shows_what_it_can(
    gw: Any,
    proxy: TcpProxy,  # noqa: F811
) -> None:
    parked = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID},
        headers={**gw.auth("process:run"), "Idempotency-Key": "ops-outage-1", "Prefer": "wait=30"},
    )
    assert parked.json()["state"] == "exception", parked.text
    before = (await _get(gw, OVERVIEW)).json()
    assert (before["health"]["status"], before["exceptions"]["total"]) == ("ok", 1)

    proxy.down("refuse")
    response = await _get(gw, OVERVIEW)
    assert response.status_code == 200, response.text
    view = response.json()
    for section in ("health", "exceptions", "dead_letters"):
        assert view[section]["status"] == "unavailable", view[section]
        error = view[section]["error"]
        # The process tier's 503 run-database-unavailable, as the experience tier met it.
        assert error["code"] == "tier-unavailable", error
        assert "run-database-unavailable" in error["detail"]
    assert view["exceptions"]["error"]["source"] == "process:exceptions"
    assert "total" not in view["exceptions"]
    sync = view["sync"]
    assert sync["status"] == "ok"
    flows = {(f["flow"], f["vendor"]): f for f in sync["flows"]}
    customer = flows[("customer_sync", "salesforce")]
    assert customer["status"] == "unavailable"
    assert [p["source"] for p in customer["problems"]] == ["run-database"]
    invoice = flows[("invoice_status_sync", "netsuite")]
    assert [p["source"] for p in invoice["problems"]] == ["run-database"]
    # The CRM change events' figure is in the state store, which answers.
    assert flows[("crm_change_events", "salesforce")]["status"] == "never"

    for path in ("/experience/v1/ops/exceptions", "/experience/v1/ops/dead-letters"):
        down = await _get(gw, path)
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "source-unavailable"
        assert int(down.headers["retry-after"]) >= 1

    proxy.up()
    back = await _get(gw, OVERVIEW)
    assert back.json()["exceptions"]["total"] == 1


# --- one source down, the tier clients on a mock transport ---------------------------------------------

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
_PROBLEM = {"type": "about:blank", "title": "down", "status": 503, "detail": "down (test)"}
_ANSWERS: dict[str, Any] = {
    "/process/v1/run-stats": {"as_of": NOW.isoformat(), "window_seconds": 86400, "workflows": []},
    "/process/v1/exceptions": {"items": []},
    "/process/v1/dead-letters": {"items": []},
    "/process/v1/sync-status": {"as_of": NOW.isoformat(), "flows": []},
    "/system/v1/vendor-api-budgets": {
        "items": [{"vendor": "salesforce", "name": "daily_api_requests", "used": 12, "limit": 100000}]
    },
}


def _clients(down: dict[str, str]) -> ExperienceClients:
    """Tier clients answering ``_ANSWERS``, except each path in ``down`` with a 503 of that code."""

    def answer(request: httpx.Request) -> httpx.Response:
        code = down.get(request.url.path)
        if code is not None:
            return httpx.Response(503, json={**_PROBLEM, "code": code}, headers={"Retry-After": "7"})
        return httpx.Response(200, json=_ANSWERS[request.url.path])

    transport = httpx.MockTransport(answer)
    return ExperienceClients(
        system=SystemApiClient(base_url="http://system", auth=httpx.Auth(), transport=transport),
        process=ProcessApiClient(base_url="http://process", auth=httpx.Auth(), transport=transport),
    )


async def _overview(down: dict[str, str]) -> Any:
    ask = _Ask(clients=_clients(down), settings=OperationsSettings(), as_of=NOW)
    return await OPS_OVERVIEW_VIEW.compose(ask)


async def test_with_every_source_up_every_section_is_filled() -> None:
    done = await _overview({})
    assert done.unavailable == []
    assert [b.vendor for b in done.value("api_budgets").items] == ["salesforce"]


async def test_a_vendor_api_budgets_outage_leaves_only_that_section_unavailable() -> None:
    done = await _overview({"/system/v1/vendor-api-budgets": "vendor-unavailable"})
    assert done.unavailable == ["api_budgets"]
    error = done.error("api_budgets")
    assert error is not None
    assert (error.code, error.source, error.retry_after) == (
        "vendor-unavailable",
        "system:vendor-api-budgets",
        7,
    )


async def test_a_sync_status_outage_leaves_health_and_exceptions_filled() -> None:
    done = await _overview({"/process/v1/sync-status": "tier-unavailable"})
    assert done.unavailable == ["sync"]
    assert done.ok("health")
    assert done.ok("exceptions")
