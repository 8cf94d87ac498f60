"""An account's opportunity listing with each deal's terms (``with_terms``): the same deals the single read
gives, in one vendor query, and the listing's problems unchanged."""

from __future__ import annotations

from typing import Any

from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

LISTING = f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}/opportunities"


async def test_a_listing_with_terms_equals_the_single_read_of_each_deal(gw: Any) -> None:
    headers = gw.auth("system:read")
    response = await gw.client.get(LISTING, params={"limit": 25, "with_terms": "true"}, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items
    assert any(item["milestones"] for item in items)
    assert any(item["rate_card"] for item in items)
    for item in items:
        alone = await gw.client.get(f"/system/v1/crm/opportunities/{item['id']}", headers=headers)
        assert alone.status_code == 200
        assert item == alone.json()


async def test_a_listing_without_terms_is_as_before(gw: Any) -> None:
    headers = gw.auth("system:read")
    plain = (await gw.client.get(LISTING, params={"limit": 25}, headers=headers)).json()
    with_terms = (await gw.client.get(LISTING, params={"with_terms": "true"}, headers=headers)).json()
    assert all(item["milestones"] == [] and item["rate_card"] == [] for item in plain["items"])
    assert [i["id"] for i in plain["items"]] == [i["id"] for i in with_terms["items"]]


async def test_with_terms_must_be_a_boolean(gw: Any) -> None:
    response = await gw.client.get(LISTING, params={"with_terms": "maybe"}, headers=gw.auth("system:read"))
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_account_is_404_with_terms_too(gw: Any) -> None:
    response = await gw.client.get(
        "/system/v1/crm/accounts/001Dn00000ZZZZZIAA/opportunities",
        params={"with_terms": "true"},
        headers=gw.auth("system:read"),
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not-found"


async def test_the_crm_down_is_a_503_problem(gw: Any) -> None:
    async with gw.sandbox("salesforce") as sandbox:
        rule = {"kind": "error", "status": 503, "path_pattern": "/query"}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
        try:
            response = await gw.client.get(
                LISTING, params={"with_terms": "true"}, headers=gw.auth("system:read")
            )
        finally:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204
    assert response.status_code == 503
    assert response.json()["code"] == "vendor-unavailable"


async def test_the_account_is_judged_before_the_cursor_though_both_are_read_at_once(gw: Any) -> None:
    headers = gw.auth("system:read")
    unknown = await gw.client.get(
        "/system/v1/crm/accounts/001Dn00000ZZZZZIAA/opportunities",
        params={"cursor": "Z2FyYmFnZQ"},
        headers=headers,
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not-found"
    known = await gw.client.get(LISTING, params={"cursor": "Z2FyYmFnZQ"}, headers=headers)
    assert known.status_code == 422
    assert known.json()["code"] == "validation-failed"
