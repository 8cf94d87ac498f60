"""Every failure answers as RFC 9457 problem+json with a stable type, a code and the correlation id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from apis.config import Settings
from apis.edge import Edge
from apis.runtime import Runtime
from tests.gateway.probe import Calls, create_probe_app


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    runtime = Runtime(settings)
    app = Edge(create_probe_app(runtime, Calls()))
    assert runtime.dev_server is not None
    headers = {
        "Authorization": f"Bearer {runtime.dev_server.issue_token('stratum-demo')}",
        "Idempotency-Key": "k",
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, headers
    await runtime.stop()


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


async def test_malformed_json_is_400(probe: Any) -> None:
    client, headers = probe
    response = await client.post(
        "/system/v9/charges",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"customer_id": ',
    )
    _assert_problem(response, 400, "malformed-request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "c", "amount": "1.00", "currency": "USD", "surprise": 1}, "surprise"),
        ({"customer_id": 42, "amount": "1.00", "currency": "USD"}, "customer_id"),
        ({"customer_id": "c", "amount": "one", "currency": "USD"}, "amount"),
        ({"customer_id": "c", "amount": "1.00"}, "currency"),
        ({"customer_id": "c", "amount": "1.00", "currency": "dollars"}, "currency"),
    ],
)
async def test_contract_violations_are_422_naming_the_field(
    probe: Any, body: dict[str, Any], field: str
) -> None:
    client, headers = probe
    response = await client.post("/system/v9/charges", headers=headers, json=body)
    problem = _assert_problem(response, 422, "validation-failed")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["location"] == "body"


async def test_oversized_bodies_are_413(probe: Any) -> None:
    client, headers = probe
    body = b'{"customer_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/system/v9/charges", headers={**headers, "Content-Type": "application/json"}, content=body
    )
    _assert_problem(response, 413, "payload-too-large")


async def test_other_media_types_are_415(probe: Any) -> None:
    client, headers = probe
    response = await client.post(
        "/system/v9/charges", headers={**headers, "Content-Type": "text/plain"}, content=b"customer_id=c"
    )
    _assert_problem(response, 415, "unsupported-media-type")


async def test_unknown_path_is_404_problem(probe: Any) -> None:
    client, headers = probe
    _assert_problem(await client.get("/system/v9/nothing/here", headers=headers), 404, "not-found")
    _assert_problem(await client.get("/nowhere"), 404, "not-found")


async def test_wrong_method_is_405_with_allow(probe: Any) -> None:
    client, headers = probe
    response = await client.delete("/system/v9/items/a", headers=headers)
    _assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


async def test_unexpected_errors_are_500_without_internals(probe: Any) -> None:
    client, headers = probe
    with capture_logs() as logs:
        response = await client.get("/system/v9/boom", headers=headers)
    body = _assert_problem(response, 500, "internal-error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "detail" not in body
    assert any(entry["event"] == "unhandled_exception" for entry in logs)


async def test_problem_types_are_documented(gw: Any) -> None:
    index = await gw.client.get("/problems")
    assert index.status_code == 200
    for code in ("invalid-token", "rate-limited", "vendor-unavailable", "idempotency-key-reused"):
        page = await gw.client.get(f"/problems/{code}")
        assert page.status_code == 200
        assert code in page.text
