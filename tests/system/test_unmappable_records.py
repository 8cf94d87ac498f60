"""A vendor record Stratum cannot map never fails a list for everyone: the list answers 200 with the other
records and names the bad one in ``skipped``; reading that record by id answers 502 naming it.

The bad records are made as an outside user would make them: with the vendor's own REST API (a 29-digit
amount), or, where the vendor refuses such a value on input (Salesforce), as data already in the org
(written before a field's precision was narrowed, or by a formula).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from apis.config import Settings
from sandboxes.netsuite.data import DEMO_CUSTOMER_ID
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID
from system_apis.bootstrap import Adapters, build_adapters
from system_apis.errors import VendorRejected

HUGE = 12345678901234567890123456789  # 29 digits: more than any vendor field or Decimal's context holds
JSON = {"Content-Type": "application/json"}
_SF_OPPORTUNITIES = "services/data/v61.0/sobjects/Opportunity/"


def _read(gw: Any) -> dict[str, str]:
    headers: dict[str, str] = gw.auth("system:read")
    return headers


def _unmappable_count(vendor: str, record_type: str) -> float:
    labels = {"vendor": vendor, "record_type": record_type}
    return REGISTRY.get_sample_value("stratum_vendor_records_unmappable_total", labels) or 0.0


@pytest.fixture
async def outside(gw: Any) -> AsyncIterator[Adapters]:
    """Vendor clients with the sandboxes' own credentials, on the gateway's sandboxes: what a person or
    another integration uses to write to the vendor without Stratum."""
    sandboxes = {mount.prefix: mount.app for mount in gw.gateway.mounts}
    adapters = build_adapters(gw.runtime.settings, sandboxes)
    yield adapters
    for close in adapters.closers:
        await close()


async def _page_with(gw: Any, path: str, record_id: str, **params: Any) -> dict[str, Any]:
    """The page (of ``path``'s listing, paged to the end) whose ``skipped`` names ``record_id``."""
    cursor: str | None = None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await gw.client.get(path, params=query, headers=_read(gw))
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        if any(s["id"] == record_id for s in page["skipped"]):
            return page
        cursor = page["next_cursor"]
        assert cursor, f"{record_id} was neither listed nor named as skipped"


async def test_a_salesforce_opportunity_with_a_29_digit_amount_is_named_and_the_rest_served(
    gw: Any, outside: Adapters
) -> None:
    state = gw.sandbox_state("salesforce")
    opportunities = state.records["Opportunity"].values()
    good_before = [o["Id"] for o in opportunities if o["AccountId"] == DEMO_ACCOUNT_ID]
    body = {"Name": "Huge", "StageName": "Prospecting", "CloseDate": "2027-01-01"}
    body["AccountId"] = DEMO_ACCOUNT_ID
    created = await outside.crm.http.send(  # type: ignore[attr-defined]
        "POST", _SF_OPPORTUNITIES, content=msgspec.json.encode(body), headers=JSON
    )
    bad_id = created.json()["id"]
    # Salesforce refuses such an amount on input (see below): this one is already in the org.
    state.records["Opportunity"][bad_id]["Amount"] = float(HUGE)
    before = _unmappable_count("salesforce", "Opportunity")

    with capture_logs() as logs:
        page = await _page_with(gw, f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}/opportunities", bad_id)

    assert {o["id"] for o in page["items"]} == set(good_before)
    [skipped] = page["skipped"]
    assert "too large" in skipped["reason"]
    assert any(
        line["event"] == "vendor_record_unmappable" and line["record_id"] == bad_id for line in logs
    )
    assert _unmappable_count("salesforce", "Opportunity") == before + 1
    one = await gw.client.get(f"/system/v1/crm/opportunities/{bad_id}", headers=_read(gw))
    assert one.status_code == 502, one.text
    assert one.json()["code"] == "vendor-bad-response"
    assert one.json()["record_id"] == bad_id


async def test_salesforce_refuses_an_amount_beyond_its_currency_field(gw: Any, outside: Adapters) -> None:
    http = outside.crm.http  # type: ignore[attr-defined]
    body = {"Name": "Too big", "StageName": "Prospecting", "CloseDate": "2027-01-01", "Amount": 1e16}
    with pytest.raises(VendorRejected) as refused:
        await http.send("POST", _SF_OPPORTUNITIES, content=msgspec.json.encode(body), headers=JSON)
    assert refused.value.vendor_code == "NUMBER_OUTSIDE_VALID_RANGE"
    stored = gw.sandbox_state("salesforce").records["Opportunity"].values()
    assert not [o for o in stored if o["Name"] == "Too big"]


async def test_a_kantata_workspace_with_a_29_digit_budget_is_named_and_the_rest_served(
    gw: Any, outside: Adapters
) -> None:
    # Kantata takes the budget as `price` in units and requires `creator_role` (mavenlink_gem's spec).
    price = f"{HUGE // 100}.{HUGE % 100:02d}"
    workspace = {"title": "Huge budget", "creator_role": "maven", "currency": "USD", "price": price}
    workspace["budgeted"] = True
    body = {"workspace": workspace}
    created = await outside.psa.http.send(  # type: ignore[attr-defined]
        "POST", "workspaces.json", content=msgspec.json.encode(body), headers=JSON
    )
    bad_id = created.json()["results"][0]["id"]

    page = await _page_with(gw, "/system/v1/psa/projects", bad_id)

    assert page["items"], "the other projects of the page are served"
    one = await gw.client.get(f"/system/v1/psa/projects/{bad_id}", headers=_read(gw))
    assert one.status_code == 502, one.text
    assert one.json()["record_id"] == bad_id


async def test_a_netsuite_invoice_with_a_29_digit_amount_is_named_and_the_rest_served(
    gw: Any, outside: Adapters
) -> None:
    item_id = next(iter(gw.sandbox_state("netsuite").records["serviceItem"]))
    body = {
        "externalId": f"outside-{uuid.uuid4().hex[:8]}",
        "entity": {"id": DEMO_CUSTOMER_ID},
        "tranDate": "2026-11-30",
        "item": {"items": [{"item": {"id": item_id}, "quantity": 1, "rate": HUGE}]},
    }
    created = await outside.erp.http.send(  # type: ignore[attr-defined]
        "POST", "record/v1/invoice", content=msgspec.json.encode(body), headers=JSON
    )
    bad_id = created.headers["Location"].rsplit("/", 1)[1]

    page = await _page_with(gw, "/system/v1/erp/invoices", bad_id, customer_id=DEMO_CUSTOMER_ID)

    assert page["items"], "the customer's other invoices are served"
    one = await gw.client.get(f"/system/v1/erp/invoices/{bad_id}", headers=_read(gw))
    assert one.status_code == 502, one.text
    assert one.json()["record_id"] == bad_id


@pytest.fixture
async def bc(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(make_settings(erp_vendor="business_central"))


async def test_a_business_central_invoice_with_a_29_digit_amount_is_named_and_the_rest_served(
    bc: Any,
) -> None:
    invoices = bc.sandbox_state("business-central").records["salesInvoices"]
    template = next(i for i in invoices.values() if i.get("status") == "Open")
    bad_id = str(uuid.uuid4())
    # Business Central refuses such an amount on input (its Decimal range): this one predates that check.
    invoices[bad_id] = {**template, "id": bad_id, "number": "HUGE-1", "totalAmountIncludingTax": HUGE}

    page = await _page_with(bc, "/system/v1/erp/invoices", bad_id, customer_id=template["customerId"])

    assert page["items"], "the customer's other invoices are served"
    one = await bc.client.get(f"/system/v1/erp/invoices/{bad_id}", headers=_read(bc))
    assert one.status_code == 502, one.text
    assert one.json()["record_id"] == bad_id


async def test_business_central_refuses_an_amount_beyond_its_decimal_range(bc: Any) -> None:
    invoices = bc.sandbox_state("business-central").records["salesInvoices"]
    template = next(i for i in invoices.values() if i.get("status") == "Open")
    before = len(invoices)
    adapters = build_adapters(bc.runtime.settings, {mount.prefix: mount.app for mount in bc.gateway.mounts})
    try:
        company = await adapters.erp._company_path()  # type: ignore[attr-defined]
        body = {"customerId": template["customerId"], "salesInvoiceLines": [{"unitPrice": HUGE}]}
        with pytest.raises(VendorRejected, match="outside the valid range"):
            await adapters.erp.http.send(  # type: ignore[attr-defined]
                "POST", f"{company}/salesInvoices", content=msgspec.json.encode(body), headers=JSON
            )
    finally:
        for close in adapters.closers:
            await close()
    assert len(invoices) == before
