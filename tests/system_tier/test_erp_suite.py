"""The ERP suite: what the system tier promises about any ERP, run against each ERP adapter and its sandbox.

Every test makes the records it reads, through the system tier, with a legal entity and currency every ERP
sandbox holds (GB01, GBP), so no test knows which vendor answers: that is the proof that the ERP behind the
port can be swapped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apis.config import Settings

# Each ERP adapter the system tier can be configured with, set up to keep the books of GB01 (in Business
# Central one company is one legal entity); a new one joins here and must pass as it is.
ERPS: dict[str, dict[str, Any]] = {
    "netsuite": {"erp_vendor": "netsuite"},
    "business_central": {
        "erp_vendor": "business_central",
        "business_central": {
            "company": "CRONUS UK",
            "legal_entity": "GB01",
            "local_currency": "GBP",
            "revenue_account": "40100",  # the UK chart of accounts' services revenue
        },
    },
}


@pytest.fixture(params=sorted(ERPS))
async def gw(
    request: Any, make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> Any:
    return await make_gateway(make_settings(**ERPS[request.param]))


def _headers(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _customer(gw: Any, crm_id: str | None = None, **fields: Any) -> dict[str, Any]:
    crm_id = crm_id or _key("001suite")
    body = {
        "crm_customer_id": crm_id,
        "name": f"Suite Customer {crm_id}",
        "legal_entity": "GB01",
        "currency": "GBP",
    }
    response = await gw.client.post("/system/v1/erp/customers", json={**body, **fields}, headers=_headers(gw))
    assert response.status_code == 201, response.text
    customer: dict[str, Any] = response.json()
    return customer


async def _project(gw: Any, customer_id: str) -> dict[str, Any]:
    body = {
        "external_key": _key("opp"),
        "name": "Suite project",
        "customer_id": customer_id,
        "currency": "GBP",
        "legal_entity": "GB01",
        "billing_model": "milestone",
        "start_date": "2026-12-01",
        "end_date": "2027-06-30",
    }
    response = await gw.client.post("/system/v1/erp/projects", json=body, headers=_headers(gw))
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


def _invoice(key: str, customer_id: str, project_id: str | None = None) -> dict[str, Any]:
    return {
        "external_key": key,
        "customer_id": customer_id,
        "project_id": project_id,
        "currency": "GBP",
        "issue_date": "2026-12-01",
        "due_date": "2026-12-31",
        "lines": [
            {"description": "Discovery workshop", "quantity": "2", "unit_price": "1200.50"},
            {"description": "Travel", "unit_price": "310.00"},
        ],
    }


async def test_a_customer_is_mastered_once_per_crm_account_and_the_crm_owns_its_name(gw: Any) -> None:
    crm_id = _key("001suite")
    customer = await _customer(gw, crm_id)
    body = {"crm_customer_id": crm_id, "name": "Renamed Ltd", "legal_entity": "GB01", "currency": "GBP"}
    again = await gw.client.post("/system/v1/erp/customers", json=body, headers=_headers(gw))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == customer["id"]
    read = await gw.client.get(f"/system/v1/erp/customers/{customer['id']}", headers=gw.auth("system:read"))
    assert read.status_code == 200
    assert read.json()["name"] == "Renamed Ltd"


async def test_a_project_is_created_once_per_business_key(gw: Any) -> None:
    customer = await _customer(gw)
    project = await _project(gw, customer["id"])
    body = {
        "external_key": project["external_key"],
        "name": "Suite project",
        "customer_id": customer["id"],
        "currency": "GBP",
        "legal_entity": "GB01",
    }
    again = await gw.client.post("/system/v1/erp/projects", json=body, headers=_headers(gw))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == project["id"]
    read = await gw.client.get(f"/system/v1/erp/projects/{project['id']}", headers=gw.auth("system:read"))
    assert read.status_code == 200
    assert read.json()["name"] == "Suite project"


async def test_an_invoice_is_raised_once_per_business_key_with_exact_totals(gw: Any) -> None:
    customer = await _customer(gw)
    project = await _project(gw, customer["id"])
    key = _key("inv")
    first = await gw.client.post(
        "/system/v1/erp/invoices", json=_invoice(key, customer["id"], project["id"]), headers=_headers(gw)
    )
    assert first.status_code == 201, first.text
    invoice = first.json()
    # The lines are net; the ERP adds its tax (Business Central: the UK's 20 % VAT; the NetSuite sandbox
    # none): the customer owes subtotal plus tax, all of it open.
    assert invoice["subtotal"] == {"amount": "2711.00", "currency": "GBP"}
    gross = Decimal(invoice["subtotal"]["amount"]) + Decimal(invoice["tax"]["amount"])
    assert invoice["total"] == invoice["balance"] == {"amount": str(gross), "currency": "GBP"}
    again = await gw.client.post(
        "/system/v1/erp/invoices", json=_invoice(key, customer["id"], project["id"]), headers=_headers(gw)
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == invoice["id"]

    listed = await gw.client.get(
        "/system/v1/erp/invoices", params={"customer_id": customer["id"]}, headers=gw.auth("system:read")
    )
    assert [i["id"] for i in listed.json()["items"]] == [invoice["id"]]
    # A listing names each invoice's customer as the ERP's customer read does (NetSuite: a subquery of the
    # invoice's SuiteQL; Business Central: salesInvoice's customerName), so a view needs no second read.
    assert listed.json()["items"][0]["customer_name"] == customer["name"]
    payments = await gw.client.get(
        "/system/v1/erp/payments", params={"invoice_id": invoice["id"]}, headers=gw.auth("system:read")
    )
    assert payments.status_code == 200
    assert payments.json()["items"] == []


async def test_invoice_listing_pages_to_the_end_without_repeats(gw: Any) -> None:
    customer = await _customer(gw)
    raised = set()
    for _ in range(5):
        response = await gw.client.post(
            "/system/v1/erp/invoices", json=_invoice(_key("inv"), customer["id"]), headers=_headers(gw)
        )
        assert response.status_code == 201, response.text
        raised.add(response.json()["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"customer_id": customer["id"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/system/v1/erp/invoices", params=params, headers=gw.auth("system:read"))
        assert page.status_code == 200, page.text
        seen += [i["id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert sorted(seen) == sorted(raised)


async def test_a_probable_duplicate_is_found_under_another_spelling(gw: Any) -> None:
    tax_id = f"GB{uuid.uuid4().int % 10**9:09d}"
    existing = await _customer(gw, name=f"Quillon Analytics {tax_id} Ltd", tax_id=tax_id)
    matches = await gw.client.post(
        "/system/v1/erp/customer-matches",
        json={
            "name": f"QUILLON ANALYTICS {tax_id} LIMITED",
            "tax_id": tax_id.lower(),
            "crm_customer_id": "001other",
        },
        headers=gw.auth("system:read"),
    )
    assert matches.status_code == 200, matches.text
    assert [(m["customer"]["id"], m["reason"]) for m in matches.json()["items"]] == [
        (existing["id"], "name+tax_id")
    ]


async def test_unknown_records_are_404_problems(gw: Any) -> None:
    for path in ("customers", "projects", "invoices"):
        response = await gw.client.get(f"/system/v1/erp/{path}/999999999", headers=gw.auth("system:read"))
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_milestone_billing_schedule_is_made_once_read_back_and_voided(gw: Any) -> None:
    customer = await _customer(gw)
    project = await _project(gw, customer["id"])
    body = {
        "external_key": _key("opp") + ".billing",
        "billing_model": "milestone",
        "currency": "GBP",
        "lines": [
            {"date": "2027-01-15", "description": "Discovery", "amount": "4000.00"},
            {"date": "2027-04-15", "description": "Build", "amount": "8000.50"},
        ],
    }
    path = f"/system/v1/erp/projects/{project['id']}/billing-schedules"
    first = await gw.client.post(path, json=body, headers=_headers(gw))
    assert first.status_code == 201, first.text
    schedule = first.json()
    assert schedule["project_id"] == project["id"]
    again = await gw.client.post(path, json=body, headers=_headers(gw))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == schedule["id"]

    read = await gw.client.get(
        f"/system/v1/erp/billing-schedules/{schedule['id']}", headers=gw.auth("system:read")
    )
    assert read.status_code == 200, read.text
    assert read.json()["voided"] is False
    assert read.json()["currency"] == "GBP"
    lines = read.json()["lines"]
    assert [(line["date"], line["description"]) for line in lines] == [
        ("2027-01-15", "Discovery"),
        ("2027-04-15", "Build"),
    ]
    # An ERP that keeps the money of each line gives it back exactly; one that keeps shares of the project
    # (NetSuite's milestone percentages) gives none: never another amount.
    assert [
        line.get("amount") in (None, sent["amount"]) for line, sent in zip(lines, body["lines"], strict=True)
    ] == [
        True,
        True,
    ]

    voided = await gw.client.post(
        f"/system/v1/erp/billing-schedules/{schedule['id']}/void", headers=_headers(gw)
    )
    assert voided.status_code == 200, voided.text
    reread = await gw.client.get(
        f"/system/v1/erp/billing-schedules/{schedule['id']}", headers=gw.auth("system:read")
    )
    assert reread.status_code == 200, reread.text
    assert reread.json()["voided"] is True
