"""The Business Central sandbox's ``$batch``: the JSON batch format Business Central's API v2.0 accepts
("Using OData $batch requests", learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/
use-odata-batch; the body is OData JSON Format 4.01 section 19, "Batch Requests and Responses"): one
``POST {api root}/$batch`` carries ``requests`` (``id``, ``method``, ``url`` relative to the API root,
``headers``, ``body``) and answers ``responses`` (``id``, ``status``, ``headers``, ``body``), each inner
request served as if sent alone with the outer request's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandboxes.business_central import (
    DE_COMPANY_ID,
    BusinessCentralSandboxSettings,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import INITECH_CUSTOMER_ID
from tests.sandboxes.test_business_central_sandbox import BASE, Client, body

API = api_root()
BATCH = f"{API}/$batch"
COMPANY = f"companies({DE_COMPANY_ID})"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    client = Client(create_business_central_sandbox(BusinessCentralSandboxSettings(batch_max_requests=3)))
    yield client
    await client.http.aclose()


def by_id(response: Any) -> dict[str, Any]:
    return {entry["id"]: entry for entry in body(response)["responses"]}


async def test_a_batch_runs_each_request_and_answers_each_by_id(client: Client) -> None:
    customers_before = len(client.sandbox.records["customers"])
    response = await client.request(
        "POST",
        BATCH,
        json={
            "requests": [
                {"id": "read", "method": "GET", "url": f"{COMPANY}/customers({INITECH_CUSTOMER_ID})"},
                {
                    "id": "create",
                    "method": "POST",
                    "url": f"{COMPANY}/customers",
                    "headers": {"Content-Type": "application/json"},
                    "body": {"displayName": "Batched GmbH", "number": "BATCH-1"},
                },
                {
                    "id": "stale",
                    "method": "PATCH",
                    "url": f"{COMPANY}/customers({INITECH_CUSTOMER_ID})",
                    "headers": {"If-Match": 'W/"stale"'},
                    "body": {"displayName": "Lost update"},
                },
            ]
        },
    )

    assert response.status_code == 200
    answers = by_id(response)
    assert [entry["id"] for entry in body(response)["responses"]] == ["read", "create", "stale"]
    assert answers["read"]["status"] == 200
    assert answers["read"]["body"]["id"] == INITECH_CUSTOMER_ID
    assert answers["create"]["status"] == 201
    assert answers["create"]["body"]["displayName"] == "Batched GmbH"
    assert answers["create"]["headers"]["location"].endswith(f"customers({answers['create']['body']['id']})")
    # One failing request is answered in place; the others still ran.
    assert answers["stale"]["status"] == 412
    assert answers["stale"]["body"]["error"]["code"] == "Request_EntityChanged"
    assert len(client.sandbox.records["customers"]) == customers_before + 1


async def test_plain_text_answers_and_absolute_urls_are_served_too(client: Client) -> None:
    absolute = f"{BASE}{API}/{COMPANY}/customers/$count"
    response = await client.request(
        "POST", BATCH, json={"requests": [{"id": "1", "method": "GET", "url": absolute}]}
    )
    assert response.status_code == 200, response.text
    (answer,) = body(response)["responses"]
    alone = await client.get(f"{API}/{COMPANY}/customers/$count")
    assert answer["status"] == 200
    assert answer["headers"]["content-type"].startswith("text/plain")
    assert answer["body"] == alone.content.decode("utf-8-sig")


async def test_a_batch_needs_the_outer_token(client: Client) -> None:
    response = await client.http.post(
        BATCH, json={"requests": [{"id": "1", "method": "GET", "url": "companies"}]}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Authentication_InvalidCredentials"


@pytest.mark.parametrize(
    "requests",
    [
        [{"id": str(n), "method": "GET", "url": "companies"} for n in range(4)],  # over the limit
        [{"id": "1", "method": "POST", "url": "$batch", "body": {"requests": []}}],  # nested
        [{"id": "1", "method": "GET", "url": "https://elsewhere.test/companies"}],  # another service
        [{"id": "1", "method": "GET", "url": "companies"}, {"id": "1", "method": "GET", "url": "companies"}],
        [{"id": "1", "url": "companies"}],  # no method
    ],
)
async def test_a_malformed_batch_is_refused_whole(client: Client, requests: list[dict[str, Any]]) -> None:
    customers_before = len(client.sandbox.records["customers"])
    response = await client.request("POST", BATCH, json={"requests": requests})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert len(client.sandbox.records["customers"]) == customers_before
