"""``POST /system/v1/erp/customer-matches`` through the whole gateway: a search with a body, not a write.

The ERP is the NetSuite sandbox mounted in the gateway; the CRM account is the Salesforce sandbox's Wayne.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

import httpx
import pytest

from apis.config import Settings
from contracts.models import CustomerMatchQuery
from sandboxes.netsuite.data import DUPLICATE_CUSTOMER_ID, GLOBEX_CUSTOMER_ID
from sandboxes.salesforce import data as salesforce
from system_apis.client import SystemApiClient

PATH = "/system/v1/erp/customer-matches"


def _wayne() -> dict[str, Any]:
    (account,) = [
        a for a in salesforce.build_seed(0)["Account"].values() if a["Name"] == "Wayne Capital Partners LLC"
    ]
    return {
        "name": account["Name"],
        "tax_id": account["Tax_Id__c"],
        "website": account["Website"],
        "crm_customer_id": account["Id"],
    }


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    fast = {"timeout_seconds": 0.5, "breaker_failure_threshold": 0}
    return await make_gateway(make_settings(kantata=fast, netsuite=fast, salesforce=fast))


async def test_wayne_finds_its_probable_duplicate_without_an_idempotency_key(gw: Any) -> None:
    response = await gw.client.post(PATH, json=_wayne(), headers=gw.auth("system:read"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    (match,) = response.json()["items"]
    assert match["reason"] == "name+tax_id"
    assert match["customer"]["id"] == DUPLICATE_CUSTOMER_ID
    assert match["customer"]["name"] == "Wayne Capital Partners, L.L.C."


async def test_no_probable_duplicate_is_an_empty_list(gw: Any) -> None:
    globex = {
        "name": "Globex Professional Services",
        "tax_id": "94-3216547",
        "website": "https://www.globex-ps.example",
        "crm_customer_id": salesforce.BIG_ACCOUNT_ID,
    }
    linked = await gw.client.post(PATH, json=globex, headers=gw.auth("system:read"))
    assert linked.status_code == 200, linked.text
    assert linked.json() == {"items": []}
    unlinked = await gw.client.post(
        PATH, json={**globex, "crm_customer_id": None}, headers=gw.auth("system:read")
    )
    assert [m["customer"]["id"] for m in unlinked.json()["items"]] == [GLOBEX_CUSTOMER_ID]
    nobody = await gw.client.post(
        PATH, json={"name": "Zenith Orbital Shipping Ltd", "tax_id": "GB999"}, headers=gw.auth("system:read")
    )
    assert nobody.json() == {"items": []}


async def test_write_scope_alone_is_not_enough(gw: Any) -> None:
    response = await gw.client.post(PATH, json=_wayne(), headers=gw.auth("system:write"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_no_token_is_401(gw: Any) -> None:
    response = await gw.client.post(PATH, json=_wayne())
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"tax_id": "04-7654321"},  # no name
        {"name": ""},
        {"name": "   "},
        {"name": "Wayne Capital Partners LLC", "tax_id": 47654321},
        {"name": "Wayne Capital Partners LLC", "country": "US"},  # unknown field
        {"name": "Wayne Capital Partners LLC", "crm_customer_id": "not an id!"},
        {"name": "Wayne Capital Partners LLC", "website": "https://" + "w" * 300 + ".example"},
    ],
)
async def test_a_bad_body_is_422(gw: Any, body: dict[str, Any]) -> None:
    response = await gw.client.post(PATH, json=body, headers=gw.auth("system:read"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_netsuite_refusing_the_query_is_a_502_not_the_callers_fault(gw: Any) -> None:
    body = {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "o:errorDetails": [{"detail": "Invalid search query.", "o:errorCode": "INVALID_PARAMETER"}],
    }
    async with gw.sandbox("netsuite") as sandbox:
        rule = {"kind": "error", "status": 400, "body": json.dumps(body), "path_pattern": "/query/v1/suiteql"}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
    response = await gw.client.post(PATH, json=_wayne(), headers=gw.auth("system:read"))
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "vendor-bad-response"


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


async def test_the_typed_client(gw: Any) -> None:
    client = SystemApiClient(
        base_url="http://testserver",
        auth=_Bearer(gw.token("system:read", client_id="stratum-process-tier")),
        transport=httpx.ASGITransport(app=gw.app),
    )
    try:
        matches = await client.find_probable_duplicate_customers(CustomerMatchQuery(**_wayne()))
    finally:
        await client.aclose()
    assert [(m.customer.id, m.reason) for m in matches] == [(DUPLICATE_CUSTOMER_ID, "name+tax_id")]
