"""The sales account view degrades section by section (its declared rules), and stays whole when its sources
answer."""

from __future__ import annotations

from typing import Any

from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

VIEW = f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}"


async def test_the_sales_view_is_filled_from_its_sources(gw: Any) -> None:
    response = await gw.client.get(VIEW, headers=gw.auth("experience:sales"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["status"] == "ok"
    assert body["account"]["data"]["id"] == DEMO_ACCOUNT_ID
    assert body["opportunities"]["status"] == "ok"
    assert body["opportunities"]["items"]
    # Each section's own time, and the view's, as the answer's Server-Timing (W3C) says.
    timings = dict(metric.strip().split(";dur=") for metric in response.headers["server-timing"].split(","))
    assert set(timings) == {"account", "opportunities", "readiness", "view"}
    assert all(float(duration) >= 0 for duration in timings.values())


async def test_the_opportunity_listing_down_leaves_its_sections_unavailable_and_the_account_filled(
    gw: Any,
) -> None:
    # The opportunities are read with SOQL (``/query``), the account by id: only the listing is faulted. The
    # readiness section, declared after the opportunities, has nothing to check and says so.
    async with gw.sandbox("salesforce") as sandbox:
        rule = {"kind": "error", "status": 503, "path_pattern": "/query"}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
        try:
            response = await gw.client.get(VIEW, headers=gw.auth("experience:sales"))
        finally:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["status"] == "ok"
    assert body["account"]["data"]["id"] == DEMO_ACCOUNT_ID
    opportunities = body["opportunities"]
    assert opportunities["status"] == "unavailable"
    assert opportunities["error"]["code"] == "vendor-unavailable"
    assert opportunities["error"]["source"] == "system:crm.opportunities"
    assert "items" not in opportunities
    assert body["summary"] == {"open_pipeline": [], "won": [], "ready_to_activate": 0, "blocked": 0}
