"""``PUT /system/v1/crm/opportunities/{id}/invoices/{erp_invoice_id}`` through the in-process gateway
against the Salesforce sandbox: one record per ERP invoice, totals answered, the ids are the path's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID


def _write_headers(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(salesforce={"timeout_seconds": 0.5, "breaker_failure_threshold": 0})
    )


def _body(erp_invoice_id: str, **fields: Any) -> dict[str, Any]:
    # The path names the opportunity and the ERP invoice; the body is the invoice's state.
    return {
        "number": "INV-DE-0001",
        "status": "open",
        "currency": "EUR",
        "total": "42000.00",
        "balance": "42000.00",
        "issue_date": "2026-05-01",
        "due_date": "2099-05-31",
        "erp_updated_at": "2026-05-01T12:00:00Z",
        **fields,
    }


def _path(erp_invoice_id: str) -> str:
    return f"/system/v1/crm/opportunities/{READY_FIXED_FEE_OPPORTUNITY_ID}/invoices/{erp_invoice_id}"


def _records(gw: Any, erp_invoice_id: str) -> list[dict[str, Any]]:
    state = gw.sandbox_state("salesforce")
    return [
        r for r in state.records["Stratum_Invoice__c"].values() if r["ERP_Invoice_Id__c"] == erp_invoice_id
    ]


async def test_put_invoice_status_writes_one_record_and_answers_the_totals(gw: Any) -> None:
    invoice_id = f"bc-{uuid.uuid4().hex[:10]}"
    first = await gw.client.put(_path(invoice_id), json=_body(invoice_id), headers=_write_headers(gw))
    assert first.status_code == 200, first.text
    paid = _body(
        invoice_id, status="partially_paid", balance="12000.00", erp_updated_at="2026-05-20T08:00:00Z"
    )
    second = await gw.client.put(_path(invoice_id), json=paid, headers=_write_headers(gw))
    assert second.status_code == 200, second.text

    totals = second.json()
    assert totals["opportunity_id"] == READY_FIXED_FEE_OPPORTUNITY_ID
    assert totals["currency"] == "EUR"
    assert Decimal(totals["paid"]["amount"]) - Decimal(first.json()["paid"]["amount"]) == Decimal("30000.00")
    [record] = _records(gw, invoice_id)
    assert record["Status__c"] == "Partially Paid"
    assert record["Balance__c"] == 12000


async def test_the_ids_are_the_paths_and_a_body_naming_them_is_refused(gw: Any) -> None:
    invoice_id = f"bc-{uuid.uuid4().hex[:10]}"
    body = {**_body(invoice_id), "erp_invoice_id": "another-one"}
    response = await gw.client.put(_path(invoice_id), json=body, headers=_write_headers(gw))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _records(gw, invoice_id) == _records(gw, "another-one") == []


async def test_an_unknown_opportunity_is_a_404(gw: Any) -> None:
    missing = "006Dn00000ZZZZZIAA"
    body = _body("bc-x")
    response = await gw.client.put(
        f"/system/v1/crm/opportunities/{missing}/invoices/bc-x", json=body, headers=_write_headers(gw)
    )
    assert response.status_code == 404, response.text


async def test_the_write_needs_the_write_scope_and_an_idempotency_key(gw: Any) -> None:
    invoice_id = f"bc-{uuid.uuid4().hex[:10]}"
    read_only = await gw.client.put(
        _path(invoice_id), json=_body(invoice_id), headers={**gw.auth("system:read"), "Idempotency-Key": "k"}
    )
    assert read_only.status_code == 403
    no_key = await gw.client.put(_path(invoice_id), json=_body(invoice_id), headers=gw.auth("system:write"))
    assert no_key.status_code in (400, 428), no_key.text
    assert _records(gw, invoice_id) == []
