"""Vendor failures as a caller of the system tier sees them, with faults injected into the sandboxes:
retries for safe calls, Retry-After honoured, the circuit breaker, malformed payloads and timeouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

ACCOUNT = f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}"


async def _fault(gw: Any, vendor: str, rule: dict[str, Any]) -> str:
    async with gw.sandbox(vendor) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
        assert response.status_code in (200, 201), response.text
        fault_id: str = response.json()["id"]
        return fault_id


async def _active(gw: Any, vendor: str) -> dict[str, Any]:
    async with gw.sandbox(vendor) as sandbox:
        faults: list[dict[str, Any]] = (await sandbox.get("/__sandbox/faults")).json()["faults"]
    return {f["id"]: f for f in faults}


async def _applied(gw: Any, vendor: str, fault_id: str) -> int:
    applied: int = (await _active(gw, vendor))[fault_id]["applied"]
    return applied


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(
            salesforce={
                "retry_max_attempts": 3,
                "breaker_failure_threshold": 4,
                "breaker_cooldown_seconds": 600,
                "timeout_seconds": 0.5,
            }
        )
    )


async def test_a_vendor_blip_is_retried_and_the_caller_never_sees_it(gw: Any) -> None:
    fault = await _fault(
        gw, "salesforce", {"kind": "error", "status": 503, "times": 2, "path_pattern": "/Account/"}
    )
    response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert response.status_code == 200
    assert fault not in await _active(gw, "salesforce")  # both failures were spent: the third attempt won


async def test_a_persistent_503_becomes_a_503_problem_with_retry_after(gw: Any) -> None:
    fault = await _fault(
        gw,
        "salesforce",
        {"kind": "error", "status": 503, "headers": {"Retry-After": "2"}, "path_pattern": "/Account/"},
    )
    response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "vendor-unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert await _applied(gw, "salesforce", fault) == 3  # retried up to the limit, then gave up


async def test_429_retry_after_is_honoured(gw: Any) -> None:
    fault = await _fault(
        gw,
        "salesforce",
        {
            "kind": "error",
            "status": 429,
            "times": 1,
            "headers": {"Retry-After": "1"},
            "path_pattern": "/Account/",
        },
    )
    response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert response.status_code == 200
    assert fault not in await _active(gw, "salesforce")


async def test_the_breaker_opens_and_then_answers_without_calling_the_vendor(gw: Any) -> None:
    fault = await _fault(gw, "salesforce", {"kind": "outage", "path_pattern": "/Account/"})
    first = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    second = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert first.status_code == second.status_code == 503
    calls_when_open = await _applied(gw, "salesforce", fault)
    assert calls_when_open == 4  # the threshold: 3 attempts, then 1 more opened the circuit
    for _ in range(5):
        response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
        assert response.status_code == 503
        assert "circuit open" in response.json()["detail"]
        assert int(response.headers["retry-after"]) > 100  # the rest of the cooldown
    assert await _applied(gw, "salesforce", fault) == calls_when_open


async def test_a_malformed_vendor_payload_is_502(gw: Any) -> None:
    await _fault(gw, "salesforce", {"kind": "malformed", "path_pattern": "/Account/"})
    response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert response.status_code == 502
    assert response.json()["code"] == "vendor-bad-response"


async def test_a_vendor_that_does_not_answer_in_time_is_504(gw: Any) -> None:
    await _fault(gw, "salesforce", {"kind": "hang", "latency_ms": 3000, "path_pattern": "/Account/"})
    response = await gw.client.get(ACCOUNT, headers=gw.auth("system:read"))
    assert response.status_code == 504
    assert response.json()["code"] == "vendor-timeout"


@pytest.mark.parametrize(
    "path",
    [
        "/system/v1/crm/accounts/x'%20OR%20Name%20!=%20'y",
        "/system/v1/erp/invoices?customer_id=1'%20OR%20'1'='1",
        "/system/v1/psa/time-entries?project_id=1%20OR%201=1",
        "/system/v1/crm/opportunities?stage=closed_won'--",
    ],
)
async def test_injection_shaped_input_never_reaches_a_vendor(gw: Any, path: str) -> None:
    async with gw.sandbox("salesforce") as sandbox:
        before = (await sandbox.get("/__sandbox/stats")).json()["api_usage"]
    response = await gw.client.get(path, headers=gw.auth("system:read"))
    assert response.status_code in (404, 422)
    async with gw.sandbox("salesforce") as sandbox:
        assert (await sandbox.get("/__sandbox/stats")).json()["api_usage"] == before
