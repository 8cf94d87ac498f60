"""``GET /system/v1/crm/accounts?id=...`` through the in-process gateway against the Salesforce sandbox:
several accounts in one SOQL query, as the listing and the single read give them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import salesforce_id
from system_apis.crm.salesforce import accounts_by_id_query, can_name_a_record


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(make_settings())


async def _accounts(gw: Any) -> list[dict[str, Any]]:
    page = await gw.client.get(
        "/system/v1/crm/accounts", params={"limit": 200}, headers=gw.auth("system:read")
    )
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def test_accounts_read_by_id_in_one_call(gw: Any) -> None:
    listed = (await _accounts(gw))[:4]
    assert len(listed) >= 2
    # No such account; an 18-character id whose case-safe suffix is wrong ("9" is no suffix character),
    # which SOQL would refuse the whole query over; no Salesforce id at all.
    unknown = ["001000000000000AAA", "001000000000000999", "not-an-id"]
    answer = await gw.client.get(
        "/system/v1/crm/accounts",
        params={"id": ",".join([a["id"] for a in listed] + unknown)},
        headers=gw.auth("system:read"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"] is None
    by_id = {a["id"]: a for a in answer.json()["items"]}
    # Exactly those accounts, as the listing gives them; unknown ids simply absent.
    assert sorted(by_id) == sorted(a["id"] for a in listed)
    since_long_ago = await gw.client.get(
        "/system/v1/crm/accounts",
        params={"id": ",".join(by_id), "modified_since": "1990-01-01T00:00:00Z"},
        headers=gw.auth("system:read"),
    )
    assert sorted(a["id"] for a in since_long_ago.json()["items"]) == sorted(by_id)
    for account in listed:
        assert by_id[account["id"]] == account
        one = await gw.client.get(f"/system/v1/crm/accounts/{account['id']}", headers=gw.auth("system:read"))
        assert one.status_code == 200
        assert one.json() == by_id[account["id"]]


async def test_accounts_by_id_take_at_most_a_hundred_ids_and_no_cursor(gw: Any) -> None:
    headers = gw.auth("system:read")
    hundred = ",".join(f"001{n:012d}" for n in range(100))
    ok = await gw.client.get("/system/v1/crm/accounts", params={"id": hundred}, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["items"] == []
    too_many = ",".join(f"001{n:012d}" for n in range(101))
    refused = await gw.client.get("/system/v1/crm/accounts", params={"id": too_many}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    for bad in ("001,,002", "001'OR'1", "a b"):
        answer = await gw.client.get("/system/v1/crm/accounts", params={"id": bad}, headers=headers)
        assert answer.status_code == 422, (bad, answer.text)
    mixed = await gw.client.get(
        "/system/v1/crm/accounts", params={"id": "001000000000000AAA", "cursor": "abc"}, headers=headers
    )
    assert mixed.status_code == 422, mixed.text
    assert [e["field"] for e in mixed.json()["errors"]] == ["cursor"]
    future = await gw.client.get(
        "/system/v1/crm/accounts",
        params={"id": "001000000000000AAA", "modified_since": "2999-01-01T00:00:00Z"},
        headers=headers,
    )
    assert future.status_code == 200, future.text
    assert future.json()["items"] == []
    unread = await gw.client.get(
        "/system/v1/crm/accounts", params={"id": "001000000000000AAA"}, headers=gw.auth("process:read")
    )
    assert unread.status_code in (401, 403)


async def test_accounts_by_id_fail_as_a_read_of_one_does_when_salesforce_is_down(gw: Any) -> None:
    account = (await _accounts(gw))[0]["id"]
    headers = gw.auth("system:read")
    async with gw.sandbox("salesforce") as sandbox:
        assert (await sandbox.post("/__sandbox/faults", json={"kind": "outage"})).status_code == 201
    try:
        one = await gw.client.get(f"/system/v1/crm/accounts/{account}", headers=headers)
        several = await gw.client.get("/system/v1/crm/accounts", params={"id": account}, headers=headers)
        assert one.status_code in (502, 503, 504), one.text
        assert several.status_code == one.status_code, several.text
        assert several.headers["content-type"].startswith("application/problem+json")
        assert several.json()["type"] == one.json()["type"]
    finally:
        async with gw.sandbox("salesforce") as sandbox:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204


def test_the_soql_takes_only_salesforce_ids_each_quoted() -> None:
    soql = accounts_by_id_query(["001000000000000AAA", "001000000000001"])
    assert soql.endswith("FROM Account WHERE Id IN ('001000000000000AAA', '001000000000001') ORDER BY Id")
    for bad in (["001' OR Name != 'x"], [], ["0010000"]):
        with pytest.raises(ValueError, match="Salesforce ids"):
            accounts_by_id_query(bad)


def test_an_id_names_a_record_only_with_its_case_safe_suffix() -> None:
    for n in (1, 2, 77, 4000):
        real = salesforce_id("001", n)
        assert can_name_a_record(real)
        assert can_name_a_record(real[:15])
        assert can_name_a_record(real.lower())  # 18-character ids are case-insensitive
    assert not can_name_a_record("001000000000000999")
    assert not can_name_a_record("001000000000000BAA")  # flags an upper-case letter where a digit is
    assert not can_name_a_record("001'OR'1")
