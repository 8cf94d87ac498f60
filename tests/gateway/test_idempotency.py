"""Idempotency-Key as a client retrying a money-moving POST experiences it, on both state stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from apis.config import Settings
from apis.edge import Edge
from apis.runtime import Runtime
from tests.gateway.probe import Calls, create_probe_app


class Probe:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient, calls: Calls) -> None:
        self.runtime, self.client, self.calls = runtime, client, calls

    def headers(self, key: str | None, client_id: str = "stratum-demo") -> dict[str, str]:
        assert self.runtime.dev_server is not None
        headers = {
            "Authorization": f"Bearer {self.runtime.dev_server.issue_token(client_id, 'system:write')}"
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def charge(self, key: str | None, body: Any, client_id: str = "stratum-demo") -> httpx.Response:
        return await self.client.post("/system/v9/charges", headers=self.headers(key, client_id), json=body)


@pytest.fixture(params=["memory", "redis"])
async def probe(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Probe]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    runtime = Runtime(make_settings(redis_url=redis_url))
    calls = Calls()
    app = Edge(create_probe_app(runtime, calls))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Probe(runtime, client, calls)
    await runtime.stop()


BODY = {"customer_id": "c-1", "amount": "1250.10", "currency": "USD"}


async def test_a_retry_replays_the_first_answer_and_runs_once(
    probe: Probe, unique: Callable[[str], str]
) -> None:
    key = unique("charge")
    first = await probe.charge(key, BODY)
    second = await probe.charge(key, {"currency": "USD", "amount": "1250.10", "customer_id": "c-1"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert probe.calls.count == 1
    assert first.json()["amount"] == "1250.10"  # money stays a decimal string


async def test_concurrent_requests_with_one_key_run_the_handler_once(
    probe: Probe, unique: Callable[[str], str]
) -> None:
    probe.calls.delay = 0.2
    key = unique("concurrent")
    responses = await asyncio.gather(*(probe.charge(key, BODY) for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert probe.calls.count == 1
    assert statuses.count(201) == 1
    assert statuses.count(409) == 7
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.headers["retry-after"] == "1"
    assert conflict.json()["code"] == "idempotency-in-flight"
    # Once the first finished, the same request gets its answer.
    replay = await probe.charge(key, BODY)
    assert replay.status_code == 201
    assert probe.calls.count == 1


async def test_same_key_other_body_is_422(probe: Probe, unique: Callable[[str], str]) -> None:
    key = unique("reuse")
    assert (await probe.charge(key, BODY)).status_code == 201
    response = await probe.charge(key, {**BODY, "amount": "9999.00"})
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency-key-reused"
    assert probe.calls.count == 1


async def test_keys_are_per_client(probe: Probe, unique: Callable[[str], str]) -> None:
    key = unique("shared-key")
    assert (await probe.charge(key, BODY, "stratum-demo")).status_code == 201
    other = await probe.charge(key, BODY, "stratum-process-tier")
    assert other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert probe.calls.count == 2


async def test_a_request_that_failed_validation_is_not_stored(
    probe: Probe, unique: Callable[[str], str]
) -> None:
    key = unique("invalid-first")
    bad = await probe.charge(key, {**BODY, "currency": "usd"})
    assert bad.status_code == 422
    fixed = await probe.charge(key, BODY)
    assert fixed.status_code == 201
    assert probe.calls.count == 1


async def test_the_key_is_required_where_the_route_says_so(probe: Probe) -> None:
    response = await probe.charge(None, BODY)
    assert response.status_code == 428
    assert response.json()["code"] == "idempotency-key-required"
    assert probe.calls.count == 0


async def test_a_malformed_key_is_400(probe: Probe) -> None:
    response = await probe.charge("has spaces in it", BODY)
    assert response.status_code == 400
    assert probe.calls.count == 0
