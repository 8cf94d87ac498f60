"""A firm mid-migration: legal entity US01 stays on NetSuite, DE01 is on Business Central. One customer
list shows both ERPs' customers, and every write lands in the ERP of its legal entity, as each vendor
sandbox's own store shows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(erp_vendor="netsuite", erp_by_legal_entity={"DE01": "business_central"})
    )


def _headers(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


async def test_one_customer_list_shows_both_erps(gw: Any) -> None:
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/system/v1/erp/customers", params=params, headers=gw.auth("system:read"))
        assert page.status_code == 200, page.text
        ids += [c["id"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    from_bc = [i for i in ids if i.startswith("business_central:")]
    from_netsuite = [i for i in ids if not i.startswith("business_central:")]
    assert from_netsuite
    assert from_bc
    assert len(ids) == len(set(ids))
    # An id says which ERP holds the record: reading one back asks that ERP.
    read = await gw.client.get(f"/system/v1/erp/customers/{from_bc[0]}", headers=gw.auth("system:read"))
    assert read.status_code == 200
    assert read.json()["id"] == from_bc[0]


async def test_writes_land_in_the_erp_of_their_legal_entity(gw: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    de = await gw.client.post(
        "/system/v1/erp/customers",
        json={
            "crm_customer_id": f"001de{suffix}",
            "name": f"Kessel Werke {suffix} GmbH",
            "legal_entity": "DE01",
            "currency": "EUR",
        },
        headers=_headers(gw),
    )
    us = await gw.client.post(
        "/system/v1/erp/customers",
        json={
            "crm_customer_id": f"001us{suffix}",
            "name": f"Harbor Labs {suffix} Inc",
            "legal_entity": "US01",
            "currency": "USD",
        },
        headers=_headers(gw),
    )
    assert de.status_code == us.status_code == 201, (de.text, us.text)
    assert de.json()["id"].startswith("business_central:")
    assert not us.json()["id"].startswith("business_central:")
    bc_names = {
        c.get("displayName") for c in gw.sandbox_state("business-central").records["customers"].values()
    }
    netsuite_names = {c.get("companyName") for c in gw.sandbox_state("netsuite").records["customer"].values()}
    assert f"Kessel Werke {suffix} GmbH" in bc_names
    assert f"Kessel Werke {suffix} GmbH" not in netsuite_names
    assert f"Harbor Labs {suffix} Inc" in netsuite_names
    assert f"Harbor Labs {suffix} Inc" not in bc_names

    project = await gw.client.post(
        "/system/v1/erp/projects",
        json={
            "external_key": f"opp-de-{suffix}",
            "name": "Kessel rollout",
            "customer_id": de.json()["id"],
            "currency": "EUR",
            "legal_entity": "DE01",
        },
        headers=_headers(gw),
    )
    assert project.status_code == 201, project.text
    assert project.json()["id"].startswith("business_central:")

    invoice = await gw.client.post(
        "/system/v1/erp/invoices",
        json={
            "external_key": f"inv-de-{suffix}",
            "customer_id": de.json()["id"],
            "currency": "EUR",
            "issue_date": "2026-12-01",
            "due_date": "2026-12-31",
            "lines": [{"description": "Rollout, phase 1", "unit_price": "4200.00"}],
        },
        headers=_headers(gw),
    )
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["id"].startswith("business_central:")
    # Business Central adds DE01's 19 % VAT to the 4200.00 line.
    assert (invoice.json()["subtotal"]["amount"], invoice.json()["total"]) == (
        "4200.00",
        {"amount": "4998.00", "currency": "EUR"},
    )

    # A DE01 project for a customer mastered on NetSuite is refused, not split across two ERPs.
    refused = await gw.client.post(
        "/system/v1/erp/projects",
        json={
            "external_key": f"opp-x-{suffix}",
            "name": "Split",
            "customer_id": us.json()["id"],
            "currency": "EUR",
            "legal_entity": "DE01",
        },
        headers=_headers(gw),
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "vendor-rejected"


async def test_erp_notifications_can_only_be_pointed_at_this_gateway(gw: Any) -> None:
    """A client with system:write cannot make Business Central push invoice changes (and its handshake)
    to another host: the notification URL must be on the gateway's own public URL."""
    response = await gw.client.put(
        "/system/v1/erp/change-subscriptions",
        json={"notification_url": "https://collector.example.com/hook", "client_state": "s3cret"},
        headers=_headers(gw),
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation-failed"
    assert [e["field"] for e in problem["errors"]] == ["notification_url"]
    assert "s3cret" not in response.text
    assert not gw.sandbox_state("business-central").webhooks.subscriptions


async def _invoice_pages(gw: Any, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/system/v1/erp/invoices", params=params, headers=gw.auth("system:read"))
        assert page.status_code == 200, page.text
        pages.append([i["id"] for i in page.json()["items"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return pages


async def test_invoices_page_up_to_a_thousand_at_once_across_both_erps(gw: Any) -> None:
    by_200 = await _invoice_pages(gw, 200)
    by_1000 = await _invoice_pages(gw, 1000)
    # NetSuite's seed holds 300 invoices: one page of 1,000 holds them all (SuiteQL pages up to 1,000),
    # then Business Central's, in the order pages of 200 list them.
    assert len(by_1000[0]) > 200
    assert len(by_1000) < len(by_200)
    assert [i for p in by_1000 for i in p] == [i for p in by_200 for i in p]
    # NetSuite's listing ends on the first page and Business Central's (read at once with it) fits after
    # it: one page, one round of calls. Pages of 200 never hold more than 200.
    assert len(by_1000) == 1
    assert any(i.startswith("business_central:") for i in by_1000[0])
    assert all(len(p) <= 200 for p in by_200)
    for limit in (0, 1001):
        refused = await gw.client.get(
            "/system/v1/erp/invoices", params={"limit": limit}, headers=gw.auth("system:read")
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation-failed"


async def test_an_erp_down_is_left_for_its_own_page_when_the_first_erps_invoices_are_read(gw: Any) -> None:
    async with gw.sandbox("business-central") as sandbox:
        assert (await sandbox.post("/__sandbox/faults", json={"kind": "outage"})).status_code == 201
    try:
        first = await gw.client.get(
            "/system/v1/erp/invoices", params={"limit": 1000}, headers=gw.auth("system:read")
        )
        # NetSuite's invoices answer; Business Central's read ahead failed and is left to the next page...
        assert first.status_code == 200, first.text
        assert first.json()["items"]
        assert not [i for i in first.json()["items"] if i["id"].startswith("business_central:")]
        assert first.json()["next_cursor"]
        # ...which answers the outage as a problem.
        second = await gw.client.get(
            "/system/v1/erp/invoices",
            params={"limit": 1000, "cursor": first.json()["next_cursor"]},
            headers=gw.auth("system:read"),
        )
        assert second.status_code in (502, 503, 504), second.text
        assert second.headers["content-type"].startswith("application/problem+json")
    finally:
        async with gw.sandbox("business-central") as sandbox:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204


async def _every_customer(gw: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/system/v1/erp/customers", params=params, headers=gw.auth("system:read"))
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


async def test_customers_read_by_id_in_one_call_across_both_erps(gw: Any) -> None:
    listed = await _every_customer(gw)
    from_bc = [c for c in listed if c["id"].startswith("business_central:")][:3]
    from_netsuite = [c for c in listed if not c["id"].startswith("business_central:")][:3]
    assert from_bc
    assert from_netsuite
    wanted = [*from_bc, *from_netsuite]
    unknown = ["999999999", "business_central:00000000-0000-0000-0000-000000000000", "not-a-netsuite-id"]
    answer = await gw.client.get(
        "/system/v1/erp/customers",
        params={"id": ",".join([c["id"] for c in wanted] + unknown)},
        headers=gw.auth("system:read"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next_cursor"] is None
    # Exactly those customers, as the listing shows them; the unknown ids are simply absent.
    by_id = {c["id"]: c for c in body["items"]}
    assert sorted(by_id) == sorted(c["id"] for c in wanted)
    for customer in wanted:
        assert by_id[customer["id"]] == customer
    # With modified_since, only those changed since then (none since a future moment).
    ids = ",".join(c["id"] for c in wanted)
    for moment, expected in (("1990-01-01T00:00:00Z", len(wanted)), ("2999-01-01T00:00:00Z", 0)):
        narrowed = await gw.client.get(
            "/system/v1/erp/customers",
            params={"id": ids, "modified_since": moment},
            headers=gw.auth("system:read"),
        )
        assert narrowed.status_code == 200, narrowed.text
        assert len(narrowed.json()["items"]) == expected, moment
    # The same names and ids a read of each one gives.
    for customer in wanted:
        one = await gw.client.get(
            f"/system/v1/erp/customers/{customer['id']}", headers=gw.auth("system:read")
        )
        assert one.status_code == 200
        assert (one.json()["id"], one.json()["name"]) == (customer["id"], by_id[customer["id"]]["name"])
        assert one.json()["legal_entity"] == by_id[customer["id"]]["legal_entity"]


async def test_customers_by_id_take_at_most_a_hundred_ids_and_no_cursor(gw: Any) -> None:
    headers = gw.auth("system:read")
    hundred = ",".join(str(1000 + n) for n in range(100))
    ok = await gw.client.get("/system/v1/erp/customers", params={"id": hundred}, headers=headers)
    assert ok.status_code == 200, ok.text
    too_many = ",".join(str(1000 + n) for n in range(101))
    refused = await gw.client.get("/system/v1/erp/customers", params={"id": too_many}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    for bad in ("1,,2", "1;DROP", "a b"):
        answer = await gw.client.get("/system/v1/erp/customers", params={"id": bad}, headers=headers)
        assert answer.status_code == 422, (bad, answer.text)
    mixed = await gw.client.get(
        "/system/v1/erp/customers", params={"id": "1", "cursor": "abc"}, headers=headers
    )
    assert mixed.status_code == 422, mixed.text
    assert [e["field"] for e in mixed.json()["errors"]] == ["cursor"]
    unread = await gw.client.get(
        "/system/v1/erp/customers", params={"id": "1"}, headers=gw.auth("process:read")
    )
    assert unread.status_code in (401, 403)


async def test_customers_by_id_fail_as_a_read_of_one_does_when_their_erp_is_down(gw: Any) -> None:
    listed = await _every_customer(gw)
    bc_id = next(c["id"] for c in listed if c["id"].startswith("business_central:"))
    ns_id = next(c["id"] for c in listed if not c["id"].startswith("business_central:"))
    headers = gw.auth("system:read")
    async with gw.sandbox("business-central") as sandbox:
        assert (await sandbox.post("/__sandbox/faults", json={"kind": "outage"})).status_code == 201
    try:
        one = await gw.client.get(f"/system/v1/erp/customers/{bc_id}", headers=headers)
        both = await gw.client.get(
            "/system/v1/erp/customers", params={"id": f"{ns_id},{bc_id}"}, headers=headers
        )
        assert one.status_code in (502, 503, 504), one.text
        assert both.status_code == one.status_code, both.text
        assert both.headers["content-type"].startswith("application/problem+json")
        assert both.json()["type"] == one.json()["type"]
        # Only NetSuite's ids: Business Central is not asked.
        alone = await gw.client.get("/system/v1/erp/customers", params={"id": ns_id}, headers=headers)
        assert alone.status_code == 200, alone.text
        assert [c["id"] for c in alone.json()["items"]] == [ns_id]
    finally:
        async with gw.sandbox("business-central") as sandbox:
            assert (await sandbox.delete("/__sandbox/faults")).status_code == 204
