"""Activation readiness of an account's won deals in one call (``POST /process/v1/activation-readiness/by-
account``): the same report the single check gives for each deal, and the same problems."""

from __future__ import annotations

from typing import Any

from sandboxes.salesforce.data import BIG_ACCOUNT_ID, DEMO_ACCOUNT_ID

BY_ACCOUNT = "/process/v1/activation-readiness/by-account"
SINGLE = "/process/v1/activation-readiness"
MISSING_ACCOUNT_ID = "001Dn00000ZZZZZIAA"


async def _deals(gw: Any, account_id: str) -> list[dict[str, Any]]:
    response = await gw.client.get(
        f"/system/v1/crm/accounts/{account_id}/opportunities",
        params={"limit": 200},
        headers=gw.auth("system:read"),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_every_won_deal_not_yet_activated_has_the_single_checks_report(gw: Any) -> None:
    response = await gw.client.post(
        BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=gw.auth("process:run")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    deals = await _deals(gw, DEMO_ACCOUNT_ID)
    won = {d["id"] for d in deals if d["is_won"] and not d.get("project_id")}
    assert won, "the demo account should have won deals to activate"
    assert any(not d["is_won"] for d in deals), "and others, which get no report"
    assert set(body["reports"]) == won
    assert body["account_id"] == DEMO_ACCOUNT_ID
    assert body["deals_read"] == len(deals)
    assert body["truncated"] is False
    assert {r["ready"] for r in body["reports"].values()} == {True, False}
    for opportunity_id, report in body["reports"].items():
        single = await gw.client.post(
            SINGLE, json={"opportunity_id": opportunity_id}, headers=gw.auth("process:run")
        )
        assert single.status_code == 200
        assert report == single.json()


async def test_an_account_with_more_deals_than_the_bound_says_it_is_truncated(gw: Any) -> None:
    response = await gw.client.post(
        BY_ACCOUNT, json={"account_id": BIG_ACCOUNT_ID}, headers=gw.auth("process:run")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated"] is True
    assert body["deals_read"] == 200


async def test_an_unknown_account_is_404(gw: Any) -> None:
    response = await gw.client.post(
        BY_ACCOUNT, json={"account_id": MISSING_ACCOUNT_ID}, headers=gw.auth("process:run")
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not-found"


async def test_the_crm_down_is_the_same_problem_as_for_the_single_check(gw: Any) -> None:
    deal = next(d["id"] for d in await _deals(gw, DEMO_ACCOUNT_ID) if d["is_won"])
    async with gw.sandbox("salesforce") as sandbox:
        rule = {"kind": "error", "status": 503, "path_pattern": "/services/data/"}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
        try:
            many = await gw.client.post(
                BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=gw.auth("process:run")
            )
            one = await gw.client.post(SINGLE, json={"opportunity_id": deal}, headers=gw.auth("process:run"))
        finally:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204
    assert many.status_code == one.status_code == 503
    assert many.headers["content-type"] == "application/problem+json"
    assert many.json()["code"] == one.json()["code"] == "vendor-unavailable"


async def test_a_bad_body_is_a_4xx_problem(gw: Any) -> None:
    for body in ({}, {"account_id": ""}, {"account_id": "../x"}, {"account_id": DEMO_ACCOUNT_ID, "x": 1}):
        response = await gw.client.post(BY_ACCOUNT, json=body, headers=gw.auth("process:run"))
        assert 400 <= response.status_code < 500, body
        assert response.headers["content-type"] == "application/problem+json"


async def test_it_needs_the_process_run_scope(gw: Any) -> None:
    response = await gw.client.post(
        BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=gw.auth("process:read")
    )
    assert response.status_code == 403


async def test_an_idempotency_key_is_optional_and_replays_the_same_answer(gw: Any) -> None:
    headers = {**gw.auth("process:run"), "Idempotency-Key": "by-account-1"}
    first = await gw.client.post(BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=headers)
    again = await gw.client.post(BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
