"""A cursor the caller made up is the caller's mistake on the experience tier too, not a degraded view.

The experience tier relays the cursor verbatim to the system tier, which alone can judge it; its refusal
must reach the caller as a validation problem naming ``cursor``, not as a "vendor-bad-response" section.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

VIEW = f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",  # not base64url at all
        "Z2FyYmFnZQ",  # base64url of "garbage": the right envelope, but no page of this listing
    ],
)
async def test_a_bad_cursor_on_the_sales_view_is_a_validation_problem(gw: Any, cursor: str) -> None:
    response = await gw.client.get(VIEW, params={"cursor": cursor}, headers=gw.auth("experience:sales"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation-failed"
    assert problem["errors"] == [
        {"location": "query", "field": "cursor", "message": "unknown or corrupted cursor"}
    ]


async def test_the_cursor_the_view_hands_out_still_pages_on(gw: Any) -> None:
    first = await gw.client.get(VIEW, params={"limit": 1}, headers=gw.auth("experience:sales"))
    assert first.status_code == 200, first.text
    next_cursor = first.json()["opportunities"]["next_cursor"]
    assert next_cursor
    second = await gw.client.get(
        VIEW, params={"limit": 1, "cursor": next_cursor}, headers=gw.auth("experience:sales")
    )
    assert second.status_code == 200, second.text
    assert second.json()["opportunities"]["status"] == "ok"
    assert second.json()["opportunities"]["items"] != first.json()["opportunities"]["items"]
